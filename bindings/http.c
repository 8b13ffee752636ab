/* The HTTP transport: one libcurl multi handle per process, which waits in
 * the host's event loop's stead while transfers are in flight (the loop's
 * waiter: curl_multi_poll on curl's sockets and the loop's epoll
 * descriptor, then curl_multi_perform). A request suspends its task; the
 * loop wakes it when curl reports the transfer done. Retries, errors, JSON
 * and logging are policy: scripts/kapi/http.lua.
 *
 * Built as a shared module (kapi/core/http.so) so that libcurl and its
 * dependencies are loaded only by scripts that make requests. */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>

#include <curl/curl.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include "loop.h"
#include "task.h"

#define STATE_METATABLE "kapi.http.state"
#define STREAM_METATABLE "kapi.http.stream"
#define STREAM_HIGH_WATER (1024 * 1024) /* pause a stream above this */
#define MAX_POOLED_HANDLES 64
#define MAX_RESERVED (64 * 1024 * 1024) /* trust a Content-Length this far */
#define STALE_DRIVE_NS (100 * 1000) /* curl not called for 100 us: start a transfer now */

/* Sent unless the request gives its own headers, as one list built once:
 * curl formats every header it sends, so fewer and shared is faster. */
static const char *const DEFAULT_HEADERS[] = {
    "Accept: application/json", "User-Agent: kapi/" KAPI_VERSION, NULL};

typedef struct buffer {
  char *data;
  size_t len, cap;
} buffer;

typedef struct http_state http_state;

/* A stream's Lua object. */
typedef struct stream {
  struct transfer *t;          /* NULL once closed */
} stream;

/* What a pooled handle was last configured with: options that did not
 * change are not set again (every curl_easy_setopt costs a dispatch and
 * often a copy), and an option nobody asked for is never left behind. */
typedef struct handle_options {
  long timeout_ms, connect_timeout_ms;
  size_t max_size;
  char *ca_file;               /* our copy; NULL: the system store */
  int insecure, follow;
  int plain_get;               /* GET without a body: curl's default */
  int pipewait;                /* wait for a connection that may multiplex */
  const struct curl_slist *header_list;
} handle_options;

/* A transfer: an easy handle with its buffers. Transfers are pooled and
 * reused, so a request allocates nothing here once the pool is warm; a
 * request's transfer belongs to the waiting task, a stream's to its Lua
 * object. */
typedef struct transfer {
  http_state *http;
  CURL *easy;
  buffer body, head;           /* response body; header lines of the last response */
  struct curl_slist *headers;  /* the request's own; NULL for the defaults */
  handle_options set;
  char error[CURL_ERROR_SIZE];
  struct transfer *prev_busy, *next_busy;
  struct stream *stream;       /* the stream object holding it, if any */
  /* The current transfer: */
  int busy;                    /* taken from the pool */
  kapi_task *waiter;           /* task waiting for completion or stream data */
  int active;                  /* added to the multi handle */
  int done;
  int too_large;
  int streaming, paused, headers_seen;
  size_t read_pos;             /* streams: how much of body was handed out */
  CURLcode result;
  /* libcurl before 8.1 (fresh_handle): what the handle's last transfer
   * was, so that it is copied only when the next may be HTTP/1. */
  int used;                    /* it made a transfer since it was fresh */
  int last_h2;                 /* which ended over HTTP/2 */
  char *last_origin;           /* to this scheme://host:port (our copy) */
  int check_alpn;              /* this transfer must find h2 in prereq */
  int copy_and_retry;          /* it did not: start again on a copy */
} transfer;

struct http_state {
  CURLM *multi;
  CURLSH *share;               /* the TLS session cache of every handle */
  kapi_loop *loop;
  transfer *pool[MAX_POOLED_HANDLES];
  int pooled;
  transfer *busy;              /* every transfer taken from the pool */
  struct curl_slist *default_headers;
  int in_flight;               /* transfers added to the multi handle */
  uint64_t driven_ns;          /* when curl was last called (drive) */
  int stale_header_pointer;    /* this libcurl has the bug of fresh_handle() */
  int proxy_env;               /* a proxy may be taken from the environment */
  unsigned long handle_copies; /* made by fresh_handle(), for the tests */
};


/* --- buffers ----------------------------------------------------------- */

static int buffer_reserve(buffer *b, size_t need) {
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < need) cap *= 2;
  char *grown = realloc(b->data, cap);
  if (!grown) return -1;
  b->data = grown;
  b->cap = cap;
  return 0;
}

