/*
 * fork_storm — one thread forks again and again while others keep the
 * shim busy: connecting, checking in and logging (-c threads), and
 * loading, looking up a symbol of and unloading a plugin linked to libpq
 * (-m PLUGIN, tests/lib/pqmod.c: the lookup makes the shim rewrite its
 * relocation slots).
 * Each child connects, runs a query, finishes and _exits; a child that
 * has not exited within 10 s is taken for deadlocked, killed and counted
 * (with FORK_STORM_GDB=FILE, gdb appends its stacks to FILE first).
 *
 *   fork_storm [-s SECONDS] [-c THREADS] [-m PLUGIN]
 *
 * Prints "forks=N ok=N failed=N hung=N connects=N loads=N fork_ms=F
 * child_ms=F" (mean time in fork() and from fork to the child's end); exit 0 when
 * every child connected and exited in time (and there was at least one).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHILD_BOUND_S 10.0
#define MAX_THREADS 16

static atomic_bool stop;
static atomic_long connects, loads;
static const char *plugin;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_and_query(void)
{
    PGconn *conn = PQconnectdb("");
    int ok = PQstatus(conn) == CONNECTION_OK;
    if (ok) {
        PGresult *res = PQexec(conn, "select 1");
        ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
    }
    PQfinish(conn);
    return ok;
}

static void *connector(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        if (connect_and_query())
            atomic_fetch_add(&connects, 1);
    return NULL;
}

static void *loader(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        void *h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen %s: %s\n", plugin, dlerror());
            return NULL;
        }
        /* The lookup makes the shim look at the new module. */
        if (dlsym(h, "pqmod_run"))
            atomic_fetch_add(&loads, 1);
        dlclose(h);
    }
    return NULL;
}

/* Wait for child up to the bound: 0 exited well, 1 failed, 2 hung. */
static int reap(pid_t child)
{
    double end = now_s() + CHILD_BOUND_S;
    int status;
    while (now_s() < end) {
        pid_t r = waitpid(child, &status, WNOHANG);
        if (r == child && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            return 0;
        if (r == child) {
            fprintf(stderr, "child %d: status %#x\n", (int)child, (unsigned)status);
            return 1;
        }
        if (r < 0)
            return 1;
        usleep(1000);
    }
    const char *stacks = getenv("FORK_STORM_GDB");
    if (stacks && stacks[0] == '/' && !strchr(stacks, '\'')) { /* where it hangs */
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "gdb -batch -p %d -ex 'thread apply all bt' >>'%s' 2>&1",
                 (int)child, stacks);
        if (system(cmd) != 0)
            fprintf(stderr, "child %d: gdb failed\n", (int)child);
    }
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    return 2;
}

int main(int argc, char **argv)
{
    double seconds = 5;
    int threads = 4, opt;
    while ((opt = getopt(argc, argv, "s:c:m:")) != -1) {
        switch (opt) {
        case 's': seconds = atof(optarg); break;
        case 'c': threads = atoi(optarg); break;
        case 'm': plugin = optarg; break;
        default:
            fprintf(stderr, "usage: fork_storm [-s SECONDS] [-c THREADS] [-m PLUGIN]\n");
            return 2;
        }
    }
    if (threads < 0 || threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (!connect_and_query()) {
        printf("first connect failed\n");
        return 1;
    }
    pthread_t tids[MAX_THREADS + 1];
    int started = 0;
    for (int i = 0; i < threads; i++)
        started += pthread_create(&tids[started], NULL, connector, NULL) == 0;
    if (plugin)
        started += pthread_create(&tids[started], NULL, loader, NULL) == 0;

    int forks = 0, ok = 0, failed = 0, hung = 0;
    double end = now_s() + seconds;
    fflush(stdout);
    fflush(stderr);
    double in_fork = 0, in_child = 0;
    while (now_s() < end) {
        double t0 = now_s();
        pid_t child = fork();
        /* _exit: a child of a threaded process may not run exit handlers
         * (glibc's exit lock may have been held at the fork, by a thread
         * in dlclose), with or without the shim. */
        if (child == 0)
            _exit(connect_and_query() ? 0 : 1);
        if (child < 0) {
            failed++;
            break;
        }
        forks++;
        double t1 = now_s();
        in_fork += t1 - t0;
        int how = reap(child);
        in_child += now_s() - t1;
        switch (how) {
        case 0: ok++; break;
        case 1: failed++; break;
        default: hung++; break;
        }
    }
    atomic_store(&stop, true);
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    printf("forks=%d ok=%d failed=%d hung=%d connects=%ld loads=%ld fork_ms=%.1f child_ms=%.1f\n",
           forks, ok, failed, hung, atomic_load(&connects), atomic_load(&loads),
           forks ? in_fork * 1000 / forks : 0, forks ? in_child * 1000 / forks : 0);
    return forks > 0 && ok == forks ? 0 : 1;
}
