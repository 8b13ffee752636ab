-- The REPL's reading and completion logic (the terminal side is tested
-- in tests/cli/repl_spec.lua).
local repl = require "kapi.repl"
local kapi = require "kapi"

describe("repl.compile", function()
  it("prefers an expression, so bare expressions print", function()
    assert.same({3}, {repl.compile("1 + 2")()})
  end)

  it("accepts =expr as lua does", function()
    assert.same({"x", 2}, {repl.compile("= 'x', 2")()})
  end)

  it("compiles statements", function()
    local fn = repl.compile("local a = 2; return a * 3")
    assert.equal(6, fn())
  end)

  it("reports incomplete chunks so the REPL asks for more", function()
    assert.same({nil, "incomplete"}, {repl.compile("for i = 1, 3 do")})
    assert.same({nil, "incomplete"}, {repl.compile("f(")})
    assert.same({nil, "incomplete"}, {repl.compile("x = [[long")})
  end)

  it("reports syntax errors", function()
    local fn, err = repl.compile("x = = 1")
    assert.is_nil(fn)
    assert.matches("unexpected symbol", err)
  end)
end)

describe("repl.complete", function()
  setup(function() _G.kapi = kapi end)
  teardown(function() _G.kapi = nil end)

  it("completes globals and keywords", function()
    local got = repl.complete("pri", "pri")
    assert.same({"print"}, got)
    assert.truthy(next(repl.complete("fun", "fun")))
    assert.same({"function"}, repl.complete("fun", "fun"))
  end)

  it("completes fields of a module", function()
    assert.same({"kapi.spawn"}, repl.complete("kapi.sp", "kapi.sp"))
    assert.same({"kapi.sleep", "kapi.spawn", "kapi.submodule"}, repl.complete("kapi.s", "kapi.s"))
    assert.same({"string.upper"}, repl.complete("string.up", "string.up"))
  end)

  it("completes methods after a colon, through __index", function()
    _G.t = kapi.spawn(function() end)
    assert.same({"t:wait"}, repl.complete("t:wa", "t:wa"))
    _G.s = "text"
    assert.same({"s:upper"}, repl.complete("s:up", "s:up"))
    _G.t:wait()
    _G.t, _G.s = nil, nil
  end)

  it("offers only functions after a colon", function()
    _G.obj = {name = "n", greet = function() end}
    assert.same({"obj:greet"}, repl.complete("obj:", "obj:"))
    _G.obj = nil
  end)

  it("never runs the script's code to find candidates", function()
    local called = false
    _G.lazy = setmetatable({}, {__index = function() called = true end})
    assert.same({}, repl.complete("lazy.x", "lazy.x"))
    assert.is_false(called)
    _G.lazy = nil
  end)

  it("returns nothing for unknown names", function()
    assert.same({}, repl.complete("nosuch.thing", "nosuch.thing"))
  end)
end)
