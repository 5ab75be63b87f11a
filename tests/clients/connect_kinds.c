/*
 * connect_kinds.c — one connection through each libpq connect entry point.
 *
 * The server comes from the environment (PGHOST, PGPORT, PGUSER,
 * PGDATABASE). Opens five connections, one per entry point (PQconnectdb,
 * PQconnectdbParams with a conninfo in dbname, PQsetdbLogin, PQconnectStart
 * and PQconnectStartParams with a poll loop), runs SELECT 1 on each, resets
 * the first with PQreset and the second with PQresetStart/PQresetPoll, runs
 * SELECT 1 on both again and finishes all five. Prints one line per step;
 * exits 1 at the first failure.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, PGconn *conn)
{
    fprintf(stderr, "connect_kinds: %s failed: %s", what,
            conn ? PQerrorMessage(conn) : "no connection\n");
    exit(1);
}

static void wait_socket(PGconn *conn, PostgresPollingStatusType status)
{
    struct pollfd p = {.fd = PQsocket(conn),
                       .events = status == PGRES_POLLING_READING ? POLLIN : POLLOUT};
    if (p.fd < 0 || poll(&p, 1, 10000) != 1)
        die("waiting for the socket", conn);
}

/* The poll loop the libpq documentation describes: start as if WRITING. */
static void finish_connect(PGconn *conn, PostgresPollingStatusType (*step)(PGconn *),
                           const char *what)
{
    PostgresPollingStatusType status = PGRES_POLLING_WRITING;
    for (int i = 0; i < 1000; i++) {
        if (status == PGRES_POLLING_OK)
            return;
        if (status == PGRES_POLLING_FAILED)
            die(what, conn);
        wait_socket(conn, status);
        status = step(conn);
    }
    die(what, conn);
}

static void select_one(PGconn *conn, const char *what)
{
    PGresult *res = PQexec(conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
        PQclear(res);
        die(what, conn);
    }
    PQclear(res);
    printf("%s: select 1 ok (backend %d)\n", what, PQbackendPID(conn));
}

static PGconn *checked(PGconn *conn, const char *what)
{
    if (!conn || PQstatus(conn) == CONNECTION_BAD)
        die(what, conn);
    return conn;
}

int main(void)
{
    PGconn *c[5];

    c[0] = checked(PQconnectdb(""), "PQconnectdb");
    select_one(c[0], "PQconnectdb");

    const char *kw[] = {"dbname", NULL};
    const char *val[] = {"dbname=postgres application_name=connect_kinds", NULL};
    c[1] = checked(PQconnectdbParams(kw, val, 1), "PQconnectdbParams");
    select_one(c[1], "PQconnectdbParams");

    c[2] = checked(PQsetdbLogin(NULL, NULL, NULL, NULL, "postgres", NULL, NULL),
                   "PQsetdbLogin");
    select_one(c[2], "PQsetdbLogin");

    c[3] = checked(PQconnectStart(""), "PQconnectStart");
    finish_connect(c[3], PQconnectPoll, "PQconnectStart");
    select_one(c[3], "PQconnectStart");

    const char *kw2[] = {"dbname", "application_name", NULL};
    const char *val2[] = {"postgres", "connect_kinds", NULL};
    c[4] = checked(PQconnectStartParams(kw2, val2, 0), "PQconnectStartParams");
    finish_connect(c[4], PQconnectPoll, "PQconnectStartParams");
    select_one(c[4], "PQconnectStartParams");

    int before = PQbackendPID(c[0]);
    PQreset(c[0]);
    checked(c[0], "PQreset");
    if (PQstatus(c[0]) != CONNECTION_OK || PQbackendPID(c[0]) == before)
        die("PQreset (new backend)", c[0]);
    select_one(c[0], "PQreset");

    before = PQbackendPID(c[1]);
    if (!PQresetStart(c[1]))
        die("PQresetStart", c[1]);
    finish_connect(c[1], PQresetPoll, "PQresetPoll");
    if (PQstatus(c[1]) != CONNECTION_OK || PQbackendPID(c[1]) == before)
        die("PQresetPoll (new backend)", c[1]);
    select_one(c[1], "PQresetStart");

    for (int i = 0; i < 5; i++)
        PQfinish(c[i]);
    printf("done\n");
    return 0;
}
