/*
 * lifecycle_open.c — opening a connection the blocking way: the request's
 * target, the real connect tracked by the shim (under the host-wide limit,
 * cancellable), and a checkout under the cap that may wait. The
 * asynchronous paths (lifecycle_async.c) build on these.
 */
#define _GNU_SOURCE
#include "lifecycle_private.h"
#include "hostlimit.h"
#include "log.h"
#include "pool.h"
#include "retry.h"
#include "thread.h"

#include <stdio.h>
#include <string.h>

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

void log_checkout(struct shim_conn *sc, bool reused, double wait_ms)
{
    LOG_EVENT(LOG_LVL_DEBUG, "checkout", LF_S("target", sc->name),
              LF_I("conn", (long long)sc->id), LF_I("reused", reused),
              LF_D("wait_ms", wait_ms));
}

/* A connect finished (blocking call returned, or poll said OK/FAILED).
 * True: sc is checked out to the program (CONN_OPEN); false: the connect
 * failed and sc is gone (CONN_FAILED). */
bool connect_done(struct shim_conn *sc, const struct target *t,
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

PGconn *open_tracked(const struct connect_request *req, struct pool *pool,
                     const struct target *t, double wait_ms)
{
    return open_tracked_gift(req, pool, t, &wait_ms, NULL);
}

/* open_tracked() with the host-wide slot (or none) already settled. */
PGconn *open_tracked_slot(const struct connect_request *req,
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

PGconn *refuse(const char *event, const struct target *t,
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

PGconn *capped_connect(const struct connect_request *req,
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
