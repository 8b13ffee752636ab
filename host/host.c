/* The Lua side of the host: the standard libraries, package paths into
 * kapi's Lua tree and C modules, the preloaded built-in modules, and the
 * facts kapi.core tells about the running program. Apart from main.c so
 * that another program (the fuzz targets in fuzz/) makes the same state. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <sys/ioctl.h>
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
  kapi_host_preload(L, "kapi.core.repl", kapi_repl_open);
  kapi_host_preload(L, "kapi.core.fs", luaopen_kapi_core_fs);
  kapi_host_preload(L, "kapi.core.json", luaopen_kapi_core_json);
  lua_pushstring(L, script_dir);
  lua_setfield(L, LUA_REGISTRYINDEX, "kapi.script_dir");
  lua_pushstring(L, module_dir);
  lua_setfield(L, LUA_REGISTRYINDEX, "kapi.module_dir");
  lua_pushstring(L, executable);
  lua_setfield(L, LUA_REGISTRYINDEX, "kapi.executable");
}
