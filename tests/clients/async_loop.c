/*
 * async_loop.c — an event loop in one thread, as libpq documents it:
 * N connects started with PQconnectStartParams and driven with
 * PQconnectPoll on PQsocket under poll(); each connection, once up, runs
 * SELECT pg_backend_pid(), is held HOLD_MS, and is finished.
 *
 *   async_loop N HOLD_MS [STAGGER_MS] [finish-waiting MS]
 *
 * With "finish-waiting MS", connects that are not up MS after they
 * started are finished while waiting (and counted as abandoned).
 * The server comes from the environment. Prints one line of key=value:
 * ok, failed, abandoned, the longest single libpq call (the loop's worst
 * stall, in ms), the order connects completed in, and the first error.
 * Exits 0 when it ran to the end (the caller judges the numbers).
 */
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONNS 64

struct slot {
    PGconn *conn;
    PostgresPollingStatusType status;
    double start_at, up_at;
    int state; /* 0 not started, 1 connecting, 2 holding, 3 done */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static double worst_call_ms;

static void timed_start(struct slot *s)
{
    const char *kw[] = {"application_name", NULL};
    const char *val[] = {"async_loop", NULL};
    double t0 = now_ms();
    s->conn = PQconnectStartParams(kw, val, 0);
    double d = now_ms() - t0;
    if (d > worst_call_ms)
        worst_call_ms = d;
    s->status = PGRES_POLLING_WRITING;
    s->state = 1;
}

static void timed_poll(struct slot *s)
{
    double t0 = now_ms();
    s->status = PQconnectPoll(s->conn);
    double d = now_ms() - t0;
    if (d > worst_call_ms)
        worst_call_ms = d;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int n = atoi(argv[1]);
    double hold = atof(argv[2]);
    double stagger = argc > 3 ? atof(argv[3]) : 10;
    double abandon_after = argc > 5 && strcmp(argv[4], "finish-waiting") == 0
                               ? atof(argv[5]) : -1;
    if (n < 1 || n > MAX_CONNS)
        return 2;
    struct slot slots[MAX_CONNS] = {{0}};
    int ok = 0, failed = 0, abandoned = 0, done = 0;
    char order[MAX_CONNS * 4] = "", first_error[512] = "";
    double t0 = now_ms();
    for (int i = 0; i < n; i++)
        slots[i].start_at = t0 + i * stagger;

    while (done < n && now_ms() - t0 < 120000) {
        struct pollfd fds[MAX_CONNS];
        int idx[MAX_CONNS], nfds = 0;
        double now = now_ms(), next = now + 1000;
        for (int i = 0; i < n; i++) {
            struct slot *s = &slots[i];
            if (s->state == 0 && now >= s->start_at)
                timed_start(s);
            if (s->state == 1 && abandon_after >= 0 &&
                now - s->start_at >= abandon_after) {
                PQfinish(s->conn);
                s->state = 3;
                abandoned++;
                done++;
                continue;
            }
            if (s->state == 1 && (s->status == PGRES_POLLING_OK ||
                                  s->status == PGRES_POLLING_FAILED)) {
                if (s->status == PGRES_POLLING_FAILED) {
                    if (!first_error[0])
                        snprintf(first_error, sizeof first_error, "%s",
                                 PQerrorMessage(s->conn));
                    failed++;
                    PQfinish(s->conn);
                    s->state = 3;
                    done++;
                    continue;
                }
                PGresult *res = PQexec(s->conn, "select pg_backend_pid()");
                if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                    if (!first_error[0])
                        snprintf(first_error, sizeof first_error, "%s",
                                 PQerrorMessage(s->conn));
                    failed++;
                } else {
                    ok++;
                }
                PQclear(res);
                snprintf(order + strlen(order), sizeof order - strlen(order),
                         "%s%d", order[0] ? "," : "", i);
                s->up_at = now_ms();
                s->state = 2;
            }
            if (s->state == 2 && now_ms() - s->up_at >= hold) {
                PQfinish(s->conn);
                s->state = 3;
                done++;
                continue;
            }
            if (s->state == 0 && s->start_at < next)
                next = s->start_at;
            if (s->state == 2 && s->up_at + hold < next)
                next = s->up_at + hold;
            if (s->state == 1 && abandon_after >= 0 &&
                s->start_at + abandon_after < next)
                next = s->start_at + abandon_after;
            if (s->state == 1) {
                fds[nfds].fd = PQsocket(s->conn);
                fds[nfds].events = s->status == PGRES_POLLING_READING ? POLLIN : POLLOUT;
                fds[nfds].revents = 0;
                idx[nfds++] = i;
            }
        }
        int wait = (int)(next - now_ms());
        if (wait < 0)
            wait = 0;
        if (poll(fds, (nfds_t)nfds, wait) < 0)
            break;
        for (int k = 0; k < nfds; k++)
            if (fds[k].revents)
                timed_poll(&slots[idx[k]]);
    }
    for (char *p = first_error; *p; p++)
        if (*p == '\n')
            *p = ' ';
    printf("ok=%d failed=%d abandoned=%d worst_call_ms=%.1f order=%s error=%s\n",
           ok, failed, abandoned, worst_call_ms, order[0] ? order : "-",
           first_error[0] ? first_error : "-");
    return 0;
}
