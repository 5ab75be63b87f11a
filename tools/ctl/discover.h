/*
 * discover.h — finding the control sockets of shimmed processes and
 * asking them all (discover.c).
 */
#ifndef PQSHIMCTL_DISCOVER_H
#define PQSHIMCTL_DISCOVER_H

#include "talk.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define OVERALL_FACTOR 5          /* ls, top, metrics --all: all within 5 timeouts */

/* The socket of process pid (its PQSHIM_CONTROL, else this environment's,
 * expanded for it) and the user who must serve it; on failure a message
 * and false. */
bool pid_socket(pid_t pid, char *out, size_t size, uid_t *owner);

struct scan {
    struct entry *v;          /* those that answered as themselves */
    int n, cap;
    char **notes;             /* stale sockets, refusals, ... (cleaned) */
    int nnotes;
};

/* Find and ask every shimmed process this user may see: the sockets
 * named in the environments of the processes it may read, and those in
 * dir or this environment's socket directory (only_dir: dir's alone).
 * A status reply is parsed into each entry's status and the entries are
 * sorted by pid. False, with a message, when dir cannot be read. */
bool scan_all(struct scan *s, const char *dir, bool only_dir, const char *command,
              double timeout);
void scan_free(struct scan *s);

#endif
