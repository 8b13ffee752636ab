-- The command-line contract of docs/usage.md, walked for every command and
-- every recipe: each is given bad input of every kind its parser says it
-- takes (an unknown option, an option without its value, a wrong choice, a
-- value its converter must refuse, files that are missing, a directory,
-- binary, empty, malformed, huge, standard input that is bad, positional
-- values that are not what they should be) and must refuse it the same
-- way: exit status 2, one line on stderr naming what was wrong (a usage
-- error may add the usage after it), nothing on stdout, no Lua message, no
-- path into kapi's Lua tree, no traceback. The commands and recipes come
-- from kapi itself (kapi.parsing.describe), so a new recipe or option is
-- walked without a line added here. Everything runs with HOME, the XDG
-- directories and the working directory pointing at empty temporary
-- directories, which must still be empty afterwards.
local process = require "helpers.process"
local cli = require "kapi.cli"
local parsing = require "kapi.parsing"
local core = require "kapi.core"
local run = require "kapi.commands.run"

local home, cwd, inputs = process.tempdir(), process.tempdir(), process.tempdir()

local ENV = process.sandbox_env()
ENV.HOME, ENV.XDG_CONFIG_HOME, ENV.XDG_STATE_HOME = home, home .. "/config", home .. "/state"
ENV.XDG_CACHE_HOME, ENV.XDG_DATA_HOME, ENV.KAPI_PATH, ENV.KAPI_CONFIG = home .. "/cache", home .. "/data", "", ""

