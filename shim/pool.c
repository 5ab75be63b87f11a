/*
 * pool.c — capped pools: one per target, idle lists, the cap, waiting.
 *
 * Accounting per pool: open = idle + checked_out + being opened, kept by
 * count_move() alone; open never exceeds pool_size + max_overflow. Waiters are served in arrival order by
 * handing them a connection (or a slot to open one) directly, so a thread
 * arriving later can never barge ahead of one already waiting.
 *
 * Idle connections are reused LIFO: the most recently used one is the most
 * likely to be alive and warm, and the surplus at the bottom of the stack
 * ages out through the idle timeout when demand drops.
 */
#define _GNU_SOURCE
#include "pool.h"
#include "hostlimit.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#ifdef PQSHIM_DEBUG
#include <assert.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct waiter;


struct pool {
    char key[TARGET_KEY_MAX];
    char name[TARGET_NAME_MAX];
    char params[TARGET_KEY_MAX]; /* see struct target (password inside) */
    /* Kept by count_move() alone (pool.c): open = opening + checked_out +
     * idle_count, checked in debug builds (PQSHIM_DEBUG). */
    int open;
    int opening;      /* room taken for a connection being opened */
    int checked_out;  /* includes those taken out to be closed */
    int idle_count;
    int waiting;
    bool capped;      /* false: the null policy only counts */
    bool disposing;   /* at exit: close at checkin instead of keeping */
    unsigned generation; /* dispose: older connections close at checkin */
    struct shim_conn *idle;   /* LIFO stack */
    struct waiter *wait_head, *wait_tail;
    struct owner *owners;     /* checkouts per thread (self-deadlock) */
    struct pool_stats stats;
    UT_hash_handle hh;
};

struct owner {
    pthread_t tid;
    int held;
    struct owner *next;
};

/* A blocking waiter lives on its thread's stack and sleeps on cond. An
 * asynchronous one (async: an event-loop program's connect) is allocated
 * here, carries its caller's cookie, and is only ever given a slot: its
 * PGconn already exists, so it opens a new connection when served. */
struct waiter {
    pthread_cond_t cond;
    pthread_t tid;
    bool done;
    bool async;
    void *cookie;
    double since;
    struct shim_conn *conn; /* handed over; NULL with done: a slot */
    struct waiter *next;
};

static void (*async_granted)(void *cookie, double wait_ms);
static void (*async_kick)(void);
/* Idle connections taken out for an asynchronous waiter's slot: closed by
 * pool_close_pending() on the thread async_kick wakes, never under the
 * lock and never on a thread that must not block. */
static struct shim_conn *closing;

static struct pool *pools;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static bool paused;
static pthread_cond_t janitor_cond;
static bool janitor_started;
static double janitor_wake_at;

static int cap_of(void)
{
    const struct pqshim_config *c = config_get();
    return c->pool_size + c->max_overflow;
}

static struct owner **find_owner(struct pool *p, pthread_t tid)
{
    struct owner **o = &p->owners;
    while (*o && !pthread_equal((*o)->tid, tid))
        o = &(*o)->next;
    return o;
}

/* Count a checkout by tid. Allocation failure only weakens the
 * self-deadlock check, never the cap. */
static void owner_add(struct pool *p, pthread_t tid)
{
    struct owner **o = find_owner(p, tid);
    if (!*o) {
        *o = calloc(1, sizeof **o);
        if (!*o)
            return;
        (*o)->tid = tid;
    }
    (*o)->held++;
}

static void owner_remove(struct pool *p, pthread_t tid)
{
    struct owner **o = find_owner(p, tid);
    if (*o && --(*o)->held <= 0) {
        struct owner *dead = *o;
        *o = dead->next;
        free(dead);
    }
}

static int owner_held(struct pool *p, pthread_t tid)
{
    struct owner **o = find_owner(p, tid);
    return *o ? (*o)->held : 0;
}

/* ---- a connection's life: the counters follow the state ------------- */

