/*
 * config.c — PQSHIM_* environment variables, read once on first use.
 * What they are (names, values, defaults) is the table in settings.def.
 *
 * A bad value never stops the host: it is reported once (variable, value,
 * what is accepted) and the default is used instead.
 */
#define _GNU_SOURCE
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

extern char **environ;

/* Rows of the table, by field name. */
enum {
#define SETTING(KIND, field, ...) ROW_##field,
#include "settings.def"
#undef SETTING
    N_SETTINGS
};

static const struct setting settings[] = {
#define SETTING(KIND, field, ctype, ...) \
    [ROW_##field] = {.kind = SETTING_##KIND, __VA_ARGS__},
#include "settings.def"
#undef SETTING
    [N_SETTINGS] = {.name = NULL},
};

const struct setting *config_settings(void)
{
    return settings;
}

/* Moving a parsed value into its field and back: the only code that
 * knows the fields' types, generated from the same rows. */
#define STORE_WORDS(f, ctype) c->f = (ctype)number
#define STORE_INT STORE_WORDS
#define STORE_SECONDS STORE_WORDS
#define STORE_PATH(f, ctype) snprintf(c->f, sizeof c->f, "%s", text)
#define STORE_DEST(f, ctype)                                          \
    do {                                                              \
        c->f##_dest = (ctype)number;                                  \
        if (text[0] == '/')                                           \
            snprintf(c->f##_path, sizeof c->f##_path, "%s", text);    \
    } while (0)

static void store(struct pqshim_config *c, int row, double number,
                  const char *text)
{
    switch (row) {
#define SETTING(KIND, field, ctype, ...) \
    case ROW_##field: STORE_##KIND(field, ctype); break;
#include "settings.def"
#undef SETTING
    }
}

#define LOAD_WORDS(f) *number = c->f
#define LOAD_INT LOAD_WORDS
#define LOAD_SECONDS LOAD_WORDS
#define LOAD_PATH(f) *text = c->f
#define LOAD_DEST(f) (*number = c->f##_dest, *text = c->f##_path)

static void load(const struct pqshim_config *c, int row, double *number,
                 const char **text)
{
    *number = 0;
    *text = "";
    switch (row) {
#define SETTING(KIND, field, ...) \
    case ROW_##field: LOAD_##KIND(field); break;
#include "settings.def"
#undef SETTING
    }
}

/* Every setting at its default (the defaults are values of the table,
 * parsed like any other; "" leaves a path unset). */
static void set_defaults(struct pqshim_config *c)
{
    memset(c, 0, sizeof *c);
    for (int row = 0; row < N_SETTINGS; row++) {
        double number;
        if (settings[row].def[0] && setting_parse(&settings[row], settings[row].def, &number))
            store(c, row, number, settings[row].def);
    }
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
        int row = 0;
        while (row < N_SETTINGS && (strlen(settings[row].name) != len ||
                                    strncmp(settings[row].name, *e, len) != 0))
            row++;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)len, *e);
        if (row == N_SETTINGS) {
            report(LOG_LVL_WARN, name, NULL, NULL);
            continue;
        }
        /* A bad value leaves the default. */
        double number;
        if (setting_parse(&settings[row], eq + 1, &number))
            store(cfg, row, number, eq + 1);
        else
            report(LOG_LVL_ERROR, name, eq + 1, settings[row].accepted);
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
    int row = 0;
    while (row < N_SETTINGS && strcmp(settings[row].name, variable) != 0)
        row++;
    if (row == N_SETTINGS) {
        snprintf(buf, size, "?");
        return;
    }
    const struct setting *s = &settings[row];
    double number;
    const char *text;
    load(c, row, &number, &text);
    int words = setting_word_count(s);
    switch (s->kind) {
    case SETTING_DEST:
        if ((int)number == words) {
            snprintf(buf, size, "%s", text);
            break;
        }
        /* fall through */
    case SETTING_WORDS:
        snprintf(buf, size, "%s", number >= 0 && number < words ? s->words[(int)number] : "?");
        break;
    case SETTING_INT:
        snprintf(buf, size, "%d", (int)number);
        break;
    case SETTING_SECONDS:
        snprintf(buf, size, "%g", number);
        break;
    case SETTING_PATH:
        snprintf(buf, size, "%s", text[0] ? text : s->unset);
        break;
    }
}
