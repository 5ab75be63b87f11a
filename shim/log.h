/*
 * log.h — log lines (log.c).
 */
#ifndef PQSHIM_LOG_H
#define PQSHIM_LOG_H

#include "config.h"

enum log_field_type { LF_END, LF_STR, LF_INT, LF_MS };

struct log_field {
    const char *key;
    enum log_field_type type;
    const char *s;
    long long i;
    double d;
};

#define LF_S(k, v) ((struct log_field){.key = (k), .type = LF_STR, .s = (v)})
#define LF_I(k, v) ((struct log_field){.key = (k), .type = LF_INT, .i = (v)})
#define LF_D(k, v) ((struct log_field){.key = (k), .type = LF_MS, .d = (v)})
#define LF_END_ ((struct log_field){.key = NULL, .type = LF_END})

/* Emit one line (one write()) if level passes PQSHIM_LOG_LEVEL. */
void log_event(enum log_level level, const char *event,
               const struct log_field *fields);
#define LOG_EVENT(level, event, ...) \
    log_event((level), (event), (const struct log_field[]){__VA_ARGS__, LF_END_})

/* Format one line into buf (always NUL-terminated, newline-ended).
 * Pure: used by log_event() and the unit tests. Returns the length. */
size_t log_format_line(char *buf, size_t size, enum log_format format,
                       pid_t pid, double unix_time, enum log_level level,
                       const char *event, const struct log_field *fields);

/* Log what config_get() found wrong, once per process (init.c calls it). */
void log_config_problems(void);

/* The log file's open lock, held across fork() by init.c's handlers. */
void log_lock_for_fork(void);
void log_unlock_after_fork(void);

/* log_event() with an explicit configuration (used while it is loaded). */
void log_emit(const struct pqshim_config *cfg, enum log_level level,
              const char *event, const struct log_field *fields);

#endif
