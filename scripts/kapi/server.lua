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

-- A handler's mistake in what it returned: raised as a usage error, so
-- that the client gets a 500 and the server's side hears what was wrong.
local function wrong(fmt, ...)
  error(errors.new("usage", "server: the request handler returned " .. fmt:format(...), {answer = true}), 0)
end

local function response_headers(res)
  local headers, has_type = {}, false
  if res.headers == nil then return headers, false end
  if type(res.headers) ~= "table" then wrong("headers = %s, expected a table", errors.shown(res.headers)) end
  for name, value in pairs(res.headers) do
    if type(name) ~= "string" or (type(value) ~= "string" and type(value) ~= "number") then
      wrong("a header %s = %s, expected a name and a string", errors.shown(name), errors.shown(value))
    end
    local problem = http.header_problem(name, tostring(value))
    if problem then wrong("a header that cannot be sent: %s", problem) end
    headers[#headers + 1] = name
    headers[#headers + 1] = tostring(value)
    has_type = has_type or name:lower() == "content-type"
  end
  return headers, has_type
end

local function encoded(value)
  local ok, text = pcall(json.encode, value)
  if not ok then wrong("json that cannot be sent (%s)", errors.message(text)) end
  return text
end

-- A handler's answer -> status, header list, body.
local function response_of(res)
  if type(res) ~= "table" then wrong("%s, expected a response table", errors.shown(res)) end
  local status = res.status or 200
  if math.type(status) ~= "integer" or status < 100 or status > 599 then
    wrong("status = %s, expected a whole number from 100 to 599", errors.shown(status))
  end
  local headers, has_type = response_headers(res)
  local body = res.body or ""
  if type(body) ~= "string" then wrong("body = %s, expected a string", errors.shown(body)) end
  if res.json ~= nil then
    body = encoded(res.json)
    if not has_type then
      headers[#headers + 1], headers[#headers + 2] = "Content-Type", "application/json"
    end
  end
  return status, headers, body
end

--- A handler's answer with its json already encoded in its body, as it
--- will be sent: for a handler that holds an answer after working it out.
function M.encoded(res)
  -- Headers that are no table are left for response_of to name.
  if type(res) == "table" and res.json ~= nil and (res.headers == nil or type(res.headers) == "table") then
    local headers = res.headers or {}
    local has_type = false
    for name in pairs(headers) do
      has_type = has_type or (type(name) == "string" and name:lower() == "content-type")
    end
    if not has_type then headers["Content-Type"] = "application/json" end
    res.body, res.json, res.headers = encoded(res.json), nil, headers
  end
  return res
end

-- A handler that failed (or answered wrongly) is told on stderr, as kapi
-- tells any error: one line, kapi's internals only with --verbose. The
-- client gets a 500 that says no more than that.
local FAILED = json.encode {error = "internal_error", error_description = "the server's request handler failed"}

local function report_failure(err, traceback)
  local line = errors.report_line(err, log.verbose, errors.traceback_module(traceback))
  io.stderr:write("kapi: ", errors.is(err) and err.answer and "" or "server: a request handler failed: ", line, "\n")
  if log.verbose and traceback then io.stderr:write(traceback, "\n") end
end

local function serve_with(handler)
  return function(raw, exchange)
    local traceback
    local ok, status, headers, body = xpcall(function()
      local res = handler(request_of(raw))
      if type(res) == "table" and res.reset then return "reset" end
      return response_of(res)
    end, function(err)
      traceback = debug.traceback("", 2):gsub("^\n", "")
      return err
    end)
    if ok and status == "reset" then
      exchange:reset()
      return
    end
    if not ok then
      if not errors.is(status, "interrupted") and not errors.is(status, "cancelled") then
        report_failure(status, traceback)
      end
      status, headers, body = 500, {"Content-Type", "application/json"}, FAILED
    end
    exchange:respond(status, headers, body)
  end
end

-- The options listen takes.
local OPTIONS = {handler = "function", port = "number", host = "string", tls_cert = "string", tls_key = "string"}

-- Whether host is an IPv4 loopback address (127.0.0.0/8): the server is
-- for this machine only (the sandbox, a login callback, tests).
local function is_loopback(host)
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a ~= "127" then return false end
  return tonumber(b) <= 255 and tonumber(c) <= 255 and tonumber(d) <= 255
end

local function check_listen(opts)
  errors.check(opts, "table", "server.listen: opts")
  errors.check_options(opts, OPTIONS, "server.listen")
  errors.check(opts.handler, "function", "server.listen: handler")
  errors.check_whole(opts.port, 0, 65535, "server.listen: port", true)
  if opts.host ~= nil and not is_loopback(opts.host) then
    errors.usage(("server.listen: host must be a loopback address (127.0.0.1), got %s")
                 :format(errors.shown(opts.host)), 3)
  end
  if (opts.tls_cert == nil) ~= (opts.tls_key == nil) then
    errors.usage("server.listen: give both tls_cert and tls_key, or neither", 3)
  end
end

--- listen{handler = fn, port = 0, host = "127.0.0.1", tls_cert = FILE,
--- tls_key = FILE} -> server with .url, .port and :close()
function M.listen(opts)
  check_listen(opts)
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
