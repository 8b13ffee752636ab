/* Line editing for the REPL (libedit's readline interface in callback
 * mode). Reading a line is a wait like any other: the task that asks is
 * suspended and the loop feeds keystrokes to libedit as stdin becomes
 * readable, so background tasks keep running while the user types. The
 * REPL itself (prompts, evaluation, printing) is scripts/kapi/repl.lua.
 * A module of its own, loaded by the REPL alone: libedit and the three
 * libraries it pulls in cost every other command their loading, and every
 * later dlopen (libcurl's thirty-odd libraries) a longer symbol search. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>

#include <editline/readline.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "task.h"

#define REPL_METATABLE "kapi.repl"
#define MAX_CANDIDATES 512

typedef struct repl {
  lua_State *L;
  kapi_loop *loop;
  kapi_watch watch;
  kapi_task *reader;
  int tty;
  int installed;      /* libedit's callback handler is active */
  char *line;         /* the line read, owned until handed to Lua */
  int eof;
  char plain[4096];   /* not a terminal: bytes read but not yet a line */
  size_t plain_len;
  int completer;      /* registry ref to the Lua completion function */
  char history[PATH_MAX];
  char *candidates[MAX_CANDIDATES];
  int ncandidates;
} repl;

/* libedit's readline interface is process-global and its callbacks take no
 * user data, so the one REPL is reachable from here. */
static repl *active;

/* --- reading ----------------------------------------------------------- */

static void stop_reading(repl *r) {
  kapi_watch_stop(r->loop, &r->watch);
  if (r->installed) {
    rl_callback_handler_remove();
    r->installed = 0;
  }
}

static void deliver(repl *r, char *line) {
  r->line = line;
  r->eof = line == NULL;
  stop_reading(r);
  kapi_task *t = r->reader;
  r->reader = NULL;
  if (t) kapi_task_wake(t);
}

static void on_line(char *line) { deliver(active, line); }

static void read_plain(repl *r) {
  char *nl = memchr(r->plain, '\n', r->plain_len);
  if (!nl && r->plain_len < sizeof r->plain - 1) {
    ssize_t n = read(STDIN_FILENO, r->plain + r->plain_len,
                     sizeof r->plain - 1 - r->plain_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      /* End of input: hand over the last unterminated line first. */
      deliver(r, r->plain_len ? strndup(r->plain, r->plain_len) : NULL);
      r->plain_len = 0;
      return;
    }
    r->plain_len += (size_t)n;
    nl = memchr(r->plain, '\n', r->plain_len);
  }
  size_t len = nl ? (size_t)(nl - r->plain) : r->plain_len;
  if (!nl && r->plain_len < sizeof r->plain - 1) return;
  char *line = strndup(r->plain, len);
  size_t used = nl ? len + 1 : len;
  memmove(r->plain, r->plain + used, r->plain_len - used);
  r->plain_len -= used;
  deliver(r, line);
}

static void on_stdin(kapi_watch *w, unsigned events) {
  (void)events;
  repl *r = w->data;
  if (r->tty) rl_callback_read_char();
  else read_plain(r);
}

static void readline_cancel(kapi_task *t, void *data) {
  (void)t;
  repl *r = data;
  r->reader = NULL;
  if (r->installed) {
    rl_replace_line("", 0); /* Ctrl-C discards what was typed */
    fputc('\n', stdout);
    fflush(stdout);
  }
  stop_reading(r);
}

static repl *check_repl(lua_State *L) {
  return luaL_checkudata(L, lua_upvalueindex(1), REPL_METATABLE);
}

static int readline_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  repl *r = check_repl(L);
  kapi_task_check_cancel(L, (kapi_task *)ctx);
  if (r->eof) return 0;
  lua_pushstring(L, r->line);
  free(r->line);
  r->line = NULL;
  return 1;
}

/* A line already waiting in the plain buffer needs no wait at all. */
static int take_buffered_line(repl *r) {
  if (r->tty || !memchr(r->plain, '\n', r->plain_len)) return 0;
  read_plain(r);
  return 1;
}

static int l_readline(lua_State *L) {
  repl *r = check_repl(L);
  const char *prompt = luaL_checkstring(L, 1);
  kapi_task *t = kapi_task_current(L, "readline");
  if (r->reader) return luaL_error(L, "readline: another task is reading");
  if (take_buffered_line(r)) return readline_k(L, LUA_OK, (lua_KContext)t);
  if (kapi_watch_start(r->loop, &r->watch, STDIN_FILENO, KAPI_READABLE,
                       on_stdin, r) < 0) {
    if (errno != EPERM || r->tty)
      return luaL_error(L, "readline: cannot watch standard input: %s", strerror(errno));
    /* A regular file (or /dev/null) cannot be watched, and never keeps
     * anyone waiting: its next line is read at once. */
    while (!r->line && !r->eof) read_plain(r);
    return readline_k(L, LUA_OK, (lua_KContext)t);
  }
  r->reader = t;
  if (r->tty) {
    rl_callback_handler_install(prompt, on_line);
    r->installed = 1;
  }
  return kapi_task_suspend(L, t, readline_cancel, r, (lua_KContext)t,
                           readline_k);
}

/* --- completion -------------------------------------------------------- */

static void clear_candidates(repl *r) {
  for (int i = 0; i < r->ncandidates; i++) free(r->candidates[i]);
  r->ncandidates = 0;
}

static char *next_candidate(const char *text, int state) {
  (void)text;
  return state < active->ncandidates ? strdup(active->candidates[state]) : NULL;
}

