/*
 * real.c — find the host's libpq and bind every function the shim calls.
 *
 * The shim is not linked against libpq: it must work whether libpq sits in
 * the global scope (psql, pgbench), was loaded RTLD_LOCAL by a dlopen'ed
 * module (every Python extension: RTLD_NEXT finds nothing there), or is a
 * bundled copy under a hashed name (psycopg2-binary's libpq-<hash>.so.5.x).
 * A process may hold several different copies: each gets its own table, and
 * the hook a call came in through says which one is current (real_use()).
 */
#define _GNU_SOURCE
#include "real.h"
#include "loader.h"
#include "log.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Copy 0 is the libpq the global scope finds (bound once, lazily); the
 * others are bound when a module or a private handle shows one. A slot is
 * filled before ncopies is raised and never changes after: readers need
 * no lock. Each copy stays pinned, so its code outlives any dlclose while
 * the pool may still hold its connections. */
static struct real_libpq copies[REAL_MAX_COPIES];
static const void *copy_base[REAL_MAX_COPIES];
static atomic_int ncopies;
static pthread_mutex_t copies_lock = PTHREAD_MUTEX_INITIALIZER;

/* A leaf, held across fork() by init.c's handlers. */
void real_lock_for_fork(void) { pthread_mutex_lock(&copies_lock); }
void real_unlock_after_fork(void) { pthread_mutex_unlock(&copies_lock); }
static pthread_once_t bind_once = PTHREAD_ONCE_INIT;
static PQSHIM_TLS const struct real_libpq *current;

/* Path of a libpq seen through a private dlopen handle (ctypes hosts). */
static char noted_path[4096];
static atomic_bool noted;

struct binding {
    const char *name;
    size_t offset;
    bool optional; /* missing from older libpq versions: no warning */
};

#define BIND(optional, kind, ret, name, params, args) \
    {#name, offsetof(struct real_libpq, name), optional},
static const struct binding bindings[] = {
    LIBPQ_HOOKED_ALWAYS(BIND, false) LIBPQ_CALLED(BIND, false)
    LIBPQ_HOOKED_NEWER(BIND, true)
};
#undef BIND

void real_note_library(const char *path)
{
    if (atomic_load(&noted) || !path)
        return;
    /* A benign race: two threads may both copy a libpq path; either is ok. */
    snprintf(noted_path, sizeof noted_path, "%s", path);
    atomic_store(&noted, true);
}

bool real_is_libpq_name(const char *path)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    return base && strncmp(base, "libpq", 5) == 0 && strstr(base, ".so") &&
           (base[5] == '.' || base[5] == '-');
}

static int find_bundled(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const char *path = info->dlpi_name;
    if (real_is_libpq_name(path)) {
        snprintf(data, 4096, "%s", path);
        return 1;
    }
    return 0;
}

static void *open_loaded(const char *path)
{
    return path && *path ? real_dlopen(path, RTLD_NOLOAD | RTLD_LAZY) : NULL;
}

/* A handle on the libpq this process already uses; never loads a new one. */
static void *find_libpq(void)
{
    void *p = real_dlsym(RTLD_NEXT, "PQconnectdb");
    Dl_info info;
    if (p && dladdr(p, &info) && info.dli_fname) {
        void *h = open_loaded(info.dli_fname);
        if (h)
            return h;
    }
    if (atomic_load(&noted)) {
        void *h = open_loaded(noted_path);
        if (h)
            return h;
    }
    void *h = open_loaded("libpq.so.5");
    if (h)
        return h;
    char path[4096] = "";
    if (dl_iterate_phdr(find_bundled, path))
        return open_loaded(path);
    return NULL;
}

/* Does addr lie in the shim itself? Our library exports no PQ* name but
 * the entry points, so a lookup answered from here found one of them. */
static bool in_this_library(const void *addr)
{
    Dl_info mine, theirs;
    return dladdr((const void *)in_this_library, &mine) && dladdr(addr, &theirs) &&
           mine.dli_fbase == theirs.dli_fbase;
}

