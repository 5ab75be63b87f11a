/*
 * pool_internal.h — what the parts of the capped pools share, and nothing
 * outside them includes. Bottom up (each calls only the ones below it):
 *   pool_count.c  the pools, their counters and idle lists, statistics
 *   pool_wait.c   waiting in line: blocking and asynchronous waiters
 *   pool.c        checkout, checkin, a connection's moves, closing idle ones
 * Everything here is used with pool_lock held unless it says otherwise.
 */
#ifndef PQSHIM_POOL_INTERNAL_H
#define PQSHIM_POOL_INTERNAL_H

#include "pool.h"

#include <pthread.h>
#include <time.h>

struct waiter;

struct pool {
    char key[TARGET_KEY_MAX];
    char name[TARGET_NAME_MAX];
    char params[TARGET_KEY_MAX]; /* see struct target (password inside) */
    /* Kept by count_move() alone (pool_count.c): open = opening +
     * checked_out + idle_count, checked in debug builds (PQSHIM_DEBUG). */
    int open;
    int opening;      /* room taken for a connection being opened */
    int checked_out;  /* includes those taken out to be closed */
    int idle_count;
    int waiting;
    bool capped;      /* false: the null policy only counts */
    bool disposing;   /* at exit: close at checkin instead of keeping */
    unsigned generation; /* dispose: older connections close at checkin */
    struct shim_conn *idle;   /* LIFO stack */
    struct waiter *wait_head, *wait_tail;
    struct owner *owners;     /* checkouts per thread (self-deadlock) */
    struct pool_stats stats;
    UT_hash_handle hh;
};

/* A blocking waiter lives on its thread's stack and sleeps on cond. An
 * asynchronous one (async: an event-loop program's connect) is allocated
 * here, carries its caller's cookie, and is only ever given a slot: its
 * PGconn already exists, so it opens a new connection when served. */
struct waiter {
    pthread_cond_t cond;
    pthread_t tid;
    bool done;
    bool async;
    void *cookie;
    double since;
    struct shim_conn *conn; /* handed over; NULL with done: a slot */
    struct waiter *next;
};

static inline struct timespec abs_monotonic(double at)
{
    struct timespec ts;
    ts.tv_sec = (time_t)at;
    ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
    return ts;
}

/* ---- pool_count.c ---------------------------------------------------- */

extern struct pool *pools;
extern pthread_mutex_t pool_lock;

/* The cap: pool_size + max_overflow. */
int cap_of(void);
/* How many connections of p thread tid holds (self-deadlock check). */
int owner_held(struct pool *p, pthread_t tid);
/* The counter of p a connection in state s is counted in; NULL when it
 * holds no room in p. */
int *bucket_of(struct pool *p, enum conn_state s);
/* The only place the counters change (see pool_count.c). */
void count_move(struct pool *p, struct shim_conn *sc,
                enum conn_state from, enum conn_state to, pthread_t tid);
/* Room for one connection about to be opened. */
void reserve(struct pool *p);
/* sc (checked out) now belongs to thread tid. */
void hand_over(struct pool *p, struct shim_conn *sc, pthread_t tid);
/* Check out to tid the idle connection best handed out; NULL: none. */
struct shim_conn *checkout_idle(struct pool *p, pthread_t tid);
/* Put sc (checked out) on top of p's idle list. */
void push_idle(struct pool *p, struct shim_conn *sc);
/* Take the idle connection *link out of p for closing, onto *list. */
void take_for_close(struct pool *p, struct shim_conn **link,
                    const char *reason, struct shim_conn **list);
/* The pool of t, made if new; NULL when out of memory. */
struct pool *find_or_create(const struct target *t);

/* ---- pool_wait.c ----------------------------------------------------- */

/* Set by pool_set_async(): asks the keeper to call pool_close_pending(). */
extern void (*async_kick)(void);
/* Checked-out connections waiting to be closed by pool_close_pending(). */
extern struct shim_conn *closing;
extern bool paused;

/* Give waiting threads what has become available. */
void serve_waiters(struct pool *p);
/* Give sc (checked out) to the first, blocking, waiter of p. */
void hand_to_waiter(struct pool *p, struct shim_conn *sc);
/* Queue the calling thread at the end of p's line and sleep until it is
 * served or the pool timeout (counted from start) passes. Called with the
 * lock held; returns with it released. */
enum acquire_result wait_in_line(struct pool *p, const struct target *t,
                                 struct acquire *a, double start);

#endif
