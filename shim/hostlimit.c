/*
 * hostlimit.c — a connection limit shared by every shimmed process on the
 * host, per target: the slots this process holds, waiting for one, and
 * the watcher that closes idle connections others need. The shared file,
 * its target table and its queue are hostlimit_file.c's.
 *
 * Slots are byte-range record locks (fcntl F_SETLK) on the shared file,
 * one byte per slot: the kernel drops a process's locks when it dies,
 * however it dies, so a slot can never leak. The process keeps its own
 * map of the slots it holds, and a forked child starts holding none.
 *
 * Only the oldest waiter of a target may take a freed slot; newcomers
 * join the queue while it is not empty. Whoever frees a slot wakes the
 * oldest waiter, and a slot freed by a death is found by the waiters' own
 * check every 200 ms.
 *
 * An idle pooled connection holds a slot that a waiting process may need:
 * checkins close instead of keeping a connection while anyone waits, and
 * a watcher thread (started only once a process keeps such a connection)
 * closes idle ones when a new waiter rings the file's demand counter.
 */
#define _GNU_SOURCE
#include "hostlimit.h"
#include "hostlimit_file.h"
#include "config.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Process-local state, under hl_lock. */
static uint8_t held[HL_TARGETS][(HOST_LIMIT_MAX + 7) / 8];
static bool watcher_started;
/* Our own blocking waiters, per queue entry: the pool they will take a
 * connection from, and the connection a checkin handed them (see
 * hostlimit_give). Asynchronous waiters have no pool here: they can only
 * take a slot. */
static const void *entry_pool[HL_WAITERS];
static struct shim_conn *_Atomic entry_gift[HL_WAITERS];
static pthread_t entry_tid[HL_WAITERS];
static atomic_bool target_table_full_said;

/* Per target, the foreign lock the last try ran into (see
 * hl_foreign_lock): the timeout then names it instead of a full limit. */
static _Atomic pid_t blocked_by[HL_TARGETS];

/* Take a free slot of target under limit; -1 if none. */
static int try_slot(int target, int limit)
{
    int slot = -1;
    pid_t foreign = 0;
    pthread_mutex_lock(&hl_lock);
    for (int s = 0; s < limit && slot < 0; s++) {
        if (bit(held[target], s))
            continue;
        off_t byte = HL_SLOT_BYTE(target * HOST_LIMIT_MAX + s);
        if (hl_lock_byte(byte, F_WRLCK, F_SETLK) == 0) {
            set_bit(held[target], s);
            slot = target * HOST_LIMIT_MAX + s;
        } else if (errno == EAGAIN || errno == EACCES) {
            if (!foreign)
                foreign = hl_foreign_lock(byte);
        } else {
            int err = errno;
            pthread_mutex_unlock(&hl_lock);
            hl_mark_broken("cannot lock", err);
            return -1;
        }
    }
    pthread_mutex_unlock(&hl_lock);
    atomic_store(&blocked_by[target], slot >= 0 ? 0 : foreign);
    return slot;
}

/* Leave entry w; returns the connection handed to it meanwhile, if any
 * (under hl_lock: a giver either sees the entry or it is gone). */
static struct shim_conn *leave_queue(int w)
{
    bool ours = hl_still_ours(); /* never unlock bytes of the program's file */
    if (hl_mapping_ok())
        atomic_store(&hl->waiters[w].ticket, 0);
    pthread_mutex_lock(&hl_lock);
    if (ours)
        hl_lock_byte(HL_WAITER_BYTE(w), F_UNLCK, F_SETLK);
    clear_bit(own_waiter, w);
    struct shim_conn *gift = atomic_exchange(&entry_gift[w], NULL);
    entry_pool[w] = NULL;
    pthread_mutex_unlock(&hl_lock);
    return gift;
}

/* The target index for t, or -1 when the limit is not in force. */
static int limited_target(const struct target *t)
{
    const struct pqshim_config *c = config_get();
    if (c->host_limit <= 0 || !hl_attached() || !hl_mapping_ok())
        return -1;
    int target = hl_target_index(t->name, true);
    if (target < 0) {
        if (!atomic_exchange(&target_table_full_said, true)) {
            char path[4096];
            hostlimit_path(path, sizeof path);
            hl_unusable(path, "more than 128 targets share the file", 0);
        }
        return -1;
    }
    atomic_store(&hl->targets[target].limit, (uint32_t)c->host_limit);
    return target;
}

