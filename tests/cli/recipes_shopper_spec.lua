-- The shopper and partner recipes (coupons, products, stores, cart-add,
-- live-check) as a user runs them: `kapi run NAME ...` in a subprocess,
-- with no credentials (so on the in-process sandbox), or against a `kapi
-- sandbox` in another process when state must outlive one run (a customer
-- login, clipped coupons) or faults are wanted. What they print is checked
-- against the same sandbox data read directly in this process.
local kapi = require "kapi"
local json = require "kapi.json"
local store = require "kapi.auth.store"
local process = require "helpers.process"
local carries = require("kapi.sandbox.catalog").carries

local dir, ref, kroger, catalog

setup(function()
  dir = process.tempdir()
  store.directory = dir .. "/spec-tokens"
  -- The reference: a sandbox with the defaults every `kapi run` below gets.
  ref = kapi.sandbox.start {}
  kroger = kapi.kroger.client {env = "sandbox", base_url = ref.url}
  catalog = ref.state.catalog
end)

teardown(function()
  ref:close()
  store.directory = nil
  process.cleanup(dir)
end)

-- A user with no credentials, on the sandbox at url (nil: the one kapi
-- starts in its own process), with state and config of their own.
local function user_env(url)
  local env = process.sandbox_env(url)
  env.XDG_STATE_HOME, env.XDG_CONFIG_HOME, env.COLUMNS = dir .. "/state", dir .. "/config", ""
  return env
end

-- Runs `kapi ARGS...` as that user: {status, stdout, stderr}.
local function kapi_run(args, opts)
  return process.kapi_run(args, {env = user_env(opts and opts.sandbox)})
end

local function decode(r)
  local ok, value = pcall(json.decode, r.stdout)
  assert(ok, "not JSON: " .. r.stdout .. r.stderr)
  return value
end

