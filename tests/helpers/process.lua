-- Runs kapi (or any command) as a user would, in a subprocess, and
-- collects its exit status, stdout and stderr.
local core = require "kapi.core"

local M = {kapi = core.executable, source_dir = core.script_dir:gsub("/scripts$", "")}

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  os.remove(path)
  return data
end

--- Runs a shell script; returns {status, stdout, stderr}.
function M.sh(script, opts)
  opts = opts or {}
  local out, err, input = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(input, "wb"))
  f:write(opts.stdin or "")
  f:close()
  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. M.quote(v) end
  local command = ("cd %s && %s %s <%s >%s 2>%s"):format(
    M.quote(opts.cwd or "."), #env > 0 and ("env " .. table.concat(env, " ")) or "",
    "sh -c " .. M.quote(script), input, out, err)
  local _, _, status = os.execute(command)
  os.remove(input)
  return {status = status, stdout = slurp(out), stderr = slurp(err)}
end

--- Runs kapi with the given arguments; opts as for sh.
function M.kapi_run(args, opts)
  local words = {M.quote(M.kapi)}
  for _, a in ipairs(args) do words[#words + 1] = M.quote(a) end
  return M.sh(table.concat(words, " "), opts)
end

--- A new empty directory, removed by cleanup(dir).
function M.tempdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  return dir
end

function M.cleanup(dir)
  if dir and dir:match("^/tmp/") then os.execute("rm -rf " .. M.quote(dir)) end
end

function M.write(path, text)
  os.execute("mkdir -p " .. M.quote(path:match("^(.*)/")))
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

--- The first line of the file at path once a process started in the
--- background has written it (a port, say), or nil after about 5 s.
function M.first_line_of(path)
  for _ = 1, 250 do
    local f = io.open(path)
    local line = f and f:read("l")
    if f then f:close() end
    if line then return line end
    os.execute("sleep 0.02")
  end
end

--- Starts `kapi sandbox ARGS...` in the background: {url, stop = fn}.
--- The sandbox keeps its state between the commands a test runs.
function M.sandbox(args)
  local dir = M.tempdir()
  local words = {M.quote(M.kapi), "sandbox"}
  for _, a in ipairs(args or {}) do words[#words + 1] = M.quote(a) end
  os.execute(("%s > %s/out 2> %s/err & echo $! > %s/pid"):format(table.concat(words, " "), dir, dir, dir))
  local url
  for _ = 1, 200 do
    local f = io.open(dir .. "/out")
    url = f and f:read("a"):match("kapi sandbox: (http%S+)")
    if f then f:close() end
    if url then break end
    os.execute("sleep 0.05")
  end
  local pid = io.open(dir .. "/pid"):read("l")
  local function stop()
    os.execute("kill " .. pid .. " 2>/dev/null; wait " .. pid .. " 2>/dev/null")
    M.cleanup(dir)
  end
  if not url then stop(); error("kapi sandbox did not start", 2) end
  -- What it has said on stderr so far (with --verbose, a line a request).
  local function log()
    local f = io.open(dir .. "/err")
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text
  end
  return {url = url, stop = stop, log = log}
end

--- The environment of a user with no credentials, on the sandbox at url
--- (nil: the one kapi starts in its own process).
local test_state -- one state directory for the tests of a process, not the user's

function M.sandbox_env(url)
  test_state = test_state or M.tempdir()
  -- No settings of the person running the tests (a preferred store, say),
  -- and none of their state (tokens, the tracker's history).
  return {KAPI_SANDBOX_URL = url or "", KAPI_CONFIG = "/nonexistent/kapi-config.lua", NO_COLOR = "1",
          XDG_STATE_HOME = test_state,
          XDG_CONFIG_HOME = "/nonexistent/kapi-config-home", KAPI_STORE = "",
          KROGER_CLIENT_ID = "", KROGER_CLIENT_SECRET = "", KAPI_ENV = "",
          ONEWORLDSYNC_APP_ID = "", ONEWORLDSYNC_SECRET = "", ONEWORLDSYNC_ITEMS_URL = ""}
end

return M
