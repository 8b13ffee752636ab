-- The partner endpoints seed 002 lists without public shapes: coupons, the
-- customer's clipped coupons, partner carts, collections and courier
-- deliveries. The shapes are the project's own (docs/sandbox.md), in the
-- style of Kroger's documented ones: {data, meta.pagination}, errors as
-- {"errors": {timestamp, code, reason}}.
local catalog_lib = require "kapi.sandbox.catalog"
local oauth = require "kapi.sandbox.oauth"
local json = require "kapi.json"

local M = {}

local function api_error(state, status, code, reason)
  return {status = status, json = {errors = {timestamp = state.now_ms(), code = code, reason = reason}}}
end

local function page(list, q)
  -- As the products endpoint: filter.start skips that many, at least 1
  -- when given; the first page leaves it out.
  local start = math.tointeger(tonumber(q["filter.start"] or "0")) or -1
  local limit = math.tointeger(tonumber(q["filter.limit"] or "10")) or -1
  if (q["filter.start"] ~= nil and start < 1) or start < 0 or limit < 1 or limit > 50 then return nil end
  local data = {}
  for i = start + 1, math.min(#list, start + limit) do data[#data + 1] = list[i] end
  return {data = #data > 0 and data or json.array(), meta = {pagination = {start = start, limit = limit, total = #list}}}
end

-- {data = list}, an empty list still encoded as [].
local function list_reply(list)
  return {status = 200, json = {data = #list > 0 and list or json.array()}}
end

local function body_of(req)
  local ok, body = pcall(json.decode, req.body)
  if ok and type(body) == "table" then return body end
end

-- Coupons -----------------------------------------------------------------------

--- Coupons from the seed: each for one to three products, at the stores of
--- one chain (or every store), in store and online or one of them.
function M.build_coupons(catalog, count)
  local rand = catalog_lib.generator(catalog.seed * 131 + 7)
  local coupons, by_id = {}, {}
  local products = catalog.products
  for i = 1, count do
    local ids = {}
    for j = 1, rand(3) do ids[j] = products[rand(#products)].productId end
    local p = catalog.product_by_id[ids[1]]
    local chain = rand(3) > 1 and catalog.chains[rand(#catalog.chains)].name or nil
    local percent = rand(2) == 1
    local amount = percent and 10 + 5 * rand(6) or 0.25 * (rand(12) + 1)
    local coupon = {
      couponId = ("C%07d"):format(1000 + i), brand = p.brand,
      description = percent and ("Save %d%% on %s"):format(amount, p.brand)
                    or ("Save $%.2f on %s %s"):format(amount, p.brand, p.category),
      value = {type = percent and "PERCENT_OFF" or "AMOUNT_OFF", amount = amount},
      minimumQuantity = rand(3), productIds = ids, merchant = chain or "ALL",
      channels = ({{"IN_STORE", "ONLINE"}, {"IN_STORE"}, {"ONLINE"}})[rand(3)],
      expiresAt = os.date("!%Y-%m-%dT23:59:59Z", os.time() + 86400 * (7 + rand(60))),
    }
    coupons[i], by_id[coupon.couponId] = coupon, coupon
  end
  return coupons, by_id
end

local function coupon_matches(state, c, q)
  local location = q["filter.locationId"]
  if location then
    local store = state.catalog.store_by_id[location]
    if not store or (c.merchant ~= "ALL" and c.merchant ~= store.chain) then return false end
  end
  local merchant = q["filter.merchant"]
  if merchant and c.merchant ~= "ALL" and c.merchant ~= merchant:upper() then return false end
  local product = q["filter.productId"]
  if product then
    local found = false
    for id in product:gmatch("[^,]+") do
      for _, pid in ipairs(c.productIds) do found = found or pid == id end
    end
    if not found then return false end
  end
  local channel = q["filter.channels"]
  if channel then
    local found = false
    for _, ch in ipairs(c.channels) do found = found or ch == channel:upper() end
    if not found then return false end
  end
  return true
end

--- GET /v1/coupons
function M.coupons(state, req)
  local grant, denied = oauth.check(state, req, {"coupons.basic", "coupon.personalized:rw"})
  if not grant then return denied end
  local q = req.query
  if q["filter.locationId"] and #q["filter.locationId"] ~= 8 then
    return api_error(state, 400, "COUPON-2001-400", "Field 'locationId' must have a length of 8 characters")
  end
  local out = {}
  for _, c in ipairs(state.partner.coupons) do
    if coupon_matches(state, c, q) then out[#out + 1] = c end
  end
  local body = page(out, q)
  if not body then return api_error(state, 400, "COUPON-2002-400", "Field 'limit' must be between 1 and 50 and 'start' at least 0") end
  return {status = 200, json = body}
end

--- GET /v1/coupons/{id}
function M.coupon(state, req, id)
  local grant, denied = oauth.check(state, req, {"coupons.basic", "coupon.personalized:rw"})
  if not grant then return denied end
  local c = state.partner.coupon_by_id[id]
  if not c then return api_error(state, 404, "COUPON-4040-404", "Coupon not found") end
  return {status = 200, json = {data = c}}
end

--- GET /v1/my_coupons: the coupons on the customer's card
function M.my_coupons(state, req)
  local grant, denied = oauth.check(state, req, {"coupon.personalized:rw"}, true)
  if not grant then return denied end
  local out = {}
  for id in pairs(state.partner.clipped) do out[#out + 1] = state.partner.coupon_by_id[id] end
  table.sort(out, function(a, b) return a.couponId < b.couponId end)
  return list_reply(out)
end

--- POST /v1/my_coupons {"couponId"}: clips a coupon (201; 200 when it was already)
function M.clip(state, req)
  local grant, denied = oauth.check(state, req, {"coupon.personalized:rw"}, true)
  if not grant then return denied end
  local body = body_of(req)
  local id = body and body.couponId
  if type(id) ~= "string" then return api_error(state, 400, "COUPON-2003-400", "Field 'couponId' is required") end
  if not state.partner.coupon_by_id[id] then return api_error(state, 404, "COUPON-4040-404", "Coupon not found") end
  local already = state.partner.clipped[id]
  state.partner.clipped[id] = true
  return {status = already and 200 or 201, json = {data = state.partner.coupon_by_id[id]}}
end

--- DELETE /v1/my_coupons/{id}
function M.unclip(state, req, id)
  local grant, denied = oauth.check(state, req, {"coupon.personalized:rw"}, true)
  if not grant then return denied end
  if not state.partner.clipped[id] then return api_error(state, 404, "COUPON-4041-404", "Coupon not on the card") end
  state.partner.clipped[id] = nil
  return {status = 204}
end

-- Partner carts -------------------------------------------------------------------

local READ_CART, WRITE_CART = {"cart.basic", "cart.basic:rw"}, {"cart.basic:rw"}

local function cart_item(state, body)
  if type(body) ~= "table" or type(body.upc) ~= "string" or #body.upc ~= 13 then
    return nil, api_error(state, 400, "CART-2216-400", "Field 'upc' must have a length of 13 characters")
  end
  local quantity = body.quantity or 1
  if math.type(quantity) ~= "integer" or quantity < 1 then
    return nil, api_error(state, 400, "CART-2216-400", "Field 'quantity' must be a positive integer")
  end
  local modality = body.modality or "PICKUP"
  if modality ~= "PICKUP" and modality ~= "DELIVERY" then
    return nil, api_error(state, 400, "CART-2216-400", "Field 'modality' must be PICKUP or DELIVERY")
  end
  return {upc = body.upc, quantity = quantity, modality = modality}
end

local function find_cart(state, id)
  for _, cart in ipairs(state.partner.carts) do
    if cart.id == id then return cart end
  end
end

function M.carts(state, req)
  local grant, denied = oauth.check(state, req, req.method == "POST" and WRITE_CART or READ_CART, true)
  if not grant then return denied end
  if req.method == "POST" then
    local cart = {id = ("cart-%04d"):format(#state.partner.carts + 1), items = json.array()}
    state.partner.carts[#state.partner.carts + 1] = cart
    return {status = 201, json = {data = cart}}
  end
  return list_reply(state.partner.carts)
end

function M.cart(state, req, id)
  local grant, denied = oauth.check(state, req, READ_CART, true)
  if not grant then return denied end
  local cart = find_cart(state, id)
  if not cart then return api_error(state, 404, "CART-4040-404", "Cart not found") end
  return {status = 200, json = {data = cart}}
end

--- POST /v1/carts/{id}/items {upc, quantity, modality}
function M.cart_items(state, req, id)
  local grant, denied = oauth.check(state, req, WRITE_CART, true)
  if not grant then return denied end
  local cart = find_cart(state, id)
  if not cart then return api_error(state, 404, "CART-4040-404", "Cart not found") end
  local item, bad = cart_item(state, body_of(req))
  if not item then return bad end
  for _, existing in ipairs(cart.items) do
    if existing.upc == item.upc and existing.modality == item.modality then
      existing.quantity = existing.quantity + item.quantity
      return {status = 200, json = {data = cart}}
    end
  end
  cart.items[#cart.items + 1] = item
  return {status = 201, json = {data = cart}}
end

--- PUT /v1/carts/{id}/items/{upc} {quantity}; DELETE removes the item
function M.cart_item(state, req, path)
  local id, upc = path:match("^([^/]+)/items/([^/]+)$")
  local grant, denied = oauth.check(state, req, WRITE_CART, true)
  if not grant then return denied end
  local cart = find_cart(state, id)
  if not cart then return api_error(state, 404, "CART-4040-404", "Cart not found") end
  for i, existing in ipairs(cart.items) do
    if existing.upc == upc then
      if req.method == "DELETE" then
        table.remove(cart.items, i)
        return {status = 204}
      end
      local item, bad = cart_item(state, {upc = upc, quantity = (body_of(req) or {}).quantity,
                                          modality = existing.modality})
      if not item then return bad end
      existing.quantity = item.quantity
      return {status = 204}
    end
  end
  return api_error(state, 404, "CART-4041-404", "Item not in the cart")
end

-- Collections and courier deliveries ----------------------------------------------

function M.collections(state, req)
  local grant, denied = oauth.check(state, req, {"collection.basic", "collection.basic:rw"}, true)
  if not grant then return denied end
  local out = {}
  for _, c in ipairs(state.partner.collections) do
    if (not req.query["filter.name"] or c.name:lower():find(req.query["filter.name"]:lower(), 1, true))
       and (not req.query["filter.type"] or c.type == req.query["filter.type"]:upper()) then
      out[#out + 1] = c
    end
  end
  return list_reply(out)
end

--- GET /v1/courier/deliveries?filter.followingAction=CONFIRM; POST
--- /v1/courier/deliveries {"deliveryId", "action": "CONFIRM"}
function M.deliveries(state, req)
  local grant, denied = oauth.check(state, req, req.method == "POST" and {"delivery.basic:rw"}
                                    or {"delivery.basic", "delivery.basic:rw"})
  if not grant then return denied end
  local deliveries = state.partner.deliveries
  if req.method == "POST" then
    local body = body_of(req)
    for _, d in ipairs(deliveries) do
      if body and d.deliveryId == body.deliveryId then
        if body.action ~= "CONFIRM" then
          return api_error(state, 400, "DELIVERY-2001-400", "Field 'action' must be CONFIRM")
        end
        d.status, d.followingAction = "CONFIRMED", "NONE"
        return {status = 200, json = {data = d}}
      end
    end
    return api_error(state, 404, "DELIVERY-4040-404", "Delivery not found")
  end
  local out = {}
  for _, d in ipairs(deliveries) do
    if not req.query["filter.followingAction"] or d.followingAction == req.query["filter.followingAction"]:upper() then
      out[#out + 1] = d
    end
  end
  return list_reply(out)
end

function M.new_state(catalog, opts)
  local coupons, by_id = M.build_coupons(catalog, opts.coupons or 400)
  local first = catalog.products[1].productId
  return {
    coupons = coupons, coupon_by_id = by_id, clipped = {}, carts = {},
    collections = {
      {id = "col-1", name = "Weekly groceries", type = "LIST", productIds = {first}},
      {id = "col-2", name = "Favorites", type = "FAVORITES", productIds = {first}},
    },
    deliveries = {
      {deliveryId = "D-0001", locationId = "01400376", status = "AWAITING_COURIER", followingAction = "CONFIRM"},
      {deliveryId = "D-0002", locationId = "01400376", status = "DELIVERED", followingAction = "NONE"},
    },
  }
end

M.routes = {
  {"GET", "^/v1/coupons$", M.coupons},
  {"GET", "^/v1/coupons/([^/]+)$", M.coupon},
  {"GET", "^/v1/my_coupons$", M.my_coupons},
  {"POST", "^/v1/my_coupons$", M.clip},
  {"DELETE", "^/v1/my_coupons/([^/]+)$", M.unclip},
  {{GET = true, POST = true}, "^/v1/carts$", M.carts},
  {"GET", "^/v1/carts/([^/]+)$", M.cart},
  {"POST", "^/v1/carts/([^/]+)/items$", M.cart_items},
  {{PUT = true, DELETE = true}, "^/v1/carts/([^/]+/items/[^/]+)$", M.cart_item},
  {"GET", "^/v1/collections$", M.collections},
  {{GET = true, POST = true}, "^/v1/courier/deliveries$", M.deliveries},
}

return M
