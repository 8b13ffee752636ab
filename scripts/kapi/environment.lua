-- Every environment variable kapi reads, with what it does and its
-- default: `kapi help environment` and ENVIRONMENT in kapi(1) are made
-- from this list (tests/cli/manpages_spec.lua holds it to every getenv in
-- the tree). Grouped as people look for them.
local M = {}

M.VARIABLES = {
  {group = "Credentials (never on a command line; see also the config file)"},
  {name = "KROGER_CLIENT_ID", help = "The Kroger app's client id. With KROGER_CLIENT_SECRET it makes kapi work "
     .. "against Kroger (prod unless KAPI_ENV or --env says ce).", default = "client_id in the config file"},
  {name = "KROGER_CLIENT_SECRET", help = "The Kroger app's client secret.",
   default = "client_secret in the config file"},
  {name = "KROGER_REDIRECT_URI", help = "The redirect URI registered for the app, used by kapi auth login for "
     .. "its local callback (its port is the port kapi listens on).",
   default = "redirect_uri in the config file, else a free loopback port"},
  {name = "KROGER_PARTNER", help = "1 or true: the Kroger app is a partner app (coupons, partner products, "
     .. "no daily call budgets).", default = "partner in the config file, then kapi config"},
  {name = "ONEWORLDSYNC_APP_ID", help = "The 1WorldSync Content1 app id (with ONEWORLDSYNC_SECRET).",
   default = "app_id in the config file"},
  {name = "ONEWORLDSYNC_SECRET", help = "The 1WorldSync app's secret, for Content1's HMAC signatures.",
   default = "secret in the config file"},
  {name = "ONEWORLDSYNC_GLN", help = "Your information provider GLN at 1WorldSync.",
   default = "gln in the config file"},
  {name = "ONEWORLDSYNC_ITEMS_URL", help = "The base URL of an Item Management publication service "
     .. "(1WorldSync publishes none: without it, recipes read exported reports).",
   default = "items_url in the config file; the sandbox's in the sandbox"},
  {group = "Where kapi works"},
  {name = "KAPI_ENV", help = "Where to work when --env is not given: sandbox, ce or prod.",
   default = "env in the config file, then kapi config; prod when credentials are set, else the built-in sandbox"},
  {name = "KAPI_SANDBOX_URL", help = "The address of a running kapi sandbox (http://127.0.0.1:PORT) to use for "
     .. "the sandbox environment, so its state lasts across commands.",
   default = "a sandbox started inside each command"},
  {name = "KAPI_STORE", help = "The preferred store, an 8-digit location id: products and coupons work there "
     .. "when no --store, --zip or --near is given.", default = "store in the config file, then kapi config"},
  {group = "Files"},
  {name = "KAPI_CONFIG", help = "The config file (Lua): credentials, env, store.",
   default = "$XDG_CONFIG_HOME/kapi/config.lua"},
  {name = "KAPI_PATH", help = "Colon-separated directories: their ?.lua modules can be required, and their "
     .. "recipes/ are searched for recipes first.", default = "none"},
  {name = "XDG_CONFIG_HOME", help = "Holds kapi/config.lua, kapi/settings.json (kapi config) and kapi/recipes/ "
     .. "(your recipes).", default = "~/.config"},
  {name = "XDG_STATE_HOME", help = "Holds kapi/tokens/ (stored logins), kapi/history (the REPL's), "
     .. "kapi/tracker.sqlite3 (republish-check's history) and the daily call counts.", default = "~/.local/state"},
  {name = "HOME", help = "Where ~ is, for the defaults above.", default = "the current directory when unset"},
  {name = "LUA_PATH, LUA_PATH_5_4, LUA_CPATH, LUA_CPATH_5_4", help = "More places for require to look, after "
     .. "KAPI_PATH and kapi's own tree, as in the lua interpreter.", default = "Lua's own paths"},
  {group = "Output and logging"},
  {name = "KAPI_DEBUG", help = "Set (to anything): as --verbose everywhere: each request logged on stderr, "
     .. "errors with their details and traceback.", default = "unset"},
  {name = "KAPI_TRACE", help = "A file to append one JSON record per HTTP attempt to (method, URL, status, "
     .. "time; secrets redacted).", default = "unset: no trace"},
  {name = "NO_COLOR", help = "Set and not empty: no colour, even on a terminal.", default = "unset"},
  {name = "TERM", help = "dumb: no colour.", default = "as the terminal sets it"},
  {name = "COLUMNS", help = "The width to fit tables and help to on a terminal whose size cannot be read "
     .. "(output that is not a terminal is never cut).", default = "80"},
  {group = "Network"},
  {name = "SSL_CERT_FILE", help = "A CA bundle (PEM) to verify TLS servers against instead of the system's, "
     .. "as for curl and OpenSSL: a private CA or a proxy's. A request's own ca_file wins; scripts may set "
     .. "kapi.http.defaults.ca_file.", default = "the system CA store"},
  {name = "http_proxy, https_proxy, HTTPS_PROXY, no_proxy, all_proxy, ALL_PROXY", help = "Proxies for HTTP "
     .. "and HTTPS, and the hosts that go direct, as for curl (read by libcurl; with an HTTPS one set, kapi "
     .. "also gives every HTTPS request a fresh handle).", default = "no proxy"},
}

--- The variables' names, one entry for each name (LUA_PATH, LUA_CPATH, ...).
function M.names()
  local out = {}
  for _, v in ipairs(M.VARIABLES) do
    for name in (v.name or ""):gmatch("[%w_]+") do out[#out + 1] = name end
  end
  return out
end

--- What `kapi help environment` prints, fitted to width columns.
function M.text(width)
  local wrap = require("kapi.output").wrap
  width = width or 80
  local lines = wrap("Environment variables kapi reads; each wins over the config file and kapi config's settings.",
                     width)
  lines[#lines + 1] = ""
  for _, v in ipairs(M.VARIABLES) do
    if v.group then
      if lines[#lines] ~= "" then lines[#lines + 1] = "" end
      lines[#lines + 1] = v.group .. ":"
      lines[#lines + 1] = ""
    else
      lines[#lines + 1] = "  " .. v.name
      for _, part in ipairs(wrap(v.help .. " Default: " .. v.default .. ".", math.max(20, width - 6))) do
        lines[#lines + 1] = "      " .. part
      end
    end
  end
  return table.concat(lines, "\n")
end

return M
