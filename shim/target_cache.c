/*
 * target_cache.c — a request seen before maps to its target at once.
 *
 * Building a target asks libpq for its defaults (which read some thirty
 * environment variables), parses the request and formats the canonical
 * key: most of what a reused checkout would cost. The cache compares the
 * request's own bytes instead, together with everything else the target
 * depends on — the libpq copy, the effective user (libpq's default user,
 * unless a user and HOME are given) and the PG* and HOME environment
 * variables, read straight from environ —
 * so a setenv() between two connects still reaches a new target.
 * Not seen: a change to the passwd entry of the effective user. Requests
 * naming a service (argument or PGSERVICE) are never cached: the service
 * file they read may change.
 */
#define _GNU_SOURCE
#include "target_cache.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

struct cache_entry {
    uint64_t hash;
    size_t len;
    struct target target;
    char bytes[]; /* len bytes of the request */
};

/* A leaf lock: held only to compare and copy, never across anything. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry *slots[TARGET_CACHE_SLOTS];

/* Taken last before a fork (init.c), as a leaf lock must be. The forking
 * thread holds it in the child too, so the child's copy is released like
 * the parent's: the entries stay valid there. */
void target_cache_lock_for_fork(void) { pthread_mutex_lock(&cache_lock); }
void target_cache_unlock_after_fork(void) { pthread_mutex_unlock(&cache_lock); }

static bool append(struct target_request *r, const void *p, size_t n)
{
    if (n > sizeof r->bytes - r->len)
        return false;
    memcpy(r->bytes + r->len, p, n);
    r->len += n;
    return true;
}

/* A string with its terminator, or a NULL told apart from "". */
static bool append_str(struct target_request *r, const char *s)
{
    static const char null_mark = 1; /* no C string starts with byte 1 + NUL */
    if (!s)
        return append(r, &null_mark, 1) && append(r, "", 1);
    return append(r, s, strlen(s) + 1);
}

/* Eight bytes at a time: the whole request is hashed on every connect. */
static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

static bool names_service(const char *p, size_t n)
{
    return memmem(p, n, "service", 7) != NULL;
}

bool target_request_of(struct target_request *r,
                       const struct connect_request *req, int copy)
{
    r->len = 0;
    int head[3] = {(int)req->kind, copy,
                   req->kind == REQ_PARAMS ? req->expand_dbname : 0};
    if (!append(r, head, sizeof head))
        return false;
    bool ok = true, user_given = false, home_given = false;
    switch (req->kind) {
    case REQ_CONNINFO:
        ok = append_str(r, req->conninfo);
        break;
    case REQ_PARAMS:
        for (int i = 0; ok && req->keywords && req->keywords[i]; i++) {
            const char *v = req->values ? req->values[i] : NULL;
            if (v && *v && strcmp(req->keywords[i], "user") == 0)
                user_given = true;
            ok = append_str(r, req->keywords[i]) && append_str(r, v);
        }
        break;
    case REQ_SETDB:
        user_given = req->setdb[5] && *req->setdb[5];
        for (int i = 0; ok && i < 7; i++)
            ok = append_str(r, req->setdb[i]);
        break;
    }
    if (!ok || names_service(r->bytes, r->len))
        return false;
    /* The environment after the arguments, so that a variable's bytes can
     * never pass for an argument's. */
    ok = append(r, "\2", 1);
    for (char **e = environ; ok && e && *e; e++) {
        const char *v = *e;
        if ((v[0] == 'P' && v[1] == 'G') ||
            (v[0] == 'H' && strncmp(v, "HOME=", 5) == 0)) {
            if (strncmp(v, "PGSERVICE=", 10) == 0)
                return false;
            if (strncmp(v, "PGUSER=", 7) == 0 && v[7])
                user_given = true;
            else if (v[0] == 'H' && v[5])
                home_given = true;
            ok = append_str(r, v);
        }
    }
    /* libpq's default user, and the home directory without HOME, are the
     * effective user's: asked only when one of them can count. */
    if (ok && !(user_given && home_given)) {
        uid_t euid = geteuid();
        ok = append(r, "\3", 1) && append(r, &euid, sizeof euid);
    }
    if (!ok)
        return false;
    r->hash = hash_bytes(r->bytes, r->len);
    return true;
}

static struct cache_entry **slot_of(uint64_t hash)
{
    return &slots[hash % TARGET_CACHE_SLOTS];
}

bool target_cache_get(const struct target_request *r, struct target *t)
{
    bool found = false;
    pthread_mutex_lock(&cache_lock);
    const struct cache_entry *e = *slot_of(r->hash);
    if (e && e->hash == r->hash && e->len == r->len &&
        memcmp(e->bytes, r->bytes, r->len) == 0) {
        target_copy(t, &e->target);
        found = true;
    }
    pthread_mutex_unlock(&cache_lock);
    return found;
}

void target_cache_put(const struct target_request *r, const struct target *t)
{
    struct cache_entry *e = malloc(sizeof *e + r->len);
    if (!e)
        return;
    e->hash = r->hash;
    e->len = r->len;
    memcpy(&e->target, t, sizeof *t);
    memcpy(e->bytes, r->bytes, r->len);
    pthread_mutex_lock(&cache_lock);
    struct cache_entry **s = slot_of(r->hash), *old = *s;
    *s = e;
    pthread_mutex_unlock(&cache_lock);
    free(old);
}

int target_cache_count(void)
{
    int n = 0;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < TARGET_CACHE_SLOTS; i++)
        n += slots[i] != NULL;
    pthread_mutex_unlock(&cache_lock);
    return n;
}
