-- kapi.content1 and kapi.items against the sandbox, and report files.
local kapi = require "kapi"
local process = require "helpers.process"

local sb, c1, im
setup(function()
  sb = kapi.sandbox.start {products = 300, stores = 10, items = 900, review_delay = 0.05}
  c1 = kapi.content1.client {env = "sandbox", base_url = sb.url}
  im = kapi.items.client {env = "sandbox", base_url = sb.url}
end)
teardown(function() sb:close() end)

local function without(t, keys)
  local out = {}
  for k, v in pairs(t) do if not keys[k] then out[k] = v end end
  return out
end

describe("kapi.content1 on answers the spec allows", function()
  it("assembles hierarchies when records have no GTIN, and stops at an empty searchAfter", function()
    -- Spec-valid (every field is optional): an item with no gtin, a
    -- hierarchy record with no gtin, and an empty searchAfter at the end.
    local srv <close> = kapi.server.listen {handler = function(req)
      local body = req.json()
      if req.path == "/V1/product/hierarchy" then
        return {json = {hierarchies = {{hierarchy = {{children = {{quantity = "2"}}}}}}}}
      end
      if body.searchAfter then return {status = 204} end
      return {json = {totalCount = 3, searchAfter = kapi.json.array(), items = {
        {item = {gtin = "10614141000019", tradeItemUnitDescriptorCode = "CASE",
                 childTradeItem = {{gtin = "00614141000012"}, {quantity = 1}}}},
        {item = {gtin = "00614141000012", tradeItemUnitDescriptorCode = "BASE_UNIT_OR_EACH"}},
        {item = {tradeItemUnitDescriptorCode = "CASE"}},
      }}}
    end}
    local c = kapi.content1.client {base_url = srv.url, app_id = "a", secret = "b"}
    local tops = c:hierarchies {}
    assert.equal(1, #tops)
    assert.equal("10614141000019", tops[1].gtin)
    assert.equal("00614141000012", tops[1].children[1].gtin)
    assert.is_nil(c:hierarchy("10614141000019")) -- its top record names no GTIN: not found
  end)

  it("takes a negative totalCount as no count, not as its caller's mistake", function()
    -- The spec types totalCount as any integer; one below zero once made
    -- the iterator raise "fetch returned -3 as the total" (a usage error).
    local srv <close> = kapi.server.listen {handler = function(req)
      if req.json().searchAfter then return {status = 204} end
      return {json = {totalCount = -3, searchAfter = {"00614141000012", "US"},
                      items = {{item = {gtin = "00614141000012"}}}}}
    end}
    local c = kapi.content1.client {base_url = srv.url, app_id = "a", secret = "b"}
    local got = c:fetch({}):all()
    assert.equal(1, #got)
    assert.equal("00614141000012", got[1].gtin)
  end)
end)

describe("kapi.content1", function()
  it("counts and fetches items in the item format, paging with the cursor", function()
    assert.equal(900, c1:count())
    local n, levels = 0, {}
    for item in c1:fetch(nil, {page_size = 100}) do
      n = n + 1
      levels[item.level] = (levels[item.level] or 0) + 1
      assert.is_string(item.informationProviderGln)
      assert.is_nil(item.tradeItemUnitDescriptorCode)
    end
    assert.equal(900, n)
    assert.equal(450, levels.CASE)
    assert.equal(450, levels.BASE_UNIT_OR_EACH)
  end)

  it("assembles a whole hierarchy that matches Item Management's", function()
    local from_content1 = c1:hierarchy("10614141000019")
    local from_im = im:item("10614141000019")
    local ignore = {lastModified = true, children = true}
    assert.same(without(from_im, ignore), without(from_content1, ignore))
    assert.same(without(from_im.children[1], ignore), without(from_content1.children[1], ignore))
    assert.is_nil(c1:hierarchy("19999999999999"))
  end)

  it("checks its arguments", function()
    assert.has_error(function() c1:fetch(nil, {page_size = 1001}) end)
    assert.has_error(function() c1:count("gtin") end)
  end)
end)

describe("kapi.items", function()
  it("lists publications in the publication-record format", function()
    local pubs = im:publications {recipientGln = "0838016000123"}
    assert.is_true(#pubs >= 10)
    for _, p in ipairs(pubs) do
      for _, field in ipairs(kapi.items.FIELDS) do assert.is_not_nil(p[field], field) end
    end
  end)

  it("republishes and sees the review's outcome", function()
    im:republish("10845678000023", "0838016000123") -- fixed since its rejection
    kapi.sleep(0.25)
    local p = im:publications {gtin = "10845678000023", recipientGln = "0838016000123"}[1]
    assert.equal("SYNCHRONISED", p.cicState)
  end)

  it("reads exported reports by column name or the report's labels, naming bad rows", function()
    local dir = process.tempdir()
    local path = process.write(dir .. "/sync.csv", table.concat({
      'GTIN,Recipient GLN,Publication Type,Sync Status,CIC Status,CIC Reason Code,CIC Message',
      '10614141000026,0838016000123,NEW,Synchronised,REJECTED,CIC999,"This item does not meet Kroger PDP Guidelines, see ""size"""',
      'not-a-gtin,0838016000123,NEW,Pending,,,',
      '10614141000033,0838016000123,NEW,failed to send,,,"productActivityTypeCode MADE_IN is invalid."',
      '',
    }, "\r\n"))
    local records, problems = kapi.items.read_report(path)
    process.cleanup(dir)
    assert.equal(2, #records)
    assert.equal("10614141000026", records[1].gtin)
    assert.equal("REJECTED", records[1].cicState)
    assert.equal('This item does not meet Kroger PDP Guidelines, see "size"', records[1].message)
    assert.equal("10614141000033", records[2].gtin)
    assert.equal("FAILED_TO_SEND", records[2].syncStatus)
    assert.equal(1, #problems)
    assert.matches('sync%.csv:3: GTIN "not%-a%-gtin" has a non%-digit', problems[1])
  end)

  it("splits CSV as RFC 4180 says, lines counted inside quotes", function()
    local function rows(text, opts)
      local out = {}
      for row, line, unclosed in kapi.csv.rows(text, opts) do out[#out + 1] = {line, unclosed or nil, row} end
      return out
    end
    assert.same({{1, nil, {"a", "b"}}, {2, nil, {"1", "2"}}, {3, nil, {"3", "4"}}}, rows("a,b\n1,2\r\n3,4"))
    assert.same({{1, nil, {"a", "b"}}, {2, nil, {"x\ny", 'q"q'}}, {4, nil, {"5", ""}}},
                rows('a,b\r\n"x\ny","q""q"\r\n5,\r\n'))
    assert.same({{1, nil, {"a"}}, {2, nil, {""}}, {3, nil, {"b"}}}, rows("a\r\rb\r"))
    assert.same({{1, nil, {"a", "b"}}, {2, true, {"1", "open,\nrest"}}}, rows('a,b\n1,"open,\nrest'))
    assert.same({{1, nil, {"ab x", "c"}}}, rows('"ab" x,c'))
    assert.same({{1, nil, {"a", "b"}}, {2, nil, {"1", "two words", "3"}}, {3, nil, {"", "q"}}},
                rows('a , b\n 1,two words ,3\n , "q" \n', {trim = true}))
    local wide = ("c,"):rep(40) .. "c" -- more fields than a Lua pattern has captures
    assert.equal(41, #rows(wide .. "\n" .. wide)[2][3])
  end)

  it("reads back any table an RFC 4180 writer wrote, whatever its fields hold", function()
    -- The writer is the RFC's own rule, written here: quote a field that
    -- holds a comma, a quote, CR or LF; double its quotes.
    local function write(rows, eol)
      local lines = {}
      for r, row in ipairs(rows) do
        local fields = {}
        for f, v in ipairs(row) do
          fields[f] = v:find('[,"\r\n]') and ('"' .. v:gsub('"', '""') .. '"') or v
        end
        lines[r] = table.concat(fields, ",")
      end
      return table.concat(lines, eol) .. eol
    end
    local alphabet = {"a", "b", "7", " ", ",", '"', "\n", "\r\n", "é"}
    for _ = 1, 300 do
      local width, rows = math.random(1, 6), {}
      for r = 1, math.random(1, 12) do
        rows[r] = {}
        for f = 1, width do
          local chars = {}
          if math.random() < 0.5 then -- half the fields plain, as most of a report is
            for c = 1, math.random(1, 5) do chars[c] = alphabet[math.random(1, 3)] end
          else
            for c = 1, math.random(0, 6) do chars[c] = alphabet[math.random(#alphabet)] end
          end
          rows[r][f] = table.concat(chars)
        end
      end
      for _, eol in ipairs {"\n", "\r\n"} do
        local text, back = write(rows, eol), {}
        for row in kapi.csv.rows(text) do back[#back + 1] = row end
        assert.same(rows, back, text)
      end
    end
  end)

  it("reads a large report row by row: 50,000 rows and a 10 MB field in bounded memory", function()
    local dir = process.tempdir()
    local lines = {"GTIN,Recipient GLN,Sync Status,CIC State,Message"}
    for i = 1, 50000 do
      local body = ("%013d"):format(7000000000000 + i)
      lines[#lines + 1] = body .. kapi.gtin.check_digit(body) .. ",0838016000123,SYNCHRONISED,REVIEW,"
    end
    local path = process.write(dir .. "/big.csv", table.concat(lines, "\r\n"))
    lines = nil
    collectgarbage()
    local before = collectgarbage("count")
    local records = kapi.items.read_report(path)
    collectgarbage()
    assert.equal(50000, #records)
    local mb = (collectgarbage("count") - before) / 1024
    -- The records themselves, not the rows and characters they came from.
    assert.is_true(mb < 25, ("50,000 records took %.1f MB"):format(mb))
    records = nil
    path = process.write(dir .. "/long.csv", "GTIN,Recipient GLN,Message\n10614141000026,0838016000123,\""
                                             .. ("x"):rep(10 * 1024 * 1024) .. "\"\n")
    collectgarbage()
    before = collectgarbage("count")
    local peak = 0
    local long = kapi.items.read_report(path)
    peak = (collectgarbage("count") - before) / 1024
    assert.equal(10 * 1024 * 1024, #long[1].message)
    assert.is_true(peak < 45, ("a 10 MB field took %.1f MB"):format(peak))
    process.cleanup(dir)
  end)

  it("names a missing report and one without a GTIN column", function()
    local ok, err = pcall(kapi.items.read_report, "/nonexistent/report.csv")
    assert.is_false(ok)
    assert.equal("input", err.kind)
    assert.equal("/nonexistent/report.csv: No such file or directory", err.message)
    local dir = process.tempdir()
    local path = process.write(dir .. "/x.csv", "Name,Value\na,b\n")
    ok, err = pcall(kapi.items.read_report, path)
    assert.equal("input", err.kind)
    assert.matches("not a publication report: no GTIN column in its header %(Name,Value%)", err.message)
    ok, err = pcall(kapi.items.read_report, process.write(dir .. "/header.csv", "\239\187\191GTIN,Recipient GLN\r\n"))
    assert.equal("input", err.kind)
    assert.matches("holds no publication, only its header", err.message)
    process.cleanup(dir)
  end)
end)
