/* File-system primitives Lua lacks: listing a directory, atomic private
 * writes, advisory locks across processes, permissions. The token store
 * (scripts/kapi/auth/store.lua) is built on them. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bindings.h"

#define LOCK_METATABLE "kapi.fs.lock"

static int fail(lua_State *L, const char *what, const char *path) {
  luaL_pushfail(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(errno));
  return 2;
}

/* fs.list(dir) -> names (sorted, without . and ..) | nil, message */
static int fs_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct dirent **names;
  int n = scandir(path, &names, NULL, alphasort);
  if (n < 0) return fail(L, "cannot list", path);
  lua_createtable(L, n, 0);
  int k = 0;
  for (int i = 0; i < n; i++) {
    const char *name = names[i]->d_name;
    if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
      lua_pushstring(L, name);
      lua_rawseti(L, -2, ++k);
    }
  }
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  return 1;
}

/* fs.mkdirs(dir, mode = 0700) -> true | nil, message: every missing
 * directory of the path, created private. */
static int fs_mkdirs(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0700);
  char buf[PATH_MAX];
  if (strlen(path) >= sizeof buf) return fail(L, "path too long:", path);
  strcpy(buf, path);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, mode) < 0 && errno != EEXIST) return fail(L, "cannot create", buf);
      *p = c;
      if (c == '\0') break;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* fs.write_atomic(path, data, mode = 0600) -> true | nil, message: a
 * reader sees the old file or the new one, never half of one; the data is
 * on disk before the name points at it. */
static int fs_write_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  mode_t mode = (mode_t)luaL_optinteger(L, 3, 0600);
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
    return fail(L, "path too long:", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return fail(L, "cannot write", tmp);
  if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
    int saved = errno;
    close(fd);
    unlink(tmp);
    errno = saved;
    return fail(L, "cannot write", tmp);
  }
  close(fd);
  if (rename(tmp, path) < 0) {
    int saved = errno;
    unlink(tmp);
    errno = saved;
    return fail(L, "cannot replace", path);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* fs.mode(path) -> permission bits (e.g. 0600) | nil, message */
static int fs_mode(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) < 0) return fail(L, "cannot stat", path);
  lua_pushinteger(L, st.st_mode & 07777);
  return 1;
}

/* fs.create(path, mode = 0600) -> true (created with that mode, empty) |
 * false (it was there already, left as it is) | nil, message. For files
 * that must never exist, even for a moment, with wider permissions. */
static int fs_create(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mode_t mode = (mode_t)luaL_optinteger(L, 2, 0600);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0 && errno == EEXIST) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (fd < 0) return fail(L, "cannot create", path);
  int failed = fchmod(fd, mode) < 0; /* the umask must not widen or narrow it */
  close(fd);
  if (failed) return fail(L, "cannot set the mode of", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* fs.remove(path) -> true | nil, message (a missing file is fine) */
static int fs_remove(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (unlink(path) < 0 && errno != ENOENT) return fail(L, "cannot remove", path);
  lua_pushboolean(L, 1);
  return 1;
}

/* --- locks ------------------------------------------------------------- */

typedef struct lock {
  int fd; /* -1 once released */
} lock;

static int lock_release(lua_State *L) {
  lock *k = luaL_checkudata(L, 1, LOCK_METATABLE);
  if (k->fd >= 0) {
    flock(k->fd, LOCK_UN);
    close(k->fd);
    k->fd = -1;
  }
  return 0;
}

/* fs.try_lock(path) -> lock | false (held by another process) | nil,
 * message. Never blocks: kapi's lock() retries between loop turns. The
 * lock is released by lock:release(), by <close>, or when collected. */
static int fs_try_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lock *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->fd = -1; /* created released, so an error never leaks a descriptor */
  luaL_setmetatable(L, LOCK_METATABLE);
  k->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (k->fd < 0) return fail(L, "cannot open lock", path);
  if (flock(k->fd, LOCK_EX | LOCK_NB) < 0) {
    int busy = errno == EWOULDBLOCK;
    int saved = errno;
    close(k->fd);
    k->fd = -1;
    if (busy) {
      lua_pushboolean(L, 0);
      return 1;
    }
    errno = saved;
    return fail(L, "cannot lock", path);
  }
  return 1;
}

static const luaL_Reg lock_methods[] = {{"release", lock_release}, {NULL, NULL}};

static const luaL_Reg fs_functions[] = {
    {"list", fs_list},         {"mkdirs", fs_mkdirs}, {"write_atomic", fs_write_atomic},
    {"mode", fs_mode},         {"remove", fs_remove}, {"try_lock", fs_try_lock},
    {"create", fs_create},
    {NULL, NULL}};

int luaopen_kapi_core_fs(lua_State *L) {
  if (luaL_newmetatable(L, LOCK_METATABLE)) {
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__close");
    luaL_newlib(L, lock_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, fs_functions);
  return 1;
}
