/*
 * sigwait — a connect that waits at the pool's cap while signals rain on
 * the waiting thread. The main thread connects and holds that connection;
 * a second thread then connects (with a cap of 1 it must wait) while a
 * SIGALRM interval timer fires every 5 ms and the main thread sends it
 * SIGINT every 50 ms. Both handlers are installed without SA_RESTART, so
 * every blocking system call in the waiting thread sees EINTR.
 *
 *   sigwait HOLD_MS [CONNINFO]
 *     HOLD_MS >= 0: the main thread finishes its connection after that long
 *     HOLD_MS <  0: it keeps it until the waiting thread is done
 * Prints:
 *   holder ok pid=P
 *   waiter ok|bad ms=F alarms=N ints=M [pid=P query=ok|failed] [error=TEXT]
 * Exit status 0 when both lines could be printed (whatever the outcome).
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int alarms, ints;
static atomic_int waiter_done;
static const char *conninfo = "";

static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&alarms, 1);
}

static void on_int(int sig)
{
    (void)sig;
    atomic_fetch_add(&ints, 1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void *waiter(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    struct itimerval it = {{0, 5000}, {0, 5000}};
    setitimer(ITIMER_REAL, &it, NULL);
    double t0 = now_ms();
    PGconn *conn = PQconnectdb(conninfo);
    double ms = now_ms() - t0;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    char line[2048];
    if (conn && PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, "select 1");
        int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        PQclear(res);
        snprintf(line, sizeof line, "waiter ok ms=%.1f alarms=%d ints=%d pid=%d query=%s",
                 ms, atomic_load(&alarms), atomic_load(&ints), PQbackendPID(conn),
                 ok ? "ok" : "failed");
    } else {
        snprintf(line, sizeof line, "waiter bad ms=%.1f alarms=%d ints=%d error=%s",
                 ms, atomic_load(&alarms), atomic_load(&ints),
                 conn ? PQerrorMessage(conn) : "NULL connection");
    }
    for (char *s = line; *s; s++)
        if (*s == '\n')
            *s = ' ';
    PQfinish(conn);
    printf("%s\n", line);
    fflush(stdout);
    atomic_store(&waiter_done, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s HOLD_MS [CONNINFO]\n", argv[0]);
        return 2;
    }
    int hold_ms = atoi(argv[1]);
    if (argc > 2)
        conninfo = argv[2];

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted calls fail with EINTR */
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_int;
    sigaction(SIGINT, &sa, NULL);

    /* Only the waiting thread takes the signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    PGconn *held = PQconnectdb(conninfo);
    if (!held || PQstatus(held) != CONNECTION_OK) {
        printf("holder bad error=%s", held ? PQerrorMessage(held) : "NULL\n");
        return 1;
    }
    printf("holder ok pid=%d\n", PQbackendPID(held));
    fflush(stdout);

    pthread_t tid;
    if (pthread_create(&tid, NULL, waiter, NULL) != 0)
        return 2;
    double t0 = now_ms();
    while (!atomic_load(&waiter_done)) {
        sleep_ms(50);
        if (!atomic_load(&waiter_done))
            pthread_kill(tid, SIGINT);
        if (held && hold_ms >= 0 && now_ms() - t0 >= hold_ms) {
            PQfinish(held);
            held = NULL;
        }
    }
    pthread_join(tid, NULL);
    if (held)
        PQfinish(held);
    return 0;
}
