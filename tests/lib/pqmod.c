/*
 * pqmod.c — a plugin linked to libpq, as PHP's pgsql.so is: the test
 * driver (tests/clients/deepbind.c) dlopens it, often with RTLD_DEEPBIND.
 *
 * pqmod_run() connects `loops` times and reports, for each connection,
 * what it reached through its own relocation slots (connect_via: the
 * object PQconnectdb resolves to from here) and which libpq copy built the
 * connection (made_by: the object holding the connection's default notice
 * processor, a function private to the libpq that created the PGconn).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

int pqmod_run(const char *conninfo, int loops);

static const char *object_of(const void *addr)
{
    Dl_info info;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname)
        return "?";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

int pqmod_run(const char *conninfo, int loops)
{
    int failures = 0;
    /* Taking the address goes through a GLOB_DAT slot: rewritten too. */
    PGconn *(*connect)(const char *) = PQconnectdb;
    for (int i = 0; i < loops; i++) {
        PGconn *conn = PQconnectdb(conninfo);
        if (PQstatus(conn) != CONNECTION_OK) {
            printf("error %s", PQerrorMessage(conn));
            failures++;
        } else {
            PQnoticeProcessor p = PQsetNoticeProcessor(conn, NULL, NULL);
            printf("backend=%d connect_via=%s made_by=%s\n", PQbackendPID(conn),
                   object_of((const void *)connect), object_of((const void *)p));
        }
        PQfinish(conn);
    }
    fflush(stdout);
    return failures;
}
