-- cheapest-store: which of the stores near a ZIP sells a product cheapest.
-- The complete example of docs/writing-recipes.md: a client, pagination
-- and kapi.map, with the common options of every recipe.
--
--   kapi run examples/recipes/cheapest-store.lua --zip 45202 --term "peanut butter"
local kapi = require "kapi"
local recipe = require "kapi.recipe"

return {
  summary = "Where near a ZIP a product is cheapest",
  description = "Searches the stores nearest a ZIP for a term and prints each store's lowest price.",

  arguments = function(parser)
    parser:option("--zip", "ZIP code to search near"):args(1)
    parser:option("--term", "What to look for, e.g. \"peanut butter\""):args(1)
    parser:option("--stores", "How many stores"):convert(tonumber):default("5")
    recipe.options(parser, {"output", "quiet", "env"})
  end,

  run = function(args)
    if not (args.zip and args.term) then recipe.usage("give --zip and --term") end
    local kroger = kapi.kroger.client {env = args.env}
    local stores = kroger:nearest_stores(args.zip, args.stores)

    -- One task per store, at most four at a time; each pages through the
    -- search results and keeps the cheapest.
    local rows, failures = kapi.map(stores, function(store)
      local best
      for product in kroger:products {term = args.term, locationId = store.locationId, max_items = 100} do
        local item = product.items and product.items[1]
        local price = item and item.price and (item.price.promo ~= 0 and item.price.promo or item.price.regular)
        if price and (not best or price < best.price) then
          best = {price = price, description = product.description}
        end
      end
      return {store = store.name, locationId = store.locationId,
              price = best and ("%.2f"):format(best.price) or "", product = best and best.description or "none"}
    end, {concurrency = 4})
    if failures then error(("could not search %d of %d stores"):format(failures.count, #stores), 0) end

    table.sort(rows, function(a, b) return (tonumber(a.price) or math.huge) < (tonumber(b.price) or math.huge) end)
    recipe.print(args, rows, {
      {key = "price", title = "PRICE", right = true},
      {key = "store", title = "STORE"},
      {key = "locationId", title = "LOCATION"},
      {key = "product", title = "PRODUCT", wrap = true},
    })
  end,
}
