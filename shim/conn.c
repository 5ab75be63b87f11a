/*
 * conn.c — per-connection state: the registry of connections the program
 * holds, reset for reuse, liveness, and the shim's own error connections.
 *
 * Entries are removed before the real PQfinish: malloc hands the same
 * PGconn address to the next connection, so a stale entry would be wrong.
 */
#define _GNU_SOURCE
#include "conn.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct shim_conn *registry;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t next_id = 1;
static atomic_int synthetic_count;

struct shim_conn *conn_new(PGconn *pg, enum conn_state state, const char *name)
{
    struct shim_conn *sc = calloc(1, sizeof *sc);
    if (!sc)
        return NULL;
    sc->pg = pg;
    sc->id = atomic_fetch_add(&next_id, 1);
    sc->state = state;
    sc->pid = pqshim_pid;
    sc->fd = -1;
    sc->host_slot = HOST_SLOT_NONE;
    sc->pq = real_libpq(); /* the copy serving the call that opens it */
    sc->started = now_monotonic();
    notice_init(&sc->notice, pg); /* before the program can set its own */
    snprintf(sc->name, sizeof sc->name, "%s", name ? name : "?");
    return sc;
}

void conn_free(struct shim_conn *sc)
{
    if (!sc)
        return;
    if (sc->state == CONN_SYNTHETIC)
        atomic_fetch_sub(&synthetic_count, 1);
    free(sc->message);
    free(sc->view);
    free(sc);
}

bool registry_add(struct shim_conn *sc)
{
    pthread_mutex_lock(&registry_lock);
    sc->checked_out_at = now_monotonic();
    pqshim_oom = false;
    HASH_ADD_PTR(registry, pg, sc);
    bool ok = !pqshim_oom;
    if (!ok) {
        struct shim_conn *found = NULL;
        HASH_FIND_PTR(registry, &sc->pg, found);
        if (found)
            HASH_DEL(registry, found);
    }
    pthread_mutex_unlock(&registry_lock);
    return ok;
}

static struct shim_conn *lookup(const PGconn *pg, bool remove)
{
    struct shim_conn *sc = NULL;
    pthread_mutex_lock(&registry_lock);
    if (registry)
        HASH_FIND_PTR(registry, &pg, sc);
    /* A parent's connection seen in a forked child is not ours to manage. */
    if (sc && sc->pid != pqshim_pid)
        sc = NULL;
    if (sc && remove)
        HASH_DEL(registry, sc);
    pthread_mutex_unlock(&registry_lock);
    return sc;
}

struct shim_conn *registry_find(const PGconn *pg)
{
    return lookup(pg, false);
}

struct shim_conn *registry_take(const PGconn *pg)
{
    return lookup(pg, true);
}

void registry_for_each(void (*fn)(const struct shim_conn *, void *), void *arg)
{
    pthread_mutex_lock(&registry_lock);
    for (struct shim_conn *sc = registry; sc; sc = sc->hh.next)
        if (sc->pid == pqshim_pid)
            fn(sc, arg);
    pthread_mutex_unlock(&registry_lock);
}

void registry_forget_after_fork(void)
{
    /* The child keeps the parent's entries so that their pid mismatch marks
     * them foreign; only the lock, taken before the fork, is released. */
    pthread_mutex_unlock(&registry_lock);
}

void registry_lock_for_fork(void)
{
    pthread_mutex_lock(&registry_lock);
}

void registry_unlock_after_fork(void)
{
    pthread_mutex_unlock(&registry_lock);
}

static bool socket_is_local(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_UNIX)
        return true;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

void conn_refresh(struct shim_conn *sc)
{
    const struct real_libpq *pq = real_libpq();
    PGconn *pg = sc->pg;
    sc->opened = now_monotonic();
    sc->backend_pid = pq->PQbackendPID(pg);
    sc->fd = pq->PQsocket(pg);
    sc->local = socket_is_local(sc->fd);
    sc->ssl = pq->PQsslInUse(pg) != 0;
}

