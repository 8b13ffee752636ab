-- Environments and credentials. Secrets come from the environment
-- (KROGER_CLIENT_ID, KROGER_CLIENT_SECRET, KROGER_REDIRECT_URI,
-- ONEWORLDSYNC_APP_ID, ONEWORLDSYNC_SECRET, ONEWORLDSYNC_GLN) or from
-- ~/.config/kapi/config.lua ($KAPI_CONFIG), never from the command line.
-- With no credentials at all, kapi works against the sandbox.
local paths = require "kapi.paths"
local errors = require "kapi.errors"

local M = {}

local ENVS = {sandbox = true, ce = true, prod = true}

-- An environment variable, with an empty one counting as unset (as
-- `VAR= kapi ...` means to the person typing it).
local function getenv(name)
  local value = os.getenv(name)
  if value ~= "" then return value end
end

M.KROGER = {prod = "https://api.kroger.com", ce = "https://api-ce.kroger.com"}
M.CONTENT1 = {prod = "https://content1-api.1worldsync.com", preprod = "https://content1-api.preprod.1worldsync.com"}

function M.path()
  return getenv("KAPI_CONFIG") or (paths.config_dir() .. "/config.lua")
end

local loaded

-- What the config file may hold, and of what type: anything else is a
-- mistake in it, named ("config FILE: kroger.client_id must be a string,
-- got number"), never a failure later deep inside kapi.
local SCHEMA = {
  env = "string", store = "string",
  kroger = {client_id = "string", client_secret = "string", redirect_uri = "string", partner = "boolean"},
  oneworldsync = {app_id = "string", secret = "string", gln = "string", items_url = "string"},
}

local function check_schema(value, schema, where, name)
  local keys = {}
  for key in pairs(value) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end) -- the first mistake in reading order
  for _, key in ipairs(keys) do
    local v = value[key]
    local want = type(key) == "string" and schema[key]
    local path = where == "" and tostring(key) or (where .. "." .. tostring(key))
    if not want then
      local keys = {}
      for k in pairs(schema) do keys[#keys + 1] = k end
      table.sort(keys)
      errors.input(("config %s: unknown setting %s%s (known: %s)"):format(name, errors.excerpt(path),
        type(key) == "string" and require("kapi.parsing").did_you_mean(key, keys) or "", table.concat(keys, ", ")), 0)
    end
    if type(want) == "table" then
      if type(v) ~= "table" then
        errors.input(("config %s: %s must be a table, e.g. %s = {...}, got %s"):format(name, path, path, type(v)), 0)
      end
      check_schema(v, want, path, name)
    elseif type(v) ~= want then
      errors.input(("config %s: %s must be a %s, got %s"):format(name, path, want, type(v)), 0)
    end
  end
end

-- A config file is data: a few table constructors. One that runs on and
-- on (a loop) is stopped rather than left to hang every command.
local CONFIG_INSTRUCTIONS = 1000000

local function run_config(chunk, name)
  local co = coroutine.create(chunk)
  debug.sethook(co, function() error("runs too long (a config file is data: return {...})", 0) end, "",
                CONFIG_INSTRUCTIONS)
  local ok, value = coroutine.resume(co)
  if not ok then
    local message = errors.message(value)
    local line = message:match(":(%d+): attempt to call")
    if line then message = ("line %s calls a function, and a config file can call none: it is data (return {...})"):format(line) end
    errors.input(("config %s: %s"):format(name, message), 0)
  end
  return value
end

--- The config file's table ({} when there is none). It is data: it runs
--- with no access to anything. A file holding a secret that others can
--- read gets a warning.
function M.load()
  if loaded then return loaded end
  local path = M.path()
  local input = require "kapi.input"
  local why = input.unreadable(path)
  if why == "No such file or directory" then loaded = {}; return loaded end
  if why then errors.input(("config %s: %s"):format(input.name(path), why), 0) end
  local text = input.read(path, {empty_ok = true})
  if not text:find("%S") then loaded = {}; return loaded end
  local chunk, err = load(text, "=" .. input.name(path), "t", {})
  if not chunk then errors.input("config " .. err, 0) end
  local value = run_config(chunk, input.name(path))
  if type(value) ~= "table" then
    errors.input(("config %s: must return a table, e.g. return {kroger = {client_id = ...}}"):format(input.name(path)), 0)
  end
  check_schema(value, SCHEMA, "", input.name(path))
  local has_secret = (value.kroger or {}).client_secret or (value.oneworldsync or {}).secret
  local mode = require("kapi.core.fs").mode(path)
  if has_secret and mode and mode & 63 ~= 0 then
    io.stderr:write(("kapi: warning: %s holds a secret and others can read it; run: chmod 600 %s\n"):format(path, path))
  end
  loaded = value
  return loaded
end

--- Forgets the loaded files (tests).
function M.reset() loaded = nil; M.settings_cache = nil end

-- Settings `kapi config set` keeps: simple values, in a JSON file of
-- kapi's own beside config.lua (which is the user's, written by hand, and
-- never rewritten by kapi). What each key takes, checked when it is set.
M.SETTINGS = {
  env = {help = "where to work when --env is not given: sandbox, ce or prod",
         check = function(v) return ENVS[v] and v end},
  store = {help = "the preferred store (location id): prices, stock and coupons there when no store is given",
           check = function(v) return type(v) == "string" and v:match("^%d%d%d%d%d%d%d%d$") and v end},
  partner = {help = "the Kroger app is a partner app (its scopes and limits): true or false",
             check = function(v) if v == "true" or v == true then return true elseif v == "false" or v == false then return false end end},
}

