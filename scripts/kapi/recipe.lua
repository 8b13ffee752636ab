-- What every recipe shares: the common options (--json, --csv, --quiet,
-- --env, --shard, --apply), output as aligned tables, JSON or CSV, a
-- progress bar, colour, input lists with bad entries named, and the exit
-- status. Recipes describe their workflow; this module does the chores.
local core = require "kapi.core"
local json = require "kapi.json"
local gtin = require "kapi.gtin"
local errors = require "kapi.errors"
local doc = require "kapi.doc"

local M = {}

-- Options ---------------------------------------------------------------------

local COMMON = {
  output = function(parser)
    parser:mutex(parser:flag("--json", "Print a JSON array (stable keys, see docs/recipes.md)"),
                 parser:flag("--csv", "Print CSV with a header row"),
                 parser:flag("--table", "Print an aligned table (the default)"))
  end,
  quiet = function(parser)
    parser:flag("-q --quiet", "No progress bar or notes on stderr")
  end,
  env = function(parser)
    parser:option("--env", "Where to work: sandbox, ce or prod (default: KAPI_ENV, the config, "
                  .. "or the built-in sandbox when no credentials are set)")
          :choices {"sandbox", "ce", "prod"}
  end,
  shard = function(parser)
    parser:option("--shard", "Work on part I of N of the input (I/N, e.g. 2/8); the split is "
                  .. "by key, the same on every machine")
  end,
  apply = function(parser)
    parser:flag("--apply", "Make the changes (without it: print the plan, change nothing)")
  end,
}

--- Adds the common options named (output, quiet, env, shard, apply) to an
--- argparse parser; all of them when names is nil.
function M.options(parser, names)
  for _, name in ipairs(names or {"output", "quiet", "env", "shard", "apply"}) do
    COMMON[name](parser)
  end
  return parser
end

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

-- Tables ------------------------------------------------------------------------

local json_value

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

local function text_width(s)
  return utf8.len(s) or #s
end

