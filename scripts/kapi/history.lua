-- The certification tracker's memory: every publication republish-check
-- observes (its state and verdict, when, from which source), kept in an
-- SQLite database under kapi's state directory, so that kapi can say
-- what changed since the last look and tell a GTIN's story.
--
-- The file is WAL-mode SQLite, shared safely by concurrent kapi processes
-- (each run's observations go in one transaction; a writer waits for
-- another's lock). Its schema is versioned (PRAGMA user_version, moved
-- forward by MIGRATIONS) and marked as kapi's (PRAGMA application_id): a
-- file that is not SQLite, or an SQLite database of something else, is
-- refused with its name and never written.
local sqlite = require "kapi.core.sqlite"
local errors = require "kapi.errors"
local paths = require "kapi.paths"

local M = {}

--- Where the history lives: $XDG_STATE_HOME/kapi/tracker.sqlite3.
function M.default_path() return paths.state_dir() .. "/tracker.sqlite3" end

M.APPLICATION_ID = 0x6B617069 -- "kapi"

-- Schema versions, each a step from the one before; a database is moved
-- forward one step at a time, in a transaction each.
local MIGRATIONS = {
  [[
  CREATE TABLE observations (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL,
    observed_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    gtin TEXT NOT NULL,
    recipient_gln TEXT NOT NULL,
    publication_type TEXT,
    published_at TEXT,
    sync_status TEXT,
    cic_state TEXT,
    cic_date TEXT,
    cic_code TEXT,
    message TEXT,
    verdict TEXT NOT NULL,
    cause TEXT,
    next TEXT,
    action TEXT,
    result TEXT
  );
  CREATE INDEX observations_by_publication ON observations (gtin, recipient_gln, observed_at);
  CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at INTEGER NOT NULL, source TEXT NOT NULL);
  ]],
}
M.VERSION = #MIGRATIONS

local History = {}
History.__index = History
History.__tostring = function(self) return ("kapi history (%s)"):format(self.path) end

-- A failure of the database named in words, with its file.
local function failed(path, err)
  local code, text = tostring(err):match("^sqlite: (%u+): (.*)$")
  local words = {
    NOTADB = "is not an SQLite database: not kapi's history (move it away, or use --no-history)",
    CORRUPT = "is damaged (SQLite reports it corrupt); move it away to start a new history, or use --no-history",
    READONLY = "cannot be written (read-only)",
    CANTOPEN = "cannot be opened",
    FULL = "cannot be written: the disk is full",
    BUSY = "is locked by another kapi process for too long; try again",
  }
  local why = words[code] or text or tostring(err)
  error(errors.new("history", ("%s: %s"):format(errors.excerpt(path, 120), why), {code = code}), 0)
end

local function guarded(self, f, ...)
  local ok, result, extra = pcall(f, ...)
  if not ok then
    if errors.is(result) then error(result, 0) end
    failed(self.path, result)
  end
  return result, extra
end

-- What the file says of itself, read in one statement (one snapshot):
-- another process may be creating the schema at this very moment.
local function facts(db)
  return db:rows("SELECT a.application_id AS id, v.user_version AS version, "
                 .. "(SELECT count(*) FROM sqlite_master) AS tables "
                 .. "FROM pragma_application_id() AS a, pragma_user_version() AS v")[1]
end

local function refuse_foreign(self, f)
  if f.id ~= M.APPLICATION_ID and (f.id ~= 0 or f.version ~= 0 or f.tables > 0) then
    error(errors.new("history", ("%s: an SQLite database that is not kapi's history; it is left as it is "
                                 .. "(move it away, or use --no-history)"):format(errors.excerpt(self.path, 120))), 0)
  end
  if f.version > M.VERSION then
    error(errors.new("history", ("%s: written by a newer kapi (schema %d, this kapi knows %d); it is left as it is")
                     :format(errors.excerpt(self.path, 120), f.version, M.VERSION)), 0)
  end
end

-- Brings the schema to VERSION, refusing a file that is someone else's.
local function prepare(self)
  local db = self.db
  local f = facts(db)
  refuse_foreign(self, f)
  if f.version == M.VERSION then return end
  if self.path ~= ":memory:" then db:rows("PRAGMA journal_mode = WAL") end
  db:exec("BEGIN IMMEDIATE")
  local ok, err = pcall(function()
    -- Under the write lock, as it is now: another process may have made
    -- or moved the schema while this one waited.
    f = facts(db)
    refuse_foreign(self, f)
    for step = f.version + 1, M.VERSION do db:exec(MIGRATIONS[step]) end
    db:exec(("PRAGMA application_id = %d; PRAGMA user_version = %d"):format(M.APPLICATION_ID, M.VERSION))
  end)
  if not ok then
    pcall(db.exec, db, "ROLLBACK")
    error(err, 0)
  end
  db:exec("COMMIT")
