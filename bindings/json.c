/* JSON decoding in one pass, straight into Lua values, with what lua-cjson
 * 2.1.0 (still our encoder) does not give: whole numbers as integers, and
 * empty arrays marked with the array metatable (kapi/json.lua) so that
 * they encode as [] again. Decoding with cjson and fixing its result up
 * afterwards cost a copy of the text and a second walk over every value,
 * as much again as decoding: pages of Content1 items are megabytes. */
#include <lauxlib.h>
#include <lua.h>

#include <stdint.h>
#include <string.h>

#include "bindings.h"

#define MAX_DEPTH 1000
/* 2^63: floats at or beyond it have no integer to become. */
#define INTEGER_LIMIT 9223372036854775808.0
/* Up to 18 digits always fit in a 64-bit integer. */
#define FAST_DIGITS 18

typedef struct decoder {
  lua_State *L;
  const char *text, *p, *end;
  int array_mt, null; /* stack indexes */
  int depth;
} decoder;

/* Raises "json: WHAT at character N, near 'TEXT'", or says that the text
 * ended first. Without a location prefix: the caller's is no help here. */
static void fail(decoder *d, const char *what) {
  lua_State *L = d->L;
  if (d->end == d->text) {
    lua_pushliteral(L, "json: the text is empty");
    lua_error(L);
  }
  if (d->p >= d->end) {
    lua_pushfstring(L, "json: %s, but the text ends at character %d", what,
                    (int)(d->end - d->text));
    lua_error(L);
  }
  char near[16];
  size_t n = 0;
  const char *q = d->p;
  for (; q < d->end && n < sizeof near - 1; q++) near[n++] = (unsigned char)*q < 0x20 ? ' ' : *q;
  if (q < d->end && ((unsigned char)*q & 0xC0) == 0x80) { /* a character cut in two */
    while (n > 0 && ((unsigned char)near[n - 1] & 0xC0) == 0x80) n--;
    if (n > 0) n--; /* its first byte */
  }
  near[n] = '\0';
  lua_pushfstring(L, "json: %s at character %d, near '%s'", what, (int)(d->p - d->text) + 1, near);
  lua_error(L);
}

static void skip_space(decoder *d) {
  const char *p = d->p, *end = d->end;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  d->p = p;
}

static void expect_word(decoder *d, const char *word, size_t len) {
  if ((size_t)(d->end - d->p) < len || memcmp(d->p, word, len) != 0)
    fail(d, "expected a value");
  d->p += len;
}

/* --- strings ----------------------------------------------------------- */

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The four hex digits after "\u" at d->p; d->p moves past them. */
static unsigned read_hex4(decoder *d) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int h = d->p + i < d->end ? hex_digit(d->p[i]) : -1;
    if (h < 0) {
      d->p -= 2;
      fail(d, "invalid unicode escape");
    }
    v = v << 4 | (unsigned)h;
  }
  d->p += 4;
  return v;
}

static void add_utf8(luaL_Buffer *b, unsigned c) {
  char out[4];
  size_t n;
  if (c < 0x80) {
    out[0] = (char)c, n = 1;
  } else if (c < 0x800) {
    out[0] = (char)(0xC0 | c >> 6), out[1] = (char)(0x80 | (c & 0x3F)), n = 2;
  } else if (c < 0x10000) {
    out[0] = (char)(0xE0 | c >> 12), out[1] = (char)(0x80 | (c >> 6 & 0x3F));
    out[2] = (char)(0x80 | (c & 0x3F)), n = 3;
  } else {
    out[0] = (char)(0xF0 | c >> 18), out[1] = (char)(0x80 | (c >> 12 & 0x3F));
    out[2] = (char)(0x80 | (c >> 6 & 0x3F)), out[3] = (char)(0x80 | (c & 0x3F)), n = 4;
  }
  luaL_addlstring(b, out, n);
}

/* After "\u": one code point, a surrogate pair counting as one. Errors
 * point at the escape's backslash. */
