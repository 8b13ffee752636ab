-- How rows are shown: aligned tables fitted to the terminal (or, where a
-- table cannot fit, one block per record, as psql's \x does), JSON with
-- keys in a stable order, CSV (RFC 4180); colour only on a terminal, and
-- never with NO_COLOR. Recipes reach these through kapi.recipe.print.
local core = require "kapi.core"
local json = require "kapi.json"
local trim_end = require("kapi.text").trim_end

local M = {}

-- Terminal ----------------------------------------------------------------------

--- True when text written to fd (1 or 2) may be coloured: a terminal,
--- NO_COLOR unset (https://no-color.org), TERM not "dumb".
function M.color(fd)
  local no_color = os.getenv("NO_COLOR")
  return core.isatty(fd) and not (no_color and no_color ~= "") and os.getenv("TERM") ~= "dumb"
end

--- The width to fit output to on fd, or nil when it is not a terminal
--- (piped output is never cut).
function M.width(fd)
  if not core.isatty(fd) then return nil end
  return core.terminal_size(fd) or tonumber(os.getenv("COLUMNS")) or 80
end

local STYLES = {red = "31", green = "32", yellow = "33", blue = "34", bold = "1", dim = "2"}

--- text wrapped in an ANSI style when on is true.
function M.paint(text, style, on)
  if not on or not STYLES[style] then return text end
  return "\27[" .. STYLES[style] .. "m" .. text .. "\27[0m"
end

-- Text -----------------------------------------------------------------------------

--- JSON with the keys of nested objects sorted, so that the same data
--- always gives the same text.
local SORTED = {sorted = true}
local function json_value(value)
  if value == nil then return "null" end
  return json.encode(value, SORTED)
end

-- A list as its items separated by spaces; an object as JSON.
local function cell_text(value)
  if value == nil or value == json.null then return "" end
  if type(value) == "table" then
    if value[1] == nil and next(value) ~= nil then return json_value(value) end
    local parts = {}
    for i, v in ipairs(value) do parts[i] = type(v) == "table" and json_value(v) or tostring(v) end
    return table.concat(parts, " ")
  end
  return tostring(value)
end

local concat, byte = table.concat, string.byte
local NO_STYLES = {} -- rows without colour share it: nothing is ever set in it

-- Characters, as utf8.len counts them; bytes for text that is not UTF-8.
local ascii_length, utf8_len = require("kapi.core.text").ascii_length, utf8.len
local function text_width(s)
  return ascii_length(s) or utf8_len(s) or #s
end

-- Whether what is left of word from byte `at` on is wider than width. A
-- rest of more than 4 * width bytes is, however it is encoded (a UTF-8
-- character has at most 4, a byte that is not UTF-8 counts one); only a
-- shorter one is measured. Measuring the whole rest for each piece cut
-- was quadratic in a long word (100,000 characters: 0.9 s at width 20).
local function wider_from(word, at, width)
  if #word - at + 1 > 4 * width then return true end
  return text_width(word:sub(at)) > width
end

--- Lines of at most width characters, broken at spaces where possible and
--- inside a word (at a character boundary) only when the word is longer.
function M.wrap(text, width)
  local lines, line = {}, ""
  for word in text:gmatch("%S+") do
    -- A longer word is cut from a moving position, never copied whole.
    local at = 1
    while wider_from(word, at, width) do
      if line ~= "" then lines[#lines + 1] = line; line = "" end
      -- At a character boundary, not inside a character; a piece that
      -- starts with a byte no character starts with (text that is not
      -- UTF-8) is cut after width bytes, as text_width counts them.
      local b = byte(word, at)
      local cut = (b >= 0x80 and b < 0xC0) and at + width or utf8.offset(word, width + 1, at) or #word + 1
      lines[#lines + 1] = word:sub(at, cut - 1)
      at = cut
    end
    if at > 1 then word = word:sub(at) end
    if line == "" then line = word
    elseif text_width(line) + 1 + text_width(word) <= width then line = line .. " " .. word
    else lines[#lines + 1] = line; line = word end
  end
  if line ~= "" or #lines == 0 then lines[#lines + 1] = line end
  return lines
end

-- Runs of spaces by length, made once each: a table of thousands of rows
-- pads every cell.
local SPACES = setmetatable({}, {__index = function(spaces, n)
  local run = (" "):rep(n)
  spaces[n] = run
  return run
end})

local function pad(text, width, right, text_w)
  local gap = SPACES[math.max(0, width - (text_w or text_width(text)))]
  return right and gap .. text or text .. gap
end

-- Tables ------------------------------------------------------------------------

-- A wrapped column keeps at least this many characters: the widest one
-- (the text the table is about) WIDE_WRAP, the others NARROW_WRAP, or
-- less on a very narrow terminal. A table that cannot fit so is shown as
-- records instead: a column of syllables reads worse than a block.
M.WIDE_WRAP, M.NARROW_WRAP = 24, 12
local GAP = 2

local function total(widths)
  local sum = 0
  for _, w in ipairs(widths) do sum = sum + w end
  return sum + GAP * (#widths - 1)
end

-- Widths that fit the terminal: the wrap columns give up space, widest
-- first, down to their least; nil when the table cannot fit that way.
local function fit(widths, columns, total_width)
  if not total_width then return widths end
  local widest_wrap
  for i, c in ipairs(columns) do
    if c.wrap and (not widest_wrap or widths[i] > widths[widest_wrap]) then widest_wrap = i end
  end
  local least = {}
  for i, c in ipairs(columns) do
    local floor = i == widest_wrap and M.WIDE_WRAP or M.NARROW_WRAP
    least[i] = c.wrap and math.min(widths[i], floor, total_width // 2) or widths[i]
  end
  -- Like water let out of a tank: the widest column comes down to the
  -- next widest, then both together, so the space is given up evenly.
  while total(widths) > total_width do
    local widest, next_width
    for i, c in ipairs(columns) do
      if c.wrap and widths[i] > least[i] and (not widest or widths[i] > widths[widest]) then widest = i end
    end
    if not widest then return nil end
    next_width = least[widest]
    for i, c in ipairs(columns) do
      if c.wrap and i ~= widest and widths[i] < widths[widest] then next_width = math.max(next_width, widths[i]) end
    end
    if next_width == widths[widest] then next_width = widths[widest] - 1 end
    widths[widest] = math.max(next_width, widths[widest] - (total(widths) - total_width))
  end
  return widths
end

-- The rows as blocks, one per record: each column's title, then its value
-- wrapped to what is left of the width; a blank line between records.
local function render_records(cells, columns, opts)
  local label = 0
  for _, c in ipairs(columns) do label = math.max(label, text_width(c.title)) end
  local room = math.max(10, (opts.width or 80) - label - GAP)
  local out = {}
  for r, row in ipairs(cells) do
    if r > 1 then out[#out + 1] = "" end
    for i, c in ipairs(columns) do
      local text = row[i]
      if text ~= "" then
        for l, line in ipairs(M.wrap(text, room)) do
          local title = l == 1 and M.paint(pad(c.title, label), "bold", opts.color) or (" "):rep(label)
          out[#out + 1] = title .. (" "):rep(GAP) .. M.paint(line, opts.styles[r][i], opts.color)
        end
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- Renders rows as an aligned table: columns = {{key, title, wrap = bool,
--- right = bool, style = function(value, row) -> style}}; width = the
--- terminal's (nil: no limit), color = whether to paint. Where the columns
--- cannot fit the width, each row becomes a block of "TITLE  value"
--- lines. Returns the text.
function M.render_table(rows, columns, opts)
  opts = opts or {}
  local color = opts.color
  local widths, cells, styles = {}, {}, {}
  local n_columns, keys = #columns, {}
  for i, c in ipairs(columns) do widths[i], keys[i] = text_width(c.title), c.key end
  -- Every cell of thousands of rows passes here and through emit: the
  -- common case (text, no colour) takes no call it can do without. The
  -- cells are kept in one list, row after row, with their widths, each
  -- measured once.
  local cell_widths, at = {}, 0
  for r, row in ipairs(rows) do
    styles[r] = color and {} or NO_STYLES
    for i = 1, n_columns do
      local value = row[keys[i]]
      local text = type(value) == "string" and value or cell_text(value)
      local w = ascii_length(text) or utf8_len(text) or #text
      at = at + 1
      cells[at], cell_widths[at] = text, w
      if w > widths[i] then widths[i] = w end
      -- Styles show only in colour.
      local style = color and columns[i].style
      if style then styles[r][i] = style(value, row) end
    end
  end
  local fitted = fit(widths, columns, opts.width)
  if not fitted then
    local by_row = {}
    for r in ipairs(rows) do by_row[r] = table.move(cells, (r - 1) * n_columns + 1, r * n_columns, 1, {}) end
    return render_records(by_row, columns, {width = opts.width, color = color, styles = styles})
  end
  -- The text is the pieces of out, joined a few thousand at a time into
  -- chunks (a list of pieces for every row held a slot a piece: 4 MB for
  -- 8,000 rows of coupons), and the chunks joined at the end.
  local out, n, gap, chunks = {}, 0, SPACES[GAP], {}
  local function line_of(text)
    n = n + 2
    out[n - 1], out[n] = text, "\n"
    if n >= 4096 then
      chunks[#chunks + 1], n = concat(out, "", 1, n), 0
    end
  end
  local function emit_wrapped(texts, line_styles)
    local wrapped, height = {}, 1
    for i, text in ipairs(texts) do
      wrapped[i] = text_width(text) > fitted[i] and M.wrap(text, fitted[i]) or {text}
      height = math.max(height, #wrapped[i])
    end
    for l = 1, height do
      local parts = {}
      for i, c in ipairs(columns) do
        local text = wrapped[i][l] or ""
        local last = i == n_columns
        local padded = last and not c.right and text or pad(text, fitted[i], c.right)
        parts[i] = M.paint(padded, line_styles and line_styles[i], color)
      end
      line_of(trim_end(table.concat(parts, gap)))
    end
  end
  -- A row whose cells all fit is one line (most rows, and every row of
  -- output that is not to a terminal): no wrapping to do. Its pieces go to
  -- out as they are, unless it ends in white space (then its line is made
  -- and trimmed) or is painted.
  local parts, right, unpadded = {}, {}, n_columns
  for i, c in ipairs(columns) do right[i] = c.right end
  if right[n_columns] then unpadded = nil end -- the last column is padded only when right-aligned
  -- The row whose cells are texts[base + 1 .. base + n_columns], of
  -- widths[base + ...].
  local function emit(texts, widths_of, base, line_styles)
    for i = 1, n_columns do
      if widths_of[base + i] > fitted[i] then
        return emit_wrapped(table.move(texts, base + 1, base + n_columns, 1, {}), line_styles)
      end
    end
    local last_text = texts[base + n_columns]
    local last = byte(last_text, -1)
    if color or unpadded == nil or not last or last == 32 or (last >= 9 and last <= 13) then
      for i = 1, n_columns do
        local text, room, w = texts[base + i], fitted[i], widths_of[base + i]
        local padded = i == unpadded and text or right[i] and SPACES[room - w] .. text or text .. SPACES[room - w]
        parts[i] = color and M.paint(padded, line_styles and line_styles[i], color) or padded
      end
      local line = concat(parts, gap, 1, n_columns)
      local end_byte = byte(line, -1)
      line_of((end_byte == 32 or (end_byte and end_byte >= 9 and end_byte <= 13)) and trim_end(line) or line)
      return
    end
    for i = 1, n_columns - 1 do
      local text, room = texts[base + i], fitted[i] - widths_of[base + i]
      if right[i] then
        out[n + 1], out[n + 2], out[n + 3] = SPACES[room], text, gap
      else
        out[n + 1], out[n + 2], out[n + 3] = text, SPACES[room], gap
      end
      n = n + 3
    end
    line_of(last_text)
  end
  local titles, title_widths, title_styles = {}, {}, {}
  for i, c in ipairs(columns) do titles[i], title_widths[i], title_styles[i] = c.title, text_width(c.title), "bold" end
  emit(titles, title_widths, 0, title_styles)
  for r in ipairs(rows) do emit(cells, cell_widths, (r - 1) * n_columns, styles[r]) end
  chunks[#chunks + 1] = concat(out, "", 1, n)
  return concat(chunks)
end

-- JSON and CSV ------------------------------------------------------------------

--- The lines of a JSON array of objects whose keys come in the order of
--- keys (so the output is stable and diffable), one object per line:
--- calls write(text) with each part in order, a few hundred rows at a
--- time, so a long list is never held twice as text.
--- With opts.lines, JSON Lines instead: one object a line, no array.
function M.write_json(write, rows, keys, opts)
  local lines = opts and opts.lines
  if #rows == 0 then return write(lines and "" or "[]\n") end
  local prefixes = {}
  for i, key in ipairs(keys) do prefixes[i] = (i == 1 and "{" or ",") .. json.encode(key) .. ":" end
  local chunk, fields = {}, {}
  for r, row in ipairs(rows) do
    for i, key in ipairs(keys) do fields[i] = prefixes[i] .. json_value(row[key]) end
    local before = lines and "" or (r == 1 and "[\n  " or ",\n  ")
    chunk[#chunk + 1] = before .. table.concat(fields) .. (lines and "}\n" or "}")
    if #chunk == 256 then
      write(table.concat(chunk))
      chunk = {}
    end
  end
  if not lines then chunk[#chunk + 1] = "\n]\n" end
  write(table.concat(chunk))
end

--- A JSON array of objects whose keys come in the order of keys, one
--- object per line (as write_json writes it).
function M.render_json(rows, keys)
  local parts = {}
  M.write_json(function(text) parts[#parts + 1] = text end, rows, keys)
  return table.concat(parts)
end

local function csv_field(value)
  local text = cell_text(value)
  if text:find('[,"\r\n]') then text = '"' .. text:gsub('"', '""') .. '"' end
  return text
end

--- CSV (RFC 4180) with a header row of keys.
function M.render_csv(rows, keys)
  local out = {table.concat(keys, ",")}
  for _, row in ipairs(rows) do
    local fields = {}
    for i, key in ipairs(keys) do fields[i] = csv_field(row[key]) end
    out[#out + 1] = table.concat(fields, ",")
  end
  return table.concat(out, "\r\n") .. "\r\n"
end

return M
