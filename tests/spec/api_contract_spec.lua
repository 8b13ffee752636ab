-- The contract of kapi's Lua API (docs/usage.md): a script that calls a
-- kapi function wrongly gets an error naming what was wrong, never a Lua
-- runtime error from inside kapi ("attempt to index a nil value" at
-- kapi/http.lua:538), which the command line would report as a bug in
-- kapi. Every function of the API (what docs/api.md documents, as the
-- modules declare it) and every method of the objects they make is called
-- with arguments of the wrong kinds; each call must either work or raise
-- an error that is not a Lua runtime error, neither inside kapi's tree
-- nor at the script's own line ("bad argument #1 to 'spawn'": kapi let
-- Lua's check speak instead of naming the mistake). A function declared
-- tomorrow is walked without a line added here. After the walk, the
-- mistakes it cannot make: elements, option values and options of the
-- wrong kind, fetch functions giving back no page, header injection.
local kapi = require "kapi"
local errors = require "kapi.errors"
local process = require "helpers.process"

local dir = process.tempdir()
local store = require "kapi.auth.store"

-- Values no function takes where it wants something else. No number or
-- string that could mean something (kapi.sleep(5) would sleep).
local WRONG = {true, print, {{}}, -1.5, "\0", {n = -1}}

-- Functions whose every call has an effect the walk must not have, or
-- that are not kapi's API: named with why.
local SKIP = {
  ["kapi.sandbox.start"] = "starts a 20000-product sandbox when its first argument is nil; "
                           .. "its wrong options are walked below",
  help = "prints; the REPL's tests show it",
}

-- A Lua runtime error ("attempt to index", "bad argument #1 to 'spawn'")
-- wherever it was raised: inside kapi's tree it is a bug in kapi; at the
-- script's own line, raised by a C function kapi gives out, it is kapi
-- letting Lua's own check speak instead of naming the mistake.
local function is_runtime(err)
  if type(err) ~= "string" then return false end
  return errors.internal_module((err:gsub("^[^\n]-:%d+: ", "", 1)), "?") ~= nil
end

local function is_bug(err)
  return errors.internal_module(err) ~= nil or is_runtime(err)
      or (type(err) == "string" and err:find("^[^\n]-:%d+: attempt to ") ~= nil and err:find(process.source_dir, 1, true))
end

