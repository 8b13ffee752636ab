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
  /* Parked: registered but asking for nothing (see kapi_watch_park). */
  void (*evict)(kapi_watch *watch);
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

/* Parks a watch: it stays registered as it is, so that taking the same
 * descriptor up again costs no system call (libcurl drops idle keep-alive
 * sockets and takes them back on every request). A parked watch does not
 * count as pending. When any event arrives on it (the peer closed an idle
 * connection) or another watch claims the descriptor, the loop stops it
 * and calls `evict` so that its owner can free it. */
void kapi_watch_park(kapi_loop *loop, kapi_watch *watch,
                     void (*evict)(kapi_watch *watch));
/* Evicts every parked watch whose evict function is `evict` (an owner
 * shutting down). */
void kapi_watch_evict_parked(kapi_loop *loop, void (*evict)(kapi_watch *watch));
/* The parked watch on fd, unparked and asking for `events`; NULL if there
 * is none (or it could not be revived). */
kapi_watch *kapi_watch_unpark(kapi_loop *loop, int fd, unsigned events);
/* A new descriptor was given the number fd, so a watch parked on that
 * number belonged to one since closed: it is evicted, never to be mistaken
 * for the new one (which the kernel has not been asked to watch). */
void kapi_watch_fd_reused(kapi_loop *loop, int fd);

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

/* Runs one iteration: prepare, wait for I/O or the next timer (never past
 * max_wait_ns), dispatch. Returns the number of watches and timers
 * dispatched, or -1 when the wait was interrupted by a signal. */
int kapi_loop_run_once(kapi_loop *loop, uint64_t max_wait_ns);

/* Number of armed timers and started watches: zero means nothing can ever
 * wake the loop again. */
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
