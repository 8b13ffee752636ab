-- The supplier recipes as a user runs them: preflight, republish-check and
-- resend, in subprocesses against the sandbox (its own in-process one, or
-- a `kapi sandbox` that keeps state between commands). Every failure
-- pattern of the seeds is planted in the sandbox and must get its verdict.
local process = require "helpers.process"
local json = require "kapi.json"

local EXAMPLES = process.source_dir .. "/examples/items/"
local QUEUE, CERTIFIED, PRODUCT_INTRO = "0838016000123", "0838016000116", "0011110000019"

local function kapi(args, url)
  return process.kapi_run(args, {env = process.sandbox_env(url)})
end

local function by_publication(rows)
  local out = {}
  for _, r in ipairs(rows) do out[r.gtin .. "@" .. r.recipientGln] = r end
  return out
end

local function verdicts(args, url)
  local r = kapi(args, url)
  assert.equal(0, r.status, r.stderr)
  return by_publication(json.decode(r.stdout)), r
end

describe("kapi run preflight", function()
  it("passes the clean example and exits 0", function()
    local r = kapi {"run", "preflight", EXAMPLES .. "clean-case.json"}
    assert.equal(0, r.status, r.stderr)
    assert.equal("1 hierarchy passes every Kroger rule.\n", r.stderr)
  end)

  it("finds exactly the two defects of the defective example, with the documented keys", function()
    local r = kapi {"run", "preflight", "--json", EXAMPLES .. "duplicate-facing-and-made-in.json"}
    assert.equal(1, r.status)
    local findings = json.decode(r.stdout)
    assert.equal(2, #findings)
    local rules = {findings[1].rule, findings[2].rule}
    table.sort(rules)
    assert.same({"KR-ACTIVITY-CODE", "KR-IMG-FACING-DUP"}, rules)
    for _, f in ipairs(findings) do
      local keys = {}
      for k in pairs(f) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({"attribute", "fix", "gtin", "level", "message", "rule", "severity"}, keys)
    end
    assert.matches('^%[\n  {"rule":"KR%-', r.stdout) -- keys in the documented order
  end)

  it("prints CSV and a table with the fix", function()
    local csv = kapi {"run", "preflight", "--csv", EXAMPLES .. "duplicate-facing-and-made-in.json"}
    assert.matches("^rule,severity,gtin,level,attribute,message,fix\r\n", csv.stdout)
    local _, rows = csv.stdout:gsub("\r\n", "")
    assert.equal(3, rows)
    local table_run = kapi {"run", "preflight", EXAMPLES .. "duplicate-facing-and-made-in.json"}
    assert.matches("SEV%s+RULE%s+GTIN%s+LEVEL%s+PROBLEM AND FIX", table_run.stdout)
    assert.matches("LAST_PROCESSING", table_run.stdout)
    assert.matches("1 hierarchy checked: 2 errors, 0 warnings", table_run.stderr)
  end)

  it("names a missing or malformed file, still checks the others, and exits 2", function()
    local dir = process.tempdir()
    process.write(dir .. "/bad.json", "{\n  \"gtin\": \"00614141000012\"\n  not json")
    local r = kapi {"run", "preflight", dir .. "/missing.json", dir .. "/bad.json", EXAMPLES .. "clean-case.json"}
    process.cleanup(dir)
    assert.equal(2, r.status)
    assert.matches("missing%.json: No such file or directory", r.stderr)
    assert.matches("bad%.json:3:3: not valid JSON: expected ',' or '}'", r.stderr)
    assert.matches("1 hierarchy passes every Kroger rule", r.stderr)
  end)

  it("rejects a malformed GLN before reading anything, and names a bad --gtin by its option", function()
    local r = kapi {"run", "preflight", "--gln", "0614141000006"}
    assert.equal(2, r.status)
    assert.matches("kapi: %-%-gln: GLN \"0614141000006\" has check digit 6; it should be 5", r.stderr)
    local gtin = kapi {"run", "preflight", "--gtin", "12", EXAMPLES .. "clean-case.json"}
    assert.equal(2, gtin.status)
    assert.matches("kapi: %-%-gtin 1: GTIN \"12\" has 2 digits; it must have 8, 12, 13 or 14", gtin.stderr)
    assert.matches("1 hierarchy passes every Kroger rule", gtin.stderr)
    local check = kapi {"run", "republish-check", "--gln", "123"}
    assert.equal(2, check.status)
    assert.matches("kapi: %-%-gln: GLN \"123\" has 3 digits; it must have 13\n", check.stderr)
  end)

  it("reads items as users have them: from stdin with -, with a byte-order mark and CRLF", function()
    local f = assert(io.open(EXAMPLES .. "clean-case.json"))
    local text = f:read("a")
    f:close()
    local r = process.kapi_run({"run", "preflight", "-"}, {env = process.sandbox_env(), stdin = text})
    assert.equal(0, r.status, r.stderr)
    assert.equal("1 hierarchy passes every Kroger rule.\n", r.stderr)
    local dir = process.tempdir()
    local windows = process.write(dir .. "/windows.json", "\239\187\191" .. text:gsub("\n", "\r\n"))
    r = kapi {"run", "preflight", windows}
    assert.equal(0, r.status, r.stderr)
    assert.equal("1 hierarchy passes every Kroger rule.\n", r.stderr)
    -- A GTIN list from a spreadsheet: byte-order mark, CRLF.
    process.write(dir .. "/gtins.csv", "\239\187\191GTIN\r\n10845678000023\r\n")
    r = kapi {"run", "republish-check", "--file", dir .. "/gtins.csv", "--json"}
    assert.equal(0, r.status, r.stderr)
    assert.equal("READY_TO_REPUBLISH", by_publication(json.decode(r.stdout))["10845678000023@" .. QUEUE].verdict)
    process.cleanup(dir)
  end)

  it("refuses input that holds no item hierarchy instead of passing it unchecked", function()
    local dir = process.tempdir()
    for text, why in pairs {["{}"] = "an empty object, not an item hierarchy",
                            ["[]"] = "an empty array: no item hierarchy to check",
                            ['[{"foo":1}, 3]'] = "entry 1: not an item hierarchy: no gtin or level among its keys %(foo%)",
                            ['{"gtin":"00614141000012","level":"BOX"}'] = "level BOX is not one of",
                            ['{"gtin":"00614141000012","level":"CASE","children":"x"}'] = "children must be an array",
                            ['{"gtin":"00614141000012","level":"CASE","children":[1]}'] = "children%[1%]: a number",
                            -- Fields of the wrong type are named, never read as something else.
                            ['{"gtin":"00614141000012","level":"BASE_UNIT_OR_EACH","isConsumerUnit":"true"}'] =
                              'isConsumerUnit must be true or false, got the string "true"',
                            ['{"gtin":"10614141000019","level":"CASE","nonGTINPalletHi":{}}'] =
                              "nonGTINPalletHi must be a whole number, got an object",
                            ['{"gtin":"10614141000019","level":"CASE","images":[{"url":5}]}'] =
                              "images%[1%]%.url must be a string, got the number 5",
                            ['{"gtin":"10614141000019","level":"CASE","recipients":"ALL"}'] =
                              'recipients must be an array, got the string "ALL"',
                            ['{"gtin":"10614141000019","level":"CASE","children":[{"gtin":"00614141000012",'
                             .. '"level":"BASE_UNIT_OR_EACH","isConsumerUnit":1}]}'] =
                              "children%[1%]: isConsumerUnit must be true or false, got the number 1"} do
      local path = process.write(dir .. "/item.json", text)
      local r = kapi {"run", "preflight", path}
      assert.equal(2, r.status, text)
      assert.equal("", r.stdout, text)
      assert.matches("^kapi: " .. path:gsub("%p", "%%%0") .. ": " .. why, r.stderr)
    end
    -- A bad entry among good ones is named, and the good ones are checked.
    local path = process.write(dir .. "/mixed.json", '[{"gtin":"00614141000012","level":"CASE"}, 3, {"a": 1}]')
    local mixed = kapi {"run", "preflight", path}
    assert.equal(2, mixed.status)
    assert.matches("KR%-TIHI%-NONGTIN +00614141000012", mixed.stdout)
    assert.matches("mixed%.json: entry 2: a number, not an item hierarchy object\n", mixed.stderr)
    assert.matches("mixed%.json: entry 3: not an item hierarchy: no gtin or level among its keys %(a%)\n", mixed.stderr)
    process.cleanup(dir)
    local r = kapi {"run", "preflight", "--gln", "0614141000012"}
    assert.equal(2, r.status)
    assert.equal("", r.stdout)
    assert.matches("kapi: %-%-gln 0614141000012: no item hierarchy of this supplier in Content1\n$", r.stderr)
  end)

  it("exits 2 with nothing to check or an unknown option", function()
    assert.equal(2, kapi({"run", "preflight"}).status)
    local from = kapi {"run", "preflight", EXAMPLES .. "clean-case.json", "--from", "items"}
    assert.equal(2, from.status)
    assert.matches("^kapi: %-%-from goes with %-%-gtin or %-%-gln", from.stderr)
    local r = kapi {"run", "preflight", "--colour"}
    assert.equal(2, r.status)
    assert.matches("unknown option '%-%-colour'", r.stderr)
  end)

  it("checks hierarchies read from 1WorldSync by GTIN and by supplier GLN", function()
    local r = kapi {"run", "preflight", "--json", "--gtin", "10614141000026", "--gtin", "00614141000043"}
    assert.equal(1, r.status, r.stderr)
    local findings = json.decode(r.stdout)
    local seen = {}
    for _, f in ipairs(findings) do seen[f.rule .. " " .. f.gtin] = true end
    assert.is_true(seen["KR-SIZE 00614141000029"])       -- the PDP rejection, unfixed
    assert.is_true(seen["KR-IMG-FRONT 00614141000043"])  -- two front images, found from the each
    local gln = kapi {"run", "preflight", "--json", "--gln", "0860001000009", "--quiet"}
    assert.equal(0, gln.status) -- warnings only
    local rules = {}
    for _, f in ipairs(json.decode(gln.stdout)) do rules[f.rule] = true end
    assert.same({["KR-TIHI-NONGTIN"] = true, ["KR-REASON-CODE"] = true}, rules)
  end)

  it("--gln judges a hierarchy whose levels come on different pages as a whole", function()
    -- 1,000 hierarchies a supplier: its 1,000 eaches are the first page of
    -- Content1 items, its cases the second, and each level is judged as
    -- its page comes.
    local sb = process.sandbox {"--items", "6000"}
    local ok, err = pcall(function()
      local c1 = require("kapi").content1.client {base_url = sb.url, app_id = "kapisbx1", secret = "sandbox-hmac-secret"}
      assert.equal(2000, c1:count {ipGln = "0614141000005"})
      local first_page = c1:fetch({ipGln = "0614141000005"}, {max_items = 1000}):all()
      for _, item in ipairs(first_page) do assert.equal("BASE_UNIT_OR_EACH", item.level) end
      local expected = require("kapi.rules.kroger").check(c1:hierarchies {ipGln = "0614141000005"})
      local r = kapi({"run", "preflight", "--json", "--gln", "0614141000005", "--quiet"}, sb.url)
      assert.equal(1, r.status, r.stderr)
      local got = json.decode(r.stdout)
      assert.equal(#expected, #got)
      for i, f in ipairs(expected) do
        for _, key in ipairs {"rule", "severity", "gtin", "level", "attribute", "message", "fix"} do
          assert.equal(f[key], got[i][key], i .. " " .. key)
        end
      end
      -- A lower level's recipients are fixed on the top level: the each was
      -- judged in its hierarchy, with the case from the second page above it.
      local recipient
      for _, f in ipairs(got) do if f.rule == "KR-RECIPIENT" then recipient = f end end
      assert.equal("BASE_UNIT_OR_EACH", recipient.level)
      assert.matches("publish the top level only", recipient.fix)
    end)
    sb.stop()
    assert(ok, err)
  end)

  it("finds a GTIN pallet whose Ti x Hi is not its quantity of cases", function()
    local f = io.open(EXAMPLES .. "clean-case.json")
    local case = json.decode(f:read("a"))
    f:close()
    case.nonGTINPalletTi, case.nonGTINPalletHi, case.nonGTINPalletQuantity = nil, nil, nil
    local pallet = {gtin = "30614141000013", level = "PALLET", isConsumerUnit = false,
                    informationProviderGln = case.informationProviderGln, productActivityTypeCode = "LAST_PROCESSING",
                    quantityOfChildren = 48, gtinPalletTi = 10, gtinPalletHi = 5, modelGtinExists = false,
                    recipients = {QUEUE}, children = {case}}
    local dir = process.tempdir()
    process.write(dir .. "/pallet.json", json.encode(pallet))
    local r = kapi {"run", "preflight", "--json", dir .. "/pallet.json"}
    process.cleanup(dir)
    local findings = json.decode(r.stdout)
    assert.equal(1, r.status)
    assert.equal(1, #findings)
    assert.equal("KR-TIHI-QUANTITY", findings[1].rule)
  end)
end)

describe("kapi run republish-check", function()
  local rows
  setup(function() rows = verdicts {"run", "republish-check", "--all", "--json"} end)

  local function check(publication, verdict, next_pattern, cause_pattern)
    local row = rows[publication]
    assert.is_not_nil(row, publication)
    assert.equal(verdict, row.verdict, publication .. ": " .. tostring(row.cause))
    if next_pattern then assert.matches(next_pattern, row.next) end
    if cause_pattern then assert.matches(cause_pattern, row.cause) end
  end

  it("gives each publication exactly one verdict with the documented keys", function()
    local n = 0
    for _, row in pairs(rows) do
      n = n + 1
      local keys = {}
      for k in pairs(row) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({"action", "cause", "error", "gtin", "next", "recipientGln", "result", "verdict"}, keys)
    end
    assert.equal(16, n)
  end)

  it("knows certified, waiting and overdue publications", function()
    check("10614141000019@" .. QUEUE, "DONE")
    check("10614141000019@" .. CERTIFIED, "DONE", "nothing")
    check("10845678000016@" .. QUEUE, "WAITING", "wait", "3 h ago")
    check("10860001000013@" .. QUEUE, "OVERDUE", "Kroger's item team", "30 h ago")
  end)

  -- domain.md §4, "Failure patterns from the seeds", row by row.
  it("diagnoses PI9001: sent to Product Introduction instead of the queue", function()
    check("10845678000030@" .. PRODUCT_INTRO, "WRONG_RECIPIENT", "0838016000123.*withdraw", "PI9001")
  end)
  it("diagnoses MADE_IN: failed to send; fix the code, no republish", function()
    check("10614141000033@" .. QUEUE, "FAILED_TO_SEND", "LAST_PROCESSING.*no republish", "Made in Country")
  end)
  it("diagnoses pending at the certified GLN: the queue publication was rejected", function()
    check("10860001000037@" .. CERTIFIED, "BLOCKED", "first the queue publication.*Republish", "queue publication is REJECTED")
  end)
  it("diagnoses a WERCS rejection fixed since: resend", function()
    check("10860001000020@" .. QUEUE, "RESEND", "Resend", "WERCS")
  end)
  it("diagnoses R02063 image errors: one front image", function()
    check("10614141000040@" .. QUEUE, "FAILED_TO_SEND", "Front", "R02063")
  end)
  it("diagnoses warning 2802: Ti/Hi entered as GTIN pallet Ti/Hi", function()
    check("10860001000037@" .. QUEUE, "FIX_THEN_REPUBLISH", "Non%-GTIN Pallet.*Republish as New", "2802")
  end)
  it("diagnoses a PDP rejection for a missing customer facing size", function()
    check("10614141000026@" .. QUEUE, "FIX_THEN_REPUBLISH", "Customer Facing Size.*Republish", "PDP")
  end)
  it("diagnoses a model GTIN rejection fixed since: ready to republish", function()
    check("10845678000023@" .. QUEUE, "READY_TO_REPUBLISH", "Republish as New", "model GTIN.*changed since")
  end)
  it("diagnoses an each whose recipient is Product Introduction", function()
    check("10614141000057@" .. QUEUE, "FIX_THEN_REPUBLISH", "ALL", "Product Introduction")
  end)
  it("diagnoses an update that asks for a new IMF", function()
    check("10860001000044@" .. QUEUE, "FIX_THEN_REPUBLISH", "Reason Code blank", "IMF")
  end)
  it("diagnoses CIC999 'item found in submitted status' after the VIP migration", function()
    check("10845678000047@" .. QUEUE, "FIX_THEN_REPUBLISH", "withdraw the Product Introduction", "VIP")
    check("10845678000047@" .. PRODUCT_INTRO, "WRONG_RECIPIENT", "withdraw this publication")
  end)

  it("checks GTINs given or read from a file, naming a bad one by its line", function()
    local dir = process.tempdir()
    process.write(dir .. "/gtins.txt", "# the week's items\n10845678000023\n1084567800002\n\n10860001000020\n")
    local r = kapi {"run", "republish-check", "--json", "--file", dir .. "/gtins.txt"}
    process.cleanup(dir)
    assert.equal(2, r.status)
    assert.matches("gtins%.txt:3: GTIN \"1084567800002\"", r.stderr)
    local got = by_publication(json.decode(r.stdout))
    assert.equal("READY_TO_REPUBLISH", got["10845678000023@" .. QUEUE].verdict)
    assert.equal("RESEND", got["10860001000020@" .. QUEUE].verdict)
  end)

  it("reads an exported report by its own column labels, naming a bad row", function()
    local dir = process.tempdir()
    process.write(dir .. "/export.csv", table.concat({
      "Published GTIN,Recipient,Publication Type,Publish Date,Synchronization Status,CIC Status,CIC Date,Reason Code,CIC Message",
      "10860001000020,0838016000123,NEW,2026-11-20T10:00:00Z,SYNCHRONISED,REJECTED,2026-11-21T10:00:00Z,CIC999,"
        .. '"The product hierarchy was rejected because it is not registered in WERCS, please resubmit"',
      "not-a-gtin,0838016000123,NEW,,,,,,",
      "10614141000033,0838016000123,NEW,2026-11-22T10:00:00Z,Failed to send,,,,productActivityTypeCode MADE_IN is invalid.",
    }, "\n") .. "\n")
    local r = kapi {"run", "republish-check", "--json", "--report", dir .. "/export.csv"}
    process.cleanup(dir)
    assert.equal(2, r.status)
    assert.matches('export%.csv:3: GTIN "not%-a%-gtin" has a non%-digit', r.stderr)
    local got = by_publication(json.decode(r.stdout))
    assert.equal("RESEND", got["10860001000020@" .. QUEUE].verdict)
    assert.equal("FAILED_TO_SEND", got["10614141000033@" .. QUEUE].verdict)
  end)

  it("never asks the built-in sandbox about a report's items, which it has never seen", function()
    local dir = process.tempdir()
    local report = process.write(dir .. "/export.csv", "GTIN,Recipient GLN,Sync Status,CIC State,Message\n"
      .. "00012345678905,0838016000123,SYNCHRONISED,REJECTED,Model GTIN error\n")
    local r = kapi {"run", "republish-check", "--report", report}
    assert.equal(0, r.status, r.stderr)
    assert.is_nil(r.stderr:find("UNKNOWN_GTIN", 1, true))
    assert.is_nil(r.stderr:find("built-in sandbox", 1, true))
    assert.matches("verdicts come from the report alone %(no 1WorldSync credentials are configured", r.stderr)
    assert.matches("00012345678905  queue  FIX_THEN_REPUBLISH", r.stdout)
    -- Nor when the sandbox is asked for by name.
    for _, run in ipairs {{{"run", "republish-check", "--report", report, "--env", "sandbox"}},
                          {{"run", "republish-check", "--report", report}, {KAPI_ENV = "sandbox"}}} do
      local env = process.sandbox_env()
      for k, v in pairs(run[2] or {}) do env[k] = v end
      r = process.kapi_run(run[1], {env = env})
      assert.equal(0, r.status, r.stderr)
      assert.matches("verdicts come from the report alone %(the built%-in sandbox knows nothing of your items", r.stderr)
      assert.is_nil(r.stderr:find("UNKNOWN_GTIN", 1, true))
    end
    process.cleanup(dir)
  end)

  it("names every report row it cannot use, and counts the rows for other retailers", function()
    local dir = process.tempdir()
    local report = process.write(dir .. "/export.csv", table.concat({
      "Published GTIN,Recipient GLN,Synchronization Status,CIC Status,Publish Date",
      "10860001000020,0838016000123,SYNCHRONISED,REJECTED,2026-11-20T10:00:00Z",
      "10860001000037,,SYNCHRONISED,REJECTED,2026-11-20T10:00:00Z",
      "10860001000044,0000000000000,PENDING,,2026-11-20T10:00:00Z",
      "10614141000019,0838016000123,weird status,,2026-11-20T10:00:00Z",
      "10614141000026,0838016000123,SYNCHRONISED,???,2026-11-20T10:00:00Z",
      "10614141000033,0838016000123,Pending Synchronization,,2026-11-20T10:00:00Z",
    }, "\n") .. "\n")
    local r = kapi {"run", "republish-check", "--report", report, "--json"}
    assert.equal(2, r.status)
    assert.matches("export%.csv:3: no recipient GLN\n", r.stderr)
    assert.matches('export%.csv:5: synchronization status "weird status" is not one kapi knows', r.stderr)
    assert.matches('export%.csv:6: CIC state "%?%?%?" is not one of', r.stderr)
    assert.matches("export%.csv: 1 row for recipients other than Kroger's GLNs left out", r.stderr)
    local got = by_publication(json.decode(r.stdout))
    assert.truthy(got["10860001000020@" .. QUEUE])
    assert.truthy(got["10614141000033@" .. QUEUE])
    local count = 0
    for _ in pairs(got) do count = count + 1 end
    assert.equal(2, count)
    local bare = process.write(dir .. "/bare.csv", "Published GTIN\n10860001000020\n")
    r = kapi {"run", "republish-check", "--report", bare}
    process.cleanup(dir)
    assert.equal(2, r.status)
    assert.matches("bare%.csv: not a publication report: no recipient GLN column in its header %(Published GTIN%)\n$",
                   r.stderr)
  end)

  -- GS1 CIC messages (tests/data/cic): the same records, so the same
  -- verdicts, as a report.
  local CIC = process.source_dir .. "/tests/data/cic/"

  local function copies(names)
    local dir = process.tempdir()
    for _, name in ipairs(names) do
      os.execute(("cp %s %s"):format(process.quote(CIC .. name), process.quote(dir)))
    end
    return dir
  end

  it("reads GS1 CIC messages, a directory of them, with a verdict for each confirmation", function()
    local got, r = verdicts {"run", "republish-check", "--cic", CIC .. "good", "--json"}
    assert.matches("verdicts come from the CIC messages alone %(no 1WorldSync credentials are configured", r.stderr)
    local count = 0
    for _ in pairs(got) do count = count + 1 end
    assert.equal(15, count)
    local expected = {
      ["10862000000018@" .. QUEUE] = "DONE", ["10862000000018@" .. CERTIFIED] = "DONE",
      ["10862000000032@" .. QUEUE] = "DONE", ["10862000000049@" .. QUEUE] = "FIX_THEN_REPUBLISH",
      ["10862000000063@" .. QUEUE] = "RESEND", ["10862000000087@" .. QUEUE] = "FIX_THEN_REPUBLISH",
      ["10862000000117@" .. PRODUCT_INTRO] = "WRONG_RECIPIENT", ["10862000000131@" .. CERTIFIED] = "BLOCKED",
    }
    for key, verdict in pairs(expected) do assert.equal(verdict, got[key].verdict, key) end
    assert.matches("^Kroger QA is reviewing it, and its CIC flags a problem: Ti/Hi",
                   got["10862000000087@" .. QUEUE].cause)
    -- A table too, with the summary.
    r = kapi {"run", "republish-check", "--cic", CIC .. "good/review-2802.xml"}
    assert.equal(0, r.status, r.stderr)
    assert.matches("10862000000087  queue  FIX_THEN_REPUBLISH", r.stdout)
    assert.matches("1 publication: 1 FIX_THEN_REPUBLISH%.", r.stderr)
  end)

  it("gives in --json the same rows for CIC messages as for a report of the same publications", function()
    local cic = require "kapi.cic"
    local dir = copies {"good/synchronised.xml", "good/default-namespace.xml", "good/review-2802.xml",
                        "good/product-introduction.xml", "good/blocked.xml"}
    local lines = {"GTIN,Recipient GLN,CIC State,CIC Date,CIC Code,Message"}
    for _, p in ipairs((cic.read(dir))) do
      lines[#lines + 1] = ('%s,%s,%s,%s,%s,"%s"'):format(p.gtin, p.recipientGln, p.cicState, p.cicDate, p.cicCode,
                                                          p.message:gsub('"', '""'))
    end
    local report = process.write(dir .. "/report/export.csv", table.concat(lines, "\n") .. "\n")
    local from_cic = kapi {"run", "republish-check", "--cic", dir, "--json"}
    local from_report = kapi {"run", "republish-check", "--report", report, "--json"}
    process.cleanup(dir)
    assert.equal(0, from_cic.status, from_cic.stderr)
    assert.equal(0, from_report.status, from_report.stderr)
    assert.equal(7, #json.decode(from_cic.stdout))
    assert.same(json.decode(from_report.stdout), json.decode(from_cic.stdout))
  end)

  it("names a malformed or foreign message FILE:LINE, skips it, reads the rest, and exits 1", function()
    local dir = copies {"good/synchronised.xml", "broken/malformed.xml", "broken/foreign.xml"}
    local r = kapi {"run", "republish-check", "--cic", dir, "--json"}
    process.cleanup(dir)
    assert.equal(1, r.status, r.stderr)
    assert.matches("kapi: " .. dir:gsub("%p", "%%%0") .. "/malformed%.xml:38:45: malformed XML: mismatched tag\n", r.stderr)
    assert.matches("kapi: " .. dir:gsub("%p", "%%%0") .. "/foreign%.xml:3: not a GS1 CIC message: its root element is "
                   .. "catalogueItemNotificationMessage", r.stderr)
    local got = by_publication(json.decode(r.stdout))
    assert.equal("DONE", got["10862000000018@" .. CERTIFIED].verdict)
  end)

  it("names a confirmation it cannot use (exit 2), and refuses a file alone that is no CIC message", function()
    local r = kapi {"run", "republish-check", "--cic", CIC .. "broken/bad-confirmations.xml", "--json"}
    assert.equal(2, r.status)
    assert.matches('bad%-confirmations%.xml:46: GTIN "10862000000156" has check digit 6', r.stderr)
    assert.matches('bad%-confirmations%.xml:64: CIC state "PENDING" is not one of', r.stderr)
    assert.matches('bad%-confirmations%.xml:82: creationDateTime "yesterday" is not a date', r.stderr)
    assert.equal(1, #json.decode(r.stdout))
    for _, case in ipairs {{"broken/malformed.xml", "malformed%.xml:38:45: malformed XML: mismatched tag"},
                           {"broken/wrong-namespace.xml", "wrong%-namespace%.xml:3: a catalogueItemConfirmationMessage "
                              .. "in namespace urn:example:gdsn:2, not GDSN 3%.1's"}} do
      r = kapi {"run", "republish-check", "--cic", CIC .. case[1]}
      assert.equal(2, r.status)
      assert.equal("", r.stdout)
      assert.matches("^kapi: [^\n]*" .. case[2] .. "[^\n]*\n$", r.stderr)
    end
    local empty = process.tempdir()
    r = kapi {"run", "republish-check", "--cic", empty}
    process.cleanup(empty)
    assert.equal(2, r.status)
    assert.matches(": an empty directory: no CIC message in it\n$", r.stderr)
  end)

  it("reads a CIC message from stdin, in UTF-16, and takes it as the one source", function()
    local f = assert(io.open(CIC .. "good/product-introduction.xml", "rb"))
    local utf16 = f:read("a")
    f:close()
    local r = process.kapi_run({"run", "republish-check", "--cic", "-", "--json"},
                               {env = process.sandbox_env(), stdin = utf16})
    assert.equal(0, r.status, r.stderr)
    local rows = json.decode(r.stdout)
    assert.same({"10862000000117", PRODUCT_INTRO, "WRONG_RECIPIENT"}, {rows[1].gtin, rows[1].recipientGln, rows[1].verdict})
    r = kapi {"run", "republish-check", "--cic", CIC .. "good", "--report", CIC .. "README.md"}
    assert.equal(2, r.status)
    assert.matches("give one source: GTINs %(or %-%-file%), %-%-report FILE, %-%-cic FILE", r.stderr)
  end)

  it("says in --json what --apply did for each publication", function()
    local rows = by_publication(json.decode(kapi({"run", "republish-check", "--all", "--apply", "--json"}).stdout))
    local acted = rows["10845678000023@" .. QUEUE]
    assert.same({"republish", "done"}, {acted.action, acted.result})
    assert.same({"resend", "done"}, {rows["10860001000020@" .. QUEUE].action, rows["10860001000020@" .. QUEUE].result})
    assert.same({json.null, json.null}, {rows["10614141000019@" .. QUEUE].action, rows["10614141000019@" .. QUEUE].result})
    local plan = by_publication(json.decode(kapi({"run", "republish-check", "--all", "--json"}).stdout))
    assert.same({"republish", "planned"}, {plan["10845678000023@" .. QUEUE].action, plan["10845678000023@" .. QUEUE].result})
  end)

  it("says what is true after --apply on the built-in sandbox, which ends with the run", function()
    local r = kapi {"run", "republish-check", "10845678000023", "--apply"}
    assert.equal(0, r.status, r.stderr)
    assert.matches("done: republish as New 10845678000023 to 0838016000123", r.stderr)
    assert.matches("The built%-in sandbox lives as long as this kapi process: the next kapi command starts it afresh",
                   r.stderr)
    assert.is_nil(r.stderr:find("Run it again to see the new state", 1, true))
    assert.is_nil(r.stderr:find("still running", 1, true))
    local sandbox = process.sandbox()
    local ok, err = pcall(function()
      r = kapi({"run", "republish-check", "10845678000023", "--apply"}, sandbox.url)
      assert.matches("Run it again to see the new state", r.stderr)
    end)
    sandbox.stop()
    assert(ok, err)
  end)

  it("splits the work with --shard: the shards are disjoint and cover everything", function()
    local union, total = {}, 0
    for i = 1, 3 do
      local part = verdicts {"run", "republish-check", "--all", "--json", "--shard", i .. "/3"}
      for key in pairs(part) do
        assert.is_nil(union[key], key .. " in two shards")
        union[key] = true
        total = total + 1
      end
    end
    assert.equal(16, total)
    local bad = kapi {"run", "republish-check", "--all", "--shard", "4/3"}
    assert.equal(2, bad.status)
    assert.matches("%-%-shard 4/3: expected I/N", bad.stderr)
  end)

  it("prints the plan without --apply, acts with it, and shows the new state on the next run", function()
    local sandbox = process.sandbox {"--review-delay", "0.3"}
    local dry = kapi({"run", "republish-check", "--all"}, sandbox.url)
    assert.matches("Plan %(dry run; %-%-apply does it%):\n  republish as New 10845678000023 to 0838016000123\n"
                   .. "  resend 10860001000020 to 0838016000123\n", dry.stderr)
    assert.matches("READY_TO_REPUBLISH", kapi({"run", "republish-check", "10845678000023"}, sandbox.url).stdout)
    local applied = kapi({"run", "republish-check", "--all", "--apply"}, sandbox.url)
    assert.equal(0, applied.status, applied.stderr)
    assert.matches("done: republish as New 10845678000023", applied.stderr)
    assert.matches("done: resend 10860001000020", applied.stderr)
    local waiting = verdicts({"run", "republish-check", "--json", "10845678000023", "10860001000020"}, sandbox.url)
    assert.equal("WAITING", waiting["10845678000023@" .. QUEUE].verdict)
    os.execute("sleep 0.5")
    local after = verdicts({"run", "republish-check", "--json", "10845678000023", "10860001000020"}, sandbox.url)
    sandbox.stop()
    for _, key in ipairs {"10845678000023@" .. QUEUE, "10845678000023@" .. CERTIFIED,
                          "10860001000020@" .. QUEUE, "10860001000020@" .. CERTIFIED} do
      assert.equal("DONE", after[key] and after[key].verdict, key)
    end
  end)

  it("asks for the publications of 50 GTINs in one call", function()
    local supplier = require "kapi.sandbox.supplier"
    local lines = {}
    for k = 1, 120 do lines[k] = select(2, supplier.gtins(k)) end
    local file = process.write(process.tempdir() .. "/gtins.txt", table.concat(lines, "\n") .. "\n")
    local sandbox = process.sandbox {"--verbose"}
    local r = kapi({"run", "republish-check", "--json", "--file", file}, sandbox.url)
    local log = sandbox.log()
    sandbox.stop()
    local calls = select(2, log:gsub("GET /items/v1/publications", ""))
    assert.equal(3, calls, ("%d calls for 120 GTINs"):format(calls))
    local got = by_publication(json.decode(r.stdout))
    for key, row in pairs(rows) do assert.equal(row.verdict, got[key] and got[key].verdict, key) end
    assert.matches("kapi: " .. lines[120] .. ": has no publication to a Kroger GLN", r.stderr, 1, true)
  end)

  it("reads the items a call's verdicts need while the later calls are asked", function()
    -- 17 calls, 8 at a time, each held 0.2 s: the items of the first call's
    -- GTINs (the sandbox's publications) are read in the second round, so
    -- they are answered before the 17th call, which goes in the third.
    local supplier = require "kapi.sandbox.supplier"
    local lines, seen = {}, {}
    for _, row in pairs(rows) do
      if not seen[row.gtin] then seen[row.gtin] = true; lines[#lines + 1] = row.gtin end
    end
    for k = 1, 850 - #lines do lines[#lines + 1] = select(2, supplier.gtins(k)) end
    local file = process.write(process.tempdir() .. "/gtins.txt", table.concat(lines, "\n") .. "\n")
    local sandbox = process.sandbox {"--verbose", "--faults", "slow=1:0.2s"}
    local r = kapi({"run", "republish-check", "--json", "--file", file}, sandbox.url)
    local log = sandbox.log()
    sandbox.stop()
    local got = by_publication(json.decode(r.stdout))
    for key, row in pairs(rows) do assert.equal(row.verdict, got[key] and got[key].verdict, key) end
    local calls, last_call, first_item = 0, nil, nil
    local n = 0
    for line in log:gmatch("[^\n]+") do
      n = n + 1
      if line:find("GET /items/v1/publications", 1, true) then calls, last_call = calls + 1, n end
      if line:find("GET /items/v1/items/", 1, true) then first_item = first_item or n end
    end
    assert.equal(17, calls)
    assert.is_truthy(first_item, "no item was read")
    assert.is_true(first_item < last_call, "every item was read after the last publications call")
  end)

  it("reads an item only when a verdict of its publications depends on it", function()
    local sandbox = process.sandbox {"--verbose"}
    local r = kapi({"run", "republish-check", "--all", "--json"}, sandbox.url)
    local log = sandbox.log()
    sandbox.stop()
    assert.same(rows, by_publication(json.decode(r.stdout)))
    local read = {}
    for gtin in log:gmatch("GET /items/v1/items/(%d+)") do
      assert.is_nil(read[gtin], gtin .. " read twice")
      read[gtin] = true
    end
    local looks = {FIX_THEN_REPUBLISH = true, READY_TO_REPUBLISH = true, RESEND = true, FAILED_TO_SEND = true,
                   BLOCKED = true}
    local needed, unread = {}, 0
    for _, row in pairs(rows) do needed[row.gtin] = needed[row.gtin] or looks[row.verdict] or false end
    for gtin, need in pairs(needed) do
      if not need then
        assert.is_nil(read[gtin], gtin .. ": its publications are done or waiting, yet its item was read")
        unread = unread + 1
      end
    end
    assert.is_true(unread >= 3, "the table has done and waiting publications")
    for gtin in pairs(read) do assert.is_true(needed[gtin], gtin .. " read for no verdict") end
  end)

  it("gives the same verdicts when the sandbox injects faults", function()
    local sandbox = process.sandbox {"--faults", "5xx=0.2,reset=0.05,slow=0.05:0.1s"}
    local faulty = verdicts({"run", "republish-check", "--all", "--json"}, sandbox.url)
    sandbox.stop()
    for key, row in pairs(rows) do
      assert.equal(row.verdict, faulty[key] and faulty[key].verdict, key)
    end
  end)
end)

describe("the supplier recipes under injected faults", function()
  it("give the same preflight findings and resend plan as a clean sandbox", function()
    local preflight = {"run", "preflight", "--json", "--quiet", "--gln", "0860001000009"}
    local resend = {"run", "resend", "--json", "--reason", "check", "10860001000020", "10845678000023"}
    local clean_preflight, clean_resend = kapi(preflight), kapi(resend)
    local sandbox = process.sandbox {"--faults", "5xx=0.2,reset=0.05,slow=0.05:0.1s"}
    local faulty_preflight, faulty_resend = kapi(preflight, sandbox.url), kapi(resend, sandbox.url)
    sandbox.stop()
    assert.equal(0, faulty_preflight.status, faulty_preflight.stderr)
    assert.equal(clean_preflight.stdout, faulty_preflight.stdout)
    assert.equal(clean_resend.status, faulty_resend.status)
    assert.equal(clean_resend.stdout, faulty_resend.stdout)
    assert.equal(2, #json.decode(faulty_resend.stdout))
  end)
end)

describe("kapi run resend", function()
  it("refuses a resend that cannot help and says what to do instead", function()
    local r = kapi {"run", "resend", "--json", "--reason", "WERCS registration done",
                    "10860001000020", "10845678000023", "10614141000026", "10845678000030@" .. PRODUCT_INTRO}
    assert.equal(1, r.status)
    local got = by_publication(json.decode(r.stdout))
    assert.equal("resend", got["10860001000020@" .. QUEUE].action)
    assert.equal("refused", got["10845678000023@" .. QUEUE].action)
    assert.matches("republish%-check 10845678000023 %-%-apply", got["10845678000023@" .. QUEUE].why)
    assert.matches("Customer Facing Size", got["10614141000026@" .. QUEUE].why)
    assert.matches("PI9001", got["10845678000030@" .. PRODUCT_INTRO].why)
    assert.matches("Dry run: nothing was resent", r.stderr)
  end)

  it("resends with --apply, recording the reason, and the item is reviewed again", function()
    local sandbox = process.sandbox {"--review-delay", "0.2"}
    local r = kapi({"run", "resend", "--apply", "--reason", "WERCS registration done", "10860001000020"}, sandbox.url)
    assert.equal(0, r.status, r.stderr)
    assert.matches("10860001000020%s+0838016000123%s+RESEND%s+resent", r.stdout)
    os.execute("sleep 0.4")
    local after = verdicts({"run", "republish-check", "--json", "10860001000020"}, sandbox.url)
    sandbox.stop()
    assert.equal("DONE", after["10860001000020@" .. QUEUE].verdict)
  end)

  it("needs a reason and a publication", function()
    local r = kapi {"run", "resend", "10860001000020"}
    assert.equal(2, r.status)
    assert.matches("^kapi: %-%-reason is required\n", r.stderr)
    assert.equal(2, kapi({"run", "resend", "--reason", "x"}).status)
  end)
end)
