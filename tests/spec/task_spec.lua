-- Tasks on the event loop: spawn, wait, sleep, map, cancel, and waiting
-- from inside the script's own coroutines. These specs run inside kapi.
local kapi = require "kapi"
local errors = require "kapi.errors"

-- fn(...) raises the usage error `message`.
local function assert_usage_error(message, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  assert.is_true(errors.is(err, "usage"), tostring(err))
  assert.equal(message, tostring(err))
end

describe("kapi.spawn and task:wait", function()
  it("returns every value the task's function returned", function()
    local t = kapi.spawn(function(a, b) return a + b, "two", nil end, 1, 2)
    assert.same({3, "two", nil, n = 3}, table.pack(t:wait()))
    assert.equal("done", t:status())
  end)

  it("does not start the task until the spawner waits", function()
    local started = false
    local t = kapi.spawn(function() started = true end)
    assert.is_false(started)
    assert.equal("ready", t:status())
    t:wait()
    assert.is_true(started)
  end)

  it("re-raises the task's error, the same value, to every waiter", function()
    local failure = {code = 42}
    local t = kapi.spawn(function() kapi.sleep(0.01); error(failure) end)
    local a = kapi.spawn(function() return select(2, pcall(t.wait, t)) end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.equal(failure, err)
    assert.equal(failure, a:wait())
    local e, traceback = t:error()
    assert.equal(failure, e)
    assert.matches("stack traceback", traceback)
  end)

  it("lets any number of tasks wait for one", function()
    local t = kapi.spawn(function() kapi.sleep(0.02); return "x" end)
    local waiters = {}
    for i = 1, 20 do waiters[i] = kapi.spawn(function() return t:wait() end) end
    for i = 1, 20 do assert.equal("x", waiters[i]:wait()) end
  end)

  it("refuses a task waiting for itself", function()
    local t
    t = kapi.spawn(function() return t:wait() end)
    assert.has_error(function() t:wait() end, nil)
    assert.matches("cannot wait for itself", tostring(select(2, pcall(t.wait, t))))
  end)

  it("rejects what is not a function", function()
    assert.has_error(function() kapi.spawn(42) end)
  end)
end)

describe("kapi.sleep", function()
  it("runs 1,000 tasks sleeping 100 ms each in well under a second", function()
    local start = kapi.now()
    local tasks = {}
    for i = 1, 1000 do
      tasks[i] = kapi.spawn(function() kapi.sleep(0.1); return i end)
    end
    local sum = 0
    for i = 1, 1000 do sum = sum + tasks[i]:wait() end
    local elapsed = kapi.now() - start
    assert.equal(500500, sum)
    assert.is_true(elapsed >= 0.1, "woke too early: " .. elapsed)
    assert.is_true(elapsed < 0.5, "took " .. elapsed .. " s")
  end)

  it("lets the collector run while it waits, unless collection is stopped", function()
    -- 100,000 tables left for the collector, then 20 waits of 5 ms with
    -- nothing else to do: what the collector freed meanwhile, in KB.
    local function freed_while_waiting()
      local kept = {}
      for i = 1, 100000 do kept[i] = {i} end
      kept = nil -- luacheck: ignore (garbage now)
      local before = collectgarbage("count")
      for _ = 1, 20 do kapi.sleep(0.005) end
      return before - collectgarbage("count")
    end
    local freed = freed_while_waiting()
    assert.is_true(freed > 2000, ("%.0f KB freed"):format(freed))
    collectgarbage("stop")
    local ok, freed_stopped = pcall(freed_while_waiting)
    collectgarbage("restart")
    assert(ok, freed_stopped)
    assert.is_true(freed_stopped < 100, ("%.0f KB freed with collection stopped"):format(freed_stopped))
  end)

  it("wakes tasks in the order of their deadlines", function()
    local order = {}
    local tasks = {}
    for _, d in ipairs {0.05, 0.01, 0.03, 0.02, 0.04} do
      tasks[#tasks + 1] = kapi.spawn(function()
        kapi.sleep(d)
        order[#order + 1] = d
      end)
    end
    for _, t in ipairs(tasks) do t:wait() end
    assert.same({0.01, 0.02, 0.03, 0.04, 0.05}, order)
  end)

  it("rejects negative and non-numeric durations with a usage error naming the argument", function()
    for _, case in ipairs {{-1, "kapi.sleep: seconds must be from 0 to 1e9, got %-1"},
                           {0 / 0, "kapi.sleep: seconds must be from 0 to 1e9, got %-?nan"},
                           {1e10, "kapi.sleep: seconds must be from 0 to 1e9, got 10000000000%.0"},
                           {"soon", "kapi.sleep: seconds must be a number, got string"},
                           {true, "kapi.sleep: seconds must be a number, got boolean"}} do
      local value, message = case[1], case[2]
      local ok, err = pcall(kapi.sleep, value)
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"), tostring(err))
      assert.matches("^" .. message .. "$", tostring(err))
    end
  end)

  it("kapi.spawn refuses a value that is not a function with a usage error", function()
    for _, value in ipairs {5, "print", {}, true} do
      local ok, err = pcall(kapi.spawn, value)
      assert.is_false(ok)
      assert.is_true(errors.is(err, "usage"), tostring(err))
      assert.equal("kapi.spawn: fn must be a function, got " .. type(value), tostring(err))
    end
  end)

  it("fails clearly where a task cannot wait", function()
    local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b)
      kapi.sleep(0)
      return a < b
    end)
    assert.is_false(ok)
    assert.matches("cannot wait here", err)
  end)
end)

describe("waiting inside the script's own coroutines", function()
  it("drops the wait of a coroutine resumed inside a C call, which cannot reach its task", function()
    local srv <close> = kapi.server.listen {handler = function()
      kapi.sleep(0.1)
      return {body = "late"}
    end}
    local co = coroutine.create(function() return kapi.http.get(srv.url) end)
    local ok, err = pcall(table.sort, {1, 2}, function(a, b)
      coroutine.resume(co)
      return a < b
    end)
    assert.is_false(ok)
    assert.matches("C%-call boundary", tostring(err))
    assert.equal("dead", coroutine.status(co))
    -- The dropped request would have answered after 0.1 s: that must not
    -- end this sleep early.
    local started = kapi.now()
    kapi.sleep(0.4)
    assert.is_true(kapi.now() - started >= 0.39)
    assert.equal("late", kapi.http.get(srv.url).body)
  end)

  it("works from a coroutine.wrap generator", function()
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        kapi.sleep(0.001)
        coroutine.yield(i)
      end
    end)
    assert.same({1, 2, 3}, {gen(), gen(), gen()})
  end)

  it("works from coroutine.resume, two levels deep, with ordinary yields", function()
    local inner = coroutine.create(function()
      kapi.sleep(0.001)
      coroutine.yield("inner")
      return "inner done"
    end)
    local outer = coroutine.create(function()
      local _, v = coroutine.resume(inner)
      kapi.sleep(0.001)
      coroutine.yield(v)
      return select(2, coroutine.resume(inner))
    end)
    assert.same({true, "inner"}, {coroutine.resume(outer)})
    assert.same({true, "inner done"}, {coroutine.resume(outer)})
  end)

  it("keeps other tasks running while a generator waits", function()
    local ticks = 0
    local ticker = kapi.spawn(function()
      for _ = 1, 5 do kapi.sleep(0.002); ticks = ticks + 1 end
    end)
    local gen = coroutine.wrap(function() kapi.sleep(0.03); coroutine.yield("v") end)
    assert.equal("v", gen())
    assert.equal(5, ticks)
    ticker:wait()
  end)

  it("propagates errors from coroutine.wrap with their position", function()
    local gen = coroutine.wrap(function() kapi.sleep(0); error("broken") end)
    local ok, err = pcall(gen)
    assert.is_false(ok)
    assert.matches("broken", err)
  end)
end)

