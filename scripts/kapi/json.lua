-- JSON: our decoder (bindings/json.c) and lua-cjson's encoder, with `null`
-- and empty arrays that survive a round trip (decode "[]", encode it back
-- as "[]", not "{}").
local cjson = require("cjson").new() -- our settings stay ours
local decoder = require "kapi.core.json"
local doc = require "kapi.doc"

local M = {null = cjson.null}

local array_mt = {__name = "kapi.json.array"}
M.array_mt = array_mt

--- Marks t (or a new table) as a JSON array, so it encodes as [] when empty.
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

function M.is_array(t)
  return getmetatable(t) == array_mt
end

--- Decodes JSON text; raises on malformed text, naming where. Whole
--- numbers decode as Lua integers.
function M.decode(text)
  return decoder.decode(text, array_mt, cjson.null)
end

local EMPTY = "\0kapi-empty-array\0"
local EMPTY_ENCODED = ('"\\u0000kapi-empty-array\\u0000"'):gsub("%p", "%%%0")

-- The value with empty arrays replaced by a placeholder; tables are copied
-- only along the paths that hold one, so the caller's tables stay as they are.
local function prepare(value, depth)
  if type(value) ~= "table" then return value, false end
  if depth > 1000 then error("json: nested too deeply (a cycle?)", 0) end
  if getmetatable(value) == array_mt and next(value) == nil then return EMPTY, true end
  local copy
  for k, v in next, value do
    local replaced, changed = prepare(v, depth + 1)
    if changed then
      if not copy then
        copy = {}
        for k2, v2 in next, value do copy[k2] = v2 end
      end
      copy[k] = replaced
    end
  end
  return copy or value, copy ~= nil
end

--- Encodes a value as JSON.
function M.encode(value)
  local prepared, changed = prepare(value, 0)
  local text = cjson.encode(prepared)
  if changed then text = text:gsub(EMPTY_ENCODED, "[]") end
  return text
end

doc.declare("kapi.json.decode", M.decode, [[
kapi.json.decode(text) -> value
Decodes JSON. null becomes kapi.json.null; [] becomes an empty table marked
as an array, so that encoding it gives [] again; whole numbers are integers
(exact to 64 bits). Malformed text raises one line naming the problem and
where: json: expected ',' or ']' at character 4, near '2]'.
Example:
  local v = kapi.json.decode('{"tags": [], "brand": null}')
  print(kapi.json.encode(v))  --> {"tags":[],"brand":null} (key order may vary)]])

doc.declare("kapi.json.encode", M.encode, [[
kapi.json.encode(value) -> text
Encodes a value. Tables with keys 1..n are arrays; an empty table is {}
unless marked with kapi.json.array().]])

doc.declare("kapi.json.array", M.array, [[
kapi.json.array([t]) -> t
Marks t (or a new table) as a JSON array, so that it encodes as [] when empty.
Example:
  kapi.json.encode{items = kapi.json.array()}  --> {"items":[]}]])

return M
