/* What lua-cjson 2.1.0 does not: empty arrays that survive a round trip,
 * and integers. It decodes `[]` and `{}` alike, encodes every empty table
 * as `{}`, and decodes every number as a float. Before decoding, each `[]`
 * outside a string becomes a one-element array holding a marker; after,
 * one walk replaces those by empty tables carrying the array metatable
 * (kapi/json.lua) and turns floats with integral values into integers. */
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

/* 2^63: floats at or beyond it have no integer to become. */
#define INTEGER_LIMIT 9223372036854775808.0

static int push_integer_of(lua_State *L, int v) {
  if (lua_type(L, v) != LUA_TNUMBER || lua_isinteger(L, v)) return 0;
  lua_Number n = lua_tonumber(L, v);
  if (n != n || n < -INTEGER_LIMIT || n >= INTEGER_LIMIT || n != (lua_Number)(lua_Integer)n)
    return 0;
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static void normalize_table(lua_State *L, int t, int mt, int depth) {
  luaL_checkstack(L, 4, "json nested too deeply");
  if (depth > 1000) luaL_error(L, "json nested too deeply");
  lua_pushnil(L);
  while (lua_next(L, t)) {
    int v = lua_gettop(L);
    /* Assigning to an existing key during lua_next is allowed. */
    if (is_marked(L, v)) {
      lua_pushvalue(L, v - 1);
      push_empty_array(L, mt);
      lua_rawset(L, t);
    } else if (lua_istable(L, v)) {
      normalize_table(L, v, mt, depth + 1);
    } else if (push_integer_of(L, v)) {
      lua_pushvalue(L, v - 1);
      lua_insert(L, -2);
      lua_rawset(L, t);
    }
    lua_pop(L, 1);
  }
}

/* normalize(value, array_mt) -> value with empty-array markers replaced
 * and integral numbers as integers */
static int normalize(lua_State *L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (is_marked(L, 1)) {
    push_empty_array(L, 2);
    return 1;
  }
  if (push_integer_of(L, 1)) return 1;
  if (lua_istable(L, 1)) normalize_table(L, 1, 2, 0);
  lua_settop(L, 1);
  return 1;
}

static const luaL_Reg json_functions[] = {
    {"mark_empty_arrays", mark_empty_arrays},
    {"normalize", normalize},
    {NULL, NULL}};

int luaopen_kapi_core_json(lua_State *L) {
  luaL_newlib(L, json_functions);
  return 1;
}
