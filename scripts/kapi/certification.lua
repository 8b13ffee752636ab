-- Where an item stands in Kroger's certification, in plain words: one
-- verdict per publication (item-format.md, "Republish-check verdicts"),
-- its cause and the next step. The knowledge is domain.md §4: what each
-- CIC or failure text means, and which button (Republish, Resend, none)
-- moves the item on. Rules re-check the item as it is now.
local rules = require "kapi.rules.kroger"
local doc = require "kapi.doc"
local errors = require "kapi.errors"
local contains = require("kapi.text").contains

local M = {}

M.QUEUE, M.CERTIFIED, M.PRODUCT_INTRO = rules.QUEUE, rules.CERTIFIED, rules.PRODUCT_INTRO

M.GLN_NAMES = {
  [M.QUEUE] = "Kroger API Certification Queue",
  [M.CERTIFIED] = "Certified Items for Kroger API",
  [M.PRODUCT_INTRO] = "Kroger Product Introduction",
}

--- Every verdict, in the order summaries list them.
M.VERDICTS = {"DONE", "WAITING", "OVERDUE", "FIX_THEN_REPUBLISH", "READY_TO_REPUBLISH", "RESEND",
              "FAILED_TO_SEND", "WRONG_RECIPIENT", "BLOCKED"}

local REVIEW_HOURS = 24

-- Time ---------------------------------------------------------------------------

-- Days since 1970-01-01 of a proleptic Gregorian date (no time zone games
-- with os.time, which reads local time).
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch of an ISO 8601 time (UTC unless it says
--- otherwise), or nil when text is empty or not a time.
local DAYS_IN = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

function M.parse_time(text)
  if type(text) ~= "string" then return nil end
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  local h, mi, s, zone = rest:match("^[T ](%d%d):(%d%d):?(%d*)[%.%d]*(.*)$")
  if rest ~= "" and not h then return nil end
  mo, d = tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > DAYS_IN[mo] or (tonumber(h) or 0) > 23 or (tonumber(mi) or 0) > 59
     or (tonumber(s) or 0) > 60 or not (zone == nil or zone == "" or zone == "Z" or zone:match("^[+-]%d%d:?%d%d$")) then
    return nil
  end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
            + (tonumber(h) or 0) * 3600 + (tonumber(mi) or 0) * 60 + (tonumber(s) or 0)
  local sign, zh, zm = (zone or ""):match("^([+-])(%d%d):?(%d%d)$")
  if sign then t = t - (sign == "+" and 1 or -1) * (tonumber(zh) * 3600 + tonumber(zm) * 60) end
  return t
end

local function hours_since(text, now)
  local t = M.parse_time(text)
  return t and (now - t) / 3600
end

local function ago(hours)
  if not hours then return "at an unknown time" end
  if hours < 1 then return ("%d min ago"):format(math.max(0, math.floor(hours * 60))) end
  if hours < 48 then return ("%.0f h ago"):format(hours) end
  return ("%.0f days ago"):format(hours / 24)
end

-- What Kroger's texts mean ------------------------------------------------------

-- CIC and failure texts -> cause in plain words (`what`, and `cause` as a
-- rejection says it), and the fix, for when the item cannot be read to
-- show it (the rules find it otherwise); `after` is the button that
-- follows the fix (a republish, unless said).
local REPUBLISH = "Republish as New to the Certification Queue 0838016000123"

local function said(pattern, what, fix, more)
  local d = {pattern = pattern, what = what, cause = what, fix = fix}
  for k, v in pairs(more or {}) do d[k] = v end
  return d
end

-- Kroger QA's own reasons: a rejection says so.
local function qa(pattern, what, fix, more)
  local d = said(pattern, what, fix, more)
  d.cause = (d.because and "Kroger QA rejected it because " or "Kroger QA rejected it: ") .. what
  return d
end

