/*
 * hooks.c — the libpq entry points: the exported ones, and one set per
 * further libpq copy in the process (see the end). Each is thin: nested calls
 * (libpq calls its own exported functions: PQconnectdb -> PQconnectStart ->
 * PQconnectPoll, PQping -> PQconnectStart + PQfinish) and calls made while
 * the shim is inactive go straight to libpq; only the program's own call,
 * at depth 0 (hook_depth, thread.c), reaches the lifecycle code.
 */
#define _GNU_SOURCE
#include "hooks.h"
#include "cancel.h"
#include "init.h"
#include "lifecycle.h"
#include "log.h"
#include "thread.h"
#include "view.h"

#include <string.h>

/* The real function, or a safe failure value when libpq lacks it. */
#define REAL(fn) (real_libpq() ? real_libpq()->fn : NULL)
#define REAL_FN(fn) __typeof__(((struct real_libpq *)0)->fn)

static PGconn *hook_connect(const struct connect_request *req)
{
    if (hook_depth == 0) {
        gotpatch_refresh(&hooks_entry_points); /* a module loaded behind our back */
        gotpatch_log_pending();
    }
    if (!real_libpq())
        return NULL;
    if (hook_depth > 0 || !shim_active())
        return request_open_real(req);
    hook_depth++;
    int cs = thread_cancel_off();
    PGconn *pg = lifecycle_connect(req);
    thread_cancel_restore(cs);
    hook_depth--;
    return pg;
}

static PGconn *hook_PQconnectdb(const char *conninfo)
{
    struct connect_request req = {.kind = REQ_CONNINFO, .conninfo = conninfo};
    return hook_connect(&req);
}

static PGconn *hook_PQconnectStart(const char *conninfo)
{
    struct connect_request req = {.kind = REQ_CONNINFO, .async = true,
                                  .conninfo = conninfo};
    return hook_connect(&req);
}

static PGconn *hook_PQconnectdbParams(const char *const *keywords,
                                        const char *const *values,
                                        int expand_dbname)
{
    struct connect_request req = {.kind = REQ_PARAMS, .keywords = keywords,
                                  .values = values,
                                  .expand_dbname = expand_dbname};
    return hook_connect(&req);
}

static PGconn *hook_PQconnectStartParams(const char *const *keywords,
                                           const char *const *values,
                                           int expand_dbname)
{
    struct connect_request req = {.kind = REQ_PARAMS, .async = true,
                                  .keywords = keywords, .values = values,
                                  .expand_dbname = expand_dbname};
    return hook_connect(&req);
}

static PGconn *hook_PQsetdbLogin(const char *pghost, const char *pgport,
                                   const char *pgoptions, const char *pgtty,
                                   const char *dbName, const char *login,
                                   const char *pwd)
{
    struct connect_request req = {
        .kind = REQ_SETDB,
        .setdb = {pghost, pgport, pgoptions, pgtty, dbName, login, pwd}};
    return hook_connect(&req);
}

static PostgresPollingStatusType hook_PQconnectPoll(PGconn *conn)
{
    REAL_FN(PQconnectPoll) real = REAL(PQconnectPoll);
    if (!real)
        return PGRES_POLLING_FAILED;
    if (hook_depth > 0 || !conn || !shim_active())
        return real(conn);
    hook_depth++;
    int cs = thread_cancel_off();
    PostgresPollingStatusType r = lifecycle_connect_poll(conn);
    thread_cancel_restore(cs);
    hook_depth--;
    return r;
}

static void hook_PQfinish(PGconn *conn)
{
    REAL_FN(PQfinish) real = REAL(PQfinish);
    if (!real)
        return;
    if (hook_depth > 0 || !conn || !shim_active()) {
        real(conn);
        return;
    }
    hook_depth++;
    int cs = thread_cancel_off();
    lifecycle_finish(conn);
    thread_cancel_restore(cs);
    hook_depth--;
}

static void hook_PQreset(PGconn *conn)
{
    REAL_FN(PQreset) real = REAL(PQreset);
    if (!real)
        return;
    if (hook_depth > 0 || !conn || !shim_active()) {
        real(conn);
        return;
    }
    hook_depth++;
    lifecycle_reset(conn);
    hook_depth--;
}

static int hook_PQresetStart(PGconn *conn)
{
    REAL_FN(PQresetStart) real = REAL(PQresetStart);
    if (!real)
        return 0;
    if (hook_depth > 0 || !conn || !shim_active())
        return real(conn);
    hook_depth++;
    int cs = thread_cancel_off();
    int r = lifecycle_reset_start(conn);
    thread_cancel_restore(cs);
    hook_depth--;
    return r;
}

