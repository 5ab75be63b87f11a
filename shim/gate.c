/*
 * gate.c — the waiting room of asynchronous connects: the gates of this
 * process, their queues, and the keeper thread that opens them when a
 * caller's turn comes (see gate.h for the idea; the sockets and what they
 * say to libpq are in gate_socket.c).
 *
 * The gates live in a directory of our own (mode 0700, unpredictable
 * name): nobody else can put a socket where libpq will look, now or when
 * the program later calls PQreset on the same PGconn (libpq then finds no
 * gate, fails over to the server at once, and says nothing once it is
 * connected).
 *
 * Ownership: a gate that waits (GATE_POOL, GATE_HOST, GATE_TIMER) is on
 * the keeper's list and only the keeper acts on it; once open or failed it
 * belongs to the connection's owner again. A program that finishes a
 * waiting PGconn takes the gate off the list itself, unless the keeper is
 * busy with it right then: it is marked abandoned and the keeper cleans
 * up. Lock order: registry, gate, pool, host slots (see pqshim.h).
 */
#define _GNU_SOURCE
#include "gate.h"
#include "gate_private.h"
#include "config.h"
#include "log.h"
#include "thread.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How often the keeper checks its host-wide tickets (and keeps their
 * heartbeat) while any is queued. */
#define KEEPER_HOST_POLL_S 0.01

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int live_gates;
static struct gate *all_gates;
static struct gate *waiting_gates;
static bool keeper_started;
static _Atomic uint32_t kicks;

