-- kapi auth login|status|logout|token
local M = {summary = "Log in to Kroger as a customer, and manage stored tokens"}

local DEFAULT_SCOPES = {"cart.basic:write", "profile.compact"}

function M.arguments(parser)
  parser:command_target("action")
  parser:require_command(true)
  parser:usage("Usage: kapi auth COMMAND [options]   (COMMAND: login, status, limits, logout or token)")
  local login = parser:command("login", "Log in as a customer (authorization code with PKCE)")
  login:option("--env", "sandbox, ce or prod (default: KAPI_ENV, the config file, or by credentials)")
    :choices {"sandbox", "ce", "prod"}
  login:option("--scope", "A scope to ask for (repeatable)"):count("*")
  login:option("--port", "Port of the local callback (default: from KROGER_REDIRECT_URI, else free)")
    :convert(require("kapi.parsing").whole_number("--port", 1, 65535))
  login:flag("--no-browser", "Only print the address to open")
  local status = parser:command("status", "Show the stored logins and tokens (never the tokens themselves)")
  status:option("--env", "Only this environment (prod, ce, or a sandbox's address)")
  status:flag("--json", "Print a JSON array of {env, kind, client_id, scopes, state, expires_at, renewable}")
  local limits = parser:command("limits", "Show the calls made today against the public API's daily budgets")
  limits:flag("--json", "Print a JSON array of {env, client_id, endpoint, used, budget, resets_at}")
  local logout = parser:command("logout", "Forget the stored tokens of an environment")
  logout:option("--env", "sandbox, ce or prod"):choices {"sandbox", "ce", "prod"}
  local token = parser:command("token", "Print an access token, for piping into other tools")
  token:option("--env", "sandbox, ce or prod"):choices {"sandbox", "ce", "prod"}
  token:flag("--service", "A service token (client credentials) instead of the customer's")
  token:option("--scope", "Scopes of the service token (repeatable)"):count("*")
end

local function host_of(url) return url:match("^(%a+://[^/]+)") end

