-- bindings/crypto.c against an independent implementation: the openssl CLI.
local crypto = require "kapi.core.crypto"
local process = require "helpers.process"

local function openssl(args, input)
  local r = process.sh("openssl " .. args, {stdin = input})
  assert.equal(0, r.status, r.stderr)
  return r.stdout
end

describe("kapi.core.crypto", function()
  local inputs = {"", "abc", "path?timestamp=2026-11-23T10:00:00Z&x=a b/c+d%20", ("\0\255"):rep(100)}

  it("computes SHA-256 as openssl does", function()
    for _, input in ipairs(inputs) do
      assert.equal(openssl("dgst -sha256 -binary", input), crypto.sha256(input))
    end
  end)

  it("computes HMAC-SHA256 as openssl does", function()
    for _, input in ipairs(inputs) do
      local expected = openssl("dgst -sha256 -binary -hmac " .. process.quote("s3cret key"), input)
      assert.equal(expected, crypto.hmac_sha256("s3cret key", input))
    end
  end)

  it("encodes Base64 as openssl does, and URL-safe Base64 without padding", function()
    for _, input in ipairs(inputs) do
      local expected = openssl("base64 -A", input)
      assert.equal(expected, crypto.base64(input))
      local url = expected:gsub("+", "-"):gsub("/", "_"):gsub("=+$", "")
      assert.equal(url, crypto.base64url(input))
      assert.equal(input, crypto.base64_decode(crypto.base64(input)))
      assert.equal(input, crypto.base64_decode(crypto.base64url(input)))
    end
    assert.is_nil(crypto.base64_decode("not base64!"))
  end)

  it("gives random bytes that differ", function()
    local a, b = crypto.random(32), crypto.random(32)
    assert.equal(32, #a)
    assert.not_equal(a, b)
  end)

  it("compares secrets", function()
    assert.is_true(crypto.equal("same", "same"))
    assert.is_false(crypto.equal("same", "Same"))
    assert.is_false(crypto.equal("same", "same!"))
  end)

  it("formats hexadecimal", function()
    assert.equal("00ff10", crypto.hex("\0\255\16"))
  end)
end)