static int buffer_append(buffer *b, const char *data, size_t len) {
  if (buffer_reserve(b, b->len + len) < 0) return -1;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static void buffer_free(buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* --- curl's callbacks -------------------------------------------------- */

static void wake_waiter(transfer *t) {
  kapi_task *w = t->waiter;
  t->waiter = NULL;
  if (w) kapi_task_wake(w);
}

/* A large body announced by Content-Length gets its room at once, rather
 * than growing (and being copied) a dozen times on the way. */
static void reserve_content_length(transfer *t) {
  curl_off_t announced = -1;
  if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) != CURLE_OK)
    return;
  size_t limit = t->set.max_size ? t->set.max_size : MAX_RESERVED;
  if (announced > 0 && (size_t)announced <= limit) buffer_reserve(&t->body, (size_t)announced);
}

static size_t on_body(char *data, size_t size, size_t n, void *userp) {
  transfer *t = userp;
  size_t len = size * n;
  if (t->set.max_size && t->body.len + len > t->set.max_size) {
    t->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (t->streaming && t->body.len - t->read_pos >= STREAM_HIGH_WATER) {
    t->paused = 1;
    return CURL_WRITEFUNC_PAUSE;
  }
  if (t->streaming && t->read_pos > 0 && t->read_pos == t->body.len)
    t->body.len = t->read_pos = 0; /* everything handed out: start over */
  if (t->body.len == 0 && !t->streaming) reserve_content_length(t);
  if (buffer_append(&t->body, data, len) < 0) return 0;
  if (t->streaming) wake_waiter(t);
  return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp) {
  transfer *t = userp;
  size_t len = size * n;
  /* A new status line (after a redirect or a 100 Continue) starts over. */
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) t->head.len = 0;
  if (buffer_append(&t->head, data, len) < 0) return 0;
  if (len <= 2 && t->streaming) { /* the blank line ending the headers */
    t->headers_seen = 1;
    wake_waiter(t);
  }
  return len;
}

static int retry_on_copy(struct transfer *t);
static int on_prereq(void *userp, char *primary_ip, char *local_ip, int primary_port, int local_port);

static void collect_done(http_state *h) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(h->multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    transfer *t = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    curl_multi_remove_handle(h->multi, t->easy);
    if (t->copy_and_retry && retry_on_copy(t)) continue;
    t->result = msg->data.result;
    t->done = 1;
    t->headers_seen = 1;
    t->active = 0;
    h->in_flight--;
    wake_waiter(t);
  }
}

/* Lets curl do what is due on every transfer and wakes the tasks whose
 * transfers finished. */
static void drive(http_state *h) {
  int running; /* curl's count, not used: kapi counts in_flight itself */
  h->driven_ns = kapi_loop_now_ns();
  curl_multi_perform(h->multi, &running);
  collect_done(h);
}

/* The loop's waiter while transfers are in flight. libcurl 7.88 polled, as
 * curl -Z drives it, does a fan-out in less time than driven through its
 * socket and timer callbacks, which cost a call into curl, a hash lookup
 * and often an epoll_ctl per socket event (docs/performance.md). Waiting
 * on the loop's epoll descriptor too keeps the loop's other watches and
 * its timers awake meanwhile. */
static int wait_for_transfers(void *data, int epfd, uint64_t wait_ns, int *loop_ready) {
  http_state *h = data;
  struct curl_waitfd loop_fd = {.fd = epfd, .events = CURL_WAIT_POLLIN, .revents = 0};
  uint64_t ms = wait_ns / 1000000u + (wait_ns % 1000000u != 0);
  int ready = 0;
  curl_multi_poll(h->multi, &loop_fd, 1, ms > INT_MAX ? INT_MAX : (int)ms, &ready);
  *loop_ready = loop_fd.revents != 0;
  /* With none of its sockets ready and none of its timers due, curl has
   * nothing to do: not calling it leaves driven_ns telling start_transfer
   * how long curl has been left alone. */
  int curl_ready = ready - *loop_ready;
  long curl_due_ms = -1;
  if (curl_ready == 0 && curl_multi_timeout(h->multi, &curl_due_ms) == CURLM_OK && curl_due_ms != 0)
    return 0;
  drive(h);
  /* Something came, even when no transfer has finished (a body arriving
   * in pieces): the loop must not take it for a moment to idle in. */
  return curl_ready > 0 ? curl_ready : 1;
}

static size_t transfers_in_flight(void *data) {
  return (size_t)((http_state *)data)->in_flight;
}