describe("task:cancel", function()
  it("makes the wait the task is in raise 'cancelled'", function()
    local cleaned = false
    local t = kapi.spawn(function()
      local ok, err = pcall(kapi.sleep, 10)
      cleaned = true
      error(err, 0)
    end)
    kapi.sleep(0.01)
    local start = kapi.now()
    t:cancel()
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.equal("cancelled", err.kind)
    assert.equal("cancelled", tostring(err))
    assert.is_true(cleaned)
    assert.is_true(kapi.now() - start < 1)
  end)

  it("stops a task that has not started yet", function()
    local ran = false
    local t = kapi.spawn(function() ran = true end)
    t:cancel()
    assert.has_error(function() t:wait() end)
    assert.is_false(ran)
    assert.equal("failed", t:status())
  end)

  it("removes a cancelled waiter from the task it waited for", function()
    local slow = kapi.spawn(function() kapi.sleep(0.05); return "slow" end)
    local waiter = kapi.spawn(function() return slow:wait() end)
    kapi.sleep(0.001)
    waiter:cancel()
    assert.has_error(function() waiter:wait() end)
    assert.equal("slow", slow:wait())
  end)

  it("leaves a finished task as it is", function()
    local t = kapi.spawn(function() return 7 end)
    assert.equal(7, t:wait())
    t:cancel()
    assert.equal(7, t:wait())
  end)
end)

