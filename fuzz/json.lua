-- Fuzz target: the JSON decoder (bindings/json.c through kapi.json).
-- Malformed text must be refused with the decoder's own one-line error
-- ("json: WHAT at character N, near '...'"); text it takes must survive a
-- round trip: decode, encode, decode gives the same value, and encoding
-- with sorted keys gives the same text both times. A number beyond a
-- double's range decodes as an infinity, as lua-cjson decodes it
-- (tests/spec/json_spec.lua); encoding refuses that one cleanly. The
-- skimmer takes the same texts and refuses the same others: of an object
-- it gives each member wanted as the decoder does, and the count of the
-- objects in an array.
local json = require "kapi.json"
local errors = require "kapi.errors"

local null, is_array = json.null, json.is_array

local function same(a, b, depth)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" or depth > 1100 then
    -- NaN never comes out of JSON; numbers compare as Lua compares them
    -- (1 and 1.0 differ in kind, which matters: integers stay exact).
    return false
  end
  if is_array(a) ~= is_array(b) then return false end
  for k, v in pairs(a) do
    if not same(v, b[k], depth + 1) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function kinds_match(a, b, depth)
  if type(a) == "table" and type(b) == "table" then
    for k, v in pairs(a) do
      if depth < 1100 and not kinds_match(v, b[k], depth + 1) then return false end
    end
    return true
  end
  return math.type(a) == math.type(b)
end

local function has_infinity(v, depth)
  if v == math.huge or v == -math.huge then return true end
  if type(v) ~= "table" or depth > 1100 then return false end
  for _, e in pairs(v) do
    if has_infinity(e, depth + 1) then return true end
  end
  return false
end

local function check(cond, what, data)
  if not cond then
    error(("%s (input of %d bytes)"):format(what, #data), 0)
  end
end

-- What skim gives of a decoded value, worked out from the value.
local function skimmed(value, wanted)
  local out = {}
  if type(value) ~= "table" or is_array(value) or (value[1] ~= nil) then return out end
  for name, how in pairs(wanted) do
    local v = value[name]
    if how == "objects" then
      local n = 0
      if type(v) == "table" and (is_array(v) or v[1] ~= nil or next(v) == nil) then
        for _, e in ipairs(v) do
          if type(e) == "table" and not is_array(e) and (e[1] == nil) then n = n + 1 end
        end
      end
      out[name] = v ~= nil and n or nil
    else
      out[name] = v
    end
  end
  return out
end

local function check_skim(data, value, decoded)
  -- Every member of the object, and each once counted as an array.
  local wanted, counted = {}, {}
  if type(value) == "table" then
    for name in pairs(value) do
      if type(name) == "string" then wanted[name], counted[name] = true, "objects" end
    end
  end
  for _, w in ipairs {wanted, counted} do
    local ok, got = pcall(json.skim, data, w)
    if not decoded then
      check(not ok and type(got) == "string" and got:find("^json: "), "skim took what decode refused", data)
      return
    end
    check(ok, "skim refused what decode took: " .. tostring(got), data)
    check(same(skimmed(value, w), got, 0), "skim differs from decode", data)
  end
end

return function(data)
  local ok, value = pcall(json.decode, data)
  check_skim(data, value, ok)
  if not ok then
    -- The decoder's own error: a string naming the problem and where.
    check(type(value) == "string" and value:find("^json: "), "decode raised " .. tostring(value), data)
    return
  end
  check(value ~= nil, "decode gave nil", data)
  if has_infinity(value, 0) then
    local encoded, err = pcall(json.encode, value)
    check(not encoded and errors.is(err, "usage") and err.message == "json: cannot encode an infinite number",
          "encoding an infinity gave " .. tostring(err), data)
    return
  end
  local text = json.encode(value)
  local again = json.decode(text)
  check(same(value, again, 0) and kinds_match(value, again, 0), "decode(encode(v)) differs from v: " .. text, data)
  local sorted = json.encode(value, {sorted = true})
  check(json.encode(again, {sorted = true}) == sorted, "sorted encodings differ", data)
  -- null survives as the one null value, wherever it was.
  check(value ~= null or again == null, "null did not round-trip", data)
end
