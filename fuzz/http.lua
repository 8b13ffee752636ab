-- Fuzz target: a server's answer, whatever it holds, through kapi's
-- response path. The input is written as it is to the connection of a
-- request (fuzz/peer.c answers on loopback, then closes), so it passes
-- libcurl and the binding (bindings/http.c: headers and body collected,
-- the header block, the streaming reader) and then the policy of
-- scripts/kapi/http.lua (headers split and trimmed, error bodies read,
-- Retry-After, expect_json). The same bytes also go straight to the
-- policy's parsers: as a raw header block, an error body, a Retry-After
-- value, and a request body and URL query to redact for the logs.
--
-- kapi's own errors for a bad answer (kinds http and network) are clean;
-- any other error is a finding, and so is a timeout: the peer closes at
-- once, so nothing may wait for long.
local peer = require "fuzz.peer"
local http = require "kapi.http"
local errors = require "kapi.errors"

local responder = peer.listen()
local url = ("http://127.0.0.1:%d/fuzz"):format(responder:port())
http.version() -- libcurl loads now, not in the first input

local CLEAN = {http = true, network = true}

local function check(cond, what, ...)
  if not cond then error(what:format(...), 0) end
end

local function check_clean(ok, err, what)
  if ok then return end
  check(errors.is(err) and CLEAN[err.kind], "%s raised %s", what, errors.message(err))
  check(type(err.message) == "string", "%s: an error without a message", what)
end

-- What a script does with a response: headers by name and in order, JSON.
local function use(res)
  check(math.type(res.status) == "integer", "status %s", tostring(res.status))
  for name, value in res.headers:each() do
    check(type(name) == "string" and type(value) == "string", "a header that is no string")
  end
  local _ = res.headers["content-type"], res.headers:all("Set-Cookie"), tostring(res.headers)
  local ok, err = pcall(res.json, res)
  check_clean(ok, err, "res:json()")
end

local function request()
  local ok, res = pcall(http.request, {url = url, retry = false, timeout = 5, expect_json = true})
  if ok then use(res) else check_clean(ok, res, "http.request") end
  local ok2, res2 = pcall(http.request, {url = url, retry = false, timeout = 5, raise = false})
  if ok2 then use(res2) else check_clean(ok2, res2, "http.request{raise = false}") end
end

local function stream()
  local ok, err = pcall(function()
    local res <close> = http.open {url = url, timeout = 5, max_size = 4096}
    for name in res.headers:each() do check(type(name) == "string", "a header name that is no string") end
    for chunk in res.chunks() do check(type(chunk) == "string", "a chunk that is no string") end
  end)
  check_clean(ok, err, "http.open")
end

local function parsers(data)
  local headers = http.new_headers(data)
  for name, value in headers:each() do
    check(not name:find("[\r\n]") and not value:find("[\r\n]"), "a header line kept a line end")
  end
  local _ = headers["retry-after"], tostring(headers)
  for _, value in ipairs(headers:all("retry-after")) do
    local after = http.parse_retry_after(value)
    check(after == nil or after >= 0, "Retry-After %q gave %s", value, tostring(after))
  end
  local after = http.parse_retry_after(data:match("^[^\r\n]*"))
  check(after == nil or after >= 0, "Retry-After gave %s", tostring(after))
  local parsed = http.parse_error_body(data)
  check(type(parsed) == "table" and (parsed.reason == nil or type(parsed.reason) ~= "table"),
        "parse_error_body gave no table or a table as its reason")
  for _, content_type in ipairs {"application/json", "application/x-www-form-urlencoded", false} do
    local shown = http.redact_body(data, content_type or nil)
    check(data == "" or type(shown) == "string", "redact_body gave %s", type(shown))
  end
  check(type(http.redact_url("http://127.0.0.1/p?" .. data)) == "string", "redact_url gave no string")
end

-- Each input's requests run on a transfer that has served a response
-- before (the pool hands back the last one given), as most of kapi's do:
-- libcurl keeps state across a handle's transfers (docs/reliability.md).
local WARM = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

return function(data)
  parsers(data)
  responder:answer(WARM)
  check(http.get(url, {retry = false, timeout = 5}).body == "{}", "the warm-up request failed")
  responder:answer(data)
  request()
  stream()
end
