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

/* Open the directory that holds path (its last component goes to base)
 * for work relative to it: fstatat, unlinkat with no symlink followed at
 * the end and no race with a rename of the directory. A descriptor, or -1
 * with errno set (EINVAL: no last component, or it does not fit). */
int control_open_dir(const char *path, char *base, size_t size);

#endif
