/*
 * notice.h — whose notice hooks a connection's PGconn calls (notice.c).
 *
 * The notice processor and receiver, with their arguments, are the
 * program's from the moment a connect returns until it finishes the
 * PGconn. While the shim holds a connection (idle in a pool, or being
 * made ready inside the program's poll loop) its own receiver listens
 * instead, and what the program sets meanwhile is kept here and put in
 * place when the connection is handed over. A connection starts from
 * libpq's hooks as a brand-new PGconn has them, never from those a
 * previous holder set.
 */
#ifndef PQSHIM_NOTICE_H
#define PQSHIM_NOTICE_H

#include "real.h"

struct notice_hooks {
    /* libpq's own, read from the PGconn before any program saw it */
    PQnoticeProcessor fresh_processor;
    PQnoticeReceiver fresh_receiver;
    bool held;                  /* the shim's receiver is in place */
    /* while held: what the program sees, and gets at hand-over */
    PQnoticeProcessor processor;
    void *processor_arg;
    PQnoticeReceiver receiver;
    void *receiver_arg;
};

/* Read libpq's hooks from pg, which libpq has just made (no program has
 * touched it yet). */
void notice_init(struct notice_hooks *n, PGconn *pg);

/* The shim listens to pg through receiver(arg); the program's view
 * becomes a fresh PGconn's. */
void notice_hold(struct notice_hooks *n, PGconn *pg, PQnoticeReceiver receiver,
                 void *arg);

/* Hand pg's hooks to the program: those it set while held, else libpq's. */
void notice_give(struct notice_hooks *n, PGconn *pg);

/* The program's PQsetNoticeProcessor / PQsetNoticeReceiver on pg, with
 * libpq's meaning (a NULL function changes nothing; the previous function
 * is returned). */
PQnoticeProcessor notice_set_processor(struct notice_hooks *n, PGconn *pg,
                                       PQnoticeProcessor proc, void *arg);
PQnoticeReceiver notice_set_receiver(struct notice_hooks *n, PGconn *pg,
                                     PQnoticeReceiver proc, void *arg);

#endif
