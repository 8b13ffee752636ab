-- kapi mcp driven as an MCP host drives it: a subprocess on pipes, one
-- JSON-RPC message a line, against the built-in sandbox or a `kapi
-- sandbox` that keeps its state between calls.
local process = require "helpers.process"
local json = require "kapi.json"

local INIT = {jsonrpc = "2.0", id = 0, method = "initialize",
              params = {protocolVersion = "2025-11-25", capabilities = {}, clientInfo = {name = "spec", version = "1"}}}
local INITIALIZED = {jsonrpc = "2.0", method = "notifications/initialized"}

-- Runs kapi mcp on `script`: a list of messages (tables, or raw lines), or
-- {sleep = seconds} between them. Returns the messages it wrote, the
-- responses by id, its exit status and stderr.
local function session(script, opts)
  opts = opts or {}
  local parts = {}
  for _, step in ipairs(script) do
    if type(step) == "table" and step.sleep then
      parts[#parts + 1] = ("sleep %s"):format(step.sleep)
    else
      local line = type(step) == "string" and step or json.encode(step)
      parts[#parts + 1] = "printf '%s\\n' " .. process.quote(line)
    end
  end
  local env = process.sandbox_env(opts.url)
  local r = process.sh(("{ %s; } | %s mcp"):format(table.concat(parts, "; "), process.quote(process.kapi)), {env = env})
  local messages, by_id = {}, {}
  for line in r.stdout:gmatch("[^\n]+") do
    local ok, m = pcall(json.decode, line)
    assert(ok, "stdout holds a line that is not JSON: " .. line)
    messages[#messages + 1] = m
    if m.id ~= nil and m.id ~= json.null then by_id[m.id] = m end
  end
  return messages, by_id, r
end

local function call(id, name, arguments, meta)
  return {jsonrpc = "2.0", id = id, method = "tools/call",
          params = {name = name, arguments = arguments, _meta = meta}}
end

-- A JSON Schema as the draft says one is: just enough of the meta-schema
-- to catch what a generator gets wrong (types, properties, required).
local TYPES = {object = true, array = true, string = true, number = true, integer = true, boolean = true, null = true}
local function check_schema(s, where)
  assert.equal("table", type(s), where)
  if s.type then assert.is_true(TYPES[s.type] ~= nil, where .. ": type " .. tostring(s.type)) end
  if s.enum then assert.is_true(#s.enum > 0, where .. ": empty enum") end
  for name, sub in pairs(s.properties or {}) do check_schema(sub, where .. "." .. name) end
  if s.items then check_schema(s.items, where .. "[]") end
  for _, name in ipairs(s.required or {}) do
    assert.is_truthy(s.properties and s.properties[name], where .. ": required " .. name .. " is no property")
  end
end

describe("kapi mcp", function()
  it("negotiates the protocol version and lists every recipe as a tool with valid schemas", function()
    local _, by_id, r = session {INIT, INITIALIZED, {jsonrpc = "2.0", id = 1, method = "tools/list"},
                                 {jsonrpc = "2.0", id = 2, method = "initialize",
                                  params = {protocolVersion = "2025-03-26", capabilities = {}}},
                                 {jsonrpc = "2.0", id = 3, method = "initialize",
                                  params = {protocolVersion = "1999-01-01", capabilities = {}}}}
    assert.equal(0, r.status, r.stderr)
    assert.equal("2025-11-25", by_id[0].result.protocolVersion)
    assert.equal("2025-03-26", by_id[2].result.protocolVersion)
    assert.equal("2025-11-25", by_id[3].result.protocolVersion) -- one it does not know: its own latest
    assert.equal("kapi", by_id[0].result.serverInfo.name)
    local tools = {}
    for _, t in ipairs(by_id[1].result.tools) do tools[t.name] = t end
    local listed = process.kapi_run({"recipes", "--json"}, {env = process.sandbox_env()})
    for _, recipe in ipairs(json.decode(listed.stdout)) do
      local tool = tools[recipe.name]
      assert.is_truthy(tool, "no tool for recipe " .. recipe.name)
      assert.equal("object", tool.inputSchema.type)
      check_schema(tool.inputSchema, recipe.name)
      check_schema(tool.outputSchema, recipe.name .. " output")
    end
    assert.is_truthy(tools.kapi_api)
    assert.is_true(tools.stores.annotations.readOnlyHint)
    assert.is_true(tools["republish-check"].annotations.destructiveHint)
    assert.equal("boolean", tools["republish-check"].inputSchema.properties.apply.type)
    assert.equal("string", tools.stores.inputSchema.properties.zip.type)
    -- The rows' keys, as the recipe declares them.
    assert.is_table(tools["republish-check"].outputSchema.properties.rows.items.properties.verdict)
    assert.is_table(tools.stores.outputSchema.properties.rows.items.properties.locationId)
  end)

  it("runs a read-only recipe and answers with its rows, saying the sandbox answered", function()
    local _, by_id, r = session {INIT, INITIALIZED, call(1, "stores", {zip = "45202", limit = 2})}
    assert.equal(0, r.status, r.stderr)
    local result = by_id[1].result
    assert.is_false(result.isError)
    assert.equal(2, #result.structuredContent.rows)
    assert.equal("45202", result.structuredContent.rows[1].zipCode)
    assert.equal(0, result.structuredContent.exitStatus)
    assert.is_true(result.structuredContent.sandbox)
    assert.matches("built%-in sandbox", result.content[1].text)
  end)

  it("changes the sandbox's state only when a mutating tool is called with apply", function()
    local sandbox = process.sandbox()
    local check = {gtin = {"10845678000023"}}
    local _, by_id = session({INIT, INITIALIZED, call(1, "republish-check", check),
                              call(2, "republish-check", check), call(3, "republish-check",
                              {gtin = {"10845678000023"}, apply = true}), {sleep = 3},
                              call(4, "republish-check", check)}, {url = sandbox.url})
    sandbox.stop()
    local function verdict(id)
      for _, row in ipairs(by_id[id].result.structuredContent.rows) do
        if row.recipientGln == "0838016000123" then return row.verdict, row end
      end
    end
    assert.equal("READY_TO_REPUBLISH", verdict(1))
    assert.equal("READY_TO_REPUBLISH", verdict(2)) -- the plan alone changed nothing
    local _, applied = verdict(3)
    assert.equal("done", applied.result)
    assert.equal("DONE", verdict(4)) -- republished and reviewed
    assert.is_false(by_id[4].result.structuredContent.sandbox) -- a sandbox of its own, not the built-in one
  end)

  it("answers a bad argument with an isError result naming it, and goes on", function()
    local _, by_id = session {INIT, call(1, "stores", {zip = "abc"}), call(2, "stores", {zipp = "45202"}),
                              call(3, "stores", {zip = 45202, limit = "many"}), call(4, "no-such-tool", {}),
                              call(5, "stores", {zip = "45202", limit = 1}),
                              call(6, "republish-check", {report = "-"})}
    assert.is_true(by_id[1].result.isError)
    assert.matches("%-%-zip abc: expected 5 digits", by_id[1].result.content[1].text)
    assert.is_true(by_id[2].result.isError)
    assert.matches("unknown argument zipp %(did you mean 'zip'%?%)", by_id[2].result.content[1].text)
    assert.is_true(by_id[3].result.isError)
    assert.matches("%-%-limit many", by_id[3].result.content[1].text)
    assert.equal(-32602, by_id[4].error.code)
    assert.is_false(by_id[5].result.isError)
    -- Standard input carries the protocol: no tool may read it.
    assert.is_true(by_id[6].result.isError)
    assert.matches("report: %- %(standard input%) is not available to a tool", by_id[6].result.content[1].text)
  end)

  it("tells progress when asked, and a cancelled call gets no answer while the next is served", function()
    local sandbox = process.sandbox {"--faults", "slow=1:0.5s"}
    local messages, by_id = session({INIT, call(1, "live-check", {gtin = {"00011110417008"}, zip = "45202", stores = 4},
                                                {progressToken = "p1"}),
                                      call(2, "live-check", {gtin = {"00011110417008"}, zip = "45202", stores = 4}),
                                      {sleep = 1.5},
                                      {jsonrpc = "2.0", method = "notifications/cancelled",
                                       params = {requestId = 2, reason = "the user changed their mind"}},
                                      call(3, "stores", {zip = "45202", limit = 1})}, {url = sandbox.url})
    sandbox.stop()
    local progress = 0
    for _, m in ipairs(messages) do
      if m.method == "notifications/progress" then
        assert.equal("p1", m.params.progressToken)
        progress = progress + 1
      end
    end
    assert.is_true(progress >= 1, "no progress notification")
    assert.is_false(by_id[1].result.isError)
    assert.is_nil(by_id[2]) -- cancelled: no answer
    assert.is_false(by_id[3].result.isError)
  end)

  it("answers malformed JSON-RPC with JSON-RPC errors and keeps serving, and ends when stdin closes", function()
    local messages, by_id, r = session {INIT, "this is not json", "[1, 2]", '{"jsonrpc": "1.0", "id": 7, "method": "ping"}',
                                        '{"jsonrpc": "2.0", "id": 8, "method": "no/such"}',
                                        '{"jsonrpc": "2.0", "id": 9, "method": "ping"}'}
    assert.equal(0, r.status, r.stderr)
    local codes = {}
    for _, m in ipairs(messages) do if m.error then codes[#codes + 1] = m.error.code end end
    assert.same({-32700, -32600, -32600, -32601}, codes)
    assert.same({}, by_id[9].result)
    assert.not_matches("traceback", r.stderr)
  end)

  it("checks an item hierarchy given inline, and sends raw requests only as they are allowed", function()
    local f = assert(io.open(process.source_dir .. "/examples/items/duplicate-facing-and-made-in.json"))
    local hierarchy = json.decode(f:read("a"))
    f:close()
    local _, by_id = session {INIT, call(1, "preflight", {hierarchy = hierarchy}),
                              call(2, "kapi_api", {path = "/v1/chains"}),
                              call(3, "kapi_api", {method = "PUT", path = "/v1/cart/add", customer = true,
                                                   body = {items = {{upc = "0001111041700", quantity = 1}}}})}
    local findings = by_id[1].result.structuredContent.rows
    assert.equal(2, #findings)
    assert.equal(1, by_id[1].result.structuredContent.exitStatus) -- found something: not an error
    assert.is_false(by_id[1].result.isError)
    assert.is_table(by_id[2].result.structuredContent.response.data)
    assert.matches("^dry run: nothing was sent", by_id[3].result.content[1].text)
  end)
end)