static unsigned read_code_point(decoder *d) {
  const char *escape = d->p - 2;
  unsigned c = read_hex4(d), low = 0;
  if (c >= 0xD800 && c <= 0xDBFF && d->end - d->p >= 6 && d->p[0] == '\\' && d->p[1] == 'u') {
    d->p += 2;
    low = read_hex4(d);
  }
  if (c < 0xD800 || c > 0xDFFF) return c;
  if (c <= 0xDBFF && low >= 0xDC00 && low <= 0xDFFF)
    return 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
  d->p = escape;
  fail(d, "invalid unicode escape");
  return 0;
}

static char simple_escape(char c) {
  switch (c) {
  case '"': return '"';
  case '\\': return '\\';
  case '/': return '/';
  case 'b': return '\b';
  case 'f': return '\f';
  case 'n': return '\n';
  case 'r': return '\r';
  case 't': return '\t';
  default: return 0;
  }
}

/* The rest of a string that has escapes, from its first backslash. */
static void push_escaped_string(decoder *d, const char *start) {
  luaL_Buffer b;
  luaL_buffinit(d->L, &b);
  luaL_addlstring(&b, start, (size_t)(d->p - start));
  for (;;) {
    const char *run = d->p;
    while (d->p < d->end && *d->p != '"' && *d->p != '\\') d->p++;
    luaL_addlstring(&b, run, (size_t)(d->p - run));
    if (d->p >= d->end) fail(d, "unfinished string");
    if (*d->p++ == '"') break;
    if (d->p >= d->end) fail(d, "unfinished string");
    char c = *d->p++;
    if (c == 'u') {
      add_utf8(&b, read_code_point(d));
    } else if ((c = simple_escape(c))) {
      luaL_addchar(&b, c);
    } else {
      d->p--;
      fail(d, "invalid escape");
    }
  }
  luaL_pushresult(&b);
}

/* At the opening quote: pushes the string. */
static void push_string(decoder *d) {
  const char *start = ++d->p, *p = start, *end = d->end;
  while (p < end && *p != '"' && *p != '\\') p++;
  d->p = p;
  if (p < end && *p == '"') {
    lua_pushlstring(d->L, start, (size_t)(p - start));
    d->p++;
    return;
  }
  if (p >= end) fail(d, "unfinished string");
  push_escaped_string(d, start);
}

/* --- numbers ----------------------------------------------------------- */

static const char *skip_digits(const char *p, const char *end) {
  while (p < end && *p >= '0' && *p <= '9') p++;
  return p;
}

/* A float with a whole value becomes an integer, as kapi promises. */
static void push_float(lua_State *L, lua_Number n) {
  if (n >= -INTEGER_LIMIT && n < INTEGER_LIMIT && n == (lua_Number)(lua_Integer)n)
    lua_pushinteger(L, (lua_Integer)n);
  else
    lua_pushnumber(L, n);
}

/* The checked token [s, p) that is no small integer, through Lua's own
 * conversion (which knows the locale's decimal point). */
static void push_converted(decoder *d, const char *s, size_t len) {
  char small[64];
  const char *text = small;
  if (len < sizeof small) {
    memcpy(small, s, len);
    small[len] = '\0';
  } else {
    lua_pushlstring(d->L, s, len); /* a string is NUL-terminated */
    text = lua_tostring(d->L, -1);
  }
  if (lua_stringtonumber(d->L, text) == 0) fail(d, "invalid number");
  if (text != small) lua_remove(d->L, -2);
  if (!lua_isinteger(d->L, -1)) push_float(d->L, lua_tonumber(d->L, -1)), lua_remove(d->L, -2);
}

