-- Kroger's rules for item hierarchies (docs/recipes.md, "Kroger
-- rules"), checked before an item is sent, so that a supplier learns in
-- seconds what Kroger QA would reject a day later. A rule is one entry of
-- `list`: its data and a small check; the walk, the shape of a finding and
-- the words for what is needed after a fix are shared.
local doc = require "kapi.doc"
local errors = require "kapi.errors"
local gtin = require "kapi.gtin"
local words = require "kapi.text"

local M = {PRODUCT_INTRO = "0011110000019", QUEUE = "0838016000123", CERTIFIED = "0838016000116"}

-- What an item already sent needs once fixed (domain.md §4).
local AFTER = {
  nothing = "then save; the publication goes out by itself, no republish needed",
  republish = "then Republish as New to the Certification Queue " .. M.QUEUE,
  resend = "then Resend the publication",
  withdraw = "then withdraw the Product Introduction publication, so the item is not sent twice",
}
local LEVELS = {BASE_UNIT_OR_EACH = "Each", PACK_OR_INNER_PACK = "Pack", CASE = "Case",
                DISPLAY_SHIPPER = "Display Shipper", PALLET = "Pallet"}
local NUMBERS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}

-- Readers accept anything, so fields are read through these. No pattern
-- here may backtrack over a run of the text: a field of 20,000 spaces
-- took 18 s through ("^%s*(.*%S)"), and items come from anyone's files.
local byte = string.byte
local SPACE = {[9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true} -- %s
local function text(v)                     -- trimmed; nil when blank or not a string
  if type(v) ~= "string" then return nil end
  local first, last = byte(v, 1), byte(v, -1)
  if first and not SPACE[first] and not SPACE[last] then return v end -- most text: no trimming
  v = words.trim(v)
  return v ~= "" and v or nil
end
local function array(v) return type(v) == "table" and v or {} end
local function whole(v)                    -- a positive integer, or nil
  local n = (type(v) == "number" or type(v) == "string") and math.tointeger(tonumber(v))
  return n and n > 0 and n or nil
end
local function given(v) return v ~= nil and type(v) ~= "userdata" end -- JSON null: userdata
local function show(v) return given(v) and tostring(v) or "empty" end
local function spell(n) return n == 0 and "no" or NUMBERS[n] or tostring(n) end
local function the(node) return "the " .. (LEVELS[node.level] or text(node.level) or "item") end
local function gtin14(code) -- as gtin.normalize, checking the code once
  if gtin.valid(code) then return ("0"):rep(14 - #code) .. code end
  return code
end
local plain = words.plain

local function facing(image) return (text(image.facing) or ""):upper() end
local function is_product(image) return text(image.typeOfInformation) == "PRODUCT_IMAGE" end
-- What the image rules read of a node, worked out once for all of them:
-- its product images in order, the facing of each, and whether a facing
-- other than FRONT is used twice.
local NO_IMAGES = {images = {}, facings = {}, doubled = false} -- never changed
local function image_view(node)
  local all = node.images
  if type(all) ~= "table" or all[1] == nil then return NO_IMAGES end
  local images, facings, doubled = {}, {}, false
  for _, image in ipairs(all) do
    if type(image) == "table" and is_product(image) then
      local f = facing(image)
      local n = #images + 1
      if not doubled and f ~= "FRONT" and f ~= "" then
        for k = 1, n - 1 do
          if facings[k] == f then doubled = true; break end
        end
      end
      images[n], facings[n] = image, f
    end
  end
  return {images = images, facings = facings, doubled = doubled}
end
-- The view of node: kept by a checker (ctx.image_view), made here when a
-- rule is called on its own.
local function images_of(node, ctx)
  local view = ctx and ctx.image_view
  return view and view(node) or image_view(node)
end
local function product_images(node, only, ctx)  -- only: a facing
  local view = images_of(node, ctx)
  if not only then return view.images end
  local out = {}
  for i, image in ipairs(view.images) do
    if view.facings[i] == only then out[#out + 1] = image end
  end
  return out
end
local function names(images, with_source)  -- file names (and DAM or EXTERNAL)
  local out = {}
  for i, image in ipairs(images) do
    local url = text(image.url)
    local path = url and url:gsub("[?#].*", "")
    local file = path and (path:match("^.*/(.*)$") or path) -- after the last "/", found once from the end
    out[i] = (url and (file ~= "" and file or url) or "an image without url")
      .. (with_source and text(image.source) and " from " .. image.source or "")
  end
  return table.concat(out, ", ")
end

-- Sentences end at . ! ? before a capital, so "16 fl. oz of" stays one
-- sentence; a few titles ("Dr. Smith") do not end one either.
local TITLES = {mr = true, mrs = true, ms = true, dr = true, st = true, no = true, vs = true}
local find = string.find
-- The stops . ! ? of s in order, from init on, as a function of init (init
-- only grows): each mark's next place is looked for once it is passed, so
-- a message of thousands of stops is read once, not once a stop.
local function stops(s)
  local dot, bang, question = 0, 0, 0        -- the next of each at or after the last init; false: none
  return function(init)
    if dot and dot < init then dot = find(s, ".", init, true) or false end
    if bang and bang < init then bang = find(s, "!", init, true) or false end
    if question and question < init then question = find(s, "?", init, true) or false end
    local at = dot
    if bang and (not at or bang < at) then at = bang end
    if question and (not at or question < at) then at = question end
    return at or nil
  end
end
-- Bytes by what they are to the sentence reader, as the patterns
-- [.!?], ["')], [%u"'] and %a say in the C locale (read here byte by
-- byte: a pattern call for each was most of the time splitting a message
-- took).
local function bytes_in(ranges)
  local set = {}
  for _, r in ipairs(ranges) do
    for b = r[1], r[2] or r[1] do set[b] = true end
  end
  return set
end
local IS_STOP, IS_CLOSER = bytes_in {{46}, {33}, {63}}, bytes_in {{34}, {39}, {41}}
local IS_UPPER, IS_ALPHA = bytes_in {{65, 90}, {34}, {39}}, bytes_in {{65, 90}, {97, 122}}
local function sentences(s)
  local out, start, next_stop = {}, 1, stops(s)
  -- The ends: [.!?]+["')]*%s+, taken left to right as gmatch would. A run
  -- of stops is one end: where it fails, every stop in it fails the same way.
  local stop = next_stop(1)
  while stop do
    local i = stop
    while IS_STOP[byte(s, i)] do i = i + 1 end
    local run_end = i
    while IS_CLOSER[byte(s, i)] do i = i + 1 end
    local spaces_from = i
    while SPACE[byte(s, i)] do i = i + 1 end
    local next_start = i > spaces_from and i or nil
    if next_start and IS_UPPER[byte(s, next_start)] then
      local j, from = stop - 1, math.max(1, stop - 4) -- titles are short
      while j >= from and IS_ALPHA[byte(s, j)] do j = j - 1 end
      if not TITLES[s:sub(j + 1, stop - 1):lower()] then
        out[#out + 1], start = s:sub(start, next_start - 1), next_start
      end
    end
    stop = next_stop(next_start or run_end)
  end
  if s:find("%S", start) then out[#out + 1] = s:sub(start) end
  return out
end

-- The word and the white space just before at ("%S+%s+$" of what comes
-- before it), read backwards so that a run is read once.
local function word_before(s, at)
  local i = at - 1
  while i > 0 and SPACE[byte(s, i)] do i = i - 1 end
  if i == at - 1 or i == 0 then return "" end
  local j = i
  while j > 0 and not SPACE[byte(s, j)] do j = j - 1 end
  return s:sub(j + 1, at - 1)
end

-- The first digit of s at or after init, as a function of init (init only
-- grows): each digit's next place is looked for once it is passed, by
-- plain searches, a tenth of the time find(s, "%d", init) takes.
local DIGITS = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
local function digits(s)
  local next_at = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0} -- at or after the last init; false: none
  return function(init)
    local first
    for d = 1, 10 do
      local at = next_at[d]
      if at and at < init then
        at = find(s, DIGITS[d], init, true) or false
        next_at[d] = at
      end
      if at and (not first or at < first) then first = at end
    end
    return first
  end
end

-- Digits standing alone, not part of 32, 1.5, 2,000, 24/7 or a code like B6.
local NONE = {} -- never changed
local function lone_digits(s)
  local next_digit = digits(s)
  -- The runs gmatch("()(%d[%d.,/]*)") gives, found from one digit to the next.
  local from = next_digit(1)
  if not from then return NONE end
  local found = {}
  while from do
    local after = s:match("^%d[%d.,/]*()", from)
    local last = after - 1                   -- "3." and "3," end a sentence or a list: one digit
    while last > from and (byte(s, last) == 46 or byte(s, last) == 44) do last = last - 1 end
    if last == from and not (from > 1 and find(s, "^%w", from - 1)) and not find(s, "^%a", from + 1) then
      found[#found + 1] = ("%q"):format(word_before(s, from) .. s:match("^%d%s*%S*", from))
    end
    from = next_digit(after)
  end
  return found
end

-- Price and promotion words, whole words. "free" may describe the item, as
-- in "gluten-free" or "free of artificial colors".
local PROMOTION = {}
for word in ("price prices priced sale save savings discount discounted deal deals free coupon"
             .. " coupons bogo clearance"):gmatch("%a+") do PROMOTION[word] = true end
local PROMOTION_WORDS = {}
for word in pairs(PROMOTION) do PROMOTION_WORDS[#PROMOTION_WORDS + 1] = word end
-- Whether one of the words is in text at all, as plain searches: most
-- bullets have none, and then no word of theirs needs looking at.
local function any_promotion_word(lower)
  for _, word in ipairs(PROMOTION_WORDS) do
    if find(lower, word, 1, true) then return true end
  end
  return false
end
local function find_promotion(bullet)
  local lower = bullet:lower()
  if lower:find("$", 1, true) then return "$" end
  if lower:find("off", 1, true) and lower:find("%%%s*off%f[%A]") then return "% off" end
  if not any_promotion_word(lower) then return nil end
  for from, word, to in lower:gmatch("()(%a+)()") do
    local describes = word == "free" and (lower:sub(from - 1, from - 1) == "-"
      or lower:find("^%s+of%f[%A]", to) or lower:find("^%s+from%f[%A]", to))
    if PROMOTION[word] and not describes then return word end
  end
end
-- Bullets repeat across a supplier's items: each is judged once (the
-- memory is let go after a few thousand, for a long-running process).
local promotions, promotions_kept = {}, 0
local function promotion(bullet)
  local word = promotions[bullet]
  if word == nil then
    word = find_promotion(bullet) or false
    if promotions_kept >= 4096 then promotions, promotions_kept = {}, 0 end
    promotions[bullet], promotions_kept = word, promotions_kept + 1
  end
  return word or nil
end

local END_STOPS = {[46] = true, [33] = true, [63] = true, [59] = true, [58] = true} -- . ! ? ; :
-- KR-MSG-REUSED's view of an item: its message made plain (the key its
-- copies share), its GTIN, and what its bullets repeat of the message;
-- false when it has no message.
local NO_BULLETS = {} -- never changed
local function message_parts(node, plain, sentences)
  local message = text(node.marketingMessage)
  if not message then return false end
  -- A message is made plain once (no copy is kept of what most likely
  -- comes once); its bullets and sentences, which repeat, through plain.
  local key, bullets, pieces = words.plain(message), NO_BULLETS, nil -- the message's sentences, once a bullet is in it
  for i, bullet in ipairs(array(node.featureBenefits)) do
    local b = text(bullet) and plain(bullet)
    if b and not pieces and key:find(b, 1, true) then
      pieces = {[key] = true}
      for _, sentence in ipairs(sentences(message)) do pieces[plain(sentence)] = true end
    end
    if b and pieces and pieces[b] then
      if bullets == NO_BULLETS then bullets = {} end
      bullets[#bullets + 1] = ("bullet %d %q repeats the marketing message"):format(i, bullet)
    end
  end
  return {key = key, gtin = gtin14(text(node.gtin) or ""), bullets = bullets}
end

local LOWER_OR_PUNCT = bytes_in {{97, 122}, {33, 47}, {58, 64}, {91, 96}, {123, 126}} -- [%l%p]
-- problems (nil: none yet) with one more, made from fmt and its values.
local function said(problems, fmt, ...)
  problems = problems or {}
  problems[#problems + 1] = fmt:format(...)
  return problems
end
local function bullet_problems(bullets)
  local problems
  if #bullets < 5 or #bullets > 7 then
    problems = said(problems, "%s feature bullet%s, not 5 to 7", spell(#bullets), #bullets == 1 and "" or "s")
  end
  for i, bullet in ipairs(bullets) do
    local b = text(bullet)
    if not b then problems = said(problems, "bullet %d is %s", i, type(bullet) == "string" and "empty" or "not text") end
    -- Only a lowercase letter or punctuation first is wrong: digits and
    -- non-ASCII letters cannot be judged for case here.
    if b and LOWER_OR_PUNCT[byte(b)] then problems = said(problems, "bullet %d %q does not start with a capital", i, b) end
    if b and END_STOPS[byte(b, -1)] then problems = said(problems, "bullet %d %q ends with %q", i, b, b:sub(-1)) end
    local word = b and promotion(b)
    if word then problems = said(problems, "bullet %d %q has the promotion word %q", i, b, word) end
  end
  return problems and table.concat(problems, "; ")
end

-- The rules, in item-format.md's order. `on`: "every" node, the "consumer"
-- unit or the "top" level. check(node, ctx) returns nil when the node
-- passes, else the message and, where they are not the rule's, the fix and
-- the attribute. In a fix "%s" is the level ("the Each"); the `after` words
-- follow. ctx: top, pallet (a PALLET node, if any), seen (the run's messages).
M.list = {
  {id = "KR-GTIN-CHECK", severity = "error", after = "republish", on = "every",
   attribute = "gtin", summary = "every GTIN has a valid length and check digit",
   fix = "enter the GTIN of %s as on its barcode (a GTIN cannot be edited: recreate the item)",
   check = function(node)
     local ok, why = gtin.valid(node.gtin)
     local own = not given(node.gtin) and the(node) .. " has no GTIN" or not ok and why or nil
     local model_gtin = text(node.modelGtin)
     if model_gtin then ok, why = gtin.valid(model_gtin) end -- none: nothing to say, no message to make
     local model = model_gtin and not ok and "Model GTIN: " .. why or nil
     if own then return own .. (model and "; " .. model or "") end
     if model then return model, "correct Model GTIN on %s, or clear it", "modelGtin" end
   end},
  {id = "KR-IMG-FRONT", severity = "error", after = "republish", on = "consumer",
   attribute = "images", summary = "the consumer unit has exactly one FRONT product image",
   fix = "have exactly one product image facing Front on %s (in the DAM or external, not both)",
   check = function(node, ctx)
     local fronts = product_images(node, "FRONT", ctx)
     if #fronts == 0 then return the(node) .. " (the consumer unit) has no FRONT product image" end
     if #fronts > 1 then
       return ("%s product images use the facing FRONT (%s)"):format(
         spell(#fronts), names(fronts, true))
     end
   end},
  {id = "KR-IMG-FACING-DUP", severity = "error", after = "republish", on = "consumer",
   attribute = "images", summary = "no facing is used twice among product images",
   fix = "give each product image of %s its own facing (Front, Back, Left, Right, Top, Bottom)",
   check = function(node, ctx)
     local view = images_of(node, ctx)
     if not view.doubled then return nil end
     local images, facings, by_facing = view.images, view.facings, {}
     for i, image in ipairs(images) do     -- grouped once, in order, not a pass per image
       local f = facings[i]
       local same = by_facing[f] or {}
       by_facing[f], same[#same + 1] = same, image
     end
     local doubled, done = {}, {FRONT = true, [""] = true} -- a doubled FRONT: KR-IMG-FRONT's
     for i in ipairs(images) do
       local f = facings[i]
       local same = by_facing[f]
       if #same > 1 and not done[f] then
         doubled[#doubled + 1] = ("%s product images use the facing %s (%s)"):format(spell(#same), f, names(same))
       end
       done[f] = true
     end
     return doubled[1] and table.concat(doubled, "; ")
   end},
  {id = "KR-IMG-COUNT", severity = "error", after = "republish", on = "consumer",
   attribute = "images", summary = "at most 6 product images",
   fix = "keep at most 6 product images on %s: one Front, the others each a different facing",
   check = function(node, ctx)
     local n = #product_images(node, nil, ctx)
     if n > 6 then
       return ("%s has %d product images; Kroger takes 6 at most"):format(the(node), n)
     end
   end},
  {id = "KR-IMG-TYPE", severity = "error", after = "republish", on = "every",
   attribute = "images", summary = "every image sent to Kroger is PRODUCT_IMAGE",
   fix = "remove these images from %s or exclude them for Kroger (Share With - Exclude)",
   check = function(node)                   -- any level: all images go to Kroger
     local wrong = {}
     for i, image in ipairs(array(node.images)) do
       if type(image) ~= "table" then wrong[#wrong + 1] = "image " .. i .. " (not an image)"
       elseif not is_product(image) then
         local kind = text(image.typeOfInformation) or "no type"
         wrong[#wrong + 1] = names {image} .. " (" .. kind .. ")"
       end
     end
     if #wrong > 0 then
       return ("images of %s that are not product images: %s"):format(
         the(node), table.concat(wrong, ", "))
     end
   end},
  {id = "KR-TIHI-NONGTIN", severity = "warning", after = "republish", on = "top",
   attribute = "nonGTINPalletTi", summary = "no pallet GTIN: Non-GTIN Ti/Hi on the top level",
   fix = "on %s (the highest level) enter Non-GTIN Pallet Ti and Hi, not GTIN Pallet Ti/Hi",
   check = function(node, ctx)
     local as_gtin = given(node.gtinPalletTi) or given(node.gtinPalletHi)
     local both = whole(node.nonGTINPalletTi) and whole(node.nonGTINPalletHi)
     if ctx.pallet or both and not as_gtin then return end
     return ("the hierarchy has no pallet GTIN, and %s has Non-GTIN Pallet Ti %s, Hi %s%s"):format(
       the(node), show(node.nonGTINPalletTi), show(node.nonGTINPalletHi), not as_gtin and "" or
       (", GTIN Pallet Ti %s, Hi %s"):format(show(node.gtinPalletTi), show(node.gtinPalletHi)))
   end},
  {id = "KR-TIHI-QUANTITY", severity = "error", after = "republish", on = "top",
   attribute = "nonGTINPalletQuantity", summary = "pallet quantity = Ti × Hi",
   fix = "set Non-GTIN Pallet Quantity on %s to Ti × Hi, or correct Ti or Hi",
   check = function(node, ctx)
     if not ctx.pallet then                 -- Ti or Hi missing is KR-TIHI-NONGTIN's finding
       local ti, hi = whole(node.nonGTINPalletTi), whole(node.nonGTINPalletHi)
       if not (ti and hi) or whole(node.nonGTINPalletQuantity) == ti * hi then return end
       return ("Non-GTIN Pallet Quantity of %s is %s, but Ti × Hi is %d × %d = %d"):format(
         the(node), show(node.nonGTINPalletQuantity), ti, hi, ti * hi)
     end
     -- GTIN Pallet Ti/Hi sit on the top level, the pallet or the level the pallet holds.
     for _, holder in ipairs {node, ctx.pallet, table.unpack(array(ctx.pallet.children))} do
       local ti = type(holder) == "table" and whole(holder.gtinPalletTi)
       local hi, quantity = ti and whole(holder.gtinPalletHi), whole(ctx.pallet.quantityOfChildren)
       if hi and quantity == ti * hi then return end
       if hi then
         return ("the pallet %s holds %s items, but GTIN Pallet Ti × Hi on %s is %d × %d = %d")
           :format(show(ctx.pallet.gtin), show(ctx.pallet.quantityOfChildren), the(holder), ti, hi,
                   ti * hi),
           "make GTIN Pallet Ti × Hi equal the pallet's Quantity of Next Lower Level Items",
           "gtinPalletTi"
       end
     end
   end},
  {id = "KR-ACTIVITY-CODE", severity = "error", after = "nothing", on = "every",
   attribute = "productActivityTypeCode", summary = "productActivityTypeCode is not MADE_IN",
   fix = "set Product Activity Type Code on %s to LAST_PROCESSING (on every level with MADE_IN)",
   check = function(node)
     if text(node.productActivityTypeCode) == "MADE_IN" then
       return ("Product Activity Type Code of %s is MADE_IN (Made in Country), which 1WorldSync"
         .. " does not send to Kroger"):format(the(node))
     end
   end},
  {id = "KR-MODEL-SELF", severity = "error", after = "republish", on = "every",
   attribute = "modelGtin", summary = "no item is its own model; no model GTIN if none exists",
   fix = "on %s set Model GTIN Exists to No and clear Model GTIN, unless another, already"
     .. " synchronised item is the model",
   check = function(node)
     local model = text(node.modelGtin)
     if model and gtin14(model) == gtin14(text(node.gtin) or "") then
       return ("%s names itself (%s) as its Model GTIN"):format(the(node), model)
     elseif model and node.modelGtinExists == false then
       return ("Model GTIN Exists is No on %s, but Model GTIN is %s"):format(the(node), model)
     end
   end},
  {id = "KR-SIZE", severity = "error", after = "republish", on = "consumer",
   attribute = "customerFacingSize", summary = "the consumer unit has a customer facing size",
   fix = 'enter Customer Facing Size on %s as the package states it (e.g. "16 fl oz")',
   check = function(node)
     if not text(node.customerFacingSize) then
       return the(node) .. " (the consumer unit) has no Customer Facing Size"
     end
   end},
  -- Content rules judge the consumer unit. A missing message is reported once,
  -- by KR-MSG-LENGTH (it has no characters); missing bullets by KR-FEATURES.
  {id = "KR-MSG-LENGTH", severity = "warning", after = "republish", on = "consumer",
   attribute = "marketingMessage", summary = "marketing message 1–3 sentences, 300–400 characters",
   fix = "write the Marketing Message of %s in 1–3 sentences and 300–400 characters",
   check = function(node, ctx)
     local message = text(node.marketingMessage)
     if not message then return the(node) .. " (the consumer unit) has no marketing message" end
     local chars, count = utf8.len(message) or #message, #(ctx and ctx.sentences or sentences)(message)
     if chars < 300 or chars > 400 or count > 3 then
       return ("the marketing message of %s has %d characters in %s sentence%s"):format(
         the(node), chars, spell(count), count == 1 and "" or "s")
     end
   end},
  {id = "KR-MSG-NUMBERS", severity = "warning", after = "republish", on = "consumer",
   attribute = "marketingMessage", summary = "numbers nine and below are spelled out",
   fix = 'spell out numbers nine and below ("two", not "2") in the Marketing Message of %s',
   check = function(node)
     local digits = lone_digits(text(node.marketingMessage) or "")
     if #digits > 0 then
       return "the marketing message has figures for numbers below ten: "
         .. table.concat(digits, ", ")
     end
   end},
  {id = "KR-MSG-REUSED", severity = "error", after = "republish", on = "consumer", context = true,
   attribute = "marketingMessage", summary = "the message is not another item's, nor a bullet",
   fix = "write a Marketing Message for %s of its own, copied neither from another item nor from"
     .. " its Feature Benefits",
   check = function(node, ctx)
     local own = ctx.prepared[node]
     if own == nil then own = message_parts(node, ctx.plain, ctx.sentences) end
     if not own then return end
     local first = ctx.seen[own.key] -- one item in two hierarchies is no copy
     ctx.seen[own.key] = first or own.gtin
     local copied = first and first ~= own.gtin and "the marketing message is the same as that of " .. first or nil
     if #own.bullets == 0 then return copied end
     local problems = {}
     if copied then problems[1] = copied end
     table.move(own.bullets, 1, #own.bullets, #problems + 1, problems)
     return table.concat(problems, "; ")
   end,
   -- What needs the item alone, worked out as it comes (the run's other
   -- messages are not known yet).
   prepare = function(node, checker)
     checker.prepared[node] = message_parts(node, checker.plain, checker.sentences)
   end},
  {id = "KR-FEATURES", severity = "warning", after = "republish", on = "consumer",
   attribute = "featureBenefits", summary = "5–7 bullets: capital first, no end stop, no promotion",
   fix = "write 5–7 Feature Benefits on %s, each starting with a capital, without end punctuation,"
     .. " prices or promotion",
   check = function(node) return bullet_problems(array(node.featureBenefits)) end},
  {id = "KR-REASON-CODE", severity = "warning", after = "republish", on = "every",
   attribute = "krogerSubmissionReasonCode", summary = "no reason code when an IMF exists",
   fix = "leave Kroger Item Submission Reason Code blank on %s unless a new IMF is needed",
   check = function(node)
     local imf, code = text(node.imfNumber), text(node.krogerSubmissionReasonCode)
     if imf and code then
       return ("Kroger Item Submission Reason Code of %s is %q, but it has IMF %s already: the"
         .. " update asks for a new IMF"):format(the(node), code, imf)
     end
   end},
  {id = "KR-WERCS", severity = "error", after = "resend", on = "every",
   attribute = "wercsRegistered", summary = "an item that requires WERCS is registered",
   fix = "finish the WERCS registration of %s in WERCS",
   check = function(node)
     if node.requiresWercs == true and node.wercsRegistered ~= true then
       return the(node) .. " requires WERCS (hazardous material) but is not registered in WERCS"
     end
   end},
  {id = "KR-RECIPIENT", severity = "error", after = "withdraw", on = "every", context = true,
   attribute = "recipients", summary = "no level lists Product Introduction 0011110000019",
   fix = "publish %s to the Certification Queue " .. M.QUEUE .. " instead",
   check = function(node, ctx)
     for _, recipient in ipairs(array(node.recipients)) do
       if text(recipient) == M.PRODUCT_INTRO then
         local lower = node ~= ctx.top and "set the Recipients of %s to ALL and publish the top"
           .. " level only (Republish it as New if rejected)"
         return ("%s lists Kroger Product Introduction %s as a recipient"):format(
           the(node), M.PRODUCT_INTRO), lower or nil
       end
     end
   end},
}

M.by_id = {}
for _, rule in ipairs(M.list) do M.by_id[rule.id] = rule end

local function chosen(ids)
  if ids == nil then return M.list end
  if type(ids) ~= "table" then errors.usage("rules.check: opts.rules must list rule ids", 3) end
  local wanted, out = {}, {}
  for k, v in pairs(ids) do
    local id = type(k) == "string" and k or v    -- a set {[id] = true} or an array {id, ...}
    if not M.by_id[id] then errors.usage("rules.check: unknown rule id " .. tostring(id), 3) end
    wanted[id] = v ~= false
  end
  for _, rule in ipairs(M.list) do if wanted[rule.id] then out[#out + 1] = rule end end
  return out
end

-- A hierarchy's nodes, depth-first; non-tables and cycles are skipped.
local function nodes_of(node, out, seen)
  if type(node) ~= "table" or seen[node] then return out end
  seen[node], out[#out + 1] = true, node
  for _, child in ipairs(array(node.children)) do nodes_of(child, out, seen) end
  return out
end

local function finding(rule, node, message, fix, attribute)
  local code, where = node.gtin, the(node)
  return {rule = rule.id, severity = rule.severity, level = text(node.level) or "",
          gtin = (type(code) == "string" or type(code) == "number") and gtin14(code .. "") or "",
          attribute = attribute or rule.attribute, message = message,
          fix = (fix or rule.fix):gsub("%%s", function() return where end)
            .. "; " .. AFTER[rule.after]}
end

-- Rules `on` a node: every node, the consumer unit, or the top level.
local function applies(rule, node, top)
  return rule.on == "every" or (rule.on == "top" and node == top)
         or (rule.on == "consumer" and node.isConsumerUnit == true)
end

-- A rule judges a node alone unless it is on the top level or looks at
-- the run (context: the top, the other items' messages).
local function alone(rule) return rule.on ~= "top" and not rule.context end

-- A run's checks, started before the run is whole: look(node) judges a
-- node by the rules that need nothing but the node, as soon as it has
-- come (preflight does while the next page of items is on its way), and
-- check(hierarchies) then gives exactly what rules.check gives, using
-- what was worked out. A node must not change after it was looked at.
local Checker = {}
Checker.__index = Checker

function M.checker(opts)
  if opts ~= nil and type(opts) ~= "table" then errors.usage("rules.checker: opts is not a table") end
  local self = setmetatable({rules = chosen(opts and opts.rules), looked = setmetatable({}, {__mode = "k"}),
                             prepared = setmetatable({}, {__mode = "k"}), plains = {}}, Checker)
  -- What look runs on a consumer unit and on any other node: the rules
  -- that judge a node alone, and those that prepare for the run.
  self.on_consumer, self.on_other, self.judges_alone = {}, {}, {}
  for i, rule in ipairs(self.rules) do
    self.judges_alone[i] = alone(rule)
    if (rule.on == "every" or rule.on == "consumer") and (alone(rule) or rule.prepare) then
      self.on_consumer[#self.on_consumer + 1] = i
      if rule.on == "every" then self.on_other[#self.on_other + 1] = i end
    end
  end
  -- The image rules judge one node after the other: the last node's
  -- view is kept.
  local last_node, last_view
  function self.image_view(node)
    if node ~= last_node then last_node, last_view = node, image_view(node) end
    return last_view
  end
  -- Text made plain once a checker: a supplier's items share bullets.
  local plains = self.plains
  function self.plain(text_)
    local p = plains[text_]
    if not p then p = plain(text_); plains[text_] = p end
    return p
  end
  -- A message's sentences are asked for by the rules that read it, one
  -- after the other: the last message's are kept.
  local last_text, last_list
  function self.sentences(text_)             -- a list not to be changed
    if text_ ~= last_text then last_text, last_list = text_, sentences(text_) end
    return last_list
  end
  return self
end

--- What the rules that judge a node alone find in it, kept for check.
--- found[i] is rule i's {message, fix, attribute} when it found something
--- (nil otherwise); found.hits lists those i, in order. A node with no
--- finding shares one empty record.
local NOTHING_FOUND = {hits = {}} -- never changed
function Checker:look(node)
  if type(node) ~= "table" or self.looked[node] then return end
  local found, rules, judges_alone = NOTHING_FOUND, self.rules, self.judges_alone
  for _, i in ipairs(node.isConsumerUnit == true and self.on_consumer or self.on_other) do
    local rule = rules[i]
    if judges_alone[i] then
      local message, fix, attribute = rule.check(node, self)
      if message then
        if found == NOTHING_FOUND then found = {hits = {}} end
        found[i] = {message, fix, attribute}
        found.hits[#found.hits + 1] = i
      end
    else
      rule.prepare(node, self)
    end
  end
  self.looked[node] = found
end

-- Rule i judges node now, adding what it finds.
local function judge(rules, i, node, top, ctx, findings)
  local rule = rules[i]
  if applies(rule, node, top) then
    local message, fix, attribute = rule.check(node, ctx)
    if message then findings[#findings + 1] = finding(rule, node, message, fix, attribute) end
  end
end

-- What look kept of rule i on node, added.
local function kept(rules, i, node, found, findings)
  local earlier = found[i]
  findings[#findings + 1] = finding(rules[i], node, earlier[1], earlier[2], earlier[3])
end

-- A looked-at node's findings, in the order of the rules: those kept
-- from look, and those of the rules that need the run, judged now.
local function judge_looked(node, found, rules, contextual, top, ctx, findings)
  local hits, h = found.hits, 1
  for _, i in ipairs(contextual) do
    while hits[h] and hits[h] < i do kept(rules, hits[h], node, found, findings); h = h + 1 end
    judge(rules, i, node, top, ctx, findings)
  end
  while hits[h] do kept(rules, hits[h], node, found, findings); h = h + 1 end
end

function Checker:check(hierarchies)
  if type(hierarchies) ~= "table" then errors.usage("rules.check: expects hierarchies, a table") end
  local rules, findings, seen, looked = self.rules, {}, {}, self.looked
  local contextual = {}
  for i, rule in ipairs(rules) do
    if not alone(rule) then contextual[#contextual + 1] = i end
  end
  local run = (hierarchies[1] ~= nil or next(hierarchies) == nil) and hierarchies or {hierarchies}
  -- One context, one list of nodes and one set of those seen, for every
  -- hierarchy in turn: a rule keeps nothing of them.
  local ctx = {seen = seen, plain = self.plain, sentences = self.sentences, prepared = self.prepared,
               image_view = self.image_view}
  local nodes, in_nodes = {}, {}
  for _, top in ipairs(run) do
    for i = #nodes, 1, -1 do in_nodes[nodes[i]], nodes[i] = nil, nil end
    nodes_of(top, nodes, in_nodes)
    ctx.top, ctx.pallet = top, nil
    for _, node in ipairs(nodes) do
      if node.level == "PALLET" then ctx.pallet = ctx.pallet or node end
    end
    for _, node in ipairs(nodes) do
      local found = looked[node]
      if found then
        judge_looked(node, found, rules, contextual, top, ctx, findings)
      else
        for i = 1, #rules do judge(rules, i, node, top, ctx, findings) end
      end
    end
  end
  return findings
end

function M.check(hierarchies, opts)
  if type(hierarchies) ~= "table" then errors.usage("rules.check: expects hierarchies, a table") end
  if opts ~= nil and type(opts) ~= "table" then errors.usage("rules.check: opts is not a table") end
  return M.checker(opts):check(hierarchies)
end

function M.count(findings)
  local errors_found, warnings = 0, 0
  for _, f in ipairs(findings) do
    if f.severity == "error" then errors_found = errors_found + 1 else warnings = warnings + 1 end
  end
  return errors_found, warnings
end

doc.declare("kapi.rules.kroger.check", M.check, [[
kapi.rules.kroger.check(hierarchies [, {rules = ids}]) -> findings
Checks item hierarchies (one, or an array of them: a run) against Kroger's
rules before they are sent. Each finding is {rule, severity, gtin, level,
attribute, message, fix}: message names the values found, fix says what to
change where and whether a Republish, a Resend or nothing is needed after.
rules.count(findings) gives the numbers of errors and warnings.
Example:
  local h = kapi.json.decode(io.open("case.json"):read("a"))
  for _, f in ipairs(kapi.rules.kroger.check(h)) do print(f.rule, f.gtin, f.message) end]])

doc.declare("kapi.rules.kroger.checker", M.checker, [[
kapi.rules.kroger.checker([{rules = ids}]) -> checker
A run's checks begun before the run is whole: checker:look(node) judges a
level by the rules that need only that level, as soon as it has come (while
the next page is fetched); checker:check(hierarchies) then returns exactly
what rules.check returns, with that work done. A level must not change
after it was looked at.
Example:
  local checker = kapi.rules.kroger.checker()
  for item in c1:fetch{ipGln = gln} do checker:look(item) end
  local findings = checker:check(hierarchies)]])

return M
