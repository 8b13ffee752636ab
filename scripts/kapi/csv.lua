-- CSV as users have it (RFC 4180: quotes, doubled quotes, separators and
-- line ends inside quotes; CRLF, LF or CR between rows), read in time
-- linear in its length, row by row, so a large report costs its text and
-- what is kept of it. kapi.items reads reports with it, kapi.input list
-- files.
local errors = require "kapi.errors"
local doc = require "kapi.doc"
local trim = require("kapi.text").trim

local M = {}

-- The next field of a CSV text from position i (spaces before a quoted
-- field skipped when trimmed): the field, the position after it, the
-- character that ended it ("," or a line end, nil at the end of the
-- text), and the newlines inside it (nil when its quote never closes).
-- Whole runs are taken with string.find, never a character at a time, so
-- a row costs its length.
local function csv_field(text, i, trimmed)
  if trimmed then i = text:match('^[ \t]*()"', i) or i end -- a , "quoted" field after a space
  if text:byte(i) ~= 34 then -- not a quote: up to the next separator
    local stop = text:find("[,\r\n]", i)
    if not stop then return text:sub(i), #text + 1, nil, 0 end
    return text:sub(i, stop - 1), stop, text:sub(stop, stop), 0
  end
  local parts, at = {}, i + 1
  while true do
    local quote = text:find('"', at, true)
    if not quote then -- never closed: the rest of the text is the field
      parts[#parts + 1] = text:sub(at)
      return table.concat(parts), #text + 1, nil, nil
    end
    parts[#parts + 1] = text:sub(at, quote - 1)
    if text:byte(quote + 1) ~= 34 then
      local field = table.concat(parts)
      local _, newlines = field:gsub("\n", "")
      -- Anything between the closing quote and the separator is kept, as
      -- spreadsheets do with a stray character.
      local stop = text:find("[,\r\n]", quote + 1)
      if not stop then return field .. text:sub(quote + 1), #text + 1, nil, newlines end
      return field .. text:sub(quote + 1, stop - 1), stop, text:sub(stop, stop), newlines
    end
    parts[#parts + 1] = '"'
    at = quote + 2
  end
end

--- The rows of a CSV text (RFC 4180: quotes, doubled quotes, separators
--- and newlines inside quotes), one at a time: for row, line, unclosed in
--- csv.rows(text). line is the line the row starts on; unclosed is
--- true for a row whose quote is never closed (it takes the rest of the
--- text). CRLF, LF and CR all end a row. opts.trim takes the spaces
--- around each field away. Rows after the first that have as many fields
--- as the first and no quote are split by one match.
function M.rows(text, opts)
  errors.check(text, "string", "csv.rows: text")
  local i, n, line = 1, #text, 1
  local trimmed = opts and opts.trim
  local plain -- the pattern of a row like the first, once it is known
  local next_space = 0 -- where the next space or tab is, at or after i
  local function plain_row()
    if not plain then return nil end
    local fields = table.pack(text:match(plain, i))
    local after = fields[fields.n]
    if not after then return nil end
    local ended = text:byte(after)
    if ended ~= 10 and ended ~= 13 and ended ~= nil then return nil end
    fields[fields.n], fields.n = nil, nil
    if trimmed then -- only a row with a space or a tab in it can need it
      if next_space and next_space < i then next_space = text:find("[ \t]", i) end
      if next_space and next_space < after then
        for f = 1, #fields do fields[f] = trim(fields[f]) end
      end
    end
    i = after + ((ended == 13 and text:byte(after + 1) == 10) and 2 or 1)
    line = line + 1
    return fields
  end
  local function next_row()
    if i > n then return nil end
    local row_line = line
    local fast = plain_row()
    if fast then return fast, row_line end
    local row = {}
    while true do
      local field, after, ended, newlines = csv_field(text, i, trimmed)
      row[#row + 1] = trimmed and trim(field) or field
      if newlines == nil then
        i = n + 1
        return row, row_line, true
      end
      line = line + newlines
      if ended == "," then
        i = after + 1
        if i > n then row[#row + 1] = "" ; return row, row_line end
      else
        i = after + ((ended == "\r" and text:byte(after + 1) == 10) and 2 or 1)
        if ended then line = line + 1 end
        return row, row_line
      end
    end
  end
  return function()
    local row, row_line, unclosed = next_row()
    if row and not plain and #row < 32 then -- a Lua pattern holds at most 32 captures
      local field = '([^,\r\n"]*)'
      plain = "^" .. (field .. ","):rep(#row - 1) .. field .. "()"
    end
    return row, row_line, unclosed
  end
end

doc.declare("kapi.csv.rows", M.rows, [[
kapi.csv.rows(text [, {trim = true}]) -> iterator of row, line, unclosed
The rows of a CSV text one at a time (RFC 4180: quotes, doubled quotes,
commas and line ends inside quotes), each a list of its fields; line is
the line the row starts on, unclosed is true for a row whose quote never
closes. trim takes the spaces around each field away.
Example:
  for row, line in kapi.csv.rows('gtin,note\n00614141000012,"a, b"\n') do
    print(line, row[1], row[2])
  end]])

return M
