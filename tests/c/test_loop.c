/* Unit tests of the event loop: timer order, stopping, descriptors, idle
 * work, and a waiter waiting in the loop's stead. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

#define MS 1000000u

typedef struct {
  int order[64];
  int fired;
} record;

typedef struct {
  kapi_timer timer;
  record *rec;
  int id;
} tagged_timer;

static void note(kapi_timer *t) {
  tagged_timer *tt = t->data;
  tt->rec->order[tt->rec->fired++] = tt->id;
}

static void run_until_idle(kapi_loop *loop) {
  while (kapi_loop_pending(loop) > 0) kapi_loop_run_once(loop, 1000 * MS);
}

static void timers_fire_in_deadline_order(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  record rec = {0};
  static const int delays[] = {30, 5, 20, 1, 25, 10, 15, 2};
  tagged_timer timers[8];
  for (int i = 0; i < 8; i++) {
    timers[i].rec = &rec;
    timers[i].id = delays[i];
    kapi_timer_init(&timers[i].timer, note, &timers[i]);
    assert_int_equal(kapi_timer_start(loop, &timers[i].timer, delays[i] * MS), 0);
  }
  run_until_idle(loop);
  assert_int_equal(rec.fired, 8);
  for (int i = 1; i < 8; i++) assert_true(rec.order[i - 1] < rec.order[i]);
  kapi_loop_free(loop);
}

static void stopped_timers_never_fire(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  record rec = {0};
  tagged_timer timers[5];
  for (int i = 0; i < 5; i++) {
    timers[i].rec = &rec;
    timers[i].id = i;
    kapi_timer_init(&timers[i].timer, note, &timers[i]);
    kapi_timer_start(loop, &timers[i].timer, (uint64_t)(i + 1) * MS);
  }
  kapi_timer_stop(loop, &timers[0].timer); /* the root of the heap */
  kapi_timer_stop(loop, &timers[3].timer); /* one in the middle */
  kapi_timer_stop(loop, &timers[3].timer); /* twice is harmless */
  assert_false(kapi_timer_active(&timers[3].timer));
  run_until_idle(loop);
  assert_int_equal(rec.fired, 3);
  assert_int_equal(rec.order[0], 1);
  assert_int_equal(rec.order[1], 2);
  assert_int_equal(rec.order[2], 4);
  kapi_loop_free(loop);
}

static void restarting_a_timer_moves_it(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  record rec = {0};
  tagged_timer a = {.rec = &rec, .id = 1}, b = {.rec = &rec, .id = 2};
  kapi_timer_init(&a.timer, note, &a);
  kapi_timer_init(&b.timer, note, &b);
  kapi_timer_start(loop, &a.timer, 1 * MS);
  kapi_timer_start(loop, &b.timer, 5 * MS);
  kapi_timer_start(loop, &a.timer, 10 * MS);
  run_until_idle(loop);
  assert_int_equal(rec.fired, 2);
  assert_int_equal(rec.order[0], 2);
  assert_int_equal(rec.order[1], 1);
  kapi_loop_free(loop);
}

static void sleeps_until_the_deadline_not_longer(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  record rec = {0};
  tagged_timer t = {.rec = &rec, .id = 1};
  kapi_timer_init(&t.timer, note, &t);
  uint64_t start = kapi_loop_now_ns();
  kapi_timer_start(loop, &t.timer, 50 * MS);
  run_until_idle(loop);
  uint64_t elapsed = kapi_loop_now_ns() - start;
  assert_true(elapsed >= 50 * MS);
  assert_true(elapsed < 150 * MS);
  kapi_loop_free(loop);
}

static void on_readable(kapi_watch *w, unsigned events) {
  int *seen = w->data;
  char c;
  assert_true(events & KAPI_READABLE);
  assert_int_equal(read(w->fd, &c, 1), 1);
  *seen = c;
}

