/*
 * hooks.c — the exported libpq entry points. Each is thin: nested calls
 * (libpq calls its own exported functions: PQconnectdb -> PQconnectStart ->
 * PQconnectPoll, PQping -> PQconnectStart + PQfinish) and calls made while
 * the shim is inactive go straight to libpq; only the program's own call,
 * at depth 0, reaches the lifecycle code.
 */
#define _GNU_SOURCE
#include "lifecycle.h"

#include <string.h>

static PQSHIM_TLS int depth;

void hooks_enter_internal_thread(void)
{
    depth = 1; /* everything this thread calls is the shim's own doing */
}

/* The real function, or a safe failure value when libpq lacks it. */
#define REAL(fn) (real_libpq() ? real_libpq()->fn : NULL)

static PGconn *hook_connect(const struct connect_request *req)
{
    if (!real_libpq())
        return NULL;
    if (depth > 0 || !shim_active())
        return lifecycle_open_real(req);
    depth++;
    int cs = thread_cancel_off();
    PGconn *pg = lifecycle_connect(req);
    thread_cancel_restore(cs);
    depth--;
    return pg;
}

PQSHIM_EXPORT PGconn *PQconnectdb(const char *conninfo)
{
    struct connect_request req = {.kind = REQ_CONNINFO, .conninfo = conninfo};
    return hook_connect(&req);
}

PQSHIM_EXPORT PGconn *PQconnectStart(const char *conninfo)
{
    struct connect_request req = {.kind = REQ_CONNINFO, .async = true,
                                  .conninfo = conninfo};
    return hook_connect(&req);
}

PQSHIM_EXPORT PGconn *PQconnectdbParams(const char *const *keywords,
                                        const char *const *values,
                                        int expand_dbname)
{
    struct connect_request req = {.kind = REQ_PARAMS, .keywords = keywords,
                                  .values = values,
                                  .expand_dbname = expand_dbname};
    return hook_connect(&req);
}

PQSHIM_EXPORT PGconn *PQconnectStartParams(const char *const *keywords,
                                           const char *const *values,
                                           int expand_dbname)
{
    struct connect_request req = {.kind = REQ_PARAMS, .async = true,
                                  .keywords = keywords, .values = values,
                                  .expand_dbname = expand_dbname};
    return hook_connect(&req);
}

PQSHIM_EXPORT PGconn *PQsetdbLogin(const char *pghost, const char *pgport,
                                   const char *pgoptions, const char *pgtty,
                                   const char *dbName, const char *login,
                                   const char *pwd)
{
    struct connect_request req = {
        .kind = REQ_SETDB,
        .setdb = {pghost, pgport, pgoptions, pgtty, dbName, login, pwd}};
    return hook_connect(&req);
}

PQSHIM_EXPORT PostgresPollingStatusType PQconnectPoll(PGconn *conn)
{
    PostgresPollingStatusType (*real)(PGconn *) = REAL(PQconnectPoll);
    if (!real)
        return PGRES_POLLING_FAILED;
    if (depth > 0 || !conn || !shim_active())
        return real(conn);
    depth++;
    int cs = thread_cancel_off();
    PostgresPollingStatusType r = lifecycle_connect_poll(conn);
    thread_cancel_restore(cs);
    depth--;
    return r;
}

PQSHIM_EXPORT void PQfinish(PGconn *conn)
{
    void (*real)(PGconn *) = REAL(PQfinish);
    if (!real)
        return;
    if (depth > 0 || !conn || !shim_active()) {
        real(conn);
        return;
    }
    depth++;
    int cs = thread_cancel_off();
    lifecycle_finish(conn);
    thread_cancel_restore(cs);
    depth--;
}

PQSHIM_EXPORT void PQreset(PGconn *conn)
{
    void (*real)(PGconn *) = REAL(PQreset);
    if (!real)
        return;
    if (depth > 0 || !conn || !shim_active()) {
        real(conn);
        return;
    }
    depth++;
    lifecycle_reset(conn);
    depth--;
}

PQSHIM_EXPORT int PQresetStart(PGconn *conn)
{
    int (*real)(PGconn *) = REAL(PQresetStart);
    if (!real)
        return 0;
    if (depth > 0 || !conn || !shim_active())
        return real(conn);
    depth++;
    int cs = thread_cancel_off();
    int r = lifecycle_reset_start(conn);
    thread_cancel_restore(cs);
    depth--;
    return r;
}

PQSHIM_EXPORT PostgresPollingStatusType PQresetPoll(PGconn *conn)
{
    PostgresPollingStatusType (*real)(PGconn *) = REAL(PQresetPoll);
    if (!real)
        return PGRES_POLLING_FAILED;
    if (depth > 0 || !conn || !shim_active())
        return real(conn);
    depth++;
    int cs = thread_cancel_off();
    PostgresPollingStatusType r = lifecycle_reset_poll(conn);
    thread_cancel_restore(cs);
    depth--;
    return r;
}

/* A ping opens and finishes a connection inside libpq: it is neither
 * counted nor pooled, only (at debug level) logged. */
