-- Item publications and CICs: from the Item Management API (the sandbox's
-- /items/v1) or from an exported report (CSV), normalised to the
-- publication-record format of item-format.md. publish, republish, resend
-- and withdraw where the source supports them.
local http = require "kapi.http"
local auth = require "kapi.auth"
local config = require "kapi.config"
local errors = require "kapi.errors"
local json = require "kapi.json"
local input = require "kapi.input"
local doc = require "kapi.doc"
local gtin = require "kapi.gtin"
local csv = require "kapi.csv"
local task = require "kapi.task"

local M = {}

local Client = {}
Client.__index = Client
Client.__tostring = function(self) return ("items client (%s)"):format(self.base_url) end

M.FIELDS = {"gtin", "recipientGln", "publicationType", "publishedAt", "syncStatus", "cicState",
            "cicDate", "cicCode", "message"}

-- Report column labels (lower case, letters and digits only) -> field.
local LABELS = {
  gtin = "gtin", publishedgtin = "gtin", toplevelgtin = "gtin",
  recipientgln = "recipientGln", recipient = "recipientGln", publishedto = "recipientGln", targetgln = "recipientGln",
  publicationtype = "publicationType", type = "publicationType",
  publishedat = "publishedAt", publishdate = "publishedAt", publicationdate = "publishedAt", lastpublished = "publishedAt",
  syncstatus = "syncStatus", synchronizationstatus = "syncStatus", status = "syncStatus",
  cicstate = "cicState", cicstatus = "cicState", cic = "cicState", responsestatus = "cicState",
  cicdate = "cicDate", cicstatusdate = "cicDate", responsedate = "cicDate",
  ciccode = "cicCode", reasoncode = "cicCode", cicreasoncode = "cicCode", code = "cicCode",
  message = "message", cicmessage = "message", description = "message", reason = "message", failuremessage = "message",
}

local function label_key(label)
  return (label:lower():gsub("[^%w]", ""))
end

