/*
 * health.h — a health reply as a table (health.c).
 */
#ifndef PQSHIMCTL_HEALTH_H
#define PQSHIMCTL_HEALTH_H

#include <stdbool.h>

struct json;

/* Print one row per target and a verdict; true when every target is ok. */
bool show_health(const struct json *h);

#endif
