-- The sandbox's Kroger API: products, locations, chains, departments,
-- cart and identity, in the shapes of the specs in tests/data/openapi/kroger
-- (with the live wire's casing where it differs, see
-- observed-product-response.json), validating parameters with the
-- documented limits and answering with the documented error bodies.
local json = require "kapi.json"
local catalog_lib = require "kapi.sandbox.catalog"
local oauth = require "kapi.sandbox.oauth"

local M = {}

local PRODUCT_SCOPES = {"product.compact", "product.basic"}
local IMAGE_SIZES = {"xlarge", "large", "medium", "small", "thumbnail"}

local function api_error(state, status, code, reason)
  return {status = status, json = {errors = {timestamp = state.now_ms(), code = code, reason = reason}}}
end

local function bad_product_request(state, reason) return api_error(state, 400, "PRODUCT-2011-400", reason) end
local function bad_location_request(state, reason) return api_error(state, 400, "API-4101-400", reason) end
local function not_found(state, what) return api_error(state, 404, "API-4040-404", what .. " not found") end

local function json_body(text)
  return {status = 200, body = text, headers = {["Content-Type"] = "application/json"}}
end

-- Products ------------------------------------------------------------------

-- What never changes about a product, encoded once, without its closing
-- brace, so that a response is mostly string concatenation.
local function static_json(state, p)
  if p.static_json then return p.static_json end
  local images = {}
  for i, perspective in ipairs {"front", "back", "left", "right", "top"} do
    local sizes = {}
    for k, size in ipairs(IMAGE_SIZES) do
      sizes[k] = {size = size, url = ("https://www.kroger.com/product/images/%s/%s/%s"):format(size, perspective, p.productId)}
    end
    images[i] = {perspective = perspective, featured = i == 1, sizes = sizes}
  end
  local text = json.encode {
    productId = p.productId, upc = p.productId,
    productPageURI = ("/p/%s/%s?cid=dis.api.tpi_products-api_20240521_b:all_c:p_t:")
                     :format(catalog_lib.slug(p), p.productId),
    brand = p.brand, categories = {p.category}, countryOrigin = p.countryOrigin,
    description = p.description, images = images,
    itemInformation = catalog_lib.dimensions(state.catalog, p),
    temperature = {indicator = p.temperature, heatSensitive = p.temperature == "Frozen"},
  }
  p.static_json = text:sub(1, -2)
  return p.static_json
end

local function json_string(s)
  return json.encode(s)
end

-- The per-store part of a product, formatted directly: it is built for
-- every product of every page.
local AT_STORE_JSON = '"items":[{"itemId":"%s","favorite":false,"size":%s,"soldBy":"%s",'
  .. '"inventory":{"stockLevel":"%s"},"fulfillment":{"curbside":%s,"delivery":%s,"inStore":true,'
  .. '"shipToHome":false},"price":{"regular":%s,"promo":%s}}],'
  .. '"aisleLocations":[{"description":%s,"number":"%d"}]}'
local NO_STORE_JSON = '"items":[{"itemId":"%s","favorite":false,"size":%s,"soldBy":"%s"}]}'

local function price(n)
  return math.type(n) == "integer" and tostring(n) or ("%.2f"):format(n)
end

-- The per-store part of a product's JSON (what follows its static part).
local function store_json(state, p, store)
  p.size_json = p.size_json or json_string(p.size)
  if store then
    local regular, promo, stock, aisle, curbside, delivery = catalog_lib.at_store(state.catalog, p, store)
    if regular then
      p.aisle_json = p.aisle_json or json_string(p.aisle)
      return AT_STORE_JSON:format(p.productId, p.size_json, p.sold_by, stock, tostring(curbside),
        tostring(delivery), price(regular), price(promo), p.aisle_json, aisle)
    end
  end
  return NO_STORE_JSON:format(p.productId, p.size_json, p.sold_by)
end

--- The JSON of a product, with the fields that need a store when one is
--- given (and the store carries it).
function M.product_json(state, p, store)
  return static_json(state, p) .. "," .. store_json(state, p, store)
end

local FULFILLMENT = {ais = "inStore", csp = "curbside", dth = "delivery", sth = "shipToHome"}

