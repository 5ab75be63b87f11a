/*
 * init.h — activation, fork and exit (init.c).
 */
#ifndef PQSHIM_INIT_H
#define PQSHIM_INIT_H

#include "util.h"

/* First intercepted call: read the configuration, bind libpq, install the
 * fork handlers. True when the shim may act (otherwise pass through). */
bool shim_active(void);

#endif