end

--- Opens the history at path (default M.default_path(); ":memory:" for
--- one that ends with the process), creating it and its directory when
--- missing. Raises a "history" error naming the file when it cannot be
--- used.
function M.open(path)
  path = path or M.default_path()
  errors.check(path, "string", "history.open: path")
  if path ~= ":memory:" then
    local dir = path:match("^(.*)/[^/]*$")
    if dir and dir ~= "" then
      local ok, err = require("kapi.core.fs").mkdirs(dir)
      if not ok then error(errors.new("history", ("cannot create %s: %s"):format(dir, err)), 0) end
    end
  end
  local self = setmetatable({path = path}, History)
  self.db = guarded(self, sqlite.open, path)
  guarded(self, prepare, self)
  return self
end

function History:close()
  if self.db then self.db:close() end
  self.db = nil
end
History.__close = History.close

local COLUMNS = {"gtin", "recipient_gln", "publication_type", "published_at", "sync_status", "cic_state",
                 "cic_date", "cic_code", "message", "verdict", "cause", "next", "action", "result"}

-- An observation as the database keeps it, from a republish-check row.
local function observation(row)
  local p = row.publication or {}
  return {gtin = row.gtin, recipient_gln = row.recipientGln, publication_type = p.publicationType,
          published_at = p.publishedAt, sync_status = p.syncStatus, cic_state = p.cicState,
          cic_date = p.cicDate, cic_code = p.cicCode, message = p.message, verdict = row.verdict,
          cause = row.cause, next = row.next, action = row.action, result = row.result}
end

--- Records what one run observed: rows as certification.assess gives
--- them, source "api", "report" or "cic", at = seconds since the epoch
--- (default now). One transaction: the run is kept whole or not at all.
function History:record(rows, source, at)
  errors.check(rows, "table", "history:record: rows")
  errors.check(source, "string", "history:record: source")
  at = at or os.time()
  local db = self.db
  local insert = ("INSERT INTO observations (run, observed_at, source, %s) VALUES (?, ?, ?%s)")
                 :format(table.concat(COLUMNS, ", "), (", ?"):rep(#COLUMNS))
  guarded(self, function()
    db:exec("BEGIN IMMEDIATE")
    local ok, err = pcall(function()
      local _, run = db:run("INSERT INTO runs (started_at, source) VALUES (?, ?)", at, source)
      for _, row in ipairs(rows) do
        local o, values = observation(row), {}
        for i, c in ipairs(COLUMNS) do values[i] = o[c] end
        db:run(insert, run, at, source, table.unpack(values, 1, #COLUMNS))
      end
    end)
    if not ok then
      pcall(db.exec, db, "ROLLBACK")
      error(err, 0)
    end
    db:exec("COMMIT")
  end)
end

--- The latest observation of each publication (gtin, recipient) in
--- `publications` made before `before` (seconds since the epoch; with
--- `since`, the latest made at or before that time): a table by
--- "gtin recipient".
function History:latest(publications, before)
  local out, db = {}, self.db
  guarded(self, function()
    for _, p in ipairs(publications) do
      local row = db:rows("SELECT * FROM observations WHERE gtin = ? AND recipient_gln = ? AND observed_at <= ? "
                          .. "ORDER BY observed_at DESC, id DESC LIMIT 1", p.gtin, p.recipientGln, before)[1]
      if row then out[p.gtin .. " " .. p.recipientGln] = row end
    end
  end)
  return out
end

--- Every observation of a GTIN, oldest first.
function History:story(gtin)
  errors.check(gtin, "string", "history:story: gtin")
  return guarded(self, self.db.rows, self.db,
                 "SELECT * FROM observations WHERE gtin = ? ORDER BY observed_at, id", gtin)
end

--- How many observations the history holds.
function History:count()
  return guarded(self, self.db.rows, self.db, "SELECT count(*) AS n FROM observations")[1].n
end

-- Durations --------------------------------------------------------------------------

local UNITS = {s = 1, m = 60, h = 3600, d = 86400, w = 7 * 86400}

--- Seconds in a duration such as "90m", "24h", "7d" or "2w" (a bare
--- number is seconds); nil when it is not one.
function M.duration(text)
  if type(text) ~= "string" then return nil end
  local n, unit = text:match("^(%d+)([smhdw]?)$")
  n = n and math.tointeger(tonumber(n))
  if not n or n > 100 * 365 * 86400 then return nil end
  return n * UNITS[unit ~= "" and unit or "s"]
end

return M
