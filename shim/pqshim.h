/*
 * pqshim.h — internal interfaces shared by the files of the shim.
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   1. registry lock (conn.c)  — the table of connections the shim created
 *   2. gate lock     (gate.c)  — asynchronous connects waiting their turn
 *   3. pool lock     (pool.c)  — targets, idle lists, waiters
 *   4. slot lock     (hostlimit.c) — host-wide slots this process holds
 * Leaf locks, under which nothing else is taken: the copies lock (real.c)
 * and the rewrite lock (gotpatch.c, held across mprotect and slot stores).
 * No lock is ever held across a real libpq call, dlsym, a log write or
 * socket I/O: those can block for a network round trip or re-enter us.
 */
#ifndef PQSHIM_H
#define PQSHIM_H

#include <libpq-fe.h>
#include <libpq-events.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <sys/types.h>

/* uthash must never abort the host: on allocation failure it sets a flag and
 * the caller falls back to passing the connection through. */
extern __thread bool pqshim_oom __attribute__((tls_model("initial-exec")));
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (pqshim_oom = true)
#include <uthash.h>

#define PQSHIM_EXPORT __attribute__((visibility("default")))
#define PQSHIM_TLS __thread __attribute__((tls_model("initial-exec")))

/* ---- real.c: the libpq functions we call, bound lazily ---------------- */

struct real_libpq {
    PGconn *(*PQconnectdb)(const char *);
    PGconn *(*PQconnectdbParams)(const char *const *, const char *const *, int);
    PGconn *(*PQsetdbLogin)(const char *, const char *, const char *,
                            const char *, const char *, const char *,
                            const char *);
    PGconn *(*PQconnectStart)(const char *);
    PGconn *(*PQconnectStartParams)(const char *const *, const char *const *,
                                    int);
    PostgresPollingStatusType (*PQconnectPoll)(PGconn *);
    void (*PQfinish)(PGconn *);
    void (*PQreset)(PGconn *);
    int (*PQresetStart)(PGconn *);
    PostgresPollingStatusType (*PQresetPoll)(PGconn *);
    PGPing (*PQping)(const char *);
    PGPing (*PQpingParams)(const char *const *, const char *const *, int);
    int (*PQregisterEventProc)(PGconn *, PGEventProc, const char *, void *);
    char *(*PQerrorMessage)(const PGconn *);

    /* Not intercepted, only called. */
    ConnStatusType (*PQstatus)(const PGconn *);
    PGTransactionStatusType (*PQtransactionStatus)(const PGconn *);
    PGpipelineStatus (*PQpipelineStatus)(const PGconn *);
    int (*PQbackendPID)(const PGconn *);
    int (*PQsocket)(const PGconn *);
    int (*PQsslInUse)(PGconn *);
    int (*PQisBusy)(PGconn *);
    int (*PQconsumeInput)(PGconn *);
    char *(*PQuser)(const PGconn *);
    char *(*PQhost)(const PGconn *);
    char *(*PQport)(const PGconn *);
    char *(*PQdb)(const PGconn *);
    PQconninfoOption *(*PQconndefaults)(void);
    PQconninfoOption *(*PQconninfoParse)(const char *, char **);
    void (*PQconninfoFree)(PQconninfoOption *);
    void (*PQfreemem)(void *);
    PGresult *(*PQexec)(PGconn *, const char *);
    int (*PQsendQuery)(PGconn *, const char *);
    PGresult *(*PQgetResult)(PGconn *);
    ExecStatusType (*PQresultStatus)(const PGresult *);
    void (*PQclear)(PGresult *);
    int (*PQsetnonblocking)(PGconn *, int);
    PQnoticeProcessor (*PQsetNoticeProcessor)(PGconn *, PQnoticeProcessor,
                                              void *);
    PQnoticeReceiver (*PQsetNoticeReceiver)(PGconn *, PQnoticeReceiver,
                                            void *);
    void (*PQuntrace)(PGconn *);
    PGnotify *(*PQnotifies)(PGconn *);
    PGVerbosity (*PQsetErrorVerbosity)(PGconn *, PGVerbosity);
    PGContextVisibility (*PQsetErrorContextVisibility)(PGconn *,
                                                       PGContextVisibility);
    char *(*PQresultErrorField)(const PGresult *, int);
    PGcancel *(*PQgetCancel)(PGconn *);
    int (*PQcancel)(PGcancel *, char *, int);
    void (*PQfreeCancel)(PGcancel *);
    int (*PQexitPipelineMode)(PGconn *);
    void (*PQtrace)(PGconn *, FILE *);