/* A pipe whose read end is watched: what is read goes to *seen. */
static void watch_pipe(kapi_loop *loop, int fds[2], kapi_watch *w, int *seen) {
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(kapi_watch_start(loop, w, fds[0], KAPI_READABLE, on_readable, seen), 0);
}

static void unwatch_pipe(kapi_loop *loop, int fds[2], kapi_watch *w) {
  kapi_watch_stop(loop, w);
  close(fds[0]);
  close(fds[1]);
}

static void descriptors_wake_the_loop(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  int fds[2], seen = 0;
  assert_int_equal(pipe(fds), 0);
  kapi_watch w;
  assert_int_equal(kapi_watch_start(loop, &w, fds[0], KAPI_READABLE, on_readable, &seen), 0);
  assert_int_equal(kapi_loop_pending(loop), 1);
  assert_int_equal(write(fds[1], "k", 1), 1);
  assert_int_equal(kapi_loop_run_once(loop, 1000 * MS), 1);
  assert_int_equal(seen, 'k');
  kapi_watch_stop(loop, &w);
  assert_int_equal(kapi_loop_pending(loop), 0);
  close(fds[0]);
  close(fds[1]);
  kapi_loop_free(loop);
}

typedef struct {
  kapi_loop *loop;
  kapi_watch *other;
  int *calls;
} freeing_watch;

static void stop_and_free_other(kapi_watch *w, unsigned events) {
  (void)events;
  freeing_watch *self = w->data;
  (*self->calls)++;
  kapi_watch_stop(self->loop, self->other);
  free(self->other);
  self->other = NULL;
}

/* A callback may stop and free another watch of the same batch: that one
 * must not be dispatched. */
static void watches_freed_during_dispatch_are_skipped(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  int a[2], b[2], calls = 0;
  assert_int_equal(pipe(a), 0);
  assert_int_equal(pipe(b), 0);
  kapi_watch *wa = malloc(sizeof *wa), *wb = malloc(sizeof *wb);
  freeing_watch fa = {loop, wb, &calls}, fb = {loop, wa, &calls};
  kapi_watch_start(loop, wa, a[0], KAPI_READABLE, stop_and_free_other, &fa);
  kapi_watch_start(loop, wb, b[0], KAPI_READABLE, stop_and_free_other, &fb);
  assert_int_equal(write(a[1], "x", 1), 1);
  assert_int_equal(write(b[1], "x", 1), 1);
  kapi_loop_run_once(loop, 1000 * MS);
  assert_int_equal(calls, 1);
  assert_int_equal(kapi_loop_pending(loop), 1);
  kapi_watch *survivor = fa.other ? fa.other : fb.other;
  kapi_watch_stop(loop, survivor);
  free(survivor);
  for (int i = 0; i < 2; i++) {
    close(a[i]);
    close(b[i]);
  }
  kapi_loop_free(loop);
}

/* "No deadline" must mean waiting for I/O, not returning at once (the
 * rounding of the wait once overflowed to zero). */
static void no_deadline_waits_for_io(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  int fds[2], seen = 0;
  kapi_watch w;
  watch_pipe(loop, fds, &w, &seen);
  pid_t child = fork();
  if (child == 0) {
    usleep(80000);
    if (write(fds[1], "z", 1) != 1) _exit(1);
    _exit(0);
  }
  uint64_t start = kapi_loop_now_ns();
  kapi_loop_run_once(loop, UINT64_MAX);
  assert_true(kapi_loop_now_ns() - start >= 50 * MS);
  assert_int_equal(seen, 'z');
  waitpid(child, NULL, 0);
  unwatch_pipe(loop, fds, &w);
  kapi_loop_free(loop);
}

static int busy_prepare(kapi_loop *loop, void *data) {
  (void)loop;
  int *calls = data;
  return ++*calls < 3;
}

