-- The sandbox's data: a catalog built from a seed. Same seed, same data:
-- chains, departments, stores, products (with valid GTINs), per-store
-- prices, promotions and stock, and coupons. Per-store facts are derived
-- by hashing (product, store) rather than stored, so 20,000 products at
-- 300 stores cost little memory and start-up time.
local M = {}

-- xorshift64*: a small generator of our own, so that the data never
-- depends on math.random's state or implementation.
local function generator(seed)
  local s = (seed * 0x9E3779B97F4A7C15) ~ 0x2545F4914F6CDD1D
  if s == 0 then s = 1 end
  return function(n)
    s = s ~ (s >> 12)
    s = s ~ (s << 25)
    s = s ~ (s >> 27)
    local r = (s * 0x2545F4914F6CDD1D) >> 11 -- 53 random bits
    if n then return r % n + 1 end
    return r / 2.0 ^ 53
  end
end
M.generator = generator

--- A stable hash of integers, for per-store facts.
local function mix(a, b, c)
  local h = (a * 0x9E3779B97F4A7C15) ~ (b * 0xC2B2AE3D27D4EB4F) ~ ((c or 0) * 0x165667B19E3779F9)
  h = (h ~ (h >> 31)) * 0x94D049BB133111EB
  return (h ~ (h >> 29)) & 0x7FFFFFFF
end
M.mix = mix

