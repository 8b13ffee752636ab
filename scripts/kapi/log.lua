-- Where kapi reports what it does: --verbose lines on stderr and the
-- KAPI_TRACE=FILE request log (JSON lines). Callers redact first.
local M = {verbose = os.getenv("KAPI_DEBUG") ~= nil}

local trace_file, trace_path

--- Writes one line to stderr when --verbose is on.
function M.debug(fmt, ...)
  if M.verbose then io.stderr:write("kapi: ", fmt:format(...), "\n") end
end

--- Appends one record to the KAPI_TRACE file, if there is one.
function M.trace(record)
  local path = os.getenv("KAPI_TRACE")
  if not path or path == "" then return end
  if path ~= trace_path then
    if trace_file then trace_file:close() end
    trace_file, trace_path = io.open(path, "a"), path
    if trace_file then trace_file:setvbuf("line") end
  end
  if trace_file then trace_file:write(require("cjson").encode(record), "\n") end
end

return M
