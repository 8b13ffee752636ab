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

--- text without the run of `char` (one character) at its end: what
--- text:gsub(char .. "+$", "") gives, but that pattern is tried again at
--- each character of a run that does not end the text ("a///...///b").
function M.trim_end_char(text, char)
  local byte, last = char:byte(), #text
  while last > 0 and text:byte(last) == byte do last = last - 1 end
  return last == #text and text or text:sub(1, last)
end

--- What follows the last colon of text, the white space after the colon
--- left out (the OS's reason in "PATH: reason"); nil when nothing follows
--- it. The same as text:match(":%s*([^:]+)$"), which backtracks over the
--- run of spaces after each colon.
function M.after_last_colon(text)
  local colon = text:match(".*():") -- .* runs to the end and backs up once
  if not colon or colon == #text then return nil end
  local first = text:find("%S", colon + 1)
  -- "%s*" gives back one space when nothing else follows, as [^:]+ needs one
  return first and text:sub(first) or text:sub(-1)
end

-- Beyond this length a part is looked for by Knuth-Morris-Pratt, below
-- it by string.find: that compares the part again at each place its first
-- byte occurs, which is linear only while the part is short.
local SHORT_PART = 64

--- Whether text holds part (plain text, not a pattern), in time linear in
--- both: string.find(text, part, 1, true) took 1.4 s for 400,000 "a"s
--- and a part of 200,000 "a"s and a "b".
function M.contains(text, part)
  if #part <= SHORT_PART then return text:find(part, 1, true) ~= nil end
  local byte, n = string.byte, #part
  -- back[i]: the length of the longest proper prefix of part[1..i] that
  -- is also its suffix, where a search goes on after a mismatch.
  local back, k = {0}, 0
  for i = 2, n do
    local b = byte(part, i)
    while k > 0 and byte(part, k + 1) ~= b do k = back[k] end
    if byte(part, k + 1) == b then k = k + 1 end
    back[i] = k
  end
  k = 0
  for i = 1, #text do
    local b = byte(text, i)
    while k > 0 and byte(part, k + 1) ~= b do k = back[k] end
    if byte(part, k + 1) == b then k = k + 1 end
    if k == n then return true end
  end
  return false
end

return M