/* The counter of p a connection in state s is counted in; NULL when it
 * holds no room in p (not yet, or no longer). */
static int *bucket_of(struct pool *p, enum conn_state s)
{
    switch (s) {
    case CONN_CONNECTING:
        return &p->opening;
    case CONN_IDLE:
        return &p->idle_count;
    case CONN_OPEN:
    case CONN_RESETTING:
    case CONN_SETTLING:
    case CONN_RECONNECTING:
    case CONN_CLOSING:
        return &p->checked_out;
    case CONN_SYNTHETIC:
    case CONN_CLOSED:
    case CONN_FORGOTTEN:
    case CONN_FAILED:
        break;
    }
    return NULL;
}

/* How many idle connections a checkout looks at for a settled reset. */
#define READY_SCAN 8

/* The link to the idle connection to hand out: the most recent whose reset
 * has been answered (or needs none), else the most recent. A program that
 * reconnects at once would otherwise always wait a round trip for the
 * reset it has just sent while older connections sit ready. Telling costs
 * one poll() with a zero timeout, which never blocks (so it may run under
 * the lock), and only when the newest one's reset is still in flight. */
static struct shim_conn **ready_idle(struct pool *p)
{
    struct pollfd fds[READY_SCAN];
    struct shim_conn **links[READY_SCAN];
    int n = 0;
    struct shim_conn **settled = NULL, **l;
    for (l = &p->idle; *l && n < READY_SCAN; l = &(*l)->next) {
        if (!(*l)->reset_pending) {
            settled = l;
            break;
        }
        fds[n] = (struct pollfd){.fd = (*l)->fd, .events = POLLIN};
        links[n++] = l;
    }
    if (n == 0)
        return &p->idle;
    if (n > 1 || settled) {
        if (poll(fds, (nfds_t)n, 0) > 0)
            for (int i = 0; i < n; i++)
                if (fds[i].revents)
                    return links[i];
    }
    return settled ? settled : &p->idle;
}

/* Debug builds stop at the first wrong count; a release build never
 * aborts its host over bookkeeping. */
static void check_counts(const struct pool *p)
{
#ifdef PQSHIM_DEBUG
    int idle = 0;
    for (const struct shim_conn *sc = p->idle; sc; sc = sc->next)
        idle++;
    assert(p->opening >= 0 && p->checked_out >= 0 && p->idle_count >= 0);
    assert(p->open == p->opening + p->checked_out + p->idle_count);
    assert(idle == p->idle_count);
#else
    (void)p;
#endif
}

/* Count a move of sc (NULL: room reserved without a connection) from
 * state `from` to `to`, checked out by tid when `to` is a checked-out
 * state. The only place the counters change. Called with the lock held. */
static void count_move(struct pool *p, struct shim_conn *sc,
                       enum conn_state from, enum conn_state to, pthread_t tid)
{
    int *a = bucket_of(p, from), *b = bucket_of(p, to);
    if (sc)
        sc->state = to;
    if (a == b)
        return;
    if (a == &p->checked_out) {
        owner_remove(p, sc->owner);
        if (!b)
            p->stats.closes_total++;
    }
    if (a == &p->opening && b == &p->checked_out) {
        p->stats.connects_total++;
        sc->generation = p->generation;
    }
    if (a == &p->opening && (to == CONN_FAILED || to == CONN_SYNTHETIC))
        p->stats.connect_errors_total++;
    if (a)
        (*a)--;
    else
        p->open++;
    if (b)
        (*b)++;
    else
        p->open--;
    if (b == &p->checked_out) {
        sc->owner = tid;
        owner_add(p, tid);
        if (to != CONN_CLOSING)
            p->stats.checkouts_total++;
    }
    check_counts(p);
}

/* Room for one connection about to be opened. Lock held. */
static void reserve(struct pool *p)
{
    count_move(p, NULL, CONN_CLOSED, CONN_CONNECTING, pthread_self());
}

