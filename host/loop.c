/* The event loop: epoll for descriptors, a binary min-heap for timers, a
 * self-pipe so that a signal wakes a sleeping epoll_wait, and a waiter that
 * may wait in epoll's stead (libcurl, polled). */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define DAY_NS (86400u * UINT64_C(1000000000))
#define NO_INDEX SIZE_MAX

struct kapi_loop {
  int epfd;
  int wake_read, wake_write;
  kapi_timer **heap;
  size_t heap_len, heap_cap;
  /* Watches by descriptor: events are dispatched by looking the fd up, so
   * a watch stopped and freed by an earlier callback of the same batch is
   * never touched. */
  kapi_watch **by_fd;
  size_t by_fd_len;
  size_t watches;
  kapi_prepare_cb prepare;
  void *prepare_data;
  kapi_idle_cb idle;
  void *idle_data;
  kapi_wait_cb waiter;
  kapi_waiter_pending_cb waiter_pending;
  void *waiter_data;
  int waiter_acted;            /* what the waiter did, this iteration */
  /* The waiter sleeps in whole milliseconds: a timerfd in the epoll set,
   * armed for the next timer, keeps timers to the nanosecond meanwhile. */
  int timer_fd;
  uint64_t timer_fd_due;       /* what it is armed for; 0: nothing */
};

/* Signal state is necessarily global: a signal handler has no other way to
 * reach the loop. It is written only by the handler and read by the loop. */
static volatile sig_atomic_t interrupt_pending;
static int interrupt_wake_fd = -1;
static void (*interrupt_fn)(void *);
static void *interrupt_data;

uint64_t kapi_loop_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

kapi_loop *kapi_loop_new(void) {
  kapi_loop *loop = calloc(1, sizeof *loop);
  int pipefd[2];
  if (!loop) return NULL;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0 || pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
    if (loop->epfd >= 0) close(loop->epfd);
    free(loop);
    return NULL;
  }
  loop->timer_fd = -1;
  loop->wake_read = pipefd[0];
  loop->wake_write = pipefd[1];
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = loop->wake_read};
  epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wake_read, &ev);
  return loop;
}

void kapi_loop_free(kapi_loop *loop) {
  if (!loop) return;
  kapi_loop_release_interrupts(loop);
  close(loop->epfd);
  if (loop->timer_fd >= 0) close(loop->timer_fd);
  close(loop->wake_read);
  close(loop->wake_write);
  free(loop->heap);
  free(loop->by_fd);
  free(loop);
}

/* --- timers ------------------------------------------------------------ */

static int timer_before(const kapi_timer *a, const kapi_timer *b) {
  return a->due_ns < b->due_ns;
}

static void heap_place(kapi_loop *loop, size_t i, kapi_timer *t) {
  loop->heap[i] = t;
  t->heap_index = i;
}

static void heap_up(kapi_loop *loop, size_t i) {
  kapi_timer *t = loop->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!timer_before(t, loop->heap[parent])) break;
    heap_place(loop, i, loop->heap[parent]);
    i = parent;
  }
  heap_place(loop, i, t);
}

static void heap_down(kapi_loop *loop, size_t i) {
  kapi_timer *t = loop->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= loop->heap_len) break;
    if (child + 1 < loop->heap_len &&
        timer_before(loop->heap[child + 1], loop->heap[child]))
      child++;
    if (!timer_before(loop->heap[child], t)) break;
    heap_place(loop, i, loop->heap[child]);
    i = child;
  }
  heap_place(loop, i, t);
}

void kapi_timer_init(kapi_timer *timer, kapi_timer_cb cb, void *data) {
  timer->due_ns = 0;
  timer->heap_index = NO_INDEX;
  timer->cb = cb;
  timer->data = data;
}

int kapi_timer_active(const kapi_timer *timer) {
  return timer->heap_index != NO_INDEX;
}

void kapi_timer_stop(kapi_loop *loop, kapi_timer *timer) {
  size_t i = timer->heap_index;
  if (i == NO_INDEX) return;
  timer->heap_index = NO_INDEX;
  kapi_timer *last = loop->heap[--loop->heap_len];
  if (i == loop->heap_len) return;
  heap_place(loop, i, last);
  heap_up(loop, i);
  heap_down(loop, last->heap_index);
}

