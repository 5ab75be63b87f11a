/*
 * pool_count.c — the pools and what they hold: one pool per target, its
 * counters, its idle list (LIFO) and its statistics.
 *
 * Accounting per pool: open = idle + checked_out + being opened, kept by
 * count_move() alone; open never exceeds pool_size + max_overflow. Separate
 * from the waiting (pool_wait.c) and from the moves callers make (pool.c):
 * this is the bookkeeping both rely on, and it calls neither.
 *
 * Idle connections are reused LIFO: the most recently used one is the most
 * likely to be alive and warm, and the surplus at the bottom of the stack
 * ages out through the idle timeout when demand drops.
 */
#define _GNU_SOURCE
#include "pool_internal.h"

#include <poll.h>
#ifdef PQSHIM_DEBUG
#include <assert.h>
#endif
#include <stdlib.h>
#include <string.h>

struct owner {
    pthread_t tid;
    int held;
    struct owner *next;
};

struct pool *pools;
pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

int cap_of(void)
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

int owner_held(struct pool *p, pthread_t tid)
{
    struct owner **o = find_owner(p, tid);
    return *o ? (*o)->held : 0;
}

/* ---- a connection's life: the counters follow the state ------------- */

/* The counter of p a connection in state s is counted in; NULL when it
 * holds no room in p (not yet, or no longer). */
int *bucket_of(struct pool *p, enum conn_state s)
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
void count_move(struct pool *p, struct shim_conn *sc,
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
void reserve(struct pool *p)
{
    count_move(p, NULL, CONN_CLOSED, CONN_CONNECTING, pthread_self());
}

/* sc (checked out) now belongs to thread tid. Lock held. */
void hand_over(struct pool *p, struct shim_conn *sc, pthread_t tid)
{
    owner_remove(p, sc->owner);
    sc->owner = tid;
    owner_add(p, tid);
    p->stats.checkouts_total++;
}

/* Check out to tid the idle connection ready_idle() picks. Lock held. */
struct shim_conn *checkout_idle(struct pool *p, pthread_t tid)
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
void push_idle(struct pool *p, struct shim_conn *sc)
{
    sc->next = p->idle;
    p->idle = sc;
    count_move(p, sc, sc->state, CONN_IDLE, pthread_self());
}

/* Take the idle connection *link (a link of p's idle list) out for
 * closing, onto *list: it counts as checked out by the caller until it is
 * closed. Called with the lock held. */
void take_for_close(struct pool *p, struct shim_conn **link,
                           const char *reason, struct shim_conn **list)
{
    struct shim_conn *sc = *link;
    *link = sc->next;
    count_move(p, sc, CONN_IDLE, CONN_CLOSING, pthread_self());
    sc->close_reason = reason;
    sc->next = *list;
    *list = sc;
}

struct pool *find_or_create(const struct target *t)
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
        HASH_FIND_BYHASHVALUE(hh, pools, t->key, t->key_len, t->key_hashv, found);
        if (found)
            HASH_DEL(pools, found);
        free(p);
        return NULL;
    }
    return p;
}

bool pool_capped(const struct pool *p)
{
    return p->capped; /* set once, when the pool is made */
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

void pool_count_yield(struct pool *p)
{
    pthread_mutex_lock(&pool_lock);
    p->stats.host_yields_total++;
    pthread_mutex_unlock(&pool_lock);
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


void pool_params(struct pool *p, char *out, size_t size)
{
    pthread_mutex_lock(&pool_lock);
    memcpy(out, p->params, size < sizeof p->params ? size : sizeof p->params);
    pthread_mutex_unlock(&pool_lock);
}