void conn_established(struct shim_conn *sc)
{
    const struct real_libpq *pq = real_libpq();
    PGconn *pg = sc->pg;
    conn_refresh(sc);
    target_name_of(sc->name, sizeof sc->name, pq->PQuser(pg), pq->PQhost(pg),
                   pq->PQport(pg), pq->PQdb(pg));
}

/* While the shim owns a connection, what the server says is the shim's to
 * hear: libpq's default processor would print it on the program's stderr
 * (a session killed while idle sends its FATAL there). A FATAL, PANIC or
 * ERROR outside any query of ours means the session is over. */
static void quiet_receiver(void *arg, const PGresult *res)
{
    struct shim_conn *sc = arg;
    const struct real_libpq *pq = real_libpq();
    const char *sev = pq->PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (!sev || (strcmp(sev, "FATAL") != 0 && strcmp(sev, "PANIC") != 0 &&
                 strcmp(sev, "ERROR") != 0))
        return;
    const char *text = pq->PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    sc->server_ended = true;
    snprintf(sc->said, sizeof sc->said, "%s: %s", sev, text ? text : "?");
}

static void own_notices(struct shim_conn *sc)
{
    notice_hold(&sc->notice, sc->pg, quiet_receiver, sc);
}

/* Wait for input at most until deadline; false on timeout or error. */
static bool wait_readable(PGconn *pg, double deadline)
{
    const struct real_libpq *pq = real_libpq();
    for (;;) {
        double left = deadline - now_monotonic();
        struct pollfd p = {.fd = pq->PQsocket(pg), .events = POLLIN};
        if (left <= 0 || p.fd < 0)
            return false;
        int r = poll(&p, 1, (int)(left * 1000.0) + 1);
        if (r > 0)
            return pq->PQconsumeInput(pg) != 0;
        if (r == 0 || errno != EINTR)
            return r < 0 ? false : now_monotonic() < deadline;
    }
}

/* Read every result of the query in flight, at most until deadline. True
 * when each has status want and the connection is fine afterwards. */
static bool read_results(PGconn *pg, double deadline, ExecStatusType want)
{
    const struct real_libpq *pq = real_libpq();
    bool ok = true;
    for (;;) {
        while (pq->PQisBusy(pg))
            if (!wait_readable(pg, deadline))
                return false;
        PGresult *res = pq->PQgetResult(pg);
        if (!res)
            break;
        ok &= pq->PQresultStatus(res) == want;
        pq->PQclear(res);
    }
    return ok && pq->PQstatus(pg) == CONNECTION_OK;
}

/* One bounded round trip: a connection that cannot answer in time is not
 * worth keeping (a pipeline error left unsynced, a stuck network). */
static bool exec_ok(PGconn *pg, const char *sql, ExecStatusType want)
{
    const struct real_libpq *pq = real_libpq();
    return pq->PQsendQuery(pg, sql) &&
           read_results(pg, now_monotonic() + CONN_ROUND_TRIP_S, want);
}

static void drain_notifications(PGconn *pg)
{
    const struct real_libpq *pq = real_libpq();
    PGnotify *n;
    while ((n = pq->PQnotifies(pg)) != NULL)
        pq->PQfreemem(n);
}

