/*
 * cancel_thread — pthread_cancel of threads inside libpq calls the shim
 * intercepts, then proof that nothing was left held.
 *
 *   1. The main thread holds the only connection of CONNINFO (run with a
 *      cap of 1); a second thread's PQconnectdb waits at the cap and is
 *      cancelled (the shim defers that to the end of the wait). The main
 *      thread's PQfinish and a new connect must work.
 *   2. A thread connects to a listener of our own that accepts and never
 *      answers (a connect in progress) and is cancelled. A second connect
 *      to it must reach the listener (which then closes it) instead of
 *      waiting for a slot the cancelled thread never gave back.
 * Prints one line per step; exit status 0 when every step did its part.
 * usage: cancel_thread CONNINFO
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *connect_main(void *arg)
{
    PGconn *c = PQconnectdb(arg);
    return c; /* not reached when cancelled */
}

/* Cancel a thread after delay seconds and join it; true if it ended
 * cancelled. One that finished its call first had its cancellation
 * deferred: its connection is finished here. */
static bool cancel_after(pthread_t tid, double delay)
{
    usleep((useconds_t)(delay * 1e6));
    pthread_cancel(tid);
    void *ret = NULL;
    pthread_join(tid, &ret);
    if (ret != PTHREAD_CANCELED)
        PQfinish(ret);
    return ret == PTHREAD_CANCELED;
}

static int listener_fd;
static int accepted;

/* Accept connections: keep the first open and silent, close the rest. */
static void *listener_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listener_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        if (__atomic_add_fetch(&accepted, 1, __ATOMIC_SEQ_CST) > 1)
            close(fd);
    }
}

int main(int argc, char **argv)
{
    const char *conninfo = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IOLBF, 0);
    int bad = 0;

    PGconn *held = PQconnectdb(conninfo);
    printf("hold %s\n", PQstatus(held) == CONNECTION_OK ? "ok" : PQerrorMessage(held));
    pthread_t tid;
    pthread_create(&tid, NULL, connect_main, (void *)conninfo);
    double t0 = now_s();
    (void)cancel_after(tid, 0.3);
    printf("waiting thread ended\n");
    bool cancelled = now_s() - t0 < 30;
    t0 = now_s();
    PQfinish(held);
    printf("finish returned %d\n", now_s() - t0 < 5);
    PGconn *again = PQconnectdb(conninfo);
    printf("connect again %s\n", PQstatus(again) == CONNECTION_OK ? "ok" : PQerrorMessage(again));
    bad |= !cancelled || PQstatus(again) != CONNECTION_OK;
    PQfinish(again);

    listener_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (bind(listener_fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(listener_fd, 8) != 0 ||
        getsockname(listener_fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("listener");
        return 2;
    }
    pthread_t lt;
    pthread_create(&lt, NULL, listener_main, NULL);
    char silent[256];
    snprintf(silent, sizeof silent, "host=127.0.0.1 port=%d user=x dbname=x sslmode=disable",
             ntohs(sa.sin_port));
    pthread_create(&tid, NULL, connect_main, silent);
    cancelled = cancel_after(tid, 0.5);
    printf("connecting thread cancelled %d\n", cancelled);
    t0 = now_s();
    PGconn *second = PQconnectdb(silent);
    const char *err = PQerrorMessage(second);
    printf("second connect reached the server %d\n",
           __atomic_load_n(&accepted, __ATOMIC_SEQ_CST) >= 2);
    printf("second connect error: %s", err);
    bad |= !cancelled || __atomic_load_n(&accepted, __ATOMIC_SEQ_CST) < 2 || strstr(err, "pqshim");
    PQfinish(second);
    printf("done bad=%d\n", bad);
    return bad;
}
