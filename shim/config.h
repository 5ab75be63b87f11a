/*
 * config.h — PQSHIM_* variables, parsed once (config.c).
 */
#ifndef PQSHIM_CONFIG_H
#define PQSHIM_CONFIG_H

#include "settings.h"
#include "util.h"

/* Each in the order of its row's words in settings.def (LOG_TO_FILE: a
 * path, one past the words). */
enum pqshim_policy { POLICY_NULL, POLICY_CAPPED };
enum pqshim_reset { RESET_DISCARD, RESET_ROLLBACK, RESET_NONE };
enum pqshim_pre_ping { PRE_PING_OFF, PRE_PING_ON, PRE_PING_ALWAYS };
enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_dest { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_NONE, LOG_TO_FILE };
enum log_format { LOG_FMT_TEXT, LOG_FMT_JSON };

/* One member per row of settings.def (a DEST row: field_dest and
 * field_path). */
struct pqshim_config {
#define SETTING(KIND, field, ctype, ...) SETTING_FIELD_##KIND(ctype, field)
#include "settings.def"
#undef SETTING
};

/* The configuration, read from the environment once (thread-safe). */
const struct pqshim_config *config_get(void);

/* Parse the environment into *cfg, reporting each problem through report().
 * Pure: used by config_get() and by the unit tests. */
void config_parse(char **envp, struct pqshim_config *cfg,
                  void (*report)(enum log_level, const char *variable,
                                 const char *value, const char *accepted));

const char *config_policy_name(enum pqshim_policy p);

/* The settings, in settings.def's order, ending with a NULL name. */
const struct setting *config_settings(void);

/* Call report for each problem config_get() found, in order. */
void config_for_each_problem(void (*report)(enum log_level, const char *variable,
                                            const char *value,
                                            const char *accepted));

/* The effective value of a variable as text (for logs and status). */
void config_value_string(const struct pqshim_config *c, const char *variable,
                         char *buf, size_t size);

#endif
