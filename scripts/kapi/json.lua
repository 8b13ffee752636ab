-- JSON: our decoder and encoder (bindings/json.c), with `null` and empty
-- arrays that survive a round trip (decode "[]", encode it back as "[]",
-- not "{}") and integers that stay exact both ways.
local null = require("cjson").null -- the null every Lua JSON library here agrees on
local core = require "kapi.core.json"
local doc = require "kapi.doc"
local errors = require "kapi.errors"

local M = {null = null}

local array_mt = {__name = "kapi.json.array"}
M.array_mt = array_mt

--- Marks t (or a new table) as a JSON array, so it encodes as [] when empty.
function M.array(t)
  errors.check(t, "table?", "json.array: t")
  return setmetatable(t or {}, array_mt)
end

function M.is_array(t)
  return getmetatable(t) == array_mt
end

-- The set of names of a `without` list, made once a list: a caller asks
-- with the same list for every page.
local DECODE_OPTIONS = {without = "table"}
local name_sets = setmetatable({}, {__mode = "k"})
local function names_of(list)
  local set = name_sets[list]
  if set then return set end
  set = {}
  for i, name in ipairs(list) do
    if type(name) ~= "string" then errors.check(name, "string", ("json.decode: without[%d]"):format(i)) end
    set[name] = true
  end
  name_sets[list] = set
  return set
end

--- Decodes JSON text; raises on malformed text, naming where. Whole
--- numbers decode as Lua integers. opts.without lists member names left
--- out of every object, at any depth (checked, never made); the list is
--- read once, so it is not to be changed after.
function M.decode(text, opts)
  if type(text) ~= "string" then errors.check(text, "string", "json.decode: text") end
  if opts == nil then return core.decode(text, array_mt, null) end
  errors.check(opts, "table", "json.decode: opts")
  errors.check_options(opts, DECODE_OPTIONS, "json.decode")
  return core.decode(text, array_mt, null, opts.without and names_of(opts.without))
end

--- Of a JSON object's members, those wanted names: wanted[name] = true
--- for the value, "objects" for the number of objects in its array. The
--- rest is checked and passed over, made into nothing.
function M.skim(text, wanted)
  if type(text) ~= "string" then errors.check(text, "string", "json.skim: text") end
  errors.check(wanted, "table", "json.skim: wanted")
  return core.skim(text, array_mt, null, wanted)
end

--- Encodes a value as JSON; with opts.sorted, object keys in order.
function M.encode(value, opts)
  if opts ~= nil then errors.check(opts, "table", "json.encode: opts") end
  return core.encode(value, array_mt, null, opts ~= nil and opts.sorted)
end

doc.declare("kapi.json.decode", M.decode, [[
kapi.json.decode(text [, {without = {name, ...}}]) -> value
Decodes JSON. null becomes kapi.json.null; [] becomes an empty table marked
as an array, so that encoding it gives [] again; whole numbers are integers
(exact to 64 bits). Malformed text raises one line naming the problem and
where: json: expected ',' or ']' at character 4, near '2]'. Members named
in without are left out of every object, however deep: checked as the rest
is, but never made (a product's images, when only its price is wanted).
Example:
  local v = kapi.json.decode('{"tags": [], "brand": null}')
  print(kapi.json.encode(v, {sorted = true}))  --> {"brand":null,"tags":[]}
  kapi.json.decode('{"a": 1, "images": [{"url": "x"}]}', {without = {"images"}})  --> {a = 1}]])

doc.declare("kapi.json.skim", M.skim, [[
kapi.json.skim(text, {name = true | "objects", ...}) -> {name = value, ...}
Of a JSON object, the members named: true gives the value, decoded as
kapi.json.decode does; "objects" the number of objects in its array. The
others are checked and passed over, so a page's cursor is read in a tenth
of the time its decoding takes. Text that is no object gives {}; text
that is not JSON raises as kapi.json.decode does.
Example:
  local top = kapi.json.skim(body, {searchAfter = true, items = "objects"})
  print(top.items, kapi.json.encode(top.searchAfter))]])

doc.declare("kapi.json.encode", M.encode, [[
kapi.json.encode(value[, {sorted = true}]) -> text
Encodes a value. Tables with the keys 1..n are arrays; an empty table is
{} unless marked with kapi.json.array(). Integers are written exactly,
floats in the fewest digits that read back the same; sorted = true puts
object keys in order, so the same data always gives the same text. A
function, a cycle or NaN raises an error naming it.
Example:
  kapi.json.encode{id = 8594743176476373, url = "a/b"}  --> {"id":8594743176476373,"url":"a/b"}]])

doc.declare("kapi.json.array", M.array, [[
kapi.json.array([t]) -> t
Marks t (or a new table) as a JSON array, so that it encodes as [] when empty.
Example:
  kapi.json.encode{items = kapi.json.array()}  --> {"items":[]}]])

return M