/* curl opens a socket: one a child process never inherits. */
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose,
                                    struct curl_sockaddr *address) {
  (void)userp;
  (void)purpose;
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* --- the pool ---------------------------------------------------------- */

/* The module's functions keep their state as an upvalue no script can
 * reach, so it needs no type check. */
static http_state *upvalue_state(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static transfer *new_transfer(http_state *h) {
  transfer *t = calloc(1, sizeof *t);
  if (!t || !(t->easy = curl_easy_init())) {
    free(t);
    return NULL;
  }
  t->http = h;
  CURL *e = t->easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* every decoding curl has */
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, h);
  curl_easy_setopt(e, CURLOPT_SHARE, h->share);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
  /* curl's own defaults, recorded so that configure() knows them. */
  t->set.connect_timeout_ms = 300000;
  t->set.plain_get = 1;
  return t;
}

static void free_transfer(transfer *t) {
  curl_easy_cleanup(t->easy);
  free(t->last_origin);
  curl_slist_free_all(t->headers);
  free(t->set.ca_file);
  buffer_free(&t->body);
  buffer_free(&t->head);
  free(t);
}

static transfer *take_transfer(http_state *h) {
  transfer *t = h->pooled > 0 ? h->pool[--h->pooled] : new_transfer(h);
  if (!t) return NULL;
  t->busy = 1;
  t->prev_busy = NULL;
  t->next_busy = h->busy;
  if (h->busy) h->busy->prev_busy = t;
  h->busy = t;
  return t;
}

static void unlink_busy(http_state *h, transfer *t) {
  if (t->prev_busy) t->prev_busy->next_busy = t->next_busy;
  else h->busy = t->next_busy;
  if (t->next_busy) t->next_busy->prev_busy = t->prev_busy;
  t->prev_busy = t->next_busy = NULL;
}

/* libcurl before 8.1.0 frees a handle's stored headers when its next
 * transfer starts but keeps a pointer to the last of them, and follows it
 * when the next response's first header line is folded (begins with a
 * space or a tab): a read of freed memory and a realloc of it that any
 * server can cause (curl's issue 11101, found by fuzz/http.lua). A pooled
 * handle taken for a request is replaced by a copy (ready_handle), which
 * keeps every option set on it (so `set` stays true) and none of that
 * state; paid only where libcurl has the bug, and 10-14% of a fan-out's
 * time at 64, so not over HTTP/2, where it is not needed (below). Returns
 * 0, or -1 when no copy could be made. */
static int fresh_handle(transfer *t) {
  if (!t->http->stale_header_pointer) return 0;
  CURL *copy = curl_easy_duphandle(t->easy);
  if (!copy) return -1;
  curl_easy_cleanup(t->easy);
  t->easy = copy;
  curl_easy_setopt(copy, CURLOPT_SHARE, t->http->share); /* a copy has none */
  t->used = 0;
  t->http->handle_copies++;
  return 0;
}

/* Over HTTP/2 the stale pointer is never followed: the first header
 * stored is :status, which replaces it, and no line is ever folded. So a
 * handle whose last transfer ended over HTTP/2 goes on without a copy to
 * the same origin, if the connection its transfer is given says h2 by
 * ALPN (checked in on_prereq, before the request is sent); if not, the
 * transfer is stopped there and started again on a copy. Not with a proxy
 * from the environment, whose CONNECT answer comes before that check. */
static size_t origin_len(const char *url) {
  const char *p = strstr(url, "://");
  if (!p) return 0;
  p += 3;
  return (size_t)(p + strcspn(p, "/?#") - url);
}

static int same_origin(const char *a, const char *b) {
  size_t n = origin_len(a);
  return n > 0 && n == origin_len(b) && strncmp(a, b, n) == 0;
}

/* Readies a pooled handle for a request to url: copied unless it may go
 * on as it is (then its connection is checked). Returns -1 when it needs
 * a copy and none could be made. */
static int ready_handle(transfer *t, const char *url) {
  http_state *h = t->http;
  t->check_alpn = 0;
  if (h->stale_header_pointer && t->used) {
    if (t->last_h2 && !h->proxy_env && strncmp(url, "https:", 6) == 0 && t->last_origin &&
        same_origin(url, t->last_origin))
      t->check_alpn = 1;
    else if (fresh_handle(t) < 0)
      return -1;
  }
  size_t n = origin_len(url);
  if (!t->last_origin || !same_origin(url, t->last_origin)) {
    free(t->last_origin);
    t->last_origin = n ? strndup(url, n) : NULL;
  }
  return 0;
}

static int speaks_h2(CURL *e) {
  struct curl_tlssessioninfo *info = NULL;
  if (curl_easy_getinfo(e, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || !info ||
      info->backend != CURLSSLBACKEND_OPENSSL || !info->internals)
    return 0;
  const unsigned char *proto = NULL;
  unsigned int len = 0;
  SSL_get0_alpn_selected(info->internals, &proto, &len);
  return len == 2 && memcmp(proto, "h2", 2) == 0;
}

/* Called once a transfer has its connection, before its request is sent
 * (and again before each redirect's, which find the pointer fresh). */
static int on_prereq(void *userp, char *primary_ip, char *local_ip, int primary_port,
                     int local_port) {
  (void)primary_ip, (void)local_ip, (void)primary_port, (void)local_port;
  transfer *t = userp;
  if (!t->check_alpn) return CURL_PREREQFUNC_OK;
  t->check_alpn = 0;
  if (speaks_h2(t->easy)) return CURL_PREREQFUNC_OK;
  t->copy_and_retry = 1;
  return CURL_PREREQFUNC_ABORT;
}

/* The transfer on_prereq stopped, started again on a copy of its handle
 * (nothing was sent; the connection stays for it). 0 if that failed: then
 * it ends with the abort. */
static int retry_on_copy(transfer *t) {
  t->copy_and_retry = 0;
  t->error[0] = '\0';
  if (fresh_handle(t) < 0) return 0;
  return curl_multi_add_handle(t->http->multi, t->easy) == CURLM_OK;
}

/* Stops the transfer and puts it back in the pool; a no-op for one that
 * is not busy, so every way out may call it. */
static void transfer_close(transfer *t) {
  if (!t->busy) return;
  http_state *h = t->http;
  if (t->active) {
    curl_multi_remove_handle(h->multi, t->easy);
    h->in_flight--;
  }
  unlink_busy(h, t);
  t->busy = t->active = t->done = t->too_large = 0;
  t->streaming = t->paused = t->headers_seen = 0;
  t->read_pos = 0;
  t->result = CURLE_OK;
  t->waiter = NULL;
  t->stream = NULL;
  curl_slist_free_all(t->headers); /* curl keeps the pointer, unused until set again */
  t->headers = NULL;
  t->body.len = t->head.len = 0;
  t->error[0] = '\0';
  if (t->body.cap > STREAM_HIGH_WATER) buffer_free(&t->body); /* keep small ones */
  long version = 0;
  curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version);
  t->used = 1; /* copied, if need be, when next taken (ready_handle) */
  t->last_h2 = version == CURL_HTTP_VERSION_2_0;
  t->check_alpn = t->copy_and_retry = 0;
  if (h->pooled < MAX_POOLED_HANDLES) h->pool[h->pooled++] = t;
  else free_transfer(t);
}

/* --- configuring a transfer -------------------------------------------- */

/* The arguments of request() and open(), by position, so that a request
 * builds no table to pass them. */
enum { ARG_METHOD = 1, ARG_URL, ARG_HEADERS, ARG_BODY, ARG_TIMEOUT,
       ARG_CONNECT_TIMEOUT, ARG_MAX_SIZE, ARG_CA_FILE, ARG_INSECURE, ARG_FOLLOW };

/* Everything a transfer is configured from, read (and checked) before it
 * takes a handle, so that a bad argument raises with nothing to undo. */
typedef struct request_args {
  const char *method, *url, *body, *ca_file;
  size_t body_len;
  long timeout_ms, connect_timeout_ms;
  size_t max_size;
  int insecure, follow;
} request_args;

/* The guards under the policy's checks (scripts/kapi/http.lua): nothing
 * that would let one field end its line and write others (CR, LF, NUL, a
 * space in the request line) ever reaches curl, whoever built it. */

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_method(lua_State *L, const char *method) {
  const char *p = method;
  while (is_tchar((unsigned char)*p)) p++;
  if (p == method || *p)
    kapi_usage_error(L, "http: the method is not an HTTP method (a token, RFC 9110)");
}

static void check_url(lua_State *L, const char *url, size_t len) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c <= ' ' || c == 0x7f)
      kapi_usage_error(L, "http: url has a space or a control character at byte %d", (int)i + 1);
  }
}

