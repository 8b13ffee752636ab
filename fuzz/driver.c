/* A libFuzzer target whose harness is Lua: fuzz/FUZZ_TARGET.lua, run once
 * in a state made as kapi makes its own (host/host.c), returns a function
 * of one input. Each input runs that function as a task on kapi's loop, so
 * that a harness can make requests and serve them as kapi does. The
 * harness catches what the code under test may answer to bad input (a
 * clean error of its own); anything it lets out is a finding, printed with
 * its traceback before the process aborts, which libFuzzer takes as a
 * crash and saves the input of. */
#include <lauxlib.h>
#include <lua.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "host.h"
#include "loop.h"
#include "state.h"
#include "task.h"

int luaopen_kapi_core_http(lua_State *L);
int luaopen_kapi_core_server(lua_State *L);
int luaopen_kapi_core_crypto(lua_State *L);
int luaopen_kapi_core_xml(lua_State *L);
int luaopen_kapi_core_sqlite(lua_State *L);
int luaopen_kapi_core_lines(lua_State *L);
int luaopen_fuzz_peer(lua_State *L);

/* Coverage of the Lua code. libFuzzer sees only instrumented C, and the
 * Lua interpreter (Debian's, not instrumented) runs every Lua line through
 * the same C, so new paths through kapi's Lua would look like nothing new.
 * A line hook counts each edge (previous line, this line) of the running
 * Lua into counters kept in the section libFuzzer reads as extra coverage,
 * as atheris does for Python's bytecodes. Threads inherit the hook from
 * the thread that makes them, so every task and handler has it. */
#define LUA_EDGES (1 << 16)
__attribute__((used, section("__libfuzzer_extra_counters")))
uint8_t fuzz_lua_edges[LUA_EDGES];

static void on_lua_line(lua_State *L, lua_Debug *ar) {
  static uintptr_t previous;
  if (!lua_getinfo(L, "S", ar)) return;
  /* The source string lives as long as its chunk: the same pointer for
   * every line of a file, whichever closure runs it. */
  uintptr_t here = (uintptr_t)ar->source * 31 + (uintptr_t)ar->currentline * 2654435761u;
  here ^= here >> 15;
  fuzz_lua_edges[(here ^ previous) & (LUA_EDGES - 1)]++;
  previous = here >> 1;
}

/* The one state, its loop and the harness's function, for the process's
 * life (libFuzzer never says when it ends). */
static struct {
  lua_State *L;
  kapi_loop *loop;
  kapi_sched *sched;
  int harness; /* registry ref */
} fuzz;

static void finding(lua_State *L, const char *what, int error, int traceback) {
  fprintf(stderr, "fuzz: %s failed: %s\n", what, luaL_tolstring(L, error, NULL));
  if (traceback) fprintf(stderr, "%s\n", lua_tostring(L, traceback));
  fflush(stderr);
  abort();
}

/* The finished task at index `task`: its results on the stack, or a
 * finding when it failed (a deadlock included). */
static void take_outcome(lua_State *L, int task, const char *what) {
  lua_getfield(L, task, "error");
  lua_pushvalue(L, task);
  lua_call(L, 1, 2);
  if (!lua_isnil(L, -2)) finding(L, what, lua_absindex(L, -2), lua_absindex(L, -1));
  lua_pop(L, 2);
  lua_getfield(L, task, "wait");
  lua_pushvalue(L, task);
  lua_call(L, 1, 1);
}

/* Runs the function and nargs arguments on top of the stack as a task
 * until it ends; leaves its first result. */
static void run_task(lua_State *L, int nargs, const char *what) {
  kapi_task *t = kapi_task_spawn(L, nargs);
  int task = lua_gettop(L);
  kapi_sched_run_until(fuzz.sched, t);
  take_outcome(L, task, what);
  lua_remove(L, task);
}

static void set_up(void) {
  lua_State *L = fuzz.L;
  /* KAPI_FUZZ_SCRIPTS: another copy of scripts/ to run, such as a
   * campaign's snapshot of the committed tree while the work tree changes. */
  const char *scripts = getenv("KAPI_FUZZ_SCRIPTS");
  kapi_host_set_up(L, scripts && *scripts ? scripts : KAPI_SOURCE_SCRIPTS, KAPI_BUILD_MODULES,
                   "kapi-fuzz-" FUZZ_TARGET);
  /* The costly modules are linked in rather than loaded from lib/: no
   * shared object for the sanitizers and coverage to follow. */
  kapi_host_preload(L, "kapi.core.http", luaopen_kapi_core_http);
  kapi_host_preload(L, "kapi.core.server", luaopen_kapi_core_server);
  kapi_host_preload(L, "kapi.core.crypto", luaopen_kapi_core_crypto);
  kapi_host_preload(L, "kapi.core.xml", luaopen_kapi_core_xml);
  kapi_host_preload(L, "kapi.core.sqlite", luaopen_kapi_core_sqlite);
  kapi_host_preload(L, "kapi.core.lines", luaopen_kapi_core_lines);
  kapi_host_preload(L, "fuzz.peer", luaopen_fuzz_peer);
  fuzz.sched = kapi_sched_new(L, fuzz.loop);
  if (!fuzz.sched) {
    fprintf(stderr, "fuzz: out of memory\n");
    abort();
  }
  /* Tasks get their metatable when kapi.core opens, as kapi.cli has it
   * opened before main.c spawns the main task. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "kapi.core");
  lua_call(L, 1, 0);
  if (luaL_loadfile(L, FUZZ_DIR "/" FUZZ_TARGET ".lua") != LUA_OK) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pushliteral(L, FUZZ_DIR);
  run_task(L, 1, "the harness's set-up (" FUZZ_TARGET ".lua)");
  if (!lua_isfunction(L, -1)) {
    fprintf(stderr, "fuzz: %s.lua must return a function of one input\n", FUZZ_TARGET);
    abort();
  }
  fuzz.harness = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz.loop = kapi_loop_new();
  fuzz.L = fuzz.loop ? kapi_state_new() : NULL;
  if (!fuzz.L) {
    fprintf(stderr, "fuzz: cannot start: out of memory\n");
    abort();
  }
  set_up();
  if (FUZZ_LUA_LINES) lua_sethook(fuzz.L, on_lua_line, LUA_MASKLINE, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz.L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz.harness);
  lua_pushlstring(L, (const char *)data, size);
  run_task(L, 1, "the input");
  lua_settop(L, 0);
  return 0;
}
