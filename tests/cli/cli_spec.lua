-- The command line, run as a user runs it: a subprocess per case.
local process = require "helpers.process"
local cjson = require "cjson"

local kapi, sh, quote = process.kapi_run, process.sh, process.quote
local KAPI = process.kapi

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

describe("kapi as a Lua interpreter", function()
  local dir
  before_each(function() dir = process.tempdir() end)
  after_each(function() process.cleanup(dir) end)

  it("runs -e code", function()
    local r = kapi {"-e", "print(1 + 1, _VERSION)"}
    assert.equal(0, r.status)
    assert.equal("2\tLua 5.4\n", r.stdout)
  end)

  it("runs finalizers and to-be-closed variables at exit, as lua does, allocating as they like", function()
    local r = kapi {"-e", [[
      big = {}
      for i = 1, 100000 do big[i] = {i, tostring(i)} end
      setmetatable({}, {__gc = function() local t = {} for i = 1, 1000 do t[i] = ("x"):rep(i) end print("gc", #t) end})
      local x <close> = setmetatable({}, {__close = function() print("closed") end})]]}
    assert.equal(0, r.status, r.stderr)
    assert.equal("closed\ngc\t1000\n", r.stdout)
  end)

  it("runs a script with its arguments in `arg` and `...`, as lua does", function()
    local script = process.write(dir .. "/args.lua", [[
      print(select("#", ...), ...)
      print(arg[0], arg[1], arg[2], arg[-1])
    ]])
    local r = kapi {script, "a", "b c"}
    assert.equal(0, r.status)
    assert.same({"2\ta\tb c", script .. "\ta\tb c\t" .. KAPI}, lines(r.stdout))
  end)

  it("runs standard input with - and when stdin is not a terminal", function()
    assert.equal("from stdin\n", kapi({"-"}, {stdin = "print('from stdin')"}).stdout)
    assert.equal("piped\n", kapi({}, {stdin = "print('piped')"}).stdout)
  end)

  it("requires modules with -l, from KAPI_PATH too", function()
    process.write(dir .. "/greeting.lua", "return {text = 'hello'}")
    local r = kapi({"-l", "greeting", "-e", "print(greeting.text)"}, {env = {KAPI_PATH = dir}})
    assert.equal("hello\n", r.stdout)
    r = kapi({"-l", "g=greeting", "-e", "print(g.text)"}, {env = {KAPI_PATH = dir}})
    assert.equal("hello\n", r.stdout)
  end)

  it("runs shebang scripts", function()
    local script = process.write(dir .. "/tool", "#!/usr/bin/env kapi\nprint('shebang', ...)\n")
    local r = sh("chmod +x " .. quote(script) .. " && PATH=" .. quote(KAPI:match("^(.*)/")) ..
                 ":$PATH " .. quote(script) .. " x")
    assert.equal(0, r.status)
    assert.equal("shebang\tx\n", r.stdout)
  end)

  it("preloads cjson and the kapi modules", function()
    local r = kapi {"-e", "print(require('cjson').encode({1}), type(require('kapi').spawn))"}
    assert.equal("[1]\tfunction\n", r.stdout)
  end)

  it("starts with no library but libc's mapped: libcurl, OpenSSL and libedit wait for their first use", function()
    local maps = [[local f = io.open("/proc/self/maps"); io.write(f:read("a")); f:close()]]
    local function libraries(script)
      local r = kapi {"-e", script}
      assert.equal(0, r.status, r.stderr)
      local names = {}
      for name in r.stdout:gmatch("/([^/\n]+%.so[%.%d]*)\n") do names[name:match("^[^.]+")] = true end
      return names
    end
    local at_start = libraries(maps)
    for _, name in ipairs {"libcurl", "libssl", "libcrypto", "libedit", "libtinfo", "libmicrohttpd", "libsqlite3"} do
      assert.is_nil(at_start[name], name .. " is loaded at start")
    end
    assert.truthy(at_start.libc)
    local later = libraries("require 'kapi.core.http'; require 'kapi.core.repl'; " .. maps)
    assert.truthy(later.libcurl)
    assert.truthy(later.libedit)
  end)

  it("prints its version with -v", function()
    local r = kapi {"-v"}
    assert.equal(0, r.status)
    assert.matches("^kapi %d+%.%d+%.%d+ %(Lua 5%.4%.%d+%)\n$", r.stdout)
  end)

  it("works as busted's interpreter (busted --lua=kapi)", function()
    local spec = process.write(dir .. "/sleep_spec.lua", [[
      describe("inside kapi", function()
        it("can sleep", function() require("kapi").sleep(0.01) end)
      end)
    ]])
    local r = sh(("busted --lua=%s -o plainTerminal %s"):format(quote(KAPI), quote(spec)))
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.matches("1 success", r.stdout)
  end)
end)

describe("kapi's errors and exit statuses", function()
  local dir
  before_each(function() dir = process.tempdir() end)
  after_each(function() process.cleanup(dir) end)

  it("prints an uncaught error on one line and exits 1", function()
    local r = kapi {"-e", "error('boom')"}
    assert.equal(1, r.status)
    assert.equal("kapi: (command line):1: boom\n", r.stderr)
  end)

  it("fails when its output cannot be written (a full disk, a closed stdout), not when the reader left", function()
    local env = process.sandbox_env()
    local commands = {"-e 'print(1)'", "version", "help", "recipes", "run stores --zip 45202 --limit 1 --json"}
    for _, command in ipairs(commands) do
      for _, redirect in ipairs {"> /dev/full", ">&-"} do
        local r = sh(("%s %s %s"):format(quote(KAPI), command, redirect), {env = env})
        assert.equal(1, r.status, command .. " " .. redirect)
        assert.matches("kapi: cannot write the output", r.stderr, 1, true)
      end
    end
    -- A usage error keeps its status.
    local r = sh(quote(KAPI) .. " run stores --zip 4520 > /dev/full", {env = env})
    assert.equal(2, r.status)
    -- `| head -1` wanted one line: no failure, no message.
    r = sh(quote(KAPI) .. " -e 'for i = 1, 200000 do print(i) end' | head -1; exit 0", {env = env})
    assert.same({"1\n", ""}, {r.stdout, r.stderr})
    r = sh("bash -c " .. quote("set -o pipefail; " .. quote(KAPI)
           .. " -e 'for i = 1, 200000 do print(i) end' | head -1 > /dev/null"), {env = env})
    assert.same({0, ""}, {r.status, r.stderr})
  end)

  it("adds the traceback with --verbose or KAPI_DEBUG=1", function()
    local r = kapi {"--verbose", "-e", "local function f() error('deep') end f()"}
    assert.equal(1, r.status)
    assert.matches("^kapi: %(command line%):1: deep\n", r.stderr)
    assert.matches("stack traceback:", r.stderr)
    assert.matches("in local 'f'", r.stderr)
    r = kapi({"-e", "error('x')"}, {env = {KAPI_DEBUG = "1"}})
    assert.matches("stack traceback:", r.stderr)
  end)

  it("prints structured errors by their message", function()
    local r = kapi {"-e", "error(setmetatable({}, {__tostring = function() return 'nice' end}))"}
    assert.equal("kapi: nice\n", r.stderr)
    r = kapi {"-e", "error({})"}
    assert.equal("kapi: (error object is a table value)\n", r.stderr)
    -- A number raised is its text, as in Lua's own interpreter; also when a
    -- request handler raised it.
    assert.equal("kapi: 42\n", kapi({"-e", "error(42)"}).stderr)
    r = kapi {"-e", "local s <close> = kapi.server.listen {handler = function() error(7) end} "
                 .. "print(kapi.http.get(s.url, {raise = false}).status)"}
    assert.equal("500\n", r.stdout)
    assert.equal("kapi: server: a request handler failed: 7\n", r.stderr)
  end)

  it("names a script it cannot open, with the reason, as an input error", function()
    local r = kapi {dir .. "/missing.lua"}
    assert.equal(2, r.status)
    assert.equal("kapi: cannot open " .. dir .. "/missing.lua (No such file or directory)\n", r.stderr)
    r = kapi {dir}
    assert.equal(2, r.status)
    assert.equal("kapi: cannot open " .. dir .. " (Is a directory)\n", r.stderr)
  end)

  it("reports a syntax error with its place", function()
    local script = process.write(dir .. "/bad.lua", "x = = 1\n")
    local r = kapi {script}
    assert.equal(1, r.status)
    assert.matches("^kapi: " .. script:gsub("%p", "%%%0") .. ":1: unexpected symbol", r.stderr)
  end)

  it("has the global kapi in -e code and scripts, as in the REPL", function()
    local script = process.write(dir .. "/global.lua", "print((kapi.gtin.valid('00614141000012')))")
    assert.equal("true\n", kapi({"-e", "print((kapi.gtin.valid('00614141000012')))"}).stdout)
    assert.equal("true\n", kapi({script}).stdout)
  end)

  it("runs piped lines as a REPL with -i, as lua -i does: values printed, errors on stderr and survived", function()
    local r = kapi({"-i"}, {stdin = "x = 20 + 1\nx * 2\nerror('on purpose')\n=x\n"})
    assert.equal(0, r.status, r.stderr)
    assert.equal("42\n21\n", r.stdout)
    assert.equal("stdin:1: on purpose\n", r.stderr)
  end)

  it("reports a failure inside kapi's own Lua as an internal error, the details with --verbose", function()
    local r = kapi {"-e", "kapi.recipe.render_table(nil, {})"}
    assert.equal(1, r.status)
    assert.equal("kapi: internal error in kapi.output (a bug in kapi; run again with --verbose for the details, "
                 .. "and please report it)\n", r.stderr)
    r = kapi {"--verbose", "-e", "kapi.recipe.render_table(nil, {})"}
    assert.matches("^kapi: attempt to index a nil value\nstack traceback:\n.*/kapi/output%.lua:%d+:", r.stderr)
  end)

  it("exits 2 with the usage line on a usage error", function()
    local r = kapi {"-x"}
    assert.equal(2, r.status)
    assert.same({"kapi: unrecognized option '-x'",
                 "Usage: kapi [options] [script [args]] | kapi COMMAND [args]"}, lines(r.stderr))
    r = kapi {"-e"}
    assert.equal(2, r.status)
    assert.matches("option '%-e' needs an argument", r.stderr)
  end)

  it("refuses a script's bad URL with status 2 and one line, in a fresh process too", function()
    for _, call in ipairs {"kapi.http.get()", "kapi.http.get(nil, {})", "kapi.http.request{}",
                           "kapi.http.get('ftp://example.test/')"} do
      local r = kapi {"-e", "local kapi = require 'kapi'; " .. call}
      assert.equal(2, r.status)
      assert.matches("^kapi: http: url must be an http:// or https:// URL, got %S+\n$", r.stderr)
    end
  end)

  it("stops on Ctrl-C with status 130, sleeping, busy or waiting on HTTP", function()
    -- Each case touches $READY once it is where Ctrl-C must reach it, so the
    -- signal never races start-up, however slow the build (sanitizers).
    local ready = "io.open(os.getenv('READY'), 'w'):close(); "
    for _, code in ipairs {
      "local k = require('kapi'); " .. ready .. "k.sleep(30)",
      ready .. "while true do end",
      "local k = require('kapi'); k.map({1,2,3}, function(_, i) if i == 3 then " .. ready .. " end k.sleep(30) end)",
      "local k = require('kapi'); local s = k.server.listen{handler = function() " .. ready ..
        "k.sleep(30) end}; k.http.get(s.url)",
    } do
      local r = sh(([[
        export READY=$(mktemp -u)
        %s -e %s & pid=$!
        for i in $(seq 200); do [ -e "$READY" ] && break; sleep 0.05; done
        sleep 0.1; kill -INT $pid; wait $pid; status=$?; rm -f "$READY"; exit $status
      ]]):format(quote(KAPI), quote(code)))
      assert.equal(130, r.status, code .. "\n" .. r.stderr)
      assert.equal("kapi: interrupted\n", r.stderr)
    end
  end)

  it("exits as soon as the script ends, even with a server still open", function()
    local r = sh(("start=$(date +%%s%%N); %s -e %s; echo $(( ($(date +%%s%%N) - start) / 1000000 ))"):format(
      quote(KAPI), quote("local k = require 'kapi'; local s = k.server.listen{handler = function() " ..
                         "return {body = 'x'} end}; print(k.http.get(s.url).status)")))
    local status, ms = r.stdout:match("^(%d+)\n(%d+)\n$")
    assert.equal("200", status)
    assert.is_true(tonumber(ms) < 2000, ms .. " ms")
  end)

  it("warns about tasks still running at the end, and cancels them", function()
    local r = kapi {"-e", "local k = require 'kapi'; k.spawn(function() k.sleep(60) end)"}
    assert.equal(0, r.status)
    assert.matches("1 task still running when the program ended was cancelled", r.stderr)
  end)

  it("warns about a task that failed and that nobody waited for", function()
    local r = kapi {"-e", "local k = require 'kapi'; k.spawn(function() error('lost') end); k.sleep(0.01)"}
    assert.matches("a task failed and nobody waited for it: %(command line%):1: lost", r.stderr)
  end)

  it("detects a deadlock instead of hanging", function()
    local r = kapi {"-e", [[local k = require 'kapi'; local main = k.running()
      k.spawn(function() main:wait() end):wait()]]}
    assert.equal(1, r.status)
    assert.equal("kapi: deadlock: every task is waiting and nothing can wake them\n", r.stderr)
  end)
end)

describe("kapi commands", function()
  local dir, env
  before_each(function()
    dir = process.tempdir()
    env = {KAPI_PATH = dir .. "/extra", XDG_CONFIG_HOME = dir .. "/config"}
    process.write(dir .. "/extra/recipes/hello.lua", [[
      return {
        summary = "Say hello to someone",
        arguments = function(parser)
          parser:argument("name", "Who to greet")
          parser:option("--times", "How often", "1"):convert(tonumber)
        end,
        run = function(args)
          for _ = 1, args.times do print("hello " .. args.name) end
          return args.name == "nobody" and 3 or 0
        end,
      }
    ]])
    process.write(dir .. "/config/kapi/recipes/mine.lua",
                  "return {summary = 'A recipe of my own', run = function() print('mine') end}")
    process.write(dir .. "/config/kapi/recipes/broken.lua", "return 42")
  end)
  after_each(function() process.cleanup(dir) end)

  it("lists every command in `kapi help` and `kapi --help`", function()
    for _, args in ipairs {{"help"}, {"--help"}} do
      local r = kapi(args)
      assert.equal(0, r.status)
      for _, command in ipairs {"run", "repl", "recipes", "test", "version", "help"} do
        assert.matches("\n  " .. command .. " +%u", r.stdout)
      end
    end
  end)

  it("has --help on each command", function()
    for _, command in ipairs {"run", "repl", "recipes", "test", "version", "help"} do
      local r = kapi {command, "--help"}
      assert.equal(0, r.status, command)
      assert.matches("Usage: kapi " .. command, r.stdout)
    end
  end)

  it("rejects unknown options of a command with status 2 and its usage", function()
    local r = kapi {"recipes", "--bogus"}
    assert.equal(2, r.status)
    assert.same({"kapi: unknown option '--bogus'", "Usage: kapi recipes [-h] [--json] [--paths]"},
                lines(r.stderr))
  end)

  it("shows the usage of the subcommand that was wrong, and suggests what was meant", function()
    local r = kapi {"auth", "login", "--bogus"}
    assert.equal(2, r.status)
    assert.equal("kapi: unknown option '--bogus'", lines(r.stderr)[1])
    assert.matches("^Usage: kapi auth login ", lines(r.stderr)[2])
    r = kapi {"run", "stores", "--radus", "5"}
    assert.equal("kapi: unknown option '--radus' (did you mean '--radius'?)", lines(r.stderr)[1])
    r = kapi {"rn", "stores"}
    assert.equal(2, r.status)
    assert.equal("kapi: no command or script named 'rn' (did you mean 'run'?) (kapi help lists the commands)",
                 lines(r.stderr)[1])
    r = kapi {"run", "stors"}
    assert.equal("kapi: no recipe named 'stors' (did you mean 'stores'?) (kapi recipes lists them)", lines(r.stderr)[1])
    r = kapi {"coupons", "--zip", "45202"}
    assert.equal(2, r.status)
    assert.equal("kapi: 'coupons' is a recipe: run it with kapi run coupons", lines(r.stderr)[1])
    -- A command after an interpreter option, where a script goes: no
    -- suggestion of the very word.
    r = kapi {"-l", "kapi.json", "run", "stores"}
    assert.equal(2, r.status)
    assert.equal("kapi: 'run' is a command: give it first (kapi run ...); -e, -l and -i go with a script",
                 lines(r.stderr)[1])
    assert.equal(" (did you mean 'ruin'?)", require("kapi.parsing").did_you_mean("run", {"run", "ruin"}))
  end)

  it("names in its error line what was wrong, not something near it", function()
    local env = process.sandbox_env()
    local empty = process.tempdir()
    local cases = {
      {{"help", "auth", "login", "extra"}, "kapi: unexpected argument 'extra' after the topic"},
      {{"help", "run", "preflight", "extra"}, "kapi: unexpected argument 'extra' after the topic"},
      {{"help", "stores", "extra"}, "kapi: unexpected argument 'extra' after the topic"},
      {{"help", "auth", "bogus"}, "kapi: no command or recipe named 'auth bogus'"},
      {{"auth", "login", "--scope", ""}, "kapi: --scope: an empty value", "^Usage: kapi auth login "},
      {{"run", "live-check", "-00011110010018"},
       "kapi: unknown option '-00011110010018' (a value that starts with '-' goes after --)"},
      {{"run", "resend", "10860001000020", "--reason", "a", "--reason", "b"},
       "kapi: --reason given more than once: it takes one value"},
      {{"run", "resend", "10860001000020"}, "kapi: --reason is required"},
      {{"sandbox", "--faults", "5xx=-1"}, "kapi: --faults 5xx=-1: the rate of 5xx must be between 0 and 1"},
      {{"run", "cart-add", "00011110010018:500", "00011110010018:500"},
       "kapi: argument 1, argument 2: 00011110010018: 1000 units in all, more than 999"},
      {{"run", "products", "--term", "a\n"}, 'kapi: --term "a\\n": give 3 characters or more, 8 words at most'},
      {{"run", "products", "--term", "milk", "--limit", "1e1"}, "kapi: --limit 1e1: expected a positive whole number or all"},
      {{"test"}, "kapi: no ./spec directory or .busted file here: name the spec files (kapi test FILE ...)", nil, empty},
    }
    for _, case in ipairs(cases) do
      local r = process.kapi_run(case[1], {env = env, cwd = case[4]})
      assert.equal(2, r.status, table.concat(case[1], " ") .. "\n" .. r.stderr)
      assert.equal(case[2], lines(r.stderr)[1])
      if case[3] then assert.matches(case[3], lines(r.stderr)[2]) end
    end
    process.cleanup(empty)
    -- Text options are text: commas are no list separators there.
    local r = process.kapi_run({"run", "resend", "10860001000020", "--reason", "done, then,"}, {env = env})
    assert.equal(0, r.status, r.stderr)
  end)

  it("spells every option's value alike in every --help, with defaults shown one way", function()
    local cli, parsing, run = require "kapi.cli", require "kapi.parsing", require "kapi.commands.run"
    local helps = {}
    for _, name in ipairs(cli.commands) do
      local parser = parsing.command_parser(name)
      if parser then helps[#helps + 1] = parser:get_help() end
    end
    for _, recipe in ipairs(require("kapi.recipes").list()) do
      helps[#helps + 1] = run.parser(assert(require("kapi.recipes").load(recipe.path)), recipe.name):get_help()
    end
    assert.is_true(#helps >= 14)
    for _, help in ipairs(helps) do
      assert.is_nil(help:find("<", 1, true), help)                       -- --file FILE, never --file <file>
      assert.is_nil(help:find("%(default: [^)]+%) %(default:"), help)    -- one default, said once
      for line in help:gmatch("[^\n]+") do assert.is_true(#line <= 100, line) end
    end
  end)

  it("prints versions", function()
    local r = kapi {"version"}
    assert.equal(0, r.status)
    assert.matches("^kapi %d+%.%d+%.%d+\nLua 5%.4", r.stdout)
  end)

  it("lists recipes from KAPI_PATH and ~/.config/kapi/recipes, one line each", function()
    local r = kapi({"recipes"}, {env = env})
    assert.equal(0, r.status)
    assert.matches("\nhello +Say hello to someone\n", "\n" .. r.stdout)
    assert.matches("\nmine +A recipe of my own\n", "\n" .. r.stdout)
    assert.matches("\nbroken +%(broken: .*not a recipe", "\n" .. r.stdout)
    local list = cjson.decode(kapi({"recipes", "--json"}, {env = env}).stdout)
    local names, paths = {}, {}
    for _, recipe in ipairs(list) do names[#names + 1] = recipe.name; paths[recipe.name] = recipe.path end
    assert.same({"broken", "cart-add", "coupons", "hello", "live-check", "mine", "preflight", "products",
                 "republish-check", "resend", "stores"}, names)
    assert.equal(dir .. "/extra/recipes/hello.lua", paths.hello)
  end)

  it("runs a recipe with its parsed arguments and exit status", function()
    local r = kapi({"run", "hello", "world", "--times", "2"}, {env = env})
    assert.equal(0, r.status)
    assert.equal("hello world\nhello world\n", r.stdout)
    assert.equal(3, kapi({"run", "hello", "nobody"}, {env = env}).status)
    assert.equal("mine\n", kapi({"run", "mine"}, {env = env}).stdout)
  end)

  it("shows a recipe's help and rejects its bad arguments with status 2", function()
    local r = kapi({"run", "hello", "--help"}, {env = env})
    assert.equal(0, r.status)
    assert.matches("Usage: kapi run hello", r.stdout)
    assert.matches("Say hello to someone", r.stdout)
    r = kapi({"run", "hello"}, {env = env})
    assert.equal(2, r.status)
    assert.matches("kapi: missing argument 'name'", r.stderr)
    assert.matches("Usage: kapi run hello", r.stderr)
    r = kapi({"help", "hello"}, {env = env})
    assert.matches("Usage: kapi run hello", r.stdout)
  end)

  it("names a missing recipe", function()
    local r = kapi({"run", "nosuch"}, {env = env})
    assert.equal(2, r.status)
    assert.matches("^kapi: no recipe named 'nosuch'", r.stderr)
  end)

  it("opens libcurl and OpenSSL ahead while a recipe reads its input, not for its --help", function()
    process.write(dir .. "/ahead/recipes/maps.lua", [[
      return {summary = "What is mapped", run = function()
        require("kapi").sleep(0.3)
        local f = io.open("/proc/self/maps")
        local maps = f:read("a")
        f:close()
        print(maps:find("/libcurl", 1, true) and "libcurl" or "no libcurl", maps:find("/libcrypto", 1, true)
              and "libcrypto" or "no libcrypto", package.loaded["kapi.core.http"] and "required" or "not required")
      end}]])
    local r = kapi({"run", "maps"}, {env = {KAPI_PATH = dir .. "/ahead"}})
    assert.equal(0, r.status, r.stderr)
    assert.equal("libcurl\tlibcrypto\tnot required\n", r.stdout)
    r = kapi({"run", "maps", "--help"}, {env = {KAPI_PATH = dir .. "/ahead"}})
    assert.equal(0, r.status, r.stderr)
    assert.matches("What is mapped", r.stdout)
  end)

  it("runs a Lua file given by path, recipe or plain script", function()
    local script = process.write(dir .. "/plain.lua", "print('plain', ...)")
    assert.equal("plain\ta\tb\n", kapi({"run", script, "a", "b"}).stdout)
    local r = kapi({"run", dir .. "/extra/recipes/hello.lua", "file"})
    assert.equal("hello file\n", r.stdout)
  end)

  it("runs busted specs inside kapi with `kapi test`", function()
    local good = process.write(dir .. "/good_spec.lua", [[
      describe("x", function() it("sleeps", function() require("kapi").sleep(0.01) end) end)]])
    local bad = process.write(dir .. "/bad_spec.lua", [[
      describe("x", function() it("fails", function() assert.equal(1, 2) end) end)]])
    local r = kapi {"test", "-o", "plainTerminal", good}
    assert.equal(0, r.status, r.stdout .. r.stderr)
    assert.matches("1 success / 0 failures", r.stdout)
    r = kapi {"test", "-o", "plainTerminal", bad}
    assert.equal(1, r.status)
    assert.matches("0 successes / 1 failure", r.stdout)
  end)
end)

describe("an installed kapi", function()
  it("finds its Lua tree under <prefix>/share/kapi", function()
    local prefix = process.tempdir()
    local build_dir = KAPI:match("^(.*)/")
    local r = sh(("cmake --install %s --prefix %s >/dev/null && %s/bin/kapi version && " ..
                  "%s/bin/kapi -e 'print(require(\"kapi\").map({2}, function(x) return x * 21 end)[1])'")
                 :format(quote(build_dir), quote(prefix), quote(prefix), quote(prefix)))
    assert.equal(0, r.status, r.stderr)
    assert.matches("scripts: " .. prefix:gsub("%p", "%%%0") .. "/share/kapi\n", r.stdout)
    assert.matches("\n42\n$", r.stdout)
    -- Its tree was compiled at install for where it is installed: a file
    -- whose copy is current is not read (a line that fails is not run),
    -- and once the file changes, the file is what runs.
    local text = prefix .. "/share/kapi/kapi/text.lua"
    local copy = sh(("find %s -path '*/compiled%s/share/kapi/kapi/text.luac'"):format(quote(prefix), prefix))
    copy = copy.stdout:match("[^\n]+")
    assert.truthy(copy, "no compiled copy of kapi/text.lua")
    local use_text = ("%s/bin/kapi -e 'print(require(\"kapi.text\").trim(\" x \"))'"):format(quote(prefix))
    r = sh(("sed -i '1i error(\"the file was read\")' %s && touch -r %s %s && %s"):format(
      quote(text), quote(copy), quote(text), use_text))
    assert.equal(0, r.status, r.stderr)
    assert.equal("x\n", r.stdout)
    r = sh(("sleep 0.01 && touch %s && %s"):format(quote(text), use_text))
    assert.equal(1, r.status)
    assert.matches("the file was read", r.stderr)
    process.cleanup(prefix)
  end)
end)
