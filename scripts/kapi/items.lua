-- Item publications and CICs: from the Item Management API (the sandbox's
-- /items/v1) or from an exported report (CSV), normalised to the
-- publication-record format of item-format.md. publish, republish, resend
-- and withdraw where the source supports them.
local http = require "kapi.http"
local auth = require "kapi.auth"
local config = require "kapi.config"
local errors = require "kapi.errors"
local doc = require "kapi.doc"

local M = {}

local Client = {}
Client.__index = Client

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

--- Splits CSV text into rows of fields (RFC 4180: quotes, doubled quotes,
--- separators and newlines inside quotes).
function M.parse_csv(text)
  local rows, row, field, i, n = {}, {}, {}, 1, #text
  local quoted = false
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1 else quoted = false end
      else field[#field + 1] = c end
    elseif c == '"' then quoted = true
    elseif c == "," then row[#row + 1] = table.concat(field); field = {}
    elseif c == "\n" or c == "\r" then
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then i = i + 1 end
      row[#row + 1] = table.concat(field); field = {}
      rows[#rows + 1] = row; row = {}
    else field[#field + 1] = c end
    i = i + 1
  end
  if #field > 0 or #row > 0 then row[#row + 1] = table.concat(field); rows[#rows + 1] = row end
  return rows
end

--- Reads an exported report: the records, and the problems of rows that
--- could not be read (each naming its line), so good rows are never lost.
function M.read_report(path)
  local f, err = io.open(path, "r")
  if not f then errors.usage("report: " .. err, 2) end
  local rows = M.parse_csv(f:read("a"))
  f:close()
  if #rows == 0 then errors.usage("report: " .. path .. " is empty", 2) end
  local columns, known = {}, 0
  for i, label in ipairs(rows[1]) do
    columns[i] = LABELS[label_key(label)]
    if columns[i] then known = known + 1 end
  end
  local has_gtin = false
  for _, c in pairs(columns) do has_gtin = has_gtin or c == "gtin" end
  if not has_gtin then errors.usage("report: " .. path .. " has no GTIN column", 2) end
  local records, problems = {}, {}
  for line = 2, #rows do
    local row = rows[line]
    if not (#row == 1 and row[1] == "") then
      local record = {}
      for i, value in ipairs(row) do
        if columns[i] then record[columns[i]] = value:match("^%s*(.-)%s*$") end
      end
      if not record.gtin or not record.gtin:match("^%d+$") then
        problems[#problems + 1] = ("%s:%d: no valid GTIN (%q)"):format(path, line, tostring(record.gtin))
      else
        record.gtin = ("0"):rep(14 - #record.gtin) .. record.gtin
        record.syncStatus = record.syncStatus and record.syncStatus:upper():gsub("[%s]+", "_")
        record.cicState = record.cicState and record.cicState:upper() or ""
        record.line = line
        records[#records + 1] = record
      end
    end
  end
  return records, problems
end

--- client{env, base_url, app_id, secret}: the Item Management API.
function M.client(opts)
  opts = opts or {}
  local c = config.items(opts.env, opts.base_url)
  return setmetatable({base_url = c.base_url,
    signer = auth.oneworldsync {app_id = opts.app_id or c.app_id, secret = opts.secret or c.secret}}, Client)
end

function Client:call(method, path, body, query)
  return http.request {method = method, url = self.base_url .. path, auth = self.signer, json = body,
                       query = query, retry = method == "GET"}
end

--- publications{gtin, recipientGln, ipGln} -> records
function Client:publications(filter)
  return self:call("GET", "/items/v1/publications", nil, filter or {}):json().data
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
  local body = self:call("GET", "/items/v1/items/" .. gtin):json()
  return body.data, body.meta and body.meta.lastChanged
end

--- update(gtin, hierarchy): saves a fixed hierarchy
function Client:update(gtin, hierarchy)
  self:call("PUT", "/items/v1/items/" .. gtin, hierarchy)
end

doc.declare("kapi.items.client", M.client, [[
kapi.items.client{env, base_url, app_id, secret} -> items
Publications and CICs in the publication-record format: items:publications{gtin,
recipientGln, ipGln}; items:publish / republish / resend / withdraw(gtin,
recipientGln, {publicationType | reason}); items:item(gtin) and
items:update(gtin, hierarchy). kapi.items.read_report(path) reads an exported
report (CSV, columns matched by name or by the report's labels).
Example:
  local im = kapi.items.client{env = "sandbox"}
  for _, p in ipairs(im:publications{recipientGln = "0838016000123"}) do
    print(p.gtin, p.syncStatus, p.cicState, p.message)
  end]])

return M
