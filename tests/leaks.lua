-- Run under valgrind by ctest (tests/CMakeLists.txt): exercises the C
-- bindings (loop, tasks, HTTP, server, crypto, fs, JSON) so that a leak in
-- any of them fails the suite.
local kapi = require "kapi"
local store = require "kapi.auth.store"
local dir = os.tmpname()
os.remove(dir)
store.directory = dir
local sb <close> = kapi.sandbox.start {products = 200, stores = 5, items = 100, review_delay = 0.01}
local kroger = kapi.kroger.client {env = "sandbox", base_url = sb.url}
local results = kapi.map({"milk", "dairy", "organic"}, function(term)
  return #kroger:products {term = term, max_items = 20}:all()
end, {concurrency = 3})
assert(results.n == 3)
local c1 = kapi.content1.client {env = "sandbox", base_url = sb.url}
assert(#c1:fetch(nil, {page_size = 30}):all() == 100)
local stream <close> = kapi.http.open {url = sb.url .. "/v1/chains", raise = false}
for _ in stream:chunks() do end
pcall(kapi.http.get, "http://127.0.0.1:1/", {retry = false})
-- A request cancelled while it waits, and one still waiting when the
-- script ends: neither may leak its handle.
local slow <close> = kapi.server.listen {handler = function() kapi.sleep(10) return {body = "late"} end}
local waiting = kapi.spawn(kapi.http.get, slow.url)
kapi.sleep(0.05)
waiting:cancel()
pcall(waiting.wait, waiting)
kapi.spawn(kapi.http.get, slow.url)
-- A coroutine dropped while its request waits (resumed from a C callback,
-- its wait cannot reach the task): the answer arrives after the collector
-- has taken the coroutine, and must find nothing freed.
local soon <close> = kapi.server.listen {handler = function() kapi.sleep(0.05) return {body = "x"} end}
local co = coroutine.create(function() return kapi.http.get(soon.url) end)
pcall(table.sort, {1, 2}, function(a, b) coroutine.resume(co) return a < b end)
co = nil
collectgarbage()
collectgarbage()
kapi.sleep(0.2)
-- Arguments the C bindings refuse (usage errors raised from C) hold nothing.
pcall(kapi.spawn, 5)
pcall(kapi.sleep, -1)
pcall(kapi.json.encode, {print})
local transport = require "kapi.core.http"
pcall(transport.request, "GET", soon.url, {"X-A: a\r\nX-B: b"}, nil, 5, 5, 0)
pcall(transport.request, "GET /x HTTP/1.1\r\n", soon.url, nil, nil, 5, 5, 0)
pcall(transport.open, "GET", soon.url .. "/a b", nil, nil, 5, 5, 0)
pcall(require("kapi.core.server").listen, {serve = print, host = "10.0.0.1"})
-- URLs parsed for their host, good and bad; a private file created.
assert(select(2, transport.url_host("http://127.0.0.1.evil.test/")) == false)
assert(transport.url_host("http://[::1].evil/") == nil)
assert(require("kapi.core.fs").create(dir .. "-created", 384))
os.remove(dir .. "-created")
local t = kapi.spawn(function() kapi.sleep(10) end)
t:cancel()
pcall(t.wait, t)
-- XML (bindings/xml.c): a tree, a malformed document, each refusal
-- (entities, depth, size, a bad option), and CIC messages read whole:
-- every parser is freed.
local xml = require "kapi.core.xml"
assert(xml.parse('<a xmlns="urn:x" k="v"><b>text &amp; more</b></a>'))
assert(not xml.parse("<a><b>text</a>"))
assert(not xml.parse('<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'))
assert(not xml.parse(("<a>"):rep(300)))
assert(not xml.parse("<a/>", {max_bytes = 2}))
pcall(xml.parse, "<a/>", {max_depth = 0})
assert(#require("kapi.cic").read("tests/data/cic/good") == 15)
os.execute("rm -rf " .. dir)
print("ok")
-- The tracker's database: rows read, a statement refused, one closed twice.
do
  local sqlite = require "kapi.core.sqlite"
  local db = sqlite.open(":memory:")
  db:exec("CREATE TABLE t (a INTEGER, b TEXT)")
  db:run("INSERT INTO t VALUES (?, ?)", 1, "x")
  assert(#db:rows("SELECT * FROM t WHERE a = ?", 1) == 1)
  pcall(db.run, db, "INSERT INTO missing VALUES (1)")
  pcall(db.run, db, "SELECT ?", {})
  db:close()
  db:close()
  local h <close> = kapi.history.open(":memory:")
  h:record({{gtin = "10845678000023", recipientGln = "0838016000123", verdict = "DONE", publication = {}}}, "api")
end
