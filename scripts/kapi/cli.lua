-- The command line. `kapi script.lua args` and the options of `lua` make
-- kapi a drop-in interpreter; `kapi COMMAND ...` runs one of the commands
-- in kapi/commands/. main() runs as the main task and returns the exit
-- status. Every command keeps one contract (docs/usage.md): stdout is
-- data, stderr is talk; 0 done, 1 something found or failed, 2 usage or
-- input error, 130 interrupted; one line per error, never kapi's own Lua
-- internals unless --verbose asks for them.
local core = require "kapi.core"
local errors = require "kapi.errors"
local paths = require "kapi.paths"
local log = require "kapi.log"
require "kapi.task" -- waiting inside coroutines works from the first line

local M = {}

--- Settings given on the command line that every layer may read
--- (.verbose: --verbose or KAPI_DEBUG; .quiet: a recipe's --quiet).
M.options = log

M.commands = {"run", "repl", "recipes", "auth", "sandbox", "test", "version", "help"}

local interpreter_usage = "Usage: kapi [options] [script [args]] | kapi COMMAND [args]"

function M.command(name)
  for _, command in ipairs(M.commands) do
    if command == name then return require("kapi.commands." .. name) end
  end
end

-- Errors ----------------------------------------------------------------------

-- Where the error being handled was raised, for one that carries no
-- position: the module of kapi's tree whose code ran into it (a C
-- function failing under it, as ipairs on nil), or nil when `error` raised
-- it on purpose or the code was the user's. Called from the message
-- handler, where level 3 is what raised.
local function raised_in_tree()
  local raiser = debug.getinfo(3, "f")
  if not raiser or raiser.func == error then return nil end
  for level = 3, 60 do
    local info = debug.getinfo(level, "S")
    if not info then return nil end
    if info.what ~= "C" then
      return errors.internal_module(info.source:sub(2) .. ":1:")
    end
  end
end

--- The line that reports err: its message, or, for a failure inside
--- kapi's own code (a bug, whose Lua message means nothing to a user),
--- what happened and how to see the details.
function M.error_line(err, module)
  if module and not M.options.verbose and not errors.is(err) then
    return errors.line(errors.internal_message(module))
  end
  return errors.report_line(err, M.options.verbose)
end

--- Prints an error the way every kapi command does: one line, plus the
--- traceback with --verbose or KAPI_DEBUG=1.
function M.report(err, traceback, module)
  if errors.is(err, "interrupted") then
    io.stderr:write("kapi: interrupted\n")
    return
  end
  io.stderr:write("kapi: ", M.error_line(err, module), "\n")
  if M.options.verbose and traceback then io.stderr:write(traceback, "\n") end
end

--- Calls fn(...) and turns its outcome into an exit status: what fn
--- returned (an integer, or true/nil for 0 and false for 1), or the status
--- for the error it raised, after reporting it.
function M.protect(fn, ...)
  local traceback, module
  local function handler(e)
    traceback = debug.traceback("", 2):gsub("^\n", "")
    if type(e) == "string" and not e:match("^[^\n]-:%d+: ") then module = raised_in_tree() end
    return e
  end
  local ok, result = xpcall(fn, handler, ...)
  if not ok then
    M.report(result, traceback, module)
    return errors.exit_code(result)
  end
  if math.type(result) == "integer" then return result end
  return result == false and 1 or 0
end

--- A usage error: prints what was wrong on one line, then the usage of the
--- command; status 2.
function M.usage_error(message, usage)
  io.stderr:write("kapi: ", errors.line(message), "\n", usage or interpreter_usage, "\n")
  return 2
end

function M.version_line()
  return ("kapi %s (%s)"):format(core.version, core.lua_version)
