-- The daily call budgets of Kroger's public API: so many calls per
-- endpoint per client, counted from the first call of the day and reset 24
-- hours after it, with no header saying how many are left. A 429 there
-- means the day is spent, and retrying only burns time. So kapi counts the
-- calls itself, per service, client and endpoint, in the state directory
-- (safe across processes: each adds what it spent under a lock), warns
-- near the end and stops before a call the budget has no room for, naming
-- the endpoint, the budget and when it resets. Partner apps have no such
-- limits and are not counted; the built-in sandbox's counts live in memory.
local errors = require "kapi.errors"
local json = require "kapi.json"
-- The OS's reason, in time linear in a message that names a path of any length.
local after_last_colon = require("kapi.text").after_last_colon

local M = {}

M.DAY = 24 * 3600

--- Calls a day, by budget: the Products API as one, each Locations API
--- endpoint on its own, the Cart API, the Identity API.
M.BUDGETS = {
  products = 10000,
  locations = 1600, ["locations/{id}"] = 1600, chains = 1600, ["chains/{name}"] = 1600,
  departments = 1600, ["departments/{id}"] = 1600,
  cart = 5000, identity = 5000,
}

-- The share of a budget after which kapi warns, once a process.
M.WARN_AT = 0.9

-- Pending counts are added to the file after this many calls or seconds,
-- and when the process ends: a call costs no disk write of its own.
local FLUSH_CALLS, FLUSH_SECONDS = 50, 5

local ROUTES = {
  {"^/v1/products$", "products"}, {"^/v1/products/[^/]+$", "products"},
  {"^/v1/locations$", "locations"}, {"^/v1/locations/[^/]+$", "locations/{id}"},
  {"^/v1/chains$", "chains"}, {"^/v1/chains/[^/]+$", "chains/{name}"},
  {"^/v1/departments$", "departments"}, {"^/v1/departments/[^/]+$", "departments/{id}"},
  {"^/v1/cart/add$", "cart"}, {"^/v1/identity/profile", "identity"},
}

--- The budget a public API path is counted against, or nil (a partner
--- endpoint, not counted).
function M.endpoint(path)
  errors.check(path, "string", "limits.endpoint: path")
  for _, route in ipairs(ROUTES) do
    if path:find(route[1]) then return route[2] end
  end
end