static void ready_work_keeps_the_loop_from_blocking(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  int calls = 0;
  kapi_loop_set_prepare(loop, busy_prepare, &calls);
  uint64_t start = kapi_loop_now_ns();
  kapi_loop_run_once(loop, 500 * MS); /* busy: must not wait */
  assert_true(kapi_loop_now_ns() - start < 100 * MS);
  kapi_loop_free(loop);
}

/* Idle work: a step counter that notes when it was called, and may write
 * to a pipe on a given step (an answer arriving while the work runs). */
typedef struct {
  int calls, firsts, write_on, write_fd;
  uint64_t first_ns, last_ns;
} idle_record;

static int count_idle(void *data, int first) {
  idle_record *r = data;
  r->calls++;
  r->firsts += first;
  r->last_ns = kapi_loop_now_ns();
  if (first) r->first_ns = r->last_ns;
  if (r->calls == r->write_on && write(r->write_fd, "i", 1) != 1) return 0;
  return 1; /* always more to do: only the loop's rules stop it */
}

static void on_fired(kapi_timer *t) { *(int *)t->data = 1; }

/* Nothing ready: the work runs once the loop has waited its quiet
 * millisecond, in one stretch that ends within the budget (a timer 200 ms
 * away) or before the next timer (one 3 ms away). */
static void idle_work_keeps_to_its_budget_and_the_next_timer(void **state) {
  (void)state;
  const uint64_t slack = MS; /* a step's own time, and the scheduler's */
  for (int near = 0; near < 2; near++) {
    kapi_loop *loop = kapi_loop_new();
    idle_record rec = {0};
    int fired = 0;
    kapi_timer t;
    kapi_timer_init(&t, on_fired, &fired);
    kapi_loop_set_idle(loop, count_idle, &rec);
    uint64_t start = kapi_loop_now_ns(), delay = near ? 3 * MS : 200 * MS;
    kapi_timer_start(loop, &t, delay);
    while (!fired) kapi_loop_run_once(loop, 1000 * MS);
    assert_true(rec.calls > 1);
    assert_int_equal(rec.firsts, 1); /* one stretch, then the loop slept */
    assert_true(rec.first_ns - start >= KAPI_IDLE_AFTER_MS * MS);
    if (near) assert_true(rec.last_ns < start + delay + slack);
    else assert_true(rec.last_ns - rec.first_ns < KAPI_IDLE_BUDGET_NS + slack);
    kapi_loop_free(loop);
  }
}

/* A descriptor that becomes ready during the work ends it at the next
 * step: its watch is dispatched in the same iteration. */
static void io_arriving_ends_idle_work(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  int fds[2], seen = 0;
  kapi_watch w;
  watch_pipe(loop, fds, &w, &seen);
  idle_record rec = {.write_on = 3, .write_fd = fds[1]};
  kapi_loop_set_idle(loop, count_idle, &rec);
  assert_int_equal(kapi_loop_run_once(loop, 1000 * MS), 1);
  assert_int_equal(seen, 'i');
  assert_int_equal(rec.calls, 3);
  unwatch_pipe(loop, fds, &w);
  kapi_loop_free(loop);
}

/* Work that is ready, or a wait too short to lend, gets no idle work. */
static void no_idle_work_when_something_is_ready_or_due(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  int fds[2], seen = 0;
  kapi_watch w;
  watch_pipe(loop, fds, &w, &seen);
  idle_record rec = {0};
  kapi_loop_set_idle(loop, count_idle, &rec);
  assert_int_equal(write(fds[1], "r", 1), 1);
  kapi_loop_run_once(loop, 1000 * MS);
  assert_int_equal(seen, 'r');
  kapi_loop_run_once(loop, MS / 2); /* at most half a millisecond to wait */
  assert_int_equal(rec.calls, 0);
  unwatch_pipe(loop, fds, &w);
  kapi_loop_free(loop);
}

/* A waiter as libcurl polled is one: it waits in whole milliseconds,
 * rounded up, on the loop's epoll descriptor (and its own, here none). */
