/* Tasks: Lua coroutines run by the event loop. See task.h. */
#include "task.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum task_state { T_NEW, T_ACTIVE, T_DONE, T_FAILED };

/* Uservalue slots of a task object. */
enum { UV_THREAD = 1, UV_OUTCOME = 2, UV_TRACEBACK = 3 };

struct kapi_task {
  kapi_sched *sched;
  lua_State *co;
  int anchor;            /* registry ref keeping the task alive until done */
  int nargs;             /* arguments waiting on co's stack before start */
  enum task_state state;
  int waiting;           /* suspended on a registered wait */
  int queued;            /* in the ready queue */
  int observed;          /* someone has seen its outcome */
  const char *cancel_reason;
  kapi_cancel_fn cancel;
  void *cancel_data;
  kapi_timer timer;
  kapi_task *next_ready;
  kapi_task *waiters, *next_waiter, *awaited;
  kapi_task *prev_live, *next_live;
};

struct kapi_sched {
  lua_State *L;
  kapi_loop *loop;
  kapi_task *ready_head, *ready_tail;
  kapi_task *running;
  kapi_task *foreground; /* receives Ctrl-C; NULL: the task run_until waits on */
  kapi_task *until;      /* the task run_until waits on */
  kapi_task *live;       /* every unfinished task */
  size_t idle_heap_kb;   /* the heap when the collector last ran while idle */
  size_t idle_steps;     /* steps left for this wait */
  unsigned long idle_steps_taken; /* ever, for the tests */
};

/* Yielded by a task that is waiting, so that coroutine wrappers between
 * the task and the waiting call can tell it from an ordinary yield and pass
 * it through (see scripts/kapi/task.lua). */
static const char yield_marker = 0;

static kapi_sched *upvalue_sched(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

/* The scheduler lives in the main thread's extra space, which every
 * coroutine inherits: finding it costs no lookup on a request's path. */
kapi_sched *kapi_sched_get(lua_State *L) {
  return *(kapi_sched **)lua_getextraspace(L);
}

kapi_loop *kapi_sched_loop(kapi_sched *sched) { return sched->loop; }

int kapi_task_finished(const kapi_task *task) {
  return task->state == T_DONE || task->state == T_FAILED;
}

/* --- ready queue and live list ----------------------------------------- */

static void enqueue(kapi_sched *s, kapi_task *t) {
  if (t->queued) return;
  t->queued = 1;
  t->next_ready = NULL;
  if (s->ready_tail) s->ready_tail->next_ready = t;
  else s->ready_head = t;
  s->ready_tail = t;
}

static kapi_task *dequeue(kapi_sched *s) {
  kapi_task *t = s->ready_head;
  if (!t) return NULL;
  s->ready_head = t->next_ready;
  if (!s->ready_head) s->ready_tail = NULL;
  t->queued = 0;
  return t;
}

static void live_add(kapi_sched *s, kapi_task *t) {
  t->prev_live = NULL;
  t->next_live = s->live;
  if (s->live) s->live->prev_live = t;
  s->live = t;
}

static void live_remove(kapi_sched *s, kapi_task *t) {
  if (t->prev_live) t->prev_live->next_live = t->next_live;
  else s->live = t->next_live;
  if (t->next_live) t->next_live->prev_live = t->prev_live;
  t->prev_live = t->next_live = NULL;
}

/* --- waking, suspending, cancelling ------------------------------------ */

void kapi_task_wake(kapi_task *task) {
  if (kapi_task_finished(task)) return;
  task->cancel = NULL;
  task->cancel_data = NULL;
  enqueue(task->sched, task);
}

static int error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getfield(L, 1, "message") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_getfield(L, 1, "kind");
  }
  luaL_tolstring(L, -1, NULL);
  return 1;
}

void kapi_push_error(lua_State *L, const char *kind, const char *message) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  if (luaL_newmetatable(L, KAPI_ERROR_METATABLE)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
}

int kapi_usage_error(lua_State *L, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  const char *message = lua_pushvfstring(L, fmt, args);
  va_end(args);
  kapi_push_error(L, "usage", message);
  return lua_error(L);
}

