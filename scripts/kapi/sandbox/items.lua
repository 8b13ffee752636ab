-- The sandbox's item publications and CICs: an API of the project's own
-- design (docs/sandbox.md) over what suppliers see in 1WorldSync Item
-- Management (publish, republish, resend, withdraw; sync status; CICs),
-- with a simulated Kroger QA review. The reviewer is its own code, written
-- from item-format.md and the seeds; kapi's preflight rules are written
-- from the same documents, not shared with it.
local json = require "kapi.json"
local supplier = require "kapi.sandbox.supplier"

local M = {}

M.QUEUE = "0838016000123"          -- Kroger API Certification Queue
M.CERTIFIED = "0838016000116"      -- Certified Items for Kroger API
M.PRODUCT_INTRO = "0011110000019"  -- Kroger Product Introduction (old VIP path)

local HOUR, DAY = 3600, 86400

local TEXT = {
  made_in = "productActivityTypeCode MADE_IN is invalid.",
  images = '%s: R02063: 6 "Product Images" - Exactly 1 Required Primary Front and up to 5 additional UNIQUE Facings ( Back, Left, Right, Top, Bottom).;',
  pi9001 = "PI9001=You are not enabled at 1WorldSync to send the recipient top-off data. Item is accepted but the additional recipient top-off data is not.",
  wercs = "The product hierarchy was rejected because it is not registered in WERCS or additional action is required to complete WERCS registration. Please log in to WERCS to initiate the required actions. Once WERCS registration is complete, you may resubmit.",
  pdp = "This item does not meet Kroger PDP Guidelines. %s",
  tihi = "2802 WARNING: On the highest hierarchy level both Number of Layers per non-GTIN Pallet/Non GTIN Pallet Hi (nonGTINPalletHi) and Number of Units per Layer in a non-GTIN Pallet/Non GTIN Pallet Ti (nonGTINPalletTi) must be populated.",
  tihi_quantity = "Non GTIN Pallet Quantity (%d) must equal Non GTIN Pallet Ti x Hi (%d x %d).",
  model = "Model GTIN error: %s names itself as its model GTIN.",
  submitted = "ErrorCode:null; Error:ITEM FOUND IN SUBMITTED STATUS",
  imf = "Kroger Item Submission Reason Code %q was given on an update of an item that already has IMF %s: a new IMF was requested.",
  each_recipient = "The consumer unit %s lists the Kroger Product Introduction GLN 0011110000019 as a recipient; publish the top level only, with Each recipients ALL.",
}

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function each_node(h, fn)
  fn(h)
  for _, child in ipairs(h.children or {}) do each_node(child, fn) end
end

-- Reviewer --------------------------------------------------------------------

-- Why the publication cannot leave 1WorldSync at all, or nil.
local function send_failure(h)
  local failure
  each_node(h, function(node)
    if node.productActivityTypeCode == "MADE_IN" then failure = failure or TEXT.made_in end
  end)
  each_node(h, function(node)
    local images = node.images or {}
    local fronts, facings, bad = 0, {}, #images > 6
    for _, image in ipairs(images) do
      if image.facing == "FRONT" then fronts = fronts + 1 end
      if facings[image.facing] then bad = true end
      facings[image.facing] = true
    end
    if node.isConsumerUnit and (fronts ~= 1 or bad) then
      failure = failure or TEXT.images:format(node.gtin)
    end
  end)
  return failure
end

