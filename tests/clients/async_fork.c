/*
 * async_fork.c — fork while an asynchronous connect waits at the cap.
 *
 * A blocking connection A takes the only slot; B is started with
 * PQconnectStartParams and must keep waiting (its poll loop answers
 * READING) for 300 ms; then the process forks. The child opens and uses a
 * connection of its own and exits; the parent finishes A, and B must then
 * complete. Run with PQSHIM_POLICY=capped, pool size 1, overflow 0.
 * Prints "waiting=yes child=ok parent=ok" (or what went wrong); exit 0
 * only when all three hold.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int select_one(PGconn *conn)
{
    PGresult *res = PQexec(conn, "select 1");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

/* Drive conn's poll loop for at most seconds; the last status. */
static PostgresPollingStatusType drive(PGconn *conn, PostgresPollingStatusType st,
                                       double seconds)
{
    double end = now_s() + seconds;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED && now_s() < end) {
        struct pollfd p = {.fd = PQsocket(conn),
                           .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int left = (int)((end - now_s()) * 1000) + 1;
        if (poll(&p, 1, left) == 1)
            st = PQconnectPoll(conn);
    }
    return st;
}

int main(void)
{
    PGconn *a = PQconnectdb("");
    if (PQstatus(a) != CONNECTION_OK || !select_one(a)) {
        printf("first connection failed: %s", PQerrorMessage(a));
        return 1;
    }
    PGconn *b = PQconnectStartParams((const char *[]){NULL}, (const char *[]){NULL}, 0);
    PostgresPollingStatusType st = drive(b, PGRES_POLLING_WRITING, 0.3);
    int waiting = st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING;
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        PGconn *c = PQconnectdb("");
        int ok = PQstatus(c) == CONNECTION_OK && select_one(c);
        PQfinish(c);
        _exit(ok ? 0 : 1);
    }
    int status = 1;
    waitpid(child, &status, 0);
    int child_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    PQfinish(a);
    st = drive(b, st, 10);
    int parent_ok = st == PGRES_POLLING_OK && select_one(b);
    printf("waiting=%s child=%s parent=%s%s%s", waiting ? "yes" : "no",
           child_ok ? "ok" : "bad", parent_ok ? "ok" : "bad",
           parent_ok ? "" : " error=", parent_ok ? "\n" : PQerrorMessage(b));
    PQfinish(b);
    return waiting && child_ok && parent_ok ? 0 : 1;
}