/* Each header line is "Name: value": the name a token, no CR, LF or NUL. */
static void check_header_line(lua_State *L, int i) {
  size_t len;
  const char *line = lua_tolstring(L, -1, &len);
  const char *p = line;
  if (!line) kapi_usage_error(L, "http: header line %d is not a string", i);
  while (is_tchar((unsigned char)*p)) p++;
  if (p == line || *p != ':' || strlen(line) != len || strpbrk(line, "\r\n"))
    kapi_usage_error(L, "http: header line %d is not a valid \"Name: value\" line", i);
}

static void check_headers(lua_State *L) {
  if (lua_isnoneornil(L, ARG_HEADERS)) return;
  luaL_checktype(L, ARG_HEADERS, LUA_TTABLE);
  lua_Unsigned n = lua_rawlen(L, ARG_HEADERS);
  for (lua_Unsigned i = 1; i <= n; i++) {
    lua_rawgeti(L, ARG_HEADERS, (lua_Integer)i);
    check_header_line(L, (int)i);
    lua_pop(L, 1);
  }
}

static request_args read_args(lua_State *L) {
  request_args a;
  size_t url_len;
  a.method = luaL_optstring(L, ARG_METHOD, "GET");
  check_method(L, a.method);
  a.url = luaL_checklstring(L, ARG_URL, &url_len);
  check_url(L, a.url, url_len);
  check_headers(L);
  a.body_len = 0;
  a.body = luaL_optlstring(L, ARG_BODY, NULL, &a.body_len);
  a.timeout_ms = (long)(luaL_optnumber(L, ARG_TIMEOUT, 0) * 1000);
  a.connect_timeout_ms = (long)(luaL_optnumber(L, ARG_CONNECT_TIMEOUT, 10) * 1000);
  a.max_size = (size_t)luaL_optnumber(L, ARG_MAX_SIZE, 0);
  a.ca_file = luaL_optstring(L, ARG_CA_FILE, NULL);
  a.insecure = lua_toboolean(L, ARG_INSECURE); /* the policy allows it for loopback only */
  a.follow = lua_toboolean(L, ARG_FOLLOW);
  return a;
}

