-- Fuzz target: kapi's readers of what users and services hand it, each on
-- every input: report CSV (kapi.items.parse_csv, and read_report on the
-- input as a file), GS1 CIC messages (kapi.cic.read, XML through
-- bindings/xml.c), item JSON (kapi.input.json, kapi.items.hierarchies,
-- then Kroger's rules on what they take, as preflight does), list files
-- (kapi.input.entries), and URL and query handling (the transport's
-- url_host, kapi.http's is_loopback, decode_query, encode_query,
-- redact_url, full_url).
--
-- A reader's own clean refusal, an error object of kind usage or input
-- (scripts/kapi/errors.lua), is an answer; any other error is a finding.
-- So is a query that does not survive encoding and decoding again, or a
-- CSV whose rows do not read back the same once written out again.
local items = require "kapi.items"
local input = require "kapi.input"
local http = require "kapi.http"
local errors = require "kapi.errors"
local rules = require "kapi.rules.kroger"
local cic = require "kapi.cic"

local transport = require "kapi.core.http"
local path = os.tmpname()
os.remove(path)

local function check(cond, what, ...)
  if not cond then error(what:format(...), 0) end
end

-- Runs fn(...): its results, or nil when it refused cleanly.
local function reader(name, fn, ...)
  local result = table.pack(pcall(fn, ...))
  if result[1] then return table.unpack(result, 2, result.n) end
  local err = result[2]
  check(errors.is(err, "usage") or errors.is(err, "input"), "%s raised %s", name, errors.message(err))
  check(type(err.message) == "string" and not err.message:find("\n"), "%s: an error not in one line", name)
  return nil
end

-- RFC 4180 as parse_csv reads it: every field quoted, rows ending in LF.
local function write_csv(rows)
  local lines = {}
  for r, row in ipairs(rows) do
    local fields = {}
    for f, field in ipairs(row) do fields[f] = '"' .. field:gsub('"', '""') .. '"' end
    lines[r] = table.concat(fields, ",") .. "\n"
  end
  return table.concat(lines)
end

local function same_rows(a, b)
  if #a ~= #b then return false end
  for r = 1, #a do
    if #a[r] ~= #b[r] then return false end
    for f = 1, #a[r] do
      if a[r][f] ~= b[r][f] then return false end
    end
  end
  return true
end

local function csv(data)
  local rows = reader("items.parse_csv", items.parse_csv, data)
  if not rows then return end
  for _, row in ipairs(rows) do
    for _, field in ipairs(row) do check(type(field) == "string", "parse_csv gave a field that is no string") end
  end
  if not rows.unclosed then
    local again = items.parse_csv(write_csv(rows))
    check(same_rows(rows, again), "parse_csv: the rows written out again read back otherwise")
  end
end

local function with_file(data, fn)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local ok, err = pcall(fn)
  os.remove(path)
  if not ok then error(err, 0) end
end

local function report()
  local records, problems = reader("items.read_report", items.read_report, path)
  if not records then return end
  for _, record in ipairs(records) do
    check(type(record.gtin) == "string" and #record.gtin == 14, "read_report gave a record without a GTIN")
  end
  for _, problem in ipairs(problems) do check(type(problem) == "string", "a problem that is no string") end
end

local function cic_message()
  local records, problems, skipped = reader("cic.read", cic.read, path)
  if not records then return end
  for _, record in ipairs(records) do
    check(type(record.gtin) == "string" and type(record.recipientGln) == "string", "cic.read gave a record without GTIN or GLN")
  end
  for _, list in ipairs {problems, skipped} do
    for _, why in ipairs(list) do check(type(why) == "string", "a problem that is no string") end
  end
end

local function item_json()
  local value = reader("input.json", input.json, path)
  if value == nil then return end
  local good = reader("items.hierarchies", items.hierarchies, value, "fuzz.json")
  if good and #good > 0 then reader("rules.check", rules.check, good) end
end

local function list_file()
  local entries = reader("input.entries", input.entries, path, function(fields) return fields[1] == "gtin" end)
  for _, entry in ipairs(entries or {}) do
    check(math.type(entry.line) == "integer" and type(entry.fields) == "table", "an entry without line or fields")
  end
end

local function query(data)
  local pairs_ = http.decode_query(data)
  for _, pair in ipairs(pairs_) do
    check(type(pair[1]) == "string" and type(pair[2]) == "string", "decode_query gave no strings")
  end
  local again = http.decode_query(http.encode_query(pairs_))
  check(same_rows(pairs_, again), "a query does not survive encode_query and decode_query")
  check(type(http.redact_url("http://127.0.0.1/p?" .. data)) == "string", "redact_url gave no string")
end

local function url(data)
  local host, loopback = transport.url_host(data)
  check(host == nil or (type(host) == "string" and type(loopback) == "boolean"), "url_host gave %s", tostring(host))
  local is = http.is_loopback(data)
  check(is == true or is == false, "is_loopback gave %s", tostring(is))
  -- What kapi.http sends a query to.
  local ok, full = pcall(http.full_url, {url = "https://api.example.test/v1?x=1", query = http.decode_query(data)})
  check(ok and type(full) == "string", "full_url raised %s", tostring(full))
end

return function(data)
  csv(data)
  query(data)
  url(data)
  with_file(data, function()
    report()
    cic_message()
    item_json()
    list_file()
  end)
end
