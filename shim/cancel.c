/*
 * cancel.c — cancel objects (PQgetCancel) of pooled connections end with
 * the checkout they were taken in.
 *
 * A program may keep a PGcancel after PQfinish. Without the shim its
 * backend is gone and a late PQcancel hits nothing; with a pool the
 * backend lives on for the next user, whose query it would cancel. So
 * every checkout gets a lease, the objects the program receives carry it,
 * and PQcancel sends nothing once the lease has ended.
 *
 * A cancel is asynchronous twice over: PQcancel may run in another thread
 * while the checkout ends, and the postmaster signals the backend some
 * time after PQcancel returns. So a lease also records that a cancel was
 * started, and one atomic word decides the race with the checkin: either
 * the cancel marks the lease before the checkin ends it (the checkin sees
 * the mark and closes the session: nothing sent to it can reach anyone
 * else), or it finds the lease ended and sends nothing. PQcancel may run in
 * a signal handler: it only does atomic operations and calls libpq.
 */
#define _GNU_SOURCE
#include "cancel.h"
#include "pool.h"

#include <stdatomic.h>
#include <stdlib.h>

/* First field of ours, to tell them from libpq's own objects (whose first
 * bytes are a socket address family and can never spell this). */
#define CANCEL_MAGIC 0x6c636e6163716870ULL

/* A lease's state bits. */
#define LEASE_ENDED 1u     /* the checkout is over */
#define LEASE_CANCELLED 2u /* a cancel was started during it */

struct cancel_lease {
    atomic_int refs;    /* the checkout's, plus one per cancel object */
    atomic_uint state;  /* LEASE_* */
};

struct shim_cancel {
    _Atomic uint64_t magic;
    PGcancel *real;
    struct cancel_lease *lease;
};

/* libpq's PQcancel, kept where a signal handler can read it without
 * binding anything. */
static int (*_Atomic bound_cancel)(PGcancel *, char *, int);

static void lease_unref(struct cancel_lease *lease)
{
    if (atomic_fetch_sub(&lease->refs, 1) == 1)
        free(lease);
}

/* The lease of sc's current checkout with one more reference, created on
 * first use; NULL when out of memory. */
static struct cancel_lease *lease_of(struct shim_conn *sc)
{
    struct cancel_lease *lease = __atomic_load_n(&sc->lease, __ATOMIC_ACQUIRE);
    if (!lease) {
        struct cancel_lease *fresh = calloc(1, sizeof *fresh);
        if (!fresh)
            return NULL;
        atomic_init(&fresh->refs, 1);
        atomic_init(&fresh->state, 0u);
        if (__atomic_compare_exchange_n(&sc->lease, &lease, fresh, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            lease = fresh;
        else
            free(fresh); /* another thread's won: lease holds it */
    }
    atomic_fetch_add(&lease->refs, 1);
    return lease;
}

bool cancel_checkout_ended(struct shim_conn *sc)
{
    struct cancel_lease *lease =
        __atomic_exchange_n(&sc->lease, NULL, __ATOMIC_ACQ_REL);
    bool cancelled = sc->cancel_unguarded;
    sc->cancel_unguarded = false;
    if (!lease)
        return cancelled;
    cancelled |= (atomic_fetch_or(&lease->state, LEASE_ENDED) & LEASE_CANCELLED) != 0;
    lease_unref(lease);
    return cancelled;
}

/* Record that a cancel is being sent during the lease; false when the
 * lease has ended (then nothing may be sent). */
static bool lease_start_cancel(struct cancel_lease *lease)
{
    unsigned s = atomic_load(&lease->state);
    do {
        if (s & LEASE_ENDED)
            return false;
    } while (!atomic_compare_exchange_weak(&lease->state, &s, s | LEASE_CANCELLED));
    return true;
}

void cancel_note(struct shim_conn *sc)
{
    struct cancel_lease *lease = lease_of(sc);
    if (!lease) {
        sc->cancel_unguarded = true; /* out of memory: the same verdict */
        return;
    }
    (void)lease_start_cancel(lease);
    lease_unref(lease);
}

static bool pooled(const struct shim_conn *sc)
{
    return sc && sc->state == CONN_OPEN && sc->pool && pool_capped(sc->pool);
}

void cancel_request_note(PGconn *pg)
{
    struct shim_conn *sc = registry_find(pg);
    if (pooled(sc))
        cancel_note(sc);
}

PGcancel *cancel_get(PGconn *pg)
{
    const struct real_libpq *pq = real_libpq();
    atomic_store(&bound_cancel, pq->PQcancel);
    PGcancel *real = pq->PQgetCancel(pg);
    struct shim_conn *sc = real ? registry_find(pg) : NULL;
    /* Only a pooled connection outlives its checkout. */
    if (!pooled(sc))
        return real;
    struct shim_cancel *c = malloc(sizeof *c);
    struct cancel_lease *lease = c ? lease_of(sc) : NULL;
    if (!lease) {
        /* Out of memory: an unguarded object may reach a later holder,
         * so this checkout's session is never handed on. */
        free(c);
        sc->cancel_unguarded = true;
        return real;
    }
    c->real = real;
    c->lease = lease;
    atomic_init(&c->magic, CANCEL_MAGIC);
    return (PGcancel *)c;
}

static struct shim_cancel *ours(PGcancel *c)
{
    struct shim_cancel *s = (struct shim_cancel *)c;
    return s && atomic_load(&s->magic) == CANCEL_MAGIC ? s : NULL;
}

int cancel_send(PGcancel *c, char *errbuf, int errbufsize)
{
    int (*send)(PGcancel *, char *, int) = atomic_load(&bound_cancel);
    if (!send) {
        const struct real_libpq *pq = real_libpq();
        send = pq ? pq->PQcancel : NULL;
    }
    if (!send)
        return 0;
    struct shim_cancel *s = ours(c);
    if (!s)
        return send(c, errbuf, errbufsize);
    /* The backend now serves someone else: as with a fresh connection,
     * whose backend would be gone, the request reaches nobody. Otherwise
     * the checkin will see the mark and close the session. */
    if (!lease_start_cancel(s->lease))
        return 1;
    return send(s->real, errbuf, errbufsize);
}

void cancel_free(PGcancel *c)
{
    const struct real_libpq *pq = real_libpq();
    struct shim_cancel *s = ours(c);
    if (!s) {
        if (pq && pq->PQfreeCancel)
            pq->PQfreeCancel(c);
        return;
    }
    atomic_store(&s->magic, 0);
    if (pq && pq->PQfreeCancel)
        pq->PQfreeCancel(s->real);
    lease_unref(s->lease);
    free(s);
}
