/* JSON in one pass each way, with what lua-cjson 2.1.0 does not give.
 * Decoding goes straight into Lua values: whole numbers as integers, and
 * empty arrays marked with the array metatable (kapi/json.lua) so that
 * they encode as [] again. Decoding with cjson and fixing its result up
 * afterwards cost a copy of the text and a second walk over every value,
 * as much again as decoding: pages of Content1 items are megabytes.
 * Encoding writes integers exactly (cjson's %.14g turns a 16-digit id into
 * 8.5947431764764e+15), floats in the fewest digits that read back the
 * same, "/" unescaped, the marked empty arrays as [], and, when asked,
 * object keys in order so that the same data always gives the same text. */
#include <lauxlib.h>
#include <lua.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings.h"
#include "task.h"

#define MAX_DEPTH 1000
/* 2^63: floats at or beyond it have no integer to become. */
#define INTEGER_LIMIT 9223372036854775808.0
/* For looking at eight bytes of a string at once (scan_plain). */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
/* Up to 18 digits always fit in a 64-bit integer. */
#define FAST_DIGITS 18

typedef struct decoder {
  lua_State *L;
  const char *text, *p, *end;
  int array_mt, null; /* stack indexes */
  int without;        /* stack index of the names left out ({name = true}), or 0 */
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

static size_t utf8_length(const unsigned char *s, size_t n);

/* From p, the characters of a string up to its closing quote, a backslash
 * or the end of the text. RFC 8259 strings hold no raw control character
 * (NUL included) and are UTF-8: anything else is refused where it stands,
 * never passed on to a script as text. */
static const char *scan_plain(decoder *d, const char *p) {
  const char *end = d->end;
  /* Most text is plain ASCII: eight bytes at a time while none of them
   * is a quote, a backslash, a control character or above 0x7F (the
   * byte loop below deals with those). */
  while (end - p >= 8) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    uint64_t special = ((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) |
                       ((backslash - ONES) & ~backslash) | w;
    if (special & HIGHS) break;
    p += 8;
  }
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c >= 0x20 && c < 0x80) {
      if (c == '"' || c == '\\') return p;
      p++;
    } else if (c < 0x20) {
      d->p = p;
      fail(d, "a control character in a string (write it as \\u00XX)");
    } else {
      size_t len = utf8_length((const unsigned char *)p, (size_t)(end - p));
      if (len == 0) {
        d->p = p;
        fail(d, "a string that is not UTF-8");
      }
      p += len;
    }
  }
  return p;
}

