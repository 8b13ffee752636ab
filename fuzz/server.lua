-- Fuzz target: the embedded server's request path with the sandbox behind
-- it. The input is written as it is to a loopback connection of a sandbox
-- running in this process (bindings/server.c on libmicrohttpd, then
-- scripts/kapi/server.lua and the sandbox's routes), the writing side is
-- closed, and the loop runs until the server closes the connection or its
-- answer has come (fuzz/peer.c). A crash, a sanitizer report, no answer
-- to a whole request and no close in 8 s (a hang) or a handler that fails
-- (a 500, told on stderr) is a finding.
--
-- What a fuzzer cannot guess is given: bearer tokens fuzz-partner,
-- fuzz-customer and fuzz-public name grants made here (a partner app, a
-- customer of it, a public app; made again before each input, as one
-- may expire every token); timestamp=NOW in an input becomes the current
-- time, and a header value SIGN
-- becomes the request's Content1 signature, so signed calls reach their
-- handlers. A slow fault (X-Sandbox-Fault: slow:N) sleeps 10 ms at most:
-- a slow answer is the sandbox's feature, not a hang.
local peer = require "fuzz.peer"
local sandbox = require "kapi.sandbox"
local oauth = require "kapi.sandbox.oauth"
local faults = require "kapi.sandbox.faults"
local crypto = require "kapi.core.crypto"

local pick = faults.pick
function faults.pick(state, req)
  local fault = pick(state, req)
  if fault and fault.seconds then fault.seconds = math.min(fault.seconds, 0.01) end
  return fault
end

-- A handler's failure is reported on stderr as "kapi: server: a request
-- handler failed: ..." and answered 500 with this body.
local FAILED = '"error":"internal_error"'

local sb = sandbox.start {seed = 1, products = 300, stores = 20, items = 60, coupons = 50, review_delay = 0}
local state = sb.state
local function grant_tokens()
  local forever = math.huge
  state.tokens["fuzz-partner"] = {client = "kapi-sandbox", scopes = oauth.PARTNER_SCOPES, expires = forever}
  state.tokens["fuzz-customer"] = {client = "kapi-sandbox", scopes = oauth.PARTNER_SCOPES,
                                   customer = state.customer, expires = forever}
  state.tokens["fuzz-public"] = {client = "kapi-sandbox-public", scopes = oauth.PUBLIC_SCOPES, expires = forever}
end

local function signed(data)
  if data:find("timestamp=NOW", 1, true) then
    local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
    data = data:gsub("timestamp=NOW", function() return "timestamp=" .. now end)
  end
  if not data:find(": SIGN", 1, true) then return data end
  local uri = data:match("^%u+ (%S+)")
  if not uri then return data end
  local path, query = uri:match("^([^?]*)%??(.*)$")
  local hash = crypto.base64(crypto.hmac_sha256(state.content1.secret, path .. "?" .. query))
  return (data:gsub(": SIGN", function() return ": " .. hash end))
end

-- Findings known and not fixed yet (docs/reliability.md), each with its
-- reproducer in fuzz/corpus/known/: a handler failing on an input that
-- meets one is not reported again, so that a campaign goes on past it.
-- An entry goes when its fix lands.
local KNOWN = {}

local function known(data)
  for _, is in ipairs(KNOWN) do
    if is(data) then return true end
  end
  return false
end

local function check(cond, what, ...)
  if not cond then error(what:format(...), 0) end
end

-- How long an answer may pause before it counts as whole: the sandbox
-- answers at once, from a buffer.
local QUIET = 0.002

-- Whether the input's first request is whole, so that the server owes it
-- an answer. libmicrohttpd (in epoll mode) does not see the client end its
-- side while it waits for more of a request, so one cut short is answered
-- only when its header deadline or idle timeout comes, seconds later:
-- that is no hang, and such an input waits a moment for an early answer
-- (a 400) only.
-- It also reads each line as a C string and skips empty lines before the
-- request line, so a line beginning with a NUL byte is one it skips: a
-- head with no other line leaves it waiting for its request line.
local function whole(data)
  local head_end, body_start = data:find("\r?\n\r?\n")
  if not head_end then return false end
  local head = data:sub(1, head_end):lower()
  local request_line = false
  for line in head:gmatch("[^\n]+") do
    if line:match("^[^\0\r]") then request_line = true break end
  end
  if not request_line then return false end
  if head:find("\nexpect:") or head:find("\ntransfer%-encoding:") then return false end
  local length = head:match("\ncontent%-length:[ \t]*(%d+)[ \t]*\r?\n")
  if head:find("\ncontent%-length:") and not length then return false end
  return #data - body_start >= (tonumber(length) or 0)
end

return function(data)
  grant_tokens()
  data = signed(data)
  local wait = whole(data) and 8 or QUIET
  local answer, how = peer.send(sb.port, data, wait, QUIET)
  -- FUZZ_SHOW=1: each answer on stderr, to see what an input reaches.
  if os.getenv("FUZZ_SHOW") then io.stderr:write(how, " ", answer:sub(1, 400), "\n") end
  check(how ~= "timeout" or wait < 1, "the server neither answered nor closed in 8 s")
  check(how ~= "refused", "the server refused the connection")
  check(not (answer:find("HTTP/1%.%d 500 ") and answer:find(FAILED, 1, true)) or known(data),
        "a request handler failed: %s", answer:sub(1, 300))
end