static PostgresPollingStatusType hook_PQresetPoll(PGconn *conn)
{
    REAL_FN(PQresetPoll) real = REAL(PQresetPoll);
    if (!real)
        return PGRES_POLLING_FAILED;
    if (hook_depth > 0 || !conn || !shim_active())
        return real(conn);
    hook_depth++;
    int cs = thread_cancel_off();
    PostgresPollingStatusType r = lifecycle_reset_poll(conn);
    thread_cancel_restore(cs);
    hook_depth--;
    return r;
}

/* A ping opens and finishes a connection inside libpq: it is neither
 * counted nor pooled, only (at debug level) logged. */
static PGPing hook_PQping(const char *conninfo)
{
    REAL_FN(PQping) real = REAL(PQping);
    if (!real)
        return PQPING_NO_ATTEMPT;
    hook_depth++;
    PGPing r = real(conninfo);
    hook_depth--;
    if (hook_depth == 0 && shim_active())
        LOG_EVENT(LOG_LVL_DEBUG, "ping", LF_I("result", r));
    return r;
}

static PGPing hook_PQpingParams(const char *const *keywords,
                                  const char *const *values, int expand_dbname)
{
    REAL_FN(PQpingParams) real = REAL(PQpingParams);
    if (!real)
        return PQPING_NO_ATTEMPT;
    hook_depth++;
    PGPing r = real(keywords, values, expand_dbname);
    hook_depth--;
    if (hook_depth == 0 && shim_active())
        LOG_EVENT(LOG_LVL_DEBUG, "ping", LF_I("result", r));
    return r;
}

/* Event procs keep per-connection data that expects PGEVT_CONNDESTROY at
 * PQfinish: such a connection is closed, never pooled. */
static int hook_PQregisterEventProc(PGconn *conn, PGEventProc proc,
                                      const char *name, void *passThrough)
{
    REAL_FN(PQregisterEventProc) real = REAL(PQregisterEventProc);
    if (!real)
        return 0;
    if (hook_depth == 0 && conn && shim_active()) {
        struct shim_conn *sc = registry_find(conn);
        if (sc)
            sc->unsafe = true;
    }
    return real(conn, proc, name, passThrough);
}

/* Our own failed connections (pool timeout, self-deadlock) carry our text. */
static char *hook_PQerrorMessage(const PGconn *conn)
{
    REAL_FN(PQerrorMessage) real = REAL(PQerrorMessage);
    const char *ours = hook_depth == 0 && conn ? lifecycle_error_message(conn) : NULL;
    if (ours)
        return (char *)ours;
    return real ? real(conn) : (char *)"pqshim: libpq not found\n";
}

/* Cancel objects of pooled connections stop working when the checkout
 * ends (cancel.c). PQcancel may run in a signal handler: its hook never
 * activates anything. */
static PGcancel *hook_PQgetCancel(PGconn *conn)
{
    REAL_FN(PQgetCancel) real = REAL(PQgetCancel);
    if (!real)
        return NULL;
    if (hook_depth > 0 || !conn || !shim_active())
        return real(conn);
    hook_depth++;
    PGcancel *c = cancel_get(conn);
    hook_depth--;
    return c;
}

static int hook_PQcancel(PGcancel *cancel, char *errbuf, int errbufsize)
{
    return cancel_send(cancel, errbuf, errbufsize);
}

static void hook_PQfreeCancel(PGcancel *cancel)
{
    cancel_free(cancel);
}

/* A cancel through the PGconn itself may land after the checkin: the
 * checkout is marked first, and its checkin then closes the session. */
static int hook_PQrequestCancel(PGconn *conn)
{
    REAL_FN(PQrequestCancel) real = REAL(PQrequestCancel);
    if (!real)
        return 0;
    if (hook_depth == 0 && conn && shim_active())
        cancel_request_note(conn);
    return real(conn);
}

/* libpq 17's cancel connection outlives the checkout and may be reset and
 * used again: the checkout it was made in is closed at checkin. Absent
 * from older libpq copies (then there is nothing to create). */
static PGcancelConn *hook_PQcancelCreate(PGconn *conn)
{
    REAL_FN(PQcancelCreate) real = REAL(PQcancelCreate);
    if (!real)
        return NULL;
    if (hook_depth == 0 && conn && shim_active())
        cancel_request_note(conn);
    return real(conn);
}

