-- A small validator of JSON values against OpenAPI 3.0 schemas, for the
-- conformance specs: type, properties, required, items, enum, $ref,
-- oneOf, anyOf, allOf, nullable. It fails on a wrong type or a missing
-- required field; extra properties are allowed, as in the specs.
local json = require "kapi.json"

local M = {}

--- Loads an OpenAPI document (a path relative to tests/data/openapi).
function M.load(path)
  local process = require "helpers.process"
  local f = assert(io.open(process.source_dir .. "/tests/data/openapi/" .. path))
  local doc = json.decode(f:read("a"))
  f:close()
  return doc
end

local function resolve(doc, schema)
  local seen = 0
  while schema["$ref"] do
    local name = schema["$ref"]:match("^#/components/schemas/(.+)$")
    schema = assert(doc.components.schemas[name], "unknown $ref " .. schema["$ref"])
    seen = seen + 1
    assert(seen < 50, "$ref loop")
  end
  return schema
end

local function type_ok(kind, value)
  if kind == "object" then return type(value) == "table" and not json.is_array(value) and (next(value) == nil or value[1] == nil) end
  if kind == "array" then return type(value) == "table" and (json.is_array(value) or next(value) == nil or value[1] ~= nil) end
  if kind == "string" then return type(value) == "string" end
  if kind == "integer" then return math.type(value) == "integer" end
  if kind == "number" then return type(value) == "number" end
  if kind == "boolean" then return type(value) == "boolean" end
  return true
end

local validate

local function validate_one_of(doc, schemas, value, path, errors)
  for _, s in ipairs(schemas) do
    local e = {}
    validate(doc, s, value, path, e)
    if #e == 0 then return end
  end
  errors[#errors + 1] = path .. ": matches none of the oneOf/anyOf schemas"
end

function validate(doc, schema, value, path, errors)
  schema = resolve(doc, schema)
  if value == json.null then
    if not schema.nullable and schema.type then errors[#errors + 1] = path .. ": null" end
    return
  end
  if schema.oneOf or schema.anyOf then return validate_one_of(doc, schema.oneOf or schema.anyOf, value, path, errors) end
  for _, s in ipairs(schema.allOf or {}) do validate(doc, s, value, path, errors) end
  if schema.type and not type_ok(schema.type, value) then
    errors[#errors + 1] = ("%s: expected %s, got %s"):format(path, schema.type, type(value))
    return
  end
  if schema.enum then
    local found = false
    for _, v in ipairs(schema.enum) do found = found or v == value end
    if not found then errors[#errors + 1] = path .. ": " .. tostring(value) .. " is not one of the enum" end
  end
  if type(value) ~= "table" then return end
  for _, name in ipairs(schema.required or {}) do
    if value[name] == nil then errors[#errors + 1] = path .. ": missing required field " .. name end
  end
  for name, s in pairs(schema.properties or {}) do
    if value[name] ~= nil then validate(doc, s, value[name], path .. "." .. name, errors) end
  end
  if schema.items then
    for i, item in ipairs(value) do validate(doc, schema.items, item, path .. "[" .. i .. "]", errors) end
  end
end

--- The problems of value against schema (a table, or {"$ref": ...}); empty when it conforms.
function M.check(doc, schema, value)
  local errors = {}
  validate(doc, schema, value, "$", errors)
  return errors
end

--- The schema of the response to `method path` with `status` (as in the
--- document's paths; path as written there, e.g. "/v1/products/{id}").
function M.response_schema(doc, method, path, status)
  local op = assert(doc.paths[path], "no path " .. path)[method:lower()]
  local response = assert(op.responses[tostring(status)], ("%s %s has no %s response"):format(method, path, status))
  local content = response.content and response.content["application/json"]
  return content and content.schema
end

return M
