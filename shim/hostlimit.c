/*
 * hostlimit.c — a connection limit shared by every shimmed process on the
 * host, per target.
 *
 * Slots are byte-range record locks (fcntl F_SETLK) on a shared file, one
 * byte per slot: the kernel drops a process's locks when it dies, however
 * it dies, so a slot can never leak. Record locks belong to the process,
 * not to a descriptor or a thread: one descriptor serves the whole
 * process (closing any other descriptor of the file would drop every
 * lock, and nothing else opens it), the process keeps its own map of the
 * slots it holds, and a forked child starts holding none.
 *
 * Waiters queue in arrival order through a small table in the same file,
 * mapped shared: each entry carries a ticket from a host-wide counter and
 * is claimed by locking its own byte, so the entry of a process that died
 * is recognised (its byte is free) and removed. Only the oldest waiter of
 * a target may take a freed slot; newcomers join the queue while it is
 * not empty. A waiter sleeps on a futex in its entry: whoever frees a slot
 * wakes the oldest waiter, and a slot freed by a death is found by the
 * waiters' own check every 200 ms. Waiters refresh a heartbeat in their
 * entry at each check, so one that stops running is passed over.
 *
 * An idle pooled connection holds a slot that a waiting process may need:
 * checkins close instead of keeping a connection while anyone waits, and
 * a watcher thread (started only once a process keeps such a connection)
 * closes idle ones when a new waiter rings the file's demand counter.
 */
#define _GNU_SOURCE
#include "hostlimit.h"
#include "config.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HL_MAGIC 0x32306c6d696c7170ULL /* "pqlim02" */
#define HL_TARGETS HOST_TARGETS_MAX
#define HL_WAITERS 1024
/* Lock bytes live far past the end of the file (locks need no data). */
#define HL_WAITER_BYTE(w) ((off_t)(1 << 24) + (w))
#define HL_SLOT_BYTE(slot) ((off_t)(1 << 25) + (slot))
#define HL_POLL_S 0.2
/* A waiter refreshes its heartbeat every HL_POLL_S; one silent for longer
 * than this (stopped, frozen, in a debugger) is passed over. */
#define HL_STALE_MS 1500

struct hl_target {
    _Atomic uint64_t key;    /* hash of the target name; 0 = free */
    _Atomic uint32_t limit;  /* as last applied, for people */
    uint32_t unused;
};

struct hl_waiter {
    _Atomic uint64_t ticket; /* 0 = free */
    _Atomic uint32_t target;
    _Atomic int32_t pid;
    _Atomic uint32_t wake;   /* futex word */
    _Atomic uint32_t since_ms; /* CLOCK_MONOTONIC at joining, modulo 2^32 */
    _Atomic uint64_t beat_ms; /* CLOCK_MONOTONIC, refreshed while waiting */
};

struct hl_shared {
    _Atomic uint64_t magic;
    _Atomic uint64_t next_ticket;
    _Atomic uint32_t demand; /* futex word: a new waiter arrived */
    uint32_t unused;
    struct hl_target targets[HL_TARGETS];
    struct hl_waiter waiters[HL_WAITERS];
};

/* Process-local state, under hl_lock (a leaf lock: see pqshim.h). */
static pthread_mutex_t hl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t attach_once = PTHREAD_ONCE_INIT;
static int hl_fd = -1;
static dev_t hl_dev;
static ino_t hl_ino;
static struct hl_shared *hl;
/* The descriptor was closed or replaced under us, or locking failed for
 * another reason than a taken byte: the limit is off from then on. */
static atomic_bool hl_broken;
static uint8_t held[HL_TARGETS][(HOST_LIMIT_MAX + 7) / 8];
static uint8_t own_waiter[HL_WAITERS / 8];
static bool watcher_started;
/* Our own blocking waiters, per queue entry: the pool they will take a
 * connection from, and the connection a checkin handed them (see
 * hostlimit_give). Asynchronous waiters have no pool here: they can only
 * take a slot. */
static const void *entry_pool[HL_WAITERS];
static struct shim_conn *_Atomic entry_gift[HL_WAITERS];
static pthread_t entry_tid[HL_WAITERS];
static atomic_bool target_table_full_said;

static bool bit(const uint8_t *map, int i) { return map[i / 8] & (1u << (i % 8)); }
static void set_bit(uint8_t *map, int i) { map[i / 8] |= (uint8_t)(1u << (i % 8)); }
static void clear_bit(uint8_t *map, int i) { map[i / 8] &= (uint8_t)~(1u << (i % 8)); }

