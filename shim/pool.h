/*
 * pool.h — capped pools (pool.c, pool_wait.c, pool_count.c), shared with
 * the hooks and the control socket.
 */
#ifndef PQSHIM_POOL_H
#define PQSHIM_POOL_H

#include "conn.h"
#include "target.h"

struct pool_stats {
    uint64_t connects_total;
    uint64_t connect_errors_total;
    uint64_t closes_total;
    uint64_t checkouts_total;
    uint64_t reuses_total;
    uint64_t waits_total;
    uint64_t timeouts_total;
    uint64_t deadlocks_total;
    uint64_t host_handoffs_total; /* kept in this process while callers wait host-wide */
    uint64_t host_yields_total;   /* slots closed for another process */
    double wait_ms_total;
};

/* One per target; pools live as long as the process. Opaque: see
 * pool_internal.h. */
struct pool;

enum acquire_result {
    ACQ_IDLE,     /* a.conn is checked out to the caller */
    ACQ_SLOT,     /* room under the cap: open a connection (moved to
                     CONN_OPEN when established), or pool_unreserve() */
    ACQ_TIMEOUT,  /* waited PQSHIM_POOL_TIMEOUT in vain */
    ACQ_DEADLOCK, /* this thread holds every connection of the target */
    ACQ_NOMEM,    /* no pool could be made: pass the call through */
    ACQ_WOULD_WAIT, /* nowait: the caller would have to wait */
};

struct acquire {
    struct pool *pool;
    struct shim_conn *conn;
    bool handed;     /* conn came straight from a checkin: already reset */
    double wait_ms;
    int open;        /* at the time the caller had to wait */
    int held;        /* by this thread */
};

/* Check out a connection or a slot for target t; may wait, unless nowait
 * (then ACQ_WOULD_WAIT, with nothing queued, and no self-deadlock check:
 * a caller that does not block cannot deadlock itself). */
enum acquire_result pool_acquire(const struct target *t, struct acquire *a,
                                 bool nowait);

/* Asynchronous waiters (gate.c). granted(cookie, wait_ms) is called under
 * the pool lock when a queued cookie is given a slot (open is counted for
 * it: give it back with pool_unreserve() if unused); it must only
 * flag and wake. kick() asks for pool_close_pending() to be called soon. */
void pool_set_async(void (*granted)(void *cookie, double wait_ms),
                    void (*kick)(void));
/* Queue cookie at the end of p's line; it may be granted at once (from
 * inside this call). *waiting: the queue's length. False: out of memory. */
bool pool_enqueue_async(struct pool *p, void *cookie, int *waiting);
/* Take cookie out of the line. False when it was granted already (the
 * caller then holds a slot). */
bool pool_cancel_async(struct pool *p, void *cookie, bool timed_out);
/* Have a connection checked out of its pool closed on the keeper's thread
 * (gate_ensure_keeper() first): a caller that must not block. */
void pool_close_later(struct shim_conn *sc, const char *reason);
/* Close the idle connections taken out to make room for async waiters. */
void pool_close_pending(void);

/* Null policy: the pool of t, for counting only (no cap, no waiting), with
 * a slot reserved as for ACQ_SLOT. NULL when out of memory. */
struct pool *pool_reserve_uncapped(const struct target *t);

/*
 * A connection's life. Its state, its pool's counters, the owner counts
 * (self-deadlock check), the statistics and its host-wide slot change
 * together, here and nowhere else:
 *
 *   (room reserved) --> CONNECTING --> OPEN <--> IDLE --> CLOSING
 *                           |           |  \              |
 *                           |           |   SETTLING, RESETTING,
 *                           |           |   RECONNECTING (still checked out)
 *                           v           v                 v
 *              FAILED, SYNTHETIC    CLOSED, FORGOTTEN   CLOSED, OPEN
 *
 * pool_move(sc, to, reason) makes every move a caller outside the pool
 * makes; the moves to and from IDLE (checkin, checkout, hand-over) and to
 * CLOSING happen inside the pool's files under its lock. A move to CLOSED
 * closes the session (reason: the close line's), FORGOTTEN and FAILED leave the
 * PGconn alone; all three give back the host slot and the room in the pool
 * (serving the next waiter) and free sc. SYNTHETIC gives them back and
 * keeps sc as the carrier of its error (conn_hold_error()).
 */
void pool_move(struct shim_conn *sc, enum conn_state to, const char *reason);

/* Room reserved without a connection (ACQ_SLOT, a granted async waiter, a
 * health check's probe) and host_slot (or HOST_SLOT_NONE) are given back
 * unused; failed: counted as a connect error. p may be NULL. */
void pool_unreserve(struct pool *p, int host_slot, bool failed);

/* Check in a connection cleaned for reuse: handed to a waiting thread,
 * kept IDLE (and the host-wide watcher told), or closed (the pool is full:
 * overflow; disposing: disposed; an async waiter needs the room: handoff).
 * sc may belong to another thread or be gone on return. */
void pool_checkin(struct shim_conn *sc);

/* Is p a capped pool (false: the null policy only counts)? */
bool pool_capped(const struct pool *p);

void pool_count_reuse(struct pool *p);

/* Under host-wide contention: hand sc (reset, checked out) to a thread of
 * this process that waits for it, at the cap or host-wide, keeping its
 * slot. False when none waits: the caller closes it. */
bool pool_hand_on(struct shim_conn *sc);

/* A connection of p was closed so that another process gets its slot. */
void pool_count_yield(struct pool *p);

/* The error text of a connect that waited in vain at the cap. */
void pool_timeout_message(char *buf, size_t size, const struct target *t);

/* PQreset/PQresetStart closed one backend of p and opened another (or
 * failed to): count both, as the log shows them. */
void pool_count_reconnect(struct pool *p, bool ok);

/* Room for one more connection of p without waiting (health checks):
 * false when p is at its cap or others wait. The room is given back with
 * pool_unreserve(). */
bool pool_reserve_probe(struct pool *p);

/* Close every idle connection now and make checked-out ones close at
 * checkin (dispose). With forever set (exit), nothing is kept again.
 * Returns the number of idle connections closed. */
int pool_close_idle(const char *reason, bool forever);

/* A capped pool holds connections: close idle ones politely at exit. */
void pool_close_at_exit(bool ssl);

/* Close every idle connection whose host-wide slot another caller waits
 * for (hostlimit.c's watcher). Returns the number closed. */
int pool_close_contended(void);

/* New checkouts wait (bounded by the pool timeout) while paused. */
void pool_set_paused(bool paused);
bool pool_paused(void);

/* A copy of every pool's numbers, for status and metrics. */
struct pool_view {
    struct pool *pool; /* pools live as long as the process */
    char name[TARGET_NAME_MAX];
    bool capped;
    int open, checked_out, idle, waiting;
    double oldest_checkout_s; /* 0 when none is checked out */
    struct pool_stats stats;
};

/* Malloc'd array in *out (caller frees); returns the count, -1 on OOM. */
int pool_snapshot(struct pool_view **out);

/* Health checks: borrow an idle connection of p (NULL if none), give it
 * back (alive) or have it closed. */
struct shim_conn *pool_borrow_idle(struct pool *p);
void pool_return_borrowed(struct shim_conn *sc, bool alive);

/* Copy p's connection parameters ("kw\0value\0...\0"). */
void pool_params(struct pool *p, char *out, size_t size);

void pool_lock_for_fork(void);
void pool_unlock_after_fork(void);
void pool_forget_after_fork(void);

#endif
