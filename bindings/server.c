/* The embedded HTTP server: libmicrohttpd in external-epoll mode, driven by
 * the host's loop (no threads call Lua). Each request runs the Lua `serve`
 * function as a task; when the task finishes at once the response goes out
 * at once, otherwise the connection is suspended until it responds.
 * Built as a shared module (kapi/core/server.so), loaded on first use. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "task.h"

#define SERVER_METATABLE "kapi.server"
#define EXCHANGE_METATABLE "kapi.server.exchange"

typedef struct server server;
typedef struct request request;

/* One connection, from its start to its close (MHD_OPTION_NOTIFY_CONNECTION),
 * so that those whose client has left can be found (drop_left). */
typedef struct conn {
  struct MHD_Connection *connection;
  request *req;          /* the request it carries, if any */
  struct conn *prev, *next;
} conn;

/* One request in flight. Owned by the connection (freed when MHD says the
 * request is over); the Lua exchange object only points at it. */
struct request {
  server *srv;
  struct MHD_Connection *connection;
  conn *conn;            /* its connection's */
  char *uri;             /* as sent: path and query, not decoded */
  char *body;
  size_t body_len, body_cap;
  int started, dispatched, suspended;
  int reset;             /* close the connection without an answer */
  unsigned refuse;       /* a status to answer at once (414, 413), not asking the handler */
  uint64_t begun_ns;     /* when its request line came */
  int reading;           /* still reading its headers: in the server's reading list */
  struct request *rprev, *rnext;
  struct MHD_Response *response;
  unsigned status;
  struct exchange *exchange;
  kapi_task *task;       /* the handler's task while it may still run */
  int task_ref;          /* keeps that task object alive */
  struct request *prev, *next; /* the server's suspended requests */
};

typedef struct exchange {
  request *req; /* NULL once the connection has gone */
} exchange;

struct server {
  lua_State *L;          /* the main thread */
  struct MHD_Daemon *daemon;
  kapi_loop *loop;
  kapi_watch watch;
  kapi_timer timer;
  int serve_ref;         /* the Lua function run for each request */
  int self_ref;
  int port;
  request *suspended;
  request *reading;      /* requests whose headers have not all come */
  conn *conns;           /* every open connection */
  kapi_timer deadline;   /* checks both once a second while there are any */
};

/* --- driving libmicrohttpd from the loop ------------------------------- */

static void arm_timer(server *s) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (s->daemon && MHD_get_timeout(s->daemon, &ms) == MHD_YES)
    kapi_timer_start(s->loop, &s->timer, (uint64_t)ms * 1000000u);
  else
    kapi_timer_stop(s->loop, &s->timer);
}

static void run_daemon(server *s) {
  if (!s->daemon) return;
  MHD_run(s->daemon);
  arm_timer(s);
}

static void on_ready(kapi_watch *w, unsigned events) {
  (void)events;
  run_daemon(w->data);
}

static void on_timer(kapi_timer *t) { run_daemon(t->data); }

/* --- requests ---------------------------------------------------------- */

/* What one request may bring. A URI longer, or with more query
 * parameters, is answered 414 before libmicrohttpd parses it (parsing one
 * that does not fit its memory pool left the connection hanging); a larger
 * body is answered 413 as soon as it is known to be, never buffered. */
enum { MAX_URI = 64 * 1024, MAX_PARAMETERS = 2000 };
#define MAX_BODY ((size_t)16 * 1024 * 1024)

static unsigned uri_problem(const char *uri) {
  size_t n = 0, parameters = 0;
  for (const char *p = uri; *p; p++, n++)
    if (*p == '&' || *p == '?') parameters++;
  return n > MAX_URI || parameters > MAX_PARAMETERS ? 414 : 0;
}

/* A client that sends its headers a line at a time, slowly enough never to
 * be idle (slowloris), would hold a connection for as long as it likes:
 * whoever has not sent every header HEADER_DEADLINE after the request line
 * is given a second more. Connections that send nothing at all meet the
 * daemon's idle timeout. */
#define HEADER_DEADLINE_NS ((uint64_t)10 * 1000000000u)

static void stop_reading(request *r) {
  if (!r->reading) return;
  if (r->rprev) r->rprev->rnext = r->rnext;
  else r->srv->reading = r->rnext;
  if (r->rnext) r->rnext->rprev = r->rprev;
  r->rprev = r->rnext = NULL;
  r->reading = 0;
}

