-- Tasks: the Lua half. The scheduler is in C (host/task.c); this module
-- makes waiting work inside ordinary coroutines and adds kapi.map.
local core = require "kapi.core"
local errors = require "kapi.errors"

local M = {
  spawn = core.spawn,
  sleep = core.sleep,
  now = core.now,
  running = core.running,
}

-- A task that waits yields core.yield_marker. When the wait happens inside a
-- coroutine the script created itself (an iterator, a generator), that
-- yield must travel up to the task and the task's wake-up back down, so
-- waiting works at any depth. Installed once, before any script runs.
local marker = core.yield_marker
local resume, yield, create, close = coroutine.resume, coroutine.yield, coroutine.create, coroutine.close
local drop_wait = core.drop_wait

-- The task's wake-up, or, when the wait cannot travel up (this coroutine
-- was resumed inside a C call such as table.sort's comparator), the error
-- of that, once the wait co registered is dropped and co closed: nothing
-- could ever resume it.
local function woken(co, ok, ...)
  if ok then return ... end
  drop_wait()
  close(co)
  error((...), 0)
end

local function pass_through(co, ok, first, ...)
  if ok and first == marker then
    return pass_through(co, resume(co, woken(co, pcall(yield, marker))))
  end
  return ok, first, ...
end

local function rethrow(co, ok, ...)
  if ok then return ... end
  coroutine.close(co)
  error((...), 2)
end

function M.resume(co, ...)
  return pass_through(co, resume(co, ...))
end

function M.wrap(fn)
  local co = create(fn)
  return function(...)
    return rethrow(co, pass_through(co, resume(co, ...)))
  end
end

coroutine.resume, coroutine.wrap = M.resume, M.wrap

local OPTIONS = {concurrency = "number"}

local function check_concurrency(opts, name)
  if opts == nil then return 8 end
  errors.check(opts, "table", name .. ": opts")
  errors.check_options(opts, OPTIONS, name)
  return errors.check_whole(opts.concurrency, 1, nil, name .. ": concurrency", true) or 8
end

-- A pool is a list of jobs (fn, arg) and at most `concurrency` tasks
-- taking them in order, those added with add_next first. A task that
-- finds no job left ends, and a job added later starts another, so a job
-- may add jobs.
local Pool = {}
Pool.__index = Pool

local function next_job(pool)
  if pool.soon_taken < #pool.soon then
    local k = pool.soon_taken + 1
    pool.soon_taken = k
    return pool.soon[k]
  end
  local fns = pool.fns
  while pool.taken < pool.count do
    local k = pool.taken + 1
    pool.taken = k
    if fns[k] then return k end -- else add_next's, taken already
  end
end

local function work(pool)
  local fns, args, results = pool.fns, pool.args, pool.results
  while not pool.stopped do
    local k = next_job(pool)
    if not k then break end
    local fn, arg = fns[k], args[k]
    fns[k], args[k] = nil, nil
    local ok, value = pcall(fn, arg, k)
    if ok then
      results[k] = value
    elseif not pool.stopped then
      local failed = pool.failed or {count = 0}
      pool.failed = failed
      failed[k] = value
      failed.count = failed.count + 1
    end
  end
  pool.alive = pool.alive - 1
end

local function add(pool, fn, arg, what)
  if type(fn) ~= "function" then errors.check(fn, "function", what) end
  local k = pool.count + 1
  pool.count = k
  pool.fns[k], pool.args[k] = fn, arg
  if pool.alive < pool.concurrency then
    pool.alive = pool.alive + 1
    pool.workers[#pool.workers + 1] = core.spawn(work, pool)
  end
  return k
end

--- Adds the job fn(arg, k) and returns k, its place in the results.
function Pool:add(fn, arg)
  return add(self, fn, arg, "pool:add: fn")
end

--- Adds the job fn(arg, k) before every job not yet started (after those
--- added this way before it) and returns k.
function Pool:add_next(fn, arg)
  local k = add(self, fn, arg, "pool:add_next: fn")
  self.soon[#self.soon + 1] = k
  return k
end

--- Waits until every job is done, those added meanwhile too. Returns the
--- results by place (results.n = jobs added) and, when some jobs failed,
--- their errors by place (with .count); nil when all succeeded.
function Pool:wait()
  local workers = self.workers
  local ok, err = pcall(function()
    local i = 1
    while workers[i] do
      workers[i]:wait()
      i = i + 1
    end
  end)
  if not ok then
    -- Interrupted or cancelled while waiting: stop the workers too.
    self.stopped = true
    for _, w in ipairs(workers) do w:cancel() end
    error(err, 0)
  end
  self.results.n = self.count
  return self.results, self.failed
end

local function new_pool(concurrency)
  return setmetatable({concurrency = concurrency, fns = {}, args = {}, results = {}, workers = {},
                       soon = {}, soon_taken = 0, count = 0, taken = 0, alive = 0}, Pool)
end

--- kapi.pool({concurrency = 8}) -> pool, to which jobs are added with
--- pool:add(fn, arg) and waited for with pool:wait().
function M.pool(opts)
  return new_pool(check_concurrency(opts, "kapi.pool"))
end

--- Calls fn(item, index) for every item of list, at most `concurrency` at
--- a time (default 8). Returns results in input order (results.n = #list)
--- and, when some calls failed, a table of their errors by index (with
--- .count); nil when all succeeded.
function M.map(list, fn, opts)
  if type(list) ~= "table" then errors.check(list, "table", "kapi.map: list") end
  if type(fn) ~= "function" then errors.check(fn, "function", "kapi.map: fn") end
  local pool = new_pool(check_concurrency(opts, "kapi.map"))
  for i = 1, #list do pool:add(fn, list[i]) end
  return pool:wait()
end

return M
