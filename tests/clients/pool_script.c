/*
 * pool_script — runs a script of libpq calls read from stdin, one command
 * a line, and reports each step on stdout (flushed at once), so a test can
 * drive a long-lived client through a pooled connection's life and act
 * between steps. Connections live in numbered slots 0..15.
 *
 *   connect N [CONNINFO]   PQconnectdb      -> connect N ok pid=P ms=F
 *                                              connect N bad ms=F error=...
 *   tconnect N [CONNINFO]  the same, from a new thread (joined)
 *   start N [CONNINFO]     PQconnectStart + PQconnectPoll loop
 *                                           -> start N ok pid=P polls=K first=S ms=F
 *   exec N SQL             PQexec           -> exec N ok V1|V2,... / exec N error ...
 *   send N SQL             PQsendQuery, results left unread
 *   pipeline N             PQenterPipelineMode
 *   pipefail N             a query that fails in pipeline mode, results
 *                          read, pipeline left without Sync
 *                                           -> pipefail N exited=1 error=SQLSTATE
 *   reset N                PQreset          -> reset N ok pid=P / reset N bad
 *   event N                PQregisterEventProc (reports PGEVT_CONNDESTROY)
 *   nonblock N             PQsetnonblocking(1)
 *   notice N               PQsetNoticeProcessor with one printing to stdout
 *   trace N FILE           PQtrace into FILE
 *   verbose N              PQsetErrorVerbosity(VERBOSE)
 *   check N                -> check N status=S tx=T nonblocking=B pid=P
 *   finish N               PQfinish
 *   fork [CONNINFO]        child: connect, select, finish, exit(0);
 *                          parent waits -> fork child_status=S
 *   wait FILE              until FILE exists (20 s at most)
 *   sleep MS | echo TEXT
 * Exit status: 0, or 1 when a command could not be parsed.
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <libpq-events.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 16

static PGconn *slot[SLOTS];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *s = buf; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
    printf("%s\n", buf);
    fflush(stdout);
}

static const char *message_of(const PGconn *conn)
{
    return conn ? PQerrorMessage(conn) : "NULL connection";
}

static void report_connect(const char *what, int n, PGconn *conn, double ms,
                           const char *extra)
{
    if (conn && PQstatus(conn) == CONNECTION_OK)
        say("%s %d ok pid=%d%s ms=%.1f", what, n, PQbackendPID(conn), extra, ms);
    else
        say("%s %d bad ms=%.1f error=%s", what, n, ms, message_of(conn));
}

struct thread_connect {
    const char *conninfo;
    PGconn *conn;
};

static void *thread_connect_main(void *arg)
{
    struct thread_connect *tc = arg;
    tc->conn = PQconnectdb(tc->conninfo);
    return NULL;
}

static const char *poll_name(PostgresPollingStatusType st)
{
    switch (st) {
    case PGRES_POLLING_OK: return "ok";
    case PGRES_POLLING_FAILED: return "failed";
    case PGRES_POLLING_READING: return "reading";
    case PGRES_POLLING_WRITING: return "writing";
    default: return "other";
    }
}

static void cmd_start(int n, const char *conninfo)
{
    double t0 = now_ms();
    PGconn *conn = PQconnectStart(conninfo);
    int polls = 0;
    PostgresPollingStatusType first = PGRES_POLLING_FAILED;
    if (conn && PQstatus(conn) != CONNECTION_BAD) {
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        while (polls < 10000) {
            if (polls > 0 &&
                (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING)) {
                struct pollfd p = {.fd = PQsocket(conn),
                                   .events = st == PGRES_POLLING_READING
                                                 ? POLLIN : POLLOUT};
                if (poll(&p, 1, 10000) <= 0)
                    break;
            }
            st = PQconnectPoll(conn);
            if (polls++ == 0)
                first = st;
            if (st == PGRES_POLLING_OK || st == PGRES_POLLING_FAILED)
                break;
        }
    }
    slot[n] = conn;
    char extra[64];
    snprintf(extra, sizeof extra, " polls=%d first=%s", polls, poll_name(first));
    report_connect("start", n, conn, now_ms() - t0, extra);
}

static void cmd_exec(int n, const char *sql)
{
    PGresult *res = PQexec(slot[n], sql);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        char out[4096] = "";
        size_t len = 0;
        for (int r = 0; r < PQntuples(res) && len < sizeof out - 1; r++)
            for (int c = 0; c < PQnfields(res) && len < sizeof out - 1; c++)
                len += (size_t)snprintf(out + len, sizeof out - len, "%s%s",
                                        c ? "|" : (r ? "," : ""),
                                        PQgetisnull(res, r, c) ? "NULL"
                                                               : PQgetvalue(res, r, c));
        say("exec %d ok %s", n, out);
    } else {
        say("exec %d error %s %s", n, PQresStatus(st), message_of(slot[n]));
    }
    PQclear(res);
}

static void cmd_pipefail(int n)
{
    PGconn *c = slot[n];
    char state[16] = "none";
    if (!PQenterPipelineMode(c) ||
        !PQsendQueryParams(c, "select 1/0", 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsendFlushRequest(c) || PQflush(c) != 0) {
        say("pipefail %d failed %s", n, message_of(c));
        return;
    }
    PGresult *res;
    while ((res = PQgetResult(c)) != NULL) {
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (PQresultStatus(res) == PGRES_FATAL_ERROR)
            snprintf(state, sizeof state, "%s", code ? code : "?");
        PQclear(res);
    }
    say("pipefail %d exited=%d error=%s", n, PQexitPipelineMode(c), state);
}

static void custom_notice(void *arg, const char *message)
{
    say("custom-notice %d: %s", (int)(long)arg, message);
}

static int event_proc(PGEventId id, void *info, void *arg)
{
    (void)info;
    if (id == PGEVT_CONNDESTROY)
        say("event %d destroy", (int)(long)arg);
    else if (id == PGEVT_CONNRESET)
        say("event %d reset", (int)(long)arg);
    return 1;
}

static void cmd_fork(const char *conninfo)
{
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        say("fork failed");
        return;
    }
    if (child == 0) {
        PGconn *conn = PQconnectdb(conninfo);
        if (PQstatus(conn) != CONNECTION_OK) {
            say("child %d connect bad error=%s", (int)getpid(), PQerrorMessage(conn));
            PQfinish(conn);
            exit(1);
        }
        PGresult *res = PQexec(conn, "select pg_backend_pid()");
        int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        say("child %d connect ok pid=%d query=%s", (int)getpid(),
            PQbackendPID(conn), ok ? PQgetvalue(res, 0, 0) : "failed");
        PQclear(res);
        PQfinish(conn);
        exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    say("fork child_pid=%d child_status=%d", (int)child,
        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static void cmd_wait(const char *path)
{
    struct stat st;
    for (int i = 0; i < 2000; i++) {
        if (stat(path, &st) == 0) {
            say("wait ok");
            return;
        }
        usleep(10000);
    }
    say("wait timeout %s", path);
}

static int slot_of(const char *arg)
{
    int n = arg ? atoi(arg) : -1;
    return n >= 0 && n < SLOTS ? n : -1;
}

int main(void)
{
    char line[8192];
    int bad = 0;
    FILE *traces[SLOTS] = {0};
    /* Unbuffered: a forked child's exit() would otherwise seek the shared
     * script file back to what its copy of the buffer had consumed. */
    setvbuf(stdin, NULL, _IONBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *cmd = line, *rest = strchr(line, ' ');
        if (rest)
            *rest++ = '\0';
        if (!*cmd || *cmd == '#')
            continue;
        /* "CMD N ARGS": the slot, then the rest of the line. */
        char *arg = NULL;
        int n = -1;
        if (rest) {
            char *sp = strchr(rest, ' ');
            n = slot_of(rest);
            arg = sp ? sp + 1 : (char *)"";
        }
        if (strcmp(cmd, "echo") == 0) {
            say("%s", rest ? rest : "");
        } else if (strcmp(cmd, "sleep") == 0) {
            usleep((useconds_t)(atoi(rest ? rest : "0") * 1000));
        } else if (strcmp(cmd, "wait") == 0 && rest) {
            cmd_wait(rest);
        } else if (strcmp(cmd, "fork") == 0) {
            cmd_fork(rest ? rest : "");
        } else if (n < 0) {
            say("bad command: %s", cmd);
            bad = 1;
        } else if (strcmp(cmd, "connect") == 0) {
            double t0 = now_ms();
            slot[n] = PQconnectdb(arg);
            report_connect("connect", n, slot[n], now_ms() - t0, "");
        } else if (strcmp(cmd, "tconnect") == 0) {
            struct thread_connect tc = {.conninfo = arg};
            pthread_t tid;
            double t0 = now_ms();
            if (pthread_create(&tid, NULL, thread_connect_main, &tc) == 0)
                pthread_join(tid, NULL);
            slot[n] = tc.conn;
            report_connect("tconnect", n, slot[n], now_ms() - t0, "");
        } else if (strcmp(cmd, "start") == 0) {
            cmd_start(n, arg);
        } else if (!slot[n]) {
            say("%s %d: empty slot", cmd, n);
            bad = 1;
        } else if (strcmp(cmd, "exec") == 0) {
            cmd_exec(n, arg);
        } else if (strcmp(cmd, "send") == 0) {
            int ok = PQsendQuery(slot[n], arg);
            say("send %d %s", n, ok ? "ok" : message_of(slot[n]));
        } else if (strcmp(cmd, "pipeline") == 0) {
            say("pipeline %d %s", n, PQenterPipelineMode(slot[n]) ? "ok" : "failed");
        } else if (strcmp(cmd, "pipefail") == 0) {
            cmd_pipefail(n);
        } else if (strcmp(cmd, "reset") == 0) {
            PQreset(slot[n]);
            report_connect("reset", n, slot[n], 0, "");
        } else if (strcmp(cmd, "event") == 0) {
            int ok = PQregisterEventProc(slot[n], event_proc, "pool_script",
                                         (void *)(long)n);
            say("event %d %s", n, ok ? "registered" : "failed");
        } else if (strcmp(cmd, "nonblock") == 0) {
            say("nonblock %d %s", n, PQsetnonblocking(slot[n], 1) == 0 ? "ok" : "failed");
        } else if (strcmp(cmd, "notice") == 0) {
            PQsetNoticeProcessor(slot[n], custom_notice, (void *)(long)n);
            say("notice %d ok", n);
        } else if (strcmp(cmd, "trace") == 0) {
            /* Kept open to the end: libpq may hold the FILE until then. */
            if (!traces[n])
                traces[n] = fopen(arg, "w");
            if (traces[n])
                PQtrace(slot[n], traces[n]);
            say("trace %d %s", n, traces[n] ? "ok" : "failed");
        } else if (strcmp(cmd, "verbose") == 0) {
            PQsetErrorVerbosity(slot[n], PQERRORS_VERBOSE);
            say("verbose %d ok", n);
        } else if (strcmp(cmd, "check") == 0) {
            say("check %d status=%d tx=%d nonblocking=%d pid=%d", n,
                (int)PQstatus(slot[n]), (int)PQtransactionStatus(slot[n]),
                PQisnonblocking(slot[n]), PQbackendPID(slot[n]));
        } else if (strcmp(cmd, "finish") == 0) {
            PQfinish(slot[n]);
            slot[n] = NULL;
            say("finish %d", n);
        } else {
            say("bad command: %s", cmd);
            bad = 1;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (traces[i])
            fflush(traces[i]);
    return bad;
}
