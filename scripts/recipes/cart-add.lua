-- cart-add: put products in the customer's cart. Every UPC is checked and
-- looked up first, the plan printed; only with --apply is the cart
-- changed, in one call that is never repeated (a repeat adds again).
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local errors = require "kapi.errors"
local input = require "kapi.input"
local gtin = require "kapi.gtin"
local trim = require("kapi.text").trim

local SCOPE = "cart.basic:write"
local MAX_QUANTITY = 999

local STATUS_STYLE = {PLANNED = "yellow", ADDED = "green", FAILED = "red", UNKNOWN = "red"}
local COLUMNS = {
  {key = "gtin", title = "GTIN"},
  {key = "quantity", title = "QTY", right = true},
  {key = "modality", title = "MODALITY"},
  {key = "status", title = "STATUS", style = function(v) return STATUS_STYLE[v] end},
  {key = "description", title = "DESCRIPTION", wrap = true},
}
local KEYS = {"gtin", "upc", "quantity", "modality", "description", "status"}

local usage = recipe.usage

-- One entry, "UPC", "UPC:QTY" or "UPC,QTY": the item, or nil after naming
-- what is wrong in problems.
local function read_entry(text, where, problems)
  text = trim(text)
  local code, rest = text:match("^([^:,%s]*)()")
  local after = trim(text:sub(rest))
  local separator = after:match("^[:,]") or ""
  local quantity = trim(after:sub(#separator + 1))
  if quantity:find("%s") then code = nil end -- not one of the three forms: named by the GTIN check
  local ok, why = gtin.valid(code or text)
  if not ok then problems:add(where, why); return nil end
  if separator ~= "" and quantity == "" then
    problems:add(where, ('%s: the quantity after "%s" is missing'):format(code, separator))
    return nil
  end
  local n = quantity == "" and 1 or (quantity:match("^%d+$") and math.tointeger(tonumber(quantity)))
  if not n or n < 1 or n > MAX_QUANTITY then
    problems:add(where, ('quantity "%s": expected a whole number from 1 to %d'):format(errors.excerpt(quantity),
                                                                                      MAX_QUANTITY))
    return nil
  end
  return {gtin = gtin.normalize(code), upc = gtin.to_product_id(code), quantity = n, where = where}
end

-- The items of the command line and the files, in order; the same product
-- twice is one item with the quantities added.
local function read_items(args, problems)
  local items, by_upc = {}, {}
  local function add(item)
    if not item then return end
    local seen = by_upc[item.upc]
    if seen then
      seen.quantity = seen.quantity + item.quantity
      seen.places[#seen.places + 1] = item.where
      return
    end
    item.places = {item.where}
    by_upc[item.upc] = item
    items[#items + 1] = item
  end
  for i, text in ipairs(args.item) do add(read_entry(text, ("argument %d"):format(i), problems)) end
  for _, path in ipairs(recipe.distinct_files(args.file, "--file")) do
    for _, entry in ipairs(recipe.entries(path, problems, "UPC[:QTY] entry")) do
      add(read_entry(table.concat(entry.fields, ","), ("%s:%d"):format(input.name(path), entry.line), problems))
    end
  end
  -- The same product given twice is one line; its quantities together
  -- must still be what the Cart API takes.
  for _, item in ipairs(items) do
    if item.quantity > MAX_QUANTITY then
      problems:add(table.concat(item.places, ", "), ("%s: %d units in all, more than %d")
                                                    :format(item.gtin, item.quantity, MAX_QUANTITY))
      item.over = true
    end
  end
  local kept = {}
  for _, item in ipairs(items) do if not item.over then kept[#kept + 1] = item end end
  return kept
end

-- Each item's description; an item the Products API does not know is
-- named and left out.
local function look_up(kroger, items, problems)
  local ids = {}
  for i, item in ipairs(items) do ids[i] = item.upc end
  local batches = recipe.batches(ids, kapi.kroger.MAX_PRODUCT_IDS)
  local found = {}
  local _, failures = kapi.map(batches, function(ids)
    for p in kroger:products {productId = ids} do found[p.productId] = p end
  end, {concurrency = 4})
  for i = 1, #batches do
    if failures and failures[i] then error(failures[i], 0) end
  end
  local known = {}
  for _, item in ipairs(items) do
    local p = found[item.upc]
    if p then
      item.description = p.description
      known[#known + 1] = item
    else
      problems:add(item.where, ("GTIN %s is not in the Products API; left out"):format(item.gtin))
    end
  end
  return known
end

-- The one call that changes the cart. A refusal (4xx) added nothing; after
-- a lost answer nobody knows, and a repeat would add again.
local function add_to_cart(kroger, items, modality)
  local body = {}
  for i, item in ipairs(items) do body[i] = {upc = item.upc, quantity = item.quantity, modality = modality} end
  local outcome, err = recipe.act(kroger.cart_add, kroger, {items = body})
  local status = ({done = "ADDED", failed = "FAILED", unknown = "UNKNOWN"})[outcome]
  for _, item in ipairs(items) do item.status = status end
  return outcome == "done", err, status
end

return {
  summary = "Add products (UPC[:QTY]) to the customer's cart; a dry run unless --apply",
  keys = KEYS,
  description = [[
Adds products to the logged-in customer's cart: UPCs or GTINs (check digit
included) on the command line as UPC or UPC:QTY, or in files (--file, one
per line as UPC, UPC:QTY or UPC,QTY; # starts a comment; a header line is
skipped). Every entry is checked first and a bad one is named by its
argument number or FILE:LINE, as is one the Products API does not know;
the others go ahead. The same product twice is one line with the
quantities added. --modality says PICKUP (the default) or DELIVERY.

Without --apply it prints the plan and changes nothing. With --apply it
adds everything in one call, which is never retried: the Cart API adds
again on a repeat, so when an answer is lost (status UNKNOWN) look at the
cart before running again. It needs a customer login with the scope
cart.basic:write (kapi auth login --scope cart.basic:write); on the
built-in sandbox kapi logs in as its test customer by itself.

JSON keys: gtin, upc (the 13-digit id sent), quantity, modality,
description, status (PLANNED, ADDED, FAILED, UNKNOWN).

Exit status (docs/usage.md): 0 when every entry was planned (or added), 1
when the cart call failed, 2 for a usage error or an entry that was bad or
unknown to the Products API (named; the others are planned).]],

  arguments = function(parser)
    parser:argument("item", "A product to add: UPC or UPC:QTY"):args("*"):argname("UPC[:QTY]")
    parser:option("--file", "Read UPC[:QTY] lines from a file (repeatable; - reads stdin)"):count("*")
          :argname("FILE")
    parser:option("--modality", "PICKUP or DELIVERY", "PICKUP"):convert(function(text)
      local m = text:upper()
      if m ~= "PICKUP" and m ~= "DELIVERY" then return nil, ("--modality %s: expected PICKUP or DELIVERY"):format(text) end
      return m
    end)
    recipe.options(parser, {"output", "quiet", "env", "apply"})
  end,

  run = function(args)
    if #args.item == 0 and #args.file == 0 then usage("what? give UPC[:QTY] ... or --file FILE") end
    local problems = recipe.problems()
    local items = read_items(args, problems)
    if #items == 0 then return recipe.status(problems) end
    local kroger = kapi.kroger.client {env = args.env}
    items = look_up(kroger, items, problems)
    for _, item in ipairs(items) do item.modality, item.status = args.modality, "PLANNED" end
    local ok, err, status = true, nil, nil
    if args.apply and #items > 0 then
      kroger:ensure_customer(SCOPE)
      ok, err, status = add_to_cart(kroger, items, args.modality)
    end
    recipe.print(args, items, COLUMNS, KEYS)
    local units = 0
    for _, item in ipairs(items) do units = units + item.quantity end
    local what = ("%d product%s (%d unit%s)"):format(#items, #items == 1 and "" or "s", units, units == 1 and "" or "s")
    if not args.apply then
      recipe.note(args, "kapi: dry run: the cart was not changed; add --apply to add %s for %s", what, args.modality)
    elseif ok then
      recipe.note(args, "kapi: added %s to the customer's cart for %s", what, args.modality)
    elseif recipe.interrupted(err) then
      io.stderr:write("kapi: the cart call was in flight: the items may or may not be in the cart; look at the "
                      .. "cart before running again (a repeat adds again)\n")
      error(err, 0)
    elseif status == "UNKNOWN" then
      problems:fail("the cart call", errors.message(err))
      io.stderr:write("kapi: the answer was lost, so the items may or may not be in the cart; look at the cart "
                      .. "before running again (a repeat adds again)\n")
    else
      io.stderr:write(("kapi: nothing was added: %s\n"):format(errors.message(err)))
      -- An expired login or a missing scope is a step to do first: status 2.
      return math.max(recipe.status(problems), errors.is_input(err) and 2 or 1)
    end
    return recipe.status(problems)
  end,
}