    int copy;      /* which libpq copy: 0 is the one the global scope finds */
    bool complete; /* every function bound: the shim may act */
};

/* How many different libpq copies one process can have served. */
#define REAL_MAX_COPIES 8

/* The table of the libpq copy the current call belongs to (set by the
 * hook the program entered through, see real_use()), else of the copy the
 * global scope finds. NULL when no libpq could be found (pass-through is
 * then impossible; callers fail the call cleanly). Binds on first use.
 * A pointer is NULL when that symbol is missing from that libpq. */
const struct real_libpq *real_libpq(void);

/* Make pq (NULL: the default copy) current for this thread's calls to
 * real_libpq(); returns what was current before, to hand back later. */
const struct real_libpq *real_use(const struct real_libpq *pq);

/* What is current for this thread, NULL meaning the default copy. */
const struct real_libpq *real_current(void);

/* The table of copy `index` (REAL_MAX_COPIES > index >= 0), or NULL. */
const struct real_libpq *real_copy(int index);

/* The index of the libpq copy loaded at base (path: its file name), bound
 * and pinned (never unloaded) on first sight; -1 when it cannot be served
 * (no table left, nothing bound). */
int real_copy_index(const void *base, const char *path);

/* True when the current copy is completely bound: only then does the shim
 * act; otherwise each hook passes straight through. */
bool real_complete(void);

/* dlsym.c: remember a libpq found through a private dlopen handle, so the
 * binder can use it when the global scope does not contain libpq. */
void real_note_library(const char *path);

/* The real dlsym, found without going through our own wrapper. */
void *real_dlsym(void *handle, const char *name);
void *(*real_dlsym_fn(void))(void *, const char *);

/* The real dlopen, bypassing our wrapper. */
void *real_dlopen(const char *file, int mode);

/* Is this file name a libpq ("libpq.so.5", "libpq-<hash>.so.5.x")? */
bool real_is_libpq_name(const char *path);

/* hooks.c: our entry point for an intercepted name, or NULL. */
void *hooks_lookup(const char *name);

/* The entry point for name that serves libpq copy `copy` (0: the exported
 * one), or NULL when name is not intercepted. */
void *hooks_lookup_copy(const char *name, int copy);

/* Is addr one of our entry points, for any copy? */
bool hooks_is_ours(const void *addr);

/* ---- gotpatch.c: modules that bind libpq in their own scope ------------- */

/* When objects were loaded since the last look, point every module's
 * relocation slots for intercepted libpq names at the hooks serving the
 * libpq copy that module binds to. Cheap when nothing changed. */
void gotpatch_refresh(void);

/* Log what was rewritten since the last call (one module_rewired line
 * each). Called at a connect, never while loading: the configuration is
 * read on the first log line. */
void gotpatch_log_pending(void);

/* The libpq copy a module bound to another copy than 0 uses, when addr
 * (a return address) lies in it; else 0. For a connect that reached an
 * exported entry point before its module was rewritten. */
int gotpatch_copy_of_caller(const void *addr);

/* dlsym.c: file (as given to dlopen) was loaded with RTLD_DEEPBIND. */
void gotpatch_note_deepbind(const char *file);

/* Mark the calling thread (the shim's own: janitor, control) so that its
 * libpq calls are never taken for the program's. */
void hooks_enter_internal_thread(void);

/* ---- config.c ---------------------------------------------------------- */

