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

M.commands = {"run", "repl", "recipes", "api", "mcp", "auth", "config", "sandbox", "test", "version", "completion", "help"}

local interpreter_usage = "Usage: kapi [options] [script [args]] | kapi COMMAND [args]"

function M.command(name)
  for _, command in ipairs(M.commands) do
    if command == name then return require("kapi.commands." .. name) end
  end
end

-- Errors ----------------------------------------------------------------------

-- The Lua module of kapi's tree whose code was running when the error
-- being handled was raised, for an error that carries no position (a C
-- function failing under kapi's code, as ipairs on nil); nil when `error`
-- raised it on purpose. Called from the message handler, where level 3 is
-- what raised.
local function running_module()
  local raiser = debug.getinfo(3, "f")
  if not raiser or raiser.func == error then return nil end
  for level = 3, 60 do
    local info = debug.getinfo(level, "S")
    if not info then return nil end
    if info.what ~= "C" then return (errors.position_in_tree(info.source:sub(2) .. ":1: ")) end
  end
end

--- The line that reports err (errors.report_line): a bug inside kapi as
--- "internal error in MODULE"; the details only with --verbose.
function M.error_line(err, module)
  return errors.report_line(err, M.options.verbose, module)
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
    if type(e) == "string" and not e:match("^[^\n]-:%d+: ") then module = running_module() end
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

local function run_command(command, name, args)
  if command.raw then return command.run(args) end
  local parsing = require "kapi.parsing"
  local parsed, status = parsing.parse(parsing.command_parser(name), args)
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
  local ok, value = pcall(require, module)
  if not ok and type(value) == "string" and value:find("^module '.-' not found") then
    errors.usage(("-l %s: no module named %s (looked in KAPI_PATH, ./ and kapi's own tree)")
                 :format(errors.excerpt(spec), errors.excerpt(module)), 0)
  elseif not ok then
    error(value, 0)
  end
  _G[global] = value
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
      local guess = require("kapi.parsing").did_you_mean(a, {"-e", "-l", "-i", "-v", "-W", "-h", "--help", "--version",
                                                              "--verbose"})
      return nil, ("unrecognized option '%s'%s"):format(errors.excerpt(a), guess)
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
  if M.command(name) then -- after -e, -l or -i, where a script goes
    return ("'%s' is a command: give it first (kapi %s ...); -e, -l and -i go with a script"):format(name, name)
  end
  local f = io.open(name, "rb")
  if f then f:close(); return nil end -- there, but unreadable: run_script says why
  return ("no command or script named '%s'%s (kapi help lists the commands)")
         :format(errors.excerpt(name), require("kapi.parsing").did_you_mean(name, M.commands))
end

-- The global kapi, as in the REPL, for scripts and -e code that use it
-- without a require; loaded when first used, so that a script that does
-- not starts as fast as before. A metatable _G already has is left alone.
local function lazy_kapi_global()
  if getmetatable(_G) ~= nil then return end
  setmetatable(_G, {__index = function(globals, name)
    if name ~= "kapi" then return nil end
    setmetatable(globals, nil)
    local kapi = require "kapi"
    rawset(globals, "kapi", kapi)
    return kapi
  end})
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
  lazy_kapi_global()
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
  local limits = package.loaded["kapi.limits"]
  if limits then limits.flush_all() end -- the calls this process made, counted for the next
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
