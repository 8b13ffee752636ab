-- What every recipe shares: the common options (--json, --csv, --quiet,
-- --env, --shard, --apply), option values and usage errors, the place
-- options (--zip, --near, --store) checked and their stores found, output
-- in the format asked for (kapi.output renders it), a progress bar, input
-- lists with bad entries named, and the exit status of the contract
-- (docs/usage.md). Recipes describe their workflow; this module does the
-- chores.
local core = require "kapi.core"
local gtin = require "kapi.gtin"
local errors = require "kapi.errors"
local doc = require "kapi.doc"
local input = require "kapi.input"
local output = require "kapi.output"
local parsing = require "kapi.parsing"

local check_problems -- recipe.problems() objects only; defined with them below
local M = {}

-- Options ---------------------------------------------------------------------

-- What argparse(...) made: recipes get one in their arguments function.
local function check_parser(parser, who)
  if type(parser) ~= "table" or type(parser.option) ~= "function" or type(parser.flag) ~= "function" then
    errors.usage(who .. ": parser must be an argparse parser (the one a recipe's arguments function gets)", 3)
  end
end

local COMMON = {
  output = function(parser)
    parser:mutex(parser:flag("--json", "Print a JSON array (stable keys, see docs/recipes.md)"),
                 parser:flag("--jsonl", "Print one JSON object a line (JSON Lines), the keys as --json's"),
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
  check_parser(parser, "recipe.options")
  errors.check(names, "table?", "recipe.options: names")
  for _, name in ipairs(names or {}) do
    if not COMMON[name] then errors.usage(("recipe.options: no common option %s (output, quiet, env, shard, apply)")
                                          :format(errors.excerpt(name)), 2) end
  end
  for _, name in ipairs(names or {"output", "quiet", "env", "shard", "apply"}) do
    COMMON[name](parser)
  end
  return parser
end

--- Raises a usage error (exit status 2) saying fmt:format(...): a mistake
--- on the command line, reported before anything is sent.
function M.usage(fmt, ...)
  errors.check(fmt, "string", "recipe.usage: message")
  -- The values quoted are what the user typed: cut to a readable length,
  -- control characters shown as escapes (%q too: "a\n", not Lua's "a\\n").
  local values = table.pack(...)
  for i = 1, values.n do
    -- (A value of up to 120 characters may be a message built already:
    -- it is kept whole; a longer one is what someone typed or pasted.)
    local v = values[i]
    if type(v) == "string" then values[i] = errors.excerpt(v, #v > 120 and errors.EXCERPT or 120) end
  end
  local ok, message = pcall(string.format, (fmt:gsub("%%q", '"%%s"')), table.unpack(values, 1, values.n))
  if not ok then errors.usage(("recipe.usage: the message %s does not fit its values"):format(errors.excerpt(fmt)), 2) end
  errors.usage(message, 0)
end

--- An argparse :convert for a whole number from low to high; the message
--- names the option: "--radius 500: expected a whole number from 1 to 100".
M.whole_number = parsing.whole_number

--- The values of an option declared :count("*"), one flat list whether
--- given as `--opt A --opt B` or `--opt A,B`. (An option takes one value
--- per use, so it never swallows the positional arguments after it.)
function M.values(option)
  errors.check(option, "table?", "recipe.values: option")
  local out = {}
  for i, group in ipairs(option or {}) do
    for _, value in ipairs(type(group) == "table" and group or {group}) do
      errors.check(value, "string", ("recipe.values: option[%d]"):format(i))
      for part in value:gmatch("[^,%s]+") do out[#out + 1] = part end
    end
  end
  return out
end

-- Where: a place and its stores --------------------------------------------------

--- Adds the options that say where: --zip ZIP, a point (--near LAT,LON, or
--- --lat and --lon), --radius MILES (1-100, default 10) and, with
--- opts.store, --store ID ... (location ids). recipe.place checks them.
function M.place_options(parser, opts)
  check_parser(parser, "recipe.place_options")
  errors.check(opts, "table?", "recipe.place_options: opts")
  parser:option("--zip", "Stores near this ZIP code"):argname("ZIP")
  parser:option("--near", "Stores near this point"):argname("LAT,LON")
  parser:option("--lat", "Latitude of the point (with --lon)"):argname("LAT")
  parser:option("--lon", "Longitude of the point (with --lat)"):argname("LON")
  -- The default is applied by recipe.place: a --radius given with no
  -- place to be around is refused, not ignored.
  parser:option("--radius", "Miles around the place (1-100) (default: 10)"):convert(M.whole_number("--radius", 1, 100))
        :argname("MILES")
  if opts and opts.store then
    parser:option("--store", "This store, by location id (e.g. 01400376; repeat it, or ID,ID,...)"):count("*")
          :argname("ID")
  end
  return parser
end

-- The point of --near LAT,LON or of --lat and --lon: lat, lon; nil when
-- neither is given. Each number is named as it was typed when it is wrong.
local decimal = parsing.decimal

local function point(args)
  errors.check(args.near, "string?", "recipe.place: args.near")
  errors.check(args.lat, "string?", "recipe.place: args.lat")
  errors.check(args.lon, "string?", "recipe.place: args.lon")
  local lat, lon = args.lat, args.lon
  local lat_name, lon_name = "--lat", "--lon"
  if args.near then
    if lat or lon then M.usage("give --near LAT,LON or --lat and --lon, not both") end
    lat, lon = args.near:match("^([^,]+),([^,]+)$")
    -- The spaces before LAT left out here, not by "^%s*" in the pattern:
    -- that backtracked over them with [^,]+ (10,000 spaces took 1 s).
    -- As "%s*" did, it leaves one when there is nothing else.
    if lat then lat = lat:sub(lat:find("%S") or -1) end
    if not lat or not decimal(lat) or not decimal(lon) then
      M.usage("--near %s: expected LAT,LON in degrees, e.g. 39.10,-84.51", errors.excerpt(args.near))
    end
    lat_name, lon_name = "--near latitude", "--near longitude"
  elseif (lat == nil) ~= (lon == nil) then
    M.usage("--lat and --lon go together")
  end
  if not lat then return nil end
  local y, x = decimal(lat), decimal(lon)
  if not y or math.abs(y) > 90 then M.usage("%s %s: expected degrees from -90 to 90", lat_name, errors.excerpt(lat)) end
  if not x or math.abs(x) > 180 then M.usage("%s %s: expected degrees from -180 to 180", lon_name, errors.excerpt(lon)) end
  return y, x
end

--- The place the options ask for (those of place_options; --store may
--- also be a single option), checked before anything is sent: {ids}
--- (--store), {zip}, {lat, lon, latlong = "39.100000,-84.510000"} or {}.
--- A malformed value is a usage error; so are two places (opts.conflict
--- says so in the recipe's words) and none when opts.missing (the message)
--- is given. With opts.preferred, no place at all means the preferred
--- store (`kapi config set store ID`, KAPI_STORE), said in a note:
--- {ids = {id}, preferred = "store in FILE"}.
function M.place(args, opts)
  errors.check(args, "table", "recipe.place: args")
  errors.check(opts, "table?", "recipe.place: opts")
  opts = opts or {}
  errors.check(args.zip, "string?", "recipe.place: args.zip")
  if type(args.store) ~= "table" then errors.check(args.store, "string?", "recipe.place: args.store") end
  local lat, lon = point(args)
  if args.zip and not args.zip:match("^%d%d%d%d%d$") then M.usage("--zip %s: expected 5 digits", args.zip) end
  local ids = type(args.store) == "table" and M.values(args.store) or {args.store}
  local places = (#ids > 0 and 1 or 0) + (args.zip and 1 or 0) + (lat and 1 or 0)
  if places > 1 then
    errors.usage(opts.conflict or "give one place: --zip, a point (--near, or --lat and --lon) or --store", 0)
  end
  if args.radius ~= nil and not (args.zip or lat) then
    M.usage("--radius goes with --zip or --near (or --lat and --lon): the miles around that place")
  end
  if args.radius == nil then args.radius = 10 end
  if places == 0 and opts.preferred then
    local store, source = require("kapi.config").preferred_store()
    if store then return {ids = {store}, preferred = source, quiet = args.quiet} end
  end
  if places == 0 and opts.missing then errors.usage(opts.missing, 0) end
  for _, id in ipairs(ids) do
    if not id:match("^%d%d%d%d%d%d%d%d$") then
      M.usage("--store %s: a location id has 8 digits (3-digit division + 5-digit store), e.g. 01400376", id)
    end
  end
  return {ids = #ids > 0 and ids or nil, zip = args.zip, lat = lat, lon = lon,
          latlong = lat and ("%.6f,%.6f"):format(lat, lon),
          named = lat and (args.near and ("--near " .. args.near) or ("--lat %s --lon %s"):format(args.lat, args.lon))}
end

--- How a note names the preferred store: "Kroger Foo (01400376), the
--- preferred store (store in FILE)".
function M.preferred_store_named(store, place)
  return ("%s (%s), the preferred store (%s)"):format(store.name or "store", store.locationId, place.preferred)
end

--- Raises the input error of a place that has no store in reach: the
--- same words and exit status (2) in every recipe.
function M.no_store(place, radius)
  errors.check(place, "table", "recipe.no_store: place")
  errors.check(radius, "number", "recipe.no_store: radius")
  local where = place.zip and ("--zip " .. place.zip) or (place.named or ("--near " .. tostring(place.latlong)))
  errors.input(("%s: no store within %d miles%s"):format(where, radius,
               radius < 100 and "; try a larger --radius" or ""), 0)
end

--- The stores of a place (from recipe.place): those given, in their order,
--- an unknown one named in problems ("--store ID: no such store"); or the
--- nearest to the ZIP code or point, nearest first, at most opts.limit
--- (default 5) within opts.radius miles (default 100), none there being an
--- input error (M.no_store); {} for no place.
function M.stores(kroger, place, opts, problems)
  errors.check(kroger, "table", "recipe.stores: kroger")
  errors.check(place, "table", "recipe.stores: place")
  errors.check(opts, "table?", "recipe.stores: opts")
  errors.check(problems, "table?", "recipe.stores: problems")
  if type(kroger.locations) ~= "function" then
    errors.usage("recipe.stores: kroger must be a client from kapi.kroger.client{}", 2)
  end
  if place.ids and not problems then errors.usage("recipe.stores: problems are needed with store ids (recipe.problems())", 2) end
  opts = opts or {}
  if place.ids then
    local by_id = {}
    for _, s in ipairs(kroger:locations {locationId = place.ids, limit = math.min(200, #place.ids)}) do
      by_id[s.locationId] = s
    end
    local stores = {}
    for _, id in ipairs(place.ids) do
      if by_id[id] then
        stores[#stores + 1] = by_id[id]
        if place.preferred then M.note(place, "kapi: at %s", M.preferred_store_named(by_id[id], place)) end
      elseif place.preferred then
        errors.input(("the preferred store %s (%s): no such store; kapi config set store ID changes it"):format(id, place.preferred), 0)
      else problems:add("--store " .. id, "no such store") end
    end
    return stores
  end
  if not (place.zip or place.latlong) then return {} end
  local radius = opts.radius or 100
  local stores = kroger:locations {zip = place.zip, latlong = place.latlong, radius = radius, limit = opts.limit or 5}
  if #stores == 0 then M.no_store(place, radius) end
  return stores
end

-- Values ------------------------------------------------------------------------

--- n when it is a number above 0, else nil: the Products API gives 0 for a
--- price a store does not have.
function M.positive(n)
  return type(n) == "number" and n > 0 and n or nil
end

--- An amount as dollars and cents ("$2.49"); nil for nil.
function M.money(n)
  errors.check(n, "number?", "recipe.money: amount")
  return n and ("$%.2f"):format(n)
end

-- Output (kapi.output does the rendering) -------------------------------------

M.color, M.width, M.paint = output.color, output.width, output.paint
M.render_table, M.render_json, M.render_csv = output.render_table, output.render_json, output.render_csv

--- The format the user asked for: "json", "csv" or "table".
function M.format(args)
  return args.json and "json" or args.jsonl and "jsonl" or args.csv and "csv" or "table"
end

--- Prints rows in the format args asks for. columns as for render_table;
--- JSON and CSV use keys (default: the columns' keys).
function M.print(args, rows, columns, keys)
  errors.check(args, "table", "recipe.print: args")
  errors.check(rows, "table", "recipe.print: rows")
  errors.check(columns, "table", "recipe.print: columns")
  errors.check(keys, "table?", "recipe.print: keys")
  for i, row in ipairs(rows) do errors.check(row, "table", ("recipe.print: rows[%d]"):format(i)) end
  for i, c in ipairs(columns) do
    errors.check(c, "table", ("recipe.print: columns[%d]"):format(i))
    errors.check(c.key, "string", ("recipe.print: columns[%d].key"):format(i))
  end
  local format = M.format(args)
  if not keys then
    keys = {}
    for i, c in ipairs(columns) do keys[i] = c.key end
  end
  if format == "json" then
    output.write_json(function(text) io.stdout:write(text) end, rows, keys)
  elseif format == "jsonl" then
    output.write_json(function(text) io.stdout:write(text) end, rows, keys, {lines = true})
  elseif format == "csv" then
    io.stdout:write(output.render_csv(rows, keys))
  elseif #rows > 0 then
    io.stdout:write(output.render_table(rows, columns, {width = output.width(1), color = output.color(1)}))
  end
  io.stdout:flush() -- before any note on stderr, also when both go to one file
end

-- The progress bar on the terminal now, if one is drawn: a line said on
-- stderr clears it first (the next step draws it again below), so a
-- problem met while the bar runs is never glued to its text.
local drawn_bar

local function clear_bar()
  if drawn_bar then drawn_bar:finish() end
end

local function say_line(...)
  clear_bar()
  io.stderr:write(...)
end

--- A note for people on stderr (never with --quiet, never mixed into the
--- JSON or CSV on stdout).
function M.note(args, fmt, ...)
  errors.check(args, "table", "recipe.note: args")
  errors.check(fmt, "string", "recipe.note: format")
  if args.quiet then return end
  say_line(fmt:format(...), "\n")
end

--- Says what follows the rows (a summary, a plan, what was done): talk,
--- so on stderr, after the rows, and not with --quiet; stdout carries the
--- rows alone, whatever the format.
function M.say(args, text)
  errors.check(args, "table", "recipe.say: args")
  errors.check(text, "string", "recipe.say: text")
  M.note(args, "%s", text)
end

doc.declare("kapi.recipe.say", M.say, [[
kapi.recipe.say(args, text)
Says what follows a recipe's rows (a summary, a plan, what was done) on
stderr, after the rows: stdout carries the rows alone, in every format,
and --quiet silences it.]])

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
  drawn_bar = self
end

--- Counts n more done; redraws at most ten times a second, and only once
--- the work has run for a second (short work shows nothing).
--- Who else hears of a run's progress (kapi mcp's progress
--- notifications): a function(done, total, label), or nil.
M.progress_listener = nil

function Progress:step(n)
  self.done = self.done + (n or 1)
  if M.progress_listener then M.progress_listener(self.done, self.total, self.label) end
  if not self.enabled then return end
  local now = core.now()
  if now - self.started >= 1 and now - (self.last or 0) >= 0.1 then self:draw() end
end

--- Clears the bar (the table printed next starts on a clean line).
function Progress:finish()
  if self.drawn then io.stderr:write("\r\27[K") end
  self.drawn = false
  if drawn_bar == self then drawn_bar = nil end
end

--- A progress bar on stderr: {label, unit, total}; silent when stderr is
--- not a terminal or with --quiet.
function M.progress(args, opts)
  errors.check(args, "table", "recipe.progress: args")
  opts = errors.check(opts, "table?", "recipe.progress: opts") or {}
  return setmetatable({label = opts.label or "working", unit = opts.unit or "items", total = opts.total,
                       done = 0, started = core.now(),
                       enabled = not args.quiet and core.isatty(2)}, Progress)
end

-- Input -------------------------------------------------------------------------

--- Parses --shard I/N: i, n (1 <= i <= n); nil when not given.
function M.parse_shard(text)
  if not text then return nil end
  errors.check(text, "string", "recipe.parse_shard: text")
  local i, n = text:match("^(%d+)/(%d+)$")
  i, n = tonumber(i), tonumber(n)
  if not i or n < 1 or i < 1 or i > n then
    errors.usage(("--shard %s: expected I/N with 1 <= I <= N, e.g. 1/4"):format(errors.excerpt(text)), 0)
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
  errors.check(args, "table", "recipe.shard: args")
  errors.check(list, "table", "recipe.shard: list")
  errors.check(key, "function?", "recipe.shard: key")
  local i, n = M.parse_shard(args.shard)
  if not i then return list end
  key = key or tostring
  local out = {}
  for _, entry in ipairs(list) do
    if stable_hash(tostring(key(entry))) % n == i - 1 then out[#out + 1] = entry end
  end
  return out
end

--- Makes one change at Kroger or 1WorldSync (never retried): "done" and
--- what fn returned; "failed" and the error, when the change was surely
--- not made (refused with a 4xx, or stopped before it was sent: no login,
--- a bad argument); or "unknown" and the error, when it may have been
--- made (Ctrl-C while it was in flight, an answer lost to a timeout or a
--- broken connection, a 5xx). After an interruption (recipe.interrupted)
--- the caller stops, shows what was done, then raises it: status 130.
function M.act(fn, ...)
  local ok, result = pcall(fn, ...)
  if ok then return "done", result end
  return M.may_have_happened(result) and "unknown" or "failed", result
end

--- Whether the change a call was making may have been made though it
--- raised err: see recipe.act.
function M.may_have_happened(err)
  if not errors.is(err) then return false end
  if err.kind == "interrupted" or err.kind == "cancelled" or err.kind == "timeout" then return true end
  if err.kind == "network" then return err.sent ~= false end
  return err.kind == "http" and (err.status or 0) >= 500
end

--- Whether err is the interruption (Ctrl-C) a run ends with, after
--- showing what was done.
function M.interrupted(err)
  return errors.is(err, "interrupted") or errors.is(err, "cancelled")
end

M.UNKNOWN = "the answer was lost (interrupted, timed out or cut off): it may or may not have been done; look before doing it again"
M.NOT_DONE = "not sent: the run stopped before it"

--- Makes the changes of a plan one at a time, in order (never retried,
--- never in parallel: each is a button pressed at Kroger or 1WorldSync):
--- change(row) for each row. Each row gets .outcome: "done" (.answer,
--- what change returned), "failed" or "unknown" (.error, why; see
--- recipe.act) or "not done" once the run has stopped: after Ctrl-C, or a
--- setup error (an expired login, a missing scope), which every other
--- change would meet too. Returns the error that stopped the run, to
--- raise with recipe.stopped once the rows are shown; nil when none did.
function M.apply(rows, change)
  errors.check(rows, "table", "recipe.apply: rows")
  errors.check(change, "function", "recipe.apply: change")
  local stop
  for _, row in ipairs(rows) do
    if stop then
      row.outcome, row.error = "not done", M.NOT_DONE
    else
      local outcome, result = M.act(change, row)
      row.outcome = outcome
      if outcome == "done" then row.answer = result
      else
        row.error = outcome == "unknown" and (M.UNKNOWN .. " (" .. errors.message(result) .. ")") or errors.message(result)
        if M.interrupted(result) then row.error = M.UNKNOWN end
        if M.interrupted(result) or errors.is_input(result) or result.fatal then stop = result end
      end
    end
  end
  return stop
end

--- Ends a run that recipe.apply stopped (call it after the rows are
--- shown): raises the interruption (status 130) or the setup error
--- (status 2, its one line); nothing when stop is nil.
function M.stopped(stop)
  if stop then error(stop, 0) end
end

--- list cut into lists of at most size entries, in order: the calls to
--- make when an API takes that many at once (filter.productId: 50).
function M.batches(list, size)
  errors.check(list, "table", "recipe.batches: list")
  if math.type(size) ~= "integer" or size < 1 then errors.usage("recipe.batches: size must be a whole number above 0", 2) end
  local out = {}
  for i = 1, #list, size do
    out[#out + 1] = table.move(list, i, math.min(#list, i + size - 1), 1, {})
  end
  return out
end

local Problems = {}
Problems.__index = Problems

check_problems = function(problems, who)
  if type(problems) ~= "table" or getmetatable(problems) ~= Problems then
    error(errors.new("usage", who .. ": problems must come from recipe.problems()"), 3)
  end
end

local function tell(problems, text)
  local line = errors.line(text)
  problems[#problems + 1] = line
  problems.report(line)
end

local function to_stderr(line) say_line("kapi: ", line, "\n") end

--- Records input that cannot be used (a bad entry, an unreadable file, an
--- id that names nothing) and names it on stderr at once: exit status 2.
local function record(problems, count, where, what, who)
  errors.check(where, "string", who .. ": where")
  errors.check(what, "string", who .. ": what")
  problems[count] = problems[count] + 1
  tell(problems, where .. ": " .. what)
end

function Problems:add(where, what) record(self, "inputs", where, what, "problems:add") end

--- Records work that failed on good input (an API call, an action) and
--- names it on stderr at once: exit status 1.
function Problems:fail(where, what) record(self, "failures", where, what, "problems:fail") end

--- Records an error value by its kind (input and usage errors as bad
--- input, anything else as failed work), its message after `where` when
--- given (an input error names its file itself).
function Problems:error(err, where)
  errors.check(where, "string?", "problems:error: where")
  -- A setup missing (no credentials, nobody logged in, an app without the
  -- scope) is no problem of one entry: the whole run stops, saying it once.
  if errors.is(err) and err.setup then error(err, 0) end
  -- Nor is a day's budget spent; but what was done before it is shown, so
  -- it is said once and counted as failed work, and the run goes on to
  -- print (each later call fails at once, without a request).
  if errors.is(err) and err.fatal then
    self.failures = self.failures + 1
    if not self.fatal_told then self.fatal_told = true; tell(self, errors.report_line(err, false)) end
    return
  end
  local message = errors.report_line(err, require("kapi.log").verbose)
  local text = where and (where .. ": " .. message) or message
  if errors.is_input(err) then self.inputs = self.inputs + 1 else self.failures = self.failures + 1 end
  tell(self, text)
end

--- A list of the problems of a run, each named on stderr as it is found
--- (or given to opts.report(line)) and counted for the exit status; the
--- good inputs are still processed.
function M.problems(opts)
  errors.check(opts, "table?", "recipe.problems: opts")
  return setmetatable({inputs = 0, failures = 0, report = opts and opts.report or to_stderr}, Problems)
end

--- The lines of a file ("-": standard input; a byte-order mark and CRLF
--- line ends are fine), or {} after naming in problems why it cannot be
--- read ("list.txt: No such file or directory").
function M.lines(path, problems)
  errors.check(path, "string", "recipe.lines: path")
  check_problems(problems, "recipe.lines")
  local ok, lines = pcall(input.lines, path)
  if ok then return lines end
  if not errors.is(lines, "input") then error(lines, 0) end
  problems:error(lines)
  return {}
end

--- paths, each given once: the same file (or "-", standard input) twice
--- would count its entries twice (in cart-add, twice the quantity), so it
--- is a usage error naming it ("--file list.txt given twice").
function M.distinct_files(paths, option)
  errors.check(paths, "table", "recipe.distinct_files: paths")
  errors.check(option, "string?", "recipe.distinct_files: option")
  local seen = {}
  for _, path in ipairs(paths) do
    errors.check(path, "string", "recipe.distinct_files: path")
    if seen[path] then
      M.usage("%s%s given twice: each file is read once", option and (option .. " ") or "",
              path == "-" and "- (standard input)" or input.name(path))
    end
    seen[path] = true
  end
  return paths
end

-- A header line names its columns: more letters than digits ("GTIN",
-- "Published GTIN", "upc,qty"). A code with a typo ("0001111001001O") is
-- an entry, and named as a bad one.
local function is_header(fields)
  local first = fields[1]
  local _, letters = first:gsub("%a", "")
  local _, digits = first:gsub("%d", "")
  return letters > digits
end

--- The entries of list files (kapi.input.entries: CSV rows, # comments,
--- a header skipped when its first field has more letters than digits), or {} after naming
--- in problems why the file cannot be read; a file with no entry at all
--- is named too ("list.txt: holds no GTIN", `what` saying what it should).
function M.entries(path, problems, what)
  errors.check(path, "string", "recipe.entries: path")
  check_problems(problems, "recipe.entries")
  errors.check(what, "string?", "recipe.entries: what")
  local ok, entries = pcall(input.entries, path, is_header)
  if not ok then
    if not errors.is(entries, "input") then error(entries, 0) end
    problems:error(entries)
    return {}
  end
  if #entries == 0 then problems:add(input.name(path), "holds no " .. (what or "entry")) end
  return entries
end

--- GTINs from the command line and from files (one per line, # comments,
--- the first field of a CSV row): normalised to GTIN-14, duplicates once,
--- order kept. A bad one is named in problems: "argument N" (or "OPTION N"
--- when option names where the values came from), or FILE:LINE.
function M.gtins(values, files, problems, option)
  errors.check(values, "table?", "recipe.gtins: values")
  errors.check(files, "table?", "recipe.gtins: files")
  check_problems(problems, "recipe.gtins")
  local out, seen = {}, {}
  -- The place of a problem is `where` and n ("argument 2", "list.txt:7"),
  -- made only for a problem: a file of GTINs may have a million lines.
  local function add(code, where, n)
    local g, why = gtin.as_gtin14(code)
    if not g then problems:add(where .. n, why); return end
    if not seen[g] then seen[g] = true; out[#out + 1] = g end
  end
  for i, value in ipairs(M.values(values)) do add(value, (option or "argument") .. " ", i) end
  for _, path in ipairs(M.distinct_files(files or {}, "--file")) do
    local where = input.name(path) .. ":"
    for _, entry in ipairs(M.entries(path, problems, "GTIN")) do
      local code = entry.fields[1]
      if code:find("%s") then
        problems:add(where .. entry.line, ("more than one value on the line (%s): one GTIN a line, or CSV with the "
                                           .. "GTIN first"):format(errors.excerpt(code)))
      else
        add(code, where, entry.line)
      end
    end
  end
  return out
end

--- Checks a GLN option's value (13 digits, GS1 check digit) before
--- anything is sent: a usage error naming the option when it is wrong.
function M.check_gln(option, value)
  if value == nil then return nil end
  local ok, why = gtin.valid_gln(value)
  if not ok then M.usage("%s: %s", option, why) end
  return value
end

--- The exit status of a run (docs/usage.md): 2 when some input could not
--- be used, else 1 when some work failed or `found` is true (a rule
--- error, a check that did not pass), else 0.
function M.status(problems, found)
  if problems ~= nil then check_problems(problems, "recipe.status") end
  if problems and problems.inputs > 0 then return 2 end
  if (problems and problems.failures > 0) or found then return 1 end
  return 0
end

doc.declare("kapi.recipe.problems", M.problems, [[
kapi.recipe.problems() -> problems
The problems of a run, each named on stderr ("kapi: WHERE: WHAT") as it is
found: problems:add(where, what) for input that cannot be used (exit 2),
problems:fail(where, what) for work that failed (exit 1),
problems:error(err, where) to let the error's kind decide. The good inputs
are still processed; kapi.recipe.status(problems, found) gives the exit
status of the contract (docs/usage.md).
Example:
  local problems = kapi.recipe.problems()
  if not ok then problems:add("argument 2", why) end
  return kapi.recipe.status(problems, #errors > 0)]])

doc.declare("kapi.recipe.status", M.status, [[
kapi.recipe.status(problems[, found]) -> 0 | 1 | 2
The exit status of a run: 2 when some input could not be used, else 1 when
some work failed or found is true (a rule error, a check not passed), else
0.]])

doc.declare("kapi.recipe.apply", M.apply, [[
kapi.recipe.apply(rows, change) -> stop
Makes a plan's changes one at a time, in order, never retried: change(row)
for each row. Each row gets .outcome: "done" (.answer: what change
returned), "failed" (surely not made: refused, or stopped before it was
sent), "unknown" (it may have been made: the answer was lost to Ctrl-C, a
timeout, a broken connection or a 5xx; .error says to look before doing
it again) or "not done" (the run stopped first: Ctrl-C, or a setup error
such as an expired login, which every other change would meet too).
Returns what stopped the run; show the rows, then kapi.recipe.stopped(stop).
Example:
  local stop = kapi.recipe.apply(rows, function(row) return kroger:clip_coupon(row.couponId) end)
  kapi.recipe.print(args, rows, columns)
  kapi.recipe.stopped(stop)]])

doc.declare("kapi.recipe.stopped", M.stopped, [[
kapi.recipe.stopped(stop)
Ends a run kapi.recipe.apply stopped: raises the interruption (exit 130) or
the setup error (exit 2, its one line); does nothing when stop is nil.]])

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

doc.declare("kapi.recipe.check_gln", M.check_gln, [[
kapi.recipe.check_gln(option, value) -> value
Checks a GLN given on the command line (13 digits, GS1 check digit) before
anything is sent; a wrong one is a usage error naming the option and the
digit. nil passes through.
Example:
  local gln = kapi.recipe.check_gln("--gln", args.gln)]])

doc.declare("kapi.recipe.progress", M.progress, [[
kapi.recipe.progress(args, {label, unit, total}) -> bar
A progress bar on stderr (count, rate, ETA), drawn only on a terminal, only
after a second of work, never with --quiet. bar:step(n), bar:finish().]])

doc.declare("kapi.recipe.shard", M.shard, [[
kapi.recipe.shard(args, list[, key]) -> list
The entries of list in shard args.shard ("I/N"), chosen by a stable hash of
key(entry): every machine given the same input agrees on the split.]])

doc.declare("kapi.recipe.usage", M.usage, [[
kapi.recipe.usage(fmt, ...)
Raises a usage error with the message fmt:format(...): the runner prints
"kapi: " and the message and exits 2. For a mistake on the command line,
found before anything is sent.
Example:
  if args.term and #args.term < 3 then kapi.recipe.usage("--term %q: give at least 3 characters", args.term) end]])

doc.declare("kapi.recipe.whole_number", M.whole_number, [[
kapi.recipe.whole_number(name, low, high) -> converter
An argparse :convert that takes a whole number from low to high; anything
else is a usage error that names the option and the range.
Example:
  parser:option("--limit", "At most N stores (1-200)", "10"):convert(kapi.recipe.whole_number("--limit", 1, 200))]])

doc.declare("kapi.recipe.values", M.values, [[
kapi.recipe.values(option) -> list
The values of a repeatable option (declared :count("*")) as one list,
however they were given: `--upc A --upc B` or `--upc A,B`.
Example:
  local upcs = kapi.recipe.values(args.upc)   -- {"A", "B"}]])

doc.declare("kapi.recipe.place_options", M.place_options, [[
kapi.recipe.place_options(parser[, {store = true}])
Adds the options that say where to an argparse parser: --zip ZIP, --near
LAT,LON, --lat and --lon, --radius MILES (1-100, default 10) and, with
store = true, --store ID ... (location ids). kapi.recipe.place checks them.
Example:
  arguments = function(parser) kapi.recipe.place_options(parser, {store = true}) end]])

doc.declare("kapi.recipe.place", M.place, [[
kapi.recipe.place(args[, {conflict = message, missing = message}]) -> place
The place the options ask for, checked before anything is sent:
{ids = {...}} (--store), {zip = "45202"}, {lat, lon, latlong =
"39.100000,-84.510000"} (--near, or --lat and --lon), or {}. A malformed
ZIP code, point or location id is a usage error that names it; so is more
than one place (conflict: the message) and, when missing is given, none.
Example:
  local place = kapi.recipe.place(args, {missing = "where? give --zip ZIP or --store ID"})]])

doc.declare("kapi.recipe.stores", M.stores, [[
kapi.recipe.stores(kroger, place, {radius, limit}, problems) -> stores
The stores of a place from kapi.recipe.place: the ones given, in their
order (an unknown one is named in problems as "--store ID: no such store"),
or the nearest to the ZIP code or point, nearest first: at most limit
(default 5) within radius miles (default 100). {} when there is no place.
Example:
  local stores = kapi.recipe.stores(kroger, place, {radius = args.radius, limit = 5}, problems)]])

doc.declare("kapi.recipe.batches", M.batches, [[
kapi.recipe.batches(list, size) -> {list, ...}
list cut into lists of at most size entries, in order: one call each when
an API takes that many at once (the Products API's filter.productId: 50).
Example:
  for _, ids in ipairs(kapi.recipe.batches(product_ids, 50)) do ... end]])

doc.declare("kapi.recipe.lines", M.lines, [[
kapi.recipe.lines(path, problems) -> {line, ...}
The lines of a file; {} when it cannot be read, after naming the file and
the reason in problems (the other inputs still go ahead).]])

doc.declare("kapi.recipe.money", M.money, [[
kapi.recipe.money(amount) -> text
An amount as dollars and cents, "$2.49"; nil for nil.]])

doc.declare("kapi.recipe.positive", M.positive, [[
kapi.recipe.positive(n) -> n or nil
n when it is a number above 0, else nil: the Products API gives 0 for a
price a store does not have.
Example:
  local promo = kapi.recipe.positive(item.price.promo)]])

return M
