/*
 * target.c — the canonical identity of a connection request.
 *
 * Two connects may share pooled connections only when everything that
 * shapes the session is equal: all connection keywords after environment
 * and built-in defaults are applied, in libpq's own keyword order, so two
 * spellings (URI vs key=value, any order) map to one key. The password is
 * kept only as a hash and the key is never shown to anyone.
 */
#define _GNU_SOURCE
#include "target.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_OPTIONS 96

struct option_set {
    int n;
    const char *keyword[MAX_OPTIONS];
    const char *value[MAX_OPTIONS];
};

static int find_option(const struct option_set *set, const char *keyword)
{
    for (int i = 0; i < set->n; i++)
        if (strcmp(set->keyword[i], keyword) == 0)
            return i;
    return -1;
}

/* Like libpq: NULL or empty values do not override. */
static bool set_option(struct option_set *set, const char *keyword,
                       const char *value)
{
    int i = find_option(set, keyword);
    if (i < 0)
        return false; /* unknown keyword: libpq will report it */
    if (value && *value)
        set->value[i] = value;
    return true;
}

static bool looks_like_conninfo(const char *s)
{
    return strchr(s, '=') || strncmp(s, "postgresql://", 13) == 0 ||
           strncmp(s, "postgres://", 11) == 0;
}

uint64_t target_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

/* A second, independent 64-bit hash (djb2 variant with a 64-bit
 * multiplier), so that a long key is told apart by 128 bits. */
uint64_t target_hash_alt(const char *s)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0xff51afd7ed558ccdULL + (h >> 31);
    return h;
}

static bool is_true(const char *v)
{
    return v && *v && strcmp(v, "0") != 0 && strcasecmp(v, "false") != 0 &&
           strcasecmp(v, "off") != 0 && strcasecmp(v, "no") != 0;
}

/* libpq reads ~/.pgpass when passfile is unset, and clients that copy a
 * live connection's options (psql's \connect) pass that path back
 * explicitly: both spellings must make one key. */
static bool is_default_passfile(const char *v)
{
    const char *home = getenv("HOME");
    struct passwd pw, *found = NULL;
    char buf[4096], path[4096];
    if (!*v)
        return false;
    if (!home || !*home) {
        if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &found) != 0 || !found)
            return false;
        home = found->pw_dir;
    }
    int n = snprintf(path, sizeof path, "%s/.pgpass", home);
    return n > 0 && (size_t)n < sizeof path && strcmp(v, path) == 0;
}

void target_name_of(char *buf, size_t size, const char *user, const char *host,
                    const char *port, const char *db)
{
    snprintf(buf, size, "%s@%s:%s/%s", user && *user ? user : "?",
             host && *host ? host : "default", port && *port ? port : "5432",
             db && *db ? db : (user && *user ? user : "?"));
}

bool target_from_params(struct target *t, const PQconninfoOption *defaults,
                        const char *const *keywords, const char *const *values,
                        int expand_dbname, const struct real_libpq *pq)
{
    struct option_set set = {0};
    for (const PQconninfoOption *o = defaults; o && o->keyword; o++) {
        if (set.n == MAX_OPTIONS)
            return false;
        set.keyword[set.n] = o->keyword;
        set.value[set.n++] = o->val;
    }

    PQconninfoOption *expanded = NULL;
    bool ok = true;
    /* libpq expands only the first dbname given a value, and only if it
     * is a connection string; any later dbname is a plain name. */
    bool first_dbname = true;
    for (int i = 0; ok && keywords && keywords[i]; i++) {
        const char *v = values ? values[i] : NULL;
        bool expand = expand_dbname && first_dbname && v &&
                      strcmp(keywords[i], "dbname") == 0;
        if (expand)
            first_dbname = false;
        if (expand && looks_like_conninfo(v)) {
            char *err = NULL;
            expanded = pq->PQconninfoParse(v, &err);
            if (err)
                pq->PQfreemem(err);
            if (!expanded)
                return false;
            for (PQconninfoOption *o = expanded; ok && o->keyword; o++)
                ok = set_option(&set, o->keyword, o->val);
            continue;
        }
        ok = set_option(&set, keywords[i], v);
    }

    /* Every option counts, however long: a key too long for the table is
     * its own beginning (user, password hash, dbname and host come first
     * in libpq's order) followed by two hashes of all of it. */
    size_t len = 0, cap = 4096;
    char *full = ok ? malloc(cap) : NULL;
    if (!full)
        ok = false;
    else
        full[0] = '\0';
    /* Connections of another libpq copy are that copy's objects. */
    if (full && pq->copy > 0)
        len = (size_t)snprintf(full, cap, "libpq#%d\n", pq->copy);
    for (int i = 0; ok && i < set.n; i++) {
        const char *v = set.value[i] ? set.value[i] : "";
        if (strcmp(set.keyword[i], "passfile") == 0 && is_default_passfile(v))
            v = "";
        size_t need = strlen(set.keyword[i]) + strlen(v) + 32;
        if (len + need > cap) {
            char *bigger = realloc(full, cap = (len + need) * 2);
            if (!bigger) {
                ok = false;
                break;
            }
            full = bigger;
        }
        int n;
        if (strcmp(set.keyword[i], "password") == 0 && *v)
            n = snprintf(full + len, cap - len, "password#%016llx\n",
                         (unsigned long long)target_hash(v));
        else
            n = snprintf(full + len, cap - len, "%s=%s\n", set.keyword[i], v);
        if (n < 0)
            ok = false;
        else
            len += (size_t)n;
    }
    if (ok && len < sizeof t->key) {
        memcpy(t->key, full, len + 1);
    } else if (ok) {
        char tail[64];
        int tl = snprintf(tail, sizeof tail, "#%zu#%016llx%016llx", len,
                          (unsigned long long)target_hash(full),
                          (unsigned long long)target_hash_alt(full));
        size_t head = sizeof t->key - 1 - (size_t)tl;
        memcpy(t->key, full, head);
        memcpy(t->key + head, tail, (size_t)tl + 1);
    }
    free(full);
    if (ok) {
        t->key_len = (unsigned)strlen(t->key);
        HASH_VALUE(t->key, t->key_len, t->key_hashv);
    }
    /* Too long to keep: health checks then use idle connections only. */
    size_t plen = 0;
    for (int i = 0; ok && i < set.n; i++) {
        const char *v = set.value[i];
        if (!v || !*v)
            continue;
        size_t kl = strlen(set.keyword[i]) + 1, vl = strlen(v) + 1;
        if (plen + kl + vl + 1 > sizeof t->params) {
            plen = 0;
            break;
        }
        memcpy(t->params + plen, set.keyword[i], kl);
        memcpy(t->params + plen + kl, v, vl);
        plen += kl + vl;
    }
    t->params[plen] = '\0';
    if (ok) {
        int u = find_option(&set, "user"), h = find_option(&set, "host"),
            a = find_option(&set, "hostaddr"), p = find_option(&set, "port"),
            d = find_option(&set, "dbname"), r = find_option(&set, "replication");
        const char *host = h >= 0 && set.value[h] ? set.value[h] : NULL;
        if (!host && a >= 0)
            host = set.value[a];
        target_name_of(t->name, sizeof t->name, u >= 0 ? set.value[u] : NULL,
                       host, p >= 0 ? set.value[p] : NULL,
                       d >= 0 ? set.value[d] : NULL);
        t->poolable = !(r >= 0 && is_true(set.value[r]));
    }
    /* The option values point into `expanded`: free it only when done. */
    if (expanded)
        pq->PQconninfoFree(expanded);
    return ok;
}