-- What Kroger QA rejects, in its words; nil when the item passes.
local function review(h, state)
  if h.sandboxVipSubmitted then return TEXT.submitted end
  local reason
  local function reject(text) reason = reason or text end
  each_node(h, function(node)
    if node.requiresWercs and not node.wercsRegistered then reject(TEXT.wercs) end
  end)
  each_node(h, function(node)
    if node.isConsumerUnit then
      if not node.customerFacingSize or node.customerFacingSize == "" then
        reject(TEXT.pdp:format("Customer Facing Size is missing on the consumer unit " .. node.gtin .. "."))
      end
      for _, image in ipairs(node.images or {}) do
        if image.typeOfInformation ~= "PRODUCT_IMAGE" then
          reject(TEXT.pdp:format(("Image %s of %s is not a product image."):format(image.url, node.gtin)))
        end
      end
      for _, r in ipairs(node.recipients or {}) do
        if r == M.PRODUCT_INTRO then reject(TEXT.each_recipient:format(node.gtin)) end
      end
    end
    if node.modelGtin and node.modelGtin == node.gtin then reject(TEXT.model:format(node.gtin)) end
    if node.imfNumber and node.krogerSubmissionReasonCode and node.krogerSubmissionReasonCode ~= "" then
      reject(TEXT.imf:format(node.krogerSubmissionReasonCode, node.imfNumber))
    end
  end)
  local has_pallet = false
  each_node(h, function(node) has_pallet = has_pallet or node.level == "PALLET" end)
  if not has_pallet and (h.gtinPalletTi or h.gtinPalletHi or not (h.nonGTINPalletTi and h.nonGTINPalletHi)) then
    reject(TEXT.tihi)
  elseif not has_pallet and h.nonGTINPalletQuantity ~= h.nonGTINPalletTi * h.nonGTINPalletHi then
    reject(TEXT.tihi_quantity:format(h.nonGTINPalletQuantity or 0, h.nonGTINPalletTi, h.nonGTINPalletHi))
  end
  return reason
end
M.review = review

-- Publications -----------------------------------------------------------------

local function key(gtin, recipient) return gtin .. "|" .. recipient end

-- Publications are kept by key(gtin, recipient), and recipients has every
-- GLN one has gone to, so a call naming GTINs looks each up at those few
-- instead of going through every publication.
local function store(state, pub)
  state.items.publications[key(pub.gtin, pub.recipientGln)] = pub
  state.items.recipients[pub.recipientGln] = true
end

--- The record kapi reads (item-format.md, "Publication records").
local function record(pub)
  return {gtin = pub.gtin, recipientGln = pub.recipientGln, publicationType = pub.publicationType,
          publishedAt = iso(pub.publishedAt), syncStatus = pub.syncStatus, cicState = pub.cicState or "",
          cicDate = pub.cicDate and iso(pub.cicDate) or "", cicCode = pub.cicCode or "",
          message = pub.message or ""}
end
M.record = record

local function set_cic(pub, state_name, code, message, at)
  pub.cicState, pub.cicCode, pub.message, pub.cicDate = state_name, code, message, at
end

local function synchronise_certified(state, gtin, at)
  local certified = state.items.publications[key(gtin, M.CERTIFIED)]
  if not certified then
    certified = {gtin = gtin, recipientGln = M.CERTIFIED, publicationType = "INITIAL_LOAD", publishedAt = at}
    store(state, certified)
  end
  certified.syncStatus = "SYNCHRONISED"
  set_cic(certified, "SYNCHRONISED", nil, nil, at)
end

local function queue_synchronised(state, gtin)
  local queue = state.items.publications[key(gtin, M.QUEUE)]
  return queue and queue.cicState == "SYNCHRONISED"
end

-- Kroger QA's turn on a publication that reached the certification queue.
local function run_review(state, pub)
  if not pub.awaiting_review or state.items.publications[key(pub.gtin, pub.recipientGln)] ~= pub then return end
  pub.awaiting_review = false
  local h = state.items.hierarchies[pub.gtin]
  local reason = review(h, state)
  local now = state.clock()
  if reason then
    set_cic(pub, "REJECTED", "CIC999", reason, now)
  else
    set_cic(pub, "SYNCHRONISED", nil, nil, now)
    synchronise_certified(state, pub.gtin, now)
  end
end

