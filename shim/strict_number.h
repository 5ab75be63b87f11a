/*
 * strict_number.h — the numbers PQSHIM_* settings accept, one definition
 * for the shim (config.c) and the launcher (tools/pqshim.c), which is a
 * separate program: plain decimal digits, no white space, no sign, no
 * hex, no exponent, so a typo never turns into a number nobody meant.
 */
#ifndef PQSHIM_STRICT_NUMBER_H
#define PQSHIM_STRICT_NUMBER_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static inline bool strict_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A whole number in [min, max]; *out untouched when false. */
static inline bool strict_long(const char *value, long min, long max, long *out)
{
    if (!strict_digits(value, strlen(value)) || strlen(value) > 9)
        return false;
    long v = strtol(value, NULL, 10);
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Seconds: digits, optionally a point and more digits ("1", "0.5", "2."
 * or ".5" are fine; " 5", "+7", "0x10", "1e3", "inf" are not), in
 * [0, max]; *out untouched when false. */
static inline bool strict_seconds(const char *value, double max, double *out)
{
    const char *dot = strchr(value, '.');
    size_t whole = dot ? (size_t)(dot - value) : strlen(value);
    size_t frac = dot ? strlen(dot + 1) : 0;
    if (whole + frac == 0 || (whole && !strict_digits(value, whole)) ||
        (frac && !strict_digits(dot + 1, frac)) || whole > 15)
        return false;
    errno = 0;
    double v = strtod(value, NULL);
    if (errno || !isfinite(v) || v < 0 || v > max)
        return false;
    *out = v;
    return true;
}

#endif
