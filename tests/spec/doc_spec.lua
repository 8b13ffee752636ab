-- help() and docs/api.md come from the same declarations.
local doc = require "kapi.doc"
local kapi = require "kapi"
require "kapi.repl"
local process = require "helpers.process"

describe("kapi.doc", function()
  it("documents every public function of kapi", function()
    for _, name in ipairs {"spawn", "sleep", "now", "map", "running"} do
      assert.truthy(doc.text(kapi[name]), "no help for kapi." .. name)
    end
  end)

  it("finds an entry by value and by name", function()
    assert.equal(doc.text(kapi.map), doc.text("kapi.map"))
    assert.matches("^kapi.map\n  kapi.map%(list, fn", doc.help(kapi.map))
  end)

  it("lists everything, one line each, with help()", function()
    local text = doc.help()
    assert.matches("kapi.spawn%(fn, ...%) %-> task", text)
    assert.matches("task:wait%(%)", text)
  end)

  it("says so when there is no help", function()
    assert.matches("^no help for", doc.help(function() end))
  end)

  it("matches docs/api.md (run `make docs` after changing the docs)", function()
    local f = assert(io.open(process.source_dir .. "/docs/api.md"))
    local on_disk = f:read("a")
    f:close()
    assert.equal(doc.markdown() .. "\n", on_disk)
  end)
end)