function M.settings_path()
  return paths.config_dir() .. "/settings.json"
end

--- The settings `kapi config set` wrote ({} when none).
function M.settings()
  if M.settings_cache then return M.settings_cache end
  local path = M.settings_path()
  local input = require "kapi.input"
  local why = input.unreadable(path)
  if why == "No such file or directory" then M.settings_cache = {}; return M.settings_cache end
  local ok, value = pcall(input.json, path)
  if not ok or type(value) ~= "table" then
    errors.input(("%s: not kapi's settings (JSON of key = value); fix it or remove it"):format(path), 0)
  end
  M.settings_cache = value
  return value
end

--- Writes one setting (nil: removes it), atomically, mode 0600.
function M.save_setting(key, value)
  local settings = {}
  for k, v in pairs(M.settings()) do settings[k] = v end
  settings[key] = value
  local fs = require "kapi.core.fs"
  assert(fs.mkdirs(paths.config_dir(), 448))
  local ok, err = fs.write_atomic(M.settings_path(), require("kapi.json").encode(settings, {sorted = true}) .. "\n", 384)
  if not ok then errors.input(("cannot write %s: %s"):format(M.settings_path(), tostring(err)), 0) end
  M.settings_cache = settings
end

--- A setting's value and where it came from: the environment (KAPI_ENV,
--- KAPI_STORE), config.lua, then the settings of kapi config; nil when
--- none has it.
function M.value(key)
  local var = ({env = "KAPI_ENV", store = "KAPI_STORE", partner = "KROGER_PARTNER"})[key]
  local from_env = var and getenv(var)
  if from_env then return from_env, var .. "=" .. from_env end
  local file = M.load()
  local in_file = key == "partner" and (file.kroger or {}).partner or file[key]
  if in_file ~= nil then return in_file, key .. " in " .. M.path() end
  local set = M.settings()[key]
  if set ~= nil then return set, key .. " in " .. M.settings_path() end
end

--- The preferred store (a location id) and where it was set; nil if none.
function M.preferred_store()
  local store, source = M.value("store")
  if store == nil then return nil end
  if not M.SETTINGS.store.check(store) then
    errors.input(("%s: a location id has 8 digits, got %s"):format(source, errors.excerpt(store)), 0)
  end
  return store, source
end

local function kroger_credentials()
  local c = M.load().kroger or {}
  local id, secret = getenv("KROGER_CLIENT_ID"), getenv("KROGER_CLIENT_SECRET")
  -- KROGER_PARTNER=1 or partner = true: the app is registered for the
  -- partner APIs (their scopes and limits), not the public ones.
  local partner = M.value("partner")
  partner = partner == true or partner == "1" or partner == "true" or nil
  if id and secret then return {client_id = id, client_secret = secret, redirect_uri = getenv("KROGER_REDIRECT_URI"),
                                partner = partner, source = "environment"} end
  if c.client_id and c.client_secret then
    return {client_id = c.client_id, client_secret = c.client_secret, redirect_uri = c.redirect_uri,
            partner = partner, source = M.path()}
  end
end

local function oneworldsync_credentials()
  local c = M.load().oneworldsync or {}
  return (getenv("ONEWORLDSYNC_APP_ID") or c.app_id) and (getenv("ONEWORLDSYNC_SECRET") or c.secret)
end


local function checked(env, source)
  if not ENVS[env] then
    error(errors.new("usage", ("%s: unknown environment %s (sandbox, ce or prod)"):format(source, errors.excerpt(env))), 0)
  end
  return env, source
end

--- The environment and what chose it: explicit (--env), KAPI_ENV, the
--- config's `env`, else "prod" when any credentials are configured and
--- "sandbox" (chosen by nothing: the second value is nil) when none are.
function M.env(explicit)
  if explicit then return checked(explicit, "--env " .. explicit) end
  local env, source = M.value("env")
  if env ~= nil then return checked(env, source) end
  if kroger_credentials() or oneworldsync_credentials() then return "prod", "the credentials configured" end
  return "sandbox", nil
end

--- True when nothing chose the sandbox: kapi fell back to it because no
--- credentials are configured. A user's own data (a report, item files)
--- is then never sent to it.
function M.sandbox_by_default(explicit)
  local env, source = M.env(explicit)
  return env == "sandbox" and source == nil and not getenv("KAPI_SANDBOX_URL")
end

