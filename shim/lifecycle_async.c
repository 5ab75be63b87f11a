/*
 * lifecycle_async.c — asynchronous connects, which never block the
 * caller's thread: waiting behind a gate, a reused connection settled in
 * the program's poll loop, and what PQconnectPoll means for each
 * (reconnect in place, retry while the server is full, failure).
 */
#define _GNU_SOURCE
#include "lifecycle.h"
#include "lifecycle_private.h"
#include "gate.h"
#include "hostlimit.h"
#include "log.h"
#include "pool.h"
#include "retry.h"
#include "settle.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Why an async connect has to wait the blocking way: said once. */
static void blocking_fallback(const struct target *t, const char *why)
{
    static atomic_bool said;
    if (atomic_exchange(&said, true))
        return;
    LOG_EVENT(LOG_LVL_WARN, "async_blocking", LF_S("target", t->name),
              LF_S("reason", why),
              LF_S("effect", "asynchronous connects that must wait do so in "
                             "the calling thread"));
}

/* Start pg's PGconn behind a gate and track it. NULL when no gate can be
 * had (the caller falls back: to waiting in the calling thread when
 * must_wait, said once; otherwise to a plain connect, not retried);
 * *scp gets the tracked connection. */
static PGconn *start_gated(const struct target *t, struct pool *pool,
                           int host_slot, bool must_wait, struct shim_conn **scp)
{
    const char *why = gate_unusable(t);
    PGconn *pg = NULL;
    struct gate *g = why ? NULL : gate_start(t, &pg, &why);
    if (!g) {
        if (why && must_wait)
            blocking_fallback(t, why);
        return NULL;
    }
    struct shim_conn *sc = conn_new(pg, CONN_CONNECTING, t->name);
    if (!sc || !registry_add(sc)) {
        gate_done(g);
        real_PQfinish(pg);
        conn_free(sc);
        return NULL;
    }
    sc->gate = g;
    sc->pool = pool;
    sc->host_slot = host_slot;
    *scp = sc;
    return pg;
}

/* Undo start_gated() for a fallback: the slots stay with the caller. */
static void unstart_gated(struct shim_conn *sc)
{
    registry_take(sc->pg);
    gate_done(sc->gate);
    real_PQfinish(sc->pg);
    sc->host_slot = HOST_SLOT_NONE;
    sc->pool = NULL;
    pool_move(sc, CONN_FORGOTTEN, NULL);
}

/* A slot under the cap (or the null policy's count) is held in pool: the
 * host-wide limit next, then the server. */
PGconn *async_open(const struct connect_request *req, struct pool *pool,
                   const struct target *t)
{
    const struct pqshim_config *c = config_get();
    bool must_wait;
    int slot = hostlimit_try(t, &must_wait);
    /* A full server is retried behind a gate: only there can the
     * program's poll loop be kept waiting. */
    if (!must_wait && !c->retry_full)
        return open_tracked_slot(req, pool, t, 0, slot);
    struct shim_conn *sc = NULL;
    PGconn *pg = start_gated(t, pool, slot, must_wait, &sc);
    if (!pg) {
        if (must_wait)
            return open_tracked(req, pool, t, 0);
        return open_tracked_slot(req, pool, t, 0, slot);
    }
    sc->started = now_monotonic();
    if (!must_wait) {
        gate_open_now(sc->gate);
        return pg;
    }
    char msg[5000];
    struct host_ticket tk;
    hostlimit_enqueue(t, &tk, true);
    hostlimit_timeout_message(msg, sizeof msg, t);
    gate_wait_host(sc->gate, NULL, &tk, sc->started + c->pool_timeout, msg);
    return pg;
}

/* At the cap: queue behind a gate. */
static PGconn *async_wait(const struct connect_request *req,
                          const struct acquire *a, const struct target *t)
{
    struct pool *pool = a->pool;
    const struct pqshim_config *c = config_get();
    struct shim_conn *sc = NULL;
    PGconn *pg = start_gated(t, NULL, HOST_SLOT_NONE, true, &sc);
    if (!pg)
        return capped_connect(req, t);
    sc->started = now_monotonic();
    char msg[1024];
    int waiting = 0;
    pool_timeout_message(msg, sizeof msg, t);
    if (!gate_wait_pool(sc->gate, pool, sc->started + c->pool_timeout, msg,
                        &waiting)) {
        unstart_gated(sc);
        return capped_connect(req, t);
    }
    LOG_EVENT(LOG_LVL_INFO, "wait", LF_S("target", t->name),
              LF_I("open", a->open),
              LF_I("cap", c->pool_size + c->max_overflow),
              LF_I("waiting", waiting), LF_D("timeout_s", c->pool_timeout),
              LF_I("async", 1));
    return pg;
}