bool conn_clean_for_reuse(struct shim_conn *sc, const char **why)
{
    const struct real_libpq *pq = real_libpq();
    PGconn *pg = sc->pg;
    const struct pqshim_config *cfg = config_get();

    if (pq->PQstatus(pg) != CONNECTION_OK) {
        *why = "broken";
        return false;
    }
    if (sc->unsafe) {
        /* event procs hold per-connection data; a trace expects the
         * session's end; a pipeline left unsynced ignores everything */
        *why = "unsafe_state";
        return false;
    }
    if (pq->PQpipelineStatus(pg) != PQ_PIPELINE_OFF) {
        *why = "unsafe_state";
        return false;
    }
    PGTransactionStatusType tx = pq->PQtransactionStatus(pg);
    if (tx == PQTRANS_ACTIVE || tx == PQTRANS_UNKNOWN) {
        *why = "unsafe_state"; /* a query or COPY is in flight */
        return false;
    }
    if (tx != PQTRANS_IDLE && cfg->reset == RESET_NONE) {
        *why = "unsafe_state"; /* never hand out an open transaction */
        return false;
    }

    /* Client side: undo what the previous owner set on the PGconn. */
    pq->PQsetnonblocking(pg, 0);
    own_notices(sc);
    pq->PQuntrace(pg);
    pq->PQsetErrorVerbosity(pg, PQERRORS_DEFAULT);
    pq->PQsetErrorContextVisibility(pg, PQSHOW_CONTEXT_ERRORS);
    sc->server_ended = false;
    sc->said[0] = '\0';

    /* Server side. DISCARD ALL refuses to run in a transaction block, so a
     * transaction left open costs one more round trip, taken now. */
    if (tx != PQTRANS_IDLE && cfg->reset == RESET_DISCARD &&
        !exec_ok(pg, "ROLLBACK", PGRES_COMMAND_OK)) {
        *why = "reset_failed";
        return false;
    }
    drain_notifications(pg);
    /* The reset is sent now and its answer read at the next checkout: the
     * program's PQfinish does not wait a round trip for it, and the server
     * does the work while the connection sits idle. Whatever else a mode
     * keeps, no session reaches the next user with another role or session
     * authorization than it authenticated with (a SET ROLE to a superuser
     * role would be handed on). The server reports session_authorization
     * but not role, so even `none` cannot tell without asking: it sends
     * the two RESETs, in the same one round trip. Any query also clears
     * the previous user's error text (nothing else in libpq's API can). */
    const char *sql = cfg->reset == RESET_DISCARD ? "DISCARD ALL"
                      : tx != PQTRANS_IDLE ? "ROLLBACK; " CONN_RESET_IDENTITY
                                           : CONN_RESET_IDENTITY;
    if (!pq->PQsendQuery(pg, sql)) {
        *why = "reset_failed";
        return false;
    }
    sc->reset_pending = true;
    return true;
}

bool conn_clean_finish(struct shim_conn *sc)
{
    if (!sc->reset_pending)
        return true;
    const struct real_libpq *pq = real_libpq();
    sc->reset_pending = false;
    bool ok = read_results(sc->pg, now_monotonic() + CONN_ROUND_TRIP_S,
                           PGRES_COMMAND_OK);
    ok &= pq->PQtransactionStatus(sc->pg) == PQTRANS_IDLE && !sc->server_ended;
    drain_notifications(sc->pg);
    return ok;
}

/* Zero round trips: a server that ended the session (terminate, restart,
 * idle kill) has sent FATAL and FIN, so anything readable on an idle
 * connection means "look closer". Sound only where packets cannot vanish
 * silently, i.e. on Unix and loopback sockets. */
bool conn_socket_quiet(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 0);
    return r == 0;
}

/* Read whatever the server sent while the connection sat idle: its FATAL
 * (heard by quiet_receiver), notifications, the end of the stream. The
 * reset's answer may have been read together with a FATAL behind it, so
 * the socket alone cannot tell: libpq's buffer has to be parsed too. */
static bool idle_input_clean(struct shim_conn *sc, bool *quiet)
{
    const struct real_libpq *pq = real_libpq();
    *quiet = false;
    for (int i = 0; i < 8 && !(*quiet = conn_socket_quiet(sc->fd)); i++)
        if (!pq->PQconsumeInput(sc->pg))
            return false;
    drain_notifications(sc->pg);
    return !sc->server_ended && !pq->PQisBusy(sc->pg) &&
           pq->PQstatus(sc->pg) == CONNECTION_OK &&
           pq->PQtransactionStatus(sc->pg) == PQTRANS_IDLE;
}

