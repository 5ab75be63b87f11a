/*
 * target_cache.h — connection requests seen before, mapped to their target.
 */
#ifndef TARGET_CACHE_H
#define TARGET_CACHE_H

#include "request.h"
#include "target.h"

/* Requests (arguments plus environment) longer than this are not cached. */
#define TARGET_REQUEST_MAX 4096
/* How many requests are remembered at most. */
#define TARGET_CACHE_SLOTS 64

/* Everything a request's target depends on, as bytes: the program's
 * arguments, the libpq copy, the effective user and every PG* (and HOME)
 * environment variable, so a setenv() between two connects is seen. */
struct target_request {
    size_t len;
    uint64_t hash;
    char bytes[TARGET_REQUEST_MAX];
};

/* Fill r from req for libpq copy `copy`. False: this request is never
 * cached (too long, or a service file shapes it: its contents may change). */
bool target_request_of(struct target_request *r,
                       const struct connect_request *req, int copy);

/* Copy the remembered target of r into *t. False (t unchanged): unknown. */
bool target_cache_get(const struct target_request *r, struct target *t);

/* Remember t as r's target, replacing what shares its slot. Silently
 * does nothing when out of memory. */
void target_cache_put(const struct target_request *r, const struct target *t);

/* Held across fork() by init.c's handlers, after every other lock. */
void target_cache_lock_for_fork(void);
void target_cache_unlock_after_fork(void);

/* How many requests are remembered now (at most TARGET_CACHE_SLOTS). */
int target_cache_count(void);

#endif