enum pqshim_policy { POLICY_NULL, POLICY_CAPPED };
enum pqshim_reset { RESET_DISCARD, RESET_ROLLBACK, RESET_NONE };
enum pqshim_pre_ping { PRE_PING_OFF, PRE_PING_ON, PRE_PING_ALWAYS };
enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_dest { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_NONE, LOG_TO_FILE };
enum log_format { LOG_FMT_TEXT, LOG_FMT_JSON };

struct pqshim_config {
    enum pqshim_policy policy;
    enum log_dest log_dest;
    char log_path[4096];
    enum log_level log_level;
    enum log_format log_format;
    int pool_size;
    int max_overflow;
    double pool_timeout;  /* seconds */
    enum pqshim_reset reset;
    enum pqshim_pre_ping pre_ping;
    double pool_recycle;  /* seconds, 0 = never */
    double idle_timeout;  /* seconds, 0 = never */
    char control_path[4096]; /* pattern; empty = no control socket */
    bool retry_full;         /* retry while the server is full */
    int host_limit;          /* per target across processes; 0 = off */
    char host_limit_file[4096]; /* empty: the per-uid default */
    bool host_limit_shared;  /* the file's owner and group are trusted */
};

/* The configuration, read from the environment once (thread-safe). */
const struct pqshim_config *config_get(void);

/* Parse the environment into *cfg, reporting each problem through report().
 * Pure: used by config_get() and by the unit tests. */
void config_parse(char **envp, struct pqshim_config *cfg,
                  void (*report)(enum log_level, const char *variable,
                                 const char *value, const char *accepted));

const char *config_policy_name(enum pqshim_policy p);

/* Log what config_get() found wrong, once per process (init.c calls it). */
void config_report_problems(void);

/* The effective value of a variable as text (for logs and status). */
void config_value_string(const struct pqshim_config *c, const char *variable,
                         char *buf, size_t size);

/* ---- log.c ------------------------------------------------------------- */

enum log_field_type { LF_END, LF_STR, LF_INT, LF_MS };

struct log_field {
    const char *key;
    enum log_field_type type;
    const char *s;
    long long i;
    double d;
};

#define LF_S(k, v) ((struct log_field){.key = (k), .type = LF_STR, .s = (v)})
#define LF_I(k, v) ((struct log_field){.key = (k), .type = LF_INT, .i = (v)})
#define LF_D(k, v) ((struct log_field){.key = (k), .type = LF_MS, .d = (v)})
#define LF_END_ ((struct log_field){.key = NULL, .type = LF_END})

/* Emit one line (one write()) if level passes PQSHIM_LOG_LEVEL. */
void log_event(enum log_level level, const char *event,
               const struct log_field *fields);
#define LOG_EVENT(level, event, ...) \
    log_event((level), (event), (const struct log_field[]){__VA_ARGS__, LF_END_})

/* Format one line into buf (always NUL-terminated, newline-ended).
 * Pure: used by log_event() and the unit tests. Returns the length. */
size_t log_format_line(char *buf, size_t size, enum log_format format,
                       pid_t pid, double unix_time, enum log_level level,
                       const char *event, const struct log_field *fields);

/* log_event() with an explicit configuration (used while it is loaded). */
void log_emit(const struct pqshim_config *cfg, enum log_level level,
              const char *event, const struct log_field *fields);

/* ---- target.c: what makes two connects interchangeable ---------------- */

#define TARGET_KEY_MAX 2048
#define TARGET_NAME_MAX 512

struct target {
    char key[TARGET_KEY_MAX];   /* canonical; password only as a hash */
    char name[TARGET_NAME_MAX]; /* user@host:port/dbname, for people */
    bool poolable;              /* false for replication connections */
    /* "kw\0value\0...\0": how to open one more (health checks). Holds
     * the password: kept in memory, never shown. */
    char params[TARGET_KEY_MAX];
};

/* Build a target from keyword/value arrays as PQconnectdbParams takes them.
 * defaults: PQconndefaults() output (environment and built-in defaults).
 * Returns false (and leaves *t undefined) when the arguments do not parse;
 * the caller then passes the call through so libpq reports the error. */
