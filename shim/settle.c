/*
 * settle.c — a reused connection handed to an asynchronous connect is
 * made ready inside the program's own poll loop: PQconnectStart* returns
 * it at once, and each PQconnectPoll reads whatever has arrived (the
 * answer to the reset sent at checkin, then the liveness ping's) without
 * waiting, answering PGRES_POLLING_READING until it is all there. The
 * program waits on PQsocket as it would for a new connection.
 */
#define _GNU_SOURCE
#include "settle.h"
#include "config.h"

/* Read what has arrived of the outstanding command. True when its
 * results are complete; *ok false when one of them failed. */
static bool read_arrived(PGconn *pg, ExecStatusType want, bool *ok)
{
    const struct real_libpq *pq = real_libpq();
    if (!pq->PQconsumeInput(pg)) {
        *ok = false;
        return true;
    }
    while (!pq->PQisBusy(pg)) {
        PGresult *res = pq->PQgetResult(pg);
        if (!res)
            return true;
        if (pq->PQresultStatus(res) != want)
            *ok = false;
        pq->PQclear(res);
    }
    return false;
}

static enum settle_result step(struct shim_conn *sc)
{
    const struct real_libpq *pq = real_libpq();
    const struct pqshim_config *cfg = config_get();
    PGconn *pg = sc->pg;
    bool ok = true;
    /* Until it is handed over, what the server says is heard by the
     * shim's own notice receiver (conn.c), never printed. */
    if (pq->PQstatus(pg) != CONNECTION_OK || sc->server_ended)
        return SETTLE_DEAD;
    if (sc->reset_pending) {
        /* Every reset mode answers with commands (conn.c). */
        if (!read_arrived(pg, PGRES_COMMAND_OK, &ok))
            return SETTLE_PENDING;
        sc->reset_pending = false;
    }
    if (sc->ping_pending) {
        if (!read_arrived(pg, PGRES_EMPTY_QUERY, &ok))
            return SETTLE_PENDING;
        sc->ping_pending = false;
    }
    /* What else has arrived (a FATAL right behind the reset's answer) is
     * parsed now, so that the shim's receiver hears it. */
    if (ok && !conn_socket_quiet(sc->fd) && !pq->PQconsumeInput(pg))
        ok = false;
    (void)pq->PQisBusy(pg);
    if (!ok || sc->server_ended || pq->PQstatus(pg) != CONNECTION_OK ||
        pq->PQtransactionStatus(pg) != PQTRANS_IDLE)
        return SETTLE_DEAD;
    if (!sc->pinged) {
        sc->pinged = true;
        bool zero_rtt = cfg->pre_ping == PRE_PING_OFF ||
                        (cfg->pre_ping == PRE_PING_ON && sc->local &&
                         conn_socket_quiet(sc->fd));
        if (!zero_rtt) {
            /* The empty query: one round trip, no parsing. */
            if (!pq->PQsendQuery(pg, ""))
                return SETTLE_DEAD;
            sc->ping_pending = true;
            return step(sc);
        }
    }
    conn_give_to_program(sc);
    return SETTLE_OK;
}

enum settle_result settle_begin(struct shim_conn *sc)
{
    sc->pinged = false;
    sc->ping_pending = false;
    return step(sc);
}

enum settle_result settle_poll(struct shim_conn *sc)
{
    return step(sc);
}
