/*
 * config.h — PQSHIM_* variables, parsed once (config.c).
 */
#ifndef PQSHIM_CONFIG_H
#define PQSHIM_CONFIG_H

#include "util.h"

enum pqshim_policy { POLICY_NULL, POLICY_CAPPED };
enum pqshim_reset { RESET_DISCARD, RESET_ROLLBACK, RESET_NONE };
enum pqshim_pre_ping { PRE_PING_OFF, PRE_PING_ON, PRE_PING_ALWAYS };
enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_dest { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_NONE, LOG_TO_FILE };
enum log_format { LOG_FMT_TEXT, LOG_FMT_JSON };

struct pqshim_config {
    enum pqshim_policy policy;
    enum log_dest log_dest;
    char log_path[4096];
    enum log_level log_level;
    enum log_format log_format;
    int pool_size;
    int max_overflow;
    double pool_timeout;  /* seconds */
    enum pqshim_reset reset;
    enum pqshim_pre_ping pre_ping;
    double pool_recycle;  /* seconds, 0 = never */
    double idle_timeout;  /* seconds, 0 = never */
    char control_path[4096]; /* pattern; empty = no control socket */
    bool retry_full;         /* retry while the server is full */
    int host_limit;          /* per target across processes; 0 = off */
    char host_limit_file[4096]; /* empty: the per-uid default */
    bool host_limit_shared;  /* the file's owner and group are trusted */
};

/* The configuration, read from the environment once (thread-safe). */
const struct pqshim_config *config_get(void);

/* Parse the environment into *cfg, reporting each problem through report().
 * Pure: used by config_get() and by the unit tests. */
void config_parse(char **envp, struct pqshim_config *cfg,
                  void (*report)(enum log_level, const char *variable,
                                 const char *value, const char *accepted));

const char *config_policy_name(enum pqshim_policy p);

/* Call report for each problem config_get() found, in order. */
void config_for_each_problem(void (*report)(enum log_level, const char *variable,
                                            const char *value,
                                            const char *accepted));

/* The effective value of a variable as text (for logs and status). */
void config_value_string(const struct pqshim_config *c, const char *variable,
                         char *buf, size_t size);

#endif
