-- The sandbox's 1WorldSync Content1 Read API 2.0 (/V1/product/count,
-- /fetch, /hierarchy) over the supplier catalogue, with HMAC checked
-- exactly as the service does: Base64(HMAC-SHA256(secret, path + "?" +
-- query)) over the path and query as they arrived.
local crypto = require "kapi.core.crypto"
local json = require "kapi.json"
local supplier = require "kapi.sandbox.supplier"

local M = {}

M.APP_ID = "kapisbx1"
M.SECRET = "sandbox-hmac-secret"
M.MAX_PAGE = 1000
M.MAX_SKEW = 300 -- seconds a timestamp may be off

local request_counter = 0

local function error_reply(status, code, reason)
  request_counter = request_counter + 1
  return {status = status, json = {requestId = tostring(request_counter), code = code, reason = reason}}
end

local function parse_timestamp(text)
  local y, mo, d, h, mi, s = (text or ""):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)Z$")
  if not y then return nil end
  local t = os.time {year = tonumber(y), month = tonumber(mo), day = tonumber(d),
                     hour = tonumber(h), min = tonumber(mi), sec = tonumber(s)}
  return t + (os.time() - os.time(os.date("!*t"))) -- os.time read it as local time
end

--- Checks the HMAC headers; nil when the request is signed right, else the reply.
function M.verify(state, req)
  local appid, hashcode = req.headers.appid, req.headers.hashcode
  if not appid or appid == "" then
    return error_reply(401, "REQUIRED_HEADER_APPID_MISSING", "appId is missing in header")
  end
  if not hashcode or hashcode == "" then
    return error_reply(401, "REQUIRED_HEADER_HASHCODE_MISSING", "hashcode is missing in header")
  end
  if appid ~= state.content1.app_id then return error_reply(401, "INVALID_APPID", "appId is not known") end
  local stamp = parse_timestamp(req.query.timestamp)
  if not stamp then
    return error_reply(401, "INVALID_TIMESTAMP", "timestamp must be YYYY-MM-DDTHH:MM:SSZ in UTC")
  end
  if math.abs(os.time() - stamp) > M.MAX_SKEW then
    return error_reply(401, "TIMESTAMP_EXPIRED", "timestamp is more than 5 minutes from the server's time")
  end
  local signed = req.raw_path .. "?" .. req.raw_query
  local expected = crypto.base64(crypto.hmac_sha256(state.content1.secret, signed))
  if not crypto.equal(expected, hashcode) then
    return error_reply(401, "INVALID_HASHCODE", "hashcode does not match the request")
  end
end

-- Catalogue positions, in GTIN order: every each, then every case; within
-- each, suppliers by company prefix and items by reference. Computed, not
-- sorted, so that 100,000 items cost nothing.

local function per_supplier(state)
  local n, counts = state.content1.hierarchies, {}
  for i = 1, #supplier.suppliers do
    counts[i] = n >= i and (n - i) // #supplier.suppliers + 1 or 0
  end
  return counts
end

-- position (0-based) -> hierarchy number, is the case
local function at(state, position)
  local n = state.content1.hierarchies
  local is_case = position >= n
  local q = position % n
  for i, count in ipairs(state.content1.counts) do
    if q < count then return supplier.number(i, q + 1), is_case end
    q = q - count
  end
end

-- GTIN -> position, or nil when it is not in the catalogue
local function position_of(state, gtin)
  local i, ref, is_case = supplier.locate(gtin)
  if not i or ref > state.content1.counts[i] then return nil end
  local q = ref - 1
  for j = 1, i - 1 do q = q + state.content1.counts[j] end
  return (is_case and state.content1.hierarchies or 0) + q
end

