/*
 * control_path.h — PQSHIM_CONTROL patterns, shared by the shim and
 * pqshimctl (which needs no libpq, so this header includes none).
 */
#ifndef PQSHIM_CONTROL_PATH_H
#define PQSHIM_CONTROL_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Expand %p (pid), %u (uid) and %% in pattern into out. False when the
 * result is empty or does not fit; out is then undefined. */
bool control_expand_path(const char *pattern, pid_t pid, uid_t uid, char *out,
                         size_t size);

#endif