/* The rest of a string that has escapes, from its first backslash. */
static void push_escaped_string(decoder *d, const char *start) {
  luaL_Buffer b;
  luaL_buffinit(d->L, &b);
  luaL_addlstring(&b, start, (size_t)(d->p - start));
  for (;;) {
    const char *run = d->p;
    d->p = scan_plain(d, d->p);
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
  const char *start = ++d->p, *end = d->end;
  const char *p = scan_plain(d, start);
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
static void skip_value(decoder *d);

/* An object's or an array's first PENDING members wait on the stack, and
 * its table is made once their number is known: most JSON objects are
 * small, and a table grown a key at a time is rehashed at every power of
 * two (a third of decoding a page of products went to that). */
#define PENDING 32

static void enter(decoder *d) {
  if (++d->depth > MAX_DEPTH) fail(d, "nested too deeply");
  luaL_checkstack(d->L, 2 * PENDING + 4, "json: nested too deeply");
  d->p++; /* the opening bracket */
  skip_space(d);
}

static void leave(decoder *d) {
  d->p++; /* the closing bracket */
  d->depth--;
}

/* Whether the next character is c; at the end of the input, no. */
static int next_is(const decoder *d, char c) { return d->p < d->end && *d->p == c; }

/* Makes the table for the n name-value pairs on top of the stack (room
 * for at least `room` names) and sets them in the order they came, so
 * that of a name given twice the last value stays; leaves the table. */
static void make_object(lua_State *L, int n, int room) {
  lua_createtable(L, 0, room);
  lua_insert(L, -2 * n - 1);
  for (int i = 0; i < n; i++) {
    int key = -2 * n + 2 * i;
    lua_pushvalue(L, key);
    lua_pushvalue(L, key);
    lua_rawset(L, -2 * n - 3);
  }
  lua_pop(L, 2 * n);
}

/* Whether the name on top of the stack is one decoding leaves out. */
static int left_out(decoder *d) {
  if (!d->without) return 0;
  lua_pushvalue(d->L, -1);
  int out = lua_rawget(d->L, d->without) != LUA_TNIL;
  lua_pop(d->L, 1);
  return out;
}

static void push_object(decoder *d) {
  lua_State *L = d->L;
  enter(d);
  if (next_is(d, '}')) {
    lua_createtable(L, 0, 0);
    leave(d);
    return;
  }
  int pending = 0, made = 0;
  for (;;) {
    if (!next_is(d, '"')) fail(d, "expected a name in quotes");
    push_string(d);
    skip_space(d);
    if (!next_is(d, ':')) fail(d, "expected ':'");
    d->p++;
    if (left_out(d)) {
      lua_pop(L, 1); /* the name */
      skip_value(d);
    } else {
      push_value(d);
      if (made) {
        lua_rawset(L, -3);
      } else if (++pending == PENDING) {
        make_object(L, pending, 2 * PENDING);
        made = 1;
      }
    }
    skip_space(d);
    if (next_is(d, '}')) break;
    if (!next_is(d, ',')) fail(d, "expected ',' or '}'");
    d->p++;
    skip_space(d);
  }
  if (!made) make_object(L, pending, pending);
  leave(d);
}

/* As make_object, for the n values of an array. */
static void make_array(lua_State *L, int n, int room) {
  lua_createtable(L, room, 0);
  lua_insert(L, -n - 1);
  for (int i = n; i >= 1; i--) lua_rawseti(L, -i - 1, i);
}

static void push_array(decoder *d) {
  lua_State *L = d->L;
  enter(d);
  if (next_is(d, ']')) {
    lua_createtable(L, 0, 0);
    lua_pushvalue(L, d->array_mt); /* kept an array through a round trip */
    lua_setmetatable(L, -2);
    leave(d);
    return;
  }
  int pending = 0, made = 0;
  for (lua_Integer i = 1;; i++) {
    push_value(d);
    if (made) {
      lua_rawseti(L, -2, i);
    } else if (++pending == PENDING) {
      make_array(L, pending, 2 * PENDING);
      made = 1;
    }
    skip_space(d);
    if (next_is(d, ']')) break;
    if (!next_is(d, ',')) fail(d, "expected ',' or ']'");
    d->p++;
  }
  if (!made) make_array(L, pending, pending);
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

/* A decoder of the text at 1, with the array metatable at 2 and null at 3. */
static decoder decoder_of(lua_State *L) {
  size_t len;
  decoder d;
  d.L = L;
  d.text = d.p = luaL_checklstring(L, 1, &len);
  d.end = d.text + len;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checkany(L, 3);
  d.array_mt = 2, d.null = 3, d.without = 0, d.depth = 0;
  return d;
}

static void expect_end(decoder *d) {
  skip_space(d);
  if (d->p < d->end) fail(d, "unexpected text after the value");
}

/* decode(text, array_mt, null [, without]) -> value; raises "json: ...
 * at character N". The members named in the table without ({name =
 * true}) are left out of every object, checked but never made: a page
 * of products is four fifths images that a caller may not need. */
static int decode(lua_State *L) {
  decoder d = decoder_of(L);
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    d.without = 4;
  }
  lua_settop(L, 4);
  push_value(&d);
  expect_end(&d);
  return 1;
}


/* --- skimming ---------------------------------------------------------- */

/* A value passed over (skip_value and its parts): checked as decode
 * checks it, nothing made. A page of 1,000 records is skimmed for its
 * cursor in a tenth of the time its decoding takes, so the next page can
 * be asked for first. */
static void skip_string(decoder *d) {
  d->p++; /* the opening quote */
  for (;;) {
    d->p = scan_plain(d, d->p);
    if (d->p >= d->end) fail(d, "unfinished string");
    if (*d->p++ == '"') return;
    if (d->p >= d->end) fail(d, "unfinished string");
    char c = *d->p++;
    if (c == 'u') {
      read_code_point(d);
    } else if (!simple_escape(c)) {
      d->p--;
      fail(d, "invalid escape");
    }
  }
}

static void skip_object(decoder *d) {
  enter(d);
  if (next_is(d, '}')) {
    leave(d);
    return;
  }
  for (;;) {
    if (!next_is(d, '"')) fail(d, "expected a name in quotes");
    skip_string(d);
    skip_space(d);
    if (!next_is(d, ':')) fail(d, "expected ':'");
    d->p++;
    skip_value(d);
    skip_space(d);
    if (next_is(d, '}')) break;
    if (!next_is(d, ',')) fail(d, "expected ',' or '}'");
    d->p++;
    skip_space(d);
  }
  leave(d);
}

/* Passes over an array; returns how many of its values are objects. */
static lua_Integer skip_array(decoder *d) {
  lua_Integer objects = 0;
  enter(d);
  if (next_is(d, ']')) {
    leave(d);
    return 0;
  }
  for (;;) {
    skip_space(d);
    if (next_is(d, '{')) objects++;
    skip_value(d);
    skip_space(d);
    if (next_is(d, ']')) break;
    if (!next_is(d, ',')) fail(d, "expected ',' or ']'");
    d->p++;
  }
  leave(d);
  return objects;
}

static void skip_value(decoder *d) {
  skip_space(d);
  if (d->p >= d->end) fail(d, "expected a value");
  switch (*d->p) {
  case '{': skip_object(d); break;
  case '[': skip_array(d); break;
  case '"': skip_string(d); break;
  case 't': expect_word(d, "true", 4); break;
  case 'f': expect_word(d, "false", 5); break;
  case 'n': expect_word(d, "null", 4); break;
  default:
    if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) {
      push_number(d);
      lua_pop(d->L, 1);
    } else {
      fail(d, "expected a value");
    }
  }
}

/* After a member's name and colon: its value as wanted says (on top of
 * the stack): decoded for true, the number of objects in it for
 * "objects" (0 when it is no array); nothing pushed when it is not
 * wanted (returns 0). */
static int skim_member(decoder *d) {
  lua_State *L = d->L;
  int kind = lua_type(L, -1);
  if (kind == LUA_TSTRING) {
    skip_space(d);
    int array = next_is(d, '[');
    lua_Integer objects = array ? skip_array(d) : (skip_value(d), 0);
    lua_pop(L, 1);
    lua_pushinteger(L, objects);
    return 1;
  }
  int wanted = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (wanted) push_value(d);
  else skip_value(d);
  return wanted;
}

/* skim(text, array_mt, null, wanted) -> {name = value}: of a JSON
 * object, the members wanted names (wanted[name] = true: the value;
 * "objects": how many objects its array holds); the rest is checked and
 * passed over. Text that is no object gives an empty table; text that is
 * not JSON raises as decode does. */
static int skim(lua_State *L) {
  decoder d = decoder_of(L);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 4);
  lua_newtable(L); /* 5: what was found */
  skip_space(&d);
  if (!next_is(&d, '{')) {
    skip_value(&d);
  } else {
    enter(&d);
    for (int empty = next_is(&d, '}'); !empty;) {
      if (!next_is(&d, '"')) fail(&d, "expected a name in quotes");
      push_string(&d);
      skip_space(&d);
      if (!next_is(&d, ':')) fail(&d, "expected ':'");
      d.p++;
      lua_pushvalue(L, -1);
      lua_rawget(L, 4);
      if (skim_member(&d)) lua_rawset(L, 5); /* the last of a name given twice stays */
      else lua_pop(L, 1);
      skip_space(&d);
      if (next_is(&d, '}')) break;
      if (!next_is(&d, ',')) fail(&d, "expected ',' or '}'");
      d.p++;
      skip_space(&d);
    }
    leave(&d);
  }
  expect_end(&d);
  lua_settop(L, 5);
  return 1;
}

