/*
 * pwclient — connects with a password through one libpq entry point and
 * stays up, holding the connection, so a test can look at everything the
 * shim shows (log, control socket, error messages) for the password.
 *
 *   pwclient conninfo CONNINFO READY GO   PQconnectdb(CONNINFO)
 *   pwclient start CONNINFO READY GO      PQconnectStart + PQconnectPoll
 *   pwclient params "K=V K=V ..." READY GO  PQconnectdbParams (split on spaces)
 *   pwclient setdb PASSWORD READY GO      PQsetdbLogin(.., "postgres", PASSWORD)
 * Steps: connect, query, finish; connect again and hold it; connect once
 * more from the same thread (with a pool cap of 1, the pool refuses at
 * once); create READY; wait for GO (20 s at most); finish; exit.
 * One line per step on stdout, error messages included (newlines as spaces).
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *mode, *arg;

static PGconn *open_one(void)
{
    if (strcmp(mode, "conninfo") == 0)
        return PQconnectdb(arg);
    if (strcmp(mode, "setdb") == 0)
        return PQsetdbLogin(NULL, NULL, NULL, NULL, "postgres", "postgres", arg);
    if (strcmp(mode, "start") == 0) {
        PGconn *conn = PQconnectStart(arg);
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        for (int i = 0; conn && PQstatus(conn) != CONNECTION_BAD && i < 1000; i++) {
            if (st == PGRES_POLLING_OK || st == PGRES_POLLING_FAILED)
                break;
            struct pollfd p = {.fd = PQsocket(conn),
                               .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
            if (p.fd < 0 || poll(&p, 1, 10000) != 1)
                break;
            st = PQconnectPoll(conn);
        }
        return conn;
    }
    /* params: "k=v k=v" */
    static char copy[4096];
    static const char *kw[64], *val[64];
    snprintf(copy, sizeof copy, "%s", arg);
    int n = 0;
    for (char *tok = strtok(copy, " "); tok && n < 63; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        kw[n] = tok;
        val[n++] = eq + 1;
    }
    kw[n] = val[n] = NULL;
    return PQconnectdbParams(kw, val, 0);
}

static void say(const char *what, PGconn *conn)
{
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", conn ? PQerrorMessage(conn) : "NULL connection");
    for (char *s = msg; *s; s++)
        if (*s == '\n')
            *s = ' ';
    printf("%s %s %s\n", what,
           conn && PQstatus(conn) == CONNECTION_OK ? "ok" : "bad", msg);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s conninfo|start|params|setdb ARG READY GO\n", argv[0]);
        return 2;
    }
    mode = argv[1];
    arg = argv[2];
    PGconn *a = open_one();
    say("first", a);
    PGresult *res = PQexec(a, "select 1");
    printf("query %s\n", PQresultStatus(res) == PGRES_TUPLES_OK ? "ok" : "failed");
    PQclear(res);
    PQfinish(a);
    PGconn *held = open_one();
    say("held", held);
    PGconn *more = open_one();
    say("more", more);
    PQfinish(more);
    fflush(stdout);
    FILE *f = fopen(argv[3], "w");
    if (f)
        fclose(f);
    struct stat st;
    for (int i = 0; i < 2000 && stat(argv[4], &st) != 0; i++)
        usleep(10000);
    PQfinish(held);
    printf("done\n");
    return 0;
}