static void arm_deadline(server *s) {
  if (!kapi_timer_active(&s->deadline)) kapi_timer_start(s->loop, &s->deadline, 1000000000u);
}

/* libmicrohttpd (0.9.75, epoll) takes a short read for a drained socket,
 * so a client's end of the connection that comes with its last bytes is
 * never seen: a request cut short and left held its connection until the
 * idle timeout (15 s), and a client doing that 300 times a second filled
 * every connection while holding none itself (found by fuzz/server.lua).
 * A connection waiting for its client (no request, or one not yet handed
 * to its handler) whose client has ended is shut down, which
 * libmicrohttpd sees at once and closes. One whose handler runs is left:
 * a client that ended its side may still be owed the answer. */
static void drop_left(server *s) {
  for (conn *k = s->conns; k; k = k->next) {
    if (k->req && k->req->dispatched) continue;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(k->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    char byte;
    if (info && recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
      shutdown(info->connect_fd, SHUT_RDWR);
  }
}

static void on_deadline(kapi_timer *t) {
  server *s = t->data;
  uint64_t now = kapi_loop_now_ns();
  for (request *r = s->reading, *next; r; r = next) {
    next = r->rnext;
    if (now - r->begun_ns < HEADER_DEADLINE_NS) continue;
    MHD_set_connection_option(r->connection, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)1);
    stop_reading(r);
  }
  drop_left(s);
  if (s->reading || s->conns) arm_deadline(s);
  run_daemon(s);
}

static void start_reading(request *r) {
  server *s = r->srv;
  r->begun_ns = kapi_loop_now_ns();
  r->reading = 1;
  r->rnext = s->reading;
  if (r->rnext) r->rnext->rprev = r;
  arm_deadline(s);
  s->reading = r;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  server *s = cls;
  conn *k = *socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    if (!(k = calloc(1, sizeof *k))) return; /* then only the idle timeout closes it */
    k->connection = c;
    k->next = s->conns;
    if (k->next) k->next->prev = k;
    s->conns = k;
    *socket_context = k;
    arm_deadline(s);
    return;
  }
  if (!k) return;
  if (k->req) k->req->conn = NULL;
  if (k->prev) k->prev->next = k->next;
  else s->conns = k->next;
  if (k->next) k->next->prev = k->prev;
  free(k);
  *socket_context = NULL;
}

/* The record of connection c, once on_connection has made it. */
static conn *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info ? info->socket_context : NULL;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
  request *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->srv = cls;
  r->task_ref = LUA_NOREF;
  r->connection = c;
  r->refuse = uri_problem(uri);
  /* libmicrohttpd parses the query into its connection's memory before
   * the handler is asked; with far too many parameters that fails and the
   * connection hangs unanswered. Such a connection gets a second of life:
   * answered 414 if parsing fits, else closed, never left for a minute. */
  if (r->refuse) MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)1);
  r->uri = strdup(r->refuse ? "/" : uri);
  if (!r->uri) {
    free(r);
    return NULL;
  }
  if ((r->conn = conn_of(c))) r->conn->req = r;
  start_reading(r);
  return r;
}

/* Answers status at once with a small JSON body (the API's error shape). */
static enum MHD_Result refuse_now(request *r, unsigned status) {
  const char *body = status == 413 ? "{\"errors\":{\"reason\":\"the request body is too large\",\"code\":\"413\"}}"
                                   : "{\"errors\":{\"reason\":\"the request URI is too long\",\"code\":\"414\"}}";
  struct MHD_Response *res =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
  if (!res) return MHD_NO;
  MHD_add_response_header(res, "Content-Type", "application/json");
  MHD_add_response_header(res, "Connection", "close");
  enum MHD_Result ok = MHD_queue_response(r->connection, status, res);
  MHD_destroy_response(res);
  r->refuse = status;
  r->dispatched = 1; /* answered: the handler never runs */
  return ok;
}

static size_t declared_length(struct MHD_Connection *c) {
  const char *value = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  return value ? (size_t)strtoull(value, NULL, 10) : 0;
}