--- True when working in env would start a sandbox inside this process
--- (the sandbox environment, and no KAPI_SANDBOX_URL).
function M.in_process_sandbox(explicit)
  return M.env(explicit) == "sandbox" and not getenv("KAPI_SANDBOX_URL")
end

local sandbox

-- Whether url is http(s)://HOST[:PORT][/]. The host takes its longest run
-- and the port what follows: "[%w.%-]+[:%d]*" in one pattern tried every
-- split of a run of digits between the two when the URL did not end
-- there (KAPI_SANDBOX_URL=http:// and 20,000 digits and a "!": 5 s).
local function host_and_port(url)
  local after_host = url:match("^https?://[%w.%-]+()")
  return after_host ~= nil and url:find("^[:%d]*/?$", after_host) ~= nil
end

local function checked_url(url)
  if not host_and_port(url) and not url:match("^https?://%[[%x:]+%][:%d]*/?$") then
    error(errors.new("usage", ("KAPI_SANDBOX_URL=%s: expected the base URL of a kapi sandbox, e.g. "
                               .. "http://127.0.0.1:8080"):format(errors.excerpt(url))), 0)
  end
  return (url:gsub("/$", ""))
end

--- The sandbox this process uses: KAPI_SANDBOX_URL, or one started here
--- (once), said once on stderr with what chose it (see M.env). Its tokens
--- live in memory and it closes when the program ends (M.close).
function M.sandbox_url(reason)
  local url = getenv("KAPI_SANDBOX_URL")
  if url then return checked_url(url) end
  if not sandbox then
    sandbox = require("kapi.sandbox").start {}
    require("kapi.log").note("kapi: using the built-in sandbox at %s (%s)", sandbox.url,
                             reason or "no credentials configured")
  end
  return sandbox.url
end

--- Closes the sandbox started in this process, if any (the program ends).
function M.close()
  if sandbox then sandbox:close() end
  sandbox = nil
end

--- True when url is the sandbox started inside this process (it ends with
--- the process, so nobody can have logged in to it beforehand).
function M.is_in_process_sandbox(url)
  return sandbox ~= nil and url == sandbox.url
end

--- Where and as whom to talk to Kroger: {env, base_url, client_id,
--- client_secret, redirect_uri, source}.
function M.kroger(explicit_env, base_url)
  local env, source = M.env(explicit_env)
  local creds = kroger_credentials()
  if env == "sandbox" then
    creds = creds and creds.client_id:match("^kapi%-sandbox") and creds
            or {client_id = "kapi-sandbox", client_secret = "sandbox-secret", source = "the sandbox's test app"}
  elseif not creds then
    error(errors.new("auth", ("no Kroger credentials for %s: set KROGER_CLIENT_ID and KROGER_CLIENT_SECRET, "
                             .. "or use --env sandbox"):format(env), {setup = true}), 0)
  end
  creds.env = env
  creds.base_url = base_url or (env == "sandbox" and M.sandbox_url(source) or M.KROGER[env])
  return creds
end

--- Where and as whom to talk to 1WorldSync: {env, base_url, app_id, secret, gln}.
function M.oneworldsync(explicit_env, base_url)
  local env, source = M.env(explicit_env)
  local c = M.load().oneworldsync or {}
  local id, secret = getenv("ONEWORLDSYNC_APP_ID") or c.app_id, getenv("ONEWORLDSYNC_SECRET") or c.secret
  if env == "sandbox" then
    return {env = env, base_url = base_url or M.sandbox_url(source), app_id = id or "kapisbx1",
            secret = secret or "sandbox-hmac-secret", gln = getenv("ONEWORLDSYNC_GLN") or c.gln}
  end
  if not (id and secret) then
    error(errors.new("auth", "no 1WorldSync credentials: set ONEWORLDSYNC_APP_ID and ONEWORLDSYNC_SECRET",
                     {setup = true}), 0)
  end
  return {env = env, base_url = base_url or M.CONTENT1[env == "prod" and "prod" or "preprod"], app_id = id,
          secret = secret, gln = getenv("ONEWORLDSYNC_GLN") or c.gln}
end

--- Where Item Management's publication API is: the sandbox's, or the
--- service named by ONEWORLDSYNC_ITEMS_URL / oneworldsync.items_url.
--- 1WorldSync publishes no such API, so elsewhere there may be none:
--- recipes then read exported reports.
function M.items(explicit_env, base_url)
  local c = M.oneworldsync(explicit_env, base_url)
  if base_url or c.env == "sandbox" then return c end
  local url = getenv("ONEWORLDSYNC_ITEMS_URL") or (M.load().oneworldsync or {}).items_url
  if not url or url == "" then
    error(errors.new("usage", "1WorldSync has no public API for publications in " .. c.env .. ": pass "
                     .. "--report FILE (an exported Sync Status or Recipient Responses report), "
                     .. "or set ONEWORLDSYNC_ITEMS_URL"), 0)
  end
  c.base_url = url
  return c
end

return M