-- The item record of one trade item, in Content1's shape: GDSN attribute
-- names, lower levels referenced by GTIN (kapi.content1 turns these back
-- into the item-hierarchy format).
local function wire_item(node, top)
  local item = {
    gtin = node.gtin, informationProviderGLN = node.informationProviderGln, targetMarket = "US",
    lastModifiedDate = top.lastModified, brandName = node.brandName,
    tradeItemDescription = node.description, tradeItemUnitDescriptorCode = node.level,
    isTradeItemAConsumerUnit = node.isConsumerUnit, productActivityTypeCode = node.productActivityTypeCode,
    descriptiveSize = node.customerFacingSize, tradeItemMarketingMessage = node.marketingMessage,
    featureBenefit = node.featureBenefits, quantityOfNextLowerLevelTradeItem = node.quantityOfChildren,
    nonGTINPalletTi = node.nonGTINPalletTi, nonGTINPalletHi = node.nonGTINPalletHi,
    nonGTINPalletQuantity = node.nonGTINPalletQuantity, gtinPalletTi = node.gtinPalletTi,
    gtinPalletHi = node.gtinPalletHi, modelGtinExists = node.modelGtinExists, modelGtin = node.modelGtin,
    krogerSubmissionReasonCode = node.krogerSubmissionReasonCode, imfNumber = node.imfNumber,
    isHazardousMaterial = node.requiresWercs, wercsRegistered = node.wercsRegistered,
    publishToGln = node.recipients,
  }
  if node.images then
    local files = {}
    for i, image in ipairs(node.images) do
      files[i] = {uniformResourceIdentifier = image.url, productImageFacingCode = image.facing,
                  typeOfInformation = image.typeOfInformation, fileSource = image.source}
    end
    item.referencedFileDetailInformation = files
  end
  if node.children then
    local children = {}
    for i, child in ipairs(node.children) do
      children[i] = {gtin = child.gtin, quantity = node.quantityOfChildren}
    end
    item.childTradeItem = children
  end
  return item
end

-- The supplier's data as it stands: the hierarchy the items API planted a
-- defect in or saved a fix to (kapi/sandbox/items.lua), else the generated one.
local function hierarchy_of(state, k)
  local generated = supplier.hierarchy(state.catalog.seed, k)
  local current = state.items and state.items.hierarchies[generated.gtin]
  if not current or type(current.children) ~= "table" or not current.children[1] then return generated end
  local out = {}
  for key, value in pairs(current) do out[key] = value end
  out.lastModified = generated.lastModified
  return out
end

local function record(state, k, is_case)
  local h = hierarchy_of(state, k)
  local node = is_case and h or h.children[1]
  return {objId = tostring(k * 2 - (is_case and 0 or 1)), gln = "0838016000123", dataPoolType = "SDP",
          item = wire_item(node, h)}
end

-- Records kept as sent, encoded: building and encoding a page of 1,000
-- took 45 ms, about what the slow link of bench/recipes adds, and the same
-- pages are asked for again and again. A record of a hierarchy the items
-- API holds (published, or fixed by a PUT, which replaces it) is kept with
-- the hierarchy it was made from, and made again once that is replaced;
-- the store is emptied when full, so 100,000 items never take it all.
local KEEP = 20000
local function encoded_record(state, k, is_case)
  local _, case_gtin = supplier.gtins(k)
  local held = state.items and state.items.hierarchies[case_gtin] or false
  local c1 = state.content1
  local key = is_case and -k or k
  local text = c1.encoded[key]
  if not text or c1.encoded_from[key] ~= held then
    if c1.encoded_count >= KEEP then c1.encoded, c1.encoded_from, c1.encoded_count = {}, {}, 0 end
    text = json.encode(record(state, k, is_case))
    c1.encoded[key], c1.encoded_from[key], c1.encoded_count = text, held, c1.encoded_count + 1
  end
  return text
end

