-- The recipe toolkit: tables fitted to a width, JSON with keys in order,
-- CSV quoting, --shard, GTIN lists with bad entries named, option values,
-- places and their stores, batches, money.
local recipe = require "kapi.recipe"
local json = require "kapi.json"
local process = require "helpers.process"

describe("kapi.recipe output", function()
  local columns = {{key = "gtin", title = "GTIN"}, {key = "verdict", title = "VERDICT"},
                   {key = "why", title = "WHY", wrap = true}}
  local rows = {{gtin = "10614141000019", verdict = "DONE", why = "synchronised at the certified GLN"},
                {gtin = "10845678000023", verdict = "READY_TO_REPUBLISH",
                 why = "rejected for its model GTIN, changed since, passes every rule now"}}

  it("aligns columns and keeps rows on one line when there is no width limit", function()
    local text = recipe.render_table(rows, columns)
    assert.equal(table.concat({
      "GTIN            VERDICT             WHY",
      "10614141000019  DONE                synchronised at the certified GLN",
      "10845678000023  READY_TO_REPUBLISH  rejected for its model GTIN, changed since, passes every rule now",
    }, "\n") .. "\n", text)
  end)

  it("wraps the wrap column at word boundaries to fit the terminal's width", function()
    local text = recipe.render_table(rows, columns, {width = 60})
    for line in text:gmatch("[^\n]+") do assert.is_true(utf8.len(line) <= 60, line) end
    assert.matches("10845678000023  READY_TO_REPUBLISH  rejected for its model\n" .. (" "):rep(36)
                   .. "GTIN, changed since,\n" .. (" "):rep(36) .. "passes every rule now\n", text)
  end)

  it("measures a cell in characters, in bytes when it is not UTF-8", function()
    local text = recipe.render_table({{a = "café", b = "x"}, {a = "caf\xe9!", b = "y"}, {a = "ab", b = "z"}},
                                     {{key = "a", title = "A"}, {key = "b", title = "B"}})
    assert.equal("A      B\ncafé   x\ncaf\xe9!  y\nab     z\n", text)
    local ascii_length = require("kapi.core.text").ascii_length
    math.randomseed(23)
    for _ = 1, 3000 do
      local bytes = {}
      for i = 1, math.random(0, 40) do bytes[i] = string.char(math.random(0, math.random() < 0.9 and 127 or 255)) end
      local s = table.concat(bytes)
      assert.equal(not s:find("[\128-\255]") and #s or nil, ascii_length(s), ("%q"):format(s))
    end
  end)

  it("colours only when asked, and resets after each cell", function()
    local styled = {{key = "verdict", title = "VERDICT", style = function(v) return v == "DONE" and "green" end}}
    assert.matches("\27%[32mDONE\27%[0m", recipe.render_table(rows, styled, {color = true}))
    assert.is_nil(recipe.render_table(rows, styled):find("\27", 1, true))
  end)

  it("writes JSON objects with keys in the documented order, nil as null", function()
    local text = recipe.render_json({{b = 1, a = "x"}, {a = json.null}}, {"a", "b"})
    assert.equal('[\n  {"a":"x","b":1},\n  {"a":null,"b":null}\n]\n', text)
    assert.same({{a = "x", b = 1}, {a = json.null, b = json.null}}, json.decode(text))
    assert.equal("[]\n", recipe.render_json({}, {"a"}))
  end)

  it("quotes CSV fields that need it (RFC 4180)", function()
    local text = recipe.render_csv({{a = 'say "hi", then go', b = "line\nbreak"}, {a = "plain"}}, {"a", "b"})
    assert.equal('a,b\r\n"say ""hi"", then go","line\nbreak"\r\nplain,\r\n', text)
    local parsed = require("kapi.items").parse_csv(text)
    assert.equal('say "hi", then go', parsed[2][1])
  end)
end)

describe("kapi.recipe --shard", function()
  local list = {}
  for i = 1, 200 do list[i] = ("%014d"):format(i * 7919) end

  it("splits by key into disjoint shards that cover the input, whatever the order", function()
    local seen, reversed = {}, {}
    for i = #list, 1, -1 do reversed[#reversed + 1] = list[i] end
    for i = 1, 4 do
      local part = recipe.shard({shard = i .. "/4"}, list)
      local again = recipe.shard({shard = i .. "/4"}, reversed)
      assert.equal(#part, #again)
      assert.is_true(#part > 20, "a shard of " .. #part .. " is too uneven")
      for _, g in ipairs(part) do
        assert.is_nil(seen[g])
        seen[g] = i
      end
    end
    local count = 0
    for _ in pairs(seen) do count = count + 1 end
    assert.equal(#list, count)
    assert.equal(list, recipe.shard({}, list))
  end)

  it("rejects a malformed shard with a usage error", function()
    for _, bad in ipairs {"0/4", "5/4", "1/0", "a/b", "1-4"} do
      local ok, err = pcall(recipe.shard, {shard = bad}, list)
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.matches("expected I/N", err.message)
    end
  end)
end)

describe("kapi.recipe.gtins", function()
  it("normalises, drops duplicates, and names bad entries by argument or file line", function()
    local dir = process.tempdir()
    process.write(dir .. "/list.csv", "gtin,note\n614141000012,each\n# comment\n10614141000018,bad check digit\n")
    process.write(dir .. "/comments.txt", "# nothing but a comment\n\n")
    local problems = recipe.problems {report = function() end}
    local got = recipe.gtins({"00614141000012", "12ab"},
                             {dir .. "/list.csv", dir .. "/missing", dir .. "/comments.txt"}, problems)
    process.cleanup(dir)
    assert.same({"00614141000012"}, got)
    assert.equal(4, #problems)
    assert.equal(4, problems.inputs)
    assert.matches("^argument 2: .*non%-digit", problems[1])
    assert.matches("list%.csv:4: .*check digit 8; it should be 9", problems[2])
    assert.matches("missing: No such file", problems[3])
    assert.matches("comments%.txt: holds no GTIN", problems[4])
    assert.equal(2, recipe.status(problems, true))
  end)
end)

describe("kapi.input.entries", function()
  it("reads a line of one value as the CSV reading of it would", function()
    local input, csv = require "kapi.input", require "kapi.csv"
    local lines = {"614141000012", "  614141000012\t", "\t 10614141000019  ", "a b", "x\ty", " ",
                   "614141000012 # a note", "\"614141000012\"", "614141000012,each", "#614141000012"}
    local dir = process.tempdir()
    process.write(dir .. "/list.txt", table.concat(lines, "\n") .. "\n")
    local got = input.entries(dir .. "/list.txt")
    process.cleanup(dir)
    local n = 0
    for i, line in ipairs(lines) do
      local text = line:gsub("^%s*#.*", ""):gsub("%s#.*", "")
      if text:find("%S") then
        n = n + 1
        assert.equal(i, got[n].line)
        assert.same(csv.rows(text, {trim = true})(), got[n].fields, line)
      end
    end
    assert.equal(n, #got)
    assert.same({"614141000012"}, got[2].fields)
    assert.same({"a b"}, got[4].fields)
  end)
end)

-- A usage error's message, or a failure when fn does not raise one.
local function usage_message(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "no usage error")
  assert.equal("usage", err.kind, tostring(err))
  return err.message
end

-- A problems list (as recipe.problems) that keeps quiet.
local function collect()
  return recipe.problems {report = function() end}
end

describe("kapi.recipe options", function()
  it("flattens an option's values however they were given", function()
    assert.same({"A", "B", "C", "D", "E"}, recipe.values({{"A", "B"}, {"C,D"}, "E"}))
    assert.same({"A", "B"}, recipe.values({{" A , B,"}}))
    assert.same({}, recipe.values(nil))
    assert.same({}, recipe.values({}))
  end)

  it("converts a whole number in range, and names the option otherwise", function()
    local radius = recipe.whole_number("--radius", 1, 100)
    assert.equal(1, radius("1"))
    assert.equal(100, radius("100"))
    assert.equal(math.type(radius("10")), "integer")
    for _, bad in ipairs {"0", "101", "2.5", "ten", ""} do
      local n, message = radius(bad)
      assert.is_nil(n)
      assert.equal("--radius " .. bad .. ": expected a whole number from 1 to 100", message)
    end
  end)

  it("raises usage errors with a formatted message", function()
    assert.equal('--term "mi": give at least 3', usage_message(recipe.usage, "--term %q: give at least %d", "mi", 3))
  end)
end)

describe("kapi.recipe places", function()
  it("adds the place options, which parse into what recipe.place reads", function()
    local parser = require("kapi.parsing").parser("kapi run test")
    recipe.place_options(parser, {store = true})
    local args = parser:parse {"--near", "39.1,-84.5", "--store", "01400376,01601423", "--store", "01400377"}
    assert.is_nil(args.radius) -- recipe.place gives the default: a --radius with no place is refused
    local zip = parser:parse {"--zip", "45202"}
    recipe.place(zip)
    assert.equal(10, zip.radius)
    assert.same({"01400376,01601423", "01400377"}, args.store)
    assert.same({"01400376", "01601423", "01400377"}, recipe.values(args.store))
    -- One value a use: what follows is not the option's
    assert.is_false((parser:pparse {"--store", "01400376", "01601423"}))
    assert.is_nil(args.zip)
    local ok, err = parser:pparse {"--radius", "500"}
    assert.is_false(ok)
    assert.matches("%-%-radius 500: expected a whole number from 1 to 100", err)
    local bare = require("kapi.parsing").parser("kapi run test")
    recipe.place_options(bare)
    assert.is_nil(bare:parse({}).store)
  end)

  it("returns the checked place: stores, a ZIP code, a point or none", function()
    assert.same({ids = {"01400376", "01601423"}}, recipe.place {store = {{"01400376,01601423"}}})
    assert.same({ids = {"01400376"}}, recipe.place {store = "01400376"})
    assert.same({zip = "45202"}, recipe.place {zip = "45202"})
    assert.same({lat = 39.1, lon = -84.5, latlong = "39.100000,-84.500000", named = "--near  39.1, -84.5 "},
                recipe.place {near = " 39.1, -84.5 "})
    assert.same({lat = 39, lon = -84, latlong = "39.000000,-84.000000", named = "--lat 39 --lon -84"},
                recipe.place {lat = "39", lon = "-84"})
    assert.same({}, recipe.place {store = {}})
  end)

  it("names what is wrong with a place, as typed", function()
    assert.equal("--near north: expected LAT,LON in degrees, e.g. 39.10,-84.51", usage_message(recipe.place, {near = "north"}))
    assert.equal("--lat and --lon go together", usage_message(recipe.place, {lat = "39"}))
    assert.equal("--lat abc: expected degrees from -90 to 90", usage_message(recipe.place, {lat = "abc", lon = "1"}))
    assert.equal("--lat 0x27: expected degrees from -90 to 90", usage_message(recipe.place, {lat = "0x27", lon = "1"}))
    assert.equal("--near 1.2.3,4: expected LAT,LON in degrees, e.g. 39.10,-84.51", usage_message(recipe.place, {near = "1.2.3,4"}))
    assert.equal("--near longitude 190: expected degrees from -180 to 180", usage_message(recipe.place, {near = "10,190"}))
    assert.equal("give --near LAT,LON or --lat and --lon, not both",
                 usage_message(recipe.place, {near = "10,10", lat = "1", lon = "2"}))
    assert.equal("--zip 4520: expected 5 digits", usage_message(recipe.place, {zip = "4520"}))
    assert.equal("--store 0140037: a location id has 8 digits (3-digit division + 5-digit store), e.g. 01400376",
                 usage_message(recipe.place, {store = {{"01400376", "0140037"}}}))
  end)

  it("takes one place: two is an error in the recipe's words, none when the recipe says so", function()
    assert.matches("^give one place", usage_message(recipe.place, {zip = "45202", store = {{"01400376"}}}))
    assert.equal("not both", usage_message(recipe.place, {zip = "45202", near = "39,-84"}, {conflict = "not both"}))
    assert.equal("where?", usage_message(recipe.place, {}, {missing = "where?"}))
    assert.same({}, recipe.place({}, {missing = false}))
  end)

  -- A Kroger client that answers locations{} from a list and records the calls.
  local function fake_kroger(known)
    local client = {calls = {}}
    function client:locations(query)
      self.calls[#self.calls + 1] = query
      local out = {}
      for _, s in ipairs(known) do
        for _, id in ipairs(query.locationId or {s.locationId}) do
          if id == s.locationId then out[#out + 1] = s end
        end
      end
      return out
    end
    return client
  end

  it("finds the stores given, in their order, and names an unknown one", function()
    local a, b = {locationId = "01400376"}, {locationId = "01601423"}
    local kroger, problems = fake_kroger {a, b}, collect()
    local stores = recipe.stores(kroger, {ids = {"01601423", "01499999", "01400376"}}, nil, problems)
    assert.same({b, a}, stores)
    assert.same({"--store 01499999: no such store"}, {table.unpack(problems)})
    assert.equal(1, problems.inputs)
    assert.equal(1, #kroger.calls)
    assert.equal(3, kroger.calls[1].limit)
  end)

  it("asks for the stores nearest a ZIP code or a point, or none for no place", function()
    local kroger = fake_kroger {{locationId = "01400376"}}
    assert.equal(1, #recipe.stores(kroger, {zip = "45202"}, nil, collect()))
    recipe.stores(kroger, {latlong = "39.100000,-84.500000"}, {radius = 10, limit = 3}, collect())
    assert.same({zip = "45202", radius = 100, limit = 5}, kroger.calls[1])
    assert.same({latlong = "39.100000,-84.500000", radius = 10, limit = 3}, kroger.calls[2])
    assert.same({}, recipe.stores(kroger, {}, nil, collect()))
    assert.equal(2, #kroger.calls)
  end)

  it("makes a place with no store in reach an input error, in the same words everywhere", function()
    local kroger = fake_kroger {}
    local ok, err = pcall(recipe.stores, kroger, {zip = "90210"}, {radius = 10}, collect())
    assert.is_false(ok)
    assert.equal("input", err.kind)
    assert.equal("--zip 90210: no store within 10 miles; try a larger --radius", err.message)
    ok, err = pcall(recipe.stores, kroger, {latlong = "1.000000,2.000000"}, nil, collect())
    assert.equal("--near 1.000000,2.000000: no store within 100 miles", err.message)
  end)
end)

describe("kapi.recipe helpers", function()
  it("cuts a list into batches of at most size, in order, leaving the list alone", function()
    local list = {}
    for i = 1, 120 do list[i] = i end
    local batches = recipe.batches(list, 50)
    assert.equal(3, #batches)
    assert.same({50, 50, 20}, {#batches[1], #batches[2], #batches[3]})
    assert.equal(51, batches[2][1])
    assert.equal(120, batches[3][20])
    assert.equal(120, #list)
    assert.same({{1, 2}}, recipe.batches({1, 2}, 50))
    assert.same({}, recipe.batches({}, 50))
  end)

  it("writes money and keeps only prices above 0", function()
    assert.equal("$2.49", recipe.money(2.49))
    assert.equal("$3.00", recipe.money(3))
    assert.is_nil(recipe.money(nil))
    assert.equal(1.5, recipe.positive(1.5))
    assert.is_nil(recipe.positive(0))
    assert.is_nil(recipe.positive(-1))
    assert.is_nil(recipe.positive(nil))
    assert.is_nil(recipe.positive("a"))
  end)

  it("reads a file's lines, or names the file that cannot be read", function()
    local dir = process.tempdir()
    process.write(dir .. "/list.txt", "one\n\ntwo\n")
    local problems = collect()
    local got = recipe.lines(dir .. "/list.txt", problems)
    local missing = recipe.lines(dir .. "/missing.txt", problems)
    process.cleanup(dir)
    assert.same({"one", "", "two"}, got)
    assert.same({}, missing)
    assert.equal(1, #problems)
    assert.matches("missing%.txt: No such file", problems[1])
  end)
end)

describe("kapi.recipe tables with text wider than a column", function()
  it("cuts a long word at a character boundary, never inside a UTF-8 sequence", function()
    local rows = {{a = ("×"):rep(30)}}
    local text = recipe.render_table(rows, {{key = "a", title = "A", wrap = true}}, {width = 20})
    for line in text:gmatch("[^\n]+") do
      assert.is_truthy(utf8.len(line), "invalid UTF-8: " .. line)
      assert.is_true(utf8.len(line) <= 20)
    end
  end)
end)

describe("kapi.recipe.apply", function()
  local kapi = require "kapi"
  local errors = require "kapi.errors"
  local sb, client
  setup(function()
    sb = kapi.sandbox.start {products = 300, stores = 10}
    client = kapi.kroger.client {base_url = sb.url, client_id = "kapi-sandbox", client_secret = "sandbox-secret"}
  end)
  teardown(function() sb:close() end)

  -- A change at the sandbox that meets the fault asked for: real answers
  -- and real broken connections, over loopback.
  local function change(row)
    return kapi.http.request {url = sb.url .. "/v1/chains", auth = client:service(),
                              headers = {["X-Sandbox-Fault"] = row.fault}, timeout = 0.3, retry = false}
  end

  it("tells changes surely not made from those whose answer was lost, and goes on after either", function()
    local rows = {{fault = nil}, {fault = "5xx"}, {fault = "reset"}, {fault = "slow:2s"}, {fault = nil}}
    local stop = recipe.apply(rows, change)
    assert.is_nil(stop)
    local outcomes = {}
    for i, row in ipairs(rows) do outcomes[i] = row.outcome end
    assert.same({"done", "unknown", "unknown", "unknown", "done"}, outcomes)
    assert.matches("may or may not have been done", rows[4].error)
    assert.truthy(rows[1].answer)
  end)

  it("marks a refusal failed, and stops at a setup error or Ctrl-C, the rest not done", function()
    local refused = {{}, {}}
    recipe.apply(refused, function() return kapi.http.get(sb.url .. "/v1/no-such-path", {retry = false}) end)
    assert.same({"failed", "failed"}, {refused[1].outcome, refused[2].outcome})
    -- Nothing listens there: the request never left, so nothing was done.
    local unsent = {{}}
    recipe.apply(unsent, function() return kapi.http.post("http://127.0.0.1:1/v1/cart/add", {json = {}, retry = false}) end)
    assert.equal("failed", unsent[1].outcome, unsent[1].error)
    for _, stopper in ipairs {errors.new("auth", "the customer login has expired; run: kapi auth login", {setup = true}),
                              errors.new("interrupted", "interrupted")} do
      local rows, calls = {{}, {}, {}}, 0
      local stop = recipe.apply(rows, function()
        calls = calls + 1
        if calls == 2 then error(stopper, 0) end
      end)
      assert.equal(stopper, stop)
      assert.same({"done", stopper.kind == "auth" and "failed" or "unknown", "not done"},
                  {rows[1].outcome, rows[2].outcome, rows[3].outcome})
      assert.equal(recipe.NOT_DONE, rows[3].error)
      assert.equal(2, calls)
      local ok, raised = pcall(recipe.stopped, stop)
      assert.is_false(ok)
      assert.equal(stopper, raised)
    end
  end)
end)

describe("kapi.recipe given the wrong shapes", function()
  local kapi = require "kapi"
  it("refuses each with a usage error naming the function and the argument", function()
    local problems = recipe.problems {report = function() end}
    local cases = {
      {function() recipe.values({1, 2}) end, "recipe.values: option%[1%] must be a string, got number"},
      {function() recipe.place {zip = 45202} end, "recipe.place: args.zip must be a string or nil, got number"},
      {function() recipe.place {store = 5} end, "recipe.place: args.store must be a string or nil"},
      {function() recipe.place {near = 5} end, "recipe.place: args.near must be a string or nil"},
      {function() recipe.entries("/nonexistent", {}) end, "recipe.entries: problems must come from recipe.problems%(%)"},
      {function() recipe.lines("/nonexistent", {}) end, "recipe.lines: problems must come from recipe.problems%(%)"},
      {function() recipe.stores({}, {ids = {"01400376"}}, nil, problems) end, "recipe.stores: kroger must be a client"},
      {function() recipe.print({}, {1}, {{key = "a"}}) end, "recipe.print: rows%[1%] must be a table, got number"},
      {function() recipe.print({}, {}, {{}}) end, "recipe.print: columns%[1%]%.key must be a string"},
      {function() recipe.shard({shard = 5}, {}) end, "recipe.parse_shard: text must be a string, got number"},
      {function() recipe.whole_number(5) end, "whole_number: name must be a string"},
      {function() recipe.no_store({}) end, "recipe.no_store: radius must be a number"},
      {function() recipe.gtins({1}, nil, problems) end, "recipe.values: option%[1%] must be a string"},
      {function() recipe.status({}) end, "recipe.status: problems must come from recipe.problems%(%)"},
      {function() recipe.usage("%d") end, "recipe.usage: the message %%d does not fit its values"},
      {function() recipe.apply({}, 5) end, "recipe.apply: change must be a function"},
      {function() recipe.distinct_files({"a", "a"}, "--file") end, "%-%-file a given twice"},
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(case[1])
      assert.is_false(ok)
      assert.equal("usage", err.kind, tostring(err))
      assert.matches(case[2], tostring(err))
    end
    -- What the API hands back is data, not an argument: no number, no price.
    assert.is_nil(recipe.positive("5"))
    assert.equal(2.5, recipe.positive(2.5))
    -- A shard key may give numbers.
    local part = recipe.shard({shard = "1/2"}, {"a", "bb", "ccc"}, function(x) return #x end)
    local other = recipe.shard({shard = "2/2"}, {"a", "bb", "ccc"}, function(x) return #x end)
    assert.equal(3, #part + #other)
    assert.is_truthy(kapi)
  end)
end)