int hostlimit_try(const struct target *t, bool *must_wait)
{
    *must_wait = false;
    int target = limited_target(t);
    if (target < 0)
        return HOST_SLOT_NONE;
    if (!hl_anyone_waiting(target)) {
        int slot = try_slot(target, config_get()->host_limit);
        if (slot >= 0 || atomic_load(&hl_broken))
            return slot >= 0 ? slot : HOST_SLOT_NONE;
    }
    *must_wait = true;
    return HOST_SLOT_NONE;
}

void hostlimit_enqueue(const struct target *t, struct host_ticket *tk,
                       bool async)
{
    const struct pqshim_config *c = config_get();
    memset(tk, 0, sizeof *tk);
    tk->entry = -1;
    tk->target = hl_mapping_ok() ? hl_target_index(t->name, true) : -1;
    if (tk->target < 0)
        return; /* the limit went off meanwhile (said): polls say so */
    tk->start = now_monotonic();
    tk->entry = hl_join_queue(tk->target, &tk->ticket);
    LOG_EVENT(LOG_LVL_INFO, "host_wait", LF_S("target", t->name),
              LF_I("limit", c->host_limit),
              LF_I("waiting", hl_count_waiting(tk->target)),
              LF_D("timeout_s", c->pool_timeout), LF_I("async", async));
}

int hostlimit_poll(struct host_ticket *tk)
{
    int w = tk->entry;
    if (tk->target < 0 || !hl_mapping_ok())
        return HOST_SLOT_NONE;
    /* At once, then now and then: a waiter ahead may have died. */
    if (w >= 0 && tk->round % 5 == 0)
        hl_remove_dead_waiters(tk->target, tk->ticket);
    if (w >= 0)
        atomic_store(&hl->waiters[w].beat_ms, hl_now_ms());
    if (w >= 0 && tk->round % 5 == 4)
        hl_wake(&hl->demand, INT32_MAX); /* in case a watcher missed it */
    tk->round++;
    /* Without an entry (table full) the caller polls out of turn. */
    if (w >= 0 && hl_queued_ahead(tk->target, tk->ticket))
        return atomic_load(&hl_broken) ? HOST_SLOT_NONE : HOST_SLOT_TIMEOUT;
    int slot = try_slot(tk->target, config_get()->host_limit);
    if (slot < 0 && atomic_load(&hl_broken))
        return HOST_SLOT_NONE;
    return slot >= 0 ? slot : HOST_SLOT_TIMEOUT;
}

void hostlimit_leave(struct host_ticket *tk)
{
    if (tk->entry >= 0)
        (void)leave_queue(tk->entry); /* no pool: never handed anything */
    tk->entry = -1;
    if (tk->target >= 0 && hl_mapping_ok())
        hl_wake_oldest(tk->target); /* the next in line may find a slot too */
}

int hostlimit_acquire(const struct target *t, double *wait_ms)
{
    return hostlimit_acquire_pooled(t, NULL, wait_ms, NULL);
}

int hostlimit_acquire_pooled(const struct target *t, const void *pool,
                             double *wait_ms, struct shim_conn **gift)
{
    const struct pqshim_config *c = config_get();
    *wait_ms = 0;
    if (gift)
        *gift = NULL;
    bool must_wait;
    int slot = hostlimit_try(t, &must_wait);
    if (!must_wait)
        return slot;

    /* A queue entry must not outlive its wait: no cancellation inside. */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    struct host_ticket tk;
    hostlimit_enqueue(t, &tk, false);
    if (tk.entry >= 0 && pool && gift) {
        pthread_mutex_lock(&hl_lock);
        entry_pool[tk.entry] = pool;
        entry_tid[tk.entry] = pthread_self();
        pthread_mutex_unlock(&hl_lock);
    }
    double deadline = tk.start + c->pool_timeout;
    for (;;) {
        if (!hl_mapping_ok()) {
            slot = HOST_SLOT_NONE; /* the limit went off (said) */
            break;
        }
        uint32_t seen = tk.entry >= 0 ? atomic_load(&hl->waiters[tk.entry].wake) : 0;
        if (tk.entry >= 0 && atomic_load(&entry_gift[tk.entry]))
            break; /* handed a connection by a checkin of this process */
        slot = hostlimit_poll(&tk);
        double now = now_monotonic();
        if (slot != HOST_SLOT_TIMEOUT || now >= deadline)
            break;
        double nap = deadline - now < HL_POLL_S ? deadline - now : HL_POLL_S;
        if (tk.entry >= 0)
            hl_wait_on(&hl->waiters[tk.entry].wake, seen, nap);
        else
            hl_wait_on(&hl->demand, atomic_load(&hl->demand), nap);
    }
    struct shim_conn *given = tk.entry >= 0 ? leave_queue(tk.entry) : NULL;
    tk.entry = -1;
    hostlimit_leave(&tk);
    if (given) {
        /* The connection keeps a slot of its own: give back any other. */
        if (slot >= 0)
            hostlimit_release(slot);
        slot = HOST_SLOT_NONE;
        *gift = given;
    }
    *wait_ms = (now_monotonic() - tk.start) * 1000.0;
    pthread_setcancelstate(cancel_state, NULL);
    return slot;
}

