/*
 * request.h — one connect call of the program (request.c).
 */
#ifndef PQSHIM_REQUEST_H
#define PQSHIM_REQUEST_H

#include "real.h"

/* One user connect call, whichever entry point it came through. */
enum request_kind { REQ_CONNINFO, REQ_PARAMS, REQ_SETDB };

struct connect_request {
    enum request_kind kind;
    bool async;                    /* PQconnectStart* */
    const char *conninfo;          /* REQ_CONNINFO */
    const char *const *keywords;   /* REQ_PARAMS */
    const char *const *values;
    int expand_dbname;
    const char *setdb[7];          /* REQ_SETDB: PQsetdbLogin's arguments */
};

/* Exactly the libpq call the program made (NULL if libpq lacks it). */
PGconn *request_open_real(const struct connect_request *req);

#endif
