/*
 * cancel.h — cancel objects that die with their checkout (cancel.c).
 */
#ifndef PQSHIM_CANCEL_H
#define PQSHIM_CANCEL_H

#include "conn.h"

/* The program's checkout of sc ended (PQfinish, or closed): cancel
 * objects taken during it no longer reach the server. */
void cancel_checkout_ended(struct shim_conn *sc);

/* PQgetCancel for a pooled connection: a cancel object bound to the
 * current checkout, or the real one when the shim does not pool it. */
PGcancel *cancel_get(PGconn *pg);
int cancel_send(PGcancel *c, char *errbuf, int errbufsize);
void cancel_free(PGcancel *c);

#endif
