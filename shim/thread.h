/*
 * thread.h — the shim's own threads, and the program's cancellation state
 * (thread.c).
 */
#ifndef PQSHIM_THREAD_H
#define PQSHIM_THREAD_H

#include "util.h"

/* Start one of the shim's own threads, detached, with every signal blocked
 * and hook_depth 1. False when it cannot be started. */
bool start_internal_thread(void *(*main_fn)(void *));

/* How deep this thread is inside the entry points (hooks.c): only a call
 * at depth 0 is the program's own. The shim's own threads start at 1, so
 * their libpq calls are never taken for the program's. */
extern PQSHIM_TLS int hook_depth;

/* pthread_cancel of a program thread inside the shim must never leave a
 * lock held, a slot taken or a connection checked out: the program's
 * calls run with cancellation off (its state is returned and kept), and
 * only the real connect turns it back to the program's, under a cleanup
 * handler. */
int thread_cancel_off(void);
void thread_cancel_restore(int state);
/* Back to the state the program had; returns the current one. */
int thread_cancel_as_program(void);

#endif