/* Bind every function of the libpq behind handle h into *t. False when
 * nothing could be bound; t->complete says whether everything was. */
static bool bind_table(void *h, struct real_libpq *t)
{
    bool complete = true, any = false;
    for (size_t i = 0; i < sizeof bindings / sizeof bindings[0]; i++) {
        void *fn = real_dlsym(h, bindings[i].name);
        /* Guard against resolving to ourselves: that would recurse forever. */
        if (fn && in_this_library(fn))
            fn = NULL;
        if (!fn && bindings[i].optional)
            continue;
        if (!fn) {
            LOG_EVENT(LOG_LVL_WARN, "libpq_symbol_missing",
                      LF_S("symbol", bindings[i].name),
                      LF_S("detail", "the shim passes every call through"));
            complete = false;
            continue;
        }
        any = true;
        memcpy((char *)t + bindings[i].offset, &fn, sizeof fn);
    }
    t->complete = complete;
    return any;
}

static const void *base_of(const void *fn)
{
    Dl_info info;
    return fn && dladdr(fn, &info) ? info.dli_fbase : NULL;
}

static void bind_all(void)
{
    void *h = find_libpq();
    if (!h) {
        LOG_EVENT(LOG_LVL_WARN, "libpq_not_found",
                  LF_S("detail", "no loaded libpq found; calls cannot be passed through"));
        return;
    }
    if (!bind_table(h, &copies[0]))
        return;
    copies[0].copy = 0;
    copy_base[0] = base_of((const void *)copies[0].PQconnectdb);
    atomic_store_explicit(&ncopies, 1, memory_order_release);
}

const struct real_libpq *real_libpq(void)
{
    if (current)
        return current;
    pthread_once(&bind_once, bind_all);
    return atomic_load_explicit(&ncopies, memory_order_acquire) > 0 ? &copies[0] : NULL;
}

const struct real_libpq *real_use(const struct real_libpq *pq)
{
    const struct real_libpq *prev = current;
    current = pq;
    return prev;
}

const struct real_libpq *real_current(void)
{
    return current;
}

const struct real_libpq *real_copy(int index)
{
    if (index < 0 || index >= atomic_load_explicit(&ncopies, memory_order_acquire))
        return NULL;
    return &copies[index];
}

static int find_copy(const void *base)
{
    int n = atomic_load_explicit(&ncopies, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (copy_base[i] == base)
            return i;
    return -1;
}

int real_copy_index(const void *base, const char *path)
{
    pthread_once(&bind_once, bind_all);
    if (atomic_load_explicit(&ncopies, memory_order_acquire) == 0 || !base)
        return -1; /* copy 0 stays the global scope's: nothing else first */
    int i = find_copy(base);
    if (i >= 0)
        return i;
    /* Bind outside the lock (dlopen and dlsym may block or re-enter). The
     * handle is never closed: it pins this copy. */
    void *h = open_loaded(path);
    struct real_libpq t = {0};
    if (!h || base_of(real_dlsym(h, "PQconnectdb")) != base || !bind_table(h, &t))
        return -1;
    static atomic_bool warned;
    pthread_mutex_lock(&copies_lock);
    int n = atomic_load_explicit(&ncopies, memory_order_relaxed);
    i = find_copy(base);
    if (i < 0 && n < REAL_MAX_COPIES) {
        i = n;
        t.copy = i;
        copies[i] = t;
        copy_base[i] = base;
        atomic_store_explicit(&ncopies, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&copies_lock);
    if (i < 0 && !atomic_exchange(&warned, true))
        LOG_EVENT(LOG_LVL_WARN, "libpq_copy_limit", LF_S("library", path),
                  LF_I("copies", REAL_MAX_COPIES),
                  LF_S("detail", "connections through this copy are passed through untouched"));
    return i;
}

bool real_complete(void)
{
    const struct real_libpq *pq = real_libpq();
    return pq && pq->complete;
}
