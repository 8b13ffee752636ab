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

return M
