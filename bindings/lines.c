/* Lines from a file descriptor as a wait like any other: the task that
 * reads is suspended until a whole line has come, while the loop serves
 * every other task (kapi mcp reads its JSON-RPC messages so, and can hear
 * a cancellation while a tool runs). Lines may be long (a tool's
 * arguments); a line over the reader's limit is an error, not memory
 * without end. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bindings.h"
#include "task.h"

#define READER_METATABLE "kapi.lines.reader"
#define CHUNK 65536

typedef struct {
  kapi_loop *loop;
  kapi_watch watch;
  kapi_task *waiting;
  int fd;
  int watching;
  int eof;
  int too_long;
  char *buf;
  size_t len, cap, max;
} reader;

static void stop_watching(reader *r) {
  if (r->watching) kapi_watch_stop(r->loop, &r->watch);
  r->watching = 0;
}

static char *newline_in(reader *r) { return r->len ? memchr(r->buf, '\n', r->len) : NULL; }

/* Reads what is there; returns 1 when a line (or the end) is ready. */
static int fill(reader *r) {
  if (newline_in(r) || r->eof) return 1;
  if (r->len >= r->max) {
    r->too_long = 1;
    return 1;
  }
  if (r->cap - r->len < CHUNK) {
    size_t cap = r->cap ? r->cap * 2 : CHUNK * 2;
    char *grown = realloc(r->buf, cap);
    if (!grown) {
      r->too_long = 1;
      return 1;
    }
    r->buf = grown;
    r->cap = cap;
  }
  ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (n <= 0) r->eof = 1;
  else r->len += (size_t)n;
  return newline_in(r) || r->eof || r->len >= r->max;
}

static void on_readable(kapi_watch *w, unsigned events) {
  (void)events;
  reader *r = w->data;
  if (!fill(r)) return;
  stop_watching(r);
  kapi_task *t = r->waiting;
  r->waiting = NULL;
  if (t) kapi_task_wake(t);
}

static void read_cancel(kapi_task *t, void *data) {
  (void)t;
  reader *r = data;
  r->waiting = NULL;
  stop_watching(r);
}

static reader *check_reader(lua_State *L) {
  reader *r = luaL_checkudata(L, 1, READER_METATABLE);
  if (r->fd < 0) luaL_error(L, "lines: the reader is closed");
  return r;
}

/* The next line without its end (a CR before it taken too), or nil at the
 * end of input; the last line may have no end. */
static int take_line(lua_State *L, reader *r) {
  if (r->too_long) {
    r->too_long = 0;
    r->len = 0; /* the rest of that line is dropped as it comes */
    return kapi_usage_error(L, "lines: a line longer than %d bytes", (int)r->max);
  }
  char *nl = newline_in(r);
  size_t len = nl ? (size_t)(nl - r->buf) : r->len;
  if (!nl && r->len == 0) return 0; /* the end */
  size_t shown = len > 0 && r->buf[len - 1] == '\r' ? len - 1 : len;
  lua_pushlstring(L, r->buf, shown);
  size_t used = nl ? len + 1 : len;
  memmove(r->buf, r->buf + used, r->len - used);
  r->len -= used;
  return 1;
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  kapi_task_check_cancel(L, (kapi_task *)ctx);
  return take_line(L, check_reader(L));
}

/* reader:read() -> line | nil */
static int l_read(lua_State *L) {
  reader *r = check_reader(L);
  kapi_task *t = kapi_task_current(L, "lines:read");
  if (r->waiting) return luaL_error(L, "lines:read: another task is reading");
  /* A line already here needs no wait; otherwise read only once the loop
   * says the input is readable (a read now would block every task). */
  if (newline_in(r) || r->eof || r->too_long) return take_line(L, r);
  if (kapi_watch_start(r->loop, &r->watch, r->fd, KAPI_READABLE, on_readable, r) < 0) {
    if (errno != EPERM) return luaL_error(L, "lines:read: cannot watch the input: %s", strerror(errno));
    /* A regular file cannot be watched and never keeps anyone waiting. */
    while (!fill(r)) {
    }
    return take_line(L, r);
  }
  r->watching = 1;
  r->waiting = t;
  return kapi_task_suspend(L, t, read_cancel, r, (lua_KContext)t, read_k);
}

static int l_close(lua_State *L) {
  reader *r = luaL_checkudata(L, 1, READER_METATABLE);
  stop_watching(r);
  free(r->buf);
  r->buf = NULL;
  r->len = r->cap = 0;
  r->fd = -1;
  return 0;
}

/* lines.reader(fd = 0, max_bytes = 64 MiB) -> reader */
static int l_reader(lua_State *L) {
  int fd = (int)luaL_optinteger(L, 1, STDIN_FILENO);
  lua_Integer max = luaL_optinteger(L, 2, 64 << 20);
  if (fd < 0) return kapi_usage_error(L, "lines.reader: fd must be a file descriptor, got %d", fd);
  if (max < 1 || max > (1 << 30)) return kapi_usage_error(L, "lines.reader: max_bytes from 1 to 1 GiB");
  reader *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->fd = fd;
  r->max = (size_t)max;
  r->loop = kapi_sched_loop(kapi_sched_get(L));
  luaL_setmetatable(L, READER_METATABLE);
  return 1;
}

static const luaL_Reg reader_methods[] = {{"read", l_read}, {"close", l_close}, {NULL, NULL}};
static const luaL_Reg reader_meta[] = {{"__gc", l_close}, {"__close", l_close}, {NULL, NULL}};
static const luaL_Reg lines_functions[] = {{"reader", l_reader}, {NULL, NULL}};

int luaopen_kapi_core_lines(lua_State *L) {
  luaL_newmetatable(L, READER_METATABLE);
  luaL_setfuncs(L, reader_meta, 0);
  luaL_newlib(L, reader_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, lines_functions);
  return 1;
}
