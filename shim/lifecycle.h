/*
 * lifecycle.h — connect, poll, finish and reset under the chosen policy.
 */
#ifndef PQSHIM_LIFECYCLE_H
#define PQSHIM_LIFECYCLE_H

#include "pqshim.h"

/* One user connect call, whichever entry point it came through. */
enum request_kind { REQ_CONNINFO, REQ_PARAMS, REQ_SETDB };

struct connect_request {
    enum request_kind kind;
    bool async;                    /* PQconnectStart* */
    const char *conninfo;          /* REQ_CONNINFO */
    const char *const *keywords;   /* REQ_PARAMS */
    const char *const *values;
    int expand_dbname;
    const char *setdb[7];          /* REQ_SETDB: PQsetdbLogin's arguments */
};

/* Exactly the libpq call the program made (NULL if libpq lacks it). */
PGconn *lifecycle_open_real(const struct connect_request *req);

PGconn *lifecycle_connect(const struct connect_request *req);

/* retry.c: is this libpq message a "server or pooler is full" refusal? */
bool retry_server_full(const char *message);
/* Open as the program asked; while the server is full and
 * PQSHIM_RETRY_FULL allows, back off and retry until the pool timeout. */
PGconn *retry_open(const struct connect_request *req, const char *name);
/* The next back-off delay (seconds): 50 ms doubling to 2 s, jittered. */
double retry_next_delay(struct retry_state *rs);
PostgresPollingStatusType lifecycle_connect_poll(PGconn *pg);
/* What PQerrorMessage shows for pg when the shim has its say: its own
 * failed connections, and connects behind a gate (without the gate's
 * lines). NULL: libpq's text as it is. */
const char *lifecycle_error_message(const PGconn *pg);
void lifecycle_finish(PGconn *pg);
void lifecycle_reset(PGconn *pg);
int lifecycle_reset_start(PGconn *pg);
PostgresPollingStatusType lifecycle_reset_poll(PGconn *pg);

#endif
