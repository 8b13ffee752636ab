-- kapi.rules.kroger: the examples (examples/items), every rule of the table
-- in docs/recipes.md (item-format.md's, as users read it) broken alone and
-- fixed again, malformed input, and the sandbox's generated items.
local rules = require "kapi.rules.kroger"
local json = require "kapi.json"
local gtin = require "kapi.gtin"
local supplier = require "kapi.sandbox.supplier"
local process = require "helpers.process"

local SOURCE = process.source_dir
local KEYS = {"attribute", "fix", "gtin", "level", "message", "rule", "severity"}
local PI, QUEUE = "0011110000019", "0838016000123"
local EACH, CASE = "00614141000012", "10614141000019"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

local function example(name) return json.decode(read(SOURCE .. "/examples/items/" .. name)) end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

-- A fresh copy of the clean case, and its each.
local function clean()
  local case = copy(example("clean-case.json"))
  return case, case.children[1]
end

-- Rule ids in order, and severities by id, from the table in docs/recipes.md.
local function documented()
  local ids, severity, in_table = {}, {}, false
  for line in read(SOURCE .. "/docs/recipes.md"):gmatch("[^\n]*") do
    if line:match("^##") then in_table = line == "### Kroger rules" end
    local id, level = line:match("^| `(KR%-[%w%-]+)` | (%a+) |")
    if in_table and id then ids[#ids + 1], severity[id] = id, level end
  end
  return ids, severity
end

local function ids_of(list)
  local out = {}
  for i, entry in ipairs(list) do out[i] = entry.rule or entry.id end
  return out
end

local function only(findings, id)
  local out = {}
  for _, f in ipairs(findings) do if f.rule == id then out[#out + 1] = f end end
  return out
end

-- Replaces text in the each's marketing message: reword(each, from, to, from, to, ...).
local function reword(each, ...)
  local edits, message = {...}, each.marketingMessage
  for i = 1, #edits, 2 do
    local at = assert(message:find(edits[i], 1, true), edits[i])
    message = message:sub(1, at - 1) .. edits[i + 1] .. message:sub(at + #edits[i])
  end
  each.marketingMessage = message
end

local SENTENCE = "Mix one part concentrate with two parts water or milk for a rich iced coffee"
  .. " at home in seconds."

local function image(name, facing, kind, source)
  return {url = "https://images.example.com/" .. EACH .. "_" .. name, facing = facing,
          typeOfInformation = kind or "PRODUCT_IMAGE", source = source or "DAM"}
end

-- A finding has exactly the keys of item-format.md, all strings.
local function assert_shape(f)
  local keys = {}
  for k, v in pairs(f) do
    keys[#keys + 1] = k
    assert.equal("string", type(v), k)
  end
  table.sort(keys)
  assert.same(KEYS, keys)
end

describe("kapi.rules.kroger", function()
  it("finds nothing wrong with the clean example", function()
    assert.same({}, rules.check(example("clean-case.json")))
  end)

  it("finds the two defects of the duplicate-facing example, and nothing else", function()
    local findings = rules.check(example("duplicate-facing-and-made-in.json"))
    assert.same({"KR-ACTIVITY-CODE", "KR-IMG-FACING-DUP"}, ids_of(findings))
    local made_in, facing = findings[1], findings[2]
    for _, f in ipairs(findings) do assert_shape(f) end
    assert.same({rule = "KR-ACTIVITY-CODE", severity = "error", gtin = CASE, level = "CASE",
                 attribute = "productActivityTypeCode"},
                {rule = made_in.rule, severity = made_in.severity, gtin = made_in.gtin,
                 level = made_in.level, attribute = made_in.attribute})
    assert.same({rule = "KR-IMG-FACING-DUP", severity = "error", gtin = EACH,
                 level = "BASE_UNIT_OR_EACH", attribute = "images"},
                {rule = facing.rule, severity = facing.severity, gtin = facing.gtin,
                 level = facing.level, attribute = facing.attribute})
    assert.equal("two product images use the facing BACK (00614141000012_back.png, "
                 .. "00614141000012_left.png)", facing.message)
    assert.matches("MADE_IN", made_in.message)
    assert.matches("LAST_PROCESSING.*then save; the publication goes out by itself", made_in.fix)
    assert.matches("the Each.*then Republish as New to the Certification Queue 0838016000123$",
                   facing.fix)
    assert.same({2, 0}, {rules.count(findings)})
  end)

  it("has the rules of the documented table, in its order, with its severities", function()
    local ids, severity = documented()
    assert.equal(17, #ids)
    assert.same(ids, ids_of(rules.list))
    for _, rule in ipairs(rules.list) do
      assert.equal(severity[rule.id], rule.severity, rule.id)
      assert.equal(rule, rules.by_id[rule.id])
      assert.equal("string", type(rule.summary), rule.id)
      assert.is_nil(rule.summary:find("\n"), rule.id)
      assert.equal("function", type(rule.check), rule.id)
      assert.truthy(({nothing = 1, republish = 1, resend = 1, withdraw = 1})[rule.after], rule.id)
    end
    assert.same({"0011110000019", "0838016000123", "0838016000116"},
                {rules.PRODUCT_INTRO, rules.QUEUE, rules.CERTIFIED})
  end)
end)

-- Each rule broken alone: break(case, each) makes the clean example fail that
-- rule and no other, on the node `on`; fix(case, each) does what the finding's
-- fix says, after which nothing fails. `says` are patterns the message holds.
local BROKEN = {
  {"KR-GTIN-CHECK", "a wrong check digit, named", on = "each", attribute = "gtin",
   gtin = "00614141000013",
   says = {'GTIN "00614141000013" has check digit 3; it should be 2'},
   fix_says = {"barcode", "Republish as New"},
   ["break"] = function(_, each) each.gtin = "00614141000013" end,
   fix = function(_, each) each.gtin = EACH end},
  {"KR-GTIN-CHECK", "a GTIN with a letter", on = "case", gtin = "1061414100001X",
   says = {'non%-digit "X" at position 14'},
   ["break"] = function(case) case.gtin = "1061414100001X" end,
   fix = function(case) case.gtin = CASE end},
  {"KR-GTIN-CHECK", "an invalid model GTIN", on = "each", attribute = "modelGtin",
   says = {"Model GTIN: GTIN \"00614141000020\" has check digit 0; it should be 9"},
   ["break"] = function(_, each) each.modelGtinExists, each.modelGtin = true, "00614141000020" end,
   fix = function(_, each) each.modelGtinExists, each.modelGtin = false, nil end},
  {"KR-IMG-FRONT", "a second front image, external", on = "each", attribute = "images",
   says = {"two product images use the facing FRONT %(00614141000012_front.png from DAM, "
           .. "00614141000012_front2.jpg from EXTERNAL%)"},
   fix_says = {"one product image facing Front"},
   ["break"] = function(_, each)
     table.insert(each.images, image("front2.jpg", "FRONT", nil, "EXTERNAL"))
   end,
   fix = function(_, each) table.remove(each.images) end},
  {"KR-IMG-FRONT", "no front image", on = "each", says = {"has no FRONT product image"},
   ["break"] = function(_, each) each.images[1].facing = "RIGHT" end,
   fix = function(_, each) each.images[1].facing = "FRONT" end},
  {"KR-IMG-FRONT", "the only front image is a barcode", on = "each", also = {"KR-IMG-TYPE"},
   says = {"has no FRONT product image"},
   ["break"] = function(_, each) each.images[1].typeOfInformation = "BARCODE" end,
   fix = function(_, each) each.images[1].typeOfInformation = "PRODUCT_IMAGE" end},
  {"KR-IMG-FACING-DUP", "two images facing LEFT and two facing TOP", on = "each",
   says = {"two product images use the facing LEFT", "two product images use the facing TOP"},
   ["break"] = function(_, each)
     each.images[2].facing = "LEFT"
     table.insert(each.images, image("top.png", "TOP"))
     table.insert(each.images, image("top2.png", "top"))
   end,
   fix = function(_, each)
     each.images[2].facing, each.images[5].facing = "BACK", "BOTTOM"
   end},
  {"KR-IMG-COUNT", "seven product images", on = "each", says = {"has 7 product images"},
   ["break"] = function(_, each)
     for _, f in ipairs {"RIGHT", "TOP", "BOTTOM"} do table.insert(each.images, image(f, f)) end
     table.insert(each.images, image("extra.png", nil))     -- no facing: not a duplicate one
   end,
   fix = function(_, each) table.remove(each.images) end},
  {"KR-IMG-TYPE", "a nutrition label on the each", on = "each",
   says = {"00614141000012_nutrition.png %(NUTRITION_FACT_LABEL%)"}, fix_says = {"Exclude"},
   ["break"] = function(_, each)
     table.insert(each.images, image("nutrition.png", "BACK", "NUTRITION_FACT_LABEL"))
   end,
   fix = function(_, each) table.remove(each.images) end},
  {"KR-IMG-TYPE", "a barcode image on the case", on = "case", says = {"%(BARCODE%)"},
   ["break"] = function(case) case.images = {image("barcode.png", "FRONT", "BARCODE")} end,
   fix = function(case) case.images = nil end},
  {"KR-TIHI-NONGTIN", "Ti/Hi entered as GTIN Pallet Ti/Hi", on = "case",
   attribute = "nonGTINPalletTi",
   says = {"no pallet GTIN", "Non%-GTIN Pallet Ti empty, Hi empty, GTIN Pallet Ti 10, Hi 5"},
   fix_says = {"Non%-GTIN Pallet Ti and Hi"},
   ["break"] = function(case)
     case.gtinPalletTi, case.gtinPalletHi = case.nonGTINPalletTi, case.nonGTINPalletHi
     case.nonGTINPalletTi, case.nonGTINPalletHi = nil, nil
   end,
   fix = function(case)
     case.nonGTINPalletTi, case.nonGTINPalletHi = case.gtinPalletTi, case.gtinPalletHi
     case.gtinPalletTi, case.gtinPalletHi = nil, nil
   end},
  {"KR-TIHI-NONGTIN", "Hi missing (JSON null)", on = "case", says = {"Ti 10, Hi empty"},
   ["break"] = function(case) case.nonGTINPalletHi = json.null end,
   fix = function(case) case.nonGTINPalletHi = 5 end},
  {"KR-TIHI-QUANTITY", "quantity not Ti × Hi", on = "case", attribute = "nonGTINPalletQuantity",
   says = {"Non%-GTIN Pallet Quantity of the Case is 40, but Ti × Hi is 10 × 5 = 50"},
   ["break"] = function(case) case.nonGTINPalletQuantity = 40 end,
   fix = function(case) case.nonGTINPalletQuantity = 50 end},
  {"KR-TIHI-QUANTITY", "quantity missing", on = "case", says = {"is empty, but Ti × Hi"},
   ["break"] = function(case) case.nonGTINPalletQuantity = nil end,
   fix = function(case) case.nonGTINPalletQuantity = "50" end},
  {"KR-ACTIVITY-CODE", "MADE_IN on the each", on = "each", says = {"MADE_IN"},
   ["break"] = function(_, each) each.productActivityTypeCode = "MADE_IN" end,
   fix = function(_, each) each.productActivityTypeCode = "LAST_PROCESSING" end},
  {"KR-MODEL-SELF", "the each its own model, as a GTIN-12", on = "each", attribute = "modelGtin",
   says = {"names itself %(614141000012%)"}, fix_says = {"Model GTIN Exists to No"},
   ["break"] = function(_, each) each.modelGtinExists, each.modelGtin = true, "614141000012" end,
   fix = function(_, each) each.modelGtinExists, each.modelGtin = false, "" end},
  {"KR-MODEL-SELF", "a model GTIN when none exists", on = "case",
   says = {"Model GTIN Exists is No on the Case, but Model GTIN is 00614141000012"},
   ["break"] = function(case) case.modelGtin = EACH end,
   fix = function(case) case.modelGtinExists = true end},
  {"KR-SIZE", "a blank customer facing size", on = "each", attribute = "customerFacingSize",
   says = {"no Customer Facing Size"},
   ["break"] = function(_, each) each.customerFacingSize = "  " end,
   fix = function(_, each) each.customerFacingSize = "32 fl oz" end},
  {"KR-MSG-LENGTH", "a one-sentence message", on = "each", attribute = "marketingMessage",
   says = {"has 13%d characters in one sentence"},
   ["break"] = function(_, each) each.marketingMessage = each.marketingMessage:match("^[^.]+.") end,
   fix = function(_, each) each.marketingMessage = clean().children[1].marketingMessage end},
  {"KR-MSG-LENGTH", "four sentences", on = "each", says = {"in four sentences"},
   ["break"] = function(_, each) reword(each, " for a rich iced coffee", ". Pour over ice") end,
   fix = function(_, each) reword(each, ". Pour over ice", " over ice") end},
  {"KR-MSG-LENGTH", "no message at all (reported once)", on = "each",
   says = {"has no marketing message"},
   ["break"] = function(_, each) each.marketingMessage = nil end,
   fix = function(_, each) each.marketingMessage = clean().children[1].marketingMessage end},
  {"KR-MSG-NUMBERS", "2 and 8 as figures", on = "each",
   says = {'below ten: "with 2 parts", "about 8 servings"$'},
   ["break"] = function(_, each) reword(each, "two parts", "2 parts", "about eight", "about 8") end,
   fix = function(_, each) reword(each, "2 parts", "two parts", "about 8", "about eight") end},
  {"KR-MSG-REUSED", "a sentence of the message as a bullet", on = "each",
   attribute = "marketingMessage",
   says = {'bullet 5 "' .. SENTENCE .. '" repeats the marketing message'},
   also = {"KR-FEATURES"},                                  -- the copied sentence ends with "."
   ["break"] = function(_, each) each.featureBenefits[5] = SENTENCE end,
   fix = function(_, each) each.featureBenefits[5] = "Keeps three weeks refrigerated" end},
  {"KR-FEATURES", "four bullets", on = "each", attribute = "featureBenefits",
   says = {"four feature bullets, not 5 to 7"},
   ["break"] = function(_, each) table.remove(each.featureBenefits) end,
   fix = function(_, each) table.insert(each.featureBenefits, "Ready in seconds") end},
  {"KR-FEATURES", "eight bullets", on = "each", says = {"eight feature bullets"},
   ["break"] = function(_, each)
     for _, b in ipairs {"Ready in seconds", "Bold flavor", "Recyclable bottle"} do
       table.insert(each.featureBenefits, b)
     end
   end,
   fix = function(_, each) table.remove(each.featureBenefits) end},
  {"KR-FEATURES", "lowercase, end punctuation, promotion", on = "each",
   says = {'bullet 1 "slow steeped for twenty hours" does not start with a capital',
           'bullet 2 "Smooth taste with low acidity!" ends with "!"',
           'bullet 3 "Now on sale" has the promotion word "sale"',
           'bullet 4 "Free shipping" has the promotion word "free"',
           'bullet 5 "20%% off this week" has the promotion word "%% off"'},
   ["break"] = function(_, each)
     each.featureBenefits = {"slow steeped for twenty hours", "Smooth taste with low acidity!",
                             "Now on sale", "Free shipping", "20% off this week"}
   end,
   fix = function(_, each)
     each.featureBenefits = {"Slow steeped for twenty hours", "Smooth taste with low acidity",
                             "Gluten-free and dairy-free", "Free of artificial colors",
                             "Made in the USA"}
   end},
  {"KR-FEATURES", "no bullets at all", on = "each", says = {"^no feature bullets, not 5 to 7$"},
   ["break"] = function(_, each) each.featureBenefits = nil end,
   fix = function(_, each) each.featureBenefits = clean().children[1].featureBenefits end},
  {"KR-FEATURES", "a bullet that is not text", on = "each",
   says = {"^one feature bullet, not 5 to 7; bullet 1 is not text$"},
   ["break"] = function(_, each) each.featureBenefits = {42} end,
   fix = function(_, each) each.featureBenefits = clean().children[1].featureBenefits end},
  {"KR-REASON-CODE", "a reason code on an item with an IMF", on = "case",
   attribute = "krogerSubmissionReasonCode", says = {'"NEW ITEM", but it has IMF IMF%-000412'},
   ["break"] = function(case) case.imfNumber = "IMF-000412" end,
   fix = function(case) case.krogerSubmissionReasonCode = "" end},
  {"KR-WERCS", "WERCS required, not registered", on = "case", attribute = "wercsRegistered",
   says = {"requires WERCS"}, fix_says = {"then Resend the publication$"},
   ["break"] = function(case) case.requiresWercs = true end,
   fix = function(case) case.wercsRegistered = true end},
  {"KR-RECIPIENT", "the case published to Product Introduction", on = "case",
   attribute = "recipients", says = {"lists Kroger Product Introduction 0011110000019"},
   fix_says = {"Certification Queue 0838016000123 instead",
               "withdraw the Product Introduction publication"},
   ["break"] = function(case) case.recipients = {QUEUE, PI} end,
   fix = function(case) case.recipients = {QUEUE} end},
  {"KR-RECIPIENT", "the each's recipient set to Product Introduction", on = "each",
   says = {"the Each lists"}, fix_says = {"Recipients of the Each to ALL"},
   ["break"] = function(_, each) each.recipients = {" 0011110000019 "} end,
   fix = function(_, each) each.recipients = {"ALL"} end},
}

describe("each rule, broken alone and fixed", function()
  local _, severity = documented()
  local covered = {}
  for _, case in ipairs(BROKEN) do
    local id, what = case[1], case[2]
    covered[id] = true
    it(id .. ": " .. what, function()
      local top, each = clean()
      case["break"](top, each)
      local findings = rules.check(top)
      local fired = only(findings, id)
      assert.equal(1, #fired, "got " .. table.concat(ids_of(findings), ", "))
      local expected = {id}
      for _, other in ipairs(case.also or {}) do expected[#expected + 1] = other end
      table.sort(expected)
      local got = ids_of(findings)
      table.sort(got)
      assert.same(expected, got)
      local f = fired[1]
      assert_shape(f)
      assert.equal(severity[id], f.severity)
      local node = case.on == "case" and top or each
      assert.equal(case.gtin or gtin.normalize(node.gtin), f.gtin)
      assert.equal(node.level, f.level)
      if case.attribute then assert.equal(case.attribute, f.attribute) end
      for _, pattern in ipairs(case.says or {}) do
        assert.truthy(f.message:find(pattern) or f.message:find(pattern, 1, true),
                      ("message %q lacks %q"):format(f.message, pattern))
      end
      for _, pattern in ipairs(case.fix_says or {}) do assert.matches(pattern, f.fix) end
      case.fix(top, each)
      assert.same({}, rules.check(top))
    end)
  end

  it("covers every rule of the table", function()
    for _, rule in ipairs(rules.list) do assert.truthy(covered[rule.id], rule.id) end
  end)
end)

describe("runs and edge cases", function()
  -- A second clean hierarchy with its own GTINs.
  local function other()
    local top, each = clean()
    top.gtin = "1061414100002" .. gtin.check_digit("1061414100002")
    each.gtin = "0061414100002" .. gtin.check_digit("0061414100002")
    return top, each
  end

  it("KR-MSG-REUSED: the same message on two items of a run, reported on the second", function()
    local first = clean()
    local second = other()
    local findings = rules.check({first, second})
    assert.same({"KR-MSG-REUSED"}, ids_of(findings))
    assert.equal(second.children[1].gtin, findings[1].gtin)
    assert.equal("the marketing message is the same as that of 00614141000012", findings[1].message)
    assert.same({}, rules.check(first))
    assert.same({}, rules.check(second))
    reword(second.children[1], "twenty", "eighteen")
    assert.same({}, rules.check({first, second}))
  end)

  it("KR-MSG-REUSED: the same each in two hierarchies is not a copy", function()
    local first, second = clean(), clean()
    second.gtin = "2" .. CASE:sub(2, 13) .. gtin.check_digit("2" .. CASE:sub(2, 13))
    assert.same({}, rules.check({first, second}))
    -- With a bullet that repeats its message: that bullet, on each, and no copy.
    local each = first.children[1]
    local sentence = each.marketingMessage:match("^(.-%.)%s")
    each.featureBenefits[1] = sentence
    second.children[1] = each
    local looked = rules.checker()
    for _, node in ipairs {each, first, second} do looked:look(node) end
    for _, findings in ipairs {rules.check({first, second}), looked:check({first, second})} do
      local reused = only(findings, "KR-MSG-REUSED")
      assert.equal(2, #reused)
      for _, f in ipairs(reused) do
        assert.equal(("bullet 1 %q repeats the marketing message"):format(sentence), f.message)
      end
    end
  end)

  it("KR-MSG-REUSED: a message identical up to case, spacing and punctuation", function()
    local first = clean()
    local second, each = other()
    each.marketingMessage = "  " .. each.marketingMessage:upper():gsub("%.$", "!") .. " "
    assert.same({"KR-MSG-REUSED"}, ids_of(rules.check({first, second})))
  end)

  it("counts sentences without being fooled by abbreviations", function()
    local top, each = clean()
    reword(each, "Each bottle makes", "Each 32 fl. oz. bottle makes")
    assert.same({}, rules.check(top))
    reword(each, "This", "Dr. Brew's")
    assert.same({}, rules.check(top))
  end)

  it("KR-MSG-NUMBERS leaves larger numbers, decimals, fractions and codes alone", function()
    local top, each = clean()
    reword(each, "twenty hours", "20 hours", "in seconds", "in 1.5 minutes",
           "about eight", "about 12", "one part", "1/2 cup of", "three weeks", "three B6 weeks")
    assert.same({}, rules.check(top))
    reword(each, "20 hours", "9 hours")
    local f = only(rules.check(top), "KR-MSG-NUMBERS")
    assert.equal(1, #f)
    assert.matches('"for 9 hours"', f[1].message)
  end)

  it("lets bullets describe an item as free of something", function()
    local top, each = clean()
    each.featureBenefits[4] = "Gluten-free and free from added sugar"
    each.featureBenefits[5] = "Made without fillers"
    assert.same({}, rules.check(top))
    each.featureBenefits[5] = "Save $2 today"
    assert.matches('has the promotion word "%$"', rules.check(top)[1].message)
  end)

  it("KR-TIHI-QUANTITY with a pallet GTIN compares Ti × Hi with the pallet's quantity", function()
    local case = clean()
    case.nonGTINPalletTi, case.nonGTINPalletHi, case.nonGTINPalletQuantity = nil, nil, nil
    local body = "2061414100001"
    local pallet = {gtin = body .. gtin.check_digit(body), level = "PALLET", isConsumerUnit = false,
                    productActivityTypeCode = "LAST_PROCESSING", quantityOfChildren = 50,
                    gtinPalletTi = 10, gtinPalletHi = 5, recipients = {QUEUE}, children = {case}}
    assert.same({}, rules.check(pallet))
    pallet.quantityOfChildren = 48
    local findings = rules.check(pallet)
    assert.same({"KR-TIHI-QUANTITY"}, ids_of(findings))
    assert.same({pallet.gtin, "PALLET", "gtinPalletTi"},
                {findings[1].gtin, findings[1].level, findings[1].attribute})
    assert.matches("holds 48 items, but GTIN Pallet Ti × Hi on the Pallet is 10 × 5 = 50",
                   findings[1].message)
    -- Ti/Hi entered on the case under the pallet count too.
    pallet.gtinPalletTi, pallet.gtinPalletHi, case.gtinPalletTi, case.gtinPalletHi = nil, nil, 8, 6
    pallet.quantityOfChildren = 50
    assert.matches("holds 50 items, but GTIN Pallet Ti × Hi on the Case is 8 × 6 = 48",
                   rules.check(pallet)[1].message)
    pallet.quantityOfChildren = 48
    assert.same({}, rules.check(pallet))
  end)

  it("orders findings by hierarchy, then depth-first node, then rule", function()
    local first, each = clean()
    local second, each2 = other()
    second.recipients, each2.customerFacingSize = {PI}, nil
    reword(each2, "twenty", "eighteen")
    first.productActivityTypeCode, each.images = "MADE_IN", {}
    first.requiresWercs = true
    local findings = rules.check({first, second})
    assert.same({"KR-ACTIVITY-CODE", "KR-WERCS", "KR-IMG-FRONT", "KR-RECIPIENT", "KR-SIZE"},
                ids_of(findings))
    local where = {}
    for i, f in ipairs(findings) do where[i] = f.gtin end
    assert.same({CASE, CASE, EACH, second.gtin, each2.gtin}, where)
    assert.same({3, 0}, {rules.count(rules.check(first))})
  end)

  it("runs only the rules asked for, as a set or an array", function()
    local top, each = clean()
    top.productActivityTypeCode, each.customerFacingSize = "MADE_IN", nil
    assert.same({"KR-SIZE"}, ids_of(rules.check(top, {rules = {"KR-SIZE"}})))
    local set = {["KR-ACTIVITY-CODE"] = true, ["KR-SIZE"] = false}
    assert.same({"KR-ACTIVITY-CODE"}, ids_of(rules.check(top, {rules = set})))
    assert.same({}, rules.check(top, {rules = {}}))
    local ok, err = pcall(rules.check, top, {rules = {"KR-NOPE"}})
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.matches("unknown rule id KR%-NOPE", tostring(err))
    assert.equal("usage", select(2, pcall(rules.check, "case.json")).kind)
  end)

  it("accepts a run as an array, an empty run, and skips what is not a node", function()
    assert.same({}, rules.check({}))
    assert.same({}, rules.check({clean(), 42, "x"}))
    local top = clean()
    top.children[2] = "not a node"
    top.children[3] = top                                   -- a cycle is walked once
    assert.same({}, rules.check(top))
  end)

  it("reports a node without fields, and never fails on malformed ones", function()
    local findings = rules.check({level = "CASE"})
    assert.same({"KR-GTIN-CHECK", "KR-TIHI-NONGTIN"}, ids_of(findings))
    assert.same({"", "CASE", "the Case has no GTIN"},
                {findings[1].gtin, findings[1].level, findings[1].message})
    local junk = {json.null, "", " ", 0, -1, 2.5, true, false, {}, {1, "x", {}}, "abc", "007",
                  {{}}, {json.null}, {url = {}, facing = 3}}
    local fields = {"gtin", "level", "isConsumerUnit", "productActivityTypeCode",
                    "customerFacingSize", "marketingMessage", "featureBenefits", "images",
                    "quantityOfChildren", "gtinPalletTi", "gtinPalletHi", "nonGTINPalletTi",
                    "nonGTINPalletHi", "nonGTINPalletQuantity", "modelGtinExists", "modelGtin",
                    "krogerSubmissionReasonCode", "imfNumber", "requiresWercs", "wercsRegistered",
                    "recipients", "children"}
    for _, field in ipairs(fields) do
      for _, value in ipairs(junk) do
        for _, where in ipairs {"case", "each"} do
          local top, each = clean()
          local node = where == "case" and top or each
          node[field] = copy(value)
          local ok, result = pcall(rules.check, top)
          assert.is_true(ok, ("%s.%s = %s: %s"):format(where, field, tostring(value),
                                                        tostring(result)))
          for _, f in ipairs(result) do assert_shape(f) end
        end
      end
    end
    for _, field in ipairs {"url", "facing", "typeOfInformation", "source"} do
      for _, value in ipairs(junk) do
        local top, each = clean()
        each.images[1][field] = copy(value)
        local ok, result = pcall(rules.check, top)
        assert.is_true(ok, ("image.%s = %s: %s"):format(field, tostring(value), tostring(result)))
      end
    end
    local top = clean()
    top.gtin = 10614141000019                              -- not a string: reported, shown as given
    findings = rules.check(top)
    assert.same({"KR-GTIN-CHECK"}, ids_of(findings))
    assert.same({"10614141000019", "GTIN must be a string of digits, got number"},
                {findings[1].gtin, findings[1].message})
  end)

  it("words the fix with what is needed afterwards", function()
    local top, each = clean()
    top.productActivityTypeCode, top.requiresWercs, each.customerFacingSize = "MADE_IN", true, nil
    top.recipients = {PI}
    local fixes = {}
    for _, f in ipairs(rules.check(top)) do fixes[f.rule] = f.fix end
    assert.matches("; then save; the publication goes out by itself, no republish needed$",
                   fixes["KR-ACTIVITY-CODE"])
    assert.matches("; then Resend the publication$", fixes["KR-WERCS"])
    assert.matches("; then Republish as New to the Certification Queue 0838016000123$",
                   fixes["KR-SIZE"])
    assert.matches("; then withdraw the Product Introduction publication", fixes["KR-RECIPIENT"])
    assert.matches("on the Each", fixes["KR-SIZE"])
  end)
end)

describe("text from anyone's files", function()
  -- What the rules read of a field, written the plain way (a pattern over
  -- the whole text, as docs/recipes.md words the rule): the rules must
  -- give the same answer in time linear in the text.
  local TITLES = {mr = true, mrs = true, ms = true, dr = true, st = true, no = true, vs = true}
  local function sentences_as_written(s)
    local count, start = 0, 1
    for stop, next_start in s:gmatch("()[.!?]+[\"')]*%s+()") do
      local word = s:sub(math.max(1, stop - 4), stop - 1):match("%a*$"):lower()
      if s:find("^[%u\"']", next_start) and not TITLES[word] then count, start = count + 1, next_start end
    end
    return count + (s:find("%S", start) and 1 or 0)
  end
  local function lone_digits_as_written(s)
    local found = {}
    for from, number in s:gmatch("()(%d[%d.,/]*)") do
      if #number:gsub("[.,]+$", "") == 1 and not s:sub(from - 1, from - 1):find("%w")
         and not s:find("^%a", from + 1) then
        found[#found + 1] = ("%q"):format((s:sub(1, from - 1):match("%S+%s+$") or "")
          .. s:match("^%d%s*%S*", from))
      end
    end
    return found
  end
  local NUMBERS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}

  -- Random text of the characters the rules look at, the same every run.
  local PIECES = {"a", "B", "1", "7", " ", "  ", "\t", ".", "!", "?", '"', "'", ")", ",", "/", "Dr", "x9",
                  "%", "?q=1", "#", "free", "-"}
  local function random_text(rng)
    local out = {}
    for i = 1, rng(1, 30) do out[i] = PIECES[rng(#PIECES)] end
    return "a" .. table.concat(out) .. "z"
  end

  it("makes text plain as the pattern does, for every byte", function()
    local plain = require("kapi.text").plain
    local function as_written(s) return s:lower():gsub("[%p%s]+", " "):match("^ ?(.*%S)") or "" end
    local every = {}
    for b = 0, 255 do every[#every + 1] = string.char(b) end
    math.randomseed(19)
    for _ = 1, 5000 do
      local chars = {}
      for i = 1, math.random(0, 24) do chars[i] = every[math.random(#every)] end
      local s = table.concat(chars)
      assert.equal(as_written(s), plain(s), ("%q"):format(s))
    end
    assert.equal(as_written(table.concat(every)), plain(table.concat(every)))
    assert.equal("", plain(" .,; \t"))
    assert.equal("16 fl oz of cold brew", plain("  16 FL. OZ. of Cold-Brew!  "))
  end)

  it("counts sentences and finds lone digits as the rules are written", function()
    math.randomseed(20)
    local rng = math.random
    for _ = 1, 3000 do
      local message = random_text(rng)
      local top, each = clean()
      each.marketingMessage = message
      local found = {}
      for _, f in ipairs(rules.check(top, {rules = {"KR-MSG-LENGTH", "KR-MSG-NUMBERS"}})) do found[f.rule] = f.message end
      local count = sentences_as_written(message)
      assert.equal(("has %d characters in %s sentence%s"):format(#message, count == 0 and "no" or NUMBERS[count]
                   or tostring(count), count == 1 and "" or "s"), found["KR-MSG-LENGTH"]:match("has .*"), message)
      local digits = lone_digits_as_written(message)
      assert.equal(#digits > 0 and "the marketing message has figures for numbers below ten: "
                   .. table.concat(digits, ", ") or nil, found["KR-MSG-NUMBERS"], message)
    end
  end)

  it("names an image by the file name of its URL", function()
    math.randomseed(21)
    local rng = math.random
    for _ = 1, 1000 do
      local url = random_text(rng)
      local top, each = clean()
      each.images = {{url = url, typeOfInformation = "LOGO"}}
      local path = url:gsub("[?#].*", "")
      local f = only(rules.check(top, {rules = {"KR-IMG-TYPE"}}), "KR-IMG-TYPE")[1]
      assert.equal(("images of the Each that are not product images: %s (LOGO)"):format(path:match("[^/]+$") or url),
                   f.message, url)
    end
  end)

  it("reads a field of 100,000 characters in time linear in it, whatever the characters", function()
    -- Each took minutes through a pattern that backtracks over a run (20,000
    -- spaces: 18 s), where a linear read takes milliseconds: the bound
    -- only tells one from the other.
    for _, unit in ipairs {" ", "\t", ".", "!?", "1 ", "1,", "a/", ". A", '"', "%   "} do
      local long = unit:rep(100000 // #unit)
      local top, each = clean()
      for _, field in ipairs {"marketingMessage", "customerFacingSize", "modelGtin", "imfNumber",
                              "productActivityTypeCode", "krogerSubmissionReasonCode"} do
        each[field] = long
      end
      each.featureBenefits = {long, long}
      each.images = {{url = long, facing = long, typeOfInformation = long, source = long}}
      top.gtin = long
      local started = os.clock()
      rules.check(top)
      assert.is_true(os.clock() - started < 5, ("%q: %.1f s"):format(unit, os.clock() - started))
    end
  end)
end)

describe("the sandbox's generated supplier items", function()
  it("pass every rule (seed 1, items 1 to 300)", function()
    local run = {}
    for k = 1, 300 do
      run[k] = supplier.hierarchy(1, k)
      run[k].lastModified = nil
    end
    local findings = rules.check(run)
    local lines = {}
    for i = 1, math.min(5, #findings) do
      local f = findings[i]
      lines[i] = ("%s %s %s: %s"):format(f.rule, f.gtin, f.level, f.message)
    end
    assert.equal(0, #findings, #findings .. " findings, e.g.\n" .. table.concat(lines, "\n"))
  end)
end)

describe("kapi.rules.kroger.checker", function()
  -- A run with a defect of most kinds planted, some on items of two
  -- hierarchies (a message used twice), as a supplier's catalogue has them.
  local function defective_run()
    local run = {}
    for k = 1, 40 do
      local h = supplier.hierarchy(1, k)
      local each = h.children[1]
      if k % 5 == 0 then each.marketingMessage = run[1].children[1].marketingMessage end
      if k % 7 == 0 then each.featureBenefits[2] = "save 50% off today." end
      if k % 6 == 0 then each.featureBenefits[3] = each.marketingMessage:match("^[^.]+") end
      if k % 4 == 0 then each.images[2].facing = "FRONT" end
      if k % 9 == 0 then h.productActivityTypeCode, each.customerFacingSize = "MADE_IN", " " end
      if k % 8 == 0 then each.recipients = {PI} end
      if k % 3 == 0 then h.nonGTINPalletQuantity = h.nonGTINPalletQuantity + 1 end
      if k % 11 == 0 then each.marketingMessage = each.marketingMessage:gsub("four", "4") end
      run[k] = h
    end
    return run
  end

  it("finds exactly what rules.check finds when it looked at the nodes as they came", function()
    local expected = rules.check(defective_run())
    assert.is_true(#expected > 40, #expected .. " findings")
    -- The levels of one hierarchy come on different pages: every each,
    -- then every case (Content1's order), and are looked at as they come.
    local run = defective_run()
    local checker = rules.checker()
    for _, h in ipairs(run) do checker:look(h.children[1]) end
    for _, h in ipairs(run) do checker:look(h) end
    assert.same(expected, checker:check(run))
  end)

  it("judges a node alone by the rules not marked as reading the run", function()
    local top, each = clean()
    top.productActivityTypeCode, each.images = "MADE_IN", {}
    for _, rule in ipairs(rules.list) do
      if rule.on ~= "top" and not rule.context then
        for _, node in ipairs {top, each, {}} do rule.check(node) end -- no run given: none may need it
      end
    end
    local checker = rules.checker {rules = {"KR-ACTIVITY-CODE", "KR-IMG-FRONT"}}
    checker:look(each)
    assert.same(rules.check(top, {rules = {"KR-ACTIVITY-CODE", "KR-IMG-FRONT"}}), checker:check(top))
  end)
end)
