-- coupons: the coupons offered at stores near a place (or at given
-- stores), optionally only those for some products, one row per coupon per
-- store; and clipping chosen coupons to the customer's card.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local errors = require "kapi.errors"
local gtin = require "kapi.gtin"

local CONCURRENCY = 8          -- stores fetched at once
local TERM_PRODUCTS = 50       -- products of a --term search whose coupons are looked for
local CLIP_SCOPE = "coupon.personalized:rw"

local COLUMNS = {
  {key = "locationId", title = "STORE"},
  {key = "couponId", title = "COUPON"},
  {key = "brand", title = "BRAND"},
  {key = "savings", title = "SAVINGS", right = true, style = function(v) return v and "green" end},
  {key = "minimumQuantity", title = "MIN", right = true},
  {key = "expires", title = "EXPIRES"},
  {key = "description", title = "DESCRIPTION", wrap = true},
}
local KEYS = {"locationId", "storeName", "couponId", "brand", "description", "savings", "valueType",
              "valueAmount", "minimumQuantity", "channels", "merchant", "expiresAt", "productIds"}

local STATUS_STYLE = {PLANNED = "yellow", CLIPPED = "green", ALREADY_CLIPPED = "dim", FAILED = "red",
                      UNKNOWN = "red", NOT_DONE = "dim"}
local CLIP_STATUS = {done = "CLIPPED", failed = "FAILED", unknown = "UNKNOWN", ["not done"] = "NOT_DONE"}
local CLIP_COLUMNS = {
  {key = "couponId", title = "COUPON"},
  {key = "brand", title = "BRAND"},
  {key = "savings", title = "SAVINGS", right = true},
  {key = "expires", title = "EXPIRES"},
  {key = "status", title = "STATUS", style = function(v) return STATUS_STYLE[v] end},
  {key = "description", title = "DESCRIPTION", wrap = true},
}
local CLIP_KEYS = {"couponId", "brand", "description", "savings", "expiresAt", "status", "error"}

local usage, values = recipe.usage, recipe.values

-- What: the products whose coupons are wanted ---------------------------------------

