/*
 * foreign.c — connections that never became the program's: failed connects
 * through each entry point, each then finished (and PQfinish(NULL)).
 *
 *   foreign CONNINFO_OF_A_REFUSED_SERVER
 *
 * Prints one line per case with the status libpq reports and "done" at the
 * end; exits 1 if a connect unexpectedly succeeds.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void report(const char *what, PGconn *conn)
{
    if (!conn) {
        printf("%s: NULL\n", what);
        return;
    }
    if (PQstatus(conn) == CONNECTION_OK) {
        fprintf(stderr, "foreign: %s unexpectedly connected\n", what);
        exit(1);
    }
    const char *msg = PQerrorMessage(conn);
    printf("%s: bad (%.*s)\n", what, (int)strcspn(msg, "\n"), msg);
}

static PGconn *poll_until_done(PGconn *conn)
{
    PostgresPollingStatusType status = PGRES_POLLING_WRITING;
    for (int i = 0; i < 1000 && conn && PQstatus(conn) != CONNECTION_BAD; i++) {
        if (status == PGRES_POLLING_OK || status == PGRES_POLLING_FAILED)
            break;
        struct pollfd p = {.fd = PQsocket(conn),
                           .events = status == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        if (p.fd < 0 || poll(&p, 1, 10000) != 1)
            break;
        status = PQconnectPoll(conn);
    }
    return conn;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: foreign CONNINFO\n");
        return 2;
    }
    const char *refused = argv[1];

    PGconn *conn = PQconnectdb(refused);
    report("PQconnectdb refused", conn);
    PQfinish(conn);

    conn = poll_until_done(PQconnectStart(refused));
    report("PQconnectStart refused", conn);
    PQfinish(conn);

    conn = PQconnectdb("no_such_option=1");
    report("PQconnectdb bad option", conn);
    PQfinish(conn);

    const char *kw[] = {"no_such_option", NULL};
    const char *val[] = {"1", NULL};
    conn = PQconnectStartParams(kw, val, 0);
    report("PQconnectStartParams bad option", conn);
    PQfinish(conn);

    PQfinish(NULL);
    printf("done\n");
    return 0;
}
