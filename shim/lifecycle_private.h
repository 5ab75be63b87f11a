/*
 * lifecycle_private.h — what the lifecycle modules share: lifecycle.c
 * calls lifecycle_async.c, and both call lifecycle_open.c (never upwards).
 */
#ifndef PQSHIM_LIFECYCLE_PRIVATE_H
#define PQSHIM_LIFECYCLE_PRIVATE_H

#include "conn.h"
#include "request.h"
#include "target_resolve.h"

struct pool;

/* ---- lifecycle_open.c: blocking connects ---- */

void log_checkout(struct shim_conn *sc, bool reused, double wait_ms);
/* A connect finished (blocking call returned, or poll said OK/FAILED).
 * True: sc is checked out to the program (CONN_OPEN); false: the connect
 * failed and sc is gone (CONN_FAILED). */
bool connect_done(struct shim_conn *sc, const struct target *t, double wait_ms);
/* Open a new server connection as the program asked, tracked by us.
 * Under a host-wide limit, first wait for a slot. */
PGconn *open_tracked(const struct connect_request *req, struct pool *pool,
                     const struct target *t, double wait_ms);
/* open_tracked() with the host-wide slot (or none) already settled. */
PGconn *open_tracked_slot(const struct connect_request *req,
                          struct pool *pool, const struct target *t,
                          double wait_ms, int slot);
/* A connect refused by the shim: logged as event, message for the program. */
PGconn *refuse(const char *event, const struct target *t,
               const char *message, double wait_ms);
/* A connect under the cap, waiting in the calling thread if it must. */
PGconn *capped_connect(const struct connect_request *req,
                       const struct target *t);

/* ---- lifecycle_async.c: asynchronous connects ---- */

/* Under the cap: reuse, open, or queue behind a gate. */
PGconn *async_capped(const struct connect_request *req,
                     const struct target *t);
/* A slot under the cap (or the null policy's count) is held in pool: the
 * host-wide limit next, then the server. */
PGconn *async_open(const struct connect_request *req, struct pool *pool,
                   const struct target *t);

#endif
