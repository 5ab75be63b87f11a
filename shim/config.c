/*
 * config.c — PQSHIM_* environment variables, read once on first use.
 *
 * A bad value never stops the host: it is reported once (variable, value,
 * what is accepted) and the default is used instead.
 */
#define _GNU_SOURCE
#include "config.h"
#include "strict_number.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

typedef bool (*parse_fn)(const char *value, struct pqshim_config *cfg);

struct variable {
    const char *name;
    parse_fn parse;
    const char *accepted;
};

static bool match_word(const char *value, const char *const *words, int *out)
{
    for (int i = 0; words[i]; i++) {
        if (strcasecmp(value, words[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

static bool parse_int(const char *value, long min, long max, int *out)
{
    long v;
    if (!strict_long(value, min, max, &v))
        return false;
    *out = (int)v;
    return true;
}

static bool parse_seconds(const char *value, double max, double *out)
{
    return strict_seconds(value, max, out);
}

static bool parse_policy(const char *v, struct pqshim_config *c)
{
    static const char *const words[] = {"null", "capped", NULL};
    int i;
    if (!match_word(v, words, &i))
        return false;
    c->policy = (enum pqshim_policy)i;
    return true;
}

static bool parse_log(const char *v, struct pqshim_config *c)
{
    static const char *const words[] = {"stderr", "syslog", "none", NULL};
    int i;
    if (match_word(v, words, &i)) {
        c->log_dest = (enum log_dest)i;
        return true;
    }
    if (v[0] != '/' || strlen(v) >= sizeof c->log_path)
        return false;
    c->log_dest = LOG_TO_FILE;
    snprintf(c->log_path, sizeof c->log_path, "%s", v);
    return true;
}

static bool parse_log_level(const char *v, struct pqshim_config *c)
{
    static const char *const words[] = {"error", "warn", "info", "debug", NULL};
    int i;
    if (!match_word(v, words, &i))
        return false;
    c->log_level = (enum log_level)i;
    return true;
}

static bool parse_log_format(const char *v, struct pqshim_config *c)
{
    static const char *const words[] = {"text", "json", NULL};
    int i;
    if (!match_word(v, words, &i))
        return false;
    c->log_format = (enum log_format)i;
    return true;
}

static bool parse_pool_size(const char *v, struct pqshim_config *c)
{
    return parse_int(v, 0, 10000, &c->pool_size);
}

static bool parse_max_overflow(const char *v, struct pqshim_config *c)
{
    return parse_int(v, 0, 10000, &c->max_overflow);
}

static bool parse_pool_timeout(const char *v, struct pqshim_config *c)
{
    return parse_seconds(v, 86400, &c->pool_timeout);
}

static bool parse_reset(const char *v, struct pqshim_config *c)
{
    static const char *const words[] = {"discard", "rollback", "none", NULL};
    int i;
    if (!match_word(v, words, &i))
        return false;
    c->reset = (enum pqshim_reset)i;
    return true;
}

static bool parse_pre_ping(const char *v, struct pqshim_config *c)
{
    static const char *const words[] = {"off", "on", "always", "0", "1",
                                        "false", "true", "no", "yes", NULL};
    static const enum pqshim_pre_ping meaning[] = {
        PRE_PING_OFF, PRE_PING_ON, PRE_PING_ALWAYS, PRE_PING_OFF, PRE_PING_ON,
        PRE_PING_OFF, PRE_PING_ON, PRE_PING_OFF, PRE_PING_ON};
    int i;
    if (!match_word(v, words, &i))
        return false;
    c->pre_ping = meaning[i];
    return true;
}

static bool parse_recycle(const char *v, struct pqshim_config *c)
{
    return parse_seconds(v, 1e9, &c->pool_recycle);
}

static bool parse_idle_timeout(const char *v, struct pqshim_config *c)
{
    return parse_seconds(v, 1e9, &c->idle_timeout);
}

static bool parse_retry_full(const char *v, struct pqshim_config *c)
{
    static const char *const words[] = {"off", "on", "0", "1", "false",
                                        "true", "no", "yes", NULL};
    int i;
    if (!match_word(v, words, &i))
        return false;
    c->retry_full = i % 2 == 1;
    return true;
}

static bool parse_host_limit(const char *v, struct pqshim_config *c)
{
    return parse_int(v, 0, 1000, &c->host_limit);
}

static bool parse_host_limit_file(const char *v, struct pqshim_config *c)
{
    if (v[0] != '/' || strlen(v) >= sizeof c->host_limit_file)
        return false;
    snprintf(c->host_limit_file, sizeof c->host_limit_file, "%s", v);
    return true;
}

static bool parse_host_limit_shared(const char *v, struct pqshim_config *c)
{
    static const char *const words[] = {"off", "group", NULL};
    int i;
    if (!match_word(v, words, &i))
        return false;
    c->host_limit_shared = i == 1;
    return true;
}

static bool parse_control(const char *v, struct pqshim_config *c)
{
    if (v[0] != '/' || strlen(v) >= sizeof c->control_path)
        return false;
    snprintf(c->control_path, sizeof c->control_path, "%s", v);
    return true;
}

static const struct variable variables[] = {
    {"PQSHIM_POLICY", parse_policy, "null or capped"},
    {"PQSHIM_LOG", parse_log, "stderr, syslog, none or an absolute file path"},
    {"PQSHIM_LOG_LEVEL", parse_log_level, "error, warn, info or debug"},
    {"PQSHIM_LOG_FORMAT", parse_log_format, "text or json"},
    {"PQSHIM_POOL_SIZE", parse_pool_size, "an integer from 0 to 10000"},
    {"PQSHIM_MAX_OVERFLOW", parse_max_overflow, "an integer from 0 to 10000"},
    {"PQSHIM_POOL_TIMEOUT", parse_pool_timeout, "seconds from 0 to 86400, decimals allowed"},
    {"PQSHIM_RESET", parse_reset, "discard, rollback or none"},
    {"PQSHIM_PRE_PING", parse_pre_ping, "on, off or always"},
    {"PQSHIM_POOL_RECYCLE", parse_recycle, "seconds, 0 for never"},
    {"PQSHIM_IDLE_TIMEOUT", parse_idle_timeout, "seconds, 0 for never"},
    {"PQSHIM_RETRY_FULL", parse_retry_full, "on or off"},
    {"PQSHIM_HOST_LIMIT", parse_host_limit, "an integer from 1 to 1000, or 0 for no limit"},
    {"PQSHIM_HOST_LIMIT_FILE", parse_host_limit_file, "an absolute path"},
    {"PQSHIM_HOST_LIMIT_SHARED", parse_host_limit_shared, "off or group"},
    {"PQSHIM_CONTROL", parse_control, "an absolute path (%p pid, %u uid, %% a percent sign)"},
    {NULL, NULL, NULL},
};

static void set_defaults(struct pqshim_config *c)
{
    memset(c, 0, sizeof *c);
    c->policy = POLICY_NULL;
    c->log_dest = LOG_TO_STDERR;
    c->log_level = LOG_LVL_INFO;
    c->log_format = LOG_FMT_TEXT;
    c->pool_size = 5;
    c->max_overflow = 10;
    c->pool_timeout = 30;
    c->reset = RESET_DISCARD;
    c->pre_ping = PRE_PING_ON;
    c->pool_recycle = 3600;
    c->idle_timeout = 600;
    c->retry_full = true;
}

void config_parse(char **envp, struct pqshim_config *cfg,
                  void (*report)(enum log_level, const char *, const char *,
                                 const char *))
{
    set_defaults(cfg);
    for (char **e = envp; e && *e; e++) {
        if (strncmp(*e, "PQSHIM_", 7) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        size_t len = (size_t)(eq - *e);
        const struct variable *var = variables;
        while (var->name && (strlen(var->name) != len ||
                             strncmp(var->name, *e, len) != 0))
            var++;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)len, *e);
        if (!var->name) {
            report(LOG_LVL_WARN, name, NULL, NULL);
            continue;
        }
        /* Parse into a scratch copy so a bad value leaves the default. */
        struct pqshim_config scratch = *cfg;
        if (var->parse(eq + 1, &scratch))
            *cfg = scratch;
        else
            report(LOG_LVL_ERROR, name, eq + 1, var->accepted);
    }
    if (cfg->pool_size + cfg->max_overflow < 1) {
        report(LOG_LVL_ERROR, "PQSHIM_MAX_OVERFLOW", "0",
               "at least 1 when PQSHIM_POOL_SIZE is 0");
        cfg->max_overflow = 1;
    }
}

const char *config_policy_name(enum pqshim_policy p)
{
    return p == POLICY_CAPPED ? "capped" : "null";
}

/* Problems found while parsing are logged once the configuration (which
 * decides where logs go) is complete. */
struct problem {
    enum log_level level;
    char variable[64];
    char value[80];
    const char *accepted;
};

static struct pqshim_config config;
static struct problem problems[16];
static int n_problems;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static void collect(enum log_level level, const char *variable,
                    const char *value, const char *accepted)
{
    if (n_problems == (int)(sizeof problems / sizeof problems[0]))
        return;
    struct problem *p = &problems[n_problems++];
    p->level = level;
    snprintf(p->variable, sizeof p->variable, "%s", variable);
    /* Values are shown truncated: a huge value must not flood the log. */
    snprintf(p->value, sizeof p->value, "%.64s%s", value ? value : "",
             value && strlen(value) > 64 ? "..." : "");
    p->accepted = accepted;
}

static void load_config(void)
{
    config_parse(environ, &config, collect);
}

const struct pqshim_config *config_get(void)
{
    pthread_once(&config_once, load_config);
    return &config;
}

void config_for_each_problem(void (*report)(enum log_level, const char *variable,
                                            const char *value,
                                            const char *accepted))
{
    config_get();
    for (int i = 0; i < n_problems; i++)
        report(problems[i].level, problems[i].variable, problems[i].value,
               problems[i].accepted);
}

void config_value_string(const struct pqshim_config *c, const char *variable,
                         char *buf, size_t size)
{
    static const char *const policies[] = {"null", "capped"};
    static const char *const dests[] = {"stderr", "syslog", "none", "file"};
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    static const char *const formats[] = {"text", "json"};
    static const char *const resets[] = {"discard", "rollback", "none"};
    static const char *const pings[] = {"off", "on", "always"};
    if (!strcmp(variable, "PQSHIM_POLICY"))
        snprintf(buf, size, "%s", policies[c->policy]);
    else if (!strcmp(variable, "PQSHIM_LOG"))
        snprintf(buf, size, "%s", c->log_dest == LOG_TO_FILE ? c->log_path : dests[c->log_dest]);
    else if (!strcmp(variable, "PQSHIM_LOG_LEVEL"))
        snprintf(buf, size, "%s", levels[c->log_level]);
    else if (!strcmp(variable, "PQSHIM_LOG_FORMAT"))
        snprintf(buf, size, "%s", formats[c->log_format]);
    else if (!strcmp(variable, "PQSHIM_POOL_SIZE"))
        snprintf(buf, size, "%d", c->pool_size);
    else if (!strcmp(variable, "PQSHIM_MAX_OVERFLOW"))
        snprintf(buf, size, "%d", c->max_overflow);
    else if (!strcmp(variable, "PQSHIM_POOL_TIMEOUT"))
        snprintf(buf, size, "%g", c->pool_timeout);
    else if (!strcmp(variable, "PQSHIM_RESET"))
        snprintf(buf, size, "%s", resets[c->reset]);
    else if (!strcmp(variable, "PQSHIM_PRE_PING"))
        snprintf(buf, size, "%s", pings[c->pre_ping]);
    else if (!strcmp(variable, "PQSHIM_POOL_RECYCLE"))
        snprintf(buf, size, "%g", c->pool_recycle);
    else if (!strcmp(variable, "PQSHIM_IDLE_TIMEOUT"))
        snprintf(buf, size, "%g", c->idle_timeout);
    else if (!strcmp(variable, "PQSHIM_RETRY_FULL"))
        snprintf(buf, size, "%s", c->retry_full ? "on" : "off");
    else if (!strcmp(variable, "PQSHIM_HOST_LIMIT"))
        snprintf(buf, size, "%d", c->host_limit);
    else if (!strcmp(variable, "PQSHIM_HOST_LIMIT_FILE"))
        snprintf(buf, size, "%s", c->host_limit_file[0] ? c->host_limit_file : "default");
    else if (!strcmp(variable, "PQSHIM_HOST_LIMIT_SHARED"))
        snprintf(buf, size, "%s", c->host_limit_shared ? "group" : "off");
    else if (!strcmp(variable, "PQSHIM_CONTROL"))
        snprintf(buf, size, "%s", c->control_path[0] ? c->control_path : "unset");
    else
        snprintf(buf, size, "?");
}
