-- The 1WorldSync Content1 Read API 2.0 client: count, fetch (an iterator
-- over the searchAfter cursor), hierarchies. Items come out in the
-- item-hierarchy format of item-format.md, so that rules and recipes never
-- see the wire's GDSN attribute names.
local http = require "kapi.http"
local auth = require "kapi.auth"
local config = require "kapi.config"
local paginate = require "kapi.paginate"
local errors = require "kapi.errors"
local json = require "kapi.json"
local doc = require "kapi.doc"

local M = {}

local Client = {}
Client.__index = Client
Client.__tostring = function(self) return ("content1 client (%s)"):format(self.base_url) end

--- One trade item from Content1's wire shape to the item format (children
--- referenced by GTIN in `childGtins` until assembled).
-- The tables of a list the wire may send in any shape (the spec types
-- Item.item as a map of anything).
-- The records of a list: its JSON objects (what json.skim counts as
-- "objects"); anything else there is passed over.
local function records(list)
  local out = {}
  for _, v in ipairs(type(list) == "table" and list or {}) do
    if type(v) == "table" and v[1] == nil and not json.is_array(v) then out[#out + 1] = v end
  end
  return out
end

local null = json.null
local function given(v) if v ~= null then return v end end -- JSON null: not given

function M.to_item(wire)
  if type(wire) ~= "table" then return {} end
  -- Item-format name = the wire's, in one constructor: the table is made
  -- at its size (a field not given is no key), not grown a key at a time,
  -- for 1,000 items a page.
  local item = {
    gtin = given(wire.gtin), level = given(wire.tradeItemUnitDescriptorCode),
    isConsumerUnit = given(wire.isTradeItemAConsumerUnit), informationProviderGln = given(wire.informationProviderGLN),
    brandName = given(wire.brandName), description = given(wire.tradeItemDescription),
    productActivityTypeCode = given(wire.productActivityTypeCode), customerFacingSize = given(wire.descriptiveSize),
    marketingMessage = given(wire.tradeItemMarketingMessage), featureBenefits = given(wire.featureBenefit),
    quantityOfChildren = given(wire.quantityOfNextLowerLevelTradeItem), gtinPalletTi = given(wire.gtinPalletTi),
    gtinPalletHi = given(wire.gtinPalletHi), nonGTINPalletTi = given(wire.nonGTINPalletTi),
    nonGTINPalletHi = given(wire.nonGTINPalletHi), nonGTINPalletQuantity = given(wire.nonGTINPalletQuantity),
    modelGtinExists = given(wire.modelGtinExists), modelGtin = given(wire.modelGtin),
    krogerSubmissionReasonCode = given(wire.krogerSubmissionReasonCode), imfNumber = given(wire.imfNumber),
    requiresWercs = given(wire.isHazardousMaterial), wercsRegistered = given(wire.wercsRegistered),
    recipients = given(wire.publishToGln), lastModified = given(wire.lastModifiedDate),
    images = false, childGtins = false, -- room for them; set or cleared below
  }
  item.images, item.childGtins = nil, nil
  if type(item.gtin) ~= "string" then item.gtin = nil end
  if wire.referencedFileDetailInformation then
    local images = {}
    for i, f in ipairs(records(wire.referencedFileDetailInformation)) do
      images[i] = {url = f.uniformResourceIdentifier, facing = f.productImageFacingCode,
                   typeOfInformation = f.typeOfInformation, source = f.fileSource}
    end
    item.images = images
  end
  if wire.childTradeItem then
    item.childGtins = {}
    for _, child in ipairs(records(wire.childTradeItem)) do
      if type(child.gtin) == "string" then item.childGtins[#item.childGtins + 1] = child.gtin end
    end
  end
  return item
end

--- client{env = "sandbox" | "preprod" | "prod", base_url, app_id, secret, gln}
local CLIENT_OPTIONS = {env = "string", base_url = "string", app_id = "string", secret = "string", gln = "string"}

function M.client(opts)
  opts = errors.check(opts, "table?", "content1.client: opts") or {}
  errors.check_options(opts, CLIENT_OPTIONS, "content1.client")
  local c = config.oneworldsync(opts.env ~= "preprod" and opts.env or nil, opts.base_url)
  if opts.env == "preprod" and not opts.base_url then c.base_url = config.CONTENT1.preprod end
  return setmetatable({
    env = c.env, base_url = c.base_url,
    signer = auth.oneworldsync {app_id = opts.app_id or c.app_id, secret = opts.secret or c.secret,
                                gln = opts.gln or c.gln},
  }, Client)
end

local function criteria_of(criteria)
  if criteria == nil then return {} end
  if type(criteria) ~= "table" then errors.usage("content1: criteria must be a table", 3) end
  local out = {}
  for k, v in pairs(criteria) do out[k] = v end
  if type(out.gtin) == "string" then out.gtin = {out.gtin} end
  return out
end

--- post(path, criteria, page_size, skim): the answer must be JSON; given
--- skim (names, as response:skim takes), it is checked by skimming them
--- and decoded only when response:json() is asked.
function Client:post(path, criteria, page_size, skim)
  errors.check(path, "string", "content1:post: path")
  errors.check(skim, "table?", "content1:post: skim")
  return http.post(self.base_url .. path, {auth = self.signer, json = criteria, retry = true, expect_json = skim or true,
                                           query = page_size and {{"pageSize", tostring(page_size)}} or nil})
end

--- count{criteria} -> how many items match
function Client:count(criteria)
  return self:post("/V1/product/count", criteria_of(criteria)):json().count
end

local function item_of(record) return M.to_item(record.item) end

-- What a page's cursor needs of it, read before its items are decoded.
local PAGE = {items = "objects", searchAfter = true, totalCount = true}

--- fetch(criteria, {page_size = 1000, max_items, raw = false}) -> iterator
--- over items in the item format (raw = true: the wire records)
function Client:fetch(criteria, opts)
  opts = errors.check(opts, "table?", "content1:fetch: opts") or {}
  local size = opts.page_size or 1000
  if math.type(size) ~= "integer" or size < 1 or size > 1000 then
    errors.usage("content1: page_size must be an integer from 1 to 1000", 2)
  end
  local base = criteria_of(criteria)
  return paginate.cursor {max_items = opts.max_items, progress = opts.progress, convert = not opts.raw and item_of or nil,
                          fetch = function(cursor)
    local body = {}
    for k, v in pairs(base) do body[k] = v end
    body.searchAfter = cursor
    -- The page is skimmed for its cursor, and its items decoded once the
    -- next page has been asked for: 8 ms a page of 1,000 that no longer
    -- come before that request.
    local res = self:post("/V1/product/fetch", body, size, PAGE)
    if res.status == 204 then return {}, nil end
    local page = res:skim(PAGE)
    -- A count that is not a whole number of items (the spec allows any
    -- integer) is no count: the items still come.
    local total = page.totalCount
    return paginate.later(page.items or 0, function()
      local whole = res:json()
      return records(type(whole) == "table" and whole.items)
    end), page.searchAfter, math.type(total) == "integer" and total >= 0 and total or nil
  end}
end

-- Nests children under their parents, following childGtins.
local function assemble(node, by_gtin, depth)
  if depth > 10 then return node end
  if node.childGtins then
    node.children = {}
    for _, g in ipairs(node.childGtins) do
      local child = by_gtin[g]
      if child then node.children[#node.children + 1] = assemble(child, by_gtin, depth + 1) end
    end
    node.childGtins = nil
  end
  return node
end

--- hierarchy(gtin) -> the whole hierarchy in the item format, from its top
--- level (found with the hierarchy endpoint), or nil when unknown
function Client:hierarchy(gtin)
  local res = self:post("/V1/product/hierarchy", {gtin = {gtin}}, 10)
  if res.status == 204 then return nil end
  local found = res:json().hierarchies or {}
  -- A record without a GTIN names nothing to fetch: the spec allows it,
  -- so it is passed over, never indexed by nil.
  local top = type(found[1]) == "table" and type(found[1].gtin) == "string" and found[1].gtin or nil
  if not top then return nil end
  local gtins = {top}
  local function collect(nodes)
    for _, n in ipairs(type(nodes) == "table" and nodes or {}) do
      if type(n) == "table" and type(n.gtin) == "string" then gtins[#gtins + 1] = n.gtin end
      collect(type(n) == "table" and n.children)
    end
  end
  collect(found[1].hierarchy)
  local by_gtin = {}
  for item in self:fetch({gtin = gtins}) do
    if item.gtin then by_gtin[item.gtin] = item end
  end
  return by_gtin[top] and assemble(by_gtin[top], by_gtin, 0)
end

--- hierarchies(criteria, {page_size, max_items, progress, on_item}) ->
--- every matching hierarchy, assembled from the items fetched, top levels
--- in GTIN order (a level whose parent did not match stands as a top
--- level); on_item(item) is called with each item as its page comes, while
--- the next page is fetched.
function Client:hierarchies(criteria, opts)
  errors.check(opts, "table?", "content1:hierarchies: opts")
  local on_item = opts and opts.on_item
  errors.check(on_item, "function?", "content1:hierarchies: opts.on_item")
  local by_gtin, is_child = {}, {}
  for item in self:fetch(criteria, opts) do
    if on_item then on_item(item) end
    if item.gtin then -- one without a GTIN cannot be placed in any hierarchy
      by_gtin[item.gtin] = item
      for _, g in ipairs(item.childGtins or {}) do is_child[g] = true end
    end
  end
  local tops = {}
  for gtin, item in pairs(by_gtin) do
    if not is_child[gtin] then tops[#tops + 1] = item end
  end
  table.sort(tops, function(a, b) return a.gtin < b.gtin end)
  for i, top in ipairs(tops) do tops[i] = assemble(top, by_gtin, 0) end
  return tops
end

doc.declare("kapi.content1.client", M.client, [[
kapi.content1.client{env = "sandbox" | "preprod" | "prod", base_url, app_id, secret, gln} -> content1
A 1WorldSync Content1 client; requests are HMAC-signed. Credentials come
from ONEWORLDSYNC_APP_ID / ONEWORLDSYNC_SECRET or the config file.
Example:
  local c1 = kapi.content1.client{env = "sandbox"}
  print(c1:count{ipGln = "0614141000005"})
  for item in c1:fetch({ipGln = "0614141000005"}, {max_items = 5}) do print(item.gtin, item.level) end
  local case = c1:hierarchy("10614141000019")]])

doc.declare("content1:fetch", Client.fetch, [[
content1:fetch(criteria, {page_size = 1000, max_items, raw}) -> iterator
Items matching the criteria (gtin, ipGln, targetMarket, brandName, ...),
paged with searchAfter, converted to the item format. content1:count(criteria)
counts them; content1:hierarchy(gtin) assembles a whole hierarchy, and
content1:hierarchies(criteria) every hierarchy among the matching items.]])

return M