--- Splits CSV text into rows of fields, as kapi.csv.rows reads them.
--- rows.lines[i] is the line row i starts on; rows.unclosed the line of a
--- row whose quote is never closed, if any.
function M.parse_csv(text)
  local rows = {lines = {}}
  for row, line, unclosed in csv.rows(text) do
    rows[#rows + 1], rows.lines[#rows + 1] = row, line
    if unclosed then rows.unclosed = line end
  end
  return rows
end

-- The synchronization statuses and CIC states a report may give, as
-- reports spell them, and what they mean here. A status kapi does not know
-- is named, never guessed at.
M.SYNC_STATUSES = {
  SYNCHRONISED = "SYNCHRONISED", SYNCHRONIZED = "SYNCHRONISED", SYNCED = "SYNCHRONISED",
  PENDING = "PENDING", PENDING_SYNCHRONIZATION = "PENDING", PENDING_SYNCHRONISATION = "PENDING",
  PUBLISHED = "PENDING", SENT = "PENDING",
  FAILED_TO_SEND = "FAILED_TO_SEND", FAILED = "FAILED_TO_SEND", FAILED_TO_PUBLISH = "FAILED_TO_SEND",
}
M.CIC_STATES = {RECEIVED = "RECEIVED", REVIEW = "REVIEW", REJECTED = "REJECTED", SYNCHRONISED = "SYNCHRONISED",
                SYNCHRONIZED = "SYNCHRONISED", ACCEPTED = "ACCEPTED"}

local function spelled(text) return (text:upper():gsub("[%s%-]+", "_")) end

-- What a status or state means, spelled as a report may spell it.
local function known(map, text)
  return map[text] or map[spelled(text)]
end

-- Why a report row cannot be used, or nil: a GTIN as an argument must be
-- one, a recipient a GLN, a date a date, a status one kapi knows.
local parse_time -- kapi.certification's, loaded when first needed (it needs this module)
local DATE_FIELDS = {"publishedAt", "cicDate"}
local function bad_row(record, good_glns)
  if not record.gtin or record.gtin == "" then return "no GTIN" end
  local ok, why = gtin.valid(record.gtin)
  if not ok then return why end
  local gln = record.recipientGln
  if not gln or gln == "" then return "no recipient GLN" end
  if not good_glns[gln] then -- a report names few recipients, on every row
    local gln_ok, gln_why = gtin.valid_gln(gln)
    if not gln_ok then return "recipient " .. gln_why end
    good_glns[gln] = true
  end
  if record.syncStatus and record.syncStatus ~= "" and not known(M.SYNC_STATUSES, record.syncStatus) then
    return ("synchronization status \"%s\" is not one kapi knows (SYNCHRONISED, PENDING, FAILED_TO_SEND)")
           :format(errors.excerpt(record.syncStatus))
  end
  if record.cicState and record.cicState ~= "" and not known(M.CIC_STATES, record.cicState) then
    return ("CIC state \"%s\" is not one of RECEIVED, REVIEW, REJECTED, SYNCHRONISED"):format(errors.excerpt(record.cicState))
  end
  parse_time = parse_time or require("kapi.certification").parse_time
  for _, field in ipairs(DATE_FIELDS) do
    local value = record[field]
    if value and value ~= "" and not parse_time(value) then
      return ("%s %s is not a date (YYYY-MM-DDTHH:MM:SSZ)"):format(field, errors.excerpt(value))
    end
  end
end

--- Why a publication record cannot be used (as a report row's is named),
--- or nil; good_glns caches the recipient GLNs found good. For the other
--- readers of publication records (kapi.cic).
M.bad_record = bad_row

--- Reads an exported report ("-": standard input): the records, and the
--- problems of rows that could not be read (each naming its line), so good
--- rows are never lost. A report that cannot be read at all raises an
--- input error naming it.
function M.read_report(path)
  local name = input.name(path)
  local rows = csv.rows(input.read(path, {line_ends = true}), {trim = true})
  local header = rows()
  if not header then errors.input(name .. ": is empty", 0) end
  local columns, has = {}, {}
  for i, label in ipairs(header) do
    columns[i] = LABELS[label_key(label)]
    if columns[i] then has[columns[i]] = true end
  end
  for _, needed in ipairs {{"gtin", "GTIN"}, {"recipientGln", "recipient GLN"}} do
    if not has[needed[1]] then
      errors.input(("%s: not a publication report: no %s column in its header (%s)")
                   :format(name, needed[2], errors.excerpt(table.concat(header, ","))), 0)
    end
  end
  -- Row by row: each row is dropped once it is a record, so a report
  -- costs its text and its records, never a copy of every row besides.
  local records, problems, good_glns = {}, {}, {}
  for row, line, unclosed in rows do
    if not (#row == 1 and row[1] == "") then
      local record = {}
      for i, value in ipairs(row) do
        if columns[i] then record[columns[i]] = value end
      end
      local why = bad_row(record, good_glns)
      if why then
        problems[#problems + 1] = ("%s:%d: %s"):format(name, line, why)
      else
        record.gtin = ("0"):rep(14 - #record.gtin) .. record.gtin
        record.syncStatus = record.syncStatus and known(M.SYNC_STATUSES, record.syncStatus) or nil
        record.cicState = record.cicState and known(M.CIC_STATES, record.cicState) or ""
        record.line = line
        records[#records + 1] = record
      end
    end
    if unclosed then
      problems[#problems + 1] = ("%s:%d: a quoted field is never closed: the rest of the file was read as part of it")
                                :format(name, line)
    end
  end
  if #records == 0 and #problems == 0 then errors.input(name .. ": holds no publication, only its header", 0) end
  return records, problems
end

local LEVELS = {BASE_UNIT_OR_EACH = true, PACK_OR_INNER_PACK = true, CASE = true, DISPLAY_SHIPPER = true,
                PALLET = true}

local function kind_of(value)
  if type(value) ~= "table" then return type(value) == "userdata" and "null" or ("a " .. type(value)) end
  if value[1] ~= nil or json.is_array(value) then return "an array" end
  return nil
end

-- The fields of the item format (docs/recipes.md, "Item hierarchies") and
-- their JSON types. A field of the wrong type is input that cannot be used
-- (named, exit 2), never read as something else: "true" is not true, and
-- {} is no Ti. Counts may also be strings of digits, as spreadsheets
-- export them. Fields not listed are ignored.
local FIELD_TYPES = {
  informationProviderGln = "string", brandName = "string", description = "string",
  productActivityTypeCode = "string", customerFacingSize = "string", marketingMessage = "string",
  modelGtin = "string", krogerSubmissionReasonCode = "string", imfNumber = "string",
  isConsumerUnit = "boolean", modelGtinExists = "boolean", requiresWercs = "boolean", wercsRegistered = "boolean",
  quantityOfChildren = "count", gtinPalletTi = "count", gtinPalletHi = "count", nonGTINPalletTi = "count",
  nonGTINPalletHi = "count", nonGTINPalletQuantity = "count",
  featureBenefits = "strings", recipients = "strings", images = "images",
}
local IMAGE_FIELDS = {url = "string", facing = "string", typeOfInformation = "string", source = "string"}

local function shown(v)
  if type(v) == "string" then return ('the string "%s"'):format(errors.excerpt(v)) end
  if type(v) == "number" then return "the number " .. errors.excerpt(v) end
  return kind_of(v) or "an object"
end

local function field_problem(name, v, path)
  local want = FIELD_TYPES[name]
  if v == nil or v == json.null then return nil end
  local function wrong(expected) return ("%s%s must be %s, got %s"):format(path, name, expected, shown(v)) end
  if want == "string" and type(v) ~= "string" then return wrong("a string") end
  if want == "boolean" and type(v) ~= "boolean" then return wrong("true or false") end
  if want == "count" and not (math.type(v) == "integer" or (type(v) == "string" and v:match("^%s*%d+%s*$"))) then
    return wrong("a whole number")
  end
  if want == "strings" or want == "images" then
    if type(v) ~= "table" or (next(v) ~= nil and kind_of(v) ~= "an array") then return wrong("an array") end
    for i, e in ipairs(v) do
      if want == "strings" and type(e) ~= "string" then
        return ("%s%s[%d] must be a string, got %s"):format(path, name, i, shown(e))
      elseif want == "images" then
        if type(e) ~= "table" or kind_of(e) then return ("%simages[%d] must be an object, got %s"):format(path, i, shown(e)) end
        for key, t in pairs(IMAGE_FIELDS) do
          if e[key] ~= nil and e[key] ~= json.null and type(e[key]) ~= t then
            return ("%simages[%d].%s must be a string, got %s"):format(path, i, key, shown(e[key]))
          end
        end
      end
    end
  end
end

-- Why value is not an item hierarchy (item-format.md), or nil when it is;
-- its lower levels (children) are checked the same way, named by path.
local function not_hierarchy(value, path)
  local kind = kind_of(value)
  if kind then return ("%s%s, not an item hierarchy object"):format(path, kind) end
  local gtin, level = value.gtin, value.level
  if gtin == nil and level == nil then
    local keys = {}
    for k in pairs(value) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    return #keys == 0 and (path .. "an empty object, not an item hierarchy (it needs gtin and level)")
           or ("%snot an item hierarchy: no gtin or level among its keys (%s)"):format(path,
                 errors.excerpt(table.concat(keys, ", ")))
  end
  if gtin ~= nil and type(gtin) ~= "string" and math.type(gtin) ~= "integer" then
    return ("%sgtin must be a string of digits, got %s"):format(path, kind_of(gtin) or type(gtin))
  end
  if level ~= nil and not LEVELS[level] then
    return ("%slevel %s is not one of BASE_UNIT_OR_EACH, PACK_OR_INNER_PACK, CASE, DISPLAY_SHIPPER, PALLET")
           :format(path, errors.excerpt(level))
  end
  for name in pairs(FIELD_TYPES) do
    local why = field_problem(name, value[name], path)
    if why then return why end
  end
  local children = value.children
  if children ~= nil then
    if kind_of(children) ~= "an array" and not (type(children) == "table" and next(children) == nil) then
      return path .. "children must be an array of item hierarchies"
    end
    for i, child in ipairs(children) do
      local why = not_hierarchy(child, ("%schildren[%d]: "):format(path, i))
      if why then return why end
    end
  end
end

--- The item hierarchies in a decoded JSON value: one hierarchy, or an
--- array of them; and the problems of the entries that are not one (each
--- naming `where`, the file, and the entry: "items.json: entry 2: a
--- number, ..."), so the good ones can still be checked. A value that
--- holds none at all (an empty array, an object that is not a hierarchy)
--- raises an input error instead: a file that checks nothing must not pass
--- as if it had been checked.
function M.hierarchies(value, where)
  errors.check(where, "string", "items.hierarchies: where")
  local function refuse(why) error(errors.new("input", where .. ": " .. why), 0) end
  if kind_of(value) ~= "an array" then
    local why = not_hierarchy(value, "")
    if why then refuse(why) end
    return {value}, {}
  end
  if #value == 0 then refuse("an empty array: no item hierarchy to check") end
  local good, bad = {}, {}
  for i, entry in ipairs(value) do
    local why = not_hierarchy(entry, ("entry %d: "):format(i))
    if why then bad[#bad + 1] = ("%s: %s"):format(where, why) else good[#good + 1] = entry end
  end
  if #good == 0 and #bad == 1 then refuse(bad[1]:sub(#where + 3)) end
  return good, bad
end

--- client{env, base_url, app_id, secret}: the Item Management API.
function M.client(opts)
  opts = errors.check(opts, "table?", "items.client: opts") or {}
  local c = config.items(opts.env, opts.base_url)
  return setmetatable({base_url = c.base_url,
    signer = auth.oneworldsync {app_id = opts.app_id or c.app_id, secret = opts.secret or c.secret}}, Client)
end

function Client:call(method, path, body, query)
  errors.check(method, "string", "items:call: method")
  errors.check(path, "string", "items:call: path")
  return http.request {method = method, url = self.base_url .. path, auth = self.signer, json = body,
                       query = query, retry = method == "GET", expect_json = true}
end

--- publications{gtin, recipientGln, ipGln} -> records; gtin is one GTIN
--- or a list of up to MAX_GTINS, asked for in one call
M.MAX_GTINS = 50

local function check_gtins(list, what)
  for i, g in ipairs(list) do
    if type(g) ~= "string" then
      errors.usage(("%s[%d] is a %s (expected a GTIN, a string)"):format(what, i, type(g)), 3)
    elseif g:find(",", 1, true) then -- the separator of the list sent
      errors.usage(("%s[%d] is no GTIN: %s"):format(what, i, errors.excerpt(g)), 3)
    end
  end
end

function Client:publications(filter)
  errors.check(filter, "table?", "items:publications: filter")
  local query = {}
  for k, v in pairs(filter or {}) do query[k] = v end
  if type(query.gtin) == "table" then
    if #query.gtin > M.MAX_GTINS then
      errors.usage(("items:publications: gtin takes at most %d GTINs, got %d"):format(M.MAX_GTINS, #query.gtin), 2)
    end
    check_gtins(query.gtin, "items:publications: gtin")
    query.gtin = table.concat(query.gtin, ",")
  end
  local records = self:call("GET", "/items/v1/publications", nil, query):json().data
  -- A field given as null is a field not given (item-format.md's records
  -- have text or nothing), so no verdict meets a JSON null where it reads
  -- text.
  for _, r in ipairs(type(records) == "table" and records or {}) do
    if type(r) == "table" then
      for k, v in pairs(r) do
        if v == json.null then r[k] = nil end
      end
    end
  end
  return records
end

--- publications_of(gtins, {pool, each}) -> records by GTIN, failures: every
--- publication of each GTIN of the list, asked for MAX_GTINS to a call, a
--- few calls at once. records[gtin] is a list, empty for a GTIN with none;
--- a GTIN of a call that failed has no entry, and failures has {gtins,
--- where, error} for each such call (where names its GTINs in a few words).
--- each(records), when given, is called with a call's records as soon as
--- they come, in that call's task; given a pool (kapi.pool), the calls are
--- its jobs, so work that each adds to it shares its tasks, and it is
--- waited for before this returns.
function Client:publications_of(gtins, opts)
  errors.check(gtins, "table", "items:publications_of: gtins")
  opts = opts or {}
  errors.check(opts.each, "function?", "items:publications_of: each")
  local distinct, seen = {}, {}
  check_gtins(gtins, "items:publications_of: gtins")
  for _, g in ipairs(gtins) do
    if not seen[g] then seen[g] = true; distinct[#distinct + 1] = g end
  end
  -- A failure of each is no failure of the call: it is raised as it is,
  -- once every call has ended.
  local pool, calls, answers, each_failed = opts.pool or task.pool(), {}, {}, nil
  local function ask(batch)
    local found = self:publications {gtin = batch} or {} -- an answer without data names none
    answers[batch] = found
    if opts.each then
      local ok, err = pcall(opts.each, found)
      if not ok then each_failed = each_failed or err end
    end
  end
  for i = 1, #distinct, M.MAX_GTINS do
    local batch = table.move(distinct, i, math.min(#distinct, i + M.MAX_GTINS - 1), 1, {})
    calls[#calls + 1] = {batch = batch, place = pool:add(ask, batch)}
  end
  local _, errs = pool:wait()
  if each_failed then error(each_failed, 0) end
  local records, failures = {}, {}
  for _, call in ipairs(calls) do
    local batch, found = call.batch, answers[call.batch]
    local err = errs and errs[call.place]
    if err then
      failures[#failures + 1] = {gtins = batch, error = err,
                                 where = batch[1] .. (#batch > 1 and (" and %d more"):format(#batch - 1) or "")}
    else
      for _, g in ipairs(batch) do records[g] = {} end
      for _, r in ipairs(found) do
        local list = records[r.gtin]
        if list then list[#list + 1] = r end
      end
    end
  end
  return records, failures
end

local function action(name)
  return function(self, gtin, recipient, extra)
    if type(gtin) ~= "string" or type(recipient) ~= "string" then
      errors.usage(("items:%s(gtin, recipientGln, ...) needs both"):format(name), 2)
    end
    local body = {gtin = gtin, recipientGln = recipient}
    for k, v in pairs(extra or {}) do body[k] = v end
    local path = "/items/v1/publications" .. (name == "publish" and "" or "/" .. name)
    local res = self:call("POST", path, body)
    return res.status ~= 204 and res:json().data or nil
  end
end

Client.publish = action("publish")
Client.republish = action("republish")
Client.resend = action("resend")
Client.withdraw = action("withdraw")

--- item(gtin) -> the hierarchy in the item format, and when it last changed
function Client:item(gtin)
  errors.check(gtin, "string", "items:item: gtin")
  local body = self:call("GET", "/items/v1/items/" .. gtin):json()
  return body.data, body.meta and body.meta.lastChanged
end

--- update(gtin, hierarchy): saves a fixed hierarchy
function Client:update(gtin, hierarchy)
  errors.check(gtin, "string", "items:update: gtin")
  errors.check(hierarchy, "table", "items:update: hierarchy")
  self:call("PUT", "/items/v1/items/" .. gtin, hierarchy)
end

doc.declare("kapi.items.client", M.client, [[
kapi.items.client{env, base_url, app_id, secret} -> items
Publications and CICs in the publication-record format: items:publications{gtin,
recipientGln, ipGln} (gtin: one GTIN, or a list of up to kapi.items.MAX_GTINS
asked for in one call), and items:publications_of(gtins, {pool, each}) for a
list of any length, in calls of MAX_GTINS (each(records) as each call
answers; the calls as jobs of a kapi.pool given); items:publish / republish / resend / withdraw(gtin,
recipientGln, {publicationType | reason}); items:item(gtin) and
items:update(gtin, hierarchy). kapi.items.read_report(path) reads an exported
report (CSV, columns matched by name or by the report's labels).
Example:
  local im = kapi.items.client{env = "sandbox"}
  for _, p in ipairs(im:publications{recipientGln = "0838016000123"}) do
    print(p.gtin, p.syncStatus, p.cicState, p.message)
  end]])

return M
