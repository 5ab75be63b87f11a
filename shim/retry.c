/*
 * retry.c — when the server (or a pooler in front of it) is out of
 * connection slots, wait and try again instead of failing at once.
 *
 * A failed connection exposes no SQLSTATE through libpq's public API, so
 * "full" is recognised by the texts servers and poolers send for it.
 */
#define _GNU_SOURCE
#include "retry.h"
#include "config.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const full_messages[] = {
    "too many clients already",                    /* PostgreSQL, 53300 */
    "remaining connection slots are reserved",     /* PostgreSQL, 53300 */
    "too many connections for role",               /* PostgreSQL, 53300 */
    "too many connections for database",           /* PostgreSQL, 53300 */
    "no more connections allowed",                 /* PgBouncer max_client_conn */
    "MaxClientsInSessionMode",                     /* Supavisor (older) */
    "EMAXCONN",                                    /* Supavisor: also EMAXCONNSESSION */
    NULL,
};

bool retry_server_full(const char *message)
{
    for (int i = 0; message && full_messages[i]; i++)
        if (strstr(message, full_messages[i]))
            return true;
    return false;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s,
                          .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ; /* EINTR: the rest of the delay is in ts */
}

double retry_next_delay(struct retry_state *rs)
{
    if (rs->attempt++ == 0) {
        rs->backoff = 0.05;
        rs->seed = (unsigned)(now_realtime() * 1e6) ^ (unsigned)pqshim_pid;
    }
    /* Full jitter: waiters spread out instead of retrying in step. */
    double delay = rs->backoff * (0.5 + (double)rand_r(&rs->seed) / RAND_MAX);
    rs->backoff = rs->backoff * 2 < 2.0 ? rs->backoff * 2 : 2.0;
    return delay;
}

PGconn *retry_open(const struct connect_request *req, const char *name)
{
    const struct real_libpq *pq = real_libpq();
    const struct pqshim_config *cfg = config_get();
    PGconn *pg = request_open_real(req);
    /* An async connect is retried inside the program's poll loop, behind
     * a gate (lifecycle_connect_poll): never by sleeping here. */
    if (!cfg->retry_full || req->async)
        return pg;
    double deadline = now_monotonic() + cfg->pool_timeout;
    struct retry_state rs = {0};
    while (pg && pq->PQstatus(pg) == CONNECTION_BAD &&
           retry_server_full(pq->PQerrorMessage(pg))) {
        double delay = retry_next_delay(&rs);
        if (now_monotonic() + delay > deadline)
            break;
        LOG_EVENT(LOG_LVL_WARN, "retry", LF_S("target", name ? name : "?"),
                  LF_I("attempt", rs.attempt), LF_D("delay_ms", delay * 1000.0),
                  LF_S("error", pq->PQerrorMessage(pg)));
        pq->PQfinish(pg);
        sleep_seconds(delay);
        pg = request_open_real(req);
    }
    return pg;
}
