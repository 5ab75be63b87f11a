/*
 * util.h — messages, allocation, the clock and terminal-safe text for
 * every part of pqshimctl (util.c).
 */
#ifndef PQSHIMCTL_UTIL_H
#define PQSHIMCTL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum {
    EXIT_OK = 0,
    EXIT_REPLY = 1,  /* error reply, health failing, malformed reply */
    EXIT_USAGE = 2,  /* bad arguments, or nothing to talk to */
};

extern const char *const progname;

/* "pqshimctl: MESSAGE" on stderr, control characters made harmless. */
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same, a pointer to --help, and exit status 2. */
void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Allocation that never returns NULL: out of memory ends the tool (status 2). */
void *xmalloc(size_t n);
void *xrealloc(void *old, size_t n);
char *xstrdup(const char *s);
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seconds on the monotonic clock. */
double now_mono(void);

/* A copy of s (malloc'd) with every control character and invalid UTF-8
 * byte shown as '?': a name from a process can never reach the terminal
 * as an escape sequence. */
char *clean(const char *s);
/* n bytes of a reply to stdout: lines and tabs kept, the rest as clean(). */
void print_text(const char *s, size_t n);
/* Columns s takes on a terminal (UTF-8 aware enough for alignment). */
size_t width_of(const char *s);

#endif