/* sc (checked out) now belongs to thread tid. Lock held. */
static void hand_over(struct pool *p, struct shim_conn *sc, pthread_t tid)
{
    owner_remove(p, sc->owner);
    sc->owner = tid;
    owner_add(p, tid);
    p->stats.checkouts_total++;
}

/* Check out to tid the idle connection ready_idle() picks. Lock held. */
static struct shim_conn *checkout_idle(struct pool *p, pthread_t tid)
{
    struct shim_conn **link = ready_idle(p), *sc = *link;
    if (sc) {
        *link = sc->next;
        sc->next = NULL;
        count_move(p, sc, CONN_IDLE, CONN_OPEN, tid);
    }
    return sc;
}

/* Put sc (checked out) on top of p's idle list. Lock held. */
static void push_idle(struct pool *p, struct shim_conn *sc)
{
    sc->next = p->idle;
    p->idle = sc;
    count_move(p, sc, sc->state, CONN_IDLE, pthread_self());
}

/* Give waiting threads what has become available: idle connections first,
 * then room under the cap. Called with the lock held. */
static void take_for_close(struct pool *p, struct shim_conn **link,
                           const char *reason, struct shim_conn **list);

static void serve_waiters(struct pool *p)
{
    while (p->wait_head && !paused) {
        struct waiter *w = p->wait_head;
        if (w->async) {
            /* A slot only. At the cap, an idle connection makes room:
             * it is closed elsewhere, and its release serves w then. */
            if (p->open >= cap_of()) {
                if (p->idle && async_kick) {
                    take_for_close(p, &p->idle, "handoff", &closing);
                    async_kick();
                }
                return;
            }
            reserve(p);
            p->wait_head = w->next;
            if (!p->wait_head)
                p->wait_tail = NULL;
            p->waiting--;
            double ms = (now_monotonic() - w->since) * 1000.0;
            p->stats.wait_ms_total += ms;
            async_granted(w->cookie, ms);
            free(w);
            continue;
        }
        if (!p->idle && p->open >= cap_of())
            return;
        struct shim_conn *sc = checkout_idle(p, w->tid);
        if (!sc)
            reserve(p);
        w->conn = sc;
        w->done = true;
        p->wait_head = w->next;
        if (!p->wait_head)
            p->wait_tail = NULL;
        p->waiting--;
        pthread_cond_signal(&w->cond);
    }
}

static void remove_waiter(struct pool *p, struct waiter *w)
{
    struct waiter **pp = &p->wait_head, *prev = NULL;
    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = w->next;
    if (p->wait_tail == w)
        p->wait_tail = prev;
    p->waiting--;
}

static struct pool *find_or_create(const struct target *t)
{
    struct pool *p = NULL;
    HASH_FIND_BYHASHVALUE(hh, pools, t->key, t->key_len, t->key_hashv, p);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    memcpy(p->key, t->key, sizeof p->key);
    snprintf(p->name, sizeof p->name, "%s", t->name);
    memcpy(p->params, t->params, sizeof p->params);
    p->capped = config_get()->policy == POLICY_CAPPED;
    pqshim_oom = false;
    HASH_ADD_KEYPTR_BYHASHVALUE(hh, pools, p->key, t->key_len, t->key_hashv, p);
    if (pqshim_oom) {
        struct pool *found = NULL;
        HASH_FIND_STR(pools, t->key, found);
        if (found)
            HASH_DEL(pools, found);
        free(p);
        return NULL;
    }
    return p;
}

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

static struct timespec abs_monotonic(double at)
{
    struct timespec ts;
    ts.tv_sec = (time_t)at;
    ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
    return ts;
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

