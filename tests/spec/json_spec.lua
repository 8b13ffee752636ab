-- kapi.json: our one-pass decoder (bindings/json.c) against lua-cjson as the
-- reference, on generated documents and on the sandbox's real pages.
local kapi = require "kapi"
local cjson = require "cjson"
local json = kapi.json

-- What kapi.json.decode promises, from cjson's result: whole floats become
-- integers, empty arrays (told apart by the text) carry the array mark.
local function reference(text)
  -- The generator writes no "[" followed by "]" inside a string.
  local marked = text:gsub("%[%s*%]", '["\\u0000[]"]')
  local function fix(v)
    if type(v) == "number" and math.type(v) == "float" and v == math.floor(v)
       and v >= math.mininteger and v < -(math.mininteger + 0.0) then
      return math.tointeger(v)
    end
    if type(v) ~= "table" then return v end
    if #v == 1 and v[1] == "\0[]" then return json.array() end
    for k, x in pairs(v) do v[k] = fix(x) end
    return v
  end
  return fix(cjson.decode(marked))
end

-- Random documents: nested objects and arrays, escapes, unicode, numbers
-- of every shape (none beyond the 53 bits a double holds exactly, where
-- kapi is exact and cjson is not), with random white space.
local function generator(seed)
  local rng = math.random
  math.randomseed(seed)
  local pieces = {"a", "Z", " ", "é", "€", "😀", "\\n", "\\t", '\\"', "\\\\", "\\/", "\\u00e9",
                  "\\ud83d\\ude00", "\\u0001", "x y", "[x", "]", "{", "}"}
  local numbers = {"0", "-0", "7", "-12", "1800", "2.99", "-0.5", "1e3", "1E-2", "2.5e+2",
                   "12345678901234", "-9223372036854775808", "12345678901234567890",
                   "3.0", "1e400", "0.1"}
  local function ws() return ({"", " ", "\n  ", "\t", "\r\n"})[rng(5)] end
  local function str()
    local out = {}
    for i = 1, rng(0, 6) do out[i] = pieces[rng(#pieces)] end
    return '"' .. table.concat(out) .. '"'
  end
  local function value(depth)
    local kind = rng(depth > 4 and 4 or 6)
    if kind == 1 then return str() end
    if kind == 2 then return numbers[rng(#numbers)] end
    if kind == 3 then return ({"true", "false", "null"})[rng(3)] end
    if kind == 4 then return numbers[rng(#numbers)] end
    local n, parts = rng(0, 4), {}
    for i = 1, n do
      local v = value(depth + 1)
      parts[i] = kind == 5 and (ws() .. str() .. ws() .. ":" .. ws() .. v .. ws()) or (ws() .. v .. ws())
    end
    if kind == 5 then return "{" .. table.concat(parts, ",") .. ws() .. "}" end
    return "[" .. table.concat(parts, ",") .. ws() .. "]"
  end
  return function() return ws() .. value(0) .. ws() end
end

-- check(text, decoded) for each of 3,000 documents of the generator's seed.
local function each_generated(seed, check)
  local next_document = generator(seed)
  for _ = 1, 3000 do
    local text = next_document()
    check(text, json.decode(text))
  end
end

-- The names (string keys) of a decoded value that keep says to take, as a set.
local function names_in(value, keep)
  local set = {}
  if type(value) == "table" then
    for k in pairs(value) do if type(k) == "string" and keep(k) then set[k] = true end end
  end
  return set
end

describe("kapi.json.decode", function()
  it("keeps null and empty arrays across a round trip", function()
    local text = '{"a":[],"b":{"c":[ ]},"s":"[]","n":null,"x":[1,[]]}'
    local value = json.decode(text)
    assert.equal(json.null, value.n)
    assert.equal("[]", value.s)
    assert.is_true(json.is_array(value.a))
    assert.is_true(json.is_array(value.b.c))
    assert.is_false(json.is_array(value.x)) -- only empty arrays need the mark
    assert.same(json.decode(text), json.decode(json.encode(value)))
    assert.matches('"a":%[%]', json.encode(value))
    assert.equal("[]", json.encode(json.decode("[]")))
    assert.equal("{}", json.encode({}))
  end)

  it("decodes whole numbers as integers, others as floats", function()
    local v = json.decode('{"total": 1800, "price": 2.99, "big": 1e3, "list": [1, -2], "neg": -0}')
    assert.equal("integer", math.type(v.total))
    assert.equal("float", math.type(v.price))
    assert.equal("integer", math.type(v.big))
    assert.same({"integer", "integer"}, {math.type(v.list[1]), math.type(v.list[2])})
    assert.equal("integer", math.type(json.decode("7")))
    assert.equal(0, v.neg)
    -- Exact beyond a double's 53 bits (GTINs and ids sent as numbers).
    assert.equal(9007199254740993, json.decode("9007199254740993"))
    assert.equal(math.mininteger, json.decode("-9223372036854775808"))
    assert.equal("float", math.type(json.decode("12345678901234567890")))
    assert.equal(math.huge, json.decode("1e400"))
  end)

  it("decodes escapes and unicode, surrogate pairs included", function()
    assert.equal('"\\/\b\f\n\r\t', json.decode([["\"\\\/\b\f\n\r\t"]]))
    assert.equal("é€😀", json.decode([["\u00e9\u20ac\ud83d\ude00"]]))
    assert.equal("plain é", json.decode('"plain é"'))
  end)

  it("matches lua-cjson on 3,000 generated documents", function()
    local next_document = generator(42)
    for _ = 1, 3000 do
      local text = next_document()
      local ok, want = pcall(reference, text)
      assert(ok, text)
      assert.same(want, json.decode(text), text)
    end
  end)

  it("matches lua-cjson on the sandbox's pages", function()
    local sb <close> = kapi.sandbox.start {products = 500, stores = 20, items = 300}
    local c1 = kapi.content1.client {env = "sandbox", base_url = sb.url}
    local kroger = kapi.kroger.client {env = "sandbox", base_url = sb.url}
    local bodies = {
      c1:post("/V1/product/fetch", {}, 300).body,
      kroger:get("/v1/products", {["filter.term"] = "milk", ["filter.limit"] = 50},
                 kroger:service(kroger.product_scope)).body,
    }
    for _, body in ipairs(bodies) do
      assert.is_true(#body > 10000)
      assert.same(reference(body), json.decode(body))
    end
  end)

  it("names what is wrong and where, in one line", function()
    local cases = {
      {"", "json: the text is empty"},
      {"[1,]", "json: expected a value at character 4, near ']'"},
      {'{"a" 1}', "json: expected ':' at character 6, near '1}'"},
      {"[1 2]", "json: expected ',' or ']' at character 4, near '2]'"},
      {'{"a":1,}', "json: expected a name in quotes at character 8, near '}'"},
      {'{"a":1 "b":2}', "json: expected ',' or '}' at character 8, near '\"b\":2}'"},
      {'"abc', "json: unfinished string, but the text ends at character 4"},
      {"tru", "json: expected a value at character 1, near 'tru'"},
      {"01", "json: unexpected text after the value at character 2, near '1'"},
      {"1.", "json: invalid number, but the text ends at character 2"},
      {"-x", "json: invalid number at character 2, near 'x'"},
      {'"\\x"', "json: invalid escape at character 3, near 'x\"'"},
      {'"\\ud800"', "json: invalid unicode escape at character 2, near '\\ud800\"'"},
      {'"\\udc00"', "json: invalid unicode escape at character 2, near '\\udc00\"'"},
      {'"\\ud800\\u0041"', "json: invalid unicode escape at character 2, near '\\ud800\\u0041\"'"},
      {'"\\u12"', "json: invalid unicode escape at character 2, near '\\u12\"'"},
      {"<html>\n<body>", "json: expected a value at character 1, near '<html> <body>'"},
      {"[1 éééééééééé]", "json: expected ',' or ']' at character 4, near 'ééééééé'"},
      -- RFC 8259: no raw control character (NUL included) in a string, and UTF-8 only.
      {'"a\1b"', "json: a control character in a string (write it as \\u00XX) at character 3, near ' b\"'"},
      {'["ok", "tab\there"]', "json: a control character in a string (write it as \\u00XX) at character 12, near ' here\"]'"},
      {'"a\0b"', "json: a control character in a string (write it as \\u00XX) at character 3, near ' b\"'"},
      {'"a\n"', "json: a control character in a string (write it as \\u00XX) at character 3, near ' \"'"},
      {'"\\n then a\1"', "json: a control character in a string (write it as \\u00XX) at character 11, near ' \"'"},
      {'"caf\255"', "json: a string that is not UTF-8 at character 5, near '\255\"'"},
      {'"\237\160\128"', "json: a string that is not UTF-8 at character 2, near '\237\160\128\"'"},
      {'"\192\175"', "json: a string that is not UTF-8 at character 2, near '\192\175\"'"},
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(json.decode, case[1])
      assert.is_false(ok, case[1])
      assert.equal(case[2], err)
    end
  end)

  it("refuses nesting deeper than 1,000 levels", function()
    assert.equal(1, #json.decode(string.rep("[", 1000) .. string.rep("]", 1000)))
    local ok, err = pcall(json.decode, string.rep("[", 1001) .. string.rep("]", 1001))
    assert.is_false(ok)
    assert.matches("^json: nested too deeply at character 1001", err)
  end)
end)

describe("kapi.json.decode without", function()
  -- What decode without names gives, from the whole value: those members
  -- taken out of every object, however deep.
  local function without(v, names)
    if type(v) ~= "table" then return v end
    local out = json.is_array(v) and json.array() or {}
    for k, x in pairs(v) do
      if not (type(k) == "string" and names[k]) then out[k] = without(x, names) end
    end
    return out
  end

  it("leaves the members named out of every object, at any depth", function()
    local text = '{"a": 1, "images": [{"url": "x"}], "b": {"images": {"sizes": [1, 2]}, "c": [{"images": null,'
                 .. ' "d": 3}, {"im\\u0061ges": 4, "e": []}]}, "imagesX": 5}'
    local got = json.decode(text, {without = {"images"}})
    assert.same({a = 1, b = {c = {{d = 3}, {e = json.array()}}}, imagesX = 5}, got)
    assert.is_true(json.is_array(got.b.c[2].e))
    assert.same({}, json.decode('{"images": 1}', {without = {"images"}}))
    assert.same({1, {}}, json.decode('[1, {"x": [2]}]', {without = {"x"}}))
    assert.same(json.decode(text), json.decode(text, {without = {}}))
  end)

  it("agrees with decode on 3,000 generated documents", function()
    each_generated(11, function(text, whole)
      local set = names_in(whole, function(k) return #k % 2 == 0 end)
      local names = {}
      for k in pairs(set) do names[#names + 1] = k end
      assert.same(without(whole, set), json.decode(text, {without = names}), text)
    end)
  end)

  it("still refuses text that is not JSON inside a member left out, as decode does", function()
    for _, text in ipairs {'{"x": [1 2]}', '{"x": "\\ud800"}', '{"x": {"b": 1,}}', '{"x": tru}'} do
      local _, want = pcall(json.decode, text)
      local ok, got = pcall(json.decode, text, {without = {"x"}})
      assert.is_false(ok, text)
      assert.equal(want, got)
    end
  end)

  it("refuses options it does not know and names that are not text", function()
    local ok, err = pcall(json.decode, "{}", {without = {"a", 2}})
    assert.is_false(ok)
    assert.matches("json.decode: without%[2%] must be a string", tostring(err))
    ok, err = pcall(json.decode, "{}", {witout = {}})
    assert.is_false(ok)
    assert.matches("unknown option witout %(did you mean without%?%)", tostring(err))
  end)
end)

describe("kapi.json.skim", function()
  it("gives the members named as decode does, and counts the objects of an array", function()
    local text = '{"items": [{"a": 1}, [2], {}, "x", null, {"b": [{}]}], "searchAfter": ["1061", "US"],'
                 .. ' "totalCount": 6000, "message": "next \\"page\\" \\u00e9", "nested": {"items": [{}]},'
                 .. ' "n": -1.5e3, "ok": true, "none": null, "items2": {"a": {}}}'
    local whole = json.decode(text)
    local got = json.skim(text, {items = "objects", searchAfter = true, totalCount = true, message = true,
                                 n = true, ok = true, none = true, items2 = "objects", missing = true})
    assert.same({items = 3, searchAfter = whole.searchAfter, totalCount = 6000, message = whole.message,
                 n = -1500.0, ok = true, none = json.null, items2 = 0}, got)
    assert.equal("integer", math.type(got.totalCount))
    assert.same({}, json.skim("[1, 2]", {items = true}))  -- no object
    assert.same({a = 2}, json.skim('{"a": 1, "a": 2}', {a = true})) -- the last of a name given twice
    assert.same({}, json.skim("{}", {a = true}))
  end)

  it("agrees with decode on 3,000 generated documents", function()
    each_generated(7, function(text, whole)
      local wanted = names_in(whole, function() return true end)
      local want = {}
      if type(whole) == "table" and whole[1] == nil and not json.is_array(whole) then
        for k in pairs(wanted) do want[k] = whole[k] end
      end
      assert.same(want, json.skim(text, wanted), text)
    end)
  end)

  it("refuses what decode refuses, with decode's message", function()
    for _, text in ipairs {"", '{"a":1,}', '{"a" 1}', '{"a": [1 2]}', '{"a": "\\x"}', '{"a": "\\ud800"}',
                           '{"a": "caf\255"}', '{"a": "t\1"}', '{"a": tru}', '{"a": 01}', '{"a": 1} x', '{"a": [1,]}',
                           '{"a": {"b": 1,}}', '{1: 2}', '{"a": -}', '{"a": "unfinished',
                           string.rep("[", 1001) .. string.rep("]", 1001),
                           '{"a": ' .. string.rep("[", 1001) .. string.rep("]", 1001) .. "}"} do
      local decoded, want = pcall(json.decode, text)
      local skimmed, got = pcall(json.skim, text, {})
      assert.is_false(decoded, text)
      assert.is_false(skimmed, text)
      assert.equal(want, got)
    end
  end)

  it("reads a Content1 page's cursor and count as decode gives them", function()
    local sb <close> = kapi.sandbox.start {items = 2000}
    local c1 = kapi.content1.client {env = "sandbox", base_url = sb.url}
    local body = c1:post("/V1/product/fetch", {}, 1000).body
    local whole = json.decode(body)
    local page = json.skim(body, {items = "objects", searchAfter = true, totalCount = true})
    assert.same({items = #whole.items, searchAfter = whole.searchAfter, totalCount = whole.totalCount}, page)
    assert.equal(1000, page.items)
  end)
end)

describe("kapi.json.encode", function()
  it("leaves the caller's tables untouched", function()
    local t = {list = json.array()}
    json.encode(t)
    assert.is_true(json.is_array(t.list))
  end)

  it("writes integers exactly and floats in the fewest digits that read back the same", function()
    assert.equal("8594743176476373", json.encode(8594743176476373))
    assert.equal("-9223372036854775808", json.encode(math.mininteger))
    assert.equal("0.1", json.encode(0.1))
    assert.equal("2", json.encode(2.0))
    assert.equal("0.3333333333333333", json.encode(1 / 3))
    for _, v in ipairs {1 / 3, 2 ^ 60 + 0.0, 1e-300, 123456789012.5, 6.63, 2 ^ 53 + 0.0, 1.7976931348623157e308} do
      assert.equal(v, json.decode(json.encode(v)))
    end
    assert.equal(8594743176476373, json.decode(json.encode {id = 8594743176476373}).id)
  end)

  it("writes strings as they are, with only what JSON needs escaped, and UTF-8 only", function()
    assert.equal('"a/b"', json.encode("a/b"))
    assert.equal([["é \\ \" \n\t\u0000\u001f"]], json.encode("é \\ \" \n\t\0\31"))
    assert.equal('"\239\191\189x"', json.encode("\255x")) -- not UTF-8: U+FFFD
    -- a lone surrogate is not UTF-8 either: one U+FFFD a byte, as browsers decode it
    assert.equal('"' .. ("\239\191\189"):rep(3) .. '"', json.encode("\237\160\128"))
  end)

  it("tells arrays from objects, keeps marked empty arrays, and sorts keys when asked", function()
    assert.equal("[3,2,1]", json.encode {3, 2, 1})
    assert.equal("{}", json.encode {})
    assert.equal("[]", json.encode(json.array()))
    assert.equal('{"a":{"1":5,"c":2},"b":[null,1]}', json.encode({b = {json.null, 1}, a = {c = 2, [1] = 5}}, {sorted = true}))
    local sparse = json.decode(json.encode {[1] = "x", [3] = "y"})
    assert.same({["1"] = "x", ["3"] = "y"}, sparse)
  end)

  it("sorts keys that hold NUL bytes, and refuses a key given both as a number and as text", function()
    -- Sorting took keys as C strings: one with a NUL byte was looked up
    -- cut short and refused, and an integer key beside its text left a
    -- slot unfilled that qsort then read (a crash). The first was found by
    -- fuzz/json.lua, the second while fixing it.
    local keys = json.decode('{"b": 3, "a\\u0000c": 2, "a\\u0000b": 1, "a": 0, "\\u0000": -1}')
    assert.equal('{"\\u0000":-1,"a":0,"a\\u0000b":1,"a\\u0000c":2,"b":3}', json.encode(keys, {sorted = true}))
    local ok, err = pcall(json.encode, {[1] = "a", ["1"] = "b", x = 1}, {sorted = true})
    assert.is_false(ok)
    assert.equal("json: cannot encode a table with a key both as a number and as text", tostring(err))
  end)

  it("refuses what JSON cannot hold, in one line without a location", function()
    local cycle = {}
    cycle.self = cycle
    for _, case in ipairs {{print, "a function value"}, {cycle, "a table nested that deep"},
                           {0 / 0, "NaN"}, {math.huge, "an infinite number"}} do
      local value, message = case[1], case[2]
      local ok, err = pcall(json.encode, {value})
      assert.is_false(ok)
      assert.is_true(require("kapi.errors").is(err, "usage"), tostring(err))
      assert.matches("^json: cannot encode " .. message:gsub("%p", "%%%0"), tostring(err))
    end
  end)

  it("round-trips the sandbox's pages as lua-cjson reads them", function()
    local sandbox = require("kapi.sandbox").start {products = 300, stores = 10}
    local kroger = require("kapi.kroger").client {env = "sandbox", base_url = sandbox.url}
    local page = require("kapi.http").get(sandbox.url .. "/v1/products?filter.term=milk&filter.locationId=01400376",
      {auth = kroger:service(kroger.product_scope)}):json()
    sandbox:close()
    local text = json.encode(page)
    assert.same(require("cjson").decode(text), require("cjson").decode(json.encode(json.decode(text))))
    assert.same(json.decode(text), page)
  end)
end)
