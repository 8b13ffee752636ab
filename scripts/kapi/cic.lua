-- GS1 CIC messages (GDSN 3.1 catalogueItemConfirmationMessage), as
-- suppliers connected to a data pool by AS2 receive them, read into the
-- publication records kapi.items.read_report gives, so that a verdict is
-- the same whichever source its record came from. The elements are those
-- of GS1's CatalogueItemConfirmation.xsd (domain.md §4): the message's
-- transactions hold document commands, which hold confirmations; each
-- confirmation is one record, its status details (possibly about a lower
-- level of the hierarchy) the record's details. XML is read by expat
-- (bindings/xml.c), namespaces by URI, never by prefix.
local xml = require "kapi.core.xml"
local fs = require "kapi.core.fs"
local input = require "kapi.input"
local errors = require "kapi.errors"
local gtin = require "kapi.gtin"
local items = require "kapi.items"
local certification = require "kapi.certification"
local text_util = require "kapi.text"

local M = {}

M.NAMESPACE = "urn:gs1:gdsn:catalogue_item_confirmation:xsd:3"
M.SBDH = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"

--- The largest message read (bytes): a batch of a thousand confirmations
--- is a few megabytes.
M.MAX_BYTES = 16 * 1024 * 1024

-- Elements ----------------------------------------------------------------------

-- GS1's schemas leave the elements below a message's root unqualified; a
-- sender that makes the CIC namespace the default puts them in it. Both
-- are the same element.
local function ours(e)
  return e.ns == "" or e.ns == M.NAMESPACE
end

-- The child elements of e named `name` (in our namespaces, or in ns).
local function each(e, name, ns)
  local i = 0
  return function()
    if not e then return nil end
    while true do
      i = i + 1
      local c = e[i]
      if c == nil then return nil end
      if type(c) == "table" and c.name == name and (ns and c.ns == ns or not ns and ours(c)) then return c end
    end
  end
end

local function child(e, name, ns)
  return e and each(e, name, ns)()
end

