-- kapi auth login|status|logout|token
local M = {summary = "Log in to Kroger as a customer, and manage stored tokens"}

local DEFAULT_SCOPES = {"cart.basic:write", "profile.compact"}

function M.arguments(parser)
  parser:command_target("action")
  parser:require_command(true)
  local login = parser:command("login", "Log in as a customer (authorization code with PKCE)")
  login:option("--env", "sandbox, ce or prod (default: KAPI_ENV, the config file, or by credentials)")
  login:option("--scope", "A scope to ask for (repeatable)"):count("*")
  login:option("--port", "Port of the local callback (default: from KROGER_REDIRECT_URI, else free)")
    :convert(math.tointeger)
  login:flag("--no-browser", "Only print the address to open")
  local status = parser:command("status", "Show the stored logins and tokens (never the tokens)")
  status:option("--env", "Only this environment")
  local logout = parser:command("logout", "Forget the stored tokens of an environment")
  logout:option("--env", "sandbox, ce or prod")
  local token = parser:command("token", "Print an access token, for piping into other tools")
  token:option("--env", "sandbox, ce or prod")
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

function actions.login(args, config, auth)
  local kroger = config.kroger(args.env)
  local scopes = #args.scope > 0 and args.scope or DEFAULT_SCOPES
  local record = require("kapi.auth.login").login {
    base_url = kroger.base_url, client_id = kroger.client_id, client_secret = kroger.client_secret,
    scopes = scopes, port = args.port, redirect_uri = kroger.redirect_uri, browser = not args.no_browser,
  }
  print(("Logged in to %s (%s) as a customer; scopes: %s; %s."):format(
    record.host, kroger.env, table.concat(record.scopes, " "), when(record.expires_at)))
  return 0
end

function actions.status(args, config, auth)
  local records = auth.store.list()
  if #records == 0 then
    print("No stored tokens. Log in with: kapi auth login")
    return 0
  end
  for _, r in ipairs(records) do
    print(("%s  %-8s client %s  scopes: %s  %s%s"):format(r.host or "?", r.kind or "?", r.client_id or "?",
      table.concat(r.scopes or {}, " "), when(r.expires_at or 0), r.refresh_token and ", renewable" or ""))
  end
  return 0
end

function actions.logout(args, config, auth)
  local kroger = config.kroger(args.env)
  local host, removed = host_of(kroger.base_url), 0
  for _, r in ipairs(auth.store.list()) do
    if r.host == host and r.client_id == kroger.client_id then
      auth.store.remove(r.key)
      removed = removed + 1
    end
  end
  print(("Removed %d stored token%s for %s."):format(removed, removed == 1 and "" or "s", host))
  return 0
end

function actions.token(args, config, auth)
  local kroger = config.kroger(args.env)
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
  return actions[args.action](args, require "kapi.config", require "kapi.auth")
end

return M
