/*
 * retry.h — retry while the server is full (retry.c).
 */
#ifndef PQSHIM_RETRY_H
#define PQSHIM_RETRY_H

#include "conn.h"
#include "request.h"

/* Is this libpq message a "server or pooler is full" refusal? */
bool retry_server_full(const char *message);
/* Open as the program asked; while the server is full and
 * PQSHIM_RETRY_FULL allows, back off and retry until the pool timeout. */
PGconn *retry_open(const struct connect_request *req, const char *name);
/* The next back-off delay (seconds): 50 ms doubling to 2 s, jittered. */
double retry_next_delay(struct retry_state *rs);

#endif
