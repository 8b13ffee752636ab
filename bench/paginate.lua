-- kapi's side of bench/paginate. Modes:
--   content1 URL N PREFETCH   iterate N items (pages of 1000); prints items/s
--   products URL PREFETCH     every reachable page of a broad search; prints items/s
--   decode URL N              download the same pages, then time decoding them alone:
--                             prints items/s of cjson.decode, kapi.json.decode, and
--                             kapi.json.decode with conversion to the item format
local kapi = require "kapi"
local mode, url = arg[1], arg[2]

if mode == "content1" then
  local n, prefetch = tonumber(arg[3]), arg[4] == "on"
  local c1 = kapi.content1.client {env = "sandbox", base_url = url}
  local count, start = 0, kapi.now()
  local it = kapi.paginate.cursor {prefetch = prefetch, max_items = n, fetch = function(cursor)
    local res = c1:post("/V1/product/fetch", {searchAfter = cursor}, 1000)
    if res.status == 204 then return {}, nil end
    local page = res:json()
    for i, record in ipairs(page.items) do page.items[i] = kapi.content1.to_item(record.item) end
    return page.items, page.searchAfter
  end}
  for _ in it do count = count + 1 end
  print(("%.0f"):format(count / (kapi.now() - start)))
elseif mode == "products" then
  local prefetch = arg[3] == "on"
  local kroger = kapi.kroger.client {env = "sandbox", base_url = url}
  local auth = kroger:service("product.compact")
  local count, start = 0, kapi.now()
  for _ in kapi.paginate.offset {limit = 50, max_offset = 1000, prefetch = prefetch, on_unreachable = function() end,
    fetch = function(s, limit)
      local page = kroger:get("/v1/products", {["filter.term"] = "organic", ["filter.start"] = s,
                                                ["filter.limit"] = limit}, auth):json()
      return page.data, page.meta.pagination.total
    end} do count = count + 1 end
  print(("%.0f %d"):format(count / (kapi.now() - start), count))
elseif mode == "decode" then
  local n = tonumber(arg[3])
  local c1 = kapi.content1.client {env = "sandbox", base_url = url}
  local bodies, cursor = {}, nil
  while #bodies * 1000 < n do
    local res = c1:post("/V1/product/fetch", {searchAfter = cursor}, 1000)
    if res.status == 204 then break end
    bodies[#bodies + 1] = res.body
    cursor = require("cjson").decode(res.body).searchAfter
  end
  local decode, to_item = kapi.json.decode, kapi.content1.to_item
  local function rate(work) -- items per second of CPU time
    collectgarbage()
    local start, count = os.clock(), 0
    for _, body in ipairs(bodies) do count = count + work(body) end
    return count / (os.clock() - start)
  end
  local cjson_decode = require("cjson").decode
  local bare = rate(function(body) return #cjson_decode(body).items end)
  local plain = rate(function(body) return #decode(body).items end)
  local converted = rate(function(body)
    local items = decode(body).items
    for _, record in ipairs(items) do to_item(record.item) end
    return #items
  end)
  print(("%.0f %.0f %.0f"):format(bare, plain, converted))
end
