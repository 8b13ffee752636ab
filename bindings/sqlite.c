/* SQLite for kapi's own records (the certification tracker's history):
 * open a database, run statements with bound parameters, read rows.
 * Statements live only inside one call, so no statement handle is ever
 * left for the collector to finalize after its database is gone. Errors
 * are raised as "sqlite: CODE: message", CODE being SQLite's primary
 * result code by name (BUSY, CORRUPT, NOTADB, READONLY, ...), so that the
 * Lua side can say what went wrong in its own words. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <lauxlib.h>
#include <lua.h>
#include <sqlite3.h>
#include <time.h>

#define DB_METATABLE "kapi.sqlite.db"

typedef struct {
  sqlite3 *db;
  int busy_ms; /* how long a statement may wait for another process's lock */
} Db;

static const char *code_name(int rc) {
  switch (rc & 0xff) {
  case SQLITE_BUSY: return "BUSY";
  case SQLITE_LOCKED: return "LOCKED";
  case SQLITE_NOMEM: return "NOMEM";
  case SQLITE_READONLY: return "READONLY";
  case SQLITE_IOERR: return "IOERR";
  case SQLITE_CORRUPT: return "CORRUPT";
  case SQLITE_FULL: return "FULL";
  case SQLITE_CANTOPEN: return "CANTOPEN";
  case SQLITE_CONSTRAINT: return "CONSTRAINT";
  case SQLITE_MISMATCH: return "MISMATCH";
  case SQLITE_RANGE: return "RANGE";
  case SQLITE_NOTADB: return "NOTADB";
  case SQLITE_ERROR: return "ERROR";
  default: return "OTHER";
  }
}

/* Raised without a position: the message is about the database, not
 * about a line of the script that called. */
static int raise(lua_State *L, sqlite3 *db, int rc) {
  lua_pushfstring(L, "sqlite: %s: %s", code_name(rc), db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  return lua_error(L);
}

static Db *check_db(lua_State *L) {
  Db *d = luaL_checkudata(L, 1, DB_METATABLE);
  if (!d->db) luaL_error(L, "sqlite: the database is closed");
  return d;
}

/* open(path, busy_ms = 5000, readonly = false) -> db. The file is
 * created when missing (unless readonly); waiting up to busy_ms for
 * another process's lock. */
static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int busy_ms = (int)luaL_optinteger(L, 2, 5000);
  int readonly = lua_toboolean(L, 3);
  Db *d = lua_newuserdatauv(L, sizeof *d, 0);
  d->db = NULL;
  d->busy_ms = busy_ms;
  luaL_setmetatable(L, DB_METATABLE);
  int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    lua_pushfstring(L, "sqlite: %s: %s", code_name(rc), d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
    sqlite3_close(d->db);
    d->db = NULL;
    return lua_error(L);
  }
  sqlite3_busy_timeout(d->db, busy_ms);
  sqlite3_extended_result_codes(d->db, 1);
  return 1;
}

/* db:exec(sql): one or more statements without parameters (the schema). */
static int l_exec(lua_State *L) {
  Db *d = check_db(L);
  const char *sql = luaL_checkstring(L, 2);
  int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) return raise(L, d->db, rc);
  return 0;
}

/* Parameters are checked before a statement exists, so that the error
 * leaves nothing behind. */
static void check_parameters(lua_State *L, int first) {
  for (int i = first; i <= lua_gettop(L); i++) {
    int t = lua_type(L, i);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
      luaL_error(L, "sqlite: parameter %d is a %s (expected nil, a boolean, a number or a string)", i - first + 1,
                 luaL_typename(L, i));
  }
}

static int bind_all(lua_State *L, sqlite3_stmt *stmt, int first) {
  int top = lua_gettop(L);
  for (int i = first; i <= top; i++) {
    int at = i - first + 1, rc;
    switch (lua_type(L, i)) {
    case LUA_TNIL: rc = sqlite3_bind_null(stmt, at); break;
    case LUA_TBOOLEAN: rc = sqlite3_bind_int(stmt, at, lua_toboolean(L, i)); break;
    case LUA_TNUMBER:
      rc = lua_isinteger(L, i) ? sqlite3_bind_int64(stmt, at, lua_tointeger(L, i))
                               : sqlite3_bind_double(stmt, at, lua_tonumber(L, i));
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, i, &len);
      rc = sqlite3_bind_text64(stmt, at, s, len, SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    }
    default: rc = SQLITE_MISMATCH; /* not reached: check_parameters ran */
    }
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

static void push_column(lua_State *L, sqlite3_stmt *stmt, int c) {
  switch (sqlite3_column_type(stmt, c)) {
  case SQLITE_INTEGER: lua_pushinteger(L, sqlite3_column_int64(stmt, c)); break;
  case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(stmt, c)); break;
  case SQLITE_NULL: lua_pushnil(L); break;
  default:
    lua_pushlstring(L, (const char *)sqlite3_column_text(stmt, c), (size_t)sqlite3_column_bytes(stmt, c));
  }
}

