/*
 * status.h — a status reply as tables (status.c).
 */
#ifndef PQSHIMCTL_STATUS_H
#define PQSHIMCTL_STATUS_H

struct json;

/* Print the process line, its host limit, and a table of its pools. */
void show_status(const struct json *st);

#endif
