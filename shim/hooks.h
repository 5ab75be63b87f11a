/*
 * hooks.h — the entry points (hooks.c).
 */
#ifndef PQSHIM_HOOKS_H
#define PQSHIM_HOOKS_H

#include "gotpatch.h"

/* hooks_lookup, hooks_lookup_copy and hooks_is_ours, as a table. */
extern const struct entry_points hooks_entry_points;

/* Our entry point for an intercepted name, or NULL. */
void *hooks_lookup(const char *name);

/* The entry point for name that serves libpq copy `copy` (0: the exported
 * one), or NULL when name is not intercepted. */
void *hooks_lookup_copy(const char *name, int copy);

/* Is addr one of our entry points, for any copy? */
bool hooks_is_ours(const void *addr);

#endif
