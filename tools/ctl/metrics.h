/*
 * metrics.h — metrics --all (metrics.c).
 */
#ifndef PQSHIMCTL_METRICS_H
#define PQSHIMCTL_METRICS_H

#include "options.h"

/* Returns the exit status. */
int run_metrics_all(const struct options *o);

#endif
