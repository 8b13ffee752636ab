-- How the REPL shows values.
local pretty = require "kapi.pretty"
local cjson = require "cjson"

describe("kapi.pretty", function()
  it("shows scalars as Lua would write them", function()
    assert.equal("42", pretty.format(42))
    assert.equal("1.5", pretty.format(1.5))
    assert.equal("true", pretty.format(true))
    assert.equal("nil", pretty.format(nil))
    assert.equal('"a\\nb\\t\\"c\\""', pretty.format('a\nb\t"c"'))
  end)

  it("prints a top-level string as itself", function()
    assert.equal("plain text", pretty.show("plain text"))
  end)

  it("lists the array part first, then the keys sorted", function()
    local t = {"x", "y", zeta = 1, alpha = 2, [10] = true, ["two words"] = 3}
    assert.equal('{"x", "y", [10] = true, alpha = 2, ["two words"] = 3, zeta = 1}',
                 pretty.format(t))
  end)

  it("shows cjson.null as null", function()
    assert.equal("{null, x = null}", pretty.format({cjson.null, x = cjson.null}))
    assert.equal("null", pretty.format(cjson.null))
  end)

  it("marks cycles instead of recursing", function()
    local t = {name = "loop"}
    t.self = t
    assert.matches('^{name = "loop", self = <cycle: table: 0x%x+>}$', pretty.format(t))
  end)

  it("prints a table reached twice without a cycle both times", function()
    local shared = {1}
    assert.equal("{a = {1}, b = {1}}", pretty.format({a = shared, b = shared}))
  end)

  it("stops at the depth limit", function()
    local deep = {a = {b = {c = {d = {e = {}}}}}}
    assert.equal("{a = {b = {c = {d = {...}}}}}", pretty.format(deep))
  end)

  it("elides long arrays with a count", function()
    local long = {}
    for i = 1, 100 do long[i] = i end
    local text = pretty.format(long)
    assert.matches("%.%.%. %(60 more%)", text)
    assert.not_matches("41,", text)
  end)

  it("breaks wide tables over indented lines", function()
    local wide = {}
    for i = 1, 8 do wide["key_number_" .. i] = "value number " .. i end
    local text = pretty.format(wide)
    assert.matches('^{\n  key_number_1 = "value number 1",\n', text)
    assert.matches('\n}$', text)
  end)

  it("uses __tostring when a value has one", function()
    local v = setmetatable({}, {__tostring = function() return "<thing>" end})
    assert.equal("{<thing>}", pretty.format({v}))
  end)
end)
