-- republish-check: where each publication stands in Kroger's certification,
-- why, and what to do next; with --apply, republish what is ready and
-- resend what only needs a resend. Everything else needs a person: the
-- plan says who should change what.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local certification = require "kapi.certification"
local errors = require "kapi.errors"
local config = require "kapi.config"
local input = require "kapi.input"

local KROGER_GLNS = {[certification.QUEUE] = true, [certification.CERTIFIED] = true,
                     [certification.PRODUCT_INTRO] = true}

local SHORT_GLN = {[certification.QUEUE] = "queue", [certification.CERTIFIED] = "certified",
                   [certification.PRODUCT_INTRO] = "product intro"}

local STYLE = {DONE = "green", WAITING = "blue", READY_TO_REPUBLISH = "yellow", RESEND = "yellow"}

local COLUMNS = {
  {key = "gtin", title = "GTIN"},
  {key = "to", title = "TO"},
  {key = "verdict", title = "VERDICT", style = function(v) return STYLE[v] or "red" end},
  {key = "explained", title = "CAUSE AND NEXT STEP", wrap = true},
}
local KEYS = {"gtin", "recipientGln", "verdict", "cause", "next", "action", "result", "error"}

-- Publication records -------------------------------------------------------------

local function only(list, keep)
  local out = {}
  for _, entry in ipairs(list) do
    if keep(entry) then out[#out + 1] = entry end
  end
  return out
end

local function kroger_only(records)
  return only(records, function(r) return KROGER_GLNS[r.recipientGln] end)
end

local function from_api(args, gtins, items, problems)
  if args.all then return items:publications() end
  if args.gln then return items:publications {ipGln = args.gln} end
  local found, failures = kapi.map(gtins, function(g) return items:publications {gtin = g} end)
  local out = {}
  for i, g in ipairs(gtins) do
    if failures and failures[i] then
      problems:error(failures[i], g)
    elseif #kroger_only(found[i]) == 0 then
      problems:add(g, "has no publication to a Kroger GLN (publish the top level to 0838016000123)")
    else
      table.move(found[i], 1, #found[i], #out + 1, out)
    end
  end
  return out
end

local function from_report(args, problems)
  local records, bad = kapi.items.read_report(args.report)
  for _, why in ipairs(bad) do
    local where, what = why:match("^(.-:%d+): (.*)$")
    problems:add(where or args.report, what or why)
  end
  local others = #records - #kroger_only(records)
  if others > 0 then
    recipe.note(args, "kapi: %s: %d row%s for recipients other than Kroger's GLNs left out", input.name(args.report),
                others, others == 1 and "" or "s")
  end
  return records
end

-- "FILE:LINE[:COLUMN]: why" as the place and the reason.
local function placed(why, fallback)
  local where, what = why:match("^(.-:%d+:?%d*): (.*)$")
  if where then return where, what end
  where, what = why:match("^(.-): (.*)$")
  return where or fallback, what or why
end

-- GS1 CIC messages: a confirmation that cannot be used is bad input, as a
-- report row is (exit 2); a document that is malformed or no CIC message
-- is skipped while the rest is read, and the run has failed (exit 1).
local function from_cic(args, problems)
  local records, bad, skipped = require("kapi.cic").read(args.cic)
  for _, why in ipairs(bad) do problems:add(placed(why, input.name(args.cic))) end
  for _, why in ipairs(skipped) do problems:fail(placed(why, input.name(args.cic))) end
  local others = #records - #kroger_only(records)
  if others > 0 then
    recipe.note(args, "kapi: %s: %d confirmation%s for recipients other than Kroger's GLNs left out",
                input.name(args.cic), others, others == 1 and "" or "s")
  end
  return records
end

-- The Item Management API, or nil when there is none here. With a
-- report, verdicts can come from the report alone; and a report is the
-- user's own data, never checked against the built-in sandbox, which
-- knows nothing of their items.
local function items_client(args)
  local own = args.report and "the report" or args.cic and "the CIC messages" -- the user's own data
  if own and config.in_process_sandbox(args.env) then
    local why = config.sandbox_by_default(args.env) and "no 1WorldSync credentials are configured"
                or "the built-in sandbox knows nothing of your items"
    recipe.note(args, "kapi: verdicts come from %s alone (%s, so the items are not re-checked)", own, why)
    return nil
  end
  local ok, client = pcall(kapi.items.client, {env = args.env})
  if ok then return client end
  if not own then error(client, 0) end
  recipe.note(args, "kapi: no Item Management API here: verdicts come from %s, without re-checking the items", own)
end

-- Output --------------------------------------------------------------------------

local function summary(rows)
  local counts, parts = {}, {}
  for _, r in ipairs(rows) do counts[r.verdict] = (counts[r.verdict] or 0) + 1 end
  for _, v in ipairs(certification.VERDICTS) do
    if counts[v] then parts[#parts + 1] = ("%d %s"):format(counts[v], v) end
  end
  return ("%d %s: %s."):format(#rows, #rows == 1 and "publication" or "publications", table.concat(parts, ", "))
end

local function show(args, rows)
  for _, r in ipairs(rows) do
    r.to = (SHORT_GLN[r.recipientGln] or r.recipientGln)
    r.explained = r.cause .. ". Next: " .. r.next .. "."
  end
  recipe.print(args, rows, COLUMNS, KEYS)
  if #rows > 0 then recipe.say(args, (recipe.format(args) == "table" and "\n" or "") .. summary(rows)) end
end

-- Acting ----------------------------------------------------------------------------

local ACTIONS = {
  READY_TO_REPUBLISH = {key = "republish", word = "republish as New", run = function(items, r)
    return items:republish(r.gtin, r.recipientGln, {publicationType = "NEW"})
  end},
  RESEND = {key = "resend", word = "resend", run = function(items, r)
    return items:resend(r.gtin, r.recipientGln, {reason = "kapi republish-check: " .. r.cause})
  end},
}

local function plan_of(rows)
  return only(rows, function(r) return ACTIONS[r.verdict] end)
end

-- Each row of the plan gets its result: "done", "failed", "unknown" (the
-- answer lost) or "not done" (the run stopped before it: Ctrl-C, an
-- expired login). Returns what stopped the run, to be raised once the
-- rows are shown.
local function apply(plan, items, problems)
  local stop = recipe.apply(plan, function(r) return ACTIONS[r.verdict].run(items, r) end)
  for _, r in ipairs(plan) do
    r.result, r.outcome = r.outcome, nil
    if r.result == "done" then
      r.after = ("now %s%s"):format(r.answer.syncStatus,
                                    r.answer.cicState ~= "" and (", CIC " .. r.answer.cicState) or ", review pending")
    elseif r.result == "failed" or r.result == "unknown" then
      problems:fail(r.gtin, ("could not %s: %s"):format(ACTIONS[r.verdict].word, r.error))
    end
    r.answer = nil
  end
  return stop
end

local function say_plan(args, plan)
  recipe.say(args, "\nPlan (dry run; --apply does it):")
  for _, r in ipairs(plan) do
    recipe.say(args, ("  %s %s to %s"):format(ACTIONS[r.verdict].word, r.gtin, r.recipientGln))
  end
end

local function say_done(args, plan, items, stop)
  recipe.say(args, "")
  for _, r in ipairs(plan) do
    if r.result == "done" then
      recipe.say(args, ("done: %s %s to %s (%s)"):format(ACTIONS[r.verdict].word, r.gtin, r.recipientGln, r.after))
    end
  end
  if stop then
    recipe.stopped(stop)
  elseif config.is_in_process_sandbox(items.base_url) then
    recipe.say(args, "The built-in sandbox lives as long as this kapi process: the next kapi command starts it "
               .. "afresh. To follow the review across commands, start `kapi sandbox` and set KAPI_SANDBOX_URL "
               .. "to its address.")
  else
    recipe.say(args, "Run it again to see the new state (Kroger reviews a republished item within about 24 h).")
  end
end

return {
  summary = "Where each publication stands with Kroger, why, and what to do next",
  description = [[
Reads publications (for the GTINs given, from --file, from an exported
report with --report, from GS1 CIC messages with --cic (an XML file or a
directory of them), for a supplier with --gln, or --all), re-checks each
item with Kroger's rules and gives one verdict per publication: DONE,
WAITING, OVERDUE, FIX_THEN_REPUBLISH, READY_TO_REPUBLISH, RESEND,
FAILED_TO_SEND, WRONG_RECIPIENT or BLOCKED, with the cause and the next
step. Without --apply it prints the plan; with --apply it republishes as
New only the READY_TO_REPUBLISH publications and resends only the RESEND
ones; with --json, each row says what was planned or done (action,
result, error). Exit status (docs/usage.md): 0, or 1 when an item could not
be read, an action failed or a CIC message was skipped (malformed, or not
a CIC message); 2 for a usage error, or input that could not
be used (a bad GTIN or report row, a GTIN with no Kroger publication; the
rest is still checked).]],

  arguments = function(parser)
    parser:argument("gtin", "GTINs of published (top-level) items"):args("*")
    parser:option("--file", "Read GTINs from a file, one per line (repeatable; - reads stdin)"):count("*")
          :argname("FILE")
    parser:option("--report", "Read the publications from an exported report (CSV; - reads stdin)"):argname("FILE")
    parser:option("--cic", "Read the publications from GS1 CIC messages (XML; a file, a directory of them, "
                  .. "or - for stdin)"):argname("FILE")
    parser:option("--gln", "Every publication of this supplier (information provider GLN)")
    parser:flag("--all", "Every publication the account can see")
    recipe.options(parser)
  end,

  run = function(args)
    local sources = (#args.gtin + #args.file > 0 and 1 or 0) + (args.report and 1 or 0)
                    + (args.cic and 1 or 0) + (args.gln and 1 or 0) + (args.all and 1 or 0)
    if sources ~= 1 then
      recipe.usage("give one source: GTINs (or --file), --report FILE, --cic FILE, --gln GLN or --all")
    end
    recipe.check_gln("--gln", args.gln)
    local problems = recipe.problems()
    -- What the user gave is read and checked before any service is asked.
    local report = args.report and from_report(args, problems) or args.cic and from_cic(args, problems)
    local gtins = not (args.report or args.cic or args.all or args.gln) and recipe.gtins(args.gtin, args.file, problems)
    if gtins and #gtins == 0 then return recipe.status(problems) end
    local items = items_client(args)
    local records = kroger_only(report or from_api(args, gtins, items, problems))
    -- A source with no Kroger publication at all names nothing to check;
    -- a shard that happens to get none is just an empty part of the work.
    if #records == 0 and #problems == 0 and not gtins then
      problems:add(args.gln and ("--gln " .. args.gln) or (args.report or args.cic) and input.name(args.report or args.cic)
                   or "--all",
                   "no publication to a Kroger GLN")
    end
    if #records == 0 and #problems > 0 then return recipe.status(problems) end -- nothing usable to print
    records = recipe.shard(args, records, function(r) return r.gtin end)

    local bar = recipe.progress(args, {label = "checking", unit = "items"})
    local rows, unread = certification.assess(records, items, {progress = function(n, total)
      bar.total = total
      bar:step(n)
    end})
    bar:finish()
    for gtin, err in pairs(unread) do problems:fail(gtin, "could not read the item: " .. errors.message(err)) end

    local plan = plan_of(rows)
    for _, r in ipairs(plan) do r.action, r.result = ACTIONS[r.verdict].key, "planned" end
    local acting = args.apply and #plan > 0 and items
    local stop = acting and apply(plan, items, problems)
    show(args, rows)
    if acting then
      say_done(args, plan, items, stop)
    elseif #plan > 0 then
      say_plan(args, plan)
      if args.apply then
        recipe.usage("--apply needs the Item Management API, which is not here: do the plan above in Item Management")
      end
    end
    return recipe.status(problems)
  end,
}
