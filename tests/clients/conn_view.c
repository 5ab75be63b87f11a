/*
 * conn_view.c — what a program can read about its connections, for a
 * comparison of runs with and without the shim.
 *
 * Arguments are steps, run in order; NAME is a slot (a single letter):
 *   db NAME CONNINFO        PQconnectdb
 *   params NAME CONNINFO    PQconnectdbParams (the parsed options, expand 0)
 *   setdb NAME CONNINFO     PQsetdbLogin (host, port, options, dbname,
 *                           user, password of the parsed options)
 *   start NAME CONNINFO     PQconnectStart (polled by a later "poll")
 *   startparams NAME CONNINFO  PQconnectStartParams (likewise)
 *   poll NAME               drive PQconnectPoll with poll(2) until it ends
 *   show NAME               print what the program can read of it
 *   where NAME              print its PQhost and PQport alone (a connect
 *                           in progress)
 *   reset NAME              PQreset
 *   finish NAME             PQfinish
 * Prints "NAME key=value" lines (the backend pid is left out: it differs
 * from run to run); exits 1 when a step cannot be done.
 */
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PGconn *slot[26];

static PGconn **slot_of(const char *name)
{
    if (!name || name[0] < 'a' || name[0] > 'z' || name[1]) {
        fprintf(stderr, "conn_view: bad slot name %s\n", name ? name : "(none)");
        exit(1);
    }
    return &slot[name[0] - 'a'];
}

static PQconninfoOption *parse(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(conninfo, &err);
    if (!o) {
        fprintf(stderr, "conn_view: %s", err ? err : "out of memory\n");
        exit(1);
    }
    return o;
}

static const char *value_of(const PQconninfoOption *o, const char *keyword)
{
    for (; o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val;
    return NULL;
}

static PGconn *open_params(const char *conninfo, int async)
{
    PQconninfoOption *o = parse(conninfo);
    const char *kw[128], *val[128];
    int n = 0;
    for (PQconninfoOption *p = o; p->keyword && n < 127; p++)
        if (p->val) {
            kw[n] = p->keyword;
            val[n++] = p->val;
        }
    kw[n] = val[n] = NULL;
    PGconn *c = async ? PQconnectStartParams(kw, val, 0) : PQconnectdbParams(kw, val, 0);
    PQconninfoFree(o);
    return c;
}

static PGconn *open_setdb(const char *conninfo)
{
    PQconninfoOption *o = parse(conninfo);
    PGconn *c = PQsetdbLogin(value_of(o, "host"), value_of(o, "port"),
                             value_of(o, "options"), NULL, value_of(o, "dbname"),
                             value_of(o, "user"), value_of(o, "password"));
    PQconninfoFree(o);
    return c;
}

static void poll_connect(PGconn *c)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (int i = 0; i < 100000; i++) {
        if (st == PGRES_POLLING_OK || st == PGRES_POLLING_FAILED) {
            printf("polled %s\n", st == PGRES_POLLING_OK ? "ok" : "failed");
            return;
        }
        struct pollfd p = {.fd = PQsocket(c),
                           .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        if (p.fd < 0 || poll(&p, 1, 30000) != 1) {
            fprintf(stderr, "conn_view: no progress: %s", PQerrorMessage(c));
            exit(1);
        }
        st = PQconnectPoll(c);
    }
    fprintf(stderr, "conn_view: the connect never ended\n");
    exit(1);
}

static const char *shown(const char *s)
{
    return s ? s : "(null)";
}

static void show(const char *name, PGconn *c)
{
    printf("%s status=%d\n", name, (int)PQstatus(c));
    printf("%s host=%s\n", name, shown(PQhost(c)));
    printf("%s port=%s\n", name, shown(PQport(c)));
    printf("%s hostaddr=%s\n", name, shown(PQhostaddr(c)));
    printf("%s db=%s\n", name, shown(PQdb(c)));
    printf("%s user=%s\n", name, shown(PQuser(c)));
    printf("%s options=%s\n", name, shown(PQoptions(c)));
    printf("%s pass=%s\n", name, shown(PQpass(c))); /* the tests' own */
    printf("%s used_password=%d needs_password=%d\n", name,
           PQconnectionUsedPassword(c), PQconnectionNeedsPassword(c));
    printf("%s error=[%s]\n", name, shown(PQerrorMessage(c)));
    printf("%s server_version=%d protocol=%d ssl=%d\n", name, PQserverVersion(c),
           PQprotocolVersion(c), PQsslInUse(c));
    static const char *const params[] = {
        "server_version", "client_encoding", "application_name", "DateStyle",
        "TimeZone", "integer_datetimes", "standard_conforming_strings",
        "is_superuser", "session_authorization", NULL};
    for (int i = 0; params[i]; i++)
        printf("%s parameter %s=%s\n", name, params[i],
               shown(PQparameterStatus(c, params[i])));
    PQconninfoOption *o = PQconninfo(c);
    for (PQconninfoOption *p = o; p && p->keyword; p++)
        if (strcmp(p->keyword, "password") != 0)
            printf("%s conninfo %s=%s\n", name, p->keyword, shown(p->val));
    PQconninfoFree(o);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc;) {
        const char *step = argv[i];
        PGconn **c = slot_of(i + 1 < argc ? argv[i + 1] : NULL);
        const char *arg = i + 2 < argc ? argv[i + 2] : "";
        if (strcmp(step, "db") == 0)
            *c = PQconnectdb(arg);
        else if (strcmp(step, "params") == 0)
            *c = open_params(arg, 0);
        else if (strcmp(step, "setdb") == 0)
            *c = open_setdb(arg);
        else if (strcmp(step, "start") == 0)
            *c = PQconnectStart(arg);
        else if (strcmp(step, "startparams") == 0)
            *c = open_params(arg, 1);
        else if (strcmp(step, "poll") == 0)
            poll_connect(*c);
        else if (strcmp(step, "show") == 0)
            show(argv[i + 1], *c);
        else if (strcmp(step, "where") == 0)
            printf("%s host=%s port=%s\n", argv[i + 1], shown(PQhost(*c)),
                   shown(PQport(*c)));
        else if (strcmp(step, "reset") == 0)
            PQreset(*c);
        else if (strcmp(step, "finish") == 0) {
            PQfinish(*c);
            *c = NULL;
        } else {
            fprintf(stderr, "conn_view: unknown step %s\n", step);
            return 1;
        }
        if (!*c && strcmp(step, "finish") != 0) {
            fprintf(stderr, "conn_view: %s %s: no connection\n", step, argv[i + 1]);
            return 1;
        }
        printf("%s %s\n", step, argv[i + 1]);
        bool takes_arg = strcmp(step, "poll") && strcmp(step, "show") &&
                         strcmp(step, "where") && strcmp(step, "reset") &&
                         strcmp(step, "finish");
        i += takes_arg ? 3 : 2;
    }
    return 0;
}
