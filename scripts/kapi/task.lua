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

local MAP_OPTIONS = {concurrency = "number"}

local function check_concurrency(opts)
  if opts == nil then return 8 end
  errors.check(opts, "table", "kapi.map: opts")
  errors.check_options(opts, MAP_OPTIONS, "kapi.map")
  return errors.check_whole(opts.concurrency, 1, nil, "kapi.map: concurrency", true) or 8
end

--- Calls fn(item, index) for every item of list, at most `concurrency` at
--- a time (default 8). Returns results in input order (results.n = #list)
--- and, when some calls failed, a table of their errors by index (with
--- .count); nil when all succeeded.
function M.map(list, fn, opts)
  if type(list) ~= "table" then errors.check(list, "table", "kapi.map: list") end
  if type(fn) ~= "function" then errors.check(fn, "function", "kapi.map: fn") end
  local concurrency = check_concurrency(opts)
  local n = #list
  local results, failed = {n = n}, nil
  local next_index, stopped = 0, false
  local function worker()
    while not stopped and next_index < n do
      next_index = next_index + 1
      local i = next_index
      local ok, value = pcall(fn, list[i], i)
      if ok then
        results[i] = value
      elseif not stopped then
        failed = failed or {count = 0}
        failed[i] = value
        failed.count = failed.count + 1
      end
    end
  end
  local workers = {}
  for w = 1, math.min(concurrency, n) do workers[w] = core.spawn(worker) end
  local ok, err = pcall(function()
    for _, w in ipairs(workers) do w:wait() end
  end)
  if not ok then
    -- Interrupted or cancelled while waiting: stop the workers too.
    stopped = true
    for _, w in ipairs(workers) do w:cancel() end
    error(err, 0)
  end
  return results, failed
end

return M