/* Header lines given by the policy, or the transport's defaults (nil). */
static void set_headers(lua_State *L, transfer *t) {
  const struct curl_slist *list = t->http->default_headers;
  if (lua_istable(L, ARG_HEADERS)) {
    lua_Unsigned n = lua_rawlen(L, ARG_HEADERS); /* cannot raise: a transfer is held */
    for (lua_Unsigned i = 1; i <= n; i++) {
      lua_rawgeti(L, ARG_HEADERS, (lua_Integer)i);
      const char *line = lua_tostring(L, -1);
      if (line) t->headers = curl_slist_append(t->headers, line);
      lua_pop(L, 1);
    }
    list = t->headers;
  }
  if (list != t->set.header_list)
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)list);
  t->set.header_list = list;
}

/* A plain GET is curl's default, so a handle that only ever makes those
 * (the common case) never has its method touched; any other request sets
 * every option a previous one may have changed. */
static void set_method_and_body(transfer *t, const request_args *a) {
  CURL *e = t->easy;
  int get = strcmp(a->method, "GET") == 0, head = strcmp(a->method, "HEAD") == 0;
  int plain_get = get && !a->body;
  if (plain_get && t->set.plain_get) return;
  t->set.plain_get = plain_get;
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* back to a plain GET */
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
  if (plain_get) return;
  if (head) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    return;
  }
  /* a method other than GET always sends its length */
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->body_len);
  curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, a->body ? a->body : "");
  if (strcmp(a->method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, a->method);
}

static int same_string(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

static void set_tls(transfer *t, const request_args *a) {
  CURL *e = t->easy;
  if (!same_string(t->set.ca_file, a->ca_file)) {
    free(t->set.ca_file);
    /* Out of memory, the copy is NULL: the system store, which fails
     * closed for a server only the file would vouch for. */
    t->set.ca_file = a->ca_file ? strdup(a->ca_file) : NULL;
    curl_easy_setopt(e, CURLOPT_CAINFO, t->set.ca_file);
  }
  if (t->set.insecure != a->insecure) {
    t->set.insecure = a->insecure;
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, a->insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, a->insecure ? 0L : 2L);
  }
}

static void configure(lua_State *L, transfer *t, const request_args *a) {
  CURL *e = t->easy;
  handle_options *set = &t->set;
  curl_easy_setopt(e, CURLOPT_URL, a->url);
  if (set->timeout_ms != a->timeout_ms)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, set->timeout_ms = a->timeout_ms);
  if (set->connect_timeout_ms != a->connect_timeout_ms)
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, set->connect_timeout_ms = a->connect_timeout_ms);
  if (set->max_size != a->max_size)
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(set->max_size = a->max_size));
  if (set->follow != a->follow)
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, (long)(set->follow = a->follow));
  /* Waiting for a connection that may turn out to multiplex pays only
   * for HTTP/2, which kapi speaks over TLS. Over http:// it made the first
   * concurrent requests to a host queue behind one connection, and a
   * request wait for ever on a connection a failed transfer left opening. */
  int pipewait = strncmp(a->url, "https:", 6) == 0;
  if (set->pipewait != pipewait) curl_easy_setopt(e, CURLOPT_PIPEWAIT, (long)(set->pipewait = pipewait));
  set_tls(t, a);
  set_headers(L, t);
  set_method_and_body(t, a);
}

/* Takes a transfer from the pool, configures it from the arguments and
 * starts it; raises (holding nothing) if that cannot be done. */
