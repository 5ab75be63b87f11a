/*
 * nextprobe.c — a preloaded wrapper of getenv() that finds the real one
 * with dlsym(RTLD_NEXT, "getenv"), the way interposing libraries do.
 *
 * Loaded after libpqshim.so, its dlsym call goes through the shim's dlsym
 * wrapper. RTLD_NEXT is relative to the caller: if the wrapper lost the
 * caller's identity, the lookup would start after the shim and return this
 * very wrapper (endless recursion). That case is detected and reported.
 *
 * With NEXTPROBE_REPORT set, prints "nextprobe: getenv calls=N" to stderr
 * at exit.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef char *(*getenv_fn)(const char *);

static _Atomic(getenv_fn) next_getenv;
static atomic_long calls;

char *getenv(const char *name)
{
    getenv_fn next = atomic_load(&next_getenv);
    if (!next) {
        next = (getenv_fn)dlsym(RTLD_NEXT, "getenv");
        if (next == getenv || !next) {
            static const char msg[] =
                "nextprobe: dlsym(RTLD_NEXT, \"getenv\") did not find the next getenv\n";
            (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
            _exit(99);
        }
        atomic_store(&next_getenv, next);
    }
    atomic_fetch_add(&calls, 1);
    return next(name);
}

__attribute__((destructor)) static void nextprobe_report(void)
{
    if (getenv("NEXTPROBE_REPORT"))
        fprintf(stderr, "nextprobe: getenv calls=%ld\n", atomic_load(&calls));
}