-- Bad files, each with what a user would call it.
local FILES = {}
local function bad_file(name, what, text)
  local path = inputs .. "/" .. name
  if text then process.write(path, text) end
  FILES[#FILES + 1] = {path = path, what = what}
end
bad_file("missing.txt", "a missing file")
bad_file("directory", "a directory")
os.execute("mkdir " .. process.quote(inputs .. "/directory"))
bad_file("binary.bin", "a binary file", "\0\1\2\127ELF\0\0garbage\0")
bad_file("empty.txt", "an empty file", "")
bad_file("blank.txt", "a file of blank lines", "  \n\n\t\n")
bad_file("malformed.txt", "a malformed file", "{{{ not what kapi expects,,, \"\n")
bad_file("bom.txt", "a file with a byte-order mark and CRLF, of garbage", "\239\187\191garbage, more\r\n")
bad_file("huge.txt", "a huge one-line file", ("9"):rep(1024 * 1024))
-- Long runs of white space between words: a reader whose patterns
-- backtrack takes minutes on one such line.
bad_file("spaces.txt", "a file with a line of long runs of spaces", ("x" .. (" "):rep(100000) .. "y z,"):rep(2) .. " #c\n")
FILES[#FILES + 1] = {path = "/dev/zero", what = "an endless device"}
-- A file nobody may read; root reads it anyway, so the case needs a user.
if process.sh("id -u").stdout ~= "0\n" then
  bad_file("unreadable.txt", "an unreadable file", "00614141000012\n")
  os.execute("chmod 000 " .. process.quote(inputs .. "/unreadable.txt"))
end

-- Values that are not what an option or a positional argument expects.
local HUGE = ("1"):rep(100000)
local SPACED = (" "):rep(60000) .. "1x" .. (" "):rep(60000) -- one argument holds at most 128 KB
local WRONG = {"abc", "-", HUGE, SPACED, "0x3", "1e1"}
local BAD_IDS = {"12ab", "", HUGE, SPACED}

local INTERNALS = {"attempt to ", "bad argument #", "table index is", "stack traceback", "(error object is",
                   core.script_dir, "%.lua:%d+:"}

local function run_kapi(args, stdin)
  return process.kapi_run(args, {env = ENV, cwd = cwd, stdin = stdin})
end

-- The run was refused as the contract says: 2, nothing on stdout, one
-- line (plus, for a usage error, the usage), that line naming `names`.
local function assert_refused(r, case, names)
  local label = table.concat(case, " "):sub(1, 200)
  assert.equal(2, r.status, label .. "\n" .. r.stderr:sub(1, 2000))
  assert.equal("", r.stdout, label)
  local first, rest = r.stderr:match("^(kapi: [^\n]+)\n(.*)$")
  assert.is_truthy(first, label .. ": not one kapi: line\n" .. r.stderr:sub(1, 2000))
  assert.is_true(#rest == 0 or rest:match("^Usage: ") ~= nil, label .. ": more than one line\n" .. r.stderr:sub(1, 2000))
  assert.is_true(utf8.len(first) <= 420, label .. ": a line of " .. #first .. " characters")
  for _, pattern in ipairs(INTERNALS) do
    assert.is_nil(r.stderr:find(pattern, 1, pattern ~= "%.lua:%d+:"), label .. ": " .. pattern .. "\n" .. r.stderr)
  end
  if names then assert.is_truthy(first:find(names, 1, true), label .. ": does not name " .. names .. "\n" .. first) end
end

-- A value for each option that must be given, so that the bad input
-- under test is what is refused.
local function required(desc)
  local out = {}
  for _, option in ipairs(desc.options) do
    if option.required then out[#out + 1] = option.names[#option.names]; out[#out + 1] = "the contract walk" end
  end
  return out
end

local function with(prefix, desc, ...)
  local args = {}
  for _, a in ipairs(prefix) do args[#args + 1] = a end
  for _, a in ipairs(required(desc)) do args[#args + 1] = a end
  for _, a in ipairs {...} do args[#args + 1] = a end
  return args
end

local function long_name(option) return option.names[#option.names] end

-- Walks one parser: prefix is the command line that reaches it ({"run",
-- "preflight"}).
local function walk(prefix, desc)
  local case = with(prefix, desc, "--bogus-option")
  assert_refused(run_kapi(case), case, "--bogus-option")
  case = with(prefix, desc, "--" .. ("x"):rep(100000))
  assert_refused(run_kapi(case), {"a 100,000-character option", table.unpack(prefix)}, "(100002 characters)")
  for _, option in ipairs(desc.options) do
    local name = long_name(option)
    if option.takes_value and not option.required and not option.value_optional then
      case = with(prefix, desc, name)
      assert_refused(run_kapi(case), case, name)
    end
    if option.value_optional then -- --watch alone is fine; --watch=WRONG is not
      for _, value in ipairs(WRONG) do
        case = with(prefix, desc, name .. "=" .. value)
        assert_refused(run_kapi(case), case, name)
      end
    end
    if option.choices then
      case = with(prefix, desc, name, "bogus-choice")
      assert_refused(run_kapi(case), case, name)
    end
    if option.checked then
      for _, value in ipairs(WRONG) do
        case = with(prefix, desc, name .. "=" .. value)
        assert_refused(run_kapi(case), case, name)
      end
    end
    if option.argname == "FILE" then
      for _, file in ipairs(FILES) do
        case = with(prefix, desc, name, file.path)
        assert_refused(run_kapi(case), {file.what, table.unpack(case)}, file.path)
      end
      case = with(prefix, desc, name, "-")
      assert_refused(run_kapi(case, "not what kapi expects at all\n"), {"bad stdin", table.unpack(case)}, "stdin")
      if option.repeatable then -- read once, counted once: the same file twice is refused
        case = with(prefix, desc, name, "-", name, "-")
        assert_refused(run_kapi(case, "00614141000012\n"), {"stdin twice", table.unpack(case)}, "given twice")
      end
    end
  end
  for _, argument in ipairs(desc.arguments) do
    if argument.argname == "FILE" then
      for _, file in ipairs(FILES) do
        case = with(prefix, desc, file.path)
        assert_refused(run_kapi(case), {file.what, table.unpack(case)}, file.path)
      end
      if argument.max > 1 then
        case = with(prefix, desc, "-", "-")
        assert_refused(run_kapi(case, "{}\n"), {"stdin twice", table.unpack(case)}, "given twice")
      end
    else
      for _, value in ipairs(BAD_IDS) do
        case = with(prefix, desc, value)
        assert_refused(run_kapi(case), {"bad " .. argument.name, table.unpack(case)})
      end
    end
  end
  for _, command in ipairs(desc.commands) do
    local sub = {table.unpack(prefix)}
    sub[#sub + 1] = command.name:match("(%S+)$")
    walk(sub, command)
  end
end

describe("the command-line contract", function()
  teardown(function()
    process.cleanup(inputs)
    process.cleanup(cwd)
    process.cleanup(home)
  end)

  for _, name in ipairs(cli.commands) do
    local parser = parsing.command_parser(name)
    if parser then
      it("is kept by kapi " .. name .. " for every bad input its options take", function()
        walk({name}, parsing.describe(parser))
      end)
    end
  end

  for _, recipe in ipairs(require("kapi.recipes").list()) do
    it("is kept by kapi run " .. recipe.name .. " for every bad input its options take", function()
      local loaded = assert(require("kapi.recipes").load(recipe.path))
      walk({"run", recipe.name}, parsing.describe(run.parser(loaded, recipe.name)))
    end)
  end

  it("is kept by the raw commands, the interpreter and the environment", function()
    local cases = {
      {{"run"}, "which recipe"},
      {{"run", "no-such-recipe"}, "no-such-recipe"},
      {{"run", "coupns"}, "did you mean 'coupons'"},
      {{"run", inputs .. "/missing.lua"}, inputs .. "/missing.lua"},
      {{"run", inputs .. "/directory/"}, inputs .. "/directory"},
      {{"test", "--bogus-option"}, "--bogus-option"},
      {{"no-such-command"}, "no-such-command"},
      {{"rnu"}, "did you mean 'run'"},
      {{"coupons"}, "kapi run coupons"},
      {{inputs .. "/missing.lua"}, inputs .. "/missing.lua"},
      {{inputs .. "/directory"}, inputs .. "/directory"},
      {{"-x"}, "'-x'"},
      {{"-e"}, "'-e'"},
      {{"help", "no-such-topic"}, "no-such-topic"},
      {{"sandbox", "--tls", inputs .. "/missing.txt," .. inputs .. "/missing.txt"}, "--tls"},
      {{"sandbox", "--tls", inputs .. "/malformed.txt," .. inputs .. "/malformed.txt"}, "--tls"},
      {{"sandbox", "--tls", inputs .. "/directory," .. inputs .. "/directory"}, "--tls"},
    }
    for _, case in ipairs(cases) do assert_refused(run_kapi(case[1]), case[1], case[2]) end
    local function with_env(extra, args, names)
      local saved = {}
      for k, v in pairs(extra) do saved[k], ENV[k] = ENV[k], v end
      local r = run_kapi(args)
      for k in pairs(extra) do ENV[k] = saved[k] end
      assert_refused(r, {table.concat(args, " "), next(extra)}, names)
    end
    with_env({KAPI_SANDBOX_URL = "notaurl"}, {"run", "stores", "--zip", "45202"}, "KAPI_SANDBOX_URL")
    with_env({KAPI_ENV = "staging"}, {"run", "stores", "--zip", "45202"}, "KAPI_ENV")
    with_env({KAPI_CONFIG = inputs .. "/directory"}, {"run", "stores", "--zip", "45202"}, inputs .. "/directory")
    with_env({KAPI_CONFIG = inputs .. "/malformed.txt"}, {"run", "stores", "--zip", "45202"}, "malformed.txt")
    with_env({KAPI_CONFIG = inputs .. "/binary.bin"}, {"run", "stores", "--zip", "45202"}, "binary.bin")
    -- Config files that are Lua but not kapi's: of the wrong shape, calling
    -- functions, running forever.
    for text, names in pairs {["return {kroger = 5}"] = "kroger must be a table",
                              ["return {kroger = {client_id = 5, client_secret = {}}}"] = "kroger.client_id must be a string",
                              ["return {kroger = {clientid = 'x'}}"] = "did you mean 'client_id'",
                              ["return {[1] = 2}"] = "unknown setting 1",
                              ["while true do end"] = "runs too long",
                              ["error('x')"] = "calls a function",
                              ["return 5"] = "must return a table"} do
      local path = process.write(inputs .. "/config.lua", text)
      with_env({KAPI_CONFIG = path}, {"run", "stores", "--zip", "45202"}, names)
    end
    with_env({KAPI_STORE = "123"}, {"run", "coupons"}, "KAPI_STORE")
  end)

  it("writes nothing outside its temporary directories while refusing all that", function()
    -- Runs last (busted keeps the order): HOME, the XDG directories and
    -- the working directory are as empty as they were before the walk.
    for _, dir in ipairs {home, cwd} do
      assert.equal("", process.sh("find " .. process.quote(dir) .. " -mindepth 1").stdout, dir)
    end
  end)
end)