static transfer *start_transfer(lua_State *L, int streaming) {
  http_state *h = upvalue_state(L);
  request_args args = read_args(L);
  transfer *t = take_transfer(h);
  if (!t) luaL_error(L, "http: cannot create a transfer");
  if (ready_handle(t, args.url) < 0) {
    transfer_close(t);
    luaL_error(L, "http: cannot create a transfer");
  }
  t->streaming = streaming;
  configure(L, t, &args);
  if (curl_multi_add_handle(h->multi, t->easy) != CURLM_OK) {
    transfer_close(t);
    luaL_error(L, "http: cannot start the transfer");
  }
  t->active = 1;
  h->in_flight++;
  /* Alone in flight, a transfer starts sending now rather than on the
   * loop's next turn, which a sequential script would pay on every
   * request. With others in flight it waits for their next socket event:
   * curl then runs every due transfer in the same call, which at fan-out
   * halves the calls into curl. Unless curl has not been called for a
   * while: the tasks running since (decoding answers, say) would hold the
   * request back until they are all done, each round of a fan-out one
   * round of their CPU later. A call costs a microsecond, so at most one
   * per STALE_DRIVE_NS is at most 1%. */
  if (h->in_flight == 1 || kapi_loop_now_ns() - h->driven_ns > STALE_DRIVE_NS)
    drive(h);
  return t;
}

/* --- results ----------------------------------------------------------- */

static const char *error_kind(const transfer *t) {
  switch (t->result) {
  case CURLE_OPERATION_TIMEDOUT: return "timeout";
  case CURLE_FILESIZE_EXCEEDED: return "too_large";
  case CURLE_WRITE_ERROR: return t->too_large ? "too_large" : "network";
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CACERT_BADFILE: return "tls";
  /* A URL kapi.http let through that curl cannot parse is the script's;
   * an unsupported protocol never is (kapi.http sends only http and
   * https): curl says it of an answer in HTTP/0.9, which is the server's. */
  case CURLE_URL_MALFORMAT: return "usage";
  /* Nothing was sent: a change cannot have been made. */
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT: return "connect";
  default: return "network";
  }
}

static int push_failure(lua_State *L, const transfer *t) {
  lua_pushnil(L);
  lua_pushstring(L, error_kind(t));
  if (t->too_large || t->result == CURLE_FILESIZE_EXCEEDED)
    lua_pushfstring(L, "response larger than the limit of %d bytes",
                    (int)t->set.max_size);
  else
    lua_pushstring(L, t->error[0] ? t->error : curl_easy_strerror(t->result));
  return 3;
}

/* The header lines of the last response, after its status line, as one
 * string: most scripts never read headers, so Lua splits them on demand. */
static void push_header_block(lua_State *L, const transfer *t) {
  const buffer *head = &t->head;
  const char *p = head->data, *end = p + head->len;
  const char *nl = p ? memchr(p, '\n', head->len) : NULL;
  if (!nl) {
    lua_pushliteral(L, "");
    return;
  }
  lua_pushlstring(L, nl + 1, (size_t)(end - nl - 1));
}

static const char *http_version(long v) {
  switch (v) {
  case CURL_HTTP_VERSION_1_0: return "1.0";
  case CURL_HTTP_VERSION_2_0: return "2";
  case CURL_HTTP_VERSION_3: return "3";
  default: return "1.1";
  }
}

/* status, header_block, http_version */
static int push_response_head(lua_State *L, const transfer *t) {
  long status = 0, version = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version);
  lua_pushinteger(L, status);
  push_header_block(L, t);
  lua_pushstring(L, http_version(version));
  return 3;
}

/* status, header_block, http_version, body, time, new_connections */
static int push_result(lua_State *L, const transfer *t) {
  if (t->result != CURLE_OK) return push_failure(L, t);
  double total = 0;
  long connects = 0;
  push_response_head(L, t);
  lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.len);
  curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &total);
  curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &connects);
  lua_pushnumber(L, total);
  lua_pushinteger(L, connects);
  return 6;
}

/* --- requests ---------------------------------------------------------- */

/* A request's transfer is held by its waiting task: every way out of the
 * wait (completion, cancellation, the task being discarded) closes it. The
 * task is checked because a cancellation meant for an earlier wait must
 * never close a transfer the pool has since lent to someone else. */
static void request_cancel(kapi_task *task, void *data) {
  transfer *t = data;
  if (t->busy && t->waiter == task) transfer_close(t);
}

static int finish_request(lua_State *L, transfer *t) {
  int n = push_result(L, t);
  transfer_close(t);
  return n;
}

/* The task resumes here. A cancellation may have come first: then the
 * cancel callback has already given the transfer back, and the pool may
 * have lent it to another request since, which must not be touched; only
 * a transfer that is still this task's (it finished before the
 * cancellation came) is closed here. */