local function product_ids_for_upcs(upcs, problems)
  local ids = {}
  for i, code in ipairs(upcs) do
    local ok, why = gtin.valid(code)
    if ok then ids[#ids + 1] = gtin.to_product_id(code)
    else problems:add(("--upc value %d"):format(i), why) end
  end
  return ids
end

-- Rows ------------------------------------------------------------------------------

local function savings(value)
  if type(value) ~= "table" or not value.amount then return nil end
  if value.type == "PERCENT_OFF" then return ("%g%% off"):format(value.amount) end
  return ("$%.2f off"):format(value.amount)
end

local function coupon_row(c, store)
  local value = type(c.value) == "table" and c.value or {}
  return {
    locationId = store and store.locationId, storeName = store and store.name, couponId = c.couponId,
    brand = c.brand, description = c.description, savings = savings(c.value), valueType = value.type,
    valueAmount = value.amount, minimumQuantity = c.minimumQuantity, channels = c.channels,
    merchant = c.merchant, expiresAt = c.expiresAt, expires = c.expiresAt and c.expiresAt:sub(1, 10),
    productIds = c.productIds,
  }
end

-- The coupons of one store: all, or those for the products asked for.
local function store_coupons(kroger, store, args, upc_ids)
  local product_ids = upc_ids
  if args.term then
    product_ids = {}
    for p in kroger:products {term = args.term, locationId = store.locationId, max_items = TERM_PRODUCTS} do
      product_ids[#product_ids + 1] = p.productId
    end
    if #product_ids == 0 then return {} end
  end
  return kroger:coupons {locationId = store.locationId, productId = product_ids, max_items = args.limit}:all()
end

-- Listing ---------------------------------------------------------------------------

-- Checks what to look for before anything is sent: the place and the
-- product ids (bad UPCs named), or raises a usage error.
local function read_listing(args, problems)
  if args.apply then usage("--apply goes with --clip: listing coupons changes nothing") end
  if args.term and (utf8.len(args.term) or #args.term) < 3 then usage("--term %q: give at least 3 characters", args.term) end
  local upcs = values(args.upc)
  if args.term and #upcs > 0 then usage("give --upc or --term, not both") end
  if args.stores and not (args.zip or args.near or args.lat) then
    usage("--stores goes with --zip or --near (or --lat and --lon): how many of the stores nearest it")
  end
  local place = recipe.place(args, {
    conflict = "give one of --zip, --near (or --lat/--lon) and --store",
    missing = "where? give --zip ZIP, --near LAT,LON, --lat and --lon, or --store ID "
              .. "(or set a preferred store: kapi config set store ID)",
    preferred = true,
  })
  return place, #upcs > 0 and product_ids_for_upcs(upcs, problems) or nil
end

local function list(args, problems)
  local place, upc_ids = read_listing(args, problems)
  if upc_ids and #upc_ids == 0 then return recipe.status(problems) end
  local kroger = kapi.kroger.client {env = args.env}
  local stores = recipe.stores(kroger, place, {radius = args.radius, limit = args.stores or 5}, problems)
  if #stores == 0 then return recipe.status(problems) end
  stores = recipe.shard(args, stores, function(s) return s.locationId end)
  local bar = recipe.progress(args, {label = "coupons", unit = "stores", total = #stores})
  local found, failures = kapi.map(stores, function(store)
    local coupons = store_coupons(kroger, store, args, upc_ids)
    bar:step()
    return coupons
  end, {concurrency = CONCURRENCY})
  bar:finish()
  local rows = {}
  for i, store in ipairs(stores) do
    if failures and failures[i] then
      problems:error(failures[i], "store " .. store.locationId)
    else
      for _, c in ipairs(found[i]) do rows[#rows + 1] = coupon_row(c, store) end
    end
  end
  recipe.print(args, rows, COLUMNS, KEYS)
  recipe.note(args, "kapi: %d coupon%s at %d store%s", #rows, #rows == 1 and "" or "s", #stores,
              #stores == 1 and "" or "s")
  return recipe.status(problems)
end

-- Clipping --------------------------------------------------------------------------

local function clip(args, problems)
  if #args.store > 0 or args.zip or args.near or args.lat or args.lon or args.radius or args.stores
     or #args.upc > 0 or args.term or args.limit or args.shard then
    usage("--clip takes coupon ids alone: list the coupons first, then clip the ones you want")
  end
  local ids = values(args.clip)
  local seen, wanted = {}, {}
  for _, id in ipairs(ids) do
    if not seen[id] then seen[id] = true; wanted[#wanted + 1] = id end
  end
  local kroger = kapi.kroger.client {env = args.env}
  -- What each coupon is, so the plan can be read; unknown ids are named.
  local coupons, failures = kapi.map(wanted, function(id)
    local ok, c = pcall(kroger.coupon, kroger, id)
    if ok then return c end
    if errors.is(c, "http") and c.status == 404 then return false end
    error(c, 0)
  end, {concurrency = CONCURRENCY})
  local rows = {}
  for i, id in ipairs(wanted) do
    if failures and failures[i] then problems:error(failures[i], "--clip " .. errors.excerpt(id))
    elseif not coupons[i] then problems:add("--clip " .. errors.excerpt(id), "no such coupon")
    else
      local row = coupon_row(coupons[i])
      row.status = "PLANNED"
      rows[#rows + 1] = row
    end
  end
  local stop
  if args.apply and #rows > 0 then
    kroger:ensure_customer(CLIP_SCOPE)
    local on_card, to_clip = {}, {}
    for _, c in ipairs(kroger:my_coupons() or {}) do on_card[c.couponId] = true end
    for _, row in ipairs(rows) do
      if on_card[row.couponId] then row.status = "ALREADY_CLIPPED" else to_clip[#to_clip + 1] = row end
    end
    -- Clipping twice does no harm, but the call is not retried: a
    -- failure is reported and a second run finishes the job.
    stop = recipe.apply(to_clip, function(row) return kroger:clip_coupon(row.couponId) end)
    for _, row in ipairs(to_clip) do
      row.status = CLIP_STATUS[row.outcome]
      if row.outcome == "failed" or row.outcome == "unknown" then problems:fail("--clip " .. row.couponId, row.error) end
    end
  end
  recipe.print(args, rows, CLIP_COLUMNS, CLIP_KEYS)
  recipe.stopped(stop)
  if not args.apply then
    recipe.note(args, "kapi: dry run: nothing was clipped; add --apply to clip %d coupon%s to the customer's card",
                #rows, #rows == 1 and "" or "s")
  else
    local counts = {}
    for _, row in ipairs(rows) do counts[row.status] = (counts[row.status] or 0) + 1 end
    recipe.note(args, "kapi: %d clipped, %d already on the card, %d failed%s", counts.CLIPPED or 0,
                counts.ALREADY_CLIPPED or 0, counts.FAILED or 0,
                counts.UNKNOWN and (", %d unknown (look at the card)"):format(counts.UNKNOWN) or "")
  end
  return recipe.status(problems)
end

return {
  summary = "Coupons at stores near a place, for some products or all; clip them to the customer's card",
  keys = KEYS,
  description = [[
Finds the coupons offered at the stores nearest a ZIP code (--zip) or a
point (--near LAT,LON, or --lat and --lon), or at given stores (--store ID
...): one row per coupon per store, the stores fetched a few at a time.
--upc narrows to coupons for those products (UPCs or GTINs, check digit
included); --term to coupons for the products a search finds at each store
(the first 50).

--clip ID ... prints the plan for putting those coupons on the logged-in
customer's card; with --apply it clips them (coupons already on the card
are left alone). That needs a customer login with the scope
coupon.personalized:rw (kapi auth login --scope coupon.personalized:rw); on
the built-in sandbox kapi logs in as its test customer by itself.

Coupons are a partner API: Kroger's public API has none, so this needs an
app registered for the partner scope coupons.basic (KROGER_PARTNER=1 or
partner = true in the config). The built-in sandbox's app is one.

JSON keys (one object per coupon per store): locationId, storeName,
couponId, brand, description, savings, valueType, valueAmount,
minimumQuantity, channels, merchant, expiresAt, productIds. With --clip:
couponId, brand, description, savings, expiresAt, status (PLANNED, CLIPPED,
ALREADY_CLIPPED, FAILED), error.

Exit status (docs/usage.md): 0 when everything asked for was done, 1 when
a store's coupons could not be read or a clip failed, 2 for a usage error
or input that names nothing (an unknown store or coupon, a place with no
store in reach, a bad UPC; named on stderr, the rest is done).]],

  arguments = function(parser)
    recipe.place_options(parser, {store = true})
    parser:option("--stores", "How many of the nearest stores (1-200) (default: 5)")
          :convert(recipe.whole_number("--stores", 1, 200)):argname("N")
    parser:option("--upc", "Only coupons for this product (UPC or GTIN; repeat it, or UPC,UPC,...)"):count("*")
          :argname("UPC")
    parser:option("--term", "Only coupons for products this search finds at each store"):argname("TEXT")
    parser:option("--limit", "At most N coupons per store"):convert(recipe.whole_number("--limit", 1, 100000))
          :argname("N")
    parser:option("--clip", "Clip this coupon to the customer's card (with --apply; repeat it, or ID,ID,...)")
          :count("*")
          :argname("ID")
    recipe.options(parser, {"output", "quiet", "env", "shard", "apply"})
  end,

  run = function(args)
    local problems = recipe.problems()
    if #args.clip > 0 then return clip(args, problems) end
    return list(args, problems)
  end,
}
