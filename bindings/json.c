/* Empty JSON arrays for lua-cjson, which decodes `[]` and `{}` alike and
 * encodes every empty table as `{}`. Before decoding, each `[]` outside a
 * string becomes a one-element array holding a marker; after, those are
 * replaced by empty tables carrying the array metatable (kapi/json.lua). */
#include <lauxlib.h>
#include <lua.h>

#include <string.h>

#include "bindings.h"

#define MARKER "\0[]"
#define MARKER_LEN 3
#define MARKED_ARRAY "[\"\\u0000[]\"]"

static size_t skip_space(const char *s, size_t i, size_t len) {
  while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
  return i;
}

/* mark_empty_arrays(text) -> text with markers, or nil when it has none */
static int mark_empty_arrays(lua_State *L) {
  size_t len, i, start = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  int in_string = 0, found = 0;
  luaL_Buffer b;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') i++;
      else if (c == '"') in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '[') {
      size_t j = skip_space(s, i + 1, len);
      if (j < len && s[j] == ']') {
        if (!found) luaL_buffinit(L, &b);
        found = 1;
        luaL_addlstring(&b, s + start, i - start);
        luaL_addstring(&b, MARKED_ARRAY);
        start = j + 1;
        i = j;
      }
    }
  }
  if (!found) return 0;
  luaL_addlstring(&b, s + start, len - start);
  luaL_pushresult(&b);
  return 1;
}

static int is_marked(lua_State *L, int index) {
  if (!lua_istable(L, index) || lua_rawlen(L, index) != 1) return 0;
  lua_rawgeti(L, index, 1);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  int yes = s && len == MARKER_LEN && memcmp(s, MARKER, MARKER_LEN) == 0;
  lua_pop(L, 1);
  return yes;
}

static void push_empty_array(lua_State *L, int mt) {
  lua_newtable(L);
  lua_pushvalue(L, mt);
  lua_setmetatable(L, -2);
}

static void restore_table(lua_State *L, int t, int mt, int depth) {
  luaL_checkstack(L, 4, "json nested too deeply");
  if (depth > 1000) luaL_error(L, "json nested too deeply");
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int v = lua_gettop(L);
    if (is_marked(L, v)) {
      lua_pushvalue(L, v - 1);
      push_empty_array(L, mt);
      lua_rawset(L, t); /* assigning an existing key during lua_next is allowed */
    } else if (lua_istable(L, v)) {
      restore_table(L, v, mt, depth + 1);
    }
    lua_pop(L, 1);
  }
}

/* restore_empty_arrays(value, array_mt) -> value with markers replaced */
static int restore_empty_arrays(lua_State *L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (is_marked(L, 1)) {
    push_empty_array(L, 2);
    return 1;
  }
  if (lua_istable(L, 1)) restore_table(L, 1, 2, 0);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg json_functions[] = {
    {"mark_empty_arrays", mark_empty_arrays},
    {"restore_empty_arrays", restore_empty_arrays},
    {NULL, NULL}};

int luaopen_kapi_core_json(lua_State *L) {
  luaL_newlib(L, json_functions);
  return 1;
}
