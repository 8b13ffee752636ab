-- kapi.kroger against the sandbox.
local kapi = require "kapi"
local store = require "kapi.auth.store"
local login = require "kapi.auth.login"
local process = require "helpers.process"

local sb, kroger, dir

setup(function()
  dir = process.tempdir()
  store.directory = dir
  sb = kapi.sandbox.start {products = 3000, stores = 60}
  kroger = kapi.kroger.client {env = "sandbox", base_url = sb.url}
end)

teardown(function()
  sb:close()
  store.directory = nil
  process.cleanup(dir)
end)

local function log_in(scopes)
  local done
  return login.login {base_url = sb.url, client_id = "kapi-sandbox", client_secret = "sandbox-secret",
    scopes = scopes, browser = false, timeout = 10, announce = function(line)
      local url = line:match("^%s+(http%S+)$")
      if url and not done then
        done = true
        kapi.spawn(function() kapi.http.get(kapi.http.get(url, {raise = false}).headers.location, {raise = false}) end)
      end
    end}
end

describe("kapi.kroger", function()
  it("searches products at a store, with prices, as an iterator", function()
    local n = 0
    for p in kroger:products {term = "milk", locationId = "01400376", max_items = 12, limit = 5} do
      n = n + 1
      assert.matches("[Mm]ilk", p.description)
      assert.is_number(p.items[1].price.regular)
      assert.is_boolean(p.items[1].fulfillment.inStore)
    end
    assert.equal(12, n)
  end)

  it("gives products without the members asked to be left out, the rest as it is", function()
    local ids = {}
    for i = 1, 20 do ids[i] = sb.state.catalog.products[i].productId end
    local whole = kroger:products {productId = ids, locationId = "01400376"}:all()
    local lean = kroger:products {productId = ids, locationId = "01400376", without = {"images"}}:all()
    assert.is_true(#whole > 10)
    assert.equal(#whole, #lean)
    for i, p in ipairs(whole) do
      assert.is_table(p.images)
      p.images = nil
      assert.same(p, lean[i])
    end
    local ok, err = pcall(kroger.products, kroger, {productId = ids, without = {"images", false}})
    assert.is_false(ok)
    assert.matches("kroger:products: without%[2%] must be a string", tostring(err))
  end)

  it("checks arguments before sending anything, naming them", function()
    local before = sb.state.token_requests or 0
    local cases = {
      {function() kroger:products {term = "milk", locationId = "123"} end, "locationId must be an 8%-character location id"},
      {function() kroger:products {term = "mi"} end, "term must have at least 3 characters"},
      {function() kroger:products {term = "a b c d e f g h i"} end, "term must have 8 words or fewer"},
      {function() kroger:products {term = "milk", limit = 51} end, "limit must be an integer from 1 to 50"},
      {function() kroger:products {} end, "products needs term, productId or brand"},
      {function()
        local ids = {}
        for i = 1, kapi.kroger.MAX_PRODUCT_IDS + 1 do ids[i] = ("%013d"):format(i) end
        kroger:products {productId = ids}
      end, "productId takes at most 50 ids"},
      {function() kroger:product("123") end, "id must be a 13%-digit product id"},
      {function() kroger:locations {zip = "4520"} end, 'zip must be a string of 5 digits, got "4520"'},
      {function() kroger:locations {zip = 45202} end, "zip must be a string of 5 digits, got the number 45202"},
      {function() kroger:location(("1"):rep(500)) end, "got \"1+%.%.%.1+ %(500 characters%)\"$"},
      {function() kroger:cart_add {items = {{upc = "12", quantity = 1}}} end, "items%[1%]%.upc must be 13 digits"},
      {function() kroger:cart_add {items = {{upc = "0001111041700", modality = "DRONE"}}} end, "modality must be PICKUP or DELIVERY"},
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(case[1])
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.matches(case[2], tostring(err))
    end
    assert.equal(before, sb.state.token_requests or 0)
  end)

  it("absorbs the wire's drift from the spec in one place", function()
    local p = kapi.kroger.normalize_product {items = {{fulfillment = {instore = true, shiptohome = false}, soldBy = "unit"}}}
    assert.same({inStore = true, shipToHome = false}, p.items[1].fulfillment)
    assert.equal("UNIT", p.items[1].soldBy)
  end)

  it("finds a product by GTIN and gives its page on the chain's site", function()
    local first = kroger:products {term = "milk", max_items = 1}:all()[1]
    local by_gtin = kroger:product_for_gtin(kapi.gtin.from_product_id(first.productId))
    assert.equal(first.productId, by_gtin.productId)
    assert.matches("^https://www%.kroger%.com/p/.+/" .. first.productId, kroger:product_url(by_gtin))
  end)

  it("finds stores, chains and departments", function()
    local stores = kroger:nearest_stores("45202", 3)
    assert.equal("01400376", stores[1].locationId)
    assert.equal("01400376", kroger:location("01400376").locationId)
    assert.equal("kroger.com", kroger:chain("kroger").domain)
    assert.is_true(#kroger:chains() >= 5)
    assert.equal("Pharmacy", kroger:department("09").name)
  end)

  it("lists coupons for a store", function()
    local coupons = kroger:coupons {locationId = "01400376", max_items = 20}:all()
    assert.is_true(#coupons > 0)
  end)

  it("asks for a login when a customer endpoint needs one", function()
    local ok, err = pcall(kroger.cart_add, kroger, {items = {{upc = "0001111041700"}}})
    assert.is_false(ok)
    assert.matches("run: kapi auth login %-%-scope cart%.basic:write", tostring(err))
  end)

  it("adds to the cart and clips coupons for a logged-in customer", function()
    log_in {"cart.basic:write", "coupon.personalized:rw", "profile.compact"}
    local before = #sb.state.cart
    assert.equal(1, kroger:cart_add {items = {{upc = "00011110417008", quantity = 2}}})
    assert.equal(before + 1, #sb.state.cart)
    assert.equal("0001111041700", sb.state.cart[#sb.state.cart].upc)
    local id = kroger:coupons {max_items = 1}:all()[1].couponId
    assert.equal(id, kroger:clip_coupon(id).couponId)
    assert.equal(id, kroger:my_coupons()[1].couponId)
    assert.equal(sb.state.customer.id, kroger:profile().id)
  end)

  it("keeps partner carts and reads collections and deliveries", function()
    log_in {"cart.basic:rw", "cart.basic", "collection.basic"}
    local kroger = kapi.kroger.client {env = "sandbox", base_url = sb.url} -- logged in before it starts
    local cart = kroger:create_cart()
    kroger:cart_add_item(cart.id, {upc = "0001111041700", quantity = 2})
    kroger:cart_set_quantity(cart.id, "0001111041700", 4)
    assert.equal(4, kroger:cart(cart.id).items[1].quantity)
    kroger:cart_remove_item(cart.id, "0001111041700")
    assert.equal(0, #kroger:cart(cart.id).items)
    assert.equal("Favorites", kroger:collections {type = "FAVORITES"}[1].name)
    local waiting = kroger:deliveries {followingAction = "CONFIRM"}
    assert.equal("CONFIRMED", kroger:confirm_delivery(waiting[1].deliveryId).status)
  end)
end)
