/*
 * lifecycle.c — what a connect, poll, finish or reset means under each
 * policy. The hooks call in here only for the program's own calls (depth 0)
 * and only once the shim is active.
 */
#define _GNU_SOURCE
#include "lifecycle.h"
#include "cancel.h"
#include "gate.h"
#include "hostlimit.h"
#include "log.h"
#include "pool.h"
#include "retry.h"
#include "settle.h"
#include "thread.h"
#include "target_cache.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under host-wide contention, a slot serves at most this many more
 * callers of its process while another process waits, then goes to the
 * oldest waiter: a connection serves up to HOST_SHARE + 1 transactions,
 * and another process's first waiter waits for at most that many. */
#ifndef HOST_SHARE
#define HOST_SHARE 8
#endif

/* The request's target; false when it does not parse (libpq will say). */
static bool target_build(const struct connect_request *req, struct target *t)
{
    const struct real_libpq *pq = real_libpq();
    PQconninfoOption *defaults = pq->PQconndefaults();
    if (!defaults)
        return false;
    bool ok = false;
    if (req->kind == REQ_CONNINFO) {
        char *err = NULL;
        PQconninfoOption *opts = pq->PQconninfoParse(req->conninfo ? req->conninfo : "", &err);
        if (err)
            pq->PQfreemem(err);
        if (opts) {
            const char *kw[96], *val[96];
            int n = 0;
            for (PQconninfoOption *o = opts; o->keyword && n < 95; o++) {
                if (o->val) {
                    kw[n] = o->keyword;
                    val[n++] = o->val;
                }
            }
            kw[n] = val[n] = NULL;
            ok = target_from_params(t, defaults, kw, val, 0, pq);
            pq->PQconninfoFree(opts);
        }
    } else if (req->kind == REQ_PARAMS) {
        ok = target_from_params(t, defaults, req->keywords, req->values,
                                req->expand_dbname, pq);
    } else {
        /* PQsetdbLogin: a dbName that is a conninfo string is expanded
         * first, then the other arguments apply (libpq's documented rule). */
        const char *kw[] = {"dbname", "host", "port", "options", "user",
                            "password", NULL};
        const char *val[] = {req->setdb[4], req->setdb[0], req->setdb[1],
                             req->setdb[2], req->setdb[5], req->setdb[6], NULL};
        ok = target_from_params(t, defaults, kw, val, 1, pq);
    }
    pq->PQconninfoFree(defaults);
    return ok;
}

/* target_build(), remembered: a request seen before costs no parsing. */
static bool target_of(const struct connect_request *req, struct target *t)
{
    struct target_request r;
    bool cacheable = target_request_of(&r, req, real_libpq()->copy);
    if (cacheable && target_cache_get(&r, t))
        return true;
    if (!target_build(req, t))
        return false;
    if (cacheable)
        target_cache_put(&r, t);
    return true;
}

static void name_failed(const PGconn *pg, const struct target *t, char *buf,
                        size_t size)
{
    const struct real_libpq *pq = real_libpq();
    if (t) {
        snprintf(buf, size, "%s", t->name);
        return;
    }
    target_name_of(buf, size, pq->PQuser(pg), pq->PQhost(pg), pq->PQport(pg),
                   pq->PQdb(pg));
}

static void log_checkout(struct shim_conn *sc, bool reused, double wait_ms)
{
    LOG_EVENT(LOG_LVL_DEBUG, "checkout", LF_S("target", sc->name),
              LF_I("conn", (long long)sc->id), LF_I("reused", reused),
              LF_D("wait_ms", wait_ms));
}

/* A connect finished (blocking call returned, or poll said OK/FAILED).
 * True: sc is checked out to the program (CONN_OPEN); false: the connect
 * failed and sc is gone (CONN_FAILED). */
static bool connect_done(struct shim_conn *sc, const struct target *t,
                         double wait_ms)
{
    const struct real_libpq *pq = real_libpq();
    double ms = (now_monotonic() - sc->started) * 1000.0;
    if (pq->PQstatus(sc->pg) != CONNECTION_OK) {
        char name[TARGET_NAME_MAX];
        name_failed(sc->pg, t, name, sizeof name);
        LOG_EVENT(LOG_LVL_WARN, "connect_failed", LF_S("target", name),
                  LF_D("ms", ms), LF_S("error", pq->PQerrorMessage(sc->pg)));
        pool_move(sc, CONN_FAILED, NULL);
        return false;
    }
    conn_established(sc);
    pool_move(sc, CONN_OPEN, NULL);
    LOG_EVENT(LOG_LVL_INFO, "connect", LF_S("target", sc->name),
              LF_I("conn", (long long)sc->id),
              LF_I("backend_pid", sc->backend_pid), LF_D("ms", ms));
    if (sc->pool && pool_capped(sc->pool)) {
        pool_close_at_exit(sc->ssl);
        log_checkout(sc, false, wait_ms);
    }
    return true;
}

