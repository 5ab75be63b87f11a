/*
 * top.h — the live view (top.c).
 */
#ifndef PQSHIMCTL_TOP_H
#define PQSHIMCTL_TOP_H

#include "options.h"

/* Returns the exit status. */
int run_top(const struct options *o);

#endif
