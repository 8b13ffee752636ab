-- The contract of kapi's Lua API as a script's author meets it on the
-- command line (docs/usage.md, "The contract"): a wrong argument to a kapi
-- function stops the script with status 2 and one line naming the
-- function and what was wrong, never a Lua "bad argument", an "internal
-- error", or a path into kapi's Lua tree. Each case is one a hostile
-- review found, run as a user runs it: `kapi -e` in a subprocess, no
-- credentials, so on the sandbox kapi starts in its own process.
local process = require "helpers.process"
local core = require "kapi.core"

local ENV = process.sandbox_env()

local function kapi(code, opts)
  opts = opts or {}
  local args = {}
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  args[#args + 1] = "-e"
  args[#args + 1] = code
  return process.kapi_run(args, {env = ENV, stdin = opts.stdin})
end

-- Nothing of kapi's inside shows without --verbose.
local INTERNALS = {"attempt to ", "bad argument #", "internal error", "stack traceback", "(error object is",
                   core.script_dir}

local function assert_no_internals(text)
  for _, pattern in ipairs(INTERNALS) do assert.is_nil(text:find(pattern, 1, true), text) end
end

-- The script stopped with status 2 and exactly the line `line` on stderr.
local function assert_usage(code, line)
  local r = kapi(code)
  assert.equal(2, r.status, code .. "\n" .. r.stderr)
  local stderr = r.stderr:gsub("kapi: using the built%-in sandbox[^\n]*\n", "")
  assert.equal("kapi: " .. line .. "\n", stderr)
  assert_no_internals(stderr)
  return r
end

describe("a script calling kapi wrongly", function()
  it("gets a usage error from the task functions, as from the others", function()
    assert_usage("kapi.spawn(5)", "kapi.spawn: fn must be a function, got number")
    assert_usage("kapi.sleep(-1)", "kapi.sleep: seconds must be from 0 to 1e9, got -1")
    assert_usage("kapi.map(5, print)", "kapi.map: list must be a table, got number")
    assert_usage("kapi.map({1}, print, 5)", "kapi.map: opts must be a table, got number")
    assert_usage("kapi.json.decode(5)", "json.decode: text must be a string, got number")
    assert_usage("kapi.http.get(5)", "http: url must be an http:// or https:// URL, got 5")
    assert_usage("kapi.json.encode{print}", "json: cannot encode a function value")
  end)

  it("is refused a header or method that would inject lines, before anything reaches the server", function()
    local r = kapi([[
      local seen = 0
      local srv <close> = kapi.server.listen {handler = function() seen = seen + 1; return {body = "ok"} end}
      local tries = {
        function() return kapi.http.get(srv.url, {headers = {["X-A"] = "a\r\nX-Injected: yes"}}) end,
        function() return kapi.http.get(srv.url, {headers = {["X-A\r\nX-Injected"] = "yes"}}) end,
        function() return kapi.http.request {url = srv.url, method = "GET /evil HTTP/1.1\r\nX-Evil: 1\r\nFoo:"} end,
      }
      local last
      for _, try in ipairs(tries) do
        local ok, err = pcall(try)
        assert(not ok)
        io.stderr:write("kapi: ", tostring(err), "\n")
        last = err
      end
      kapi.sleep(0.1)
      print("the server saw " .. seen)
      error(last, 0)
    ]])
    assert.equal(2, r.status)
    assert.equal("the server saw 0\n", r.stdout)
    local lines = {}
    for line in r.stderr:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.same({"kapi: http.request: headers: the value of X-A has a CR, LF or NUL in it",
                 [[kapi: http.request: headers: "X-A\r\nX-Injected" is not a header name ]]
                 .. [[(letters, digits and !#$%&'*+-.^_`|~)]],
                 [[kapi: http.request: method "GET /evil HTTP/1.1\r\nX-Evil: 1\r\nFoo:" is not an HTTP method ]]
                 .. "(letters, digits, - and _)",
                 [[kapi: http.request: method "GET /evil HTTP/1.1\r\nX-Evil: 1\r\nFoo:" is not an HTTP method ]]
                 .. "(letters, digits, - and _)"}, lines)
  end)

  it("is refused query values that are functions or tables", function()
    assert_usage([[kapi.http.encode_query{a = print}]],
                 [[http.encode_query: the value of "a" must be a string, number or boolean, got function]])
    assert_usage([[kapi.http.get("http://127.0.0.1:1/", {query = {a = {{}}}})]],
                 [[http.request: query: the value of "a" must be a string, number or boolean, got table]])
  end)

  it("hears what its pagination's fetch returned, when it is not a page", function()
    assert_usage([[for x in kapi.paginate.link{url = "http://x", fetch = function() return {}, 5 end} do end]],
                 "paginate.link: fetch returned 5 as the response, expected a kapi.http response (or nil) "
                 .. "(after 0 items, on page 1)")
    assert_usage([[for x in kapi.paginate.offset{fetch = function() return 5 end} do end]],
                 "paginate.offset: fetch returned 5 as the page's items, expected a table (or nil) "
                 .. "(after 0 items, on page 1)")
    assert_usage([[for x in kapi.paginate.cursor{fetch = function() return 5 end} do end]],
                 "paginate.cursor: fetch returned 5 as the page's items, expected a table (or nil) "
                 .. "(after 0 items, on page 1)")
  end)

  it("cannot serve beyond loopback or on a port that is none", function()
    assert_usage("kapi.server.listen{handler = print, port = -1}",
                 "server.listen: port must be a whole number from 0 to 65535, got -1")
    assert_usage([[kapi.server.listen{handler = print, port = "x"}]], [[server.listen: port must be a number, got "x"]])
    assert_usage([[kapi.server.listen{handler = print, host = "0.0.0.0"}]],
                 [[server.listen: host must be a loopback address (127.0.0.1), got "0.0.0.0"]])
  end)

  it("has a failing handler answered with a 500 that tells the client nothing, and told on stderr", function()
    local r = kapi([[
      local srv <close> = kapi.server.listen {handler = function() error("hboom") end}
      local res = kapi.http.get(srv.url, {raise = false, retry = false})
      print(res.status, res:json().error_description)
    ]])
    assert.equal(0, r.status)
    assert.equal("500\tthe server's request handler failed\n", r.stdout)
    assert.equal("kapi: server: a request handler failed: (command line):1: hboom\n", r.stderr)
    r = kapi([[
      local srv <close> = kapi.server.listen {handler = function() return {status = "x"} end}
      print(kapi.http.get(srv.url, {raise = false, retry = false, timeout = 5}).status)
    ]])
    assert.equal(0, r.status)
    assert.equal("500\n", r.stdout)
    assert.equal('kapi: server: the request handler returned status = "x", expected a whole number from 100 to 599\n',
                 r.stderr)
    -- A bug in kapi's own code under a handler is said as one, the details with --verbose.
    local code = [[
      local srv <close> = kapi.server.listen {handler = function() return kapi.recipe.render_table(nil, {}) end}
      print(kapi.http.get(srv.url, {raise = false, retry = false}).status)
    ]]
    r = kapi(code)
    assert.equal("500\n", r.stdout)
    assert.equal("kapi: server: a request handler failed: internal error in kapi.output (a bug in kapi; run again "
                 .. "with --verbose for the details, and please report it)\n", r.stderr)
    r = kapi(code, {args = {"--verbose"}})
    assert.matches("kapi: server: a request handler failed: attempt to index a nil value\nstack traceback:\n", r.stderr)
  end)

  it("is refused wrong and unknown options of the sandbox, the clients and kapi.doc", function()
    assert_usage("kapi.sandbox.start(5)", "sandbox.start: opts must be a table or nil, got number")
    assert_usage("kapi.sandbox.start{products = -1}",
                 "sandbox.start: products must be a whole number from 1 to 1000000, got -1")
    assert_usage([[kapi.sandbox.start{seed = "x"}]], [[sandbox.start: seed must be a number, got "x"]])
    assert_usage("kapi.sandbox.start{bogus = 1}", "sandbox.start: unknown option bogus (options: coupons, "
                 .. "daily_limits, deny_consent, faults, items, port, products, redirect_uri, review_delay, seed, stores, tls_cert, "
                 .. "tls_key, token_ttl, verbose)")
    assert_usage("kapi.kroger.client{bogus = 1}", "kroger.client: unknown option bogus (options: base_url, client_id, "
                 .. "client_secret, daily_limits, env, max_offset, partner)")
    assert_usage("kapi.doc.declare()", "doc.declare: name must be a string, got nil")
  end)
end)

describe("a recipe of one's own", function()
  local dir, env
  before_each(function()
    dir = process.tempdir()
    env = process.sandbox_env()
    env.KAPI_PATH = dir
  end)
  after_each(function() process.cleanup(dir) end)

  local function recipe(name, text)
    return process.write(dir .. "/recipes/" .. name .. ".lua", text)
  end

  local function run(args)
    return process.kapi_run(args, {env = env})
  end

  it("whose fields are of the wrong type is refused in one line naming the file and the field", function()
    local cases = {
      {"args5", "return {summary = 'x', arguments = 5, run = function() end}", "arguments must be a function, got 5"},
      {"summary5", "return {summary = 5, run = function() end}", "summary must be a string, got 5"},
      {"nosummary", "return {run = function() end}", "the recipe has no summary (the line kapi recipes shows for it)"},
      {"run5", "return {summary = 'x', run = 5}", "run must be a function, got 5"},
      {"desc", "return {summary = 'x', description = {}, run = function() end}", "description must be a string, got table"},
      {"notone", "return {summary = 'x'}", "not a recipe (it must return a table with a run function)"},
    }
    for _, case in ipairs(cases) do
      local path = recipe(case[1], case[2])
      local r = run {"run", case[1]}
      assert.equal(2, r.status, case[1] .. ": " .. r.stderr)
      assert.equal("kapi: " .. path .. ": " .. case[3] .. "\n", r.stderr)
      assert.equal("", r.stdout)
    end
    -- Run by its path, the same checks, but no summary is needed.
    local r = run {"run", dir .. "/recipes/args5.lua"}
    assert.equal(2, r.status)
    assert.equal("kapi: " .. dir .. "/recipes/args5.lua: arguments must be a function, got 5\n", r.stderr)
    assert.equal(0, run({"run", dir .. "/recipes/nosummary.lua"}).status)
    -- kapi recipes lists each with its problem.
    r = run {"recipes"}
    assert.equal(0, r.status)
    assert.matches("\nsummary5 +%(broken: [^\n]*summary must be a string, got 5%)\n", "\n" .. r.stdout)
  end)

  it("exits with what its run returned when that is an exit status, and says so when it is not", function()
    recipe("status", [[return {summary = "status", run = function()
      local v = os.getenv("RETURN")
      if v == "nil" then return nil elseif v == "true" then return true elseif v == "false" then return false
      elseif v == "text" then return "done" elseif v == "table" then return {} end
      return tonumber(v)
    end}]])
    for value, status in pairs {["nil"] = 0, ["true"] = 0, ["false"] = 1, ["0"] = 0, ["3"] = 3, ["125"] = 125,
                                ["130"] = 130, ["2.0"] = 2} do
      env.RETURN = value
      local r = run {"run", "status"}
      assert.equal(status, r.status, value)
      assert.equal("", r.stderr, value)
    end
    for value, shown in pairs {["300"] = "300", ["-1"] = "-1", ["126"] = "126", ["256"] = "256", ["2.5"] = "2.5",
                               text = '"done"', table = "table"} do
      env.RETURN = value
      local r = run {"run", "status"}
      assert.equal(1, r.status, value)
      assert.equal("kapi: status: run returned " .. shown
                   .. ", not an exit status (nil, true, false, 0 to 125 or 130)\n", r.stderr)
    end
  end)
end)

describe("the REPL, with its input piped", function()
  local function repl(input, args)
    local words = {}
    for _, a in ipairs(args or {}) do words[#words + 1] = a end
    words[#words + 1] = "repl"
    return process.kapi_run(words, {env = ENV, stdin = input})
  end

  it("writes errors on stderr, values on stdout, as lua does", function()
    local r = repl("error('x')\n")
    assert.equal(0, r.status)
    assert.equal("", r.stdout)
    assert.equal("stdin:1: x\n", r.stderr)
    r = repl("1 + 1\nx = = 1\nerror({})\n'after'\n")
    assert.equal("2\nafter\n", r.stdout)
    assert.matches("^stdin:1: unexpected symbol near '='\n%(error object is a table value%)\n$", r.stderr)
  end)

  it("says a failure inside kapi's own Lua as the command line does, the details with --verbose", function()
    local r = repl("kapi.recipe.render_table(nil, {})\n")
    assert.equal(0, r.status)
    assert.equal("", r.stdout)
    assert.equal("internal error in kapi.output (a bug in kapi; run again with --verbose for the details, "
                 .. "and please report it)\n", r.stderr)
    r = repl("kapi.recipe.render_table(nil, {})\n", {"--verbose"})
    assert.equal("attempt to index a nil value\n", r.stderr)
    r = repl("kapi.map(5, print)\n")
    assert.equal("kapi.map: list must be a table, got number\n", r.stderr)
  end)
end)
