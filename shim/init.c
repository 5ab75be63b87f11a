/*
 * init.c — activation on first use, fork handlers, exit.
 *
 * There is deliberately no constructor: LD_PRELOAD reaches every child of
 * the host (shells, pagers, ls), and a process that never calls libpq must
 * not pay for a thread, a socket, a file or a configuration read.
 */
#define _GNU_SOURCE
#include "init.h"
#include "control.h"
#include "gate.h"
#include "hostlimit.h"
#include "log.h"
#include "pool.h"
#include "real.h"
#include "target_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_once_t activate_once = PTHREAD_ONCE_INIT;

/* Every lock of the shim, in the order of pqshim.h (the rewrite lock of
 * gotpatch.c has handlers of its own): a thread that forks while another
 * holds one waits for it, so the child never starts with a lock taken by
 * a thread it does not have. */
static void before_fork(void)
{
    control_lock_for_fork();
    registry_lock_for_fork();
    gate_lock_for_fork();
    pool_lock_for_fork();
    hostlimit_lock_for_fork();
    /* Leaves: nothing is taken under them. */
    target_cache_lock_for_fork();
    real_lock_for_fork();
    log_lock_for_fork();
}

static void after_fork_parent(void)
{
    log_unlock_after_fork();
    real_unlock_after_fork();
    target_cache_unlock_after_fork();
    hostlimit_unlock_after_fork();
    pool_unlock_after_fork();
    gate_unlock_after_fork();
    registry_unlock_after_fork();
    control_unlock_after_fork();
}

/* Async-signal-safe work only: the child may be single-threaded in a
 * multi-threaded parent's image. The parent's connections stay the
 * parent's: the child neither reuses nor finishes them. */
static void after_fork_child(void)
{
    pqshim_pid = getpid();
    log_unlock_after_fork();
    real_unlock_after_fork();
    target_cache_unlock_after_fork();
    pool_forget_after_fork();
    gate_forget_after_fork();
    registry_forget_after_fork();
    hostlimit_forget_after_fork();
    control_forget_after_fork();
    control_unlock_after_fork();
}

static void activate(void)
{
    pqshim_pid = getpid();
    config_get();
    log_config_problems();
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    real_libpq();
}

bool shim_active(void)
{
    pthread_once(&activate_once, activate);
    if (!real_complete())
        return false;
    control_ensure(control_dispatch);
    return true;
}

