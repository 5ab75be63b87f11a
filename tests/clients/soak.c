/*
 * soak — a long connect/query/finish run with dirty sessions: every
 * iteration first checks that the connection it was handed carries nothing
 * of a previous user (no open transaction, settings at their defaults, no
 * temp tables, prepared statements, cursors, LISTENs or advisory locks),
 * then leaves a random mix of exactly those behind for the next user.
 *
 *   soak [-t THREADS] [-d SECONDS] [-c CONNINFO] [-r READY_FILE]
 * Summary on stdout:
 *   threads=T seconds=S iterations=N ok=K errors=E leaks=L backends=B
 * errors: failed connects and failed statements; leaks: checkouts that
 * found a previous user's state; backends: distinct server processes seen.
 * The first 20 errors and leaks go to stderr, one line each.
 * Exit status 0 when there was neither an error nor a leak.
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_BACKENDS 65536

static double duration = 120;
static const char *conninfo = "";
static const char *ready_file;
static atomic_int done;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long iterations, ok_total, errors, leaks;
static int reported;
static int backends[MAX_BACKENDS];
static int backend_count;
static char default_work_mem[64];

static const char check_sql[] =
    "select current_setting('work_mem'),"
    " coalesce(current_setting('soak.marker', true), ''),"
    " (select count(*) from pg_class where relnamespace = pg_my_temp_schema()),"
    " (select count(*) from pg_prepared_statements),"
    " (select count(*) from pg_cursors),"
    " (select count(*) from pg_listening_channels()),"
    " (select count(*) from pg_locks where locktype = 'advisory'"
    "    and pid = pg_backend_pid()),"
    " pg_backend_pid()";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void problem(const char *kind, long id, const char *fmt, const char *detail)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, detail ? detail : "");
    for (char *s = msg; *s; s++)
        if (*s == '\n')
            *s = ' ';
    pthread_mutex_lock(&lock);
    if (reported < 20) {
        fprintf(stderr, "%s: thread %ld: %s\n", kind, id, msg);
        reported++;
    }
    pthread_mutex_unlock(&lock);
}

static void note_backend(int pid)
{
    pthread_mutex_lock(&lock);
    int i;
    for (i = 0; i < backend_count; i++)
        if (backends[i] == pid)
            break;
    if (i == backend_count && backend_count < MAX_BACKENDS)
        backends[backend_count++] = pid;
    pthread_mutex_unlock(&lock);
}

/* Run one statement; false (and an error counted) when it failed. */
static bool run(PGconn *conn, long id, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return true;
    problem("error", id, "statement failed: %s", PQerrorMessage(conn));
    return false;
}

/* The check on checkout: 0 clean, 1 leak, -1 error. */
static int check(PGconn *conn, long id)
{
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        problem("leak", id, "handed a connection in a transaction%s", NULL);
        return 1;
    }
    PGresult *res = PQexec(conn, check_sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        problem("error", id, "check failed: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    note_backend(atoi(PQgetvalue(res, 0, 7)));
    char found[512] = "";
    size_t len = 0;
    if (strcmp(PQgetvalue(res, 0, 0), default_work_mem) != 0)
        len += (size_t)snprintf(found + len, sizeof found - len, " work_mem=%s",
                                PQgetvalue(res, 0, 0));
    if (PQgetvalue(res, 0, 1)[0])
        len += (size_t)snprintf(found + len, sizeof found - len, " marker=%s",
                                PQgetvalue(res, 0, 1));
    static const char *const names[] = {"temp_tables", "prepared", "cursors",
                                        "listens", "advisory_locks"};
    for (int c = 2; c <= 6; c++)
        if (strcmp(PQgetvalue(res, 0, c), "0") != 0)
            len += (size_t)snprintf(found + len, sizeof found - len, " %s=%s",
                                    names[c - 2], PQgetvalue(res, 0, c));
    PQclear(res);
    if (len) {
        problem("leak", id, "previous user's state:%s", found);
        return 1;
    }
    return 0;
}

/* Leave a random mix of session state behind. */
static bool dirty(PGconn *conn, long id, long n, unsigned *seed)
{
    unsigned r = (unsigned)rand_r(seed);
    char sql[256];
    bool ok = true;
    if (r & 1)
        ok &= run(conn, id, "set work_mem = '77MB'");
    if (r & 2) {
        snprintf(sql, sizeof sql, "set soak.marker = 't%ld-%ld'", id, n);
        ok &= run(conn, id, sql);
    }
    if (r & 4)
        ok &= run(conn, id, "create temp table soak_tmp (i int)");
    if (r & 8)
        ok &= run(conn, id, "prepare soak_p as select 1");
    if (r & 16)
        ok &= run(conn, id, "declare soak_c cursor with hold for select 1");
    if (r & 32)
        ok &= run(conn, id, "listen soak_channel");
    if (r & 64) {
        snprintf(sql, sizeof sql, "select pg_try_advisory_lock(%ld)", id * 1000000L + n);
        ok &= run(conn, id, sql);
    }
    if (r & 128) {
        /* Left open: the pool must roll it back. */
        ok &= run(conn, id, "begin");
        ok &= run(conn, id, "set local work_mem = '99MB'");
        if (r & 4)
            ok &= run(conn, id, "insert into soak_tmp values (1)");
    }
    return ok;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    unsigned seed = (unsigned)(id * 7919 + time(NULL));
    for (long n = 0; !atomic_load(&done); n++) {
        bool ok = true;
        int leak = 0;
        PGconn *conn = PQconnectdb(conninfo);
        if (PQstatus(conn) != CONNECTION_OK) {
            problem("error", id, "connect: %s", PQerrorMessage(conn));
            ok = false;
        } else {
            int c = check(conn, id);
            leak = c == 1;
            ok = c == 0 && dirty(conn, id, n, &seed);
        }
        PQfinish(conn);
        pthread_mutex_lock(&lock);
        iterations++;
        if (leak)
            leaks++;
        else if (!ok)
            errors++;
        else
            ok_total++;
        pthread_mutex_unlock(&lock);
        if (!ok && !leak)
            usleep(10000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 64, opt;
    while ((opt = getopt(argc, argv, "t:d:c:r:")) != -1) {
        switch (opt) {
        case 't': threads = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'c': conninfo = optarg; break;
        case 'r': ready_file = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-t THREADS] [-d SECONDS] [-c CONNINFO] [-r FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS)
        return 2;
    /* The server's default work_mem, from a fresh connection. */
    PGconn *conn = PQconnectdb(conninfo);
    PGresult *res = PQexec(conn, "select current_setting('work_mem')");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "soak: cannot read work_mem: %s", PQerrorMessage(conn));
        return 2;
    }
    snprintf(default_work_mem, sizeof default_work_mem, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);

    double started = now();
    pthread_t tids[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    if (ready_file) {
        FILE *f = fopen(ready_file, "w");
        if (f)
            fclose(f);
    }
    while (now() - started < duration)
        usleep(50000);
    atomic_store(&done, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    printf("threads=%d seconds=%.1f iterations=%ld ok=%ld errors=%ld leaks=%ld "
           "backends=%d\n",
           threads, now() - started, iterations, ok_total, errors, leaks,
           backend_count);
    fflush(stdout); /* the sampler stops at the summary, before exit closes the pool */
    return errors || leaks ? 1 : 0;
}
