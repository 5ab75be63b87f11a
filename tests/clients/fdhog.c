/*
 * fdhog — runs out of file descriptors on purpose (start it under a small
 * `ulimit -n`) and checks that libpq calls keep failing cleanly and start
 * working again once descriptors are free.
 *
 *   fdhog [-x] [CONNINFO]
 * Default: open connections (holding them all) until a connect fails, run
 * a query on every one held, finish half of them, connect twice more, run
 * a query there, finish everything, and connect once more.
 * -x: use every free descriptor up (dup of stdin) before the first libpq
 * call, connect (expected to fail), free 8 descriptors, connect again.
 * One line per step on stdout:
 *   held N
 *   failed at N: MESSAGE       (the first failure, one line)
 *   unclean at N               (a failure without CONNECTION_BAD + message)
 *   queries ok N / queries failed N
 *   reconnect I ok|bad [MESSAGE]
 *   final ok|bad [MESSAGE]
 * Exit status 0 when every failure was clean and the last connect worked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CONNS 512

static const char *conninfo = "";
static int unclean;

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

/* Connect; on failure print what happened and return NULL. */
static PGconn *try_connect(const char *what, int n)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (conn && PQstatus(conn) == CONNECTION_OK)
        return conn;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", conn ? PQerrorMessage(conn) : "");
    one_line(msg);
    if (!conn || PQstatus(conn) != CONNECTION_BAD || !msg[0]) {
        unclean++;
        printf("unclean at %d\n", n);
    }
    printf("%s %d: %s\n", what, n, msg[0] ? msg : "(no message)");
    fflush(stdout);
    PQfinish(conn);
    return NULL;
}

static int query_ok(PGconn *conn)
{
    PGresult *res = PQexec(conn, "select 1");
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

static int exhaust_mode(void)
{
    int fds[4096], n = 0;
    while (n < 4096) {
        int fd = dup(0);
        if (fd < 0)
            break;
        fds[n++] = fd;
    }
    printf("exhausted after %d dups (errno %s)\n", n, strerror(errno));
    fflush(stdout);
    PGconn *first = try_connect("failed at", 0);
    if (first) {
        printf("first connect ok without a free descriptor?\n");
        PQfinish(first);
    }
    for (int i = 0; i < 8 && n > 0; i++)
        close(fds[--n]);
    PGconn *conn = try_connect("final bad", 1);
    int ok = conn && query_ok(conn);
    printf("final %s\n", ok ? "ok" : "bad");
    PQfinish(conn);
    while (n > 0)
        close(fds[--n]);
    return ok && !unclean ? 0 : 1;
}

int main(int argc, char **argv)
{
    int exhaust = 0;
    int i = 1;
    if (i < argc && strcmp(argv[i], "-x") == 0) {
        exhaust = 1;
        i++;
    }
    if (i < argc)
        conninfo = argv[i];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (exhaust)
        return exhaust_mode();

    static PGconn *held[MAX_CONNS];
    int n = 0;
    while (n < MAX_CONNS) {
        PGconn *conn = try_connect("failed at", n);
        if (!conn)
            break;
        held[n++] = conn;
    }
    printf("held %d\n", n);
    int good = 0;
    for (int k = 0; k < n; k++)
        good += query_ok(held[k]);
    printf("queries ok %d\nqueries failed %d\n", good, n - good);
    int half = n / 2;
    for (int k = half; k < n; k++)
        PQfinish(held[k]);
    n = half;
    for (int r = 0; r < 2; r++) {
        PGconn *conn = try_connect("reconnect bad", r);
        if (conn) {
            printf("reconnect %d %s\n", r, query_ok(conn) ? "ok" : "query failed");
            held[n++] = conn;
        }
    }
    for (int k = 0; k < n; k++)
        PQfinish(held[k]);
    PGconn *conn = try_connect("final bad", 0);
    int ok = conn && query_ok(conn);
    printf("final %s\n", ok ? "ok" : "bad");
    PQfinish(conn);
    return ok && !unclean ? 0 : 1;
}