typedef struct {
  size_t pending;
  int calls, woken_by_loop, acted;
} waiter_record;

static int poll_in_milliseconds(void *data, int epfd, uint64_t wait_ns, int *loop_ready) {
  waiter_record *w = data;
  struct pollfd p = {.fd = epfd, .events = POLLIN};
  w->calls++;
  int ready = poll(&p, 1, (int)(wait_ns / MS + (wait_ns % MS != 0)));
  *loop_ready = ready > 0;
  w->woken_by_loop += ready > 0;
  return w->acted;
}

static size_t waiter_pending(void *data) { return ((waiter_record *)data)->pending; }

/* With work pending, the waiter waits instead of the loop, and what the
 * loop's descriptors have is dispatched when it says they are ready. */
static void a_waiter_waits_for_the_loop_while_it_has_work(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  int fds[2], seen = 0;
  kapi_watch w;
  watch_pipe(loop, fds, &w, &seen);
  waiter_record rec = {.pending = 2};
  kapi_loop_set_waiter(loop, poll_in_milliseconds, waiter_pending, &rec);
  assert_int_equal(kapi_loop_pending(loop), 3); /* the watch and the waiter's two */
  assert_int_equal(write(fds[1], "w", 1), 1);
  assert_int_equal(kapi_loop_run_once(loop, 1000 * MS), 1);
  assert_int_equal(seen, 'w');
  assert_int_equal(rec.calls, 1);
  rec.acted = 2; /* what it did counts as dispatched */
  assert_int_equal(kapi_loop_run_once(loop, 0), 2);
  rec.pending = 0; /* nothing of its own: the loop waits as usual */
  int calls = rec.calls;
  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_int_equal(kapi_loop_run_once(loop, 1000 * MS), 1);
  assert_int_equal(seen, 'x');
  assert_int_equal(rec.calls, calls);
  kapi_loop_set_waiter(loop, NULL, NULL, NULL);
  unwatch_pipe(loop, fds, &w);
  kapi_loop_free(loop);
}

/* A timer due 2.1 ms away while the waiter waits in milliseconds (3): the
 * loop's descriptor becomes readable when the timer is due, so the waiter
 * is woken by it, not by its own timeout 0.9 ms later. */
static void timers_keep_their_time_while_a_waiter_waits(void **state) {
  (void)state;
  kapi_loop *loop = kapi_loop_new();
  waiter_record rec = {.pending = 1};
  kapi_loop_set_waiter(loop, poll_in_milliseconds, waiter_pending, &rec);
  for (int round = 0; round < 3; round++) {
    int fired = 0;
    kapi_timer t;
    kapi_timer_init(&t, on_fired, &fired);
    kapi_timer_start(loop, &t, 2 * MS + MS / 10);
    rec.calls = rec.woken_by_loop = 0;
    while (!fired) kapi_loop_run_once(loop, 1000 * MS);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.woken_by_loop, 1);
  }
  kapi_loop_set_waiter(loop, NULL, NULL, NULL);
  kapi_loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(timers_fire_in_deadline_order),
      cmocka_unit_test(stopped_timers_never_fire),
      cmocka_unit_test(restarting_a_timer_moves_it),
      cmocka_unit_test(sleeps_until_the_deadline_not_longer),
      cmocka_unit_test(descriptors_wake_the_loop),
      cmocka_unit_test(watches_freed_during_dispatch_are_skipped),
      cmocka_unit_test(no_deadline_waits_for_io),
      cmocka_unit_test(ready_work_keeps_the_loop_from_blocking),
      cmocka_unit_test(idle_work_keeps_to_its_budget_and_the_next_timer),
      cmocka_unit_test(io_arriving_ends_idle_work),
      cmocka_unit_test(no_idle_work_when_something_is_ready_or_due),
      cmocka_unit_test(a_waiter_waits_for_the_loop_while_it_has_work),
      cmocka_unit_test(timers_keep_their_time_while_a_waiter_waits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
