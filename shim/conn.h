/*
 * conn.h — connections the shim created (conn.c): their record, the
 * registry of those the program holds, cleanup for reuse, liveness, the
 * shim's own error connections. Their life (state, counters, slots) is
 * pool.c's: pool_move().
 */
#ifndef PQSHIM_CONN_H
#define PQSHIM_CONN_H

#include "config.h"
#include "notice.h"
#include "real.h"
#include "target.h"

enum conn_state {
    CONN_CONNECTING, /* PQconnectStart* returned it; poll not finished */
    CONN_OPEN,       /* the program holds it */
    CONN_RESETTING,  /* PQresetStart returned; PQresetPoll not finished */
    CONN_IDLE,       /* in a pool's idle list (not in the registry) */
    CONN_SYNTHETIC,  /* a failed connection carrying the shim's own error */
    CONN_SETTLING,   /* reused by an async connect: the reset's answer or
                        the liveness ping is read in the program's poll */
    CONN_RECONNECTING, /* found dead while settling: PQresetStart on the
                        program's PGconn, polled through PQconnectPoll */
    CONN_CLOSING,    /* taken out of an idle list to be closed */
    /* Where a connection's life ends (pool_move() frees it): */
    CONN_CLOSED,     /* closed for real, with a close line */
    CONN_FORGOTTEN,  /* no longer ours: the PGconn stays where it is */
    CONN_FAILED,     /* its connect failed: the program keeps the PGconn */
};

struct pool;
struct gate;

/* Back-off state of retries while the server is full (retry.c). */
struct retry_state {
    int attempt;
    double backoff;
    unsigned seed;
};

/* host_slot when no host-wide limit is in force for the connection. */
#define HOST_SLOT_NONE (-1)

struct shim_conn {
    PGconn *pg;              /* registry key */
    uint64_t id;             /* conn= in logs */
    enum conn_state state;
    struct pool *pool;       /* NULL under the null policy */
    pid_t pid;               /* process that opened it (fork safety) */
    pthread_t owner;         /* thread that checked it out */
    int fd;                  /* cached: the fork handler may only close() */
    bool local;              /* Unix or loopback socket: zero-RTT check ok */
    bool unsafe;             /* event procs registered: never reuse */
    bool reused;
    bool ssl;
    int host_slot;           /* host-wide slot (hostlimit.h), or negative */
    int host_handoffs;       /* kept in-process while others waited */
    bool reset_pending;      /* reset query sent, answer not read yet */
    bool ping_pending;       /* CONN_SETTLING: liveness ping sent */
    bool pinged;             /* CONN_SETTLING: liveness decided */
    struct gate *gate;       /* an async connect started behind a gate */
    struct view *view;       /* opened behind a gate: what the program
                                reads of it (view.h; one block) */
    struct retry_state retry;
    bool server_ended;       /* the server said FATAL while we held it */
    char said[256];          /* what it said (for the close line) */
    struct cancel_lease *lease; /* PQgetCancel objects of this checkout */
    bool cancel_unguarded;   /* a cancel object without a lease was given */
    int backend_pid;
    double started;          /* when the connect began (monotonic) */
    double opened;           /* when it became usable */
    double idle_since;
    double checked_out_at;   /* when the program got it (registry_add) */
    unsigned generation;     /* the pool's generation when it was opened */
    char name[TARGET_NAME_MAX];
    char *message;           /* CONN_SYNTHETIC: the error text */
    const char *close_reason;/* set when the janitor or exit takes it */
    struct notice_hooks notice; /* the program's, or the shim's while held */
    const struct real_libpq *pq; /* the libpq copy that opened it */
    struct shim_conn *next;  /* idle list link */
    UT_hash_handle hh;
};


struct shim_conn *conn_new(PGconn *pg, enum conn_state state, const char *name);
/* Free sc; what it held (pool room, host slot) must be given back first:
 * pool_move() does both. */
void conn_free(struct shim_conn *sc);

/* Registry of connections the program holds. Add fails (false) on OOM:
 * the caller then treats the connection as not ours. */
bool registry_add(struct shim_conn *sc);
struct shim_conn *registry_find(const PGconn *pg);  /* NULL: not ours */
struct shim_conn *registry_take(const PGconn *pg);  /* find + remove */

/* Record what a freshly established connection looks like. */
void conn_established(struct shim_conn *sc);

/* After PQreset: the same PGconn talks to a new backend. */
void conn_refresh(struct shim_conn *sc);

/* Make a checked-in connection safe for the next user (PQSHIM_RESET's
 * query is sent, its answer read later). False: close it; *why says why
 * (a static string). Not PQreset, which is lifecycle_reset(). */
bool conn_clean_for_reuse(struct shim_conn *sc, const char **why);

/* What every reset mode but DISCARD ALL (which does it too) sends at
 * checkin: back to the authenticated role. RESET SESSION AUTHORIZATION
 * resets the role as well; RESET ROLE then also restores a role default
 * set with ALTER ROLE ... SET role, as a fresh connection would have it. */
#define CONN_RESET_IDENTITY "RESET SESSION AUTHORIZATION; RESET ROLE"

/* Read the answer of the cleanup sent at checkin. False: it failed or
 * the connection broke; close it. */
bool conn_clean_finish(struct shim_conn *sc);

/* Is an idle connection still usable? Cheap when the socket says so.
 * Finishes a pending reset first and reads what the server sent while it
 * sat idle; answered: it has just answered a round trip (no ping). */
bool conn_alive(struct shim_conn *sc, bool answered);

/* Nothing to read on fd right now (poll with a zero timeout). */
bool conn_socket_quiet(int fd);

/* Hand a checked-out connection to the program: its own notice hooks
 * back, nothing the shim read left behind (a fresh connection's state). */
void conn_give_to_program(struct shim_conn *sc);

/* How long one round trip the shim makes on the program's behalf (reset,
 * rollback, ping) may take before the connection is closed instead. */
#define CONN_ROUND_TRIP_S 2.0

/* Close the session for real, with a `close` line (and server_said= when
 * the server ended the session while the shim held it); sc stays
 * allocated (pool_move() frees it). */
void conn_close(struct shim_conn *sc, const char *reason);
/* The `close` line alone (a connection that reconnects in place). */
void conn_log_close(const struct shim_conn *sc, const char *reason);

/* A CONNECTION_BAD PGconn whose PQerrorMessage is `message`. */
PGconn *conn_synthetic_error(const char *message);
/* Keep sc (failed, moved to CONN_SYNTHETIC) as the carrier of message
 * (malloc'd, taken), shown by PQerrorMessage until the program finishes
 * the PGconn. */
void conn_hold_error(struct shim_conn *sc, char *message);
/* Our text for a synthetic connection, or NULL. */
const char *conn_synthetic_message(const PGconn *pg);

/* Close the descriptors of a parent's connections in a forked child and
 * forget them, without a word to the server (async-signal-safe). */
void registry_forget_after_fork(void);

/* Call fn for every connection the program holds, under the registry lock
 * (fn may take the pool lock: that is the documented order). */
void registry_for_each(void (*fn)(const struct shim_conn *, void *), void *arg);
void registry_lock_for_fork(void);
void registry_unlock_after_fork(void);

#endif