-- The text of an element, trimmed; "" for none.
local function text(e)
  if not e then return "" end
  local parts = {}
  for _, c in ipairs(e) do
    if type(c) == "string" then parts[#parts + 1] = c end
  end
  return text_util.trim(table.concat(parts)) -- linear time, whatever runs of spaces a sender put in
end

local function path_text(e, ...)
  for _, name in ipairs {...} do e = child(e, name) end
  return text(e)
end

-- Confirmations -------------------------------------------------------------------

local function gtin14(code) return ("0"):rep(14 - #code) .. code end

local function join(list, sep)
  return table.concat(list, sep)
end

-- One status: {code, description, long_description,
-- corrective_action_code, expected_information, gtin}.
local function status_of(status, about)
  local codes, expected = {}, {}
  for action in each(status, "correctiveAction") do
    local code, info = path_text(action, "correctiveActionCode"), path_text(action, "expectedCorrectiveInformation")
    if code ~= "" then codes[#codes + 1] = code end
    if info ~= "" then expected[#expected + 1] = info end
  end
  return {code = path_text(status, "confirmationStatusCode"),
          description = path_text(status, "confirmationStatusCodeDescription"),
          long_description = path_text(status, "additionalConfirmationStatusLongDescription"),
          corrective_action_code = join(codes, ", "), expected_information = join(expected, "; "), gtin = about}
end

-- The details of a confirmation, each attributed to the GTIN its
-- confirmationStatusCatalogueItem names (a lower level's, maybe); or nil
-- and why one cannot be used.
local function details_of(confirmation, top)
  local out = {}
  for detail in each(confirmation, "catalogueItemConfirmationStatusDetail") do
    local about = path_text(detail, "confirmationStatusCatalogueItem", "gtin")
    if about == "" then
      about = top
    else
      local ok, why = gtin.valid(about)
      if not ok then return nil, "confirmationStatusCatalogueItem: " .. why end
      about = gtin14(about)
    end
    for status in each(detail, "catalogueItemConfirmationStatus") do out[#out + 1] = status_of(status, about) end
  end
  return out
end

-- What the details say, as a report's message column would: each one's
-- long description (the words Kroger wrote), else its description.
local function message_of(details)
  local parts = {}
  for _, d in ipairs(details) do
    local said = d.long_description ~= "" and d.long_description or d.description
    if said ~= "" then parts[#parts + 1] = said end
  end
  return join(parts, " | ")
end

-- A record from a catalogueItemConfirmation, or nil and why it cannot be
-- used (the same checks as a report row's, with the elements named).
local function record_of(confirmation, sent, good_glns)
  local state = child(confirmation, "catalogueItemConfirmationState")
  local record = {
    gtin = path_text(confirmation, "catalogueItemReference", "gtin"),
    recipientGln = path_text(state, "recipientGLN"),
    cicState = path_text(state, "catalogueItemConfirmationStateCode"),
    cicDate = path_text(confirmation, "creationDateTime"),
    line = confirmation.line,
  }
  if record.gtin == "" then return nil, "a confirmation with no catalogueItemReference/gtin" end
  if record.recipientGln == "" then return nil, "a confirmation with no catalogueItemConfirmationState/recipientGLN" end
  if record.cicState == "" then
    return nil, "a confirmation with no catalogueItemConfirmationState/catalogueItemConfirmationStateCode"
  end
  local dated = "creationDateTime"
  if record.cicDate == "" then record.cicDate, dated = sent, "the SBDH's CreationDateAndTime" end
  if record.cicDate ~= "" and not certification.parse_time(record.cicDate) then
    return nil, ("%s \"%s\" is not a date (YYYY-MM-DDTHH:MM:SS)"):format(dated, errors.excerpt(record.cicDate))
  end
  local why = items.bad_record(record, good_glns)
  if why then return nil, why end
  record.gtin = gtin14(record.gtin)
  record.cicState = items.CIC_STATES[record.cicState:upper()]
  local details, bad = details_of(confirmation, record.gtin)
  if not details then return nil, bad end
  record.details = details
  record.cicCode = details[1] and details[1].code or ""
  record.message = message_of(details)
  return record
end

-- Messages --------------------------------------------------------------------------

local function qualified(e)
  return e.ns == "" and e.name or ("%s (namespace %s)"):format(e.name, errors.excerpt(e.ns))
end

-- Why the document is not a CIC message, or nil.
local function foreign(root)
  if root.name == "catalogueItemConfirmationMessage" and root.ns ~= M.NAMESPACE then
    return ("a catalogueItemConfirmationMessage in namespace %s, not GDSN 3.1's %s"):format(
      root.ns == "" and "(none)" or errors.excerpt(root.ns), M.NAMESPACE)
  end
  if root.name ~= "catalogueItemConfirmationMessage" then
    return ("not a GS1 CIC message: its root element is %s"):format(errors.excerpt(qualified(root), 120))
  end
end

-- The confirmations of a message: transaction / documentCommand /
-- catalogueItemConfirmation, as many of each as the message holds.
local function confirmations(root)
  local out = {}
  for transaction in each(root, "transaction") do
    for command in each(transaction, "documentCommand") do
      for confirmation in each(command, "catalogueItemConfirmation") do out[#out + 1] = confirmation end
    end
  end
  return out
end

-- The message's tree, or nil and "LINE[:COLUMN]: why".
local function parse(bytes)
  local root, why, kind, line, column = xml.parse(bytes, {max_bytes = M.MAX_BYTES})
  if root then return root end
  if kind == "malformed" then why = "malformed XML: " .. why end
  if not line then return nil, why end
  return nil, ("%d:%d: %s"):format(line, column, why)
end

-- Reads one message: its records are added to `into`, the problems of
-- its confirmations to `problems`; returns nil and "NAME[:LINE]: why"
-- when the document itself cannot be used.
local function read_message(name, bytes, into, problems, good_glns)
  local root, why = parse(bytes)
  if not root then return nil, name .. (why:match("^%d") and ":" or ": ") .. why end
  why = foreign(root)
  if why then return nil, ("%s:%d: %s"):format(name, root.line, why) end
  local list = confirmations(root)
  if #list == 0 then
    return nil, ("%s:%d: a CIC message with no transaction/documentCommand/catalogueItemConfirmation"):format(
      name, root.line)
  end
  -- When the message was made (the SBDH's, whose elements are all in
  -- its namespace): the date of a confirmation that gives none.
  local header = child(root, "StandardBusinessDocumentHeader", M.SBDH)
  local sent = text(child(child(header, "DocumentIdentification", M.SBDH), "CreationDateAndTime", M.SBDH))
  for _, confirmation in ipairs(list) do
    local record, bad = record_of(confirmation, sent, good_glns)
    if record then
      record.file = name
      into[#into + 1] = record
    else
      problems[#problems + 1] = ("%s:%d: %s"):format(name, confirmation.line, bad)
    end
  end
  return true
end

local function read_bytes(path)
  return input.read(path, {raw = true, max_bytes = M.MAX_BYTES})
end

-- The files of a directory that may be messages (not hidden, not
-- directories), sorted; nil when path is not a directory.
local function directory_files(path)
  if path == "-" then return nil end
  local names = fs.list(path)
  if not names then return nil end
  local out = {}
  -- The directory without its trailing slashes, once and in linear time:
  -- path:gsub("/+$", "") for each name was quadratic in a run of slashes.
  local dir = text_util.trim_end_char(path, "/")
  for _, name in ipairs(names) do
    local full = dir .. "/" .. name
    if name:sub(1, 1) ~= "." and input.unreadable(full) ~= "Is a directory" then out[#out + 1] = full end
  end
  return out
end

--- Reads CIC messages: a file, "-" for standard input, or a directory of
--- them. Returns the publication records (kapi.items.read_report's fields
--- gtin, recipientGln, cicState, cicDate, cicCode, message, line, plus
--- file and details = {code, description, long_description,
--- corrective_action_code, expected_information, gtin}); the problems of
--- confirmations that cannot be used ("FILE:LINE: why", as bad report
--- rows); and the documents skipped in a directory, malformed or not CIC
--- messages ("FILE:LINE: why"). A file given alone that is no CIC message,
--- or a directory with no file, raises an input error naming it.
function M.read(path)
  errors.check(path, "string", "cic.read: path")
  local records, problems, skipped, good_glns = {}, {}, {}, {}
  local files = directory_files(path)
  if not files then
    local ok, why = read_message(input.name(path), read_bytes(path), records, problems, good_glns)
    if not ok then errors.input(why, 0) end
    return records, problems, skipped
  end
  if #files == 0 then errors.input(input.name(path) .. ": an empty directory: no CIC message in it", 0) end
  for _, file in ipairs(files) do
    local read, bytes = pcall(read_bytes, file)
    if not read and not errors.is_input(bytes) then error(bytes, 0) end
    local ok, why
    if read then
      ok, why = read_message(input.name(file), bytes, records, problems, good_glns)
    else
      why = errors.message(bytes) -- unreadable, empty, too large: named as input names it
    end
    if not ok then skipped[#skipped + 1] = why end
  end
  return records, problems, skipped
end

require("kapi.doc").declare("kapi.cic.read", M.read, [[
kapi.cic.read(path) -> records, problems, skipped
Reads GS1 CIC messages (GDSN 3.1 catalogueItemConfirmationMessage): a
file, "-" for standard input, or a directory of them, namespaces by URI
and any encoding expat knows. records are publication records, as
kapi.items.read_report gives them, with file and details (the status
codes, descriptions and corrective actions, each with its GTIN);
problems name confirmations that cannot be used, skipped the documents
of a directory that are malformed or no CIC message ("FILE:LINE: why").
Example:
  local records = kapi.cic.read("inbox/cic")
  for _, r in ipairs(records) do print(r.gtin, r.recipientGln, r.cicState) end]])

return M
