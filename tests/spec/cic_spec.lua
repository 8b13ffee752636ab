-- GS1 CIC messages: the XML binding (kapi.core.xml: namespaces, lines,
-- encodings, its limits, XXE and entity expansion refused, errors clean),
-- kapi.cic's reading of each test message of tests/data/cic (README.md
-- there says which failure-table row each carries), problems named
-- FILE:LINE, and the verdicts the CIC details give, REVIEW included.
local xml = require "kapi.core.xml"
local cic = require "kapi.cic"
local certification = require "kapi.certification"
local errors = require "kapi.errors"
local process = require "helpers.process"

local DATA = process.source_dir .. "/tests/data/cic"
local QUEUE, CERTIFIED, PI = "0838016000123", "0838016000116", "0011110000019"
local NOW = certification.parse_time("2026-11-23T12:00:00Z")

-- Records by "GTIN RECIPIENT".
local function by_key(records)
  local out = {}
  for _, r in ipairs(records) do out[r.gtin .. " " .. r.recipientGln] = r end
  return out
end

local function read_one(name)
  local records, problems, skipped = cic.read(DATA .. "/good/" .. name)
  assert.same({}, problems)
  assert.same({}, skipped)
  return records
end

local function elements(e)
  local out = {}
  for _, c in ipairs(e) do if type(c) == "table" then out[#out + 1] = c end end
  return out
end

local function input_error(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(errors.is(err, "input"), tostring(err))
  return errors.message(err)
end

describe("kapi.core.xml", function()
  it("names elements by namespace URI and local name, with their lines", function()
    local root = assert(xml.parse('<?xml version="1.0"?>\n<a:r xmlns:a="urn:one" xmlns="urn:two" k="v" a:q="w">\n'
                                  .. '  <c>x &amp; <![CDATA[<y>]]></c>\n  <d xmlns="">plain</d>\n</a:r>'))
    assert.same({"urn:one", "r", 2}, {root.ns, root.name, root.line})
    assert.same({k = "v", ["{urn:one}q"] = "w"}, root.attrs)
    local c, d = table.unpack(elements(root))
    assert.same({"urn:two", "c", 3, "x & <y>"}, {c.ns, c.name, c.line, c[1]})
    assert.same({"", "d", 4, "plain"}, {d.ns, d.name, d.line, d[1]})
    assert.is_nil(c.attrs)
  end)

  it("reads the encodings expat knows, giving UTF-8", function()
    local latin1 = assert(xml.parse('<?xml version="1.0" encoding="ISO-8859-1"?><a>cr\232me</a>'))
    assert.equal("crème", latin1[1])
    local body = '<?xml version="1.0" encoding="UTF-16"?><a>é</a>'
    local le, be = {"\255\254"}, {"\254\255"}
    for _, code in utf8.codes(body) do
      le[#le + 1] = string.char(code & 255, code >> 8)
      be[#be + 1] = string.char(code >> 8, code & 255)
    end
    assert.equal("é", assert(xml.parse(table.concat(le)))[1])
    assert.equal("é", assert(xml.parse(table.concat(be)))[1])
    local root, why, kind = xml.parse('<?xml version="1.0" encoding="EBCDIC-037"?><a/>')
    assert.is_nil(root)
    assert.same({"unknown encoding", "malformed"}, {why, kind})
  end)

  it("says why a document is malformed, with line and column", function()
    assert.same({nil, "mismatched tag", "malformed", 2, 6}, {xml.parse("<a>\n<b></a>")})
    assert.same({nil, "no element found", "malformed", 1, 1}, {xml.parse("")})
    assert.same({nil, "junk after document element", "malformed", 1, 5}, {xml.parse("<a/><b/>")})
  end)

  it("never loads an external entity (XXE) and expands none", function()
    local path = os.tmpname()
    process.write(path, "SECRET")
    local xxe = ('<?xml version="1.0"?>\n<!DOCTYPE a [\n<!ENTITY x SYSTEM "file://%s">\n]>\n<a>&x;</a>'):format(path)
    local root, why, kind, line = xml.parse(xxe)
    os.remove(path)
    assert.is_nil(root)
    assert.equal("refused", kind)
    assert.equal(3, line)
    assert.matches("declares an entity", why)
    -- An external DTD is never read; its entities stay unknown, refused.
    root, why, kind = xml.parse('<!DOCTYPE a SYSTEM "file:///etc/passwd"><a>&x;</a>')
    assert.is_nil(root)
    assert.same({"refused", "refers to an entity that is not declared in the document (an external DTD is never read)"},
                {kind, why})
    -- Parameter entities, and the billion laughs.
    assert.is_nil((xml.parse('<!DOCTYPE a [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><a/>')))
    local laughs = {'<!DOCTYPE lolz [<!ENTITY lol "lol">'}
    for i = 1, 9 do
      laughs[#laughs + 1] = ('<!ENTITY lol%d "%s">'):format(i, ("&lol" .. (i > 1 and i - 1 or "") .. ";"):rep(10))
    end
    laughs[#laughs + 1] = "]><lolz>&lol9;</lolz>"
    root, why, kind = xml.parse(table.concat(laughs))
    assert.is_nil(root)
    assert.equal("refused", kind)
    -- A DOCTYPE without entities is harmless and read.
    assert.equal("a", assert(xml.parse('<!DOCTYPE a><a/>')).name)
  end)

  it("keeps its byte and depth limits", function()
    assert.same({nil, "8 bytes, more than the 7 this reader takes", "too_large"}, {xml.parse("<a></a>x", {max_bytes = 7})})
    local deep = ("<a>"):rep(257) .. ("</a>"):rep(257)
    local root, why, kind = xml.parse(deep)
    assert.is_nil(root)
    assert.same({"elements nested deeper than 256, the most kapi reads", "refused"}, {why, kind})
    assert.truthy(xml.parse(deep, {max_depth = 257}))
    assert.truthy(xml.parse(("<a>"):rep(256) .. ("</a>"):rep(256)))
  end)

  it("refuses bad arguments with clean errors", function()
    assert.error_matches(function() xml.parse({}) end, "string expected")
    assert.error_matches(function() xml.parse("<a/>", 5) end, "table expected")
    assert.error_matches(function() xml.parse("<a/>", {max_bytes = 0}) end, "max_bytes must be a whole number from 1")
    assert.error_matches(function() xml.parse("<a/>", {max_depth = "x"}) end, "max_depth must be a whole number")
    assert.error_matches(function() xml.parse("<a/>", {max_depth = 2.5}) end, "max_depth must be a whole number")
  end)

  it("survives many documents and wide ones", function()
    local wide = {"<r>"}
    for i = 1, 20000 do wide[#wide + 1] = ('<e n="%d">%d</e>'):format(i, i) end
    wide[#wide + 1] = "</r>"
    local root = assert(xml.parse(table.concat(wide)))
    assert.equal(20000, #elements(root))
    assert.equal("20000", root[20000][1])
    for _ = 1, 200 do xml.parse("<a><b>broken</a>") end
  end)
end)

describe("kapi.cic.read", function()
  it("reads several transactions, document commands and confirmations from one message", function()
    local records = read_one("batch.xml")
    assert.equal(4, #records)
    local r = by_key(records)
    local received = r["10862000000025 " .. QUEUE]
    assert.same({"RECEIVED", "2026-11-21T08:30:00", "", "", 28}, -- no creationDateTime: the SBDH's
                {received.cicState, received.cicDate, received.cicCode, received.message, received.line})
    assert.same({}, received.details)
    assert.equal("ACCEPTED", r["10862000000032 " .. QUEUE].cicState)
    local model = r["10862000000049 " .. QUEUE]
    assert.same({"REJECTED", "2026-11-21T08:10:00", "CIC999"}, {model.cicState, model.cicDate, model.cicCode})
    assert.same({{code = "CIC999", description = "Free Form Text to be copied by Data Recipient",
                  long_description = "Model GTIN error: 00862000000042 names itself as its model GTIN.",
                  corrective_action_code = "ACTION_NEEDED", expected_information = "modelGtin",
                  gtin = "00862000000042"}}, model.details)
    assert.equal("Model GTIN error: 00862000000042 names itself as its model GTIN.", model.message)
    assert.truthy(r["10862000000056 " .. QUEUE].message:find("a new IMF was requested", 1, true))
  end)

  it("matches namespaces by URI: prefixed, default, and other prefixes", function()
    local synced = read_one("synchronised.xml")
    assert.same({"SYNCHRONISED", "SYNCHRONISED"}, {synced[1].cicState, synced[2].cicState})
    assert.same({QUEUE, CERTIFIED}, {synced[1].recipientGln, synced[2].recipientGln})
    local default = read_one("default-namespace.xml")
    assert.equal(1, #default)
    assert.same({"10862000000063", "REJECTED"}, {default[1].gtin, default[1].cicState})
    assert.truthy(default[1].message:find("WERCS", 1, true))
    -- catalogue_item_confirmation: bound to another namespace is not GS1's element.
    local other = read_one("other-prefixes.xml")
    assert.equal(1, #other)
    assert.equal("2026-11-22T12:00:00", other[1].cicDate)
  end)

  it("attributes a status detail to the lower level it is about", function()
    local images = read_one("other-prefixes.xml")[1]
    assert.equal("10862000000070", images.gtin)
    assert.equal(2, #images.details)
    for _, d in ipairs(images.details) do assert.equal("00862000000073", d.gtin) end
    assert.equal("Product Images", images.details[1].expected_information)
    assert.matches("^R02063: .* | Two images have the facing FRONT%.$", images.message)
    local v = certification.verdict(images, {now = NOW})
    assert.matches("(on 00862000000073, a lower level)", v.cause, 1, true)
  end)

  it("reads ISO-8859-1 and UTF-16 (both byte orders) as UTF-8", function()
    local pdp = read_one("rejected-pdp.xml")[1]
    assert.truthy(pdp.message:find("(Crème fraîche, 8 oz)", 1, true))
    assert.equal("00862000000103", pdp.details[1].gtin)
    local pi = read_one("product-introduction.xml")[1]
    assert.same({"10862000000117", PI, "RECEIVED", "PI9001"}, {pi.gtin, pi.recipientGln, pi.cicState, pi.cicCode})
    assert.equal("CONTACT_TRADING_PARTNER", pi.details[1].corrective_action_code)
    local each = read_one("each-recipient.xml")[1]
    assert.same({"10862000000124", "REJECTED", 28}, {each.gtin, each.cicState, each.line})
  end)

  it("reads a directory of messages in name order", function()
    local records, problems, skipped = cic.read(DATA .. "/good")
    assert.same({}, problems)
    assert.same({}, skipped)
    assert.equal(15, #records)
    assert.equal(DATA .. "/good/batch.xml", records[1].file)
    assert.equal(DATA .. "/good/synchronised.xml", records[#records].file)
  end)

  it("names bad confirmations FILE:LINE and keeps the good ones", function()
    local records, problems, skipped = cic.read(DATA .. "/broken/bad-confirmations.xml")
    local file = DATA .. "/broken/bad-confirmations.xml"
    assert.equal(1, #records)
    assert.equal("10862000000148", records[1].gtin)
    assert.same({
      file .. ':46: GTIN "10862000000156" has check digit 6; it should be 5 (or another digit is wrong)',
      file .. ':64: CIC state "PENDING" is not one of RECEIVED, REVIEW, REJECTED, SYNCHRONISED',
      file .. ':82: creationDateTime "yesterday" is not a date (YYYY-MM-DDTHH:MM:SS)',
    }, problems)
    assert.same({}, skipped)
  end)

  it("skips malformed and foreign documents of a directory, naming FILE:LINE", function()
    local records, problems, skipped = cic.read(DATA .. "/broken")
    local dir = DATA .. "/broken/"
    assert.equal(1, #records)
    assert.equal(3, #problems)
    assert.same({
      dir .. "foreign.xml:3: not a GS1 CIC message: its root element is catalogueItemNotificationMessage "
        .. "(namespace urn:gs1:gdsn:catalogue_item_notification:xsd:3)",
      dir .. "malformed.xml:38:45: malformed XML: mismatched tag",
      dir .. "wrong-namespace.xml:3: a catalogueItemConfirmationMessage in namespace urn:example:gdsn:2, not GDSN "
        .. "3.1's urn:gs1:gdsn:catalogue_item_confirmation:xsd:3",
    }, skipped)
  end)

  it("refuses a file alone that is no CIC message, and an empty directory, as input errors", function()
    assert.equal(DATA .. "/broken/malformed.xml:38:45: malformed XML: mismatched tag",
                 input_error(cic.read, DATA .. "/broken/malformed.xml"))
    assert.matches("foreign.xml:3: not a GS1 CIC message", input_error(cic.read, DATA .. "/broken/foreign.xml"))
    local dir = process.tempdir()
    assert.equal(dir .. ": an empty directory: no CIC message in it", input_error(cic.read, dir))
    process.write(dir .. "/.hidden.xml", "<x/>")
    os.execute("mkdir " .. process.quote(dir .. "/sub"))
    assert.equal(dir .. ": an empty directory: no CIC message in it", input_error(cic.read, dir))
    process.write(dir .. "/empty.xml", "")
    process.write(dir .. "/no-confirmation.xml",
                  '<c:catalogueItemConfirmationMessage xmlns:c="urn:gs1:gdsn:catalogue_item_confirmation:xsd:3">'
                  .. "<transaction><documentCommand/></transaction></c:catalogueItemConfirmationMessage>")
    local records, problems, skipped = cic.read(dir)
    assert.same({}, records)
    assert.same({}, problems)
    assert.same({dir .. "/empty.xml: is empty",
                 dir .. "/no-confirmation.xml:1: a CIC message with no transaction/documentCommand/catalogueItemConfirmation"},
                skipped)
    process.cleanup(dir)
  end)

  it("refuses a message that declares entities", function()
    local dir = process.tempdir()
    process.write(dir .. "/xxe.xml", '<?xml version="1.0"?>\n<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                  .. '<m>&x;</m>')
    assert.matches("xxe.xml:2:%d+: declares an entity", input_error(cic.read, dir .. "/xxe.xml"))
    process.cleanup(dir)
  end)
end)

describe("verdicts from CIC details", function()
  local function verdict_of(name, gtin, recipient, ctx)
    local r = by_key(read_one(name))[gtin .. " " .. recipient]
    return certification.verdict(r, ctx or {now = NOW}), r
  end

  it("explains every failure-table row a CIC carries, with the fix from the CIC's words", function()
    local cases = {
      {"batch.xml", "10862000000049", "FIX_THEN_REPUBLISH", "names itself as its model GTIN", "Model GTIN Exists to false"},
      {"batch.xml", "10862000000056", "FIX_THEN_REPUBLISH", "asked for a new IMF", "leave Kroger Item Submission"},
      {"default-namespace.xml", "10862000000063", "RESEND", "not registered in WERCS", "then Resend"},
      {"other-prefixes.xml", "10862000000070", "FIX_THEN_REPUBLISH", "R02063", "one front image"},
      {"rejected-pdp.xml", "10862000000100", "FIX_THEN_REPUBLISH", "PDP guidelines", "content of the Each"},
      {"each-recipient.xml", "10862000000124", "FIX_THEN_REPUBLISH", "lists Kroger Product Introduction",
       "recipients to ALL"},
      {"blocked.xml", "10862000000131", "FIX_THEN_REPUBLISH", "warning 2802", "Non-GTIN Pallet Ti and Hi"},
    }
    for _, c in ipairs(cases) do
      local v = verdict_of(c[1], c[2], QUEUE)
      assert.equal(c[3], v.verdict, c[1])
      assert.truthy(v.cause:find(c[4], 1, true), c[1] .. ": " .. v.cause)
      assert.truthy(v.next:find(c[5], 1, true), c[1] .. ": " .. v.next)
    end
    assert.equal("WRONG_RECIPIENT", verdict_of("product-introduction.xml", "10862000000117", PI).verdict)
    local records = read_one("blocked.xml")
    local rows = certification.assess(records, nil, {now = NOW})
    assert.same({"FIX_THEN_REPUBLISH", "BLOCKED"}, {rows[1].verdict, rows[2].verdict})
    assert.equal("DONE", verdict_of("synchronised.xml", "10862000000018", CERTIFIED).verdict)
  end)

  it("gives REVIEW with the seeds' 2802 warning its cause and fix, the wait second", function()
    local v = verdict_of("review-2802.xml", "10862000000087", QUEUE)
    assert.equal("FIX_THEN_REPUBLISH", v.verdict)
    assert.matches("^Kroger QA is reviewing it, and its CIC flags a problem: Ti/Hi were entered as GTIN Pallet Ti/Hi", v.cause)
    assert.matches("^on the highest level %(the Case%) move Ti and Hi to Non%-GTIN Pallet Ti and Hi", v.next)
    local fix_at, wait_at = v.next:find("Republish as New", 1, true), v.next:find("the review goes on meanwhile", 1, true)
    assert.truthy(fix_at and wait_at and fix_at < wait_at, v.next)
  end)

  it("re-checks the item under REVIEW: still failing, or fixed since", function()
    local _, pub = verdict_of("review-2802.xml", "10862000000087", QUEUE)
    local finding = {severity = "warning", rule = "KR-TIHI-NONGTIN", level = "CASE", gtin = pub.gtin,
                     fix = "on the Case enter Non-GTIN Pallet Ti and Hi"}
    local v = certification.verdict(pub, {findings = {finding}, now = NOW})
    assert.equal("FIX_THEN_REPUBLISH", v.verdict)
    assert.truthy(v.cause:find("the item still fails 1 rule", 1, true))
    assert.truthy(v.next:find("the review goes on meanwhile", 1, true))
    pub.publishedAt = "2026-11-23T07:00:00Z"
    v = certification.verdict(pub, {findings = {}, changed = NOW - 60, now = NOW})
    assert.equal("READY_TO_REPUBLISH", v.verdict)
    assert.truthy(v.next:find("; the review goes on meanwhile (about 24 h after sending)", 1, true), v.next)
  end)

  it("reads a report's REVIEW message that holds a code, as the seeds' does", function()
    local pub = {gtin = "10860001000037", recipientGln = QUEUE, cicState = "REVIEW", cicCode = "CIC999",
                 publishedAt = "2026-11-23T09:00:00Z", message = "2802 WARNING: On the highest hierarchy level "
                   .. "both ... nonGTINPalletHi and nonGTINPalletTi must be populated"}
    local v = certification.verdict(pub, {now = NOW})
    assert.equal("FIX_THEN_REPUBLISH", v.verdict)
    assert.truthy(v.cause:find("(warning 2802)", 1, true))
    assert.truthy(v.next:find("Non-GTIN Pallet Ti and Hi", 1, true))
    -- No code, no known text: still only a wait.
    for _, text in ipairs {"awaiting review", "2 days in review", ("a1"):rep(100000), ("x"):rep(100000) .. " 1"} do
      pub.message = text
      assert.same({"WAITING", "Kroger QA is reviewing it, 3 h ago"},
                  {certification.verdict(pub, {now = NOW}).verdict, certification.verdict(pub, {now = NOW}).cause})
    end
    pub.message = ""
    v = certification.verdict(pub, {now = NOW})
    assert.same({"WAITING", "Kroger QA is reviewing it, 3 h ago"}, {v.verdict, v.cause})
  end)

  it("leads with words it does not know, then the wait", function()
    local pub = {gtin = "10862000000018", recipientGln = QUEUE, cicState = "REVIEW", cicDate = "2026-11-23T10:00:00",
                 details = {{code = "CIC100", description = "Attribute value questioned", long_description = "",
                             gtin = "10862000000018"}}}
    local v = certification.verdict(pub, {now = NOW})
    assert.equal("WAITING", v.verdict)
    assert.equal("Kroger QA is reviewing it, and its CIC says: CIC100: Attribute value questioned (2 h ago)", v.cause)
    assert.matches("^if the CIC asks for a change, make it, save, then Republish as New", v.next)
    assert.matches("otherwise wait for Kroger's review", v.next)
  end)

  it("takes the seeds' CIC999 after the VIP migration from its known status", function()
    local v = verdict_of("review-submitted-status.xml", "10862000000094", CERTIFIED)
    assert.equal("FIX_THEN_REPUBLISH", v.verdict)
    assert.truthy(v.cause:find("still in progress in VIP", 1, true))
    assert.matches("^withdraw the Product Introduction %(0011110000019%) publication", v.next)
  end)
end)
