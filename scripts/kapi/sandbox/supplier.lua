-- Supplier items for the sandbox: item hierarchies in the format of
-- docs/recipes.md ("Item hierarchies"), computed from (seed, index) on demand so that
-- 100,000 of them cost nothing until asked for. Each is a case of eaches
-- that passes Kroger's rules; the publication flow plants its defects on
-- copies (kapi/sandbox/items.lua).
local catalog = require "kapi.sandbox.catalog"

local M = {}

--- The suppliers (information providers), with GS1 company prefixes.
M.suppliers = {
  {gln = "0614141000005", prefix = "0614141", name = "Northfield Roasters"},
  {gln = "0845678000002", prefix = "0845678", name = "Bluestem Pantry"},
  {gln = "0860001000009", prefix = "0860001", name = "Harbor Lane Foods"},
}

local products = {
  {"Cold Brew Coffee Concentrate", "32 fl oz", "coffee"}, {"Sparkling Lemon Water", "12 fl oz", "drink"},
  {"Steel Cut Oats", "24 oz", "breakfast"}, {"Dark Chocolate Almonds", "10 oz", "snack"},
  {"Tomato Basil Pasta Sauce", "24 oz", "dinner"}, {"Honey Roasted Peanut Butter", "16 oz", "spread"},
  {"Wild Rice Blend", "2 lb", "side"}, {"Maple Granola Clusters", "12 oz", "breakfast"},
}
local flavours = {"Original", "Vanilla", "Hazelnut", "Sea Salt", "Cinnamon", "Toasted Coconut",
                  "Mocha", "Lemon Zest", "Smoked Paprika", "Garden Herb", "Wildflower Honey", "Cocoa"}
local openers = {"Made in small batches, this", "Crafted for busy mornings, this",
                 "Loved by home cooks, this", "Our best seller, this"}
local middles = {
  "It is prepared with simple ingredients you can pronounce and no artificial colors or flavors",
  "Every jar is checked by hand so that the taste stays the same from the first spoon to the last",
  "It fits easily in the pantry and stays fresh for weeks once opened when kept cool and dry",
  "Enjoy it on its own, share it with friends, or use it as the start of a quick family meal",
}

local function spell(n)
  return ({"one", "two", "three", "four", "five", "six", "seven", "eight", "nine"})[n] or tostring(n)
end

-- A marketing message of 300 to 400 characters in three sentences, unique
-- to the item (its recipe code), numbers below ten spelled out.
local function marketing_message(rand, brand, name, flavour, code)
  local first = ("%s %s %s from %s brings real flavor to your table."):format(
    openers[rand(#openers)], flavour:lower(), name:lower(), brand)
  local second = middles[rand(#middles)] .. "."
  -- The size stays out of the copy: "the 2 lb package" would break the
  -- rule that numbers below ten are spelled out.
  local third = ("Look for recipe code %d on the package, made to order in %s batches."):format(
    code, spell(rand(9)))
  local text = first .. " " .. second .. " " .. third
  while #text < 300 do
    third = third:gsub("%.$", ", and enjoy it any time of day.")
    text = first .. " " .. second .. " " .. third
  end
  return text
end

local function bullets(rand, name)
  local pool = {"No artificial colors or flavors", "Packed in a recyclable container",
                "Made with simple ingredients", "Ready in minutes", "Stays fresh for weeks once opened",
                "Great for sharing", "A pantry favorite for " .. name:lower(), "Small batch quality"}
  local out = {}
  for i = 1, 5 + rand(3) - 1 do out[i] = pool[i] end
  return out
end

local function images(gtin, consumer)
  if not consumer then return nil end
  local out = {}
  for i, facing in ipairs {"FRONT", "BACK", "LEFT"} do
    out[i] = {url = ("https://images.example.com/%s_%s.png"):format(gtin, facing:lower()),
              facing = facing, typeOfInformation = "PRODUCT_IMAGE", source = "DAM"}
  end
  return out
end

--- How many hierarchies each supplier has by default.
M.default_count = 1000

--- The GTIN-14 of the each and of the case of hierarchy k.
function M.gtins(k)
  local supplier = M.suppliers[(k - 1) % #M.suppliers + 1]
  local ref = ("%05d"):format((k - 1) // #M.suppliers + 1) -- 7-digit prefix + 5-digit reference
  local body = supplier.prefix .. ref -- 12 digits: a GTIN-13 without its check digit
  local case_body = "1" .. body
  return "0" .. body .. catalog.check_digit(body), case_body .. catalog.check_digit(case_body), supplier
end

--- Hierarchy k (1-based): a CASE of eaches, in the item-hierarchy format.
function M.hierarchy(seed, k)
  local rand = catalog.generator(seed * 7919 + k)
  local each_gtin, case_gtin, supplier = M.gtins(k)
  local product = products[rand(#products)]
  local flavour = flavours[rand(#flavours)]
  local name, size = product[1], product[2]
  local count = ({6, 8, 12, 24})[rand(4)]
  local ti, hi = 5 + rand(6), 4 + rand(4)
  local each = {
    gtin = each_gtin, level = "BASE_UNIT_OR_EACH", isConsumerUnit = true,
    informationProviderGln = supplier.gln, brandName = supplier.name,
    description = ("%s %s %s %s"):format(supplier.name, flavour, name, size),
    productActivityTypeCode = "LAST_PROCESSING", customerFacingSize = size,
    marketingMessage = marketing_message(rand, supplier.name, name, flavour, 10000 + k),
    featureBenefits = bullets(rand, name), images = images(each_gtin, true),
    modelGtinExists = false, requiresWercs = false, recipients = {"ALL"},
  }
  return {
    gtin = case_gtin, level = "CASE", isConsumerUnit = false,
    informationProviderGln = supplier.gln, brandName = supplier.name,
    description = ("%s %s %s %s %d count case"):format(supplier.name, flavour, name, size, count),
    productActivityTypeCode = "LAST_PROCESSING", quantityOfChildren = count,
    nonGTINPalletTi = ti, nonGTINPalletHi = hi, nonGTINPalletQuantity = ti * hi,
    modelGtinExists = false, krogerSubmissionReasonCode = "NEW ITEM", requiresWercs = false,
    recipients = {"0838016000123"}, children = {each},
    lastModified = ("2026-%02d-%02dT%02d:00:00"):format(1 + k % 10, 1 + k % 28, k % 24),
  }
end

--- Where a GTIN of the generated catalogue sits: supplier index, item
--- reference and whether it is the case; nil when it is not one of ours.
function M.locate(gtin)
  if type(gtin) ~= "string" or not gtin:match("^[01]%d%d%d%d%d%d%d%d%d%d%d%d%d$") then return nil end
  local prefix, ref = gtin:sub(2, 8), tonumber(gtin:sub(9, 13))
  for i, s in ipairs(M.suppliers) do
    if s.prefix == prefix and ref >= 1 then return i, ref, gtin:sub(1, 1) == "1" end
  end
end

--- The hierarchy number k of supplier i's item reference ref.
function M.number(i, ref)
  return (ref - 1) * #M.suppliers + i
end

return M