static void unlink_suspended(request *r) {
  if (!r->suspended) return;
  if (r->prev) r->prev->next = r->next;
  else r->srv->suspended = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  r->suspended = 0;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode code) {
  (void)cls;
  (void)c;
  (void)code;
  request *r = *con_cls;
  if (!r) return;
  unlink_suspended(r);
  stop_reading(r);
  if (r->conn) r->conn->req = NULL;
  if (r->exchange) r->exchange->req = NULL;
  luaL_unref(r->srv->L, LUA_REGISTRYINDEX, r->task_ref);
  if (r->response) MHD_destroy_response(r->response);
  free(r->uri);
  free(r->body);
  free(r);
  *con_cls = NULL;
}

static int append_body(request *r, const char *data, size_t len) {
  if (r->body_len + len + 1 > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap * 2 : 1024;
    while (cap < r->body_len + len + 1) cap *= 2;
    char *grown = realloc(r->body, cap);
    if (!grown) return -1;
    r->body = grown;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, data, len);
  r->body_len += len;
  return 0;
}

static enum MHD_Result add_pair(void *cls, enum MHD_ValueKind kind,
                                const char *key, const char *value) {
  (void)kind;
  lua_State *L = cls;
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  lua_pushstring(L, key);
  lua_rawseti(L, -2, n + 1);
  lua_pushstring(L, value ? value : "");
  lua_rawseti(L, -2, n + 2);
  return MHD_YES;
}

/* {method, uri, headers = {name, value, ...}, body} */
static void push_request(lua_State *L, request *r, const char *method) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, r->uri);
  lua_setfield(L, -2, "uri");
  lua_newtable(L);
  MHD_get_connection_values(r->connection, MHD_HEADER_KIND, add_pair, L);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, r->body ? r->body : "", r->body_len);
  lua_setfield(L, -2, "body");
}

static exchange *push_exchange(lua_State *L, request *r) {
  exchange *x = lua_newuserdatauv(L, sizeof *x, 0);
  x->req = r;
  r->exchange = x;
  luaL_setmetatable(L, EXCHANGE_METATABLE);
  return x;
}

/* Runs serve(request, exchange) as a task, at once; returns 0 on success. */
static int dispatch(server *s, request *r, const char *method) {
  lua_State *L = s->L;
  if (!lua_checkstack(L, 4)) return -1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->serve_ref);
  push_request(L, r, method);
  push_exchange(L, r);
  r->task = kapi_task_spawn(L, 2);
  r->task_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  r->dispatched = 1;
  kapi_task_run_now(r->task);
  return 0;
}

static enum MHD_Result send_ready(request *r) {
  enum MHD_Result ok = MHD_queue_response(r->connection, r->status, r->response);
  MHD_destroy_response(r->response);
  r->response = NULL;
  return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  (void)url;
  (void)version;
  server *s = cls;
  request *r = *con_cls;
  if (!r) return MHD_NO;
  if (!r->started) { /* the headers have arrived; the body may follow */
    r->started = 1;
    stop_reading(r);
    if (r->refuse) return refuse_now(r, r->refuse);
    if (declared_length(c) > MAX_BODY) return refuse_now(r, 413);
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (r->refuse) { /* answered already: the rest is read and dropped */
      *upload_size = 0;
      return MHD_YES;
    }
    if (r->body_len + *upload_size > MAX_BODY) {
      *upload_size = 0;
      return refuse_now(r, 413); /* chunked, with no length said first */
    }
    if (append_body(r, upload, *upload_size) < 0) return MHD_NO;
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->refuse) return MHD_YES;
  if (r->reset) return MHD_NO;
  if (r->response) return send_ready(r);
  if (r->dispatched) return MHD_YES; /* resumed before the answer: wait */
  if (dispatch(s, r, method) < 0) return MHD_NO;
  if (r->reset) return MHD_NO;
  if (r->response) return send_ready(r);
  MHD_suspend_connection(c);
  r->suspended = 1;
  r->next = s->suspended;
  if (r->next) r->next->prev = r;
  s->suspended = r;
  return MHD_YES;
}

/* --- the exchange: how a handler's task answers ------------------------ */

static void resume_now(request *r) {
  if (!r->suspended) return;
  unlink_suspended(r);
  MHD_resume_connection(r->connection);
  /* Let the loop run the daemon soon, not at its next timeout. */
  kapi_timer_start(r->srv->loop, &r->srv->timer, 0);
}


