/*
 * util.c — what every part of pqshimctl uses: messages, allocation that
 * never returns NULL, the clock, and text made safe for a terminal.
 */
#define _GNU_SOURCE
#include "util.h"

#include "../../shim/escape.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const progname = "pqshimctl";

/* A message may carry paths and words from other users' processes: no
 * control character reaches the terminal. */
static void __attribute__((format(printf, 1, 0))) vsay(const char *fmt, va_list ap)
{
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0) {
        fprintf(stderr, "%s: out of memory\n", progname);
        return;
    }
    char *shown = clean(text);
    fprintf(stderr, "%s: %s\n", progname, shown);
    free(shown);
    free(text);
}

void __attribute__((format(printf, 1, 2))) errmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

void __attribute__((format(printf, 1, 2), noreturn)) usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    fprintf(stderr, "Try '%s --help'.\n", progname);
    va_end(ap);
    exit(EXIT_USAGE);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_USAGE);
    }
    return p;
}

void *xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_USAGE);
    }
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

char *__attribute__((format(printf, 1, 0))) xvasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_USAGE);
    }
    return s;
}

char *__attribute__((format(printf, 1, 2))) xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Text from a process goes to a terminal: no control character (C0,
 * DEL, C1) and no invalid UTF-8, so a target or program name can never
 * inject escape sequences. */
char *clean(const char *s)
{
    size_t n = strlen(s), len = 0;
    char *out = xmalloc(n + 1); /* '?' replaces one byte or more */
    while (n > 0) {
        char e[ESC_MAX];
        size_t took = esc_char(s, n, ESC_TERM, e);
        memcpy(out + len, e, strlen(e));
        len += strlen(e);
        s += took;
        n -= took;
    }
    out[len] = '\0';
    return out;
}

/* A reply shown as it came (help, metrics, --json): lines and tabs kept,
 * every other control character and invalid byte shown as '?'. */
void print_text(const char *s, size_t n)
{
    while (n > 0) {
        char e[ESC_MAX];
        size_t took = 1;
        if (*s == '\n' || *s == '\t')
            e[0] = *s, e[1] = '\0';
        else
            took = esc_char(s, n, ESC_TERM, e);
        fputs(e, stdout);
        s += took;
        n -= took;
    }
}

/* Columns a string takes (UTF-8 aware enough for alignment). */
size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}
