-- The REPL: reads chunks (continuing while one is incomplete, as lua
-- does), runs each as a task that Ctrl-C interrupts, prints results with
-- kapi.pretty, completes names on Tab, keeps history.
local core = require "kapi.core"
local errors = require "kapi.errors"
local paths = require "kapi.paths"
local pretty = require "kapi.pretty"
local doc = require "kapi.doc"
local log = require "kapi.log"

local M = {}

local PROMPT, CONTINUE = "> ", ">> "

-- Compiles the chunk typed so far: the function, or nil and "incomplete",
-- or nil and the syntax error. An expression is tried first, so that bare
-- expressions and `=expr` print their values.
function M.compile(text)
  local source = text:gsub("^=", "return ", 1)
  local fn = load("return " .. source, "=stdin")
  if fn then return fn end
  local err
  fn, err = load(source, "=stdin")
  if fn then return fn end
  if err:match("<eof>$") then return nil, "incomplete" end
  return nil, err
end

-- Completion ------------------------------------------------------------------

local lua_keywords = {}
for word in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do
  lua_keywords[#lua_keywords + 1] = word
end

-- Fields reachable from a value without running any code of the script's:
-- its own keys, then those of __index tables up the chain.
local function fields(value, seen)
  seen = seen or {}
  local out = {}
  if type(value) == "table" and not seen[value] then
    seen[value] = true
    for k in next, value do
      if type(k) == "string" then out[#out + 1] = k end
    end
  end
  local mt = getmetatable(value)
  local index = type(mt) == "table" and rawget(mt, "__index")
  if type(index) == "table" then
    for _, k in ipairs(fields(index, seen)) do out[#out + 1] = k end
  end
  return out
end

local function lookup(value, key)
  if type(value) == "table" then
    local v = rawget(value, key)
    if v ~= nil then return v end
  end
  local mt = getmetatable(value)
  local index = type(mt) == "table" and rawget(mt, "__index")
  if type(index) == "table" then return lookup(index, key) end
end

-- Resolves a dotted path like "kapi.http" from the globals.
local function resolve(path)
  local value = _G
  for name in path:gmatch("[^.:]+") do
    value = lookup(value, name)
    if value == nil then return nil end
  end
  return value
end

--- The candidates for completing `word` (the text before the cursor back
--- to a separator): globals and keywords, `t.field` or `obj:method`.
function M.complete(line, word)
  local base, sep, partial = word:match("^(.*)([.:])([%w_]*)$")
  local names, prefix = {}, ""
  if base then
    local value = resolve(base)
    if value == nil then return {} end
    prefix = base .. sep
    for _, k in ipairs(fields(value)) do
      if sep == "." or type(lookup(value, k)) == "function" then names[#names + 1] = k end
    end
  else
    partial = word
    names = fields(_G)
    for _, k in ipairs(lua_keywords) do names[#names + 1] = k end
  end
  local out, seen = {}, {}
  for _, name in ipairs(names) do
    if name:sub(1, #partial) == partial and name:match("^[%a_][%w_]*$") and not seen[name] then
      seen[name] = true
      out[#out + 1] = prefix .. name
    end
  end
  table.sort(out)
  return out
end

-- Evaluation ------------------------------------------------------------------

local last_traceback

-- Errors go to stderr, as lua's own REPL writes them (stdout is for
-- values), after what the line printed so far; on one line, as the
-- command line gives them: an error inside kapi's Lua tree is said as
-- "internal error in MODULE", its message and place shown with --verbose
-- and by .trace.
local function report(text)
  io.stdout:flush()
  io.stderr:write(text, "\n")
end

local function error_line(err, traceback)
  return errors.report_line(err, log.verbose, errors.traceback_module(traceback))
end

local function print_results(results)
  if results.n == 0 then return end
  local parts = {}
  for i = 1, results.n do parts[i] = pretty.show(results[i]) end
  print(table.concat(parts, "\t"))
end

-- Runs a compiled chunk as a task in the foreground: Ctrl-C cancels it and
-- only it; tasks it spawned in the background go on.
local function evaluate(fn)
  local task = core.spawn(function() return table.pack(fn()) end)
  core.foreground(task)
  local ok, results = pcall(task.wait, task)
  core.foreground(nil)
  if ok then
    print_results(results)
    return
  end
  local err, traceback = task:error()
  last_traceback = traceback and errors.message(err) .. "\n" .. traceback
  if errors.is(results, "interrupted") then
    report("interrupted")
  else
    report(error_line(results, traceback))
  end
end

local commands = {
  [".trace"] = function()
    print(last_traceback or "no error yet")
  end,
  [".help"] = function()
    print(".trace   the traceback of the last error\n" ..
          ".help    this list\n" ..
          "help()   the kapi API; help(x) for one function\n" ..
          "Ctrl-C   interrupt the running line; Ctrl-D exit")
  end,
}

-- Reads one chunk, continuing while it is incomplete. Returns the text and
-- its function, nil at end of input, or false when Ctrl-C dropped it.
local function read_chunk(rl)
  local lines = {}
  while true do
    local ok, line = pcall(rl.readline, #lines == 0 and PROMPT or CONTINUE)
    if not ok then
      if errors.is(line, "interrupted") then return false end
      error(line, 0)
    end
    if line == nil then return nil end
    if #lines == 0 and commands[line:match("^%s*(%S+)%s*$")] then return line end
    lines[#lines + 1] = line
    local text = table.concat(lines, "\n")
    if text:match("^%s*$") then return false end
    local fn, err = M.compile(text)
    if fn then return text, fn end
    if err ~= "incomplete" then return text, nil, err end
  end
end

function M.help(thing)
  print(doc.help(thing, require("kapi.output").width(1)))
end

doc.declare("help", M.help, [[
help([thing])
In the REPL: shows what the kapi API offers, or the documentation of one
function (a value or a name such as "kapi.spawn").
Example:
  help(kapi.map)]])

-- A task spawned from the prompt that fails with nobody waiting for it is
-- told at once, not when (if ever) the collector finds it; t:wait()
-- still raises the error, and .trace shows where it happened.
local function report_background_failures(rl)
  core.on_unwaited_failure(function(task)
    local err, traceback = task:error()
    last_traceback = traceback and errors.message(err) .. "\n" .. traceback
    rl.notice(("kapi: a background task failed: %s (.trace shows where)"):format(error_line(err, traceback)))
  end)
end

local function install_globals()
  _G.kapi = require "kapi"
  _G.help = M.help
end

-- Adds a line to the history, which is saved after every line; when the
-- file cannot be written (a full disk, a read-only directory) that is
-- said once, not each time, and the session goes on.
local function history_adder(rl)
  local told = false
  return function(text)
    local ok, why = rl.history_add(text)
    if ok == false and not told then
      told = true
      rl.notice(("kapi: cannot save the REPL history to %s: %s"):format(rl.history_path(), why))
    end
  end
end

--- Runs the REPL until end of input (Ctrl-D). Returns exit status 0.
function M.run(opts)
  opts = opts or {}
  local rl = require "kapi.core.repl"
  install_globals()
  report_background_failures(rl)
  if opts.history ~= false and rl.tty then rl.history_open(paths.history_file()) end
  rl.set_completer(M.complete)
  if opts.banner ~= false and rl.tty then
    local version, hint = ("kapi %s (%s)"):format(core.version, core.lua_version),
                          "help() for help, .help for commands, Ctrl-D to exit"
    local width = require("kapi.output").width(1) or 80
    print(#version + 2 + #hint <= width and version .. "  " .. hint or version .. "\n" .. hint)
  end
  local previous
  local add_history = history_adder(rl)
  while true do
    local text, fn, err = read_chunk(rl)
    if text == nil then
      if rl.tty then io.write("\n") end
      return 0
    end
    if text then
      if text ~= previous then add_history(text) end
      previous = text
      local command = commands[text:match("^%s*(%S+)%s*$")]
      if command then command()
      elseif fn then evaluate(fn)
      else report(err) end
    end
  end
end

return M