static const char *cancel_message(const char *kind) {
  if (strcmp(kind, "deadlock") == 0)
    return "deadlock: every task is waiting and nothing can wake them";
  return kind;
}

int kapi_task_cancel_pending(const kapi_task *task) {
  return task->cancel_reason != NULL;
}

void kapi_task_check_cancel(lua_State *L, kapi_task *task) {
  const char *kind = task->cancel_reason;
  if (!kind) return;
  task->cancel_reason = NULL;
  kapi_push_error(L, kind, cancel_message(kind));
  lua_error(L);
}

kapi_task *kapi_task_current(lua_State *L, const char *what) {
  kapi_sched *s = kapi_sched_get(L);
  kapi_task *t = s ? s->running : NULL;
  if (!t)
    luaL_error(L, "%s: not inside a task (run the code with kapi)", what);
  if (!lua_isyieldable(L))
    luaL_error(L,
               "%s cannot wait here: inside a metamethod, an iterator or "
               "callback of a C function (table.sort, string.gsub, ...); "
               "move the call out of it",
               what);
  return t;
}

int kapi_task_suspend(lua_State *L, kapi_task *task, kapi_cancel_fn cancel,
                      void *cancel_data, lua_KContext ctx, lua_KFunction k) {
  if (task->cancel_reason) {
    if (cancel) cancel(task, cancel_data);
    kapi_task_check_cancel(L, task);
  }
  task->waiting = 1;
  task->cancel = cancel;
  task->cancel_data = cancel_data;
  lua_pushlightuserdata(L, (void *)&yield_marker);
  return lua_yieldk(L, 1, ctx, k);
}

/* Unregisters the task's wait, letting its owner undo it (stop a timer,
 * close a transfer). */
static void drop_wait(kapi_task *t) {
  kapi_cancel_fn cancel = t->cancel;
  void *data = t->cancel_data;
  t->waiting = 0;
  t->cancel = NULL;
  t->cancel_data = NULL;
  if (cancel) cancel(t, data);
}

/* core.drop_wait(): the running task's wait was registered by a coroutine
 * whose yield could not reach the task (it was resumed inside a C call,
 * see scripts/kapi/task.lua), so nothing will ever resume that wait. It is
 * dropped now: left registered, it would wake the task later out of some
 * other wait, or act on a request that has long been given back. */
static int l_drop_wait(lua_State *L) {
  kapi_task *t = upvalue_sched(L)->running;
  if (t && t->waiting) drop_wait(t);
  return 0;
}

void kapi_task_cancel(kapi_task *task, const char *reason) {
  if (kapi_task_finished(task)) return;
  task->cancel_reason = reason;
  if (task->waiting && !task->queued) {
    if (task->cancel) task->cancel(task, task->cancel_data);
    kapi_task_wake(task);
  }
}

/* --- finishing --------------------------------------------------------- */

static void push_task(kapi_sched *s, kapi_task *t) {
  lua_rawgeti(s->L, LUA_REGISTRYINDEX, t->anchor);
}

static void release(kapi_sched *s, kapi_task *t) {
  lua_State *L = s->L;
  kapi_task *w = t->waiters;
  t->waiters = NULL;
  if (w) t->observed = 1;
  while (w) {
    kapi_task *next = w->next_waiter;
    w->awaited = NULL;
    w->next_waiter = NULL;
    kapi_task_wake(w);
    w = next;
  }
  push_task(s, t);
  lua_pushnil(L);
  lua_setiuservalue(L, -2, UV_THREAD); /* the finished thread can go */
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, t->anchor);
  t->anchor = LUA_NOREF;
  t->co = NULL;
  if (s->foreground == t) s->foreground = NULL;
  live_remove(s, t);
}

/* Stores the outcome on top of s->L (a results table or an error value)
 * and releases the finished task. */
static void finish(kapi_sched *s, kapi_task *t, enum task_state state) {
  lua_State *L = s->L;
  push_task(s, t);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, UV_OUTCOME);
  lua_pop(L, 1);
  t->state = state;
  release(s, t);
}