local function schedule_review(state, pub)
  pub.awaiting_review = true
  local task = require("kapi.task")
  local reviews = state.items.reviews
  local review_task
  review_task = task.spawn(function()
    task.sleep(state.items.review_delay)
    reviews[review_task] = nil
    run_review(state, pub)
  end)
  reviews[review_task] = true
end

--- Stops the reviews still to come (the sandbox is closing).
function M.stop(state)
  for review_task in pairs(state.items.reviews) do review_task:cancel() end
  state.items.reviews = {}
end

-- Sends a publication on its way: it fails to send, reaches Product
-- Introduction (PI9001), waits for the queue (certified GLN), or reaches
-- the queue and is reviewed.
local function dispatch(state, pub)
  local h = state.items.hierarchies[pub.gtin]
  pub.cicState, pub.cicCode, pub.message, pub.cicDate = "", nil, nil, nil
  local failure = send_failure(h)
  if failure then
    pub.syncStatus, pub.message = "FAILED_TO_SEND", failure
    return
  end
  pub.syncStatus = "SYNCHRONISED"
  if pub.recipientGln == M.PRODUCT_INTRO then
    set_cic(pub, "RECEIVED", "PI9001", TEXT.pi9001, state.clock())
  elseif pub.recipientGln == M.CERTIFIED and not queue_synchronised(state, pub.gtin) then
    pub.syncStatus = "PENDING"
  elseif pub.recipientGln == M.QUEUE then
    schedule_review(state, pub)
  end
end

local function top_level(state, gtin)
  if state.items.hierarchies[gtin] then return state.items.hierarchies[gtin] end
  local i, ref, is_case = supplier.locate(gtin)
  if not i or ref > state.content1.counts[i] then return nil end
  if not is_case then return nil, "publish the top level of the hierarchy only (the case), not " .. gtin end
  local h = supplier.hierarchy(state.catalog.seed, supplier.number(i, ref))
  h.lastModified = nil
  state.items.hierarchies[gtin] = h
  return h
end

local function item_error(status, code, reason)
  return {status = status, json = {errors = {code = code, reason = reason}}}
end

local function body_of(req)
  local ok, body = pcall(json.decode, req.body)
  if ok and type(body) == "table" then return body end
end

local GLN = "^%d%d%d%d%d%d%d%d%d%d%d%d%d$"

local function target(state, req)
  local body = body_of(req)
  if not body or type(body.gtin) ~= "string" then
    return nil, item_error(400, "INVALID_REQUEST", "the body must be JSON with gtin and recipientGln")
  end
  if type(body.recipientGln) ~= "string" or not body.recipientGln:match(GLN) then
    return nil, item_error(400, "INVALID_GLN", "recipientGln must be a 13-digit GLN")
  end
  local h, why = top_level(state, body.gtin)
  if not h then return nil, item_error(why and 400 or 404, why and "NOT_TOP_LEVEL" or "UNKNOWN_GTIN", why or ("no item " .. body.gtin)) end
  return body, nil, state.items.publications[key(body.gtin, body.recipientGln)]
end

local function publication_reply(status, pub)
  return {status = status, json = {data = record(pub)}}
end

local function check_type(body)
  local kind = body.publicationType or "NEW"
  if kind ~= "NEW" and kind ~= "INITIAL_LOAD" then return nil end
  return kind
end

--- POST /items/v1/publications {gtin, recipientGln, publicationType}
function M.publish(state, req)
  local body, bad, existing = target(state, req)
  if not body then return bad end
  local kind = check_type(body)
  if not kind then return item_error(400, "INVALID_TYPE", "publicationType must be NEW or INITIAL_LOAD") end
  if existing then
    return item_error(409, "ALREADY_PUBLISHED", "already published to " .. body.recipientGln .. "; republish it instead")
  end
  local pub = {gtin = body.gtin, recipientGln = body.recipientGln, publicationType = kind,
               publishedAt = state.clock()}
  store(state, pub)
  dispatch(state, pub)
  return publication_reply(201, pub)
end

