/*
 * pool.h — capped pools (pool.c), shared with the hooks and the control
 * socket.
 */
#ifndef PQSHIM_POOL_H
#define PQSHIM_POOL_H

#include "pqshim.h"

struct pool_stats {
    uint64_t connects_total;
    uint64_t connect_errors_total;
    uint64_t closes_total;
    uint64_t checkouts_total;
    uint64_t reuses_total;
    uint64_t waits_total;
    uint64_t timeouts_total;
    uint64_t deadlocks_total;
    double wait_ms_total;
};

struct owner;
struct waiter;

struct pool {
    char key[TARGET_KEY_MAX];
    char name[TARGET_NAME_MAX];
    int open;         /* idle + checked_out + being opened */
    int checked_out;
    int idle_count;
    int waiting;
    bool paused;
    bool disposing;   /* close at checkin instead of keeping */
    struct shim_conn *idle;   /* LIFO stack */
    struct waiter *wait_head, *wait_tail;
    struct owner *owners;     /* checkouts per thread (self-deadlock) */
    struct pool_stats stats;
    UT_hash_handle hh;
};

enum acquire_result {
    ACQ_IDLE,     /* a.conn is checked out to the caller */
    ACQ_SLOT,     /* room under the cap: open a connection, then
                     pool_opened() or pool_release(failed) */
    ACQ_TIMEOUT,  /* waited PQSHIM_POOL_TIMEOUT in vain */
    ACQ_DEADLOCK, /* this thread holds every connection of the target */
    ACQ_NOMEM,    /* no pool could be made: pass the call through */
};

struct acquire {
    struct pool *pool;
    struct shim_conn *conn;
    bool handed;     /* conn came straight from a checkin: already reset */
    double wait_ms;
    int open;        /* at the time the caller had to wait */
    int held;        /* by this thread */
};

/* Check out a connection or a slot for target t; may wait. */
enum acquire_result pool_acquire(const struct target *t, struct acquire *a);

/* A connection opened in an ACQ_SLOT slot is now established. */
void pool_opened(struct pool *p, struct shim_conn *sc);

/* A connection of p is gone (closed after checkout: checked_out is true)
 * or a slot was never filled (failed connect): frees the room under the
 * cap for the next waiter. */
void pool_release(struct pool *p, bool checked_out, pthread_t owner,
                  bool failed);

/* Return a reset connection. False: not kept (pool full or disposing, as
 * *why says); the caller closes it and calls pool_release(p, true, ...). */
bool pool_checkin(struct shim_conn *sc, const char **why);

void pool_count_reuse(struct pool *p);

/* Close every idle connection now (exit, dispose). With dispose set, the
 * pools also close connections at checkin instead of keeping them. */
void pool_close_idle(const char *reason, bool dispose);

void pool_lock_for_fork(void);
void pool_unlock_after_fork(void);
void pool_forget_after_fork(void);

#endif
