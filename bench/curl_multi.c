/* The ceiling for a libcurl-based client: N GETs of one URL through one
 * multi handle, `concurrency` at a time, easy handles reused. Prints
 * requests per second.
 *   curl_multi [-H LINE]... [--keep] [--timeout MS] [--connect-timeout MS]
 *              [--cafile PEM] [--http1.1 | --http2] [--events] URL N CONCURRENCY
 * -H sends a header line and the timeouts are curl's (bench/http passes
 * the lines and limits kapi sets, so both ask curl for the same transfer);
 * --keep keeps each response's header lines and body in memory, as a
 * client must, instead of discarding them. For https:// (bench/https):
 * --cafile verifies the server against that CA instead of the system's,
 * --http1.1 or --http2 ask for that version by ALPN, and over HTTP/2 a
 * transfer waits for a connection that may multiplex (CURLOPT_PIPEWAIT),
 * as kapi does over TLS. Every handle shares one TLS session cache
 * (a curl share object), as kapi's do. --events drives curl as an event
 * loop does (kapi's is one): epoll, curl's socket and timer callbacks,
 * curl_multi_socket_action, as curl's ephiperfifo example; otherwise
 * curl_multi_perform and curl_multi_poll. */
#include <curl/curl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

typedef struct buffer {
  char *data;
  size_t len, cap;
} buffer;

typedef struct response {
  buffer head, body;
} response;

static size_t discard(char *data, size_t size, size_t n, void *userp) {
  (void)data;
  (void)userp;
  return size * n;
}

static size_t keep(buffer *b, const char *data, size_t size, size_t n) {
  size_t len = size * n;
  if (b->len + len > b->cap) {
    size_t cap = (b->len + len) * 2;
    char *grown = realloc(b->data, cap);
    if (!grown) return 0;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return len;
}

static size_t keep_body(char *data, size_t size, size_t n, void *userp) {
  return keep(&((response *)userp)->body, data, size, n);
}

static size_t keep_head(char *data, size_t size, size_t n, void *userp) {
  return keep(&((response *)userp)->head, data, size, n);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct curl_slist *headers; /* NULL: curl's defaults */
static int keep_responses;
static long timeout_ms, connect_timeout_ms; /* 0: curl's defaults */
static const char *cafile;             /* NULL: the system store */
static long http_version;              /* 0: curl's default */
static CURLSH *share;

static CURL *new_handle(const char *url) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  if (keep_responses) {
    response *r = calloc(1, sizeof *r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, keep_head);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  } else {
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
  }
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  if (timeout_ms) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (connect_timeout_ms) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
  if (cafile) curl_easy_setopt(e, CURLOPT_CAINFO, cafile);
  if (http_version) curl_easy_setopt(e, CURLOPT_HTTP_VERSION, http_version);
  if (http_version == CURL_HTTP_VERSION_2TLS) curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_SHARE, share);
  return e;
}

/* The next transfer on this handle starts with an empty response. */
static void reuse(CURL *e) {
  response *r = NULL;
  curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
  if (r) r->head.len = r->body.len = 0;
}

static int usage(void) {
  fprintf(stderr, "usage: curl_multi [-H LINE]... [--keep] [--timeout MS] "
                  "[--connect-timeout MS] [--cafile PEM] [--http1.1 | --http2] [--events] "
                  "URL N CONCURRENCY\n");
  return 2;
}

/* The run's counts, and what a finished transfer leads to. */
static const char *url;
static long total, concurrency, started, done, failures;

/* Takes the finished transfers: each handle starts the next request, or
 * the same one again when its connection was closed under it. Returns -1
 * after too many failures. */
static int take_finished(CURLM *multi) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(multi, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *e = msg->easy_handle;
    curl_multi_remove_handle(multi, e);
    if (msg->data.result != CURLE_OK) {
      /* Sent on a connection the server was closing (nginx ends one
       * after keepalive_requests): sent again, as kapi retries a GET. */
      if (++failures > 100) {
        fprintf(stderr, "curl_multi: %s\n", curl_easy_strerror(msg->data.result));
        return -1;
      }
      reuse(e);
      curl_multi_add_handle(multi, e);
      continue;
    }
    done++;
    if (started < total) {
      reuse(e);
      curl_multi_add_handle(multi, e);
      started++;
    } else {
      curl_easy_cleanup(e);
    }
  }
  return 0;
}

static int run_polling(CURLM *multi) {
  while (done < total) {
    int running;
    curl_multi_perform(multi, &running);
    if (take_finished(multi) < 0) return -1;
    if (done < total) curl_multi_poll(multi, NULL, 0, 1000, NULL);
  }
  return 0;
}

/* --events: curl says which sockets to watch and when it next wants a
 * call; epoll waits for either. */
static int epoll_fd = -1;
static long curl_timeout_ms = -1;

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)e;
  CURLM *multi = userp;
  struct epoll_event ev = {.data.fd = s};
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, s, NULL);
    curl_multi_assign(multi, s, NULL);
    return 0;
  }
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
  if (socketp) return epoll_ctl(epoll_fd, EPOLL_CTL_MOD, s, &ev);
  curl_multi_assign(multi, s, multi); /* any non-NULL: watched */
  return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s, &ev);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  (void)userp;
  curl_timeout_ms = timeout_ms;
  return 0;
}

static int run_events(CURLM *multi) {
  int running;
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
  while (done < total) {
    if (take_finished(multi) < 0) return -1;
    if (done >= total) break;
    struct epoll_event events[64];
    int n = epoll_wait(epoll_fd, events, 64, curl_timeout_ms < 0 ? 1000 : (int)curl_timeout_ms);
    if (n <= 0) curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    for (int k = 0; k < n; k++) {
      int flags = (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? CURL_CSELECT_IN : 0) |
                  (events[k].events & EPOLLOUT ? CURL_CSELECT_OUT : 0);
      curl_multi_socket_action(multi, events[k].data.fd, flags, &running);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  int i = 1, events = 0;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-H") == 0 && i + 1 < argc) headers = curl_slist_append(headers, argv[++i]);
    else if (strcmp(argv[i], "--keep") == 0) keep_responses = 1;
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) timeout_ms = atol(argv[++i]);
    else if (strcmp(argv[i], "--connect-timeout") == 0 && i + 1 < argc)
      connect_timeout_ms = atol(argv[++i]);
    else if (strcmp(argv[i], "--cafile") == 0 && i + 1 < argc) cafile = argv[++i];
    else if (strcmp(argv[i], "--http1.1") == 0) http_version = CURL_HTTP_VERSION_1_1;
    else if (strcmp(argv[i], "--http2") == 0) http_version = CURL_HTTP_VERSION_2TLS;
    else if (strcmp(argv[i], "--events") == 0) events = 1;
    else return usage();
  }
  if (argc - i != 3) return usage();
  /* The heap settings kapi runs with (host/main.c): without them glibc
   * returns freed memory to the kernel and faults it back in, which costs
   * a client that keeps bodies up to a fifth of its speed. */
  mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
  mallopt(M_TOP_PAD, 1024 * 1024);
  url = argv[i];
  total = atol(argv[i + 1]);
  concurrency = atol(argv[i + 2]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  share = curl_share_init();
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  CURLM *multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, concurrency);
  if (events) {
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, multi);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
  }
  double t0 = now();
  for (; started < concurrency && started < total; started++)
    curl_multi_add_handle(multi, new_handle(url));
  if ((events ? run_events : run_polling)(multi) < 0) return 1;
  printf("%.0f\n", total / (now() - t0));
  curl_multi_cleanup(multi);
  return 0;
}