static long futex(_Atomic uint32_t *word, int op, uint32_t val,
                  const struct timespec *timeout)
{
    return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

static void kick(void)
{
    atomic_fetch_add(&kicks, 1);
    futex(&kicks, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* ---- gates -------------------------------------------------------------- */

static void gate_free(struct gate *g)
{
    pthread_mutex_lock(&gate_lock);
    if (g->prev)
        g->prev->next = g->next;
    else
        all_gates = g->next;
    if (g->next)
        g->next->prev = g->prev;
    pthread_mutex_unlock(&gate_lock);
    gate_close_fds(g);
    free(g);
    atomic_fetch_sub(&live_gates, 1);
}

struct gate *gate_start(const struct target *t, PGconn **pg, const char **why)
{
    const struct real_libpq *pq = real_libpq();
    *pg = NULL;
    struct gate *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    atomic_fetch_add(&live_gates, 1);
    g->peer_fd = g->listen_fd = -1;
    g->host_slot = HOST_SLOT_NONE;
    g->host.entry = -1;
    memcpy(&g->target, t, sizeof g->target);
    pthread_mutex_lock(&gate_lock);
    if (gate_ensure_dir())
        g->listen_fd = listen_gate(&g->port);
    if (g->listen_fd >= 0) {
        g->next = all_gates;
        if (all_gates)
            all_gates->prev = g;
        all_gates = g;
    }
    pthread_mutex_unlock(&gate_lock);
    if (g->listen_fd < 0) {
        *why = "no private socket directory";
        free(g);
        atomic_fetch_sub(&live_gates, 1);
        return NULL;
    }
    const char *kw[MAX_PARAMS + 1], *val[MAX_PARAMS + 1];
    char host[TARGET_KEY_MAX], hostaddr[TARGET_KEY_MAX], ports[TARGET_KEY_MAX];
    PGconn *conn = NULL;
    if (gated_params(t, g->port, kw, val, host, hostaddr, ports, sizeof host))
        conn = pq->PQconnectStartParams(kw, val, 0);
    /* libpq has connected to the gate by now; anything else (out of
     * memory, options it refuses) falls back to the plain way. */
    if (!conn || pq->PQstatus(conn) == CONNECTION_BAD) {
        if (conn)
            pq->PQfinish(conn);
        gate_free(g);
        return NULL;
    }
    *pg = conn;
    return g;
}

/* Let libpq through (or fail it). A restart of the PGconn may still be
 * on its way to the gate: then knock again shortly, for up to a second
 * (libpq that never comes has gone elsewhere). */
static void deliver(struct gate *g, bool fail)
{
    bool told = fail ? gate_answer(g, "53300", g->message, GATE_FAILED)
                     : gate_answer(g, "57P03", "pqshim: the connection may proceed",
                              GATE_OPEN);
    if (told || ++g->knocks > 100) {
        g->phase = fail ? GATE_FAILED : GATE_OPEN;
        return;
    }
    g->failing = fail;
    g->open_at = now_monotonic() + 0.01;
    g->phase = GATE_TIMER;
}

static void open_gate(struct gate *g)
{
    deliver(g, false);
}

static void fail_gate(struct gate *g)
{
    deliver(g, true);
}

void gate_open_now(struct gate *g)
{
    /* libpq connected to the gate inside PQconnectStartParams. */
    if (!gate_answer(g, "57P03", "pqshim: the connection may proceed", GATE_OPEN))
        g->phase = GATE_OPEN;
}

enum gate_phase gate_phase(const struct gate *g)
{
    /* Stored last by the keeper, after the slots it acquired. */
    return atomic_load(&g->phase);
}

/* ---- the keeper ----------------------------------------------------------- */

static void granted(void *cookie, double wait_ms)
{
    (void)wait_ms;
    struct gate *g = cookie;
    atomic_store(&g->granted, true);
    kick();
}

/* Give back whatever g still holds (it is off the keeper's list). */
static void release_held(struct gate *g)
{
    if (g->phase == GATE_POOL && g->pool && !pool_cancel_async(g->pool, g, false))
        g->pool_slot = g->pool; /* granted meanwhile: a slot to give back */
    if (g->host_queued)
        hostlimit_leave(&g->host);
    g->host_queued = false;
    if (!g->slots_taken)
        pool_unreserve(g->pool_slot, g->host_slot, false);
    g->host_slot = HOST_SLOT_NONE;
    g->pool_slot = NULL;
}

static void log_timeout(struct gate *g, bool host)
{
    const struct pqshim_config *c = config_get();
    double ms = (now_monotonic() - g->since) * 1000.0;
    if (host)
        LOG_EVENT(LOG_LVL_ERROR, "host_timeout", LF_S("target", g->target.name),
                  LF_I("limit", c->host_limit), LF_D("wait_ms", ms),
                  LF_I("async", 1));
    else
        LOG_EVENT(LOG_LVL_ERROR, "timeout", LF_S("target", g->target.name),
                  LF_I("size", c->pool_size), LF_I("overflow", c->max_overflow),
                  LF_D("wait_ms", ms), LF_I("async", 1));
}

/* Take a host-wide slot or queue for one; open when possible. */
static void try_host(struct gate *g)
{
    bool must_wait;
    int slot = hostlimit_try(&g->target, &must_wait);
    if (!must_wait) {
        g->host_slot = slot;
        open_gate(g);
        return;
    }
    hostlimit_enqueue(&g->target, &g->host, true);
    g->host_queued = true;
    g->phase = GATE_HOST;
}

/* One look at a waiting gate (busy: outside the lock). */
static void keeper_step(struct gate *g, double now)
{
    switch (g->phase) {
    case GATE_POOL:
        if (!atomic_load(&g->granted)) {
            if (now < g->deadline)
                return;
            if (pool_cancel_async(g->pool, g, true)) {
                log_timeout(g, false);
                fail_gate(g);
                return;
            }
        }
        g->pool_slot = g->pool; /* granted */
        try_host(g);
        if (g->phase != GATE_HOST)
            return;
        /* perhaps it is our turn already */
        __attribute__((fallthrough));
    case GATE_HOST: {
        int slot = hostlimit_poll(&g->host);
        if (slot == HOST_SLOT_TIMEOUT && now < g->deadline) {
            g->next_poll = now + KEEPER_HOST_POLL_S;
            return;
        }
        hostlimit_leave(&g->host);
        g->host_queued = false;
        if (slot != HOST_SLOT_TIMEOUT) {
            g->host_slot = slot;
            open_gate(g);
            return;
        }
        hostlimit_timeout_message(g->message, sizeof g->message, &g->target);
        log_timeout(g, true);
        release_held(g);
        fail_gate(g);
        return;
    }
    case GATE_TIMER:
        if (now >= g->open_at)
            deliver(g, g->failing);
        return;
    case GATE_OPEN:
    case GATE_FAILED:
        return;
    }
}

static bool needs_step(const struct gate *g, double now, double *next)
{
    double at;
    switch (g->phase) {
    case GATE_POOL:
        if (atomic_load(&g->granted))
            return true;
        at = g->deadline;
        break;
    case GATE_HOST:
        at = g->next_poll < g->deadline ? g->next_poll : g->deadline;
        break;
    case GATE_TIMER:
        at = g->open_at;
        break;
    default:
        return true;
    }
    if (at <= now)
        return true;
    if (at < *next)
        *next = at;
    return false;
}

static void unlist(struct gate *g)
{
    struct gate **pp = &waiting_gates;
    while (*pp && *pp != g)
        pp = &(*pp)->wait_next;
    if (*pp)
        *pp = g->wait_next;
    g->wait_next = NULL;
    g->waiting = false;
}

static void *keeper_main(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t seen = atomic_load(&kicks);
        pool_close_pending();
        double now = now_monotonic(), next = now + 3600;
        bool stepped = false;
        pthread_mutex_lock(&gate_lock);
        struct gate *g = waiting_gates;
        while (g) {
            if (g->busy || !needs_step(g, now, &next)) {
                g = g->wait_next;
                continue;
            }
            g->busy = true;
            stepped = true;
            pthread_mutex_unlock(&gate_lock);
            keeper_step(g, now);
            pthread_mutex_lock(&gate_lock);
            g->busy = false;
            struct gate *after = g->wait_next;
            if (g->phase == GATE_OPEN || g->phase == GATE_FAILED || g->abandoned) {
                unlist(g);
                if (g->abandoned) {
                    pthread_mutex_unlock(&gate_lock);
                    release_held(g);
                    gate_free(g);
                    pthread_mutex_lock(&gate_lock);
                    after = waiting_gates; /* the list may have changed */
                }
            }
            g = after;
            now = now_monotonic();
        }
        pthread_mutex_unlock(&gate_lock);
        /* A stepped gate's next time was not folded into next: look
         * again (it will not need a step right away). */
        if (stepped || atomic_load(&kicks) != seen)
            continue;
        double wait = next - now_monotonic();
        if (wait <= 0)
            continue;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        futex(&kicks, FUTEX_WAIT_PRIVATE, seen, &ts);
    }
    return NULL;
}

static bool ensure_keeper_locked(void)
{
    if (!keeper_started) {
        pool_set_async(granted, kick);
        keeper_started = start_internal_thread(keeper_main);
    }
    return keeper_started;
}

bool gate_ensure_keeper(void)
{
    pthread_mutex_lock(&gate_lock);
    bool ok = ensure_keeper_locked();
    pthread_mutex_unlock(&gate_lock);
    return ok;
}

/* Put g on the keeper's list, starting the keeper on first use. */
static void hand_to_keeper(struct gate *g, enum gate_phase phase)
{
    pthread_mutex_lock(&gate_lock);
    ensure_keeper_locked();
    g->phase = phase;
    g->waiting = true;
    g->wait_next = waiting_gates;
    waiting_gates = g;
    pthread_mutex_unlock(&gate_lock);
    kick();
}

bool gate_wait_pool(struct gate *g, struct pool *pool, double deadline,
                    const char *message, int *waiting)
{
    g->pool = pool;
    g->deadline = deadline;
    g->since = now_monotonic();
    snprintf(g->message, sizeof g->message, "%s", message);
    /* On the keeper's list first: a grant from inside the enqueue then
     * finds the gate where the keeper looks. */
    hand_to_keeper(g, GATE_POOL);
    if (pool_enqueue_async(pool, g, waiting))
        return true;
    pthread_mutex_lock(&gate_lock);
    unlist(g);
    pthread_mutex_unlock(&gate_lock);
    g->pool = NULL;
    return false;
}

void gate_wait_host(struct gate *g, struct pool *pool_slot,
                    const struct host_ticket *tk, double deadline,
                    const char *message)
{
    g->pool_slot = pool_slot;
    g->host = *tk;
    g->host_queued = true;
    g->deadline = deadline;
    g->since = now_monotonic();
    snprintf(g->message, sizeof g->message, "%s", message);
    hand_to_keeper(g, GATE_HOST);
}

void gate_rearm(struct gate *g, double delay)
{
    /* The keeper closes the previous round's end: it may still be
     * finishing with it. */
    g->stale_peer = true;
    g->open_at = now_monotonic() + delay;
    g->knocks = 0;
    g->failing = false;
    hand_to_keeper(g, GATE_TIMER);
}

void gate_take_slots(struct gate *g, struct pool **pool, int *host_slot)
{
    if (g->slots_taken)
        return;
    if (g->pool_slot)
        *pool = g->pool_slot;
    if (g->host_slot != HOST_SLOT_NONE)
        *host_slot = g->host_slot;
    g->slots_taken = true;
}

char *gate_error_message(struct gate *g, const char *libpq_message)
{
    if (g->phase == GATE_FAILED) {
        char *m = malloc(strlen(g->message) + 2);
        if (m)
            sprintf(m, "%s\n", g->message);
        return m;
    }
    /* Drop every line that names the gate's socket. */
    char mark[120];
    snprintf(mark, sizeof mark, "%s/.s.PGSQL.", gate_dir);
    const char *in = libpq_message ? libpq_message : "";
    char *out = malloc(strlen(in) + 1), *o = out;
    if (!out)
        return NULL;
    while (*in) {
        const char *end = strchr(in, '\n');
        size_t len = end ? (size_t)(end - in) + 1 : strlen(in);
        if (!memmem(in, len, mark, strlen(mark))) {
            memcpy(o, in, len);
            o += len;
        }
        in += len;
    }
    *o = '\0';
    return out;
}

bool gate_any(void)
{
    return atomic_load_explicit(&live_gates, memory_order_relaxed) > 0;
}

void gate_done(struct gate *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&gate_lock);
    if (g->busy) {
        g->abandoned = true; /* the keeper cleans up after its step */
        pthread_mutex_unlock(&gate_lock);
        kick();
        return;
    }
    if (g->waiting)
        unlist(g);
    pthread_mutex_unlock(&gate_lock);
    release_held(g);
    gate_free(g);
}

void gate_lock_for_fork(void)
{
    pthread_mutex_lock(&gate_lock);
}

void gate_unlock_after_fork(void)
{
    pthread_mutex_unlock(&gate_lock);
}

void gate_forget_after_fork(void)
{
    /* Async-signal-safe only: close our copies and forget; the memory
     * stays with the child's copy of the heap. */
    for (struct gate *g = all_gates; g; g = g->next) {
        if (g->peer_fd >= 0)
            close(g->peer_fd);
        if (g->listen_fd >= 0)
            close(g->listen_fd);
    }
    all_gates = waiting_gates = NULL;
    keeper_started = false;
    pthread_mutex_unlock(&gate_lock); /* taken before the fork */
}
