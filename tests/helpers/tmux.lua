-- Drives a program in a real pseudo-terminal through tmux: type, press
-- keys, read the screen. Each session gets its own tmux server socket.
local kapi = require "kapi"
local process = require "helpers.process"

local M = {}
M.__index = M

local counter = 0

local function tmux(self, args)
  local p = io.popen(("tmux -L %s %s 2>&1"):format(self.socket, args))
  local out = p:read("a")
  p:close()
  return out
end

--- Starts `command` (a shell command line) in a terminal of opts.width
--- (default 100) by 40 lines.
function M.start(command, env, opts)
  counter = counter + 1
  -- Unique across processes too: spec files run in parallel (ctest -j),
  -- and two of them counting from 1 in the same second would share a
  -- server, one test's kill-server ending the other's terminal.
  local crypto = require "kapi.core.crypto"
  local self = setmetatable({socket = ("kapi-test-%s-%d"):format(crypto.hex(crypto.random(8)), counter)}, M)
  local exports = {}
  for k, v in pairs(env or {}) do exports[#exports + 1] = k .. "=" .. process.quote(v) end
  local script = (#exports > 0 and "export " .. table.concat(exports, " ") .. "; " or "")
                 .. command .. "; echo \"[exit $?]\"; sleep 30"
  tmux(self, ("new-session -d -s t -x %d -y 40 "):format(opts and opts.width or 100) .. process.quote(script))
  return self
end

function M:type(text)
  tmux(self, "send-keys -t t -l " .. process.quote(text))
end

function M:key(...)
  tmux(self, "send-keys -t t " .. table.concat({...}, " "))
end

--- Types a line and presses Enter.
function M:line(text)
  self:type(text)
  self:key("Enter")
end

--- The screen's text; with escapes = true, with its colours as ANSI codes.
function M:screen(escapes)
  return tmux(self, "capture-pane -p -N " .. (escapes and "-e " or "") .. "-t t -S -200")
end

--- Waits until the screen matches pattern (a Lua pattern); returns the
--- screen, or raises with the screen after `timeout` seconds.
function M:wait_for(pattern, timeout)
  local deadline = kapi.now() + (timeout or 5)
  while true do
    local screen = self:screen()
    if screen:find(pattern) then return screen end
    if kapi.now() > deadline then
      error(("timed out waiting for %q; the screen shows:\n%s"):format(pattern, screen), 2)
    end
    kapi.sleep(0.05)
  end
end

function M:stop()
  tmux(self, "kill-server")
end

return M
