-- Authentication: Kroger OAuth2 (service tokens with client credentials,
-- customer tokens from `kapi auth login` with rotating refresh tokens) and
-- 1WorldSync's HMAC signatures. An authenticator has :authorize(request),
-- called before each attempt, and may have :renew(response), called once
-- when a token turns out to be expired (kapi/http.lua).
local http = require "kapi.http"
local json = require "kapi.json"
local errors = require "kapi.errors"
local task = require "kapi.task"
local store = require "kapi.auth.store"
local doc = require "kapi.doc"

local M = {store = store}

-- Secrets live here, not in the objects: printing an authenticator (the
-- REPL shows a table's fields), logging it or walking its fields can then
-- never show one. Keys are the objects, weakly.
local secrets = setmetatable({}, {__mode = "k"})

--- The secret an authenticator was made with (for kapi's own clients).
function M.secret_of(object) return secrets[object] end

M.TOKEN_PATH = "/v1/connect/oauth2/token"
M.RENEW_BEFORE = 60 -- seconds before expiry a token is renewed

local function crypto() return require "kapi.core.crypto" end

local function auth_error(message, fields)
  return errors.new("auth", message, fields)
end

-- Headers with one more, whatever form they came in.
local function with_header(headers, name, value)
  local out = {}
  if headers and headers[1] ~= nil then
    for i, pair in ipairs(headers) do out[i] = pair end
    out[#out + 1] = {name, value}
    return out
  end
  for k, v in pairs(headers or {}) do out[k] = v end
  out[name] = value
  return out
end
M.with_header = with_header

local function host_of(url) return url:match("^(%a+://[^/]+)") end

local function basic(client_id, client_secret)
  return "Basic " .. crypto().base64(client_id .. ":" .. client_secret)
end

-- POSTs a token request; the decoded answer, or raises an auth error in
-- plain words.
local function token_call(base_url, client_id, client_secret, form)
  local res = http.post(base_url .. M.TOKEN_PATH, {headers = {Authorization = basic(client_id, client_secret)},
                                                    form = form, raise = false, retry = 2})
  local body = (res.status == 200 and pcall(json.decode, res.body)) and res:json() or nil
  if body and body.access_token then return body end
  local parsed = http.parse_error_body(res.body)
  local code = parsed.code or tostring(res.status)
  local words = {
    unauthorized = "the client id or secret was refused",
    invalid_scope = "the app is not registered for these scopes",
    unsupported_grant_type = "the token endpoint refused the grant type",
  }
  error(auth_error(("token request failed: %s (%s%s)"):format(words[code] or parsed.reason or "no token in the answer",
                                                               code, parsed.reason and (": " .. parsed.reason) or ""),
                   {status = res.status, code = code, reason = parsed.reason}), 0)
end

local function expires_at(body)
  return os.time() + (math.tointeger(body.expires_in) or 1800)
end

local function fresh(record)
  return record and record.access_token and record.expires_at - M.RENEW_BEFORE > os.time()
end

-- Runs fetch(self) in one task however many tasks ask at once: they all
-- wait for it and get its token or its error (single-flight).
local function single_flight(self, fetch)
  if not self.inflight then
    self.inflight = task.spawn(function() return fetch(self) end)
  end
  local inflight = self.inflight
  local ok, token = pcall(inflight.wait, inflight)
  if self.inflight == inflight then self.inflight = nil end
  if not ok then error(token, 0) end
  return token
end

-- Service tokens -------------------------------------------------------------------

local Service = {}
Service.__index = Service
Service.__tostring = function(self) return ("service token (%s, %s)"):format(self.base_url, self.client_id) end

--- service{base_url, client_id, client_secret, scopes = {...}} -> authenticator
function M.service(opts)
  errors.check(opts, "table", "auth.service: opts")
  errors.check(opts.base_url, "string", "auth.service: base_url")
  errors.check(opts.client_id, "string", "auth.service: client_id")
  errors.check(opts.client_secret, "string", "auth.service: client_secret")
  errors.check(opts.scopes, "table?", "auth.service: scopes")
  local self = setmetatable({base_url = opts.base_url, client_id = opts.client_id, scopes = opts.scopes or {},
                             persist = opts.persist ~= false, rejected = {}}, Service)
  secrets[self] = opts.client_secret
  self.key = store.key(host_of(self.base_url), self.client_id, "service", self.scopes)
  return self
end

function Service:fetch()
  local body = token_call(self.base_url, self.client_id, secrets[self],
                          {grant_type = "client_credentials", scope = table.concat(self.scopes, " ")})
  local record = {kind = "service", host = host_of(self.base_url), client_id = self.client_id,
                  scopes = self.scopes, access_token = body.access_token, expires_at = expires_at(body)}
  if self.persist then store.write(self.key, record) end
  self.cached = record
  return record.access_token
end

--- The access token: cached, from the store, or fetched; concurrent callers
--- share one fetch (single-flight).
function Service:token()
  if fresh(self.cached) then return self.cached.access_token end
  if not self.inflight and self.persist then
    local stored = store.read(self.key)
    if fresh(stored) and not self.rejected[stored.access_token] then
      self.cached = stored
      return stored.access_token
    end
  end
  return single_flight(self, Service.fetch)
end

function Service:authorize(req)
  errors.check(req, "table", "authenticator:authorize: request")
  req.headers = with_header(req.headers, "Authorization", "Bearer " .. self:token())
end

--- Called on a 401 invalid_token for the request req: drop the token it
--- carried; the next attempt fetches a new one. Only that token is
--- dropped: a request that was in flight with it must not throw away
--- the token another one has fetched since, nor a token that another kapi
--- process stored since; and the dropped token is never taken from the
--- store again (another process may still hold it, and write it back).
-- The bearer token a request carried, whichever form its headers take.
local function bearer_of(req)
  if type(req) ~= "table" then return nil end
  return http.authorization_of(req):match("^Bearer (.+)$")
end

-- Tokens refused lately, remembered so that none is taken up again; the
-- last few are enough.
local REJECTED_KEPT = 16

function Service:renew(_, req)
  local used = bearer_of(req)
  if not used then -- no request to tell which: drop what there is
    self.cached = nil
    if self.persist then store.remove(self.key) end
    return
  end
  local rejected = self.rejected
  if not rejected[used] then
    rejected[#rejected + 1], rejected[used] = used, true
    if #rejected > REJECTED_KEPT then rejected[table.remove(rejected, 1)] = nil end
  end
  if self.cached and self.cached.access_token == used then self.cached = nil end
  if self.persist then
    local stored = store.read(self.key)
    if stored and stored.access_token == used then store.remove(self.key) end
  end
end

-- Customer tokens ------------------------------------------------------------------

local Customer = {}
Customer.__index = Customer
Customer.__tostring = function(self) return ("customer token (%s, %s)"):format(self.base_url, self.client_id) end

--- customer{base_url, client_id, client_secret} -> authenticator for the
--- customer who logged in with `kapi auth login`.
function M.customer(opts)
  errors.check(opts, "table", "auth.customer: opts")
  errors.check(opts.base_url, "string", "auth.customer: base_url")
  errors.check(opts.client_id, "string", "auth.customer: client_id")
  errors.check(opts.client_secret, "string", "auth.customer: client_secret")
  local self = setmetatable({base_url = opts.base_url, client_id = opts.client_id, scopes = opts.scopes}, Customer)
  secrets[self] = opts.client_secret
  self.key = store.key(host_of(self.base_url), self.client_id, "customer")
  return self
end

local function login_hint(scopes)
  return "run: kapi auth login" .. (scopes and #scopes > 0 and (" --scope " .. table.concat(scopes, " --scope ")) or "")
end

-- Refreshes under the store's lock: re-read first, since another process
-- may have refreshed (and so spent the refresh token) meanwhile; write the
-- new refresh token before the new access token is used.
function Customer:refresh()
  local lock <close> = store.lock(self.key)
  local stored = store.read(self.key)
  if not stored or not stored.refresh_token then
    error(auth_error("no customer is logged in; " .. login_hint(self.scopes), {setup = true}), 0)
  end
  if fresh(stored) and not self.force then
    self.cached = stored
    return stored.access_token
  end
  self.force = false
  local ok, body = pcall(token_call, self.base_url, self.client_id, secrets[self],
                         {grant_type = "refresh_token", refresh_token = stored.refresh_token})
  if not ok then
    if errors.is(body, "auth") and body.code == "invalid_request" then
      error(auth_error("the customer login has expired or its refresh token was used elsewhere; "
                       .. login_hint(stored.scopes), {code = body.code, setup = true}), 0)
    end
    error(body, 0)
  end
  local record = {kind = "customer", host = stored.host, client_id = self.client_id, scopes = stored.scopes,
                  access_token = body.access_token, expires_at = expires_at(body),
                  refresh_token = body.refresh_token or stored.refresh_token}
  -- The service has spent the old refresh token: this command goes on
  -- with the new one even when it cannot be kept for the next.
  self.cached = record
  local kept, why = pcall(store.write, self.key, record)
  if not kept then
    require("kapi.log").warn(("the renewed customer login could not be saved (%s); this command goes on, "
                              .. "the next will need: kapi auth login"):format(errors.message(why)))
  end
  return record.access_token
end

function Customer:token()
  if fresh(self.cached) and not self.force then return self.cached.access_token end
  return single_flight(self, Customer.refresh)
end

function Customer:authorize(req)
  errors.check(req, "table", "authenticator:authorize: request")
  req.headers = with_header(req.headers, "Authorization", "Bearer " .. self:token())
end

function Customer:renew()
  self.cached = nil
  self.force = true
end

--- Stores the tokens of a login (kapi auth login does this).
function M.store_login(base_url, client_id, body)
  local scopes = {}
  for scope in (body.scope or ""):gmatch("%S+") do scopes[#scopes + 1] = scope end
  local record = {kind = "customer", host = host_of(base_url), client_id = client_id, scopes = scopes,
                  access_token = body.access_token, expires_at = expires_at(body), refresh_token = body.refresh_token}
  store.write(store.key(record.host, client_id, "customer"), record)
  return record
end

-- 1WorldSync HMAC -----------------------------------------------------------------

local Signer = {}
Signer.__index = Signer
Signer.__tostring = function(self) return ("1WorldSync signer (%s)"):format(self.app_id) end

--- oneworldsync{app_id, secret, gln} -> authenticator that signs requests:
--- timestamp in the query; appid, hashcode (and gln) in the headers.
function M.oneworldsync(opts)
  errors.check(opts, "table", "auth.oneworldsync: opts")
  errors.check(opts.app_id, "string", "auth.oneworldsync: app_id")
  errors.check(opts.secret, "string", "auth.oneworldsync: secret")
  local self = setmetatable({app_id = opts.app_id, gln = opts.gln}, Signer)
  secrets[self] = opts.secret
  return self
end

--- Base64(HMAC-SHA256(secret, path + "?" + query)) of a URL as it is sent.
function M.hashcode(secret, url)
  local c = crypto()
  return c.base64(c.hmac_sha256(secret, url:match("^%a+://[^/]+(/.*)$") or url))
end

function Signer:authorize(req)
  errors.check(req, "table", "authenticator:authorize: request")
  errors.check(req.url, "string", "authenticator:authorize: request.url")
  local query = {}
  for _, pair in ipairs(http.query_pairs(req.query)) do
    if pair[1] ~= "timestamp" then query[#query + 1] = pair end -- a retry signs anew
  end
  query[#query + 1] = {"timestamp", os.date("!%Y-%m-%dT%H:%M:%SZ")}
  req.query = query
  local headers = with_header(req.headers, "appid", self.app_id)
  if self.gln then headers = with_header(headers, "gln", self.gln) end
  req.headers = with_header(headers, "hashcode", M.hashcode(secrets[self], http.full_url(req)))
end

doc.declare("kapi.auth.service", M.service, [[
kapi.auth.service{base_url, client_id, client_secret, scopes = {...}} -> authenticator
Kroger service tokens (client credentials): fetched once, kept in memory and
in the token store, renewed a minute before they expire; concurrent requests
share one token request. Pass it as `auth` to kapi.http.request.
Example:
  local auth = kapi.auth.service{base_url = url, client_id = id, client_secret = secret,
                                 scopes = {"product.compact"}}
  kapi.http.get(url .. "/v1/products", {auth = auth, query = {["filter.term"] = "milk"}})]])

doc.declare("kapi.auth.customer", M.customer, [[
kapi.auth.customer{base_url, client_id, client_secret} -> authenticator
The customer who logged in with `kapi auth login`: refreshes the access
token when needed, under a lock shared with other kapi processes, and stores
the new single-use refresh token before using the new access token.]])

doc.declare("kapi.auth.oneworldsync", M.oneworldsync, [[
kapi.auth.oneworldsync{app_id, secret, gln} -> authenticator
Signs 1WorldSync requests: adds `timestamp` to the query and sets `appid`,
`hashcode` (Base64 HMAC-SHA256 of the path and query exactly as sent) and
`gln` when given.]])

return M