-- Lines of at most width characters, broken at spaces where possible.
local function wrap(text, width)
  local lines, line = {}, ""
  for word in text:gmatch("%S+") do
    while text_width(word) > width do
      if line ~= "" then lines[#lines + 1] = line; line = "" end
      lines[#lines + 1] = word:sub(1, width)
      word = word:sub(width + 1)
    end
    if line == "" then line = word
    elseif text_width(line) + 1 + text_width(word) <= width then line = line .. " " .. word
    else lines[#lines + 1] = line; line = word end
  end
  if line ~= "" or #lines == 0 then lines[#lines + 1] = line end
  return lines
end

-- Widths that fit the terminal: the wrap columns give up space, widest first.
local function fit(widths, columns, total_width)
  if not total_width then return widths end
  local function total()
    local sum = 0
    for _, w in ipairs(widths) do sum = sum + w end
    return sum + 2 * (#widths - 1)
  end
  while total() > total_width do
    local widest
    for i, c in ipairs(columns) do
      if c.wrap and widths[i] > 16 and (not widest or widths[i] > widths[widest]) then widest = i end
    end
    if not widest then break end
    widths[widest] = math.max(16, widths[widest] - (total() - total_width))
  end
  return widths
end

local function pad(text, width, right)
  local gap = (" "):rep(math.max(0, width - text_width(text)))
  return right and gap .. text or text .. gap
end

--- Renders rows as an aligned table: columns = {{key, title, wrap = bool,
--- right = bool, style = function(value, row) -> style}}; width = the
--- terminal's (nil: no limit). Returns the text.
function M.render_table(rows, columns, opts)
  opts = opts or {}
  local widths, cells = {}, {}
  for i, c in ipairs(columns) do widths[i] = text_width(c.title) end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for i, c in ipairs(columns) do
      local text = cell_text(row[c.key])
      cells[r][i] = text
      widths[i] = math.max(widths[i], text_width(text))
    end
  end
  widths = fit(widths, columns, opts.width)
  local out = {}
  local function emit(texts, styles)
    local wrapped, height = {}, 1
    for i, text in ipairs(texts) do
      wrapped[i] = text_width(text) > widths[i] and wrap(text, widths[i]) or {text}
      height = math.max(height, #wrapped[i])
    end
    for l = 1, height do
      local parts = {}
      for i, c in ipairs(columns) do
        local text = wrapped[i][l] or ""
        local last = i == #columns
        local padded = last and not c.right and text or pad(text, widths[i], c.right)
        parts[i] = M.paint(padded, styles and styles[i], opts.color)
      end
      out[#out + 1] = (table.concat(parts, "  "):gsub("%s+$", ""))
    end
  end
  local titles, title_styles = {}, {}
  for i, c in ipairs(columns) do titles[i], title_styles[i] = c.title, "bold" end
  emit(titles, title_styles)
  for r, row in ipairs(rows) do
    local styles = {}
    for i, c in ipairs(columns) do styles[i] = c.style and c.style(row[c.key], row) end
    emit(cells[r], styles)
  end
  return table.concat(out, "\n") .. "\n"
end

-- JSON and CSV ------------------------------------------------------------------

-- JSON with the keys of nested objects sorted, so that the same data
-- always gives the same text.
function json_value(value)
  if value == nil then return "null" end
  -- (cjson writes "/" as "\/": valid, but not what people expect to read)
  if type(value) == "string" then return (json.encode(value):gsub("\\/", "/")) end
  if type(value) ~= "table" or value == json.null then return json.encode(value) end
  if value[1] ~= nil or json.is_array(value) then
    local parts = {}
    for i, v in ipairs(value) do parts[i] = json_value(v) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = k end
  if #keys == 0 then return "{}" end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = json.encode(tostring(k)) .. ":" .. json_value(value[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- A JSON array of objects whose keys come in the order of keys (so the
--- output is stable and diffable); one object per line.
function M.render_json(rows, keys)
  if #rows == 0 then return "[]\n" end
  local out = {}
  for r, row in ipairs(rows) do
    local fields = {}
    for i, key in ipairs(keys) do fields[i] = json.encode(key) .. ":" .. json_value(row[key]) end
    out[r] = "  {" .. table.concat(fields, ",") .. "}"
  end
  return "[\n" .. table.concat(out, ",\n") .. "\n]\n"
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

--- The format the user asked for: "json", "csv" or "table".
function M.format(args)
  return args.json and "json" or args.csv and "csv" or "table"
end

--- Prints rows in the format args asks for. columns as for render_table;
--- JSON and CSV use keys (default: the columns' keys).
function M.print(args, rows, columns, keys)
  local format = M.format(args)
  if not keys then
    keys = {}
    for i, c in ipairs(columns) do keys[i] = c.key end
  end
  if format == "json" then
    io.stdout:write(M.render_json(rows, keys))
  elseif format == "csv" then
    io.stdout:write(M.render_csv(rows, keys))
  elseif #rows > 0 then
    io.stdout:write(M.render_table(rows, columns, {width = M.width(1), color = M.color(1)}))
  end
  io.stdout:flush() -- before any note on stderr, also when both go to one file
end

--- A note for people on stderr (never with --quiet, never mixed into the
--- JSON or CSV on stdout).
function M.note(args, fmt, ...)
  if args.quiet then return end
  io.stderr:write(fmt:format(...), "\n")
end

-- Progress ----------------------------------------------------------------------

local Progress = {}
Progress.__index = Progress

local function duration(seconds)
  seconds = math.floor(seconds + 0.5)
  if seconds >= 3600 then return ("%dh%02dm"):format(seconds // 3600, seconds % 3600 // 60) end
  if seconds >= 60 then return ("%dm%02ds"):format(seconds // 60, seconds % 60) end
  return seconds .. "s"
end

function Progress:draw()
  local elapsed = core.now() - self.started
  local rate = self.done / math.max(elapsed, 1e-3)
  local text
  if self.total and self.total > 0 then
    local share = math.min(1, self.done / self.total)
    local bar = math.floor(share * 24 + 0.5)
    local eta = rate > 0 and duration((self.total - self.done) / rate) or "?"
    text = ("%s [%s%s] %d/%d %s  %.0f/s  ETA %s"):format(self.label, ("#"):rep(bar), ("."):rep(24 - bar),
                                                        self.done, self.total, self.unit, rate, eta)
  else
    text = ("%s %d %s  %.0f/s"):format(self.label, self.done, self.unit, rate)
  end
  io.stderr:write("\r", text, "\27[K")
  self.drawn, self.last = true, core.now()
end

--- Counts n more done; redraws at most ten times a second, and only once
--- the work has run for a second (short work shows nothing).
function Progress:step(n)
  self.done = self.done + (n or 1)
  if not self.enabled then return end
  local now = core.now()
  if now - self.started >= 1 and now - (self.last or 0) >= 0.1 then self:draw() end
end

--- Clears the bar (the table printed next starts on a clean line).
function Progress:finish()
  if self.drawn then io.stderr:write("\r\27[K") end
  self.drawn = false
end

--- A progress bar on stderr: {label, unit, total}; silent when stderr is
--- not a terminal or with --quiet.
function M.progress(args, opts)
  return setmetatable({label = opts.label or "working", unit = opts.unit or "items", total = opts.total,
                       done = 0, started = core.now(),
                       enabled = not args.quiet and core.isatty(2)}, Progress)
end

-- Input -------------------------------------------------------------------------

--- Parses --shard I/N: i, n (1 <= i <= n); nil when not given.
function M.parse_shard(text)
  if not text then return nil end
  local i, n = text:match("^(%d+)/(%d+)$")
  i, n = tonumber(i), tonumber(n)
  if not i or n < 1 or i < 1 or i > n then
    errors.usage(("--shard %s: expected I/N with 1 <= I <= N, e.g. 1/4"):format(text), 0)
  end
  return i, n
end

-- FNV-1a: a hash every machine computes the same way for the same key.
local function stable_hash(s)
  local h = 2166136261
  for k = 1, #s do h = ((h ~ s:byte(k)) * 16777619) & 0xffffffff end
  return h
end

--- The entries of list that belong to shard args.shard ("I/N"), chosen by
--- key(entry) (default tostring) so the split does not depend on order.
function M.shard(args, list, key)
  local i, n = M.parse_shard(args.shard)
  if not i then return list end
  key = key or tostring
  local out = {}
  for _, entry in ipairs(list) do
    if stable_hash(key(entry)) % n == i - 1 then out[#out + 1] = entry end
  end
  return out
end

local Problems = {}
Problems.__index = Problems

--- Records a bad input ("where: what") and reports it on stderr at once.
function Problems:add(where, what)
  self[#self + 1] = where .. ": " .. what
  io.stderr:write("kapi: ", where, ": ", what, "\n")
end

function Problems:count() return #self end

--- A list of bad inputs: each named on stderr as it is found, and
--- counted for the exit status; the good inputs are still processed.
function M.problems()
  return setmetatable({}, Problems)
end

local function read_lines(path, problems)
  local f, err = io.open(path, "r")
  if not f then problems:add(path, (err:gsub("^[^:]+: ", ""))); return {} end
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

--- GTINs from the command line and from files (one per line, # comments,
--- the first field of a CSV row): normalised to GTIN-14, duplicates once,
--- order kept. A bad one is named (argument or FILE:LINE) in problems.
function M.gtins(values, files, problems)
  local out, seen = {}, {}
  local function add(code, where)
    local ok, why = gtin.valid(code)
    if not ok then problems:add(where, why); return end
    local g = gtin.normalize(code)
    if not seen[g] then seen[g] = true; out[#out + 1] = g end
  end
  for i, value in ipairs(values or {}) do add(value, ("argument %d"):format(i)) end
  for _, path in ipairs(files or {}) do
    for n, line in ipairs(read_lines(path, problems)) do
      local code = line:gsub("#.*", ""):match("^%s*([^,%s]*)")
      if code ~= "" and not (n == 1 and code:lower():match("gtin")) then add(code, ("%s:%d"):format(path, n)) end
    end
  end
  return out
end

--- The exit status: 1 when some input was bad or failed is true, else 0
--- (usage errors, 2, are raised before any work).
function M.status(problems, failed)
  if problems and #problems > 0 then return 1 end
  return failed and 1 or 0
end

doc.declare("kapi.recipe.print", M.print, [[
kapi.recipe.print(args, rows, columns[, keys])
Prints rows as the user asked: an aligned table fitted to the terminal
(columns = {{key = "gtin", title = "GTIN", wrap = true, style = fn}, ...}),
--json (an array of objects with keys in order) or --csv. Colour only on a
terminal and never with NO_COLOR.
Example:
  kapi.recipe.print(args, {{gtin = "00614141000012", verdict = "DONE"}},
                    {{key = "gtin", title = "GTIN"}, {key = "verdict", title = "VERDICT"}})]])

doc.declare("kapi.recipe.options", M.options, [[
kapi.recipe.options(parser[, names])
Adds the options every recipe shares to an argparse parser: "output"
(--json, --csv, --table), "quiet", "env" (--env sandbox|ce|prod), "shard"
(--shard I/N) and "apply" (--apply); all of them when names is nil.
Example:
  arguments = function(parser) kapi.recipe.options(parser, {"output", "env"}) end]])

doc.declare("kapi.recipe.progress", M.progress, [[
kapi.recipe.progress(args, {label, unit, total}) -> bar
A progress bar on stderr (count, rate, ETA), drawn only on a terminal, only
after a second of work, never with --quiet. bar:step(n), bar:finish().]])

doc.declare("kapi.recipe.shard", M.shard, [[
kapi.recipe.shard(args, list[, key]) -> list
The entries of list in shard args.shard ("I/N"), chosen by a stable hash of
key(entry): every machine given the same input agrees on the split.]])

return M
