/*
 * cancelconn — libpq 17's PQcancelCreate and PQcancelFinish, stood in for
 * on an older libpq: a test adds this library to a copy of libpq's
 * dependencies (patchelf --add-needed), so that the shim finds the
 * function in that libpq's scope as it would in libpq 17's. The objects
 * it returns are only counted and freed; they never send anything.
 */
#include <stdlib.h>

struct pg_conn;
struct pg_cancel_conn {
    struct pg_conn *conn;
};

struct pg_cancel_conn *PQcancelCreate(struct pg_conn *conn);
void PQcancelFinish(struct pg_cancel_conn *cancel_conn);

struct pg_cancel_conn *PQcancelCreate(struct pg_conn *conn)
{
    struct pg_cancel_conn *c = malloc(sizeof *c);
    if (c)
        c->conn = conn;
    return c;
}

void PQcancelFinish(struct pg_cancel_conn *cancel_conn)
{
    free(cancel_conn);
}
