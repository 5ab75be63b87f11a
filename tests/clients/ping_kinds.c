/*
 * ping_kinds.c — PQping and PQpingParams against one server.
 *
 *   ping_kinds [CONNINFO]
 *
 * Pings with PQping(CONNINFO) and with PQpingParams (CONNINFO expanded from
 * dbname), and prints "PQping=N PQpingParams=N" (PGPing values: 0 ok,
 * 1 reject, 2 no response, 3 no attempt). Exits 0.
 */
#include <libpq-fe.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    const char *conninfo = argc > 1 ? argv[1] : "";
    PGPing a = PQping(conninfo);
    const char *kw[] = {"dbname", NULL};
    const char *val[] = {conninfo, NULL};
    PGPing b = PQpingParams(argc > 1 ? kw : (const char *const[]){NULL},
                            argc > 1 ? val : (const char *const[]){NULL}, 1);
    printf("PQping=%d PQpingParams=%d\n", (int)a, (int)b);
    return 0;
}
