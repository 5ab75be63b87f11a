/* Compatibility row: a program that dlopen()s a bundled libpq (argv[1])
 * and calls it through dlsym (60-compat). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

int main(int argc, char **argv)
{
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("dlopen: %s\n", dlerror());
        return 2;
    }
    PGconn *(*connectdb)(const char *) = (PGconn * (*)(const char *)) dlsym(h, "PQconnectdb");
    void (*finish)(PGconn *) = (void (*)(PGconn *))dlsym(h, "PQfinish");
    int (*status)(const PGconn *) = (int (*)(const PGconn *))dlsym(h, "PQstatus");
    PGresult *(*exec)(PGconn *, const char *) = (PGresult * (*)(PGconn *, const char *)) dlsym(h, "PQexec");
    int (*rstatus)(const PGresult *) = (int (*)(const PGresult *))dlsym(h, "PQresultStatus");
    char *(*getvalue)(const PGresult *, int, int) = (char *(*)(const PGresult *, int, int))dlsym(h, "PQgetvalue");
    void (*clear)(PGresult *) = (void (*)(PGresult *))dlsym(h, "PQclear");
    if (!connectdb || !finish || !status || !exec || !rstatus || !getvalue || !clear) {
        printf("dlsym failed\n");
        return 2;
    }
    char dirty[1024];
    snprintf(dirty, sizeof dirty, "%s", getenv("COMPAT_DIRTY"));
    for (int i = 0; i < 5; i++) {
        PGconn *c = connectdb("");
        if (status(c) != 0) {
            printf("connect %d failed\n", i);
            return 1;
        }
        PGresult *r = exec(c, getenv("COMPAT_CHECK"));
        printf("clean %s\n", rstatus(r) == 2 ? getvalue(r, 0, 0) : "?");
        clear(r);
        char copy[1024], *save = NULL;
        memcpy(copy, dirty, sizeof copy);
        for (char *s = strtok_r(copy, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
            r = exec(c, s);
            if (rstatus(r) != 1) {
                printf("%s failed\n", s);
                return 1;
            }
            clear(r);
        }
        finish(c);
    }
    printf("done\n");
    return 0;
}
