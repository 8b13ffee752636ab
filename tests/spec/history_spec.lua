-- kapi.history: the tracker's SQLite database, its schema and its
-- refusals, and a run recorded whole or not at all, even when kapi is
-- killed in the middle of writing it.
local kapi = require "kapi"
local history = require "kapi.history"
local sqlite = require "kapi.core.sqlite"
local process = require "helpers.process"

local dir
before_each(function() dir = process.tempdir() end)
after_each(function() process.cleanup(dir) end)

local function rows(n, verdict)
  local out = {}
  for i = 1, n do
    out[i] = {gtin = ("%014d"):format(i), recipientGln = "0838016000123", verdict = verdict or "WAITING",
              cause = "sent, no CIC yet", next = "wait", publication = {syncStatus = "PENDING", cicState = ""}}
  end
  return out
end

describe("kapi.history", function()
  it("creates its file with its schema, marked as kapi's, in WAL mode", function()
    local h <close> = history.open(dir .. "/state/tracker.sqlite3")
    local db = sqlite.open(dir .. "/state/tracker.sqlite3")
    assert.equal(history.APPLICATION_ID, db:rows("PRAGMA application_id")[1].application_id)
    assert.equal(history.VERSION, db:rows("PRAGMA user_version")[1].user_version)
    assert.equal("wal", db:rows("PRAGMA journal_mode")[1].journal_mode)
    db:close()
  end)

  it("keeps what each run observed, and finds the latest before a time", function()
    local h <close> = history.open(dir .. "/t.sqlite3")
    h:record(rows(3, "WAITING"), "api", 1000)
    h:record(rows(2, "DONE"), "report", 2000)
    assert.equal(5, h:count())
    local at_1500 = h:latest(rows(3), 1500)
    assert.equal("WAITING", at_1500[("%014d 0838016000123"):format(1)].verdict)
    local now = h:latest(rows(3), 3000)
    assert.equal("DONE", now[("%014d 0838016000123"):format(2)].verdict)
    assert.equal("WAITING", now[("%014d 0838016000123"):format(3)].verdict)
    assert.is_nil(h:latest(rows(3), 999)[("%014d 0838016000123"):format(1)])
    local story = h:story(("%014d"):format(1))
    assert.equal(2, #story)
    assert.equal("api", story[1].source)
    assert.equal("report", story[2].source)
  end)

  it("refuses a file that is not SQLite, or not kapi's, and leaves it as it is", function()
    local junk = process.write(dir .. "/junk.sqlite3", ("junk "):rep(300))
    local ok, err = pcall(history.open, junk)
    assert.is_false(ok)
    assert.equal("history", err.kind)
    assert.matches("junk%.sqlite3: is not an SQLite database", err.message)
    assert.equal(("junk "):rep(300), io.open(junk):read("a"))

    local other = sqlite.open(dir .. "/other.sqlite3")
    other:exec("CREATE TABLE orders (id INTEGER)")
    other:close()
    ok, err = pcall(history.open, dir .. "/other.sqlite3")
    assert.is_false(ok)
    assert.matches("an SQLite database that is not kapi's history; it is left as it is", err.message)
    other = sqlite.open(dir .. "/other.sqlite3")
    assert.equal(0, other:rows("PRAGMA application_id")[1].application_id)
    assert.equal(1, #other:rows("SELECT name FROM sqlite_master"))
    other:close()

    local h = history.open(dir .. "/newer.sqlite3")
    h:close()
    local newer = sqlite.open(dir .. "/newer.sqlite3")
    newer:exec("PRAGMA user_version = " .. (history.VERSION + 1))
    newer:close()
    ok, err = pcall(history.open, dir .. "/newer.sqlite3")
    assert.is_false(ok)
    assert.matches("written by a newer kapi", err.message)
  end)

  it("reads durations as --since takes them", function()
    assert.equal(90 * 60, history.duration("90m"))
    assert.equal(86400, history.duration("24h"))
    assert.equal(7 * 86400, history.duration("7d"))
    assert.equal(14 * 86400, history.duration("2w"))
    assert.equal(30, history.duration("30"))
    for _, bad in ipairs {"", "1.5h", "-1h", "1y", "h", "24 h", ("9"):rep(40)} do assert.is_nil(history.duration(bad), bad) end
  end)

  -- Another process holds the write lock of a new file for `seconds`;
  -- returns once it does, and a function that waits for it to end.
  local function lock_held(path, seconds)
    local holder = process.write(dir .. "/hold.lua", ([[
      local db = require("kapi.core.sqlite").open(%q)
      db:exec("BEGIN IMMEDIATE")
      print("locked")
      io.stdout:flush()
      os.execute("sleep %s")
      db:exec("COMMIT")
    ]]):format(path, seconds))
    local pipe = io.popen(process.quote(process.kapi) .. " " .. process.quote(holder))
    assert.equal("locked", pipe:read("l"))
    return function() return pipe:close() end
  end

  it("waits for another process's lock while it makes a new file WAL, as for any other statement", function()
    -- SQLite refuses the switch to WAL at once, without the busy handler,
    -- while another connection holds the write lock: processes opening
    -- one new history at the same moment used to fail at random.
    local path = dir .. "/new.sqlite3"
    local ended = lock_held(path, 0.3)
    local h <close> = history.open(path)
    assert.is_true(ended())
    local db = sqlite.open(path)
    assert.equal("wal", db:rows("PRAGMA journal_mode")[1].journal_mode)
    db:close()
  end)

  it("gives up on a lock held longer than its busy time, after that time", function()
    local path = dir .. "/held.sqlite3"
    local ended = lock_held(path, 1.5)
    local db = sqlite.open(path, 200)
    local started = kapi.now()
    local ok, err = pcall(db.rows, db, "PRAGMA journal_mode = WAL")
    local waited = kapi.now() - started
    db:close()
    ended()
    assert.is_false(ok)
    assert.matches("^sqlite: BUSY: ", err)
    assert.is_true(waited >= 0.19 and waited < 1, ("waited %.3f s"):format(waited))
  end)

  it("keeps every run whole or not at all when kapi is killed while writing (SIGKILL, 40 times)", function()
    local path = dir .. "/killed.sqlite3"
    local writer = [[
      local history = require "kapi.history"
      local rows = {}
      for i = 1, 2000 do
        rows[i] = {gtin = ("%%014d"):format(i), recipientGln = "0838016000123", verdict = "WAITING",
                   cause = ("x"):rep(200), publication = {}}
      end
      repeat
        local h = history.open(%q)
        h:record(rows, "api")
        h:close()
      until %s
    ]]
    local once = process.write(dir .. "/once.lua", writer:format(path, "true"))
    local script = process.write(dir .. "/record.lua", writer:format(path, "false"))
    -- One whole run, timed: the kills below fall anywhere in the first
    -- two runs' time, however fast this build is (ASan, a loaded machine).
    local started = kapi.now()
    assert.equal(0, process.kapi_run({once}).status)
    local run_time = kapi.now() - started
    math.randomseed(7)
    for _ = 1, 40 do
      -- Each writer is killed at some moment of its transactions.
      process.sh(("%s %s & pid=$!; sleep %.3f; kill -9 $pid; wait $pid 2>/dev/null; true")
                 :format(process.quote(process.kapi), process.quote(script), math.random() * 2 * run_time))
    end
    local h <close> = history.open(path)
    local db = sqlite.open(path)
    assert.equal("ok", db:rows("PRAGMA integrity_check")[1].integrity_check)
    db:close()
    local count = h:count()
    assert.is_true(count > 0, "no run was ever recorded")
    assert.equal(0, count % 2000, ("%d observations: a run was cut"):format(count))
  end)
end)
