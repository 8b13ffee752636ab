/* Text primitives that touch every byte, where a Lua pattern costs tens
 * of nanoseconds a byte: the Kroger rules make every marketing message,
 * bullet and sentence of a supplier's catalogue plain to compare them
 * (scripts/kapi/rules/kroger.lua), 2,000 items a page. What counts as
 * punctuation, white space and case is ASCII, as Lua's %p, %s and
 * string.lower see it in the C locale kapi runs in. */
#include <lauxlib.h>
#include <lua.h>

#include "bindings.h"

static int is_separator(unsigned char c) { /* [%p%s] */
  return (c >= 9 && c <= 13) || (c >= 32 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
         (c >= 123 && c <= 126);
}

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c; }

/* text.plain(s) -> s lower-cased, each run of punctuation and white
 * space one space, none at either end: what
 * s:lower():gsub("[%p%s]+", " "):match("^ ?(.*%S)") or "" gives. */
static int text_plain(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len);
  size_t n = 0;
  int pending_space = 0;
  for (size_t i = 0; i < len; i++) {
    if (is_separator(s[i])) {
      pending_space = n > 0;
      continue;
    }
    if (pending_space) out[n++] = ' ';
    pending_space = 0;
    out[n++] = (char)lower(s[i]);
  }
  luaL_pushresultsize(&b, n);
  return 1;
}

static const luaL_Reg text_functions[] = {{"plain", text_plain}, {NULL, NULL}};

int luaopen_kapi_core_text(lua_State *L) {
  luaL_newlib(L, text_functions);
  return 1;
}