--- Parses budgets given as text, "products=500,cart=50": the table, or
--- nil and what is wrong.
function M.parse(spec)
  errors.check(spec, "string", "limits.parse: spec")
  local out = {}
  for part in spec:gmatch("[^,]+") do
    local name, n = part:match("^%s*([%w/{}]+)=(%d+)%s*$")
    if not name then return nil, ('"%s": expected NAME=CALLS, e.g. products=500'):format(errors.excerpt(part)) end
    if not M.BUDGETS[name] then
      local names = {}
      for known in pairs(M.BUDGETS) do names[#names + 1] = known end
      table.sort(names)
      return nil, ('no budget named "%s" (%s)'):format(errors.excerpt(name), table.concat(names, ", "))
    end
    out[name] = math.tointeger(tonumber(n))
    if not out[name] or out[name] < 1 then return nil, ("%s: give at least 1 call"):format(name) end
  end
  if next(out) == nil then return nil, "no budget given" end
  return out
end

local function now() return os.time() end

local function when(t) return os.date("%Y-%m-%d %H:%M", t) end

local function thousands(n)
  local s = tostring(n)
  while true do
    local next_s, done = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
    if done == 0 then return s end
    s = next_s
  end
end

-- The file --------------------------------------------------------------------------

local function fs() return require "kapi.core.fs" end

local function dir() return M.directory or (require("kapi.paths").state_dir() .. "/limits") end

local function file_of(host, client_id)
  local c = require "kapi.core.crypto"
  return dir() .. "/" .. c.hex(c.sha256(host .. "\n" .. client_id)):sub(1, 24) .. ".json"
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return {} end
  local text = f:read("a")
  f:close()
  local ok, value = pcall(json.decode, text)
  return ok and type(value) == "table" and type(value.endpoints) == "table" and value.endpoints or {}
end

local function store_failed(what, err)
  error(errors.new("store", ("cannot %s the call counts (%s): %s"):format(what, dir(),
        after_last_colon(tostring(err)) or tostring(err))), 0)
end

-- Runs fn under the file's lock, waiting (without blocking other tasks) for
-- another kapi process to finish adding its counts.
local function locked(path, fn)
  local made, why = fs().mkdirs(dir(), 448)
  if not made then store_failed("keep", why) end
  local task = require "kapi.task"
  local deadline = task.now() + 10
  local lock, err
  repeat
    lock, err = fs().try_lock(path .. ".lock")
    if lock == nil then store_failed("lock", err) end
    if not lock then
      if task.now() > deadline then store_failed("lock", "locked by another kapi process for 10 s") end
      task.sleep(0.01)
    end
  until lock
  local ok, result = pcall(fn)
  lock:release()
  if not ok then error(result, 0) end
  return result
end

-- A counter per service and client -------------------------------------------------------

local Counter = {}
Counter.__index = Counter
Counter.__tostring = function(self) return ("call counter (%s, %s)"):format(self.host, self.client_id) end

local open_counters = setmetatable({}, {__mode = "k"})

--- counter{host, client_id, persist = true, budgets = {products = 20000}}:
--- the calls a client makes to a service, against its budgets (Kroger's
--- published ones unless an app was granted others). persist = false keeps
--- them in memory only (the built-in sandbox).
function M.counter(opts)
  errors.check(opts, "table", "limits.counter: opts")
  errors.check(opts.host, "string", "limits.counter: host")
  errors.check(opts.client_id, "string", "limits.counter: client_id")
  errors.check(opts.budgets, "table?", "limits.counter: budgets")
  local budgets = {}
  for name, n in pairs(M.BUDGETS) do budgets[name] = n end
  for name, n in pairs(opts.budgets or {}) do
    if not M.BUDGETS[name] then
      errors.usage(("limits.counter: no budget named %s (%s)"):format(errors.excerpt(name), "products, locations, "
                   .. "locations/{id}, chains, chains/{name}, departments, departments/{id}, cart, identity"), 2)
    end
    errors.check_whole(n, 1, nil, "limits.counter: budgets." .. name)
    budgets[name] = n
  end
  local self = setmetatable({host = opts.host, client_id = opts.client_id, persist = opts.persist ~= false,
                             budgets = budgets, known = nil, pending = {}, pending_calls = 0,
                             flushed_at = now(), warned = {}}, Counter)
  self.path = self.persist and file_of(self.host, self.client_id) or nil
  open_counters[self] = true
  return self
end

-- The stored windows, read once; a window whose day is over counts nothing.
function Counter:windows()
  if not self.known then self.known = self.persist and read_file(self.path) or {} end
  return self.known
end

local function live(window, t)
  return window and type(window.first) == "number" and type(window.count) == "number" and t < window.first + M.DAY
end

--- How many calls to endpoint this day has seen, and when the day began
--- (nil: no call yet).
function Counter:used(endpoint)
  local t, window, pending = now(), self:windows()[endpoint], self.pending[endpoint]
  local writing = self.writing and self.writing[endpoint] -- being added to the file as we speak
  local stored = live(window, t) and window or nil
  local first = stored and stored.first or (writing and writing.first) or (pending and pending.first)
  return (stored and stored.count or 0) + (writing and writing.count or 0) + (pending and pending.count or 0), first
end

local function spent_error(self, endpoint, used, first, answered)
  local budget, resets = self.budgets[endpoint], (first or now()) + M.DAY
  local message = answered
    and ("%s: Kroger refused the call with 429: the day's budget of %s calls is spent; it resets about %s")
        :format(endpoint, thousands(budget), when(resets))
    or ("%s: the day's budget of %s calls is spent (counted since %s); it resets at %s")
        :format(endpoint, thousands(budget), when(first or now()), when(resets))
  return errors.new("rate_limit", message, {fatal = true, endpoint = endpoint, budget = budget, used = used,
                                           resets_at = resets})
end

--- Counts one call to endpoint before it is made; raises the rate_limit
--- error (one line: the endpoint, its budget, when it resets) when the
--- day's budget has no room for it, and warns once as it runs low.
function Counter:spend(endpoint)
  local budget = self.budgets[endpoint]
  if not budget then return end
  local used, first = self:used(endpoint)
  if used >= budget then error(spent_error(self, endpoint, used, first), 0) end
  local pending = self.pending[endpoint]
  if not pending then
    pending = {count = 0, first = first or now()}
    self.pending[endpoint] = pending
  end
  pending.count = pending.count + 1
  self.pending_calls = self.pending_calls + 1
  used = used + 1
  if used >= budget * M.WARN_AT and not self.warned[endpoint] then
    self.warned[endpoint] = true
    require("kapi.log").warn(("%s of the %s calls a day to %s are spent (client %s); the budget resets at %s")
      :format(thousands(used), thousands(budget), endpoint, self.client_id, when(pending.first + M.DAY)))
  end
  if self.persist and (self.pending_calls >= FLUSH_CALLS or now() - self.flushed_at >= FLUSH_SECONDS) then
    self:flush()
  end
end

--- Records that the service refused a call to endpoint for the budget (a
--- 429): the day is spent, for this process and the next; returns the
--- rate_limit error to raise.
function Counter:exhausted(endpoint)
  local budget = self.budgets[endpoint] or 0
  local used, first = self:used(endpoint)
  local pending = self.pending[endpoint] or {count = 0, first = first or now()}
  pending.count = pending.count + math.max(0, budget - used)
  self.pending[endpoint] = pending
  self.pending_calls = self.pending_calls + 1
  if self.persist then pcall(self.flush, self) end
  return spent_error(self, endpoint, math.max(used, budget), pending.first, true)
end

--- Adds the pending counts to the file (under its lock, so two processes
--- add theirs and neither is lost) and reads back everyone's.
function Counter:flush()
  -- One flush at a time: another task of this process waiting for the
  -- lock would add the same pending counts twice.
  if not self.persist or self.pending_calls == 0 or self.writing then return end
  local pending, t = self.pending, now()
  self.writing = pending
  self.pending, self.pending_calls = {}, 0 -- calls made while this one waits go in the next
  local ok, windows = pcall(locked, self.path, function()
    local windows = read_file(self.path)
    for endpoint, p in pairs(pending) do
      local window = windows[endpoint]
      if live(window, t) then
        window.count = window.count + p.count
      else
        windows[endpoint] = {first = p.first, count = p.count}
      end
    end
    local ok, err = fs().write_atomic(self.path, json.encode({host = self.host, client_id = self.client_id,
                                                              endpoints = windows}, {sorted = true}), 384)
    if not ok then store_failed("write", err) end
    return windows
  end)
  self.writing = nil
  if not ok then
    -- Kept for the next flush; the counts of this process still hold.
    for endpoint, p in pairs(pending) do
      local now_pending = self.pending[endpoint]
      if now_pending then now_pending.count = now_pending.count + p.count else self.pending[endpoint] = p end
      self.pending_calls = self.pending_calls + p.count
    end
    error(windows, 0)
  end
  -- Calls made while waiting stay pending on top of the new counts.
  self.known, self.flushed_at = windows, t
end

--- The day's counts: {endpoint, used, budget, first, resets_at} for every
--- budget with a call in its day, in the order of M.BUDGETS' names.
function Counter:usage()
  local rows = {}
  local names = {}
  for name in pairs(self.budgets) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local used, first = self:used(name)
    if used > 0 then
      rows[#rows + 1] = {endpoint = name, used = used, budget = self.budgets[name], first = first,
                         resets_at = first + M.DAY}
    end
  end
  return rows
end

--- Writes every counter's pending counts (the command line calls it as it
--- ends). A count that cannot be written is warned about, never raised:
--- the work itself is done.
function M.flush_all()
  for counter in pairs(open_counters) do
    local ok, err = pcall(counter.flush, counter)
    if not ok then require("kapi.log").warn(errors.message(err)) end
  end
end

--- The stored counts of every client, for kapi auth limits: {host,
--- client_id, usage = counter:usage()}.
function M.stored()
  local out = {}
  for _, name in ipairs(fs().list(dir()) or {}) do
    if name:match("%.json$") then
      local f = io.open(dir() .. "/" .. name)
      local ok, value = pcall(json.decode, f and f:read("a") or "")
      if f then f:close() end
      if ok and type(value) == "table" and type(value.host) == "string" and type(value.client_id) == "string" then
        local counter = M.counter {host = value.host, client_id = value.client_id}
        out[#out + 1] = {host = value.host, client_id = value.client_id, usage = counter:usage()}
      end
    end
  end
  table.sort(out, function(a, b) return a.host .. a.client_id < b.host .. b.client_id end)
  return out
end

return M