int kapi_timer_start(kapi_loop *loop, kapi_timer *timer, uint64_t delay_ns) {
  kapi_timer_stop(loop, timer);
  if (loop->heap_len == loop->heap_cap) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    kapi_timer **heap = realloc(loop->heap, cap * sizeof *heap);
    if (!heap) return -1;
    loop->heap = heap;
    loop->heap_cap = cap;
  }
  timer->due_ns = kapi_loop_now_ns() + delay_ns;
  heap_place(loop, loop->heap_len++, timer);
  heap_up(loop, timer->heap_index);
  return 0;
}

static int fire_timers(kapi_loop *loop) {
  uint64_t now = kapi_loop_now_ns();
  int fired = 0;
  while (loop->heap_len > 0 && loop->heap[0]->due_ns <= now) {
    kapi_timer *t = loop->heap[0];
    kapi_timer_stop(loop, t);
    t->cb(t);
    fired++;
  }
  return fired;
}

/* --- descriptors ------------------------------------------------------- */

static uint32_t epoll_events(unsigned events) {
  return (events & KAPI_READABLE ? EPOLLIN : 0) |
         (events & KAPI_WRITABLE ? EPOLLOUT : 0);
}

static int index_fd(kapi_loop *loop, int fd) {
  if ((size_t)fd < loop->by_fd_len) return 0;
  size_t len = loop->by_fd_len ? loop->by_fd_len : 64;
  while (len <= (size_t)fd) len *= 2;
  kapi_watch **by_fd = realloc(loop->by_fd, len * sizeof *by_fd);
  if (!by_fd) return -1;
  memset(by_fd + loop->by_fd_len, 0, (len - loop->by_fd_len) * sizeof *by_fd);
  loop->by_fd = by_fd;
  loop->by_fd_len = len;
  return 0;
}

int kapi_watch_start(kapi_loop *loop, kapi_watch *watch, int fd,
                     unsigned events, kapi_watch_cb cb, void *data) {
  watch->fd = -1;
  if (fd < 0 || index_fd(loop, fd) < 0 || loop->by_fd[fd]) {
    errno = fd < 0 ? EBADF : loop->by_fd && loop->by_fd[fd] ? EEXIST : ENOMEM;
    return -1;
  }
  watch->events = events;
  watch->cb = cb;
  watch->data = data;
  struct epoll_event ev = {.events = epoll_events(events), .data.fd = fd};
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return -1;
  watch->fd = fd;
  loop->by_fd[fd] = watch;
  loop->watches++;
  return 0;
}

int kapi_watch_update(kapi_loop *loop, kapi_watch *watch, unsigned events) {
  watch->events = events;
  struct epoll_event ev = {.events = epoll_events(events), .data.fd = watch->fd};
  return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, watch->fd, &ev);
}

void kapi_watch_stop(kapi_loop *loop, kapi_watch *watch) {
  if (watch->fd < 0) return;
  /* The descriptor may already be closed; then the kernel has dropped it
   * from the set and ENOENT/EBADF is fine. */
  epoll_ctl(loop->epfd, EPOLL_CTL_DEL, watch->fd, NULL);
  loop->by_fd[watch->fd] = NULL;
  watch->fd = -1;
  loop->watches--;
}

static unsigned kapi_events(uint32_t ev) {
  unsigned events = 0;
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) events |= KAPI_READABLE;
  if (ev & (EPOLLOUT | EPOLLERR)) events |= KAPI_WRITABLE;
  return events;
}

static void drain_wake_pipe(kapi_loop *loop) {
  char buf[64];
  while (read(loop->wake_read, buf, sizeof buf) > 0) {
  }
}

/* --- the iteration ----------------------------------------------------- */

void kapi_loop_set_prepare(kapi_loop *loop, kapi_prepare_cb cb, void *data) {
  loop->prepare = cb;
  loop->prepare_data = data;
}

void kapi_loop_set_idle(kapi_loop *loop, kapi_idle_cb cb, void *data) {
  loop->idle = cb;
  loop->idle_data = data;
}

