-- resend: send existing publications again after an outside fix (WERCS
-- registration, a corrected item that failed to send), with the reason
-- recorded. A resend that cannot help is refused with what to do instead:
-- after a rejection only a Republish brings a new review.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local certification = require "kapi.certification"
local gtin = require "kapi.gtin"
local errors = require "kapi.errors"
local input = require "kapi.input"

-- Verdicts a resend helps with; the others say what helps instead.
local ALLOWED = {RESEND = true, DONE = true, OVERDUE = true}

local INSTEAD = {
  FIX_THEN_REPUBLISH = "a rejected publication is reviewed again only after a Republish; fix first: %s",
  READY_TO_REPUBLISH = "a rejected publication needs a Republish, not a Resend: kapi run republish-check %s --apply",
  WAITING = "it is waiting for Kroger's review; a resend would not speed it up (%s)",
  FAILED_TO_SEND = "it never left 1WorldSync; %s",
  WRONG_RECIPIENT = "resending to Product Introduction only gets PI9001 again; %s",
  BLOCKED = "the certified publication waits for the queue, a resend does not help; %s",
}

local ACTION_STYLE = {resend = "yellow", resent = "green", refused = "red", failed = "red", unknown = "red",
                      ["not done"] = "dim"}
local COLUMNS = {
  {key = "gtin", title = "GTIN"},
  {key = "recipientGln", title = "TO"},
  {key = "verdict", title = "VERDICT"},
  {key = "action", title = "ACTION", style = function(v) return ACTION_STYLE[v] end},
  {key = "why", title = "WHY", wrap = true},
}
local KEYS = {"gtin", "recipientGln", "verdict", "action", "why"}

-- One publication, "GTIN" or "GTIN@GLN" (the Certification Queue by
-- default): {gtin, recipientGln}, or nil after naming what is wrong.
local function target(spec, gln, where, problems)
  local code, at, named = spec:match("^([^@]*)(@?)(.*)$")
  if at == "@" and named == "" then problems:add(where, ("%s: no GLN after @"):format(errors.excerpt(spec))); return end
  gln = named ~= "" and named or gln or certification.QUEUE
  local ok, why = gtin.valid(code)
  if not ok then problems:add(where, why); return end
  local gln_ok, gln_why = gtin.valid_gln(gln)
  if not gln_ok then problems:add(where, gln_why); return end
  return {gtin = gtin.normalize(code), recipientGln = gln}
end

-- The publications of the arguments and of --file lines (GTIN, GTIN@GLN,
-- or a CSV row GTIN,GLN).
local function targets(args, problems)
  local out = {}
  local function add(t) if t then out[#out + 1] = t end end
  for i, spec in ipairs(args.publication) do add(target(spec, nil, ("argument %d"):format(i), problems)) end
  for _, path in ipairs(recipe.distinct_files(args.file, "--file")) do
    for _, entry in ipairs(recipe.entries(path, problems, "publication")) do
      local gln = entry.fields[2] ~= "" and entry.fields[2] or nil
      add(target(entry.fields[1], gln, ("%s:%d"):format(input.name(path), entry.line), problems))
    end
  end
  return out
end

local function decide(row)
  if ALLOWED[row.verdict] or (row.verdict == "FAILED_TO_SEND" and row.findings and #row.findings == 0) then
    row.action, row.why = "resend", row.cause
  else
    local instead = INSTEAD[row.verdict] or "%s"
    row.action, row.why = "refused", instead:format(row.verdict == "READY_TO_REPUBLISH" and row.gtin or row.next)
  end
  return row
end

return {
  summary = "Resend publications after an outside fix, with the reason recorded",
  keys = KEYS,
  description = [[
Resends existing publications (GTIN, or GTIN@RECIPIENT_GLN; the
Certification Queue 0838016000123 by default) with --reason. Each is checked
first: a resend that cannot help (a rejection that needs a Republish, an
item still failing a rule, a publication waiting for review, a wrong
recipient) is refused with what to do instead. Without --apply it prints the
plan. Exit status (docs/usage.md): 0 when every publication was resent (or
would be), 1 when one was refused or failed; 2 for a usage error or a
publication that is not there (a bad GTIN, not published to that GLN).]],

  arguments = function(parser)
    parser:argument("publication", "GTIN or GTIN@RECIPIENT_GLN"):args("*")
    parser:option("--file", "Read publications from a file, one a line: GTIN, GTIN@GLN or GTIN,GLN (repeatable; - reads stdin)"):count("*")
          :argname("FILE")
    parser:option("--reason", "Why it is resent (recorded with the resend; required)"):count(1)
    recipe.options(parser, {"output", "quiet", "env", "shard", "apply"})
  end,

  run = function(args)
    if not args.reason or args.reason:match("^%s*$") then
      recipe.usage("--reason is empty: say why the publication is resent (it is recorded)")
    end
    if #args.publication == 0 and #args.file == 0 then
      recipe.usage("which publications? give GTIN or GTIN@GLN, or --file FILE")
    end
    local problems = recipe.problems()
    local wanted = recipe.shard(args, targets(args, problems), function(t) return t.gtin end)
    if #wanted == 0 then return recipe.status(problems) end
    local items = kapi.items.client {env = args.env}

    -- Every publication of each GTIN, once: the queue's decides the certified one's verdict.
    local records, asked, seen = {}, {}, {}
    local gtins = {}
    for i, t in ipairs(wanted) do gtins[i] = t.gtin end
    local found, failures = items:publications_of(gtins)
    for _, f in ipairs(failures) do problems:error(f.error, f.where) end
    for _, t in ipairs(wanted) do
      local key = t.gtin .. "@" .. t.recipientGln
      if found[t.gtin] then
        for _, r in ipairs(found[t.gtin]) do
          local k = r.gtin .. "@" .. r.recipientGln
          if not seen[k] then seen[k] = true; records[#records + 1] = r end
          if k == key then asked[key] = true end
        end
        if not asked[key] then problems:add(t.gtin, "is not published to " .. t.recipientGln .. "; nothing to resend") end
      end
    end
    local rows = {}
    local assessed, unread = certification.assess(records, items)
    for _, row in ipairs(assessed) do
      if asked[row.gtin .. "@" .. row.recipientGln] then
        if unread[row.gtin] then
          -- Without the item a resend could be pointless: better to ask again than to guess.
          row.action, row.why = "failed", "could not read the item: " .. errors.message(unread[row.gtin])
        else
          decide(row)
        end
        rows[#rows + 1] = row
      end
    end

    local stop
    if args.apply then
      local to_send = {}
      for _, row in ipairs(rows) do
        if row.action == "resend" then to_send[#to_send + 1] = row end
      end
      stop = recipe.apply(to_send, function(row) return items:resend(row.gtin, row.recipientGln, {reason = args.reason}) end)
      for _, row in ipairs(to_send) do
        row.action = ({done = "resent"})[row.outcome] or row.outcome
        if row.outcome ~= "done" then
          row.why = row.error
          if row.outcome ~= "not done" then problems:fail(row.gtin .. "@" .. row.recipientGln, row.error) end
        end
      end
    end
    local refused = 0
    for _, row in ipairs(rows) do
      if row.action ~= "resend" and row.action ~= "resent" then refused = refused + 1 end
    end
    recipe.print(args, rows, COLUMNS, KEYS)
    recipe.stopped(stop)
    if not args.apply and #rows > refused then
      recipe.note(args, "\nDry run: nothing was resent; --apply resends the %d marked resend.", #rows - refused)
    end
    return recipe.status(problems, refused > 0)
  end,
}
