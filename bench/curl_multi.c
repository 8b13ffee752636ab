/* The ceiling for a libcurl-based client: N GETs of one URL through one
 * multi handle, `concurrency` at a time, easy handles reused. Prints
 * requests per second.
 *   curl_multi [-H LINE]... [--keep] [--timeout MS] [--connect-timeout MS]
 *              [--cafile PEM] [--http1.1 | --http2] URL N CONCURRENCY
 * -H sends a header line and the timeouts are curl's (bench/http passes
 * the lines and limits kapi sets, so both ask curl for the same transfer);
 * --keep keeps each response's header lines and body in memory, as a
 * client must, instead of discarding them. For https:// (bench/https):
 * --cafile verifies the server against that CA instead of the system's,
 * --http1.1 or --http2 ask for that version by ALPN, and over HTTP/2 a
 * transfer waits for a connection that may multiplex (CURLOPT_PIPEWAIT),
 * as kapi does over TLS. Every handle shares one TLS session cache
 * (a curl share object), as kapi's do. */
#include <curl/curl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
                  "[--connect-timeout MS] [--cafile PEM] [--http1.1 | --http2] "
                  "URL N CONCURRENCY\n");
  return 2;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-H") == 0 && i + 1 < argc) headers = curl_slist_append(headers, argv[++i]);
    else if (strcmp(argv[i], "--keep") == 0) keep_responses = 1;
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) timeout_ms = atol(argv[++i]);
    else if (strcmp(argv[i], "--connect-timeout") == 0 && i + 1 < argc)
      connect_timeout_ms = atol(argv[++i]);
    else if (strcmp(argv[i], "--cafile") == 0 && i + 1 < argc) cafile = argv[++i];
    else if (strcmp(argv[i], "--http1.1") == 0) http_version = CURL_HTTP_VERSION_1_1;
    else if (strcmp(argv[i], "--http2") == 0) http_version = CURL_HTTP_VERSION_2TLS;
    else return usage();
  }
  if (argc - i != 3) return usage();
  /* The heap settings kapi runs with (host/main.c): without them glibc
   * returns freed memory to the kernel and faults it back in, which costs
   * a client that keeps bodies up to a fifth of its speed. */
  mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
  mallopt(M_TOP_PAD, 1024 * 1024);
  const char *url = argv[i];
  long total = atol(argv[i + 1]), concurrency = atol(argv[i + 2]), started = 0, done = 0, failures = 0;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  share = curl_share_init();
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  CURLM *multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, concurrency);
  double t0 = now();
  for (; started < concurrency && started < total; started++)
    curl_multi_add_handle(multi, new_handle(url));
  while (done < total) {
    int running, left;
    curl_multi_perform(multi, &running);
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(multi, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *e = msg->easy_handle;
      curl_multi_remove_handle(multi, e);
      if (msg->data.result != CURLE_OK) {
        /* Sent on a connection the server was closing (nginx ends one
         * after keepalive_requests): sent again, as kapi retries a GET. */
        if (++failures > 100) {
          fprintf(stderr, "curl_multi: %s\n", curl_easy_strerror(msg->data.result));
          return 1;
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
    if (done < total) curl_multi_poll(multi, NULL, 0, 1000, NULL);
  }
  printf("%.0f\n", total / (now() - t0));
  curl_multi_cleanup(multi);
  return 0;
}