void kapi_loop_set_waiter(kapi_loop *loop, kapi_wait_cb wait, kapi_waiter_pending_cb pending,
                          void *data) {
  loop->waiter = wait;
  loop->waiter_pending = pending;
  loop->waiter_data = data;
}

static int waiter_active(const kapi_loop *loop) {
  return loop->waiter && loop->waiter_pending(loop->waiter_data) > 0;
}

size_t kapi_loop_pending(const kapi_loop *loop) {
  size_t waiting = loop->waiter ? loop->waiter_pending(loop->waiter_data) : 0;
  return loop->heap_len + loop->watches + waiting;
}

/* How long the loop may sleep, in nanoseconds: until the next timer, at
 * most max_wait_ns, capped at a day. */
static uint64_t wait_ns(kapi_loop *loop, int busy, uint64_t max_wait_ns) {
  if (busy || interrupt_pending) return 0;
  uint64_t wait = max_wait_ns;
  if (loop->heap_len > 0) {
    uint64_t now = kapi_loop_now_ns(), due = loop->heap[0]->due_ns;
    uint64_t until = due > now ? due - now : 0;
    if (until < wait) wait = until;
  }
  return wait > DAY_NS ? DAY_NS : wait;
}

/* The same in whole milliseconds, rounded up (waking a little early would
 * only spin until the deadline). */
static int wait_ms(kapi_loop *loop, int busy, uint64_t max_wait_ns) {
  uint64_t wait = wait_ns(loop, busy, max_wait_ns);
  return (int)(wait / 1000000u + (wait % 1000000u != 0));
}

/* epoll_wait for up to wait nanoseconds. epoll_pwait2 sleeps to the
 * nanosecond where epoll_wait rounds up to the millisecond: a timer then
 * fired up to a millisecond late, half of one on average, and a sandbox
 * holding every request 50 ms held each about a millisecond more. */
static int epoll_within(kapi_loop *loop, struct epoll_event *events, uint64_t wait) {
  static int no_pwait2;
  if (!no_pwait2) {
    struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000u), .tv_nsec = (long)(wait % 1000000000u)};
    int n = epoll_pwait2(loop->epfd, events, MAX_EVENTS, &ts, NULL);
    if (n >= 0 || errno != ENOSYS) return n;
    no_pwait2 = 1; /* a kernel before 5.11 */
  }
  return epoll_wait(loop->epfd, events, MAX_EVENTS, (int)(wait / 1000000u + (wait % 1000000u != 0)));
}

/* Arms the timerfd for the next timer, if that timer ends the wait. */
static void arm_timer_fd(kapi_loop *loop, uint64_t wait) {
  if (loop->heap_len == 0) return;
  uint64_t due = loop->heap[0]->due_ns;
  if (due == loop->timer_fd_due || due > kapi_loop_now_ns() + wait) return;
  if (loop->timer_fd < 0) {
    loop->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = loop->timer_fd};
    if (loop->timer_fd < 0) return; /* then timers keep the waiter's milliseconds */
    epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->timer_fd, &ev);
  }
  struct itimerspec at = {.it_value = {.tv_sec = (time_t)(due / 1000000000u),
                                       .tv_nsec = (long)(due % 1000000000u)}};
  if (timerfd_settime(loop->timer_fd, TFD_TIMER_ABSTIME, &at, NULL) == 0) loop->timer_fd_due = due;
}

/* Waits up to wait nanoseconds for the loop's descriptors and, while the
 * waiter has work, for the waiter's: it then waits in epoll's stead, on its
 * own descriptors and on the epoll descriptor, and does its work before it
 * returns. Returns the loop's events read, as epoll_wait. */
static int wait_events(kapi_loop *loop, struct epoll_event *events, uint64_t wait) {
  if (!waiter_active(loop)) return epoll_within(loop, events, wait);
  if (wait > 0) arm_timer_fd(loop, wait);
  int loop_ready = 0;
  loop->waiter_acted += loop->waiter(loop->waiter_data, loop->epfd, wait, &loop_ready);
  return loop_ready ? epoll_wait(loop->epfd, events, MAX_EVENTS, 0) : 0;
}

