-- Reading what users hand kapi: files named on the command line, or "-"
-- for standard input, as they come from editors, spreadsheets and other
-- tools (a UTF-8 byte-order mark, CRLF line ends). Whatever cannot be
-- used (missing, a directory, unreadable, binary, empty, too large) is an
-- input error naming the file and why, in one line: the exit status is 2
-- wherever it happens (docs/usage.md).
local errors = require "kapi.errors"
local json = require "kapi.json"
local doc = require "kapi.doc"

local M = {}

--- The largest file kapi reads whole (bytes).
M.MAX_BYTES = 512 * 1024 * 1024

local BOM = "\239\187\191"

local stdin_text -- standard input can be read once; "-" given twice reads the same text

--- How a path is named in messages: "stdin" for "-", else the path (cut
--- to a readable length).
function M.name(path)
  if path == "-" then return "stdin" end
  return errors.excerpt(path, 120)
end

-- Raises the input error "FILE: why" (or "FILE:LINE:COLUMN: why"), with
-- the place and the reason as fields, so a list of problems can name them
-- apart.
local function fail(path, why, line, column)
  local where = line and ("%s:%d:%d"):format(M.name(path), line, column) or M.name(path)
  error(errors.new("input", ("%s: %s"):format(where, why), {file = where, why = why}), 0)
end

-- The OS's reason, as `cat` gives it ("No such file or directory").
local function reason(err)
  return (tostring(err):gsub("^.-: ", ""))
end

