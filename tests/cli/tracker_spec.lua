-- The certification tracker's history, as a supplier uses it: every
-- republish-check run recorded under the state directory, --changes since
-- the last look, a GTIN's story, and the database refused, never
-- overwritten, when it is not kapi's. Against a `kapi sandbox` that keeps
-- its state between commands.
local process = require "helpers.process"
local json = require "kapi.json"

local QUEUE = "0838016000123"
local READY = "10845678000023" -- fixed since its rejection: READY_TO_REPUBLISH in the sandbox

local state, sandbox

local function kapi(args, extra)
  local env = process.sandbox_env(sandbox and sandbox.url)
  env.XDG_STATE_HOME = state
  for k, v in pairs(extra or {}) do env[k] = v end
  return process.kapi_run(args, {env = env})
end

local function tracker() return state .. "/kapi/tracker.sqlite3" end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function checksum(path)
  return process.sh("sha256sum " .. process.quote(path)).stdout:match("^(%x+)")
end

before_each(function()
  state = process.tempdir()
  sandbox = process.sandbox {"--review-delay", "0.3"}
end)

after_each(function()
  sandbox.stop()
  sandbox = nil
  process.cleanup(state)
end)

describe("republish-check's history", function()
  it("records each run, shows what changed since, and tells a GTIN's story", function()
    local first = kapi {"run", "republish-check", "--all"}
    assert.equal(0, first.status, first.stderr)
    assert.is_true(exists(tracker()))

    -- Nothing done since: nothing changed but what is still waiting.
    local same = kapi {"run", "republish-check", "--all", "--changes", "--json"}
    assert.equal(0, same.status, same.stderr)
    for _, c in ipairs(json.decode(same.stdout)) do
      assert.equal("waiting", c.change, c.gtin)
      assert.same({"after", "at", "before", "change", "gtin", "recipientGln"}, (function()
        local keys = {}
        for k in pairs(c) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
    end

    local applied = kapi {"run", "republish-check", READY, "--apply"}
    assert.equal(0, applied.status, applied.stderr)
    os.execute("sleep 0.6") -- the sandbox's review
    local changed = kapi {"run", "republish-check", READY, "--changes", "--json"}
    assert.equal(0, changed.status, changed.stderr)
    local by_recipient = {}
    for _, c in ipairs(json.decode(changed.stdout)) do by_recipient[c.recipientGln] = c end
    local queue = by_recipient[QUEUE]
    assert.equal("synchronised", queue.change)
    assert.equal("READY_TO_REPUBLISH", queue.before.verdict)
    assert.equal("DONE", queue.after.verdict)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", queue.at)

    local table_run = kapi {"run", "republish-check", READY, "--changes"}
    assert.matches("Nothing changed since the last check", table_run.stderr)

    local story = kapi {"run", "republish-check", "--history", READY, "--json"}
    assert.equal(0, story.status, story.stderr)
    local steps = {}
    for _, s in ipairs(json.decode(story.stdout)) do
      if s.recipientGln == QUEUE then steps[#steps + 1] = s end
    end
    assert.equal("READY_TO_REPUBLISH", steps[1].verdict)
    assert.equal(2, steps[1].looks) -- the first run and the --changes one
    assert.equal("republish", steps[2].action)
    assert.equal("done", steps[2].result)
    assert.equal("DONE", steps[#steps].verdict)
    assert.matches("WHEN%s+TO%s+STATE%s+VERDICT%s+CAUSE\n.-republish: done; Kroger QA rejected",
                   kapi({"run", "republish-check", "--history", READY}).stdout)
  end)

  it("compares with the history as it was a while ago with --since", function()
    kapi {"run", "republish-check", READY}
    local r = kapi {"run", "republish-check", READY, "--changes", "--since", "1h", "--json"}
    assert.equal(0, r.status, r.stderr)
    for _, c in ipairs(json.decode(r.stdout)) do
      assert.equal("new", c.change) -- nothing was known an hour ago
      assert.equal(json.null, c.before)
    end
  end)

  it("records nothing with --no-history, nor for the built-in sandbox", function()
    assert.equal(0, kapi({"run", "republish-check", "--all", "--no-history"}).status)
    assert.is_false(exists(tracker()))
    local saved = sandbox
    sandbox = nil -- the sandbox kapi starts in its own process
    local r = kapi {"run", "republish-check", "--all", "--changes"}
    sandbox = saved
    assert.equal(0, r.status, r.stderr)
    assert.is_false(exists(tracker()))
  end)

  it("is refused, never written, when the file is not kapi's history", function()
    os.execute("mkdir -p " .. process.quote(state .. "/kapi"))
    process.write(tracker(), ("not a database "):rep(100))
    local before = checksum(tracker())
    local r = kapi {"run", "republish-check", READY}
    -- The verdicts still come; the run says it was not recorded.
    assert.equal(1, r.status)
    assert.matches("READY_TO_REPUBLISH", r.stdout)
    assert.matches("kapi: history: this run was not recorded: [^\n]*tracker%.sqlite3: is not an SQLite database", r.stderr)
    r = kapi {"run", "republish-check", READY, "--changes"}
    assert.equal(1, r.status)
    assert.equal("", r.stdout)
    assert.matches("^kapi: [^\n]*tracker%.sqlite3: is not an SQLite database[^\n]*\n$", r.stderr)
    assert.equal(before, checksum(tracker()))

    os.remove(tracker())
    local made = kapi {"-e", ("local db = require('kapi.core.sqlite').open(%q) db:exec('CREATE TABLE orders (id INTEGER)') "
                              .. "db:close()"):format(tracker())}
    assert.equal(0, made.status, made.stderr)
    before = checksum(tracker())
    r = kapi {"run", "republish-check", READY, "--changes"}
    assert.equal(1, r.status)
    assert.matches("an SQLite database that is not kapi's history; it is left as it is", r.stderr)
    assert.equal(before, checksum(tracker()))
  end)

  it("keeps every run of processes recording at the same time", function()
    local script = process.tempdir()
    local commands = {}
    for i = 1, 4 do
      commands[i] = ("(%s run republish-check --all --quiet > /dev/null 2> %s/err%d; echo $? > %s/rc%d) &")
                    :format(process.quote(process.kapi), script, i, script, i)
    end
    local env = process.sandbox_env(sandbox.url)
    env.XDG_STATE_HOME = state
    process.sh(table.concat(commands, " ") .. " wait", {env = env})
    for i = 1, 4 do
      assert.equal("0", io.open(script .. "/rc" .. i):read("l"), io.open(script .. "/err" .. i):read("a"))
    end
    process.cleanup(script)
    local one = #json.decode(kapi({"run", "republish-check", "--all", "--json", "--no-history"}).stdout)
    local counted = kapi {"-e", ("local h <close> = kapi.history.open(%q) print(h:count())"):format(tracker())}
    assert.equal(tostring(4 * one) .. "\n", counted.stdout)
  end)

  it("refuses options that do not go together, and a GTIN that is not one", function()
    for _, case in ipairs {
      {{"run", "republish-check", READY, "--since", "1h"}, "--since goes with --changes"},
      {{"run", "republish-check", READY, "--changes", "--since", "yesterday"}, "--since yesterday: expected a duration"},
      {{"run", "republish-check", READY, "--changes", "--no-history"}, "--changes needs the history"},
      {{"run", "republish-check", READY, "--history", READY}, "--history GTIN shows a story"},
      {{"run", "republish-check", "--cic", "-", "--history", READY}, "--history GTIN shows a story"},
      {{"run", "republish-check", "--history", READY, "--watch", "1m"}, "--history GTIN shows a story"},
      {{"run", "republish-check", "--history", "123"}, "--history GTIN \"123\" has 3 digits"},
      {{"run", "republish-check", "--history", "00614141000012"}, "00614141000012: has no observation in the history"},
    } do
      local r = kapi(case[1])
      assert.equal(2, r.status, table.concat(case[1], " "))
      assert.equal("", r.stdout)
      assert.matches(case[2], r.stderr, 1, true)
    end
  end)
end)

describe("republish-check --watch", function()
  local function watch_env()
    local env = process.sandbox_env(sandbox.url)
    env.XDG_STATE_HOME = state
    return env
  end

  it("waits for the review, prints and tells each change, and the history holds it", function()
    sandbox.stop()
    sandbox = process.sandbox {"--review-delay", "1.5"}
    assert.equal(0, kapi({"run", "republish-check", READY, "--apply", "--quiet"}).status)
    local told = state .. "/told.jsonl"
    local r = kapi {"run", "republish-check", READY, "--watch", "1s", "--json",
                    "--notify", "exec:cat >> " .. process.quote(told) .. "; echo \"$KAPI_GTIN $KAPI_CHANGE $KAPI_VERDICT\" >> "
                                .. process.quote(told .. ".env")}
    assert.equal(0, r.status, r.stderr)
    local changes = {}
    for line in r.stdout:gmatch("[^\n]+") do changes[#changes + 1] = json.decode(line) end
    assert.equal("verdict", changes[1].change) -- READY_TO_REPUBLISH before, WAITING now
    assert.equal("WAITING", changes[1].after.verdict)
    local last = {}
    for _, c in ipairs(changes) do last[c.recipientGln] = c end
    assert.equal("synchronised", last[QUEUE].change)
    assert.equal("WAITING", last[QUEUE].before.verdict)
    assert.equal("DONE", last[QUEUE].after.verdict)
    assert.matches("Every watched publication has its answer", r.stderr)
    local notified = {}
    for line in io.open(told):read("a"):gmatch("[^\n]+") do notified[#notified + 1] = json.decode(line) end
    assert.equal(#changes, #notified)
    assert.matches(READY .. " synchronised DONE\n", io.open(told .. ".env"):read("a"))
    local story = json.decode(kapi({"run", "republish-check", "--history", READY, "--json"}).stdout)
    assert.equal("DONE", story[#story].verdict)
  end)

  it("posts each change to a webhook on loopback, retrying one that fails", function()
    sandbox.stop()
    sandbox = process.sandbox {"--review-delay", "1"}
    local hook = process.tempdir()
    -- A receiver that refuses its first request (503), then keeps bodies.
    process.write(hook .. "/receiver.lua", ([[
      local seen = 0
      local srv <close> = kapi.server.listen {handler = function(req)
        seen = seen + 1
        if seen == 1 then return {status = 503} end
        local f <close> = io.open(%q, "a")
        f:write(req.body)
        return {status = 204}
      end}
      local f <close> = io.open(%q, "w")
      f:write(srv.url)
      f:close()
      kapi.sleep(60)
    ]]):format(hook .. "/bodies", hook .. "/url"))
    process.sh(("%s %s > /dev/null 2>&1 & echo $! > %s/pid"):format(process.quote(process.kapi),
                                                                    process.quote(hook .. "/receiver.lua"), hook))
    local url
    for _ = 1, 100 do
      local f = io.open(hook .. "/url")
      url = f and f:read("a")
      if f then f:close() end
      if url and url ~= "" then break end
      os.execute("sleep 0.05")
    end
    assert.equal(0, kapi({"run", "republish-check", READY, "--apply", "--quiet"}).status)
    local r = kapi {"run", "republish-check", READY, "--watch", "1s", "--quiet", "--notify", url .. "/kapi"}
    os.execute("kill " .. io.open(hook .. "/pid"):read("l"))
    assert.equal(0, r.status, r.stderr)
    local bodies = io.open(hook .. "/bodies"):read("a")
    process.cleanup(hook)
    assert.matches('"change":"synchronised"', bodies)
    assert.matches('"gtin":"' .. READY .. '"', bodies)
  end)

  it("stops when --until passes, and on Ctrl-C with status 130", function()
    sandbox.stop()
    sandbox = process.sandbox {"--review-delay", "600"}
    assert.equal(0, kapi({"run", "republish-check", READY, "--apply", "--quiet"}).status)
    local r = kapi {"run", "republish-check", READY, "--watch", "1s", "--until", "2s"}
    assert.equal(0, r.status, r.stderr)
    assert.matches("%-%-until has passed: 1 of 1 publications still waiting", r.stderr)
    local interrupted = process.sh(("%s run republish-check %s --watch 1s --quiet & pid=$!; sleep 1.5; kill -INT $pid; "
                                    .. "wait $pid"):format(process.quote(process.kapi), READY), {env = watch_env()})
    assert.equal(130, interrupted.status, interrupted.stderr)
    assert.not_matches("traceback", interrupted.stderr)
  end)

  it("says once that a target fails, and goes on", function()
    local r = process.kapi_run({"-e", [[
      for _, spec in ipairs {"exec:exit 3", "http://127.0.0.1:1/hook"} do
        local target = kapi.notify.target(spec)
        for i = 1, 3 do target:send({gtin = tostring(i), change = "synchronised"}) kapi.sleep(0.1) end
        target:flush(10)
      end
      print("went on")
    ]]}, {env = process.sandbox_env()})
    assert.equal(0, r.status, r.stderr)
    assert.equal("went on\n", r.stdout)
    local _, exec_lines = r.stderr:gsub("%-%-notify exec:exit 3 failed: the command exited with status 3", "")
    local _, hook_lines = r.stderr:gsub("%-%-notify http://127%.0%.0%.1:1/hook failed: ", "")
    assert.equal(1, exec_lines, r.stderr)
    assert.equal(1, hook_lines, r.stderr)
  end)

  it("refuses what does not go with it", function()
    for _, case in ipairs {
      {{"run", "republish-check", READY, "--notify", "exec:true"}, "--notify goes with --watch"},
      {{"run", "republish-check", READY, "--until", "2h"}, "--until goes with --watch"},
      {{"run", "republish-check", READY, "--watch", "5"}, "--watch 5: expected an interval"},
      {{"run", "republish-check", "--watch", READY}, "expected an interval"},
      {{"run", "republish-check", READY, "--watch", "1m", "--until", "soon"}, "--until soon: expected a time"},
      {{"run", "republish-check", READY, "--watch", "1m", "--apply"}, "--watch only looks"},
      {{"run", "republish-check", READY, "--watch", "1m", "--notify", "ftp://127.0.0.1/x"}, "--notify ftp://"},
      {{"run", "republish-check", READY, "--watch", "1m", "--notify", "http://example.com/hook"}, "an http:// URL on this machine"},
      {{"run", "republish-check", READY, "--watch", "1m", "--notify", "exec:"}, "--notify exec: needs a command"},
    } do
      local r = kapi(case[1])
      assert.equal(2, r.status, table.concat(case[1], " ") .. "\n" .. r.stderr)
      assert.equal("", r.stdout)
      assert.matches(case[2], r.stderr, 1, true)
    end
  end)
end)
