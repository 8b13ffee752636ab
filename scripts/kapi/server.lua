-- The embedded HTTP server (bindings/server.c): handlers are Lua
-- functions run as tasks, so they may sleep or call other APIs.
local http = require "kapi.http"
local json = require "kapi.json"
local errors = require "kapi.errors"
local log = require "kapi.log"
local doc = require "kapi.doc"

local M = {}

local Server = {}
Server.__index = Server

local function request_of(raw)
  local path, query = raw.uri:match("^([^?]*)%??(.*)$")
  local req = {method = raw.method, path = http.unescape(path), raw_path = path,
               raw_query = query, body = raw.body,
               headers = http.new_headers(raw.headers)}
  req.query_list = http.decode_query(query)
  req.query = {}
  for _, pair in ipairs(req.query_list) do
    if req.query[pair[1]] == nil then req.query[pair[1]] = pair[2] end
  end
  --- The body decoded as JSON.
  function req.json() return json.decode(req.body) end
  return req
end

-- A handler's answer -> status, header list, body.
local function response_of(res)
  if type(res) ~= "table" then
    error(("server: a handler must return a response table, got %s"):format(type(res)), 0)
  end
  local headers, has_type = {}, false
  for name, value in pairs(res.headers or {}) do
    headers[#headers + 1] = name
    headers[#headers + 1] = tostring(value)
    has_type = has_type or name:lower() == "content-type"
  end
  local body = res.body or ""
  if res.json ~= nil then
    body = json.encode(res.json)
    if not has_type then
      headers[#headers + 1], headers[#headers + 2] = "Content-Type", "application/json"
    end
  end
  return res.status or 200, headers, body
end

local function serve_with(handler)
  return function(raw, exchange)
    local ok, status, headers, body = pcall(function()
      local res = handler(request_of(raw))
      if type(res) == "table" and res.reset then return "reset" end
      return response_of(res)
    end)
    if ok and status == "reset" then
      exchange:reset()
      return
    end
    if not ok then
      log.debug("server: handler failed: %s", errors.message(status))
      status, headers = 500, {"Content-Type", "application/json"}
      body = json.encode {error = "internal_error", error_description = errors.message(status)}
    end
    exchange:respond(status, headers, body)
  end
end

--- listen{handler = fn, port = 0, host = "127.0.0.1", tls_cert = FILE,
--- tls_key = FILE} -> server with .url, .port and :close()
function M.listen(opts)
  if type(opts) ~= "table" or type(opts.handler) ~= "function" then
    errors.usage("server.listen: needs {handler = function(request) ... end}", 2)
  end
  local core = require "kapi.core.server"
  local input = require "kapi.input"
  local cert = opts.tls_cert and input.read(opts.tls_cert)
  local key = opts.tls_key and input.read(opts.tls_key)
  local host = opts.host or "127.0.0.1"
  local daemon = core.listen {host = host, port = opts.port or 0,
                              serve = serve_with(opts.handler), cert = cert, key = key}
  local self = setmetatable({daemon = daemon, port = daemon:port(), host = host}, Server)
  self.url = ("%s://%s:%d"):format(cert and "https" or "http", host, self.port)
  return self
end

function Server:close()
  self.daemon:close()
end

Server.__close = Server.close

doc.declare("kapi.server.listen", M.listen, [[
kapi.server.listen{handler = fn, port = 0, host = "127.0.0.1", tls_cert, tls_key} -> server
Serves HTTP on loopback (port 0: a free one; server.url tells). handler
(request) runs as a task for each request and returns {status, headers,
body | json}, or {reset = true} to drop the connection unanswered. request has method, path, query (decoded; query_list keeps
order and repeats), raw_query, headers, body and request.json().
Example:
  local srv = kapi.server.listen{handler = function(req)
    return {json = {hello = req.query.name}}
  end}
  print(kapi.http.get(srv.url .. "/?name=you"):json().hello)
  srv:close()]])

return M
