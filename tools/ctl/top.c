/*
 * top.c — a live view of every shimmed process, redrawn every interval,
 * with a bar of open connections against the cap per target.
 */
#define _GNU_SOURCE
#include "top.h"

#include "discover.h"
#include "json.h"
#include "pool_text.h"
#include "term.h"
#include "util.h"
#include "../../shim/control_protocol.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One line, cut at the terminal's width. */
static void __attribute__((format(printf, 2, 3))) top_line(int cols, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    char *shown = clean(s);
    free(s);
    if (cols > 0) {
        int w = 0;
        char *p = shown;
        for (; *p; p++)
            if (((unsigned char)*p & 0xc0) != 0x80 && ++w > cols)
                break;
        *p = '\0';
    }
    printf("%s\033[K\n", shown);
    free(shown);
}

static void bar(char *out, int width, double used, double idle, double open, double cap)
{
    int u = (int)(used * width / cap + 0.5), i = (int)(idle * width / cap + 0.5);
    int o = (int)(open * width / cap + 0.5);
    if (o > width)
        o = width;
    if (u > o)
        u = o;
    if (u + i > o)
        i = o - u;
    int k = 0;
    out[k++] = '[';
    for (int x = 0; x < width; x++)
        out[k++] = x < u ? '#' : x < u + i ? '=' : x < o ? '+' : '.';
    out[k++] = ']';
    out[k] = '\0';
}

static void top_render(const struct options *o, struct scan *s)
{
    int cols = term_columns();
    char clock[16];
    time_t now = time(NULL);
    struct tm tm;
    strftime(clock, sizeof clock, "%H:%M:%S", localtime_r(&now, &tm));
    printf("\033[H\033[2J");
    top_line(cols, "pqshimctl top  %s  %d process%s  every %gs  (q quits)", clock, s->n,
             s->n == 1 ? "" : "es", o->interval);
    top_line(cols, "bar: # used  = idle  + opening  . free up to the cap");
    top_line(cols, "%s", "");
    for (int i = 0; i < s->n; i++) {
        const struct json *st = s->v[i].status;
        char up[32];
        format_duration(up, sizeof up, json_num(st, CONTROL_KEY_UPTIME));
        top_line(cols, "%d  %s  %s%s  uptime %s", s->v[i].pid,
                 json_str(st, CONTROL_KEY_PROGRAM, "?"), json_str(st, CONTROL_KEY_POLICY, "?"),
                 json_true(st, CONTROL_KEY_PAUSED) ? "  PAUSED" : "", up);
        const struct json *pools = json_get(st, CONTROL_KEY_POOLS);
        if (!pools || !pools->kids)
            top_line(cols, "    (no targets yet)");
        for (const struct json *p = pools ? pools->kids : NULL; p; p = p->next) {
            char b[64] = "";
            double open = json_num(p, CONTROL_KEY_OPEN), cap = json_num(p, CONTROL_KEY_CAP);
            if (json_has_num(p, CONTROL_KEY_CAP) && cap > 0)
                bar(b, 30, json_num(p, CONTROL_KEY_CHECKED_OUT), json_num(p, CONTROL_KEY_IDLE),
                    open, cap);
            char hostbuf[96];
            host_text(hostbuf, sizeof hostbuf, p, true);
            top_line(cols, "    %s%s", json_str(p, CONTROL_KEY_TARGET, "?"), hostbuf);
            if (b[0])
                top_line(cols, "    %s %3.0f/%-3.0f used %.0f idle %.0f waiting %.0f  "
                         "connects %.0f reuses %.0f timeouts %.0f", b, open, cap,
                         json_num(p, CONTROL_KEY_CHECKED_OUT), json_num(p, CONTROL_KEY_IDLE),
                         json_num(p, CONTROL_KEY_WAITING), json_num(p, CONTROL_KEY_CONNECTS),
                         json_num(p, CONTROL_KEY_REUSES), json_num(p, CONTROL_KEY_TIMEOUTS));
            else
                top_line(cols, "    open %.0f (no cap) used %.0f idle %.0f waiting %.0f  "
                         "connects %.0f", open, json_num(p, CONTROL_KEY_CHECKED_OUT),
                         json_num(p, CONTROL_KEY_IDLE), json_num(p, CONTROL_KEY_WAITING),
                         json_num(p, CONTROL_KEY_CONNECTS));
        }
    }
    if (s->n == 0)
        top_line(cols, "no shimmed processes with a control socket found");
    for (int i = 0; i < s->nnotes; i++)
        top_line(cols, "%s", s->notes[i]);
    fflush(stdout);
}

int run_top(const struct options *o)
{
    if (o->dir) {
        DIR *d = opendir(o->dir);
        if (!d) {
            errmsg("cannot read directory %s: %s", o->dir, strerror(errno));
            return EXIT_USAGE;
        }
        closedir(d);
    }
    raw_terminal();
    if (isatty(STDOUT_FILENO))
        printf("\033[?25l"); /* no cursor while drawing */
    bool stdin_open = true;
    for (long i = 0; o->iterations == 0 || i < o->iterations; i++) {
        struct scan s;
        if (!scan_all(&s, o->dir, o->only_dir, CONTROL_CMD_STATUS,
                      o->timeout > 0 ? o->timeout : DEFAULT_TIMEOUT))
            return EXIT_USAGE;
        top_render(o, &s);
        scan_free(&s);
        if (o->iterations && i + 1 >= o->iterations)
            break;
        if (term_wait_quit((int)(o->interval * 1000), &stdin_open))
            break;
    }
    restore_terminal();
    return EXIT_OK;
}

