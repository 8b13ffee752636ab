/* The Lua side of the host: the standard libraries, package paths into
 * kapi's Lua tree and C modules, the preloaded built-in modules, and the
 * facts kapi.core tells about the running program. Apart from main.c so
 * that another program (the fuzz targets in fuzz/) makes the same state. */
#define _POSIX_C_SOURCE 200809L /* struct stat's st_mtim */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bindings.h"
#include "host.h"
#include "task.h"

int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

static void prepend_path(lua_State *L, const char *field, const char *paths) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, field);
  lua_pushfstring(L, "%s;%s", paths, lua_tostring(L, -1));
  lua_setfield(L, -3, field);
  lua_pop(L, 2);
}

void kapi_host_preload(lua_State *L, const char *name, lua_CFunction open) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* --- Lua files, precompiled ---------------------------------------------
 * Parsing Lua was three quarters of a command's start (`kapi run coupons
 * --help`: 25 of 33 million instructions, lua-argparse 8 of them). The
 * build compiles kapi's tree and the modules it uses from elsewhere
 * (packaging/compile.lua): the file at /a/b.lua into
 * module_dir/compiled/a/b.luac, with its debug information, under the
 * name the file is loaded by (errors and tracebacks read the same), and
 * with the file's modification time. A compiled copy is taken only while
 * its time is still the file's (an edit since the build, or a Debian
 * upgrade of lua-argparse, and the file is parsed again) and it names the
 * file (a tree moved since it was compiled does not). */

static int same_time(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* Whether the function on top of L was compiled from the file at path. */
static int compiled_from(lua_State *L, const char *path) {
  lua_Debug ar;
  lua_pushvalue(L, -1);
  lua_getinfo(L, ">S", &ar);
  return ar.source[0] == '@' && strcmp(ar.source + 1, path) == 0;
}

/* Leaves the compiled copy of the file at path on L and returns 1, or
 * leaves nothing and returns 0. */
static int load_compiled(lua_State *L, const char *path) {
  if (path[0] != '/') return 0;
  lua_getfield(L, LUA_REGISTRYINDEX, "kapi.module_dir");
  const char *modules = lua_tostring(L, -1);
  if (!modules) {
    lua_pop(L, 1);
    return 0;
  }
  const char *compiled = lua_pushfstring(L, "%s/compiled%sc", modules, path);
  struct stat source, copy;
  if (stat(compiled, &copy) != 0 || stat(path, &source) != 0 || !same_time(&copy.st_mtim, &source.st_mtim)) {
    lua_pop(L, 2);
    return 0;
  }
  int taken = luaL_loadfilex(L, compiled, "b") == LUA_OK && compiled_from(L, path);
  if (taken) lua_replace(L, -3); /* the chunk where module_dir was */
  lua_pop(L, taken ? 1 : 3);
  return taken;
}

/* Loads the Lua file at path as luaL_loadfilex(L, path, NULL) does, from
 * its compiled copy while that is current. */
static int load_lua_file(lua_State *L, const char *path) {
  if (load_compiled(L, path)) return LUA_OK;
  return luaL_loadfilex(L, path, NULL);
}

/* package.searchpath(the module named at 1, package[field]), as Lua's
 * searchers search: leaves the file found, or nil and the files tried,
 * and returns the file found or NULL. */
static const char *search_path(lua_State *L, const char *field) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushvalue(L, 1);
  lua_getfield(L, -3, field);
  lua_call(L, 2, 2);
  return lua_tostring(L, -2);
}

/* package.searchers[2]: Lua's own searcher, loading with
 * load_lua_file: the same search of package.path, the same messages. */
static int search_lua(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *filename = search_path(L, "path");
  if (!filename) return 1; /* the files it tried */
  if (load_lua_file(L, filename) != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, filename,
                      lua_tostring(L, -1));
  lua_pushstring(L, filename);
  return 2;
}

/* core.loadfile(path): loadfile(path) through load_lua_file. */
static int l_loadfile(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (load_lua_file(L, path) == LUA_OK) return 1;
  luaL_pushfail(L);
  lua_insert(L, -2);
  return 2;
}

/* --- kapi's C modules, bound lazily ------------------------------------
 * Lua's own C searcher opens a module with RTLD_NOW, which binds at once
 * every symbol of every library the module pulls in that does not ask for
 * it itself: for kapi.core.http, libcurl's thirty-odd libraries, 2.6
 * million instructions, a tenth of a cold request. kapi's own modules
 * (module_dir) are opened with RTLD_LAZY; any other goes to Lua's searcher
 * (its upvalue), as before. */
static int search_c(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *path = search_path(L, "cpath");
  if (!path) return 1; /* the files it tried, as Lua's searcher says */
  lua_getfield(L, LUA_REGISTRYINDEX, "kapi.module_dir");
  size_t dir_len;
  const char *dir = lua_tolstring(L, -1, &dir_len);
  if (!dir || strncmp(path, dir, dir_len) != 0 || path[dir_len] != '/') {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2);
    return 2;
  }
  void *library = dlopen(path, RTLD_LAZY | RTLD_LOCAL); /* kept open for the process */
  if (!library) return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path, dlerror());
  const char *symbol = luaL_gsub(L, name, ".", "_");
  lua_CFunction open = (lua_CFunction)(uintptr_t)dlsym(library, lua_pushfstring(L, "luaopen_%s", symbol));
  if (!open) return luaL_error(L, "error loading module '%s' from file '%s':\n\tno luaopen_%s", name, path, symbol);
  lua_pushcfunction(L, open);
  lua_pushstring(L, path);
  return 2;
}

/* --- modules opened ahead ----------------------------------------------
 * Opening kapi.core.http and kapi.core.crypto maps and relocates libcurl,
 * OpenSSL and their thirty-odd libraries: 7 ms before a command's first
 * request. A command about to make requests has them opened on another
 * thread while it reads its arguments and input; the require that
 * follows opens them again, which finds them open (or waits on the
 * loader's lock for the rest). */
#define AHEAD_MAX 4
static atomic_int ahead_running;
static char *ahead_paths[AHEAD_MAX + 1];

static void *open_in_background(void *unused) {
  (void)unused;
  for (char **p = ahead_paths; *p; p++) dlopen(*p, RTLD_LAZY | RTLD_LOCAL); /* kept open, as search_c keeps them */
  atomic_store(&ahead_running, 0);
  return NULL;
}

/* core.open_ahead(name, ...): starts opening kapi's own C modules on
 * another thread, once a process; a failure is left to the require. */
static int l_open_ahead(lua_State *L) {
  static int started;
  if (started) return 0;
  started = 1;
  int n = lua_gettop(L), count = 0;
  lua_getfield(L, LUA_REGISTRYINDEX, "kapi.module_dir");
  size_t dir_len;
  const char *dir = lua_tolstring(L, -1, &dir_len);
  for (int i = 1; i <= n && count < AHEAD_MAX && dir; i++) {
    lua_settop(L, n + 1);
    lua_pushvalue(L, i);
    lua_replace(L, 1);
    const char *path = search_path(L, "cpath");
    if (path && strncmp(path, dir, dir_len) == 0 && path[dir_len] == '/' && (ahead_paths[count] = strdup(path)))
      count++;
  }
  if (count == 0) return 0;
  pthread_attr_t attr;
  pthread_t thread;
  if (pthread_attr_init(&attr) != 0) return 0;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* Signals (Ctrl-C) stay the main thread's: the opener blocks them all. */
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &before);
  atomic_store(&ahead_running, 1);
  if (pthread_create(&thread, &attr, open_in_background, NULL) != 0) atomic_store(&ahead_running, 0);
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  pthread_attr_destroy(&attr);
  return 0;
}

int kapi_host_opening_ahead(void) { return atomic_load(&ahead_running); }

static void use_compiled_tree(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_pushcfunction(L, search_lua);
  lua_rawseti(L, -2, 2);
  lua_rawgeti(L, -1, 3); /* Lua's own, for every other C module */
  lua_pushcclosure(L, search_c, 1);
  lua_rawseti(L, -2, 3);
  lua_pop(L, 2);
}

static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* Columns and rows of the terminal on fd; nothing when fd is not one. */
static int l_terminal_size(lua_State *L) {
  struct winsize size;
  if (ioctl((int)luaL_checkinteger(L, 1), TIOCGWINSZ, &size) != 0 || size.ws_col == 0) return 0;
  lua_pushinteger(L, size.ws_col);
  lua_pushinteger(L, size.ws_row);
  return 2;
}

void kapi_host_open(lua_State *L) {
  lua_pushliteral(L, KAPI_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua_version");
  lua_getfield(L, LUA_REGISTRYINDEX, "kapi.script_dir");
  lua_setfield(L, -2, "script_dir");
  lua_getfield(L, LUA_REGISTRYINDEX, "kapi.module_dir");
  lua_setfield(L, -2, "module_dir");
  lua_getfield(L, LUA_REGISTRYINDEX, "kapi.executable");
  lua_setfield(L, -2, "executable");
  lua_pushcfunction(L, l_isatty);
  lua_setfield(L, -2, "isatty");
  lua_pushcfunction(L, l_terminal_size);
  lua_setfield(L, -2, "terminal_size");
  lua_pushcfunction(L, l_loadfile);
  lua_setfield(L, -2, "loadfile");
  lua_pushcfunction(L, l_open_ahead);
  lua_setfield(L, -2, "open_ahead");
}

static int open_core(lua_State *L) {
  kapi_task_open(L);
  kapi_host_open(L);
  return 1;
}

void kapi_host_set_up(lua_State *L, const char *script_dir, const char *module_dir,
                      const char *executable) {
  luaL_openlibs(L);
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", script_dir, script_dir);
  prepend_path(L, "path", lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_pushfstring(L, "%s/?.so", module_dir);
  prepend_path(L, "cpath", lua_tostring(L, -1));
  lua_pop(L, 1);
  kapi_host_preload(L, "cjson", luaopen_cjson);
  kapi_host_preload(L, "cjson.safe", luaopen_cjson_safe);
  kapi_host_preload(L, "kapi.core", open_core);
  kapi_host_preload(L, "kapi.core.fs", luaopen_kapi_core_fs);
  kapi_host_preload(L, "kapi.core.json", luaopen_kapi_core_json);
  kapi_host_preload(L, "kapi.core.text", luaopen_kapi_core_text);
  lua_pushstring(L, script_dir);
  lua_setfield(L, LUA_REGISTRYINDEX, "kapi.script_dir");
  lua_pushstring(L, module_dir);
  lua_setfield(L, LUA_REGISTRYINDEX, "kapi.module_dir");
  lua_pushstring(L, executable);
  lua_setfield(L, LUA_REGISTRYINDEX, "kapi.executable");
  use_compiled_tree(L);
}
