/*
 * target.h — what makes two connects interchangeable (target.c).
 */
#ifndef PQSHIM_TARGET_H
#define PQSHIM_TARGET_H

#include "real.h"

#define TARGET_KEY_MAX 2048
#define TARGET_NAME_MAX 512
#define TARGET_FILES_MAX 2048

struct target {
    char key[TARGET_KEY_MAX];   /* canonical; secrets only as hashes */
    char name[TARGET_NAME_MAX]; /* user@host:port/dbname, for people */
    bool poolable;              /* false: each connect is its own */
    const char *unpooled;       /* why not poolable (a static word) */
    /* Every option can be restated as a keyword array (a gate's connect):
     * false when an option set empty would be taken from the environment
     * once restated (arrays cannot say "empty"). */
    bool restatable;
    /* "kw\0value\0...\0": how to open one more (health checks, gates).
     * Holds the password: kept in memory, never shown. */
    char params[TARGET_KEY_MAX];
    /* Files libpq may read to authenticate ("path\0...\0"), and whether a
     * host is reached over TCP (Kerberos, TLS client certificates). */
    char auth_files[TARGET_FILES_MAX];
    bool over_tcp;
    unsigned params_len, auth_files_len; /* bytes used, with the last NUL */
    uint64_t auth_files_hash;            /* of auth_files (identity.c) */
    /* strlen(key) and the hash the pools are found by (uthash's of the
     * key's options, mixed with the identity's: see target_key_append). */
    unsigned key_len, key_hashv;
};

/* Fill t's key, name, params and poolability from opts, libpq's resolved
 * options of a request (PQconninfo of a connection it made from it), for
 * libpq copy `copy`. False (t undefined) when out of memory. Leaves
 * restatable, auth_files and over_tcp to the caller. */
bool target_from_options(struct target *t, const PQconninfoOption *opts,
                         int copy);

/* *dst = *src, copying only the used part of each buffer (a remembered
 * target is copied at every connect). */
void target_copy(struct target *dst, const struct target *src);

/* The value of keyword in params ("kw\0value\0...\0", as in struct
 * target), "" when absent. */
const char *target_param(const char *params, const char *keyword);

/* The value of keyword in opts; NULL when unset or unknown. */
const char *target_option(const PQconninfoOption *opts, const char *keyword);

/* Append suffix to t's key (kept in size by hashing, as any long key);
 * mix: a hash of suffix. The suffix must have one form, always appended
 * last (key_hashv is then derived, not recomputed). False, t unchanged,
 * when out of memory. */
bool target_key_append(struct target *t, const char *suffix, uint64_t mix);

/* A 64-bit FNV-1a hash (password in keys, host-wide slot regions). */
uint64_t target_hash(const char *s);
uint64_t target_hash_alt(const char *s);

/* The display name of a live connection: user@host:port/dbname. */
void target_name_of(char *buf, size_t size, const char *user,
                    const char *host, const char *port, const char *db);

#endif
