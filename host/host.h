/* What the host adds to Lua besides tasks: facts about the running
 * program (kapi.core), line editing for the REPL (kapi.core.repl), and the
 * set-up that makes a fresh state kapi's (host.c). */
#ifndef KAPI_HOST_H
#define KAPI_HOST_H

#include <lua.h>

/* Opens the standard libraries, puts script_dir (kapi's Lua tree) and
 * module_dir (its C modules) first on the package paths, and preloads the
 * built-in modules. executable is what kapi.core.executable says. */
void kapi_host_set_up(lua_State *L, const char *script_dir, const char *module_dir,
                      const char *executable);
/* Registers open as the loader of module `name` (package.preload). */
void kapi_host_preload(lua_State *L, const char *name, lua_CFunction open);

/* Adds version, paths and terminal facts to the table on top of L. */
void kapi_host_open(lua_State *L);

/* Whether modules opened ahead (core.open_ahead) are still being opened:
 * the process then ends without exit's handlers, which would wait. */
int kapi_host_opening_ahead(void);

#endif
