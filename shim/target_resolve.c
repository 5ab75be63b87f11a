/*
 * target_resolve.c — a request's target, as libpq itself reads it.
 *
 * libpq decides whom a connect authenticates as from the request, the
 * service file, the environment and its defaults, in an order with traps
 * (an empty value in a string counts as set and keeps the environment's
 * out; in a keyword array it does not). Rather than restate that order,
 * the shim asks libpq: PQconnectStartParams with one option given a value
 * libpq refuses only after it has filled in every other one (an invalid
 * sslmode, then an invalid target_session_attrs for sslmode's own value)
 * stops before any socket is opened, and PQconninfo shows the rest. What
 * libpq reads later, at connect time (password file, certificates,
 * credentials of the process), is identity.c's.
 */
#define _GNU_SOURCE
#include "target_resolve.h"
#include "identity.h"
#include "target_cache.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* No libpq accepts this as an sslmode or a target_session_attrs. */
#define UNACCEPTABLE "pqshim:resolve"

/* libpq's recognized_connection_string(): a URI or a key=value string. */
static bool is_connection_string(const char *s)
{
    return strncmp(s, "postgresql://", 13) == 0 ||
           strncmp(s, "postgres://", 11) == 0 || strchr(s, '=') != NULL;
}

/* The request as a keyword array (the marked option last, so it wins),
 * given to libpq; its options, or NULL when libpq could not read the
 * request (it will say why when the program's own connect is made). */
static PQconninfoOption *libpq_reading(const struct real_libpq *pq,
                                       const struct connect_request *req,
                                       const char *marked)
{
    if (!pq->PQconnectStartParams || !pq->PQconninfo)
        return NULL;
    const char *fixed_kw[8], *fixed_val[8];
    const char **kw = fixed_kw, **val = fixed_val;
    int n = 0, expand = 1;
    switch (req->kind) {
    case REQ_CONNINFO:
        /* PQconnectdb reads the whole string as a connection string; as
         * the expanded dbname of an array, empty values keep their
         * meaning. A string that is no connection string must be blank
         * (libpq refuses anything else). */
        if (!req->conninfo)
            return NULL;
        if (is_connection_string(req->conninfo)) {
            kw[n] = "dbname";
            val[n++] = req->conninfo;
        } else if (req->conninfo[strspn(req->conninfo, " \t\n\r\f\v")]) {
            return NULL;
        }
        break;
    case REQ_PARAMS: {
        if (!req->keywords || !req->values)
            return NULL;
        int count = 0;
        while (req->keywords[count])
            count++;
        if (count + 2 > 8) {
            kw = malloc(sizeof *kw * (size_t)(count + 2));
            val = malloc(sizeof *val * (size_t)(count + 2));
            if (!kw || !val) {
                free(kw);
                free(val);
                return NULL;
            }
        }
        for (; n < count; n++) {
            kw[n] = req->keywords[n];
            val[n] = req->values[n];
        }
        expand = req->expand_dbname;
        break;
    }
    case REQ_SETDB: {
        /* PQsetdbLogin: a dbName that is a connection string is read
         * first, then the other non-empty arguments override it. */
        static const char *const setdb_kw[] = {"dbname", "host", "port",
                                               "options", "user", "password"};
        static const int setdb_arg[] = {4, 0, 1, 2, 5, 6};
        for (; n < 6; n++) {
            kw[n] = setdb_kw[n];
            val[n] = req->setdb[setdb_arg[n]];
        }
        break;
    }
    }
    kw[n] = marked;
    val[n++] = UNACCEPTABLE;
    kw[n] = val[n] = NULL;
    PGconn *probe = pq->PQconnectStartParams(kw, val, expand);
    if (kw != fixed_kw) {
        free(kw);
        free(val);
    }
    if (!probe)
        return NULL;
    PQconninfoOption *opts = NULL;
    /* CONNECTION_BAD is the only safe answer: anything else would mean a
     * connect was started (a libpq that accepts the value). */
    if (pq->PQstatus(probe) == CONNECTION_BAD)
        opts = pq->PQconninfo(probe);
    pq->PQfinish(probe);
    const char *v = opts ? target_option(opts, marked) : NULL;
    if (!v || strcmp(v, UNACCEPTABLE) != 0) {
        /* The request did not parse: libpq stopped before our option. */
        if (opts)
            pq->PQconninfoFree(opts);
        return NULL;
    }
    return opts;
}

static PQconninfoOption *find(PQconninfoOption *opts, const char *keyword)
{
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o;
    return NULL;
}

/* libpq's home directory: HOME, else the effective user's entry. */
static bool home_directory(char *buf, size_t size)
{
    const char *home = getenv("HOME");
    struct passwd pw, *found = NULL;
    char pwbuf[4096];
    if (!home || !*home) {
        if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &found) != 0 || !found)
            return false;
        home = found->pw_dir;
    }
    int n = snprintf(buf, size, "%s", home);
    return n > 0 && (size_t)n < size;
}

static bool add_file(struct target *t, size_t *len, const char *path)
{
    size_t l = strlen(path) + 1;
    if (*len + l + 1 > sizeof t->auth_files)
        return false;
    memcpy(t->auth_files + *len, path, l);
    *len += l;
    t->auth_files[*len] = '\0';
    t->auth_files_len = (unsigned)*len + 1;
    return true;
}