describe("kapi.map", function()
  it("returns results in input order whatever order they finish in", function()
    local delays = {0.03, 0.01, 0.02, 0.0, 0.015}
    local results, errors = kapi.map(delays, function(d, i)
      kapi.sleep(d)
      return i * 10
    end, {concurrency = 5})
    assert.same({10, 20, 30, 40, 50, n = 5}, results)
    assert.is_nil(errors)
  end)

  -- The most calls kapi.map had running at once over n items.
  local function peak_concurrency(n, opts)
    local running, peak, list = 0, 0, {}
    for i = 1, n do list[i] = i end
    kapi.map(list, function()
      running = running + 1
      peak = math.max(peak, running)
      kapi.sleep(0.001)
      running = running - 1
    end, opts)
    return peak
  end

  it("never runs more than `concurrency` calls at once", function()
    assert.equal(4, peak_concurrency(40, {concurrency = 4}))
  end)

  it("is bounded by default", function()
    assert.equal(8, peak_concurrency(100))
  end)

  it("collects errors by index and still finishes the other items", function()
    local results, errors = kapi.map({1, 2, 3, 4}, function(x)
      if x % 2 == 0 then error({item = x}) end
      return x
    end, {concurrency = 2})
    assert.same({1, nil, 3, nil, n = 4}, results)
    assert.equal(2, errors.count)
    assert.same({item = 2}, errors[2])
    assert.same({item = 4}, errors[4])
  end)

  it("actually overlaps the calls", function()
    local list = {}
    for i = 1, 50 do list[i] = i end
    local start = kapi.now()
    kapi.map(list, function() kapi.sleep(0.05) end, {concurrency = 50})
    assert.is_true(kapi.now() - start < 0.25)
  end)

  it("handles an empty list", function()
    local results, errors = kapi.map({}, function() error("never") end)
    assert.same({n = 0}, results)
    assert.is_nil(errors)
  end)

  it("names a bad argument with a usage error", function()
    local cases = {
      {{{1}, print, {concurrency = 0}}, "kapi.map: concurrency must be a whole number of at least 1, got 0"},
      {{{1}, print, {concurrency = 1.5}}, "kapi.map: concurrency must be a whole number of at least 1, got 1.5"},
      {{{1}, print, {concurrency = "4"}}, 'kapi.map: concurrency must be a number, got "4"'},
      {{{1}, print, {concurency = 4}}, "kapi.map: unknown option concurency (did you mean concurrency?)"},
      {{{1}, print, 5}, "kapi.map: opts must be a table, got number"},
      {{nil, print}, "kapi.map: list must be a table, got nil"},
      {{5, print}, "kapi.map: list must be a table, got number"},
      {{{1}, 5}, "kapi.map: fn must be a function, got number"},
    }
    for _, case in ipairs(cases) do
      assert_usage_error(case[2], kapi.map, table.unpack(case[1], 1, 3))
    end
  end)
end)

