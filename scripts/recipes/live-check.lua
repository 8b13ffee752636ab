-- live-check: for items certified for Kroger, whether each is live in the
-- Products API, and at which stores, with the price and stock there: one
-- row per GTIN per store.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local errors = require "kapi.errors"
local gtin = require "kapi.gtin"

local CONCURRENCY = 8

local STATUS_STYLE = {LIVE = "green", NOT_CARRIED = "yellow", NOT_FOUND = "red", ERROR = "red"}
local COLUMNS = {
  {key = "gtin", title = "GTIN"},
  {key = "locationId", title = "STORE", at_store = true},
  {key = "liveText", title = "LIVE", style = function(_, row) return STATUS_STYLE[row.status] end},
  {key = "status", title = "STATUS"},
  {key = "price", title = "PRICE", right = true, at_store = true},
  {key = "promo", title = "PROMO", right = true, at_store = true},
  {key = "stock", title = "STOCK", at_store = true},
  {key = "description", title = "DESCRIPTION", wrap = true},
}
local KEYS = {"gtin", "productId", "locationId", "storeName", "live", "status", "description", "regularPrice",
              "promoPrice", "stockLevel", "url", "error"}

local usage = recipe.usage

-- What a row needs of a product: the rest of its answer (its images are
-- four fifths of it) is let go as soon as the call is done, not held to
-- the end of the run with thousands of others.
local function essentials(p)
  return {productId = p.productId, description = p.description, productPageURI = p.productPageURI,
          item = (p.items or {})[1] or {}}
end