/* Leaving pipeline mode after an error without a Sync is allowed, and the
 * server then ignores everything until a Sync: such a connection can never
 * be reset, only closed. */
static int hook_PQexitPipelineMode(PGconn *conn)
{
    REAL_FN(PQexitPipelineMode) real = REAL(PQexitPipelineMode);
    if (!real)
        return 0;
    if (hook_depth > 0 || !conn || !shim_active())
        return real(conn);
    bool aborted = real_PQpipelineStatus(conn) == PQ_PIPELINE_ABORTED;
    int r = real(conn);
    if (r && aborted) {
        struct shim_conn *sc = registry_find(conn);
        if (sc)
            sc->unsafe = true;
    }
    return r;
}

/* A traced connection is closed, not pooled: its trace then ends with the
 * session's Terminate, as a fresh connection's would. */
static void hook_PQtrace(PGconn *conn, FILE *debug_port)
{
    REAL_FN(PQtrace) real = REAL(PQtrace);
    if (!real)
        return;
    if (hook_depth == 0 && conn && shim_active()) {
        struct shim_conn *sc = registry_find(conn);
        if (sc)
            sc->unsafe = true;
    }
    real(conn, debug_port);
}

/* The program's notice hooks on a connection the shim still holds (made
 * ready in the program's poll loop) are kept until it is handed over. */
static PQnoticeProcessor hook_PQsetNoticeProcessor(PGconn *conn,
                                                   PQnoticeProcessor proc,
                                                   void *arg)
{
    REAL_FN(PQsetNoticeProcessor) real = REAL(PQsetNoticeProcessor);
    if (!real)
        return NULL;
    struct shim_conn *sc = hook_depth == 0 && conn && shim_active()
                               ? registry_find(conn) : NULL;
    return sc ? notice_set_processor(&sc->notice, conn, proc, arg)
              : real(conn, proc, arg);
}

static PQnoticeReceiver hook_PQsetNoticeReceiver(PGconn *conn,
                                                 PQnoticeReceiver proc,
                                                 void *arg)
{
    REAL_FN(PQsetNoticeReceiver) real = REAL(PQsetNoticeReceiver);
    if (!real)
        return NULL;
    struct shim_conn *sc = hook_depth == 0 && conn && shim_active()
                               ? registry_find(conn) : NULL;
    return sc ? notice_set_receiver(&sc->notice, conn, proc, arg)
              : real(conn, proc, arg);
}

/* A connection opened behind a gate lists the gate first in its host,
 * hostaddr and port (view.h): the program reads its own lists. */
static const struct view *gated_view(const PGconn *conn)
{
    if (hook_depth > 0 || !conn || !view_any() || !shim_active())
        return NULL;
    struct shim_conn *sc = registry_find(conn);
    return sc ? sc->view : NULL;
}

static char *hook_PQhost(const PGconn *conn)
{
    REAL_FN(PQhost) real = REAL(PQhost);
    if (!real)
        return NULL;
    char *host = real(conn);
    const struct view *v = gated_view(conn);
    return v ? (char *)view_host(v, host) : host;
}

static char *hook_PQport(const PGconn *conn)
{
    REAL_FN(PQport) real = REAL(PQport);
    if (!real)
        return NULL;
    char *port = real(conn);
    const struct view *v = gated_view(conn);
    return v ? (char *)view_port(v, real_PQhost(conn), port) : port;
}

static PQconninfoOption *hook_PQconninfo(PGconn *conn)
{
    REAL_FN(PQconninfo) real = REAL(PQconninfo);
    if (!real)
        return NULL;
    PQconninfoOption *opts = real(conn);
    const struct view *v = gated_view(conn);
    if (v)
        view_conninfo(v, opts);
    return opts;
}

/*
 * The entry points, one per hooked row of libpq_functions.h. Each libpq
 * copy in the process has its own set, so a call knows which copy it
 * belongs to without a lookup: the exported names serve copy 0 (the libpq
 * the global scope finds) and keep the copy of an outer call (libpq
 * calling its own exported functions); gotpatch.c and the dlsym wrapper
 * hand a module the set of the copy it binds to.
 */

/* The copy a call belongs to: a copy's own entry names it; an exported
 * one means copy 0 for the program's call and "unchanged" inside ours. */
static inline const struct real_libpq *enter_copy(int copy)
{
    if (copy > 0)
        return real_use(real_copy(copy));
    return hook_depth > 0 ? real_current() : real_use(NULL);
}

