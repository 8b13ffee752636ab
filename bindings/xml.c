/* XML documents into Lua trees, over libexpat. Built for messages from
 * trading partners (GS1 CICs), so for untrusted input:
 * - namespace-aware: an element is named by its namespace URI and local
 *   name, never by the prefix a sender happened to choose;
 * - every element carries its line, and a document that cannot be read
 *   says why with its line and column;
 * - any encoding expat knows (UTF-8, UTF-16, ISO-8859-1, US-ASCII, as the
 *   XML declaration or a byte-order mark says); the tree's text is UTF-8;
 * - a byte and a depth limit; no entity declarations at all, so no
 *   external entity is ever loaded (XXE) and none expands (billion
 *   laughs), with expat's amplification guard as a second line.
 * Each event builds the tree through a protected call: a Lua error (out
 * of memory) never unwinds through expat; it stops the parser and is
 * raised again once expat has returned. A shared module, loaded on first
 * use. */
#include <lauxlib.h>
#include <lua.h>

/* The amplification guard's declarations are behind XML_DTD, which
 * Debian's expat is built with (expat_config.h). */
#define XML_DTD 1
#include <expat.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_METATABLE "kapi.xml.parse"
/* Between a namespace URI and a local name in expat's names: a control
 * character, which XML 1.0 allows in neither. */
#define NS_SEPARATOR '\1'
#define DEFAULT_MAX_BYTES (16 * 1024 * 1024)
#define DEFAULT_MAX_DEPTH 256

/* The stack of xml.parse while expat runs: its callbacks run inside it,
 * so they reach these slots by absolute index. */
enum { ARG_TEXT = 1, ARG_OPTS, SLOT_STATE, SLOT_CHAIN, SLOT_ERROR };

typedef struct {
  XML_Parser parser;
  lua_State *L;
  char *text; /* character data not yet in the tree */
  size_t len, cap;
  int depth, max_depth;
  int stopped;              /* no more events are taken */
  int lua_status;           /* LUA_OK, or the failed protected call's */
  const char *refused;      /* why kapi refused the document */
  char why[80];             /* room for a refusal that names a number */
  unsigned long line, column; /* where it was refused */
  const XML_Char *name;     /* the event being built */
  const XML_Char **atts;
} parse_state;

static void close_state(parse_state *s) {
  if (s->parser) XML_ParserFree(s->parser);
  free(s->text);
  s->parser = NULL;
  s->text = NULL;
}

/* __gc and __close: a second call does nothing. */
static int parse_close(lua_State *L) {
  close_state(luaL_checkudata(L, 1, PARSE_METATABLE));
  return 0;
}

/* Stops expat; the reason (a static string) is kept with the place. */
static void refuse(parse_state *s, const char *why) {
  if (s->stopped) return;
  s->stopped = 1;
  s->refused = why;
  s->line = XML_GetCurrentLineNumber(s->parser);
  s->column = XML_GetCurrentColumnNumber(s->parser) + 1;
  XML_StopParser(s->parser, XML_FALSE);
}

/* Pushes "{uri}local" split into the element's ns and name fields (or,
 * for an attribute, the key it is stored under). */
static void set_name(lua_State *L, const XML_Char *name) {
  const char *sep = strchr(name, NS_SEPARATOR);
  if (sep) {
    lua_pushlstring(L, name, (size_t)(sep - name));
    lua_setfield(L, -2, "ns");
    lua_pushstring(L, sep + 1);
  } else {
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "ns");
    lua_pushstring(L, name);
  }
  lua_setfield(L, -2, "name");
}

/* An attribute's key: its local name, or "{uri}local" when it has a
 * namespace (Clark's notation). */
static void push_attribute_name(lua_State *L, const XML_Char *name) {
  const char *sep = strchr(name, NS_SEPARATOR);
  if (!sep) {
    lua_pushstring(L, name);
    return;
  }
  lua_pushfstring(L, "{%s}%s", lua_pushlstring(L, name, (size_t)(sep - name)), sep + 1);
  lua_remove(L, -2);
}

/* Appends the value on top to the table at index t (pops it). */
static void append(lua_State *L, int t) {
  t = lua_absindex(L, t);
  lua_rawseti(L, t, (lua_Integer)lua_rawlen(L, t) + 1);
}

/* The character data gathered so far, as a string child of the element
 * at the current depth. */
static void flush_text(lua_State *L, parse_state *s, int chain) {
  if (s->len == 0) return;
  lua_rawgeti(L, chain, s->depth);
  lua_pushlstring(L, s->text, s->len);
  append(L, -2);
  lua_pop(L, 1);
  s->len = 0;
}

