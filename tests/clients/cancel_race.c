/*
 * cancel_race — cancels aimed at one checkout must never reach the next
 * holder of its backend, and must still work while it is held.
 *
 *   race:    a watchdog thread fires PQcancel at request N's cancel object
 *            while the main thread finishes request N, connects again and
 *            runs request N+1's query. Counts N+1's queries that were
 *            cancelled (SQLSTATE 57014).
 *   request: request N calls PQrequestCancel on its idle connection and
 *            finishes; request N+1's query must not be cancelled.
 *   stale:   a PGcancel taken in request N is fired during request N+1's
 *            query (the program kept it past PQfinish).
 *   own:     a watchdog cancels the holder's own long query: it must end
 *            cancelled.
 * Prints one line per part: "PART rounds=R cancelled=C errors=E
 * same_backend=S" (S: rounds whose next request got the same backend).
 *   create (alone, when PART is "create"): request N makes a cancel
 *            connection (libpq 17's PQcancelCreate, found at run time) and
 *            finishes -> "create rounds=R made=M same_backend=S".
 * usage: cancel_race CONNINFO ROUNDS [create]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *conninfo;

struct tally {
    int cancelled, errors, same_backend;
};

static PGconn *connect_ok(void)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(c));
        exit(2);
    }
    return c;
}

/* Run sql; count a cancel (57014) or any other failure. */
static void run(PGconn *c, const char *sql, struct tally *t)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "57014") == 0)
            t->cancelled++;
        else {
            t->errors++;
            fprintf(stderr, "query: %s", PQerrorMessage(c));
        }
    }
    PQclear(r);
}

static void report(const char *part, int rounds, const struct tally *t)
{
    printf("%s rounds=%d cancelled=%d errors=%d same_backend=%d\n", part, rounds,
           t->cancelled, t->errors, t->same_backend);
}

/* ---- the watchdog: fires when told, or repeatedly until told to stop ---- */

static PGcancel *target_cancel;
static atomic_int go;        /* 1: fire once now; 2: fire until stopped */
static atomic_bool stop;
static atomic_bool ready;    /* the watchdog is spinning on go */

static void *watchdog_main(void *arg)
{
    (void)arg;
    char err[256];
    atomic_store(&ready, true);
    /* Bounded spin: the main thread sets go right away. */
    for (long i = 0; i < 2000000000L && !atomic_load(&go); i++)
        ;
    if (atomic_load(&go) == 1) {
        (void)PQcancel(target_cancel, err, sizeof err);
        return NULL;
    }
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int i = 0; i < 500 && !atomic_load(&stop); i++) {
        (void)PQcancel(target_cancel, err, sizeof err);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static pthread_t watchdog_start(PGconn *c)
{
    pthread_t tid;
    target_cancel = PQgetCancel(c);
    atomic_store(&go, 0);
    atomic_store(&stop, false);
    atomic_store(&ready, false);
    if (pthread_create(&tid, NULL, watchdog_main, NULL) != 0) {
        perror("pthread_create");
        exit(2);
    }
    /* Fire while the checkout is still open: the race is the checkin's. */
    for (long i = 0; i < 2000000000L && !atomic_load(&ready); i++)
        ;
    return tid;
}

static void watchdog_join(pthread_t tid)
{
    atomic_store(&stop, true);
    atomic_store(&go, 2); /* in case it never started */
    pthread_join(tid, NULL);
    PQfreeCancel(target_cancel);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: cancel_race CONNINFO ROUNDS\n");
        return 2;
    }
    conninfo = argv[1];
    int rounds = atoi(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *next_query = "select pg_sleep(0.03)";

    if (argc > 3 && strcmp(argv[3], "create") == 0) {
        /* Declared by libpq 17 only: looked up, as a program built for
         * either would. */
        void *(*create)(PGconn *) = (void *(*)(PGconn *))dlsym(RTLD_DEFAULT, "PQcancelCreate");
        void (*finish)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "PQcancelFinish");
        struct tally t = {0};
        int made = 0;
        for (int i = 0; i < rounds; i++) {
            PGconn *c1 = connect_ok();
            int pid1 = PQbackendPID(c1);
            run(c1, "select 1", &t);
            void *cc = create ? create(c1) : NULL;
            made += cc != NULL;
            PQfinish(c1);
            if (cc && finish)
                finish(cc);
            PGconn *c2 = connect_ok();
            t.same_backend += PQbackendPID(c2) == pid1;
            PQfinish(c2);
        }
        printf("create rounds=%d made=%d same_backend=%d errors=%d\n", rounds, made,
               t.same_backend, t.errors);
        return 0;
    }

    struct tally race = {0};
    for (int i = 0; i < rounds; i++) {
        PGconn *c1 = connect_ok();
        int pid1 = PQbackendPID(c1);
        run(c1, "select 1", &race);
        pthread_t tid = watchdog_start(c1);
        atomic_store(&go, 1);
        PQfinish(c1);
        PGconn *c2 = connect_ok();
        race.same_backend += PQbackendPID(c2) == pid1;
        run(c2, next_query, &race);
        watchdog_join(tid);
        PQfinish(c2);
    }
    report("race", rounds, &race);

    struct tally request = {0};
    for (int i = 0; i < rounds / 4; i++) {
        PGconn *c1 = connect_ok();
        int pid1 = PQbackendPID(c1);
        run(c1, "select 1", &request);
        (void)PQrequestCancel(c1);
        PQfinish(c1);
        PGconn *c2 = connect_ok();
        request.same_backend += PQbackendPID(c2) == pid1;
        run(c2, next_query, &request);
        PQfinish(c2);
    }
    report("request", rounds / 4, &request);

    struct tally stale = {0};
    for (int i = 0; i < rounds / 4; i++) {
        PGconn *c1 = connect_ok();
        int pid1 = PQbackendPID(c1);
        PGcancel *kept = PQgetCancel(c1);
        PQfinish(c1);
        PGconn *c2 = connect_ok();
        stale.same_backend += PQbackendPID(c2) == pid1;
        char err[256];
        if (!PQsendQuery(c2, "select pg_sleep(0.2)")) {
            stale.errors++;
        } else {
            (void)PQcancel(kept, err, sizeof err);
            PGresult *r;
            while ((r = PQgetResult(c2)) != NULL) {
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                if (PQresultStatus(r) != PGRES_TUPLES_OK)
                    *(state && !strcmp(state, "57014") ? &stale.cancelled : &stale.errors) += 1;
                PQclear(r);
            }
        }
        PQfreeCancel(kept);
        PQfinish(c2);
    }
    report("stale", rounds / 4, &stale);

    struct tally own = {0};
    for (int i = 0; i < rounds / 10; i++) {
        PGconn *c1 = connect_ok();
        pthread_t tid = watchdog_start(c1);
        atomic_store(&go, 2);
        run(c1, "select pg_sleep(10)", &own);
        watchdog_join(tid);
        PQfinish(c1);
    }
    report("own", rounds / 10, &own);
    return 0;
}
