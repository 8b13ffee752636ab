-- stores: the stores near a place (or of a chain), nearest first, with
-- what someone going there wants: how far, where, the phone, today's
-- hours and the departments.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local errors = require "kapi.errors"
local json = require "kapi.json"

local DAYS = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"} -- os.date's wday order

local COLUMNS = {
  {key = "locationId", title = "STORE"},
  {key = "name", title = "NAME", wrap = true},
  {key = "miles", title = "MILES", right = true},
  {key = "where", title = "ADDRESS", wrap = true},
  {key = "phoneText", title = "PHONE"},
  {key = "hoursToday", title = "TODAY"},
  {key = "departmentsShown", title = "DEPARTMENTS", wrap = true},
}
local KEYS = {"locationId", "name", "chain", "distance", "address", "city", "state", "zipCode", "phone",
              "latitude", "longitude", "hoursToday", "hours", "departments"}

local usage = recipe.usage

-- The place, checked before anything is sent: {zip} or a point {lat, lon,
-- latlong} or {} (a chain alone).
local function read_place(args)
  local place = recipe.place(args, {
    conflict = "give --zip or a point (--near, --lat/--lon), not both",
    missing = not args.chain and "where? give --zip ZIP, --near LAT,LON, --lat and --lon, or --chain NAME" or nil,
  })
  args.department = recipe.values(args.department)
  for _, d in ipairs(args.department) do
    if not d:match("^%w%w$") then
      usage("--department %s: a department id has 2 characters, e.g. 09 (pharmacy)", d)
    end
  end
  return place
end

-- Miles between two points (haversine).
local function miles(lat1, lon1, lat2, lon2)
  local r = math.rad
  local a = math.sin(r(lat2 - lat1) / 2) ^ 2 + math.cos(r(lat1)) * math.cos(r(lat2)) * math.sin(r(lon2 - lon1) / 2) ^ 2
  return 3958.8 * 2 * math.atan(math.sqrt(a), math.sqrt(1 - a))
end

local function day_hours(day)
  if type(day) ~= "table" then return nil end
  if day.open24 then return "open 24 hours" end
  if day.open and day.close then return day.open .. "-" .. day.close end
end