/* Protected: args (state, chain). */
static int build_start(lua_State *L) {
  parse_state *s = lua_touserdata(L, 1);
  flush_text(L, s, 2);
  lua_createtable(L, 0, 4);
  set_name(L, s->name);
  lua_pushinteger(L, (lua_Integer)XML_GetCurrentLineNumber(s->parser));
  lua_setfield(L, -2, "line");
  if (s->atts[0]) {
    lua_newtable(L);
    for (const XML_Char **a = s->atts; a[0]; a += 2) {
      push_attribute_name(L, a[0]);
      lua_pushstring(L, a[1]);
      lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "attrs");
  }
  lua_rawgeti(L, 2, s->depth);
  lua_pushvalue(L, -2);
  append(L, -2);
  lua_pop(L, 1);
  lua_rawseti(L, 2, ++s->depth);
  return 0;
}

/* Protected: args (state, chain). */
static int build_end(lua_State *L) {
  parse_state *s = lua_touserdata(L, 1);
  flush_text(L, s, 2);
  lua_pushnil(L);
  lua_rawseti(L, 2, s->depth--);
  return 0;
}

/* Runs a build step protected; a failure keeps its error and stops
 * expat. */
static void protected(parse_state *s, lua_CFunction step) {
  lua_State *L = s->L;
  lua_pushcfunction(L, step);
  lua_pushlightuserdata(L, s);
  lua_pushvalue(L, SLOT_CHAIN);
  int status = lua_pcall(L, 2, 0, 0);
  if (status == LUA_OK) return;
  lua_replace(L, SLOT_ERROR);
  s->lua_status = status;
  s->stopped = 1;
  XML_StopParser(s->parser, XML_FALSE);
}

static void on_start(void *data, const XML_Char *name, const XML_Char **atts) {
  parse_state *s = data;
  if (s->stopped) return;
  if (s->depth >= s->max_depth) {
    snprintf(s->why, sizeof s->why, "elements nested deeper than %d, the most kapi reads", s->max_depth);
    refuse(s, s->why);
    return;
  }
  s->name = name;
  s->atts = atts;
  protected(s, build_start);
}

static void on_end(void *data, const XML_Char *name) {
  parse_state *s = data;
  (void)name;
  if (!s->stopped) protected(s, build_end);
}

static void on_text(void *data, const XML_Char *text, int len) {
  parse_state *s = data;
  if (s->stopped || len <= 0) return;
  if (s->cap - s->len < (size_t)len) {
    size_t cap = s->cap ? s->cap : 256;
    while (cap - s->len < (size_t)len) cap *= 2;
    char *grown = realloc(s->text, cap);
    if (!grown) {
      refuse(s, "out of memory");
      return;
    }
    s->text = grown;
    s->cap = cap;
  }
  memcpy(s->text + s->len, text, (size_t)len);
  s->len += (size_t)len;
}

/* Entities are refused where they are declared: a message needs none,
 * and an external one could read a local file, an internal one expand
 * without bound. */
static void on_entity_decl(void *data, const XML_Char *name, int parameter, const XML_Char *value,
                           int value_len, const XML_Char *base, const XML_Char *system_id,
                           const XML_Char *public_id, const XML_Char *notation) {
  (void)name, (void)parameter, (void)value, (void)value_len, (void)base;
  (void)system_id, (void)public_id, (void)notation;
  refuse(data, "declares an entity (<!ENTITY>), which kapi refuses: an entity could read a file or "
               "expand without bound");
}

/* A reference to an entity that was never read (declared in an external
 * DTD, which is never loaded): refused rather than dropped. */
static void on_skipped_entity(void *data, const XML_Char *name, int parameter) {
  (void)name, (void)parameter;
  refuse(data, "refers to an entity that is not declared in the document (an external DTD is never "
               "read)");
}

static int on_external_entity(XML_Parser parser, const XML_Char *context, const XML_Char *base,
                              const XML_Char *system_id, const XML_Char *public_id) {
  (void)context, (void)base, (void)system_id, (void)public_id;
  refuse(XML_GetUserData(parser), "refers to an external entity, which kapi never loads");
  return XML_STATUS_ERROR;
}

static lua_Integer opt_limit(lua_State *L, const char *key, lua_Integer fallback, lua_Integer most) {
  if (lua_isnoneornil(L, ARG_OPTS)) return fallback;
  lua_getfield(L, ARG_OPTS, key);
  int whole = 0;
  lua_Integer n = lua_isnil(L, -1) ? fallback : lua_tointegerx(L, -1, &whole);
  if (!lua_isnil(L, -1) && (!whole || lua_type(L, -1) != LUA_TNUMBER)) n = 0;
  lua_pop(L, 1);
  if (n < 1 || n > most) luaL_error(L, "xml.parse: %s must be a whole number from 1 to %I", key, most);
  return n;
}