static void finish_ok(kapi_sched *s, kapi_task *t, int nres) {
  lua_State *L = s->L;
  luaL_checkstack(L, nres + 3, "too many results from a task");
  lua_createtable(L, nres, 1);
  int results = lua_gettop(L);
  lua_xmove(t->co, L, nres);
  for (int i = nres; i >= 1; i--) lua_rawseti(L, results, i);
  lua_pushinteger(L, nres);
  lua_setfield(L, results, "n");
  finish(s, t, T_DONE);
}

#define UNWAITED_HOOK "kapi.on_unwaited_failure"

/* A task failed and nobody waits for it: the hook set with
 * core.on_unwaited_failure (the REPL's) hears of it now, not whenever the
 * collector finds the task. The hook runs protected, outside any task. */
static void tell_unwaited_failure(kapi_sched *s, int task) {
  lua_State *L = s->L;
  if (lua_getfield(L, LUA_REGISTRYINDEX, UNWAITED_HOOK) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, task);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

static void finish_error(kapi_sched *s, kapi_task *t) {
  lua_State *L = s->L;
  push_task(s, t);
  luaL_traceback(L, t->co, NULL, 0);
  lua_setiuservalue(L, -2, UV_TRACEBACK);
  lua_pop(L, 1);
  /* Runs pending __close handlers; leaves the (possibly new) error on top. */
  lua_resetthread(t->co);
  lua_xmove(t->co, L, 1);
  int unwaited = !t->waiters && !t->observed;
  if (unwaited) { /* the task stays on the stack for the hook */
    push_task(s, t);
    lua_insert(L, -2);
  }
  finish(s, t, T_FAILED);
  if (unwaited) {
    tell_unwaited_failure(s, lua_gettop(L));
    lua_pop(L, 1);
  }
}

/* core.on_unwaited_failure(fn | nil): fn(task) is called as soon as a task
 * fails that nobody is waiting for. */
static int l_on_unwaited_failure(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, UNWAITED_HOOK);
  return 0;
}

static void finish_cancelled_early(kapi_sched *s, kapi_task *t) {
  kapi_push_error(s->L, t->cancel_reason, cancel_message(t->cancel_reason));
  t->cancel_reason = NULL;
  finish(s, t, T_FAILED);
}

/* --- running ----------------------------------------------------------- */

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  kapi_push_error(L, "interrupted", "interrupted");
  lua_error(L);
}

/* Runs inside the SIGINT handler: stop whatever Lua code is running now at
 * its next instruction (as lua.c does). */