-- An open file, or nil and why it cannot be read: the OS's reason, as
-- `cat` gives it ("No such file or directory", "Is a directory").
local function open(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, reason(err) end
  local _, not_readable = f:read(0) -- a directory opens, then refuses to be read
  if not_readable then
    f:close()
    return nil, reason(not_readable)
  end
  return f
end

--- Why the file at path cannot be read, in the OS's words; nil when it can.
function M.unreadable(path)
  local f, why = open(path)
  if f then f:close() end
  return why
end

-- A stream (standard input, a pipe, a device) has no size to check
-- first: it is read in chunks, up to the same limit, and refused at the
-- first NUL byte (text has none), so /dev/zero or an endless pipe is named
-- at once or at the limit instead of eating the memory.
local CHUNK = 1 << 16

local function read_stream(f, path, raw, limit)
  local parts, total = {}, 0
  while true do
    local chunk, err = f:read(CHUNK)
    if not chunk then
      if err then fail(path, reason(err)) end
      return table.concat(parts)
    end
    -- Bytes read raw (XML in UTF-16) may hold NULs, but never start with
    -- four of them, as /dev/zero does.
    if raw and total == 0 and chunk:find("^%z%z%z%z") then fail(path, "not a text file (it starts with NUL bytes)") end
    if not raw and chunk:find("\0", 1, true) then fail(path, "not a text file (it holds NUL bytes)") end
    total = total + #chunk
    if total > limit then
      fail(path, ("more than %d MB, the most kapi reads at once; split it"):format(limit >> 20))
    end
    parts[#parts + 1] = chunk
  end
end

local function read_raw(path, raw, limit)
  if path == "-" then
    stdin_text = stdin_text or read_stream(io.stdin, path, raw, limit)
    return stdin_text
  end
  local f, why = open(path)
  if not f then fail(path, why == "Is a directory" and "is a directory, not a file" or why) end
  local size = f:seek("end")
  if not size or size == 0 then -- not seekable, or a device or /proc file that says 0
    local ok, text = pcall(read_stream, f, path, raw, limit)
    f:close()
    if not ok then error(text, 0) end
    return text
  end
  if size > limit then
    f:close()
    fail(path, ("%d MB is more than kapi reads at once (%d MB); split it"):format(size >> 20, limit >> 20))
  end
  f:seek("set")
  local text, read_err = f:read("a")
  f:close()
  if not text then fail(path, reason(read_err)) end
  return text
end

--- The text of a file (or of standard input for "-"): without a UTF-8
--- byte-order mark, CRLF and CR line ends turned into LF (unless
--- opts.line_ends, for a reader that knows them all, as CSV's does).
--- Raises an input error naming the file when it cannot be read, is
--- binary or (unless opts.empty_ok) holds nothing but white space.
--- opts.raw gives the bytes as they are (NULs, a byte-order mark, line
--- ends: for a reader that knows its own encodings, as XML's does), and
--- opts.max_bytes a limit below M.MAX_BYTES.
function M.read(path, opts)
  if type(path) ~= "string" or path == "" then errors.input("a file name is needed", 0) end
  local raw = opts and opts.raw
  local text = read_raw(path, raw, math.min(opts and opts.max_bytes or M.MAX_BYTES, M.MAX_BYTES))
  if raw then
    if not text:find("[^%s%z]") then fail(path, "is empty") end
    return text
  end
  if text:sub(1, 3) == BOM then text = text:sub(4) end
  if text:find("\0", 1, true) then fail(path, "not a text file (it holds NUL bytes)") end
  if not (opts and opts.line_ends) and text:find("\r", 1, true) then text = text:gsub("\r\n?", "\n") end
  if not (opts and opts.empty_ok) and not text:find("%S") then fail(path, "is empty") end
  return text
end

--- The lines of a file (read as M.read does), without their line ends.
function M.lines(path, opts)
  local text = M.read(path, opts)
  local lines = {}
  for line in (text:sub(-1) == "\n" and text or text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

-- A line without its comment: # at the start (after spaces) or after a
-- space, with no quote after it (a quoted field may hold " #"). Found in
-- time linear in the line.
local function uncommented(line)
  if line:find("^%s*#") then return "" end
  local last_quote = 0
  for at in line:gmatch('()"') do last_quote = at end
  local hash = line:find("%s#", last_quote + 1)
  return hash and line:sub(1, hash - 1) or line
end

--- The entries of a list file (GTINs, UPC:QTY lines, publications): for
--- each line that holds one, {line = N, fields = {...}} (a CSV row, quotes
--- and "" understood, fields trimmed); # starts a comment (at the start
--- of a line or after a space), blank lines are skipped, and the first
--- entry is dropped as a header when header(fields) says it is one.
function M.entries(path, header)
  local csv = require "kapi.csv"
  local trim = require("kapi.text").trim
  local out, as_csv = {}, {trim = true}
  for n, line in ipairs(M.lines(path)) do
    -- Most lines are one value (a GTIN a line): with no quote, separator
    -- or comment in them, they are that value, trimmed.
    local plain = not line:find('[",#\r]')
    local text = plain and line or uncommented(line)
    if text:find("%S") then
      local fields = plain and {trim(text)} or csv.rows(text, as_csv)() or {""}
      if not (#out == 0 and header and header(fields)) then out[#out + 1] = {line = n, fields = fields} end
    end
  end
  return out
end

-- The line and column of byte offset `at` in text.
local function position(text, at)
  local line, start = 1, 1
  for nl in text:sub(1, at - 1):gmatch("()\n") do line, start = line + 1, nl + 1 end
  return line, at - start + 1
end

--- A file's JSON, decoded. Malformed JSON is an input error naming the
--- file, the line and the column: "item.json:3:14: expected ',' or '}'".
function M.json(path)
  local text = M.read(path)
  local ok, value = pcall(json.decode, text)
  if ok then return value end
  local message = errors.message(value)
  local at = tonumber(message:match("at character (%d+)"))
  local what = message:gsub("^json: ", ""):gsub(" at character %d+", "")
  if at then
    local line, column = position(text, at)
    fail(path, "not valid JSON: " .. what, line, column)
  end
  fail(path, "not valid JSON: " .. what)
end

doc.declare("kapi.input.read", M.read, [[
kapi.input.read(path[, {empty_ok = true}]) -> text
The text of a file, or of standard input for "-": a UTF-8 byte-order mark
dropped, CRLF line ends made LF. A file that is missing, a directory,
unreadable, binary or empty raises an input error naming it in one line
(exit status 2 on the command line). kapi.input.lines(path) gives its
lines; kapi.input.json(path) its JSON, naming FILE:LINE:COLUMN when it is
malformed.
Example:
  for _, line in ipairs(kapi.input.lines(args.file)) do print(line) end]])

return M