static int request_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  transfer *t = (transfer *)ctx;
  kapi_task *task = kapi_task_current(L, "http request");
  if (kapi_task_cancel_pending(task)) {
    if (t->busy && t->waiter == task) transfer_close(t);
    kapi_task_check_cancel(L, task);
  }
  return finish_request(L, t);
}

/* request(method, url, {"Name: value", ...}, body, timeout, connect_timeout,
 *         max_size, ca_file, insecure, follow)
 *   -> status, header_block, http_version, body, time, new_connections
 *    | nil, kind, message */
static int l_request(lua_State *L) {
  kapi_task *task = kapi_task_current(L, "http request");
  transfer *t = start_transfer(L, 0);
  if (t->done) return finish_request(L, t); /* failed at once */
  t->waiter = task;
  return kapi_task_suspend(L, task, request_cancel, t, (lua_KContext)t, request_k);
}

/* --- streams ----------------------------------------------------------- */

static transfer *check_stream(lua_State *L) {
  stream *s = luaL_checkudata(L, 1, STREAM_METATABLE);
  if (!s->t) luaL_error(L, "stream: closed");
  return s->t;
}

static void stream_cancel(kapi_task *task, void *data) {
  transfer *t = data;
  if (t->waiter == task) t->waiter = NULL;
}

static int stream_wait(lua_State *L, transfer *t, lua_KFunction k) {
  kapi_task *task = kapi_task_current(L, "stream");
  t->waiter = task;
  return kapi_task_suspend(L, task, stream_cancel, t, 0, k);
}

static int stream_head_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  kapi_task_check_cancel(L, kapi_task_current(L, "stream"));
  transfer *t = check_stream(L);
  if (!t->headers_seen) return stream_wait(L, t, stream_head_k);
  if (t->done && t->result != CURLE_OK) return push_failure(L, t);
  return push_response_head(L, t);
}

/* stream:head() -> status, header_block, http_version | nil, kind, message */
static int stream_head(lua_State *L) {
  check_stream(L);
  return stream_head_k(L, LUA_OK, 0);
}

static int stream_read_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  kapi_task_check_cancel(L, kapi_task_current(L, "stream"));
  transfer *t = check_stream(L);
  buffer *body = &t->body;
  if (t->read_pos < body->len) {
    lua_pushlstring(L, body->data + t->read_pos, body->len - t->read_pos);
    t->read_pos = body->len;
    if (t->paused) {
      t->paused = 0;
      curl_easy_pause(t->easy, CURLPAUSE_CONT);
    }
    return 1;
  }
  if (t->done) {
    if (t->result != CURLE_OK) return push_failure(L, t);
    return 0; /* end of body */
  }
  return stream_wait(L, t, stream_read_k);
}

/* stream:read() -> the next chunk of the body, nil at its end, or nil,
 * kind, message when the transfer failed. */
static int stream_read(lua_State *L) {
  check_stream(L);
  return stream_read_k(L, LUA_OK, 0);
}

/* Also the stream's __close and __gc: closing twice is harmless. A task
 * waiting on the stream wakes to find it closed. */
static int stream_close(lua_State *L) {
  stream *s = luaL_checkudata(L, 1, STREAM_METATABLE);
  transfer *t = s->t;
  s->t = NULL;
  if (!t) return 0;
  wake_waiter(t);
  transfer_close(t);
  return 0;
}

/* open(...the arguments of request...) -> stream */
static int l_open(lua_State *L) {
  kapi_task_current(L, "http stream");
  lua_settop(L, ARG_FOLLOW);
  stream *s = lua_newuserdatauv(L, sizeof *s, 0); /* first: it may raise */
  s->t = NULL;
  luaL_setmetatable(L, STREAM_METATABLE);
  s->t = start_transfer(L, 1);
  s->t->stream = s;
  return 1;
}

/* --- the module -------------------------------------------------------- */

static int l_configure(lua_State *L) {
  http_state *h = upvalue_state(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "max_host_connections");
  lua_getfield(L, 1, "max_total_connections");
  long per_host = (long)luaL_optinteger(L, -2, 0), total = (long)luaL_optinteger(L, -1, 0);
  if (per_host > 0) curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
  if (total > 0) curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
  return 0;
}

static int l_version(lua_State *L) {
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  lua_pushfstring(L, "libcurl %s (%s)", v->version, v->ssl_version ? v->ssl_version : "no TLS");
  return 1;
}