/* --- encoding ----------------------------------------------------------- */

#define BUFFER_METATABLE "kapi.json.buffer"

/* The text being written. A full userdata owns it, so an error raised
 * halfway (a function value, a cycle) leaves nothing to leak: the
 * collector frees it. Lua's own luaL_Buffer cannot be used: walking a
 * table moves the stack top between writes. */
typedef struct buffer {
  char *data;
  size_t len, cap;
} buffer;

typedef struct encoder {
  lua_State *L;
  buffer *out;
  int array_mt, null, sorted; /* stack indexes, flag */
  int depth;
} encoder;

static int buffer_gc(lua_State *L) {
  buffer *b = luaL_checkudata(L, 1, BUFFER_METATABLE);
  free(b->data);
  b->data = NULL;
  return 0;
}

static void reserve(encoder *e, size_t more) {
  buffer *b = e->out;
  if (b->cap - b->len >= more) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < more) cap *= 2;
  char *data = realloc(b->data, cap);
  if (!data) {
    lua_pushliteral(e->L, "json: out of memory");
    lua_error(e->L);
  }
  b->data = data, b->cap = cap;
}

static void put(encoder *e, const char *s, size_t n) {
  reserve(e, n);
  memcpy(e->out->data + e->out->len, s, n);
  e->out->len += n;
}