static long futex(_Atomic uint32_t *word, int op, uint32_t val,
                  const struct timespec *timeout)
{
    return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

static void wait_on(_Atomic uint32_t *word, uint32_t seen, double seconds)
{
    struct timespec ts = {(time_t)seconds,
                          (long)((seconds - (double)(time_t)seconds) * 1e9)};
    futex(word, FUTEX_WAIT, seen, seconds > 0 ? &ts : NULL);
}

static void wake(_Atomic uint32_t *word, int count)
{
    atomic_fetch_add(word, 1);
    futex(word, FUTEX_WAKE, (uint32_t)count, NULL);
}

static int lock_byte(off_t byte, short type, int cmd)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte,
                       .l_len = 1};
    int r = fcntl(hl_fd, cmd, &fl);
    if (r == 0 && cmd == F_GETLK)
        return fl.l_type == F_UNLCK ? 0 : 1; /* 1: another process has it */
    return r;
}

void hostlimit_path(char *buf, size_t size)
{
    const struct pqshim_config *c = config_get();
    if (c->host_limit_file[0])
        snprintf(buf, size, "%s", c->host_limit_file);
    else
        snprintf(buf, size, "/tmp/pqshim-hostlimit-%u", (unsigned)geteuid());
}

static void unusable(const char *path, const char *why, int err)
{
    char error[256];
    snprintf(error, sizeof error, "%s%s%s", why, err ? ": " : "",
             err ? strerror(err) : "");
    LOG_EVENT(LOG_LVL_ERROR, "host_limit_unavailable", LF_S("file", path),
              LF_S("error", error),
              LF_S("effect", "PQSHIM_HOST_LIMIT is not applied"));
}

/* Why a file others can open is refused (NULL: it is fine). Every user
 * (any permission for others): always. Its group, or another owner: only
 * when PQSHIM_HOST_LIMIT_SHARED=group says they are trusted. */
static const char *sharing_refused(const struct stat *st)
{
    if (st->st_mode & 0007)
        return "every user may open it (mode has permissions for others), and any of them "
               "could block every slot; remove them (chmod o-rwx)";
    if (config_get()->host_limit_shared)
        return NULL;
    if (st->st_mode & 0070)
        return "its group may open it, and any member could block every slot; set "
               "PQSHIM_HOST_LIMIT_SHARED=group to trust them, or chmod g-rwx";
    if (st->st_uid != geteuid())
        return "owned by another user, who could block every slot; set "
               "PQSHIM_HOST_LIMIT_SHARED=group to trust them";
    return NULL;
}

/* Open and map the shared file once per process (a forked child keeps
 * both: the mapping is shared, and its record locks are its own). */
static void attach(void)
{
    char path[4096];
    hostlimit_path(path, sizeof path);
    bool chosen = config_get()->host_limit_file[0] != '\0';
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        unusable(path, "cannot open", errno);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        unusable(path, "not a regular file", 0);
        close(fd);
        return;
    }
    /* The default path is in a shared directory: only trust our own. */
    if (!chosen && st.st_uid != geteuid()) {
        unusable(path, "owned by another user", 0);
        close(fd);
        return;
    }
    /* Whoever can open the file can lock its bytes, and so take or block
     * every slot: only users we trust may. */
    const char *why = sharing_refused(&st);
    if (why) {
        unusable(path, why, 0);
        close(fd);
        return;
    }
    /* Only an empty file, or one of exactly our size, can be ours: never
     * grow or write into somebody else's. */
    if (st.st_size != 0 && st.st_size != (off_t)sizeof(struct hl_shared)) {
        unusable(path, "not a pqshim host limit file", 0);
        close(fd);
        return;
    }
    /* Every page now: a page first touched through the mapping on a full
     * file system would kill the program with SIGBUS. */
    int err = posix_fallocate(fd, 0, sizeof(struct hl_shared));
    if (err) {
        unusable(path, "cannot allocate", err);
        close(fd);
        return;
    }
    void *map = mmap(NULL, sizeof(struct hl_shared), PROT_READ | PROT_WRITE,
                     MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        unusable(path, "cannot map", errno);
        close(fd);
        return;
    }
    struct hl_shared *shared = map;
    uint64_t expected = 0;
    if (!atomic_compare_exchange_strong(&shared->magic, &expected, HL_MAGIC) &&
        expected != HL_MAGIC) {
        unusable(path, "not a pqshim host limit file", 0);
        munmap(map, sizeof(struct hl_shared));
        close(fd);
        return;
    }
    hl_fd = fd;
    hl_dev = st.st_dev;
    hl_ino = st.st_ino;
    hl = shared;
}

