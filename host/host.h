/* What the host adds to Lua besides tasks: facts about the running
 * program (kapi.core) and line editing for the REPL (kapi.core.repl). */
#ifndef KAPI_HOST_H
#define KAPI_HOST_H

#include <lua.h>

/* Adds version, paths and terminal facts to the table on top of L. */
void kapi_host_open(lua_State *L);
int kapi_repl_open(lua_State *L);

#endif
