-- products: a product search (words, UPCs or brands) with what a shopper
-- wants to know at one store: price, promotion, stock, how it can be had,
-- the aisle and the product's page.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local errors = require "kapi.errors"
local gtin = require "kapi.gtin"

local DEFAULT_LIMIT = 25

local STOCK_STYLE = {HIGH = "green", LOW = "yellow", TEMPORARILY_OUT_OF_STOCK = "red"}
local STOCK_TEXT = {TEMPORARILY_OUT_OF_STOCK = "OUT"}

local COLUMNS = {
  {key = "gtin", title = "GTIN"},
  {key = "description", title = "DESCRIPTION", wrap = true},
  {key = "price", title = "PRICE", right = true},
  {key = "promo", title = "PROMO", right = true, style = function(v) return v and "green" end},
  {key = "stock", title = "STOCK", style = function(_, row) return STOCK_STYLE[row.stockLevel] end},
  {key = "aisle", title = "AISLE"},
  {key = "ways", title = "FULFILLMENT", wrap = true},
}
local KEYS = {"productId", "gtin", "brand", "description", "size", "regularPrice", "promoPrice", "onPromo",
              "stockLevel", "fulfillment", "aisle", "locationId", "url"}
local FULFILLMENT = {"inStore", "curbside", "delivery", "shipToHome"}

local usage, values = recipe.usage, recipe.values

local function limit_of(text)
  if text == "all" then return false end
  return recipe.whole_number("--limit", 1, math.maxinteger)(text) -- as every count is read: digits only
      or nil, ("--limit %s: expected a positive whole number or all"):format(errors.excerpt(text))
end

