/*
 * loader.c — the real dlsym and dlopen, found without going through our
 * own wrappers (dlsym.c). Like dlsym.c it is never instrumented: sanitizer
 * runtimes reach it while they initialise.
 */
#define _GNU_SOURCE
#include "loader.h"

#include <dlfcn.h>
#include <stdatomic.h>

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

void *real_dlsym(void *handle, const char *name)
{
    void *(*fn)(void *, const char *) = real_dlsym_fn();
    return fn ? fn(handle, name) : NULL;
}

static _Atomic(dlopen_fn) dlopen_ptr;

dlopen_fn real_dlopen_fn(void)
{
    dlopen_fn fn = atomic_load_explicit(&dlopen_ptr, memory_order_acquire);
    if (!fn) {
        fn = (dlopen_fn)real_dlsym(RTLD_NEXT, "dlopen");
        if (fn)
            atomic_store_explicit(&dlopen_ptr, fn, memory_order_release);
    }
    return fn;
}

void *real_dlopen(const char *file, int mode)
{
    dlopen_fn fn = real_dlopen_fn();
    return fn ? fn(file, mode) : NULL;
}
