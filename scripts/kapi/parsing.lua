-- Parsing a command's arguments with lua-argparse, kapi's way: values
-- named alike in every --help (--file FILE), negative numbers taken as
-- values, an option that takes one value per use, usage errors on one line
-- with the usage of the (sub)command that failed, suggestions for what was
-- mistyped, converters that name the option, and a description of each
-- parser for what is derived from it (tests, completions, manual pages).
-- Loaded only when a command runs: `kapi script.lua` never needs it.
local core = require "kapi.core"
local errors = require "kapi.errors"
local cli = require "kapi.cli"

local M = {}

-- Suggestions -------------------------------------------------------------------

-- Edits (insert, delete, replace, swap two neighbours) from a to b.
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = {[0] = i} end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      d[i][j] = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        d[i][j] = math.min(d[i][j], d[i - 2][j - 2] + 1)
      end
    end
  end
  return d[#a][#b]
end

--- The candidate closest to word, when it is close enough to be what was
--- meant (a typo: at most 2 edits, fewer for short words); else nil. The
--- word itself is never suggested: it was refused as it is.
function M.suggest(word, candidates)
  if #word > 40 or #word:gsub("^%-+", "") < 2 then return nil end -- "-x" is no typo of "-e"
  local best, best_distance
  for _, candidate in ipairs(candidates) do
    local d = candidate ~= word and distance(word:lower(), candidate:lower())
    if d and d <= math.min(2, #candidate // 3 + 1) and (not best_distance or d < best_distance) then
      best, best_distance = candidate, d
    end
  end
  return best
end

--- " (did you mean 'x'?)" for the candidate closest to word, or "".
function M.did_you_mean(word, candidates)
  local guess = M.suggest(word, candidates)
  return guess and (" (did you mean '%s'?)"):format(guess) or ""
end

-- Parsing with lua-argparse -------------------------------------------------------
--
-- A few of lua-argparse's fields are read and set here, in one place: the
-- option list (to spell argument names alike and to take "-1" as a value)
-- and the parser that was parsing when an error came (to show that
-- subcommand's usage). Debian's lua-argparse 0.7.1 is the version used.

-- Every option and argument a parser and its subcommands declare.
local function elements(parser, out)
  out = out or {}
  for _, option in ipairs(parser._options or {}) do out[#out + 1] = option end
  for _, argument in ipairs(parser._arguments or {}) do out[#out + 1] = argument end
  for _, command in ipairs(parser._commands or {}) do elements(command, out) end
  return out
end

--- Gives a parser kapi's help conventions, once its options are declared:
--- values named in capitals (--file FILE, --shard SHARD) and help fitted
--- to the terminal.
function M.finish_parser(parser)
  for _, element in ipairs(elements(parser)) do
    if not element._argname and not element._choices and (element._maxargs or 0) > 0 then
      local name = (element._name or ""):match("^%-*(.-)$")
      if not name:find("%s") then element._argname = name:upper():gsub("[^%w]", "_") end
    end
    -- An option that takes one value, given twice, is a mistake to say, not
    -- a value to drop (argparse would keep the last).
    if (element._maxargs or 0) > 0 and (element._maxcount or 1) == 1 then element._overwrite = false end
  end
  local width = core.isatty(1) and core.terminal_size(1) or 80
  parser:help_max_width(math.max(60, math.min(width, 100)))
  return parser
end

-- Option names a parser knows, each with whether it takes a value.
local function option_names(parser)
  local names = {}
  for _, element in ipairs(elements(parser)) do
    for _, alias in ipairs(element._aliases or {}) do
      if alias:sub(1, 1) == "-" then names[alias] = (element._maxargs or 0) > 0 end
    end
  end
  return names
end

-- Whether arg names an option of the parser (--name, --name=value, -x).
local function is_option(names, arg)
  return names[arg] ~= nil or names[arg:match("^(%-%-[^=]+)=") or ""] ~= nil
end

-- args with a value that starts with "-" joined to the option before it,
-- which takes a value ("--lon", "-84.5" -> "--lon=-84.5"; "--reason",
-- "-fixed WERCS"), as getopt reads them: lua-argparse would take the value
-- for an option. A word that is itself an option stays one, so that
-- `--file --json` still says --file lacks its value.
local function join_dash_values(parser, args)
  local names, out = option_names(parser), {}
  local taking = false -- the last word is an option waiting for its value
  for i, arg in ipairs(args) do
    if arg == "--" then return table.move(args, i, #args, #out + 1, out) end
    if taking and arg:sub(1, 1) == "-" and #arg > 1 and not is_option(names, arg) then
      local previous = out[#out]
      out[#out] = previous .. (previous:sub(1, 2) == "--" and "=" or "") .. arg
      taking = false
    else
      out[#out + 1] = arg
      taking = names[arg] == true
    end
  end
  return out
end

-- Every option a parse gave a value of "" (or only spaces, or a list
-- with an empty part), by its name: such a value is never what was meant
-- (--upc "" would otherwise mean no --upc at all).
local function empty_value(parser, result)
  local own = {}
  for _, option in ipairs(parser._options or {}) do own[#own + 1] = option end
  for _, argument in ipairs(parser._arguments or {}) do own[#own + 1] = argument end
  for _, element in ipairs(own) do
    local option = element._aliases and element._aliases[1] and element._aliases[1]:sub(1, 1) == "-"
    if (element._maxargs or 0) > 0 then
      local value = result[element._target or (option and element:_get_default_target()) or element._name]
      local values = type(value) == "table" and value or {value}
      -- Only what takes several values is a list (A,B); a single value
      -- (--term, --reason) is text, commas and all.
      local list = (option and (element._maxcount or 1) > 1) or (not option and (element._maxargs or 1) > 1)
      for i, v in ipairs(values) do
        for _, part in ipairs(type(v) == "table" and v or {v}) do
          if type(part) == "string" and (not part:find("%S") or list and (part:find("^%s*,") or part:find(",%s*,")
                                         or part:find(",%s*$"))) then
            return option and element._aliases[#element._aliases] or ("argument %d"):format(i), part, parser
          end
        end
      end
    end
  end
  -- Then the subcommand that was chosen: the error shows its usage.
  for _, command in ipairs(parser._commands or {}) do
    local name = command._name
    if result[name] == true or (parser._command_target and result[parser._command_target] == name) then
      return empty_value(command, result)
    end
  end
end

-- lua-argparse's message, on one line: "unknown option '--bogus' (did you
-- mean '--brand'?)".
local function one_line(message)
  message = message:gsub("^option '(.-)' must be used at most 1 time$", "%1 given more than once: it takes one value")
  message = message:gsub("^option '(.-)' must be used 1 time$", "%1 given more than once: it takes one value")
  message = message:gsub("\nDid you mean one of these: ([^\n]-)%?$", " (did you mean one of %1?)")
  return (message:gsub("\nDid you mean ([^\n]-)%?$", " (did you mean %1?)"):gsub("\n", " "))
end

-- For "too many arguments": the first word that is neither an option nor
-- an option's value, and the option whose value came just before it.
local function stray_argument(parser, args)
  local names, i, after = option_names(parser), 1, nil
  while i <= #args do
    local a = args[i]
    if a == "--" then return args[i + 1], nil end
    if a:sub(1, 1) == "-" and #a > 1 then
      after = nil
      if names[a] then after, i = a, i + 1 end
    else
      return a, after
    end
    i = i + 1
  end
end

local function too_many(parser, args)
  local word, after = stray_argument(parser, args)
  if not word then return "too many arguments" end
  local hint = after and (" (%s takes one value: repeat it, or give the values as A,B)"):format(after) or ""
  return ("unexpected argument '%s'%s"):format(errors.excerpt(word), hint)
end

--- Parses args for a command with lua-argparse; on a usage error prints
--- it on one line with the usage of the (sub)command that was parsing, and
--- returns nil, 2.
-- An option word too long to be a typo of any option: argparse would spend
-- seconds measuring its distance to each (15 s for one of 90,000
-- characters) and quote it whole; it is refused here, cut.
local LONGEST_OPTION = 100

local function overlong_option(parser, args)
  local names, value_next = option_names(parser), false
  for _, a in ipairs(args) do
    if a == "--" then return nil end
    if not value_next and #a > LONGEST_OPTION and a:sub(1, 1) == "-" and names[a:match("^[^=]*")] == nil then
      return a
    end
    value_next = names[a] == true
  end
end

function M.parse(parser, args)
  args = join_dash_values(parser, args)
  local overlong = overlong_option(parser, args)
  if overlong then
    return nil, cli.usage_error(("unknown option '%s'"):format(errors.excerpt(overlong:match("^[^=]*"))),
                                parser:get_usage())
  end
  local failed_in, message
  local ok, result = xpcall(function()
    return parser:_parse(args, function(p, err)
      failed_in, message = p, err
      error(err, 0)
    end)
  end, debug.traceback)
  if ok then
    local empty, value, owner = empty_value(parser, result)
    if not empty then return result end
    local what = value:find("%S") and ("%s %s: a list with an empty value"):format(empty, errors.excerpt(value))
                 or (empty .. ": an empty value")
    return nil, cli.usage_error(what, owner:get_usage())
  end
  if not message then error(result, 0) end
  if message == "too many arguments" then message = too_many(failed_in or parser, args) end
  message = message:gsub("^missing option '(.-)'$", "%1 is required")
  local short = message:match("^unknown option '(%-[^-'])'")
  -- argparse reads -0001... as the short option -0: name the word typed.
  if short then
    local unknown = short
    for _, a in ipairs(args) do
      if a:sub(1, 2) == unknown and #a > 2 and a:match("^%-%d") then
        return nil, cli.usage_error(("unknown option '%s' (a value that starts with '-' goes after --)")
                                    :format(errors.excerpt(a)), (failed_in or parser):get_usage())
      end
    end
  end
  local unknown = message:match("^unknown option '(.-)'$")
  if unknown then -- argparse found nothing close; the global options count too
    local names = {"--verbose"}
    for name in pairs(option_names(failed_in or parser)) do names[#names + 1] = name end
    table.sort(names)
    message = message .. M.did_you_mean(unknown:match("^[^=]*"), names)
  end
  return nil, cli.usage_error(one_line(message), (failed_in or parser):get_usage())
end

--- An argparse :convert for a whole number from low to high; the message
--- names the option: "--port 99999: expected a whole number from 0 to 65535".
function M.whole_number(name, low, high)
  errors.check(name, "string", "whole_number: name")
  if not math.tointeger(low) or not math.tointeger(high) or low > high then
    errors.usage("whole_number: low and high must be whole numbers, low <= high", 2)
  end
  return function(text)
    local n = text:match("^%s*[-+]?%d+%s*$") and math.tointeger(tonumber(text))
    if not n or n < low or n > high then
      return nil, ("%s %s: expected a whole number from %d to %d"):format(name, errors.excerpt(text), low, high)
    end
    return n
  end
end

-- The forms of a decimal, each its own pattern: one "%d+%.?%d*" tried
-- every split of a run of digits between %d+ and %d* when the text did
-- not end there (20,000 digits and an "x" took 7 s).
local DECIMALS = {"^%s*[-+]?%d+%s*$", "^%s*[-+]?%d+%.%d*%s*$", "^%s*[-+]?%.%d+%s*$"}

--- A number as people write it in decimal ("39.10", "-84.5", ".5"); nil
--- for anything else (Lua's tonumber would also take 0x27 and 1e1).
function M.decimal(text)
  if type(text) ~= "string" then return nil end
  for _, form in ipairs(DECIMALS) do
    if text:match(form) then return tonumber(text) end
  end
end

--- An argparse :convert for a number (fractions allowed) from low to high.
function M.number(name, low, high)
  return function(text)
    local n = M.decimal(text)
    if not n or n ~= n or n < low or n > high then
      return nil, ("%s %s: expected a number from %s to %s"):format(name, errors.excerpt(text), low, high)
    end
    return n
  end
end

--- An argparse parser for `kapi NAME`, with kapi's help conventions
--- (M.finish_parser once its options are declared).
function M.parser(name, summary, description)
  local argparse = require "argparse"
  return argparse(name, summary, description)
end

--- The parser of `kapi NAME` (a command that parses its own arguments;
--- nil for the raw ones, run and test, which pass them on).
function M.command_parser(name)
  local command = cli.command(name)
  if not command or command.raw then return nil end
  local parser = M.parser("kapi " .. name, command.summary, command.description)
  if command.arguments then command.arguments(parser) end
  return M.finish_parser(parser)
end

local function describe_option(option)
  local names = {}
  for _, alias in ipairs(option._aliases or {}) do names[#names + 1] = alias end
  local argname = option._argname
  return {
    names = names, help = option._description, argname = type(argname) == "string" and argname or nil,
    takes_value = (option._maxargs or 0) > 0, value_optional = (option._maxargs or 0) > 0 and option._minargs == 0,
    repeatable = (option._maxcount or 1) > 1,
    required = (option._mincount or 0) > 0, checked = option._convert ~= nil,
    choices = option._choices, default = option._default, hidden = option._hidden or nil,
  }
end

--- What a parser accepts, for whatever is derived from it rather than
--- written twice (the contract test, completions, manual pages, tool
--- schemas): {name, summary (the one line of kapi help and kapi recipes),
--- description (the longer text under the options of --help, or nil),
--- options = {{names, help, argname, takes_value, value_optional (--watch
--- or --watch=15m), repeatable, required, checked (its value is
--- converted, so a wrong one is refused), choices, default, hidden (left
--- out of --help: a helper for kapi's own use)}}, arguments = {{name,
--- help, argname, choices, min, max}} (max = math.huge: any number),
--- commands = {descriptions of its subcommands}}.
-- A parser made by M.parser holds the summary as argparse's description
-- and the description as its epilog; a subcommand has only a description.
function M.describe(parser)
  local out = {name = parser._name, summary = parser._summary or parser._description,
               description = parser._epilog, options = {}, arguments = {}, commands = {}}
  for _, option in ipairs(parser._options or {}) do out.options[#out.options + 1] = describe_option(option) end
  for _, argument in ipairs(parser._arguments or {}) do
    out.arguments[#out.arguments + 1] = {name = argument._name, help = argument._description,
      argname = type(argument._argname) == "string" and argument._argname or nil, choices = argument._choices,
      min = argument._minargs or 1, max = argument._maxargs or 1}
  end
  for _, command in ipairs(parser._commands or {}) do out.commands[#out.commands + 1] = M.describe(command) end
  return out
end

return M
