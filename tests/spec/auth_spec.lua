-- Authentication against the sandbox's real token endpoint on loopback.
local kapi = require "kapi"
local auth = require "kapi.auth"
local store = require "kapi.auth.store"
local login = require "kapi.auth.login"
local process = require "helpers.process"
local http = kapi.http

local sb, dir

local function service(opts)
  opts = opts or {}
  return auth.service {base_url = sb.url, client_id = opts.client_id or "kapi-sandbox",
                       client_secret = opts.client_secret or "sandbox-secret", scopes = opts.scopes or {"product.basic"}}
end

local function customer()
  return auth.customer {base_url = sb.url, client_id = "kapi-sandbox", client_secret = "sandbox-secret"}
end

local function mode(path)
  local p = io.popen("stat -c %a " .. process.quote(path))
  local m = p:read("l")
  p:close()
  return m
end

-- Logs in, playing the browser: follows the authorize redirect to the
-- callback. `tamper` may change the callback URL first.
local function log_in(tamper)
  local done
  return login.login {
    base_url = sb.url, client_id = "kapi-sandbox", client_secret = "sandbox-secret",
    scopes = {"cart.basic:write", "profile.compact"}, browser = false, timeout = 10,
    announce = function(line)
      local url = line:match("^%s+(http%S+)$")
      if url and not done then
        done = true
        kapi.spawn(function()
          local callback = http.get(url, {raise = false}).headers.location
          if tamper then tamper(callback) end
          http.get(callback, {raise = false})
        end)
      end
    end,
  }
end

before_each(function()
  dir = process.tempdir()
  store.directory = dir .. "/tokens"
  sb = kapi.sandbox.start {products = 300, stores = 10}
end)

after_each(function()
  sb:close()
  store.directory = nil
  process.cleanup(dir)
end)