static void put_char(encoder *e, char c) {
  reserve(e, 1);
  e->out->data[e->out->len++] = c;
}

/* Raises "json: cannot encode WHAT", without a location: the line of
 * kapi.json that called the encoder tells the caller nothing. A usage
 * error: the value given is the caller's to change. */
static void refuse(encoder *e, const char *what) {
  kapi_usage_error(e->L, "json: cannot encode %s", what);
}

/* The length of the UTF-8 sequence at s (at most n bytes), or 0 when it is
 * not one: overlong forms, surrogates and code points past U+10FFFF are
 * not UTF-8 either (RFC 3629). */
static size_t utf8_length(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && s[1] < 0xA0) return 0;
  if (c == 0xED && s[1] >= 0xA0) return 0;
  if (c == 0xF0 && s[1] < 0x90) return 0;
  if (c == 0xF4 && s[1] >= 0x90) return 0;
  return len;
}

/* A string: quotes, backslashes and control characters escaped; a byte
 * that is not UTF-8 becomes U+FFFD, since JSON text is UTF-8. */
static void put_string(encoder *e, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
  reserve(e, n + 2);
  put_char(e, '"');
  while (p < end) {
    unsigned c = *p;
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) { p++; continue; }
    size_t len = c >= 0x80 ? utf8_length(p, (size_t)(end - p)) : 0;
    if (len) { p += len; continue; }
    put(e, (const char *)run, (size_t)(p - run));
    switch (c) {
    case '"': put(e, "\\\"", 2); break;
    case '\\': put(e, "\\\\", 2); break;
    case '\n': put(e, "\\n", 2); break;
    case '\r': put(e, "\\r", 2); break;
    case '\t': put(e, "\\t", 2); break;
    case '\b': put(e, "\\b", 2); break;
    case '\f': put(e, "\\f", 2); break;
    default:
      if (c < 0x20) {
        char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        put(e, u, 6);
      } else {
        put(e, "\xEF\xBF\xBD", 3); /* U+FFFD */
      }
    }
    run = ++p;
  }
  put(e, (const char *)run, (size_t)(p - run));
  put_char(e, '"');
}

/* A float in the fewest significant digits that read back as the same
 * double (a whole one, 2.0, as 2: kapi decodes whole numbers as
 * integers anyway, and so does JavaScript). */
static void put_float(encoder *e, double v) {
  if (!isfinite(v)) refuse(e, isnan(v) ? "NaN" : "an infinite number");
  char text[40];
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, v);
    if (strtod(text, NULL) == v) break;
  }
  put(e, text, strlen(text));
}

static void put_value(encoder *e, int index);

/* Whether the table at index is an array: marked as one, or holding the
 * keys 1..n (n > 0) and nothing else. */
static int is_array(encoder *e, int index, lua_Integer *n) {
  lua_State *L = e->L;
  *n = (lua_Integer)lua_rawlen(L, index);
  if (lua_getmetatable(L, index)) {
    int marked = lua_rawequal(L, -1, e->array_mt);
    lua_pop(L, 1);
    if (marked) return 1;
  }
  if (*n == 0) return 0;
  lua_Integer keys = 0;
  lua_pushnil(L);
  while (lua_next(L, index)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > *n) {
      lua_pop(L, 1);
      return 0;
    }
    keys++;
  }
  return keys == *n;
}

static void put_array(encoder *e, int index, lua_Integer n) {
  put_char(e, '[');
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1) put_char(e, ',');
    lua_rawgeti(e->L, index, i);
    put_value(e, lua_gettop(e->L));
    lua_pop(e->L, 1);
  }
  put_char(e, ']');
}

/* A key as JSON has it: a string, or an integer written as one. */
static void put_key(encoder *e, int key) {
  lua_State *L = e->L;
  size_t n;
  if (lua_type(L, key) == LUA_TSTRING) {
    const char *s = lua_tolstring(L, key, &n);
    put_string(e, s, n);
  } else if (lua_isinteger(L, key)) {
    char text[24];
    int len = snprintf(text, sizeof text, "\"%lld\"", (long long)lua_tointeger(L, key));
    put(e, text, (size_t)len);
  } else {
    refuse(e, lua_type(L, key) == LUA_TNUMBER ? "a table with a fractional key" : "a table with a key of that type");
  }
}

static void put_member(encoder *e, int key, int value, int first) {
  if (!first) put_char(e, ',');
  put_key(e, key);
  put_char(e, ':');
  put_value(e, value);
}

