/*
 * badconn — oversized and malformed connection requests through every
 * connect entry point: a 100 KB conninfo, unterminated quotes, unknown
 * keywords, bad URIs, NULL values in parameter arrays, 200 keywords, ...
 * The server comes from the environment (PGHOST, PGPORT, ...).
 *
 * One line per case on stdout, identical with and without the shim when the
 * shim leaves libpq's behaviour alone:
 *   case NAME status=ok|bad query=ok|failed|- len=N message=FIRST_200_CHARS
 * (len: the full length of PQerrorMessage; the message with newlines as
 * spaces). Then "done". Exit status 0.
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG (100 * 1024)

static void report(const char *name, PGconn *conn)
{
    const char *status = "bad", *query = "-";
    if (conn && PQstatus(conn) == CONNECTION_OK) {
        status = "ok";
        PGresult *res = PQexec(conn, "select 1");
        query = PQresultStatus(res) == PGRES_TUPLES_OK ? "ok" : "failed";
        PQclear(res);
    }
    const char *msg = conn ? PQerrorMessage(conn) : "NULL connection";
    char shown[201];
    snprintf(shown, sizeof shown, "%s", msg ? msg : "");
    for (char *s = shown; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
    printf("case %s status=%s query=%s len=%zu message=%s\n", name, status,
           query, msg ? strlen(msg) : 0, shown);
    fflush(stdout);
    PQfinish(conn);
}

static PGconn *poll_through(PGconn *conn)
{
    if (!conn || PQstatus(conn) == CONNECTION_BAD)
        return conn;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (int i = 0; i < 10000; i++) {
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

static void conninfo_case(const char *name, const char *conninfo)
{
    char label[128];
    report(name, PQconnectdb(conninfo));
    snprintf(label, sizeof label, "%s/start", name);
    report(label, poll_through(PQconnectStart(conninfo)));
    snprintf(label, sizeof label, "%s/dbname-expanded", name);
    const char *kw[] = {"dbname", NULL};
    const char *val[] = {conninfo, NULL};
    report(label, PQconnectdbParams(kw, val, 1));
    snprintf(label, sizeof label, "%s/setdb", name);
    report(label, PQsetdbLogin(NULL, NULL, NULL, NULL, conninfo, NULL, NULL));
    snprintf(label, sizeof label, "%s/ping=%d", name, (int)PQping(conninfo));
    report(label, NULL);
}

static void params_case(const char *name, const char *const *kw,
                        const char *const *val, int expand)
{
    char label[128];
    report(name, PQconnectdbParams(kw, val, expand));
    snprintf(label, sizeof label, "%s/start", name);
    report(label, poll_through(PQconnectStartParams(kw, val, expand)));
    snprintf(label, sizeof label, "%s/ping=%d", name, (int)PQpingParams(kw, val, expand));
    report(label, NULL);
}

int main(void)
{
    static char big[BIG + 256];

    /* A 100 KB value: parses, but the startup packet is over the server's
     * limit. */
    snprintf(big, sizeof big, "dbname=postgres application_name=");
    size_t len = strlen(big);
    memset(big + len, 'a', BIG);
    big[len + BIG] = '\0';
    conninfo_case("big_value", big);

    /* 100 KB of one unknown keyword's name. */
    memset(big, 'k', BIG);
    strcpy(big + BIG, "=1");
    conninfo_case("big_keyword", big);

    /* 100 KB with no '=' at all. */
    memset(big, 'x', BIG);
    big[BIG] = '\0';
    conninfo_case("big_garbage", big);

    /* A 100 KB URI. */
    len = (size_t)snprintf(big, sizeof big, "postgresql:///postgres?application_name=");
    memset(big + len, 'u', BIG);
    big[len + BIG] = '\0';
    conninfo_case("big_uri", big);

    conninfo_case("unterminated_quote", "dbname='postgres");
    conninfo_case("unterminated_escape", "dbname=postgres application_name='a\\");
    conninfo_case("unknown_keyword", "dbname=postgres nosuchkeyword=1");
    conninfo_case("empty_keyword", "=x dbname=postgres");
    conninfo_case("missing_equals", "dbname");
    conninfo_case("bad_port", "dbname=postgres port=99999999999999999999");
    conninfo_case("bad_sslmode", "dbname=postgres sslmode=sometimes");
    conninfo_case("bad_uri_host", "postgresql://[::1/postgres");
    conninfo_case("bad_uri_param", "postgresql:///postgres?nosuchparam=1");
    conninfo_case("bad_uri_percent", "postgresql:///post%zzgres");
    conninfo_case("control_chars", "dbname=postgres application_name='a\tb\x01\x7f'");
    conninfo_case("empty", "");

    /* Parameter arrays. */
    {
        const char *kw[] = {"dbname", "user", "application_name", NULL};
        const char *val[] = {"postgres", NULL, NULL, NULL};
        params_case("null_values", kw, val, 0);
    }
    {
        const char *kw[] = {"dbname", "host", "port", "user", NULL};
        const char *val[] = {NULL, NULL, NULL, NULL, NULL};
        params_case("all_null_values", kw, val, 1);
    }
    {
        const char *kw[] = {"dbname", "nosuchkeyword", NULL};
        const char *val[] = {"postgres", NULL, NULL};
        params_case("unknown_keyword_null_value", kw, val, 0);
    }
    {
        const char *kw[] = {"dbname", "nosuchkeyword", NULL};
        const char *val[] = {"postgres", "1", NULL};
        params_case("unknown_keyword_array", kw, val, 0);
    }
    {
        const char *kw[] = {"", NULL};
        const char *val[] = {"x", NULL};
        params_case("empty_keyword_array", kw, val, 0);
    }
    {
        const char *kw[] = {"dbname", NULL};
        const char *val[] = {"dbname='unterminated", NULL};
        params_case("expand_unterminated", kw, val, 1);
    }
    {
        const char *kw[] = {"dbname", "dbname", NULL};
        const char *val[] = {"postgres", "application_name=second", NULL};
        params_case("expand_second_dbname", kw, val, 1);
    }
    {
        /* 200 keywords: the same valid one over and over (the last wins). */
        static const char *kw[202], *val[202];
        static char values[200][16];
        for (int i = 0; i < 200; i++) {
            snprintf(values[i], sizeof values[i], "app%d", i);
            kw[i] = "application_name";
            val[i] = values[i];
        }
        kw[200] = "dbname";
        val[200] = "postgres";
        kw[201] = val[201] = NULL;
        params_case("keywords_200_valid", kw, val, 0);
    }
    {
        /* 200 distinct unknown keywords. */
        static const char *kw[201], *val[201];
        static char names[200][16];
        for (int i = 0; i < 200; i++) {
            snprintf(names[i], sizeof names[i], "kw%d", i);
            kw[i] = names[i];
            val[i] = "1";
        }
        kw[200] = val[200] = NULL;
        params_case("keywords_200_unknown", kw, val, 0);
    }
    {
        /* 200 keywords, all with NULL values. */
        static const char *kw[202], *val[202];
        for (int i = 0; i < 200; i++) {
            kw[i] = "options";
            val[i] = NULL;
        }
        kw[200] = "dbname";
        val[200] = "postgres";
        kw[201] = val[201] = NULL;
        params_case("keywords_200_null", kw, val, 0);
    }
    {
        /* A 100 KB value in a parameter array. */
        memset(big, 'p', BIG);
        big[BIG] = '\0';
        const char *kw[] = {"dbname", "options", NULL};
        const char *val[] = {"postgres", big, NULL};
        params_case("big_param_value", kw, val, 0);
    }
    {
        const char *kw[] = {NULL};
        const char *val[] = {NULL};
        params_case("empty_arrays", kw, val, 0);
    }

    /* PQsetdbLogin with odd pieces. */
    report("setdb_all_null", PQsetdbLogin(NULL, NULL, NULL, NULL, NULL, NULL, NULL));
    report("setdb_bad_port", PQsetdbLogin(NULL, "notaport", NULL, NULL, "postgres", NULL, NULL));
    memset(big, 'h', BIG);
    big[0] = '/'; /* a socket directory: no name lookup */
    big[BIG] = '\0';
    report("setdb_big_host", PQsetdbLogin(big, NULL, NULL, NULL, "postgres", NULL, NULL));
    report("setdb_big_options", PQsetdbLogin(NULL, NULL, big, NULL, "postgres", NULL, NULL));

    printf("done\n");
    return 0;
}
