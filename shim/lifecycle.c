/*
 * lifecycle.c — what a connect, finish or reset means under each policy.
 * The hooks call in here only for the program's own calls (depth 0) and
 * only once the shim is active. Connects are opened by lifecycle_open.c
 * (blocking) and lifecycle_async.c (asynchronous, and PQconnectPoll).
 */
#define _GNU_SOURCE
#include "lifecycle.h"
#include "lifecycle_private.h"
#include "cancel.h"
#include "gate.h"
#include "hostlimit.h"
#include "log.h"
#include "pool.h"
#include "view.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>


/* Under host-wide contention, a slot serves at most this many more
 * callers of its process while another process waits, then goes to the
 * oldest waiter: a connection serves up to HOST_SHARE + 1 transactions,
 * and another process's first waiter waits for at most that many. */
#ifndef HOST_SHARE
#define HOST_SHARE 8
#endif

/* A request the capped pool cannot share: said once per reason. */
static void not_pooled(const struct target *t)
{
    static atomic_bool said_replication, said_attrs;
    atomic_bool *said = strcmp(t->unpooled, "replication") == 0
                            ? &said_replication : &said_attrs;
    if (atomic_exchange(said, true))
        return;
    LOG_EVENT(LOG_LVL_INFO, "not_pooled", LF_S("target", t->name),
              LF_S("reason", t->unpooled),
              LF_S("effect", "each such connect opens its own server "
                             "connection and closes it at finish"));
}

/* What the program will read of the connection it gets (view.h): set
 * before it has the PGconn, for this checkout. */
static void set_view(PGconn *pg, const struct target *t,
                     const struct connect_request *req)
{
    struct shim_conn *sc = pg ? registry_find(pg) : NULL;
    if (!sc || sc->state == CONN_SYNTHETIC)
        return;
    struct view *v = view_for_request(sc->view, !sc->reused, sc->gate != NULL,
                                     t, req);
    free(sc->view);
    sc->view = v;
}

static PGconn *connect_target(const struct connect_request *req,
                              const struct target *t)
{
    if (config_get()->policy == POLICY_CAPPED && t->poolable)
        return req->async ? async_capped(req, t) : capped_connect(req, t);
    /* Null policy: counted per target, never capped. */
    if (req->async)
        return async_open(req, pool_reserve_uncapped(t), t);
    return open_tracked(req, pool_reserve_uncapped(t), t, 0);
}

PGconn *lifecycle_connect(const struct connect_request *req)
{
    struct target t;
    if (!target_of(req, &t))
        return open_tracked(req, NULL, NULL, 0);
    if (config_get()->policy == POLICY_CAPPED && !t.poolable)
        not_pooled(&t);
    PGconn *pg = connect_target(req, &t);
    set_view(pg, &t, req);
    return pg;
}

void lifecycle_finish(PGconn *pg)
{
    const struct real_libpq *pq = real_libpq();
    struct shim_conn *sc = registry_take(pg);
    if (!sc) {
        pq->PQfinish(pg);
        return;
    }
    if (sc->gate) {
        if (gate_phase(sc->gate) == GATE_OPEN)
            gate_take_slots(sc->gate, &sc->pool, &sc->host_slot);
        gate_done(sc->gate); /* leaves any queue at once */
        sc->gate = NULL;
    }
    bool cancelled = cancel_checkout_ended(sc);
    struct pool *pool = sc->pool;
    if (sc->state == CONN_SYNTHETIC || sc->state == CONN_CONNECTING) {
        pool_move(sc, CONN_FORGOTTEN, NULL);
        pq->PQfinish(pg);
        return;
    }
    if (!pool || !pool_capped(pool)) {
        pool_move(sc, CONN_CLOSED, "finish");
        return;
    }
    const struct pqshim_config *c = config_get();
    const char *why = NULL;
    double t0 = now_monotonic();
    int contention = hostlimit_contention(sc->host_slot);
    if (contention != HOST_OTHERS)
        sc->host_handoffs = 0; /* nobody else's turn is delayed */
    if (cancelled)
        why = "cancel"; /* it may still land on whoever comes next */
    else if (c->pool_recycle > 0 && t0 - sc->opened >= c->pool_recycle)
        why = "recycle";
    else if (contention != HOST_FREE) {
        /* Others wait for a slot of this target: keep this one for a
         * caller of ours for a bounded share, then yield it to the
         * oldest waiter (who may be ours too). */
        why = "host_demand";
        if (sc->host_handoffs < HOST_SHARE && conn_clean_for_reuse(sc, &why)) {
            sc->host_handoffs += contention == HOST_OTHERS;
            if (pool_hand_on(sc))
                return; /* sc may already belong to another thread */
            why = "host_demand";
        }
        if (!strcmp(why, "host_demand") && contention == HOST_OTHERS)
            pool_count_yield(pool);
    } else if (!conn_clean_for_reuse(sc, &why))
        ; /* why says what was wrong */
    else {
        LOG_EVENT(LOG_LVL_DEBUG, "checkin", LF_S("target", sc->name),
                  LF_I("conn", (long long)sc->id),
                  LF_D("reset_ms", (now_monotonic() - t0) * 1000.0));
        pool_checkin(sc); /* sc may already belong to another thread */
        return;
    }
    pool_move(sc, CONN_CLOSED, why);
}

