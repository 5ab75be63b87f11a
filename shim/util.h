/*
 * util.h — what every layer may use (util.c): clocks, the process id, the
 * hash tables' out-of-memory flag, export and thread-local markers.
 */
#ifndef PQSHIM_UTIL_H
#define PQSHIM_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <sys/types.h>

/* uthash must never abort the host: on allocation failure it sets a flag and
 * the caller falls back to passing the connection through. */
extern __thread bool pqshim_oom __attribute__((tls_model("initial-exec")));
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(obj) (pqshim_oom = true)
#include <uthash.h>

#define PQSHIM_EXPORT __attribute__((visibility("default")))
#define PQSHIM_TLS __thread __attribute__((tls_model("initial-exec")))

extern pid_t pqshim_pid; /* getpid(), refreshed in a forked child */

double now_monotonic(void);  /* seconds */
double now_realtime(void);   /* seconds since the epoch */

#endif