static void push_number(decoder *d) {
  const char *s = d->p, *p = s, *end = d->end;
  int negative = p < end && *p == '-';
  if (negative) p++;
  const char *digits = p;
  if (p < end && *p == '0') p++;
  else if (p < end && *p >= '1' && *p <= '9') p = skip_digits(p, end);
  else d->p = p, fail(d, "invalid number");
  size_t n_digits = (size_t)(p - digits);
  int whole = 1;
  if (p < end && *p == '.') {
    const char *frac = ++p;
    p = skip_digits(p, end);
    if (p == frac) d->p = p, fail(d, "invalid number");
    whole = 0;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    const char *exp = p;
    p = skip_digits(p, end);
    if (p == exp) d->p = p, fail(d, "invalid number");
    whole = 0;
  }
  d->p = p;
  if (whole && n_digits <= FAST_DIGITS) {
    int64_t v = 0;
    for (const char *q = digits; q < p; q++) v = v * 10 + (*q - '0');
    lua_pushinteger(d->L, negative ? -v : v);
    return;
  }
  push_converted(d, s, (size_t)(p - s));
}

/* --- values ------------------------------------------------------------ */

static void push_value(decoder *d);

static void enter(decoder *d) {
  if (++d->depth > MAX_DEPTH) fail(d, "nested too deeply");
  luaL_checkstack(d->L, 4, "json: nested too deeply");
  d->p++; /* the opening bracket */
  skip_space(d);
}

static void leave(decoder *d) {
  d->p++; /* the closing bracket */
  d->depth--;
}

/* Whether the next character is c; at the end of the input, no. */
static int next_is(const decoder *d, char c) { return d->p < d->end && *d->p == c; }

static void push_object(decoder *d) {
  lua_State *L = d->L;
  enter(d);
  lua_createtable(L, 0, 0);
  if (next_is(d, '}')) {
    leave(d);
    return;
  }
  for (;;) {
    if (!next_is(d, '"')) fail(d, "expected a name in quotes");
    push_string(d);
    skip_space(d);
    if (!next_is(d, ':')) fail(d, "expected ':'");
    d->p++;
    push_value(d);
    lua_rawset(L, -3);
    skip_space(d);
    if (next_is(d, '}')) break;
    if (!next_is(d, ',')) fail(d, "expected ',' or '}'");
    d->p++;
    skip_space(d);
  }
  leave(d);
}

static void push_array(decoder *d) {
  lua_State *L = d->L;
  enter(d);
  lua_createtable(L, 0, 0);
  if (next_is(d, ']')) {
    lua_pushvalue(L, d->array_mt); /* kept an array through a round trip */
    lua_setmetatable(L, -2);
    leave(d);
    return;
  }
  for (lua_Integer i = 1;; i++) {
    push_value(d);
    lua_rawseti(L, -2, i);
    skip_space(d);
    if (next_is(d, ']')) break;
    if (!next_is(d, ',')) fail(d, "expected ',' or ']'");
    d->p++;
  }
  leave(d);
}

static void push_value(decoder *d) {
  skip_space(d);
  if (d->p >= d->end) fail(d, "expected a value");
  switch (*d->p) {
  case '{': push_object(d); break;
  case '[': push_array(d); break;
  case '"': push_string(d); break;
  case 't': expect_word(d, "true", 4), lua_pushboolean(d->L, 1); break;
  case 'f': expect_word(d, "false", 5), lua_pushboolean(d->L, 0); break;
  case 'n': expect_word(d, "null", 4), lua_pushvalue(d->L, d->null); break;
  default:
    if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) push_number(d);
    else fail(d, "expected a value");
  }
}

/* decode(text, array_mt, null) -> value; raises "json: ... at character N" */
static int decode(lua_State *L) {
  size_t len;
  decoder d;
  d.L = L;
  d.text = d.p = luaL_checklstring(L, 1, &len);
  d.end = d.text + len;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checkany(L, 3);
  lua_settop(L, 3);
  d.array_mt = 2, d.null = 3, d.depth = 0;
  push_value(&d);
  skip_space(&d);
  if (d.p < d.end) fail(&d, "unexpected text after the value");
  return 1;
}

static const luaL_Reg json_functions[] = {{"decode", decode}, {NULL, NULL}};

int luaopen_kapi_core_json(lua_State *L) {
  luaL_newlib(L, json_functions);
  return 1;
}
