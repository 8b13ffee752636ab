-- Stoplight Prism for the conformance specs: mock servers and validating
-- proxies built from the providers' OpenAPI documents, started once per
-- spec file on free loopback ports and stopped with their process group;
-- and a path-routing reverse proxy in this process that puts the right
-- Prism behind each path (kapi's Kroger client has one base URL for every
-- endpoint) and keeps what Prism said about every exchange.
local kapi = require "kapi"
local json = require "kapi.json"
local process = require "helpers.process"

local M = {}

M.bin = process.source_dir .. "/tests/tools/node_modules/.bin/prism"

--- The OpenAPI document to test against: the corrected copy when there is
--- one (tests/data/openapi/README.md says why), else the one published.
function M.document(path)
  local dir = process.source_dir .. "/tests/data/openapi/"
  local corrected = dir .. "corrected/" .. path:match("[^/]+$")
  local f = io.open(corrected)
  if f then f:close(); return corrected end
  return dir .. path
end

-- A loopback port nobody listens on now (the kernel's choice).
local function free_port()
  local srv = kapi.server.listen {handler = function() return {status = 503} end}
  local port = srv.port
  srv:close()
  return port
end

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local text = f:read("a")
  f:close()
  return text
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

local Instance = {}
Instance.__index = Instance

-- This process's id (the parent of the shell io.popen starts).
local function own_pid()
  local p = io.popen("echo $PPID")
  local pid = p:read("l")
  p:close()
  return pid
end

-- Starts one Prism in a process group of its own (setsid), under a shell
-- that leads the group and ends Prism when this process is gone (a test
-- run killed before its teardown leaves nothing behind).
local function spawn(self)
  self.port = free_port()
  self.log = self.dir .. "/prism-" .. self.name .. ".log"
  os.remove(self.log)
  local words = {process.quote(M.bin)}
  for _, a in ipairs(self.args) do words[#words + 1] = process.quote(a) end
  for _, a in ipairs {"-h", "127.0.0.1", "-p", tostring(self.port), "--errors"} do
    words[#words + 1] = a
  end
  M.parent = M.parent or own_pid()
  local watch = ("%s & prism=$!; while kill -0 %s 2>/dev/null && kill -0 $prism 2>/dev/null; do sleep 1; done; "
                 .. "kill $prism 2>/dev/null"):format(table.concat(words, " "), M.parent)
  -- Prism talks to loopback only: no proxy of the environment is used.
  local p = io.popen(("env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY "
                      .. "NODE_ENV=test setsid sh -c %s > %s 2>&1 < /dev/null & echo $!")
                     :format(process.quote(watch), process.quote(self.log)))
  self.pid = p:read("l")
  p:close()
  self.url = ("http://127.0.0.1:%d"):format(self.port)
end

--- Waits until every instance listens (Prism says so in its log), starting
--- again on another port one that lost its port to another process.
local function wait_all(instances, timeout)
  local deadline = kapi.now() + timeout
  local waiting = {}
  for _, i in ipairs(instances) do waiting[#waiting + 1] = i end
  while #waiting > 0 do
    local still = {}
    for _, i in ipairs(waiting) do
      local log = read(i.log)
      if log:find("Prism is listening on " .. i.url, 1, true) then
        i.ready = true
      elseif not alive(i.pid) then
        if log:find("EADDRINUSE", 1, true) and i.tries < 5 then
          i.tries = i.tries + 1
          spawn(i)
          still[#still + 1] = i
        else
          error(("prism %s (%s) stopped before it listened:\n%s"):format(i.name, table.concat(i.args, " "), log), 0)
        end
      else
        still[#still + 1] = i
      end
    end
    waiting = still
    if #waiting > 0 then
      if kapi.now() > deadline then
        error(("prism %s did not listen within %d s:\n%s"):format(waiting[1].name, timeout, read(waiting[1].log)), 0)
      end
      kapi.sleep(0.05)
    end
  end
end

--- start(dir, {{name, args = {"mock", DOC} | {"proxy", DOC, UPSTREAM}}, ...})
--- -> instances by name (each with url, port, log; :stop()). All start at
--- once; the call returns when every one listens.
function M.start(dir, specs, opts)
  local f = io.open(M.bin)
  if not f then
    error("Prism is not installed (" .. M.bin .. "): run `make test-deps` (make test does)", 0)
  end
  f:close()
  local instances, by_name = {}, {}
  for _, s in ipairs(specs) do
    local i = setmetatable({name = s.name, args = s.args, dir = dir, tries = 0}, Instance)
    spawn(i)
    instances[#instances + 1], by_name[s.name] = i, i
  end
  local ok, err = pcall(wait_all, instances, opts and opts.timeout or 120)
  if not ok then
    for _, i in ipairs(instances) do i:stop() end
    error(err, 0)
  end
  return by_name, instances
end

--- Stops instances and everything in their process groups, at once
--- (KILL: a mock keeps nothing worth a graceful exit, and Prism's takes
--- a second; dash's kill takes -PID, not -- -PID).
function M.stop_all(instances)
  for _, i in pairs(instances or {}) do
    if i.pid and not i.stopped then
      i.stopped = true
      os.execute("kill -KILL -" .. i.pid .. " 2>/dev/null")
    end
  end
end

function Instance:stop() M.stop_all {self} end

-- The router ------------------------------------------------------------------------

-- Headers a proxy does not pass on (hop by hop, or set by the transport).
local HOP = {connection = true, ["keep-alive"] = true, ["transfer-encoding"] = true, ["content-length"] = true,
             host = true, te = true, trailer = true, upgrade = true, ["proxy-connection"] = true,
             ["accept-encoding"] = true, expect = true, prefer = true}

local Router = {}
Router.__index = Router

--- router{routes = {{prefix, url[, check, statuses]}, ...}, prefer = fn(req)
--- -> Prefer header or nil} -> a server in this process forwarding each
--- request, path and query exactly as they came, to the url of the
--- longest matching prefix (see Router:forward); router:take() gives the
--- exchanges {method, path, query, status, violations, body} since the
--- last call.
function M.router(opts)
  local self = setmetatable({routes = opts.routes, prefer = opts.prefer, exchanges = {}}, Router)
  self.server = kapi.server.listen {handler = function(req) return self:forward(req) end}
  self.url = self.server.url
  return self
end

function Router:target(path)
  local best
  for _, r in ipairs(self.routes) do
    if path:sub(1, #r[1]) == r[1] and (not best or #r[1] > #best[1]) then best = r end
  end
  return best
end

local function violations_of(header)
  if not header or header == "" then return {} end
  local ok, list = pcall(json.decode, header)
  if ok and type(list) == "table" then return list end
  return {{location = {"sl-violations"}, message = header}}
end

-- The violations Prism reported on a response: its sl-violations header,
-- or for a 422 it makes itself (no 4xx in the document) its body.
local function violations_in(res)
  local list = violations_of(res.headers["sl-violations"])
  if #list == 0 and (res.headers["content-type"] or ""):find("problem+json", 1, true) then
    local decoded, problem = pcall(json.decode, res.body)
    if decoded and type(problem) == "table" and type(problem.validation) == "table" then list = problem.validation end
  end
  return list
end

local function send(req, base, headers)
  local url = base .. req.raw_path .. (req.raw_query ~= "" and ("?" .. req.raw_query) or "")
  return pcall(kapi.http.request, {method = req.method, url = url, headers = headers,
                                   body = req.body ~= "" and req.body or nil, raise = false, retry = false,
                                   follow = false, timeout = 30})
end

-- A route {prefix, url} sends the request to url (a Prism) as it came. A
-- route {prefix, url, check = mock, statuses = {...}} is for a redirect
-- Prism's proxy would follow itself: the request goes to url (the
-- service) unchecked, and also to the Prism mock `check`, which judges the
-- request; the answer's status must be one of the document's.
function Router:forward(req)
  local route = self:target(req.raw_path)
  local exchange = {method = req.method, path = req.raw_path, query = req.raw_query, violations = {}}
  self.exchanges[#self.exchanges + 1] = exchange
  if not route then
    exchange.status, exchange.violations = 599, {{location = {"router"}, message = "no document for this path"}}
    return {status = 404, json = {errors = {code = "NO_ROUTE", reason = "no document for " .. req.raw_path}}}
  end
  exchange.route = route[1]
  local headers = {}
  for name, value in req.headers:each() do
    if not HOP[name:lower()] then headers[#headers + 1] = {name, value} end
  end
  local prefer = self.prefer and self.prefer(req)
  if prefer then headers[#headers + 1] = {"Prefer", prefer} end
  exchange.prefer = prefer
  if route.check then
    local checked, verdict = send(req, route.check, headers)
    if not checked then
      exchange.violations[#exchange.violations + 1] = {location = {"router"}, message = tostring(verdict)}
    else
      for _, v in ipairs(violations_in(verdict)) do
        if (v.location or {})[1] ~= "response" then exchange.violations[#exchange.violations + 1] = v end
      end
    end
  end
  local ok, res = send(req, route[2], headers)
  if not ok then
    exchange.status = 598
    exchange.violations[#exchange.violations + 1] = {location = {"router"}, message = tostring(res)}
    return {reset = true}
  end
  exchange.status = res.status
  if route.statuses then
    exchange.documented = route.statuses[res.status]
    if not exchange.documented then
      exchange.violations[#exchange.violations + 1] = {location = {"response"}, code = "status",
        message = ("status %d is not among the document's for this operation"):format(res.status)}
    end
  else
    for _, v in ipairs(violations_in(res)) do exchange.violations[#exchange.violations + 1] = v end
  end
  exchange.body = res.body
  local out = {}
  for _, name in ipairs {"content-type", "location", "retry-after", "www-authenticate"} do
    out[name] = res.headers[name]
  end
  return {status = res.status, headers = out, body = res.body}
end

--- The exchanges since the last call, and forgets them.
function Router:take()
  local list = self.exchanges
  self.exchanges = {}
  return list
end

function Router:close()
  self.server:close()
end

--- One line per problem in the exchanges: a violation Prism reported, or
--- a status outside 2xx (a redirect the document gives its operation
--- passes, on a route with statuses).
function M.problems(exchanges)
  local out = {}
  for _, e in ipairs(exchanges) do
    local where = ("%s %s%s -> %s"):format(e.method, e.path, e.query and e.query ~= "" and ("?" .. e.query) or "",
                                           tostring(e.status))
    for _, v in ipairs(e.violations or {}) do
      out[#out + 1] = ("%s: %s [%s] %s"):format(where, table.concat(v.location or {}, "."), tostring(v.code),
                                               tostring(v.message))
    end
    local status = e.status or 0
    local fine = (status >= 200 and status < 300) or (e.documented and status >= 300 and status < 400)
    if not fine and #(e.violations or {}) == 0 then
      out[#out + 1] = ("%s: status %s: %s"):format(where, tostring(e.status), (e.body or ""):sub(1, 300))
    end
  end
  return out
end

return M