describe("service tokens", function()
  it("are requested with Basic auth, and a refused secret is said in words", function()
    local ok, err = pcall(function() service({client_secret = "wrong"}):token() end)
    assert.is_false(ok)
    assert.equal("auth", err.kind)
    assert.matches("the client id or secret was refused", tostring(err))
    assert.not_matches("wrong", tostring(err))
  end)

  it("are reused: in memory, and from the store by another authenticator", function()
    local a = service()
    a:token()
    a:token()
    service():token()
    assert.equal(1, sb.state.token_requests)
  end)

  it("are renewed a minute before they expire", function()
    sb:close()
    sb = kapi.sandbox.start {products = 300, stores = 10, token_ttl = 62}
    local a = service()
    local first = a:token()
    assert.equal(first, a:token())
    kapi.sleep(2.2)
    assert.not_equal(first, a:token())
    assert.equal(2, sb.state.token_requests)
  end)

  it("are fetched once for 50 tasks that need one at the same time", function()
    local a = service()
    local list = {}
    for i = 1, 50 do list[i] = i end
    local results, errors = kapi.map(list, function()
      return http.get(sb.url .. "/v1/chains", {auth = a}).status
    end, {concurrency = 50})
    assert.is_nil(errors)
    assert.equal(200, results[50])
    assert.equal(1, sb.state.token_requests)
  end)

  it("are renewed once on a 401 invalid_token, and the call succeeds", function()
    local a = service()
    http.get(sb.url .. "/v1/chains", {auth = a})
    http.post(sb.url .. "/sandbox/tokens/expire")
    assert.equal(200, http.get(sb.url .. "/v1/chains", {auth = a}).status)
    assert.equal(2, sb.state.token_requests)
  end)

  it("survive tokens revoked while other requests use them: each refused token is renewed", function()
    sb:close()
    sb = kapi.sandbox.start {products = 300, stores = 10, faults = "expire=0.05"}
    local a = service {scopes = {}}
    local list = {}
    for i = 1, 400 do list[i] = i end
    -- Four requests share each token; one of them drawing the fault ends
    -- it for all four, and a renewed token can be drawn in turn.
    local results, failures = kapi.map(list, function()
      return http.get(sb.url .. "/v1/chains", {auth = a}).status
    end, {concurrency = 4})
    for i = 1, #list do assert.is_nil(failures and failures[i], failures and tostring(failures[i])) end
    assert.equal(200, results[400])
    assert.is_true(sb.state.token_requests > 5, "the fault was never drawn")
  end)

  it("drop on a 401 only the token the request carried, and never take it up again", function()
    local a = service()
    local first = a:token()
    local refused = {headers = {{"Accept", "application/json"}, {"Authorization", "Bearer " .. first}}}
    a:renew(nil, refused)
    local second = a:token()
    assert.not_equal(first, second)
    -- A request that was in flight with the first token hears its 401
    -- late: the second token stays.
    a:renew(nil, {headers = {Authorization = "Bearer " .. first}})
    assert.equal(second, a:token())
    assert.equal(2, sb.state.token_requests)
    -- Another kapi process that still held the first token writes it back
    -- to the store: it is not taken up again.
    local b = service()
    b:renew(nil, {headers = {Authorization = "Bearer " .. second}})
    store.write(b.key, {kind = "service", host = sb.url, client_id = "kapi-sandbox", scopes = {"product.basic"},
                        access_token = second, expires_at = os.time() + 1800})
    local third = b:token()
    assert.not_equal(second, third)
    assert.equal(3, sb.state.token_requests)
  end)

  it("are stored in files of mode 0600 in a directory of mode 0700, but never for a sandbox of this process", function()
    service():token() -- the sandbox started here ends with this process: its tokens stay in memory
    for _, r in ipairs(store.list()) do assert.is_not.equal(sb.url, r.host) end
    local remote = process.sandbox {"--products", "300", "--stores", "10"}
    local ok, err = pcall(function()
      auth.service {base_url = remote.url, client_id = "kapi-sandbox", client_secret = "sandbox-secret"}:token()
    end)
    remote.stop()
    assert(ok, err)
    assert.equal("700", mode(store.directory))
    local stored = store.list()
    assert.equal(1, #stored)
    assert.equal(remote.url, stored[1].host)
    for _, r in ipairs(stored) do
      assert.equal("600", mode(store.directory .. "/" .. r.key .. ".json"))
    end
  end)

  it("are never sent over plain HTTP to anything but loopback", function()
    local a = auth.service {base_url = "http://example.test", client_id = "x", client_secret = "y", scopes = {}}
    local ok, err = pcall(a.token, a)
    assert.is_false(ok)
    assert.matches("refusing to send credentials over plain http://", tostring(err))
  end)
end)

describe("customer login and refresh", function()
  it("runs the login flow with PKCE and stores the tokens", function()
    local record = log_in()
    assert.same({"cart.basic:write", "profile.compact"}, record.scopes)
    local c = customer()
    local items = {items = {{upc = "0001111041700", quantity = 1}}}
    assert.equal(204, http.put(sb.url .. "/v1/cart/add", {auth = c, json = items}).status)
  end)

  it("rejects a callback with the wrong state and waits for the right one", function()
    local rejected
    local record = log_in(function(callback)
      local bad = callback:gsub("state=[^&]+", "state=forged")
      rejected = http.get(bad, {raise = false}).status
    end)
    assert.equal(400, rejected)
    assert.is_string(record.refresh_token)
  end)

  it("says access_denied in words", function()
    http.post(sb.url .. "/sandbox/consent", {json = {grant = false}})
    local ok, err = pcall(log_in)
    assert.is_false(ok)
    assert.matches("login refused: the customer did not give kapi access %(access_denied", tostring(err))
  end)

  it("rotates the refresh token, storing the new one; the old one is refused", function()
    local first = log_in().refresh_token
    local c = customer()
    c:renew() -- as after a 401: refresh now
    c:token()
    local stored = store.read(c.key)
    assert.not_equal(first, stored.refresh_token)
    local reuse = http.post(sb.url .. "/v1/connect/oauth2/token", {raise = false,
      headers = {Authorization = "Basic " .. require("kapi.core.crypto").base64("kapi-sandbox:sandbox-secret")},
      form = {grant_type = "refresh_token", refresh_token = first}})
    assert.equal("invalid refresh_token", reuse:json().error_description)
  end)

  it("tells the user to log in again when the refresh token is refused", function()
    log_in()
    local c = customer()
    local record = store.read(c.key)
    record.refresh_token, record.expires_at = "spent", 0
    store.write(c.key, record)
    local ok, err = pcall(c.token, c)
    assert.is_false(ok)
    assert.matches("run: kapi auth login", tostring(err))
  end)

  it("says to log in when nobody has", function()
    local ok, err = pcall(function() customer():token() end)
    assert.is_false(ok)
    assert.matches("no customer is logged in; run: kapi auth login", tostring(err))
  end)
end)

describe("1WorldSync HMAC signatures", function()
  it("match the openssl CLI over the path and query exactly as sent", function()
    local seen
    local srv <close> = kapi.server.listen {handler = function(req)
      seen = req
      return {body = "ok"}
    end}
    local signer = auth.oneworldsync {app_id = "kapisbx1", secret = "s3cret key", gln = "0614141000005"}
    http.post(srv.url .. "/V1/product/fetch", {auth = signer, json = {},
      query = {{"pageSize", "10"}, {"q", "a b&c/d:é"}}})
    local signed = seen.raw_path .. "?" .. seen.raw_query
    assert.matches("timestamp=%d%d%d%d%-%d%d%-%d%dT%d%d%%3A%d%d%%3A%d%dZ", seen.raw_query)
    assert.matches("q=a%%20b%%26c%%2Fd%%3A%%C3%%A9", seen.raw_query)
    local r = process.sh("openssl dgst -sha256 -binary -hmac 's3cret key' | openssl base64 -A", {stdin = signed})
    assert.equal(r.stdout, seen.headers.hashcode)
    assert.equal("kapisbx1", seen.headers.appid)
    assert.equal("0614141000005", seen.headers.gln)
  end)

  it("are accepted by the sandbox's Content1 API", function()
    local signer = auth.oneworldsync {app_id = "kapisbx1", secret = "sandbox-hmac-secret"}
    assert.equal(2000, http.post(sb.url .. "/V1/product/count", {auth = signer, json = {}}):json().count)
  end)
end)

describe("credentials", function()
  it("warn when the config file holds a secret others can read", function()
    local config = process.write(dir .. "/config.lua",
      'return {env = "prod", kroger = {client_id = "id", client_secret = "not-to-be-shown"}}')
    os.execute("chmod 644 " .. process.quote(config))
    local r = process.kapi_run({"-e", "print(require('kapi.config').kroger().client_id)"},
                               {env = {KAPI_CONFIG = config}})
    assert.equal("id\n", r.stdout)
    assert.matches("holds a secret and others can read it; run: chmod 600", r.stderr)
    assert.not_matches("not%-to%-be%-shown", r.stderr)
    os.execute("chmod 600 " .. process.quote(config))
    r = process.kapi_run({"-e", "require('kapi.config').kroger()"}, {env = {KAPI_CONFIG = config}})
    assert.equal("", r.stderr)
  end)

  it("name what is missing for a real environment: a setup to do, status 2", function()
    local r = process.kapi_run({"auth", "token", "--env", "prod"}, {env = {HOME = dir, XDG_CONFIG_HOME = dir}})
    assert.equal(2, r.status)
    assert.matches("no Kroger credentials for prod: set KROGER_CLIENT_ID and KROGER_CLIENT_SECRET", r.stderr)
  end)
end)