-- Today at the store: its UTC offset, from the API's "(UTC-05:00) ..."
-- (daylight saving is not in the API's data).
local function today(hours)
  local sign, h, m = (hours.gmtOffset or ""):match("UTC([+-])(%d%d):(%d%d)")
  if not sign then return DAYS[os.date("*t").wday] end
  local offset = (tonumber(h) * 3600 + tonumber(m) * 60) * (sign == "-" and -1 or 1)
  return DAYS[os.date("!*t", os.time() + offset).wday]
end

local function phone_text(phone)
  local a, b, c = (phone or ""):match("^(%d%d%d)(%d%d%d)(%d%d%d%d)$")
  return a and ("(%s) %s-%s"):format(a, b, c) or phone
end

-- A table cell for a long list: the first few, then how many more (the
-- whole list is in --json and --csv).
local SHOWN_DEPARTMENTS = 4
local function short_list(names)
  if #names <= SHOWN_DEPARTMENTS + 1 then return table.concat(names, ", ") end
  return ("%s, +%d more"):format(table.concat(names, ", ", 1, SHOWN_DEPARTMENTS), #names - SHOWN_DEPARTMENTS)
end

local function store_row(s, place)
  local address, geo, hours = s.address or {}, s.geolocation or {}, s.hours or {}
  local distance
  if place.lat and geo.latitude then
    distance = math.floor(miles(place.lat, place.lon, geo.latitude, geo.longitude) * 10 + 0.5) / 10
  end
  local week = {}
  for _, day in ipairs(DAYS) do week[day] = day_hours(hours[day]) end
  local departments = json.array()
  for i, d in ipairs(s.departments or {}) do departments[i] = d.name end
  local today_hours = week[today(hours)]
  return {
    locationId = s.locationId, name = s.name, chain = s.chain, distance = distance,
    address = address.addressLine1, city = address.city, state = address.state, zipCode = address.zipCode,
    phone = s.phone, latitude = geo.latitude, longitude = geo.longitude, hoursToday = today_hours,
    hours = week, departments = departments,
    -- for the table
    miles = distance and ("%.1f"):format(distance),
    where = ("%s, %s, %s %s"):format(address.addressLine1 or "", address.city or "", address.state or "",
                                     address.zipCode or ""),
    phoneText = phone_text(s.phone), departmentText = table.concat(departments, ", "),
    departmentsShown = short_list(departments),
  }
end

-- The chain's name as the API spells it, or a usage error listing the known ones.
local function check_chain(kroger, name)
  local ok, chain = pcall(kroger.chain, kroger, name)
  if ok and chain then return chain.name end
  if ok or (errors.is(chain, "http") and chain.status == 404) then
    local names = {}
    for _, c in ipairs(kroger:chains() or {}) do names[#names + 1] = c.name end
    usage("--chain %s: no such chain (known: %s)", name, table.concat(names, ", "))
  end
  error(chain, 0)
end

-- The department ids asked for, each one the API knows, or a usage error
-- listing the known ones (as for --chain).
local function check_departments(kroger, ids)
  if #ids == 0 then return end
  local known, names = {}, {}
  for _, d in ipairs(kroger:departments() or {}) do
    known[d.departmentId] = true
    names[#names + 1] = ("%s %s"):format(d.departmentId, d.name)
  end
  for _, id in ipairs(ids) do
    if not known[id] then usage("--department %s: no such department (known: %s)", id, table.concat(names, ", ")) end
  end
end

return {
  summary = "Stores near a ZIP code or a point, or of a chain: distance, address, phone, hours, departments",
  keys = KEYS,
  description = [[
Lists the stores nearest a ZIP code (--zip) or a point (--near LAT,LON, or
--lat and --lon), nearest first, within --radius miles; --chain keeps one
chain's (alone, it lists that chain's stores); --department keeps the
stores that have every department given (2-character ids, e.g. 09 for the
pharmacy). Each store with its location id (what the other recipes take as
--store), its distance (from a point; the Locations API does not say where
a ZIP code is, so with --zip the distance is left out), address, phone,
today's hours (by the store's UTC offset) and its departments.

JSON keys: locationId, name, chain, distance (miles, or null), address,
city, state, zipCode, phone, latitude, longitude, hoursToday, hours (the
week: {"monday": "07:00-23:00", ...}), departments (names).

Exit status (docs/usage.md): 0 when the search ran (finding no store of
the chain or departments asked for included); 2 for a usage error, or a
place with no store at all within the radius.]],

  arguments = function(parser)
    recipe.place_options(parser)
    parser:option("--chain", "Only this chain's stores (e.g. KROGER, RALPHS)"):argname("NAME")
    parser:option("--department", "Only stores with this department (repeatable)"):count("*"):argname("ID")
    parser:option("--limit", "At most N stores (1-200)", "10"):convert(recipe.whole_number("--limit", 1, 200))
          :argname("N")
    recipe.options(parser, {"output", "quiet", "env"})
  end,

  run = function(args)
    local place = read_place(args)
    local kroger = kapi.kroger.client {env = args.env}
    local chain = args.chain and check_chain(kroger, args.chain)
    check_departments(kroger, args.department)
    local near = place.zip or place.latlong
    local stores = kroger:locations {zip = place.zip, latlong = place.latlong, chain = chain,
                                     radius = near and args.radius or nil, limit = args.limit,
                                     department = #args.department > 0 and args.department or nil}
    local rows = {}
    for i, s in ipairs(stores) do
      rows[i] = store_row(s, place)
      -- CSV cells hold lists separated by spaces; department names have spaces.
      if recipe.format(args) == "csv" then rows[i].departments = rows[i].departmentText end
    end
    local columns = {}
    for _, c in ipairs(COLUMNS) do
      if c.key ~= "miles" or place.lat then columns[#columns + 1] = c end
    end
    if #rows == 0 and near then
      -- No store at all there is an input that names nowhere (as in every
      -- recipe); none of the chain or with the departments is an answer.
      local filtered = chain or #args.department > 0
      if not filtered or #kroger:locations {zip = place.zip, latlong = place.latlong, radius = args.radius, limit = 1} == 0 then
        recipe.no_store(place, args.radius)
      end
    end
    recipe.print(args, rows, columns, KEYS)
    if #rows == 0 then
      recipe.note(args, "kapi: no stores%s%s%s", chain and (" of " .. chain) or "",
                  #args.department > 0 and (" with department " .. table.concat(args.department, " and ")) or "",
                  near and (" within %d miles of %s"):format(args.radius, near) or "")
    end
    return 0
  end,
}
