-- HTTP policy: requests, retries, errors, JSON, logging and redaction, on
-- top of the libcurl transport (bindings/http.c).
local errors = require "kapi.errors"
local json = require "kapi.json"
local log = require "kapi.log"
local doc = require "kapi.doc"
local core = require "kapi.core"
local trim = require("kapi.text").trim

local transport -- loaded on the first request: libcurl costs start-up time

local M = {}

local ca_bundle = os.getenv("SSL_CERT_FILE")

-- Defaults every request starts from (kapi.http.defaults shows and sets them).
local defaults = {
  timeout = 30,            -- seconds for the whole exchange
  connect_timeout = 10,
  max_size = 64 * 1024 * 1024,
  attempts = 4,            -- 1 + 3 retries, for calls that may be retried
  backoff_base = 0.25,     -- full jitter: sleep random(0, base * 2^n), capped
  backoff_cap = 10,
  retry_after_cap = 60,    -- never wait longer than this for Retry-After
  -- The CA bundle (PEM) TLS is verified against when a request names
  -- none; nil: the system store. SSL_CERT_FILE, as for curl and OpenSSL.
  ca_file = ca_bundle ~= "" and ca_bundle or nil,
}

-- What each default must be: a script's wrong value is refused where it
-- sets it, in one line naming it, not met later inside the transport.
local DEFAULT_KINDS = {timeout = "number", connect_timeout = "number", max_size = "number",
                       attempts = "number", backoff_base = "number", backoff_cap = "number",
                       retry_after_cap = "number", ca_file = "string?"}

--- Defaults every request starts from; scripts and tests may change them.
M.defaults = setmetatable({}, {
  __index = defaults,
  __newindex = function(_, name, value)
    local kind = DEFAULT_KINDS[name]
    if not kind then
      errors.usage(("http.defaults: there is no default %s"):format(errors.shown(name)), 2)
    end
    errors.check(value, kind, "http.defaults." .. name)
    defaults[name] = value
  end,
  __pairs = function() return next, defaults, nil end,
})

local RETRY_STATUS = {[408] = true, [429] = true, [500] = true, [502] = true,
                      [503] = true, [504] = true}
local IDEMPOTENT = {GET = true, HEAD = true, OPTIONS = true}
local SECRET_NAMES = {authorization = true, hashcode = true, client_secret = true,
                      access_token = true, refresh_token = true, code = true,
                      code_verifier = true, password = true, ["proxy-authorization"] = true}
local REDACTED = "REDACTED"
local match = string.match

-- The header lines the transport sends when a request gives none, each
-- with its name in lower case, and the set of those names.
local default_headers = {lines = {}, names = {}, sent = {}}

local function get_transport()
  if transport then return transport end
  transport = require "kapi.core.http"
  for i, line in ipairs(transport.default_headers) do
    local name = line:match("^[^:]+"):lower()
    default_headers.lines[i], default_headers.names[i], default_headers.sent[name] = line, name, true
  end
  return transport
end

-- Encoding ---------------------------------------------------------------

--- Percent-encodes s per RFC 3986: everything but unreserved characters.
function M.escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

