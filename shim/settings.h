/*
 * settings.h — what a PQSHIM_* setting is, and how its value is checked.
 *
 * The settings themselves are rows of settings.def, read by the shim
 * (config.c: the struct fields, parsing, defaults, the values `status`
 * shows) and by the launcher (tools/pqshim.c: one option each, checked
 * before the command starts), which is a separate program: this header
 * needs neither libpq nor the rest of the shim.
 *
 * Each user defines SETTING(KIND, field, ctype, ...) and includes
 * settings.def: KIND is WORDS, INT, SECONDS, PATH or DEST; field and ctype
 * are the member of struct pqshim_config; the rest are designated
 * initializers of struct setting.
 */
#ifndef PQSHIM_SETTINGS_H
#define PQSHIM_SETTINGS_H

#include "strict_number.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Room for a path setting, with its NUL. */
#define SETTING_PATH_MAX 4096

enum setting_kind {
    SETTING_WORDS,   /* one of .words, any case; the value is its index */
    SETTING_INT,     /* a whole number in [.min, .max] */
    SETTING_SECONDS, /* seconds in [0, .max], decimals allowed */
    SETTING_PATH,    /* an absolute path; unset (empty) by default */
    SETTING_DEST,    /* one of .words, or an absolute path: the value is
                        then one past the last word (field_path holds it) */
};

struct setting {
    const char *name;         /* the environment variable */
    enum setting_kind kind;
    const char *const *words; /* WORDS, DEST: NULL-terminated */
    bool yes_no;              /* WORDS: 0/1, false/true, no/yes also stand
                                 for words 0 and 1 */
    double min, max;          /* INT: both; SECONDS: max */
    const char *def;          /* the default, as a value ("" for unset) */
    const char *unset;        /* PATH: what is shown while unset */
    const char *accepted;     /* for people: error messages, docs */
    const char *option;       /* the launcher's --option ... */
    const char *meta;         /* ... and its value's placeholder */
    const char *help;         /* what it does (lines of --help) */
};

#define SETTING_WORDS_(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The members of struct pqshim_config a row declares. */
#define SETTING_FIELD_WORDS(ctype, field) ctype field;
#define SETTING_FIELD_INT(ctype, field) ctype field;
#define SETTING_FIELD_SECONDS(ctype, field) ctype field;
#define SETTING_FIELD_PATH(ctype, field) ctype field[SETTING_PATH_MAX];
#define SETTING_FIELD_DEST(ctype, field) \
    ctype field##_dest;                  \
    char field##_path[SETTING_PATH_MAX];

/* How many words s has. */
static inline int setting_word_count(const struct setting *s)
{
    int n = 0;
    while (s->words && s->words[n])
        n++;
    return n;
}

/* Whether value is one s accepts, exactly as the shim reads it. True with
 * *number set to what it means: the word's index (DEST: one past the last
 * word for a path), the whole number, the seconds, 0 for a PATH. *number
 * is untouched when false. */
static inline bool setting_parse(const struct setting *s, const char *value,
                                 double *number)
{
    static const char *const yes_no[] = {"0", "1", "false", "true", "no", "yes",
                                         NULL};
    long whole;
    switch (s->kind) {
    case SETTING_WORDS:
    case SETTING_DEST:
        for (int i = 0; s->words[i]; i++) {
            if (strcasecmp(value, s->words[i]) == 0) {
                *number = i;
                return true;
            }
        }
        for (int i = 0; s->yes_no && yes_no[i]; i++) {
            if (strcasecmp(value, yes_no[i]) == 0) {
                *number = i % 2;
                return true;
            }
        }
        if (s->kind == SETTING_WORDS)
            return false;
        if (value[0] != '/' || strlen(value) >= SETTING_PATH_MAX)
            return false;
        *number = setting_word_count(s);
        return true;
    case SETTING_PATH:
        if (value[0] != '/' || strlen(value) >= SETTING_PATH_MAX)
            return false;
        *number = 0;
        return true;
    case SETTING_INT:
        if (!strict_long(value, (long)s->min, (long)s->max, &whole))
            return false;
        *number = (double)whole;
        return true;
    case SETTING_SECONDS:
        return strict_seconds(value, s->max, number);
    }
    return false;
}

#endif
