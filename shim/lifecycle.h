/*
 * lifecycle.h — connect, poll, finish and reset under the chosen policy.
 */
#ifndef PQSHIM_LIFECYCLE_H
#define PQSHIM_LIFECYCLE_H

#include "request.h"

PGconn *lifecycle_connect(const struct connect_request *req);

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
