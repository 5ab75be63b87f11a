/*
 * cancel.h — cancel objects that die with their checkout (cancel.c).
 */
#ifndef PQSHIM_CANCEL_H
#define PQSHIM_CANCEL_H

#include "conn.h"

/* The program's checkout of sc ended (PQfinish, or closed): cancel
 * objects taken during it no longer reach the server. True when a cancel
 * was started during the checkout (it may still reach the backend): the
 * session must then be closed, never handed on. */
bool cancel_checkout_ended(struct shim_conn *sc);

/* A cancel of sc's current checkout is under way by other means
 * (PQrequestCancel, PQcancelCreate): the checkin closes the session. */
void cancel_note(struct shim_conn *sc);
/* The same for the connection pg, when it is a pooled checkout. */
void cancel_request_note(PGconn *pg);

/* PQgetCancel for a pooled connection: a cancel object bound to the
 * current checkout, or the real one when the shim does not pool it. */
PGcancel *cancel_get(PGconn *pg);
int cancel_send(PGcancel *c, char *errbuf, int errbufsize);
void cancel_free(PGcancel *c);

#endif
