-- Structured errors: tables with kind, message and whatever else the layer
-- that raised them knows (status, url, attempts, ...). tostring gives a
-- one-line message. The metatable is shared with the C host, which raises
-- "interrupted", "cancelled" and "deadlock" errors of the same shape.
local M = {}

local meta = debug.getregistry()["kapi.error"]
if not meta then
  meta = {}
  debug.getregistry()["kapi.error"] = meta
end
meta.__name = "kapi.error"
meta.__tostring = function(e)
  return e.message or e.kind or "error"
end
M.meta = meta

--- A new error object: errors.new("usage", "unknown recipe 'x'", {...}).
function M.new(kind, message, fields)
  local e = fields or {}
  e.kind, e.message = kind, message
  return setmetatable(e, meta)
end

--- Raises a usage error (exit code 2 when it reaches the command line).
function M.usage(message, level)
  error(M.new("usage", message), level or 2)
end

function M.is(e, kind)
  return getmetatable(e) == meta and (kind == nil or e.kind == kind)
end

--- The one-line text of any error value.
function M.message(e)
  if type(e) == "string" then return e end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  return ("(error object is a %s value)"):format(type(e))
end

--- The exit status a command line gives for an error.
function M.exit_code(e)
  if M.is(e, "interrupted") then return 130 end
  if M.is(e, "usage") then return 2 end
  return 1
end

return M
