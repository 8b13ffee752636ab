-- The public API's daily budgets: each attempt of a public app counted per
-- endpoint, kept across processes (two at once lose no count), a warning
-- near the end, a stop before the call the day has no room for, a 429
-- never retried and remembered, a new day after 24 hours; partner apps and
-- the built-in sandbox never write a count.
local kapi = require "kapi"
local limits = require "kapi.limits"
local json = require "kapi.json"
local process = require "helpers.process"

local sb, dir
setup(function()
  sb = kapi.sandbox.start {products = 300, stores = 10, daily_limits = "products=6"}
  dir = process.tempdir()
  limits.directory = dir .. "/limits"
end)
teardown(function()
  limits.directory = nil
  sb:close()
  process.cleanup(dir)
end)

local function public(budgets)
  return kapi.kroger.client {base_url = sb.url, client_id = "kapi-sandbox-public", client_secret = "sandbox-public-secret",
                             daily_limits = budgets}
end

local function product_calls()
  return (sb.state.daily or {})["kapi-sandbox-public products"]
end

local function stored(client_id)
  local out = {}
  for _, c in ipairs(limits.stored()) do
    if c.client_id == client_id then
      for _, u in ipairs(c.usage) do out[u.endpoint] = u.used end
    end
  end
  return out
end

local function search(client)
  return client:products {term = "milk", max_items = 1}:all()
end