/* exchange:respond(status, {name, value, ...}, body) */
static int exchange_respond(lua_State *L) {
  exchange *x = luaL_checkudata(L, 1, EXCHANGE_METATABLE);
  lua_Integer status = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t len;
  const char *body = luaL_optlstring(L, 4, "", &len);
  request *r = x->req;
  if (!r) return 0; /* the client has gone */
  if (r->response) return luaL_error(L, "server: this request was already answered");
  struct MHD_Response *res =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!res) return luaL_error(L, "server: out of memory");
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  for (lua_Integer i = 1; i + 1 <= n; i += 2) {
    lua_rawgeti(L, 3, i);
    lua_rawgeti(L, 3, i + 1);
    MHD_add_response_header(res, lua_tostring(L, -2), lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  r->response = res;
  r->status = (unsigned)status;
  resume_now(r);
  return 0;
}

/* exchange:reset(): drop the connection without answering (the sandbox's
 * "reset" fault) */
static int exchange_reset(lua_State *L) {
  exchange *x = luaL_checkudata(L, 1, EXCHANGE_METATABLE);
  request *r = x->req;
  if (!r || r->response) return 0;
  r->reset = 1;
  resume_now(r);
  return 0;
}

static int exchange_gc(lua_State *L) {
  exchange *x = luaL_checkudata(L, 1, EXCHANGE_METATABLE);
  if (x->req) x->req->exchange = NULL;
  x->req = NULL;
  return 0;
}

/* --- the server object ------------------------------------------------- */

static server *check_server(lua_State *L) {
  return luaL_checkudata(L, 1, SERVER_METATABLE);
}

static void stop(server *s) {
  if (!s->daemon) return;
  /* Handlers still waiting will never be heard: stop them. libmicrohttpd
   * also requires every suspended connection resumed before it stops. */
  while (s->suspended) {
    request *r = s->suspended;
    unlink_suspended(r);
    if (r->exchange) r->exchange->req = NULL;
    r->exchange = NULL;
    kapi_task_cancel(r->task, "cancelled");
    MHD_resume_connection(r->connection);
  }
  kapi_watch_stop(s->loop, &s->watch);
  kapi_timer_stop(s->loop, &s->timer);
  kapi_timer_stop(s->loop, &s->deadline);
  MHD_stop_daemon(s->daemon);
  s->daemon = NULL;
  luaL_unref(s->L, LUA_REGISTRYINDEX, s->serve_ref);
  s->serve_ref = LUA_NOREF;
}

static int server_close(lua_State *L) {
  stop(check_server(L));
  return 0;
}

static int server_port(lua_State *L) {
  lua_pushinteger(L, check_server(L)->port);
  return 1;
}

static int bound_port(struct MHD_Daemon *d) {
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  if (!info || getsockname(info->listen_fd, (struct sockaddr *)&addr, &len) < 0) return 0;
  return ntohs(addr.sin_port);
}

static const char *opt_string(lua_State *L, const char *key) {
  lua_getfield(L, 1, key);
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* the options table keeps it alive during start */
  return s;
}

/* How many connections the daemon takes: up to MAX_CONNECTIONS, within the
 * descriptors the process may open, whose soft limit is raised toward the
 * hard one first (a server, as nginx does), so that a thousand slow or idle
 * connections still leave room for the clients that are working. */
#define MAX_CONNECTIONS 4096u

static unsigned connection_limit(void) {
  struct rlimit fds;
  if (getrlimit(RLIMIT_NOFILE, &fds) != 0) return 1000;
  if (fds.rlim_cur < MAX_CONNECTIONS + 256 && fds.rlim_cur < fds.rlim_max) {
    fds.rlim_cur = fds.rlim_max < MAX_CONNECTIONS + 256 ? fds.rlim_max : MAX_CONNECTIONS + 256;
    setrlimit(RLIMIT_NOFILE, &fds);
    getrlimit(RLIMIT_NOFILE, &fds);
  }
  rlim_t room = fds.rlim_cur > 128 ? fds.rlim_cur - 128 : 16; /* the rest of kapi's descriptors */
  return room < MAX_CONNECTIONS ? (unsigned)room : MAX_CONNECTIONS;
}

static struct MHD_Daemon *start_daemon(server *s, struct sockaddr_in *addr,
                                       const char *cert, const char *key) {
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
  if (cert && key) flags |= MHD_USE_TLS;
  return MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, addr,
      MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)15, /* idle, not waiting on a handler */
      MHD_OPTION_CONNECTION_LIMIT, connection_limit(),
      /* MAX_PARAMETERS parameters parse in it (some 60 bytes each). */
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(512 * 1024),
      cert && key ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
      MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
}

