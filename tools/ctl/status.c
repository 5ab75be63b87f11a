/*
 * status.c — a process's status reply as tables: the process, then one row
 * per target (and a row of totals when there are several).
 */
#define _GNU_SOURCE
#include "status.h"

#include "json.h"
#include "pool_text.h"
#include "table.h"
#include "util.h"
#include "../../shim/control_protocol.h"

#include <stdio.h>
#include <stdlib.h>

void show_status(const struct json *st)
{
    char up[32];
    format_duration(up, sizeof up, json_num(st, CONTROL_KEY_UPTIME));
    char *program = clean(json_str(st, CONTROL_KEY_PROGRAM, "?"));
    char *policy = clean(json_str(st, CONTROL_KEY_POLICY, "?"));
    printf("pid %.0f  program %s  policy %s  paused %s  uptime %s\n", json_num(st, CONTROL_KEY_PID),
           program, policy, json_true(st, CONTROL_KEY_PAUSED) ? "yes" : "no", up);
    free(program);
    free(policy);
    const struct json *hl = json_get(st, CONTROL_KEY_HOST_LIMIT);
    if (hl && json_has_num(hl, CONTROL_KEY_LIMIT)) {
        char *file = clean(json_str(hl, CONTROL_KEY_FILE, "?"));
        printf("host limit %.0f per target, shared through %s\n", json_num(hl, CONTROL_KEY_LIMIT),
               file);
        free(file);
    }
    const struct json *pools = json_get(st, CONTROL_KEY_POOLS);
    int n = 0;
    for (const struct json *p = pools ? pools->kids : NULL; p; p = p->next)
        n++;
    if (n == 0) {
        printf("(no targets yet)\n");
        return;
    }
    putchar('\n');
    struct table t = {
        .ncols = 13,
        .head = {"target", "cap", "open", "used", "idle", "waiting", "connects", "reuses",
                 "timeouts", "wait ms total", "oldest checkout", "host held/limit",
                 "host waiting"},
        .right = {false, true, true, true, true, true, true, true, true, true, true, true,
                  true},
    };
    const struct json *totals = json_get(st, CONTROL_KEY_TOTALS);
    for (const struct json *p = pools->kids;; p = p->next) {
        if (!p) {
            if (n < 2 || !totals)
                break;
            p = totals; /* a summary row when there are several targets */
        }
        char capbuf[32], oldest[32];
        cap_text(capbuf, sizeof capbuf, p);
        double age = json_num(p, CONTROL_KEY_OLDEST);
        if (age > 0)
            format_duration(oldest, sizeof oldest, age);
        else
            snprintf(oldest, sizeof oldest, "-");
        cell(&t, "%s", p == totals ? "(all)" : json_str(p, CONTROL_KEY_TARGET, "?"));
        cell(&t, "%s", p == totals ? "" : capbuf);
        cell(&t, "%.0f", json_num(p, CONTROL_KEY_OPEN));
        cell(&t, "%.0f", json_num(p, CONTROL_KEY_CHECKED_OUT));
        cell(&t, "%.0f", json_num(p, CONTROL_KEY_IDLE));
        cell(&t, "%.0f", json_num(p, CONTROL_KEY_WAITING));
        cell(&t, "%.0f", json_num(p, CONTROL_KEY_CONNECTS));
        cell(&t, "%.0f", json_num(p, CONTROL_KEY_REUSES));
        cell(&t, "%.0f", json_num(p, CONTROL_KEY_TIMEOUTS));
        cell(&t, "%.1f", json_num(p, CONTROL_KEY_WAIT_MS));
        cell(&t, "%s", oldest);
        char hostbuf[64];
        host_text(hostbuf, sizeof hostbuf, p, false);
        const struct json *h = json_get(p, CONTROL_KEY_HOST);
        cell(&t, "%s", p == totals ? "" : hostbuf);
        if (p != totals && h && json_has_num(h, CONTROL_KEY_WAITING))
            cell(&t, "%.0f", json_num(h, CONTROL_KEY_WAITING));
        else
            cell(&t, "%s", p == totals ? "" : "-");
        if (p == totals)
            break;
    }
    table_print(&t, true);
}