local function pick(rand, list) return list[rand(#list)] end

-- GS1 check digit over the digits of `body` (weights 3,1,3,... from the
-- right). Byte by byte, making no string or table: a page of Content1
-- items computes two thousand, and garbage makes the collector walk the
-- whole catalog again.
function M.check_digit(body)
  local sum, weight = 0, 3
  for i = #body, 1, -1 do
    local digit = body:byte(i) - 48
    if digit < 0 or digit > 9 then error("check_digit: not a digit in " .. body, 2) end
    sum = sum + digit * weight
    weight = 4 - weight
  end
  return tostring((10 - sum % 10) % 10)
end

M.chains = {
  {name = "KROGER", domain = "kroger.com", friendly = "Kroger", divisions = {"014", "011", "016", "024", "029", "034"}},
  {name = "RALPHS", domain = "ralphs.com", friendly = "Ralphs", divisions = {"703"}},
  {name = "FRED MEYER", domain = "fredmeyer.com", friendly = "Fred Meyer", divisions = {"701"}},
  {name = "QFC", domain = "qfc.com", friendly = "QFC", divisions = {"705"}},
  {name = "KING SOOPERS", domain = "kingsoopers.com", friendly = "King Soopers", divisions = {"620"}},
  {name = "FRYS", domain = "frysfood.com", friendly = "Fry's", divisions = {"660"}},
  {name = "SMITHS", domain = "smithsfoodanddrug.com", friendly = "Smith's", divisions = {"706"}},
  {name = "HARRIS TEETER", domain = "harristeeter.com", friendly = "Harris Teeter", divisions = {"097"}},
  {name = "DILLONS", domain = "dillons.com", friendly = "Dillons", divisions = {"540"}},
  {name = "MARIANOS", domain = "marianos.com", friendly = "Mariano's", divisions = {"531"}},
}

M.departments = {
  {departmentId = "01", name = "Drug & General Merchandise"}, {departmentId = "09", name = "Pharmacy"},
  {departmentId = "13", name = "Bakery"}, {departmentId = "19", name = "Deli"},
  {departmentId = "23", name = "Floral"}, {departmentId = "27", name = "Meat & Seafood"},
  {departmentId = "32", name = "Produce"}, {departmentId = "44", name = "Starbucks"},
  {departmentId = "53", name = "Pickup"}, {departmentId = "61", name = "Delivery"},
  {departmentId = "76", name = "Wine & Spirits"}, {departmentId = "94", name = "Fuel Center"},
}

-- Cities with a ZIP code each (the ZIPs the sandbox can geocode), and the
-- chain that serves them.
M.cities = {
  {"Cincinnati", "OH", "45202", 39.1031, -84.5120, "KROGER", "HAMILTON COUNTY"},
  {"Columbus", "OH", "43215", 39.9612, -82.9988, "KROGER", "FRANKLIN COUNTY"},
  {"Dayton", "OH", "45402", 39.7589, -84.1916, "KROGER", "MONTGOMERY COUNTY"},
  {"Toledo", "OH", "43604", 41.6528, -83.5379, "KROGER", "LUCAS COUNTY"},
  {"Louisville", "KY", "40202", 38.2527, -85.7585, "KROGER", "JEFFERSON COUNTY"},
  {"Lexington", "KY", "40507", 38.0406, -84.5037, "KROGER", "FAYETTE COUNTY"},
  {"Indianapolis", "IN", "46204", 39.7684, -86.1581, "KROGER", "MARION COUNTY"},
  {"Atlanta", "GA", "30303", 33.7490, -84.3880, "KROGER", "FULTON COUNTY"},
  {"Houston", "TX", "77002", 29.7604, -95.3698, "KROGER", "HARRIS COUNTY"},
  {"Dallas", "TX", "75201", 32.7767, -96.7970, "KROGER", "DALLAS COUNTY"},
  {"Nashville", "TN", "37203", 36.1627, -86.7816, "KROGER", "DAVIDSON COUNTY"},
  {"Memphis", "TN", "38103", 35.1495, -90.0490, "KROGER", "SHELBY COUNTY"},
  {"Knoxville", "TN", "37902", 35.9606, -83.9207, "KROGER", "KNOX COUNTY"},
  {"Detroit", "MI", "48226", 42.3314, -83.0458, "KROGER", "WAYNE COUNTY"},
  {"Little Rock", "AR", "72201", 34.7465, -92.2896, "KROGER", "PULASKI COUNTY"},
  {"Los Angeles", "CA", "90012", 34.0522, -118.2437, "RALPHS", "LOS ANGELES COUNTY"},
  {"San Diego", "CA", "92101", 32.7157, -117.1611, "RALPHS", "SAN DIEGO COUNTY"},
  {"Portland", "OR", "97204", 45.5152, -122.6784, "FRED MEYER", "MULTNOMAH COUNTY"},
  {"Seattle", "WA", "98101", 47.6062, -122.3321, "QFC", "KING COUNTY"},
  {"Denver", "CO", "80202", 39.7392, -104.9903, "KING SOOPERS", "DENVER COUNTY"},
  {"Phoenix", "AZ", "85004", 33.4484, -112.0740, "FRYS", "MARICOPA COUNTY"},
  {"Salt Lake City", "UT", "84101", 40.7608, -111.8910, "SMITHS", "SALT LAKE COUNTY"},
  {"Las Vegas", "NV", "89101", 36.1699, -115.1398, "SMITHS", "CLARK COUNTY"},
  {"Albuquerque", "NM", "87102", 35.0844, -106.6504, "SMITHS", "BERNALILLO COUNTY"},
  {"Charlotte", "NC", "28202", 35.2271, -80.8431, "HARRIS TEETER", "MECKLENBURG COUNTY"},
  {"Richmond", "VA", "23219", 37.5407, -77.4360, "HARRIS TEETER", "RICHMOND CITY"},
  {"Wichita", "KS", "67202", 37.6872, -97.3301, "DILLONS", "SEDGWICK COUNTY"},
  {"Chicago", "IL", "60601", 41.8781, -87.6298, "MARIANOS", "COOK COUNTY"},
}

local streets = {"Main St", "Vine St", "Madison Rd", "Oak Ave", "Elm St", "Washington Blvd",
                 "Lincoln Ave", "Market St", "Park Rd", "River Rd", "Hill St", "Beechmont Ave"}

local function chain_named(name)
  for _, c in ipairs(M.chains) do if c.name == name then return c end end
end

local function hours(rand)
  local open24 = rand(5) == 1
  local day = open24 and {open = "00:00", close = "23:59", open24 = true}
              or {open = ("%02d:00"):format(5 + rand(3)), close = ("%02d:00"):format(21 + rand(2)), open24 = false}
  local h = {Open24 = open24, gmtOffset = "(UTC-05:00) Eastern Time (US Canada)", timezone = "America/New_York"}
  for _, d in ipairs {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"} do
    h[d] = day
  end
  return h
end

local function store(rand, index, city)
  local name, state, zip, lat, lon, chain_name, county = table.unpack(city)
  local chain = chain_named(chain_name)
  local division = chain.divisions[(index - 1) % #chain.divisions + 1]
  local location_id = division .. ("%05d"):format(100 + index * 7 % 99900)
  -- Within about 20 miles of the city centre.
  lat = lat + (rand() - 0.5) * 0.55
  lon = lon + (rand() - 0.5) * 0.7
  local departments = {}
  for _, d in ipairs(M.departments) do
    if rand(3) > 1 or d.departmentId == "53" then
      departments[#departments + 1] = {departmentId = d.departmentId, name = d.name,
                                       phone = ("513%07d"):format(rand(9999999)), hours = hours(rand)}
    end
  end
  return {
    locationId = location_id, chain = chain.name, name = chain.friendly .. " - " .. name,
    phone = ("%03d%07d"):format(200 + rand(799), rand(9999999)),
    address = {addressLine1 = ("%d %s"):format(rand(9000) + 100, pick(rand, streets)), city = name,
               county = county, state = state, zipCode = zip},
    geolocation = {latitude = lat, longitude = lon, latLng = ("%.7f,%.7f"):format(lat, lon)},
    hours = hours(rand), departments = departments,
  }
end

-- The first store is the one every example in the docs uses.
local function first_store(rand)
  local s = store(rand, 1, M.cities[1])
  local city = M.cities[1]
  s.locationId = "01400376"
  s.geolocation = {latitude = city[4], longitude = city[5], latLng = ("%.7f,%.7f"):format(city[4], city[5])}
  return s
end

M.categories = {
  {name = "Dairy", nouns = {"2% Reduced Fat Milk", "Whole Milk", "Greek Yogurt", "Sharp Cheddar Cheese",
                           "Unsalted Butter", "Large Eggs", "Cottage Cheese", "Half & Half"},
   sizes = {"1 gal", "1/2 gal", "32 oz", "8 oz", "1 lb", "12 ct", "16 oz"}, temp = "Refrigerated", aisle = "DAIRY"},
  {name = "Produce", nouns = {"Navel Oranges", "Bananas", "Gala Apples", "Baby Carrots", "Romaine Hearts",
                             "Avocados", "Red Grapes", "Strawberries"},
   sizes = {"1 each", "2 lb", "3 lb bag", "1 lb", "16 oz"}, temp = "Ambient", aisle = "PRODUCE"},
  {name = "Bakery", nouns = {"Whole Wheat Bread", "Bagels", "Croissants", "Hamburger Buns", "Sourdough Loaf"},
   sizes = {"20 oz", "6 ct", "8 ct", "24 oz"}, temp = "Ambient", aisle = "BAKERY"},
  {name = "Beverages", nouns = {"Sparkling Water", "Orange Juice", "Cola", "Cold Brew Coffee", "Green Tea",
                               "Lemonade", "Sports Drink"},
   sizes = {"12 ct / 12 fl oz", "52 fl oz", "2 L", "32 fl oz", "20 fl oz"}, temp = "Ambient", aisle = "Aisle 12"},
  {name = "Snacks", nouns = {"Tortilla Chips", "Potato Chips", "Pretzels", "Mixed Nuts", "Granola Bars",
                            "Popcorn", "Crackers"},
   sizes = {"10 oz", "13 oz", "8 ct", "16 oz", "1 lb"}, temp = "Ambient", aisle = "Aisle 9"},
  {name = "Frozen", nouns = {"Pepperoni Pizza", "Vanilla Ice Cream", "Mixed Vegetables", "Chicken Nuggets",
                            "Waffles"},
   sizes = {"12 in", "48 oz", "16 oz", "32 oz", "10 ct"}, temp = "Frozen", aisle = "Aisle 20"},
  {name = "Pantry", nouns = {"Spaghetti", "Marinara Sauce", "Long Grain White Rice", "Black Beans",
                            "Peanut Butter", "Olive Oil", "Chicken Broth"},
   sizes = {"16 oz", "24 oz", "2 lb", "15 oz", "16.3 oz", "32 oz"}, temp = "Ambient", aisle = "Aisle 5"},
  {name = "Meat & Seafood", nouns = {"Ground Beef", "Chicken Breasts", "Atlantic Salmon Fillet",
                                    "Pork Chops", "Bacon"},
   sizes = {"1 lb", "2 lb", "12 oz"}, temp = "Refrigerated", aisle = "MEAT"},
  {name = "Household", nouns = {"Laundry Detergent", "Paper Towels", "Dish Soap", "Trash Bags",
                               "Toilet Paper"},
   sizes = {"92 fl oz", "6 ct", "24 fl oz", "40 ct", "12 ct"}, temp = "Ambient", aisle = "Aisle 15"},
  {name = "Health & Beauty", nouns = {"Shampoo", "Toothpaste", "Ibuprofen Tablets", "Body Wash",
                                     "Sunscreen SPF 50"},
   sizes = {"12 fl oz", "4.8 oz", "100 ct", "18 fl oz", "6 fl oz"}, temp = "Ambient", aisle = "Aisle 3"},
}

M.brands = {
  -- {name, company prefix (6 digits of a UPC-A), weight}
  {"Kroger", "011110"}, {"Simple Truth", "011110"}, {"Simple Truth Organic", "011110"},
  {"Private Selection", "011110"}, {"Heritage Farm", "011110"}, {"Comforts", "011110"},
  {"Home Chef", "011110"}, {"Murray's", "041415"}, {"Coca-Cola", "049000"}, {"Pepsi", "012000"},
  {"Kellogg's", "038000"}, {"General Mills", "016000"}, {"Kraft", "021000"}, {"Tide", "037000"},
  {"Dole", "071430"}, {"Tillamook", "072830"}, {"Barilla", "076808"}, {"Frito-Lay", "028400"},
  {"Chobani", "818290"}, {"Nature Valley", "016000"}, {"Bounty", "037000"}, {"Colgate", "035000"},
  {"Tyson", "023700"}, {"Starbucks", "762111"}, {"Annie's", "013562"}, {"Blue Diamond", "041570"},
}

local adjectives = {"", "", "Organic", "Original", "Family Size", "Lightly Salted", "Classic",
                    "Low Fat", "Extra Virgin", "Natural", "Honey", "Zero Sugar"}

local function slug(text)
  return (text:lower():gsub("[^%w]+", "-"):gsub("^-+", ""):gsub("-+$", ""))
end

local function words_of(text)
  local out = {}
  for w in text:lower():gmatch("[%w']+") do
    w = w:gsub("'", "")
    out[#out + 1] = w
    if #w > 3 and w:sub(-1) == "s" then out[#out + 1] = w:sub(1, -2) end
  end
  return out
end
M.words_of = words_of

local function product(rand, index)
  local category = pick(rand, M.categories)
  local brand = pick(rand, M.brands)
  local noun = pick(rand, category.nouns)
  local adjective = pick(rand, adjectives)
  local size = pick(rand, category.sizes)
  local description = adjective == "" and (brand[1] .. " " .. noun)
                      or (brand[1] .. " " .. adjective .. " " .. noun)
  -- UPC-A: company prefix + 5-digit item reference + check digit; the
  -- Kroger product id is the GTIN-14 without its check digit.
  local upc_body = brand[2] .. ("%05d"):format((index + 1000) % 100000)
  local upc = upc_body .. M.check_digit(upc_body)
  -- Few fields, and no nested tables: the collector walks every product on
  -- every cycle, so the catalog is kept flat. What is derived (the page
  -- slug, the GTIN-14, the dimensions) is computed when a response needs it.
  return {
    index = index, productId = ("00" .. upc):sub(1, 13), brand = brand[1],
    description = description .. ", " .. size, size = size, category = category.name,
    temperature = category.temp, aisle = category.aisle,
    base_price = math.floor((0.99 + rand() * 14) * 100 + 0.5) / 100,
    countryOrigin = pick(rand, {"United States", "United States", "Mexico", "Canada", "Chile"}),
    sold_by = category.name == "Produce" and rand(2) == 1 and "WEIGHT" or "UNIT",
    search = words_of(description .. " " .. category.name),
  }
end

--- The GTIN-14 of a product (its id plus the check digit).
function M.gtin(p)
  return p.productId .. M.check_digit(p.productId)
end

--- The product page's slug, e.g. "kroger-2-reduced-fat-milk-1-gal".
function M.slug(p)
  return slug(p.description)
end

--- Depth, height and width in inches, as the API gives them (strings).
function M.dimensions(catalog, p)
  local h = mix(catalog.seed, p.index, 0)
  return {depth = ("%.1f"):format(1 + h % 90 / 10), height = ("%.1f"):format(1 + (h >> 8) % 110 / 10),
          width = ("%.1f"):format(1 + (h >> 16) % 90 / 10)}
end

-- word -> ascending list of product indices
local function index_products(products)
  local index = {}
  for i, p in ipairs(products) do
    local seen = {}
    for _, w in ipairs(p.search) do
      if not seen[w] then
        seen[w] = true
        local list = index[w]
        if not list then list = {}; index[w] = list end
        list[#list + 1] = i
      end
    end
    p.search = nil
  end
  return index
end

--- Builds the catalog: build{seed = 1, products = 20000, stores = 300}.
function M.build(opts)
  local seed = opts.seed or 1
  local rand = generator(seed)
  local catalog = {seed = seed, chains = M.chains, departments = M.departments}
  catalog.stores, catalog.store_by_id = {first_store(rand)}, {}
  for i = 2, opts.stores or 300 do
    catalog.stores[i] = store(rand, i, pick(rand, M.cities))
  end
  for i, s in ipairs(catalog.stores) do
    s.index = i
    catalog.store_by_id[s.locationId] = s
  end
  catalog.products, catalog.product_by_id = {}, {}
  for i = 1, opts.products or 20000 do
    local p = product(rand, i)
    if not catalog.product_by_id[p.productId] then
      catalog.products[#catalog.products + 1] = p
      catalog.product_by_id[p.productId] = p
      p.index = #catalog.products
    end
  end
  catalog.word_index = index_products(catalog.products)
  catalog.zips = {}
  for _, c in ipairs(M.cities) do catalog.zips[c[3]] = {lat = c[4], lon = c[5]} end
  return catalog
end

--- Whether a store carries a product (the first test of at_store, alone).
function M.carries(catalog, p, s)
  return mix(catalog.seed, p.index, s.index) % 13 ~= 0
end

--- What a store has of a product, as values (no table: search pages call
--- this for every candidate): nothing when the store does not carry it,
--- else regular price, promo price (0 when none), stock level, aisle
--- number, curbside, delivery.
function M.at_store(catalog, p, s)
  local h = mix(catalog.seed, p.index, s.index)
  if h % 13 == 0 then return nil end
  local regular = math.floor(p.base_price * (0.9 + (h % 21) / 100) * 100 + 0.5) / 100
  local promo = (h >> 5) % 6 == 0 and math.floor(regular * 80 + 0.5) / 100 or 0
  local stock = (h >> 9) % 10
  return regular, promo,
         stock == 0 and "TEMPORARILY_OUT_OF_STOCK" or (stock <= 2 and "LOW" or "HIGH"),
         (h >> 13) % 30 + 1, (h >> 17) % 4 ~= 0, (h >> 19) % 3 ~= 0
end

--- The products whose descriptions hold every word of term, in order.
function M.search(catalog, term)
  local lists = {}
  for _, w in ipairs(words_of(term)) do
    if #w >= 2 then
      local list = catalog.word_index[w]
      if not list and #w > 3 and w:sub(-1) == "s" then list = catalog.word_index[w:sub(1, -2)] end
      if not list then return {} end
      lists[#lists + 1] = list
    end
  end
  if #lists == 0 then return {} end
  if #lists == 1 then return lists[1] end -- callers only read it
  table.sort(lists, function(a, b) return #a < #b end)
  local out = {}
  for _, i in ipairs(lists[1]) do
    local all = true
    for k = 2, #lists do
      -- binary search: lists are ascending
      local list, lo, hi, found = lists[k], 1, #lists[k], false
      while lo <= hi do
        local mid = (lo + hi) // 2
        if list[mid] == i then found = true; break
        elseif list[mid] < i then lo = mid + 1 else hi = mid - 1 end
      end
      if not found then all = false; break end
    end
    if all then out[#out + 1] = i end
  end
  return out
end

--- Miles between two points (haversine).
function M.miles(lat1, lon1, lat2, lon2)
  local r = math.rad
  local dlat, dlon = r(lat2 - lat1), r(lon2 - lon1)
  local a = math.sin(dlat / 2) ^ 2 + math.cos(r(lat1)) * math.cos(r(lat2)) * math.sin(dlon / 2) ^ 2
  return 3958.8 * 2 * math.atan(math.sqrt(a), math.sqrt(1 - a))
end

return M