static bool attached(void)
{
    pthread_once(&attach_once, attach);
    return hl != NULL && !atomic_load(&hl_broken);
}

static void broken(const char *why, int err)
{
    if (atomic_exchange(&hl_broken, true))
        return;
    char path[4096];
    hostlimit_path(path, sizeof path);
    unusable(path, why, err);
}

/* A program may close every descriptor (daemonizing) and reuse the
 * number: never lock bytes of a file that is not ours. */
static bool still_ours(void)
{
    struct stat st;
    if (fstat(hl_fd, &st) == 0 && st.st_dev == hl_dev && st.st_ino == hl_ino)
        return true;
    broken("its descriptor was closed or replaced by the program", 0);
    return false;
}

static uint64_t now_ms(void)
{
    return (uint64_t)(now_monotonic() * 1000.0);
}

/* Is entry e's waiter still waiting (heartbeat recent)? */
static bool fresh(const struct hl_waiter *e, uint64_t now)
{
    return (int64_t)(now - atomic_load(&e->beat_ms)) < HL_STALE_MS;
}

/* The table index of a target, claimed on first use; -1 when full.
 * Targets are counted by name (user@host:port/dbname): what the server
 * sees, whatever other connection options the programs use. */
static int target_index(const char *name, bool claim)
{
    uint64_t h = target_hash(name);
    if (h == 0)
        h = 1;
    for (int n = 0; n < HL_TARGETS; n++) {
        int i = (int)((h + (uint64_t)n) % HL_TARGETS);
        uint64_t k = atomic_load(&hl->targets[i].key);
        if (k == h)
            return i;
        if (k == 0) {
            if (!claim)
                return -1;
            if (atomic_compare_exchange_strong(&hl->targets[i].key, &k, h) ||
                k == h)
                return i;
        }
    }
    return -1;
}

/* Is anyone queued for target ahead of ticket? */
static bool queued_ahead(int target, uint64_t ticket)
{
    uint64_t now = now_ms();
    for (int w = 0; w < HL_WAITERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && t < ticket &&
            atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            fresh(&hl->waiters[w], now))
            return true;
    }
    return false;
}

/* Wake the oldest waiter of target, if any. */
static void wake_oldest(int target)
{
    int best = -1;
    uint64_t best_ticket = UINT64_MAX, now = now_ms();
    for (int w = 0; w < HL_WAITERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && t < best_ticket &&
            atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            fresh(&hl->waiters[w], now)) {
            best = w;
            best_ticket = t;
        }
    }
    if (best >= 0)
        wake(&hl->waiters[best].wake, 1);
}

/* Remove entry w (holding ticket t) if its process is gone; true if so.
 * Our own locks never conflict with us, so our entries are known by our
 * map; any other entry whose byte nobody locks was left by a death. */
static bool remove_if_dead(int w, uint64_t t)
{
    pthread_mutex_lock(&hl_lock);
    bool dead = !bit(own_waiter, w) &&
                lock_byte(HL_WAITER_BYTE(w), F_WRLCK, F_GETLK) == 0;
    pthread_mutex_unlock(&hl_lock);
    if (dead)
        atomic_compare_exchange_strong(&hl->waiters[w].ticket, &t, 0);
    return dead;
}

/* Entries ahead of ticket whose process is gone: remove them. */
static void remove_dead_waiters(int target, uint64_t ticket)
{
    for (int w = 0; w < HL_WAITERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && t < ticket &&
            atomic_load(&hl->waiters[w].target) == (uint32_t)target)
            remove_if_dead(w, t);
    }
}

/* Does a live caller wait for target? (One lock test in the usual case:
 * the first entry found is alive.) */
static bool anyone_waiting(int target)
{
    uint64_t now = now_ms();
    for (int w = 0; w < HL_WAITERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            fresh(&hl->waiters[w], now) && !remove_if_dead(w, t))
            return true;
    }
    return false;
}

/* A slot holder locks exactly its byte, for writing. Any other lock in
 * the way (a read lock, or one over many bytes) was not taken by a
 * pqshim slot holder: some program that can open the file holds it. Its
 * pid, or 0 when the taken byte is an ordinary slot. */
static pid_t foreign_lock(off_t byte)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte,
                       .l_len = 1};
    if (fcntl(hl_fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK)
        return 0;
    if (fl.l_type == F_WRLCK && fl.l_start == byte && fl.l_len == 1)
        return 0;
    return fl.l_pid > 0 ? fl.l_pid : -1;
}