    struct waiter w = {.tid = self};
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cond, &attr);
    pthread_condattr_destroy(&attr);
    if (p->wait_tail)
        p->wait_tail->next = &w;
    else
        p->wait_head = &w;
    p->wait_tail = &w;
    p->waiting++;
    p->stats.waits_total++;
    int waiting = p->waiting;
    pthread_mutex_unlock(&pool_lock);

    LOG_EVENT(LOG_LVL_INFO, "wait", LF_S("target", t->name),
              LF_I("open", a->open), LF_I("cap", cap_of()),
              LF_I("waiting", waiting), LF_D("timeout_s", cfg->pool_timeout));

    struct timespec deadline = abs_monotonic(start + cfg->pool_timeout);
    pthread_mutex_lock(&pool_lock);
    while (!w.done) {
        int rc = pthread_cond_timedwait(&w.cond, &pool_lock, &deadline);
        if (rc == ETIMEDOUT && !w.done) {
            remove_waiter(p, &w);
            break;
        }
    }
    a->wait_ms = (now_monotonic() - start) * 1000.0;
    p->stats.wait_ms_total += a->wait_ms;
    enum acquire_result r;
    if (!w.done) {
        p->stats.timeouts_total++;
        r = ACQ_TIMEOUT;
    } else if (w.conn) {
        a->conn = w.conn;
        a->handed = true;
        r = ACQ_IDLE;
    } else {
        r = ACQ_SLOT;
    }
    pthread_mutex_unlock(&pool_lock);
    pthread_cond_destroy(&w.cond);
    return r;
}

void pool_set_async(void (*granted)(void *cookie, double wait_ms),
                    void (*kick)(void))
{
    pthread_mutex_lock(&pool_lock);
    async_granted = granted;
    async_kick = kick;
    pthread_mutex_unlock(&pool_lock);
}

bool pool_enqueue_async(struct pool *p, void *cookie, int *waiting)
{
    struct waiter *w = calloc(1, sizeof *w);
    if (!w)
        return false;
    w->async = true;
    w->cookie = cookie;
    w->since = now_monotonic();
    pthread_mutex_lock(&pool_lock);
    if (p->wait_tail)
        p->wait_tail->next = w;
    else
        p->wait_head = w;
    p->wait_tail = w;
    p->waiting++;
    p->stats.waits_total++;
    *waiting = p->waiting;
    /* Room may have appeared since the caller was told to wait. */
    serve_waiters(p);
    pthread_mutex_unlock(&pool_lock);
    return true;
}

bool pool_cancel_async(struct pool *p, void *cookie, bool timed_out)
{
    pthread_mutex_lock(&pool_lock);
    struct waiter *w = p->wait_head;
    while (w && !(w->async && w->cookie == cookie))
        w = w->next;
    if (w) {
        remove_waiter(p, w);
        p->stats.wait_ms_total += (now_monotonic() - w->since) * 1000.0;
        if (timed_out)
            p->stats.timeouts_total++;
        free(w);
        /* Whoever queued behind w may be servable now. */
        serve_waiters(p);
    }
    pthread_mutex_unlock(&pool_lock);
    return w != NULL;
}