void hostlimit_release(int slot)
{
    if (slot < 0 || !hl)
        return;
    int target = slot / HOST_LIMIT_MAX, s = slot % HOST_LIMIT_MAX;
    bool ours = hl_still_ours(); /* never unlock bytes of the program's file */
    pthread_mutex_lock(&hl_lock);
    if (bit(held[target], s)) {
        if (ours)
            hl_lock_byte(HL_SLOT_BYTE(slot), F_UNLCK, F_SETLK);
        clear_bit(held[target], s);
    }
    pthread_mutex_unlock(&hl_lock);
    if (hl_mapping_ok())
        hl_wake_oldest(target);
}

void hostlimit_timeout_message(char *buf, size_t size, const struct target *t)
{
    const struct pqshim_config *c = config_get();
    char path[4096];
    hostlimit_path(path, sizeof path);
    int target = hl_mapping_ok() ? hl_target_index(t->name, false) : -1;
    pid_t blocker = target >= 0 ? atomic_load(&blocked_by[target]) : 0;
    if (blocker) {
        char pid[32];
        snprintf(pid, sizeof pid, "%d", (int)blocker);
        LOG_EVENT(LOG_LVL_ERROR, "host_limit_blocked", LF_S("target", t->name),
                  LF_S("file", path), LF_S("pid", blocker > 0 ? pid : "unknown"),
                  LF_S("detail", "a lock no pqshim slot holder took (a read lock, or one over "
                                 "many bytes) blocks the slots: some program that can open "
                                 "the file holds it"));
        snprintf(buf, size,
                 "pqshim: host limit slots for %s are blocked by a lock that no pqshim "
                 "connection holds (process %s, through %s), connection timed out, "
                 "timeout %.2fs (PQSHIM_POOL_TIMEOUT)",
                 t->name, blocker > 0 ? pid : "unknown", path, c->pool_timeout);
        return;
    }
    snprintf(buf, size,
             "pqshim: host limit of %d connections reached for %s "
             "(PQSHIM_HOST_LIMIT, shared through %s), connection timed out, "
             "timeout %.2fs (PQSHIM_POOL_TIMEOUT)",
             c->host_limit, t->name, path, c->pool_timeout);
}

bool hostlimit_contended(int slot)
{
    return slot >= 0 && hl_mapping_ok() && hl_anyone_waiting(slot / HOST_LIMIT_MAX);
}

int hostlimit_contention(int slot)
{
    if (slot < 0 || !hl_mapping_ok())
        return HOST_FREE;
    int target = slot / HOST_LIMIT_MAX, r = HOST_FREE;
    uint64_t now = hl_now_ms();
    for (int w = 0; w < HL_WAITERS && r != HOST_OTHERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            hl_fresh(&hl->waiters[w], now) && !hl_remove_if_dead(w, t))
            r = atomic_load(&hl->waiters[w].pid) == (int32_t)pqshim_pid
                    ? HOST_OURS : HOST_OTHERS;
    }
    return r;
}