/* Why the address cannot be bound, as errno (0: it can): libmicrohttpd
 * only says that it could not start, so the reason is asked again. */
static int bind_errno(const struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int err = bind(fd, (const struct sockaddr *)addr, sizeof *addr) < 0 ? errno : 0;
  close(fd);
  return err;
}

/* Raises the reason a daemon did not start, in words, as a structured
 * "network" error (a runtime failure, not a bug at the Lua call site): the
 * address (in use, not allowed) or, with TLS, the certificate and key. */
static int refuse_start(lua_State *L, const struct sockaddr_in *addr, int tls) {
  char host[INET_ADDRSTRLEN], message[256];
  inet_ntop(AF_INET, &addr->sin_addr, host, sizeof host);
  int port = ntohs(addr->sin_port), err = bind_errno(addr);
  if (err == EADDRINUSE)
    snprintf(message, sizeof message, "server: cannot listen on %s:%d: the port is in use", host, port);
  else if (err == EACCES)
    snprintf(message, sizeof message,
             "server: cannot listen on %s:%d: permission denied (ports below 1024 need privileges)", host, port);
  else if (err)
    snprintf(message, sizeof message, "server: cannot listen on %s:%d: %s", host, port, strerror(err));
  else if (tls)
    snprintf(message, sizeof message, "server: the TLS certificate or key was refused (not PEM, or not a pair)");
  else
    snprintf(message, sizeof message, "server: cannot start on %s:%d", host, port);
  kapi_push_error(L, "network", message);
  return lua_error(L);
}

/* listen{host = "127.0.0.1", port = 0, serve = fn, cert = PEM, key = PEM} */
static int l_listen(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "serve");
  luaL_argcheck(L, lua_isfunction(L, -1), 1, "serve must be a function");
  server *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->serve_ref = s->self_ref = LUA_NOREF;
  s->watch.fd = -1;
  luaL_setmetatable(L, SERVER_METATABLE);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  s->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  s->loop = kapi_sched_loop(kapi_sched_get(L));
  kapi_timer_init(&s->timer, on_timer, s);
  kapi_timer_init(&s->deadline, on_deadline, s);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  const char *host = opt_string(L, "host");
  lua_getfield(L, 1, "port");
  lua_Integer port = luaL_optinteger(L, -1, 0);
  if (port < 0 || port > 65535)
    return kapi_usage_error(L, "server: port must be from 0 to 65535");
  addr.sin_port = htons((uint16_t)port);
  lua_pop(L, 1);
  /* The server is for this machine only: the sandbox, a login callback. */
  if (inet_pton(AF_INET, host ? host : "127.0.0.1", &addr.sin_addr) != 1 ||
      (ntohl(addr.sin_addr.s_addr) >> 24) != 127)
    return kapi_usage_error(L, "server: host must be a loopback IPv4 address, got %s", host);
  const char *cert = opt_string(L, "cert"), *key = opt_string(L, "key");
  s->daemon = start_daemon(s, &addr, cert, key);
  if (!s->daemon) return refuse_start(L, &addr, cert && key);
  s->port = bound_port(s->daemon);
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  kapi_watch_start(s->loop, &s->watch, info->epoll_fd, KAPI_READABLE, on_ready, s);
  lua_pushvalue(L, -2);
  s->serve_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  arm_timer(s);
  return 1;
}

static const luaL_Reg server_methods[] = {
    {"close", server_close}, {"port", server_port}, {NULL, NULL}};

static const luaL_Reg exchange_methods[] = {
    {"respond", exchange_respond}, {"reset", exchange_reset}, {NULL, NULL}};

static void new_metatable(lua_State *L, const char *name, const luaL_Reg *methods,
                          lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  if (gc) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}

int luaopen_kapi_core_server(lua_State *L) {
  new_metatable(L, SERVER_METATABLE, server_methods, server_close);
  new_metatable(L, EXCHANGE_METATABLE, exchange_methods, NULL);
  luaL_getmetatable(L, EXCHANGE_METATABLE);
  lua_pushcfunction(L, exchange_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_listen);
  lua_setfield(L, -2, "listen");
  return 1;
}
