/*
 * storm — a connection storm for fault tests: THREADS threads connect, run
 * one query and finish, in a loop, for a fixed time (or a fixed number of
 * iterations), while the test breaks things around them. Every failed call
 * is classified: a clean failure is a CONNECTION_BAD connection or a failed
 * query that carries an error message; anything else (a NULL connection, a
 * failure without a message, a result without a status) is unclean.
 *
 *   storm [-t THREADS] [-d SECONDS | -n ITERATIONS] [-q SQL] [-c CONNINFO]...
 *         [-s THINK_MS] [-r READY_FILE] [-w QUIET_FILE] [-v]
 *     -c  up to 8 times: thread i uses the (i mod count)th
 *     -w  -d counts from the moment QUIET_FILE exists (120 s at most), so a
 *         test can end its fault and still leave the storm time to recover
 *     -s  pause after each iteration (10 ms after a failure at least)
 *     -r  created once the first iteration succeeded (or failed) anywhere
 *     -v  one line per iteration on stdout:
 *           iter thread=I n=K ms=F ok|connect_error|query_error [message]
 *
 * Summary on stdout:
 *   threads=T seconds=S iterations=N ok=K connect_errors=E query_errors=Q
 *   unclean=U recovered=R fds_start=A fds_peak=P fds_end=B
 * recovered: threads whose last iteration succeeded. fds_*: entries of
 * /proc/self/fd before the first connect, at most during the run (sampled
 * every 20 ms), and after every thread finished. Then, one line each, the
 * distinct error messages (first line, 120 characters) with their counts:
 *   message N TEXT
 * Exit status 0 unless a failure was unclean.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_MESSAGES 64

static double duration = 3;
static long iterations = -1;
static const char *query = "select 1";
static const char *conninfos[8] = {""};
static int conninfo_count;
static int think_ms;
static const char *ready_file;
static const char *quiet_file;
static int verbose;
static double started;
static atomic_int done;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long total, ok_total, connect_errors, query_errors, unclean;
static int recovered;
static struct {
    char text[128];
    long count;
} messages[MAX_MESSAGES];
static int message_count;
static int ready_written;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The first line of a message, for tallying. */
static void first_line(const char *msg, char *out, size_t size)
{
    size_t n = strcspn(msg, "\n");
    if (n >= size)
        n = size - 1;
    memcpy(out, msg, n);
    out[n] = '\0';
}

static void tally(const char *msg)
{
    char text[128];
    first_line(msg, text, sizeof text);
    for (int i = 0; i < message_count; i++)
        if (strcmp(messages[i].text, text) == 0) {
            messages[i].count++;
            return;
        }
    if (message_count < MAX_MESSAGES) {
        memcpy(messages[message_count].text, text, sizeof text);
        messages[message_count++].count = 1;
    }
}

enum outcome { OK, CONNECT_ERROR, QUERY_ERROR };

static void *worker(void *arg)
{
    long id = (long)arg;
    const char *conninfo = conninfos[conninfo_count ? id % conninfo_count : 0];
    enum outcome last = OK;
    for (long n = 0; iterations >= 0 ? n < iterations : !atomic_load(&done); n++) {
        char msg[1024] = "";
        int clean = 1;
        enum outcome out = OK;
        double t0 = now();
        PGconn *conn = PQconnectdb(conninfo);
        if (!conn) {
            out = CONNECT_ERROR;
            clean = 0;
            snprintf(msg, sizeof msg, "NULL connection");
        } else if (PQstatus(conn) != CONNECTION_OK) {
            out = CONNECT_ERROR;
            snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
            clean = PQstatus(conn) == CONNECTION_BAD && msg[0] != '\0';
        } else {
            PGresult *res = PQexec(conn, query);
            ExecStatusType st = PQresultStatus(res);
            if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
                out = QUERY_ERROR;
                snprintf(msg, sizeof msg, "%s", PQerrorMessage(conn));
                clean = msg[0] != '\0';
            }
            PQclear(res);
        }
        double ms = (now() - t0) * 1000.0;
        PQfinish(conn);
        pthread_mutex_lock(&lock);
        total++;
        if (out == OK)
            ok_total++;
        else {
            if (out == CONNECT_ERROR)
                connect_errors++;
            else
                query_errors++;
            if (!clean)
                unclean++;
            tally(msg[0] ? msg : "(no message)");
        }
        if (ready_file && !ready_written) {
            FILE *f = fopen(ready_file, "w");
            if (f)
                fclose(f);
            ready_written = 1;
        }
        if (verbose) {
            for (char *s = msg; *s; s++)
                if (*s == '\n')
                    *s = ' ';
            printf("iter thread=%ld n=%ld ms=%.1f %s%s%s%s\n", id, n, ms,
                   out == OK ? "ok" : out == CONNECT_ERROR ? "connect_error"
                                                           : "query_error",
                   msg[0] ? " " : "", msg, clean ? "" : " UNCLEAN");
            fflush(stdout);
        }
        pthread_mutex_unlock(&lock);
        last = out;
        if (think_ms > 0)
            sleep_ms(think_ms);
        else if (out != OK)
            sleep_ms(10);
    }
    pthread_mutex_lock(&lock);
    if (last == OK)
        recovered++;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 8, opt;
    while ((opt = getopt(argc, argv, "t:d:n:q:c:s:r:w:v")) != -1) {
        switch (opt) {
        case 't': threads = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'n': iterations = atol(optarg); break;
        case 'q': query = optarg; break;
        case 'c':
            if (conninfo_count == 8) {
                fprintf(stderr, "at most 8 -c\n");
                return 2;
            }
            conninfos[conninfo_count++] = optarg;
            break;
        case 's': think_ms = atoi(optarg); break;
        case 'r': ready_file = optarg; break;
        case 'w': quiet_file = optarg; break;
        case 'v': verbose = 1; break;
        default:
            fprintf(stderr, "usage: %s [-t THREADS] [-d SECONDS | -n ITERATIONS] "
                            "[-q SQL] [-c CONNINFO]... [-s THINK_MS] [-r FILE] "
                            "[-w FILE] [-v]\n",
                    argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "bad -t\n");
        return 2;
    }
    int fds_start = count_fds(), fds_peak = fds_start;
    started = now();
    pthread_t tids[MAX_THREADS];
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, worker, (void *)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 2;
        }
    /* The main thread keeps time and samples descriptors. */
    double clock_from = quiet_file ? -1 : started;
    for (;;) {
        if (clock_from < 0 && (access(quiet_file, F_OK) == 0 || now() - started > 120))
            clock_from = now();
        int n = count_fds();
        if (n > fds_peak)
            fds_peak = n;
        if (iterations >= 0) {
            pthread_mutex_lock(&lock);
            int all = total >= iterations * threads;
            pthread_mutex_unlock(&lock);
            if (all)
                break;
        } else if (clock_from >= 0 && now() - clock_from >= duration) {
            break;
        }
        sleep_ms(20);
    }
    atomic_store(&done, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    int fds_end = count_fds();
    printf("threads=%d seconds=%.1f iterations=%ld ok=%ld connect_errors=%ld "
           "query_errors=%ld unclean=%ld recovered=%d fds_start=%d fds_peak=%d "
           "fds_end=%d\n",
           threads, now() - started, total, ok_total, connect_errors,
           query_errors, unclean, recovered, fds_start, fds_peak, fds_end);
    for (int i = 0; i < message_count; i++)
        printf("message %ld %s\n", messages[i].count, messages[i].text);
    return unclean ? 1 : 0;
}
