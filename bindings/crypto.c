/* Cryptography for authentication (OpenSSL 3, EVP interfaces only):
 * SHA-256, HMAC-SHA256, Base64 (standard, and URL-safe without padding),
 * random bytes, constant-time comparison. A shared module, loaded on first
 * use, like the other modules with costly libraries. */
#include <lauxlib.h>
#include <lua.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

/* sha256(data) -> 32 raw bytes */
static int l_sha256(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
    return luaL_error(L, "crypto: SHA-256 failed");
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}

/* hmac_sha256(key, data) -> 32 raw bytes */
static int l_hmac_sha256(lua_State *L) {
  size_t klen, dlen, n = 0;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *data = luaL_checklstring(L, 2, &dlen);
  unsigned char out[EVP_MAX_MD_SIZE];
  if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, klen,
                 (const unsigned char *)data, dlen, out, sizeof out, &n))
    return luaL_error(L, "crypto: HMAC-SHA256 failed");
  lua_pushlstring(L, (const char *)out, n);
  return 1;
}

static void push_base64(lua_State *L, const char *data, size_t len, int url) {
  luaL_Buffer b;
  size_t cap = 4 * ((len + 2) / 3) + 1;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, cap);
  int n = EVP_EncodeBlock(out, (const unsigned char *)data, (int)len);
  if (url) {
    while (n > 0 && out[n - 1] == '=') n--;
    for (int i = 0; i < n; i++) {
      if (out[i] == '+') out[i] = '-';
      else if (out[i] == '/') out[i] = '_';
    }
  }
  luaL_pushresultsize(&b, (size_t)n);
}

/* base64(data) -> standard Base64 with padding */
static int l_base64(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  push_base64(L, data, len, 0);
  return 1;
}

/* base64url(data) -> URL-safe Base64 without padding (RFC 4648 §5) */
static int l_base64url(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  push_base64(L, data, len, 1);
  return 1;
}

/* base64_decode(text) -> bytes, or nil when text is not Base64 (either
 * alphabet, padding optional) */
static int l_base64_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  luaL_Buffer in;
  char *s = luaL_buffinitsize(L, &in, len + 4);
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    s[n++] = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  while (n % 4) s[n++] = '=';
  unsigned char *out = lua_newuserdatauv(L, n / 4 * 3 + 1, 0);
  int m = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
  if (m < 0) {
    luaL_pushfail(L);
    return 1;
  }
  int pad = 0;
  for (size_t i = n; i > 0 && s[i - 1] == '=' && pad < 2; i--) pad++;
  lua_pushlstring(L, (const char *)out, (size_t)m - (size_t)pad);
  return 1;
}

/* random(n) -> n cryptographically random bytes */
static int l_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= 1024 * 1024, 1, "between 0 and 1 MiB");
  luaL_Buffer b;
  unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)n);
  if (n > 0 && RAND_bytes(out, (int)n) != 1)
    return luaL_error(L, "crypto: no random bytes available");
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* equal(a, b) -> whether a and b are the same, in time that depends only
 * on their lengths (for comparing secrets) */
static int l_equal(lua_State *L) {
  size_t alen, blen;
  const char *a = luaL_checklstring(L, 1, &alen);
  const char *b = luaL_checklstring(L, 2, &blen);
  lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
  return 1;
}

/* hex(bytes) -> lower-case hexadecimal */
static int l_hex(lua_State *L) {
  size_t len;
  const unsigned char *data = (const unsigned char *)luaL_checklstring(L, 1, &len);
  static const char digits[] = "0123456789abcdef";
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, len * 2);
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  luaL_pushresultsize(&b, len * 2);
  return 1;
}

static const luaL_Reg crypto_functions[] = {
    {"sha256", l_sha256},   {"hmac_sha256", l_hmac_sha256},
    {"base64", l_base64},   {"base64url", l_base64url},
    {"base64_decode", l_base64_decode},
    {"random", l_random},   {"equal", l_equal},
    {"hex", l_hex},         {NULL, NULL}};

int luaopen_kapi_core_crypto(lua_State *L) {
  luaL_newlib(L, crypto_functions);
  return 1;
}