describe("the daily budgets", function()
  before_each(function()
    limits.flush_all() -- what the last test's counters hold, before their files go
    sb.state.daily = nil
    os.execute("rm -rf " .. process.quote(dir .. "/limits"))
  end)

  it("name their endpoints as Kroger counts them", function()
    assert.equal("products", limits.endpoint("/v1/products"))
    assert.equal("products", limits.endpoint("/v1/products/0001111041700"))
    assert.equal("locations", limits.endpoint("/v1/locations"))
    assert.equal("locations/{id}", limits.endpoint("/v1/locations/01400376"))
    assert.equal("chains/{name}", limits.endpoint("/v1/chains/KROGER"))
    assert.equal("cart", limits.endpoint("/v1/cart/add"))
    assert.equal("identity", limits.endpoint("/v1/identity/profile"))
    assert.is_nil(limits.endpoint("/v1/coupons"))
    assert.same({products = 5, cart = 2}, limits.parse("products=5,cart=2"))
    assert.matches('no budget named "prodcts"', select(2, limits.parse("prodcts=5")))
    assert.matches("expected NAME=CALLS", select(2, limits.parse("products")))
  end)

  it("stop before the call the day has no room for, naming the endpoint, the budget and the reset", function()
    local client = public {products = 3}
    for _ = 1, 3 do assert.equal(1, #search(client)) end
    local ok, err = pcall(search, client)
    assert.is_false(ok)
    assert.equal("rate_limit", err.kind)
    assert.matches("^products: the day's budget of 3 calls is spent %(counted since %d+%-%d+%-%d+ %d+:%d+%); "
                   .. "it resets at %d+%-%d+%-%d+ %d+:%d+$", err.message)
    assert.equal(3, product_calls().count) -- the fourth was never sent
    limits.flush_all()
    assert.equal(3, stored("kapi-sandbox-public").products)
    -- The next process (a new counter) reads the day's count and stops too.
    ok, err = pcall(search, public {products = 3})
    assert.is_false(ok)
    assert.equal("rate_limit", err.kind)
    assert.equal(3, product_calls().count)
  end)

  it("take a 429 as the day spent: never retried, and remembered for the next", function()
    local client = public() -- kapi's budget is Kroger's; the sandbox's is 6
    for _ = 1, 6 do search(client) end
    local ok, err = pcall(search, client)
    assert.is_false(ok)
    assert.equal("rate_limit", err.kind)
    assert.matches("^products: Kroger refused the call with 429: the day's budget of 10,000 calls is spent", err.message)
    assert.equal(6, product_calls().count) -- one refused attempt, no retries (the sandbox counts only what it served)
    local ok2, err2 = pcall(search, public())
    assert.is_false(ok2)
    assert.matches("counted since", err2.message)
  end)

  it("warn once when 90% are spent", function()
    local client = public {products = 5}
    local saved, said = io.stderr, {}
    io.stderr = {write = function(_, ...) said[#said + 1] = table.concat({...}) end}
    local ok, err = pcall(function() for _ = 1, 5 do search(client) end end)
    io.stderr = saved
    assert(ok, err)
    local text = table.concat(said)
    assert.matches("kapi: warning: 5 of the 5 calls a day to products are spent %(client kapi%-sandbox%-public%)", text)
    local _, warnings = text:gsub("warning:", "")
    assert.equal(1, warnings)
  end)

  it("start again 24 hours after the day's first call", function()
    local client = public {products = 2}
    search(client)
    search(client)
    limits.flush_all()
    -- The day began more than 24 hours ago.
    for _, name in ipairs(require("kapi.core.fs").list(limits.directory)) do
      if name:match("%.json$") then
        local path = limits.directory .. "/" .. name
        local f = io.open(path)
        local data = json.decode(f:read("a"))
        f:close()
        data.endpoints.products.first = os.time() - limits.DAY - 1
        f = io.open(path, "w")
        f:write(json.encode(data))
        f:close()
      end
    end
    sb.state.daily = nil
    assert.equal(1, #search(public {products = 2}))
  end)

  it("count nothing for a partner app", function()
    local partner = kapi.kroger.client {base_url = sb.url, client_id = "kapi-sandbox", client_secret = "sandbox-secret"}
    for _ = 1, 8 do search(partner) end
    limits.flush_all()
    assert.same({}, limits.stored())
  end)
end)

describe("the daily budgets across processes", function()
  it("lose no count when two kapi processes call at once, and kapi auth limits shows them", function()
    local server = process.sandbox {"--products", "300", "--stores", "10"}
    local state = process.tempdir()
    local env = process.sandbox_env(server.url)
    env.XDG_STATE_HOME, env.KAPI_ENV = state, "sandbox"
    env.KROGER_CLIENT_ID, env.KROGER_CLIENT_SECRET = "kapi-sandbox-public", "sandbox-public-secret"
    local code = "local k = kapi.kroger.client{} for i = 1, 120 do k:products{term = 'milk', max_items = 1}:all() end"
    local r = process.sh(("%s -e %s & %s -e %s; wait"):format(process.quote(process.kapi), process.quote(code),
                         process.quote(process.kapi), process.quote(code)), {env = env})
    local status = process.kapi_run({"auth", "limits", "--json"}, {env = env})
    local table_view = process.kapi_run({"auth", "limits"}, {env = env})
    server.stop()
    process.cleanup(state)
    assert.equal(0, r.status, r.stderr)
    assert.equal(0, status.status, status.stderr)
    local rows = json.decode(status.stdout)
    assert.equal(1, #rows)
    assert.same({"kapi-sandbox-public", "products", 240, 10000},
                {rows[1].client_id, rows[1].endpoint, rows[1].used, rows[1].budget})
    assert.matches("products +240 +10000 ", table_view.stdout)
  end)

  it("stop a recipe with one line when the day is spent, exit 1", function()
    local server = process.sandbox {"--products", "3000", "--stores", "10", "--daily-limits", "products=1"}
    local state = process.tempdir()
    local env = process.sandbox_env(server.url)
    env.XDG_STATE_HOME, env.KAPI_ENV = state, "sandbox"
    env.KROGER_CLIENT_ID, env.KROGER_CLIENT_SECRET = "kapi-sandbox-public", "sandbox-public-secret"
    local r = process.kapi_run({"run", "products", "--term", "milk", "--limit", "100", "-q", "--json"}, {env = env})
    local again = process.kapi_run({"run", "live-check", "00011110010018", "00011110010025", "-q"}, {env = env})
    server.stop()
    process.cleanup(state)
    assert.equal(1, r.status, r.stderr)
    assert.equal(50, #json.decode(r.stdout)) -- the page that came is shown
    assert.matches("^kapi: products: Kroger refused the call with 429: the day's budget of 10,000 calls is spent; "
                   .. "it resets about [^\n]+\n$", r.stderr)
    assert.equal(1, again.status, again.stderr)
    assert.matches("^kapi: products: the day's budget of 10,000 calls is spent %(counted since [^\n]+\n$", again.stderr)
  end)

  it("write no count for the built-in sandbox", function()
    local home = process.tempdir()
    local env = process.sandbox_env()
    env.XDG_STATE_HOME, env.HOME = home .. "/state", home
    local r = process.kapi_run({"-e", "local k = kapi.kroger.client{client_id = 'kapi-sandbox-public', "
      .. "client_secret = 'sandbox-public-secret'} k:products{term = 'milk', max_items = 1}:all()"}, {env = env})
    local left = process.sh("find " .. process.quote(home) .. " -mindepth 1").stdout
    process.cleanup(home)
    assert.equal(0, r.status, r.stderr)
    assert.equal("", left)
  end)
end)
