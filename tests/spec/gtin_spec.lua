-- kapi.gtin: GS1 check digits, normalisation, Kroger product ids, GLNs.
local gtin = require("kapi").gtin

describe("kapi.gtin", function()
  it("computes GS1 check digits", function()
    assert.equal("2", gtin.check_digit("0061414100001"))     -- examples/items: 00614141000012
    assert.equal("9", gtin.check_digit("1061414100001"))     -- 10614141000019
    assert.equal("8", gtin.check_digit("01111041700"))       -- UPC-A 011110417008
    assert.equal("3", gtin.check_digit("083801600012"))      -- GLN 0838016000123
  end)

  it("computes the check digit of any length as GS1 defines it (weights 3, 1, 3, ... from the right)", function()
    for _ = 1, 5000 do
      local digits = {}
      for i = 1, math.random(1, math.random() < 0.9 and 17 or 200) do digits[i] = math.random(0, 9) end
      local sum = 0
      for from_right = 1, #digits do
        sum = sum + digits[#digits - from_right + 1] * (from_right % 2 == 1 and 3 or 1)
      end
      local body = table.concat(digits)
      assert.equal(tostring((10 - sum % 10) % 10), gtin.check_digit(body), body)
    end
  end)

  it("accepts GTIN-8, -12, -13 and -14", function()
    for _, code in ipairs {"96385074", "011110417008", "0614141000012", "00614141000012", "10614141000019"} do
      assert.is_true(gtin.valid(code), code)
    end
  end)

  it("says which digit is wrong, or what else is", function()
    local ok, why = gtin.valid("00614141000013")
    assert.is_false(ok)
    assert.equal('GTIN "00614141000013" has check digit 3; it should be 2 (or another digit is wrong)', why)
    assert.equal('GTIN "0061414100001X" has a non-digit "X" at position 14', select(2, gtin.valid("0061414100001X")))
    assert.equal('GTIN "12345" has 5 digits; it must have 8, 12, 13 or 14', select(2, gtin.valid("12345")))
    assert.equal("GTIN must be a string of digits, got number", select(2, gtin.valid(614141000012)))
  end)

  it("normalizes to GTIN-14, or raises a usage error naming the problem", function()
    assert.equal("00011110417008", gtin.normalize("011110417008"))
    assert.equal("00000096385074", gtin.normalize("96385074"))
    local ok, err = pcall(gtin.normalize, "011110417005")
    assert.is_false(ok)
    assert.equal("usage", err.kind)
    assert.matches("should be 8", tostring(err))
  end)

  it("takes a code whose check digit is right and refuses every other digit there, at every length", function()
    for _ = 1, 4000 do
      local n = ({8, 12, 13, 14})[math.random(4)]
      local digits = {}
      for i = 1, n - 1 do digits[i] = math.random(0, 9) end
      local body = table.concat(digits)
      local right = gtin.check_digit(body)
      for d = 0, 9 do
        local code = body .. d
        assert.equal(tostring(d) == right, (gtin.valid(code)), code)
        if n == 13 then assert.equal(tostring(d) == right, (gtin.valid_gln(code)), code) end
      end
    end
  end)

  it("gives the GTIN-14 of a valid code, or nil and why, in one check", function()
    assert.equal("00011110417008", gtin.as_gtin14("011110417008"))
    assert.equal("10614141000019", gtin.as_gtin14("10614141000019"))
    assert.same({nil, select(2, gtin.valid("011110417005"))}, {gtin.as_gtin14("011110417005")})
    assert.same({nil, "GTIN must be a string of digits, got nil"}, {gtin.as_gtin14(nil)})
  end)

  it("converts to Kroger's 13-digit product id and back", function()
    assert.equal("0001111041700", gtin.to_product_id("011110417008"))
    assert.equal("00011110417008", gtin.from_product_id("0001111041700"))
    assert.equal(gtin.normalize("0614141000012"), gtin.from_product_id(gtin.to_product_id("0614141000012")))
    assert.has_error(function() gtin.from_product_id("123") end)
  end)

  it("validates GLNs, such as Kroger's", function()
    for _, gln in ipairs {"0838016000123", "0838016000116", "0011110000019", "0614141000005"} do
      assert.is_true(gtin.valid_gln(gln), gln)
    end
    assert.is_false(gtin.valid_gln("0838016000124"))
    assert.is_false(gtin.valid_gln("083801600012"))
    assert.equal('GLN "083801600012" has 12 digits; it must have 13', select(2, gtin.valid_gln("083801600012")))
  end)
end)