local DIAGNOSES = {
  said("pi9001", "it was sent to Kroger Product Introduction (0011110000019, the old VIP path), which does not "
       .. "take API data (PI9001)"),
  said("made_in", "its Product Activity Type Code is \"Made in Country\" (MADE_IN), which 1WorldSync will not "
       .. "send to Kroger"),
  said("r02063", "its images break Kroger's image rule (R02063): exactly one primary front and up to five more "
       .. "unique facings, all of type Product Image",
       "give the Each one front image, unique facings (Front, Back, Left, Right, Top, Bottom), at most six "
       .. "images, all of type Product Image; save"),
  qa("wercs", "the item is not registered in WERCS (hazardous materials)", "finish the WERCS registration",
     {because = true, after = ", then Resend"}),
  qa("2802", "Ti/Hi were entered as GTIN Pallet Ti/Hi although the hierarchy has no pallet GTIN (warning 2802)",
     "on the highest level (the Case) move Ti and Hi to Non-GTIN Pallet Ti and Hi, with Non-GTIN Pallet Quantity "
     .. "= Ti x Hi; save"),
  qa("pdp guidelines", "the consumer unit does not meet Kroger's PDP guidelines",
     "fix the content of the Each (the consumer unit) that the CIC names; save"),
  qa("model gtin", "the item names itself as its model GTIN",
     "set Model GTIN Exists to false and leave Model GTIN blank, unless another, synchronised item is the "
     .. "model; save"),
  qa("submitted status", "the item is still in progress in VIP (\"item found in submitted status\") after the "
     .. "migration to the API path",
     "withdraw the Product Introduction (0011110000019) publication; do not ask for a new IMF",
     {after = "; then Republish as New to 0838016000123"}),
  qa("new imf", "a Kroger Item Submission Reason Code on an update of an item that already has an IMF asked for "
     .. "a new IMF", "leave Kroger Item Submission Reason Code blank on the update; save"),
  qa("product introduction gln", "the consumer unit lists Kroger Product Introduction (0011110000019) as a "
     .. "recipient", "set the Each's recipients to ALL (publish the top level only); save"),
}

local function first_line(text)
  return (text or ""):match("^%s*([^\r\n]*)")
end

--- What a CIC or failure text means: {cause, fix}; a text kapi does not
--- know is quoted.
function M.diagnose(message)
  local lower = (message or ""):lower()
  for _, d in ipairs(DIAGNOSES) do
    if lower:find(d.pattern, 1, true) then return d end
  end
  local line = first_line(message)
  return {cause = line ~= "" and ("Kroger said: " .. line) or "no reason was given"}
end

-- The fix the CIC's words call for, and the button after it.
local function fix_of(why)
  return (why.fix or "fix what the CIC says, save") .. (why.after or ", then " .. REPUBLISH)
end

