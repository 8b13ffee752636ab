-- Faults the sandbox injects so that clients can prove they survive them:
-- `--faults "5xx=0.05,reset=0.01,slow=0.01:2s,malformed=0.01,expire=0.02"`
-- (rates per request, drawn from the seed, so a run can be repeated), and
-- the header `X-Sandbox-Fault: 5xx|reset|slow[:2s]|malformed|expire` that
-- forces one fault on one request.
local catalog = require "kapi.sandbox.catalog"
local oauth = require "kapi.sandbox.oauth"

local M = {}

M.KINDS = {"5xx", "reset", "slow", "malformed", "expire"}
local KNOWN = {}
for _, kind in ipairs(M.KINDS) do KNOWN[kind] = true end

local function seconds(text)
  local n, unit = (text or ""):match("^([%d.]+)(m?s?)$")
  n = tonumber(n)
  if not n then return nil end
  return unit == "ms" and n / 1000 or n
end

--- Parses a --faults value: the faults by kind ({rate, seconds}), or nil
--- and what is wrong with it.
function M.parse(spec)
  local faults = {}
  for part in (spec or ""):gmatch("[^,%s]+") do
    local kind, rate, extra = part:match("^([%w]+)=([^:]*):?(.*)$")
    if not kind and KNOWN[part] then return nil, ("%s needs a rate, e.g. %s=0.05"):format(part, part) end
    if not kind or not KNOWN[kind] then
      local name = part:match("^[^=]*")
      return nil, ('unknown fault "%s" (known: %s)'):format(require("kapi.errors").excerpt(name), table.concat(M.KINDS, ", "))
    end
    -- Two patterns, each read once: "^%d*%.?%d+$" went back over a run
    -- of digits for each digit of it (100,000 took minutes).
    rate = (rate:match("^%d+$") or rate:match("^%d*%.%d+$")) and tonumber(rate)
    if not rate or rate < 0 or rate > 1 then return nil, ("the rate of %s must be between 0 and 1"):format(kind) end
    local fault = {rate = rate}
    if kind == "slow" then
      fault.seconds = extra == "" and 2 or seconds(extra)
      if not fault.seconds then return nil, "slow takes a duration, e.g. slow=0.01:2s" end
    end
    faults[kind] = fault
  end
  return faults
end

local function applies(req)
  local path = req.path
  return (path:match("^/v1/") and not path:match("^/v1/connect/")) or path:match("^/V1/")
         or path:match("^/items/")
end

--- The fault to inflict on this request, if any: {kind, seconds}.
function M.pick(state, req)
  if not applies(req) then return nil end
  local forced = req.headers["x-sandbox-fault"]
  if forced then
    local kind, extra = forced:match("^(%w+):?(.*)$")
    if KNOWN[kind] then return {kind = kind, seconds = seconds(extra) or 2} end
  end
  local faults = state.faults
  if not faults then return nil end
  local draw = state.fault_draw()
  for _, kind in ipairs(M.KINDS) do
    local fault = faults[kind]
    if fault then
      if draw < fault.rate then return {kind = kind, seconds = fault.seconds} end
      draw = draw - fault.rate
    end
  end
end

local function server_error(state, req)
  if req.path:match("^/V1/") or req.path:match("^/items/") then
    return {status = 500, json = {requestId = "fault", code = "INTERNAL_SERVER_ERROR",
                                  reason = "Internal server error"}}
  end
  return {status = 500, json = {errors = {reason = "Internal server error", code = "PRODUCT-4011-500",
                                          timestamp = state.now_ms()}}}
end

--- Answers req with the fault, calling handle(req) where a real answer is
--- needed.
function M.apply(state, req, fault, handle)
  local kind = fault.kind
  if kind == "5xx" then return server_error(state, req) end
  if kind == "reset" then return {reset = true} end
  if kind == "slow" then
    -- As across a slow link: the request reaches the server halfway
    -- through the delay, is answered there, and the answer takes the rest.
    -- The sandbox, one thread, works out the answers of requests held
    -- together one after the other: in the middle of the delay, once they
    -- have all come in, that takes nothing from any request's own time.
    local core, task = require "kapi.core", require "kapi.task"
    local due = core.now() + fault.seconds
    task.sleep(fault.seconds / 2)
    local res = require("kapi.server").encoded(handle(req))
    local left = due - core.now()
    if left > 0 then task.sleep(left) end
    return res
  end
  if kind == "expire" then
    local token = (req.headers.authorization or ""):match("^[Bb]earer%s+(%S+)$")
    if token then oauth.expire(state, token) end
    return handle(req)
  end
  -- malformed: a success whose body is cut in half
  local res = handle(req)
  local body = res.body or (res.json and require("kapi.json").encode(res.json)) or ""
  res.json, res.body = nil, body:sub(1, #body // 2)
  return res
end

--- Sets up a sandbox state for faults (opts.faults: a --faults value).
function M.init(state, opts)
  if opts.faults and opts.faults ~= "" then
    local faults, err = M.parse(opts.faults)
    if not faults then require("kapi.errors").usage("--faults: " .. err, 0) end
    state.faults = faults
  end
  state.fault_draw = catalog.generator((state.catalog.seed or 1) * 31 + 17)
end

return M