PQSHIM_EXPORT PGPing PQping(const char *conninfo)
{
    PGPing (*real)(const char *) = REAL(PQping);
    if (!real)
        return PQPING_NO_ATTEMPT;
    depth++;
    PGPing r = real(conninfo);
    depth--;
    if (depth == 0 && shim_active())
        LOG_EVENT(LOG_LVL_DEBUG, "ping", LF_I("result", r));
    return r;
}

PQSHIM_EXPORT PGPing PQpingParams(const char *const *keywords,
                                  const char *const *values, int expand_dbname)
{
    PGPing (*real)(const char *const *, const char *const *, int) =
        REAL(PQpingParams);
    if (!real)
        return PQPING_NO_ATTEMPT;
    depth++;
    PGPing r = real(keywords, values, expand_dbname);
    depth--;
    if (depth == 0 && shim_active())
        LOG_EVENT(LOG_LVL_DEBUG, "ping", LF_I("result", r));
    return r;
}

/* Event procs keep per-connection data that expects PGEVT_CONNDESTROY at
 * PQfinish: such a connection is closed, never pooled. */
PQSHIM_EXPORT int PQregisterEventProc(PGconn *conn, PGEventProc proc,
                                      const char *name, void *passThrough)
{
    int (*real)(PGconn *, PGEventProc, const char *, void *) =
        REAL(PQregisterEventProc);
    if (!real)
        return 0;
    if (depth == 0 && conn && shim_active()) {
        struct shim_conn *sc = registry_find(conn);
        if (sc)
            sc->unsafe = true;
    }
    return real(conn, proc, name, passThrough);
}

/* Our own failed connections (pool timeout, self-deadlock) carry our text. */
PQSHIM_EXPORT char *PQerrorMessage(const PGconn *conn)
{
    char *(*real)(const PGconn *) = REAL(PQerrorMessage);
    const char *ours = depth == 0 && conn ? lifecycle_error_message(conn) : NULL;
    if (ours)
        return (char *)ours;
    return real ? real(conn) : (char *)"pqshim: libpq not found\n";
}

/* Cancel objects of pooled connections stop working when the checkout
 * ends (cancel.c). PQcancel may run in a signal handler: its hook never
 * activates anything. */
PQSHIM_EXPORT PGcancel *PQgetCancel(PGconn *conn)
{
    PGcancel *(*real)(PGconn *) = REAL(PQgetCancel);
    if (!real)
        return NULL;
    if (depth > 0 || !conn || !shim_active())
        return real(conn);
    depth++;
    PGcancel *c = cancel_get(conn);
    depth--;
    return c;
}

PQSHIM_EXPORT int PQcancel(PGcancel *cancel, char *errbuf, int errbufsize)
{
    return cancel_send(cancel, errbuf, errbufsize);
}

PQSHIM_EXPORT void PQfreeCancel(PGcancel *cancel)
{
    cancel_free(cancel);
}

/* Leaving pipeline mode after an error without a Sync is allowed, and the
 * server then ignores everything until a Sync: such a connection can never
 * be reset, only closed. */
PQSHIM_EXPORT int PQexitPipelineMode(PGconn *conn)
{
    int (*real)(PGconn *) = REAL(PQexitPipelineMode);
    if (!real)
        return 0;
    if (depth > 0 || !conn || !shim_active())
        return real(conn);
    bool aborted = real_libpq()->PQpipelineStatus(conn) == PQ_PIPELINE_ABORTED;
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
PQSHIM_EXPORT void PQtrace(PGconn *conn, FILE *debug_port)
{
    void (*real)(PGconn *, FILE *) = REAL(PQtrace);
    if (!real)
        return;
    if (depth == 0 && conn && shim_active()) {
        struct shim_conn *sc = registry_find(conn);
        if (sc)
            sc->unsafe = true;
    }
    real(conn, debug_port);
}

struct hook {
    const char *name;
    void *fn;
};

static const struct hook hooks[] = {
    {"PQconnectdb", (void *)PQconnectdb},
    {"PQconnectdbParams", (void *)PQconnectdbParams},
    {"PQsetdbLogin", (void *)PQsetdbLogin},
    {"PQconnectStart", (void *)PQconnectStart},
    {"PQconnectStartParams", (void *)PQconnectStartParams},
    {"PQconnectPoll", (void *)PQconnectPoll},
    {"PQfinish", (void *)PQfinish},
    {"PQreset", (void *)PQreset},
    {"PQresetStart", (void *)PQresetStart},
    {"PQresetPoll", (void *)PQresetPoll},
    {"PQping", (void *)PQping},
    {"PQpingParams", (void *)PQpingParams},
    {"PQregisterEventProc", (void *)PQregisterEventProc},
    {"PQerrorMessage", (void *)PQerrorMessage},
    {"PQgetCancel", (void *)PQgetCancel},
    {"PQcancel", (void *)PQcancel},
    {"PQfreeCancel", (void *)PQfreeCancel},
    {"PQexitPipelineMode", (void *)PQexitPipelineMode},
    {"PQtrace", (void *)PQtrace},
    {NULL, NULL},
};

void *hooks_lookup(const char *name)
{
    for (const struct hook *h = hooks; h->name; h++)
        if (strcmp(h->name, name) == 0)
            return h->fn;
    return NULL;
}
