/*
 * dlsym.c — catch libpq entry points looked up through a private handle.
 *
 * Hosts such as psycopg 3's pure-Python implementation (ctypes) call
 * dlopen("libpq.so.5") + dlsym(handle, "PQconnectdb"): symbol interposition
 * never sees those calls. We hand out our hooks for intercepted names when
 * the handle's answer lives in a libpq, and pass every other lookup on.
 *
 * This file is always compiled with optimisation: the pass-through must be
 * a tail call, so that libc's dlsym sees the *caller's* return address and
 * RTLD_NEXT keeps its caller-relative meaning for other preloaded libraries.
 */
#define _GNU_SOURCE
#include "pqshim.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <string.h>

/* Sanitizer runtimes call dlsym(RTLD_NEXT, ...) while they initialise,
 * before instrumented code may run: what the wrapper needs lives here. */
typedef void *(*dlsym_fn)(void *, const char *);
static _Atomic(dlsym_fn) dlsym_ptr;

/* dlvsym is not interposed, so it reaches libc's dlsym without recursion.
 * The version names cover glibc >= 2.34 and the older per-arch baselines. */
static dlsym_fn find_real_dlsym(void)
{
    static const char *const versions[] = {"GLIBC_2.34", "GLIBC_2.2.5",
                                           "GLIBC_2.17", "GLIBC_2.0", NULL};
    for (int i = 0; versions[i]; i++) {
        void *p = dlvsym(RTLD_NEXT, "dlsym", versions[i]);
        if (p)
            return (dlsym_fn)p;
    }
    return NULL;
}

void *(*real_dlsym_fn(void))(void *, const char *)
{
    dlsym_fn fn = atomic_load_explicit(&dlsym_ptr, memory_order_acquire);
    if (!fn) {
        fn = find_real_dlsym();
        if (fn)
            atomic_store_explicit(&dlsym_ptr, fn, memory_order_release);
    }
    return fn;
}


static bool lives_in_libpq(void *addr)
{
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname)
        return false;
    const char *base = strrchr(info.dli_fname, '/');
    base = base ? base + 1 : info.dli_fname;
    if (strncmp(base, "libpq", 5) != 0 || (base[5] != '.' && base[5] != '-'))
        return false;
    real_note_library(info.dli_fname);
    return real_serves(info.dli_fbase, info.dli_fname);
}

/* Our hook for (handle, name), or NULL to let libc answer. */
static __attribute__((noinline)) void *hook_for_handle(void *handle,
                                                       const char *name)
{
    void *hook = hooks_lookup(name);
    if (!hook)
        return NULL;
    void *found = real_dlsym(handle, name);
    return found && found != hook && lives_in_libpq(found) ? hook : NULL;
}

PQSHIM_EXPORT void *dlsym(void *restrict handle, const char *restrict name)
{
    if (name[0] == 'P' && name[1] == 'Q' && handle != RTLD_NEXT &&
        handle != RTLD_DEFAULT) {
        void *hook = hook_for_handle(handle, name);
        if (hook)
            return hook;
    }
    void *(*next)(void *, const char *) = real_dlsym_fn();
    if (!next)
        return NULL;
    return next(handle, name); /* tail call: see the note at the top */
}