-- The search, checked before anything is sent.
local function read_search(args, problems)
  local upcs, brands = values(args.upc), args.brand
  if args.term and ((utf8.len(args.term) or #args.term) < 3 or select(2, args.term:gsub("%S+", "")) > 8) then
    usage("--term %q: give 3 characters or more, 8 words at most", args.term)
  end
  if #upcs > 0 and (args.term or #brands > 0) then usage("--upc looks products up by id: give it without --term and --brand") end
  if #upcs == 0 and not args.term and #brands == 0 then usage("what? give --term TEXT, --upc UPC ... or --brand NAME") end
  -- checked here, looked up by find_store
  local place = recipe.place(args, {conflict = "give --store or --zip, not both", preferred = true})
  local ids
  if #upcs > 0 then
    ids = {}
    for i, code in ipairs(upcs) do
      local ok, why = gtin.valid(code)
      if ok then ids[#ids + 1] = gtin.to_product_id(code) else problems:add(("--upc value %d"):format(i), why) end
    end
  end
  return {term = args.term, brand = #brands > 0 and brands or nil, ids = ids, place = place}
end

-- The store whose prices are shown: the one given, the one nearest the ZIP
-- code, or none.
local function find_store(kroger, args, place)
  local id = args.store or (place.ids or {})[1]
  if id then
    local ok, store = pcall(kroger.location, kroger, id)
    if not ok and errors.is(store, "http") and store.status == 404 then
      if place.preferred then
        errors.input(("the preferred store %s (%s): no such store; kapi config set store ID changes it")
                     :format(id, place.preferred), 0)
      end
      errors.input(("--store %s: no such store"):format(id), 0)
    end
    if not ok then error(store, 0) end
    return store
  end
  if args.zip then
    return recipe.stores(kroger, {zip = args.zip}, {limit = 1})[1]
  end
end

local function product_row(kroger, p, store)
  local item = (p.items or {})[1] or {}
  local price = item.price or {}
  local regular, promo = recipe.positive(price.regular), recipe.positive(price.promo)
  local ways = {}
  for _, way in ipairs(FULFILLMENT) do
    if (item.fulfillment or {})[way] then ways[#ways + 1] = way end
  end
  local aisle = (p.aisleLocations or {})[1]
  local url = p.productPageURI and kroger:product_url(p, store and store.chain) or nil
  local level = item.inventory and item.inventory.stockLevel
  return {
    productId = p.productId, gtin = gtin.from_product_id(p.productId), brand = p.brand,
    description = p.description, size = item.size, regularPrice = regular, promoPrice = promo,
    onPromo = promo ~= nil and (regular == nil or promo < regular), stockLevel = level,
    fulfillment = store and ways or nil, aisle = aisle and aisle.description, locationId = store and store.locationId,
    url = url,
    -- for the table
    price = recipe.money(regular), promo = recipe.money(promo), stock = level and (STOCK_TEXT[level] or level),
    ways = store and table.concat(ways, " ") or nil,
  }
end

-- The products found, as rows, in the API's order.
local function search(kroger, args, query, store)
  local limit = args.limit or nil -- false: all
  if args.limit == nil and not query.ids then limit = DEFAULT_LIMIT end
  local bar = recipe.progress(args, {label = "products", unit = "products"})
  local rows, reachable = {}, nil
  local function progress(done, total)
    bar.total = math.min(limit or math.huge, reachable or total, total)
    bar:step(done - bar.done)
  end
  local function unreachable(hidden, total)
    reachable = total - hidden
    -- Said once, and only when the results asked for run past the offset limit.
    if not limit or limit > total - hidden then
      recipe.note(args, "kapi: %d of %d results cannot be reached (the API stops at offset %d); narrow the search",
                  hidden, total, kroger.max_offset)
    end
  end
  -- Ids go a batch a call; a search is one call with no ids.
  local batches = query.ids and recipe.batches(query.ids, kapi.kroger.MAX_PRODUCT_IDS) or {{}}
  -- A page that fails ends the search, but the products found before it
  -- are still shown: the error comes back to be said after them.
  local ok, err = pcall(function()
    for _, ids in ipairs(batches) do
      local left = limit and limit - #rows
      if left and left <= 0 then break end
      for p in kroger:products {term = query.term, brand = query.brand, productId = query.ids and ids,
                                locationId = store and store.locationId, max_items = left,
                                progress = progress, on_unreachable = unreachable} do
        rows[#rows + 1] = product_row(kroger, p, store)
      end
    end
  end)
  bar:finish()
  return rows, not ok and err or nil
end

return {
  summary = "Search products, with price, promotion, stock and aisle at a store",
  keys = KEYS,
  description = [[
Searches the Products API by words (--term), by UPC or GTIN (--upc, check
digit included) or by brand (--brand, case-sensitive as the API is) and
shows each product's GTIN, description, regular and promotional price,
stock level, aisle, how it can be had (in store, curbside, delivery, ship
to home) and, in --json and --csv, its page on the chain's site. Prices,
stock and fulfillment exist only at a store: give --store ID, or --zip for
the store nearest that ZIP code.

The API reaches at most 1,000 results into a search (250 for public apps);
when --limit asks for more, kapi says how many cannot be reached.

JSON keys: productId, gtin, brand, description, size, regularPrice,
promoPrice, onPromo, stockLevel, fulfillment, aisle, locationId, url
(prices are numbers, or null without a store).

Exit status (docs/usage.md): 0 when the search ran, finding nothing
included (a --upc not found is named on stderr); 2 for a usage error or
a --upc that is not a valid GTIN (named; the others are looked up).]],

  arguments = function(parser)
    parser:option("--term", "Words to search for (3+ characters, 8 words at most)"):argname("TEXT")
    parser:option("--upc", "A product by UPC or GTIN (repeat it, or UPC,UPC,...)"):count("*"):argname("UPC")
    parser:option("--brand", "Only this brand (repeatable)"):count("*"):argname("NAME")
    parser:option("--store", "Prices and stock at this store (location id)"):argname("ID")
    parser:option("--zip", "Prices and stock at the store nearest this ZIP code"):argname("ZIP")
    parser:option("--limit", ("At most N products, or all (default %d)"):format(DEFAULT_LIMIT)):convert(limit_of)
          :argname("N")
    recipe.options(parser, {"output", "quiet", "env"})
  end,

  run = function(args)
    local problems = recipe.problems()
    local query = read_search(args, problems)
    if query.ids and #query.ids == 0 then return recipe.status(problems) end
    local kroger = kapi.kroger.client {env = args.env}
    local store = find_store(kroger, args, query.place)
    if store and query.place.preferred then
      recipe.note(args, "kapi: prices and stock at %s", recipe.preferred_store_named(store, query.place))
    elseif store then
      recipe.note(args, "kapi: prices and stock at %s (%s)%s", store.name, store.locationId,
                  args.zip and (", the store nearest " .. args.zip) or "")
    else
      recipe.note(args, "kapi: no store given: prices, stock and fulfillment need --store ID or --zip ZIP "
                        .. "(or a preferred store: kapi config set store ID)")
    end
    local rows, failed = search(kroger, args, query, store)
    if query.ids and not failed then
      local found = {}
      for _, row in ipairs(rows) do found[row.productId] = true end
      -- Not found is an answer, as for a search that finds nothing.
      local missing = {}
      for _, id in ipairs(query.ids) do
        if not found[id] then missing[#missing + 1] = gtin.from_product_id(id) end
      end
      if #missing > 0 then
        recipe.note(args, "kapi: not found%s: %s", store and (" at " .. store.locationId) or "", table.concat(missing, " "))
      end
    end
    recipe.print(args, rows, COLUMNS, KEYS)
    if failed and recipe.interrupted(failed) then error(failed, 0) end -- 130, after what was found
    if failed then problems:error(failed) end
    return recipe.status(problems)
  end,
}
