/* The ceiling for a libcurl-based client: N GETs of one URL through one
 * multi handle, `concurrency` at a time, easy handles reused, bodies
 * discarded. Prints requests per second.
 *   curl_multi URL N CONCURRENCY */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t discard(char *data, size_t size, size_t n, void *userp) {
  (void)data;
  (void)userp;
  return size * n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static CURL *new_handle(const char *url) {
  CURL *e = curl_easy_init();
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  return e;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: curl_multi URL N CONCURRENCY\n");
    return 2;
  }
  const char *url = argv[1];
  long total = atol(argv[2]), concurrency = atol(argv[3]), started = 0, done = 0;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM *multi = curl_multi_init();
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
      if (msg->data.result != CURLE_OK) {
        fprintf(stderr, "curl_multi: %s\n", curl_easy_strerror(msg->data.result));
        return 1;
      }
      done++;
      curl_multi_remove_handle(multi, e);
      if (started < total) {
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
