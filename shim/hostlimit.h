/*
 * hostlimit.h — the host-wide connection limit (hostlimit.c): at most
 * PQSHIM_HOST_LIMIT server connections per target (user@host:port/dbname)
 * across every process that shares PQSHIM_HOST_LIMIT_FILE.
 */
#ifndef PQSHIM_HOSTLIMIT_H
#define PQSHIM_HOSTLIMIT_H

#include "conn.h"
#include "target.h"

#define HOST_LIMIT_MAX 1000

#define HOST_SLOT_TIMEOUT (-2) /* waited PQSHIM_POOL_TIMEOUT in vain */

/* A slot for one more server connection to t, waiting (in arrival order
 * across the host) up to PQSHIM_POOL_TIMEOUT. Returns the slot, or
 * HOST_SLOT_NONE (no limit, or it cannot be enforced: said once in the
 * log), or HOST_SLOT_TIMEOUT; *wait_ms gets the time spent waiting. */
int hostlimit_acquire(const struct target *t, double *wait_ms);

/* The same for a caller that will take its connection from pool: while it
 * waits, a checkin of this process may hand it a connection instead
 * (hostlimit_give), which keeps its own slot: then *gift gets it, already
 * checked out to the caller, and the result is HOST_SLOT_NONE. */
int hostlimit_acquire_pooled(const struct target *t, const void *pool,
                             double *wait_ms, struct shim_conn **gift);

/* Hand sc (reset, holding slot) to the oldest thread of this process
 * waiting above for a slot of the same target and pool; *tid gets that
 * thread. False when there is none. */
bool hostlimit_give(int slot, const void *pool, struct shim_conn *sc,
                    pthread_t *tid);

/* The same in steps, for a caller that must not block (an asynchronous
 * connect, driven by gate.c's keeper thread):
 *   hostlimit_try: a free slot now, HOST_SLOT_NONE with *must_wait false
 *     (no limit in force), or *must_wait true (queue up);
 *   hostlimit_enqueue: join the host-wide queue (logs host_wait);
 *   hostlimit_poll: the slot once it is this ticket's turn and one is
 *     free, HOST_SLOT_TIMEOUT while still waiting, HOST_SLOT_NONE when the
 *     limit stopped being enforceable; call it every few milliseconds:
 *     it also keeps the ticket's heartbeat;
 *   hostlimit_leave: leave the queue (always, slot or not). */
struct host_ticket {
    int target;
    int entry;       /* queue entry, -1 when the table was full */
    uint64_t ticket;
    unsigned round;
    double start;
};
int hostlimit_try(const struct target *t, bool *must_wait);
void hostlimit_enqueue(const struct target *t, struct host_ticket *tk,
                       bool async);
int hostlimit_poll(struct host_ticket *tk);
void hostlimit_leave(struct host_ticket *tk);

/* The error text of a connect that waited in vain for a slot of t: a full
 * limit, or (said in a host_limit_blocked line too) a lock on the file
 * that no slot holder took, with the pid of the process holding it. */
void hostlimit_timeout_message(char *buf, size_t size, const struct target *t);

/* The connection that held slot is gone (no-op for negative slots). */
void hostlimit_release(int slot);

/* Does anyone on the host wait for a slot of the target that slot
 * belongs to? Then an idle connection should close rather than wait. */
bool hostlimit_contended(int slot);

/* Who waits host-wide for the target of slot, as far as known. */
#define HOST_FREE 0   /* nobody */
#define HOST_OURS 1   /* only callers of this process */
#define HOST_OTHERS 2 /* another process too */
int hostlimit_contention(int slot);

/* How many callers wait for the target of slot (0 for no slot). */
int hostlimit_waiters(int slot);

/* The target (0..HOST_TARGETS_MAX-1) a slot belongs to. */
#define HOST_TARGETS_MAX 128
#define HOST_SLOT_TARGET(slot) ((slot) / HOST_LIMIT_MAX)

/* A capped pool now keeps an idle connection holding slot: start the
 * thread that calls close_contended() (which closes such connections)
 * when another process needs a slot, and wake it if somebody already
 * waits. */
void hostlimit_watch_idle(int slot, int (*close_contended)(void));

struct hostlimit_view {
    int limit;      /* as this process applies it */
    int held;       /* slots taken host-wide */
    int held_here;  /* by this process */
    int waiting;    /* callers queued host-wide */
    double longest_wait_s; /* the longest current wait among them */
};

/* The numbers for a target name (user@host:port/dbname); false when the
 * limit is off or the target has never taken a slot. */
bool hostlimit_view(const char *name, struct hostlimit_view *v);

/* The file in use (or that would be used). */
void hostlimit_path(char *buf, size_t size);

void hostlimit_lock_for_fork(void);
void hostlimit_unlock_after_fork(void);
void hostlimit_forget_after_fork(void);

#endif
