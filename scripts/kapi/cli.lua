-- The command line. `kapi script.lua args` and the options of `lua` make
-- kapi a drop-in interpreter; `kapi COMMAND ...` runs one of the commands
-- in kapi/commands/. main() runs as the main task and returns the exit
-- status.
local core = require "kapi.core"
local errors = require "kapi.errors"
local paths = require "kapi.paths"
require "kapi.task" -- waiting inside coroutines works from the first line

local M = {}

--- Settings given on the command line that every layer may read.
M.options = require "kapi.log" -- .verbose: --verbose or KAPI_DEBUG

M.commands = {"run", "repl", "recipes", "auth", "sandbox", "test", "version", "help"}

local interpreter_usage = "Usage: kapi [options] [script [args]] | kapi COMMAND [args]"

function M.command(name)
  for _, command in ipairs(M.commands) do
    if command == name then return require("kapi.commands." .. name) end
  end
end

--- Prints an error the way every kapi command does: one line, plus the
--- traceback with --verbose or KAPI_DEBUG=1.
function M.report(err, traceback)
  if errors.is(err, "interrupted") then
    io.stderr:write("kapi: interrupted\n")
    return
  end
  io.stderr:write("kapi: ", errors.message(err), "\n")
  if M.options.verbose and traceback then io.stderr:write(traceback, "\n") end
end

--- Calls fn(...) and turns its outcome into an exit status: what fn
--- returned (an integer, or true/nil for 0 and false for 1), or the status
--- for the error it raised, after reporting it.
function M.protect(fn, ...)
  local traceback
  local function handler(e)
    traceback = debug.traceback(errors.message(e), 2)
    return e
  end
  local ok, result = xpcall(fn, handler, ...)
  if not ok then
    M.report(result, traceback)
    return errors.exit_code(result)
  end
  if math.type(result) == "integer" then return result end
  return result == false and 1 or 0
end

--- A usage error: prints what was wrong and the usage line; status 2.
function M.usage_error(message, usage)
  io.stderr:write("kapi: ", message, "\n", usage or interpreter_usage, "\n")
  return 2
end

function M.version_line()
  return ("kapi %s (%s)"):format(core.version, core.lua_version)
end

-- The interpreter ------------------------------------------------------------

local function load_script(name)
  if name == "-" then
    return load(io.stdin:read("a"):gsub("^#![^\n]*", ""), "=stdin")
  end
  local f = io.open(name, "r")
  if not f then return nil, "cannot open " .. name .. " (no such file)" end
  f:close()
  return loadfile(name)
end

--- Runs a script file (or "-" for standard input) with args, as `lua` does.
function M.run_script(name, args)
  local chunk, err = load_script(name)
  if not chunk then
    io.stderr:write("kapi: ", err, "\n")
    return 1
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
      return nil, ("unrecognized option '%s'"):format(a)
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
        io.stderr:write("kapi: ", err, "\n")
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

local function interpret(argv)
  local run, err = parse_interpreter_args(argv)
  if not run then return M.usage_error(err) end
  if run.help then return M.command("help").run({}) end
  if run.warnings then warn("@on") end
  if run.version then print(M.version_line()) end
  _G.arg = make_arg(argv, run.script_index)
  local status = run_actions(run)
  if status ~= 0 then return status end
  if run.script_index then
    local args = table.move(argv, run.script_index + 1, #argv, 1, {})
    status = M.run_script(argv[run.script_index], args)
    if status ~= 0 or not run.interactive then return status end
  elseif #run.actions > 0 or run.version then
    if not run.interactive then return 0 end
  elseif not core.isatty(0) then
    return M.run_script("-", {})
  end
  return require("kapi.repl").run{banner = not run.version}
end

-- Commands -------------------------------------------------------------------

--- Parses args for a command with lua-argparse; on a usage error prints
--- it with the usage line and returns nil, 2.
function M.parse(parser, args)
  local ok, result = parser:pparse(args)
  if ok then return result end
  return nil, M.usage_error(result, parser:get_usage())
end

--- An argparse parser for `kapi NAME`, with kapi's help conventions.
function M.parser(name, summary, description)
  local argparse = require "argparse"
  return argparse(name, summary, description)
end

local function run_command(command, name, args)
  if command.raw then return command.run(args) end
  local parser = M.parser("kapi " .. name, command.summary, command.description)
  if command.arguments then command.arguments(parser) end
  local parsed, status = M.parse(parser, args)
  if not parsed then return status end
  return command.run(parsed)
end

function M.main(argv)
  paths.install_module_path()
  local first = 1
  while argv[first] == "--verbose" do
    M.options.verbose = true
    first = first + 1
  end
  local command = argv[first] and M.command(argv[first])
  if not command then return interpret(argv) end
  local args = table.move(argv, first + 1, #argv, 1, {})
  return M.protect(run_command, command, argv[first], args)
end

return M
