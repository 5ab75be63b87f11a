/*
 * bench_checkout — latency of one connect + finish pair, as a program that
 * opens a connection per request pays it. Prints percentiles in µs.
 *   bench_checkout [-n COUNT] [-q] [-P]    (connection from PG* variables)
 * -q runs one trivial query per connection (so a checkout is used);
 * -P keeps one connection and times the query alone (the persistent case).
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, int n, double p)
{
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int main(int argc, char **argv)
{
    int n = 1000, opt;
    int query = 0, persistent = 0;
    while ((opt = getopt(argc, argv, "n:qP")) != -1) {
        if (opt == 'n')
            n = atoi(optarg);
        else if (opt == 'q')
            query = 1;
        else if (opt == 'P')
            persistent = query = 1;
        else {
            fprintf(stderr, "usage: bench_checkout [-n COUNT] [-q] [-P]\n");
            return 2;
        }
    }
    if (n < 1)
        n = 1;
    double *lat = calloc((size_t)n, sizeof *lat);
    if (!lat)
        return 1;
    /* Warm up: the first connect pays for loading and, pooled, for opening. */
    PGconn *kept = PQconnectdb("");
    if (!persistent) {
        PQfinish(kept);
        kept = NULL;
    }
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        PGconn *c = kept ? kept : PQconnectdb("");
        if (PQstatus(c) != CONNECTION_OK) {
            fprintf(stderr, "connect failed: %s", PQerrorMessage(c));
            return 1;
        }
        if (query)
            PQclear(PQexec(c, "SELECT 1"));
        if (!kept)
            PQfinish(c);
        lat[i] = now_us() - t0;
    }
    if (kept)
        PQfinish(kept);
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("n=%d p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n", n,
           pct(lat, n, 0.5), pct(lat, n, 0.99), pct(lat, n, 0.999), lat[n - 1]);
    free(lat);
    return 0;
}
