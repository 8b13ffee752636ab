-- `kapi config` as a user runs it: settings kept in a file of kapi's own
-- (mode 0600), checked when set, the environment winning over them, and
-- the preferred store used by the shopper recipes when no place is given.
local process = require "helpers.process"

local function env_in(dir, extra)
  local env = process.sandbox_env()
  env.XDG_CONFIG_HOME, env.XDG_STATE_HOME, env.KAPI_STORE = dir .. "/config", dir .. "/state", ""
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

local function kapi(dir, args, extra)
  return process.kapi_run(args, {env = env_in(dir, extra)})
end

describe("kapi config", function()
  local dir
  before_each(function() dir = process.tempdir() end)
  after_each(function() process.cleanup(dir) end)

  it("sets, gets, lists and unsets a setting, in a file only its owner can read", function()
    assert.equal(0, kapi(dir, {"config", "set", "store", "01400376"}).status)
    local got = kapi(dir, {"config", "get", "store"})
    assert.same({0, "01400376\n", ""}, {got.status, got.stdout, got.stderr})
    local path = dir .. "/config/kapi/settings.json"
    local mode = process.sh("stat -c %a " .. process.quote(path)).stdout
    assert.equal("600\n", mode)
    local list = kapi(dir, {"config", "list", "--json"})
    assert.equal(0, list.status, list.stderr)
    local rows = require("kapi.json").decode(list.stdout)
    local by_key = {}
    for _, r in ipairs(rows) do by_key[r.key] = r end
    assert.equal("01400376", by_key.store.value)
    assert.equal("store in " .. path, by_key.store.source)
    assert.equal(require("kapi.json").null, by_key.env.value)
    assert.equal(0, kapi(dir, {"config", "unset", "store"}).status)
    got = kapi(dir, {"config", "get", "store"})
    assert.same({0, ""}, {got.status, got.stdout})
    local paths = kapi(dir, {"config", "path"})
    assert.matches("settings file: " .. path:gsub("%p", "%%%0"), paths.stdout)
  end)

  it("refuses unknown keys, credentials and bad values with one line and exit 2, changing nothing", function()
    local cases = {
      {{"config", "set", "stroe", "01400376"}, "^kapi: no setting named stroe %(did you mean 'store'%?%)"},
      {{"config", "set", "client_secret", "hunter2"}, "^kapi: client_secret: credentials are not settings"},
      {{"config", "set", "store", "1400376"}, "^kapi: store 1400376: expected the preferred store"},
      {{"config", "set", "env", "staging"}, "^kapi: env staging: expected where to work"},
      {{"config", "get"}, "^kapi: "},
      {{"config"}, "^kapi: "},
    }
    for _, case in ipairs(cases) do
      local r = kapi(dir, case[1])
      assert.equal(2, r.status, table.concat(case[1], " "))
      assert.equal("", r.stdout)
      assert.matches(case[2], r.stderr)
      assert.is_nil(r.stderr:find("hunter2", 1, true))
    end
    assert.is_nil(io.open(dir .. "/config/kapi/settings.json"))
  end)

  it("says when the environment wins over the settings file", function()
    local r = kapi(dir, {"config", "set", "env", "sandbox"}, {KAPI_ENV = "ce"})
    assert.equal(0, r.status)
    assert.matches("^kapi: note: KAPI_ENV=ce sets it too %(ce%), and wins over the settings file\n$", r.stderr)
    assert.equal("ce\n", kapi(dir, {"config", "get", "env"}, {KAPI_ENV = "ce"}).stdout)
    assert.equal("sandbox\n", kapi(dir, {"config", "get", "env"}).stdout)
  end)

  it("names a settings file that is not kapi's, exit 2", function()
    process.write(dir .. "/config/kapi/settings.json", "{not json")
    local r = kapi(dir, {"config", "list"})
    assert.equal(2, r.status)
    assert.matches("^kapi: [^\n]*settings%.json: not kapi's settings", r.stderr)
  end)
end)

describe("the preferred store", function()
  local dir
  before_each(function() dir = process.tempdir() end)
  after_each(function() process.cleanup(dir) end)

  it("is where products and coupons look when no place is given, said in a note", function()
    assert.equal(0, kapi(dir, {"config", "set", "store", "01400376"}).status)
    local products = kapi(dir, {"run", "products", "--term", "milk", "--limit", "2", "--json"})
    assert.equal(0, products.status, products.stderr)
    assert.matches("prices and stock at [^\n]*%(01400376%), the preferred store %(store in ", products.stderr)
    local rows = require("kapi.json").decode(products.stdout)
    assert.equal(2, #rows)
    assert.equal("01400376", rows[1].locationId)
    assert.truthy(rows[1].regularPrice, "a price at the preferred store")
    local coupons = kapi(dir, {"run", "coupons", "--limit", "1", "--json"})
    assert.equal(0, coupons.status, coupons.stderr)
    local listed = require("kapi.json").decode(coupons.stdout)
    assert.equal(1, #listed)
    for _, c in ipairs(listed) do assert.equal("01400376", c.locationId) end
    -- A place given wins; KAPI_STORE wins over the settings file.
    local zip = kapi(dir, {"run", "coupons", "--zip", "45202", "--stores", "1", "--limit", "1", "-q"})
    assert.equal(0, zip.status, zip.stderr)
    assert.is_nil(zip.stderr:find("preferred", 1, true))
    local other = kapi(dir, {"run", "products", "--term", "milk", "--limit", "1"}, {KAPI_STORE = "09999999"})
    assert.equal(2, other.status)
    assert.matches("the preferred store 09999999 %(KAPI_STORE=09999999%): no such store", other.stderr)
  end)

  it("that is malformed or unknown stops a recipe with one line naming where it was set, exit 2", function()
    for _, args in ipairs {{"run", "products", "--term", "milk"}, {"run", "coupons"}} do
      local r = kapi(dir, args, {KAPI_STORE = "123"})
      assert.equal(2, r.status)
      assert.equal("", r.stdout)
      assert.matches("kapi: KAPI_STORE=123: a location id has 8 digits, got 123\n$", r.stderr)
    end
    assert.equal(0, kapi(dir, {"config", "set", "store", "09999999"}).status)
    local r = kapi(dir, {"run", "coupons"})
    assert.equal(2, r.status)
    assert.matches("kapi: the preferred store 09999999 %(store in [^\n]*%): no such store; kapi config set store ID",
                   r.stderr)
  end)
end)
