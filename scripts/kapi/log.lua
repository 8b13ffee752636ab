-- Where kapi reports what it does: notes on stderr (never with --quiet),
-- --verbose lines on stderr and the KAPI_TRACE=FILE request log (JSON
-- lines). Callers redact first.
local M = {verbose = os.getenv("KAPI_DEBUG") ~= nil}

local trace_file, trace_path

--- The KAPI_TRACE path, read once: the request path asks on every call.
local trace_env = os.getenv("KAPI_TRACE")
if trace_env == "" then trace_env = nil end

--- Whether a trace file is being written (read once, like KAPI_TRACE).
--- With .verbose, whether anything is written: callers skip building
--- records when neither is set.
M.tracing = trace_env ~= nil

--- .quiet: --quiet was given; notes are not written (errors always are).
M.quiet = false

--- A note for people on stderr (what kapi chose, what it did), one line;
--- nothing with --quiet.
function M.note(fmt, ...)
  if not M.quiet then io.stderr:write(fmt:format(...), "\n") end
end

--- A warning on stderr: something the user should know even with --quiet
--- (a secret others can read, work that will not be kept).
function M.warn(text)
  io.stderr:write("kapi: warning: ", text, "\n")
end

--- Writes one line to stderr when --verbose is on.
function M.debug(fmt, ...)
  if M.verbose then io.stderr:write("kapi: ", fmt:format(...), "\n") end
end

--- Appends one record to the KAPI_TRACE file, if there is one.
function M.trace(record)
  local path = trace_env
  if not path then return end
  if path ~= trace_path then
    if trace_file then trace_file:close() end
    -- What kapi writes about requests is for the user alone (0600), as
    -- its tokens are, even redacted.
    require("kapi.core.fs").create(path, 384) -- a file already there keeps its mode
    trace_file, trace_path = io.open(path, "a"), path
    if trace_file then trace_file:setvbuf("line") end
  end
  if trace_file then trace_file:write(require("kapi.json").encode(record), "\n") end
end

return M
