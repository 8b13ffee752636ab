-- `kapi auth login`: the authorization-code flow with PKCE (S256) and a
-- random state, the callback served on 127.0.0.1 by the embedded server.
local http = require "kapi.http"
local server = require "kapi.server"
local task = require "kapi.task"
local errors = require "kapi.errors"
local auth = require "kapi.auth"

local M = {}

local function page(title, text)
  return {status = 200, headers = {["Content-Type"] = "text/html; charset=utf-8"},
          body = ("<!doctype html><title>kapi: %s</title><h1>%s</h1><p>%s</p>"):format(title, title, text)}
end

local function crypto() return require "kapi.core.crypto" end

local function port_of(uri)
  return uri and math.tointeger(tonumber(uri:match("^http://[^/:]+:(%d+)/")))
end

--- login{base_url, client_id, client_secret, scopes, port, redirect_uri,
--- browser = true, timeout = 300, announce = a line on stderr} -> the stored record
function M.login(opts)
  local c = crypto()
  local verifier = c.base64url(c.random(32))
  local state = c.base64url(c.random(16))
  local result
  local srv = server.listen {port = opts.port or port_of(opts.redirect_uri) or 0, handler = function(req)
    if req.path ~= "/callback" then return {status = 404, body = "not found"} end
    if not c.equal(req.query.state or "", state) then
      io.stderr:write("kapi: ignored a login callback whose state does not match this login\n")
      return {status = 400, headers = {["Content-Type"] = "text/html"},
              body = "<!doctype html><h1>This login did not come from this kapi</h1><p>The state does not match; start again with kapi auth login.</p>"}
    end
    if req.query.error then
      result = {error = req.query.error, description = req.query.error_description}
      return page("login refused", "kapi was not given access. You can close this tab.")
    end
    result = {code = req.query.code}
    return page("logged in", "You are logged in to kapi. You can close this tab.")
  end}
  local redirect_uri = opts.redirect_uri or ("http://127.0.0.1:%d/callback"):format(srv.port)
  local url = opts.base_url .. "/v1/connect/oauth2/authorize?" .. http.encode_query {
    {"scope", table.concat(opts.scopes, " ")}, {"client_id", opts.client_id}, {"redirect_uri", redirect_uri},
    {"response_type", "code"}, {"state", state},
    {"code_challenge", c.base64url(c.sha256(verifier))}, {"code_challenge_method", "S256"},
  }
  local announce = opts.announce or function(line) io.stderr:write(line, "\n") end
  announce("Open this address in a browser to log in to Kroger:")
  announce("  " .. url)
  if opts.browser ~= false and os.execute("command -v xdg-open >/dev/null 2>&1") then
    os.execute("xdg-open " .. ("'" .. url:gsub("'", "'\\''") .. "'") .. " >/dev/null 2>&1 &")
  end
  local deadline = task.now() + (opts.timeout or 300)
  local ok, err = pcall(function()
    while not result do
      if task.now() > deadline then error(errors.new("auth", "no login within the time allowed; try again"), 0) end
      task.sleep(0.05)
    end
  end)
  srv:close()
  if not ok then error(err, 0) end
  if result.error == "access_denied" then
    error(errors.new("auth", "login refused: the customer did not give kapi access (access_denied"
                             .. (result.description and ": " .. result.description or "") .. ")"), 0)
  elseif result.error then
    error(errors.new("auth", ("login failed: %s%s"):format(result.error,
                             result.description and (": " .. result.description) or "")), 0)
  end
  local res = http.post(opts.base_url .. auth.TOKEN_PATH, {
    headers = {Authorization = "Basic " .. c.base64(opts.client_id .. ":" .. opts.client_secret)},
    form = {grant_type = "authorization_code", code = result.code, redirect_uri = redirect_uri,
            code_verifier = verifier}, raise = false})
  if res.status ~= 200 then
    local parsed = http.parse_error_body(res.body)
    error(errors.new("auth", ("the code exchange failed: %s (%s)"):format(parsed.reason or "", parsed.code or res.status)), 0)
  end
  return auth.store_login(opts.base_url, opts.client_id, res:json())
end

return M
