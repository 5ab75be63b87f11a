/*
 * real.c — find the host's libpq and bind every function the shim calls.
 *
 * The shim is not linked against libpq: it must work whether libpq sits in
 * the global scope (psql, pgbench), was loaded RTLD_LOCAL by a dlopen'ed
 * module (every Python extension: RTLD_NEXT finds nothing there), or is a
 * bundled copy under a hashed name (psycopg2-binary's libpq-<hash>.so.5.x).
 */
#define _GNU_SOURCE
#include "pqshim.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static struct real_libpq table;
static bool table_found;    /* a libpq is loaded: pass-through possible */
static bool table_complete; /* every function bound: the shim may act */
static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

/* Path of a libpq seen through a private dlopen handle (ctypes hosts). */
static char noted_path[4096];
static atomic_bool noted;

struct binding {
    const char *name;
    size_t offset;
};

#define BIND(fn) {#fn, offsetof(struct real_libpq, fn)}
static const struct binding bindings[] = {
    BIND(PQconnectdb), BIND(PQconnectdbParams), BIND(PQsetdbLogin),
    BIND(PQconnectStart), BIND(PQconnectStartParams), BIND(PQconnectPoll),
    BIND(PQfinish), BIND(PQreset), BIND(PQresetStart), BIND(PQresetPoll),
    BIND(PQping), BIND(PQpingParams), BIND(PQregisterEventProc),
    BIND(PQerrorMessage), BIND(PQstatus), BIND(PQtransactionStatus),
    BIND(PQpipelineStatus), BIND(PQbackendPID), BIND(PQsocket),
    BIND(PQsslInUse), BIND(PQisBusy), BIND(PQconsumeInput), BIND(PQuser),
    BIND(PQhost), BIND(PQport), BIND(PQdb), BIND(PQconndefaults),
    BIND(PQconninfoParse), BIND(PQconninfoFree), BIND(PQfreemem),
    BIND(PQexec), BIND(PQsendQuery), BIND(PQgetResult), BIND(PQresultStatus), BIND(PQclear),
    BIND(PQsetnonblocking), BIND(PQsetNoticeProcessor),
    BIND(PQsetNoticeReceiver), BIND(PQuntrace), BIND(PQnotifies),
    BIND(PQsetErrorVerbosity), BIND(PQsetErrorContextVisibility),
    BIND(PQresultErrorField), BIND(PQgetCancel), BIND(PQcancel),
    BIND(PQfreeCancel), BIND(PQexitPipelineMode), BIND(PQtrace),
};
#undef BIND

void *real_dlsym(void *handle, const char *name)
{
    void *(*fn)(void *, const char *) = real_dlsym_fn();
    return fn ? fn(handle, name) : NULL;
}

void real_note_library(const char *path)
{
    if (atomic_load(&noted) || !path)
        return;
    /* A benign race: two threads may both copy a libpq path; either is ok. */
    snprintf(noted_path, sizeof noted_path, "%s", path);
    atomic_store(&noted, true);
}

static int find_bundled(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const char *path = info->dlpi_name;
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    if (base && strncmp(base, "libpq", 5) == 0 && strstr(base, ".so") &&
        (base[5] == '.' || base[5] == '-')) {
        snprintf(data, 4096, "%s", path);
        return 1;
    }
    return 0;
}

static void *open_loaded(const char *path)
{
    return path && *path ? dlopen(path, RTLD_NOLOAD | RTLD_LAZY) : NULL;
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

static void bind_all(void)
{
    void *h = find_libpq();
    if (!h) {
        LOG_EVENT(LOG_LVL_WARN, "libpq_not_found",
                  LF_S("detail", "no loaded libpq found; calls cannot be passed through"));
        return;
    }
    bool complete = true;
    for (size_t i = 0; i < sizeof bindings / sizeof bindings[0]; i++) {
        void *fn = real_dlsym(h, bindings[i].name);
        /* Guard against resolving to ourselves: that would recurse forever. */
        if (fn == hooks_lookup(bindings[i].name))
            fn = NULL;
        if (!fn) {
            LOG_EVENT(LOG_LVL_WARN, "libpq_symbol_missing",
                      LF_S("symbol", bindings[i].name),
                      LF_S("detail", "the shim passes every call through"));
            complete = false;
            continue;
        }
        memcpy((char *)&table + bindings[i].offset, &fn, sizeof fn);
    }
    table_found = true;
    table_complete = complete;
}

const struct real_libpq *real_libpq(void)
{
    pthread_once(&bind_once, bind_all);
    return table_found ? &table : NULL;
}

bool real_serves(const void *base, const char *path)
{
    const struct real_libpq *pq = real_libpq();
    Dl_info info;
    if (!pq || !pq->PQconnectdb || !dladdr((void *)pq->PQconnectdb, &info))
        return false;
    if (info.dli_fbase == base)
        return true;
    /* Our hooks would run this copy's connections through another libpq:
     * hand out its own functions instead, and say so once. */
    static atomic_bool warned;
    if (!atomic_exchange(&warned, true))
        LOG_EVENT(LOG_LVL_WARN, "libpq_second_copy", LF_S("library", path),
                  LF_S("serving", info.dli_fname ? info.dli_fname : "?"),
                  LF_S("detail", "connections through the second copy are passed through untouched"));
    return false;
}

bool real_complete(void)
{
    return real_libpq() && table_complete;
}
