/*
 * prom_merge.h — Prometheus expositions folded into one (prom_merge.c).
 */
#ifndef PQSHIMCTL_PROM_MERGE_H
#define PQSHIMCTL_PROM_MERGE_H

#include <stddef.h>

struct family {
    char *name;
    char *help, *type;  /* whole lines, the first seen */
    char *samples;
    size_t len;
};

struct families {
    struct family *v;
    int n;
};

/* Fold the exposition of process pid (text, changed in place) into f. */
void merge_exposition(struct families *f, char *text, int pid);
/* Print every family: HELP, TYPE, samples. */
void families_print(const struct families *f);
/* Free what f holds and empty it. */
void families_free(struct families *f);

#endif
