/*
 * pool_text.c — a status reply's numbers as text: durations, a pool's cap
 * and host-wide numbers, and the one-line summary of a process's pools.
 */
#define _GNU_SOURCE
#include "pool_text.h"

#include "json.h"
#include "util.h"
#include "../../shim/control_protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void format_duration(char *out, size_t size, double s)
{
    if (s < 60)
        snprintf(out, size, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, size, "%dm%02ds", (int)s / 60, (int)s % 60);
    else if (s < 86400)
        snprintf(out, size, "%dh%02dm%02ds", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else
        snprintf(out, size, "%dd%02dh%02dm", (int)(s / 86400), (int)(s / 3600) % 24,
                 (int)(s / 60) % 60);
}

void cap_text(char *out, size_t size, const struct json *pool)
{
    if (json_has_num(pool, CONTROL_KEY_CAP))
        snprintf(out, size, "%.0f", json_num(pool, CONTROL_KEY_CAP));
    else
        snprintf(out, size, "-");
}

/* The host-wide numbers of a pool: " host=HELD/LIMIT host_waiting=N"
 * (long) or "HELD/LIMIT" (short); nothing or "-" without a host limit. */
void host_text(char *out, size_t size, const struct json *pool, bool long_form)
{
    const struct json *h = json_get(pool, CONTROL_KEY_HOST);
    if (!h || !json_has_num(h, CONTROL_KEY_LIMIT)) {
        snprintf(out, size, "%s", long_form ? "" : "-");
        return;
    }
    if (long_form)
        snprintf(out, size, " host=%.0f/%.0f host_waiting=%.0f", json_num(h, CONTROL_KEY_HELD),
                 json_num(h, CONTROL_KEY_LIMIT), json_num(h, CONTROL_KEY_WAITING));
    else
        snprintf(out, size, "%.0f/%.0f", json_num(h, CONTROL_KEY_HELD),
                 json_num(h, CONTROL_KEY_LIMIT));
}

char *targets_summary(const struct json *st)
{
    const struct json *pools = json_get(st, CONTROL_KEY_POOLS);
    size_t len = 0;
    char *out = xstrdup("");
    for (const struct json *p = pools ? pools->kids : NULL; p; p = p->next) {
        char capbuf[32];
        cap_text(capbuf, sizeof capbuf, p);
        char hostbuf[96];
        host_text(hostbuf, sizeof hostbuf, p, true);
        char *piece = xasprintf("%s%s open=%.0f used=%.0f idle=%.0f waiting=%.0f cap=%s%s",
                                len ? "; " : "", json_str(p, CONTROL_KEY_TARGET, "?"),
                                json_num(p, CONTROL_KEY_OPEN),
                                json_num(p, CONTROL_KEY_CHECKED_OUT),
                                json_num(p, CONTROL_KEY_IDLE), json_num(p, CONTROL_KEY_WAITING),
                                capbuf, hostbuf);
        size_t n = strlen(piece);
        out = xrealloc(out, len + n + 1);
        memcpy(out + len, piece, n + 1);
        len += n;
        free(piece);
    }
    if (!len) {
        free(out);
        out = xstrdup("(no targets yet)");
    }
    return out;
}

