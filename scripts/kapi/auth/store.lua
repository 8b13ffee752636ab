-- The token store: one JSON file per (environment host, client id, kind,
-- scopes) under ~/.local/state/kapi/tokens/, mode 0600 in a 0700
-- directory, written atomically, with an advisory lock per file so that two
-- kapi processes never refresh with the same (single-use) refresh token.
local fs = require "kapi.core.fs"
local json = require "kapi.json"
local paths = require "kapi.paths"
local task = require "kapi.task"
-- The OS's reason, in time linear in a message that names a path of any length.
local after_last_colon = require("kapi.text").after_last_colon

local M = {}

-- Tokens of hosts that end with this process (the built-in sandbox) are
-- kept here, never written: they would be of no use to another process.
local memory_hosts, memory = {}, {}

--- Keeps the tokens of the service at base_url in memory only.
function M.in_memory(base_url)
  memory_hosts[base_url:match("^(%a+://[^/]+)") or base_url] = true
end

--- The directory; tests point it elsewhere.
function M.dir()
  return M.directory or (paths.state_dir() .. "/tokens")
end

local function crypto() return require "kapi.core.crypto" end

--- The file name for a token: never the token, only a digest of what it is for.
function M.key(host, client_id, kind, scopes)
  local sorted = {}
  for i, s in ipairs(scopes or {}) do sorted[i] = s end
  table.sort(sorted)
  local c = crypto()
  local key = c.hex(c.sha256(table.concat({host, client_id, kind, table.concat(sorted, " ")}, "\n"))):sub(1, 24)
  if memory_hosts[host] and not memory[key] then memory[key] = {} end
  return key
end

local function path(key) return M.dir() .. "/" .. key .. ".json" end

local function read_record(file)
  local f = io.open(file, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, value = pcall(json.decode, text)
  return ok and type(value) == "table" and value or nil
end

-- The temporary files of a key (KEY.json.tmp.PID, as fs.write_atomic
-- names them), each with the pid that wrote it.
local function temporaries(key)
  local out = {}
  for _, name in ipairs(fs.list(M.dir()) or {}) do
    local k, pid = name:match("^(.-)%.json%.tmp%.(%d+)$")
    if k and (key == nil or k == key) then out[#out + 1] = {key = k, pid = pid, path = M.dir() .. "/" .. name} end
  end
  return out
end

-- A kapi killed between writing a token file's temporary and renaming it
-- over the file leaves the temporary behind. Once its writer is gone: a
-- complete one is the newer record (the service may have spent the older
-- refresh token already), and takes the file's place; one cut short is
-- removed. Neither is left holding a token nobody knows of.
local function recover(key)
  for _, t in ipairs(temporaries(key)) do
    if not fs.mode("/proc/" .. t.pid) then
      if read_record(t.path) then os.rename(t.path, path(t.key)) else fs.remove(t.path) end
    end
  end
end

function M.read(key)
  if memory[key] then return memory[key].record end
  recover(key)
  return read_record(path(key))
end

-- A token store that cannot be written (a full disk, a read-only home)
-- is a failure of the machine, named with its directory and reason.
local function store_failed(what, err)
  error(require("kapi.errors").new("store", ("cannot %s the token store (%s): %s"):format(
    what, M.dir(), after_last_colon(tostring(err)) or tostring(err))), 0)
end

function M.write(key, record)
  if memory[key] then memory[key].record = record; return end
  local ok, err = fs.mkdirs(M.dir(), 448) -- 0700
  if ok then ok, err = fs.write_atomic(path(key), json.encode(record), 384) end -- 0600
  if not ok then store_failed("write", err) end
end

--- Removes a stored token, and any temporary copy of it; raises the
--- store's failure when one stays.
function M.remove(key)
  if memory[key] then memory[key].record = nil; return end
  local ok, err = fs.remove(path(key))
  for _, t in ipairs(temporaries(key)) do
    if ok then ok, err = fs.remove(t.path) end
  end
  if not ok then store_failed("remove a token from", err) end
end

--- Every stored record, with its key (those left only in a temporary by a
--- kapi that was killed included).
function M.list()
  local out = {}
  for _, t in ipairs(temporaries()) do
    if not fs.mode(path(t.key)) then recover(t.key) end
  end
  for _, name in ipairs(fs.list(M.dir()) or {}) do
    local key = name:match("^(.+)%.json$")
    local record = key and M.read(key)
    if record then record.key = key; out[#out + 1] = record end
  end
  return out
end

--- Takes the lock of a token file, waiting (without blocking other tasks)
--- up to `timeout` seconds; use with <close>.
function M.lock(key, timeout)
  if memory[key] then return setmetatable({}, {__close = function() end}) end
  local made, why = fs.mkdirs(M.dir(), 448)
  if not made then store_failed("lock", why) end
  local deadline = task.now() + (timeout or 10)
  while true do
    local lock, err = fs.try_lock(path(key) .. ".lock")
    if lock then return lock end
    if lock == nil then store_failed("lock", err) end
    if task.now() > deadline then
      error(require("kapi.errors").new("auth", "the token store is locked by another kapi process; try again"), 0)
    end
    task.sleep(0.01)
  end
end

return M