function M.unescape(s)
  if type(s) ~= "string" then errors.check(s, "string", "http.unescape: s") end
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A query as an ordered list of {name, value}: accepts such a list, or a
-- table of name = value | {values...} (names sorted, for stable URLs).
local function query_pairs(query)
  local out = {}
  if query == nil then return out end
  if query[1] ~= nil then
    for _, pair in ipairs(query) do out[#out + 1] = {pair[1], pair[2]} end
    return out
  end
  local names = {}
  for name in pairs(query) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local value = query[name]
    if type(value) == "table" then
      for _, v in ipairs(value) do out[#out + 1] = {name, v} end
    else
      out[#out + 1] = {name, value}
    end
  end
  return out
end

M.query_pairs = query_pairs

-- What a query value may be: text, a number or a boolean (false, like
-- nil, leaves the name out). A table or a function would be sent as
-- "table: 0x55..." (a map's value may be a list of values).
local QUERY_VALUE = {string = true, number = true, boolean = true}

local function check_query_value(value, name, who)
  if not QUERY_VALUE[type(value)] then
    errors.usage(("%s: the value of %s must be a string, number or boolean, got %s")
                 :format(who, errors.shown(name), type(value)), 4)
  end
end

-- Checks a query (or form) before anything is sent or signed: a list of
-- {name, value} pairs, or a table of name = value | {values...}.
local function check_query(query, who)
  if query[1] ~= nil then
    for i, pair in ipairs(query) do
      if type(pair) ~= "table" or (type(pair[1]) ~= "string" and type(pair[1]) ~= "number") then
        errors.usage(("%s: entry %d must be a {name, value} pair, got %s"):format(who, i, errors.shown(pair)), 3)
      end
      if pair[2] ~= nil then check_query_value(pair[2], pair[1], who) end
    end
    return
  end
  for name, value in pairs(query) do
    if type(name) ~= "string" then
      errors.usage(("%s: names must be strings, got %s"):format(who, errors.shown(name)), 3)
    end
    if type(value) == "table" then
      for _, v in ipairs(value) do check_query_value(v, name, who) end
    else
      check_query_value(value, name, who)
    end
  end
end

-- The query string of a query that was checked (no leading "?").
local function encode_query(query)
  local parts = {}
  for _, pair in ipairs(query_pairs(query)) do
    if pair[2] ~= nil and pair[2] ~= false then
      parts[#parts + 1] = M.escape(pair[1]) .. "=" .. M.escape(pair[2])
    end
  end
  return table.concat(parts, "&")
end

--- The query string for a query table or list (no leading "?").
function M.encode_query(query)
  errors.check(query, "table?", "http.encode_query: query")
  if query == nil then return "" end
  check_query(query, "http.encode_query")
  return encode_query(query)
end

--- Parses a query string into an ordered list of {name, value}.
function M.decode_query(text)
  errors.check(text, "string?", "http.decode_query: text")
  local out = {}
  for part in (text or ""):gmatch("[^&]+") do
    local name, value = part:match("^([^=]*)=?(.*)$")
    out[#out + 1] = {M.unescape((name:gsub("+", " "))), M.unescape((value:gsub("+", " ")))}
  end
  return out
end

-- Headers ----------------------------------------------------------------

local Headers = {}

-- The {name, value, ...} list, split from the raw header block on first use.
local function header_list(self)
  local list = rawget(self, "list")
  if list then return list end
  list = {}
  -- Line by line, then trimmed with anchored patterns: linear in the size
  -- of the block, whatever a server puts in it (a lazy match followed by
  -- optional spaces is quadratic on a long run of them).
  for line in rawget(self, "block"):gmatch("[^\r\n]+") do
    local colon = line:find(":", 1, true)
    if colon and colon > 1 then
      local value = line:sub(colon + 1)
      local first = value:find("[^ \t]")
      if first then
        local last = #value
        while last > first do
          local c = value:byte(last)
          if c ~= 32 and c ~= 9 then break end
          last = last - 1
        end
        value = value:sub(first, last)
      else
        value = ""
      end
      list[#list + 1] = line:sub(1, colon - 1)
      list[#list + 1] = value
    end
  end
  rawset(self, "list", list)
  return list
end

Headers.__index = function(self, name)
  local method = Headers[name]
  if method then return method end
  if type(name) ~= "string" then return nil end
  local values = self:all(name)
  if #values > 0 then return table.concat(values, ", ") end
end

--- Every value of header `name` (any case), in the order received.
function Headers:all(name)
  local wanted, out = name:lower(), {}
  local list = header_list(self)
  for i = 1, #list, 2 do
    if list[i]:lower() == wanted then out[#out + 1] = list[i + 1] end
  end
  return out
end

--- Iterates name, value over the headers as received.
function Headers:each()
  local list, i = header_list(self), -1
  return function()
    i = i + 2
    if list[i] then return list[i], list[i + 1] end
  end
end

Headers.__tostring = function(self)
  local lines = {}
  for name, value in self:each() do lines[#lines + 1] = name .. ": " .. value end
  return table.concat(lines, "\n")
end

-- Headers from a list {name, value, ...} or a raw block of header lines.
local function new_headers(source)
  if type(source) == "string" then return setmetatable({block = source}, Headers) end
  return setmetatable({list = source or {}}, Headers)
end
M.new_headers = new_headers

-- Redaction ----------------------------------------------------------------

local function is_secret(name)
  return SECRET_NAMES[tostring(name):lower()] == true
end

--- The URL with the values of secret query parameters replaced.
function M.redact_url(url)
  local base, query = url:match("^([^?]*)%?(.*)$")
  if not query then return url end
  local parts = {}
  for part in query:gmatch("[^&]+") do
    local name = part:match("^([^=]*)")
    parts[#parts + 1] = is_secret(M.unescape(name)) and (name .. "=" .. REDACTED) or part
  end
  return base .. "?" .. table.concat(parts, "&")
end

local function redact_value(value, depth)
  if type(value) ~= "table" or depth > 20 then return value end
  local out = {}
  for k, v in pairs(value) do
    out[k] = is_secret(k) and REDACTED or redact_value(v, depth + 1)
  end
  return out
end

--- A body fit for logs: secrets in JSON or form bodies replaced, whatever
--- the content type says (a raw body = "refresh_token=..." may carry
--- none, or a wrong one): what reads as JSON or as a form is redacted.
function M.redact_body(body, content_type)
  if type(body) ~= "string" or body == "" then return body end
  content_type = (content_type or ""):lower()
  if content_type:find("json", 1, true) or body:find("^%s*[{%[]") then
    local ok, value = pcall(json.decode, body)
    if ok then
      -- A number beyond a double's range decodes as an infinity, which JSON
      -- cannot write back: such a body is not shown (never shown
      -- unredacted), and the request it was logged for goes on.
      local written, text = pcall(json.encode, redact_value(value, 0))
      return written and text or REDACTED
    end
  end
  if content_type:find("x-www-form-urlencoded", 1, true) or body:find("^[^%s=&]+=") then
    body = M.redact_url("?" .. body):sub(2)
  end
  if #body > 2000 then return body:sub(1, 2000) .. "..." end
  return body
end

local function redact_headers(lines)
  local out = {}
  for i, line in ipairs(lines) do
    local name = line:match("^([^:]+):")
    out[i] = (name and is_secret(name)) and (name .. ": " .. REDACTED) or line
  end
  return out
end

-- Errors -----------------------------------------------------------------

-- What an HTML page's <title> holds, trimmed, up to the first "</" after
-- it; nil without one. As ("<[Tt][Ii][Tt][Ll][Ee]>%s*(.-)%s*</"), with
-- plain searches: that pattern's %s*, .- and %s* each tried every length
-- of a run of spaces it found no "</" after (cubic: 600 took 0.7 s).
local function title_of(text)
  local _, open_end = text:find("<[Tt][Ii][Tt][Ll][Ee]>")
  local close = open_end and text:find("</", open_end + 1, true)
  return close and trim(text:sub(open_end + 1, close - 1))
end

local function first_line(text)
  local title = title_of(text or "")
  local line = title or (text or ""):match("^%s*([^\r\n]*)") or ""
  if #line > 200 then line = line:sub(1, 200) .. "..." end
  return line
end

--- Understands the error bodies kapi meets: Kroger auth errors
--- {error, error_description}, Kroger API errors {errors = {code, reason}}
--- (or the auth shape inside `errors`), 1WorldSync {requestId, code,
--- reason}; anything else is reported by its first line.
function M.parse_error_body(body)
  local ok, value = pcall(json.decode, body or "")
  if not ok or type(value) ~= "table" then
    return {reason = first_line(body)}
  end
  local e = value.errors
  if type(e) == "table" and e[1] then e = e[1] end
  if type(e) == "table" then
    return {code = e.code or e.error, reason = e.reason or e.error_description or e.message,
            timestamp = e.timestamp}
  end
  if value.error ~= nil then
    return {code = value.error, reason = value.error_description}
  end
  if value.code ~= nil or value.reason ~= nil then
    return {code = value.code, reason = value.reason, request_id = value.requestId}
  end
  return {reason = value.message or first_line(body)}
end

local function describe(e)
  local where = ("%s %s"):format(e.method, M.redact_url(e.url))
  local what
  if e.kind == "http" then
    what = tostring(e.status)
    if e.code then what = what .. " " .. tostring(e.code) end
    if e.reason and e.reason ~= "" then what = what .. ": " .. tostring(e.reason) end
  else
    what = e.reason or e.kind
  end
  local tries = (e.attempts or 1) > 1 and (" (after %d attempts)"):format(e.attempts) or ""
  return where .. ": " .. what .. tries
end

local function new_error(kind, request, fields)
  fields.method, fields.url = request.method, request.url
  local e = errors.new(kind, nil, fields)
  e.message = describe(e)
  return e
end

-- Responses --------------------------------------------------------------

local Response = {}

-- `headers` is made on first use from the raw block the transport gave.
Response.__index = function(self, key)
  if key == "headers" then
    local headers = new_headers(rawget(self, "header_block") or "")
    rawset(self, "headers", headers)
    return headers
  end
  return Response[key]
end

local function not_json(self, err)
  error(errors.new("network", ("%s %s: %d, but the answer is not valid JSON (%s)"):format(
    rawget(self, "method") or "GET", M.redact_url(self.url or "?"), self.status or 0,
    errors.message(err):gsub("^json: ", "")), {code = "malformed", status = self.status, url = self.url}), 0)
end

--- The body decoded as JSON (cached). A body that is not JSON (cut short,
--- an HTML error page) raises a network error naming the request: it is
--- the service's fault, not the script's.
--- With {without = names}, those members are left out of every object,
--- as kapi.json.decode leaves them out (cached for that list).
function Response:json(opts)
  local without = opts and opts.without
  if self._json == nil or rawget(self, "_json_without") ~= without then
    local ok, value = pcall(json.decode, self.body, opts)
    if not ok then
      if errors.is(value, "usage") then error(value, 2) end
      not_json(self, value)
    end
    self._json, self._json_without = value, without
  end
  return self._json
end

--- Some members of the body's JSON object, as kapi.json.skim gives them
--- (the whole body checked, the rest made into nothing); a body that is
--- not JSON raises as response:json() does.
function Response:skim(wanted)
  if rawget(self, "_skimmed_for") == wanted then return self._skimmed end
  local ok, value = pcall(json.skim, self.body, wanted)
  if not ok then
    if errors.is(value, "usage") then error(value, 2) end
    not_json(self, value)
  end
  self._skimmed_for, self._skimmed = wanted, value -- asked again with the same table: the same answer
  return value
end

Response.__tostring = function(self)
  return ("HTTP %d, %d bytes from %s"):format(self.status, #self.body, M.redact_url(self.url))
end

-- Requests ----------------------------------------------------------------

-- Whether url goes to this machine: decided on the host libcurl parses
-- from it (the one it connects to), never on the text, where
-- http://127.0.0.1.evil.test/ and http://127.0.0.1@evil.test/ look like
-- loopback. The last answer is kept: requests repeat their base URL.
local last_loopback_url, last_loopback
local function is_loopback(url)
  if url == last_loopback_url then return last_loopback end
  local host, loopback = get_transport().url_host(url)
  last_loopback_url, last_loopback = url, host ~= nil and loopback
  return last_loopback
end
M.is_loopback = is_loopback

local warned_insecure = false

-- `level` points usage errors at the script's call.
local function allow_insecure(url, level)
  if not is_loopback(url) then
    errors.usage("http: insecure (no TLS verification) is allowed only for loopback hosts", level + 1)
  end
  if not warned_insecure then
    io.stderr:write("kapi: warning: TLS verification is off for ", url:match("^%a+://[^/]+"), "\n")
    warned_insecure = true
  end
end

-- The header lines to send and their names in lower case. Without headers
-- of its own a request sends the transport's defaults (Accept: JSON and
-- User-Agent), passed as nil: a list the transport built once.
local function build_headers(req)
  local lines, names = {}, {}
  for _, pair in ipairs(query_pairs(req.headers)) do
    names[pair[1]:lower()] = true
    lines[#lines + 1] = pair[1] .. ": " .. tostring(pair[2])
  end
  local content_type = (req.json ~= nil and "application/json")
                       or (req.form ~= nil and "application/x-www-form-urlencoded")
  if content_type and not names["content-type"] then
    lines[#lines + 1] = "Content-Type: " .. content_type
  end
  for i, line in ipairs(default_headers.lines) do
    if not names[default_headers.names[i]] then lines[#lines + 1] = line end
  end
  return lines, names
end

-- For a request carrying credentials.
local function refuse_plain_credentials(req)
  if req.url:match("^https://") or is_loopback(req.url) then return end
  errors.usage("http: refusing to send credentials over plain http:// to " ..
               req.url:match("^%a+://[^/]+") .. "; use https://", 4)
end

local function full_url(req)
  if req.query == nil then return req.url end
  local query = encode_query(req.query)
  if query == "" then return req.url end
  return req.url .. (req.url:find("?", 1, true) and "&" or "?") .. query
end

--- The URL a request goes to, query included, exactly as it is sent.
M.full_url = full_url

local function body_of(req)
  if req.json ~= nil then return json.encode(req.json) end
  if req.form ~= nil then return encode_query(req.form) end
  return req.body
end

local function attempts_allowed(req)
  if req.retry == false then return 1 end
  if math.type(req.retry) == "integer" then return math.max(1, req.retry) end
  if req.retry == true or IDEMPOTENT[req.method] then return defaults.attempts end
  return 1
end

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7,
                Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12}

-- Retry-After: seconds, or an HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT");
-- nil for anything else, which is no reason to wait. The fields are
-- checked before os.time sees them: it raises on a month it is not given
-- and on a year or day out of its range, and a server's header must never
-- turn a 503 into an internal error.
local function parse_retry_after(value)
  if not value then return nil end
  local seconds = tonumber(value)
  if seconds then return math.max(0, seconds) end
  local d, mon, y, h, mi, s = value:match("^%s*%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT%s*$")
  if not MONTHS[mon] then return nil end
  d, h, mi, s = tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  if d < 1 or d > 31 or h > 23 or mi > 59 or s > 60 then return nil end
  local t = os.time {year = tonumber(y), month = MONTHS[mon], day = d, hour = h, min = mi, sec = s}
  -- os.time read the fields as local time; correct to UTC.
  local utc_offset = os.time() - os.time(os.date("!*t"))
  return math.max(0, t + utc_offset - os.time())
end
M.parse_retry_after = parse_retry_after

local function backoff(attempt)
  local ceiling = math.min(defaults.backoff_cap, defaults.backoff_base * 2 ^ (attempt - 1))
  return math.random() * ceiling
end

local function log_attempt(req, url, attempt, status, started, request_headers, body)
  local ms = (core.now() - started) * 1000
  log.debug("%s %s -> %s (%.0f ms, attempt %d)", req.method, M.redact_url(url),
            tostring(status), ms, attempt)
  log.trace {time = os.date("!%Y-%m-%dT%H:%M:%SZ"), method = req.method,
             url = M.redact_url(url), attempt = attempt, status = status,
             ms = math.floor(ms + 0.5), request_headers = redact_headers(request_headers),
             request_body = M.redact_body(body, (req.json ~= nil and "application/json")
                                          or (req.form ~= nil and "application/x-www-form-urlencoded"))}
end

-- What a request sends: its header lines (nil: the transport's defaults),
-- the URL with its query, and the body. A request with no headers, query
-- or body of its own (most GETs) builds nothing.
local function prepare(req)
  local url = req.query == nil and req.url or full_url(req)
  if req.headers == nil and req.json == nil and req.form == nil and req.auth == nil then
    return nil, url, req.body -- the defaults carry no credentials
  end
  local headers, names = build_headers(req)
  if req.auth or names.authorization or names.hashcode then refuse_plain_credentials(req) end
  return headers, url, body_of(req)
end

-- One exchange: the response (a table, not yet a Response), or nil, the
-- failure's kind and message; and the URL it went to. Logged.
local function exchange(req, attempt)
  local send = transport or get_transport()
  local headers, url, body = prepare(req)
  local logging = log.verbose or log.tracing
  local started = logging and core.now()
  -- A failure comes back as nil, kind, message; the kind is logged as the status.
  local status, header_block, http_version, response_body, time, new_connections = send.request(
    req.method, url, headers, body, req.timeout or defaults.timeout,
    req.connect_timeout or defaults.connect_timeout, req.max_size or defaults.max_size,
    req.ca_file or defaults.ca_file, req.insecure, req.follow)
  if logging then
    log_attempt(req, url, attempt, status or header_block, started,
                headers or default_headers.lines, body)
  end
  if not status then
    local kind, message = header_block, http_version
    return nil, kind, message, url
  end
  return {status = status, header_block = header_block, http_version = http_version,
          body = response_body, time = time, new_connections = new_connections,
          url = url, method = req.method, attempts = attempt}, nil, nil, url
end

local function failure(req, kind, message, url, attempts)
  local e = new_error(kind == "timeout" and "timeout" or (kind == "usage" and "usage" or "network"),
                      req, {reason = message, code = kind, attempts = attempts})
  -- No connection, or no TLS session: the request never left.
  if kind == "connect" or kind == "tls" then e.sent = false end
  e.url = url
  e.message = describe(e)
  return e
end

local function http_error(req, result, url, attempts)
  local parsed = M.parse_error_body(result.body)
  local e = new_error("http", req, {status = result.status, code = parsed.code,
                                    reason = parsed.reason, request_id = parsed.request_id,
                                    attempts = attempts, body = result.body,
                                    headers = new_headers(result.header_block)})
  e.url = url
  e.message = describe(e)
  return e
end

local function is_expired_token(result)
  if result.status ~= 401 then return false end
  local parsed = M.parse_error_body(result.body)
  return parsed.code == nil or parsed.code == "invalid_token"
end

local MAX_RENEWALS = 5

--- The Authorization header a request carries (headers as a map or as a
--- list of pairs); "" when it has none.
local function authorization_of(req)
  local headers, value = req.headers, nil
  if type(headers) ~= "table" then return "" end
  if headers[1] ~= nil then
    for _, pair in ipairs(headers) do
      if type(pair[1]) == "string" and pair[1]:lower() == "authorization" then value = pair[2] end
    end
  else
    for name, v in pairs(headers) do
      if type(name) == "string" and name:lower() == "authorization" then value = v end
    end
  end
  return type(value) == "string" and value or ""
end
M.authorization_of = authorization_of

-- Runs the attempts: returns the response, or raises the error of the last.
local function perform(req)
  local attempt, renewals, refused, auth = 0, 0, nil, req.auth
  while true do
    attempt = attempt + 1
    if auth then auth:authorize(req) end
    local result, kind, message, url = exchange(req, attempt)
    local retryable, wait
    if result then
      -- A token refused is renewed, once per token: requests that share
      -- a token all hear of its end, and one whose renewed token was
      -- refused in turn (revoked while others used it) renews again, up
      -- to MAX_RENEWALS; the same token refused twice is the answer.
      local carried = auth and auth.renew and is_expired_token(result) and authorization_of(req)
      if carried and carried ~= refused and renewals < MAX_RENEWALS then
        renewals, refused = renewals + 1, carried
        auth:renew(result, req)
        attempt = attempt - 1 -- a renewal is not a retry
        goto continue
      end
      if result.status < 400 or req.raise == false then
        local response = setmetatable(result, Response)
        -- expect_json: a success whose body is not JSON (cut short by a
        -- broken connection, a proxy's HTML page) is a transport failure,
        -- retried as a reset is when the request may be repeated.
        if not req.expect_json or result.status >= 300 or result.body == "" then return response end
        local ok, err
        if req.expect_json == true then ok, err = pcall(response.json, response)
        else ok, err = pcall(response.skim, response, req.expect_json) end
        if ok then return response end
        if attempt >= attempts_allowed(req) then error(err, 0) end
        goto retry
      end
      -- final: statuses that answer for good (Kroger's public 429: the
      -- day's budget is spent, so a retry only burns time).
      retryable = RETRY_STATUS[result.status] and not (req.final and req.final[result.status])
      local after = parse_retry_after(new_headers(result.header_block)["retry-after"])
      if after then wait = math.min(after, defaults.retry_after_cap) end
      if not retryable or attempt >= attempts_allowed(req) then
        error(http_error(req, result, url, attempt), 0)
      end
    else
      retryable = kind == "network" or kind == "timeout" or kind == "connect"
      if not retryable or attempt >= attempts_allowed(req) then
        error(failure(req, kind, message, url, attempt), 0)
      end
    end
    ::retry::
    require("kapi.task").sleep(wait or backoff(attempt))
    ::continue::
  end
end

local METHODS = {GET = true, HEAD = true, POST = true, PUT = true, DELETE = true,
                 PATCH = true, OPTIONS = true}

-- The last URL that passed check_url. Most requests repeat a URL (a base
-- URL and a path; the query is apart), and Lua's pattern matcher costs
-- more than all the rest of a request's checks. (No URL equals a new table.)
local last_good_url = {}

-- Usage errors point at the script's call, `level` up.
local function check_url(url, level)
  if url == last_good_url then return end
  if type(url) ~= "string" or not match(url, "^https?://[^/]") then
    errors.usage(("http: url must be an http:// or https:// URL, got %s"):format(tostring(url)), level + 1)
  end
  last_good_url = url
end

-- The kinds of value each option takes ("any" for json). A wrong kind, or
-- an option kapi does not know (a typo: timout = 5), is refused at once,
-- named, instead of failing somewhere below or being ignored.
local OPTION_KINDS = {
  method = "string", url = "any", -- url: check_url says what a URL must be
  query = "table", headers = "table", body = "string", json = "any",
  form = "table", timeout = "number", connect_timeout = "number", retry = "boolean|number", auth = "table",
  raise = "boolean", max_size = "number", ca_file = "string", insecure = "boolean", follow = "boolean",
  final = "table", expect_json = "boolean|table",
}
local OPTION_NAMES = {}
for name in pairs(OPTION_KINDS) do OPTION_NAMES[#OPTION_NAMES + 1] = name end
table.sort(OPTION_NAMES)
-- The same as sets of type names, read per request: a string search per
-- option cost a C call each.
local ANY = setmetatable({}, {__index = function() return true end})
local OPTION_TYPES = {}
for name, kind in pairs(OPTION_KINDS) do
  local accepted = {}
  for t in kind:gmatch("[^|]+") do accepted[t] = true end
  OPTION_TYPES[name] = kind == "any" and ANY or accepted
end

-- Header names are RFC 9110 tokens, and no value holds a CR, LF or NUL:
-- either would let a value end its line and add headers of its own (or a
-- whole request). nil when name and value can be sent, else why not.
local function header_problem(name, value)
  if not match(name, "^[%w!#$%%&'*+%-.^_`|~]+$") then
    return ("%s is not a header name (letters, digits and !#$%%&'*+-.^_`|~)"):format(errors.shown(name))
  end
  if type(value) == "string" and value:find("[\0\r\n]") then
    return ("the value of %s has a CR, LF or NUL in it"):format(errors.excerpt(name))
  end
end
M.header_problem = header_problem

local function check_headers(headers, level)
  for key, value in pairs(headers) do
    local name
    if math.type(key) == "integer" and type(value) == "table" then
      name, value = value[1], value[2]
    elseif type(key) == "string" then
      name = key
    end
    if type(name) ~= "string" or (type(value) ~= "string" and type(value) ~= "number") then
      errors.usage("http.request: headers must be {Name = value, ...} or {{name, value}, ...} with string values",
                   level + 1)
    end
    local problem = header_problem(name, value)
    if problem then errors.usage("http.request: headers: " .. problem, level + 1) end
  end
end

-- Raises, naming it, for the first option of req that kapi does not know
-- or whose value is of the wrong type.
local function check_option_types(req, level)
  for name, value in next, req do
    local accepted = OPTION_TYPES[name]
    if not accepted then
      local guess = require("kapi.parsing").suggest(tostring(name), OPTION_NAMES)
      errors.usage(("http.request: unknown option %s%s"):format(errors.excerpt(name),
                   guess and (" (did you mean %s?)"):format(guess) or ""), level + 1)
    end
    if not accepted[type(value)] then
      local kind = OPTION_KINDS[name]
      errors.usage(("http.request: %s must be %s, got %s"):format(name, kind:gsub("|", " or "), type(value)), level + 1)
    end
  end
end

-- The checks of a request past its options' types: its headers, query,
-- form and URL, and the options that exclude or need each other.
local function check_contents(req, level)
  if req.headers then check_headers(req.headers, level + 1) end
  if req.query then check_query(req.query, "http.request: query") end
  if req.form then check_query(req.form, "http.request: form") end
  local url = req.url
  check_url(url, level + 1)
  if req.insecure then allow_insecure(url, level + 1) end
  if req.json ~= nil and (req.body ~= nil or req.form ~= nil) then
    errors.usage("http.request: give one of body, json or form", level + 1)
  end
end

-- Checks a request's options and fills in its method. Usage errors point
-- at the script's call: request{} or open{}, two levels up.
local function normalize(req)
  check_option_types(req, 3)
  check_contents(req, 3)
  local method = req.method or "GET"
  if not METHODS[method] then
    method = method:upper()
    -- A method goes into the request line as it is: a space or a CR LF in
    -- it would write a request line of its own.
    if not METHODS[method] and not match(method, "^[%u%d_%-]+$") then
      errors.usage(("http.request: method %s is not an HTTP method (letters, digits, - and _)")
                   :format(errors.shown(req.method)), 3)
    end
  end
  req.method = method
  return req
end

--- request{method, url, query, headers, body | json | form, timeout,
--- connect_timeout, retry, auth, raise, max_size, ca_file, insecure, follow}
function M.request(req)
  if type(req) ~= "table" then errors.usage("http.request: expects a table of options", 2) end
  return perform(normalize(req))
end

local function shortcut(method)
  local name = "http." .. method:lower()
  return function(url, opts)
    if opts == nil then -- the commonest call: only the URL to check
      check_url(url, 2)
      return perform({method = method, url = url})
    end
    if type(opts) ~= "table" then errors.check(opts, "table", name .. ": opts") end
    -- The options are copied and their types checked in one pass.
    local req = {method = method, url = url}
    for k, v in next, opts do
      local accepted = OPTION_TYPES[k]
      if not (accepted and accepted[type(v)]) then check_option_types(opts, 2) end
      req[k] = v
    end
    req.method, req.url = method, url -- the shortcut's, whatever opts says
    check_contents(req, 2)
    return perform(req)
  end
end

M.get, M.head, M.post, M.put, M.delete =
  shortcut("GET"), shortcut("HEAD"), shortcut("POST"), shortcut("PUT"), shortcut("DELETE")

--- open{...}: a streaming response; see docs/api.md.
function M.open(req)
  if type(req) ~= "table" then errors.usage("http.open: expects a table of options", 2) end
  req = normalize(req)
  local send = get_transport()
  local headers, url, body = prepare(req)
  local stream = send.open(
    req.method, url, headers, body, req.timeout or 0,
    req.connect_timeout or defaults.connect_timeout, req.max_size,
    req.ca_file or defaults.ca_file, req.insecure, req.follow)
  local status, header_block, http_version = stream:head()
  if not status then -- nil, kind, message
    stream:close()
    local kind, message = header_block, http_version
    error(failure(req, kind, message, req.url, 1), 0)
  end
  local head = {status = status, header_block = header_block, http_version = http_version,
                url = req.url, method = req.method, attempts = 1}
  if head.status >= 400 and req.raise ~= false then
    local chunks = {}
    for chunk in function() return stream:read() end do chunks[#chunks + 1] = chunk end
    stream:close()
    head.body = table.concat(chunks)
    error(http_error(req, head, req.url, 1), 0)
  end
  head.headers = new_headers(head.header_block)
  head.stream = stream
  --- Iterates over the body in chunks; `for chunk in res:chunks() do`.
  function head.chunks()
    return function()
      local chunk, k, m = stream:read()
      if chunk == nil and k then error(failure(req, k, m, req.url, 1), 0) end
      return chunk
    end
  end
  function head.close() stream:close() end
  return setmetatable(head, {__close = head.close, __index = Response.__index})
end

--- Limits on connections: {max_host_connections = 64, max_total_connections = 256}.
function M.configure(opts)
  errors.check(opts, "table", "http.configure: opts")
  errors.check_options(opts, {max_host_connections = "number", max_total_connections = "number"}, "http.configure")
  errors.check_whole(opts.max_host_connections, 1, nil, "http.configure: max_host_connections", true)
  errors.check_whole(opts.max_total_connections, 1, nil, "http.configure: max_total_connections", true)
  get_transport().configure(opts)
end

function M.version()
  return get_transport().version()
end

doc.declare("kapi.http.request", M.request, [[
kapi.http.request{method, url, query, headers, body | json | form, ...} -> response
Sends a request and returns the response: status, headers (case-insensitive,
headers:all(name) for repeated ones), body, res:json(), res:skim(wanted)
(some members of a JSON object, as kapi.json.skim), attempts, time.
A status of 400 or more raises an error (kind "http", with status, code and
reason read from Kroger's or 1WorldSync's error body) unless raise = false;
failures to connect raise kind "network" or "timeout". GET, HEAD and OPTIONS
are retried on network errors and 408/429/5xx with backoff and Retry-After;
other methods only with retry = true. Options: timeout, connect_timeout
(seconds), retry (true, false or a number of attempts), final (statuses
never retried: {[429] = true}), expect_json (a 2xx whose body is not JSON
fails as a broken transfer does, retried when the request may be; a table
of names checks the body by res:skim(it), decoding it only when asked),
auth, max_size, ca_file, insecure (loopback only), follow (redirects).
Example:
  local res = kapi.http.request{method = "POST", url = "https://example.test/v1/items",
                                json = {name = "milk"}, timeout = 10}
  print(res.status, res:json().id)]])

doc.declare("kapi.http.get", M.get, [[
kapi.http.get(url, opts) -> response
kapi.http.request with method GET; also head, post, put and delete.
Example:
  local res = kapi.http.get("https://example.test/v1/chains", {query = {limit = 5}})]])

doc.declare("kapi.http.open", M.open, [[
kapi.http.open{method, url, ...} -> response with :chunks()
A streaming response for large downloads: the body is not kept; iterate it
in chunks. Close it (or use <close>) to stop the transfer early.
Example:
  local res <close> = kapi.http.open{url = "https://example.test/export.csv"}
  for chunk in res:chunks() do out:write(chunk) end]])

doc.declare("kapi.http.encode_query", M.encode_query, [[
kapi.http.encode_query(query) -> string
Encodes a query per RFC 3986. query is a list of {name, value} pairs (order
kept, names may repeat) or a table name = value | {values} (names sorted).
Example:
  kapi.http.encode_query{{"q", "milk & eggs"}, {"q", "2"}}  --> "q=milk%20%26%20eggs&q=2"]])

return M