local function supplier_of(k) return supplier.suppliers[(k - 1) % #supplier.suppliers + 1] end

-- A brandName with * wildcards, as a test of a name (case-insensitive),
-- in time linear in the name: the literal parts in order, the first at the
-- start and the last at the end unless a * stands there. (As a Lua pattern,
-- "********#" backtracks for as long as the sandbox has items.)
function M.wildcard(text)
  local parts = {}
  for part in (text:lower() .. "*"):gmatch("([^*]*)%*") do parts[#parts + 1] = part end
  local anchored_start, anchored_end = text:sub(1, 1) ~= "*", text:sub(-1) ~= "*"
  if #parts == 1 then return function(name) return name:lower() == parts[1] end end
  return function(name)
    name = name:lower()
    local first, last = parts[1], parts[#parts]
    if anchored_start and name:sub(1, #first) ~= first then return false end
    if anchored_end and (#name < #last or name:sub(#name - #last + 1) ~= last) then return false end
    local at, stop = anchored_start and #first + 1 or 1, anchored_end and #name - #last + 1 or #name + 1
    for i = anchored_start and 2 or 1, anchored_end and #parts - 1 or #parts do
      local part = parts[i]
      if part ~= "" then
        local s, e = name:find(part, at, true)
        if not s or e >= stop then return false end
        at = e + 1
      end
    end
    return at <= stop
  end
end

-- Does hierarchy k's item match the criteria (those answerable without
-- building the item)?
local function matches(criteria, k, is_case)
  local s = supplier_of(k)
  if criteria.ipGln and criteria.ipGln:sub(-13) ~= s.gln then return false end
  if criteria.brandName then
    criteria.brand_matches = criteria.brand_matches or M.wildcard(criteria.brandName)
    if not criteria.brand_matches(s.name) then return false end
  end
  if criteria.targetMarket and criteria.targetMarket ~= "US" then return false end
  return true
end

local function decode_criteria(req)
  if req.body == "" then return {} end
  local ok, criteria = pcall(json.decode, req.body)
  if not ok or type(criteria) ~= "table" then return nil end
  return criteria
end

local function unfiltered(criteria)
  return not (criteria.ipGln or criteria.brandName or criteria.targetMarket
              or (type(criteria.gtin) == "table" and #criteria.gtin > 0))
end

-- The positions matching the criteria, from `after` (exclusive), at most
-- limit of them; and the total.
local function select(state, criteria, after, limit)
  local out, total = {}, 0
  if unfiltered(criteria) then -- every item: positions are the answer
    total = 2 * state.content1.hierarchies
    for p = after + 1, math.min(total - 1, after + (limit == math.huge and total or limit)) do
      out[#out + 1] = p
    end
    return out, total
  end
  -- The candidates: the listed GTINs' positions, in order, or every position.
  local candidates
  if type(criteria.gtin) == "table" and #criteria.gtin > 0 then
    candidates = {}
    for _, g in ipairs(criteria.gtin) do
      local p = position_of(state, g)
      if p then candidates[#candidates + 1] = p end
    end
    table.sort(candidates)
  end
  if candidates then
    for _, p in ipairs(candidates) do
      local k, is_case = at(state, p)
      if matches(criteria, k, is_case) then
        total = total + 1
        if p > after and #out < limit then out[#out + 1] = p end
      end
    end
    return out, total
  end
  -- Every position, a supplier's block at a time (positions go by the
  -- layout `at` reads): whether an item matches depends on its supplier
  -- alone, so a block is asked once, not each of its items (a page of
  -- 1,000 scanned 6,000 positions one by one).
  local p = 0
  for _, is_case in ipairs {false, true} do
    for i, count in ipairs(state.content1.counts) do
      if count > 0 and matches(criteria, supplier.number(i, 1), is_case) then
        total = total + count
        for q = math.max(p, after + 1), p + count - 1 do
          if #out >= limit then break end
          out[#out + 1] = q
        end
      end
      p = p + count
    end
  end
  return out, total
end

local function after_position(state, criteria)
  local search_after = criteria.searchAfter
  if type(search_after) ~= "table" or search_after[1] == nil then return -1 end
  return position_of(state, tostring(search_after[1])) or -1
end

local function page_size(req)
  local size = math.tointeger(tonumber(req.query.pageSize))
  if not size or size < 1 or size > M.MAX_PAGE then return nil end
  return size
end

-- What every call checks first: the signature, the page size (when the
-- call pages) and the criteria. Returns the criteria and page size, or nil
-- and the reply.
local function accept(state, req, paged)
  local denied = M.verify(state, req)
  if denied then return nil, denied end
  local size = paged and page_size(req)
  if paged and not size then
    return nil, error_reply(400, "INVALID_PAGE_SIZE", ("pageSize must be between 1 and %d"):format(M.MAX_PAGE))
  end
  local criteria = decode_criteria(req)
  if not criteria then
    return nil, error_reply(400, "INVALID_REQUEST_BODY", "the search criteria are not valid JSON")
  end
  for _, field in ipairs {"brandName", "ipGln", "targetMarket"} do
    if criteria[field] ~= nil and type(criteria[field]) ~= "string" then
      return nil, error_reply(400, "INVALID_REQUEST_BODY", field .. " must be a string")
    end
  end
  return criteria, size
end

--- POST /V1/product/count
function M.count(state, req)
  local criteria, reply = accept(state, req, false)
  if not criteria then return reply end
  local _, total = select(state, criteria, math.huge, 0)
  return {status = 200, json = {count = total}}
end

--- POST /V1/product/fetch?timestamp&pageSize
function M.fetch(state, req)
  local criteria, size = accept(state, req, true)
  if not criteria then return size end
  local after = after_position(state, criteria)
  local positions, total = select(state, criteria, after, size)
  if #positions == 0 then return {status = 204} end
  local items = {}
  for i, p in ipairs(positions) do items[i] = encoded_record(state, at(state, p)) end
  local last = record(state, at(state, positions[#positions])).item
  local before = 0
  if after >= 0 and unfiltered(criteria) then
    before = after + 1
  elseif after >= 0 then
    for _, p in ipairs(select(state, criteria, -1, math.huge)) do
      if p <= after then before = before + 1 end
    end
  end
  local rest = json.encode {
    totalCount = total, totalPages = (total + size - 1) // size,
    currentPage = before // size + 1, searchAfter = {last.gtin, "US"},
    message = "To retrieve the next page of products, pick what you have received in searchAfter and set it in next request.",
  }
  return {status = 200, headers = {["Content-Type"] = "application/json"},
          body = '{"items":[' .. table.concat(items, ",") .. "]," .. rest:sub(2)}
end

--- POST /V1/product/hierarchy?timestamp&pageSize
function M.hierarchy(state, req)
  local criteria, size = accept(state, req, true)
  if not criteria then return size end
  local positions = select(state, criteria, after_position(state, criteria), size)
  local hierarchies, seen = {}, {}
  for _, p in ipairs(positions) do
    local k = at(state, p)
    if not seen[k] then
      seen[k] = true
      local h = hierarchy_of(state, k)
      local each = h.children[1]
      hierarchies[#hierarchies + 1] = {
        gtin = h.gtin, informationProviderGLN = h.informationProviderGln, targetMarket = "US",
        hierarchy = {{gtin = h.gtin, quantity = "1", children = {
          {parentGtin = h.gtin, gtin = each.gtin, quantity = tostring(h.quantityOfChildren), children = json.array()}}}},
      }
    end
  end
  if #hierarchies == 0 then return {status = 204} end
  local last = positions[#positions]
  local last_k, last_case = at(state, last)
  local h = supplier.hierarchy(state.catalog.seed, last_k)
  return {status = 200, json = {hierarchies = hierarchies, searchAfter = {last_case and h.gtin or h.children[1].gtin, "US"},
                                message = "To retrieve the next page of products, pick what you have received in searchAfter and set it in next request."}}
end

--- The state Content1 needs: new_state{items = N hierarchies per catalogue}.
function M.new_state(opts)
  local state = {app_id = M.APP_ID, secret = M.SECRET,
                 hierarchies = opts.items and math.max(1, opts.items // 2) or supplier.default_count}
  return state
end

function M.init(state)
  state.content1.counts = per_supplier(state)
  state.content1.encoded, state.content1.encoded_from, state.content1.encoded_count = {}, {}, 0
end

M.routes = {
  {"POST", "^/V1/product/count$", M.count},
  {"POST", "^/V1/product/fetch$", M.fetch},
  {"POST", "^/V1/product/hierarchy$", M.hierarchy},
}

return M