bool target_from_params(struct target *t, const PQconninfoOption *defaults,
                        const char *const *keywords, const char *const *values,
                        int expand_dbname, const struct real_libpq *pq);

/* A 64-bit FNV-1a hash (password in keys, host-wide slot regions). */
uint64_t target_hash(const char *s);
uint64_t target_hash_alt(const char *s);

/* The display name of a live connection: user@host:port/dbname. */
void target_name_of(char *buf, size_t size, const char *user,
                    const char *host, const char *port, const char *db);

/* ---- conn.c: connections the shim created ------------------------------ */

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
    struct retry_state retry;
    bool server_ended;       /* the server said FATAL while we held it */
    char said[256];          /* what it said (for the close line) */
    struct cancel_lease *lease; /* PQgetCancel objects of this checkout */
    int backend_pid;
    double started;          /* when the connect began (monotonic) */
    double opened;           /* when it became usable */
    double idle_since;
    double checked_out_at;   /* when the program got it (registry_add) */
    unsigned generation;     /* the pool's generation when it was opened */
    char name[TARGET_NAME_MAX];
    char *message;           /* CONN_SYNTHETIC: the error text */
    const char *close_reason;/* set when the janitor or exit takes it */
    PQnoticeProcessor default_processor;
    PQnoticeReceiver default_receiver;
    const struct real_libpq *pq; /* the libpq copy that opened it */
    struct shim_conn *next;  /* idle list link */
    UT_hash_handle hh;
};

extern pid_t pqshim_pid;     /* getpid(), refreshed in a forked child */

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

/* Make a checked-in connection safe for the next user. False: close it;
 * *why says why (a static string). */
bool conn_reset(struct shim_conn *sc, const char **why);

/* Read the answer of a reset sent at checkin. False: the reset failed
 * or the connection broke; close it. */
bool conn_reset_finish(struct shim_conn *sc);

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

/* ---- cancel.c: cancel objects that die with their checkout ------------- */

/* The program's checkout of sc ended (PQfinish, or closed): cancel
 * objects taken during it no longer reach the server. */
void cancel_checkout_ended(struct shim_conn *sc);

/* PQgetCancel for a pooled connection: a cancel object bound to the
 * current checkout, or the real one when the shim does not pool it. */
PGcancel *cancel_get(PGconn *pg);
int cancel_send(PGcancel *c, char *errbuf, int errbufsize);
void cancel_free(PGcancel *c);

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

/* ---- settle.c: finishing an async checkout inside the program's poll --- */

enum settle_result { SETTLE_OK, SETTLE_PENDING, SETTLE_DEAD };

/* Begin (settle_begin) or go on with (settle_poll) making a reused
 * connection ready without waiting: read the reset's answer if it has
 * arrived, then check liveness (zero round trips where sound, else an
 * empty query whose answer a later call reads). */
enum settle_result settle_begin(struct shim_conn *sc);
enum settle_result settle_poll(struct shim_conn *sc);

/* ---- init.c: activation, fork and exit ---------------------------------- */

/* First intercepted call: read the configuration, bind libpq, install the
 * fork handlers. True when the shim may act (otherwise pass through). */
bool shim_active(void);

/* A capped pool holds connections: close idle ones politely at exit. */
void init_pool_in_use(bool ssl);

/* ---- thread.c ----------------------------------------------------------- */

/* Start one of the shim's own threads, detached, with every signal blocked.
 * False when it cannot be started. */
bool start_internal_thread(void *(*main_fn)(void *));

/* pthread_cancel of a program thread inside the shim must never leave a
 * lock held, a slot taken or a connection checked out: the program's
 * calls run with cancellation off (its state is returned and kept), and
 * only the real connect turns it back to the program's, under a cleanup
 * handler. */
int thread_cancel_off(void);
void thread_cancel_restore(int state);
/* Back to the state the program had; returns the current one. */
int thread_cancel_as_program(void);

/* ---- util ----------------------------------------------------------------*/
double now_monotonic(void);  /* seconds */
double now_realtime(void);   /* seconds since the epoch */

#endif
