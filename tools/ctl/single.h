/*
 * single.h — one command to one process (single.c).
 */
#ifndef PQSHIMCTL_SINGLE_H
#define PQSHIMCTL_SINGLE_H

#include "options.h"

#include <stdbool.h>

/* Is word a command one process answers? */
bool single_command_known(const char *word);
/* Ask the process o names; returns the exit status. */
int run_single(const struct options *o);

#endif