bool conn_alive(struct shim_conn *sc, bool answered)
{
    const struct pqshim_config *cfg = config_get();
    bool quiet;
    if (!conn_clean_finish(sc) || !idle_input_clean(sc, &quiet))
        return false;
    if (answered || cfg->pre_ping == PRE_PING_OFF)
        return true;
    if (cfg->pre_ping == PRE_PING_ON && sc->local && quiet)
        return true;
    /* A real ping: the empty query costs one round trip and no parsing. */
    return exec_ok(sc->pg, "", PGRES_EMPTY_QUERY) && idle_input_clean(sc, &quiet);
}

void conn_give_to_program(struct shim_conn *sc)
{
    drain_notifications(sc->pg);
    notice_give(&sc->notice, sc->pg);
}

/* How long a close waits for a reset still in flight (settle_reset). */
#define RESET_SETTLE_S 0.1

/* Read the answer of a reset still in flight, waiting at most
 * RESET_SETTLE_S. A pooler in front of the server (PgBouncer in
 * transaction mode) that sees its client leave in the middle of a query
 * closes the server connection running it, so closing right after a
 * checkin (an overflow close, a short-lived process exiting) would cost it
 * a backend. A dead connection ends the wait at once. */
static void settle_reset(struct shim_conn *sc)
{
    sc->reset_pending = false;
    (void)read_results(sc->pg, now_monotonic() + RESET_SETTLE_S,
                       PGRES_COMMAND_OK);
}

void conn_log_close(const struct shim_conn *sc, const char *reason)
{
    if (sc->said[0])
        LOG_EVENT(LOG_LVL_INFO, "close", LF_S("target", sc->name),
                  LF_I("conn", (long long)sc->id), LF_S("reason", reason),
                  LF_D("age_s", now_monotonic() - sc->opened),
                  LF_S("server_said", sc->said));
    else
        LOG_EVENT(LOG_LVL_INFO, "close", LF_S("target", sc->name),
                  LF_I("conn", (long long)sc->id), LF_S("reason", reason),
                  LF_D("age_s", now_monotonic() - sc->opened));
}

void conn_close(struct shim_conn *sc, const char *reason)
{
    /* The janitor, exit and other threads close it with its own copy. */
    const struct real_libpq *prev = real_use(sc->pq);
    /* From here on nothing of the server's may reach the program. */
    if (sc->state != CONN_SYNTHETIC && sc->state != CONN_CONNECTING)
        own_notices(sc);
    conn_log_close(sc, reason);
    if (sc->reset_pending)
        settle_reset(sc);
    real_PQfinish(sc->pg);
    real_use(prev);
}

void conn_hold_error(struct shim_conn *sc, char *message)
{
    free(sc->message);
    sc->message = message;
    atomic_fetch_add(&synthetic_count, 1);
    if (!registry_add(sc))
        conn_free(sc);
}

PGconn *conn_synthetic_error(const char *message)
{
    const struct real_libpq *pq = real_libpq();
    /* No public API builds a failed PGconn: an unknown keyword does, and
     * our PQerrorMessage hook replaces libpq's text with ours. The keyword
     * is the message itself, so even a host that bypasses the hook (or a
     * registry that ran out of memory) shows it. */
    const char *keywords[] = {message, NULL};
    const char *values[] = {"x", NULL}; /* empty values are skipped */
    PGconn *pg = pq->PQconnectStartParams(keywords, values, 0);
    if (!pg)
        return NULL;
    struct shim_conn *sc = conn_new(pg, CONN_SYNTHETIC, NULL);
    if (!sc)
        return pg;
    size_t len = strlen(message);
    sc->message = malloc(len + 2);
    if (sc->message) {
        memcpy(sc->message, message, len);
        memcpy(sc->message + len, "\n", 2);
    }
    atomic_fetch_add(&synthetic_count, 1);
    if (!sc->message || !registry_add(sc))
        conn_free(sc);
    return pg;
}

const char *conn_synthetic_message(const PGconn *pg)
{
    if (atomic_load_explicit(&synthetic_count, memory_order_relaxed) == 0)
        return NULL;
    struct shim_conn *sc = registry_find(pg);
    return sc && sc->state == CONN_SYNTHETIC ? sc->message : NULL;
}
