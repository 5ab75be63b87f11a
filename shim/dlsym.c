/*
 * dlsym.c — the loader entry points we wrap: dlsym and dlopen.
 *
 * Hosts such as psycopg 3's pure-Python implementation (ctypes) call
 * dlopen("libpq.so.5") + dlsym(handle, "PQconnectdb"): symbol interposition
 * never sees those calls. We hand out the hooks serving that libpq copy for
 * intercepted names when the handle's answer lives in a libpq, and pass
 * every other lookup on.
 *
 * Modules loaded with RTLD_DEEPBIND (every PHP extension) bind libpq in
 * their own scope: after a load, gotpatch.c points their relocation slots
 * at our hooks. A dlopen of a path is followed by that look at once; any
 * other load is noticed at the next dlsym on a handle or connect.
 *
 * This file is always compiled with optimisation: the pass-through must be
 * a tail call, so that libc's dlsym sees the *caller's* return address and
 * RTLD_NEXT keeps its caller-relative meaning for other preloaded libraries.
 * dlopen is caller-relative too (search path, $ORIGIN): it is wrapped with
 * a call only for names where the caller cannot matter.
 */
#define _GNU_SOURCE
#include "gotpatch.h"
#include "hooks.h"
#include "loader.h"
#include "real.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <string.h>

/* The copy of libpq that addr lives in, or -1 when it is no libpq. */
static int libpq_copy_of(void *addr)
{
    Dl_info info;
    if (!dladdr(addr, &info) || !real_is_libpq_name(info.dli_fname))
        return -1;
    real_note_library(info.dli_fname);
    return real_copy_index(info.dli_fbase, info.dli_fname);
}

/* Our hook for (handle, name), or NULL to let libc answer. */
static __attribute__((noinline)) void *hook_for_handle(void *handle,
                                                       const char *name)
{
    if (!hooks_lookup(name))
        return NULL;
    void *found = real_dlsym(handle, name);
    gotpatch_loader_proven();
    if (!found || hooks_is_ours(found))
        return NULL;
    int copy = libpq_copy_of(found);
    return copy >= 0 ? hooks_lookup_copy(name, copy) : NULL;
}

PQSHIM_EXPORT void *dlsym(void *restrict handle, const char *restrict name)
{
    /* Sanitizer runtimes look up RTLD_NEXT while they initialise: only a
     * real handle (something was dlopen'ed) may lead into other code. */
    if (handle != RTLD_NEXT && handle != RTLD_DEFAULT) {
        gotpatch_refresh(&hooks_entry_points);
        if (name[0] == 'P' && name[1] == 'Q') {
            void *hook = hook_for_handle(handle, name);
            if (hook)
                return hook;
        }
    }
    void *(*next)(void *, const char *) = real_dlsym_fn();
    if (!next)
        return NULL;
    return next(handle, name); /* tail call: see the note at the top */
}

/* A name without '/' is searched along the caller's RPATH and RUNPATH, and
 * $ORIGIN means the caller's directory: those must reach libc from the
 * caller itself (a tail call), and the load is looked at later. A path
 * names the file whoever asks, so we can look right after it is loaded. */
PQSHIM_EXPORT void *dlopen(const char *file, int mode)
{
    dlopen_fn next = real_dlopen_fn();
    if (!next)
        return NULL;
    gotpatch_watch_forks();
    if (mode & RTLD_DEEPBIND)
        gotpatch_note_deepbind(file); /* whose libpq it calls (gotpatch.c) */
    if (!file || !strchr(file, '/') || strchr(file, '$'))
        return next(file, mode); /* tail call: see above */
    void *h = next(file, mode);
    gotpatch_loader_proven();
    if (h)
        gotpatch_refresh(&hooks_entry_points);
    return h;
}