/* A reused connection for an async caller: ready now, or made ready in
 * the program's poll loop (CONN_SETTLING). False: it is dead (closed). */
static bool async_checkout(struct shim_conn *sc, struct pool *pool, double wait_ms)
{
    const struct pqshim_config *c = config_get();
    const char *why = NULL;
    enum settle_result r = SETTLE_DEAD;
    if (c->pool_recycle > 0 && now_monotonic() - sc->opened >= c->pool_recycle)
        why = "recycle";
    else if ((r = settle_begin(sc)) == SETTLE_DEAD)
        why = "dead";
    if (why) {
        pool_close_later(sc, why);
        return false;
    }
    sc->reused = true;
    if (r != SETTLE_OK)
        pool_move(sc, CONN_SETTLING, NULL);
    if (!registry_add(sc)) {
        pool_close_later(sc, "out_of_memory");
        return false;
    }
    pool_count_reuse(pool);
    if (r == SETTLE_OK)
        log_checkout(sc, true, wait_ms);
    return true;
}

PGconn *async_capped(const struct connect_request *req,
                     const struct target *t)
{
    char msg[1024];
    /* Idle connections found dead or expired are closed on the keeper's
     * thread: start it before taking any. */
    if (!gate_ensure_keeper())
        return capped_connect(req, t);
    for (int round = 0; round < 10000; round++) {
        struct acquire a;
        switch (pool_acquire(t, &a, true)) {
        case ACQ_NOMEM:
            return open_tracked(req, NULL, NULL, 0);
        case ACQ_TIMEOUT:
            pool_timeout_message(msg, sizeof msg, t);
            return refuse("timeout", t, msg, 0);
        case ACQ_DEADLOCK: /* never for nowait */
        case ACQ_SLOT:
            return async_open(req, a.pool, t);
        case ACQ_WOULD_WAIT:
            return async_wait(req, &a, t);
        case ACQ_IDLE:
            if (async_checkout(a.conn, a.pool, a.wait_ms))
                return a.conn->pg;
            continue;
        }
    }
    return open_tracked(req, NULL, NULL, 0);
}

/* A reused connection found dead while settling: reconnect the same
 * PGconn (the program already holds it), keeping its slot. */
static PostgresPollingStatusType reconnect_in_place(struct shim_conn *sc)
{
    const struct real_libpq *pq = real_libpq();
    conn_log_close(sc, "dead");
    /* The new session is the program's: its notices go where a fresh
     * connection's would. */
    conn_give_to_program(sc);
    sc->reset_pending = sc->ping_pending = false;
    sc->server_ended = false;
    sc->said[0] = '\0';
    sc->started = now_monotonic();
    if (!pq->PQresetStart(sc->pg)) {
        pool_move(sc, CONN_OPEN, NULL); /* the program finishes it, broken */
        return PGRES_POLLING_FAILED;
    }
    pool_move(sc, CONN_RECONNECTING, NULL);
    return PGRES_POLLING_WRITING;
}

static PostgresPollingStatusType poll_settling(struct shim_conn *sc)
{
    switch (settle_poll(sc)) {
    case SETTLE_PENDING:
        return PGRES_POLLING_READING;
    case SETTLE_OK:
        pool_move(sc, CONN_OPEN, NULL);
        log_checkout(sc, true, 0);
        return PGRES_POLLING_OK;
    case SETTLE_DEAD:
        break;
    }
    return reconnect_in_place(sc);
}

/* The in-place reconnect of reconnect_in_place() is over. */
static void reconnected(struct shim_conn *sc, PostgresPollingStatusType r)
{
    const struct real_libpq *pq = real_libpq();
    double ms = (now_monotonic() - sc->started) * 1000.0;
    pool_move(sc, CONN_OPEN, NULL);
    if (sc->pool)
        pool_count_reconnect(sc->pool, r == PGRES_POLLING_OK);
    if (r != PGRES_POLLING_OK) {
        LOG_EVENT(LOG_LVL_WARN, "connect_failed", LF_S("target", sc->name),
                  LF_I("conn", (long long)sc->id), LF_D("ms", ms),
                  LF_S("error", pq->PQerrorMessage(sc->pg)));
        return; /* the program finishes a broken connection */
    }
    conn_refresh(sc);
    sc->reused = false;
    LOG_EVENT(LOG_LVL_INFO, "connect", LF_S("target", sc->name),
              LF_I("conn", (long long)sc->id),
              LF_I("backend_pid", sc->backend_pid), LF_D("ms", ms));
    log_checkout(sc, false, 0);
}