static PGconn *host_timeout(const struct target *t, double wait_ms)
{
    const struct pqshim_config *c = config_get();
    char msg[5000];
    LOG_EVENT(LOG_LVL_ERROR, "host_timeout", LF_S("target", t->name),
              LF_I("limit", c->host_limit), LF_D("wait_ms", wait_ms));
    hostlimit_timeout_message(msg, sizeof msg, t);
    return conn_synthetic_error(msg);
}

struct opening {
    struct pool *pool;
    int slot;
};

/* AddressSanitizer's, present only in its builds. */
extern void __asan_unpoison_memory_region(void const volatile *addr,
                                          size_t size) __attribute__((weak));

/* The program's thread was cancelled inside the real connect: give back
 * what it held, or every later connect to the target would wait for it.
 * Cancellation jumps back over frames that never returned, whose stale
 * redzones AddressSanitizer would take for overflows in the calls made
 * from here: clear those first, from a function it does not instrument. */
__attribute__((no_sanitize_address, noinline))
static void opening_cancelled(void *arg)
{
    struct opening *o = arg;
    if (__asan_unpoison_memory_region) {
        char *here = __builtin_frame_address(0);
        __asan_unpoison_memory_region(here - 65536, 65536);
    }
    pool_unreserve(o->pool, o->slot, true);
}

/* The real connect, where the program's thread may be cancelled. */
static PGconn *open_cancellable(const struct connect_request *req,
                                const char *name, struct opening *o)
{
    PGconn *volatile pg = NULL;
    pthread_cleanup_push(opening_cancelled, o);
    int cs = thread_cancel_as_program();
    pg = retry_open(req, name);
    thread_cancel_restore(cs);
    pthread_cleanup_pop(0);
    return pg;
}

/* Open a new server connection as the program asked, tracked by us.
 * Under a host-wide limit, first wait for a slot. */
static PGconn *open_tracked_slot(const struct connect_request *req,
                                 struct pool *pool, const struct target *t,
                                 double wait_ms, int slot);

/* With gift: a connection of pool may be handed over instead (then NULL
 * is returned, *gift set and *wait_ms grown by the time waited). */
static PGconn *open_tracked_gift(const struct connect_request *req,
                                 struct pool *pool, const struct target *t,
                                 double *wait_ms, struct shim_conn **gift)
{
    int slot = HOST_SLOT_NONE;
    if (t) {
        double host_wait_ms;
        slot = hostlimit_acquire_pooled(t, gift ? pool : NULL, &host_wait_ms, gift);
        if (gift && *gift) {
            /* A checkin handed us its connection: the room we held under
             * the cap for a new one is not needed. */
            pool_unreserve(pool, HOST_SLOT_NONE, false);
            *wait_ms += host_wait_ms;
            return NULL;
        }
        if (slot == HOST_SLOT_TIMEOUT) {
            pool_unreserve(pool, HOST_SLOT_NONE, true);
            return host_timeout(t, host_wait_ms);
        }
        *wait_ms += host_wait_ms;
    }
    return open_tracked_slot(req, pool, t, *wait_ms, slot);
}

static PGconn *open_tracked(const struct connect_request *req, struct pool *pool,
                            const struct target *t, double wait_ms)
{
    return open_tracked_gift(req, pool, t, &wait_ms, NULL);
}

/* open_tracked() with the host-wide slot (or none) already settled. */
static PGconn *open_tracked_slot(const struct connect_request *req,
                                 struct pool *pool, const struct target *t,
                                 double wait_ms, int slot)
{
    double started = now_monotonic();
    struct opening o = {pool, slot};
    PGconn *pg = open_cancellable(req, t ? t->name : NULL, &o);
    struct shim_conn *sc = pg ? conn_new(pg, CONN_CONNECTING, t ? t->name : NULL) : NULL;
    if (!sc) {
        pool_unreserve(pool, slot, !pg);
        return pg; /* out of memory: the connection is passed through */
    }
    sc->host_slot = slot;
    sc->started = started;
    sc->pool = pool;
    if (req->async && real_PQstatus(pg) != CONNECTION_BAD) {
        /* The program's poll loop finishes it: lifecycle_connect_poll(). */
        if (!registry_add(sc))
            pool_move(sc, CONN_FORGOTTEN, NULL);
        return pg;
    }
    if (connect_done(sc, t, wait_ms) && !registry_add(sc))
        pool_move(sc, CONN_FORGOTTEN, NULL);
    return pg;
}