local function split(text, separator)
  local out = {}
  for part in (text .. separator):gmatch("(.-)" .. separator:gsub("%p", "%%%0")) do
    if part ~= "" then out[#out + 1] = part end
  end
  return out
end

local function integer_param(value, default)
  if value == nil then return default end
  return math.tointeger(tonumber(value))
end

-- The parameters of /v1/products, checked: a table, or nil and the reply.
local function product_params(state, q, partner)
  local p = {term = q["filter.term"], location = q["filter.locationId"]}
  if p.term then
    if #p.term < 3 then return nil, bad_product_request(state, "Field 'term' must have a length of at least 3 characters") end
    if #split(p.term, " ") > 8 then return nil, bad_product_request(state, "Field 'term' must have 8 words or fewer") end
  end
  if p.location and #p.location ~= 8 then
    return nil, bad_product_request(state, "Field 'locationId' must have a length of 8 characters")
  end
  if q["filter.productId"] then
    p.ids = split(q["filter.productId"], ",")
    if #p.ids > 50 then return nil, bad_product_request(state, "Field 'productId' must have 50 or fewer values") end
    for _, id in ipairs(p.ids) do
      if #id ~= 13 then return nil, bad_product_request(state, "Field 'productId' must have a length of 13 characters") end
    end
  end
  if q["filter.brand"] then p.brands = split(q["filter.brand"], "|") end
  if q["filter.fulfillment"] then
    p.fulfillment = {}
    for _, f in ipairs(split(q["filter.fulfillment"], ",")) do
      if not FULFILLMENT[f] then return nil, bad_product_request(state, "Field 'fulfillment' must be one of ais, csp, dth, sth") end
      p.fulfillment[#p.fulfillment + 1] = FULFILLMENT[f]
    end
  end
  local max_start = partner and 1000 or 250
  -- products-*.json: filter.start (results to skip) is 1 to the maximum;
  -- the first page leaves it out.
  p.start = integer_param(q["filter.start"], 0)
  if not p.start or (q["filter.start"] ~= nil and p.start < 1) or p.start > max_start then
    return nil, bad_product_request(state, ("Field 'start' must be a number between 1 and %d (inclusive)"):format(max_start))
  end
  p.limit = integer_param(q["filter.limit"], 10)
  if not p.limit or p.limit < 1 or p.limit > 50 then
    return nil, bad_product_request(state, "Field 'limit' must be a number between 1 and 50 (inclusive)")
  end
  if not (p.term or p.ids or p.brands) then
    return nil, bad_product_request(state, "Field 'term' or 'productId' or 'brand' is required")
  end
  return p
end

local MEMO_LIMIT = 2000

local function filter(state, params, store, candidates)
  local cat = state.catalog
  local brands
  if params.brands then
    brands = {}
    for _, b in ipairs(params.brands) do brands[b] = true end
  end
  local fulfillment = params.fulfillment or {}
  local out = {}
  for _, i in ipairs(candidates) do
    local p = cat.products[i]
    local keep = not brands or brands[p.brand]
    if keep and store then
      keep = catalog_lib.carries(cat, p, store)
      if keep and #fulfillment > 0 then
        local _, _, _, _, curbside, delivery = catalog_lib.at_store(cat, p, store)
        for _, f in ipairs(fulfillment) do
          keep = keep and (f == "inStore" or (f == "curbside" and curbside) or (f == "delivery" and delivery))
        end
      end
    end
    if keep then out[#out + 1] = i end
  end
  return out
end

-- The indices of the matching products. Filtered lists are remembered (the
-- data never changes), so paging through a search filters it once.
local function matches(state, params, store)
  local cat = state.catalog
  local candidates
  if params.ids then
    candidates = {}
    for _, id in ipairs(params.ids) do
      local p = cat.product_by_id[id]
      if p then candidates[#candidates + 1] = p.index end
    end
  elseif params.term then
    candidates = catalog_lib.search(cat, params.term)
  else
    candidates = {}
    for i = 1, #cat.products do candidates[i] = i end
  end
  if not (params.brands or store) then return candidates end
  local key = table.concat({params.term or "", table.concat(params.ids or {}, ","),
                            table.concat(params.brands or {}, "|"), store and store.locationId or "",
                            table.concat(params.fulfillment or {}, ",")}, "\0")
  local memo = state.match_memo
  local found = memo[key]
  if not found then
    if state.match_memo_size >= MEMO_LIMIT then
      memo = {}
      state.match_memo, state.match_memo_size = memo, 0
    end
    found = filter(state, params, store, candidates)
    memo[key] = found
    state.match_memo_size = state.match_memo_size + 1
  end
  return found
end

function M.products(state, req)
  local grant, denied = oauth.check(state, req, PRODUCT_SCOPES)
  if not grant then return denied end
  local params, bad = product_params(state, req.query, state.clients[grant.client].partner)
  if not params then return bad end
  local store = params.location and state.catalog.store_by_id[params.location]
  if params.location and not store then
    return bad_product_request(state, "Field 'locationId' is not a known location")
  end
  local found = matches(state, params, store)
  -- Fragments joined once: a page is mostly the products' cached JSON.
  local parts = {'{"data":['}
  for i = params.start + 1, math.min(#found, params.start + params.limit) do
    local p = state.catalog.products[found[i]]
    if #parts > 1 then parts[#parts + 1] = "," end
    parts[#parts + 1] = static_json(state, p)
    parts[#parts + 1] = ","
    parts[#parts + 1] = store_json(state, p, store)
  end
  parts[#parts + 1] = ('],"meta":{"pagination":{"start":%d,"limit":%d,"total":%d}}}')
                      :format(params.start, params.limit, #found)
  return json_body(table.concat(parts))
end

function M.product(state, req, id)
  local grant, denied = oauth.check(state, req, PRODUCT_SCOPES)
  if not grant then return denied end
  if #id ~= 13 then return api_error(state, 400, "PRODUCT-2011-400", "UPC must have a length of 13 characters") end
  local location = req.query["filter.locationId"]
  if location and #location ~= 8 then
    return bad_product_request(state, "Field 'locationId' must have a length of 8 characters")
  end
  local p = state.catalog.product_by_id[id]
  if not p then return not_found(state, "Product") end
  local store = location and state.catalog.store_by_id[location]
  return json_body('{"data":' .. M.product_json(state, p, store) .. "}")
end

-- Locations -------------------------------------------------------------------

local function location_json(s)
  return {locationId = s.locationId, chain = s.chain, name = s.name, phone = s.phone, address = s.address,
          geolocation = s.geolocation, hours = s.hours, departments = s.departments}
end

local function near_point(state, q)
  local zip = q["filter.zipCode.near"]
  if zip then
    if not zip:match("^%d%d%d%d%d$") then
      return nil, bad_location_request(state, "Field 'filter.zipCode.near' must 5 digits")
    end
    return state.catalog.zips[zip] or false
  end
  local latlong = q["filter.latLong.near"]
  local lat, lon
  if latlong then
    lat, lon = latlong:match("^%s*(%-?[%d.]+)%s*,%s*(%-?[%d.]+)%s*$")
  elseif q["filter.lat.near"] or q["filter.lon.near"] then
    lat, lon = q["filter.lat.near"], q["filter.lon.near"]
  else
    return nil
  end
  lat, lon = tonumber(lat), tonumber(lon)
  if not lat or not lon or math.abs(lat) > 90 or math.abs(lon) > 180 then
    return nil, bad_location_request(state, "Field 'filter.latLong.near' must be a valid latitude and longitude")
  end
  return {lat = lat, lon = lon}
end

local function location_params(state, q)
  local p = {radius = integer_param(q["filter.radiusInMiles"], 10), limit = integer_param(q["filter.limit"], 10)}
  if not p.radius or p.radius < 1 or p.radius > 100 then
    return nil, bad_location_request(state, "Field 'filter.radiusInMiles' outside of distance limits, distance range is 1 - 100 miles.")
  end
  if not p.limit or p.limit < 1 or p.limit > 200 then
    return nil, bad_location_request(state, "Field 'limit' must be a number between 1 and 200 (inclusive)")
  end
  if q["filter.locationId"] then
    p.ids = split(q["filter.locationId"], ",")
    for _, id in ipairs(p.ids) do
      if #id ~= 8 then return nil, bad_location_request(state, "Field 'locationId' must have a length of 8 characters") end
    end
  end
  if q["filter.department"] then
    p.departments = split(q["filter.department"], ",")
    for _, d in ipairs(p.departments) do
      if #d ~= 2 then return nil, api_error(state, 400, "API-4101-400", "Field 'department' must have a length of 2 characters") end
    end
  end
  p.chain = q["filter.chain"] and q["filter.chain"]:upper()
  local point, bad = near_point(state, q)
  if bad then return nil, bad end
  p.point = point
  if point == nil and not p.ids and not p.chain then
    return nil, bad_location_request(state, "A location (zipCode, latLong, lat/lon), locationId or chain is required")
  end
  return p
end

local function has_departments(store, wanted)
  for _, id in ipairs(wanted or {}) do
    local found = false
    for _, d in ipairs(store.departments) do
      if d.departmentId == id then found = true; break end
    end
    if not found then return false end
  end
  return true
end

function M.locations(state, req)
  local grant, denied = oauth.check(state, req)
  if not grant then return denied end
  local p, bad = location_params(state, req.query)
  if not p then return bad end
  local found = {}
  if p.point ~= false then
    local ids = p.ids and {}
    for _, id in ipairs(p.ids or {}) do ids[id] = true end
    for _, s in ipairs(state.catalog.stores) do
      local keep = (not ids or ids[s.locationId]) and (not p.chain or s.chain == p.chain)
                   and has_departments(s, p.departments)
      local distance = 0
      if keep and p.point then
        distance = catalog_lib.miles(p.point.lat, p.point.lon, s.geolocation.latitude, s.geolocation.longitude)
        keep = distance <= p.radius
      end
      if keep then found[#found + 1] = {store = s, distance = distance} end
    end
  end
  table.sort(found, function(a, b)
    if a.distance ~= b.distance then return a.distance < b.distance end
    return a.store.locationId < b.store.locationId
  end)
  local data = {}
  for i = 1, math.min(#found, p.limit) do data[i] = location_json(found[i].store) end
  return {status = 200, body = ('{"data":%s,"meta":{"pagination":{"start":0,"limit":%d,"total":%d}}}')
                                 :format(#data > 0 and json.encode(data) or "[]", p.limit, #found),
          headers = {["Content-Type"] = "application/json"}}
end

function M.location(state, req, id)
  local grant, denied = oauth.check(state, req)
  if not grant then return denied end
  if #id ~= 8 then return bad_location_request(state, "Field 'locationId' must have a length of 8 characters") end
  local s = state.catalog.store_by_id[id]
  if not s then return {status = 404, json = {}} end
  if req.method == "HEAD" then return {status = 204} end
  return {status = 200, json = {data = location_json(s)}}
end

local function chain_json(c)
  return {name = c.name, divisionNumbers = c.divisions, domain = c.domain, friendlyBannerName = c.friendly,
          defaultTitle = c.friendly, titleExtension = ""}
end

function M.chains(state, req)
  local grant, denied = oauth.check(state, req)
  if not grant then return denied end
  local data = {}
  for i, c in ipairs(state.catalog.chains) do data[i] = chain_json(c) end
  return {status = 200, json = {data = data}}
end

function M.chain(state, req, name)
  local grant, denied = oauth.check(state, req)
  if not grant then return denied end
  local wanted = require("kapi.http").unescape(name):upper()
  for _, c in ipairs(state.catalog.chains) do
    if c.name == wanted then
      if req.method == "HEAD" then return {status = 204} end
      return {status = 200, json = {data = chain_json(c)}}
    end
  end
  return {status = 404, json = {}}
end

function M.departments(state, req)
  local grant, denied = oauth.check(state, req)
  if not grant then return denied end
  return {status = 200, json = {data = state.catalog.departments}}
end

function M.department(state, req, id)
  local grant, denied = oauth.check(state, req)
  if not grant then return denied end
  if #id ~= 2 then return api_error(state, 400, "API-4101-400", "Field 'departmentId' must have a length of 2 characters") end
  for _, d in ipairs(state.catalog.departments) do
    if d.departmentId == id then
      if req.method == "HEAD" then return {status = 204} end
      return {status = 200, json = {data = d}}
    end
  end
  return {status = 404, json = {}}
end

-- Cart and identity ----------------------------------------------------------

function M.cart_add(state, req)
  local grant, denied = oauth.check(state, req, {"cart.basic:write", "cart.basic:rw"}, true)
  if not grant then return denied end
  local ok, body = pcall(json.decode, req.body)
  if not ok or type(body) ~= "table" or type(body.items) ~= "table" or #body.items == 0 then
    return api_error(state, 400, "CART-2216-400", "Field 'items' must be a non-empty array")
  end
  for _, item in ipairs(body.items) do
    if type(item.upc) ~= "string" or #item.upc ~= 13 then
      return api_error(state, 400, "CART-2216-400", "Field 'upc' must have a length of 13 characters")
    end
    if item.quantity ~= nil and (math.type(item.quantity) ~= "integer" or item.quantity < 1) then
      return api_error(state, 400, "CART-2216-400", "Field 'quantity' must be a positive integer")
    end
    if item.modality ~= nil and item.modality ~= "PICKUP" and item.modality ~= "DELIVERY" then
      return api_error(state, 400, "CART-2216-400", "Field 'modality' must be PICKUP or DELIVERY")
    end
  end
  local cart = state.cart
  for _, item in ipairs(body.items) do
    cart[#cart + 1] = {upc = item.upc, quantity = item.quantity or 1, modality = item.modality or "PICKUP"}
  end
  return {status = 204}
end

-- HEAD /v1/identity/profile and GET .../invoke/exists: whether a customer
-- exists, asked with a service token (profile.exists).
local function profile_exists(state, req)
  local grant, denied = oauth.check(state, req, {"profile.exists"})
  if not grant then return denied end
  local email = req.query["filter.email"] or req.query.email
  if req.path:match("/exists$") and not email then
    return api_error(state, 400, "IDENTITY-2001-400", "Field 'email' is required")
  end
  if email and email:lower() ~= state.customer.email then return {status = 404} end
  return {status = 204}
end

function M.profile(state, req)
  if req.method == "HEAD" then return profile_exists(state, req) end
  local grant, denied = oauth.check(state, req, {"profile.compact", "profile.basic", "profile.name",
                                                 "profile.full", "profile.loyalty"}, true)
  if not grant then return denied end
  local c = state.customer
  local data = {id = c.id}
  for _, scope in ipairs(grant.scopes) do
    if scope == "profile.name" or scope == "profile.basic" or scope == "profile.full" then
      data.firstName, data.lastName = c.firstName, c.lastName
    end
    if scope == "profile.basic" or scope == "profile.full" then data.email = c.email end
  end
  return {status = 200, json = {data = data}}
end

function M.loyalty(state, req)
  local grant, denied = oauth.check(state, req, {"profile.loyalty", "profile.full"}, true)
  if not grant then return denied end
  if req.method == "HEAD" then return {status = 204} end
  return {status = 200, json = {data = {loyalty = {cardNumber = state.customer.card}}, meta = {}}}
end

--- The routes: {method (or a set), Lua pattern over the path, handler}.
M.routes = {
  {"GET", "^/v1/products$", M.products},
  {"GET", "^/v1/products/([^/]+)$", M.product},
  {"GET", "^/v1/locations$", M.locations},
  {{GET = true, HEAD = true}, "^/v1/locations/([^/]+)$", M.location},
  {"GET", "^/v1/chains$", M.chains},
  {{GET = true, HEAD = true}, "^/v1/chains/([^/]+)$", M.chain},
  {"GET", "^/v1/departments$", M.departments},
  {{GET = true, HEAD = true}, "^/v1/departments/([^/]+)$", M.department},
  {"PUT", "^/v1/cart/add$", M.cart_add},
  {{GET = true, HEAD = true}, "^/v1/identity/profile$", M.profile},
  {{GET = true, HEAD = true}, "^/v1/identity/profile/loyalty$", M.loyalty},
  {"GET", "^/v1/identity/profile/invoke/exists$", profile_exists},
  {"POST", "^/v1/connect/oauth2/token$", oauth.token},
  {"GET", "^/v1/connect/oauth2/authorize$", oauth.authorize},
}

return M
