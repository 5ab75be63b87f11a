/*
 * fresh_session — one scripted client session, run several times in a
 * row in one process, printing everything a client can observe about its
 * connection: status, transaction state, error text, parameter statuses,
 * pending notifications, and what the session carries on the server
 * (settings, prepared statements, cursors, temporary tables, listeners,
 * advisory locks, sequences). Each round first observes, then leaves the
 * session as dirty as it can (open failed transaction, error text, unread
 * notification, other encoding, a cancel object kept past PQfinish).
 *
 * Run directly and through a pool of one, the outputs must be equal but
 * for the lines starting "pid" (the backend) and the timings, which are
 * never printed. usage: fresh_session ROUNDS [CONNINFO]
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void line(const char *what, const char *value)
{
    printf("%s: ", what);
    for (const char *s = value ? value : "(null)"; *s; s++)
        putchar(*s == '\n' ? '|' : *s);
    putchar('\n');
}

/* One query; prints its status and every value (or the error). */
static void query(PGconn *c, const char *label, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s", PQresStatus(PQresultStatus(r)));
    for (int i = 0; i < PQntuples(r) && n < sizeof buf; i++)
        for (int j = 0; j < PQnfields(r) && n < sizeof buf; j++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, " %s",
                                  PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
    if (PQresultStatus(r) == PGRES_FATAL_ERROR && n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, " %s %s",
                 PQresultErrorField(r, PG_DIAG_SQLSTATE), PQresultErrorMessage(r));
    line(label, buf);
    PQclear(r);
}

static const char *const reported[] = {
    "application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
    "in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser",
    "server_encoding", "server_version", "session_authorization",
    "standard_conforming_strings", "TimeZone", NULL};

static void observe(PGconn *c)
{
    char buf[256];
    snprintf(buf, sizeof buf, "status=%d tx=%d nonblocking=%d pipeline=%d protocol=%d "
             "encoding=%s ssl=%d", (int)PQstatus(c), (int)PQtransactionStatus(c),
             PQisnonblocking(c), (int)PQpipelineStatus(c), PQprotocolVersion(c),
             pg_encoding_to_char(PQclientEncoding(c)), PQsslInUse(c));
    line("state", buf);
    line("error", PQerrorMessage(c));
    for (int i = 0; reported[i]; i++)
        line(reported[i], PQparameterStatus(c, reported[i]));
    PQconsumeInput(c);
    PGnotify *n;
    int pending = 0;
    while ((n = PQnotifies(c)) != NULL) {
        pending++;
        PQfreemem(n);
    }
    snprintf(buf, sizeof buf, "%d", pending);
    line("pending notifications", buf);
    query(c, "settings", "select current_setting('search_path'), current_setting('work_mem'), "
                         "current_setting('application_name'), current_user, session_user");
    query(c, "prepared", "select count(*) from pg_prepared_statements");
    query(c, "cursors", "select count(*) from pg_cursors");
    query(c, "temp tables", "select count(*) from pg_class where relpersistence = 't'");
    query(c, "listening", "select count(*) from pg_listening_channels()");
    query(c, "advisory locks", "select count(*) from pg_locks where locktype = 'advisory' "
                               "and pid = pg_backend_pid()");
    query(c, "currval", "select currval('public.fresh_seq')");
    printf("pid %d\n", PQbackendPID(c));
}

/* Leave the session as dirty as a program can. */
static void dirty(PGconn *c, int round)
{
    query(c, "set", "set search_path = pg_catalog; set work_mem = '9MB'; "
                    "set application_name = 'dirty'");
    query(c, "prepare", "prepare p1 as select 1");
    query(c, "cursor", "begin; declare c1 cursor with hold for select 1; commit");
    query(c, "temp", "create temp table t1 (a int)");
    query(c, "listen", "listen fresh_channel");
    query(c, "notify", "notify fresh_channel, 'left behind'");
    query(c, "lock", "select pg_advisory_lock(4242)::text");
    query(c, "nextval", "select nextval('public.fresh_seq') > 0");
    line("set encoding", PQsetClientEncoding(c, "LATIN1") == 0 ? "ok" : "failed");
    PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
    /* The error text still set: in an open transaction that failed, or
     * (odd rounds) outside any transaction. */
    query(c, "end", "rollback");
    if (round % 2 == 0)
        query(c, "begin", "begin");
    query(c, "fail", "select 1/0");
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 4;
    const char *conninfo = argc > 2 ? argv[2] : "";
    setvbuf(stdout, NULL, _IOLBF, 0);
    PGconn *setup = PQconnectdb(conninfo);
    PQclear(PQexec(setup, "set client_min_messages = warning; "
                          "create sequence if not exists fresh_seq"));
    PQfinish(setup);
    PGcancel *stale = NULL;
    for (int r = 0; r < rounds; r++) {
        printf("round %d\n", r);
        PGconn *c = PQconnectdb(conninfo);
        if (PQstatus(c) != CONNECTION_OK) {
            line("connect failed", PQerrorMessage(c));
            return 1;
        }
        observe(c);
        /* The previous round's cancel object: its connection is finished,
         * so it must not stop this round's query. */
        if (stale) {
            PQsendQuery(c, "select pg_sleep(0.3)");
            usleep(100000);
            char err[256] = "";
            line("stale cancel sent", PQcancel(stale, err, sizeof err) ? "1" : err);
            PGresult *res;
            while ((res = PQgetResult(c)) != NULL) {
                line("query under stale cancel", PQresStatus(PQresultStatus(res)));
                PQclear(res);
            }
            PQfreeCancel(stale);
        }
        /* A cancel of the last round's own query works (only the last: a
         * pool closes a session on which a cancel was sent, and the
         * rounds before share one backend). */
        if (r == rounds - 1) {
            PGcancel *own = PQgetCancel(c);
            PQsendQuery(c, "select pg_sleep(5)");
            usleep(100000);
            char err[256] = "";
            line("own cancel sent", PQcancel(own, err, sizeof err) ? "1" : err);
            PGresult *res;
            while ((res = PQgetResult(c)) != NULL) {
                line("query under own cancel", PQresultErrorField(res, PG_DIAG_SQLSTATE));
                PQclear(res);
            }
            PQfreeCancel(own);
        }
        dirty(c, r);
        stale = PQgetCancel(c);
        PQfinish(c);
    }
    if (stale)
        PQfreeCancel(stale);
    return 0;
}
