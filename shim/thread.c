/*
 * thread.c — starting the shim's own threads (janitor, control socket,
 * host-limit watcher).
 */
#define _GNU_SOURCE
#include "thread.h"

#include <signal.h>
#include <stdlib.h>

PQSHIM_TLS int hook_depth;

struct start {
    void *(*main_fn)(void *);
};

static void *internal_main(void *arg)
{
    struct start s = *(struct start *)arg;
    free(arg);
    hook_depth = 1; /* everything this thread calls is the shim's own doing */
    return s.main_fn(NULL);
}

bool start_internal_thread(void *(*main_fn)(void *))
{
    struct start *s = malloc(sizeof *s);
    if (!s)
        return false;
    s->main_fn = main_fn;
    /* Every signal blocked: the program's handlers must only ever run on
     * the program's threads (the new thread inherits this mask). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t tid;
    bool started = pthread_create(&tid, NULL, internal_main, s) == 0;
    if (started)
        pthread_detach(tid);
    else
        free(s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

/* The program's cancellation state while one of its calls runs inside the
 * shim (see thread_cancel_off). */
static PQSHIM_TLS int program_cancel_state = PTHREAD_CANCEL_ENABLE;

int thread_cancel_off(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    program_cancel_state = old;
    return old;
}

void thread_cancel_restore(int state)
{
    pthread_setcancelstate(state, NULL);
}

int thread_cancel_as_program(void)
{
    int old;
    pthread_setcancelstate(program_cancel_state, &old);
    return old;
}
