/* File-system primitives Lua lacks: listing a directory. (The token store's
 * atomic writes and locks join this file with the authentication layer.) */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "bindings.h"

/* fs.list(dir) -> names (sorted, without . and ..) | nil, message */
static int fs_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct dirent **names;
  int n = scandir(path, &names, NULL, alphasort);
  if (n < 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_createtable(L, n, 0);
  int k = 0;
  for (int i = 0; i < n; i++) {
    const char *name = names[i]->d_name;
    if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
      lua_pushstring(L, name);
      lua_rawseti(L, -2, ++k);
    }
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  return 1;
}

static const luaL_Reg fs_functions[] = {{"list", fs_list}, {NULL, NULL}};

int luaopen_kapi_core_fs(lua_State *L) {
  luaL_newlib(L, fs_functions);
  return 1;
}
