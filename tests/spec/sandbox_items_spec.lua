-- Item publications and CICs in the sandbox: every row of the failure
-- table in domain.md §4, as it stands and as it moves when the supplier
-- acts (publish, republish, resend, fix), with Kroger QA simulated.
local kapi = require "kapi"
local crypto = require "kapi.core.crypto"
local supplier = require "kapi.sandbox.supplier"
local http = kapi.http

local QUEUE, CERTIFIED, PI = "0838016000123", "0838016000116", "0011110000019"
local REVIEW = 0.05

local sb
before_each(function() sb = kapi.sandbox.start {products = 300, stores = 10, review_delay = REVIEW} end)
after_each(function() sb:close() end)

local function call(method, path, body, query)
  local q = {{"timestamp", os.date("!%Y-%m-%dT%H:%M:%SZ")}}
  for k, v in pairs(query or {}) do q[#q + 1] = {k, v} end
  local encoded = http.encode_query(q)
  local hash = crypto.base64(crypto.hmac_sha256("sandbox-hmac-secret", path .. "?" .. encoded))
  return http.request {method = method, url = sb.url .. path .. "?" .. encoded, json = body, raise = false,
                       headers = {appid = "kapisbx1", hashcode = hash}}
end

local function case_gtin(k) return select(2, supplier.gtins(k)) end

local function publication(k, recipient)
  for _, p in ipairs(call("GET", "/items/v1/publications", nil, {gtin = case_gtin(k)}):json().data) do
    if p.recipientGln == (recipient or QUEUE) then return p end
  end
end

local function act(action, k, recipient, extra)
  local body = {gtin = case_gtin(k), recipientGln = recipient or QUEUE}
  for key, v in pairs(extra or {}) do body[key] = v end
  return call("POST", "/items/v1/publications" .. (action == "publish" and "" or "/" .. action), body)
end

local function item(k) return call("GET", "/items/v1/items/" .. case_gtin(k)):json().data end
local function update(k, h) return call("PUT", "/items/v1/items/" .. case_gtin(k), h) end
local function after_review() kapi.sleep(REVIEW * 4) end

describe("the failure table, as the sandbox holds it", function()
  it("PI9001 for data sent to Product Introduction", function()
    local p = publication(8, PI)
    assert.equal("PI9001", p.cicCode)
    assert.matches("^PI9001=You are not enabled at 1WorldSync to send the recipient top%-off data", p.message)
  end)

  it("'failed to send' for MADE_IN, with the Item History message", function()
    local p = publication(7)
    assert.equal("FAILED_TO_SEND", p.syncStatus)
    assert.equal("productActivityTypeCode MADE_IN is invalid.", p.message)
  end)

  it("pending at the certified GLN while the queue publication is rejected", function()
    assert.equal("PENDING", publication(9, CERTIFIED).syncStatus)
    assert.equal("REJECTED", publication(9).cicState)
    assert.matches("^2802 WARNING: On the highest hierarchy level both", publication(9).message)
  end)

  it("rejected for WERCS, in Kroger's words", function()
    local p = publication(6)
    assert.equal("REJECTED", p.cicState)
    assert.matches("not registered in WERCS", p.message)
  end)

  it("R02063 for two front images", function()
    local p = publication(10)
    assert.equal("FAILED_TO_SEND", p.syncStatus)
    assert.matches('R02063: 6 "Product Images" %- Exactly 1 Required Primary Front', p.message)
  end)

  it("PDP guidelines, model GTIN, submitted status, new IMF, each recipient", function()
    assert.matches("does not meet Kroger PDP Guidelines%. Customer Facing Size is missing", publication(4).message)
    assert.matches("^Model GTIN error", publication(5).message)
    assert.equal("ErrorCode:null; Error:ITEM FOUND IN SUBMITTED STATUS", publication(11).message)
    assert.equal("PI9001", publication(11, PI).cicCode)
    assert.matches("a new IMF was requested", publication(12).message)
    assert.matches("Product Introduction GLN 0011110000019 as a recipient", publication(13).message)
  end)

  it("waiting, overdue and done", function()
    local waiting, overdue = publication(2), publication(3)
    assert.equal("", waiting.cicState)
    assert.equal("", overdue.cicState)
    assert.is_true(waiting.publishedAt > overdue.publishedAt)
    assert.equal("SYNCHRONISED", publication(1).cicState)
    assert.equal("INITIAL_LOAD", publication(1, CERTIFIED).publicationType)
  end)
end)

describe("the QA review when the supplier acts", function()
  it("synchronises a fixed item on republish, then publishes it to the certified GLN", function()
    local res = act("republish", 5)
    assert.equal(200, res.status)
    assert.equal("", res:json().data.cicState)
    after_review()
    assert.equal("SYNCHRONISED", publication(5).cicState)
    local certified = publication(5, CERTIFIED)
    assert.equal("INITIAL_LOAD", certified.publicationType)
    assert.equal("SYNCHRONISED", certified.syncStatus)
  end)

  it("rejects an unfixed item again on republish", function()
    act("republish", 4)
    after_review()
    local p = publication(4)
    assert.equal("REJECTED", p.cicState)
    assert.matches("Customer Facing Size is missing", p.message)
  end)

  it("does not review a rejected item again until it is republished", function()
    local h = item(4)
    h.children[1].customerFacingSize = "12 oz"
    assert.equal(204, update(4, h).status)
    act("resend", 4, nil, {reason = "fixed the size"})
    after_review()
    assert.equal("REJECTED", publication(4).cicState)
    act("republish", 4)
    after_review()
    assert.equal("SYNCHRONISED", publication(4).cicState)
  end)

  it("clears a WERCS rejection with a resend once registered", function()
    assert.equal(200, act("resend", 6, nil, {reason = "WERCS registration complete"}).status)
    after_review()
    assert.equal("SYNCHRONISED", publication(6).cicState)
  end)

  it("lets a publication that failed to send flow once the item is fixed, without a republish", function()
    local h = item(7)
    h.productActivityTypeCode = "LAST_PROCESSING"
    update(7, h)
    assert.equal("SYNCHRONISED", publication(7).syncStatus)
    after_review()
    assert.equal("SYNCHRONISED", publication(7).cicState)
  end)

  it("releases the pending certified publication when the queue synchronises", function()
    local h = item(9)
    h.nonGTINPalletTi, h.nonGTINPalletHi = h.gtinPalletTi, h.gtinPalletHi
    h.nonGTINPalletQuantity = h.nonGTINPalletTi * h.nonGTINPalletHi
    h.gtinPalletTi, h.gtinPalletHi = nil, nil
    update(9, h)
    act("republish", 9)
    after_review()
    assert.equal("SYNCHRONISED", publication(9, CERTIFIED).syncStatus)
  end)

  it("answers PI9001 to a new publication to Product Introduction", function()
    assert.equal(201, act("publish", 20, PI).status)
    assert.equal("PI9001", publication(20, PI).cicCode)
  end)

  it("holds a publication to the certified GLN until the queue has synchronised", function()
    act("publish", 21, CERTIFIED)
    assert.equal("PENDING", publication(21, CERTIFIED).syncStatus)
    act("publish", 21)
    after_review()
    assert.equal("SYNCHRONISED", publication(21).cicState)
    assert.equal("SYNCHRONISED", publication(21, CERTIFIED).syncStatus)
  end)
end)

describe("the item API", function()
  it("works a slow answer out halfway through the delay, and holds it until the delay is up", function()
    -- As a server across a slow link: the request reaches it halfway, and
    -- requests held together are answered together, not each after the
    -- others had been worked out.
    local path = "/items/v1/publications"
    local q = http.encode_query {{"timestamp", os.date("!%Y-%m-%dT%H:%M:%SZ")}}
    local hash = crypto.base64(crypto.hmac_sha256("sandbox-hmac-secret", path .. "?" .. q))
    local started = kapi.now()
    local slow = kapi.spawn(http.request, {method = "POST", url = sb.url .. path .. "?" .. q, raise = false,
                                           json = {gtin = case_gtin(23), recipientGln = QUEUE},
                                           headers = {appid = "kapisbx1", hashcode = hash, ["X-Sandbox-Fault"] = "slow:0.6"}})
    kapi.sleep(0.1)
    assert.is_nil(publication(23)) -- on its way
    kapi.sleep(0.35)
    assert.is_table(publication(23)) -- done, the answer still on its way back
    local res = slow:wait()
    assert.is_true(kapi.now() - started >= 0.6)
    assert.equal(201, res.status)
    assert.equal("application/json", res.headers["content-type"])
    assert.equal(case_gtin(23), res:json().data.gtin)
  end)

  it("publishes the top level only, once; republishes; withdraws", function()
    local each = supplier.gtins(22)
    local res = call("POST", "/items/v1/publications", {gtin = each, recipientGln = QUEUE})
    assert.equal(400, res.status)
    assert.equal("NOT_TOP_LEVEL", res:json().errors.code)
    assert.equal(201, act("publish", 22).status)
    assert.equal(409, act("publish", 22).status)
    assert.equal(404, act("republish", 23).status)
    assert.equal(204, act("withdraw", 22).status)
    assert.is_nil(publication(22))
    assert.equal(404, call("GET", "/items/v1/items/19999999999999").status)
  end)

  it("gives and takes hierarchies in the item format", function()
    local h = item(1)
    assert.equal("10614141000019", h.gtin)
    assert.equal("CASE", h.level)
    assert.equal("BASE_UNIT_OR_EACH", h.children[1].level)
    assert.equal(400, update(1, {gtin = "1"}).status)
  end)

  it("shows a saved change in Content1's pages, which are kept between calls", function()
    local function fetched_each(k)
      local gtin = supplier.gtins(k)
      local res = call("POST", "/V1/product/fetch", {ipGln = supplier.suppliers[1].gln}, {pageSize = "1000"})
      for _, record in ipairs(res:json().items) do
        if record.item.gtin == gtin then return record.item end
      end
    end
    local before = fetched_each(1)
    assert.equal("LAST_PROCESSING", before.productActivityTypeCode)
    assert.same(before, fetched_each(1))                  -- the kept page is the same page
    local h = item(1)
    h.children[1].productActivityTypeCode = "MADE_IN"
    assert.equal(204, update(1, h).status)
    assert.equal("MADE_IN", fetched_each(1).productActivityTypeCode)
    assert.equal("LAST_PROCESSING", fetched_each(4).productActivityTypeCode) -- the supplier's others as they were
  end)

  it("gives the publications of up to 50 GTINs in one call, as one call each gives them, and refuses more", function()
    local gtins, one_by_one = {}, {}
    for k = 1, 50 do
      gtins[k] = case_gtin(k)
      for _, p in ipairs(call("GET", "/items/v1/publications", nil, {gtin = gtins[k]}):json().data) do
        one_by_one[#one_by_one + 1] = p
      end
    end
    local res = call("GET", "/items/v1/publications", nil, {gtin = table.concat(gtins, ",")})
    assert.equal(200, res.status)
    assert.equal(#call("GET", "/items/v1/publications"):json().data, #one_by_one) -- the table's cases are among them
    table.sort(one_by_one, function(a, b) -- the order of every list of publications
      if a.gtin ~= b.gtin then return a.gtin < b.gtin end
      return a.recipientGln < b.recipientGln
    end)
    assert.same(one_by_one, res:json().data)
    gtins[51] = case_gtin(51)
    res = call("GET", "/items/v1/publications", nil, {gtin = table.concat(gtins, ",")})
    assert.equal(400, res.status)
    assert.equal("TOO_MANY_GTINS", res:json().errors.code)
  end)

  it("is asked for a long list of GTINs 50 to a call by items:publications_of", function()
    local im = kapi.items.client {env = "sandbox", base_url = sb.url}
    local gtins, calls = {}, {}
    for k = 1, 120 do gtins[k] = case_gtin(k) end
    gtins[121], gtins[122] = "00614141999996", gtins[1] -- published nowhere; given twice
    local request = http.request
    http.request = function(req)
      if req.url:find("/items/v1/publications", 1, true) then calls[#calls + 1] = req.query.gtin end
      return request(req)
    end
    local ok, found, failures = pcall(im.publications_of, im, gtins)
    http.request = request
    assert.is_true(ok, found)
    assert.same({}, failures)
    assert.equal(3, #calls) -- 121 distinct GTINs
    for k = 1, 120 do assert.same(im:publications {gtin = gtins[k]}, found[gtins[k]], gtins[k]) end
    assert.same({}, found["00614141999996"])

    -- A call that fails names its GTINs, and they have no entry.
    local function fail_for_the_second(req)
      if req.query and req.query.gtin and req.query.gtin:find(gtins[51], 1, true) then
        error(kapi.errors.new("network", "connection reset"), 0)
      end
      return request(req)
    end
    http.request = fail_for_the_second
    ok, found, failures = pcall(im.publications_of, im, gtins)
    http.request = request
    assert.is_true(ok, found)
    assert.equal(1, #failures)
    assert.equal(gtins[51] .. " and 49 more", failures[1].where)
    assert.equal(50, #failures[1].gtins)
    assert.is_nil(found[gtins[51]])
    assert.is_table(found[gtins[1]])
    assert.is_table(found[gtins[101]])

    -- An answer whose body has no data names no publication: that is no
    -- failed call. each sees every call's records; its own error is
    -- raised as it is, not taken for a failed call.
    http.request = function(req)
      local res = request(req)
      if req.url:find("/items/v1/publications", 1, true) then res.body, res._json = "{}", nil end
      return res
    end
    local seen = 0
    ok, found, failures = pcall(im.publications_of, im, {gtins[1], gtins[2]}, {each = function(records)
      seen = seen + 1
      assert.same({}, records)
    end})
    http.request = request
    assert.is_true(ok, found)
    assert.same({}, failures)
    assert.same({}, found[gtins[1]])
    assert.equal(1, seen)
    ok, found = pcall(im.publications_of, im, gtins, {each = function() error("a bug in each", 0) end})
    assert.is_false(ok)
    assert.equal("a bug in each", found)
  end)

  it("gives as unread, with why, an item whose answer holds none", function()
    local cert = require "kapi.certification"
    local im = kapi.items.client {env = "sandbox", base_url = sb.url}
    local rejected = im:publications() -- the sandbox's table: some verdicts look at the item
    local request = http.request
    http.request = function(req)
      local res = request(req)
      if req.url:find("/items/v1/items/", 1, true) then res.body, res._json = "{}", nil end
      return res
    end
    local ok, rows, unread = pcall(cert.assess, rejected, im)
    http.request = request
    assert.is_true(ok, rows)
    local looked = 0
    for _, row in ipairs(rows) do
      if unread[row.gtin] then
        looked = looked + 1
        assert.equal("the answer holds no item", tostring(unread[row.gtin]))
      end
    end
    assert.is_true(looked > 0, "no verdict of these publications looked at the item")
  end)

  it("reads a field given as null as a field not given", function()
    local cert = require "kapi.certification"
    local im = kapi.items.client {env = "sandbox", base_url = sb.url}
    local clean = cert.assess(im:publications(), im)
    local request = http.request
    http.request = function(req)
      local res = request(req)
      if req.url:find("/items/v1/publications", 1, true) then
        res.body, res._json = res.body:gsub('"(%w+)":""', '"%1":null'), nil
      end
      return res
    end
    local ok, records = pcall(im.publications, im)
    local assessed, rows = pcall(cert.assess, ok and records or {}, im)
    assert.is_true(ok, records)
    assert.is_true(assessed, rows)
    for i, row in ipairs(clean) do assert.equal(row.verdict, rows[i].verdict, row.gtin) end
    -- No message at all, rejections included: still one verdict each.
    http.request = function(req)
      local res = request(req)
      if req.url:find("/items/v1/publications", 1, true) then
        local page = kapi.json.decode(res.body)
        for _, r in ipairs(page.data) do r.message = kapi.json.null end
        res.body, res._json = kapi.json.encode(page), nil
      end
      return res
    end
    ok, records = pcall(im.publications, im)
    assessed, rows = pcall(cert.assess, ok and records or {}, im)
    http.request = request
    assert.is_true(ok, records)
    assert.is_true(assessed, rows)
    assert.equal(#clean, #rows)
  end)

  it("requires the HMAC signature", function()
    local res = http.get(sb.url .. "/items/v1/publications", {raise = false})
    assert.equal(401, res.status)
    assert.equal("REQUIRED_HEADER_APPID_MISSING", res:json().code)
  end)
end)
