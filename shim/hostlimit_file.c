/*
 * hostlimit_file.c — the file the host-wide limit is shared through:
 * opening and checking it, its mapped header, the table of targets, the
 * queue of waiters in arrival order, the futex waits on it, and the
 * record locks on its bytes. hostlimit.c builds the process's slots and
 * waits on top of it.
 *
 * Record locks belong to the process, not to a descriptor or a thread:
 * one descriptor serves the whole process (closing any other descriptor
 * of the file would drop every lock, and nothing else opens it).
 *
 * Waiters queue in arrival order through a small table in the file,
 * mapped shared: each entry carries a ticket from a host-wide counter and
 * is claimed by locking its own byte, so the entry of a process that died
 * is recognised (its byte is free) and removed. A waiter sleeps on a futex
 * in its entry; waiters refresh a heartbeat in their entry at each check,
 * so one that stops running is passed over.
 */
#define _GNU_SOURCE
#include "hostlimit_file.h"
#include "hostlimit_place.h"
#include "config.h"
#include "log.h"

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

/* Process-local state, under hl_lock (a leaf lock: see pqshim.h). */
pthread_mutex_t hl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t attach_once = PTHREAD_ONCE_INIT;
static int hl_fd = -1;
static dev_t hl_dev;
static ino_t hl_ino;
static char hl_path[4096]; /* set once, by attach */
struct hl_shared *hl;
atomic_bool hl_broken;
uint8_t own_waiter[HL_WAITERS / 8];

static long futex(_Atomic uint32_t *word, int op, uint32_t val,
                  const struct timespec *timeout)
{
    return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

void hl_wait_on(_Atomic uint32_t *word, uint32_t seen, double seconds)
{
    struct timespec ts = {(time_t)seconds,
                          (long)((seconds - (double)(time_t)seconds) * 1e9)};
    futex(word, FUTEX_WAIT, seen, seconds > 0 ? &ts : NULL);
}

void hl_wake(_Atomic uint32_t *word, int count)
{
    atomic_fetch_add(word, 1);
    futex(word, FUTEX_WAKE, (uint32_t)count, NULL);
}

int hl_lock_byte(off_t byte, short type, int cmd)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte,
                       .l_len = 1};
    int r = fcntl(hl_fd, cmd, &fl);
    if (r == 0 && cmd == F_GETLK)
        return fl.l_type == F_UNLCK ? 0 : 1; /* 1: another process has it */
    return r;
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

/* Said once per process: the file was damaged and put right. */
static void say_repaired(const char *damage)
{
    static atomic_bool said;
    if (!atomic_exchange(&said, true))
        LOG_EVENT(LOG_LVL_WARN, "host_limit_repaired", LF_S("file", hl_path),
                  LF_S("damage", damage));
}

/* Does the file still cover the whole mapping? A page of a shared mapping
 * past the end of its file kills whoever touches it (SIGBUS). */
static bool covers_mapping(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(struct hl_shared);
}

/* Give the file its full size again (the lost part reads as zeros, as in
 * a new file): every page exists before anyone touches it. Idempotent,
 * so processes repairing at once agree. */
static int extend(int fd)
{
    int err = posix_fallocate(fd, 0, sizeof(struct hl_shared));
    if (!err && !covers_mapping(fd))
        err = EAGAIN; /* shrunk again meanwhile */
    return err;
}

/* A header that is not ours on a file of exactly our size: damage (stray
 * bytes written over the start) when the padding words pqshim never
 * writes are still zero, as in every file it made; anybody else's file
 * of that size is left alone. */
static bool padding_clean(const struct hl_shared *s)
{
    if (s->unused)
        return false;
    for (int i = 0; i < HL_TARGETS; i++)
        if (s->targets[i].unused)
            return false;
    return true;
}

/* Open and map the shared file once per process (a forked child keeps
 * both: the mapping is shared, and its record locks are its own). */