/* A gated connect refused by a full server: go round again behind the
 * gate after a back-off, if the pool timeout leaves time for it. */
static bool retry_gated(struct shim_conn *sc)
{
    const struct real_libpq *pq = real_libpq();
    const struct pqshim_config *c = config_get();
    if (!c->retry_full || gate_phase(sc->gate) == GATE_FAILED)
        return false;
    char *message = gate_error_message(sc->gate, pq->PQerrorMessage(sc->pg));
    bool full = message && retry_server_full(message);
    double delay = full ? retry_next_delay(&sc->retry) : 0;
    if (full && now_monotonic() + delay <= sc->started + c->pool_timeout) {
        LOG_EVENT(LOG_LVL_WARN, "retry", LF_S("target", sc->name),
                  LF_I("attempt", sc->retry.attempt),
                  LF_D("delay_ms", delay * 1000.0), LF_S("error", message),
                  LF_I("async", 1));
        free(message);
        /* Restart first: libpq is at the gate before the keeper may open
         * it. */
        if (!pq->PQresetStart(sc->pg))
            return false;
        gate_rearm(sc->gate, delay);
        return true;
    }
    free(message);
    return false;
}

/* A gated connect failed: the program sees libpq's error without the
 * gate's lines (or the shim's timeout message), as PQerrorMessage. */
static void gated_failure(struct shim_conn *sc)
{
    const struct real_libpq *pq = real_libpq();
    bool timed_out = gate_phase(sc->gate) == GATE_FAILED;
    char *message = gate_error_message(sc->gate, pq->PQerrorMessage(sc->pg));
    gate_take_slots(sc->gate, &sc->pool, &sc->host_slot);
    gate_done(sc->gate);
    sc->gate = NULL;
    if (!timed_out)
        LOG_EVENT(LOG_LVL_WARN, "connect_failed", LF_S("target", sc->name),
                  LF_D("ms", (now_monotonic() - sc->started) * 1000.0),
                  LF_S("error", message ? message : pq->PQerrorMessage(sc->pg)));
    if (message) {
        pool_move(sc, CONN_SYNTHETIC, NULL);
        conn_hold_error(sc, message);
    } else {
        pool_move(sc, CONN_FAILED, NULL);
    }
}

static PostgresPollingStatusType poll_connecting(PGconn *pg, struct shim_conn *sc)
{
    const struct real_libpq *pq = real_libpq();
    if (sc->gate && gate_phase(sc->gate) == GATE_OPEN)
        /* The keeper is done with it: what it acquired is ours now. */
        gate_take_slots(sc->gate, &sc->pool, &sc->host_slot);
    PostgresPollingStatusType r = pq->PQconnectPoll(pg);
    if (r != PGRES_POLLING_OK && r != PGRES_POLLING_FAILED)
        return r;
    if (sc->state == CONN_RECONNECTING) {
        reconnected(sc, r);
        return r;
    }
    if (r == PGRES_POLLING_FAILED && sc->gate && retry_gated(sc))
        return PGRES_POLLING_WRITING;
    registry_take(pg);
    if (r == PGRES_POLLING_FAILED && sc->gate) {
        gated_failure(sc);
        return r;
    }
    if (sc->gate) {
        gate_take_slots(sc->gate, &sc->pool, &sc->host_slot);
        gate_done(sc->gate);
        sc->gate = NULL;
    }
    if (connect_done(sc, NULL, 0) && !registry_add(sc))
        pool_move(sc, CONN_FORGOTTEN, NULL);
    return r;
}

const char *lifecycle_error_message(const PGconn *pg)
{
    const char *ours = conn_synthetic_message(pg);
    if (ours || !gate_any())
        return ours;
    struct shim_conn *sc = registry_find(pg);
    if (!sc || !sc->gate)
        return NULL;
    /* Kept until the next call or the end of the connect: libpq's own
     * text lives as long. */
    char *m = gate_error_message(sc->gate, real_PQerrorMessage(pg));
    if (!m)
        return NULL;
    free(sc->message);
    sc->message = m;
    return m;
}

PostgresPollingStatusType lifecycle_connect_poll(PGconn *pg)
{
    struct shim_conn *sc = registry_find(pg);
    if (sc && (sc->state == CONN_CONNECTING || sc->state == CONN_RECONNECTING))
        return poll_connecting(pg, sc);
    if (sc && sc->state == CONN_SETTLING)
        return poll_settling(sc);
    return real_PQconnectPoll(pg);
}