--- POST /items/v1/publications/republish {gtin, recipientGln, publicationType}
function M.republish(state, req)
  local body, bad, pub = target(state, req)
  if not body then return bad end
  if not pub then return item_error(404, "NOT_PUBLISHED", "not published to " .. body.recipientGln .. "; publish it") end
  local kind = check_type(body)
  if not kind then return item_error(400, "INVALID_TYPE", "publicationType must be NEW or INITIAL_LOAD") end
  pub.publicationType, pub.publishedAt = kind, state.clock()
  dispatch(state, pub)
  return publication_reply(200, pub)
end

--- POST /items/v1/publications/resend {gtin, recipientGln, reason}: the
--- current data again. After a rejection only a WERCS rejection is
--- reviewed again; any other needs a republish.
function M.resend(state, req)
  local body, bad, pub = target(state, req)
  if not body then return bad end
  if not pub then return item_error(404, "NOT_PUBLISHED", "not published to " .. body.recipientGln) end
  pub.resends = pub.resends or {}
  pub.resends[#pub.resends + 1] = {at = iso(state.clock()), reason = body.reason}
  if pub.syncStatus == "FAILED_TO_SEND" then
    dispatch(state, pub)
  elseif pub.cicState == "REJECTED" and pub.message == TEXT.wercs and pub.recipientGln == M.QUEUE then
    pub.publishedAt = state.clock()
    set_cic(pub, "", nil, nil, nil)
    schedule_review(state, pub)
  end
  return publication_reply(200, pub)
end

--- POST /items/v1/publications/withdraw {gtin, recipientGln}
function M.withdraw(state, req)
  local body, bad, pub = target(state, req)
  if not body then return bad end
  if not pub then return item_error(404, "NOT_PUBLISHED", "not published to " .. body.recipientGln) end
  state.items.publications[key(body.gtin, body.recipientGln)] = nil
  return {status = 204}
end

--- GET /items/v1/publications?gtin=&recipientGln=&ipGln=; gtin takes up
--- to MAX_GTINS GTINs, comma-separated, as the Products API's productId.
M.MAX_GTINS = 50

function M.publications(state, req)
  local q, out = req.query, {}
  local wanted
  if q.gtin then
    wanted = {}
    local n = 0
    for g in q.gtin:gmatch("[^,]+") do wanted[g], n = true, n + 1 end
    if n > M.MAX_GTINS then
      return item_error(400, "TOO_MANY_GTINS", ("gtin names %d GTINs; at most %d a call"):format(n, M.MAX_GTINS))
    end
  end
  local function add(pub)
    local h = state.items.hierarchies[pub.gtin]
    if (not q.recipientGln or q.recipientGln == pub.recipientGln)
       and (not q.ipGln or q.ipGln == h.informationProviderGln) then
      out[#out + 1] = record(pub)
    end
  end
  local publications = state.items.publications
  if wanted then
    for gtin in pairs(wanted) do
      for recipient in pairs(state.items.recipients) do
        local pub = publications[key(gtin, recipient)]
        if pub then add(pub) end
      end
    end
  else
    for _, pub in pairs(publications) do add(pub) end
  end
  table.sort(out, function(a, b)
    if a.gtin ~= b.gtin then return a.gtin < b.gtin end
    return a.recipientGln < b.recipientGln
  end)
  return {status = 200, json = {data = #out > 0 and out or json.array()}}
end

--- GET /items/v1/items/{gtin}: the hierarchy, as item-format.md gives it
function M.item(state, req, gtin)
  local h, why = top_level(state, gtin)
  if not h then return item_error(why and 400 or 404, why and "NOT_TOP_LEVEL" or "UNKNOWN_GTIN", why or ("no item " .. gtin)) end
  local out = copy(h)
  out.sandboxVipSubmitted = nil
  return {status = 200, json = {data = out, meta = {lastChanged = iso(state.items.changed[gtin] or 0)}}}
end

--- PUT /items/v1/items/{gtin}: replaces the hierarchy (a fix). A
--- publication that failed to send flows by itself once fixed; a rejected
--- one is not reviewed again until republished.
function M.update(state, req, gtin)
  local h, why = top_level(state, gtin)
  if not h then return item_error(why and 400 or 404, why and "NOT_TOP_LEVEL" or "UNKNOWN_GTIN", why or ("no item " .. gtin)) end
  local body = body_of(req)
  if not body or body.gtin ~= gtin then
    return item_error(400, "INVALID_REQUEST", "the body must be the item's hierarchy, with gtin " .. gtin)
  end
  body.sandboxVipSubmitted = h.sandboxVipSubmitted
  state.items.hierarchies[gtin] = body
  state.items.changed[gtin] = state.clock()
  for _, pub in pairs(state.items.publications) do
    if pub.gtin == gtin and pub.syncStatus == "FAILED_TO_SEND" then dispatch(state, pub) end
  end
  return {status = 204}
end

-- The supplier's portfolio: one item for each failure pattern of the seeds,
-- with publications as they stand today (times relative to now).
local function scenarios(state)
  local now, seed = state.clock(), state.catalog.seed
  local function item(k, change)
    local h = supplier.hierarchy(seed, k)
    h.lastModified = nil
    if change then change(h, h.children[1]) end
    state.items.hierarchies[h.gtin] = h
    return h
  end
  local function publish(h, recipient, fields)
    local pub = {gtin = h.gtin, recipientGln = recipient, publicationType = "NEW", syncStatus = "SYNCHRONISED"}
    for k, v in pairs(fields) do pub[k] = v end
    store(state, pub)
    return pub
  end
  -- 1. Certified: synchronised at the queue, then at the certified GLN.
  local done = item(1)
  publish(done, M.QUEUE, {publishedAt = now - 5 * DAY, cicState = "SYNCHRONISED", cicDate = now - 4 * DAY})
  publish(done, M.CERTIFIED, {publicationType = "INITIAL_LOAD", publishedAt = now - 4 * DAY,
                              cicState = "SYNCHRONISED", cicDate = now - 4 * DAY})
  -- 2. Sent three hours ago, no CIC yet.
  publish(item(2), M.QUEUE, {publishedAt = now - 3 * HOUR})
  -- 3. Sent thirty hours ago, still no CIC.
  publish(item(3), M.QUEUE, {publishedAt = now - 30 * HOUR})
  -- 4. Rejected for the PDP guidelines (no customer facing size), not fixed.
  publish(item(4, function(_, each) each.customerFacingSize = nil end), M.QUEUE,
          {publishedAt = now - 2 * DAY, cicState = "REJECTED", cicCode = "CIC999", cicDate = now - DAY,
           message = TEXT.pdp:format("Customer Facing Size is missing on the consumer unit " .. supplier.gtins(4) .. ".")})
  -- 5. Rejected as its own model GTIN; fixed since.
  local fixed = item(5)
  publish(fixed, M.QUEUE, {publishedAt = now - 2 * DAY, cicState = "REJECTED", cicCode = "CIC999",
                           cicDate = now - DAY, message = TEXT.model:format(fixed.children[1].gtin)})
  state.items.changed[fixed.gtin] = now - 6 * HOUR
  -- 6. Rejected for WERCS; registered since.
  local wercs = item(6, function(case, each)
    case.requiresWercs, each.requiresWercs, case.wercsRegistered, each.wercsRegistered = true, true, true, true
  end)
  publish(wercs, M.QUEUE, {publishedAt = now - 3 * DAY, cicState = "REJECTED", cicCode = "CIC999",
                           cicDate = now - 2 * DAY, message = TEXT.wercs})
  state.items.changed[wercs.gtin] = now - DAY
  -- 7. Failed to send: "Made in Country" as the activity type.
  publish(item(7, function(case) case.productActivityTypeCode = "MADE_IN" end), M.QUEUE,
          {publishedAt = now - DAY, syncStatus = "FAILED_TO_SEND", message = TEXT.made_in})
  -- 8. Sent to Product Introduction instead of the queue.
  publish(item(8), M.PRODUCT_INTRO, {publishedAt = now - 2 * DAY, cicState = "RECEIVED", cicCode = "PI9001",
                                     cicDate = now - 2 * DAY, message = TEXT.pi9001})
  -- 9. Ti/Hi entered as GTIN pallet Ti/Hi: rejected at the queue, so the
  --    certified publication waits.
  local tihi = item(9, function(case)
    case.gtinPalletTi, case.gtinPalletHi = case.nonGTINPalletTi, case.nonGTINPalletHi
    case.nonGTINPalletTi, case.nonGTINPalletHi, case.nonGTINPalletQuantity = nil, nil, nil
  end)
  publish(tihi, M.QUEUE, {publishedAt = now - 4 * DAY, cicState = "REJECTED", cicCode = "CIC999",
                          cicDate = now - 3 * DAY, message = TEXT.tihi})
  publish(tihi, M.CERTIFIED, {publicationType = "INITIAL_LOAD", publishedAt = now - 3 * DAY, syncStatus = "PENDING"})
  -- 10. Failed to send: two front images (one in the DAM, one external).
  local images = item(10, function(_, each)
    each.images[#each.images + 1] = {url = "https://cdn.example.com/" .. each.gtin .. "-front.jpg",
                                     facing = "FRONT", typeOfInformation = "PRODUCT_IMAGE", source = "EXTERNAL"}
  end)
  publish(images, M.QUEUE, {publishedAt = now - DAY, syncStatus = "FAILED_TO_SEND",
                            message = TEXT.images:format(images.children[1].gtin)})
  -- 11. Still "in submitted status" in VIP after the migration.
  local vip = item(11, function(case) case.sandboxVipSubmitted = true end)
  publish(vip, M.QUEUE, {publishedAt = now - 2 * DAY, cicState = "REJECTED", cicCode = "CIC999",
                         cicDate = now - DAY, message = TEXT.submitted})
  publish(vip, M.PRODUCT_INTRO, {publishedAt = now - 40 * DAY, cicState = "RECEIVED", cicCode = "PI9001",
                                 cicDate = now - 40 * DAY, message = TEXT.pi9001})
  -- 12. An update that asks for a new IMF.
  publish(item(12, function(case) case.imfNumber = "IMF-000412" end), M.QUEUE,
          {publishedAt = now - 2 * DAY, cicState = "REJECTED", cicCode = "CIC999", cicDate = now - DAY,
           message = TEXT.imf:format("NEW ITEM", "IMF-000412")})
  -- 13. The each's recipient set to Product Introduction.
  local each_pi = item(13, function(_, each) each.recipients = {M.PRODUCT_INTRO} end)
  publish(each_pi, M.QUEUE, {publishedAt = now - 2 * DAY, cicState = "REJECTED", cicCode = "CIC999",
                             cicDate = now - DAY, message = TEXT.each_recipient:format(each_pi.children[1].gtin)})
end

function M.new_state(opts)
  return {hierarchies = {}, publications = {}, recipients = {}, changed = {}, reviews = {},
          review_delay = opts.review_delay or 2}
end

function M.init(state)
  scenarios(state)
end

M.TEXT = TEXT

M.routes = {
  {"GET", "^/items/v1/publications$", M.publications},
  {"POST", "^/items/v1/publications$", M.publish},
  {"POST", "^/items/v1/publications/republish$", M.republish},
  {"POST", "^/items/v1/publications/resend$", M.resend},
  {"POST", "^/items/v1/publications/withdraw$", M.withdraw},
  {"GET", "^/items/v1/items/(%d+)$", M.item},
  {"PUT", "^/items/v1/items/(%d+)$", M.update},
}

return M
