-- The sandbox's OAuth2 server, as domain.md §2 describes Kroger's: the
-- token endpoint with its three grants (Basic auth always, PKCE verified
-- when a challenge was sent, single-use rotating refresh tokens), the
-- authorize endpoint (consents at once, or answers access_denied), and the
-- access-token check every API endpoint uses.
local crypto = require "kapi.core.crypto"
local http = require "kapi.http"

local M = {}

M.PUBLIC_SCOPES = {"product.compact", "cart.basic:write", "profile.compact"}
-- A partner app has the partner scopes of the seed's overview, not the
-- public product.compact: a client asking for that on a partner app is
-- asking for the wrong one (products-partner names product.basic).
M.PARTNER_SCOPES = {"product.basic", "product.personalized", "coupons.basic",
                    "coupon.personalized:rw", "cart.basic", "cart.basic:write", "cart.basic:rw",
                    "collection.basic", "collection.basic:rw", "delivery.basic", "delivery.basic:rw",
                    "profile.compact", "profile.name", "profile.basic", "profile.loyalty",
                    "profile.full", "profile.exists"}

--- The applications the sandbox knows: a partner app (every scope) and a
--- public one (public scopes, products offset up to 250).
function M.clients()
  local function set(list)
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
  end
  return {
    ["kapi-sandbox"] = {secret = "sandbox-secret", scopes = set(M.PARTNER_SCOPES), partner = true},
    ["kapi-sandbox-public"] = {secret = "sandbox-public-secret", scopes = set(M.PUBLIC_SCOPES)},
  }
end

local function token_string()
  return crypto.base64url(crypto.random(24))
end

local function auth_error(err, description)
  return {status = 400, json = {error = err, error_description = description}}
end

local function basic_client(state, req)
  local encoded = (req.headers.authorization or ""):match("^[Bb]asic%s+(%S+)$")
  local decoded = encoded and crypto.base64_decode(encoded)
  local id, secret = (decoded or ""):match("^([^:]*):(.*)$")
  local client = id and state.clients[id]
  if not client or not crypto.equal(client.secret, secret) then return nil end
  return id, client
end

