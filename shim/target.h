/*
 * target.h — what makes two connects interchangeable (target.c).
 */
#ifndef PQSHIM_TARGET_H
#define PQSHIM_TARGET_H

#include "real.h"

#define TARGET_KEY_MAX 2048
#define TARGET_NAME_MAX 512

struct target {
    char key[TARGET_KEY_MAX];   /* canonical; password only as a hash */
    char name[TARGET_NAME_MAX]; /* user@host:port/dbname, for people */
    bool poolable;              /* false for replication connections */
    /* "kw\0value\0...\0": how to open one more (health checks). Holds
     * the password: kept in memory, never shown. */
    char params[TARGET_KEY_MAX];
    /* strlen(key) and uthash's hash of key, computed once with it: a
     * remembered target finds its pool without hashing the key again. */
    unsigned key_len, key_hashv;
};

/* Build a target from keyword/value arrays as PQconnectdbParams takes them.
 * defaults: PQconndefaults() output (environment and built-in defaults).
 * Returns false (and leaves *t undefined) when the arguments do not parse;
 * the caller then passes the call through so libpq reports the error. */
bool target_from_params(struct target *t, const PQconninfoOption *defaults,
                        const char *const *keywords, const char *const *values,
                        int expand_dbname, const struct real_libpq *pq);

/* A 64-bit FNV-1a hash (password in keys, host-wide slot regions). */
uint64_t target_hash(const char *s);
uint64_t target_hash_alt(const char *s);

/* The display name of a live connection: user@host:port/dbname. */
void target_name_of(char *buf, size_t size, const char *user,
                    const char *host, const char *port, const char *db);

#endif
