/*
 * view.c — what a program reads of its connection's options: its own
 * host, hostaddr and port lists when the connection was opened behind a
 * gate, and the options its own request gave as empty strings (see
 * view.h). The target's options are the ones libpq applied (the
 * request's, then the environment's and libpq's defaults), which is what
 * a direct connect of the target reports for every option the request
 * did not give as an empty string.
 */
#define _GNU_SOURCE
#include "view.h"
#include "gate.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct view {
    bool gated;         /* the PGconn's host list starts with a gate */
    const char *opened; /* "kw\0kw\0\0": given as '' by its opener */
    const char *first_host, *first_port;
    const char *empty;  /* "kw\0kw\0\0": given as '' by this request */
    const char *params; /* the target's options, "kw\0value\0...\0" */
    char text[];        /* the strings above */
};

static atomic_bool made;


/* A connection string that may give an option as an empty string: a
 * quoted '' (key=value form) or a URI parameter with nothing after '='.
 * Cheap, so that other requests cost no parsing. */
static bool may_give_empty(const char *s)
{
    if (!s)
        return false;
    if (strstr(s, "''"))
        return true;
    if (strncmp(s, "postgresql://", 13) && strncmp(s, "postgres://", 11))
        return false;
    for (const char *eq = strchr(s, '='); eq; eq = strchr(eq + 1, '='))
        if (eq[1] == '&' || eq[1] == '\0')
            return true;
    return false;
}

/* The options conninfo gives as empty strings, appended to out
 * ("kw\0kw\0", within size); false when there is no room. */
static bool empties_of(const char *conninfo, char *out, size_t size, size_t *len)
{
    if (!may_give_empty(conninfo))
        return true;
    const struct real_libpq *pq = real_libpq();
    char *err = NULL;
    PQconninfoOption *opts = pq->PQconninfoParse(conninfo, &err);
    if (err)
        pq->PQfreemem(err);
    if (!opts)
        return true; /* libpq said why to the connect */
    bool ok = true;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || *o->val)
            continue;
        size_t kl = strlen(o->keyword) + 1;
        if (*len + kl + 1 > size) {
            ok = false;
            break;
        }
        memcpy(out + *len, o->keyword, kl);
        *len += kl;
    }
    pq->PQconninfoFree(opts);
    return ok;
}

/* Options given as '' by req: libpq keeps only a connection string's
 * empty values (in keyword arrays an empty value means "not given"). */
static bool request_empties(const struct connect_request *req, char *out,
                            size_t size, size_t *len)
{
    switch (req->kind) {
    case REQ_CONNINFO:
        return empties_of(req->conninfo, out, size, len);
    case REQ_PARAMS:
        for (int i = 0; req->expand_dbname && req->keywords && req->keywords[i]; i++)
            if (strcmp(req->keywords[i], "dbname") == 0)
                return req->values ? empties_of(req->values[i], out, size, len) : true;
        return true;
    case REQ_SETDB:
        return empties_of(req->setdb[4], out, size, len);
    }
    return true;
}

/* Copy s (len bytes) to *at, advancing it. */
static const char *keep(char **at, const char *s, size_t len)
{
    char *out = *at;
    memcpy(out, s, len);
    out[len] = '\0';
    *at += len + 1;
    return out;
}

/* The length of a "kw\0kw\0\0" list, its end included. */
static size_t list_len(const char *list)
{
    const char *k = list;
    while (*k)
        k += strlen(k) + 1;
    return (size_t)(k - list) + 1;
}

struct view *view_for_request(const struct view *prev, bool fresh, bool gated,
                              const struct target *t,
                              const struct connect_request *req)
{
    char empty[1024];
    size_t elen = 0;
    if (!request_empties(req, empty, sizeof empty - 1, &elen))
        elen = 0; /* too many to tell: libpq's answer stays */
    empty[elen++] = '\0';
    gated |= prev && prev->gated;
    /* A connection reused without a view was opened by a request that
     * gave nothing empty. */
    const char *opened = fresh ? empty : prev ? prev->opened : "";
    size_t olen = list_len(opened);
    if (!gated && olen == 1 && elen == 1)
        return NULL;
    size_t plen = t->params_len ? t->params_len : 1;
    size_t size = elen + olen + 3 * plen + 8;
    struct view *v = malloc(sizeof *v + size);
    if (!v)
        return NULL;
    atomic_store(&made, true);
    v->gated = gated;
    char *at = v->text;
    v->empty = at;
    memcpy(at, empty, elen);
    at += elen;
    v->opened = at;
    memcpy(at, opened, olen);
    at += olen;
    v->params = at;
    memcpy(at, t->params, plen);
    at += plen;
    const char *h = target_param(t->params, "host"), *a = target_param(t->params, "hostaddr"),
               *p = target_param(t->params, "port");
    /* libpq names a host by its name, else by its address; with neither
     * it is the default socket directory, which only libpq knows: then
     * the gate's answer stays (view_host). */
    size_t hl = strcspn(h, ","), al = strcspn(a, ",");
    v->first_host = hl ? keep(&at, h, hl) : al ? keep(&at, a, al) : NULL;
    v->first_port = keep(&at, p, strcspn(p, ","));
    return v;
}

bool view_any(void)
{
    return atomic_load_explicit(&made, memory_order_relaxed);
}

const char *view_host(const struct view *v, const char *libpq_host)
{
    return v->gated && gate_is_host(libpq_host) && v->first_host ? v->first_host
                                                                 : libpq_host;
}

const char *view_port(const struct view *v, const char *libpq_host,
                      const char *libpq_port)
{
    return v->gated && gate_is_host(libpq_host) ? v->first_port : libpq_port;
}

static bool listed(const char *list, const char *keyword)
{
    for (const char *k = list; *k; k += strlen(k) + 1)
        if (strcmp(k, keyword) == 0)
            return true;
    return false;
}

static void put(PQconninfoOption *o, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy)
        return; /* out of memory: libpq's value stays */
    free(o->val);
    o->val = copy;
}

/* What libpq applies to an option no request gave: the environment's or
 * its own default. */
static const char *default_of(PQconninfoOption **defaults, const char *keyword)
{
    if (!*defaults)
        *defaults = real_libpq()->PQconndefaults();
    for (PQconninfoOption *o = *defaults; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val;
    return NULL;
}

void view_conninfo(const struct view *v, PQconninfoOption *opts)
{
    PQconninfoOption *defaults = NULL;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        bool list = !strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr") ||
                    !strcmp(o->keyword, "port");
        /* libpq fills some empty options itself (user, dbname): those
         * have a value in the PGconn, and it stays. */
        if (listed(v->empty, o->keyword) && (!o->val || !*o->val || (v->gated && list)))
            put(o, "");
        else if (v->gated && list) {
            const char *value = target_param(v->params, o->keyword);
            put(o, *value ? value : NULL);
        } else if (listed(v->opened, o->keyword) && o->val && !*o->val)
            put(o, default_of(&defaults, o->keyword));
    }
    if (defaults)
        real_libpq()->PQconninfoFree(defaults);
}
