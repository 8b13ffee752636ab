-- The Kroger API client: every endpoint of domain.md §2 as a method with
-- Lua-friendly arguments, checked before anything is sent; products and
-- coupons as iterators; service or customer tokens picked by the scope an
-- endpoint needs; the wire's drift from the spec absorbed in one place.
local http = require "kapi.http"
local auth = require "kapi.auth"
local config = require "kapi.config"
local paginate = require "kapi.paginate"
local gtin = require "kapi.gtin"
local errors = require "kapi.errors"
local json = require "kapi.json"
local doc = require "kapi.doc"
local limits = require "kapi.limits"

local M = {}

--- The most product ids one Products call takes (filter.productId).
M.MAX_PRODUCT_IDS = 50

local Client = {}
Client.__index = Client

local function usage(message) error(errors.new("usage", "kroger: " .. message), 3) end

-- A value a caller gave, as a message shows it: a string quoted and cut
-- short, a number said to be one (45202 is not the string "45202").
local function got(value)
  if type(value) == "string" then return '"' .. errors.excerpt(value) .. '"' end
  if type(value) == "number" then return "the number " .. errors.excerpt(value) end
  return type(value)
end

-- Argument checks, with the documented rules --------------------------------------

local function check_location(id, name)
  if id ~= nil and (type(id) ~= "string" or #id ~= 8) then
    usage(("%s must be an 8-character location id (3-digit division + 5-digit store), got %s")
          :format(name or "locationId", got(id)))
  end
  return id
end

local function check_product_id(id, name)
  if type(id) ~= "string" or not id:match("^%d%d%d%d%d%d%d%d%d%d%d%d%d$") then
    usage(("%s must be a 13-digit product id (a UPC without its check digit), got %s"):format(name or "productId", got(id)))
  end
  return id
end

local function check_term(term)
  if term == nil then return nil end
  if type(term) ~= "string" or (utf8.len(term) or #term) < 3 then usage("term must have at least 3 characters") end
  local words = 0
  for _ in term:gmatch("%S+") do words = words + 1 end
  if words > 8 then usage("term must have 8 words or fewer") end
  return term
end

local function check_range(value, name, low, high, default)
  if value == nil then return default end
  if math.type(value) ~= "integer" or value < low or value > high then
    usage(("%s must be an integer from %d to %d, got %s"):format(name, low, high, got(value)))
  end
  return value
end

local function list_of(value)
  if value == nil then return nil end
  if type(value) == "table" then return value end
  return {value}
end

local MODALITIES = {PICKUP = true, DELIVERY = true}
local FULFILLMENT = {ais = true, csp = true, dth = true, sth = true}

-- Drift between the spec and the wire, absorbed here ------------------------------

local FULFILLMENT_KEYS = {instore = "inStore", shiptohome = "shipToHome", curbside = "curbside",
                          delivery = "delivery"}

--- One shape for a product, whichever the server sent: fulfillment keys in
--- the live wire's camelCase (inStore, shipToHome), soldBy upper-case.
function M.normalize_product(p)
  for _, item in ipairs(p.items or {}) do
    if item.fulfillment then
      local f = {}
      for k, v in pairs(item.fulfillment) do f[FULFILLMENT_KEYS[k:lower()] or k] = v end
      item.fulfillment = f
    end
    if type(item.soldBy) == "string" then item.soldBy = item.soldBy:upper() end
  end
  return p
end

-- The client ------------------------------------------------------------------------

--- client{env = "sandbox" | "ce" | "prod", base_url, client_id, client_secret,
--- partner} -> Kroger client
local secrets = setmetatable({}, {__mode = "k"}) -- kept out of the client, as in kapi.auth

local CLIENT_OPTIONS = {env = "string", base_url = "string", client_id = "string", client_secret = "string",
                        partner = "boolean", max_offset = "number", daily_limits = "table"}

function M.client(opts)
  opts = errors.check(opts, "table?", "kroger.client: opts") or {}
  errors.check_options(opts, CLIENT_OPTIONS, "kroger.client")
  errors.check_whole(opts.max_offset, 0, nil, "kroger.client: max_offset", true)
  local c = config.kroger(opts.env, opts.base_url)
  local self = setmetatable({
    env = c.env, base_url = c.base_url, client_id = opts.client_id or c.client_id, tokens = {},
  }, Client)
  secrets[self] = opts.client_secret or c.client_secret
  local partner = opts.partner
  if partner == nil then partner = c.partner end
  if partner == nil then partner = c.env == "sandbox" and self.client_id == "kapi-sandbox" end
  self.partner = partner
  self.max_offset = opts.max_offset or (partner and 1000 or 250)
  -- The scopes the specs name: products-public product.compact,
  -- products-partner product.basic; locations, chains and departments a
  -- client-credentials token with no scope at all.
  self.product_scope = partner and "product.basic" or "product.compact"
  -- The sandbox started inside this process ends with it: nobody can log
  -- in to it with `kapi auth login`, so ensure_customer logs in for them.
  self.in_process_sandbox = config.is_in_process_sandbox(self.base_url)
  -- A public app's calls are counted against its daily budgets (partner
  -- apps have none): in the state directory, or in memory for the sandbox
  -- that ends with this process.
  if not partner then
    self.limits = limits.counter {host = self.base_url:match("^(%a+://[^/]+)") or self.base_url,
                                  client_id = self.client_id, persist = not self.in_process_sandbox,
                                  budgets = opts.daily_limits}
    self.counted = setmetatable({}, {__mode = "k"})
  end
  return self
end

-- An authenticator that counts each attempt against the endpoint's daily
-- budget as it lends its token (a retry costs a call too), and refuses the
-- attempt the budget has no room for.
local function counted(self, authenticator, endpoint)
  local by_endpoint = self.counted[authenticator]
  if not by_endpoint then
    by_endpoint = {}
    self.counted[authenticator] = by_endpoint
  end
  local wrapped = by_endpoint[endpoint]
  if not wrapped then
    local counter = self.limits
    wrapped = {
      authorize = function(_, req)
        counter:spend(endpoint)
        return authenticator:authorize(req)
      end,
      renew = authenticator.renew and function(_, ...) return authenticator:renew(...) end,
    }
    by_endpoint[endpoint] = wrapped
  end
  return wrapped
end

local FINAL_429 = {[429] = true}

function Client:service(scope)
  errors.check(scope, "string?", "kroger:service: scope")
  local key = scope or ""
  self.tokens[key] = self.tokens[key] or auth.service {base_url = self.base_url, client_id = self.client_id,
    client_secret = secrets[self], scopes = scope and {scope} or {}}
  return self.tokens[key]
end

function Client:customer(scope)
  errors.check(scope, "string", "kroger:customer: scope")
  local a = self.tokens.customer or auth.customer {base_url = self.base_url, client_id = self.client_id,
    client_secret = secrets[self], scopes = {scope}}
  self.tokens.customer = a
  a.scopes = {scope}
  return a
end

-- The sandbox's one customer consents at once: play the browser, follow
-- its redirect to the login's callback.
local function sandbox_login(self, scopes)
  local task = require "kapi.task"
  local followed
  return require("kapi.auth.login").login {
    base_url = self.base_url, client_id = self.client_id, client_secret = secrets[self], scopes = scopes,
    browser = false, timeout = 10, announce = function(line)
      local url = line:match("^%s+(https?://%S+)$")
      if not url or followed then return end
      followed = true
      task.spawn(function()
        pcall(function()
          local callback = http.get(url, {raise = false}).headers.location
          if callback then http.get(callback, {raise = false}) end
        end)
      end)
    end,
  }
end

--- ensure_customer(scope): checks, before anything is changed, that a
--- customer is logged in with scope (raising "run: kapi auth login --scope
--- ..." when not). On the sandbox inside this process, which no earlier
--- login can know, it logs in as the sandbox's customer instead, and says
--- so on stderr.
function Client:ensure_customer(scope)
  errors.check(scope, "string", "kroger:ensure_customer: scope")
  local a = self:customer(scope)
  if self.in_process_sandbox then
    self.sandbox_scopes = self.sandbox_scopes or {}
    if not self.sandbox_scopes[scope] then
      self.sandbox_scopes[#self.sandbox_scopes + 1], self.sandbox_scopes[scope] = scope, true
      sandbox_login(self, self.sandbox_scopes)
      a.cached = nil
      require("kapi.log").note("kapi: logged in to the built-in sandbox as its test customer (scope %s)", scope)
    end
  else
    local stored = auth.store.read(a.key)
    local has = false
    for _, s in ipairs(stored and stored.scopes or {}) do has = has or s == scope end
    if not stored then
      error(errors.new("auth", ("no customer is logged in; run: kapi auth login --scope %s"):format(scope),
                       {setup = true}), 0)
    elseif not has then
      error(errors.new("auth", ("the customer login lacks the scope %s (it has: %s); run: kapi auth login --scope %s")
                       :format(scope, table.concat(stored.scopes or {}, " "), scope), {setup = true}), 0)
    end
  end
  a:token()
  return a
end

function Client:get(path, query, authenticator, opts)
  errors.check(path, "string", "kroger:get: path")
  errors.check(query, "table?", "kroger:get: query")
  errors.check(opts, "table?", "kroger:get: opts")
  opts = opts or {}
  local expect_json = opts.expect_json
  if expect_json == nil then expect_json = opts.body == nil end
  local endpoint = self.limits and authenticator and limits.endpoint(path)
  -- opts.headers and opts.body: kapi api's requests, as the user gave them.
  if not endpoint then
    return http.request {method = opts.method or "GET", url = self.base_url .. path, query = query,
                         auth = authenticator, json = opts.json, body = opts.body, headers = opts.headers,
                         retry = opts.retry, raise = opts.raise, expect_json = expect_json}
  end
  local ok, res = pcall(http.request, {method = opts.method or "GET", url = self.base_url .. path, query = query,
                                       auth = counted(self, authenticator, endpoint), json = opts.json,
                                       body = opts.body, headers = opts.headers,
                                       retry = opts.retry, raise = opts.raise, final = FINAL_429,
                                       expect_json = expect_json})
  if ok and res.status == 429 then error(self.limits:exhausted(endpoint), 0) end -- raise = false
  if ok then return res end
  if errors.is(res, "http") and res.status == 429 then error(self.limits:exhausted(endpoint), 0) end
  error(res, 0)
end

-- Products --------------------------------------------------------------------------

local function product_query(args)
  local ids = list_of(args.productId)
  for i, id in ipairs(ids or {}) do check_product_id(id, ("productId[%d]"):format(i)) end
  if ids and #ids > M.MAX_PRODUCT_IDS then
    usage(("productId takes at most %d ids"):format(M.MAX_PRODUCT_IDS))
  end
  local fulfillment = list_of(args.fulfillment)
  for _, f in ipairs(fulfillment or {}) do
    if not FULFILLMENT[f] then usage(("fulfillment must be among ais, csp, dth, sth, got %s"):format(got(f))) end
  end
  local query = {
    ["filter.term"] = check_term(args.term), ["filter.locationId"] = check_location(args.locationId),
    ["filter.productId"] = ids and table.concat(ids, ","),
    ["filter.brand"] = args.brand and table.concat(list_of(args.brand), "|"),
    ["filter.fulfillment"] = fulfillment and table.concat(fulfillment, ","),
  }
  if not (query["filter.term"] or query["filter.productId"] or query["filter.brand"]) then
    usage("products needs term, productId or brand")
  end
  return query
end

-- A page asked for without some members is checked as JSON by skimming
-- it for nothing, then decoded without them.
local CHECKED_ONLY = {expect_json = {}}

--- products{term, locationId, productId, brand, fulfillment, limit = 50,
--- max_items, without} -> iterator over products (normalized); without
--- lists members left out of each (e.g. {"images"}: four fifths of a
--- product, when only its price and stock are wanted).
function Client:products(args)
  errors.check(args, "table?", "kroger:products: args")
  args = args or {}
  local query = product_query(args)
  local without = errors.check(args.without, "table?", "kroger:products: without")
  for i, name in ipairs(without or {}) do errors.check(name, "string", ("kroger:products: without[%d]"):format(i)) end
  local lean = without and {without = without}
  local limit = check_range(args.limit, "limit", 1, 50, 50)
  local authenticator = self:service(self.product_scope)
  return paginate.offset {
    limit = limit, max_offset = self.max_offset, max_items = args.max_items, progress = args.progress,
    on_unreachable = args.on_unreachable,
    -- The order of a term search can change between pages: no product is
    -- given twice in one iteration (docs/api.md: a search is no snapshot).
    unique = function(p) return p.productId end,
    fetch = function(start, page_size)
      local q = {}
      for k, v in pairs(query) do q[k] = v end
      -- filter.start is the number of results to skip, at least 1: the
      -- first page leaves it out (the spec's minimum; 0 is refused).
      q["filter.start"], q["filter.limit"] = start > 0 and start or nil, page_size
      local page = self:get("/v1/products", q, authenticator, lean and CHECKED_ONLY):json(lean)
      local items = page.data or {}
      for _, p in ipairs(items) do M.normalize_product(p) end
      local pagination = page.meta and page.meta.pagination or {}
      return items, pagination.total
    end,
  }
end

--- product(id, {locationId}) -> product
function Client:product(id, args)
  check_product_id(id, "id")
  args = args or {}
  local page = self:get("/v1/products/" .. id, {["filter.locationId"] = check_location(args.locationId)},
                        self:service(self.product_scope)):json()
  return M.normalize_product(page.data)
end

--- product_for_gtin(gtin, {locationId}) -> product: GTIN or UPC to Kroger's product.
function Client:product_for_gtin(code, args)
  return self:product(gtin.to_product_id(code), args)
end

--- product_url(product, chain_name = "KROGER") -> the product page's address.
function Client:product_url(product, chain_name)
  errors.check(product, "table", "kroger:product_url: product")
  errors.check(product.productPageURI, "string", "kroger:product_url: product.productPageURI")
  errors.check(chain_name, "string?", "kroger:product_url: chain")
  local chain = self:chain(chain_name or "KROGER")
  return "https://www." .. chain.domain .. product.productPageURI
end

-- Locations, chains, departments ----------------------------------------------------

--- locations{zip | latlong | lat, lon | locationId, radius = 10, limit = 10,
--- chain, department} -> list of stores, nearest first
function Client:locations(args)
  errors.check(args, "table?", "kroger:locations: args")
  args = args or {}
  if args.zip ~= nil and (type(args.zip) ~= "string" or not args.zip:match("^%d%d%d%d%d$")) then
    usage(("zip must be a string of 5 digits, got %s"):format(got(args.zip)))
  end
  local ids = list_of(args.locationId)
  for i, id in ipairs(ids or {}) do check_location(id, ("locationId[%d]"):format(i)) end
  local departments = list_of(args.department)
  for _, d in ipairs(departments or {}) do
    if type(d) ~= "string" or #d ~= 2 then usage(("department must be a 2-character id, got %s"):format(got(d))) end
  end
  local latlong = args.latlong or (args.lat and args.lon and ("%s,%s"):format(args.lat, args.lon))
  if not (args.zip or latlong or ids or args.chain) then usage("locations needs zip, latlong, lat and lon, locationId or chain") end
  local page = self:get("/v1/locations", {
    ["filter.zipCode.near"] = args.zip, ["filter.latLong.near"] = latlong,
    ["filter.locationId"] = ids and table.concat(ids, ","), ["filter.chain"] = args.chain,
    ["filter.department"] = departments and table.concat(departments, ","),
    ["filter.radiusInMiles"] = check_range(args.radius, "radius", 1, 100, nil),
    ["filter.limit"] = check_range(args.limit, "limit", 1, 200, nil),
  }, self:service()):json()
  return page.data or {}
end

--- nearest_stores(zip, n = 5) -> the n stores nearest to a ZIP code
function Client:nearest_stores(zip, n)
  return self:locations {zip = zip, limit = n or 5, radius = 100}
end

function Client:location(id)
  errors.check(id, "string", "kroger:location: id")
  check_location(id, "id")
  return self:get("/v1/locations/" .. id, nil, self:service()):json().data
end

function Client:chains()
  return self:get("/v1/chains", nil, self:service()):json().data
end

function Client:chain(name)
  if type(name) ~= "string" or name == "" then usage("chain needs a name") end
  self.chain_cache = self.chain_cache or {}
  local key = name:upper()
  if not self.chain_cache[key] then
    self.chain_cache[key] = self:get("/v1/chains/" .. http.escape(key), nil, self:service()):json().data
  end
  return self.chain_cache[key]
end

function Client:departments()
  return self:get("/v1/departments", nil, self:service()):json().data
end

function Client:department(id)
  if type(id) ~= "string" or #id ~= 2 then usage(("department id must have 2 characters, got %s"):format(got(id))) end
  return self:get("/v1/departments/" .. id, nil, self:service()):json().data
end

-- Coupons -----------------------------------------------------------------------------

-- Coupons are a partner API (the seed's overview; the public API has
-- none): a token for coupons.basic refused, or the call refused for its
-- scope, is said so, as a setup to do, not as a bare invalid_scope.
local function partner_only(fn, ...)
  local ok, result = pcall(fn, ...)
  if ok then return result end
  local scope_refused = errors.is(result, "auth") and result.code == "invalid_scope"
                        or errors.is(result, "http") and result.status == 403
  if scope_refused then
    error(errors.new("auth", "coupons are a partner API (Kroger's public API has none): this app is not registered "
                     .. "for the scope coupons.basic; use a partner app (KROGER_PARTNER=1)", {setup = true,
                     code = result.code, status = result.status}), 0)
  end
  error(result, 0)
end

--- coupons{locationId, productId, merchant, channels, limit = 50, max_items} -> iterator
function Client:coupons(args)
  errors.check(args, "table?", "kroger:coupons: args")
  args = args or {}
  local ids = list_of(args.productId)
  for i, id in ipairs(ids or {}) do check_product_id(id, ("productId[%d]"):format(i)) end
  local query = {["filter.locationId"] = check_location(args.locationId),
                 ["filter.productId"] = ids and table.concat(ids, ","), ["filter.merchant"] = args.merchant,
                 ["filter.channels"] = args.channels}
  local limit = check_range(args.limit, "limit", 1, 50, 50)
  local authenticator = self:service("coupons.basic")
  return paginate.offset {limit = limit, max_items = args.max_items, fetch = function(start, page_size)
    local q = {}
    for k, v in pairs(query) do q[k] = v end
    q["filter.start"], q["filter.limit"] = start > 0 and start or nil, page_size
    local page = partner_only(self.get, self, "/v1/coupons", q, authenticator):json()
    return page.data or {}, page.meta.pagination.total
  end}
end

--- coupon(id) -> one coupon
function Client:coupon(id)
  if type(id) ~= "string" or id == "" then usage("coupon needs a coupon id") end
  return partner_only(self.get, self, "/v1/coupons/" .. http.escape(id), nil, self:service("coupons.basic")):json().data
end

--- clip_coupon(id): puts a coupon on the customer's card (customer login).
function Client:clip_coupon(id)
  if type(id) ~= "string" or id == "" then usage("clip_coupon needs a coupon id") end
  return self:get("/v1/my_coupons", nil, self:customer("coupon.personalized:rw"),
                  {method = "POST", json = {couponId = id}}):json().data
end

function Client:unclip_coupon(id)
  self:get("/v1/my_coupons/" .. http.escape(id), nil, self:customer("coupon.personalized:rw"), {method = "DELETE"})
end

function Client:my_coupons()
  return self:get("/v1/my_coupons", nil, self:customer("coupon.personalized:rw")):json().data
end

-- Cart and identity -------------------------------------------------------------------

local function check_item(item, where)
  if type(item) ~= "table" then usage(where .. " must be a table {upc, quantity, modality}") end
  local upc = item.upc
  if type(upc) == "string" and #upc ~= 13 and gtin.valid(upc) then upc = gtin.to_product_id(upc) end
  if type(upc) ~= "string" or not upc:match("^%d%d%d%d%d%d%d%d%d%d%d%d%d$") then
    usage(("%s.upc must be 13 digits (or a valid GTIN), got %s"):format(where, got(item.upc)))
  end
  local quantity = item.quantity or 1
  if math.type(quantity) ~= "integer" or quantity < 1 then
    usage(("%s.quantity must be a positive integer, got %s"):format(where, got(quantity)))
  end
  local modality = item.modality or "PICKUP"
  if not MODALITIES[modality] then
    usage(("%s.modality must be PICKUP or DELIVERY, got %s"):format(where, got(modality)))
  end
  return {upc = upc, quantity = quantity, modality = modality}
end


--- cart_add{items = {{upc, quantity = 1, modality = "PICKUP"}, ...}}: never
--- retried, since a repeat adds again.
function Client:cart_add(args)
  if type(args) ~= "table" or type(args.items) ~= "table" or #args.items == 0 then
    usage("cart_add needs items = {{upc = ..., quantity = ...}, ...}")
  end
  local items = json.array()
  for i, item in ipairs(args.items) do items[i] = check_item(item, ("items[%d]"):format(i)) end
  self:get("/v1/cart/add", nil, self:customer("cart.basic:write"), {method = "PUT", json = {items = items}, retry = false})
  return #items
end

-- Partner carts, collections, courier deliveries ----------------------------------

--- carts() -> the customer's partner carts; create_cart() -> a new one
function Client:carts()
  return self:get("/v1/carts", nil, self:customer("cart.basic")):json().data
end

function Client:create_cart()
  return self:get("/v1/carts", nil, self:customer("cart.basic:rw"), {method = "POST", retry = false}):json().data
end

function Client:cart(id)
  return self:get("/v1/carts/" .. http.escape(id), nil, self:customer("cart.basic")):json().data
end

--- cart_add_item(cart_id, {upc, quantity, modality}) -> the cart; not retried
function Client:cart_add_item(id, item)
  local body = check_item(item, "item")
  return self:get("/v1/carts/" .. http.escape(id) .. "/items", nil, self:customer("cart.basic:rw"),
                  {method = "POST", json = body, retry = false}):json().data
end

function Client:cart_set_quantity(id, upc, quantity)
  local item = check_item({upc = upc, quantity = quantity}, "item")
  self:get(("/v1/carts/%s/items/%s"):format(http.escape(id), item.upc), nil, self:customer("cart.basic:rw"),
           {method = "PUT", json = {quantity = item.quantity}})
end

function Client:cart_remove_item(id, upc)
  local item = check_item({upc = upc}, "item")
  self:get(("/v1/carts/%s/items/%s"):format(http.escape(id), item.upc), nil, self:customer("cart.basic:rw"),
           {method = "DELETE"})
end

--- collections{name, type} -> the customer's collections
function Client:collections(args)
  errors.check(args, "table?", "kroger:collections: args")
  args = args or {}
  return self:get("/v1/collections", {["filter.name"] = args.name, ["filter.type"] = args.type},
                  self:customer("collection.basic")):json().data
end

--- deliveries{followingAction} -> courier deliveries; confirm_delivery(id)
function Client:deliveries(args)
  errors.check(args, "table?", "kroger:deliveries: args")
  args = args or {}
  return self:get("/v1/courier/deliveries", {["filter.followingAction"] = args.followingAction},
                  self:service("delivery.basic")):json().data
end

function Client:confirm_delivery(id)
  if type(id) ~= "string" or id == "" then usage("confirm_delivery needs a delivery id") end
  return self:get("/v1/courier/deliveries", nil, self:service("delivery.basic:rw"),
                  {method = "POST", json = {deliveryId = id, action = "CONFIRM"}}):json().data
end

function Client:profile()
  return self:get("/v1/identity/profile", nil, self:customer(self.partner and "profile.basic" or "profile.compact"))
         :json().data
end

function Client:loyalty()
  return self:get("/v1/identity/profile/loyalty", nil, self:customer("profile.loyalty")):json().data.loyalty
end

Client.__tostring = function(self)
  return ("kroger client (%s, %s)"):format(self.env, self.base_url)
end

doc.declare("kapi.kroger.client", M.client, [[
kapi.kroger.client{env = "sandbox" | "ce" | "prod", base_url, client_id, client_secret, partner,
                   daily_limits} -> kroger
A Kroger API client. Credentials come from the environment or the config
file (never arguments you type); with none, the built-in sandbox. A public
app's calls are counted against the API's daily budgets (products 10,000,
each locations endpoint 1,600, cart 5,000, identity 5,000; daily_limits =
{products = 20000} when Kroger granted your app others): kapi warns at 90%
and stops before a call the day has no room for, with the endpoint, the
budget and when it resets (kind "rate_limit"); a 429 is never retried.
kapi auth limits shows the counts. Partner apps are not counted.
Example:
  local kroger = kapi.kroger.client{env = "sandbox"}
  for p in kroger:products{term = "milk", locationId = "01400376", max_items = 5} do
    print(p.description, p.items[1].price.regular)
  end]])

doc.declare("kroger:products", Client.products, [[
kroger:products{term, locationId, productId, brand, fulfillment, limit = 50, max_items, without} -> iterator
Searches products (one of term, productId or brand is needed). With a
locationId, prices, stock and aisles are included. Pages are fetched ahead;
past the endpoint's offset limit (250 public, 1000 partner) kapi says how
many results cannot be reached. Arguments are checked first: an 8-character
locationId, 13-digit productIds, a term of 3+ characters and at most 8 words.
without = {"images"} leaves those members out of the products (as
kapi.json.decode does): a product's images are most of it.]])

doc.declare("kroger:product", Client.product, [[
kroger:product(id, {locationId}) -> product
One product by its 13-digit id; kroger:product_for_gtin(gtin) takes a GTIN
or UPC, and kroger:product_url(product) gives its page on the chain's site.]])

doc.declare("kroger:locations", Client.locations, [[
kroger:locations{zip | latlong | lat, lon | locationId, radius, limit, chain, department} -> stores
Stores near a place, nearest first; kroger:nearest_stores(zip, n) is a
shortcut. Also kroger:location(id), kroger:chains(), kroger:chain(name),
kroger:departments(), kroger:department(id).
Example:
  for _, s in ipairs(kroger:locations{zip = "45202", radius = 10}) do print(s.locationId, s.name) end]])

doc.declare("kroger:coupons", Client.coupons, [[
kroger:coupons{locationId, productId, merchant, channels, limit, max_items} -> iterator
Coupons (partner scope coupons.basic); kroger:coupon(id) gives one.
kroger:clip_coupon(id) and kroger:unclip_coupon(id) change the customer's
card; kroger:my_coupons() lists it. Clipping needs `kapi auth login --scope
coupon.personalized:rw`; kroger:ensure_customer(scope) checks that before
anything is changed (on the in-process sandbox it logs in for you).]])

doc.declare("kroger:cart_add", Client.cart_add, [[
kroger:cart_add{items = {{upc, quantity = 1, modality = "PICKUP"}}} -> count
Adds to the customer's cart (login with cart.basic:write). Never retried:
a repeat adds again.]])

doc.declare("kroger:carts", Client.carts, [[
kroger:carts() -> carts
The customer's partner carts: kroger:create_cart(), kroger:cart(id),
kroger:cart_add_item(id, {upc, quantity, modality}) (never retried),
kroger:cart_set_quantity(id, upc, n), kroger:cart_remove_item(id, upc).
Also kroger:collections{name, type}, kroger:deliveries{followingAction}
and kroger:confirm_delivery(id).]])

doc.declare("kroger:profile", Client.profile, [[
kroger:profile() -> profile
The logged-in customer's profile; kroger:loyalty() their loyalty card.]])

return M
