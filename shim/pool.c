/*
 * pool.c — capped pools as their callers see them: checking a connection
 * out (pool_acquire) and in, a connection's moves (pool_move), and closing
 * idle ones: the janitor (idle timeout, recycle), the list closed on the
 * keeper's thread, dispose and exit, and host-wide demand.
 *
 * The top of the pool's parts: it uses the bookkeeping (pool_count.c) and
 * the line of waiters (pool_wait.c), neither of which calls it.
 */
#define _GNU_SOURCE
#include "pool_internal.h"
#include "hostlimit.h"
#include "thread.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_cond_t janitor_cond;
static bool janitor_started;
static double janitor_wake_at;

static void *janitor_main(void *arg);

/* The janitor exists only once a capped pool is used and idle connections
 * can expire. Its signals are blocked: the host's handlers run elsewhere. */
static void start_janitor_locked(void)
{
    const struct pqshim_config *c = config_get();
    if (janitor_started || (c->idle_timeout <= 0 && c->pool_recycle <= 0))
        return;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&janitor_cond, &attr);
    pthread_condattr_destroy(&attr);
    janitor_started = start_internal_thread(janitor_main);
}

enum acquire_result pool_acquire(const struct target *t, struct acquire *a,
                                 bool nowait)
{
    const struct pqshim_config *cfg = config_get();
    pthread_t self = pthread_self();
    double start = now_monotonic();
    memset(a, 0, sizeof *a);

    pthread_mutex_lock(&pool_lock);
    struct pool *p = find_or_create(t);
    if (!p) {
        pthread_mutex_unlock(&pool_lock);
        return ACQ_NOMEM;
    }
    a->pool = p;
    start_janitor_locked();

    /* Someone already waiting goes first, even if a slot just freed up. */
    if (!p->wait_head && !paused) {
        struct shim_conn *sc = checkout_idle(p, self);
        if (sc) {
            a->conn = sc;
            pthread_mutex_unlock(&pool_lock);
            return ACQ_IDLE;
        }
        if (p->open < cap_of()) {
            reserve(p);
            pthread_mutex_unlock(&pool_lock);
            return ACQ_SLOT;
        }
    }

    a->open = p->open;
    if (nowait) {
        pthread_mutex_unlock(&pool_lock);
        return cfg->pool_timeout > 0 ? ACQ_WOULD_WAIT : ACQ_TIMEOUT;
    }
    a->held = owner_held(p, self);
    if (!paused && p->idle_count == 0 && p->open == p->checked_out &&
        a->held >= p->open) {
        p->stats.deadlocks_total++;
        pthread_mutex_unlock(&pool_lock);
        return ACQ_DEADLOCK;
    }
    if (cfg->pool_timeout <= 0) {
        p->stats.timeouts_total++;
        pthread_mutex_unlock(&pool_lock);
        return ACQ_TIMEOUT;
    }


    return wait_in_line(p, t, a, start);
}

struct pool *pool_reserve_uncapped(const struct target *t)
{
    pthread_mutex_lock(&pool_lock);
    struct pool *p = find_or_create(t);
    if (p)
        reserve(p);
    pthread_mutex_unlock(&pool_lock);
    return p;
}

static bool is_end(enum conn_state s)
{
    return s == CONN_CLOSED || s == CONN_FORGOTTEN || s == CONN_FAILED;
}

void pool_move(struct shim_conn *sc, enum conn_state to, const char *reason)
{
    struct pool *p = sc->pool;
    enum conn_state from = sc->state;
    if (to == CONN_CLOSED)
        conn_close(sc, reason);
    bool gives_back = is_end(to) || to == CONN_SYNTHETIC;
    if (gives_back) {
        /* After the real close: the next holder never finds the server
         * with one connection too many. */
        hostlimit_release(sc->host_slot);
        sc->host_slot = HOST_SLOT_NONE;
        sc->pool = NULL;
    }
    if (!p || bucket_of(p, from) == bucket_of(p, to)) {
        sc->state = to; /* no counter changes (checked out all along) */
    } else {
        pthread_mutex_lock(&pool_lock);
        count_move(p, sc, from, to, pthread_self());
        if (gives_back)
            serve_waiters(p);
        pthread_mutex_unlock(&pool_lock);
    }
    if (is_end(to))
        conn_free(sc);
}

void pool_unreserve(struct pool *p, int host_slot, bool failed)
{
    hostlimit_release(host_slot);
    if (!p)
        return;
    pthread_mutex_lock(&pool_lock);
    count_move(p, NULL, CONN_CONNECTING, failed ? CONN_FAILED : CONN_FORGOTTEN,
               pthread_self());
    serve_waiters(p);
    pthread_mutex_unlock(&pool_lock);
}