bool hostlimit_give(int slot, const void *pool, struct shim_conn *sc,
                    pthread_t *tid)
{
    if (slot < 0 || !hl_mapping_ok())
        return false;
    uint32_t target = (uint32_t)(slot / HOST_LIMIT_MAX);
    int best = -1;
    uint64_t best_ticket = UINT64_MAX;
    pthread_mutex_lock(&hl_lock);
    for (int w = 0; w < HL_WAITERS; w++) {
        if (!bit(own_waiter, w) || entry_pool[w] != pool ||
            atomic_load(&entry_gift[w]))
            continue;
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && t < best_ticket && atomic_load(&hl->waiters[w].target) == target) {
            best = w;
            best_ticket = t;
        }
    }
    if (best >= 0) {
        *tid = entry_tid[best];
        atomic_store(&entry_gift[best], sc);
    }
    pthread_mutex_unlock(&hl_lock);
    if (best >= 0 && hl_mapping_ok())
        hl_wake(&hl->waiters[best].wake, 1);
    return best >= 0;
}

int hostlimit_waiters(int slot)
{
    return slot >= 0 && hl_mapping_ok() ? hl_count_waiting(slot / HOST_LIMIT_MAX) : 0;
}

/* What the watcher calls when somebody waits (pool.c's, handed down). */
static int (*_Atomic watcher_close)(void);

static void *watcher_main(void *arg)
{
    (void)arg;
    /* Checked at each round: the file may shrink under us, and a wait on
     * a page past its end would fail at once, round after round. */
    while (hl_mapping_ok()) {
        uint32_t seen = atomic_load(&hl->demand);
        atomic_load(&watcher_close)();
        hl_wait_on(&hl->demand, seen, 0);
    }
    return NULL;
}

void hostlimit_watch_idle(int slot, int (*close_contended)(void))
{
    atomic_store(&watcher_close, close_contended);
    /* A waiter that arrived while this connection was being reset rang
     * before there was anything idle to close: ring again. */
    if (hostlimit_contended(slot) && hl_mapping_ok())
        hl_wake(&hl->demand, INT32_MAX);
    pthread_mutex_lock(&hl_lock);
    if (!watcher_started && hl)
        watcher_started = start_internal_thread(watcher_main);
    pthread_mutex_unlock(&hl_lock);
}

bool hostlimit_view(const char *name, struct hostlimit_view *v)
{
    const struct pqshim_config *c = config_get();
    if (c->host_limit <= 0 || !hl_attached() || !hl_mapping_ok())
        return false;
    int target = hl_target_index(name, false);
    if (target < 0)
        return false;
    v->limit = c->host_limit;
    v->held = v->held_here = 0;
    /* Other processes may apply a larger limit to the same target. */
    int upto = (int)atomic_load(&hl->targets[target].limit);
    if (upto < v->limit || upto > HOST_LIMIT_MAX)
        upto = v->limit;
    pthread_mutex_lock(&hl_lock);
    for (int s = 0; s < upto; s++) {
        if (bit(held[target], s)) {
            v->held++;
            v->held_here++;
        } else {
            off_t byte = HL_SLOT_BYTE(target * HOST_LIMIT_MAX + s);
            /* A foreign lock is no slot held (the timeout names it). */
            v->held += hl_lock_byte(byte, F_WRLCK, F_GETLK) == 1 && !hl_foreign_lock(byte);
        }
    }
    pthread_mutex_unlock(&hl_lock);
    v->waiting = hl_count_waiting(target);
    v->longest_wait_s = 0;
    uint64_t now = hl_now_ms();
    for (int w = 0; w < HL_WAITERS; w++) {
        struct hl_waiter *e = &hl->waiters[w];
        if (!atomic_load(&e->ticket) ||
            atomic_load(&e->target) != (uint32_t)target || !hl_fresh(e, now))
            continue;
        /* Modulo 2^32 ms: right for waits under 49 days. */
        double s = (uint32_t)((uint32_t)now - atomic_load(&e->since_ms)) / 1000.0;
        if (s > v->longest_wait_s)
            v->longest_wait_s = s;
    }
    return true;
}

void hostlimit_lock_for_fork(void)
{
    pthread_mutex_lock(&hl_lock);
}

void hostlimit_unlock_after_fork(void)
{
    pthread_mutex_unlock(&hl_lock);
}

void hostlimit_forget_after_fork(void)
{
    /* The child holds no record locks: none of the parent's slots or
     * queue entries are its own. */
    memset(held, 0, sizeof held);
    memset(own_waiter, 0, sizeof own_waiter);
    memset(entry_pool, 0, sizeof entry_pool);
    for (int w = 0; w < HL_WAITERS; w++)
        atomic_store(&entry_gift[w], NULL);
    watcher_started = false;
    pthread_mutex_unlock(&hl_lock); /* taken before the fork */
}