end

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
--- meant (a typo: at most 2 edits, fewer for short words); else nil.
function M.suggest(word, candidates)
  if #word > 40 then return nil end
  local best, best_distance
  for _, candidate in ipairs(candidates) do
    local d = distance(word:lower(), candidate:lower())
    if d <= math.min(2, #candidate // 3 + 1) and (not best_distance or d < best_distance) then
      best, best_distance = candidate, d
    end
  end
  return best
end

local function did_you_mean(word, candidates)
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

-- args with a negative number after an option that takes a value joined
-- to it ("--lon", "-84.5" -> "--lon=-84.5"): lua-argparse would read
-- "-84.5" as an unknown option.
local function join_negative_numbers(parser, args)
  local names, out = option_names(parser), {}
  for i, arg in ipairs(args) do
    if arg == "--" then return table.move(args, i, #args, #out + 1, out) end
    local previous = out[#out]
    if arg:match("^%-%.?%d") and names[arg] == nil and previous and names[previous] then
      out[#out] = previous .. (previous:sub(1, 2) == "--" and "=" or "") .. arg
    else
      out[#out + 1] = arg
    end
  end
  return out
end

-- lua-argparse's message, on one line: "unknown option '--bogus' (did you
-- mean '--brand'?)".
local function one_line(message)
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
function M.parse(parser, args)
  args = join_negative_numbers(parser, args)
  local failed_in, message
  local ok, result = xpcall(function()
    return parser:_parse(args, function(p, err)
      failed_in, message = p, err
      error(err, 0)
    end)
  end, debug.traceback)
  if ok then return result end
  if not message then error(result, 0) end
  if message == "too many arguments" then message = too_many(failed_in or parser, args) end
  return nil, M.usage_error(one_line(message), (failed_in or parser):get_usage())
end

--- An argparse :convert for a whole number from low to high; the message
--- names the option: "--port 99999: expected a whole number from 0 to 65535".
function M.whole_number(name, low, high)
  return function(text)
    local n = math.tointeger(tonumber(text))
    if not n or n < low or n > high then
      return nil, ("%s %s: expected a whole number from %d to %d"):format(name, errors.excerpt(text), low, high)
    end
    return n
  end
end

--- An argparse :convert for a number (fractions allowed) from low to high.
function M.number(name, low, high)
  return function(text)
    local n = tonumber(text)
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
  local command = M.command(name)
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
    takes_value = (option._maxargs or 0) > 0, repeatable = (option._maxcount or 1) > 1,
    required = (option._mincount or 0) > 0, checked = option._convert ~= nil,
    choices = option._choices, default = option._default,
  }
end

--- What a parser accepts, for whatever is derived from it rather than
--- written twice (the contract test, completions, manual pages, tool
--- schemas): {name, summary, description, options = {{names, help,
--- argname, takes_value, repeatable, required, checked (its value is
--- converted, so a wrong one is refused), choices, default}}, arguments =
--- {{name, help, argname, min, max}} (max = math.huge: any number),
--- commands = {descriptions of its subcommands}}.
function M.describe(parser)
  local out = {name = parser._name, summary = parser._summary, description = parser._description,
               options = {}, arguments = {}, commands = {}}
  for _, option in ipairs(parser._options or {}) do out.options[#out.options + 1] = describe_option(option) end
  for _, argument in ipairs(parser._arguments or {}) do
    out.arguments[#out.arguments + 1] = {name = argument._name, help = argument._description,
      argname = type(argument._argname) == "string" and argument._argname or nil,
      min = argument._minargs or 1, max = argument._maxargs or 1}
  end
  for _, command in ipairs(parser._commands or {}) do out.commands[#out.commands + 1] = M.describe(command) end
  return out
end

local function run_command(command, name, args)
  if command.raw then return command.run(args) end
  local parsed, status = M.parse(M.command_parser(name), args)
  if not parsed then return status end
  return command.run(parsed)
end

-- The interpreter ------------------------------------------------------------

local function load_script(name)
  if name == "-" then
    return load(io.stdin:read("a"):gsub("^#![^\n]*", ""), "=stdin")
  end
  local why = require("kapi.input").unreadable(name)
  if why then return nil, errors.new("input", ("cannot open %s (%s)"):format(errors.excerpt(name, 120), why)) end
  return loadfile(name)
end

--- Runs a script file (or "-" for standard input) with args, as `lua` does.
function M.run_script(name, args)
  local chunk, err = load_script(name)
  if not chunk then
    io.stderr:write("kapi: ", errors.line(errors.message(err)), "\n")
    return errors.is(err, "input") and 2 or 1
  end
  return M.protect(function(...) chunk(...) end, table.unpack(args, 1, args.n or #args))
end

local function require_global(spec)
  local global, module = spec:match("^([^=]+)=(.+)$")
  global, module = global or spec, module or spec
  _G[global] = require(module)
end

-- Collects the options of `lua`: -e, -l, -i, -v, -W, -, --.
local function parse_interpreter_args(argv)
  local run = {actions = {}}
  local i = 1
  while argv[i] do
    local a = argv[i]
    if a == "--" then i = i + 1; break
    elseif a == "-" or a:sub(1, 1) ~= "-" then break
    elseif a == "-i" then run.interactive = true
    elseif a == "-v" or a == "--version" then run.version = true
    elseif a == "-W" then run.warnings = true
    elseif a == "-h" or a == "--help" then run.help = true
    elseif a == "--verbose" then M.options.verbose = true
    elseif a:match("^%-[el]") then
      local value = a:sub(3)
      if value == "" then i = i + 1; value = argv[i] end
      if not value then return nil, ("option '%s' needs an argument"):format(a) end
      table.insert(run.actions, {a:sub(2, 2), value})
    else
      return nil, ("unrecognized option '%s'"):format(errors.excerpt(a))
    end
    i = i + 1
  end
  run.script_index = argv[i] and i or nil
  return run
end

-- The global `arg`, laid out as lua lays it out.
local function make_arg(argv, script_index)
  local arg, base = {}, script_index or 0
  for i = 0, #argv do arg[i - base] = argv[i] end
  return arg
end

local function run_actions(run)
  for _, action in ipairs(run.actions) do
    local kind, value = action[1], action[2]
    local status
    if kind == "e" then
      local chunk, err = load(value, "=(command line)")
      if not chunk then
        io.stderr:write("kapi: ", errors.line(err), "\n")
        return 1
      end
      status = M.protect(chunk)
    else
      status = M.protect(require_global, value)
    end
    if status ~= 0 then return status end
  end
  return 0
end

-- A first word that is neither a command nor a file: a mistyped command,
-- or a recipe's name where `kapi run` was meant. nil when it is a file.
local function not_a_script(name)
  if name == "-" or name:find("/", 1, true) or name:match("%.lua$") or io.open(name, "r") then return nil end
  if require("kapi.recipes").find(name) then
    return ("'%s' is a recipe: run it with kapi run %s"):format(name, name)
  end
  local f = io.open(name, "rb")
  if f then f:close(); return nil end -- there, but unreadable: run_script says why
  return ("no command or script named '%s'%s (kapi help lists the commands)")
         :format(errors.excerpt(name), did_you_mean(name, M.commands))
end

local function interpret(argv)
  local run, err = parse_interpreter_args(argv)
  if not run then return M.usage_error(err) end
  if run.help then return M.command("help").run({}) end
  if run.script_index then
    local wrong = not_a_script(argv[run.script_index])
    if wrong then return M.usage_error(wrong) end
  end
  if run.warnings then warn("@on") end
  if run.version then print(M.version_line()) end
  _G.arg = make_arg(argv, run.script_index)
  _G.kapi = require "kapi" -- as in the REPL: scripts and -e code may use it without a require
  local status = run_actions(run)
  if status ~= 0 then return status end
  if run.script_index then
    local args = table.move(argv, run.script_index + 1, #argv, 1, {})
    status = M.run_script(argv[run.script_index], args)
    if status ~= 0 or not run.interactive then return status end
  elseif (#run.actions > 0 or run.version) and not run.interactive then
    return 0
  elseif not run.interactive and not core.isatty(0) then
    return M.run_script("-", {})
  end
  return require("kapi.repl").run{banner = not run.version}
end

-- Commands -------------------------------------------------------------------

-- The words of a command line with the global options taken out: every
-- --verbose before a "--" turns on verbose output, wherever it stands.
local function take_global_options(args)
  local out, passthrough = {}, false
  for _, a in ipairs(args) do
    if a == "--" then passthrough = true end
    if a == "--verbose" and not passthrough then M.options.verbose = true else out[#out + 1] = a end
  end
  return out
end

-- Whatever this process started for its own use (the built-in sandbox)
-- ends with the main task, before its tasks are counted as left running.
local function close_process_resources()
  local config = package.loaded["kapi.config"]
  if config then config.close() end
end

local function main(argv)
  paths.install_module_path()
  local first = 1
  while argv[first] == "--verbose" do
    M.options.verbose = true
    first = first + 1
  end
  local command = argv[first] and M.command(argv[first])
  if not command then return interpret(argv) end
  local args = table.move(argv, first + 1, #argv, 1, {})
  if not command.raw or argv[first] == "run" then args = take_global_options(args) end
  return M.protect(run_command, command, argv[first], args)
end

function M.main(argv)
  local ok, status = pcall(main, argv)
  close_process_resources()
  if not ok then error(status, 0) end
  return status
end

return M