bool pool_reserve_probe(struct pool *p)
{
    pthread_mutex_lock(&pool_lock);
    bool room = !p->capped || (!p->wait_head && p->open < cap_of());
    if (room)
        reserve(p);
    pthread_mutex_unlock(&pool_lock);
    return room;
}

void pool_checkin(struct shim_conn *sc)
{
    struct pool *p = sc->pool;
    const struct pqshim_config *cfg = config_get();
    const char *why = NULL;
    bool kept = true;
    int slot = sc->host_slot;
    pthread_mutex_lock(&pool_lock);
    bool stale = p->disposing || sc->generation != p->generation;
    if (p->wait_head && p->wait_head->async && !paused && !stale) {
        /* The first waiter has a PGconn of its own and needs a slot:
         * this connection makes room for it (its close serves it). */
        kept = false;
        why = "handoff";
    } else if (p->wait_head && !paused && !stale) {
        hand_to_waiter(p, sc);
    } else if (p->idle_count < cfg->pool_size && !stale) {
        sc->idle_since = now_monotonic();
        push_idle(p, sc);
        /* Wake the janitor for whichever limit comes first. */
        double expiry = cfg->idle_timeout > 0
                            ? sc->idle_since + cfg->idle_timeout
                            : 1e18;
        if (cfg->pool_recycle > 0 && sc->opened + cfg->pool_recycle < expiry)
            expiry = sc->opened + cfg->pool_recycle;
        if (janitor_started && expiry < janitor_wake_at)
            pthread_cond_signal(&janitor_cond);
    } else {
        kept = false; /* still counted until it is closed below */
        why = stale ? "disposed" : "overflow";
    }
    pthread_mutex_unlock(&pool_lock);
    if (!kept)
        pool_move(sc, CONN_CLOSED, why);
    else if (slot >= 0) /* sc may already belong to another thread */
        hostlimit_watch_idle(slot, pool_close_contended);
}

bool pool_hand_on(struct shim_conn *sc)
{
    struct pool *p = sc->pool;
    bool given = false;
    pthread_t tid;
    pthread_mutex_lock(&pool_lock);
    bool stale = p->disposing || sc->generation != p->generation;
    if (paused || stale) {
        ;
    } else if (p->wait_head && !p->wait_head->async) {
        hand_to_waiter(p, sc);
        given = true;
    } else if (hostlimit_give(sc->host_slot, p, sc, &tid)) {
        /* The taker holds room under the cap for a new connection, which
         * it gives back (pool_unreserve) before it touches sc. */
        hand_over(p, sc, tid);
        given = true;
    }
    if (given)
        p->stats.host_handoffs_total++;
    pthread_mutex_unlock(&pool_lock);
    return given;
}

/* Idle connections past their idle timeout or maximum age, taken out of
 * their pools. Called with the lock held; *next gets the next expiry. */
static struct shim_conn *take_expired(double now, double *next)
{
    const struct pqshim_config *c = config_get();
    struct shim_conn *expired = NULL;
    *next = now + 60;
    for (struct pool *p = pools; p; p = p->hh.next) {
        struct shim_conn **pp = &p->idle;
        while (*pp) {
            struct shim_conn *sc = *pp;
            double idle_end = c->idle_timeout > 0 ? sc->idle_since + c->idle_timeout : 1e18;
            double age_end = c->pool_recycle > 0 ? sc->opened + c->pool_recycle : 1e18;
            double end = idle_end < age_end ? idle_end : age_end;
            if (end <= now) {
                take_for_close(p, pp, idle_end <= age_end ? "idle_timeout" : "recycle",
                               &expired);
                continue;
            }
            if (end < *next)
                *next = end;
            pp = &sc->next;
        }
    }
    return expired;
}

static void close_list(struct shim_conn *list)
{
    while (list) {
        struct shim_conn *sc = list;
        list = sc->next;
        sc->next = NULL;
        pool_move(sc, CONN_CLOSED, sc->close_reason);
    }
}

static void *janitor_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool_lock);
    pid_t mine = pqshim_pid;
    for (;;) {
        double next;
        struct shim_conn *expired = take_expired(now_monotonic(), &next);
        if (expired) {
            pthread_mutex_unlock(&pool_lock);
            close_list(expired);
            pthread_mutex_lock(&pool_lock);
            continue;
        }
        janitor_wake_at = next;
        struct timespec ts = abs_monotonic(next);
        pthread_cond_timedwait(&janitor_cond, &pool_lock, &ts);
        if (pqshim_pid != mine)
            break; /* cannot happen (threads do not survive fork); belt */
    }
    pthread_mutex_unlock(&pool_lock);
    return NULL;
}

