/* Tasks: Lua coroutines scheduled on the event loop. A C function that has
 * to wait (a timer, a transfer, another task) registers how it will be
 * woken, then suspends the current task; the loop resumes it later. */
#ifndef KAPI_TASK_H
#define KAPI_TASK_H

#include <lua.h>

#include "loop.h"

typedef struct kapi_task kapi_task;
typedef struct kapi_sched kapi_sched;

/* Undoes a wait registration when the task is cancelled while waiting. */
typedef void (*kapi_cancel_fn)(kapi_task *task, void *data);

#define KAPI_TASK_METATABLE "kapi.task"
#define KAPI_ERROR_METATABLE "kapi.error"

/* Pushes a structured error {kind = kind, message = message} whose
 * tostring is the message (see scripts/kapi/errors.lua). */
void kapi_push_error(lua_State *L, const char *kind, const char *message);

/* Raises a usage error (exit status 2 on the command line): a wrong
 * argument, named in the message ("kapi.spawn: fn must be a function, got
 * number"), formatted as lua_pushfstring formats. */
int kapi_usage_error(lua_State *L, const char *fmt, ...);

kapi_sched *kapi_sched_new(lua_State *L, kapi_loop *loop);
void kapi_sched_free(kapi_sched *sched);
kapi_sched *kapi_sched_get(lua_State *L);
kapi_loop *kapi_sched_loop(kapi_sched *sched);

/* Registers the core functions (spawn, sleep, now, ...) as the module
 * table on top of the stack. */
int kapi_task_open(lua_State *L);

/* Starts function and nargs arguments on top of L as a new task, pushes
 * the task object and returns it. */
kapi_task *kapi_task_spawn(lua_State *L, int nargs);

/* Runs a task that is ready until it first waits or ends, without going
 * through the loop (for callbacks that want an answer at once). Does
 * nothing when called from inside a running task. */
void kapi_task_run_now(kapi_task *task);

/* Runs the loop until `task` has finished. Returns 0, or -1 if nothing can
 * ever wake the remaining tasks (the task then fails with a deadlock
 * error). */
int kapi_sched_run_until(kapi_sched *sched, kapi_task *task);
/* Cancels every unfinished task; returns how many there were that nobody
 * had already asked to stop. */
int kapi_sched_cancel_all(kapi_sched *sched);

/* The task whose code is running; raises a clear error when the caller is
 * not in a task or cannot yield (metamethod, sort comparator, ...). `what`
 * names the operation for that message. */
kapi_task *kapi_task_current(lua_State *L, const char *what);

/* Suspends the running task (L may be a coroutine nested inside it). The
 * waker calls kapi_task_wake; `k` continues with ctx. */
int kapi_task_suspend(lua_State *L, kapi_task *task, kapi_cancel_fn cancel,
                      void *cancel_data, lua_KContext ctx, lua_KFunction k);
void kapi_task_wake(kapi_task *task);
/* Whether cancellation was asked for and has not yet been raised. */
int kapi_task_cancel_pending(const kapi_task *task);
/* In a continuation: raises the pending cancellation, if any. */
void kapi_task_check_cancel(lua_State *L, kapi_task *task);
/* Requests cancellation: the task's current or next wait raises an error
 * of kind `reason` ("interrupted", "cancelled", "deadlock"), a literal. */
void kapi_task_cancel(kapi_task *task, const char *reason);
int kapi_task_finished(const kapi_task *task);

#endif