static PGconn *refuse(const char *event, const struct target *t,
                      const char *message, double wait_ms)
{
    const struct pqshim_config *c = config_get();
    LOG_EVENT(LOG_LVL_ERROR, event, LF_S("target", t->name),
              LF_I("size", c->pool_size), LF_I("overflow", c->max_overflow),
              LF_D("wait_ms", wait_ms));
    return conn_synthetic_error(message);
}

/* Why a checked-out idle connection may not be handed out, or NULL. */
static const char *unusable(struct shim_conn *sc, bool handed)
{
    const struct pqshim_config *c = config_get();
    if (c->pool_recycle > 0 && now_monotonic() - sc->opened >= c->pool_recycle)
        return "recycle";
    if (!conn_clean_finish(sc))
        return sc->server_ended || real_PQstatus(sc->pg) != CONNECTION_OK
                   ? "dead" : "reset_failed";
    /* A connection handed over by a checkin has just answered its reset. */
    if (!conn_alive(sc, handed))
        return "dead";
    return NULL;
}

static PGconn *capped_connect(const struct connect_request *req,
                              const struct target *t)
{
    const struct pqshim_config *c = config_get();
    char msg[1024];
    /* Bounded: each round closes one dead or expired idle connection. */
    for (int round = 0; round < 10000; round++) {
        struct acquire a;
        switch (pool_acquire(t, &a, false)) {
        case ACQ_NOMEM:
            return open_tracked(req, NULL, NULL, 0);
        case ACQ_TIMEOUT:
            pool_timeout_message(msg, sizeof msg, t);
            return refuse("timeout", t, msg, a.wait_ms);
        case ACQ_DEADLOCK:
            snprintf(msg, sizeof msg,
                     "pqshim: this thread already holds all %d connections allowed "
                     "for %s (pool size %d overflow %d) and asked for one more; "
                     "waiting could never succeed. Finish a connection first or "
                     "raise PQSHIM_MAX_OVERFLOW",
                     a.held, t->name, c->pool_size, c->max_overflow);
            return refuse("deadlock", t, msg, 0);
        case ACQ_WOULD_WAIT: /* only for nowait */
            return open_tracked(req, a.pool, t, a.wait_ms);
        case ACQ_SLOT: {
            struct shim_conn *gift = NULL;
            PGconn *pg = open_tracked_gift(req, a.pool, t, &a.wait_ms, &gift);
            if (!gift)
                return pg;
            a.conn = gift; /* handed over while waiting: use it as idle */
            a.handed = true;
        }
            __attribute__((fallthrough));
        case ACQ_IDLE: {
            struct shim_conn *sc = a.conn;
            const char *why = unusable(sc, a.handed);
            if (why) {
                pool_move(sc, CONN_CLOSED, why);
                continue;
            }
            conn_give_to_program(sc);
            sc->reused = true;
            if (!registry_add(sc)) {
                pool_move(sc, CONN_CLOSED, "out_of_memory");
                return open_tracked(req, NULL, NULL, 0);
            }
            pool_count_reuse(a.pool);
            log_checkout(sc, true, a.wait_ms);
            return sc->pg;
        }
        }
    }
    return open_tracked(req, NULL, NULL, 0);
}

/* ---- asynchronous connects: never block the caller's thread ---------- */

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
static PGconn *async_open(const struct connect_request *req, struct pool *pool,
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

static PGconn *async_capped(const struct connect_request *req,
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

PGconn *lifecycle_connect(const struct connect_request *req)
{
    struct target t;
    if (!target_of(req, &t))
        return open_tracked(req, NULL, NULL, 0);
    if (config_get()->policy == POLICY_CAPPED && t.poolable)
        return req->async ? async_capped(req, &t) : capped_connect(req, &t);
    /* Null policy: counted per target, never capped. */
    if (req->async)
        return async_open(req, pool_reserve_uncapped(&t), &t);
    return open_tracked(req, pool_reserve_uncapped(&t), &t, 0);
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
    cancel_checkout_ended(sc);
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
    if (c->pool_recycle > 0 && t0 - sc->opened >= c->pool_recycle)
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