/* A key's text with its length: a key may hold NUL bytes. */
typedef struct key_text {
  const char *s;
  size_t len;
} key_text;

static int compare_keys(const void *a, const void *b) {
  const key_text *x = a, *y = b;
  int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* An object with its keys in byte order. The keys are gathered as
 * strings in a table that keeps them alive while they are sorted; an
 * integer key and a string key of the same text would be one name in
 * JSON, and one of them lost, so such a table is refused. */
static void put_sorted_object(encoder *e, int index) {
  lua_State *L = e->L;
  lua_newtable(L);
  int keys = lua_gettop(L);
  lua_Integer n = 0;
  lua_pushnil(L);
  while (lua_next(L, index)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING && !lua_isinteger(L, -1)) put_key(e, lua_gettop(L)); /* refuses */
    lua_pushvalue(L, -1);
    lua_tostring(L, -1); /* the copy, not the key lua_next needs, becomes text */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, keys) != LUA_TNIL) refuse(e, "a table with a key both as a number and as text");
    lua_pop(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, keys); /* text -> the key */
    n++;
  }
  key_text *names = lua_newuserdatauv(L, (size_t)n * sizeof *names, 0);
  lua_Integer i = 0;
  lua_pushnil(L);
  while (lua_next(L, keys)) {
    lua_pop(L, 1);
    names[i].s = lua_tolstring(L, -1, &names[i].len);
    i++;
  }
  qsort(names, (size_t)n, sizeof *names, compare_keys);
  put_char(e, '{');
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, names[i].s, names[i].len);
    lua_rawget(L, keys);
    lua_pushvalue(L, -1);
    lua_rawget(L, index);
    put_member(e, lua_gettop(L) - 1, lua_gettop(L), i == 0);
    lua_pop(L, 2);
  }
  put_char(e, '}');
  lua_pop(L, 2);
}

static void put_object(encoder *e, int index) {
  lua_State *L = e->L;
  if (e->sorted) {
    put_sorted_object(e, index);
    return;
  }
  int first = 1;
  put_char(e, '{');
  lua_pushnil(L);
  while (lua_next(L, index)) {
    put_member(e, lua_gettop(L) - 1, lua_gettop(L), first);
    first = 0;
    lua_pop(L, 1);
  }
  put_char(e, '}');
}

static void put_table(encoder *e, int index) {
  if (++e->depth > MAX_DEPTH) refuse(e, "a table nested that deep (a cycle?)");
  luaL_checkstack(e->L, 8, "json: nested too deeply");
  lua_Integer n;
  if (is_array(e, index, &n)) put_array(e, index, n);
  else put_object(e, index);
  e->depth--;
}

static void put_value(encoder *e, int index) {
  lua_State *L = e->L;
  switch (lua_type(L, index)) {
  case LUA_TNIL: put(e, "null", 4); break;
  case LUA_TBOOLEAN: lua_toboolean(L, index) ? put(e, "true", 4) : put(e, "false", 5); break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, index)) {
      char text[24];
      put(e, text, (size_t)snprintf(text, sizeof text, "%lld", (long long)lua_tointeger(L, index)));
    } else {
      put_float(e, lua_tonumber(L, index));
    }
    break;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, index, &n);
    put_string(e, s, n);
    break;
  }
  case LUA_TTABLE: put_table(e, index); break;
  default:
    if (lua_rawequal(L, index, e->null)) put(e, "null", 4);
    else refuse(e, lua_pushfstring(L, "a %s value", luaL_typename(L, index)));
  }
}

/* encode(value, array_mt, null, sorted) -> text */
static int encode(lua_State *L) {
  luaL_checkany(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checkany(L, 3);
  int sorted = lua_toboolean(L, 4);
  lua_settop(L, 3);
  encoder e = {L, NULL, 2, 3, sorted, 0};
  e.out = lua_newuserdatauv(L, sizeof *e.out, 0);
  memset(e.out, 0, sizeof *e.out);
  luaL_setmetatable(L, BUFFER_METATABLE);
  put_value(&e, 1);
  lua_pushlstring(L, e.out->data ? e.out->data : "", e.out->len);
  free(e.out->data);
  e.out->data = NULL;
  return 1;
}

static const luaL_Reg json_functions[] = {
    {"decode", decode}, {"skim", skim}, {"encode", encode}, {NULL, NULL}};

int luaopen_kapi_core_json(lua_State *L) {
  luaL_newmetatable(L, BUFFER_METATABLE);
  lua_pushcfunction(L, buffer_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, json_functions);
  return 1;
}
