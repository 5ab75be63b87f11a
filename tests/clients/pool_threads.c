/*
 * pool_threads — a threaded libpq client for load tests: each thread
 * connects, runs one query, checks the result and finishes, N times.
 * Errors go to stderr, one line each; the summary goes to stdout:
 *   threads=T iterations=N ok=K errors=E backends=B max_connect_ms=F
 * Exit status 0 only when every iteration succeeded.
 *
 *   pool_threads [-t THREADS] [-n ITER] [-q SQL] [-c CONNINFO]... [-a]
 *     -c  may be given up to 8 times: thread i uses the (i mod count)th
 *     -a  connect with PQconnectStart + PQconnectPoll instead of PQconnectdb
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BACKENDS 4096

static int iterations = 10;
static const char *query = "select 1";
static const char *conninfos[8] = {""};
static int conninfo_count;
static int async_connect;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int ok_total, error_total;
static int backends[MAX_BACKENDS];
static int backend_count;
static double max_connect_ms;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

static PGconn *connect_async(const char *conninfo)
{
    PGconn *conn = PQconnectStart(conninfo);
    if (!conn || PQstatus(conn) == CONNECTION_BAD)
        return conn;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (int round = 0; round < 10000; round++) {
        if (st == PGRES_POLLING_READING || st == PGRES_POLLING_WRITING) {
            struct pollfd p = {.fd = PQsocket(conn),
                               .events = st == PGRES_POLLING_READING ? POLLIN
                                                                    : POLLOUT};
            if (poll(&p, 1, 10000) <= 0)
                break;
        }
        st = PQconnectPoll(conn);
        if (st == PGRES_POLLING_OK || st == PGRES_POLLING_FAILED)
            break;
    }
    return conn;
}

static void note_backend(int pid)
{
    for (int i = 0; i < backend_count; i++)
        if (backends[i] == pid)
            return;
    if (backend_count < MAX_BACKENDS)
        backends[backend_count++] = pid;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    const char *conninfo = conninfos[conninfo_count ? id % conninfo_count : 0];
    for (int i = 0; i < iterations; i++) {
        char err[1024] = "";
        double t0 = now_ms();
        PGconn *conn = async_connect ? connect_async(conninfo) : PQconnectdb(conninfo);
        double ms = now_ms() - t0;
        int pid = 0;
        if (!conn) {
            snprintf(err, sizeof err, "connect returned NULL");
        } else if (PQstatus(conn) != CONNECTION_OK) {
            snprintf(err, sizeof err, "connect: %s", PQerrorMessage(conn));
        } else {
            pid = PQbackendPID(conn);
            PGresult *res = PQexec(conn, query);
            ExecStatusType st = PQresultStatus(res);
            if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
                snprintf(err, sizeof err, "query: %s", PQerrorMessage(conn));
            PQclear(res);
        }
        PQfinish(conn);
        pthread_mutex_lock(&lock);
        if (ms > max_connect_ms)
            max_connect_ms = ms;
        if (err[0]) {
            error_total++;
            one_line(err);
            fprintf(stderr, "error: thread %ld iteration %d: %s\n", id, i, err);
        } else {
            ok_total++;
            note_backend(pid);
        }
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 4, opt;
    while ((opt = getopt(argc, argv, "t:n:q:c:a")) != -1) {
        switch (opt) {
        case 't': threads = atoi(optarg); break;
        case 'n': iterations = atoi(optarg); break;
        case 'q': query = optarg; break;
        case 'c':
            if (conninfo_count == 8) {
                fprintf(stderr, "at most 8 -c\n");
                return 2;
            }
            conninfos[conninfo_count++] = optarg;
            break;
        case 'a': async_connect = 1; break;
        default:
            fprintf(stderr, "usage: %s [-t THREADS] [-n ITER] [-q SQL] "
                            "[-c CONNINFO] [-a]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || iterations < 0) {
        fprintf(stderr, "bad -t or -n\n");
        return 2;
    }
    pthread_t tids[256];
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    printf("threads=%d iterations=%d ok=%d errors=%d backends=%d "
           "max_connect_ms=%.1f\n",
           threads, iterations, ok_total, error_total, backend_count,
           max_connect_ms);
    return error_total ? 1 : 0;
}
