/*
 * fuzz_request.c — libFuzzer target for the control socket's request
 * handling: any bytes a client may send become one request line exactly as
 * control.c's reader makes it (at most 4096 bytes, cut at the first newline,
 * trailing CR and spaces removed), go through the real dispatcher
 * (commands.c) with the real pools, configuration and log code behind it,
 * and the reply is checked: never an allocation failure, always one or more
 * newline-terminated lines without NUL bytes, and valid JSON whenever it
 * starts with '{'.
 *
 * Two pools exist (one named with quotes, backslashes and control
 * characters), so status, metrics and health have rows to print and escape.
 * The only stand-ins are for what needs a live server: the connection
 * registry (empty: nothing is checked out) and libpq, whose connect always
 * fails at once (so health reports an error instead of reaching a server).
 *
 *   make fuzz && build/fuzz/fuzz_request -dict=tests/fuzz/request.dict
 *
 * With -DFUZZ_REPLAY_MAIN it is a plain program instead: each argument is a
 * file (one input), or, with no arguments, each line of stdin is one input.
 */
#define _GNU_SOURCE
#include "control.h"
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- stand-ins for the parts that need a server ------------------------- */

bool conn_alive(struct shim_conn *sc, bool answered)
{
    (void)sc;
    (void)answered;
    return false;
}

void conn_close(struct shim_conn *sc, const char *reason)
{
    (void)sc;
    (void)reason;
}

void conn_free(struct shim_conn *sc)
{
    free(sc);
}

void registry_for_each(void (*fn)(const struct shim_conn *, void *), void *arg)
{
    (void)fn;
    (void)arg;
}

static PGconn *stub_connectdb_params(const char *const *kw, const char *const *val, int expand)
{
    (void)kw;
    (void)val;
    (void)expand;
    return NULL; /* as libpq does when it cannot allocate: "out of memory" */
}

static void stub_finish(PGconn *pg)
{
    (void)pg;
}

const struct real_libpq *real_libpq(void)
{
    static const struct real_libpq stub = {
        .PQconnectdbParams = stub_connectdb_params,
        .PQfinish = stub_finish,
    };
    return &stub;
}

const struct real_libpq *real_use(const struct real_libpq *pq)
{
    (void)pq;
    return NULL;
}

/* ---- checking the reply --------------------------------------------------- */

static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* End of the JSON value at p, or NULL when it is not valid JSON. */
static const char *json_value(const char *p, const char *e, int depth)
{
    p = ws(p, e);
    if (p >= e || depth > 64)
        return NULL;
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                p = ws(p, e);
                if (p >= e || *p != '"' || !(p = json_value(p, e, depth + 1)))
                    return NULL;
                p = ws(p, e);
                if (p >= e || *p++ != ':')
                    return NULL;
            }
            if (!(p = json_value(p, e, depth + 1)))
                return NULL;
            p = ws(p, e);
            if (p >= e)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"') {
        for (p++; p < e && *p != '"'; p++) {
            if ((unsigned char)*p < 0x20)
                return NULL;
            if (*p == '\\') {
                p++;
                if (p >= e || !strchr("\"\\/bfnrtu", *p))
                    return NULL;
                if (*p == 'u') {
                    for (int i = 0; i < 4; i++)
                        if (++p >= e || !strchr("0123456789abcdefABCDEF", *p))
                            return NULL;
                }
            }
        }
        return p < e ? p + 1 : NULL;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++)
        if ((size_t)(e - p) >= strlen(words[i]) && memcmp(p, words[i], strlen(words[i])) == 0)
            return p + strlen(words[i]);
    const char *start = p;
    if (p < e && *p == '-')
        p++;
    if (p >= e || *p < '0' || *p > '9')
        return NULL;
    if (*p == '0')
        p++;
    while (p < e && *p >= '0' && *p <= '9')
        p++;
    if (p < e && *p == '.') {
        if (++p >= e || *p < '0' || *p > '9')
            return NULL;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || *p < '0' || *p > '9')
            return NULL;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    return p > start ? p : NULL;
}

static void check_reply(const struct buf *reply)
{
    if (reply->failed || !reply->data || reply->len == 0)
        abort();
    if (reply->data[reply->len - 1] != '\n' || memchr(reply->data, '\0', reply->len))
        abort();
    if (reply->data[0] == '{') {
        const char *end = reply->data + reply->len;
        const char *after = json_value(reply->data, end, 0);
        if (!after || ws(after, end) != end)
            abort();
    }
}

/* ---- the target --------------------------------------------------------------- */

static void add_pool(const char *name, const char *key)
{
    struct target t;
    memset(&t, 0, sizeof t);
    snprintf(t.key, sizeof t.key, "%s", key);
    snprintf(t.name, sizeof t.name, "%s", name);
    memcpy(t.params, "dbname\0fuzz\0\0", 13);
    pool_reserve_uncapped(&t);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("PQSHIM_LOG", "none", 1);
    setenv("PQSHIM_POLICY", "capped", 1);
    pqshim_pid = getpid();
    config_get();
    add_pool("app@/tmp:5432/postgres", "k1");
    add_pool("we\"ird\\name\n\t\x01\x7f\xc3\xa9@h:1/d", "k2");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As read_request() in control.c: one line of at most 4096 bytes. */
    char line[4097];
    size_t len = size < 4096 ? size : 4096;
    memcpy(line, data, len);
    line[len] = '\0';
    char *nl = memchr(line, '\n', len);
    if (nl) {
        *nl = '\0';
        len = (size_t)(nl - line);
    }
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        line[--len] = '\0';

    struct buf reply = {0};
    control_dispatch(line, &reply);
    check_reply(&reply);
    free(reply.data);
    /* A pause must never outlive the input that made it. */
    if (pool_paused())
        pool_set_paused(false);
    return 0;
}

#ifdef FUZZ_REPLAY_MAIN
int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    long n = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            if (!f) {
                perror(argv[i]);
                return 2;
            }
            static uint8_t input[1 << 16];
            size_t got = fread(input, 1, sizeof input, f);
            fclose(f);
            LLVMFuzzerTestOneInput(input, got);
            n++;
        }
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t got;
        while ((got = getline(&line, &cap, stdin)) > 0) {
            LLVMFuzzerTestOneInput((const uint8_t *)line, (size_t)got);
            n++;
        }
        free(line);
    }
    printf("%ld inputs ok\n", n);
    return 0;
}
#endif