void pool_close_later(struct shim_conn *sc, const char *reason)
{
    pthread_mutex_lock(&pool_lock);
    count_move(sc->pool, sc, sc->state, CONN_CLOSING, sc->owner);
    sc->close_reason = reason;
    sc->next = closing;
    closing = sc;
    void (*wake)(void) = async_kick;
    pthread_mutex_unlock(&pool_lock);
    if (wake)
        wake();
}

void pool_close_pending(void)
{
    pthread_mutex_lock(&pool_lock);
    struct shim_conn *list = closing;
    closing = NULL;
    pthread_mutex_unlock(&pool_lock);
    close_list(list);
}

int pool_close_idle(const char *reason, bool forever)
{
    struct shim_conn *list = NULL;
    int n = 0;
    pthread_mutex_lock(&pool_lock);
    for (struct pool *p = pools; p; p = p->hh.next) {
        p->generation++;
        if (forever)
            p->disposing = true;
        for (; p->idle; n++)
            take_for_close(p, &p->idle, reason, &list);
    }
    pthread_mutex_unlock(&pool_lock);
    close_list(list);
    return n;
}

static void close_idle_at_exit(void)
{
    (void)pool_close_idle("exit", true);
}

/* atexit handlers run newest first. OpenSSL registers its own cleanup when
 * the first TLS connection initialises it; registering again after that
 * keeps our polite close of TLS connections ahead of OpenSSL's teardown. */
void pool_close_at_exit(bool ssl)
{
    static atomic_bool registered, registered_after_ssl;
    if (!atomic_exchange(&registered, true))
        atexit(close_idle_at_exit);
    if (ssl && !atomic_exchange(&registered_after_ssl, true))
        atexit(close_idle_at_exit);
}

int pool_close_contended(void)
{
    /* At most as many per target as there are waiters: one waiter must
     * not empty every pool on the host. */
    int budget[HOST_TARGETS_MAX];
    for (int i = 0; i < HOST_TARGETS_MAX; i++)
        budget[i] = -1;
    struct shim_conn *list = NULL;
    int n = 0;
    pthread_mutex_lock(&pool_lock);
    for (struct pool *p = pools; p; p = p->hh.next) {
        struct shim_conn **pp = &p->idle;
        while (*pp) {
            int slot = (*pp)->host_slot;
            int *left = slot >= 0 ? &budget[HOST_SLOT_TARGET(slot)] : NULL;
            if (left && *left < 0)
                *left = hostlimit_contended(slot) ? hostlimit_waiters(slot) : 0;
            if (!left || *left <= 0) {
                pp = &(*pp)->next;
                continue;
            }
            (*left)--;
            p->stats.host_yields_total++;
            take_for_close(p, pp, "host_demand", &list);
            n++;
        }
    }
    pthread_mutex_unlock(&pool_lock);
    close_list(list);
    return n;
}

void pool_lock_for_fork(void)
{
    pthread_mutex_lock(&pool_lock);
}

void pool_unlock_after_fork(void)
{
    pthread_mutex_unlock(&pool_lock);
}

void pool_forget_after_fork(void)
{
    /* Async-signal-safe only: close our copies of the parent's idle
     * sockets (the parent's sessions live on) and drop every pool. The
     * memory stays with the child's copy of the heap. */
    for (struct pool *p = pools; p; p = p->hh.next)
        for (struct shim_conn *sc = p->idle; sc; sc = sc->next)
            if (sc->fd >= 0)
                close(sc->fd);
    for (struct shim_conn *sc = closing; sc; sc = sc->next)
        if (sc->fd >= 0)
            close(sc->fd);
    pools = NULL;
    closing = NULL;
    janitor_started = false;
    pthread_mutex_unlock(&pool_lock); /* taken before the fork */
}

struct shim_conn *pool_borrow_idle(struct pool *p)
{
    struct shim_conn *sc = NULL;
    pthread_mutex_lock(&pool_lock);
    if (p->idle)
        take_for_close(p, &p->idle, "dead", &sc);
    pthread_mutex_unlock(&pool_lock);
    return sc;
}

void pool_return_borrowed(struct shim_conn *sc, bool alive)
{
    struct pool *p = sc->pool;
    if (!alive) {
        pool_move(sc, CONN_CLOSED, "dead");
        return;
    }
    pthread_mutex_lock(&pool_lock);
    push_idle(p, sc);
    serve_waiters(p);
    pthread_mutex_unlock(&pool_lock);
}
