-- kapi api: raw requests to the services, as a user types them, against
-- the sandbox (the built-in one, or a `kapi sandbox` that keeps state and
-- logs every request it gets).
local process = require "helpers.process"
local json = require "kapi.json"

local function kapi(args, opts)
  opts = opts or {}
  local env = process.sandbox_env(opts.url)
  for k, v in pairs(opts.env or {}) do env[k] = v end
  return process.kapi_run(args, {env = env, stdin = opts.stdin})
end

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

-- stderr without the note that the built-in sandbox is used.
local function talk(r) return (r.stderr:gsub("kapi: using the built%-in sandbox at [^\n]*\n", "")) end

describe("kapi api", function()
  it("sends a GET with its fields as the query and prints the answer as it came", function()
    local r = kapi {"api", "/v1/locations", "filter.zipCode.near=45202", "filter.limit=2"}
    assert.equal(0, r.status, r.stderr)
    assert.equal("", talk(r))
    local body = json.decode(r.stdout)
    assert.equal(2, #body.data)
    assert.is_string(body.data[1].locationId)
  end)

  it("asks for the scope the endpoint needs, or the one given", function()
    local r = kapi {"api", "/v1/products", "filter.term=milk", "filter.limit=1"}
    assert.equal(0, r.status, r.stderr)
    assert.equal(1, #json.decode(r.stdout).data)
    r = kapi {"api", "/v1/products", "filter.term=milk", "--scope", "cart.basic:write"}
    assert.equal(1, r.status)
    assert.matches("^kapi: GET /v1/products: 403 Forbidden: missing required scopes\n$", talk(r))
    assert.equal("Forbidden", json.decode(r.stdout).errors.code) -- the error's body is data too
  end)

  it("follows Kroger's offset pages and Content1's cursor with --paginate", function()
    local r = kapi {"api", "/v1/products", "filter.term=milk", "--paginate", "--max-items", "120"}
    assert.equal(0, r.status, r.stderr)
    local items, seen = json.decode(r.stdout), {}
    assert.equal(120, #items)
    for _, p in ipairs(items) do
      assert.is_nil(seen[p.productId], "twice: " .. p.productId)
      seen[p.productId] = true
    end
    r = kapi {"api", "--service", "content1", "POST", "/V1/product/fetch", "--paginate", "--max-items", "1500",
              "--jsonl", "--select", "item.gtin"}
    assert.equal(0, r.status, r.stderr)
    local gtins, distinct = lines(r.stdout), {}
    assert.equal(1500, #gtins) -- two pages of at most 1,000
    for _, g in ipairs(gtins) do distinct[g] = true; assert.matches('^"%d+"$', g) end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.equal(1500, n)
  end)

  it("keeps a field or a Lua expression per item with --select, leaving out what gives nil", function()
    local r = kapi {"api", "/v1/products", "filter.term=milk", "--paginate", "--max-items", "5", "--select", "description"}
    assert.equal(0, r.status, r.stderr)
    assert.equal(5, #lines(r.stdout))
    assert.not_matches('"', lines(r.stdout)[1]) -- strings as they are, for the shell
    r = kapi {"api", "/v1/products", "filter.term=milk", "--paginate", "--max-items", "20",
              "--select", "#it.description > 40 and it.upc or nil"}
    assert.equal(0, r.status, r.stderr)
    for _, upc in ipairs(lines(r.stdout)) do assert.matches("^%d+$", upc) end
    r = kapi {"api", "/v1/chains", "--select", "data.1.name"}
    assert.equal(0, r.status, r.stderr)
    assert.matches("^%u+\n$", r.stdout)
    r = kapi {"api", "/v1/chains", "--jsonl", "--select", "data"}
    assert.equal(1, #lines(r.stdout))
    for _, case in ipairs {{"it.(", "not a field or a Lua expression"}, {"#it.nope", "attempt to get length"},
                           {"os.exit(3)", "attempt to index"}} do
      r = kapi {"api", "/v1/chains", "--select", case[1]}
      assert.equal(2, r.status, case[1] .. "\n" .. r.stderr)
      assert.matches("^kapi: %-%-select ", talk(r))
      assert.matches(case[2], talk(r), 1, true)
    end
  end)

  it("prints a request that would change state, and sends it only with --apply", function()
    local sandbox = process.sandbox()
    local republish = {"api", "--service", "items", "POST", "/items/v1/publications/republish", "gtin=10845678000023",
                       "recipientGln=0838016000123", "publicationType=NEW"}
    local dry = kapi(republish, {url = sandbox.url})
    assert.equal(0, dry.status, dry.stderr)
    assert.matches("^POST http://127%.0%.0%.1:%d+/items/v1/publications/republish\nAuthorization: %(the 1WorldSync signature", dry.stdout)
    assert.matches('{"gtin":"10845678000023","publicationType":"NEW","recipientGln":"0838016000123"}\n$', dry.stdout)
    assert.matches("kapi: dry run: nothing was sent %(POST changes state; %-%-apply sends it%)", dry.stderr)
    local cart = kapi({"api", "--customer", "PUT", "/v1/cart/add", 'items:=[{"upc":"0001111041700","quantity":1}]'},
                      {url = sandbox.url})
    assert.equal(0, cart.status, cart.stderr)
    assert.matches("^PUT http://127%.0%.0%.1:%d+/v1/cart/add\n", cart.stdout)
    local before = json.decode(kapi({"api", "--service", "items", "/items/v1/publications", "gtin==10845678000023",
                                     "recipientGln==0838016000123"}, {url = sandbox.url}).stdout).data[1]
    table.insert(republish, "--apply")
    local applied = kapi(republish, {url = sandbox.url})
    assert.equal(0, applied.status, applied.stderr)
    local after = json.decode(kapi({"api", "--service", "items", "/items/v1/publications", "gtin==10845678000023",
                                    "recipientGln==0838016000123"}, {url = sandbox.url}).stdout).data[1]
    sandbox.stop()
    assert.equal("REJECTED", before.cicState) -- the dry run sent nothing
    assert.not_equal(before.publishedAt, after.publishedAt)
    assert.equal("", after.cicState) -- republished: waiting for its review
  end)

  it("shows the status line and headers with -i, and an HTTP error with its body and exit status 1", function()
    local r = kapi {"api", "-i", "/v1/chains"}
    assert.equal(0, r.status, r.stderr)
    assert.matches("^HTTP/1%.1 200\n.-Content%-Type: application/json\n.-\n\n{", r.stdout)
    r = kapi {"api", "/v1/no-such-thing"}
    assert.equal(1, r.status)
    assert.matches('^{"errors":', r.stdout)
    assert.equal("kapi: GET /v1/no-such-thing: 404 API-4040-404: Not found: /v1/no-such-thing\n", talk(r))
  end)

  it("takes a body from a file or standard input, and query fields on a POST", function()
    local r = kapi({"api", "--service", "content1", "POST", "/V1/product/count", "-"}, {stdin = '{"brandName": "*"}'})
    assert.equal(0, r.status, r.stderr)
    assert.is_number(json.decode(r.stdout).count)
    r = kapi {"api", "--service", "content1", "POST", "/V1/product/fetch", "pageSize==2", "--select", "items"}
    assert.equal(0, r.status, r.stderr)
    assert.equal(2, #json.decode(r.stdout))
  end)

  it("never shows a secret, even with --verbose", function()
    local r = kapi {"api", "--verbose", "/v1/products", "filter.term=milk", "filter.limit=1"}
    assert.equal(0, r.status, r.stderr)
    assert.not_matches("sandbox%-secret", r.stderr .. r.stdout)
    assert.not_matches("[Bb]earer [%w%-_.]+[%w]", r.stderr:gsub("Bearer REDACTED", ""))
  end)

  it("refuses what it cannot send, in one line naming it", function()
    for _, case in ipairs {
      {{"api", "https://api.kroger.com/v1/products"}, "give a path"},
      {{"api", "/v1/products", "=x"}, "=x: expected key=value"},
      {{"api", "POST", "/v1/x", "a:={nope"}, "a:={nope: not JSON"},
      {{"api", "GET", "/v1/x", "a:=[1]"}, "a GET request has no body"},
      {{"api", "/v1/x", "-H", "nocolon"}, "-H nocolon: expected 'Name: value'"},
      {{"api", "/v1/x", "-H", "Authorization: Bearer x"}, "kapi sends the credentials itself"},
      {{"api", "/v1/x", "--max-items", "3"}, "--max-items goes with --paginate"},
      {{"api", "--service", "items", "/items/v1/publications", "--paginate"}, "Item Management answers without pages"},
      {{"api", "--service", "content1", "--customer", "/V1/product/count"}, "only Kroger requests take --customer"},
      {{"api", "POST", "/v1/products", "--paginate"}, "Kroger pages GET requests"},
      {{"api", "/v1/x", "@/nonexistent/body.json"}, "/nonexistent/body.json: No such file or directory"},
      {{"api", "/v1/x", "--service", "nope"}, "--service"},
    } do
      local r = kapi(case[1])
      assert.equal(2, r.status, table.concat(case[1], " ") .. "\n" .. r.stderr)
      assert.equal("", r.stdout, table.concat(case[1], " "))
      local first = talk(r):match("^([^\n]*)")
      assert.matches(case[2], first, 1, true)
    end
  end)
end)

describe("recipes' --jsonl", function()
  it("gives the objects of --json, one a line, for every recipe that prints a list", function()
    local examples = process.source_dir .. "/examples/items/"
    for _, args in ipairs {
      {"run", "stores", "--zip", "45202", "--limit", "3"},
      {"run", "products", "--term", "milk", "--zip", "45202", "--limit", "4"},
      {"run", "coupons", "--zip", "45202", "--limit", "2"},
      {"run", "preflight", examples .. "duplicate-facing-and-made-in.json"},
      {"run", "republish-check", "--all"},
      {"run", "live-check", "00011110417008", "--zip", "45202", "--stores", "2"},
    } do
      local function with(flag)
        local out = {table.unpack(args)}
        out[#out + 1] = flag
        return out
      end
      local as_json, as_lines = kapi(with("--json")), kapi(with("--jsonl"))
      local label = table.concat(args, " ")
      assert.equal(as_json.status, as_lines.status, label .. "\n" .. as_lines.stderr)
      assert.equal(0, as_json.status > 1 and as_json.status or 0, label .. "\n" .. as_json.stderr)
      local array, objects = json.decode(as_json.stdout), {}
      for line in as_lines.stdout:gmatch("([^\n]*)\n") do objects[#objects + 1] = json.decode(line) end
      assert.is_true(#array > 0, label)
      assert.same(array, objects, label)
      local first = as_lines.stdout:match("^[^\n]*")
      local keys_in_order = as_json.stdout:match("\n  ({[^\n]*})")
      assert.equal(keys_in_order, first, label) -- the same keys, in the same order
    end
  end)
end)
