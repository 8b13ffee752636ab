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
local json = require "kapi.json"

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

local function to_kroger(r) return KROGER_GLNS[r.recipientGln] end

local function kroger_only(records)
  return only(records, to_kroger)
end

local function any_to_kroger(records)
  for _, r in ipairs(records) do
    if to_kroger(r) then return true end
  end
  return false
end

local function by_shard(args, records)
  return recipe.shard(args, records, function(r) return r.gtin end)
end

-- For GTINs, the items a call's verdicts need are read while the next
-- calls are asked, in the reader's tasks.
local function from_api(args, gtins, items, problems, reader)
  if args.all then return items:publications() end
  if args.gln then return items:publications {ipGln = args.gln} end
  local found, failures = items:publications_of(gtins, {pool = reader.pool, each = function(records)
    reader:start(by_shard(args, kroger_only(records)))
  end})
  for _, f in ipairs(failures) do problems:error(f.error, f.where) end
  local out = {}
  for _, g in ipairs(gtins) do
    local records = found[g]
    if records and not any_to_kroger(records) then
      problems:add(g, "has no publication to a Kroger GLN (publish the top level to 0838016000123)")
    elseif records then
      table.move(records, 1, #records, #out + 1, out)
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

-- History ----------------------------------------------------------------------------

local SOURCE_OF = {report = "report", cic = "cic"}

local function source_of(args)
  for option, source in pairs(SOURCE_OF) do
    if args[option] then return source end
  end
  return "api"
end

-- The history to read and record in: kapi's own file, or one in memory
-- when the publications come from the built-in sandbox (its state ends
-- with this process, and it never writes the user's files); nil with
-- --no-history.
local function open_history(args, items)
  if args.no_history then return nil end
  local from_sandbox = source_of(args) == "api" and items and config.is_in_process_sandbox(items.base_url)
  return kapi.history.open(from_sandbox and ":memory:" or nil)
end

local function state_of(o)
  if not o then return json.null end
  return {verdict = o.verdict, syncStatus = o.sync_status or o.syncStatus or json.null,
          cicState = (o.cic_state or o.cicState or "") ~= "" and (o.cic_state or o.cicState) or json.null,
          cause = o.cause or json.null, next = o.next or json.null,
          observedAt = o.observed_at and os.date("!%Y-%m-%dT%H:%M:%SZ", o.observed_at) or json.null}
end

local WAITS = {WAITING = true, OVERDUE = true}

-- What changed for each row since its previous observation (before):
-- {gtin, recipientGln, change, before, after, at}; a publication still
-- waiting is told with how long it has waited.
local function changes_of(rows, before, now)
  local out = {}
  for _, r in ipairs(rows) do
    local prev = before[r.gtin .. " " .. r.recipientGln]
    local after = {verdict = r.verdict, syncStatus = r.publication.syncStatus, cicState = r.publication.cicState}
    local change
    if not prev then
      change = "new"
    elseif prev.verdict ~= r.verdict or (prev.cic_state or "") ~= (after.cicState or "") then
      if after.cicState == "REJECTED" then change = "rejected"
      elseif after.cicState == "SYNCHRONISED" or r.verdict == "DONE" then change = "synchronised"
      else change = "verdict" end
    elseif WAITS[r.verdict] then
      change = "waiting"
    end
    if change then
      local row = {gtin = r.gtin, recipientGln = r.recipientGln, change = change, before = state_of(prev),
                   after = state_of {verdict = r.verdict, syncStatus = after.syncStatus, cicState = after.cicState,
                                     cause = r.cause, next = r.next, observed_at = now},
                   at = os.date("!%Y-%m-%dT%H:%M:%SZ", now), cause = r.cause, next = r.next}
      if change == "waiting" then
        local published = certification.parse_time(r.publication.publishedAt)
        row.waited = published and ("%.0f h since it was published"):format((now - published) / 3600)
                     or ("at least %.0f h"):format((now - prev.observed_at) / 3600)
      end
      out[#out + 1] = row
    end
  end
  return out
end

local CHANGE_WORDS = {new = "first seen", rejected = "newly rejected", synchronised = "newly synchronised",
                      verdict = "verdict changed", waiting = "still waiting"}
local CHANGE_KEYS = {"gtin", "recipientGln", "change", "before", "after", "at"}
local CHANGE_COLUMNS = {
  {key = "gtin", title = "GTIN"},
  {key = "to", title = "TO"},
  {key = "what", title = "CHANGE"},
  {key = "explained", title = "NOW, AND NEXT", wrap = true},
}

local function show_changes(args, changes)
  for _, c in ipairs(changes) do
    c.to = SHORT_GLN[c.recipientGln] or c.recipientGln
    local before = c.before ~= json.null and c.before.verdict or nil
    c.what = CHANGE_WORDS[c.change] .. (before and before ~= c.after.verdict and (": " .. before .. " -> " .. c.after.verdict)
                                        or (" (" .. c.after.verdict .. ")"))
    c.explained = c.change == "waiting" and ("waiting for %s; %s."):format(c.waited, c.next)
                  or (c.cause .. ". Next: " .. c.next .. ".")
  end
  recipe.print(args, changes, CHANGE_COLUMNS, CHANGE_KEYS)
  if recipe.format(args) == "table" then
    recipe.say(args, #changes == 0 and "Nothing changed since the last check." or
                     ("%d change%s since the last check."):format(#changes, #changes == 1 and "" or "s"))
  end
end

-- The story of a GTIN: for each recipient, its observations grouped
-- while nothing changed (since, last seen, how many looks), oldest first.
local STORY_COLUMNS = {
  {key = "when", title = "WHEN"},
  {key = "to", title = "TO"},
  {key = "shown_state", title = "STATE"},
  {key = "shown_verdict", title = "VERDICT"},
  {key = "explained", title = "CAUSE", wrap = true},
}
local STORY_KEYS = {"gtin", "recipientGln", "since", "last", "looks", "source", "syncStatus", "cicState", "verdict",
                    "cause", "message", "action", "result"}

local function iso(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", t) end

local function story(args, problems)
  local gtin = require("kapi.gtin")
  local ok, why = gtin.valid(args.history)
  if not ok then recipe.usage("--history %s", why) end
  local code = gtin.normalize(args.history)
  local h <close> = kapi.history.open()
  local rows, open_row = {}, {}
  for _, o in ipairs(h:story(code)) do
    local state = (o.sync_status or "?") .. ((o.cic_state or "") ~= "" and (", CIC " .. o.cic_state) or "")
    local did = o.action and o.result and o.result ~= "planned" and (o.action .. ": " .. o.result) or nil
    local current = open_row[o.recipient_gln]
    if current and current.state == state and current.verdict == o.verdict and not did and not current.did then
      current.last, current.looks = iso(o.observed_at), current.looks + 1
    else
      current = {gtin = code, recipientGln = o.recipient_gln, to = SHORT_GLN[o.recipient_gln] or o.recipient_gln,
                 since = iso(o.observed_at), last = iso(o.observed_at), looks = 1, source = o.source, state = state,
                 syncStatus = o.sync_status or json.null, cicState = (o.cic_state or "") ~= "" and o.cic_state or json.null,
                 verdict = o.verdict, plain_verdict = o.verdict, did = did, cause = o.cause or "",
                 message = o.message or json.null, action = o.action or json.null,
                 result = o.result ~= "planned" and o.result or json.null}
      rows[#rows + 1], open_row[o.recipient_gln] = current, current
    end
  end
  if #rows == 0 then
    problems:add(code, "has no observation in the history (" .. h.path .. ")")
    return recipe.status(problems)
  end
  for _, r in ipairs(rows) do
    r.when = r.since:gsub("T", " "):sub(1, 16)
    r.shown_state = r.cicState ~= json.null and ("CIC " .. r.cicState) or tostring(r.syncStatus)
    r.shown_verdict = r.plain_verdict
    r.explained = r.did and (r.did .. "; " .. r.cause) or r.cause
  end
  recipe.print(args, rows, STORY_COLUMNS, STORY_KEYS)
  return recipe.status(problems)
end

-- The verdicts of one look at the publications that publications(problems,
-- reader) finds, with a progress bar on a terminal; nil when it found none
-- and said why. Items that could not be read are failures of the look.
local function verdicts(args, publications, items, problems)
  local bar = recipe.progress(args, {label = "checking", unit = "items"})
  local reader = certification.reader(items, {progress = function(n, total)
    bar.total = total
    bar:step(n)
  end})
  local records = publications(problems, reader)
  local rows, unread = reader:assess(records)
  bar:finish()
  if #records == 0 and #problems > 0 then return nil end -- nothing usable to print
  for gtin, err in pairs(unread) do problems:fail(gtin, "could not read the item: " .. errors.message(err)) end
  return rows
end

-- Watching ------------------------------------------------------------------------------

-- --watch's interval in seconds (a duration with its unit: a bare number
-- could be a GTIN the option took by mistake) and --until as a time.
local function watch_options(args)
  local interval, deadline
  if args.watch then
    local text = args.watch[1] or "15m"
    interval = text:match("%a$") and kapi.history.duration(text)
    if not interval or interval == 0 then
      recipe.usage("--watch %s: expected an interval such as 30s, 15m or 1h (give GTINs before --watch, "
                   .. "or --watch=15m)", errors.excerpt(text))
    end
  end
  if args["until"] then
    local text = args["until"]
    local span = kapi.history.duration(text)
    deadline = span and os.time() + span or certification.parse_time(text)
    if not deadline then
      recipe.usage("--until %s: expected a time (2026-12-02T18:00:00Z) or a duration (8h)", errors.excerpt(text))
    end
  end
  return interval, deadline
end

local function pending_count(rows)
  local n = 0
  for _, r in ipairs(rows) do if WAITS[r.verdict] then n = n + 1 end end
  return n
end

-- The one line between checks on a terminal, written over itself.
local function status_line(args, text)
  if args.quiet or not require("kapi.core").isatty(2) then return end
  io.stderr:write("\r\27[K", text)
  io.stderr:flush()
end

local function clear_status(args) status_line(args, "") end

-- Prints a round's changes: a table on a terminal, one JSON object a
-- line with --json (the watch is a stream), CSV rows with --csv.
local function print_round(args, changes)
  if #changes == 0 then return end
  clear_status(args)
  if recipe.format(args) == "json" or recipe.format(args) == "jsonl" then
    recipe.print({jsonl = true}, changes, CHANGE_COLUMNS, CHANGE_KEYS)
  else
    show_changes(args, changes)
  end
end

--- Re-checks every interval until each watched publication has its
--- answer (no longer waiting for a review) or --until passes, printing
--- only changes and telling each to the --notify targets.
local function watch(args, w)
  local interval, deadline = args.watch, args["until"]
  local history = w.history or kapi.history.open(":memory:")
  local rows, problems, first = w.rows, w.problems, true
  while true do
    local now = os.time()
    local before = history:latest(rows, first and now - (args.since or 0) or now)
    local changes = {}
    for _, c in ipairs(changes_of(rows, before, now)) do
      -- Still waiting is news once, on the first look; after it only changes are.
      if first or c.change ~= "waiting" then changes[#changes + 1] = c end
    end
    print_round(args, changes)
    for _, c in ipairs(changes) do
      if c.change ~= "waiting" then
        for _, target in ipairs(w.targets) do target:send(c) end
      end
    end
    local ok, err = pcall(history.record, history, rows, source_of(args), now)
    if not ok then problems:fail("history", "this run was not recorded: " .. errors.message(err)) end
    local waiting = pending_count(rows)
    if waiting == 0 then
      clear_status(args)
      recipe.say(args, ("Every watched publication has its answer (%d checked)."):format(#rows))
      break
    end
    if deadline and os.time() + interval > deadline then
      clear_status(args)
      recipe.say(args, ("--until has passed: %d of %d publications still waiting."):format(waiting, #rows))
      break
    end
    status_line(args, ("watching %d publication%s, %d waiting; next check at %s (Ctrl-C stops)")
                      :format(#rows, #rows == 1 and "" or "s", waiting, os.date("%H:%M:%S", os.time() + interval)))
    kapi.sleep(interval)
    problems = recipe.problems()
    rows = w.next_round(problems)
    first = false
  end
  for _, target in ipairs(w.targets) do target:flush(5) end
  history:close()
  return recipe.status(problems)
end

return {
  summary = "Where each publication stands with Kroger, why, and what to do next",
  keys = KEYS,
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
    parser:flag("--changes", "Show only what changed since the previous check (kept in kapi's history)")
    parser:option("--since", "With --changes: compare with the history as it was DURATION ago (90m, 24h, 7d)")
          :argname("DURATION"):convert(function(text)
            local seconds = kapi.history.duration(text)
            if not seconds then
              return nil, ("--since %s: expected a duration such as 90m, 24h or 7d"):format(errors.excerpt(text))
            end
            return seconds
          end)
    parser:option("--history", "The story of one GTIN: its observations over time, from kapi's history")
          :argname("GTIN")
    parser:flag("--no-history", "Do not record this run in kapi's history")
    parser:option("--watch", "Check again every INTERVAL (default 15m) until every publication has its answer, "
                  .. "printing only changes"):args("?"):argname("INTERVAL")
    parser:option("--until", "With --watch: stop at this time (an ISO time, 2026-12-02T18:00:00Z) or after "
                  .. "this long (8h)"):argname("TIME")
    parser:option("--notify", "With --watch: tell each change to exec:COMMAND (the change as JSON on stdin) or "
                  .. "a webhook URL (repeatable)"):argname("TARGET"):count("*")
    recipe.options(parser)
  end,

  run = function(args)
    if args.history then
      if #args.gtin + #args.file > 0 or args.report or args.cic or args.gln or args.all or args.changes
         or args.watch then
        recipe.usage("--history GTIN shows a story from the history: give it alone")
      end
      return story(args, recipe.problems())
    end
    args.watch, args["until"] = watch_options(args)
    if args.since and not (args.changes or args.watch) then recipe.usage("--since goes with --changes") end
    if args.changes and args.no_history then recipe.usage("--changes needs the history: leave out --no-history") end
    local sources = (#args.gtin + #args.file > 0 and 1 or 0) + (args.report and 1 or 0)
                    + (args.cic and 1 or 0) + (args.gln and 1 or 0) + (args.all and 1 or 0)
    if sources ~= 1 then
      recipe.usage("give one source: GTINs (or --file), --report FILE, --cic FILE, --gln GLN or --all")
    end
    recipe.check_gln("--gln", args.gln)
    if args.watch then
      if args.apply then recipe.usage("--watch only looks: run --apply without it, then watch") end
      if args.no_history and args.since then recipe.usage("--since needs the history: leave out --no-history") end
    elseif args["until"] or #args.notify > 0 then
      recipe.usage("%s goes with --watch", args["until"] and "--until" or "--notify")
    end
    local targets = {}
    for i, spec in ipairs(args.notify) do targets[i] = kapi.notify.target(spec) end
    local problems = recipe.problems()
    -- What the user gave is read and checked before any service is asked.
    local report = args.report and from_report(args, problems) or args.cic and from_cic(args, problems)
    local gtins = not (args.report or args.cic or args.all or args.gln) and recipe.gtins(args.gtin, args.file, problems)
    if gtins and #gtins == 0 then return recipe.status(problems) end
    local items = items_client(args)
    local function publications(round_problems, reader)
      local records = kroger_only(report or from_api(args, gtins, items, round_problems, reader))
      -- A source with no Kroger publication at all names nothing to check;
      -- a shard that happens to get none is just an empty part of the work.
      if #records == 0 and #round_problems == 0 and not gtins then
        round_problems:add(args.gln and ("--gln " .. args.gln)
                           or (args.report or args.cic) and input.name(args.report or args.cic) or "--all",
                           "no publication to a Kroger GLN")
      end
      return by_shard(args, records)
    end
    local rows = verdicts(args, publications, items, problems)
    if not rows then return recipe.status(problems) end

    -- What was seen before is read before this run is recorded.
    -- A history that cannot be used stops --changes and --watch, which
    -- need it, and otherwise is said once the verdicts are out.
    local opened, history = pcall(open_history, args, items)
    local unusable = not opened and history or nil
    if unusable then
      if args.changes or (args.watch and not args.no_history) then error(unusable, 0) end
      history = nil
    end
    if args.watch then
      return watch(args, {rows = rows, problems = problems, history = history, targets = targets,
                          next_round = function(round_problems)
                            return verdicts(args, publications, items, round_problems) or {}
                          end})
    end
    local now = os.time()
    local before = args.changes and history:latest(rows, now - (args.since or 0))

    local plan = plan_of(rows)
    for _, r in ipairs(plan) do r.action, r.result = ACTIONS[r.verdict].key, "planned" end
    local acting = args.apply and #plan > 0 and items
    local stop = acting and apply(plan, items, problems)
    if before then show_changes(args, changes_of(rows, before, now)) else show(args, rows) end
    if history then
      local ok, err = pcall(history.record, history, rows, source_of(args), now)
      history:close()
      if not ok then unusable = err end
    end
    if unusable then problems:fail("history", "this run was not recorded: " .. errors.message(unusable)) end
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
