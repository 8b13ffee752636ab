-- The host loads Lua files from their compiled copies (host/host.c,
-- packaging/compile.lua) only while a copy is still its file's, and under
-- the file's own name, so that errors and tracebacks read the same.
local core = require "kapi.core"
local process = require "helpers.process"

local compile_script = process.source_dir .. "/packaging/compile.lua"

describe("compiled Lua files", function()
  local dir, file, copy
  before_each(function()
    dir = process.tempdir()
    file = process.write(dir .. "/tree/m.lua", "return 'as compiled'\n")
    copy = core.module_dir .. "/compiled" .. file .. "c"
  end)
  after_each(function()
    os.execute("rm -rf " .. process.quote(core.module_dir .. "/compiled" .. dir))
    process.cleanup(dir)
  end)

  local function compile(named)
    local r = process.kapi_run({compile_script, core.module_dir .. "/compiled", dir .. "/tree", named})
    assert.equal(0, r.status, r.stderr)
  end
  -- The file says something else than its copy, with its time unchanged.
  local function rewrite_keeping_time(text)
    process.write(file, text)
    assert.equal(0, process.sh(("touch -r %s %s"):format(process.quote(copy), process.quote(file))).status)
  end

  it("loads the copy while the file's time is the copy's, the file once it changed", function()
    compile()
    rewrite_keeping_time("return 'as written'\n")
    assert.equal("as compiled", assert(core.loadfile(file))())
    assert.equal(0, process.sh("sleep 0.01; touch " .. process.quote(file)).status)
    assert.equal("as written", assert(core.loadfile(file))())
  end)

  it("keeps the file's name and lines in the copy", function()
    process.write(file, "local x = 1\n\nreturn function() error('boom') end\n")
    compile()
    local fn = assert(core.loadfile(file))()
    local info = debug.getinfo(fn, "S")
    assert.equal("@" .. file, info.source)
    assert.equal(3, info.linedefined)
    local _, err = pcall(fn)
    assert.equal(file .. ":3: boom", err)
  end)

  it("does not take a copy made for another place", function()
    compile(dir .. "/elsewhere")
    -- The copy for <dir>/elsewhere/m.lua is no copy of <dir>/tree/m.lua.
    local other = core.module_dir .. "/compiled" .. dir .. "/elsewhere/m.luac"
    assert.truthy(io.open(other))
    os.execute(("mkdir -p %s && cp -p %s %s"):format(process.quote(copy:match("^(.*)/")),
                                                       process.quote(other), process.quote(copy)))
    rewrite_keeping_time("return 'as written'\n")
    assert.equal("as written", assert(core.loadfile(file))())
  end)

  it("fails as loadfile does", function()
    local chunk, err = core.loadfile(dir .. "/missing.lua")
    assert.is_nil(chunk)
    assert.matches("cannot open .*missing%.lua", err)
    process.write(file, "return +\n")
    chunk, err = core.loadfile(file)
    assert.is_nil(chunk)
    assert.matches("m%.lua:1:", err)
  end)

  it("has an up-to-date copy of every file of kapi's tree and of lua-argparse", function()
    local list = io.popen("find " .. process.quote(core.script_dir) .. " -name '*.lua' -type f")
    local files = {}
    for path in list:lines() do files[#files + 1] = path end
    list:close()
    files[#files + 1] = package.searchpath("argparse", package.path)
    assert.is_true(#files > 50)
    for _, path in ipairs(files) do
      local r = process.sh(("test %s -ot %s || test %s -nt %s; echo $?"):format(
        process.quote(path), process.quote(core.module_dir .. "/compiled" .. path .. "c"),
        process.quote(path), process.quote(core.module_dir .. "/compiled" .. path .. "c")))
      assert.equal("1\n", r.stdout, path .. " has no copy of its own time")
    end
  end)
end)
