/*
 * pool_wait.c — waiting in line at the cap: blocking waiters (a thread
 * asleep in pool_acquire) and asynchronous ones (an event-loop program's
 * connect, gate.c), one FIFO queue per pool, and the pause.
 *
 * Waiters are served in arrival order by handing them a connection (or a
 * slot to open one) directly, so a thread arriving later can never barge
 * ahead of one already waiting. Separate from the bookkeeping below it
 * (pool_count.c) and from the moves that make room (pool.c), which call
 * serve_waiters() whenever something is given back.
 */
#define _GNU_SOURCE
#include "pool_internal.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>

static void (*async_granted)(void *cookie, double wait_ms);
void (*async_kick)(void);
/* Idle connections taken out for an asynchronous waiter's slot: closed by
 * pool_close_pending() on the thread async_kick wakes, never under the
 * lock and never on a thread that must not block. */
struct shim_conn *closing;
bool paused;

/* Give waiting threads what has become available: idle connections first,
 * then room under the cap. Called with the lock held. */
void serve_waiters(struct pool *p)
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

/* Give sc (checked out) to the first, blocking, waiter of p. Called with
 * the lock held. */
void hand_to_waiter(struct pool *p, struct shim_conn *sc)
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

/* The blocking half of pool_acquire(): queue the calling thread and sleep
 * until it is served or times out. Lock held on entry, released on return. */
enum acquire_result wait_in_line(struct pool *p, const struct target *t,
                                 struct acquire *a, double start)
{
    const struct pqshim_config *cfg = config_get();
    pthread_t self = pthread_self();
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