static void attach(void)
{
    bool chosen;
    int fd = hostlimit_place_open(hl_path, sizeof hl_path, &chosen);
    if (fd < 0)
        return;
    const char *path = hl_path;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        hl_unusable(path, "not a regular file", 0);
        close(fd);
        return;
    }
    /* A default file is only ever the user's own. */
    if (!chosen && st.st_uid != geteuid()) {
        hl_unusable(path, "owned by another user", 0);
        close(fd);
        return;
    }
    /* Whoever can open the file can lock its bytes, and so take or block
     * every slot: only users we trust may. */
    const char *why = sharing_refused(&st);
    if (why) {
        hl_unusable(path, why, 0);
        close(fd);
        return;
    }
    /* Only an empty file, or one of exactly our size, can be ours: never
     * grow or write into somebody else's. */
    if (st.st_size != 0 && st.st_size != (off_t)sizeof(struct hl_shared)) {
        hl_unusable(path, "not a pqshim host limit file", 0);
        close(fd);
        return;
    }
    /* Every page now: a page first touched through the mapping on a full
     * file system would kill the program with SIGBUS. */
    int err = extend(fd);
    if (err) {
        hl_unusable(path, "cannot allocate", err);
        close(fd);
        return;
    }
    void *map = mmap(NULL, sizeof(struct hl_shared), PROT_READ | PROT_WRITE,
                     MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        hl_unusable(path, "cannot map", errno);
        close(fd);
        return;
    }
    struct hl_shared *shared = map;
    uint64_t mark = 0; /* after a failed exchange: the mark found */
    bool ours = false;
    if (covers_mapping(fd)) {
        ours = atomic_compare_exchange_strong(&shared->magic, &mark, HL_MAGIC) ||
               mark == HL_MAGIC;
        if (!ours && padding_clean(shared)) {
            if (atomic_compare_exchange_strong(&shared->magic, &mark, HL_MAGIC))
                say_repaired("its header was overwritten; rewritten");
            ours = true; /* by us, or by another process just now */
        }
    }
    if (!ours) {
        hl_unusable(path, "not a pqshim host limit file", 0);
        munmap(map, sizeof(struct hl_shared));
        close(fd);
        return;
    }
    hl_fd = fd;
    hl_dev = st.st_dev;
    hl_ino = st.st_ino;
    hl = shared;
}

bool hl_attached(void)
{
    pthread_once(&attach_once, attach);
    return hl != NULL && !atomic_load(&hl_broken);
}

void hostlimit_path(char *buf, size_t size)
{
    pthread_once(&attach_once, attach);
    snprintf(buf, size, "%s", hl_path);
}

void hl_mark_broken(const char *why, int err)
{
    if (atomic_exchange(&hl_broken, true))
        return;
    hl_unusable(hl_path, why, err);
}

/* A program may close every descriptor (daemonizing) and reuse the
 * number: never lock bytes of a file that is not ours. */
bool hl_still_ours(void)
{
    struct stat st;
    if (fstat(hl_fd, &st) == 0 && st.st_dev == hl_dev && st.st_ino == hl_ino)
        return true;
    hl_mark_broken("its descriptor was closed or replaced by the program", 0);
    return false;
}

bool hl_mapping_ok(void)
{
    if (!hl || atomic_load(&hl_broken) || !hl_still_ours())
        return false;
    if (covers_mapping(hl_fd))
        return true;
    /* Shrunk under us (truncate, a careless copy): make it whole again
     * rather than run without the limit; the record locks that are the
     * slots live on, only the queue and the target names start afresh. */
    int err = extend(hl_fd);
    if (err) {
        hl_mark_broken("it shrank while in use and cannot be made whole again", err);
        return false;
    }
    uint64_t expected = 0;
    atomic_compare_exchange_strong(&hl->magic, &expected, HL_MAGIC);
    say_repaired("it shrank while in use; given its full size again");
    return true;
}

uint64_t hl_now_ms(void)
{
    return (uint64_t)(now_monotonic() * 1000.0);
}

/* Is entry e's waiter still waiting (heartbeat recent)? */
bool hl_fresh(const struct hl_waiter *e, uint64_t now)
{
    return (int64_t)(now - atomic_load(&e->beat_ms)) < HL_STALE_MS;
}

