-- kapi.paginate over the sandbox's real endpoints, with and without faults.
local kapi = require "kapi"
local http = kapi.http

local function products(sb, opts)
  opts = opts or {}
  local auth = kapi.auth.service {base_url = sb.url, client_id = opts.client or "kapi-sandbox",
    client_secret = opts.secret or "sandbox-secret", scopes = {"product.compact"}, persist = false}
  local pages = 0
  local it = kapi.paginate.offset {
    limit = opts.limit or 50, max_offset = opts.max_offset, prefetch = opts.prefetch,
    max_items = opts.max_items, on_unreachable = opts.on_unreachable,
    fetch = function(start, limit)
      pages = pages + 1
      local page = http.get(sb.url .. "/v1/products", {auth = auth, query = {
        ["filter.term"] = opts.term or "dairy", ["filter.start"] = start, ["filter.limit"] = limit}}):json()
      return page.data, page.meta.pagination.total
    end,
  }
  local ids = {}
  for p in it do ids[#ids + 1] = p.productId end
  return ids, pages, it
end

local function content1_items(sb, page_size)
  local signer = kapi.auth.oneworldsync {app_id = "kapisbx1", secret = "sandbox-hmac-secret"}
  local ids = {}
  for record in kapi.paginate.cursor {fetch = function(cursor)
    local res = http.post(sb.url .. "/V1/product/fetch", {auth = signer, retry = true,
      query = {{"pageSize", tostring(page_size)}}, json = {searchAfter = cursor}})
    if res.status == 204 then return {}, nil end
    local body = res:json()
    return body.items, body.searchAfter, body.totalCount
  end} do ids[#ids + 1] = record.item.gtin end
  return ids
end

describe("kapi.paginate", function()
  local sb
  setup(function() sb = kapi.sandbox.start {products = 3000, stores = 20, items = 1200} end)
  teardown(function() sb:close() end)

  it("gives every item once, in order, with or without prefetching", function()
    local prefetched = products(sb, {max_offset = 1000})
    local sequential = products(sb, {max_offset = 1000, prefetch = false})
    assert.is_true(#prefetched > 100)
    assert.same(sequential, prefetched)
    local seen = {}
    for _, id in ipairs(prefetched) do
      assert.is_nil(seen[id])
      seen[id] = true
    end
  end)

  it("says once how many results the endpoint's offset limit hides", function()
    local hidden
    local ids = products(sb, {limit = 10, max_offset = 20, on_unreachable = function(n) hidden = n end})
    assert.equal(30, #ids)
    local all = products(sb, {max_offset = 1000})
    assert.equal(#all - 30, hidden)
  end)

  it("stops at max_items", function()
    local ids = products(sb, {max_offset = 1000, max_items = 7})
    assert.equal(7, #ids)
  end)

  it("pages Content1 with its cursor: no gaps, no duplicates", function()
    local ids = content1_items(sb, 100)
    assert.equal(1200, #ids)
    for i = 2, #ids do assert.is_true(ids[i - 1] < ids[i]) end
  end)

  it("raises on a failing page, saying how far it got", function()
    local n = 0
    local it = kapi.paginate.offset {limit = 10, fetch = function(start)
      n = n + 1
      if start >= 20 then error(kapi.errors and "boom" or "boom") end
      local items = {}
      for i = 1, 10 do items[i] = start + i end
      return items, 50
    end}
    local got = {}
    local ok, err = pcall(function() for x in it do got[#got + 1] = x end end)
    assert.is_false(ok)
    assert.equal(20, #got)
    assert.matches("boom %(after 20 items, on page 3%)", tostring(err))
  end)

  it("fetches ahead in a bounded window, delivering in order", function()
    local in_flight, peak = 0, 0
    local it = kapi.paginate.offset {limit = 5, concurrency = 3, fetch = function(start, limit)
      in_flight = in_flight + 1
      peak = math.max(peak, in_flight)
      kapi.sleep(0.01 * ((start // limit) % 3))
      in_flight = in_flight - 1
      local items = {}
      for i = 1, limit do items[i] = start + i end
      return items, 100
    end}
    local all = it:all()
    assert.equal(100, #all)
    for i = 1, 100 do assert.equal(i, all[i]) end
    assert.is_true(peak <= 3 and peak >= 2, "peak " .. peak)
  end)

  it("stops fetching ahead when the loop is left early", function()
    local fetched = 0
    for x in kapi.paginate.offset {limit = 5, concurrency = 4, fetch = function(start, limit)
      fetched = fetched + 1
      kapi.sleep(0.02)
      local items = {}
      for i = 1, limit do items[i] = start + i end
      return items, 1000
    end} do
      if x == 3 then break end
    end
    kapi.sleep(0.1)
    assert.is_true(fetched <= 3, fetched .. " pages fetched")
  end)

  it("follows Link headers", function()
    local srv <close> = kapi.server.listen {handler = function(req)
      local page = tonumber(req.query.page or "1")
      local headers = page < 3 and {Link = ("<%s/?page=%d>; rel=\"next\""):format(req.headers.host and
        ("http://" .. req.headers.host) or "", page + 1)} or {}
      return {headers = headers, json = {page * 10 + 1, page * 10 + 2}}
    end}
    local items = kapi.paginate.link {url = srv.url .. "/", fetch = function(url)
      local res = http.get(url)
      return res:json(), res
    end}:all()
    assert.same({11, 12, 21, 22, 31, 32}, items)
  end)
end)

describe("kapi.paginate under injected faults", function()
  it("gives the same items as a fault-free run", function()
    local clean <close> = kapi.sandbox.start {products = 3000, stores = 20, items = 1200, seed = 3}
    local faulty <close> = kapi.sandbox.start {products = 3000, stores = 20, items = 1200, seed = 3,
                                               faults = "5xx=0.15,reset=0.05,slow=0.05:0.05s"}
    local saved = http.defaults.backoff_base
    http.defaults.backoff_base = 0.01
    local a, b = products(clean, {max_offset = 1000}), products(faulty, {max_offset = 1000})
    local c, d = content1_items(clean, 100), content1_items(faulty, 100)
    http.defaults.backoff_base = saved
    assert.same(a, b)
    assert.same(c, d)
  end)
end)