local function when(t)
  local left = t - os.time()
  if left <= 0 then return "expired" end
  if left < 120 then return ("expires in %d s"):format(left) end
  if left < 7200 then return ("expires in %d min"):format(left // 60) end
  return ("expires in %d h"):format(left // 3600)
end

local actions = {}

-- Where this command talks to Kroger; never the sandbox started inside
-- this process, which ends with it: a login or a token there would be
-- lost the moment they were printed.
local function kroger_of(config, args, action)
  if config.in_process_sandbox(args.env) then
    require("kapi.errors").usage(("kapi auth %s needs a service that outlives this command: configure "
      .. "Kroger credentials, or start `kapi sandbox` and set KAPI_SANDBOX_URL to its address"):format(action), 0)
  end
  return config.kroger(args.env)
end

function actions.login(args, config, auth)
  local kroger = kroger_of(config, args, "login")
  local scopes = #args.scope > 0 and args.scope or DEFAULT_SCOPES
  local record = require("kapi.auth.login").login {
    base_url = kroger.base_url, client_id = kroger.client_id, client_secret = kroger.client_secret,
    scopes = scopes, port = args.port, redirect_uri = kroger.redirect_uri, browser = not args.no_browser,
  }
  io.stderr:write(("Logged in to %s (%s) as a customer; scopes: %s; %s.\n"):format(
    record.host, kroger.env, table.concat(record.scopes, " "), when(record.expires_at)))
  return 0
end

-- The environment a token's host belongs to: prod, ce, or the address of
-- another service (a kapi sandbox).
local function env_of(config, host)
  for env, url in pairs(config.KROGER) do
    if url == host then return env end
  end
  return host
end

-- What state a stored token is in, for people; nil for one that is of no
-- use to anybody (an expired service token: a new one is fetched anyway).
local function token_state(r)
  local left = (r.expires_at or 0) - os.time()
  if left > 0 then return when(r.expires_at) .. (r.refresh_token and ", renewable" or "") end
  if r.kind == "customer" and r.refresh_token then return "access token expired; renewed on next use" end
  if r.kind == "customer" then return "expired: log in again (kapi auth login)" end
end

function actions.status(args, config, auth)
  if args.env and not (config.KROGER[args.env] or args.env == "sandbox" or args.env:match("^https?://[^/]+$")) then
    require("kapi.errors").usage(("--env %s: expected prod, ce, sandbox or a sandbox's address (http://HOST:PORT)")
                                 :format(require("kapi.errors").excerpt(args.env)), 0)
  end
  local rows = {}
  for _, r in ipairs(auth.store.list()) do
    local env, state = env_of(config, r.host or "?"), token_state(r)
    if not state then
      auth.store.remove(r.key)
    elseif not args.env or env == args.env or r.host == args.env or (args.env == "sandbox" and env:match("^http")) then
      rows[#rows + 1] = {env = env, kind = r.kind or "?", client_id = r.client_id or "?",
                         scopes = table.concat(r.scopes or {}, " "), state = state,
                         expires_at = r.expires_at, renewable = r.refresh_token ~= nil}
    end
  end
  table.sort(rows, function(a, b)
    if a.env ~= b.env then return a.env > b.env end -- prod, then ce, then other services
    return a.kind < b.kind
  end)
  if args.json then
    io.write(require("kapi.json").encode(require("kapi.json").array(rows)), "\n")
    return 0
  end
  if #rows == 0 then
    io.stderr:write(("kapi: no stored tokens%s; log in with: kapi auth login\n")
                    :format(args.env and (" for " .. args.env) or ""))
    return 0
  end
  local recipe = require "kapi.recipe"
  io.write(recipe.render_table(rows, {
    {key = "env", title = "ENV"}, {key = "kind", title = "KIND"}, {key = "client_id", title = "CLIENT"},
    {key = "scopes", title = "SCOPES", wrap = true}, {key = "state", title = "STATE", wrap = true},
  }, {width = recipe.width(1)}))
  return 0
end

function actions.limits(args, config)
  local rows = {}
  for _, client in ipairs(require("kapi.limits").stored()) do
    for _, u in ipairs(client.usage) do
      rows[#rows + 1] = {env = env_of(config, client.host), client_id = client.client_id, endpoint = u.endpoint,
                         used = u.used, budget = u.budget, resets_at = u.resets_at,
                         resets = os.date("%Y-%m-%d %H:%M", u.resets_at)}
    end
  end
  if args.json then
    for _, r in ipairs(rows) do r.resets = nil end
    io.write(require("kapi.json").encode(require("kapi.json").array(rows), {sorted = true}), "\n")
    return 0
  end
  if #rows == 0 then
    io.stderr:write("kapi: no calls counted today (partner apps and the built-in sandbox are not counted)\n")
    return 0
  end
  local recipe = require "kapi.recipe"
  io.write(recipe.render_table(rows, {
    {key = "env", title = "ENV"}, {key = "client_id", title = "CLIENT"}, {key = "endpoint", title = "ENDPOINT"},
    {key = "used", title = "USED", right = true}, {key = "budget", title = "BUDGET", right = true},
    {key = "resets", title = "RESETS"},
  }, {width = recipe.width(1)}))
  return 0
end

function actions.logout(args, config, auth)
  local kroger = kroger_of(config, args, "logout")
  local host, removed = host_of(kroger.base_url), 0
  for _, r in ipairs(auth.store.list()) do
    if r.host == host and r.client_id == kroger.client_id then
      auth.store.remove(r.key) -- raises when the file stays: then nothing is said to be gone
      removed = removed + 1
    end
  end
  if removed == 0 then
    io.stderr:write(("kapi: no stored tokens for %s (%s)\n"):format(host, kroger.env))
  else
    io.stderr:write(("Removed %d stored token%s for %s (%s).\n"):format(removed, removed == 1 and "" or "s",
                                                                         host, kroger.env))
  end
  return 0
end

function actions.token(args, config, auth)
  local kroger = kroger_of(config, args, "token")
  local authenticator
  if args.service then
    authenticator = auth.service {base_url = kroger.base_url, client_id = kroger.client_id,
                                  client_secret = kroger.client_secret, scopes = args.scope}
  else
    authenticator = auth.customer {base_url = kroger.base_url, client_id = kroger.client_id,
                                   client_secret = kroger.client_secret}
  end
  io.write(authenticator:token(), "\n")
  return 0
end

function M.run(args)
  if args.scope then args.scope = require("kapi.recipe").values(args.scope) end -- --scope A,B as --scope A --scope B
  return actions[args.action](args, require "kapi.config", require "kapi.auth")
end

return M