-- Calls fn with each wrong value in each of the first three places.
local function walk(name, fn, self)
  local found = {}
  for position = 1, 3 do
    for _, value in ipairs(WRONG) do
      local args = {n = position}
      args[position] = value
      local ok, err
      if self then
        ok, err = pcall(fn, self, table.unpack(args, 1, args.n))
      else
        ok, err = pcall(fn, table.unpack(args, 1, args.n))
      end
      if not ok and is_bug(err) then
        found[#found + 1] = ("%s(%s in argument %d): %s"):format(name, type(value), position, errors.message(err))
        break
      end
    end
  end
  return found
end

describe("kapi's Lua API", function()
  setup(function()
    store.directory = dir .. "/tokens"
    kapi.load_all()
  end)
  teardown(function()
    store.directory = nil
    process.cleanup(dir)
  end)

  it("answers every wrongly called function with an error that names the mistake", function()
    local bugs = {}
    local seen = {}
    for _, entry in ipairs(kapi.doc.list()) do
      local path = entry.name
      if not path:find(":", 1, true) then
        local value = path == "help" and require("kapi.repl").help or nil
        if not value then
          value = {kapi = kapi}
          for part in path:gmatch("[^.]+") do value = value and value[part] end
        end
        assert(type(value) == "function", "declared but not found: " .. path)
        if not SKIP[path] and not seen[value] then
          seen[value] = true
          for _, bug in ipairs(walk(path, value)) do bugs[#bugs + 1] = bug end
        end
      end
    end
    -- The objects the modules make, and their methods.
    local objects = {
      kroger = kapi.kroger.client {env = "sandbox"}, content1 = kapi.content1.client {env = "sandbox"},
      items = kapi.items.client {env = "sandbox"}, task = kapi.spawn(function() end),
      service = kapi.auth.service {base_url = "http://127.0.0.1:1", client_id = "a", client_secret = "b"},
      signer = kapi.auth.oneworldsync {app_id = "a", secret = "b"},
      problems = kapi.recipe.problems {report = function() end},
      iterator = kapi.paginate.offset {fetch = function() return {}, 0 end},
    }
    for name, object in pairs(objects) do
      local mt = getmetatable(object)
      local index = mt and (type(mt.__index) == "table" and mt.__index or mt)
      for method, fn in pairs(index or {}) do
        if type(method) == "string" and type(fn) == "function" and not method:match("^_") and not seen[fn] then
          seen[fn] = true
          for _, bug in ipairs(walk(name .. ":" .. method, fn, object)) do bugs[#bugs + 1] = bug end
        end
      end
    end
    table.sort(bugs)
    assert.are.same({}, bugs)
  end)
end)

-- Mistakes inside the arguments: an element of the wrong type, an option
-- with a bad value, an option the function does not take. Each must be a
-- usage error (exit status 2) on one line naming the function and what
-- was wrong, never a Lua error, an internal error or a path into kapi.
local function usage_error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "no error")
  return err
end

local function assert_usage(expected, fn, ...)
  local err = usage_error_of(fn, ...)
  local message = errors.message(err)
  assert.is_true(errors.is(err, "usage"), "not a usage error: " .. message)
  assert.equal(2, errors.exit_code(err))
  assert.is_nil(message:find("\n", 1, true), message)
  assert.is_nil(message:find(process.source_dir, 1, true), message)
  assert.equal(expected, message)
end

describe("kapi's Lua API, inside its arguments", function()
  it("refuses bad tasks, sleeps and fan-outs with usage errors", function()
    assert_usage("kapi.spawn: fn must be a function, got number", kapi.spawn, 5)
    assert_usage("kapi.sleep: seconds must be from 0 to 1e9, got -1", kapi.sleep, -1)
    assert_usage("kapi.sleep: seconds must be a number, got table", kapi.sleep, {})
    assert_usage("kapi.map: list must be a table, got number", kapi.map, 5, print)
    assert_usage("kapi.map: fn must be a function, got nil", kapi.map, {1})
    assert_usage("kapi.map: opts must be a table, got number", kapi.map, {1}, print, 5)
    assert_usage("kapi.map: concurrency must be a whole number of at least 1, got -1", kapi.map, {1}, print,
                 {concurrency = -1})
    assert_usage("kapi.map: unknown option limit (options: concurrency)", kapi.map, {1}, print, {limit = 2})
  end)

  it("refuses query values that are not text, numbers or booleans", function()
    local http = kapi.http
    assert_usage('http.encode_query: the value of "a" must be a string, number or boolean, got function',
                 http.encode_query, {a = print})
    assert_usage('http.encode_query: the value of "a" must be a string, number or boolean, got table',
                 http.encode_query, {a = {{}}})
    assert_usage('http.encode_query: the value of "q" must be a string, number or boolean, got function',
                 http.encode_query, {{"q", print}})
    assert_usage("http.encode_query: entry 2 must be a {name, value} pair, got 5", http.encode_query, {{"q", 1}, 5})
    assert_usage("http.encode_query: names must be strings, got 3", http.encode_query, {a = 1, [3] = 2})
    assert.equal("a=1&a=x&b=true", http.encode_query {a = {1, "x"}, b = true, c = false})
    assert_usage("http.decode_query: text must be a string or nil, got number", http.decode_query, 5)
    assert_usage("http.unescape: s must be a string, got number", http.unescape, 5)
    assert_usage("http.configure: max_host_connections must be a whole number of at least 1, got 0",
                 http.configure, {max_host_connections = 0})
    assert_usage("http.configure: unknown option max_connections (options: max_host_connections, max_total_connections)",
                 http.configure, {max_connections = 4})
    assert_usage('http.request: query: the value of "a" must be a string, number or boolean, got function',
                 http.get, "http://127.0.0.1:1/", {query = {a = print}})
    assert_usage('http.request: form: the value of "b" must be a string, number or boolean, got table',
                 http.post, "http://127.0.0.1:1/", {form = {b = {{}}}})
  end)

  it("refuses header names, header values and methods that would write lines of their own", function()
    local http = kapi.http
    assert_usage("http.request: headers: the value of X-A has a CR, LF or NUL in it",
                 http.get, "http://127.0.0.1:1/", {headers = {["X-A"] = "a\r\nX-Injected: yes"}})
    assert_usage("http.request: headers: the value of X-A has a CR, LF or NUL in it",
                 http.get, "http://127.0.0.1:1/", {headers = {{"X-A", "a\0b"}}})
    assert_usage([[http.request: headers: "X-A\r\nX-Injected" is not a header name (letters, digits and ]]
                 .. [[!#$%&'*+-.^_`|~)]], http.get, "http://127.0.0.1:1/", {headers = {["X-A\r\nX-Injected"] = "yes"}})
    assert_usage([[http.request: headers: "X A" is not a header name (letters, digits and !#$%&'*+-.^_`|~)]],
                 http.get, "http://127.0.0.1:1/", {headers = {["X A"] = "1"}})
    assert_usage([[http.request: method "GET /evil HTTP/1.1\r\nX-Evil: 1\r\nFoo:" is not an HTTP method ]]
                 .. "(letters, digits, - and _)",
                 http.request, {url = "http://127.0.0.1:1/", method = "GET /evil HTTP/1.1\r\nX-Evil: 1\r\nFoo:"})
    assert_usage([[http.request: method "" is not an HTTP method (letters, digits, - and _)]],
                 http.request, {url = "http://127.0.0.1:1/", method = ""})
  end)

  it("says what a pagination's fetch returned when it is not a page", function()
    local function drain(iterator) for _ in iterator do end end
    assert_usage("paginate.offset: fetch returned 5 as the page's items, expected a table (or nil) "
                 .. "(after 0 items, on page 1)", drain, kapi.paginate.offset {fetch = function() return 5 end})
    assert_usage('paginate.offset: fetch returned "7" as the total, expected a number of items (or nil) '
                 .. "(after 0 items, on page 1)", drain, kapi.paginate.offset {fetch = function() return {1}, "7" end})
    assert_usage("paginate.pages: fetch returned boolean as the page's items, expected a table (or nil) "
                 .. "(after 0 items, on page 1)", drain, kapi.paginate.pages {fetch = function() return true end})
    assert_usage("paginate.cursor: fetch returned 5 as the page's items, expected a table (or nil) "
                 .. "(after 0 items, on page 1)", drain, kapi.paginate.cursor {fetch = function() return 5 end})
    assert_usage("paginate.cursor: fetch returned function as the page's items, expected a table (or nil) "
                 .. "(after 1 items, on page 2)", drain, kapi.paginate.cursor {prefetch = false, fetch = function(c)
                   if c then return print end
                   return {1}, "next"
                 end})
    assert_usage("paginate.link: fetch returned 5 as the response, expected a kapi.http response (or nil) "
                 .. "(after 0 items, on page 1)",
                 drain, kapi.paginate.link {url = "http://x", fetch = function() return {}, 5 end})
    assert_usage("paginate.link: fetch returned a table whose headers have no :all(name) as the response, "
                 .. "expected a kapi.http response (or nil) (after 0 items, on page 1)",
                 drain, kapi.paginate.link {url = "http://x", fetch = function() return {1}, {headers = {}} end})
    -- What is allowed stays allowed: no items (nil), a null total, a response without headers.
    assert.same({1, 2}, kapi.paginate.offset {fetch = function(start)
      if start == 0 then return {1, 2}, kapi.json.null end
    end}:all())
    assert.same({1}, kapi.paginate.link {url = "http://x", fetch = function() return {1}, {} end}:all())
  end)

  it("serves on loopback only, with options checked", function()
    local listen = kapi.server.listen
    assert_usage("server.listen: port must be a whole number from 0 to 65535, got -1", listen,
                 {handler = print, port = -1})
    assert_usage('server.listen: port must be a number, got "x"', listen, {handler = print, port = "x"})
    assert_usage("server.listen: port must be a whole number from 0 to 65535, got 1.5", listen,
                 {handler = print, port = 1.5})
    assert_usage('server.listen: host must be a loopback address (127.0.0.1), got "0.0.0.0"', listen,
                 {handler = print, host = "0.0.0.0"})
    assert_usage('server.listen: host must be a loopback address (127.0.0.1), got "127.0.0.256"', listen,
                 {handler = print, host = "127.0.0.256"})
    assert_usage("server.listen: handler must be a function, got nil", listen, {})
    assert_usage("server.listen: unknown option hots (did you mean host?)", listen, {handler = print, hots = "x"})
    assert_usage("server.listen: give both tls_cert and tls_key, or neither", listen,
                 {handler = print, tls_key = "key.pem"})
    -- The binding under it refuses other addresses too, whoever calls it.
    assert_usage("server: host must be a loopback IPv4 address, got 10.1.2.3", require("kapi.core.server").listen,
                 {serve = print, host = "10.1.2.3"})
    local srv <close> = listen {handler = function() return {body = "here"} end, host = "127.0.0.2"}
    assert.equal("here", kapi.http.get(srv.url).body)
  end)

  it("refuses wrong and unknown options of the sandbox and the clients", function()
    local start = kapi.sandbox.start
    assert_usage("sandbox.start: opts must be a table or nil, got number", start, 5)
    assert_usage("sandbox.start: products must be a whole number from 1 to 1000000, got -1", start, {products = -1})
    assert_usage('sandbox.start: seed must be a number, got "x"', start, {seed = "x"})
    assert_usage("sandbox.start: port must be a whole number from 0 to 65535, got 70000", start, {port = 70000})
    assert_usage("sandbox.start: review_delay must be a number from 0 to 604800, got -1", start, {review_delay = -1})
    assert_usage("sandbox.start: unknown option prodcts (did you mean products?)", start, {prodcts = 10})
    assert_usage("sandbox.start: unknown option bogus (options: coupons, daily_limits, deny_consent, faults, items, port, "
                 .. "products, redirect_uri, review_delay, seed, stores, tls_cert, tls_key, token_ttl, verbose)",
                 start, {bogus = 1})
    -- (the words after the option's name are faults.parse's, as kapi sandbox --faults gives them)
    local err = usage_error_of(start, {faults = "x=1"})
    assert.is_true(errors.is(err, "usage"))
    assert.matches("^sandbox%.start: faults x=1: unknown fault [^\n]+$", errors.message(err))
    assert_usage("kroger.client: unknown option bogus (options: base_url, client_id, client_secret, daily_limits, "
                 .. "env, max_offset, partner)", kapi.kroger.client, {bogus = 1})
    assert_usage([[kroger.client: partner must be true or false, got "yes"]], kapi.kroger.client,
                 {env = "sandbox", partner = "yes"})
    assert_usage("content1.client: unknown option secrt (did you mean secret?)", kapi.content1.client,
                 {env = "sandbox", secrt = "x"})
    assert_usage("doc.declare: name must be a string, got nil", kapi.doc.declare)
    assert_usage("doc.declare: text must be a string, got nil", kapi.doc.declare, "kapi.x", print)
  end)
end)

-- Header injection, against a real server on loopback: a request whose
-- header or method would carry lines of its own is refused before
-- anything is sent, by the policy and, under it, by the transport.
describe("kapi.http and header injection", function()
  local received, srv
  before_each(function()
    received = {}
    srv = kapi.server.listen {handler = function(req)
      received[#received + 1] = {method = req.method, path = req.path, headers = tostring(req.headers)}
      return {body = "ok"}
    end}
  end)
  after_each(function() srv:close() end)

  local function refused(fn)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    assert.is_true(errors.is(err, "usage"), errors.message(err))
    kapi.sleep(0.05) -- anything sent would have arrived by now
    return err
  end

  it("sends nothing for a header value, a header name or a method with CR or LF in it", function()
    refused(function() kapi.http.get(srv.url, {headers = {["X-A"] = "a\r\nX-Injected: yes"}}) end)
    refused(function() kapi.http.get(srv.url, {headers = {{"X-A", "a\nX-Injected: yes"}}}) end)
    refused(function() kapi.http.get(srv.url, {headers = {["X-A\r\nX-Injected"] = "yes"}}) end)
    refused(function() kapi.http.request {url = srv.url, method = "GET /evil HTTP/1.1\r\nX-Evil: 1\r\nFoo:"} end)
    refused(function() kapi.http.open {url = srv.url, headers = {["X-A"] = "a\r\nX-Injected: yes"}} end)
    assert.same({}, received)
    -- The same requests without the injection get through, as sent.
    kapi.http.get(srv.url, {headers = {["X-A"] = "a, b"}})
    kapi.http.request {url = srv.url .. "/purge", method = "purge"}
    assert.equal(2, #received)
    assert.matches("\nX%-A: a, b", "\n" .. received[1].headers)
    assert.equal("PURGE", received[2].method)
  end)

  it("has the transport refuse such lines and URLs too, whoever built them", function()
    local transport = require "kapi.core.http"
    local function send(method, url, headers) return transport.request(method, url, headers, nil, 5, 5, 0) end
    local err = refused(function() send("GET", srv.url, {"X-A: a\r\nX-Injected: yes"}) end)
    assert.equal('http: header line 1 is not a valid "Name: value" line', errors.message(err))
    refused(function() send("GET", srv.url, {"Accept: */*", "X-A: a\0b"}) end)
    refused(function() send("GET", srv.url, {"Bad Name: x"}) end)
    err = refused(function() send("GET /evil HTTP/1.1\r\nX-Evil: 1\r\nFoo:", srv.url) end)
    assert.equal("http: the method is not an HTTP method (a token, RFC 9110)", errors.message(err))
    err = refused(function() send("GET", srv.url .. "/a\r\nX-Injected: yes") end)
    assert.equal("http: url has a space or a control character at byte " .. #srv.url + 3, errors.message(err))
    refused(function() send("GET", srv.url .. "/a\0b") end)
    assert.same({}, received)
    assert.equal(200, send("GET", srv.url, {"X-A: fine"}))
    assert.equal(1, #received)
  end)
end)