static void on_interrupt_signal(void *data) {
  kapi_sched *s = data;
  kapi_task *t = s->running;
  if (t && t->co)
    lua_sethook(t->co, interrupt_hook,
                LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void run_task(kapi_sched *s, kapi_task *t) {
  int nargs = 0, nres = 0;
  if (t->state == T_NEW) {
    if (t->cancel_reason) {
      finish_cancelled_early(s, t);
      return;
    }
    t->state = T_ACTIVE;
    nargs = t->nargs;
  }
  t->waiting = 0;
  s->running = t;
  int status = lua_resume(t->co, NULL, nargs, &nres);
  s->running = NULL;
  if (status == LUA_YIELD) {
    lua_pop(t->co, nres);
    /* A bare coroutine.yield() in a task just lets the others run. */
    if (!t->waiting) enqueue(s, t);
  } else if (status == LUA_OK) {
    finish_ok(s, t, nres);
  } else {
    finish_error(s, t);
  }
}

/* Runs the tasks that were ready when the iteration began; tasks they wake
 * wait for the next one, so I/O is never starved. */
static int run_ready(kapi_loop *loop, void *data) {
  kapi_sched *s = data;
  kapi_task *last = s->ready_tail;
  while (last) {
    kapi_task *t = dequeue(s);
    run_task(s, t);
    if (t == last) break;
  }
  /* The loop must not sleep once the awaited task is done (nothing is left
   * to wait for, however far away the next timer is), nor when nothing at
   * all could wake it (run_until then reports the deadlock). */
  return s->ready_head != NULL || (s->until && kapi_task_finished(s->until)) ||
         kapi_loop_pending(loop) == 0;
}

/* The collector runs ahead while the loop waits: a fan-out's answers are
 * tens of milliseconds away, and a step taken then is one not taken while
 * the next answer is decoded. For each IDLE_STEP_KB the heap grew since the
 * last such wait, one step of that much allocation's work, so a program
 * that allocates nothing does none, a finished cycle is not followed by a
 * new one, and in generational mode this adds up to at most the young
 * collection the growth would have caused. Never when collection is
 * stopped (collectgarbage("stop")). */
#define IDLE_STEP_KB 8
#define IDLE_MIN_GROWTH_KB 256

static int collect_while_idle(void *data, int first) {
  kapi_sched *s = data;
  lua_State *L = s->L;
  if (first) {
    size_t kb = (size_t)lua_gc(L, LUA_GCCOUNT);
    size_t growth = kb > s->idle_heap_kb ? kb - s->idle_heap_kb : 0;
    if (kb < s->idle_heap_kb) s->idle_heap_kb = kb; /* collected meanwhile */
    if (growth < IDLE_MIN_GROWTH_KB || !lua_gc(L, LUA_GCISRUNNING)) return 0;
    s->idle_steps = growth / IDLE_STEP_KB;
  }
  if (s->idle_steps == 0) return 0;
  s->idle_steps--;
  s->idle_steps_taken++;
  if (lua_gc(L, LUA_GCSTEP, IDLE_STEP_KB)) s->idle_steps = 0; /* the cycle is done */
  s->idle_heap_kb = (size_t)lua_gc(L, LUA_GCCOUNT);
  return s->idle_steps > 0;
}

void kapi_task_run_now(kapi_task *task) {
  kapi_sched *s = task->sched;
  if (s->running || !task->queued) return; /* stays queued for the loop */
  kapi_task **link = &s->ready_head, *prev = NULL;
  while (*link && *link != task) {
    prev = *link;
    link = &(*link)->next_ready;
  }
  if (!*link) return;
  *link = task->next_ready;
  if (s->ready_tail == task) s->ready_tail = prev;
  task->queued = 0;
  run_task(s, task);
}

static void interrupt(kapi_sched *s, kapi_task *until) {
  kapi_task *target = s->foreground ? s->foreground : until;
  kapi_task_cancel(target, "interrupted");
}

int kapi_sched_run_until(kapi_sched *s, kapi_task *task) {
  s->until = task;
  while (!kapi_task_finished(task)) {
    kapi_loop_run_once(s->loop, UINT64_MAX);
    if (kapi_loop_take_interrupt(s->loop)) {
      interrupt(s, task);
    } else if (!s->ready_head && kapi_loop_pending(s->loop) == 0 &&
               !kapi_task_finished(task)) {
      kapi_task_cancel(task, "deadlock");
      if (!s->ready_head) break;
    }
  }
  s->until = NULL;
  return kapi_task_finished(task) ? 0 : -1;
}

static void discard(kapi_sched *s, kapi_task *t) {
  drop_wait(t);
  kapi_timer_stop(s->loop, &t->timer);
  if (t->state == T_ACTIVE) lua_resetthread(t->co); /* runs __close handlers */
  t->cancel_reason = "cancelled";
  finish_cancelled_early(s, t);
  t->observed = 1;
}

int kapi_sched_cancel_all(kapi_sched *s) {
  int n = 0;
  while (s->live) {
    if (!s->live->cancel_reason) n++; /* already being cancelled: expected */
    discard(s, s->live);
  }
  s->ready_head = s->ready_tail = NULL;
  return n;
}

/* --- Lua: spawning ----------------------------------------------------- */

kapi_task *kapi_task_spawn(lua_State *L, int nargs) {
  kapi_sched *s = kapi_sched_get(L);
  int fn = lua_gettop(L) - nargs;
  kapi_task *t = lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
  t->sched = s;
  t->anchor = LUA_NOREF;
  t->state = T_NEW;
  kapi_timer_init(&t->timer, NULL, t);
  luaL_setmetatable(L, KAPI_TASK_METATABLE);
  t->co = lua_newthread(L);
  lua_setiuservalue(L, -2, UV_THREAD);
  lua_insert(L, fn);
  lua_xmove(L, t->co, nargs + 1);
  t->nargs = nargs;
  lua_pushvalue(L, -1);
  t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  live_add(s, t);
  enqueue(s, t);
  return t;
}

static int l_spawn(lua_State *L) {
  if (!lua_isfunction(L, 1))
    return kapi_usage_error(L, "kapi.spawn: fn must be a function, got %s", luaL_typename(L, 1));
  kapi_task_spawn(L, lua_gettop(L) - 1);
  return 1;
}

/* --- Lua: sleeping ----------------------------------------------------- */

static void sleep_done(kapi_timer *timer) { kapi_task_wake(timer->data); }

static void sleep_cancel(kapi_task *t, void *data) {
  (void)data;
  kapi_timer_stop(t->sched->loop, &t->timer);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  kapi_task_check_cancel(L, (kapi_task *)ctx);
  return 0;
}

static int l_sleep(lua_State *L) {
  if (lua_type(L, 1) != LUA_TNUMBER)
    return kapi_usage_error(L, "kapi.sleep: seconds must be a number, got %s", luaL_typename(L, 1));
  lua_Number seconds = lua_tonumber(L, 1);
  if (!(seconds >= 0 && seconds < 1e9)) /* NaN too */
    return kapi_usage_error(L, "kapi.sleep: seconds must be from 0 to 1e9, got %s", luaL_tolstring(L, 1, NULL));
  kapi_task *t = kapi_task_current(L, "kapi.sleep");
  kapi_sched *s = upvalue_sched(L);
  t->timer.cb = sleep_done;
  if (kapi_timer_start(s->loop, &t->timer, (uint64_t)(seconds * 1e9)) < 0)
    return luaL_error(L, "kapi.sleep: out of memory");
  return kapi_task_suspend(L, t, sleep_cancel, NULL, (lua_KContext)t, sleep_k);
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)kapi_loop_now_ns() / 1e9);
  return 1;
}