static int call_completer(lua_State *L) {
  repl *r = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->completer);
  lua_pushlstring(L, rl_line_buffer, (size_t)rl_point);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  if (!lua_istable(L, -1)) return 0;
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n && r->ncandidates < MAX_CANDIDATES; i++) {
    lua_rawgeti(L, -1, i);
    const char *s = lua_tostring(L, -1);
    if (s) r->candidates[r->ncandidates++] = strdup(s);
    lua_pop(L, 1);
  }
  return 0;
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  repl *r = active;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  clear_candidates(r);
  if (r->completer == LUA_NOREF) return NULL;
  lua_State *L = r->L;
  lua_pushcfunction(L, call_completer);
  lua_pushlightuserdata(L, r);
  lua_pushstring(L, text);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) lua_pop(L, 1); /* no candidates */
  if (r->ncandidates == 0) return NULL;
  return rl_completion_matches(text, next_candidate);
}

static int l_set_completer(lua_State *L) {
  repl *r = check_repl(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, r->completer);
  lua_pushvalue(L, 1);
  r->completer = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* --- history ----------------------------------------------------------- */

static void make_parents(char *path) {
  for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
    *p = '\0';
    mkdir(path, 0700);
    *p = '/';
  }
}

static int l_history_open(lua_State *L) {
  repl *r = check_repl(L);
  const char *path = luaL_checkstring(L, 1);
  lua_Integer size = luaL_optinteger(L, 2, 1000);
  snprintf(r->history, sizeof r->history, "%s", path);
  make_parents(r->history);
  stifle_history((int)size);
  read_history(r->history); /* a missing file is simply an empty history */
  return 0;
}

/* The least a file of the current history can hold: libedit writes a
 * cookie line, then each entry encoded (never shorter) and a newline. */
static off_t history_min_size(void) {
  off_t size = (off_t)strlen("_HiStOrY_V2_\n");
  HIST_ENTRY **list = history_list();
  for (int i = 0; list && list[i]; i++) size += (off_t)strlen(list[i]->line) + 1;
  return size;
}

/* Writes the history to a new file renamed over the old one, so a write
 * that fails never loses what was saved before: 0 or an errno. libedit
 * does not check fclose, so a file shorter than its entries tells of a
 * full disk. */
static int save_history(const char *path) {
  char tmp[PATH_MAX + 32];
  struct stat st;
  snprintf(tmp, sizeof tmp, "%s.%ld.new", path, (long)getpid());
  errno = 0;
  int err = write_history(tmp);
  if (!err && stat(tmp, &st) != 0) err = errno;
  if (!err && st.st_size < history_min_size()) err = errno ? errno : ENOSPC;
  if (!err && chmod(tmp, 0600) != 0) err = errno;
  if (!err && rename(tmp, path) != 0) err = errno;
  if (err) unlink(tmp);
  return err;
}

/* history_add(line) -> true, or false and why the history file could not
 * be written (the line stays in this session's history). */
static int l_history_add(lua_State *L) {
  repl *r = check_repl(L);
  add_history(luaL_checkstring(L, 1));
  /* Saved at once, so a crash or a kill loses nothing typed before it. */
  int err = r->history[0] ? save_history(r->history) : 0;
  lua_pushboolean(L, !err);
  if (!err) return 1;
  lua_pushstring(L, strerror(err));
  return 2;
}

static int l_history_path(lua_State *L) {
  lua_pushstring(L, check_repl(L)->history);
  return 1;
}

static int l_history_list(lua_State *L) {
  lua_newtable(L);
  HIST_ENTRY **list = history_list();
  for (int i = 0; list && list[i]; i++) {
    lua_pushstring(L, list[i]->line);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* --- notices ------------------------------------------------------------ */

/* notice(text): writes a line to stderr while the user may be typing:
 * above the prompt, which is drawn again with what was typed so far. */
static int l_notice(lua_State *L) {
  repl *r = check_repl(L);
  const char *text = luaL_checkstring(L, 1);
  if (!r->installed) {
    fprintf(stderr, "%s\n", text);
    return 0;
  }
  fputs("\r\033[K", stdout);
  fflush(stdout);
  fprintf(stderr, "%s\n", text);
  rl_forced_update_display();
  return 0;
}

/* --- the module -------------------------------------------------------- */

static int repl_gc(lua_State *L) {
  repl *r = luaL_checkudata(L, 1, REPL_METATABLE);
  stop_reading(r);
  clear_candidates(r);
  free(r->line);
  r->line = NULL;
  if (active == r) active = NULL;
  return 0;
}

static const luaL_Reg repl_functions[] = {
    {"readline", l_readline},         {"set_completer", l_set_completer},
    {"history_open", l_history_open}, {"history_add", l_history_add},
    {"history_list", l_history_list}, {"history_path", l_history_path},
    {"notice", l_notice},
    {NULL, NULL}};

int luaopen_kapi_core_repl(lua_State *L) {
  repl *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  r->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  r->loop = kapi_sched_loop(kapi_sched_get(L));
  r->watch.fd = -1;
  r->completer = LUA_NOREF;
  r->tty = isatty(STDIN_FILENO);
  if (luaL_newmetatable(L, REPL_METATABLE)) {
    lua_pushcfunction(L, repl_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  active = r;
  rl_catch_signals = 0;
  rl_attempted_completion_function = complete;
  rl_completion_append_character = '\0';
  rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/%^~#[]";
  luaL_newlibtable(L, repl_functions);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, repl_functions, 1);
  lua_pushboolean(L, r->tty);
  lua_setfield(L, -2, "tty");
  /* Keep the state object alive as long as the module. */
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "__state");
  return 1;
}
