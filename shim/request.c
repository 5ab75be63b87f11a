/*
 * request.c — one connect call of the program, as the real libpq makes it.
 */
#define _GNU_SOURCE
#include "request.h"

PGconn *request_open_real(const struct connect_request *req)
{
    const struct real_libpq *pq = real_libpq();
    switch (req->kind) {
    case REQ_CONNINFO:
        if (req->async)
            return pq->PQconnectStart ? pq->PQconnectStart(req->conninfo) : NULL;
        return pq->PQconnectdb ? pq->PQconnectdb(req->conninfo) : NULL;
    case REQ_PARAMS:
        if (req->async)
            return pq->PQconnectStartParams
                       ? pq->PQconnectStartParams(req->keywords, req->values,
                                                  req->expand_dbname)
                       : NULL;
        return pq->PQconnectdbParams
                   ? pq->PQconnectdbParams(req->keywords, req->values,
                                           req->expand_dbname)
                   : NULL;
    case REQ_SETDB:
        return pq->PQsetdbLogin
                   ? pq->PQsetdbLogin(req->setdb[0], req->setdb[1],
                                      req->setdb[2], req->setdb[3],
                                      req->setdb[4], req->setdb[5],
                                      req->setdb[6])
                   : NULL;
    }
    return NULL;
}
