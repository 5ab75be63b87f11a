/*
 * prom_merge.c — many processes' Prometheus expositions folded into one:
 * each family's HELP and TYPE once, then every process's own samples.
 */
#define _GNU_SOURCE
#include "prom_merge.h"

#include "util.h"
#include "../../shim/escape.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Index of the family called name (added when new). */
static int family_of(struct families *f, const char *name, size_t len)
{
    for (int i = 0; i < f->n; i++)
        if (strlen(f->v[i].name) == len && memcmp(f->v[i].name, name, len) == 0)
            return i;
    f->v = xrealloc(f->v, sizeof *f->v * (size_t)(f->n + 1));
    struct family *fam = &f->v[f->n];
    memset(fam, 0, sizeof *fam);
    fam->name = xmalloc(len + 1);
    memcpy(fam->name, name, len);
    fam->name[len] = '\0';
    return f->n++;
}

static size_t metric_name_len(const char *s)
{
    size_t n = 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == ':')
        n++;
    return n;
}

/* Printable ASCII or valid UTF-8 with no control character: what a line
 * of the shim's exposition always is. */
static bool clean_line(const char *s)
{
    for (size_t n = strlen(s); n > 0;) {
        size_t k = utf8_sequence((const unsigned char *)s, n);
        if (k == 0 || (k == 1 && ((unsigned char)*s < 0x20 || *s == 0x7f)))
            return false;
        s += k;
        n -= k;
    }
    return true;
}

/* The labels of a sample, at s just past its name: well formed, a pid
 * label equal to pid (and only one), then " VALUE" made of number
 * characters. Only such samples are passed through. */
static bool sample_of(const char *s, int pid)
{
    char want[16];
    snprintf(want, sizeof want, "%d", pid);
    bool pid_ok = false, seen_pid = false;
    if (*s != '{')
        return false;
    s++;
    while (*s != '}') {
        size_t n = 0;
        while (isalnum((unsigned char)s[n]) || s[n] == '_')
            n++;
        if (n == 0 || s[n] != '=' || s[n + 1] != '"')
            return false;
        bool is_pid = n == 3 && memcmp(s, "pid", 3) == 0;
        s += n + 2;
        char value[16];
        size_t len = 0;
        bool fits = true;
        for (; *s && *s != '"'; s++) {
            if (*s == '\\' && (s[1] == '\\' || s[1] == '"' || s[1] == 'n'))
                s++;
            else if (*s == '\\')
                return false;
            if (len + 1 < sizeof value)
                value[len++] = *s;
            else
                fits = false;
        }
        if (*s++ != '"')
            return false;
        value[len] = '\0';
        if (is_pid) {
            if (seen_pid)
                return false;
            seen_pid = true;
            pid_ok = fits && strcmp(value, want) == 0;
        }
        if (*s == ',')
            s++;
        else if (*s != '}')
            return false;
    }
    s++;
    if (*s != ' ' || !s[1])
        return false;
    for (s++; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("+-. ", *s))
            return false;
    return pid_ok;
}

/* Fold the exposition of process pid into the families, keeping their
 * first-seen order. Only pqshim_ families pass, and only samples
 * labelled with that very pid, each series once; a family whose TYPE
 * differs from the one already seen is left out for this process. So a
 * process (or a socket planted by someone) can add nothing but its own
 * pqshim samples: not another process's, nor other metrics. */
void merge_exposition(struct families *f, char *text, int pid)
{
    int *conflict = NULL, nconflict = 0;
    char **series = NULL;
    int nseries = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (!clean_line(line))
            continue;
        bool help = strncmp(line, "# HELP ", 7) == 0;
        if (help || strncmp(line, "# TYPE ", 7) == 0) {
            size_t n = metric_name_len(line + 7);
            if (!n || strncmp(line + 7, "pqshim_", 7) != 0 || line[7 + n] != ' ')
                continue;
            int k = family_of(f, line + 7, n);
            if (help) {
                if (!f->v[k].help)
                    f->v[k].help = xstrdup(line);
                continue;
            }
            /* The shim's counters end in _total, its gauges do not: the
             * TYPE follows from the name, whoever says otherwise. */
            bool counter = n > 6 && memcmp(line + 7 + n - 6, "_total", 6) == 0;
            if (strcmp(line + 7 + n + 1, counter ? "counter" : "gauge") != 0) {
                conflict = xrealloc(conflict, sizeof *conflict * (size_t)(nconflict + 1));
                conflict[nconflict++] = k;
            } else if (!f->v[k].type) {
                f->v[k].type = xstrdup(line);
            }
            continue;
        }
        size_t n = metric_name_len(line);
        if (line[0] == '#' || !n || strncmp(line, "pqshim_", 7) != 0 || !sample_of(line + n, pid))
            continue;
        int k = family_of(f, line, n);
        bool skip = false;
        for (int c = 0; c < nconflict; c++)
            skip |= conflict[c] == k;
        size_t key = (size_t)(strrchr(line, '}') - line);
        for (int i = 0; i < nseries && !skip; i++)
            skip = strlen(series[i]) == key && memcmp(series[i], line, key) == 0;
        if (skip)
            continue;
        series = xrealloc(series, sizeof *series * (size_t)(nseries + 1));
        series[nseries] = xmalloc(key + 1);
        memcpy(series[nseries], line, key);
        series[nseries++][key] = '\0';
        struct family *fam = &f->v[k];
        size_t add = strlen(line);
        fam->samples = xrealloc(fam->samples, fam->len + add + 2);
        memcpy(fam->samples + fam->len, line, add);
        fam->len += add;
        fam->samples[fam->len++] = '\n';
        fam->samples[fam->len] = '\0';
    }
    for (int i = 0; i < nseries; i++)
        free(series[i]);
    free(series);
    free(conflict);
}

void families_print(const struct families *f)
{
    for (int i = 0; i < f->n; i++) {
        if (f->v[i].help)
            printf("%s\n", f->v[i].help);
        if (f->v[i].type)
            printf("%s\n", f->v[i].type);
        if (f->v[i].samples)
            fputs(f->v[i].samples, stdout);
    }
}

void families_free(struct families *f)
{
    for (int i = 0; i < f->n; i++) {
        free(f->v[i].name);
        free(f->v[i].help);
        free(f->v[i].type);
        free(f->v[i].samples);
    }
    free(f->v);
    f->v = NULL;
    f->n = 0;
}
