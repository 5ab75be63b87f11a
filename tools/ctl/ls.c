/*
 * ls.c — one line per shimmed process, or their status replies as one
 * JSON array.
 */
#define _GNU_SOURCE
#include "ls.h"

#include "discover.h"
#include "json.h"
#include "pool_text.h"
#include "table.h"
#include "util.h"
#include "../../shim/control_protocol.h"

#include <stdio.h>
#include <stdlib.h>

int run_ls(const struct options *o)
{
    struct scan s;
    if (!scan_all(&s, o->dir, o->only_dir, CONTROL_CMD_STATUS,
                  o->timeout > 0 ? o->timeout : DEFAULT_TIMEOUT))
        return EXIT_USAGE;
    if (o->json) {
        printf("[");
        for (int i = 0; i < s.n; i++) {
            size_t len = s.v[i].reply.len;
            while (len && (s.v[i].reply.data[len - 1] == '\n'))
                len--;
            printf("%s", i ? "," : "");
            print_text(s.v[i].reply.data, len);
        }
        printf("]\n");
        for (int i = 0; i < s.nnotes; i++)
            errmsg("%s", s.notes[i]);
    } else {
        if (s.n) {
            struct table t = {
                .ncols = 6,
                .head = {"PID", "PROGRAM", "POLICY", "PAUSED", "SOCKET", "TARGETS"},
                .right = {true, false, false, false, false, false},
            };
            for (int i = 0; i < s.n; i++) {
                const struct json *st = s.v[i].status;
                char *summary = targets_summary(st);
                cell(&t, "%d", s.v[i].pid);
                cell(&t, "%s", json_str(st, CONTROL_KEY_PROGRAM, "?"));
                cell(&t, "%s", json_str(st, CONTROL_KEY_POLICY, "?"));
                cell(&t, "%s", json_true(st, CONTROL_KEY_PAUSED) ? "yes" : "no");
                cell(&t, "%s", s.v[i].path);
                cell(&t, "%s", summary);
                free(summary);
            }
            table_print(&t, false);
        } else {
            printf("no shimmed processes with a control socket found\n");
        }
        for (int i = 0; i < s.nnotes; i++) {
            char *shown = clean(s.notes[i]);
            printf("%s\n", shown);
            free(shown);
        }
    }
    scan_free(&s);
    return EXIT_OK;
}

