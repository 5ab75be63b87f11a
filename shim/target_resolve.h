/*
 * target_resolve.h — a connect request's target, as libpq reads it
 * (target_resolve.c).
 */
#ifndef PQSHIM_TARGET_RESOLVE_H
#define PQSHIM_TARGET_RESOLVE_H

#include "request.h"
#include "target.h"

/* The target of req: libpq's reading of it (remembered for a request seen
 * before, see target_cache.h) and what identifies the process to the
 * server now (identity.h). False (t undefined) when libpq cannot read the
 * request or out of memory: the connect is then passed through, and libpq
 * says what is wrong. */
bool target_of(const struct connect_request *req, struct target *t);

#endif
