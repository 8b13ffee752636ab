-- Telling someone a change happened, without holding up the work that
-- found it: `exec:COMMAND` runs a command with the change as JSON on its
-- standard input and in environment variables; an `https://` URL (or an
-- `http://` one on loopback) receives it as a JSON POST, retried with
-- backoff in a task of its own. A target that fails is told once, on
-- stderr, and goes on being tried.
local errors = require "kapi.errors"
local json = require "kapi.json"
local log = require "kapi.log"
local task = require "kapi.task"

local M = {}

-- The environment a command gets besides the JSON: the fields a shell
-- one-liner wants most.
local ENVIRONMENT = {KAPI_GTIN = "gtin", KAPI_RECIPIENT_GLN = "recipientGln", KAPI_CHANGE = "change"}

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local Target = {}
Target.__index = Target
Target.__tostring = function(self) return "notify " .. self.spec end

--- Parses a --notify value: a target, or raises a usage error naming it.
function M.target(spec)
  errors.check(spec, "string", "notify.target: spec")
  local command = spec:match("^exec:(.*)$")
  if command then
    if not command:find("%S") then errors.usage("--notify exec: needs a command, e.g. exec:notify-send", 0) end
    return setmetatable({spec = spec, kind = "exec", command = command, pending = {}}, Target)
  end
  local scheme = spec:match("^(%a+)://")
  local host, loopback = require("kapi.core.http").url_host(spec)
  if not host or (scheme ~= "https" and not (scheme == "http" and loopback)) then
    errors.usage(("--notify %s: expected exec:COMMAND, an https:// URL, or an http:// URL on this machine")
                 :format(errors.excerpt(spec)), 0)
  end
  return setmetatable({spec = spec, kind = "webhook", url = spec, inflight = {}}, Target)
end

-- A command that failed is told once; one that succeeds again is told too.
local function told(self, ok, why)
  if not ok and not self.failing then
    log.warn(("--notify %s failed: %s (kapi goes on, and keeps trying)"):format(errors.excerpt(self.spec), why))
  end
  self.failing = not ok
end

-- A command's outcome, from the status file its shell wrote (nil while
-- it still runs).
local function finished(run)
  local f = io.open(run.status)
  if not f then return nil end
  local status = f:read("l")
  f:close()
  if not status then return nil end
  os.remove(run.status)
  os.remove(run.input)
  return tonumber(status)
end

function Target:collect()
  local still = {}
  for _, run in ipairs(self.pending or {}) do
    local status = finished(run)
    if status == nil then still[#still + 1] = run
    else told(self, status == 0, ("the command exited with status %d"):format(status)) end
  end
  self.pending = still
end

-- Runs the command in the background: the JSON in a private file, the
-- command's exit status written next to it when it ends.
local function run_command(self, change, text)
  self:collect()
  local base = os.tmpname()
  local input, status = base .. ".json", base .. ".status"
  os.remove(base)
  -- 0600: the change is the user's business.
  local written, why = require("kapi.core.fs").write_atomic(input, text, 384)
  if not written then return told(self, false, tostring(why)) end
  local env = {}
  for name, key in pairs(ENVIRONMENT) do env[#env + 1] = name .. "=" .. quote(change[key] or "") end
  local after = type(change.after) == "table" and change.after.verdict or ""
  env[#env + 1] = "KAPI_VERDICT=" .. quote(after)
  local line = ("(%s sh -c %s < %s > /dev/null 2>&1; echo $? > %s) < /dev/null > /dev/null 2>&1 &")
               :format(table.concat(env, " "), quote(self.command), quote(input), quote(status))
  os.execute(line)
  self.pending[#self.pending + 1] = {input = input, status = status}
end

-- POSTs in a task of its own, retried with backoff; the watch never
-- waits for it.
local function post(self, text)
  local http = require "kapi.http"
  local t = task.spawn(function()
    local ok, err = pcall(http.post, self.url, {body = text, headers = {["Content-Type"] = "application/json"},
                                                retry = 4, timeout = 10, raise = true})
    told(self, ok, ok or errors.message(err))
  end)
  self.inflight[#self.inflight + 1] = t
end

--- Sends one change (a table that encodes as JSON).
function Target:send(change)
  local text = json.encode(change, {sorted = true}) .. "\n"
  if self.kind == "exec" then run_command(self, change, text) else post(self, text) end
end

--- Waits, at most `seconds`, for what was sent to be delivered (at the
--- end of a watch, so that its last notifications are not lost).
function Target:flush(seconds)
  local deadline = task.now() + (seconds or 5)
  if self.kind == "exec" then
    while #self.pending > 0 and task.now() < deadline do
      self:collect()
      if #self.pending > 0 then task.sleep(0.05) end
    end
    return
  end
  local function running(t) local s = t:status() return s ~= "done" and s ~= "failed" end
  for _, t in ipairs(self.inflight) do
    while running(t) and task.now() < deadline do task.sleep(0.02) end
    if running(t) then t:cancel() end
  end
  self.inflight = {}
end

return M
