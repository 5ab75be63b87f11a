/*
 * metrics.c — metrics --all: every shimmed process's metrics as one
 * Prometheus exposition.
 */
#define _GNU_SOURCE
#include "metrics.h"

#include "discover.h"
#include "prom_merge.h"
#include "util.h"
#include "../../shim/control_protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int run_metrics_all(const struct options *o)
{
    struct scan s;
    if (!scan_all(&s, o->dir, o->only_dir, CONTROL_CMD_METRICS,
                  o->timeout > 0 ? o->timeout : DEFAULT_TIMEOUT))
        return EXIT_USAGE;
    struct families f = {0};
    /* This user's own processes first: theirs are the HELP lines kept. */
    for (int own = 1; own >= 0; own--)
        for (int i = 0; i < s.n; i++)
            if ((s.v[i].peer_uid == geteuid()) == own)
                merge_exposition(&f, s.v[i].reply.data, (int)s.v[i].pid);
    families_print(&f);
    families_free(&f);
    for (int i = 0; i < s.nnotes; i++)
        errmsg("%s", s.notes[i]);
    scan_free(&s);
    return EXIT_OK;
}

