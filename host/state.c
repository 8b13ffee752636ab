/* The Lua state and its allocator.
 *
 * A client's heap churns: every response brings a table, a header block
 * and a body string that are garbage a moment later. The allocator keeps
 * freed blocks of up to CACHED_MAX bytes in lists by size class and hands
 * them out again, a list pop instead of a trip through malloc's bins
 * (docs/performance.md has the figures). Lua passes the size of every
 * block it frees or resizes, so blocks carry no header: a block asked for
 * with n bytes is allocated with the size of n's class, and goes back to
 * n's list. Larger blocks, and blocks beyond a class's share of the cache,
 * go to malloc and free.
 *
 * Under AddressSanitizer, cached blocks (but for their list link) and the
 * unused tail of every block are poisoned, so a use after free or an
 * overrun is still reported. */
#include "state.h"

#include <lauxlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GCC says AddressSanitizer is on with __SANITIZE_ADDRESS__, clang (the
 * fuzz build) only through __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define KAPI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KAPI_ASAN 1
#endif
#endif

/* valgrind's client requests cost nothing outside it. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#if defined(KAPI_ASAN)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SMALL_MAX 256                   /* classes 16 bytes apart up to here, */
#define CACHED_MAX 8192                 /* then four per doubling up to here */
#define SMALL_CLASSES (SMALL_MAX / 16)
#define CLASSES (SMALL_CLASSES + 4 * 5) /* 256-512, ..., 4096-8192 */
#define CLASS_CACHE_BYTES (128 * 1024)  /* the most a class keeps */

typedef struct free_block {
  struct free_block *next;
} free_block;

typedef struct owner {
  free_block *free[CLASSES];
  unsigned kept[CLASSES], limit[CLASSES];
  size_t size[CLASSES];
  int warnings_on, warning_continues;
  int exiting; /* blocks given back are left to the process's exit */
} owner;

/* The class of a size of 1..CACHED_MAX. */
static int class_of(size_t n) {
  if (n <= SMALL_MAX) return (int)((n + 15) / 16) - 1;
  int log2 = 63 - __builtin_clzl((unsigned long)(n - 1)); /* 8..12 */
  size_t quarter = (size_t)1 << (log2 - 2);
  return SMALL_CLASSES + (log2 - 8) * 4 + (int)((n - 1 - ((size_t)1 << log2)) / quarter);
}

static void init_classes(owner *o) {
  for (int c = 0; c < CLASSES; c++) {
    if (c < SMALL_CLASSES) {
      o->size[c] = (size_t)(c + 1) * 16;
    } else {
      int log2 = 8 + (c - SMALL_CLASSES) / 4, quarters = (c - SMALL_CLASSES) % 4 + 1;
      o->size[c] = ((size_t)1 << log2) + (size_t)quarters * ((size_t)1 << (log2 - 2));
    }
    o->limit[c] = (unsigned)(CLASS_CACHE_BYTES / o->size[c]);
  }
}

/* A block of n bytes. */
static void *take(owner *o, size_t n) {
  if (n > CACHED_MAX) return malloc(n);
  int c = class_of(n);
  free_block *b = o->free[c];
  if (b) {
    UNPOISON(b, sizeof *b);
    o->free[c] = b->next;
    o->kept[c]--;
    UNPOISON(b, n);
  } else if (!(b = malloc(o->size[c]))) {
    return NULL;
  }
  POISON((char *)b + n, o->size[c] - n);
  return b;
}

/* Takes back the block p that Lua used with n bytes. */
static void give(owner *o, void *p, size_t n) {
  int c = n > CACHED_MAX ? -1 : class_of(n);
  if (c < 0 || o->kept[c] >= o->limit[c]) {
    UNPOISON(p, c < 0 ? n : o->size[c]);
    free(p);
    return;
  }
  free_block *b = p;
  UNPOISON(b, sizeof *b); /* Lua may have used fewer bytes than a link */
  b->next = o->free[c];
  o->free[c] = b;
  o->kept[c]++;
  /* The link stays readable: LeakSanitizer follows no pointer kept in
   * poisoned memory, and would report every cached block behind the
   * first of its list as leaked. */
  POISON((char *)b + sizeof *b, o->size[c] - sizeof *b);
}

/* Every block Lua holds with n bytes has room for n's class (for n itself
 * above CACHED_MAX), so a resize within a class keeps the block. Lua
 * assumes a shrink never fails: then the old block, big enough, stays. */
static void *allocate(void *ud, void *p, size_t osize, size_t nsize) {
  owner *o = ud;
  if (!p) return nsize ? take(o, nsize) : NULL; /* osize is a type tag */
  if (nsize == 0) {
    if (!o->exiting) give(o, p, osize);
    return NULL;
  }
  if (osize > CACHED_MAX && nsize > CACHED_MAX) {
    void *q = realloc(p, nsize);
    return q || nsize > osize ? q : p;
  }
  if (osize <= CACHED_MAX && nsize <= CACHED_MAX) {
    int c = class_of(osize);
    if (c == class_of(nsize)) {
      UNPOISON(p, nsize);
      POISON((char *)p + nsize, o->size[c] - nsize);
      return p;
    }
  }
  void *q = take(o, nsize);
  if (!q) return nsize > osize ? NULL : p;
  memcpy(q, p, osize < nsize ? osize : nsize);
  give(o, p, osize);
  return q;
}

static void release(owner *o) {
  for (int c = 0; c < CLASSES; c++) {
    while (o->free[c]) {
      free_block *b = o->free[c];
      UNPOISON(b, o->size[c]);
      o->free[c] = b->next;
      free(b);
    }
    o->kept[c] = 0;
  }
}

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "kapi: PANIC: unprotected error in call to Lua API (%s)\n",
          msg ? msg : "error object is not a string");
  return 0; /* Lua aborts */
}

/* warn(): off until "@on", as in Lua's own interpreter; a message given in
 * pieces (tocont) prints as one line. */
static void warning(void *ud, const char *msg, int tocont) {
  owner *o = ud;
  if (!o->warning_continues && msg[0] == '@') { /* a control message */
    if (strcmp(msg, "@on") == 0) o->warnings_on = 1;
    else if (strcmp(msg, "@off") == 0) o->warnings_on = 0;
    return;
  }
  if (o->warnings_on) {
    if (!o->warning_continues) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) fputc('\n', stderr);
    fflush(stderr);
  }
  o->warning_continues = tocont;
}

lua_State *kapi_state_new(void) {
  owner *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  init_classes(o);
  lua_State *L = lua_newstate(allocate, o);
  if (!L) {
    free(o);
    return NULL;
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, warning, o);
  return L;
}

void kapi_state_close(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  lua_close(L);
  release(ud);
  free(ud);
}

/* Freeing a heap of ten megabytes block by block took 10 ms of a recipe's
 * exit, memory the kernel takes back at once a moment later. Finalizers
 * and __close still run, and may allocate. A leak checker (valgrind,
 * LeakSanitizer) wants every block back, so under one the state is
 * closed as kapi_state_close does. */
void kapi_state_close_at_exit(lua_State *L) {
#if defined(KAPI_ASAN)
  int checked = 1;
#else
  int checked = RUNNING_ON_VALGRIND;
#endif
  if (checked) {
    kapi_state_close(L);
    return;
  }
  void *ud;
  lua_getallocf(L, &ud);
  ((owner *)ud)->exiting = 1;
  lua_close(L);
}