-- A publication's details: a CIC message's (kapi.cic), or one made of a
-- report's message when it holds a code ("2802 WARNING: ...") or a text
-- kapi knows; nil when there are none.
local function details_of(pub)
  if type(pub.details) == "table" and #pub.details > 0 then return pub.details end
  local message = pub.message or ""
  -- The first word, then what follows it: one pass, whatever the text
  -- (a pattern with a digit inside a word backtracks quadratically).
  local code, after = message:match("^%s*(%w+)(.?)")
  if not (code and #code >= 4 and code:find("%d") and after:find("^[%s:=]")) then
    code = nil -- "2 days in review" holds no code
  end
  if code or (message ~= "" and M.diagnose(message).pattern) then
    return {{code = code or pub.cicCode or "", description = "", long_description = message, gtin = pub.gtin}}
  end
end

local function words_of(detail)
  local text = (detail.long_description or "") ~= "" and detail.long_description or detail.description or ""
  local code = detail.code or ""
  -- Both come from the CIC: found in time linear in them, whatever their length.
  return (code ~= "" and not contains(text, code)) and (code .. ": " .. text) or text
end

--- What a publication's CIC means: {cause, what, fix, after, pattern}
--- from the first of its details kapi knows (else the first, quoted),
--- naming the lower level a detail is about; from its message when it
--- has no details.
function M.explain(pub)
  errors.check(pub, "table", "certification.explain: publication")
  local details = details_of(pub)
  if not details then return M.diagnose(pub.message) end
  local why, about = nil, details[1]
  for _, d in ipairs(details) do
    local known = M.diagnose(words_of(d))
    if known.pattern then why, about = known, d break end
  end
  why = why or M.diagnose(words_of(about))
  if not about.gtin or about.gtin == pub.gtin then return why end
  local on = (" (on %s, a lower level)"):format(about.gtin)
  return setmetatable({cause = why.cause .. on, what = (why.what or why.cause) .. on}, {__index = why})
end

-- Verdicts ----------------------------------------------------------------------

-- The fixes the findings call for, one sentence each, errors first.
local function fixes(findings)
  local out, seen = {}, {}
  for _, severity in ipairs {"error", "warning"} do
    for _, f in ipairs(findings) do
      if f.severity == severity and not seen[f.fix] then
        seen[f.fix] = true
        out[#out + 1] = ("%s (%s %s on %s %s)"):format(f.fix, f.rule, f.severity, f.level, f.gtin)
      end
    end
  end
  return out
end

local function summary_of(findings)
  local list = fixes(findings)
  if #list <= 2 then return table.concat(list, "; ") end
  return table.concat(list, "; ", 1, 2) .. ("; and %d more (kapi run preflight)"):format(#list - 2)
end

local function verdict(name, cause, next_step)
  return {verdict = name, cause = cause, next = next_step}
end

local function rejected(pub, ctx)
  local why = ctx.why or M.explain(pub)
  local findings = ctx.findings
  if not findings then
    -- Only the CIC to go on (a report export, or an item kapi cannot read).
    if why.pattern == "wercs" then
      return verdict("RESEND", why.cause .. "; kapi could not read the item to confirm the registration",
                     "finish the WERCS registration if it is not done, then Resend the publication")
    end
    return verdict("FIX_THEN_REPUBLISH", why.cause .. "; kapi could not read the item to check it again",
                   fix_of(why))
  end
  if why.pattern == "wercs" and #findings == 0 then
    return verdict("RESEND", why.cause .. "; it is registered now", "Resend the publication "
                   .. "(kapi run republish-check --apply does it)")
  end
  if #findings > 0 then
    return verdict("FIX_THEN_REPUBLISH", why.cause .. "; the item still fails " .. #findings
                   .. (#findings == 1 and " rule" or " rules"), summary_of(findings))
  end
  local published, changed = M.parse_time(pub.publishedAt), ctx.changed
  if published and changed and changed > published then
    return verdict("READY_TO_REPUBLISH", why.cause .. "; the item was changed since and now passes every rule",
                   REPUBLISH .. " (kapi run republish-check --apply does it)")
  end
  return verdict("FIX_THEN_REPUBLISH", why.cause .. "; the item has not changed since it was sent", fix_of(why))
end

local function waiting(pub, ctx, hours)
  local where = pub.cicState == "REVIEW" and "Kroger QA is reviewing it" or "sent, no CIC yet"
  if hours and hours >= REVIEW_HOURS then
    return verdict("OVERDUE", ("%s, %s (review takes about 24 h)"):format(where, ago(hours)),
                   "check it in Item Management's Sync Status report; if it did reach 0838016000123, "
                   .. "ask Kroger's item team (a republish restarts the wait)")
  end
  return verdict("WAITING", ("%s, %s"):format(where, ago(hours)),
                 "wait for Kroger's review (about 24 h after sending); nothing to do")
end

-- A CIC in REVIEW that carries details: what they say comes first, as a
-- rejection's would (the same verdicts: the fix, then the button), and
-- the wait second. Words kapi does not know lead a wait.
local function under_review(pub, ctx, hours)
  local why = M.explain(pub)
  local still = "the review goes on meanwhile (about 24 h after sending), but would most likely reject it as it is"
  if not why.pattern then
    local wait = waiting(pub, ctx, hours)
    return verdict(wait.verdict, ("Kroger QA is reviewing it, and its CIC says: %s (%s)")
                   :format(why.cause:gsub("^Kroger said: ", ""), ago(hours)),
                   "if the CIC asks for a change, make it, save, then " .. REPUBLISH .. "; otherwise " .. wait.next)
  end
  local reviewed = setmetatable({cause = "Kroger QA is reviewing it, and its CIC flags a problem: "
                                         .. (why.what or why.cause)}, {__index = why})
  local v = rejected(pub, {findings = ctx.findings, changed = ctx.changed, now = ctx.now, why = reviewed})
  v.next = v.next .. "; " .. still
  return v
end

local function blocked(pub, ctx)
  local queue = ctx.queue
  if not queue then
    return verdict("BLOCKED", "pending at the certified GLN, but the item was never published to the "
                   .. "Certification Queue", "publish the top level to 0838016000123 as New")
  end
  local upstream = M.verdict(queue, {findings = ctx.findings, changed = ctx.changed, now = ctx.now})
  local state = queue.cicState ~= "" and queue.cicState or (queue.syncStatus or ""):lower():gsub("_", " ")
  return verdict("BLOCKED", ("pending at the certified GLN because the queue publication is %s (%s): %s")
                 :format(state ~= "" and state or "not synchronised", upstream.verdict, upstream.cause),
                 "first the queue publication: " .. upstream.next)
end

--- The verdict for one publication record: {verdict, cause, next}.
--- ctx: findings (rules.check of the item as it is now; nil when it could
--- not be read), changed (when the item last changed, seconds), queue (the
--- record at the Certification Queue, for the certified GLN), now.
function M.verdict(pub, ctx)
  errors.check(pub, "table", "certification.verdict: publication")
  errors.check(ctx, "table?", "certification.verdict: ctx")
  ctx = ctx or {}
  local now = ctx.now or os.time()
  local state, sync = pub.cicState or "", pub.syncStatus or ""
  if pub.recipientGln == M.PRODUCT_INTRO then
    local cause = M.diagnose(pub.message ~= "" and pub.message or "PI9001").cause
    if ctx.queue then
      return verdict("WRONG_RECIPIENT", cause, "withdraw this publication to avoid a double submission; the "
                     .. "item is also published to the Certification Queue, which is the one that counts")
    end
    return verdict("WRONG_RECIPIENT", cause, "publish the top level to the Certification Queue "
                   .. "0838016000123 as New, and withdraw this publication to avoid a double submission")
  end
  if sync == "FAILED_TO_SEND" then
    local why = M.diagnose(pub.message)
    local findings = ctx.findings or {}
    local next_step = #findings > 0 and summary_of(findings)
                      or "the item now passes the rules: save it again in Item Management, or Resend"
    return verdict("FAILED_TO_SEND", "the publication never left 1WorldSync: " .. why.cause, next_step)
  end
  if state == "SYNCHRONISED" or state == "ACCEPTED" then
    local certified = pub.recipientGln == M.CERTIFIED
    return verdict("DONE", certified and "certified: synchronised at Certified Items for Kroger API"
                   or "passed Kroger QA: synchronised at the Certification Queue",
                   certified and "nothing; later updates flow without a republish"
                   or "nothing; the certified publication (0838016000116) follows by itself")
  end
  if state == "REJECTED" then return rejected(pub, ctx) end
  if state == "REVIEW" and details_of(pub) then
    local sent = (pub.publishedAt or "") ~= ""
    return under_review(pub, ctx, hours_since(sent and pub.publishedAt or pub.cicDate, now))
  end
  if pub.recipientGln == M.CERTIFIED then return blocked(pub, ctx) end
  return waiting(pub, ctx, hours_since(pub.publishedAt, now))
end

-- Many publications ------------------------------------------------------------

local function by_gtin(records)
  local out = {}
  for _, pub in ipairs(records) do
    out[pub.gtin] = out[pub.gtin] or {}
    out[pub.gtin][pub.recipientGln or ""] = pub
  end
  return out
end

-- The GTINs whose verdicts look at the item as it is now, each once. A
-- verdict is worked out with a context that notes a look at findings or
-- changed, so that the verdict's own logic decides: a publication that is
-- done, waiting or at the wrong recipient never looks, and a supplier's
-- thousand certified items cost no call each. A verdict that did not look
-- is final, and is kept in settled by publication.
local function needing_items(records, publications, now, settled)
  local gtins, seen, looked = {}, {}, false
  -- One context for all the records, its queue set for each (a verdict
  -- keeps nothing of its context).
  local ctx = setmetatable({now = now}, {__index = function(_, key)
    if key == "findings" or key == "changed" then looked = true end
  end})
  for _, pub in ipairs(records) do
    if not seen[pub.gtin] then
      looked = false
      ctx.queue = publications[pub.gtin][M.QUEUE]
      local v = M.verdict(pub, ctx)
      if looked then
        seen[pub.gtin] = true
        gtins[#gtins + 1] = pub.gtin
      else
        settled[pub] = v
      end
    end
  end
  return gtins
end

-- Reading the items verdicts need: a reader starts each read once, as a
-- job of its pool, as soon as publications that need it are known, before
-- whatever else the pool has yet to do (the next publications), so the
-- verdicts of what was asked first are complete first.
local Reader = {}
Reader.__index = Reader

-- An item that cannot be read or checked (an answer without data is no
-- hierarchy) is unread, with why; nothing of it is lost in the pool.
local function check_item(reader, gtin)
  local item, changed = reader.items:item(gtin)
  if type(item) ~= "table" then error(errors.new("network", "the answer holds no item"), 0) end
  return {findings = rules.check(item), changed = M.parse_time(changed)}
end

local function read_item(job)
  local reader, gtin = job.reader, job.gtin
  local ok, state = pcall(check_item, reader, gtin)
  if ok then reader.state[gtin] = state else reader.unread[gtin] = state end
  if reader.progress then reader.progress(1, reader.wanted) end
end

--- Starts reading the items these records' verdicts look at, each GTIN
--- once; every publication of a GTIN must be among them, and a GTIN
--- looked at before is not looked at again.
function Reader:start(records)
  if not self.items then return end
  local looked, fresh = self.looked, {}
  for _, pub in ipairs(records) do
    if not looked[pub.gtin] then fresh[#fresh + 1] = pub end
  end
  for _, pub in ipairs(fresh) do looked[pub.gtin] = true end
  for _, gtin in ipairs(needing_items(fresh, by_gtin(fresh), self.now, self.settled)) do
    self.wanted = self.wanted + 1
    self.pool:add_next(read_item, {reader = self, gtin = gtin})
  end
end

--- One row per record in input order, once the reads started are done
--- (those of these records are started now); second result: the errors of
--- items that could not be read, by GTIN.
function Reader:assess(records)
  local now, state, settled, out, publications = self.now, self.state, self.settled, {}, nil
  self:start(records)
  self.pool:wait()
  for i, pub in ipairs(records) do
    local known = state[pub.gtin] or {}
    local v = settled[pub]
    if not v then
      publications = publications or by_gtin(records)
      v = M.verdict(pub, {findings = known.findings, changed = known.changed, now = now,
                          queue = publications[pub.gtin][M.QUEUE]})
    end
    out[i] = {gtin = pub.gtin, recipientGln = pub.recipientGln, verdict = v.verdict, cause = v.cause,
              next = v.next, publication = pub, findings = known.findings}
  end
  return out, self.unread
end

--- certification.reader(items, {now, progress, concurrency}) -> reader:
--- reader:start(records) begins reading the items those verdicts need
--- (through items:item, none when items is nil), reader.pool (kapi.pool)
--- does the reads and may do the work that finds the records, and
--- reader:assess(records) gives the verdicts, as M.assess does.
function M.reader(items, opts)
  opts = opts or {}
  return setmetatable({items = items, now = opts.now or os.time(), progress = opts.progress,
                       pool = require("kapi.task").pool {concurrency = opts.concurrency or 8},
                       looked = {}, settled = {}, state = {}, unread = {}, wanted = 0}, Reader)
end

--- Verdicts for publication records: reads each item whose verdict depends
--- on it once (concurrently, through items:item when an items client is
--- given), re-checks it with the rules, and returns one row per record in
--- input order: {gtin, recipientGln, verdict, cause, next, publication,
--- findings (nil when the item was not read)}. opts.progress(n, total) is
--- called as items are read. Second result: the errors of items that could
--- not be read, by GTIN (their rows say so).
function M.assess(records, items, opts)
  return M.reader(items, opts):assess(records)
end

doc.declare("kapi.certification.verdict", M.verdict, [[
kapi.certification.verdict(publication, {findings, changed, queue, now}) -> {verdict, cause, next}
Where a publication stands in Kroger's certification: DONE, WAITING,
OVERDUE, FIX_THEN_REPUBLISH, READY_TO_REPUBLISH, RESEND, FAILED_TO_SEND,
WRONG_RECIPIENT or BLOCKED, with the cause and the next step in plain words.
findings are kapi.rules.kroger.check of the item as it is now; changed is
when it last changed (seconds since the epoch).
Example:
  local v = kapi.certification.verdict({gtin = "10614141000019",
    recipientGln = "0838016000123", syncStatus = "SYNCHRONISED",
    publishedAt = "2026-11-23T08:00:00Z", cicState = ""}, {findings = {}})
  print(v.verdict, v.next)]])

return M
