#define _GNU_SOURCE
/*
 * Unit tests of the shim's pure logic: configuration parsing, log line
 * formatting, target identity. libpq is linked only for its pure conninfo
 * parser; no server is involved.
 */
#include "pqshim.h"
#include "escape.h"
#include "target_cache.h"
#include "target_resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures, cases;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            printf("    %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            ok = false;                                                      \
        }                                                                    \
    } while (0)

#define TEST(name) static void name(bool *okp)
#define RUN(name)                                                            \
    do {                                                                     \
        bool ok_ = true;                                                     \
        name(&ok_);                                                          \
        cases++;                                                             \
        if (!ok_)                                                            \
            failures++;                                                      \
        printf("%s %s\n", ok_ ? "ok  " : "FAIL", #name);                   \
    } while (0)

/* ---- configuration ----------------------------------------------------- */

static char reported[16][256];
static int n_reported;

static void record(enum log_level level, const char *variable,
                   const char *value, const char *accepted)
{
    if (n_reported < 16)
        snprintf(reported[n_reported++], 256, "%s %s=%s (%s)",
                 level == LOG_LVL_WARN ? "warn" : "error", variable,
                 value ? value : "", accepted ? accepted : "");
}

static void parse(struct pqshim_config *cfg, const char **env)
{
    n_reported = 0;
    config_parse((char **)env, cfg, record);
}

TEST(config_defaults)
{
    bool ok = true;
    struct pqshim_config c;
    const char *env[] = {"HOME=/root", NULL};
    parse(&c, env);
    CHECK(n_reported == 0);
    CHECK(c.policy == POLICY_NULL);
    CHECK(c.log_dest == LOG_TO_STDERR);
    CHECK(c.log_level == LOG_LVL_INFO);
    CHECK(c.pool_size == 5 && c.max_overflow == 10);
    CHECK(c.pool_timeout == 30 && c.pool_recycle == 3600 && c.idle_timeout == 600);
    CHECK(c.reset == RESET_DISCARD && c.pre_ping == PRE_PING_ON);
    *okp = ok;
}

TEST(config_valid_values)
{
    bool ok = true;
    struct pqshim_config c;
    const char *env[] = {"PQSHIM_POLICY=capped", "PQSHIM_LOG=/tmp/x.log",
                         "PQSHIM_LOG_LEVEL=DEBUG", "PQSHIM_LOG_FORMAT=json",
                         "PQSHIM_POOL_SIZE=3", "PQSHIM_MAX_OVERFLOW=0",
                         "PQSHIM_POOL_TIMEOUT=0.25", "PQSHIM_RESET=rollback",
                         "PQSHIM_PRE_PING=off", "PQSHIM_POOL_RECYCLE=300",
                         "PQSHIM_IDLE_TIMEOUT=0", NULL};
    parse(&c, env);
    CHECK(n_reported == 0);
    CHECK(c.policy == POLICY_CAPPED);
    CHECK(c.log_dest == LOG_TO_FILE && strcmp(c.log_path, "/tmp/x.log") == 0);
    CHECK(c.log_level == LOG_LVL_DEBUG && c.log_format == LOG_FMT_JSON);
    CHECK(c.pool_size == 3 && c.max_overflow == 0);
    CHECK(c.pool_timeout == 0.25 && c.reset == RESET_ROLLBACK);
    CHECK(c.pre_ping == PRE_PING_OFF && c.pool_recycle == 300 && c.idle_timeout == 0);
    *okp = ok;
}

TEST(config_invalid_values_keep_defaults)
{
    bool ok = true;
    struct pqshim_config c;
    const char *env[] = {"PQSHIM_POLICY=pooled", "PQSHIM_POOL_SIZE=-1",
                         "PQSHIM_MAX_OVERFLOW=abc", "PQSHIM_POOL_TIMEOUT=nan",
                         "PQSHIM_LOG=relative.log", "PQSHIM_POOL_RECYCLE=1e99",
                         "PQSHIM_POOL_SIZE=99999999999999999999", "PQSHIM_RESET=",
                         NULL};
    parse(&c, env);
    CHECK(n_reported == 8);
    CHECK(c.policy == POLICY_NULL && c.pool_size == 5 && c.max_overflow == 10);
    CHECK(c.pool_timeout == 30 && c.log_dest == LOG_TO_STDERR);
    CHECK(c.pool_recycle == 3600 && c.reset == RESET_DISCARD);
    CHECK(strstr(reported[0], "PQSHIM_POLICY=pooled (null or capped)") != NULL);
    *okp = ok;
}

TEST(config_numbers_are_plain_digits)
{
    bool ok = true;
    struct pqshim_config c;
    const char *bad[] = {"PQSHIM_POOL_SIZE= 5", "PQSHIM_MAX_OVERFLOW= +7",
                         "PQSHIM_POOL_TIMEOUT=0x10", "PQSHIM_HOST_LIMIT=1e3",
                         "PQSHIM_IDLE_TIMEOUT=+1", "PQSHIM_POOL_RECYCLE=5 ",
                         "PQSHIM_POOL_SIZE=5.", "PQSHIM_POOL_TIMEOUT=.", NULL};
    parse(&c, bad);
    CHECK(n_reported == 8);
    CHECK(c.pool_size == 5 && c.max_overflow == 10 && c.pool_timeout == 30);
    CHECK(c.host_limit == 0 && c.idle_timeout == 600 && c.pool_recycle == 3600);
    const char *good[] = {"PQSHIM_POOL_SIZE=007", "PQSHIM_POOL_TIMEOUT=.5",
                          "PQSHIM_IDLE_TIMEOUT=2.", "PQSHIM_POOL_RECYCLE=1.25", NULL};
    parse(&c, good);
    CHECK(n_reported == 0);
    CHECK(c.pool_size == 7 && c.pool_timeout == 0.5 && c.idle_timeout == 2);
    CHECK(c.pool_recycle == 1.25);
    *okp = ok;
}

TEST(config_unknown_variable_warns)
{
    bool ok = true;
    struct pqshim_config c;
    const char *env[] = {"PQSHIM_POOLSIZE=3", NULL};
    parse(&c, env);
    CHECK(n_reported == 1);
    CHECK(strncmp(reported[0], "warn PQSHIM_POOLSIZE", 20) == 0);
    *okp = ok;
}

TEST(config_zero_cap_is_refused)
{
    bool ok = true;
    struct pqshim_config c;
    const char *env[] = {"PQSHIM_POOL_SIZE=0", "PQSHIM_MAX_OVERFLOW=0", NULL};
    parse(&c, env);
    CHECK(n_reported == 1);
    CHECK(c.pool_size + c.max_overflow >= 1);
    *okp = ok;
}

/* The table itself: every default is a value it accepts, every word and
 * bound is what the parser and the status text use. */
TEST(config_table_consistent)
{
    bool ok = true;
    int n = 0;
    for (const struct setting *s = config_settings(); s->name; s++, n++) {
        double number;
        CHECK(strncmp(s->name, "PQSHIM_", 7) == 0);
        CHECK(s->accepted && s->option && s->meta && s->help && s->def);
        CHECK(s->def[0] || s->kind == SETTING_PATH);
        CHECK(!s->def[0] || setting_parse(s, s->def, &number));
        CHECK(s->kind != SETTING_PATH || (s->unset && s->unset[0]));
        for (const struct setting *t = config_settings(); t != s; t++)
            CHECK(strcmp(t->name, s->name) != 0 && strcmp(t->option, s->option) != 0);
        /* Each word reads back as itself in status, in any case given. */
        for (int w = 0; s->words && s->words[w]; w++) {
            char env[128], upper[64], shown[64];
            size_t i = 0;
            for (; s->words[w][i] && i < sizeof upper - 1; i++)
                upper[i] = (char)(s->words[w][i] & ~0x20);
            upper[i] = '\0';
            snprintf(env, sizeof env, "%s=%s", s->name, upper);
            const char *e[] = {env, NULL};
            struct pqshim_config c;
            parse(&c, e);
            config_value_string(&c, s->name, shown, sizeof shown);
            CHECK(n_reported == 0 && strcmp(shown, s->words[w]) == 0);
        }
    }
    CHECK(n == 16);
    *okp = ok;
}

/* What status shows for each kind: the defaults, then set values. */
TEST(config_value_strings)
{
    bool ok = true;
    struct pqshim_config c;
    char v[64];
    const char *none[] = {NULL};
    parse(&c, none);
    const char *defaults[][2] = {
        {"PQSHIM_POLICY", "null"}, {"PQSHIM_LOG", "stderr"}, {"PQSHIM_POOL_SIZE", "5"},
        {"PQSHIM_POOL_TIMEOUT", "30"}, {"PQSHIM_PRE_PING", "on"}, {"PQSHIM_RETRY_FULL", "on"},
        {"PQSHIM_HOST_LIMIT", "0"}, {"PQSHIM_HOST_LIMIT_FILE", "default"},
        {"PQSHIM_HOST_LIMIT_SHARED", "off"}, {"PQSHIM_CONTROL", "unset"},
        {"PQSHIM_NOT_A_SETTING", "?"}};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        config_value_string(&c, defaults[i][0], v, sizeof v);
        CHECK(strcmp(v, defaults[i][1]) == 0);
    }
    CHECK(c.retry_full && !c.host_limit_shared && c.log_format == LOG_FMT_TEXT);
    const char *env[] = {"PQSHIM_LOG=/tmp/p.log", "PQSHIM_PRE_PING=YES", "PQSHIM_RETRY_FULL=0",
                         "PQSHIM_POOL_TIMEOUT=0.25", "PQSHIM_HOST_LIMIT_SHARED=group",
                         "PQSHIM_CONTROL=/run/x-%p", "PQSHIM_HOST_LIMIT=7", NULL};
    parse(&c, env);
    CHECK(n_reported == 0);
    const char *set[][2] = {
        {"PQSHIM_LOG", "/tmp/p.log"}, {"PQSHIM_PRE_PING", "on"}, {"PQSHIM_RETRY_FULL", "off"},
        {"PQSHIM_POOL_TIMEOUT", "0.25"}, {"PQSHIM_HOST_LIMIT_SHARED", "group"},
        {"PQSHIM_CONTROL", "/run/x-%p"}, {"PQSHIM_HOST_LIMIT", "7"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        config_value_string(&c, set[i][0], v, sizeof v);
        CHECK(strcmp(v, set[i][1]) == 0);
    }
    CHECK(c.log_dest == LOG_TO_FILE && c.pre_ping == PRE_PING_ON && !c.retry_full);
    CHECK(c.host_limit_shared && c.host_limit == 7);
    /* A word after a path: the destination changes, the path stays. */
    const char *env2[] = {"PQSHIM_LOG=/tmp/p.log", "PQSHIM_LOG=syslog", NULL};
    parse(&c, env2);
    config_value_string(&c, "PQSHIM_LOG", v, sizeof v);
    CHECK(c.log_dest == LOG_TO_SYSLOG && strcmp(v, "syslog") == 0);
    *okp = ok;
}

/* ---- log lines --------------------------------------------------------- */

TEST(log_text_line)
{
    bool ok = true;
    char buf[512];
    const struct log_field f[] = {LF_S("target", "u@h:5432/db"), LF_I("conn", 7),
                                  LF_D("ms", 4.256),
                                  LF_S("error", "FATAL:  too many\nclients \"x\"\n"),
                                  LF_END_};
    log_format_line(buf, sizeof buf, LOG_FMT_TEXT, 42, 0, LOG_LVL_INFO, "connect", f);
    CHECK(strcmp(buf, "pqshim[42]: info event=connect target=u@h:5432/db conn=7 "
                      "ms=4.26 error=\"FATAL:  too many clients \\\"x\\\"\"\n") == 0);
    *okp = ok;
}

TEST(log_json_line)
{
    bool ok = true;
    char buf[512];
    const struct log_field f[] = {LF_S("reason", "a\"b\n"), LF_I("conn", 1), LF_END_};
    log_format_line(buf, sizeof buf, LOG_FMT_JSON, 7, 86400.5, LOG_LVL_WARN, "close", f);
    CHECK(strcmp(buf, "{\"ts\":\"1970-01-02T00:00:00.500Z\",\"pid\":7,\"level\":\"warn\","
                      "\"event\":\"close\",\"reason\":\"a\\\"b\",\"conn\":1}\n") == 0);
    *okp = ok;
}

TEST(log_line_is_bounded)
{
    bool ok = true;
    char buf[64];
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const struct log_field f[] = {LF_S("error", big), LF_END_};
    size_t n = log_format_line(buf, sizeof buf, LOG_FMT_TEXT, 1, 0, LOG_LVL_ERROR, "x", f);
    CHECK(n < sizeof buf && buf[n - 1] == '\n' && strlen(buf) == n);
    *okp = ok;
}

TEST(log_escapes_bad_bytes)
{
    bool ok = true;
    char buf[512];
    const struct log_field f[] = {LF_S("target", "a\xff\x1b[2J\rb\xc3\xa9"), LF_END_};
    log_format_line(buf, sizeof buf, LOG_FMT_TEXT, 1, 0, LOG_LVL_INFO, "connect", f);
    CHECK(strcmp(buf, "pqshim[1]: info event=connect target=\"a\\xff\\x1b[2J b\xc3\xa9\"\n") == 0);
    log_format_line(buf, sizeof buf, LOG_FMT_JSON, 1, 0, LOG_LVL_INFO, "connect", f);
    CHECK(strstr(buf, "\"target\":\"a\\ufffd\\u001b[2J\\u000db\xc3\xa9\"}") != NULL);
    *okp = ok;
}

TEST(escape_styles)
{
    bool ok = true;
    char e[ESC_MAX];
    CHECK(esc_char("\xff", 1, ESC_PROM, e) == 1 && strcmp(e, "\xef\xbf\xbd") == 0);
    CHECK(esc_char("\n", 1, ESC_PROM, e) == 1 && strcmp(e, "\\n") == 0);
    CHECK(esc_char("\r", 1, ESC_PROM, e) == 1 && strcmp(e, "\xef\xbf\xbd") == 0);
    CHECK(esc_char("\"", 1, ESC_PROM, e) == 1 && strcmp(e, "\\\"") == 0);
    CHECK(esc_char("\xc2\x9b", 2, ESC_TERM, e) == 2 && strcmp(e, "?") == 0);
    CHECK(esc_char("\xc3\xa9", 2, ESC_TERM, e) == 2 && strcmp(e, "\xc3\xa9") == 0);
    CHECK(esc_char("\xe2\x82", 2, ESC_JSON, e) == 1 && strcmp(e, "\\ufffd") == 0);
    CHECK(esc_char("\xc0\x80", 2, ESC_JSON, e) == 1);       /* overlong */
    CHECK(esc_char("\xed\xa0\x80", 3, ESC_JSON, e) == 1);  /* a surrogate */
    CHECK(esc_char("\xf0\x9f\x98\x80", 4, ESC_JSON, e) == 4);
    *okp = ok;
}

/* ---- targets ------------------------------------------------------------ */

static struct real_libpq pq;

/* The shim's own binding of the current copy: here, the linked libpq. */
const struct real_libpq *real_libpq(void) { return &pq; }

static bool target_of_params(struct target *t, const char *const *kw,
                             const char *const *val, int expand)
{
    struct connect_request req = {.kind = REQ_PARAMS, .keywords = kw,
                                  .values = val, .expand_dbname = expand};
    return target_of(&req, t);
}

static bool target_of_conninfo(struct target *t, const char *conninfo)
{
    struct connect_request req = {.kind = REQ_CONNINFO, .conninfo = conninfo};
    return target_of(&req, t);
}

TEST(target_spellings_agree)
{
    bool ok = true;
    struct target a, b, c;
    CHECK(target_of_conninfo(&a, "host=/tmp port=5433 dbname=app user=u password=s3cret"));
    CHECK(target_of_conninfo(&b, "postgresql://u:s3cret@%2Ftmp:5433/app"));
    const char *kw[] = {"user", "dbname", "port", "host", "password", NULL};
    const char *val[] = {"u", "app", "5433", "/tmp", "s3cret", NULL};
    CHECK(target_of_params(&c, kw, val, 0));
    CHECK(strcmp(a.key, b.key) == 0);
    CHECK(strcmp(a.key, c.key) == 0);
    CHECK(strcmp(a.name, "u@/tmp:5433/app") == 0);
    CHECK(strstr(a.key, "s3cret") == NULL);
    CHECK(a.poolable);
    *okp = ok;
}

TEST(target_differences_separate)
{
    bool ok = true;
    struct target a, b, c, d, e;
    CHECK(target_of_conninfo(&a, "host=/tmp dbname=app user=u"));
    CHECK(target_of_conninfo(&b, "host=/tmp dbname=app user=v"));
    CHECK(target_of_conninfo(&c, "host=/tmp dbname=other user=u"));
    CHECK(target_of_conninfo(&d, "host=/tmp dbname=app user=u password=x"));
    CHECK(target_of_conninfo(&e, "host=/tmp dbname=app user=u options=-cwork_mem=1MB"));
    CHECK(strcmp(a.key, b.key) != 0 && strcmp(a.key, c.key) != 0);
    CHECK(strcmp(a.key, d.key) != 0 && strcmp(a.key, e.key) != 0);
    *okp = ok;
}

/* Connections of two libpq copies never share a pool: same parameters,
 * different keys; the display name stays the same. */
TEST(target_libpq_copies_separate)
{
    bool ok = true;
    struct target a, b;
    CHECK(target_of_conninfo(&a, "host=/tmp dbname=app user=u"));
    pq.copy = 1;
    CHECK(target_of_conninfo(&b, "host=/tmp dbname=app user=u"));
    pq.copy = 0;
    CHECK(strcmp(a.key, b.key) != 0);
    CHECK(strcmp(a.name, b.name) == 0);
    *okp = ok;
}

TEST(target_later_params_override)
{
    bool ok = true;
    struct target a, b;
    const char *kw[] = {"dbname", "dbname", "user", "user", NULL};
    const char *val[] = {"host=/tmp dbname=first", "second", "u", "", NULL};
    CHECK(target_of_params(&a, kw, val, 1));
    CHECK(target_of_conninfo(&b, "host=/tmp dbname=second user=u"));
    CHECK(strcmp(a.key, b.key) == 0);
    *okp = ok;
}

TEST(target_environment_counts)
{
    bool ok = true;
    struct target a, b;
    CHECK(target_of_conninfo(&a, "dbname=app"));
    setenv("PGAPPNAME", "other-app", 1);
    CHECK(target_of_conninfo(&b, "dbname=app"));
    unsetenv("PGAPPNAME");
    CHECK(strcmp(a.key, b.key) != 0);
    *okp = ok;
}

TEST(target_rejects_bad_input)
{
    bool ok = true;
    struct target t;
    const char *kw[] = {"no_such_keyword", NULL}, *val[] = {"1", NULL};
    CHECK(!target_of_params(&t, kw, val, 0));
    CHECK(!target_of_conninfo(&t, "host='unterminated"));
    *okp = ok;
}

TEST(target_replication_not_poolable)
{
    bool ok = true;
    struct target t;
    CHECK(target_of_conninfo(&t, "dbname=app replication=database"));
    CHECK(!t.poolable);
    *okp = ok;
}

/* A key of any length makes a target (the cap and the host limit must
 * hold for it): long keys differ by their ends, and stay stable. */
TEST(target_long_keys)
{
    bool ok = true;
    static char pad[4000], a_info[4200], b_info[4200];
    static struct target a, a2, b;
    memset(pad, 'x', sizeof pad - 1);
    snprintf(a_info, sizeof a_info, "host=/tmp dbname=app user=u options='-c x.pad=%sA'", pad);
    snprintf(b_info, sizeof b_info, "host=/tmp dbname=app user=u options='-c x.pad=%sB'", pad);
    CHECK(target_of_conninfo(&a, a_info));
    CHECK(target_of_conninfo(&a2, a_info));
    CHECK(target_of_conninfo(&b, b_info));
    CHECK(a.poolable);
    CHECK(strlen(a.key) < sizeof a.key);
    CHECK(strcmp(a.key, a2.key) == 0);
    CHECK(strcmp(a.key, b.key) != 0);
    CHECK(strcmp(a.name, "u@/tmp:5432/app") == 0);
    *okp = ok;
}

/* An empty value in a string or URI is set (the environment's is not
 * used); in a keyword array it is not. libpq's own reading decides. */
TEST(target_empty_values_count)
{
    bool ok = true;
    struct target plain, empty_user, uri_empty, arr_empty, db_empty, pw_empty;
    setenv("PGUSER", "lowpriv", 1);
    setenv("PGDATABASE", "otherdb", 1);
    setenv("PGPASSWORD", "from-env", 1);
    CHECK(target_of_conninfo(&plain, ""));
    CHECK(target_of_conninfo(&empty_user, "user=''"));
    CHECK(target_of_conninfo(&uri_empty, "postgresql://?user="));
    const char *kw[] = {"user", NULL}, *val[] = {"", NULL};
    CHECK(target_of_params(&arr_empty, kw, val, 0));
    CHECK(target_of_conninfo(&db_empty, "dbname=''"));
    CHECK(target_of_conninfo(&pw_empty, "password=''"));
    unsetenv("PGUSER");
    unsetenv("PGDATABASE");
    unsetenv("PGPASSWORD");
    CHECK(strncmp(plain.name, "lowpriv@", 8) == 0);
    CHECK(strncmp(empty_user.name, "lowpriv@", 8) != 0);
    CHECK(strcmp(plain.key, empty_user.key) != 0);
    CHECK(strcmp(empty_user.key, uri_empty.key) == 0);
    CHECK(strcmp(plain.key, arr_empty.key) == 0);
    CHECK(strcmp(plain.key, db_empty.key) != 0);
    CHECK(strcmp(plain.key, pw_empty.key) != 0);
    /* Unset and empty are one thing once resolved (psycopg 3 restates an
     * unset hostaddr as hostaddr=''). */
    struct target no_addr, empty_addr;
    CHECK(target_of_conninfo(&no_addr, "host=/tmp"));
    CHECK(target_of_conninfo(&empty_addr, "host=/tmp hostaddr=''"));
    CHECK(strcmp(no_addr.key, empty_addr.key) == 0);
    /* A keyword array cannot restate "password=''" once PGPASSWORD is set. */
    CHECK(plain.restatable && !pw_empty.restatable);
    *okp = ok;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* What a service names is read from its file at every connect. */
TEST(target_service_file_is_read)
{
    bool ok = true;
    char path[] = "/tmp/pqshim-unit-svc-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    struct target a, b, c;
    setenv("PGSERVICEFILE", path, 1);
    write_file(path, "[svc]\nuser=alice\ndbname=one\n");
    CHECK(target_of_conninfo(&a, "service=svc host=/tmp"));
    write_file(path, "[svc]\nuser=bob\ndbname=two\n");
    CHECK(target_of_conninfo(&b, "service=svc host=/tmp"));
    /* Restated without its service (libpq does not report it), a request
     * would read PGSERVICE's instead: no gate may restate it. */
    write_file(path, "[svc]\nuser=bob\n[envsvc]\npassword=other\n");
    struct target d, e;
    CHECK(target_of_conninfo(&d, "service=svc host=/tmp"));
    setenv("PGSERVICE", "envsvc", 1);
    CHECK(target_of_conninfo(&e, "service=svc host=/tmp"));
    unsetenv("PGSERVICE");
    CHECK(d.restatable && !e.restatable);
    write_file(path, "[other]\nuser=bob\n");
    CHECK(!target_of_conninfo(&c, "service=svc host=/tmp")); /* libpq refuses it */
    unsetenv("PGSERVICEFILE");
    unlink(path);
    CHECK(strcmp(a.name, "alice@/tmp:5432/one") == 0);
    CHECK(strcmp(b.name, "bob@/tmp:5432/two") == 0);
    CHECK(strcmp(a.key, b.key) != 0);
    *okp = ok;
}

/* The password file's contents are part of the identity, read again
 * when they change; a password given outright makes it irrelevant. */
TEST(target_password_file_counts)
{
    bool ok = true;
    char path[] = "/tmp/pqshim-unit-pass-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    struct target a, a2, b, gone, given1, given2;
    setenv("PGPASSFILE", path, 1);
    write_file(path, "*:*:*:*:first\n");
    CHECK(target_of_conninfo(&a, "host=/tmp user=alice"));
    CHECK(target_of_conninfo(&a2, "host=/tmp user=alice"));
    CHECK(target_of_conninfo(&given1, "host=/tmp user=alice password=x"));
    write_file(path, "*:*:*:*:other\n");
    CHECK(target_of_conninfo(&b, "host=/tmp user=alice"));
    CHECK(target_of_conninfo(&given2, "host=/tmp user=alice password=x"));
    unlink(path);
    CHECK(target_of_conninfo(&gone, "host=/tmp user=alice"));
    unsetenv("PGPASSFILE");
    CHECK(strcmp(a.key, a2.key) == 0);
    CHECK(strcmp(a.key, b.key) != 0);
    CHECK(strcmp(a.key, gone.key) != 0 && strcmp(b.key, gone.key) != 0);
    CHECK(strcmp(given1.key, given2.key) == 0);
    *okp = ok;
}

/* Checked by libpq against the server at connect time only. */
TEST(target_session_attrs_not_poolable)
{
    bool ok = true;
    struct target any, rw;
    CHECK(target_of_conninfo(&any, "host=/tmp target_session_attrs=any"));
    CHECK(target_of_conninfo(&rw, "host=/tmp target_session_attrs=read-write"));
    CHECK(any.poolable && !rw.poolable);
    CHECK(strcmp(rw.unpooled, "target_session_attrs") == 0);
    *okp = ok;
}

/* ---- the target cache --------------------------------------------------- */

static bool request_of_conninfo(struct target_request *r, const char *conninfo)
{
    struct connect_request req = {.kind = REQ_CONNINFO, .conninfo = conninfo};
    return target_request_of(r, &req, 0);
}

static void fake_target(struct target *t, const char *name)
{
    memset(t, 0, sizeof *t);
    snprintf(t->key, sizeof t->key, "%s", name);
    snprintf(t->name, sizeof t->name, "%s", name);
}

TEST(target_cache_same_request_same_target)
{
    bool ok = true;
    struct target_request a, b, c;
    struct target t, got;
    CHECK(request_of_conninfo(&a, "dbname=cache_one"));
    CHECK(request_of_conninfo(&b, "dbname=cache_one"));
    CHECK(request_of_conninfo(&c, "dbname=cache_two"));
    CHECK(a.len == b.len && memcmp(a.bytes, b.bytes, a.len) == 0);
    fake_target(&t, "one");
    target_cache_put(&a, &t);
    CHECK(target_cache_get(&b, &got) && strcmp(got.name, "one") == 0);
    CHECK(!target_cache_get(&c, &got) || strcmp(got.name, "one") != 0);
    /* A NULL and an empty string, a keyword and its value: never alike. */
    const char *kw1[] = {"dbname", "user", NULL}, *v1[] = {"x", NULL, NULL};
    const char *kw2[] = {"dbname", "user", NULL}, *v2[] = {"x", "", NULL};
    struct connect_request r1 = {.kind = REQ_PARAMS, .keywords = kw1, .values = v1};
    struct connect_request r2 = {.kind = REQ_PARAMS, .keywords = kw2, .values = v2};
    CHECK(target_request_of(&a, &r1, 0) && target_request_of(&b, &r2, 0));
    CHECK(a.len != b.len || memcmp(a.bytes, b.bytes, a.len) != 0);
    /* Another libpq copy, another request. */
    CHECK(target_request_of(&a, &r1, 0) && target_request_of(&b, &r1, 1));
    CHECK(memcmp(a.bytes, b.bytes, a.len < b.len ? a.len : b.len) != 0);
    *okp = ok;
}

TEST(target_cache_sees_environment)
{
    bool ok = true;
    struct target_request a, b, c;
    unsetenv("PGAPPNAME");
    CHECK(request_of_conninfo(&a, ""));
    setenv("PGAPPNAME", "cache_test", 1);
    CHECK(request_of_conninfo(&b, ""));
    CHECK(a.len != b.len || memcmp(a.bytes, b.bytes, a.len) != 0);
    setenv("HOME", "/nonexistent/cache_test", 1);
    CHECK(request_of_conninfo(&c, ""));
    CHECK(b.len != c.len || memcmp(b.bytes, c.bytes, b.len) != 0);
    unsetenv("PGAPPNAME");
    /* A service file may change under us: never cached. */
    CHECK(!request_of_conninfo(&a, "service=cache_test"));
    setenv("PGSERVICE", "cache_test", 1);
    CHECK(!request_of_conninfo(&a, ""));
    unsetenv("PGSERVICE");
    *okp = ok;
}

TEST(target_cache_is_bounded)
{
    bool ok = true;
    struct target_request r;
    struct target t, got;
    char conninfo[64];
    fake_target(&t, "many");
    for (int i = 0; i < 10 * TARGET_CACHE_SLOTS; i++) {
        snprintf(conninfo, sizeof conninfo, "dbname=spelling_%d", i);
        CHECK(request_of_conninfo(&r, conninfo));
        target_cache_put(&r, &t);
        CHECK(target_cache_get(&r, &got) && strcmp(got.name, "many") == 0);
    }
    CHECK(target_cache_count() <= TARGET_CACHE_SLOTS);
    CHECK(target_cache_count() > TARGET_CACHE_SLOTS / 2);
    /* Too long to remember: not cached, never truncated. */
    char *big = malloc(TARGET_REQUEST_MAX + 16);
    CHECK(big != NULL);
    if (big) {
        memset(big, 'a', TARGET_REQUEST_MAX + 15);
        big[TARGET_REQUEST_MAX + 15] = '\0';
        CHECK(!request_of_conninfo(&r, big));
        free(big);
    }
    *okp = ok;
}

int main(void)
{
    pq.PQconninfoParse = PQconninfoParse;
    pq.PQconninfoFree = PQconninfoFree;
    pq.PQfreemem = PQfreemem;
    pq.PQconnectStartParams = PQconnectStartParams;
    pq.PQconninfo = PQconninfo;
    pq.PQconndefaults = PQconndefaults;
    pq.PQstatus = PQstatus;
    pq.PQfinish = PQfinish;
    RUN(config_defaults);
    RUN(config_valid_values);
    RUN(config_invalid_values_keep_defaults);
    RUN(config_numbers_are_plain_digits);
    RUN(config_unknown_variable_warns);
    RUN(config_zero_cap_is_refused);
    RUN(config_table_consistent);
    RUN(config_value_strings);
    RUN(log_text_line);
    RUN(log_json_line);
    RUN(log_line_is_bounded);
    RUN(log_escapes_bad_bytes);
    RUN(escape_styles);
    RUN(target_spellings_agree);
    RUN(target_differences_separate);
    RUN(target_libpq_copies_separate);
    RUN(target_later_params_override);
    RUN(target_environment_counts);
    RUN(target_rejects_bad_input);
    RUN(target_replication_not_poolable);
    RUN(target_long_keys);
    RUN(target_empty_values_count);
    RUN(target_service_file_is_read);
    RUN(target_password_file_counts);
    RUN(target_session_attrs_not_poolable);
    RUN(target_cache_same_request_same_target);
    RUN(target_cache_sees_environment);
    RUN(target_cache_is_bounded);
    printf("%d passed, %d failed\n", cases - failures, failures);
    return failures ? 1 : 0;
}