/* An exported connect entry point: look at what was loaded first; a module
 * of another copy that calls it was not rewritten yet (linked at start, or
 * loaded behind our back) and its connect belongs to its own copy. */
static inline const struct real_libpq *enter_connect(const void *caller)
{
    if (hook_depth > 0)
        return real_current();
    gotpatch_refresh(&hooks_entry_points);
    int copy = gotpatch_copy_of_caller(caller);
    return real_use(copy > 0 ? real_copy(copy) : NULL);
}

/* Exported: connects look at their caller, everything else is copy 0. */
#define ENTER_EXPORTED(name)                                                 \
    ((strncmp(#name, "PQconnect", 9) == 0 && strcmp(#name, "PQconnectPoll") != 0) || \
             strcmp(#name, "PQsetdbLogin") == 0                              \
         ? enter_connect(__builtin_return_address(0))                        \
         : enter_copy(0))
#define EXPORTED_R(c, ret, name, params, args)                               \
    PQSHIM_EXPORT ret name params                                            \
    {                                                                        \
        const struct real_libpq *prev = ENTER_EXPORTED(name);                \
        ret r = hook_##name args;                                            \
        real_use(prev);                                                      \
        return r;                                                            \
    }
#define EXPORTED_V(c, ret, name, params, args)                               \
    PQSHIM_EXPORT ret name params                                            \
    {                                                                        \
        const struct real_libpq *prev = enter_copy(0);                       \
        hook_##name args;                                                    \
        real_use(prev);                                                      \
    }
#define COPY_R(c, ret, name, params, args)                                   \
    static ret name##_copy##c params                                         \
    {                                                                        \
        const struct real_libpq *prev = enter_copy(c);                       \
        ret r = hook_##name args;                                            \
        real_use(prev);                                                      \
        return r;                                                            \
    }
#define COPY_V(c, ret, name, params, args)                                   \
    static ret name##_copy##c params                                         \
    {                                                                        \
        const struct real_libpq *prev = enter_copy(c);                       \
        hook_##name args;                                                    \
        real_use(prev);                                                      \
    }

/* The hooked rows of libpq_functions.h, by kind (R returns, V is void). */
#define EXPORTED(c, kind, ret, name, params, args) EXPORTED_##kind(c, ret, name, params, args)
#define COPY(c, kind, ret, name, params, args) COPY_##kind(c, ret, name, params, args)

LIBPQ_HOOKED(EXPORTED, 0)

/* Copies 1 .. REAL_MAX_COPIES - 1. */
#define EACH_COPY(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
_Static_assert(REAL_MAX_COPIES == 8, "EACH_COPY lists copies 1 to 7");
#define COPY_ENTRIES(c) LIBPQ_HOOKED(COPY, c)
EACH_COPY(COPY_ENTRIES)

#define NAME(c, kind, ret, name, params, args) #name,
#define EXPORTED_FN(c, kind, ret, name, params, args) (void *)name,
#define COPY_FN(c, kind, ret, name, params, args) (void *)name##_copy##c,
#define COPY_ROW(c) {LIBPQ_HOOKED(COPY_FN, c)},

static const char *const hook_names[] = {LIBPQ_HOOKED(NAME, 0)};
#define NHOOKS (sizeof hook_names / sizeof hook_names[0])
static void *const hook_fns[REAL_MAX_COPIES][NHOOKS] = {
    {LIBPQ_HOOKED(EXPORTED_FN, 0)},
    EACH_COPY(COPY_ROW)
};

static int hook_index(const char *name)
{
    if (name[0] != 'P' || name[1] != 'Q')
        return -1;
    for (size_t i = 0; i < NHOOKS; i++)
        if (strcmp(hook_names[i], name) == 0)
            return (int)i;
    return -1;
}

void *hooks_lookup(const char *name)
{
    return hooks_lookup_copy(name, 0);
}

void *hooks_lookup_copy(const char *name, int copy)
{
    int i = hook_index(name);
    if (i < 0 || copy < 0 || copy >= REAL_MAX_COPIES)
        return NULL;
    return hook_fns[copy][i];
}

bool hooks_is_ours(const void *addr)
{
    for (int c = 0; c < REAL_MAX_COPIES; c++)
        for (size_t i = 0; i < NHOOKS; i++)
            if (hook_fns[c][i] == addr)
                return true;
    return false;
}

const struct entry_points hooks_entry_points = {
    hooks_lookup, hooks_lookup_copy, hooks_is_ours,
};