/* PQreset closes and reopens the same PGconn: the program still holds it,
 * so it stays registered (and keeps its pool slot). */
static void log_reset_result(struct shim_conn *sc)
{
    const struct real_libpq *pq = real_libpq();
    double ms = (now_monotonic() - sc->started) * 1000.0;
    if (sc->pool)
        pool_count_reconnect(sc->pool, pq->PQstatus(sc->pg) == CONNECTION_OK);
    if (pq->PQstatus(sc->pg) == CONNECTION_OK) {
        conn_refresh(sc);
        LOG_EVENT(LOG_LVL_INFO, "connect", LF_S("target", sc->name),
                  LF_I("conn", (long long)sc->id),
                  LF_I("backend_pid", sc->backend_pid), LF_D("ms", ms));
    } else {
        LOG_EVENT(LOG_LVL_WARN, "connect_failed", LF_S("target", sc->name),
                  LF_I("conn", (long long)sc->id), LF_D("ms", ms),
                  LF_S("error", pq->PQerrorMessage(sc->pg)));
    }
}

static struct shim_conn *begin_reset(PGconn *pg)
{
    struct shim_conn *sc = registry_find(pg);
    if (sc && sc->state == CONN_SYNTHETIC && registry_take(pg)) {
        /* a failed connect the program revives itself */
        pool_move(sc, CONN_FORGOTTEN, NULL);
        return NULL;
    }
    if (!sc || (sc->state != CONN_OPEN && sc->state != CONN_RESETTING))
        return NULL;
    LOG_EVENT(LOG_LVL_INFO, "close", LF_S("target", sc->name),
              LF_I("conn", (long long)sc->id), LF_S("reason", "reset"),
              LF_D("age_s", now_monotonic() - sc->opened));
    sc->started = now_monotonic();
    return sc;
}

void lifecycle_reset(PGconn *pg)
{
    struct shim_conn *sc = begin_reset(pg);
    real_PQreset(pg);
    if (sc) {
        pool_move(sc, CONN_OPEN, NULL);
        log_reset_result(sc);
    }
}

int lifecycle_reset_start(PGconn *pg)
{
    struct shim_conn *sc = begin_reset(pg);
    int r = real_PQresetStart(pg);
    if (sc)
        pool_move(sc, r ? CONN_RESETTING : CONN_OPEN, NULL);
    return r;
}

PostgresPollingStatusType lifecycle_reset_poll(PGconn *pg)
{
    PostgresPollingStatusType r = real_PQresetPoll(pg);
    struct shim_conn *sc = registry_find(pg);
    if (sc && sc->state == CONN_RESETTING &&
        (r == PGRES_POLLING_OK || r == PGRES_POLLING_FAILED)) {
        pool_move(sc, CONN_OPEN, NULL);
        log_reset_result(sc);
    }
    return r;
}