/* idle_steps() -> how many steps the collector has taken while the loop
 * had nothing to do. */
static int l_idle_steps(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)upvalue_sched(L)->idle_steps_taken);
  return 1;
}

static int l_running(lua_State *L) {
  kapi_task *t = upvalue_sched(L)->running;
  if (!t) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
  return 1;
}

static int l_foreground(lua_State *L) {
  kapi_sched *s = upvalue_sched(L);
  s->foreground = lua_isnoneornil(L, 1)
                      ? NULL
                      : luaL_checkudata(L, 1, KAPI_TASK_METATABLE);
  return 0;
}

/* --- Lua: task objects ------------------------------------------------- */

static kapi_task *check_task(lua_State *L, int i) {
  return luaL_checkudata(L, i, KAPI_TASK_METATABLE);
}

/* Pushes the outcome of a finished task: its results, or raises its error. */
static int push_outcome(lua_State *L, kapi_task *t, int task_index) {
  t->observed = 1;
  lua_getiuservalue(L, task_index, UV_OUTCOME);
  if (t->state == T_FAILED) return lua_error(L);
  int results = lua_gettop(L);
  lua_getfield(L, results, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, results, i);
  return n;
}

static void wait_cancel(kapi_task *self, void *data) {
  kapi_task *target = data, **p = &target->waiters;
  while (*p && *p != self) p = &(*p)->next_waiter;
  if (*p) *p = self->next_waiter;
  self->next_waiter = NULL;
  self->awaited = NULL;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  kapi_task_check_cancel(L, (kapi_task *)ctx);
  return push_outcome(L, check_task(L, 1), 1);
}