local function parse_scopes(text)
  local out = {}
  for scope in (text or ""):gmatch("%S+") do out[#out + 1] = scope end
  return out
end

local function check_scopes(client, scopes)
  for _, scope in ipairs(scopes) do
    if not client.scopes[scope] then return false end
  end
  return true
end

-- How many authorization codes, access tokens and refresh tokens the
-- sandbox keeps at most: a long-running `kapi sandbox` shared by tests
-- and demos must not grow with every login it ever saw.
M.KEEP = {codes = 10000, tokens = 50000, refresh_tokens = 50000}

-- Stores value under key in state[kind], forgetting on the way the
-- oldest entries that have expired, were used up, or are beyond what is
-- kept. Entries of a kind expire in the order they were made (one
-- lifetime for all), so a queue in that order finds them in amortised
-- constant time.
local function remember(state, kind, key, value)
  local entries = state[kind]
  entries[key] = value
  state.queues = state.queues or {}
  local queue = state.queues[kind]
  if not queue then
    queue = {first = 1, last = 0}
    state.queues[kind] = queue
  end
  queue.last = queue.last + 1
  queue[queue.last] = key
  local now, keep = state.now(), state.keep and state.keep[kind] or M.KEEP[kind]
  while queue.first <= queue.last do
    local oldest = queue[queue.first]
    local entry = entries[oldest]
    local beyond = queue.last - queue.first + 1 > keep
    if entry and not beyond and not (entry.expires and entry.expires <= now) then break end
    if entry and entry ~= value then entries[oldest] = nil end
    queue[queue.first] = nil
    queue.first = queue.first + 1
  end
end

local function issue(state, client_id, scopes, customer, with_refresh)
  local access = token_string()
  remember(state, "tokens", access, {client = client_id, scopes = scopes, customer = customer,
                                     expires = state.now() + state.token_ttl})
  local body = {access_token = access, token_type = "bearer", expires_in = state.token_ttl}
  if with_refresh then
    local refresh = token_string()
    remember(state, "refresh_tokens", refresh, {client = client_id, scopes = scopes, customer = customer})
    body.refresh_token = refresh
  end
  if #scopes > 0 then body.scope = table.concat(scopes, " ") end
  return {status = 200, json = body, headers = {["Cache-Control"] = "no-store"}}
end

local grants = {}

function grants.client_credentials(state, client_id, client, form)
  local scopes = parse_scopes(form.scope)
  if not check_scopes(client, scopes) then return auth_error("invalid_scope", "invalid scope") end
  return issue(state, client_id, scopes, nil, false)
end

function grants.authorization_code(state, client_id, _, form)
  local grant = state.codes[form.code or ""]
  state.codes[form.code or ""] = nil -- a code is good for one attempt
  if not grant or grant.client ~= client_id or grant.expires < state.now() then
    return auth_error("invalid_request", "invalid code")
  end
  if form.redirect_uri ~= grant.redirect_uri then
    return auth_error("invalid_request", "redirect_uri mismatch")
  end
  if grant.challenge then
    local verifier = form.code_verifier or ""
    if not crypto.equal(crypto.base64url(crypto.sha256(verifier)), grant.challenge) then
      return auth_error("invalid_request", "invalid code_verifier")
    end
  end
  return issue(state, client_id, grant.scopes, grant.customer, true)
end

function grants.refresh_token(state, client_id, _, form)
  local grant = state.refresh_tokens[form.refresh_token or ""]
  if not grant or grant.client ~= client_id then
    return auth_error("invalid_request", "invalid refresh_token")
  end
  state.refresh_tokens[form.refresh_token] = nil -- single use: it rotates
  return issue(state, client_id, grant.scopes, grant.customer, true)
end

--- POST /v1/connect/oauth2/token
function M.token(state, req)
  state.token_requests = (state.token_requests or 0) + 1
  local client_id, client = basic_client(state, req)
  if not client_id then return auth_error("unauthorized", "invalid credentials") end
  local form = {}
  for _, pair in ipairs(http.decode_query(req.body)) do form[pair[1]] = pair[2] end
  local grant = grants[form.grant_type or ""]
  if not grant then return auth_error("unsupported_grant_type", "invalid grant_type") end
  return grant(state, client_id, client, form)
end

local function loopback_callback(uri)
  return uri and (uri:match("^http://127%.0%.0%.1:%d+/") or uri:match("^http://localhost:%d+/")) ~= nil
end

-- 301, the status the auth document gives the authorize endpoint.
local function redirect(uri, params)
  return {status = 301, headers = {Location = uri .. (uri:find("?", 1, true) and "&" or "?")
                                              .. http.encode_query(params)}}
end

--- GET /v1/connect/oauth2/authorize: consents at once (the sandbox has one
--- customer), or refuses when state.deny_consent is set.
function M.authorize(state, req)
  local q = req.query
  local client = state.clients[q.client_id or ""]
  if not client then return auth_error("invalid_request", "invalid client_id") end
  -- A redirect_uri is required: with none of the sandbox's own, nil would
  -- match nil and the consent be sent nowhere (found by fuzzing).
  if type(q.redirect_uri) ~= "string" or q.redirect_uri == ""
     or (not loopback_callback(q.redirect_uri) and q.redirect_uri ~= state.redirect_uri) then
    return auth_error("invalid_request", "invalid redirect_uri")
  end
  if q.response_type ~= "code" then return auth_error("unsupported_response_type", "response_type must be code") end
  local scopes = parse_scopes(q.scope)
  if #scopes == 0 or not check_scopes(client, scopes) then
    return auth_error("invalid_scope", "invalid scope")
  end
  if q.code_challenge and q.code_challenge_method ~= "S256" then
    return auth_error("invalid_request", "code_challenge_method must be S256")
  end
  if state.deny_consent then
    return redirect(q.redirect_uri, {{"error", "access_denied"},
                                     {"error_description", "The customer did not consent"},
                                     {"state", q.state}})
  end
  local code = token_string()
  remember(state, "codes", code, {client = q.client_id, scopes = scopes, redirect_uri = q.redirect_uri,
                                  challenge = q.code_challenge, customer = state.customer,
                                  expires = state.now() + 600})
  return redirect(q.redirect_uri, {{"code", code}, {"state", q.state}})
end

local function unauthorized()
  return {status = 401, json = {errors = {error = "invalid_token",
                                          error_description = "The access token is invalid or has expired"}}}
end

local function forbidden(state)
  return {status = 403, json = {errors = {reason = "missing required scopes", code = "Forbidden",
                                          timestamp = state.now_ms()}}}
end

--- The grant behind the request's bearer token, or nil and the response
--- to send: 401 for a missing, unknown or expired token, 403 when none of
--- `scopes` (if given) was granted, or when a customer token is needed.
-- The public API's daily budgets, as Kroger enforces them: per client
-- and endpoint, the day starting at the first call; past it, 429 until
-- the day is over. Partner clients have none. (state.daily_limits:
-- kapi sandbox --daily-limits, else Kroger's published budgets.)
local function over_budget(state, req, grant)
  local client = state.clients[grant.client]
  if not client or client.partner then return nil end
  local limits = require "kapi.limits"
  local endpoint = limits.endpoint(req.path)
  local budget = endpoint and (state.daily_limits or {})[endpoint] or (endpoint and limits.BUDGETS[endpoint])
  if not budget then return nil end
  state.daily = state.daily or {}
  local key = grant.client .. " " .. endpoint
  local day, t = state.daily[key], os.time()
  if not day or t >= day.first + limits.DAY then
    day = {first = t, count = 0}
    state.daily[key] = day
  end
  if day.count >= budget then
    return {status = 429, headers = {["Content-Type"] = "application/json"},
            json = {errors = {reason = "rate limit exceeded", code = "API-4290-429", timestamp = state.now_ms()}}}
  end
  day.count = day.count + 1
end

local function granted(state, req, grant)
  local refused = over_budget(state, req, grant)
  if refused then return nil, refused end
  return grant
end

function M.check(state, req, scopes, customer)
  local token = (req.headers.authorization or ""):match("^[Bb]earer%s+(%S+)$")
  local grant = token and state.tokens[token]
  if not grant then return nil, unauthorized() end
  if grant.expires <= state.now() then
    state.tokens[token] = nil
    return nil, unauthorized()
  end
  if customer and not grant.customer then return nil, forbidden(state) end
  if scopes then
    for _, wanted in ipairs(scopes) do
      for _, have in ipairs(grant.scopes) do
        if have == wanted then return granted(state, req, grant) end
      end
    end
    return nil, forbidden(state)
  end
  return granted(state, req, grant)
end

--- Expires a token at once (the faults "expire" and tests use it).
function M.expire(state, token)
  if state.tokens[token] then state.tokens[token].expires = 0 end
end

return M
