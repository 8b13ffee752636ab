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
-- may add jobs. kapi.map's jobs are its list: the first `listed` places
-- are list_fn(list[k], k), kept nowhere else (a list of 200,000 costs no
-- table of jobs); jobs added are kept in fns and args.
local Pool = {}
Pool.__index = Pool

-- The next job's place, function and argument; nil when none is left.
local function next_job(pool)
  local fns, args = pool.fns, pool.args
  local k
  if pool.soon_taken < pool.soon_count then
    pool.soon_taken = pool.soon_taken + 1
    k = pool.soon[pool.soon_taken]
  else
    k = pool.taken + 1
    if k <= pool.listed then
      pool.taken = k
      return k, pool.list_fn, pool.list[k]
    end
    while k <= pool.count and not fns[k] do k = k + 1 end -- add_next's, taken already
    if k > pool.count then return nil end
    pool.taken = k
  end
  local fn, arg = fns[k], args[k]
  fns[k], args[k] = nil, nil
  return k, fn, arg
end

local function work(pool)
  local results, list, list_fn, listed = pool.results, pool.list, pool.list_fn, pool.listed
  pool.pending = pool.pending - 1
  while not pool.stopped do
    local k, fn, arg = pool.taken + 1, list_fn, nil
    if k <= listed and pool.soon_taken == pool.soon_count then -- kapi.map's common case, inline
      pool.taken, arg = k, list[k]
    else
      k, fn, arg = next_job(pool)
      if not k then break end
    end
    pool.started = pool.started + 1
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

-- Starts tasks for the jobs waiting, up to the pool's concurrency.
local function staff(pool)
  -- A task started but not yet run will take a waiting job; one that is
  -- running is inside a job (a task takes its next job without waiting).
  local waiting = pool.count - pool.started - pool.pending
  while pool.alive < pool.concurrency and waiting > 0 do
    pool.alive, pool.pending, waiting = pool.alive + 1, pool.pending + 1, waiting - 1
    pool.workers[#pool.workers + 1] = core.spawn(work, pool)
  end
end

local function add(pool, fn, arg, what)
  if type(fn) ~= "function" then errors.check(fn, "function", what) end
  local k = pool.count + 1
  pool.count = k
  pool.fns[k], pool.args[k] = fn, arg
  return k
end

--- Adds the job fn(arg, k) and returns k, its place in the results.
function Pool:add(fn, arg)
  local k = add(self, fn, arg, "pool:add: fn")
  staff(self)
  return k
end

--- Adds the job fn(arg, k) before every job not yet started (after those
--- added this way before it) and returns k.
function Pool:add_next(fn, arg)
  local k = add(self, fn, arg, "pool:add_next: fn")
  self.soon_count = self.soon_count + 1
  self.soon[self.soon_count] = k
  staff(self)
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

local function new_pool(concurrency, list, list_fn)
  local listed = list and #list or 0
  return setmetatable({concurrency = concurrency, fns = {}, args = {}, results = {}, workers = {},
                       list = list, list_fn = list_fn, listed = listed, soon = {}, soon_count = 0,
                       soon_taken = 0, count = listed, taken = 0, started = 0, pending = 0, alive = 0}, Pool)
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
  local pool = new_pool(check_concurrency(opts, "kapi.map"), list, fn)
  staff(pool)
  return pool:wait()
end

return M