static void set_up(parse_state *s) {
  XML_Parser p = s->parser;
  XML_SetUserData(p, s);
  XML_SetElementHandler(p, on_start, on_end);
  XML_SetCharacterDataHandler(p, on_text);
  XML_SetEntityDeclHandler(p, on_entity_decl);
  XML_SetSkippedEntityHandler(p, on_skipped_entity);
  XML_SetExternalEntityRefHandler(p, on_external_entity);
  XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 4)
  XML_SetBillionLaughsAttackProtectionMaximumAmplification(p, 10.0f);
  XML_SetBillionLaughsAttackProtectionActivationThreshold(p, 1024 * 1024);
#endif
}

/* nil, why, kind, line, column; kind: "malformed" (not well-formed XML,
 * expat's words), "refused" (kapi's limits and rules), "too_large" (no
 * place: the whole document). */
static int failure(lua_State *L, const char *why, const char *kind, unsigned long line,
                   unsigned long column) {
  luaL_pushfail(L);
  lua_pushstring(L, why);
  lua_pushstring(L, kind);
  if (line == 0) return 3;
  lua_pushinteger(L, (lua_Integer)line);
  lua_pushinteger(L, (lua_Integer)column);
  return 5;
}

/* xml.parse(text[, {max_bytes, max_depth}]) -> root | nil, why, kind, line, column
 * root = {ns = URI or "", name = local name, line = N, attrs = {[name |
 * "{uri}name"] = value} (when it has any), [1..n] = children: elements
 * and strings of text, in document order}. */
static int xml_parse(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, ARG_TEXT, &len);
  if (!lua_isnoneornil(L, ARG_OPTS)) luaL_checktype(L, ARG_OPTS, LUA_TTABLE);
  lua_settop(L, ARG_OPTS);
  lua_Integer max_bytes = opt_limit(L, "max_bytes", DEFAULT_MAX_BYTES, INT_MAX);
  int max_depth = (int)opt_limit(L, "max_depth", DEFAULT_MAX_DEPTH, 100000);
  if ((lua_Integer)len > max_bytes) {
    lua_pushfstring(L, "%I bytes, more than the %I this reader takes", (lua_Integer)len, max_bytes);
    return failure(L, lua_tostring(L, -1), "too_large", 0, 0);
  }
  /* Made closed, then opened: an error at any point frees what is made. */
  parse_state *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, PARSE_METATABLE);
  lua_createtable(L, max_depth < 64 ? max_depth + 1 : 64, 0); /* SLOT_CHAIN */
  lua_newtable(L);                                            /* chain[0]: holds the root */
  lua_rawseti(L, SLOT_CHAIN, 0);
  lua_pushnil(L); /* SLOT_ERROR */
  luaL_checkstack(L, 8, "xml.parse");
  s->L = L;
  s->max_depth = max_depth;
  s->parser = XML_ParserCreateNS(NULL, NS_SEPARATOR);
  if (!s->parser) return luaL_error(L, "xml.parse: out of memory");
  set_up(s);
  enum XML_Status status = XML_Parse(s->parser, text, (int)len, XML_TRUE);
  if (s->lua_status != LUA_OK) { /* expat has returned: the error can go on now */
    close_state(s);
    lua_pushvalue(L, SLOT_ERROR);
    return lua_error(L);
  }
  if (s->refused) {
    close_state(s);
    return failure(L, s->refused, "refused", s->line, s->column);
  }
  if (status != XML_STATUS_OK) {
    const char *why = XML_ErrorString(XML_GetErrorCode(s->parser));
    unsigned long line = XML_GetCurrentLineNumber(s->parser);
    unsigned long column = XML_GetCurrentColumnNumber(s->parser) + 1;
    close_state(s);
    return failure(L, why, "malformed", line, column);
  }
  close_state(s);
  lua_rawgeti(L, SLOT_CHAIN, 0);
  lua_rawgeti(L, -1, 1);
  return 1;
}

/* xml.expat_version() -> "expat_2.5.0" */
static int xml_expat_version(lua_State *L) {
  lua_pushstring(L, XML_ExpatVersion());
  return 1;
}

static const luaL_Reg parse_methods[] = {{"__gc", parse_close}, {"__close", parse_close}, {NULL, NULL}};

static const luaL_Reg xml_functions[] = {
    {"parse", xml_parse}, {"expat_version", xml_expat_version}, {NULL, NULL}};

int luaopen_kapi_core_xml(lua_State *L) {
  if (luaL_newmetatable(L, PARSE_METATABLE)) luaL_setfuncs(L, parse_methods, 0);
  lua_pop(L, 1);
  luaL_newlib(L, xml_functions);
  return 1;
}
