-- The kapi module: what scripts, recipes and the REPL reach with
-- `local kapi = require "kapi"`. Submodules load on first use, so a script
-- pays only for what it touches.
local core = require "kapi.core"
local task = require "kapi.task"
local doc = require "kapi.doc"

local kapi = {
  version = core.version,
  spawn = task.spawn,
  sleep = task.sleep,
  now = task.now,
  map = task.map,
  pool = task.pool,
  running = task.running,
  doc = doc,
}

local submodules = {}

--- Makes `kapi.NAME` load `kapi.NAME` on first use. Modules added by later
--- layers (http, kroger, content1, ...) register here.
function kapi.submodule(name)
  submodules[name] = true
end

for _, name in ipairs {"http", "json", "server", "sandbox", "auth", "gtin", "paginate", "kroger", "content1", "items",
                        "certification", "recipe", "rules", "input", "csv", "history", "notify", "cic"} do kapi.submodule(name) end

--- Loads every submodule (the documentation needs them all).
function kapi.load_all()
  local names = {}
  for name in pairs(submodules) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do local _ = kapi[name] end
  require "kapi.repl"
end

setmetatable(kapi, {
  __index = function(t, name)
    if not submodules[name] then return nil end
    local module = require("kapi." .. name)
    rawset(t, name, module)
    return module
  end,
})

doc.declare("kapi.spawn", kapi.spawn, [[
kapi.spawn(fn, ...) -> task
Runs fn(...) as a new task on the event loop and returns at once. The task
starts when the current one waits (kapi.sleep, task:wait, an HTTP call).
Example:
  local t = kapi.spawn(function(x) kapi.sleep(0.1); return x * 2 end, 21)
  print(t:wait())  --> 42]])

doc.declare("kapi.sleep", kapi.sleep, [[
kapi.sleep(seconds)
Suspends the current task for at least `seconds` (a number, may be
fractional); other tasks run meanwhile. kapi.sleep(0) just lets them run.
Example:
  kapi.sleep(0.25)]])

doc.declare("kapi.now", kapi.now, [[
kapi.now() -> seconds
A monotonic clock in seconds, for measuring durations (not the date).
Example:
  local t0 = kapi.now(); kapi.sleep(0.1); print(kapi.now() - t0)]])

doc.declare("kapi.map", kapi.map, [[
kapi.map(list, fn, {concurrency = 8}) -> results, errors
Calls fn(item, index) for every item, at most `concurrency` calls at a time
(default 8; never unbounded). results[i] is the first value fn returned for
list[i], in input order, with results.n = #list. errors is nil when every
call succeeded, else a table of the errors by index with errors.count.
Example:
  local squares, errors = kapi.map({1, 2, 3}, function(x) return x * x end,
                                   {concurrency = 2})
  --> squares = {1, 4, 9, n = 3}, errors = nil]])

doc.declare("kapi.pool", kapi.pool, [[
kapi.pool({concurrency = 8}) -> pool
A work list done by at most `concurrency` tasks: pool:add(fn, arg) adds the
job fn(arg, k) and returns k; a job may add more, which run in the same
tasks (work found on the way: the next pages, the details of what a first
call found). pool:add_next(fn, arg) adds one that starts before the jobs
not yet started. pool:wait() waits until every job is done, those added
meanwhile too, and returns the results and errors by k as kapi.map does.
Example:
  local pool = kapi.pool {concurrency = 4}
  local function visit(n)
    if n < 64 then pool:add(visit, n * 2); pool:add(visit, n * 2 + 1) end
    return n
  end
  pool:add(visit, 1)
  local results = pool:wait()   --> results.n = 127]])

doc.declare("kapi.running", kapi.running, [[
kapi.running() -> task
The task whose code is running now.]])

local task_methods = debug.getregistry()["kapi.task"].__index

doc.declare("task:wait", task_methods.wait, [[
task:wait() -> ...
Waits until the task has finished and returns what its function returned,
or raises the error it failed with. Any number of tasks may wait for one.
Example:
  local t = kapi.spawn(function() return 1, 2 end)
  local a, b = t:wait()]])

doc.declare("task:cancel", task_methods.cancel, [[
task:cancel()
Asks the task to stop: the wait it is in (or its next one) raises the
error "cancelled". A task that has finished is left as it is.]])

doc.declare("task:status", task_methods.status, [[
task:status() -> "ready" | "running" | "waiting" | "done" | "failed"
Where the task is in its life.]])

doc.declare("task:error", task_methods.error, [[
task:error() -> err, traceback
The error a failed task raised and where, without raising it; nil for a
task that has not failed.]])

return kapi
