/*
 * settle.h — finishing an async checkout inside the program's poll
 * (settle.c).
 */
#ifndef PQSHIM_SETTLE_H
#define PQSHIM_SETTLE_H

#include "conn.h"

enum settle_result { SETTLE_OK, SETTLE_PENDING, SETTLE_DEAD };

/* Begin (settle_begin) or go on with (settle_poll) making a reused
 * connection ready without waiting: read the reset's answer if it has
 * arrived, then check liveness (zero round trips where sound, else an
 * empty query whose answer a later call reads). */
enum settle_result settle_begin(struct shim_conn *sc);
enum settle_result settle_poll(struct shim_conn *sc);

#endif
