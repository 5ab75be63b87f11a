/*
 * notice.c — whose notice hooks a connection's PGconn calls: the
 * program's while it holds the connection, the shim's while the shim does
 * (see notice.h). libpq's public API returns a previous hook without its
 * argument, so the program's hooks cannot be read back from the PGconn:
 * they are kept here when the program sets them on a held connection.
 */
#define _GNU_SOURCE
#include "notice.h"

void notice_init(struct notice_hooks *n, PGconn *pg)
{
    const struct real_libpq *pq = real_libpq();
    *n = (struct notice_hooks){0};
    if (!pg)
        return;
    /* A NULL function changes nothing and returns the current one. */
    n->fresh_processor = pq->PQsetNoticeProcessor(pg, NULL, NULL);
    n->fresh_receiver = pq->PQsetNoticeReceiver(pg, NULL, NULL);
}

void notice_hold(struct notice_hooks *n, PGconn *pg, PQnoticeReceiver receiver,
                 void *arg)
{
    const struct real_libpq *pq = real_libpq();
    n->processor = n->fresh_processor;
    n->processor_arg = NULL;
    n->receiver = n->fresh_receiver;
    n->receiver_arg = NULL;
    n->held = true;
    /* Nothing of a previous holder's may stay behind in the PGconn: its
     * argument may point at memory that program has freed. */
    if (n->fresh_processor)
        pq->PQsetNoticeProcessor(pg, n->fresh_processor, NULL);
    pq->PQsetNoticeReceiver(pg, receiver, arg);
}

void notice_give(struct notice_hooks *n, PGconn *pg)
{
    const struct real_libpq *pq = real_libpq();
    if (!n->held)
        return; /* already the program's */
    n->held = false;
    if (n->processor)
        pq->PQsetNoticeProcessor(pg, n->processor, n->processor_arg);
    if (n->receiver)
        pq->PQsetNoticeReceiver(pg, n->receiver, n->receiver_arg);
}

PQnoticeProcessor notice_set_processor(struct notice_hooks *n, PGconn *pg,
                                       PQnoticeProcessor proc, void *arg)
{
    if (!n->held)
        return real_libpq()->PQsetNoticeProcessor(pg, proc, arg);
    PQnoticeProcessor old = n->processor;
    if (proc) {
        n->processor = proc;
        n->processor_arg = arg;
    }
    return old;
}

PQnoticeReceiver notice_set_receiver(struct notice_hooks *n, PGconn *pg,
                                     PQnoticeReceiver proc, void *arg)
{
    if (!n->held)
        return real_libpq()->PQsetNoticeReceiver(pg, proc, arg);
    PQnoticeReceiver old = n->receiver;
    if (proc) {
        n->receiver = proc;
        n->receiver_arg = arg;
    }
    return old;
}