describe("kapi.pool", function()
  it("does the jobs jobs add, in the same bounded tasks, with results by place", function()
    local pool, running, peak = kapi.pool {concurrency = 4}, 0, 0
    local function visit(n)
      running = running + 1
      peak = math.max(peak, running)
      if n < 64 then pool:add(visit, n * 2); pool:add(visit, n * 2 + 1) end
      kapi.sleep(0.001)
      running = running - 1
      return n
    end
    assert.equal(1, pool:add(visit, 1))
    local results, errors = pool:wait()
    assert.is_nil(errors)
    assert.equal(127, results.n)
    local seen = {}
    for k = 1, results.n do seen[results[k]] = true end
    for n = 1, 127 do assert.is_true(seen[n], n) end
    assert.equal(4, peak)
    assert.is_true(#pool.workers <= 8, #pool.workers) -- tasks are reused, not one a job
  end)

  it("gives a job added on the way a place that is free at once", function()
    -- 3 jobs of 50 ms and one that, after 50 ms, finds 4 more: with 8
    -- places those 4 go together, so the whole is two rounds.
    local pool = kapi.pool {concurrency = 8}
    local function wait() kapi.sleep(0.05) end
    for _ = 1, 3 do pool:add(wait) end
    pool:add(function()
      kapi.sleep(0.05)
      for _ = 1, 4 do pool:add(wait) end
    end)
    local start = kapi.now()
    local results = pool:wait()
    local took = kapi.now() - start
    assert.equal(8, results.n)
    assert.is_true(took >= 0.1 and took < 0.14, took)
  end)

  it("starts a job added with add_next before the jobs not yet started", function()
    local pool, order = kapi.pool {concurrency = 1}, {}
    local function note(name) order[#order + 1] = name end
    pool:add(function()
      note("first")
      pool:add_next(note, "next 1")
      pool:add_next(note, "next 2")
    end)
    pool:add(note, "second")
    pool:add(note, "third")
    local results = pool:wait()
    assert.same({"first", "next 1", "next 2", "second", "third"}, order)
    assert.equal(5, results.n)
  end)

  it("starts again for a job added after the others ended, and collects errors by place", function()
    local pool = kapi.pool {concurrency = 2}
    pool:add(function() return "a" end)
    assert.same({"a", n = 1}, (pool:wait()))
    pool:add(function() error({job = 2}) end)
    pool:add(function(x) return x end, "c")
    local results, errors = pool:wait()
    assert.same({"a", nil, "c", n = 3}, results)
    assert.equal(1, errors.count)
    assert.same({job = 2}, errors[2])
  end)

  it("stops its tasks when the wait is cancelled", function()
    local pool, finished = kapi.pool {concurrency = 2}, 0
    for _ = 1, 4 do pool:add(function() kapi.sleep(0.2); finished = finished + 1 end) end
    local waiter = kapi.spawn(function() return pool:wait() end)
    kapi.sleep(0.02)
    waiter:cancel()
    assert.has_error(function() waiter:wait() end)
    kapi.sleep(0.3)
    assert.equal(0, finished)
  end)

  it("names a bad argument with a usage error", function()
    for _, case in ipairs {
      {function() kapi.pool {concurrency = 0} end, "kapi.pool: concurrency must be a whole number of at least 1, got 0"},
      {function() kapi.pool(3) end, "kapi.pool: opts must be a table, got number"},
      {function() kapi.pool():add(3) end, "pool:add: fn must be a function, got number"},
    } do
      assert_usage_error(case[2], case[1])
    end
  end)
end)

describe("kapi.now", function()
  it("is monotonic and in seconds", function()
    local a = kapi.now()
    kapi.sleep(0.02)
    local b = kapi.now()
    assert.is_true(b - a >= 0.02 and b - a < 0.5)
  end)
end)
