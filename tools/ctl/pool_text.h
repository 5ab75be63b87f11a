/*
 * pool_text.h — a status reply's numbers as text (pool_text.c).
 */
#ifndef PQSHIMCTL_POOL_TEXT_H
#define PQSHIMCTL_POOL_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct json;

/* "12.3s", "4m05s", "2h03m04s" or "1d02h03m". */
void format_duration(char *out, size_t size, double s);
/* A pool's cap, or "-" without one. */
void cap_text(char *out, size_t size, const struct json *pool);
/* A pool's host-wide numbers: " host=HELD/LIMIT host_waiting=N" (long)
 * or "HELD/LIMIT" (short); nothing or "-" without a host limit. */
void host_text(char *out, size_t size, const struct json *pool, bool long_form);
/* Every pool of a status reply on one line (malloc'd). */
char *targets_summary(const struct json *st);

#endif
