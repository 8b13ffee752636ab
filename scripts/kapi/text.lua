-- Trimming text in time linear in its length. Lua patterns such as
-- "^%s*(.-)%s*$" or "%s+$" backtrack on long runs of white space (a list
-- file with a line of 100,000 spaces took minutes), so text a user hands
-- kapi is trimmed here.
local M = {}

--- text lower-cased, each run of punctuation and white space one space,
--- none at either end (ASCII, as %p and %s): text:lower():gsub("[%p%s]+",
--- " ") trimmed, at C's speed, for comparing texts as a reader would.
M.plain = require("kapi.core.text").plain

local function is_space(byte)
  return byte == 32 or (byte >= 9 and byte <= 13)
end

--- text without the white space at its end.
function M.trim_end(text)
  local last = #text
  while last > 0 and is_space(text:byte(last)) do last = last - 1 end
  return last == #text and text or text:sub(1, last)
end

--- text without the white space around it.
function M.trim(text)
  if text == "" or not (is_space(text:byte(1)) or is_space(text:byte(-1))) then return text end
  local first = text:find("%S")
  if not first then return "" end
  return M.trim_end(text:sub(first))
end

return M