static int state_gc(lua_State *L) {
  http_state *h = luaL_checkudata(L, 1, STATE_METATABLE);
  if (!h->multi) return 0;
  kapi_loop_set_waiter(h->loop, NULL, NULL, NULL);
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  while (h->pooled > 0) free_transfer(h->pool[--h->pooled]);
  while (h->busy) { /* normally none: tasks and streams are closed first */
    transfer *t = h->busy;
    unlink_busy(h, t);
    if (t->stream) t->stream->t = NULL;
    free_transfer(t);
  }
  curl_share_cleanup(h->share); /* after the handles: curl refuses while one uses it */
  h->share = NULL;
  curl_slist_free_all(h->default_headers);
  h->default_headers = NULL;
  return 0;
}

static const luaL_Reg stream_methods[] = {
    {"head", stream_head}, {"read", stream_read}, {"close", stream_close},
    {NULL, NULL}};

/* --- where a URL goes ---------------------------------------------------- */

/* A host is loopback when it is an IPv4 literal in 127.0.0.0/8, the IPv6
 * literal ::1, or exactly "localhost": decided on the host libcurl parses
 * out of the URL (the one it will connect to), never on the URL's text,
 * where 127.0.0.1.evil.test and 127.0.0.1@evil.test look alike. */
static int host_is_loopback(const char *host) {
  struct in_addr v4;
  struct in6_addr v6;
  if (strcasecmp(host, "localhost") == 0) return 1;
  if (inet_pton(AF_INET, host, &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  size_t n = strlen(host);
  if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
    char inner[INET6_ADDRSTRLEN + 1];
    if (n - 2 >= sizeof inner) return 0;
    memcpy(inner, host + 1, n - 2);
    inner[n - 2] = '\0';
    return inet_pton(AF_INET6, inner, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return 0;
}

/* http.url_host(url) -> host, is_loopback | nil, reason: the host libcurl
 * parses (IPv4 numbers normalised, as curl connects to them). */
static int l_url_host(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  CURLU *u = curl_url();
  char *host = NULL;
  CURLUcode rc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
  if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (rc != CURLUE_OK) {
    curl_url_cleanup(u);
    lua_pushnil(L);
    lua_pushstring(L, curl_url_strerror(rc));
    return 2;
  }
  lua_pushstring(L, host);
  lua_pushboolean(L, host_is_loopback(host));
  curl_free(host);
  curl_url_cleanup(u);
  return 2;
}

/* handle_copies() -> how many pooled handles fresh_handle() has copied. */
static int l_handle_copies(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)upvalue_state(L)->handle_copies);
  return 1;
}

static const luaL_Reg module_functions[] = {
    {"request", l_request}, {"open", l_open}, {"configure", l_configure},
    {"version", l_version}, {"url_host", l_url_host}, {"handle_copies", l_handle_copies},
    {NULL, NULL}};

static http_state *new_state(lua_State *L) {
  http_state *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  luaL_newmetatable(L, STATE_METATABLE);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  h->loop = kapi_sched_loop(kapi_sched_get(L));
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(h->multi = curl_multi_init()) ||
      !(h->share = curl_share_init()))
    luaL_error(L, "http: cannot initialise libcurl");
  /* TLS sessions are kept per easy handle unless shared: a new connection
   * made by another handle (or by a pooled handle after fresh_handle())
   * then did a full handshake where it could resume one. The multi handle
   * already gives all its handles one connection cache and one DNS cache,
   * so only the sessions are shared; one thread, so no lock functions. */
  curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  h->stale_header_pointer = curl_version_info(CURLVERSION_NOW)->version_num < 0x080100;
  h->proxy_env = getenv("https_proxy") || getenv("HTTPS_PROXY") || getenv("all_proxy") ||
                 getenv("ALL_PROXY");
  kapi_loop_set_waiter(h->loop, wait_for_transfers, transfers_in_flight, h);
  curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 256L);
  curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 256L);
  for (const char *const *line = DEFAULT_HEADERS; *line; line++)
    h->default_headers = curl_slist_append(h->default_headers, *line);
  return h;
}

/* default_headers: the lines a request carries unless it gives its own. */
static void push_default_headers(lua_State *L) {
  lua_newtable(L);
  for (int i = 0; DEFAULT_HEADERS[i]; i++) {
    lua_pushstring(L, DEFAULT_HEADERS[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

int luaopen_kapi_core_http(lua_State *L) {
  new_state(L);
  if (luaL_newmetatable(L, STREAM_METATABLE)) {
    lua_pushcfunction(L, stream_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, stream_close);
    lua_setfield(L, -2, "__close");
    luaL_newlib(L, stream_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlibtable(L, module_functions);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, module_functions, 1);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "__state"); /* lives as long as the module */
  push_default_headers(L);
  lua_setfield(L, -2, "default_headers");
  return 1;
}