/* Per target, the foreign lock the last try ran into (see above): the
 * timeout then names it instead of a full limit. */
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
        if (lock_byte(byte, F_WRLCK, F_SETLK) == 0) {
            set_bit(held[target], s);
            slot = target * HOST_LIMIT_MAX + s;
        } else if (errno == EAGAIN || errno == EACCES) {
            if (!foreign)
                foreign = foreign_lock(byte);
        } else {
            int err = errno;
            pthread_mutex_unlock(&hl_lock);
            broken("cannot lock", err);
            return -1;
        }
    }
    pthread_mutex_unlock(&hl_lock);
    atomic_store(&blocked_by[target], slot >= 0 ? 0 : foreign);
    return slot;
}

/* Claim a queue entry with a fresh ticket; -1 when the table is full. */
static int join_queue(int target, uint64_t *ticket)
{
    *ticket = atomic_fetch_add(&hl->next_ticket, 1) + 1;
    /* Free entries first; then those a dead waiter left: getting the
     * byte proves nobody owns the entry. */
    pthread_mutex_lock(&hl_lock);
    int found = -1;
    for (int pass = 0; pass < 2 && found < 0; pass++) {
        for (int w = 0; w < HL_WAITERS && found < 0; w++) {
            if (bit(own_waiter, w) ||
                (atomic_load(&hl->waiters[w].ticket) != 0) == (pass == 0))
                continue;
            if (lock_byte(HL_WAITER_BYTE(w), F_WRLCK, F_SETLK) != 0)
                continue;
            set_bit(own_waiter, w);
            found = w;
        }
    }
    pthread_mutex_unlock(&hl_lock);
    if (found >= 0) {
        struct hl_waiter *e = &hl->waiters[found];
        atomic_store(&e->ticket, 0);
        atomic_store(&e->target, (uint32_t)target);
        atomic_store(&e->pid, (int32_t)pqshim_pid);
        atomic_store(&e->beat_ms, now_ms());
        atomic_store(&e->since_ms, (uint32_t)now_ms());
        atomic_store(&e->ticket, *ticket); /* visible last */
        wake(&hl->demand, INT32_MAX);
    }
    return found;
}

/* Leave entry w; returns the connection handed to it meanwhile, if any
 * (under hl_lock: a giver either sees the entry or it is gone). */
static struct shim_conn *leave_queue(int w)
{
    atomic_store(&hl->waiters[w].ticket, 0);
    bool ours = still_ours(); /* never unlock bytes of the program's file */
    pthread_mutex_lock(&hl_lock);
    if (ours)
        lock_byte(HL_WAITER_BYTE(w), F_UNLCK, F_SETLK);
    clear_bit(own_waiter, w);
    struct shim_conn *gift = atomic_exchange(&entry_gift[w], NULL);
    entry_pool[w] = NULL;
    pthread_mutex_unlock(&hl_lock);
    return gift;
}

static int count_waiting(int target)
{
    int n = 0;
    uint64_t now = now_ms();
    for (int w = 0; w < HL_WAITERS; w++)
        if (atomic_load(&hl->waiters[w].ticket) &&
            atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            fresh(&hl->waiters[w], now))
            n++;
    return n;
}

