/* kapi: entry point. Creates the Lua state and the event loop, finds the
 * Lua tree, and runs the command line (scripts/kapi/cli.lua) as the main
 * task. Everything after start-up is policy, and policy lives in Lua. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"
#include "host.h"
#include "loop.h"
#include "task.h"

typedef struct host {
  char executable[PATH_MAX];
  int argc;
  char **argv;
  kapi_loop *loop;
  kapi_sched *sched;
  char script_dir[PATH_MAX + 32];
  char module_dir[PATH_MAX + 32];
} host;

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Installed: <prefix>/bin/kapi finds <prefix>/share/kapi and
 * <prefix>/lib/kapi, named without "bin/.." (the names the tree's
 * compiled files were made for). Otherwise it is running from its build
 * tree, which knows the source tree it was configured from. */
static void find_tree(host *h) {
  char exe[PATH_MAX], probe[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    memcpy(h->executable, exe, (size_t)n + 1);
    for (int up = 0; up < 2; up++) { /* <prefix>/bin/kapi -> <prefix> */
      char *slash = strrchr(exe, '/');
      if (slash) *slash = '\0';
    }
    snprintf(probe, sizeof probe, "%s/share/kapi/kapi/cli.lua", exe);
    if (is_file(probe)) {
      snprintf(h->script_dir, sizeof h->script_dir, "%s/share/kapi", exe);
      snprintf(h->module_dir, sizeof h->module_dir, "%s/" KAPI_LIBDIR "/kapi", exe);
      return;
    }
  }
  snprintf(h->script_dir, sizeof h->script_dir, "%s", KAPI_SOURCE_SCRIPTS);
  snprintf(h->module_dir, sizeof h->module_dir, "%s", KAPI_BUILD_MODULES);
}

static void set_up_state(lua_State *L, host *h) {
  kapi_host_set_up(L, h->script_dir, h->module_dir, h->executable[0] ? h->executable : h->argv[0]);
}

static void push_argv(lua_State *L, host *h) {
  lua_createtable(L, h->argc, 0);
  for (int i = 0; i < h->argc; i++) {
    lua_pushstring(L, h->argv[i]);
    lua_rawseti(L, -2, i);
  }
}

static int is_interrupt(lua_State *L, int error) {
  if (!lua_istable(L, error)) return 0;
  lua_getfield(L, error, "kind");
  int yes = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "interrupted") == 0;
  lua_pop(L, 1);
  return yes;
}

/* The main task's outcome: the exit code it returned, or its error. The
 * command line reports script errors itself; this is the last resort. */
static int main_outcome(lua_State *L, int task) {
  lua_getfield(L, task, "error");
  lua_pushvalue(L, task);
  lua_call(L, 1, 2);
  int error = lua_absindex(L, -2), traceback = lua_absindex(L, -1);
  if (lua_isnil(L, error)) {
    lua_getfield(L, task, "wait");
    lua_pushvalue(L, task);
    lua_call(L, 1, 1);
    return lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  }
  if (is_interrupt(L, error)) return 130;
  fprintf(stderr, "kapi: %s\n", luaL_tolstring(L, error, NULL));
  if (getenv("KAPI_DEBUG")) fprintf(stderr, "%s\n", lua_tostring(L, traceback));
  return 1;
}

static int pmain(lua_State *L) {
  host *h = lua_touserdata(L, 1);
  set_up_state(L, h);
  h->sched = kapi_sched_new(L, h->loop);
  if (!h->sched) return luaL_error(L, "out of memory");
  lua_getglobal(L, "require");
  lua_pushliteral(L, "kapi.cli");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "main");
  push_argv(L, h);
  kapi_task *main_task = kapi_task_spawn(L, 1);
  int task = lua_gettop(L);
  kapi_loop_catch_interrupts(h->loop);
  kapi_sched_run_until(h->sched, main_task);
  kapi_loop_release_interrupts(h->loop);
  int code = main_outcome(L, task);
  int left = kapi_sched_cancel_all(h->sched);
  if (left > 0 && code == 0)
    fprintf(stderr,
            "kapi: warning: %d task%s still running when the program ended "
            "%s cancelled (wait for tasks with task:wait())\n",
            left, left == 1 ? "" : "s", left == 1 ? "was" : "were");
  lua_pushinteger(L, code);
  return 1;
}

/* A reader that went away (`kapi ... | head -1`) is no failure: the
 * output was not wanted. A pipe whose readers are gone polls POLLERR. */
static int reader_gone(void) {
  struct stat st;
  if (fstat(STDOUT_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) return 0;
  struct pollfd out = {.fd = STDOUT_FILENO, .events = POLLOUT};
  return poll(&out, 1, 0) == 1 && (out.revents & (POLLERR | POLLHUP));
}

/* Output that could not be written (a full disk, a closed stdout) makes
 * the command fail, as it does for cat or echo: exit 0 says the data is
 * there. Returns the exit code to use. */
static int check_output(int code) {
  errno = 0;
  int flush_failed = fflush(stdout) != 0;
  int saved = errno;
  if (!flush_failed && !ferror(stdout)) return code;
  if (reader_gone()) return code;
  if (saved != 0) fprintf(stderr, "kapi: cannot write the output: %s\n", strerror(saved));
  else fprintf(stderr, "kapi: cannot write the output (stdout)\n");
  return code == 0 ? 1 : code;
}

int main(int argc, char **argv) {
  static host h;
  h.argc = argc;
  h.argv = argv;
  signal(SIGPIPE, SIG_IGN);
  /* Lua's collector frees in bursts; glibc would hand the memory back to
   * the kernel after each and fault it in again (brk churn was 13% of an
   * HTTP fan-out). Keep up to 16 MB of free heap instead. Blocks of a few
   * megabytes (a page of Content1 items, its body, its buffer) come from
   * that heap too rather than from mmap: mapping and unmapping them was
   * 900 page faults per page and 40% of the client's time. */
  mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
  mallopt(M_TOP_PAD, 1024 * 1024);
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  find_tree(&h);
  h.loop = kapi_loop_new();
  lua_State *L = h.loop ? kapi_state_new() : NULL;
  if (!L) {
    fprintf(stderr, "kapi: cannot start: out of memory\n");
    return 1;
  }
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &h);
  int status = lua_pcall(L, 1, 1, 0);
  int code = 1;
  if (status == LUA_OK) code = (int)lua_tointeger(L, -1);
  else fprintf(stderr, "kapi: %s\n", lua_tostring(L, -1));
  kapi_state_close_at_exit(L);
  code = check_output(code);
  if (h.sched) kapi_sched_free(h.sched);
  kapi_loop_free(h.loop);
  if (kapi_host_opening_ahead()) { /* nothing is left for exit to do but wait for it */
    fflush(NULL);
    _exit(code);
  }
  return code;
}
