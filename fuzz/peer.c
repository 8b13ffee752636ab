/* Raw peers on loopback for the fuzz harnesses, driven by kapi's loop:
 *   peer.send(port, bytes, timeout, quiet) -> answer, how
 *     a client: writes bytes to 127.0.0.1:port as they are, then ends its
 *     side, and reads the answer until the server closes ("closed"),
 *     resets ("reset"), refuses ("refused"), says nothing more for `quiet`
 *     seconds once it has said something ("quiet": libmicrohttpd keeps a
 *     connection whose client ended its side open after answering, until
 *     its idle timeout), or says nothing at all for `timeout` seconds
 *     ("timeout");
 *   peer.listen() -> responder with :port() and :answer(bytes)
 *     a server: every connection gets `bytes` once its request head has
 *     come, then is closed.
 * Neither speaks HTTP: they carry whatever the fuzzer made, which is the
 * point. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "task.h"

#define CLIENT_METATABLE "fuzz.peer.client"
#define RESPONDER_METATABLE "fuzz.peer.responder"
#define MAX_ANSWER (64 * 1024 * 1024) /* read past it, kept no more */

typedef struct buffer {
  char *data;
  size_t len, cap;
} buffer;

static int buffer_append(buffer *b, const char *data, size_t len) {
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + len) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) return -1;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static int loopback_socket(void) {
  return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static struct sockaddr_in loopback_address(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/* --- the client --------------------------------------------------------- */

/* A full userdata on the stack of the waiting C call: it outlives the
 * yield, and its __gc closes whatever a cancelled wait left open. */
typedef struct client {
  kapi_loop *loop;
  kapi_task *task;
  kapi_watch watch;
  kapi_timer timer;
  int fd, watching, shut;
  const char *out; /* the Lua string argument, alive on the same stack */
  size_t out_len, sent;
  buffer in;
  uint64_t quiet_ns;
  const char *how; /* NULL while the exchange goes on */
} client;

static void client_stop(client *c) {
  if (c->watching) kapi_watch_stop(c->loop, &c->watch);
  c->watching = 0;
  kapi_timer_stop(c->loop, &c->timer);
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

static void client_end(client *c, const char *how) {
  client_stop(c);
  c->how = how;
  kapi_task *t = c->task;
  c->task = NULL;
  if (t) kapi_task_wake(t);
}

/* Sends what is left; once all is sent, ends the writing side, so that
 * the server sees the request end where the fuzzer ended it. */
static void client_write(client *c) {
  while (c->sent < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->sent, c->out_len - c->sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) { /* the server closed first; what it answered is still to read */
      c->sent = c->out_len;
      break;
    }
    c->sent += (size_t)n;
  }
  if (!c->shut) {
    shutdown(c->fd, SHUT_WR);
    c->shut = 1;
    kapi_watch_update(c->loop, &c->watch, KAPI_READABLE);
  }
}

static void client_read(client *c) {
  char chunk[16384];
  for (;;) {
    ssize_t n = recv(c->fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      if (c->in.len + (size_t)n <= MAX_ANSWER) buffer_append(&c->in, chunk, (size_t)n);
      kapi_timer_start(c->loop, &c->timer, c->quiet_ns);
      continue;
    }
    if (n == 0) client_end(c, "closed");
    else if (errno == ECONNREFUSED) client_end(c, "refused");
    else if (errno != EAGAIN && errno != EINTR) client_end(c, "reset");
    return;
  }
}

static void on_client_io(kapi_watch *w, unsigned events) {
  client *c = w->data;
  if ((events & KAPI_WRITABLE) && !c->shut) client_write(c);
  if (c->fd >= 0 && (events & KAPI_READABLE)) client_read(c);
}

static void on_client_timeout(kapi_timer *t) {
  client *c = t->data;
  client_end(c, c->in.len > 0 ? "quiet" : "timeout");
}

static void client_cancel(kapi_task *task, void *data) {
  (void)task;
  client *c = data;
  c->task = NULL;
  client_stop(c);
}

static int client_gc(lua_State *L) {
  client *c = luaL_checkudata(L, 1, CLIENT_METATABLE);
  client_stop(c);
  free(c->in.data);
  c->in.data = NULL;
  return 0;
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  client *c = (client *)ctx;
  kapi_task_check_cancel(L, kapi_task_current(L, "peer.send"));
  lua_pushlstring(L, c->in.data ? c->in.data : "", c->in.len);
  lua_pushstring(L, c->how);
  return 2;
}

static int l_send(lua_State *L) {
  lua_Integer port = luaL_checkinteger(L, 1);
  size_t len;
  const char *out = luaL_checklstring(L, 2, &len);
  lua_Number timeout = luaL_checknumber(L, 3), quiet = luaL_checknumber(L, 4);
  kapi_task *task = kapi_task_current(L, "peer.send");
  client *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  luaL_setmetatable(L, CLIENT_METATABLE);
  c->loop = kapi_sched_loop(kapi_sched_get(L));
  c->out = out, c->out_len = len;
  c->quiet_ns = (uint64_t)(quiet * 1e9);
  kapi_timer_init(&c->timer, on_client_timeout, c);
  struct sockaddr_in a = loopback_address((int)port);
  c->fd = loopback_socket();
  if (c->fd < 0) return luaL_error(L, "peer.send: socket: %s", strerror(errno));
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)
    return luaL_error(L, "peer.send: connect: %s", strerror(errno));
  if (kapi_watch_start(c->loop, &c->watch, c->fd, KAPI_READABLE | KAPI_WRITABLE, on_client_io, c) < 0)
    return luaL_error(L, "peer.send: watch: %s", strerror(errno));
  c->watching = 1;
  kapi_timer_start(c->loop, &c->timer, (uint64_t)(timeout * 1e9));
  c->task = task;
  return kapi_task_suspend(L, task, client_cancel, c, (lua_KContext)c, send_k);
}

/* --- the responder ------------------------------------------------------ */

typedef struct responder responder;

/* One accepted connection: reads the request head, writes the answer,
 * closes. Owned by the responder's list. */
typedef struct connection {
  responder *r;
  kapi_watch watch;
  int fd;
  char tail[4];   /* the last bytes read, to see "\r\n\r\n" across reads */
  char *answer;   /* a copy: the harness may set the next one meanwhile */
  size_t len, sent;
  int writing;
  struct connection *prev, *next;
} connection;

struct responder {
  kapi_loop *loop;
  kapi_watch watch;
  int fd, port;
  char *answer;
  size_t answer_len;
  connection *connections;
};

static void connection_close(connection *k) {
  responder *r = k->r;
  kapi_watch_stop(r->loop, &k->watch);
  close(k->fd);
  if (k->prev) k->prev->next = k->next;
  else r->connections = k->next;
  if (k->next) k->next->prev = k->prev;
  free(k->answer);
  free(k);
}

/* Whether the head has ended: a blank line, across reads too. */
static int saw_head_end(connection *k, const char *data, size_t n) {
  char window[4 + sizeof(char[16384])];
  memcpy(window, k->tail, 4);
  memcpy(window + 4, data, n);
  memcpy(k->tail, window + n, 4);
  return memmem(window, n + 4, "\r\n\r\n", 4) != NULL || memmem(window, n + 4, "\n\n", 2) != NULL;
}

static void connection_start_writing(connection *k) {
  responder *r = k->r;
  k->answer = malloc(r->answer_len ? r->answer_len : 1);
  if (!k->answer) {
    connection_close(k);
    return;
  }
  memcpy(k->answer, r->answer, r->answer_len);
  k->len = r->answer_len;
  k->writing = 1;
  kapi_watch_update(r->loop, &k->watch, KAPI_WRITABLE);
}

/* The request is read to its end (curl sends no body here): a socket
 * closed with unread bytes would reset, losing the answer. */
static void connection_read(connection *k) {
  char chunk[16384];
  int head_ended = 0;
  for (;;) {
    ssize_t n = recv(k->fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      head_ended |= saw_head_end(k, chunk, (size_t)n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    connection_close(k); /* the client left before asking */
    return;
  }
  if (head_ended) connection_start_writing(k);
}

static void connection_write(connection *k) {
  while (k->sent < k->len) {
    ssize_t n = send(k->fd, k->answer + k->sent, k->len - k->sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) break;
    k->sent += (size_t)n;
  }
  connection_close(k);
}

static void on_connection_io(kapi_watch *w, unsigned events) {
  connection *k = w->data;
  if (!k->writing && (events & KAPI_READABLE)) connection_read(k);
  else if (k->writing && (events & KAPI_WRITABLE)) connection_write(k);
}

static void on_accept(kapi_watch *w, unsigned events) {
  (void)events;
  responder *r = w->data;
  for (;;) {
    int fd = accept4(r->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    connection *k = calloc(1, sizeof *k);
    if (!k) {
      close(fd);
      continue;
    }
    k->r = r, k->fd = fd;
    if (kapi_watch_start(r->loop, &k->watch, fd, KAPI_READABLE, on_connection_io, k) < 0) {
      close(fd);
      free(k);
      continue;
    }
    k->next = r->connections;
    if (k->next) k->next->prev = k;
    r->connections = k;
  }
}

static responder *check_responder(lua_State *L) {
  return luaL_checkudata(L, 1, RESPONDER_METATABLE);
}

static int responder_port(lua_State *L) {
  lua_pushinteger(L, check_responder(L)->port);
  return 1;
}

static int responder_answer(lua_State *L) {
  responder *r = check_responder(L);
  size_t len;
  const char *bytes = luaL_checklstring(L, 2, &len);
  char *copy = malloc(len ? len : 1);
  if (!copy) return luaL_error(L, "peer: out of memory");
  memcpy(copy, bytes, len);
  free(r->answer);
  r->answer = copy, r->answer_len = len;
  return 0;
}

static int responder_gc(lua_State *L) {
  responder *r = check_responder(L);
  while (r->connections) connection_close(r->connections);
  if (r->fd >= 0) {
    kapi_watch_stop(r->loop, &r->watch);
    close(r->fd);
  }
  r->fd = -1;
  free(r->answer);
  r->answer = NULL;
  return 0;
}

static int l_listen(lua_State *L) {
  responder *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->fd = -1;
  luaL_setmetatable(L, RESPONDER_METATABLE);
  r->loop = kapi_sched_loop(kapi_sched_get(L));
  struct sockaddr_in a = loopback_address(0);
  socklen_t alen = sizeof a;
  r->fd = loopback_socket();
  if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(r->fd, 64) < 0 ||
      getsockname(r->fd, (struct sockaddr *)&a, &alen) < 0)
    return luaL_error(L, "peer.listen: %s", strerror(errno));
  r->port = ntohs(a.sin_port);
  if (kapi_watch_start(r->loop, &r->watch, r->fd, KAPI_READABLE, on_accept, r) < 0)
    return luaL_error(L, "peer.listen: watch: %s", strerror(errno));
  return 1;
}

static const luaL_Reg responder_methods[] = {
    {"port", responder_port}, {"answer", responder_answer}, {NULL, NULL}};

int luaopen_fuzz_peer(lua_State *L) {
  luaL_newmetatable(L, CLIENT_METATABLE);
  lua_pushcfunction(L, client_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, RESPONDER_METATABLE);
  lua_pushcfunction(L, responder_gc);
  lua_setfield(L, -2, "__gc");
  luaL_newlib(L, responder_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_send);
  lua_setfield(L, -2, "send");
  lua_pushcfunction(L, l_listen);
  lua_setfield(L, -2, "listen");
  return 1;
}
