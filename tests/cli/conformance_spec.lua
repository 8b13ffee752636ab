-- The independent check: kapi's clients and its sandbox against Stoplight
-- Prism, which knows nothing of kapi but the providers' OpenAPI documents
-- (tests/data/openapi/, corrected where a document is wrong: see its
-- README). Every client method runs
--   * against Prism mocks of each document, behind a path-routing proxy
--     (kapi's Kroger client has one base URL for every endpoint), in static
--     mode (the documents' examples) and in dynamic mode with several seeds
--     (random, schema-valid answers): every request must be valid, and kapi
--     must take every answer;
--   * through Prism validating proxies in front of the sandbox: every
--     request and every sandbox answer must be valid.
-- Prism reports each violation in the sl-violations header, and with
-- --errors answers a request violation with the document's 4xx (or 422)
-- and a response violation with a 500: both are checked on every exchange.
local kapi = require "kapi"
local crypto = require "kapi.core.crypto"
local errors = require "kapi.errors"
local json = require "kapi.json"
local store = require "kapi.auth.store"
local login = require "kapi.auth.login"
local limits = require "kapi.limits"
local process = require "helpers.process"
local prism = require "helpers.prism"

-- Each document and the paths it describes.
local DOCUMENTS = {
  {name = "auth", doc = "kroger/auth-1.0.13.json", prefixes = {"/v1/connect/oauth2/"}},
  {name = "products", doc = "kroger/products-public-1.3.0.json", prefixes = {"/v1/products"}},
  {name = "products-partner", doc = "kroger/products-partner-1.3.0.json", prefixes = {"/v1/products"}},
  {name = "locations", doc = "kroger/locations-1.2.3.json", prefixes = {"/v1/locations", "/v1/chains", "/v1/departments"}},
  {name = "cart", doc = "kroger/cart-1.2.3.json", prefixes = {"/v1/cart/"}},
  {name = "identity", doc = "kroger/identity-partner-1.2.2.json", prefixes = {"/v1/identity/"}},
  {name = "content1", doc = "1worldsync/content1-read-api.json", prefixes = {"/V1/product/"}},
}

local SEEDS = {"1", "2", "3"}

local dir, sandbox, mocks, proxies, data
local routers = {}

-- Routes for a client: every document but the products one it does not use.
local function routes(instances, partner)
  local out = {}
  for _, d in ipairs(DOCUMENTS) do
    local skip = (d.name == "products" and partner) or (d.name == "products-partner" and not partner)
    if not skip then
      for _, prefix in ipairs(d.prefixes) do out[#out + 1] = {prefix, instances[d.name].url} end
    end
  end
  return out
end

-- The mode of the mock routers: nil (static) or a seed. Each request's
-- seed is the mode's and the request's method, path and query (less
-- Content1's timestamp), so that every page of a search differs, and the
-- same run gives the same answers. A request that goes on with a Content1
-- cursor is answered 204 ("no products found"), so that a mock's cursor,
-- which never runs out, ends every chain after its second request.
local mode
local function prefer(req)
  local p = "dynamic=false"
  if mode then
    local query = req.raw_query:gsub("&?timestamp=[^&]*", "")
    local key = ("%s %s %s?%s"):format(mode, req.method, req.raw_path, query)
    p = "dynamic=true, seed=" .. crypto.hex(crypto.sha256(key)):sub(1, 16)
  end
  if req.raw_path:match("^/V1/product/") and req.body:find('"searchAfter"%s*:%s*%[%s*[^%]%s]') then
    p = p .. ", code=204"
  end
  return p
end

-- The statuses a document gives an operation, as a set.
local function documented_statuses(doc, path, method)
  local f = assert(io.open(prism.document(doc)))
  local operation = json.decode(f:read("a")).paths[path][method]
  f:close()
  local out = {}
  for status in pairs(operation.responses) do out[math.tointeger(tonumber(status))] = true end
  return out
end

-- The ids the calls ask for: the sandbox's, so that its answers are 200s.
local function sandbox_data(catalog)
  local store1 = catalog.store_by_id["01400376"]
  local carried = {}
  for _, p in ipairs(catalog.products) do
    if #carried < 2 and require("kapi.sandbox.catalog").carries(catalog, p, store1) then carried[#carried + 1] = p end
  end
  local other = catalog.stores[2].locationId
  return {store = store1.locationId, stores = {store1.locationId, other},
          products = {carried[1].productId, carried[2].productId}, brands = {carried[1].brand, carried[2].brand},
          departments = {store1.departments[1].departmentId, store1.departments[2].departmentId}}
end

setup(function()
  dir = process.tempdir()
  store.directory = dir .. "/tokens"
  limits.directory = dir .. "/limits"
  sandbox = kapi.sandbox.start {products = 2000, stores = 40, items = 300}
  data = sandbox_data(sandbox.state.catalog)
  local specs = {}
  for _, d in ipairs(DOCUMENTS) do
    specs[#specs + 1] = {name = d.name, args = {"mock", prism.document(d.doc)}}
  end
  for _, d in ipairs(DOCUMENTS) do
    specs[#specs + 1] = {name = "proxy-" .. d.name, args = {"proxy", prism.document(d.doc), sandbox.url}}
  end
  local all = prism.start(dir, specs)
  mocks, proxies = {}, {}
  for _, d in ipairs(DOCUMENTS) do
    mocks[d.name], proxies[d.name] = all[d.name], all["proxy-" .. d.name]
  end
  routers.mock_public = prism.router {routes = routes(mocks, false), prefer = prefer}
  routers.mock_partner = prism.router {routes = routes(mocks, true), prefer = prefer}
  -- Prism's proxy follows redirects itself (node-fetch's default), so the
  -- authorize redirect goes to the sandbox directly: the auth mock judges
  -- the request, and the answer's status must be one the document gives.
  local authorize = {"/v1/connect/oauth2/authorize", sandbox.url, check = mocks.auth.url,
                     statuses = documented_statuses("kroger/auth-1.0.13.json", "/v1/connect/oauth2/authorize", "get")}
  local public, partner = routes(proxies, false), routes(proxies, true)
  public[#public + 1], partner[#partner + 1] = authorize, authorize
  routers.proxy_public = prism.router {routes = public}
  routers.proxy_partner = prism.router {routes = partner}
end)

teardown(function()
  for _, r in pairs(routers) do r:close() end
  prism.stop_all(mocks)
  prism.stop_all(proxies)
  if sandbox then sandbox:close() end
  store.directory, limits.directory = nil, nil
  process.cleanup(dir)
end)

-- A stored customer login for client_id at the router (what `kapi auth
-- login` leaves), so that customer calls need no login: Prism's auth mock
-- only hands out a static token.
local function store_customer(url, client_id, scopes)
  local host = url:match("^(%a+://[^/]+)")
  store.write(store.key(host, client_id, "customer"), {
    kind = "customer", host = host, client_id = client_id, scopes = scopes,
    access_token = "conformance-customer-token", refresh_token = "conformance-refresh-token",
    expires_at = os.time() + 3600})
end

local CUSTOMER_SCOPES = {"cart.basic:write", "profile.compact", "profile.basic", "profile.loyalty"}

local function kroger_client(router, client_id, secret, partner)
  return kapi.kroger.client {env = "sandbox", base_url = router.url, client_id = client_id,
                             client_secret = secret, partner = partner}
end

local function content1_client(router, opts)
  return kapi.content1.client {env = "sandbox", base_url = router.url, app_id = opts and opts.app_id or "kapicnf1",
                               secret = opts and opts.secret or "conformance-hmac-secret", gln = opts and opts.gln}
end

local GTIN = "10614141000019"
local IP_GLN = "0614141000005"

-- Every client method, with the arguments of each kind it takes. c is
-- {public, partner, content1, content1_gln} clients; d the ids to ask for
-- (the sandbox's: the mocks take any).
local CALLS = {
  {"products{term}", function(c) return c.public:products {term = "milk", max_items = 5}:all() end},
  {"products{term, locationId} over pages", function(c, d)
    return c.public:products {term = "milk", locationId = d.store, limit = 10, max_items = 25}:all() end},
  {"products{productId list}", function(c, d) return c.public:products {productId = d.products}:all() end},
  {"products{brand list, fulfillment}", function(c, d)
    return c.public:products {brand = d.brands, fulfillment = {"ais", "csp"}, max_items = 5}:all() end},
  {"product(id, {locationId})", function(c, d) return c.public:product(d.products[1], {locationId = d.store}) end},
  {"product_for_gtin", function(c, d) return c.public:product_for_gtin(kapi.gtin.from_product_id(d.products[2])) end},
  {"product_url", function(c, d) return c.public:product_url(c.public:product(d.products[1])) end},
  {"products (partner)", function(c, d)
    return c.partner:products {term = "bread", locationId = d.store, max_items = 5}:all() end},
  {"product (partner)", function(c, d) return c.partner:product(d.products[1]) end},
  {"locations{zip, radius, limit}", function(c) return c.public:locations {zip = "45202", radius = 10, limit = 5} end},
  {"locations{latlong}", function(c) return c.public:locations {latlong = "39.1031,-84.5120"} end},
  {"locations{lat, lon}", function(c) return c.public:locations {lat = 39.1031, lon = -84.512} end},
  {"locations{locationId list}", function(c, d) return c.public:locations {locationId = d.stores} end},
  {"locations{chain}", function(c) return c.public:locations {chain = "KROGER", zip = "45202"} end},
  {"locations{department list}", function(c, d) return c.public:locations {zip = "45202", department = d.departments} end},
  {"nearest_stores", function(c) return c.public:nearest_stores("45202", 3) end},
  {"location(id)", function(c, d) return c.public:location(d.store) end},
  {"chains()", function(c) return c.public:chains() end},
  {"chain(name)", function(c) return c.public:chain("RALPHS") end},
  {"departments()", function(c) return c.public:departments() end},
  {"department(id)", function(c, d) return c.public:department(d.departments[1]) end},
  {"cart_add", function(c, d)
    return c.public:cart_add {items = {{upc = d.products[1], quantity = 2}, {upc = d.products[2], modality = "DELIVERY"}}}
  end},
  {"profile()", function(c) return c.public:profile() end},
  {"profile() (partner)", function(c) return c.partner:profile() end},
  {"loyalty() (partner)", function(c) return c.partner:loyalty() end},
  {"content1 count{gtin}", function(c) return c.content1:count {gtin = {GTIN}} end},
  {"content1 count{ipGln, targetMarket}", function(c) return c.content1:count {ipGln = IP_GLN, targetMarket = "US"} end},
  {"content1 fetch{ipGln} over pages", function(c)
    return c.content1:fetch({ipGln = IP_GLN}, {page_size = 10, max_items = 30}):all() end},
  {"content1 fetch{brandName, lastModifiedDate, fields, sortFields} raw", function(c)
    return c.content1:fetch({brandName = "*a*", lastModifiedDate = {from = {date = "2023-01-01T00:00:00", op = "GTE"}},
                             fields = {include = {"gtin", "brandName"}},
                             sortFields = {{field = "gtin", desc = false}}}, {page_size = 5, max_items = 5, raw = true}):all()
  end},
  {"content1 fetch{gtin} with gln", function(c) return c.content1_gln:fetch({gtin = {GTIN}}, {page_size = 10}):all() end},
  {"content1 hierarchy(gtin)", function(c) return c.content1:hierarchy(GTIN) end},
  {"content1 hierarchies{ipGln}", function(c)
    return c.content1:hierarchies({ipGln = IP_GLN}, {page_size = 50, max_items = 100}) end},
}

local function failure_report(name, ok, err, problems, exchanges)
  local lines = {name .. ":"}
  if not ok then lines[#lines + 1] = "  kapi raised: " .. tostring(err) end
  for _, p in ipairs(problems) do lines[#lines + 1] = "  " .. p end
  if #exchanges == 0 then lines[#lines + 1] = "  no request reached Prism" end
  return table.concat(lines, "\n")
end

-- One refusal is kapi's on purpose, not a failure to read an answer: a
-- Content1 page with no searchAfter while its totalCount says more items
-- remain is a contradiction a random answer can make (paginate.cursor:
-- "never a loop", and never a silent end). Only the mocks' random answers
-- may meet it.
local function deliberate(err)
  return mode ~= nil and errors.is(err, "pagination")
         and tostring(err):find("sent no searchAfter, but counts", 1, true) ~= nil
end

-- Runs one call and checks every exchange it made.
local function check_call(router, call, clients)
  router:take()
  local ok, err = pcall(call[2], clients, data)
  if not ok and deliberate(err) then ok = true end
  local exchanges = router:take()
  local problems = prism.problems(exchanges)
  assert(ok and #problems == 0 and #exchanges > 0, failure_report(call[1], ok, err, problems, exchanges))
end

local function router_for(call, public, partner)
  return call[1]:find("(partner)", 1, true) and partner or public
end

local function mock_clients(label)
  local id = "conformance-" .. label
  store_customer(routers.mock_public.url, id, CUSTOMER_SCOPES)
  store_customer(routers.mock_partner.url, id, CUSTOMER_SCOPES)
  return {public = kroger_client(routers.mock_public, id, "conformance-secret", false),
          partner = kroger_client(routers.mock_partner, id, "conformance-secret", true),
          content1 = content1_client(routers.mock_public),
          content1_gln = content1_client(routers.mock_public, {gln = "0838016000123"})}
end

-- A JSON Patch (RFC 6902: test, add, replace, remove, move) applied to a
-- decoded document in place; raises on an operation that does not apply.
local function patch(doc, ops, name)
  local function locate(pointer)
    local parts = {}
    for part in pointer:gmatch("/([^/]*)") do parts[#parts + 1] = (part:gsub("~1", "/"):gsub("~0", "~")) end
    local node = doc
    for i = 1, #parts - 1 do
      local key = parts[i]
      node = node[math.tointeger(tonumber(key)) and node[1] ~= nil and tonumber(key) + 1 or key]
      assert(type(node) == "table", ("%s: %s does not exist"):format(name, pointer))
    end
    local last = parts[#parts]
    if math.tointeger(tonumber(last)) and node[1] ~= nil then last = tonumber(last) + 1 end
    return node, last
  end
  local function same(a, b) return json.encode(a, {sorted = true}) == json.encode(b, {sorted = true}) end
  for _, op in ipairs(ops) do
    local node, key = locate(op.path)
    local where = ("%s: %s %s"):format(name, op.op, op.path)
    if op.op == "test" then
      assert(node[key] ~= nil and same(node[key], op.value), where .. ": the published value is not the one given")
    elseif op.op == "add" then
      assert(node[key] == nil, where .. ": already there")
      node[key] = op.value
    elseif op.op == "replace" or op.op == "remove" then
      assert(node[key] ~= nil, where .. ": not there")
      node[key] = op.value -- nil for remove
    elseif op.op == "move" then
      local from, from_key = locate(op.from)
      assert(from[from_key] ~= nil and node[key] == nil, where .. ": cannot move")
      node[key], from[from_key] = from[from_key], nil
    else
      error(where .. ": unknown operation")
    end
  end
  return doc
end

local function read_json(path)
  local f = assert(io.open(path))
  local value = json.decode(f:read("a"))
  f:close()
  return value
end

describe("the corrected documents", function()
  it("differ from the published ones exactly by corrections.json, each change with its reason", function()
    local base = process.source_dir .. "/tests/data/openapi/"
    local corrections = read_json(base .. "corrected/corrections.json")
    local listed = {}
    for name, ops in pairs(corrections) do
      local file = name:match("[^/]+$")
      listed[file] = true
      local expected = patch(read_json(base .. name), ops, name)
      local corrected = read_json(base .. "corrected/" .. file)
      assert(json.encode(expected, {sorted = true}) == json.encode(corrected, {sorted = true}),
             "corrected/" .. file .. " is not " .. name .. " with the corrections of corrections.json")
      for _, op in ipairs(ops) do
        assert(op.op == "test" or type(op.why) == "string", name .. ": " .. op.path .. " has no why")
      end
    end
    local p = io.popen("ls " .. process.quote(base .. "corrected"))
    for file in p:lines() do
      assert(file == "corrections.json" or listed[file], "corrected/" .. file .. " has no corrections listed")
    end
    p:close()
  end)
end)

describe("the check itself", function()
  local function get(router, path, headers)
    router:take()
    local res = kapi.http.get(router.url .. path, {headers = headers, raise = false, retry = false})
    local exchanges = router:take()
    assert.equal(1, #exchanges)
    return res, exchanges[1]
  end

  local function locations(exchange)
    local out = {}
    for _, v in ipairs(exchange.violations) do out[#out + 1] = (v.location or {})[1] end
    return out
  end

  it("hears a request Prism refuses: its 4xx, and the violation it names", function()
    mode = nil
    local res, e = get(routers.mock_public, "/v1/departments/123", {Authorization = "Bearer x"})
    assert.equal(400, res.status) -- the document's 400, as Prism mocks it
    assert.same({"request"}, locations(e))
    assert.equal(1, #prism.problems {e})
    res, e = get(routers.mock_public, "/v1/chains")
    assert.equal(401, res.status) -- no token: the document's security says one is needed
    assert.same({"request"}, locations(e))
  end)

  it("hears a sandbox answer that breaks the document: Prism's 500, and the violations", function()
    mode = nil
    local c = sandbox.credentials
    local token = kapi.http.post(sandbox.url .. "/v1/connect/oauth2/token", {
      headers = {Authorization = "Basic " .. crypto.base64(c.client_id .. ":" .. c.client_secret)},
      form = {grant_type = "client_credentials"}}):json().access_token
    local res, e = get(routers.proxy_partner, "/v1/chains", {Authorization = "Bearer " .. token})
    assert.equal(200, res.status)
    assert.same({}, prism.problems {e})
    res, e = get(routers.proxy_partner, "/v1/chains", {Authorization = "Bearer " .. token,
                                                       ["X-Sandbox-Fault"] = "malformed"}) -- half a body
    assert.equal(500, res.status) -- --errors: a response violation is answered 500
    assert.equal("response", locations(e)[1])
  end)

  it("gets the documents' examples in static mode, and random answers by seed in dynamic mode", function()
    local function chains(seed)
      mode = seed
      local res, e = get(routers.mock_public, "/v1/chains", {Authorization = "Bearer x"})
      assert.equal(200, res.status)
      assert.same({}, prism.problems {e})
      return res.body
    end
    local static, one, again, two = chains(nil), chains("1"), chains("1"), chains("2")
    mode = nil
    assert.equal("KROGER", json.decode(static).data[1].name) -- the example
    assert.equal(one, again)
    assert.are_not.equal(one, two)
    assert.are_not.equal(static, one)
  end)
end)

local MODES = {{label = "static"}}
for _, s in ipairs(SEEDS) do MODES[#MODES + 1] = {label = "seed-" .. s, seed = s} end

for _, m in ipairs(MODES) do
  describe("kapi against Prism mocks, " .. (m.seed and ("dynamic, seed " .. m.seed) or "static"), function()
    local clients
    before_each(function()
      mode = m.seed
      clients = clients or mock_clients(m.label)
    end)
    for _, call in ipairs(CALLS) do
      it(call[1], function()
        check_call(router_for(call, routers.mock_public, routers.mock_partner), call, clients)
      end)
    end
  end)
end

-- Logs the sandbox's customer in through the validating proxies, as `kapi
-- auth login` does (kapi's login flow, this test playing the browser): the
-- authorize redirect and the code exchange are checked like every call.
local function log_in(router, client_id, secret, scopes)
  local followed
  login.login {base_url = router.url, client_id = client_id, client_secret = secret, scopes = scopes,
    browser = false, timeout = 10, announce = function(line)
      local url = line:match("^%s+(http%S+)$")
      if not url or followed then return end
      followed = true
      kapi.spawn(function()
        local callback = kapi.http.get(url, {raise = false}).headers.location
        if callback then kapi.http.get(callback, {raise = false}) end
      end)
    end}
end

describe("the sandbox through Prism validating proxies", function()
  local clients
  before_each(function() mode = nil end)
  setup(function()
    local c = sandbox.credentials
    clients = {public = kroger_client(routers.proxy_public, c.public_client_id, c.public_client_secret, false),
               partner = kroger_client(routers.proxy_partner, c.client_id, c.client_secret, true),
               content1 = content1_client(routers.proxy_public, {app_id = c.content1_app_id, secret = c.content1_secret}),
               content1_gln = content1_client(routers.proxy_public, {app_id = c.content1_app_id,
                                                                      secret = c.content1_secret, gln = "0838016000123"})}
  end)

  it("logs a customer in (authorize, code exchange) and refreshes the login", function()
    local c = sandbox.credentials
    routers.proxy_public:take()
    routers.proxy_partner:take()
    local ok, err = pcall(function()
      log_in(routers.proxy_public, c.public_client_id, c.public_client_secret, {"cart.basic:write", "profile.compact"})
      log_in(routers.proxy_partner, c.client_id, c.client_secret, {"profile.basic", "profile.loyalty"})
      -- An access token run out: the next customer call refreshes it.
      local key = store.key(routers.proxy_public.url, c.public_client_id, "customer")
      local record = store.read(key)
      record.expires_at = os.time() - 60
      store.write(key, record)
      clients.public:profile()
    end)
    local public, partner = routers.proxy_public:take(), routers.proxy_partner:take()
    local exchanges = table.move(partner, 1, #partner, #public + 1, table.move(public, 1, #public, 1, {}))
    local problems = prism.problems(exchanges)
    assert(ok and #problems == 0, failure_report("login", ok, err, problems, exchanges))
    local function calls(list)
      local out = {}
      for _, e in ipairs(list) do out[#out + 1] = e.method .. " " .. e.path end
      return out
    end
    assert.same({"GET /v1/connect/oauth2/authorize", "POST /v1/connect/oauth2/token", -- the code
                 "POST /v1/connect/oauth2/token", "GET /v1/identity/profile"}, calls(public)) -- the refresh
    assert.same({"GET /v1/connect/oauth2/authorize", "POST /v1/connect/oauth2/token"}, calls(partner))
  end)

  for _, call in ipairs(CALLS) do
    it(call[1], function()
      check_call(router_for(call, routers.proxy_public, routers.proxy_partner), call, clients)
    end)
  end
end)