static void drain_timer_fd(kapi_loop *loop) {
  uint64_t expirations;
  ssize_t unused = read(loop->timer_fd, &expirations, sizeof expirations);
  (void)unused;
  loop->timer_fd_due = 0;
}

/* The loop is about to sleep: lets the idle work run a step at a time
 * while nothing is ready, within its budget and before the next timer.
 * Returns what the last look at the descriptors found (0: nothing, so the
 * loop goes on to sleep). */
static int run_idle(kapi_loop *loop, struct epoll_event *events) {
  uint64_t stop = kapi_loop_now_ns() + KAPI_IDLE_BUDGET_NS;
  if (loop->heap_len > 0 && loop->heap[0]->due_ns < stop) stop = loop->heap[0]->due_ns;
  int first = 1;
  while (loop->idle(loop->idle_data, first)) {
    first = 0;
    int n = wait_events(loop, events, 0);
    if (n != 0 || loop->waiter_acted || interrupt_pending || kapi_loop_now_ns() >= stop) return n;
  }
  return 0;
}

int kapi_loop_run_once(kapi_loop *loop, uint64_t max_wait_ns) {
  int busy = loop->prepare ? loop->prepare(loop, loop->prepare_data) : 0;
  struct epoll_event events[MAX_EVENTS];
  int timeout = wait_ms(loop, busy, max_wait_ns), n = 0, waited = 0;
  loop->waiter_acted = 0;
  /* Idle work starts only once nothing has come for a while: a fan-out
   * whose answers come every few microseconds is never made to wait for
   * it, one waiting for answers tens of milliseconds away is. */
  if (timeout > KAPI_IDLE_AFTER_MS && loop->idle) {
    n = wait_events(loop, events, KAPI_IDLE_AFTER_MS * UINT64_C(1000000));
    if (n == 0 && !loop->waiter_acted && !interrupt_pending) n = run_idle(loop, events);
    waited = n != 0 || loop->waiter_acted;
  }
  if (!waited) n = wait_events(loop, events, wait_ns(loop, busy, max_wait_ns)); /* time may have passed */
  if (n < 0) {
    if (errno != EINTR) return -1;
    n = 0;
  }
  int dispatched = loop->waiter_acted;
  for (int i = 0; i < n; i++) {
    int fd = events[i].data.fd;
    if (fd == loop->wake_read) {
      drain_wake_pipe(loop);
      continue;
    }
    if (fd == loop->timer_fd) {
      drain_timer_fd(loop);
      continue;
    }
    kapi_watch *w = (size_t)fd < loop->by_fd_len ? loop->by_fd[fd] : NULL;
    if (!w) continue; /* stopped by an earlier callback this round */
    w->cb(w, kapi_events(events[i].events));
    dispatched++;
  }
  dispatched += fire_timers(loop);
  return interrupt_pending ? -1 : dispatched;
}

/* --- interrupts -------------------------------------------------------- */

static void on_sigint(int sig) {
  int saved = errno;
  if (interrupt_pending) {
    /* A second Ctrl-C before the first was handled: the program is stuck
     * somewhere an interrupt cannot reach, so let the default action run. */
    signal(sig, SIG_DFL);
    raise(sig);
  }
  interrupt_pending = 1;
  if (interrupt_fn) interrupt_fn(interrupt_data);
  if (interrupt_wake_fd >= 0) {
    ssize_t unused = write(interrupt_wake_fd, "!", 1);
    (void)unused;
  }
  errno = saved;
}

void kapi_loop_catch_interrupts(kapi_loop *loop) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  interrupt_wake_fd = loop->wake_write;
  sigaction(SIGINT, &sa, NULL);
}

void kapi_loop_release_interrupts(kapi_loop *loop) {
  if (interrupt_wake_fd != loop->wake_write) return;
  signal(SIGINT, SIG_DFL);
  interrupt_wake_fd = -1;
}

void kapi_loop_on_interrupt_signal(void (*fn)(void *), void *data) {
  interrupt_fn = fn;
  interrupt_data = data;
}

int kapi_loop_take_interrupt(kapi_loop *loop) {
  (void)loop;
  if (!interrupt_pending) return 0;
  interrupt_pending = 0;
  return 1;
}