/* A file option's path: its value, else libpq's default under ~/.postgresql. */
static bool add_file_option(struct target *t, size_t *len,
                            const PQconninfoOption *opts, const char *keyword,
                            const char *home, const char *fallback)
{
    const char *v = target_option(opts, keyword);
    char path[4200];
    if (v && *v)
        return strcmp(v, "system") == 0 || add_file(t, len, v);
    if (!fallback)
        return true;
    if (!home)
        return false;
    int n = snprintf(path, sizeof path, "%s/.postgresql/%s", home, fallback);
    return n > 0 && (size_t)n < sizeof path && add_file(t, len, path);
}

/* Is a host of the list reached over TCP (not a Unix socket)? */
static bool reaches_tcp(const PQconninfoOption *opts)
{
    const char *addr = target_option(opts, "hostaddr");
    if (addr && *addr)
        return true;
    const char *h = target_option(opts, "host");
    if (!h || !*h)
        return false; /* libpq's default socket directory */
    for (;;) {
        size_t l = strcspn(h, ",");
        /* An empty entry is the default socket directory. */
        if (l > 0 && h[0] != '/' && h[0] != '@')
            return true;
        if (!h[l])
            return false;
        h += l + 1;
    }
}

/* What libpq may read at connect time to authenticate: the password
 * file when no password is given, and over TCP the client certificate,
 * its key, the root certificates and revocation lists (unless TLS is
 * off). False when a path cannot be known (then the target is not used). */
static bool plan_identity(struct target *t, const PQconninfoOption *opts)
{
    char home_buf[4096];
    const char *home = home_directory(home_buf, sizeof home_buf) ? home_buf : NULL;
    size_t len = 0;
    t->auth_files[0] = '\0';
    t->auth_files_len = 1;
    t->over_tcp = reaches_tcp(opts);
    const char *password = target_option(opts, "password");
    if (!password || !*password) {
        const char *passfile = target_option(opts, "passfile");
        char path[4200];
        if (passfile && *passfile) {
            if (!add_file(t, &len, passfile))
                return false;
        } else {
            int n = home ? snprintf(path, sizeof path, "%s/.pgpass", home) : -1;
            if (n < 0 || (size_t)n >= sizeof path || !add_file(t, &len, path))
                return false;
        }
    }
    const char *sslmode = target_option(opts, "sslmode");
    if (t->over_tcp && !(sslmode && strcmp(sslmode, "disable") == 0))
        return add_file_option(t, &len, opts, "sslcert", home, "postgresql.crt") &&
               add_file_option(t, &len, opts, "sslkey", home, "postgresql.key") &&
               add_file_option(t, &len, opts, "sslrootcert", home, "root.crt") &&
               add_file_option(t, &len, opts, "sslcrl", home, "root.crl") &&
               add_file_option(t, &len, opts, "sslcrldir", home, NULL);
    return true;
}

/* Restated as a keyword array (a gate's connect), the options give the
 * same connection only if libpq would fill none of those left empty: an
 * array cannot say "empty" (password=''), and libpq does not report the
 * service a request named, so PGSERVICE's would be read instead. */
static bool restatable(const struct real_libpq *pq, const PQconninfoOption *opts)
{
    PQconninfoOption *defaults = NULL;
    bool ok = true;
    for (const PQconninfoOption *o = opts; ok && o->keyword; o++) {
        if (o->val && *o->val)
            continue;
        if (!defaults && !(defaults = pq->PQconndefaults()))
            return false;
        const char *d = target_option(defaults, o->keyword);
        ok = !d || !*d;
    }
    if (defaults)
        pq->PQconninfoFree(defaults);
    return ok;
}

/* The list of files, hashed once: identity.c feeds this instead of the
 * paths at every connect. */
static uint64_t hash_files(const struct target *t)
{
    uint64_t h = 1469598103934665603ULL ^ t->over_tcp;
    for (unsigned i = 0; i < t->auth_files_len; i++)
        h = (h ^ (unsigned char)t->auth_files[i]) * 1099511628211ULL;
    return h;
}

static bool target_build(const struct connect_request *req, struct target *t)
{
    const struct real_libpq *pq = real_libpq();
    PQconninfoOption *opts = libpq_reading(pq, req, "sslmode");
    if (!opts)
        return false;
    PQconninfoOption *again = libpq_reading(pq, req, "target_session_attrs");
    bool ok = again != NULL;
    if (ok) {
        /* sslmode as libpq read it; both lists are freed as they were
         * made, each with the other's string. */
        PQconninfoOption *mine = find(opts, "sslmode"), *theirs = find(again, "sslmode");
        char *swap = mine->val;
        mine->val = theirs ? theirs->val : NULL;
        if (theirs)
            theirs->val = swap;
        pq->PQconninfoFree(again);
    }
    ok = ok && target_from_options(t, opts, pq->copy) && plan_identity(t, opts);
    if (ok) {
        t->restatable = restatable(pq, opts);
        t->auth_files_hash = hash_files(t);
    }
    pq->PQconninfoFree(opts);
    return ok;
}

bool target_of(const struct connect_request *req, struct target *t)
{
    struct target_request r;
    bool cacheable = target_request_of(&r, req, real_libpq()->copy);
    if (!(cacheable && target_cache_get(&r, t))) {
        if (!target_build(req, t))
            return false;
        if (cacheable)
            target_cache_put(&r, t);
    }
    /* Never remembered: read at every connect. */
    return identity_add(t);
}
