-- kapi.paginate over the sandbox's real endpoints, with and without faults.
local kapi = require "kapi"
local http = kapi.http

local function products(sb, opts)
  opts = opts or {}
  local auth = kapi.auth.service {base_url = sb.url, client_id = opts.client or "kapi-sandbox",
    client_secret = opts.secret or "sandbox-secret", scopes = {"product.basic"}, persist = false}
  local pages = 0
  local it = kapi.paginate.offset {
    limit = opts.limit or 50, max_offset = opts.max_offset, prefetch = opts.prefetch,
    max_items = opts.max_items, on_unreachable = opts.on_unreachable,
    fetch = function(start, limit)
      pages = pages + 1
      local page = http.get(sb.url .. "/v1/products", {auth = auth, query = {
        ["filter.term"] = opts.term or "dairy", ["filter.start"] = start > 0 and start or nil, ["filter.limit"] = limit}}):json()
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

  it("asks for no page after the one that brings the total", function()
    local asked = 0
    local got = kapi.paginate.cursor {fetch = function(cursor)
      asked = asked + 1
      local from = cursor and cursor[1] or 0
      if from >= 4 then return {}, nil, 4 end -- the empty answer after the last page
      return {from + 1, from + 2}, {from + 2}, 4
    end}:all()
    assert.same({1, 2, 3, 4}, got)
    assert.equal(2, asked)
  end)

  it("fetches a page not fetched ahead in the caller's own task", function()
    local caller, in_caller = kapi.running(), {}
    local got = kapi.paginate.offset {limit = 2, prefetch = false, fetch = function(start)
      in_caller[#in_caller + 1] = kapi.running() == caller
      return {start + 1, start + 2}, 4
    end}:all()
    assert.same({1, 2, 3, 4}, got)
    assert.same({true, true}, in_caller)
    in_caller = {}
    kapi.paginate.offset {limit = 2, fetch = function(start)
      in_caller[#in_caller + 1] = kapi.running() == caller
      return {start + 1, start + 2}, 4
    end}:all()
    assert.same({true, false}, in_caller) -- the second page was fetched ahead, in a task of its own
  end)

  it("sends a cursor's next request before the caller works through the page it has", function()
    local asked_at, page_done_at = {}, nil
    local it = kapi.paginate.cursor {fetch = function(cursor)
      asked_at[#asked_at + 1] = kapi.now()
      kapi.sleep(0.05) -- the link
      local from = cursor and cursor[1] or 0
      return {from + 1, from + 2}, {from + 2}, 4
    end}
    for x in it do
      if x == 2 then
        local busy_until = os.clock() + 0.03 -- checking the first page, without a wait
        while os.clock() < busy_until do end
        page_done_at = kapi.now()
      end
    end
    assert.equal(2, #asked_at)
    assert.is_true(asked_at[2] < page_done_at, "the second page was asked for only after the first was worked through")
  end)

  it("converts a cursor's page once the next page's request has gone", function()
    local events = {}
    local got = kapi.paginate.cursor {
      fetch = function(cursor)
        local from = cursor and cursor[1] or 0
        events[#events + 1] = "ask " .. (from // 2 + 1)
        return {from + 1, from + 2}, {from + 2}, 4
      end,
      convert = function(n)
        events[#events + 1] = "convert " .. n
        return n * 10
      end,
    }:all()
    assert.same({10, 20, 30, 40}, got)
    assert.same({"ask 1", "ask 2", "convert 1", "convert 2", "convert 3", "convert 4"}, events)
    -- A convert that fails is named with the page, as a fetch that fails is.
    local ok, err = pcall(function()
      kapi.paginate.cursor {fetch = function(cursor)
        local from = cursor and cursor[1] or 0
        return {from + 1, from + 2}, {from + 2}, 4
      end, convert = function(n) if n == 3 then error("bad item", 0) end return n end}:all()
    end)
    assert.is_false(ok)
    assert.matches("bad item %(after 2 items, on page 2%)", tostring(err))
    assert.has_error(function() kapi.paginate.cursor {fetch = function() end, convert = 1} end,
                     "paginate.cursor: convert must be a function or nil, got number")
  end)

  it("makes a later page's items once the next page's request has gone", function()
    local events = {}
    local got = kapi.paginate.cursor {
      fetch = function(cursor)
        local from = cursor and cursor[1] or 0
        events[#events + 1] = "ask " .. (from // 2 + 1)
        return kapi.paginate.later(2, function()
          events[#events + 1] = "make " .. (from // 2 + 1)
          return {from + 1, from + 2}
        end), {from + 2}, 4
      end,
      convert = function(n) return n * 10 end,
    }:all()
    assert.same({10, 20, 30, 40}, got)
    assert.same({"ask 1", "ask 2", "make 1", "make 2"}, events)
    -- A page of none ends it; a make that gives other than it said is named.
    assert.same({}, kapi.paginate.cursor {fetch = function()
      return kapi.paginate.later(0, function() return {} end), {"more"}
    end}:all())
    local ok, err = pcall(function()
      kapi.paginate.cursor {fetch = function() return kapi.paginate.later(2, function() return {1} end) end}:all()
    end)
    assert.is_false(ok)
    assert.matches("paginate.later: make%(%) gave 1 items, expected a list of the 2 items said %(after 0 items, on page 1%)",
                   tostring(err))
    assert.has_error(function() kapi.paginate.later(-1, print) end,
                     "paginate.later: n must be a whole number of at least 0, got -1")
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

  it("asks for no more than max_items needs: pages of that size, none fetched beyond", function()
    local asked = {}
    local it = kapi.paginate.offset {limit = 50, max_items = 3, fetch = function(start, limit)
      asked[#asked + 1] = ("%d+%d"):format(start, limit)
      local items = {}
      for i = 1, limit do items[i] = start + i end
      return items, 1000
    end}
    assert.same({1, 2, 3}, it:all())
    kapi.sleep(0.05)
    assert.same({"0+3"}, asked) -- one page of 3, not four of 50
    asked = {}
    assert.same({}, kapi.paginate.offset {max_items = 0, fetch = function() asked[1] = 1; return {}, 0 end}:all())
    assert.same({}, asked)
  end)

  it("goes on to the next page when pages come shorter than asked, with max_items", function()
    -- A service may answer fewer items than filter.limit while its total
    -- says more remain: the page max_items would not need with full pages
    -- is fetched all the same (it once indexed a task never started).
    local asked = {}
    local got = kapi.paginate.offset {limit = 5, max_items = 5, fetch = function(start, limit)
      asked[#asked + 1] = ("%d+%d"):format(start, limit)
      return {start + 1, start + 2}, 100
    end}:all()
    assert.same({1, 2, 6, 7, 11}, got)
    assert.same({"0+5", "5+5", "10+5"}, asked)
  end)

  it("says results are out of reach only when they were wanted", function()
    local said = 0
    local function run(max_items)
      return kapi.paginate.offset {limit = 10, max_offset = 20, max_items = max_items,
        on_unreachable = function() said = said + 1 end, fetch = function(start, limit)
          local items = {}
          for i = 1, limit do items[i] = start + i end
          return items, 500
        end}:all()
    end
    assert.equal(5, #run(5))
    assert.equal(0, said)
    assert.equal(30, #run(nil))
    assert.equal(1, said)
  end)

  it("never gives the same item twice in one iteration when the order moves between pages", function()
    -- A fuzzy search re-ranked between requests: page 2 repeats an item of page 1.
    local pages = {{"a", "b", "c"}, {"c", "d", "e"}, {"f", "g"}}
    local got = kapi.paginate.offset {limit = 3, unique = function(x) return x end, fetch = function(start)
      return pages[start // 3 + 1] or {}, 8
    end}:all()
    assert.same({"a", "b", "c", "d", "e", "f", "g"}, got)
  end)

  it("stops a cursor the service repeats or leaves out while it claims more, handing out what came", function()
    local function cursor_run(page)
      local got = {}
      local ok, err = pcall(function()
        for x in kapi.paginate.cursor {fetch = function(cursor)
          return page(cursor)
        end} do got[#got + 1] = x end
      end)
      return got, ok, err
    end
    local got, ok, err = cursor_run(function(cursor)
      return {cursor and 3 or 1, 2}, {"same"}, 10
    end)
    assert.is_false(ok)
    assert.same({1, 2, 3, 2}, got)
    assert.matches("the service sent the searchAfter of an earlier page again", tostring(err))
    got, ok, err = cursor_run(function() return {1, 2}, kapi.json.array(), 10 end)
    assert.is_false(ok)
    assert.same({1, 2}, got)
    assert.matches("the service sent no searchAfter, but counts 10 items and 2 have come", tostring(err))
    -- No cursor and nothing more claimed: the end, as it should be.
    got, ok = cursor_run(function() return {1, 2}, "", 2 end)
    assert.is_true(ok)
    assert.same({1, 2}, got)
    -- A cursor that never stops, new each time: the page guard ends it.
    local saved = kapi.paginate.MAX_CURSOR_PAGES
    kapi.paginate.MAX_CURSOR_PAGES = 5
    local n = 0
    got, ok, err = cursor_run(function() n = n + 1; return {n}, {n} end)
    kapi.paginate.MAX_CURSOR_PAGES = saved
    assert.is_false(ok)
    assert.same({1, 2, 3, 4, 5}, got)
    assert.matches("stopped after 5 pages with more to come", tostring(err))
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
    -- No response (nil), as its doc allows: no next page.
    assert.same({1, 2}, kapi.paginate.link {url = "first", fetch = function() return {1, 2}, nil end}:all())
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
