/* The C modules built into the kapi executable (preloaded, opened on first
 * require). Modules with heavy libraries (libcurl, OpenSSL,
 * libmicrohttpd) are built as shared objects and loaded on demand. */
#ifndef KAPI_BINDINGS_H
#define KAPI_BINDINGS_H

#include <lua.h>
#include <stdlib.h>

int luaopen_kapi_core_fs(lua_State *L);
int luaopen_kapi_core_json(lua_State *L);
int luaopen_kapi_core_text(lua_State *L);

#endif
