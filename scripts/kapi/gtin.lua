-- GTINs and GLNs: validation with the wrong digit named, check digits,
-- normalisation to GTIN-14, and Kroger's 13-digit product ids (the GTIN-14
-- without its check digit).
local doc = require "kapi.doc"
local errors = require "kapi.errors"

local M = {}

local LENGTHS = {[8] = true, [12] = true, [13] = true, [14] = true}

-- The check digit of a string known to hold only digits. Its bytes are
-- taken in one call: a report checks a GTIN and a GLN a row.
local function check_digit_of(body)
  local n, sum = #body, 0
  if n > 64 then -- too many for one call's results
    for i = n, 1, -1 do sum = sum + body:byte(i) * ((n - i) % 2 == 0 and 3 or 1) end
  else
    local bytes = {string.byte(body, 1, -1)}
    for i = n, 2, -2 do sum = sum + bytes[i] * 3 + bytes[i - 1] end
    if n % 2 == 1 then sum = sum + bytes[1] * 3 end
  end
  sum = sum - 48 * (n + 2 * ((n + 1) // 2)) -- the '0's, weighted 3 and 1
  return tostring((10 - sum % 10) % 10)
end

-- Whether a code of at most 64 digits ends in its right check digit: the
-- digits weighted 1, 3, 1, ... from the right (the check digit's own
-- weight is 1) sum to a multiple of ten. One call for the bytes, no
-- strings made: a report checks a GTIN and a GLN a row.
local byte = string.byte
local function checks_out(code)
  local n = #code
  if n <= 14 and n >= 8 then -- a GTIN or a GLN: its bytes as values, no table
    -- Read as the GTIN-14 it pads to: the zeros in front weigh nothing.
    local a, b, c, d, e, f, g, h, i, j, k, l, m, o = byte(("0"):rep(14 - n) .. code, 1, 14)
    local sum = (a + c + e + g + i + k + m) * 3 + b + d + f + h + j + l + o - 48 * 28
    return sum % 10 == 0
  end
  local bytes, sum = {byte(code, 1, -1)}, 0
  for i = n, 2, -2 do sum = sum + bytes[i] + bytes[i - 1] * 3 end
  if n % 2 == 1 then sum = sum + bytes[1] end
  return (sum - 48 * (n + 2 * (n // 2))) % 10 == 0
end

--- The GS1 check digit of the digits before it (weights 3, 1, 3, ...
--- from the rightmost).
function M.check_digit(body)
  if type(body) ~= "string" or not body:match("^%d+$") then
    error(errors.new("usage", "gtin.check_digit: expects a string of digits"), 2)
  end
  return check_digit_of(body)
end

-- A code as messages quote it: in quotes, cut to a readable length.
local function quoted(code)
  return '"' .. errors.excerpt(code, 40) .. '"'
end

-- The character at byte position i of s (a whole UTF-8 character when it
-- is one), as a message shows it.
local function character_at(s, i)
  local c = s:match("^[\xC2-\xF4][\x80-\xBF]+", i) or s:sub(i, i)
  if utf8.len(c) ~= 1 then return ("byte 0x%02X"):format(c:byte()) end
  if #c == 1 and not c:match("%g") then return ("character 0x%02X"):format(c:byte()) end
  return #c > 1 and c:match("^\xEF\xBB\xBF$") and "U+FEFF (a byte-order mark)" or ('"' .. c .. '"')
end

-- nil when the code is well formed, else why not.
local function problem(code, lengths, what)
  if type(code) ~= "string" then return ("%s must be a string of digits, got %s"):format(what, type(code)) end
  if code == "" then return what .. " is empty" end
  local bad = code:find("%D")
  if bad then
    return ("%s %s has a non-digit %s at position %d"):format(what, quoted(code), character_at(code, bad),
                                                           utf8.len(code:sub(1, bad)) or bad)
  end
  if not lengths[#code] then
    local allowed = {}
    for n in pairs(lengths) do allowed[#allowed + 1] = n end
    table.sort(allowed)
    local last = table.remove(allowed)
    local counts = #allowed > 0 and table.concat(allowed, ", ") .. " or " .. last or tostring(last)
    return ("%s %s has %d digits; it must have %s"):format(what, quoted(code), #code, counts)
  end
  if checks_out(code) then return nil end
  local expected = check_digit_of(code:sub(1, -2))
  if code:sub(-1) ~= expected then
    return ("%s %s has check digit %s; it should be %s (or another digit is wrong)"):format(
      what, quoted(code), code:sub(-1), expected)
  end
end

--- Whether code is a valid GTIN-8, -12, -13 or -14; and, when not, why.
function M.valid(code)
  local why = problem(code, LENGTHS, "GTIN")
  return why == nil, why
end

--- The GTIN-14 of a valid GTIN (left-padded with zeros); raises a usage
--- error naming the problem otherwise.
function M.normalize(code)
  local why = problem(code, LENGTHS, "GTIN")
  if why then error(errors.new("usage", why), 2) end
  return ("0"):rep(14 - #code) .. code
end

--- The GTIN-14 of code when it is a valid GTIN; else nil and why not (one
--- check, where valid and then normalize make two).
function M.as_gtin14(code)
  local why = problem(code, LENGTHS, "GTIN")
  if why then return nil, why end
  return ("0"):rep(14 - #code) .. code
end

--- Whether code is a valid GLN (13 digits, GS1 check digit); and why not.
function M.valid_gln(code)
  local why = problem(code, {[13] = true}, "GLN")
  return why == nil, why
end

--- Kroger's 13-digit product id (upc) of a GTIN: the GTIN-14 without its
--- check digit.
function M.to_product_id(code)
  local why = problem(code, LENGTHS, "GTIN")
  if why then error(errors.new("usage", why), 2) end
  return (("0"):rep(14 - #code) .. code):sub(1, 13)
end

--- The GTIN-14 of a Kroger product id (13 digits): the check digit added.
function M.from_product_id(id)
  if type(id) ~= "string" or not id:match("^%d%d%d%d%d%d%d%d%d%d%d%d%d$") then
    error(errors.new("usage", ("product id %q must be 13 digits"):format(tostring(id))), 2)
  end
  return id .. M.check_digit(id)
end

doc.declare("kapi.gtin.valid", M.valid, [[
kapi.gtin.valid(code) -> ok, why
Whether code is a valid GTIN-8, -12, -13 or -14; when not, why in words,
naming the wrong character, the length or the expected check digit.
Example:
  print(kapi.gtin.valid("00614141000012"))   --> true
  print(kapi.gtin.valid("00614141000013"))   --> false  GTIN "00614141000013" has check digit 3; it should be 2 ...]])

doc.declare("kapi.gtin.normalize", M.normalize, [[
kapi.gtin.normalize(code) -> gtin14
The GTIN-14 of a valid GTIN, left-padded with zeros; raises a usage error
saying what is wrong otherwise.
Example:
  kapi.gtin.normalize("614141000012")  --> "00614141000012"]])

doc.declare("kapi.gtin.as_gtin14", M.as_gtin14, [[
kapi.gtin.as_gtin14(code) -> gtin14 | nil, why
The GTIN-14 of code when it is a valid GTIN, as normalize gives it; else
nil and why, as valid says it. One check, for lists of many codes.
Example:
  local g, why = kapi.gtin.as_gtin14(line)
  if not g then print(why) end]])

doc.declare("kapi.gtin.check_digit", M.check_digit, [[
kapi.gtin.check_digit(digits) -> digit
The GS1 check digit for the digits that precede it.
Example:
  kapi.gtin.check_digit("0061414100001")  --> "2"]])

doc.declare("kapi.gtin.valid_gln", M.valid_gln, [[
kapi.gtin.valid_gln(code) -> ok, why
Whether code is a valid 13-digit GLN.
Example:
  kapi.gtin.valid_gln("0838016000123")  --> true]])

doc.declare("kapi.gtin.to_product_id", M.to_product_id, [[
kapi.gtin.to_product_id(gtin) -> product id
Kroger's 13-digit product id (upc) of a GTIN: the GTIN-14 without its check
digit.
Example:
  kapi.gtin.to_product_id("011110417008")  --> "0001111041700"]])

doc.declare("kapi.gtin.from_product_id", M.from_product_id, [[
kapi.gtin.from_product_id(id) -> gtin14
The GTIN-14 of a Kroger product id, its check digit added.
Example:
  kapi.gtin.from_product_id("0001111041700")  --> "00011110417008"]])

return M
