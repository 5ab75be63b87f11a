/*
 * health.c — a process's health reply as a table and a verdict.
 */
#define _GNU_SOURCE
#include "health.h"

#include "json.h"
#include "table.h"
#include "../../shim/control_protocol.h"

#include <stdio.h>

bool show_health(const struct json *h)
{
    const struct json *targets = json_get(h, CONTROL_KEY_TARGETS);
    bool ok = json_true(h, CONTROL_KEY_OK);
    if (!targets || !targets->kids) {
        printf("no targets yet: nothing to check\n");
        return ok;
    }
    struct table t = {
        .ncols = 5,
        .head = {"target", "ok", "via", "ms", "error"},
        .right = {false, false, false, true, false},
    };
    int n = 0, bad = 0;
    for (const struct json *p = targets->kids; p; p = p->next) {
        bool good = json_true(p, CONTROL_KEY_OK);
        n++;
        bad += !good;
        cell(&t, "%s", json_str(p, CONTROL_KEY_TARGET, "?"));
        cell(&t, "%s", good ? "ok" : "FAILED");
        cell(&t, "%s", json_str(p, CONTROL_KEY_VIA, "?"));
        cell(&t, "%.1f", json_num(p, CONTROL_KEY_MS));
        cell(&t, "%s", json_str(p, CONTROL_KEY_ERROR, ""));
    }
    table_print(&t, true);
    if (bad)
        printf("%d of %d target%s FAILED\n", bad, n, n == 1 ? "" : "s");
    else
        printf("all %d target%s ok\n", n, n == 1 ? "" : "s");
    return ok && !bad;
}