static long long monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The first step of a statement, waiting for a lock the busy handler was
 * not asked to wait for. SQLite refuses at once, without the handler,
 * a statement that holds a read lock and needs a write one, since
 * waiting could deadlock: switching a new file to WAL does that (it reads
 * the header, then writes it), so processes opening one history at the
 * same moment failed at random. In autocommit mode the refused
 * statement's own transaction is already rolled back and nothing is held,
 * so trying it again is the wait the handler would have done, within
 * the same busy_ms. */
static int first_step(Db *d, sqlite3_stmt *stmt) {
  static const int backoff_ms[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
  long long started = monotonic_ms();
  int rc, tries = 0;
  while (((rc = sqlite3_step(stmt)) & 0xff) == SQLITE_BUSY && sqlite3_get_autocommit(d->db)) {
    int wait = backoff_ms[tries < 11 ? tries : 11];
    long long left = d->busy_ms - (monotonic_ms() - started);
    if (left <= 0) break;
    sqlite3_reset(stmt);
    sqlite3_sleep(wait < left ? wait : (int)left);
    tries++;
  }
  return rc;
}

/* Runs one statement with the parameters from index 3 on; with rows set,
 * leaves a list of row tables (column name -> value) on the stack. The
 * statement is finalized on every path but a Lua memory error while rows
 * are built, after which kapi does not go on. */
static int run_statement(lua_State *L, int rows) {
  Db *d = check_db(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  check_parameters(L, 3);
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2(d->db, sql, (int)len, &stmt, NULL);
  if (rc != SQLITE_OK) return raise(L, d->db, rc);
  rc = bind_all(L, stmt, 3);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return raise(L, d->db, rc);
  }
  if (rows) lua_newtable(L);
  int n = 0, columns = sqlite3_column_count(stmt);
  rc = first_step(d, stmt);
  for (; rc == SQLITE_ROW; rc = sqlite3_step(stmt)) {
    if (!rows) continue;
    lua_createtable(L, 0, columns);
    for (int c = 0; c < columns; c++) {
      push_column(L, stmt, c);
      lua_setfield(L, -2, sqlite3_column_name(stmt, c));
    }
    lua_rawseti(L, -2, ++n);
  }
  int changes = sqlite3_changes(d->db);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return raise(L, d->db, rc);
  if (rows) return 1;
  lua_pushinteger(L, changes);
  lua_pushinteger(L, sqlite3_last_insert_rowid(d->db));
  return 2;
}

/* db:run(sql, ...) -> rows changed, last row id */
static int l_run(lua_State *L) { return run_statement(L, 0); }

/* db:rows(sql, ...) -> {{column = value, ...}, ...} */
static int l_rows(lua_State *L) { return run_statement(L, 1); }

/* db:close(): also by __gc and __close; a second close does nothing. */
static int l_close(lua_State *L) {
  Db *d = luaL_checkudata(L, 1, DB_METATABLE);
  if (d->db) {
    sqlite3_close_v2(d->db);
    d->db = NULL;
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  Db *d = luaL_checkudata(L, 1, DB_METATABLE);
  lua_pushstring(L, d->db ? "sqlite database" : "sqlite database (closed)");
  return 1;
}

static const luaL_Reg db_methods[] = {
    {"exec", l_exec}, {"run", l_run}, {"rows", l_rows}, {"close", l_close}, {NULL, NULL}};

static const luaL_Reg db_meta[] = {
    {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}};

static const luaL_Reg sqlite_functions[] = {{"open", l_open}, {NULL, NULL}};

int luaopen_kapi_core_sqlite(lua_State *L) {
  luaL_newmetatable(L, DB_METATABLE);
  luaL_setfuncs(L, db_meta, 0);
  luaL_newlib(L, db_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, sqlite_functions);
  lua_pushstring(L, sqlite3_libversion());
  lua_setfield(L, -2, "version");
  return 1;
}
