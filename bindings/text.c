/* Text primitives that touch every byte, where a Lua pattern costs tens
 * of nanoseconds a byte: the Kroger rules make every marketing message,
 * bullet and sentence of a supplier's catalogue plain to compare them
 * (scripts/kapi/rules/kroger.lua), 2,000 items a page. What counts as
 * punctuation, white space and case is ASCII, as Lua's %p, %s and
 * string.lower see it in the C locale kapi runs in. */
#include <lauxlib.h>
#include <lua.h>

#include <stdint.h>
#include <string.h>

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

/* text.ascii_length(s) -> #s when every byte of s is ASCII, else nil:
 * a table's cells are measured by it first, utf8.len only for the others
 * (a fifth of rendering a table went to utf8.len, which decodes each
 * character). Eight bytes at a time. */
static int text_ascii_length(lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t chunk;
    memcpy(&chunk, s + i, sizeof chunk);
    if (chunk & UINT64_C(0x8080808080808080)) return 0;
  }
  for (; i < len; i++)
    if (s[i] & 0x80) return 0;
  lua_pushinteger(L, (lua_Integer)len);
  return 1;
}

static const luaL_Reg text_functions[] = {{"plain", text_plain}, {"ascii_length", text_ascii_length}, {NULL, NULL}};

int luaopen_kapi_core_text(lua_State *L) {
  luaL_newlib(L, text_functions);
  return 1;
}
