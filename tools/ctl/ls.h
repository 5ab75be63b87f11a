/*
 * ls.h — one line per shimmed process (ls.c).
 */
#ifndef PQSHIMCTL_LS_H
#define PQSHIMCTL_LS_H

#include "options.h"

/* Returns the exit status. */
int run_ls(const struct options *o);

#endif
