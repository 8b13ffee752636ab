-- The sandbox: an offline Kroger (and, as it grows, 1WorldSync) service on
-- loopback, for development, demos and tests, as stripe-mock is for Stripe.
-- docs/sandbox.md describes what it serves.
local core = require "kapi.core"
local server = require "kapi.server"
local catalog = require "kapi.sandbox.catalog"
local oauth = require "kapi.sandbox.oauth"
local kroger = require "kapi.sandbox.kroger"
local content1 = require "kapi.sandbox.content1"
local items = require "kapi.sandbox.items"
local faults = require "kapi.sandbox.faults"
local partner = require "kapi.sandbox.partner"
local doc = require "kapi.doc"
local errors = require "kapi.errors"

local M = {}

--- The state of one sandbox: its data, tokens and switches.
function M.new_state(opts)
  opts = opts or {}
  local state = {
    catalog = catalog.build {seed = opts.seed, products = opts.products, stores = opts.stores},
    clients = oauth.clients(),
    token_ttl = opts.token_ttl or 1800,
    tokens = {}, refresh_tokens = {}, codes = {},
    deny_consent = opts.deny_consent or false,
    redirect_uri = opts.redirect_uri,
    customer = {id = "c9f8e7d6-0000-4000-8000-000000000001", firstName = "Sandy", lastName = "Box",
                email = "sandy.box@example.com", card = "40012345678"},
    cart = {},
    match_memo = {}, match_memo_size = 0,
    now = core.now,
  }
  function state.now_ms() return os.time() * 1000 end
  state.clock = os.time
  state.content1 = content1.new_state(opts)
  content1.init(state)
  state.items = items.new_state(opts)
  items.init(state)
  state.partner = partner.new_state(state.catalog, opts)
  faults.init(state, opts)
  state.daily_limits = opts.daily_limits and require("kapi.limits").parse(opts.daily_limits) or nil
  return state
end

local admin = {}

-- POST /sandbox/consent {"grant": false}: the authorize endpoint answers
-- access_denied until consent is granted again.
function admin.consent(state, req)
  local ok, body = pcall(require("kapi.json").decode, req.body)
  state.deny_consent = ok and type(body) == "table" and body.grant == false
  return {status = 204}
end

-- POST /sandbox/tokens/expire: every access token expires at once.
function admin.expire(state)
  for token in pairs(state.tokens) do oauth.expire(state, token) end
  return {status = 204}
end