/* The table index of a target, claimed on first use; -1 when full.
 * Targets are counted by name (user@host:port/dbname): what the server
 * sees, whatever other connection options the programs use. */
int hl_target_index(const char *name, bool claim)
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
bool hl_queued_ahead(int target, uint64_t ticket)
{
    uint64_t now = hl_now_ms();
    for (int w = 0; w < HL_WAITERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && t < ticket &&
            atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            hl_fresh(&hl->waiters[w], now))
            return true;
    }
    return false;
}

/* Wake the oldest waiter of target, if any. */
void hl_wake_oldest(int target)
{
    int best = -1;
    uint64_t best_ticket = UINT64_MAX, now = hl_now_ms();
    for (int w = 0; w < HL_WAITERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && t < best_ticket &&
            atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            hl_fresh(&hl->waiters[w], now)) {
            best = w;
            best_ticket = t;
        }
    }
    if (best >= 0)
        hl_wake(&hl->waiters[best].wake, 1);
}

/* Remove entry w (holding ticket t) if its process is gone; true if so.
 * Our own locks never conflict with us, so our entries are known by our
 * map; any other entry whose byte nobody locks was left by a death. */
bool hl_remove_if_dead(int w, uint64_t t)
{
    pthread_mutex_lock(&hl_lock);
    bool dead = !bit(own_waiter, w) &&
                hl_lock_byte(HL_WAITER_BYTE(w), F_WRLCK, F_GETLK) == 0;
    pthread_mutex_unlock(&hl_lock);
    if (dead)
        atomic_compare_exchange_strong(&hl->waiters[w].ticket, &t, 0);
    return dead;
}

/* Entries ahead of ticket whose process is gone: remove them. */
void hl_remove_dead_waiters(int target, uint64_t ticket)
{
    for (int w = 0; w < HL_WAITERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && t < ticket &&
            atomic_load(&hl->waiters[w].target) == (uint32_t)target)
            hl_remove_if_dead(w, t);
    }
}

/* Does a live caller wait for target? (One lock test in the usual case:
 * the first entry found is alive.) */
bool hl_anyone_waiting(int target)
{
    uint64_t now = hl_now_ms();
    for (int w = 0; w < HL_WAITERS; w++) {
        uint64_t t = atomic_load(&hl->waiters[w].ticket);
        if (t && atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            hl_fresh(&hl->waiters[w], now) && !hl_remove_if_dead(w, t))
            return true;
    }
    return false;
}

/* A slot holder locks exactly its byte, for writing. Any other lock in
 * the way (a read lock, or one over many bytes) was not taken by a
 * pqshim slot holder: some program that can open the file holds it. Its
 * pid, or 0 when the taken byte is an ordinary slot. */
pid_t hl_foreign_lock(off_t byte)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte,
                       .l_len = 1};
    if (fcntl(hl_fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK)
        return 0;
    if (fl.l_type == F_WRLCK && fl.l_start == byte && fl.l_len == 1)
        return 0;
    return fl.l_pid > 0 ? fl.l_pid : -1;
}

/* Claim a queue entry with a fresh ticket; -1 when the table is full. */
int hl_join_queue(int target, uint64_t *ticket)
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
            if (hl_lock_byte(HL_WAITER_BYTE(w), F_WRLCK, F_SETLK) != 0)
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
        atomic_store(&e->beat_ms, hl_now_ms());
        atomic_store(&e->since_ms, (uint32_t)hl_now_ms());
        atomic_store(&e->ticket, *ticket); /* visible last */
        hl_wake(&hl->demand, INT32_MAX);
    }
    return found;
}

int hl_count_waiting(int target)
{
    int n = 0;
    uint64_t now = hl_now_ms();
    for (int w = 0; w < HL_WAITERS; w++)
        if (atomic_load(&hl->waiters[w].ticket) &&
            atomic_load(&hl->waiters[w].target) == (uint32_t)target &&
            hl_fresh(&hl->waiters[w], now))
            n++;
    return n;
}
