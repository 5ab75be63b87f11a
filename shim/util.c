/*
 * util.c — what every layer may use: clocks, the process id, the
 * out-of-memory flag of the hash tables.
 */
#define _GNU_SOURCE
#include "util.h"

#include <time.h>

__thread bool pqshim_oom __attribute__((tls_model("initial-exec")));
pid_t pqshim_pid;

double now_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double now_realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