local routes = {
  {"POST", "^/sandbox/consent$", admin.consent},
  {"POST", "^/sandbox/tokens/expire$", admin.expire},
}
for _, list in ipairs {kroger.routes, partner.routes, content1.routes} do
  for _, route in ipairs(list) do routes[#routes + 1] = route end
end
-- Item Management is 1WorldSync's too: signed as Content1 calls are.
for _, route in ipairs(items.routes) do
  local handler = route[3]
  routes[#routes + 1] = {route[1], route[2], function(state, req, ...)
    local denied = content1.verify(state, req)
    if denied then return denied end
    return handler(state, req, ...)
  end}
end

local function method_allowed(route_method, method)
  if type(route_method) == "table" then return route_method[method] end
  return route_method == method
end

--- Finds the handler for a request: the response. A route's pattern has
--- at most one capture, passed to its handler.
function M.route(state, req)
  local path_matched = false
  for _, route in ipairs(routes) do
    local match = req.path:match(route[2])
    if match then
      if method_allowed(route[1], req.method) then
        return route[3](state, req, route[2]:find("(", 1, true) and match or nil)
      end
      path_matched = true
    end
  end
  if path_matched then return {status = 405, json = {errors = {code = "API-4050-405", reason = "Method not allowed",
                                                              timestamp = state.now_ms()}}} end
  return {status = 404, json = {errors = {code = "API-4040-404", reason = "Not found: " .. req.path,
                                          timestamp = state.now_ms()}}}
end

local function close(self)
  items.stop(self.state)
  self.server:close()
end

--- Starts a sandbox on loopback: start{port = 0, seed = 1, products =
--- 20000, stores = 300, items = 2000, token_ttl = 1800, review_delay = 2,
--- faults = "5xx=0.05,...", daily_limits = "products=500,...", verbose = false, tls_cert, tls_key}
--- -> sandbox with .url, .state,
--- .credentials and :close().
-- The options start takes, and their kinds; the limits are kapi
-- sandbox's (scripts/kapi/commands/sandbox.lua).
local OPTIONS = {port = "number", seed = "number", products = "number", stores = "number", items = "number",
                 coupons = "number", token_ttl = "number", review_delay = "number", faults = "string",
                 verbose = "boolean", deny_consent = "boolean", redirect_uri = "string", tls_cert = "string",
                 tls_key = "string", daily_limits = "string"}

local function check_options(opts)
  errors.check(opts, "table?", "sandbox.start: opts")
  if opts == nil then return {} end
  errors.check_options(opts, OPTIONS, "sandbox.start")
  local whole, number = errors.check_whole, errors.check_number
  whole(opts.port, 0, 65535, "sandbox.start: port", true)
  whole(opts.seed, 0, 2 ^ 53, "sandbox.start: seed", true)
  whole(opts.products, 1, 1000000, "sandbox.start: products", true)
  whole(opts.stores, 1, 100000, "sandbox.start: stores", true)
  whole(opts.items, 0, 1000000, "sandbox.start: items", true)
  whole(opts.coupons, 0, 100000, "sandbox.start: coupons", true)
  number(opts.token_ttl, 1, 30 * 86400, "sandbox.start: token_ttl", true)
  number(opts.review_delay, 0, 7 * 86400, "sandbox.start: review_delay", true)
  if opts.daily_limits then
    local ok, why = require("kapi.limits").parse(opts.daily_limits)
    if not ok then errors.usage(("sandbox.start: daily_limits %s: %s"):format(errors.excerpt(opts.daily_limits), why), 0) end
  end
  if opts.faults then
    local ok, why = faults.parse(opts.faults)
    if not ok then errors.usage(("sandbox.start: faults %s: %s"):format(errors.excerpt(opts.faults), why), 0) end
  end
  return opts
end

function M.start(opts)
  opts = check_options(opts)
  local state = M.new_state(opts)
  local function handle(req) return M.route(state, req) end
  local function handler(req)
    local started = opts.verbose and core.now()
    local fault = faults.pick(state, req)
    local res = fault and faults.apply(state, req, fault, handle) or handle(req)
    if opts.verbose then
      io.stderr:write(("sandbox: %s %s -> %s (%.1f ms)%s\n"):format(req.method, req.path,
        res.reset and "reset" or tostring(res.status or 200), (core.now() - started) * 1000,
        fault and (" fault " .. fault.kind) or ""))
    end
    return res
  end
  local srv = server.listen {handler = handler, port = opts.port, tls_cert = opts.tls_cert, tls_key = opts.tls_key}
  -- It ends with this process: tokens for it are of no use to another, and
  -- are never written to the user's token store.
  require("kapi.auth.store").in_memory(srv.url)
  return setmetatable({
    url = srv.url, port = srv.port, state = state, server = srv,
    credentials = {client_id = "kapi-sandbox", client_secret = "sandbox-secret",
                   public_client_id = "kapi-sandbox-public", public_client_secret = "sandbox-public-secret",
                   content1_app_id = content1.APP_ID, content1_secret = content1.SECRET},
  }, {__index = {close = close}, __close = close})
end

doc.declare("kapi.sandbox.start", M.start, [[
kapi.sandbox.start{port = 0, seed = 1, products = 20000, stores = 300, token_ttl = 1800} -> sandbox
Starts the offline Kroger sandbox in this process, on a free loopback port:
sandbox.url is its base URL, sandbox.credentials its test client id and
secret. The same seed always gives the same data. See docs/sandbox.md.
Example:
  local sb <close> = kapi.sandbox.start{products = 2000}
  print(sb.url, sb.credentials.client_id)]])

return M