/* The target index for t, or -1 when the limit is not in force. */
static int limited_target(const struct target *t)
{
    const struct pqshim_config *c = config_get();
    if (c->host_limit <= 0 || !attached() || !still_ours())
        return -1;
    int target = target_index(t->name, true);
    if (target < 0) {
        if (!atomic_exchange(&target_table_full_said, true)) {
            char path[4096];
            hostlimit_path(path, sizeof path);
            unusable(path, "more than 128 targets share the file", 0);
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
    if (!anyone_waiting(target)) {
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
    tk->target = target_index(t->name, true);
    tk->start = now_monotonic();
    tk->entry = join_queue(tk->target, &tk->ticket);
    LOG_EVENT(LOG_LVL_INFO, "host_wait", LF_S("target", t->name),
              LF_I("limit", c->host_limit),
              LF_I("waiting", count_waiting(tk->target)),
              LF_D("timeout_s", c->pool_timeout), LF_I("async", async));
}

int hostlimit_poll(struct host_ticket *tk)
{
    int w = tk->entry;
    /* At once, then now and then: a waiter ahead may have died. */
    if (w >= 0 && tk->round % 5 == 0)
        remove_dead_waiters(tk->target, tk->ticket);
    if (w >= 0)
        atomic_store(&hl->waiters[w].beat_ms, now_ms());
    if (w >= 0 && tk->round % 5 == 4)
        wake(&hl->demand, INT32_MAX); /* in case a watcher missed it */
    tk->round++;
    /* Without an entry (table full) the caller polls out of turn. */
    if (w >= 0 && queued_ahead(tk->target, tk->ticket))
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
    wake_oldest(tk->target); /* the next in line may find a slot too */
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
        uint32_t seen = tk.entry >= 0 ? atomic_load(&hl->waiters[tk.entry].wake) : 0;
        if (tk.entry >= 0 && atomic_load(&entry_gift[tk.entry]))
            break; /* handed a connection by a checkin of this process */
        slot = hostlimit_poll(&tk);
        double now = now_monotonic();
        if (slot != HOST_SLOT_TIMEOUT || now >= deadline)
            break;
        double nap = deadline - now < HL_POLL_S ? deadline - now : HL_POLL_S;
        if (tk.entry >= 0)
            wait_on(&hl->waiters[tk.entry].wake, seen, nap);
        else
            wait_on(&hl->demand, atomic_load(&hl->demand), nap);
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
    bool ours = still_ours(); /* never unlock bytes of the program's file */
    pthread_mutex_lock(&hl_lock);
    if (bit(held[target], s)) {
        if (ours)
            lock_byte(HL_SLOT_BYTE(slot), F_UNLCK, F_SETLK);
        clear_bit(held[target], s);
    }
    pthread_mutex_unlock(&hl_lock);
    wake_oldest(target);
}

void hostlimit_timeout_message(char *buf, size_t size, const struct target *t)
{
    const struct pqshim_config *c = config_get();
    char path[4096];
    hostlimit_path(path, sizeof path);
    int target = hl ? target_index(t->name, false) : -1;
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
    return slot >= 0 && hl && anyone_waiting(slot / HOST_LIMIT_MAX);
}

int hostlimit_contention(int slot)
{
    if (slot < 0 || !hl)
        return HOST_FREE;
    int target = slot / HOST_LIMIT_MAX, r = HOST_FREE;
    uint64_t now = now_ms();
    for (int w = 0; w < HL_WAITERS && r != HOST_OTHERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            fresh(&hl->waiters[w], now) && !remove_if_dead(w, t))
            r = atomic_load(&hl->waiters[w].pid) == (int32_t)pqshim_pid
                    ? HOST_OURS : HOST_OTHERS;
    }
    return r;
}

bool hostlimit_give(int slot, const void *pool, struct shim_conn *sc,
                    pthread_t *tid)
{
    if (slot < 0 || !hl)
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
    if (best >= 0)
        wake(&hl->waiters[best].wake, 1);
    return best >= 0;
}

int hostlimit_waiters(int slot)
{
    return slot >= 0 && hl ? count_waiting(slot / HOST_LIMIT_MAX) : 0;
}

/* What the watcher calls when somebody waits (pool.c's, handed down). */
static int (*_Atomic watcher_close)(void);

static void *watcher_main(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t seen = atomic_load(&hl->demand);
        atomic_load(&watcher_close)();
        wait_on(&hl->demand, seen, 0);
    }
    return NULL;
}

void hostlimit_watch_idle(int slot, int (*close_contended)(void))
{
    atomic_store(&watcher_close, close_contended);
    /* A waiter that arrived while this connection was being reset rang
     * before there was anything idle to close: ring again. */
    if (hostlimit_contended(slot))
        wake(&hl->demand, INT32_MAX);
    pthread_mutex_lock(&hl_lock);
    if (!watcher_started && hl)
        watcher_started = start_internal_thread(watcher_main);
    pthread_mutex_unlock(&hl_lock);
}

bool hostlimit_view(const char *name, struct hostlimit_view *v)
{
    const struct pqshim_config *c = config_get();
    if (c->host_limit <= 0 || !attached())
        return false;
    int target = target_index(name, false);
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
            v->held += lock_byte(byte, F_WRLCK, F_GETLK) == 1 && !foreign_lock(byte);
        }
    }
    pthread_mutex_unlock(&hl_lock);
    v->waiting = count_waiting(target);
    v->longest_wait_s = 0;
    uint64_t now = now_ms();
    for (int w = 0; w < HL_WAITERS; w++) {
        struct hl_waiter *e = &hl->waiters[w];
        if (!atomic_load(&e->ticket) ||
            atomic_load(&e->target) != (uint32_t)target || !fresh(e, now))
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
    pthread_mutex_init(&hl_lock, NULL);
}
