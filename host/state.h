/* The Lua state kapi runs: its allocator, panic and warning functions. */
#ifndef KAPI_STATE_H
#define KAPI_STATE_H

#include <lua.h>

/* A new Lua state, as luaL_newstate makes one but for the allocator.
 * NULL when out of memory. */
lua_State *kapi_state_new(void);

/* Closes L and frees what its allocator kept. */
void kapi_state_close(lua_State *L);

/* Closes L as the process ends: finalizers and __close run, but the
 * blocks are left for the exit to take back (freed as kapi_state_close
 * frees them under valgrind or AddressSanitizer). */
void kapi_state_close_at_exit(lua_State *L);

#endif
