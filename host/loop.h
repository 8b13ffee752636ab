/* The event loop: one per process, epoll on file descriptors plus a timer
 * heap. Tasks (task.h), libcurl and libmicrohttpd all plug into it; nothing
 * here knows about Lua. */
#ifndef KAPI_LOOP_H
#define KAPI_LOOP_H

#include <stddef.h>
#include <stdint.h>

typedef struct kapi_loop kapi_loop;
typedef struct kapi_timer kapi_timer;
typedef struct kapi_watch kapi_watch;

typedef void (*kapi_timer_cb)(kapi_timer *timer);
typedef void (*kapi_watch_cb)(kapi_watch *watch, unsigned events);
/* Called once per iteration before the loop sleeps; returns non-zero when
 * it has more work ready, so the loop must not block. */
typedef int (*kapi_prepare_cb)(kapi_loop *loop, void *data);

struct kapi_timer {
  uint64_t due_ns;     /* monotonic deadline */
  size_t heap_index;   /* position in the heap; SIZE_MAX when not armed */
  kapi_timer_cb cb;
  void *data;
};

enum { KAPI_READABLE = 1, KAPI_WRITABLE = 2 };

struct kapi_watch {
  int fd;
  unsigned events;
  kapi_watch_cb cb;
  void *data;
};

kapi_loop *kapi_loop_new(void);
void kapi_loop_free(kapi_loop *loop);

uint64_t kapi_loop_now_ns(void);

void kapi_timer_init(kapi_timer *timer, kapi_timer_cb cb, void *data);
int kapi_timer_start(kapi_loop *loop, kapi_timer *timer, uint64_t delay_ns);
void kapi_timer_stop(kapi_loop *loop, kapi_timer *timer);
int kapi_timer_active(const kapi_timer *timer);

/* events is a mix of KAPI_READABLE and KAPI_WRITABLE; 0 keeps the fd
 * registered but quiet. Returns 0 or -1 with errno set. */
int kapi_watch_start(kapi_loop *loop, kapi_watch *watch, int fd,
                     unsigned events, kapi_watch_cb cb, void *data);
int kapi_watch_update(kapi_loop *loop, kapi_watch *watch, unsigned events);
void kapi_watch_stop(kapi_loop *loop, kapi_watch *watch);

void kapi_loop_set_prepare(kapi_loop *loop, kapi_prepare_cb cb, void *data);

/* Work that can wait for a moment the loop would sleep through (the Lua
 * collector's): called once nothing has been ready for KAPI_IDLE_AFTER_MS
 * and no timer is due before, with first set on the first call of such a
 * moment, and again while nothing becomes ready, until it returns 0 or
 * KAPI_IDLE_BUDGET_NS has passed. Each call should do a short step: a
 * descriptor that becomes ready waits for the step in progress. */
typedef int (*kapi_idle_cb)(void *data, int first);
#define KAPI_IDLE_AFTER_MS 1
#define KAPI_IDLE_BUDGET_NS 5000000u
void kapi_loop_set_idle(kapi_loop *loop, kapi_idle_cb cb, void *data);

/* Something that waits in the loop's stead while it has work: libcurl,
 * driven as curl_multi_poll and curl_multi_perform drive it, which its
 * socket callbacks are slower than (bindings/http.c). While pending(data)
 * is above zero, the loop calls wait(data, epfd, wait_ns, &loop_ready)
 * where it would wait: it waits up to wait_ns for its own descriptors and
 * for epfd, the loop's epoll descriptor (setting loop_ready when epfd is
 * readable), does its own work, and returns how much came: its
 * descriptors acted on, or 1 for its own timer; 0 when nothing came, which
 * lets the loop's idle work run as when epoll finds nothing. */
typedef int (*kapi_wait_cb)(void *data, int epfd, uint64_t wait_ns, int *loop_ready);
typedef size_t (*kapi_waiter_pending_cb)(void *data);
void kapi_loop_set_waiter(kapi_loop *loop, kapi_wait_cb wait, kapi_waiter_pending_cb pending,
                          void *data);

/* Runs one iteration: prepare, wait for I/O or the next timer (never past
 * max_wait_ns), dispatch. Returns the number of watches and timers
 * dispatched, or -1 when the wait was interrupted by a signal. */
int kapi_loop_run_once(kapi_loop *loop, uint64_t max_wait_ns);

/* Number of armed timers, started watches and the waiter's pending work:
 * zero means nothing can ever wake the loop again. */
size_t kapi_loop_pending(const kapi_loop *loop);

/* SIGINT handling: the handler only sets a flag and wakes the loop; the
 * owner of the loop decides what an interrupt means. */
void kapi_loop_catch_interrupts(kapi_loop *loop);
void kapi_loop_release_interrupts(kapi_loop *loop);
int kapi_loop_take_interrupt(kapi_loop *loop);
/* Registers a callback that runs inside the signal handler (it must be
 * async-signal-safe: lua_sethook is). */
void kapi_loop_on_interrupt_signal(void (*fn)(void *), void *data);

#endif