void pool_timeout_message(char *buf, size_t size, const struct target *t)
{
    const struct pqshim_config *c = config_get();
    snprintf(buf, size,
             "pqshim: pool limit of size %d overflow %d reached for %s, "
             "connection timed out, timeout %.2fs (PQSHIM_POOL_TIMEOUT)",
             c->pool_size, c->max_overflow, t->name, c->pool_timeout);
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

bool pool_capped(const struct pool *p)
{
    return p->capped; /* set once, when the pool is made */
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

void pool_count_reconnect(struct pool *p, bool ok)
{
    pthread_mutex_lock(&pool_lock);
    p->stats.closes_total++;
    if (ok)
        p->stats.connects_total++;
    else
        p->stats.connect_errors_total++;
    pthread_mutex_unlock(&pool_lock);
}

void pool_count_reuse(struct pool *p)
{
    pthread_mutex_lock(&pool_lock);
    p->stats.reuses_total++;
    pthread_mutex_unlock(&pool_lock);
}

/* Give sc (checked out) to the first, blocking, waiter of p. Called with
 * the lock held. */
static void hand_to_waiter(struct pool *p, struct shim_conn *sc)
{
    struct waiter *w = p->wait_head;
    p->wait_head = w->next;
    if (!p->wait_head)
        p->wait_tail = NULL;
    p->waiting--;
    hand_over(p, sc, w->tid);
    w->conn = sc;
    w->done = true;
    pthread_cond_signal(&w->cond);
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

void pool_count_yield(struct pool *p)
{
    pthread_mutex_lock(&pool_lock);
    p->stats.host_yields_total++;
    pthread_mutex_unlock(&pool_lock);
}

/* Take the idle connection *link (a link of p's idle list) out for
 * closing, onto *list: it counts as checked out by the caller until it is
 * closed. Called with the lock held. */
static void take_for_close(struct pool *p, struct shim_conn **link,
                           const char *reason, struct shim_conn **list)
{
    struct shim_conn *sc = *link;
    *link = sc->next;
    count_move(p, sc, CONN_IDLE, CONN_CLOSING, pthread_self());
    sc->close_reason = reason;
    sc->next = *list;
    *list = sc;
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

void pool_set_paused(bool on)
{
    pthread_mutex_lock(&pool_lock);
    paused = on;
    if (!on)
        for (struct pool *p = pools; p; p = p->hh.next)
            serve_waiters(p);
    pthread_mutex_unlock(&pool_lock);
}

bool pool_paused(void)
{
    pthread_mutex_lock(&pool_lock);
    bool r = paused;
    pthread_mutex_unlock(&pool_lock);
    return r;
}

struct oldest {
    struct pool *pool;
    double since;
};

struct oldest_scan {
    struct oldest *items;
    int n;
};

static void note_oldest(const struct shim_conn *sc, void *arg)
{
    struct oldest_scan *scan = arg;
    if (sc->state != CONN_OPEN || !sc->pool)
        return;
    for (int i = 0; i < scan->n; i++) {
        if (scan->items[i].pool == sc->pool) {
            if (sc->checked_out_at < scan->items[i].since)
                scan->items[i].since = sc->checked_out_at;
            return;
        }
    }
}

int pool_snapshot(struct pool_view **out)
{
    /* Copy the numbers under the pool lock, release it, then find each
     * pool's oldest checkout under the registry lock alone: the registry
     * comes first in the lock order, so the two are never nested here. */
    pthread_mutex_lock(&pool_lock);
    int n = (int)HASH_COUNT(pools);
    struct pool_view *views = calloc((size_t)n + 1, sizeof *views);
    struct oldest *items = calloc((size_t)n + 1, sizeof *items);
    if (!views || !items) {
        pthread_mutex_unlock(&pool_lock);
        free(views);
        free(items);
        return -1;
    }
    int i = 0;
    for (struct pool *p = pools; p && i < n; p = p->hh.next, i++) {
        struct pool_view *v = &views[i];
        v->pool = p;
        snprintf(v->name, sizeof v->name, "%s", p->name);
        v->capped = p->capped;
        v->open = p->open;
        v->checked_out = p->checked_out;
        v->idle = p->idle_count;
        v->waiting = p->waiting;
        v->stats = p->stats;
        items[i].pool = p;
        items[i].since = 1e300;
    }
    pthread_mutex_unlock(&pool_lock);
    /* Pools are never freed (except in a forked child's copy), so the
     * pointers stay valid for matching. */
    struct oldest_scan scan = {items, n};
    registry_for_each(note_oldest, &scan);
    double now = now_monotonic();
    for (i = 0; i < n; i++)
        views[i].oldest_checkout_s = items[i].since < 1e299 ? now - items[i].since : 0;
    free(items);
    *out = views;
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
    pthread_mutex_init(&pool_lock, NULL);
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

void pool_params(struct pool *p, char *out, size_t size)
{
    pthread_mutex_lock(&pool_lock);
    memcpy(out, p->params, size < sizeof p->params ? size : sizeof p->params);
    pthread_mutex_unlock(&pool_lock);
}