local function keys_of(object)
  local keys = {}
  for k in pairs(object) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function sorted(list)
  local copy = table.move(list, 1, #list, 1, {})
  table.sort(copy)
  return copy
end

local function lines(text)
  local out = {}
  for line in text:gmatch("[^\r\n]+") do out[#out + 1] = line end
  return out
end

-- A `kapi sandbox --verbose` in the background: its URL, and a function
-- that stops it and returns its request log (process.sandbox removes the
-- log when it stops).
local function logging_sandbox(name)
  local out, err = ("%s/%s.out"):format(dir, name), ("%s/%s.err"):format(dir, name)
  -- Files of an earlier run under the same name would be read before the
  -- new sandbox truncates them: the new run gets files of its own.
  os.remove(out)
  os.remove(err)
  local r = process.sh(("%s sandbox --verbose > %s 2> %s & echo $!; " ..
                        "for i in $(seq 200); do grep -q '^kapi sandbox: http' %s 2>/dev/null && break; sleep 0.05; done")
                       :format(process.quote(process.kapi), out, err, out))
  local pid = assert(r.stdout:match("^(%d+)"))
  local url = assert(io.open(out):read("a"):match("^kapi sandbox: (http://%S+)"), "the sandbox did not start")
  return url, function()
    os.execute("kill " .. pid .. " 2>/dev/null")
    local f = io.open(err)
    local log = f and f:read("a") or ""
    if f then f:close() end
    return log
  end
end

-- Logs the customer in to a background sandbox as `kapi auth login` does,
-- curl playing the browser.
local function log_in(url, scopes)
  local words = {}
  for _, s in ipairs(scopes) do words[#words + 1] = "--scope " .. s end
  -- Each login writes a file of its own, created empty before the login
  -- starts: with one file for every login, the wait below could read the
  -- last login's address before the shell truncated the file for this one
  -- (the background job's redirection races the next command), send the
  -- browser to a sandbox that is gone, and leave this login waiting 300 s.
  local r = process.sh(([[
    out=$(mktemp -p %s login.XXXXXX)
    %s auth login --env sandbox --no-browser %s > "$out" 2>&1 &
    login=$!
    for i in $(seq 600); do grep -q 'code_challenge_method=S256' "$out" && break; sleep 0.05; done
    callback=$(curl -s -o /dev/null -w '%%{redirect_url}' "$(grep -o 'http://[^ ]*authorize[^ ]*' "$out")")
    curl -s -o /dev/null "$callback"
    wait $login; status=$?
    [ $status = 0 ] || { echo "callback: $callback"; cat "$out"; } >&2
    exit $status
  ]]):format(dir, process.quote(process.kapi), table.concat(words, " ")), {env = user_env(url)})
  assert.equal(0, r.status, r.stderr)
end

-- The coupon ids on the customer's card, read with the stored login.
local function card(url)
  local r = process.kapi_run({"-e", "local ids = {} for _, c in ipairs(require('kapi').kroger.client{env = " ..
    "'sandbox'}:my_coupons()) do ids[#ids + 1] = c.couponId end print(table.concat(ids, ' '))"}, {env = user_env(url)})
  assert.equal(0, r.status, r.stderr)
  return (r.stdout:gsub("%s+$", ""))
end

local function nearest(zip, n)
  return kroger:locations {zip = zip, radius = 10, limit = n or 5}
end

describe("every shopper recipe", function()
  it("documents itself with --help and exits 0", function()
    for _, name in ipairs {"coupons", "products", "stores", "cart-add", "live-check"} do
      local r = kapi_run {"run", name, "--help"}
      assert.equal(0, r.status, name .. ": " .. r.stderr)
      assert.matches("Usage: kapi run " .. name:gsub("%-", "%%-"), r.stdout)
      assert.matches("JSON keys", r.stdout)
      assert.matches("Exit status", r.stdout)
      assert.matches("%-%-json", r.stdout)
      assert.equal("", r.stderr)
    end
  end)
end)

describe("kapi run coupons", function()
  local COUPON_KEYS = sorted {"locationId", "storeName", "couponId", "brand", "description", "savings", "valueType",
                              "valueAmount", "minimumQuantity", "channels", "merchant", "expiresAt", "productIds"}

  it("lists every coupon of the stores near a ZIP code, one row per coupon per store", function()
    local r = kapi_run {"run", "coupons", "--zip", "45202", "--json"}
    assert.equal(0, r.status, r.stderr)
    local _, announced = r.stderr:gsub("using the built%-in sandbox", "")
    assert.equal(1, announced)
    local rows = decode(r)
    local expected = {}
    for _, s in ipairs(nearest("45202")) do
      for c in kroger:coupons {locationId = s.locationId} do
        expected[#expected + 1] = s.locationId .. " " .. c.couponId .. " " .. c.brand
      end
    end
    assert.is_true(#expected > 100)
    local got = {}
    for i, row in ipairs(rows) do
      assert.same(COUPON_KEYS, keys_of(row))
      got[i] = row.locationId .. " " .. row.couponId .. " " .. row.brand
    end
    assert.same(expected, got)
    assert.matches(("%d coupons at 3 stores"):format(#expected), r.stderr)
    -- The savings say what the value is.
    for _, row in ipairs(rows) do
      if row.valueType == "PERCENT_OFF" then assert.equal(("%g%% off"):format(row.valueAmount), row.savings)
      else assert.equal(("$%.2f off"):format(row.valueAmount), row.savings) end
    end
  end)

  it("narrows to the coupons for a product given by UPC, as CSV, and names a bad UPC", function()
    local product
    for _, c in ipairs(ref.state.partner.coupons) do
      if c.merchant == "ALL" then product = c.productIds[1]; break end
    end
    local code = kapi.gtin.from_product_id(product)
    local r = kapi_run {"run", "coupons", "--zip", "45202", "--upc", "12345", "--upc", code, "--csv"}
    assert.equal(2, r.status) -- a bad UPC is bad input; the good one is still looked up
    assert.matches('kapi: %-%-upc value 1: GTIN "12345" has 5 digits', r.stderr)
    local rows = lines(r.stdout)
    assert.equal("locationId,storeName,couponId,brand,description,savings,valueType,valueAmount,minimumQuantity,"
                 .. "channels,merchant,expiresAt,productIds", rows[1])
    local expected = 0
    for _, s in ipairs(nearest("45202")) do
      for c in kroger:coupons {locationId = s.locationId, productId = product} do
        expected = expected + 1
        assert.matches(s.locationId .. ",[^\n]*" .. c.couponId .. ",[^\n]*" .. product, r.stdout)
      end
    end
    assert.is_true(expected >= 3)
    assert.equal(expected + 1, #rows)
  end)

  it("finds coupons for the products a search finds at each store", function()
    local r = kapi_run {"run", "coupons", "--store", "01400376", "--term", "milk", "--json"}
    assert.equal(0, r.status, r.stderr)
    local ids = {}
    for p in kroger:products {term = "milk", locationId = "01400376", max_items = 50} do ids[#ids + 1] = p.productId end
    local expected = {}
    for c in kroger:coupons {locationId = "01400376", productId = ids} do expected[#expected + 1] = c.couponId end
    local got = {}
    for i, row in ipairs(decode(r)) do got[i] = row.couponId end
    assert.is_true(#expected > 0)
    assert.same(expected, got)
  end)

  it("names bad input: usage errors exit 2 before anything is sent, an unknown store exits 2 too", function()
    local cases = {
      {{"--zip", "4520"}, "^kapi: %-%-zip 4520: expected 5 digits\n$"},
      {{}, "^kapi: where%? give %-%-zip ZIP"},
      {{"--near", "north"}, "^kapi: %-%-near north: expected LAT,LON"},
      {{"--store", "0140037"}, "^kapi: %-%-store 0140037: a location id has 8 digits"},
      {{"--zip", "45202", "--apply"}, "^kapi: %-%-apply goes with %-%-clip"},
      {{"--clip", "C0001002", "--zip", "45202"}, "^kapi: %-%-clip takes coupon ids alone"},
    }
    for _, case in ipairs(cases) do
      local args = {"run", "coupons"}
      for _, a in ipairs(case[1]) do args[#args + 1] = a end
      local r = kapi_run(args)
      assert.equal(2, r.status, table.concat(case[1], " "))
      assert.matches(case[2], r.stderr)
      assert.equal("", r.stdout)
    end
    local r = kapi_run {"run", "coupons", "--radius", "500", "--zip", "45202"}
    assert.equal(2, r.status)
    assert.matches("%-%-radius 500: expected a whole number from 1 to 100", r.stderr)
    r = kapi_run {"run", "coupons", "--store", "01400376,01499999", "--limit", "2"}
    assert.equal(2, r.status)
    assert.matches("kapi: %-%-store 01499999: no such store", r.stderr)
    assert.matches("01400376  C%d+", r.stdout)
  end)

  it("clips coupons: a plan without --apply, a login asked for, then clipped once and only once", function()
    local url, stop = logging_sandbox("clip")
    local ok, err = pcall(function()
      local first = kroger:coupons {locationId = "01400376", max_items = 2}:all()
      local a, b = first[1].couponId, first[2].couponId
      -- The plan: nothing changes, and it says so.
      local r = kapi_run({"run", "coupons", "--clip", a .. "," .. b, "--clip", "C9999999"}, {sandbox = url})
      assert.equal(2, r.status)
      assert.matches("kapi: %-%-clip C9999999: no such coupon", r.stderr)
      assert.matches("dry run: nothing was clipped; add %-%-apply to clip 2 coupons", r.stderr)
      assert.matches(a .. "[^\n]+PLANNED", r.stdout)
      assert.matches(b .. "[^\n]+PLANNED", r.stdout)
      -- --apply with nobody logged in: told how to log in, nothing sent.
      r = kapi_run({"run", "coupons", "--clip", a, "--apply"}, {sandbox = url})
      assert.equal(2, r.status) -- a setup to do first, as for missing credentials
      assert.matches("^kapi: no customer is logged in; run: kapi auth login %-%-scope coupon%.personalized:rw\n$", r.stderr)
      log_in(url, {"coupon.personalized:rw"})
      assert.equal("", card(url))
      r = kapi_run({"run", "coupons", "--clip", a, "--clip", b, "--apply", "--json"}, {sandbox = url})
      assert.equal(0, r.status, r.stderr)
      local rows = decode(r)
      assert.same({"CLIPPED", "CLIPPED"}, {rows[1].status, rows[2].status})
      assert.same(sorted {"couponId", "brand", "description", "savings", "expiresAt", "status", "error"},
                  keys_of(rows[1]))
      assert.equal(table.concat(sorted {a, b}, " "), card(url))
      -- Again: already on the card, nothing clipped twice.
      r = kapi_run({"run", "coupons", "--clip", a, "--apply"}, {sandbox = url})
      assert.equal(0, r.status, r.stderr)
      assert.matches(a .. "[^\n]+ALREADY_CLIPPED", r.stdout)
      assert.matches("0 clipped, 1 already on the card, 0 failed", r.stderr)
    end)
    local log = stop()
    assert(ok, err)
    local _, posts = log:gsub("POST /v1/my_coupons %-> 201", "")
    assert.equal(2, posts)
    -- No secret in anything printed.
    assert.is_nil(log:find("sandbox-secret", 1, true))
  end)

  it("clips on the built-in sandbox by logging in as its test customer", function()
    local r = kapi_run {"run", "coupons", "--clip", "C0001002", "--apply"}
    assert.equal(0, r.status, r.stderr)
    assert.matches("logged in to the built%-in sandbox as its test customer", r.stderr)
    assert.matches("C0001002[^\n]+CLIPPED", r.stdout)
  end)
end)

describe("kapi run products", function()
  it("shows price, promotion, stock, fulfillment and the page at a store, as the API has them", function()
    local r = kapi_run {"run", "products", "--term", "milk", "--store", "01400376", "--limit", "8", "--json"}
    assert.equal(0, r.status, r.stderr)
    local rows = decode(r)
    local expected = kroger:products {term = "milk", locationId = "01400376", max_items = 8}:all()
    assert.equal(8, #rows)
    for i, row in ipairs(rows) do
      local p, item = expected[i], expected[i].items[1]
      assert.same(sorted {"productId", "gtin", "brand", "description", "size", "regularPrice", "promoPrice",
                          "onPromo", "stockLevel", "fulfillment", "aisle", "locationId", "url"}, keys_of(row))
      assert.equal(p.productId, row.productId)
      assert.equal(kapi.gtin.from_product_id(p.productId), row.gtin)
      assert.equal(item.price.regular, row.regularPrice)
      assert.equal(item.price.promo > 0, row.onPromo)
      assert.equal(item.inventory.stockLevel, row.stockLevel)
      assert.equal(kroger:product_url(p), row.url)
      assert.equal("01400376", row.locationId)
      assert.equal(item.fulfillment.curbside, table.concat(row.fulfillment, " "):find("curbside") ~= nil)
    end
    -- The table, for people.
    r = kapi_run {"run", "products", "--term", "milk", "--zip", "45202", "--limit", "3"}
    assert.equal(0, r.status, r.stderr)
    assert.matches("^GTIN +DESCRIPTION +PRICE +PROMO +STOCK +AISLE +FULFILLMENT\n", r.stdout)
    assert.equal(4, #lines(r.stdout))
    assert.matches(kapi.gtin.from_product_id(expected[1].productId) .. "  " .. expected[1].description, r.stdout, 1, true)
    assert.matches("prices and stock at Kroger %- Cincinnati %(01400376%), the store nearest 45202", r.stderr)
  end)

  it("says once how many results the API cannot reach, only when they were asked for", function()
    local r = kapi_run {"run", "products", "--term", "dairy", "--store", "01400376", "--limit", "all", "--csv"}
    assert.equal(0, r.status, r.stderr)
    assert.equal(1 + 1050, #lines(r.stdout))
    local _, warnings = r.stderr:gsub("results cannot be reached", "")
    assert.equal(1, warnings)
    r = kapi_run {"run", "products", "--term", "dairy", "--store", "01400376", "--limit", "30", "--csv"}
    assert.equal(0, r.status, r.stderr)
    assert.equal(31, #lines(r.stdout))
    assert.is_nil(r.stderr:find("cannot be reached", 1, true))
  end)

  it("looks products up by UPC, naming the bad ones", function()
    local p = catalog.products[7]
    local r = kapi_run {"run", "products", "--upc", kapi.gtin.from_product_id(p.productId) .. ",00761111010263", "--json"}
    assert.equal(2, r.status)
    assert.matches('%-%-upc value 2: GTIN "00761111010263" has check digit 3; it should be 4', r.stderr)
    local rows = decode(r)
    assert.equal(1, #rows)
    assert.equal(p.description, rows[1].description)
    assert.equal(json.null, rows[1].regularPrice)
    r = kapi_run {"run", "products", "--term", "mi"}
    assert.equal(2, r.status)
    assert.matches("%-%-term \"mi\": give 3 characters or more", r.stderr)
  end)
end)

describe("the shopper recipes, alike", function()
  it("give a place with no store the same input error: the same words and status everywhere", function()
    for _, args in ipairs {{"stores"}, {"coupons"}, {"products", "--term", "milk"}, {"live-check", "00762111010261"}} do
      local line = {"run", table.unpack(args)}
      line[#line + 1], line[#line + 2] = "--zip", "90210"
      local r = kapi_run(line)
      assert.equal(2, r.status, args[1])
      assert.equal("", r.stdout, args[1])
      assert.matches("\nkapi: %-%-zip 90210: no store within %d+ miles[^\n]*\n$", "\n" .. r.stderr, args[1])
    end
  end)

  it("say that coupons are a partner API when the app is a public one, once, as a setup to do", function()
    local env = user_env()
    env.KROGER_CLIENT_ID, env.KROGER_CLIENT_SECRET, env.KAPI_ENV = "kapi-sandbox-public", "sandbox-public-secret", "sandbox"
    local r = process.kapi_run({"run", "coupons", "--zip", "45202", "-q"}, {env = env})
    assert.equal(2, r.status)
    assert.equal("", r.stdout)
    assert.equal("kapi: coupons are a partner API (Kroger's public API has none): this app is not registered for "
                 .. "the scope coupons.basic; use a partner app (KROGER_PARTNER=1)\n", r.stderr)
    assert.matches("Coupons are a partner API", kapi_run({"run", "coupons", "--help"}).stdout)
  end)

  it("refuse options that contradict each other or have nothing to act on, before anything is sent", function()
    for _, case in ipairs {
      {{"coupons", "--store", "01400376", "--stores", "3"}, "--stores goes with --zip or --near"},
      {{"coupons", "--store", "01400376", "--radius", "50"}, "--radius goes with --zip or --near"},
      {{"coupons", "--clip", "C0001002", "--stores", "3"}, "--clip takes coupon ids alone"},
      {{"coupons", "--clip", "C0001002", "--radius", "3"}, "--clip takes coupon ids alone"},
      {{"stores", "--chain", "KROGER", "--radius", "5"}, "--radius goes with --zip or --near"},
      {{"products", "--term", "milk", "--store", "01400376", "--zip", "45202"}, "give --store or --zip, not both"},
      {{"coupons", "--zip", "45202", "--near", "39.1,-84.5"}, "give one of --zip"},
    } do
      local args = {"run", table.unpack(case[1])}
      local r = kapi_run(args)
      assert.equal(2, r.status, table.concat(args, " "))
      assert.equal("", r.stdout)
      assert.matches("^kapi: " .. case[2]:gsub("%p", "%%%0"), r.stderr)
    end
  end)

  it("hush their notes with --quiet, never an error", function()
    local r = kapi_run {"run", "stores", "--zip", "45202", "--limit", "1", "-q"}
    assert.equal(0, r.status)
    assert.equal("", r.stderr) -- no "using the built-in sandbox" either
    r = kapi_run {"run", "coupons", "--zip", "90210", "--quiet"}
    assert.equal(2, r.status)
    assert.equal("kapi: --zip 90210: no store within 10 miles; try a larger --radius\n", r.stderr)
    -- The changes too, the built-in sandbox's own login included.
    local ga = kapi.gtin.from_product_id(catalog.products[3].productId)
    for _, args in ipairs {{"run", "cart-add", ga, "--apply", "-q"}, {"run", "coupons", "--clip", "C0001002", "--apply", "-q"}} do
      r = kapi_run(args)
      assert.equal(0, r.status, r.stderr)
      assert.equal("", r.stderr, table.concat(args, " "))
    end
  end)

  it("say why they use the built-in sandbox", function()
    local r = kapi_run {"run", "stores", "--zip", "45202", "--limit", "1", "--env", "sandbox"}
    assert.matches("^kapi: using the built%-in sandbox at http://127%.0%.0%.1:%d+ %(%-%-env sandbox%)\n", r.stderr)
    r = kapi_run {"run", "stores", "--zip", "45202", "--limit", "1"}
    assert.matches("^kapi: using the built%-in sandbox at http://127%.0%.0%.1:%d+ %(no credentials configured%)\n", r.stderr)
    -- 1WorldSync credentials alone: production, and no Kroger credentials there.
    local config = process.write(dir .. "/config-1ws.lua", "return {oneworldsync = {app_id = 'a', secret = 'b'}}")
    os.execute("chmod 600 " .. process.quote(config))
    local env = user_env()
    env.KAPI_CONFIG = config
    r = process.kapi_run({"run", "stores", "--zip", "45202"}, {env = env})
    assert.equal(2, r.status)
    assert.equal("kapi: no Kroger credentials for prod: set KROGER_CLIENT_ID and KROGER_CLIENT_SECRET, "
                 .. "or use --env sandbox\n", r.stderr)
  end)

  it("read options as other command lines do: --verbose anywhere, negative numbers as values", function()
    local r = kapi_run {"run", "stores", "--lat", "39.10", "--lon", "-84.51", "--limit", "1", "--json", "--verbose"}
    assert.equal(0, r.status, r.stderr)
    assert.equal("01400376", decode(r)[1].locationId)
    assert.matches("kapi: GET http://127%.0%.0%.1:%d+/v1/locations%?[^\n]* %-> 200", r.stderr)
    -- an option takes one value: what follows it is an argument again
    local live = kapi_run {"run", "live-check", "--store", "01400376", "00762111010261", "--json"}
    assert.equal(0, live.status, live.stderr)
    assert.same({"00762111010261", "01400376"}, {decode(live)[1].gtin, decode(live)[1].locationId})
  end)
end)

describe("kapi run stores", function()
  it("lists the stores near a point with distance, address, phone, hours and departments", function()
    local r = kapi_run {"run", "stores", "--near", "39.1031,-84.5120", "--json"}
    assert.equal(0, r.status, r.stderr)
    local rows = decode(r)
    local expected = kroger:locations {latlong = "39.1031,-84.5120", radius = 10}
    assert.equal(#expected, #rows)
    local first = rows[1]
    assert.same(sorted {"locationId", "name", "chain", "distance", "address", "city", "state", "zipCode", "phone",
                        "latitude", "longitude", "hoursToday", "hours", "departments"}, keys_of(first))
    assert.equal("01400376", first.locationId)
    assert.equal(0, first.distance)
    local s = catalog.store_by_id["01400376"]
    assert.equal(s.address.addressLine1, first.address)
    assert.equal(s.phone, first.phone)
    assert.same(sorted {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"},
                keys_of(first.hours))
    assert.equal(s.hours.monday.open .. "-" .. s.hours.monday.close, first.hours.monday)
    local names = {}
    for i, d in ipairs(s.departments) do names[i] = d.name end
    assert.same(names, first.departments)
    for i = 2, #rows do assert.is_true(rows[i].distance >= rows[i - 1].distance) end
  end)

  it("leaves distance out for a ZIP code, filters by department and chain, and names a bad chain", function()
    local r = kapi_run {"run", "stores", "--zip", "45202", "--department", "09"}
    assert.equal(0, r.status, r.stderr)
    assert.matches("^STORE +NAME +ADDRESS +PHONE +TODAY +DEPARTMENTS\n", r.stdout)
    local expected = kroger:locations {zip = "45202", radius = 10, department = "09"}
    assert.equal(#expected + 1, #lines(r.stdout))
    for _, s in ipairs(expected) do assert.matches(s.locationId .. "  " .. s.name, r.stdout, 1, true) end
    r = kapi_run {"run", "stores", "--chain", "ralphs", "--limit", "3", "--csv"}
    assert.equal(0, r.status, r.stderr)
    local rows = lines(r.stdout)
    assert.equal(4, #rows)
    assert.matches("^locationId,name,chain,distance,", rows[1])
    for i = 2, 4 do assert.matches("^703%d+,Ralphs %- [^,]+,RALPHS,,", rows[i]) end
    r = kapi_run {"run", "stores", "--chain", "piggly"}
    assert.equal(2, r.status)
    assert.matches("kapi: %-%-chain piggly: no such chain %(known: KROGER, RALPHS", r.stderr)
  end)
end)

describe("kapi run cart-add", function()
  it("checks every entry, names the bad ones by argument or FILE:LINE, and plans the rest", function()
    local a, b = catalog.products[1], catalog.products[2]
    local ga, gb = kapi.gtin.from_product_id(a.productId), kapi.gtin.from_product_id(b.productId)
    local file = process.write(dir .. "/cart.txt", ("upc,qty\n%s,2\n# a comment\n\n0001111041700\n%s:x\n")
                                                   :format(gb, ga))
    local r = kapi_run {"run", "cart-add", ga .. ":3", "12345", "00614141000012", "--file", file,
                        "--file", dir .. "/missing.txt", "--json"}
    assert.equal(2, r.status)
    assert.matches('kapi: argument 2: GTIN "12345" has 5 digits', r.stderr)
    assert.matches("kapi: argument 3: GTIN 00614141000012 is not in the Products API; left out", r.stderr)
    assert.matches(file:gsub("%p", "%%%0") .. ':5: GTIN "0001111041700" has check digit 0', r.stderr)
    assert.matches(file:gsub("%p", "%%%0") .. ':6: quantity "x": expected a whole number', r.stderr)
    assert.matches("missing%.txt: No such file or directory", r.stderr)
    assert.matches("dry run: the cart was not changed; add %-%-apply to add 2 products %(5 units%) for PICKUP", r.stderr)
    local rows = decode(r)
    assert.same({ga, gb}, {rows[1].gtin, rows[2].gtin})
    assert.same({3, 2}, {rows[1].quantity, rows[2].quantity})
    assert.same({a.productId, a.description, "PICKUP", "PLANNED"},
                {rows[1].upc, rows[1].description, rows[1].modality, rows[1].status})
    assert.same(sorted {"gtin", "upc", "quantity", "modality", "description", "status"}, keys_of(rows[1]))
    r = kapi_run {"run", "cart-add"}
    assert.equal(2, r.status)
    r = kapi_run {"run", "cart-add", ga, "--modality", "drone"}
    assert.equal(2, r.status)
    assert.matches("%-%-modality drone: expected PICKUP or DELIVERY", r.stderr)
  end)

  it("adds to the cart only with --apply, in one call, after checking the login's scope", function()
    local url, stop = logging_sandbox("cart")
    local ga = kapi.gtin.from_product_id(catalog.products[3].productId)
    local ok, err = pcall(function()
      log_in(url, {"coupon.personalized:rw"})
      local r = kapi_run({"run", "cart-add", ga .. ":2", "--modality", "delivery"}, {sandbox = url})
      assert.equal(0, r.status, r.stderr)
      assert.matches(ga .. " +2 +DELIVERY +PLANNED", r.stdout)
      r = kapi_run({"run", "cart-add", ga .. ":2", "--apply"}, {sandbox = url})
      assert.equal(2, r.status)
      assert.matches("the customer login lacks the scope cart%.basic:write %(it has: coupon%.personalized:rw%); " ..
                     "run: kapi auth login %-%-scope cart%.basic:write", r.stderr)
      log_in(url, {"cart.basic:write"})
      r = kapi_run({"run", "cart-add", ga .. ":2", "--modality", "delivery", "--apply"}, {sandbox = url})
      assert.equal(0, r.status, r.stderr)
      assert.matches(ga .. " +2 +DELIVERY +ADDED", r.stdout)
      assert.matches("added 1 product %(2 units%) to the customer's cart for DELIVERY", r.stderr)
    end)
    local log = stop()
    assert(ok, err)
    local _, puts = log:gsub("PUT /v1/cart/add %-> 204", "")
    assert.equal(1, puts)
  end)

  it("stops before the cart when the login has expired: a step to do first, status 2, never UNKNOWN", function()
    local url, stop = logging_sandbox("expired")
    local ga = kapi.gtin.from_product_id(catalog.products[3].productId)
    local ok, err = pcall(function()
      log_in(url, {"cart.basic:write"})
      -- The refresh token spent elsewhere, the access token run out.
      local r = process.kapi_run({"-e", [[
        local store = require "kapi.auth.store"
        for _, record in ipairs(store.list()) do
          local key = record.key
          record.key, record.refresh_token, record.expires_at = nil, "spent-elsewhere", os.time() - 60
          store.write(key, record)
        end]]}, {env = user_env(url)})
      assert.equal(0, r.status, r.stderr)
      r = kapi_run({"run", "cart-add", ga .. ":2", "--apply", "--json"}, {sandbox = url})
      -- The login is checked before anything is changed.
      assert.equal(2, r.status, r.stderr)
      assert.equal("", r.stdout)
      assert.equal("kapi: the customer login has expired or its refresh token was used elsewhere; "
                   .. "run: kapi auth login --scope cart.basic:write\n", r.stderr)
      assert.is_nil(r.stderr:find("may or may not", 1, true))
    end)
    local log = stop()
    assert(ok, err)
    assert.is_nil(log:find("PUT /v1/cart/add", 1, true))
  end)
end)

describe("kapi run live-check", function()
  -- Products of the catalogue that store 01400376 has, and one it does not.
  local function pick()
    local s = catalog.store_by_id["01400376"]
    local live, absent = {}, nil
    for _, p in ipairs(catalog.products) do
      if carries(catalog, p, s) then
        if #live < 2 then live[#live + 1] = p end
      elseif not absent then absent = p end
      if #live == 2 and absent then break end
    end
    return live, absent
  end

  it("says for each GTIN and store whether it is live, with price and stock", function()
    local live, absent = pick()
    local gtins = {kapi.gtin.from_product_id(live[1].productId), kapi.gtin.from_product_id(absent.productId),
                   "00614141000012", kapi.gtin.from_product_id(live[2].productId)}
    local file = process.write(dir .. "/gtins.txt", "gtin\n" .. gtins[4] .. "\n00614141000013\n")
    local r = kapi_run {"run", "live-check", gtins[1], gtins[2], gtins[3], "--file", file, "--store", "01400376",
                        "--json"}
    assert.equal(2, r.status) -- the bad GTIN in the file
    assert.matches("gtins%.txt:3: GTIN \"00614141000013\" has check digit 3; it should be 2", r.stderr)
    assert.matches("kapi: 2 of 4 live %(4 GTINs at 1 store%); not carried 1, not found 1", r.stderr)
    local rows = decode(r)
    assert.same(sorted {"gtin", "productId", "locationId", "storeName", "live", "status", "description",
                        "regularPrice", "promoPrice", "stockLevel", "url", "error"}, keys_of(rows[1]))
    local status = {}
    for i, row in ipairs(rows) do status[i] = row.gtin .. " " .. row.status .. " " .. tostring(row.live) end
    assert.same({gtins[1] .. " LIVE true", gtins[2] .. " NOT_CARRIED false", gtins[3] .. " NOT_FOUND false",
                 gtins[4] .. " LIVE true"}, status)
    local p = kroger:product(live[1].productId, {locationId = "01400376"})
    assert.equal(p.items[1].price.regular, rows[1].regularPrice)
    assert.equal(p.items[1].inventory.stockLevel, rows[1].stockLevel)
    assert.equal(absent.description, rows[2].description)
    -- Answers, not failures: 0; unless --fail-missing.
    r = kapi_run {"run", "live-check", gtins[1], gtins[2], "--zip", "45202", "--stores", "2"}
    assert.equal(0, r.status, r.stderr)
    assert.equal(1 + 4, #lines(r.stdout))
    assert.matches("^GTIN +STORE +LIVE +STATUS +PRICE +PROMO +STOCK +DESCRIPTION\n", r.stdout)
    r = kapi_run {"run", "live-check", gtins[1], gtins[2], "--store", "01400376", "--fail-missing", "-q"}
    assert.equal(1, r.status)
    assert.equal("", r.stderr:gsub("kapi: using the built%-in sandbox[^\n]*\n", ""))
  end)

  it("asks for a store's chain once if a row links to a product page, else not at all", function()
    local live, absent = pick()
    local function chain_calls(args)
      local r = kapi_run(args)
      assert.equal(0, r.status, r.stderr)
      local n = 0
      for _ in r.stderr:gmatch("GET [^\n]*/v1/chains/") do n = n + 1 end
      return n
    end
    local at_store = {"--verbose", "run", "live-check", "--store", "01400376"}
    local none = {table.unpack(at_store)}
    for _, code in ipairs {kapi.gtin.from_product_id(absent.productId), "00614141000012"} do none[#none + 1] = code end
    assert.equal(0, chain_calls(none))
    local some = {table.unpack(none)}
    for _, p in ipairs(live) do some[#some + 1] = kapi.gtin.from_product_id(p.productId) end
    assert.equal(1, chain_calls(some))
  end)

  it("asks for the stores alongside the first calls, which need none", function()
    -- Every request held 1 s. 350 GTINs at one store are 7 calls without
    -- the store and 7 at it, 8 at a time: with the store's lookup going
    -- along with the first 7, two rounds (2 s); after the lookup, three.
    -- None of these products is at the store, so no row links to a page
    -- and the store's chain is not asked for.
    local at = catalog.store_by_id["01400376"]
    local codes = {}
    for _, p in ipairs(catalog.products) do
      if #codes == 350 then break end
      if not carries(catalog, p, at) then codes[#codes + 1] = kapi.gtin.from_product_id(p.productId) end
    end
    local file = process.write(dir .. "/absent.txt", table.concat(codes, "\n") .. "\n")
    local sandbox = process.sandbox {"--faults", "slow=1:1s"}
    local ok, err = pcall(function()
      local started = kapi.now()
      local r = kapi_run({"run", "live-check", "--file", file, "--store", "01400376", "--json"}, {sandbox = sandbox.url})
      local took = kapi.now() - started
      assert.equal(0, r.status, r.stderr)
      assert.equal(350, #decode(r))
      assert.matches("kapi: 0 of 350 live %(350 GTINs at 1 store%); not carried 350", r.stderr)
      assert.is_true(took < 2.5, ("took %.2f s"):format(took))
    end)
    sandbox.stop()
    assert(ok, err)
  end)

  it("splits a list between shards, every GTIN in exactly one", function()
    local codes = {}
    for i = 1, 12 do codes[i] = kapi.gtin.from_product_id(catalog.products[i].productId) end
    local seen = {}
    for shard = 1, 3 do
      local args = {"run", "live-check", "--shard", shard .. "/3", "--csv"}
      for _, c in ipairs(codes) do args[#args + 1] = c end
      local r = kapi_run(args)
      assert.equal(0, r.status, r.stderr)
      for i, line in ipairs(lines(r.stdout)) do
        if i > 1 then
          local code = line:match("^(%d+),")
          assert.is_nil(seen[code])
          seen[code] = true
        end
      end
    end
    assert.equal(12, #keys_of(seen))
  end)
end)

describe("the shopper recipes under faults", function()
  it("give the same output with 5xx, resets and slow answers as on a clean sandbox", function()
    local sandbox = process.sandbox {"--faults", "5xx=0.15,reset=0.05,slow=0.05:0.05s"}
    local codes = {}
    for i = 1, 60 do codes[i] = kapi.gtin.from_product_id(catalog.products[i * 7].productId) end
    local runs = {
      {"run", "coupons", "--zip", "45202", "--json"},
      {"run", "live-check", "--zip", "45202", "--json", table.unpack(codes)},
      {"run", "products", "--term", "milk", "--store", "01400376", "--limit", "120", "--json"},
    }
    local ok, err = pcall(function()
      for _, args in ipairs(runs) do
        local clean = kapi_run(args)
        local faulty = kapi_run(args, {sandbox = sandbox.url})
        assert.equal(0, clean.status, clean.stderr)
        assert.equal(0, faulty.status, faulty.stderr)
        assert.is_true(#clean.stdout > 1000)
        assert.equal(clean.stdout, faulty.stdout)
      end
    end)
    sandbox.stop()
    assert(ok, err)
  end)

  it("name each call that failed on stderr, also with --quiet, and exit 1", function()
    local sandbox = process.sandbox {"--faults", "5xx=1"}
    local ok, err = pcall(function()
      local r = kapi_run({"run", "live-check", "00011110010018", "00011110010025", "-q", "--json"}, {sandbox = sandbox.url})
      assert.equal(1, r.status, r.stderr)
      assert.matches("^kapi: checking 00011110010018 and 1 more: GET [^\n]*: 500 PRODUCT%-4011%-500", r.stderr)
      assert.same({"ERROR", "ERROR"}, {decode(r)[1].status, decode(r)[2].status})
    end)
    sandbox.stop()
    assert(ok, err)
  end)
end)
