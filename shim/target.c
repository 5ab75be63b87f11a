/*
 * target.c — the canonical identity of a connection request.
 *
 * Two connects may share pooled connections only when everything that
 * shapes the session is equal. The key is made from libpq's own reading of
 * the request (target_resolve.c): every connection option after the
 * service file, the environment and the defaults are applied, in libpq's
 * keyword order, so two spellings (URI vs key=value, any order) map to one
 * key. Secrets are kept only as hashes and the key is never shown.
 */
#define _GNU_SOURCE
#include "target.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

static bool is_secret(const char *keyword)
{
    return strcmp(keyword, "password") == 0 ||
           strcmp(keyword, "sslpassword") == 0;
}

void target_name_of(char *buf, size_t size, const char *user, const char *host,
                    const char *port, const char *db)
{
    snprintf(buf, size, "%s@%s:%s/%s", user && *user ? user : "?",
             host && *host ? host : "default", port && *port ? port : "5432",
             db && *db ? db : (user && *user ? user : "?"));
}

/* key = what it holds, or, when too long, its beginning followed by its
 * length and two hashes of all of it. */
static void set_key(struct target *t, const char *full, size_t len)
{
    if (len < sizeof t->key) {
        memcpy(t->key, full, len + 1);
    } else {
        char tail[64];
        int tl = snprintf(tail, sizeof tail, "#%zu#%016llx%016llx", len,
                          (unsigned long long)target_hash(full),
                          (unsigned long long)target_hash_alt(full));
        size_t head = sizeof t->key - 1 - (size_t)tl;
        memcpy(t->key, full, head);
        memcpy(t->key + head, tail, (size_t)tl + 1);
    }
    t->key_len = (unsigned)strlen(t->key);
    HASH_VALUE(t->key, t->key_len, t->key_hashv);
}

bool target_key_append(struct target *t, const char *suffix, uint64_t mix)
{
    size_t kl = t->key_len, sl = strlen(suffix);
    if (kl + sl < sizeof t->key) {
        /* The key's hash follows from the hash already known and the
         * suffix's own (the suffix has one form and is always last, so
         * equal keys get equal hashes) without hashing the key again. */
        memcpy(t->key + kl, suffix, sl + 1);
        t->key_len = (unsigned)(kl + sl);
        t->key_hashv = (unsigned)((t->key_hashv * 0x9e3779b1u) ^ mix ^ (mix >> 32));
        return true;
    }
    char *full = malloc(kl + sl + 1);
    if (!full)
        return false;
    memcpy(full, t->key, kl);
    memcpy(full + kl, suffix, sl + 1);
    set_key(t, full, kl + sl);
    free(full);
    return true;
}

void target_copy(struct target *dst, const struct target *src)
{
    dst->poolable = src->poolable;
    dst->unpooled = src->unpooled;
    dst->restatable = src->restatable;
    dst->over_tcp = src->over_tcp;
    dst->key_len = src->key_len;
    dst->key_hashv = src->key_hashv;
    dst->params_len = src->params_len;
    dst->auth_files_len = src->auth_files_len;
    memcpy(dst->key, src->key, src->key_len + 1);
    memcpy(dst->name, src->name, strlen(src->name) + 1);
    memcpy(dst->params, src->params, src->params_len ? src->params_len : 1);
    memcpy(dst->auth_files, src->auth_files,
           src->auth_files_len ? src->auth_files_len : 1);
    dst->auth_files_hash = src->auth_files_hash;
}

const char *target_param(const char *params, const char *keyword)
{
    for (const char *p = params; *p;) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, keyword) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return "";
}

const char *target_option(const PQconninfoOption *opts, const char *keyword)
{
    for (const PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val;
    return NULL;
}

bool target_from_options(struct target *t, const PQconninfoOption *opts,
                         int copy)
{
    size_t len = 0, cap = 4096;
    char *full = malloc(cap);
    if (!full)
        return false;
    full[0] = '\0';
    /* Connections of another libpq copy are that copy's objects. */
    if (copy > 0)
        len = (size_t)snprintf(full, cap, "libpq#%d\n", copy);
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        /* Once resolved, libpq treats an unset option and an empty one
         * alike (both mean "none": the environment and the defaults have
         * already been applied), so they make one key: psycopg 3, for
         * one, restates an unset hostaddr as hostaddr=''. */
        const char *v = o->val ? o->val : "";
        size_t need = strlen(o->keyword) + strlen(v) + 48;
        if (len + need > cap) {
            char *bigger = realloc(full, cap = (len + need) * 2);
            if (!bigger) {
                free(full);
                return false;
            }
            full = bigger;
        }
        int n;
        if (is_secret(o->keyword) && *v)
            n = snprintf(full + len, cap - len, "%s#%016llx%016llx\n", o->keyword,
                         (unsigned long long)target_hash(v),
                         (unsigned long long)target_hash_alt(v));
        else
            n = snprintf(full + len, cap - len, "%s=%s\n", o->keyword, v);
        if (n < 0) {
            free(full);
            return false;
        }
        len += (size_t)n;
    }
    set_key(t, full, len);
    free(full);

    /* How to restate it (health checks, gates); too long to keep: those
     * then use idle connections only, and gates are not used. */
    size_t plen = 0;
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = o->val;
        if (!v || !*v)
            continue;
        size_t kl = strlen(o->keyword) + 1, vl = strlen(v) + 1;
        if (plen + kl + vl + 1 > sizeof t->params) {
            plen = 0;
            break;
        }
        memcpy(t->params + plen, o->keyword, kl);
        memcpy(t->params + plen + kl, v, vl);
        plen += kl + vl;
    }
    t->params[plen] = '\0';
    t->params_len = (unsigned)plen + 1;

    const char *host = target_option(opts, "host");
    if (!host || !*host)
        host = target_option(opts, "hostaddr");
    target_name_of(t->name, sizeof t->name, target_option(opts, "user"), host,
                   target_option(opts, "port"), target_option(opts, "dbname"));
    const char *tsa = target_option(opts, "target_session_attrs");
    t->unpooled = NULL;
    if (is_true(target_option(opts, "replication")))
        t->unpooled = "replication";
    else if (tsa && *tsa && strcmp(tsa, "any") != 0)
        /* libpq checks the server's state at connect time only. */
        t->unpooled = "target_session_attrs";
    t->poolable = t->unpooled == NULL;
    return true;
}