static int task_wait(lua_State *L) {
  kapi_task *t = check_task(L, 1);
  lua_settop(L, 1);
  if (kapi_task_finished(t)) return push_outcome(L, t, 1);
  kapi_task *self = kapi_task_current(L, "task:wait");
  if (self == t) return luaL_error(L, "task:wait: a task cannot wait for itself");
  self->next_waiter = t->waiters;
  t->waiters = self;
  self->awaited = t;
  return kapi_task_suspend(L, self, wait_cancel, t, (lua_KContext)self, wait_k);
}

static int task_cancel(lua_State *L) {
  kapi_task *t = check_task(L, 1);
  t->observed = 1; /* whoever cancels a task expects it to end so */
  kapi_task_cancel(t, "cancelled");
  return 0;
}

static const char *state_name(const kapi_task *t) {
  switch (t->state) {
  case T_NEW: return "ready";
  case T_DONE: return "done";
  case T_FAILED: return "failed";
  default: break;
  }
  if (t->sched->running == t) return "running";
  return t->queued ? "ready" : "waiting";
}

static int task_status(lua_State *L) {
  lua_pushstring(L, state_name(check_task(L, 1)));
  return 1;
}

/* The error of a failed task, without raising it; nil otherwise. */
static int task_error(lua_State *L) {
  kapi_task *t = check_task(L, 1);
  if (t->state != T_FAILED) return 0;
  t->observed = 1;
  lua_getiuservalue(L, 1, UV_OUTCOME);
  lua_getiuservalue(L, 1, UV_TRACEBACK);
  return 2;
}

static int task_tostring(lua_State *L) {
  kapi_task *t = check_task(L, 1);
  lua_pushfstring(L, "task (%s): %p", state_name(t), (void *)t);
  return 1;
}

static int task_gc(lua_State *L) {
  kapi_task *t = check_task(L, 1);
  if (t->state != T_FAILED || t->observed) return 0;
  lua_getiuservalue(L, 1, UV_OUTCOME);
  const char *msg = luaL_tolstring(L, -1, NULL);
  fprintf(stderr, "kapi: warning: a task failed and nobody waited for it: %s\n",
          msg);
  return 0;
}

static const luaL_Reg task_methods[] = {
    {"wait", task_wait},     {"cancel", task_cancel}, {"status", task_status},
    {"error", task_error},   {NULL, NULL}};

static const luaL_Reg task_meta[] = {
    {"__tostring", task_tostring}, {"__gc", task_gc}, {NULL, NULL}};

static const luaL_Reg core_functions[] = {
    {"spawn", l_spawn},       {"sleep", l_sleep},
    {"now", l_now},           {"running", l_running},
    {"foreground", l_foreground}, {"drop_wait", l_drop_wait},
    {"on_unwaited_failure", l_on_unwaited_failure}, {"idle_steps", l_idle_steps},
    {NULL, NULL}};

/* --- setup ------------------------------------------------------------- */

kapi_sched *kapi_sched_new(lua_State *L, kapi_loop *loop) {
  kapi_sched *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->L = L;
  s->loop = loop;
  *(kapi_sched **)lua_getextraspace(L) = s;
  kapi_loop_set_prepare(loop, run_ready, s);
  kapi_loop_set_idle(loop, collect_while_idle, s);
  kapi_loop_on_interrupt_signal(on_interrupt_signal, s);
  return s;
}

void kapi_sched_free(kapi_sched *sched) {
  kapi_loop_on_interrupt_signal(NULL, NULL);
  kapi_loop_set_prepare(sched->loop, NULL, NULL);
  kapi_loop_set_idle(sched->loop, NULL, NULL);
  free(sched);
}

int kapi_task_open(lua_State *L) {
  kapi_sched *s = kapi_sched_get(L);
  if (luaL_newmetatable(L, KAPI_TASK_METATABLE)) {
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, task_meta, 1);
    luaL_newlibtable(L, task_methods);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, task_methods, 1);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlibtable(L, core_functions);
  lua_pushlightuserdata(L, s);
  luaL_setfuncs(L, core_functions, 1);
  lua_pushlightuserdata(L, (void *)&yield_marker);
  lua_setfield(L, -2, "yield_marker");
  return 1;
}