-- The calls: once per batch of ids without a store (does the API know the
-- product at all?), first, and once per batch per store (is it carried
-- there?).
local function calls_for(batches, stores)
  local calls = {}
  for _, batch in ipairs(batches) do calls[#calls + 1] = {ids = batch} end
  for _, batch in ipairs(batches) do
    for _, store in ipairs(stores) do calls[#calls + 1] = {ids = batch, store = store} end
  end
  return calls
end

-- The answers of the calls by where they were asked: found[store id or
-- ""][product id] = the product's essentials, failed[same][product id] =
-- the error; each failed call named once on stderr.
local function by_store(calls, answers, errs, problems)
  local found, failed = {}, {}
  for i, call in ipairs(calls) do
    local where = call.store and call.store.locationId or ""
    found[where], failed[where] = found[where] or {}, failed[where] or {}
    if errs[i] then
      local codes = gtin.from_product_id(call.ids[1]) .. (#call.ids > 1 and (" and %d more"):format(#call.ids - 1) or "")
      problems:error(errs[i], ("checking %s%s"):format(codes, call.store and (" at store " .. where) or ""))
      for _, id in ipairs(call.ids) do failed[where][id] = errs[i] end
    end
    for _, p in ipairs(answers[i] or {}) do found[where][p.productId] = p end
  end
  return found, failed
end

-- What a row needs of a product is asked for without its images.
local WITHOUT = {"images"}

-- Asks the API for the calls, CONCURRENCY at a time, while the stores are
-- looked up by find_stores(): the first calls need no store, so as many as
-- leave the lookup one of the CONCURRENCY places go along with it, and
-- the calls at the stores join them once the lookup is done, without
-- waiting for those. Returns the stores, and found and failed as by_store
-- gives them: a failed call is named on stderr (never hushed by --quiet),
-- and its rows say ERROR with the reason in --json. When stores were named
-- and none of them exists (named_stores), or the lookup failed, nothing
-- more is asked (what went along with the lookup is not used).
local function ask(kroger, args, batches, find_stores, named_stores, problems)
  local bar = recipe.progress(args, {label = "live-check", unit = "calls"})
  -- A row live at a store links to the product's page on the store's
  -- chain's site: the chain is asked for as soon as a store has a product
  -- with a page, alongside the calls left, not after them all. Its
  -- failure is left to the row that needs it (kroger:chain asks again).
  local chains = {}
  local function ask_chain_soon(call, found)
    local name = (call.store.chain or "KROGER"):upper()
    if chains[name] then return end
    local asked = {}
    for _, id in ipairs(call.ids) do asked[id] = true end
    for _, p in ipairs(found) do
      if p.productPageURI and asked[p.productId] then -- a row will link to it
        chains[name] = kapi.spawn(pcall, kroger.chain, kroger, name)
        return
      end
    end
  end
  local function call_api(call)
    local found = kroger:products {productId = call.ids, locationId = call.store and call.store.locationId,
                                   without = WITHOUT}:all()
    if call.store then ask_chain_soon(call, found) end
    for i, p in ipairs(found) do found[i] = essentials(p) end
    bar:step()
    return found
  end

  local pool = kapi.pool {concurrency = CONCURRENCY}
  local calls, early, stores = calls_for(batches, {}), math.min(#batches, CONCURRENCY - 1), nil
  local function add(call) call.place = pool:add(call_api, call) end
  local lookup = pool:add(function()
    stores = find_stores()
    if named_stores and #stores == 0 then return end
    for i = early + 1, #calls do add(calls[i]) end
    local at_stores = calls_for(batches, stores)
    for i = #batches + 1, #at_stores do
      calls[i] = at_stores[i]
      add(calls[i])
    end
    bar.total = #calls
  end)
  for i = 1, early do add(calls[i]) end
  local results, failures = pool:wait()
  if failures and failures[lookup] then error(failures[lookup], 0) end
  if named_stores and #stores == 0 then return stores end
  for _, t in pairs(chains) do t:wait() end
  bar:finish()

  local answers, errs = {}, {}
  for i, call in ipairs(calls) do answers[i], errs[i] = results[call.place], failures and failures[call.place] end
  return stores, by_store(calls, answers, errs, problems)
end

local function row_for(kroger, code, id, store, found, failed)
  local where = store and store.locationId or ""
  local known, here = found[""][id], found[where][id]
  local err = failed[""][id] or failed[where][id]
  local status = err and "ERROR" or (here and "LIVE") or (known and "NOT_CARRIED") or "NOT_FOUND"
  local p = here or known
  local item = p and p.item or {}
  local price = item.price or {}
  local row = {
    gtin = code, productId = id, locationId = store and store.locationId, storeName = store and store.name,
    live = status == "LIVE", status = status, description = p and p.description,
    regularPrice = here and recipe.positive(price.regular), promoPrice = here and recipe.positive(price.promo),
    stockLevel = here and item.inventory and item.inventory.stockLevel,
    url = here and here.productPageURI and kroger:product_url(here, store and store.chain) or nil,
    error = err and errors.message(err) or nil,
  }
  row.liveText = row.live and "yes" or "no"
  row.price, row.promo = recipe.money(row.regularPrice), recipe.money(row.promoPrice)
  row.stock = row.stockLevel == "TEMPORARILY_OUT_OF_STOCK" and "OUT" or row.stockLevel
  return row
end

local function summary(args, rows, gtins, stores)
  local counts = {}
  for _, row in ipairs(rows) do counts[row.status] = (counts[row.status] or 0) + 1 end
  local parts = {}
  for _, status in ipairs {"NOT_CARRIED", "NOT_FOUND", "ERROR"} do
    if counts[status] then parts[#parts + 1] = ("%s %d"):format(status:lower():gsub("_", " "), counts[status]) end
  end
  recipe.note(args, "kapi: %d of %d live (%d GTIN%s%s)%s", counts.LIVE or 0, #rows, #gtins, #gtins == 1 and "" or "s",
              #stores > 0 and (" at %d store%s"):format(#stores, #stores == 1 and "" or "s") or "; no store given",
              #parts > 0 and ("; " .. table.concat(parts, ", ")) or "")
  return counts
end

return {
  summary = "Whether certified GTINs are live in the Products API, at which stores, with price and stock",
  keys = KEYS,
  description = [[
For GTINs (on the command line, or one per line in --file; # comments; the
first field of a CSV row), asks the Products API whether each is live: at
the stores given (--store ID ...) or the nearest to a ZIP code (--zip,
--stores N), one row per GTIN per store with the price, promotion and
stock there; with no store, whether the API knows the product at all.

Status: LIVE (the store has it), NOT_CARRIED (the API knows the product,
the store does not have it), NOT_FOUND (the API does not know it: not
live yet, or not certified), ERROR (the API could not be asked; the error
says why). A GTIN is turned into Kroger's product id (the GTIN-14 without
its check digit); up to 50 are asked for in one call, a few calls at once.
--shard I/N checks part of a long list.

JSON keys: gtin, productId, locationId, storeName, live (true/false),
status, description, regularPrice, promoPrice, stockLevel, url, error.

Exit status (docs/usage.md): 0 when every check was answered, whatever the
answer (a summary line on stderr counts them); with --fail-missing, 1 when
any is not live; 1 when a check failed; 2 for a usage error, a bad GTIN
(named by argument number or FILE:LINE), an unknown store or a --zip with
no store near it.]],

  arguments = function(parser)
    parser:argument("gtin", "A GTIN to check"):args("*"):argname("GTIN")
    parser:option("--file", "Read GTINs from a file, one per line (repeatable; - reads stdin)"):count("*")
          :argname("FILE")
    parser:option("--store", "Check at this store (location id; repeat it, or ID,ID,...)"):count("*"):argname("ID")
    parser:option("--zip", "Check at the stores nearest this ZIP code"):argname("ZIP")
    parser:option("--stores", "With --zip: how many stores (1-50) (default: 3)")
          :convert(recipe.whole_number("--stores", 1, 50)):argname("N")
    parser:flag("--fail-missing", "Exit 1 when any check is not live (for CI)")
    recipe.options(parser, {"output", "quiet", "env", "shard"})
  end,

  run = function(args)
    if #args.gtin == 0 and #args.file == 0 then usage("which GTINs? give them as arguments or with --file FILE") end
    local place = recipe.place(args, {conflict = "give --store or --zip, not both"})
    if args.stores and not place.zip then usage("--stores goes with --zip: how many of the stores nearest it") end
    local problems = recipe.problems()
    local gtins = recipe.shard(args, recipe.gtins(args.gtin, args.file, problems))
    if #gtins == 0 then return recipe.status(problems) end
    local kroger = kapi.kroger.client {env = args.env}
    local product_ids = {}
    for i, code in ipairs(gtins) do product_ids[i] = gtin.to_product_id(code) end
    -- The stores given, the nearest to the ZIP code, or none (then only
    -- whether the API knows the product).
    local function find_stores() return recipe.stores(kroger, place, {limit = args.stores or 3}, problems) end
    local stores, found, failed = ask(kroger, args, recipe.batches(product_ids, kapi.kroger.MAX_PRODUCT_IDS),
                                      find_stores, place.ids ~= nil, problems)
    if place.ids and #stores == 0 then return recipe.status(problems) end
    local rows = {}
    for i, code in ipairs(gtins) do
      if #stores == 0 then rows[#rows + 1] = row_for(kroger, code, product_ids[i], nil, found, failed) end
      for _, store in ipairs(stores) do rows[#rows + 1] = row_for(kroger, code, product_ids[i], store, found, failed) end
    end
    local columns = {}
    for _, c in ipairs(COLUMNS) do
      if #stores > 0 or not c.at_store then columns[#columns + 1] = c end
    end
    recipe.print(args, rows, columns, KEYS)
    local counts = summary(args, rows, gtins, stores)
    local missing = #rows - (counts.LIVE or 0) - (counts.ERROR or 0)
    return recipe.status(problems, (counts.ERROR or 0) > 0 or (args.fail_missing and missing > 0))
  end,
}
