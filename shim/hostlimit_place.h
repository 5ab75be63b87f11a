/*
 * hostlimit_place.h — where the host limit's file lives
 * (hostlimit_place.c): PQSHIM_HOST_LIMIT_FILE, or the default in a
 * directory of the user's own. Only hostlimit_file.c includes it.
 */
#ifndef PQSHIM_HOSTLIMIT_PLACE_H
#define PQSHIM_HOSTLIMIT_PLACE_H

#include <stdbool.h>
#include <stddef.h>

/* Open the host limit file for reading and writing (created mode 0600
 * when missing): the configured one (*chosen true) or the default.
 * Returns the descriptor, or -1 after one host_limit_unavailable line;
 * path gets the file's path either way. */
int hostlimit_place_open(char *path, size_t size, bool *chosen);

/* One host_limit_unavailable line for path: why the limit is off. */
void hl_unusable(const char *path, const char *why, int err);

#endif
