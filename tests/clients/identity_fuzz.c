/*
 * identity_fuzz — a seeded random sequence of connect requests (strings,
 * URIs, keyword arrays with and without expansion, PQsetdbLogin, async
 * starts; empty, quoted and repeated keys; services; passwords) with
 * changes between them (environment, service file, password file, and the
 * effective user when run as root), printing one line per request: who
 * the server says the session is, or the error. Run once directly and once
 * through the shim's capped pool, the two outputs must be identical.
 *
 *   identity_fuzz SEED COUNT DIR SOCKDIR PORT [OTHER_UID]
 *
 * DIR holds the service and password files (and is HOME). Roles and
 * databases: see tests/integration/34-identity.sh.
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned long long rng;

static unsigned pick(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

#define PICK(arr) (arr)[pick(sizeof(arr) / sizeof(arr)[0])]

/* NULL: the key is left out. */
static const char *users[] = {"fz_trust", "fz_scram", "fz_md5", "fz_peer",
                              "fz_super", "fz_nologin", "", NULL, NULL};
static const char *dbs[] = {"postgres", "fz_db1", "", "fz_nodb", NULL, NULL};
static const char *passwords[] = {"scram-pw", "md5-pw", "wrong", "", NULL, NULL, NULL};
static const char *apps[] = {"fzapp", "", NULL, NULL};
static const char *services[] = {"svc1", "svc2", NULL, NULL, NULL, NULL};
static const char *sslmodes[] = {"disable", "prefer", NULL, NULL};
static const char *optionses[] = {"-c search_path=fz", "", NULL, NULL, NULL};

static const char *dir, *sockdir, *port;
static char second_passfile[4200];
static char tcp_host[] = "127.0.0.1";

struct pair {
    const char *kw;
    const char *val;
};

struct request {
    int n;
    struct pair p[16];
};

static void add(struct request *r, const char *kw, const char *val)
{
    if (val && r->n < 16)
        r->p[r->n++] = (struct pair){kw, val};
}

static void quote(char *out, size_t size, const char *v)
{
    size_t o = 0;
    out[o++] = '\'';
    for (; *v && o + 3 < size; v++) {
        if (*v == '\'' || *v == '\\')
            out[o++] = '\\';
        out[o++] = *v;
    }
    out[o++] = '\'';
    out[o] = '\0';
}

static void as_string(const struct request *r, char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < r->n; i++) {
        char q[512];
        quote(q, sizeof q, r->p[i].val);
        o += (size_t)snprintf(out + o, size - o, "%s%s=%s", i ? " " : "", r->p[i].kw, q);
    }
}

static void percent(char *out, size_t size, const char *v)
{
    size_t o = 0;
    for (; *v && o + 4 < size; v++) {
        unsigned char c = (unsigned char)*v;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '-' || c == '.')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, size - o, "%%%02X", c);
    }
    out[o] = '\0';
}

static void as_uri(const struct request *r, char *out, size_t size)
{
    size_t o = (size_t)snprintf(out, size, "postgresql://?");
    for (int i = 0; i < r->n; i++) {
        char e[512];
        percent(e, sizeof e, r->p[i].val);
        o += (size_t)snprintf(out + o, size - o, "%s%s=%s", i ? "&" : "", r->p[i].kw, e);
    }
}

static void random_request(struct request *r)
{
    r->n = 0;
    /* The order of keys, and repeats, vary. */
    int rounds = 1 + (pick(4) == 0);
    for (int k = 0; k < rounds; k++) {
        const char *host = pick(3) == 0 ? NULL : pick(2) ? sockdir : tcp_host;
        add(r, "service", PICK(services));
        add(r, "host", host);
        add(r, "user", PICK(users));
        add(r, "dbname", PICK(dbs));
        add(r, "password", PICK(passwords));
        add(r, "application_name", PICK(apps));
        add(r, "sslmode", PICK(sslmodes));
        add(r, "options", PICK(optionses));
        if (pick(4) == 0)
            add(r, "hostaddr", ""); /* as psycopg 3 restates an unset one */
        if (pick(5) == 0)
            add(r, "passfile", pick(2) ? second_passfile : "");
    }
    for (int i = r->n - 1; i > 0; i--) {
        int j = (int)pick((unsigned)i + 1);
        struct pair t = r->p[i];
        r->p[i] = r->p[j];
        r->p[j] = t;
    }
}

static void write_file(const char *name, mode_t mode, const char *fmt, ...)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        perror(tmp);
        exit(2);
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    chmod(tmp, mode);
    /* Some changes in place (same inode), some by rename. */
    if (pick(2))
        rename(tmp, path);
    else {
        FILE *in = fopen(tmp, "r"), *out = fopen(path, "w");
        char buf[4096];
        size_t n;
        while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0)
            fwrite(buf, 1, n, out);
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        chmod(path, mode);
        unlink(tmp);
    }
}

static void rewrite_services(void)
{
    const char *user1 = users[pick(7)], *db1 = pick(2) ? "fz_db1" : "postgres";
    const char *pw1 = pick(2) ? passwords[pick(4)] : NULL;
    const char *host2 = pick(2) ? sockdir : tcp_host, *user2 = pick(2) ? "fz_scram" : "fz_md5";
    write_file(".pg_service.conf", 0644,
               "[svc1]\nuser=%s\ndbname=%s\n%s%s\n[svc2]\nhost=%s\nuser=%s\n%s\n",
               user1, db1, pw1 ? "password=" : "", pw1 ? pw1 : "", host2, user2,
               pick(2) ? "application_name=from_service" : "");
}

static void rewrite_passfile(void)
{
    const char *scram = pick(3) ? "scram-pw" : "wrong";
    const char *md5 = pick(3) ? "md5-pw" : "wrong";
    if (pick(6) == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/.pgpass", dir);
        unlink(path);
        printf("passfile removed\n");
        return;
    }
    const char *which = pick(3) ? ".pgpass" : "pgpass2";
    write_file(which, 0600, "*:*:*:fz_scram:%s\n*:*:*:fz_md5:%s\n", scram, md5);
    printf("passfile %s scram=%s md5=%s\n", which, scram, md5);
}

static void change_environment(void)
{
    static const char *names[] = {"PGUSER", "PGDATABASE", "PGPASSWORD", "PGAPPNAME",
                                  "PGSERVICE", "PGOPTIONS", "PGHOST", "PGPASSFILE"};
    const char *name = PICK(names);
    const char *value = NULL;
    if (strcmp(name, "PGUSER") == 0)
        value = users[pick(6)];
    else if (strcmp(name, "PGDATABASE") == 0)
        value = dbs[pick(2)];
    else if (strcmp(name, "PGPASSWORD") == 0)
        value = passwords[pick(3)];
    else if (strcmp(name, "PGAPPNAME") == 0)
        value = "envapp";
    else if (strcmp(name, "PGSERVICE") == 0)
        value = "svc1";
    else if (strcmp(name, "PGOPTIONS") == 0)
        value = "-c search_path=env";
    else if (strcmp(name, "PGPASSFILE") == 0)
        value = second_passfile;
    else
        value = pick(2) ? sockdir : tcp_host;
    if (pick(3) == 0 && strcmp(name, "PGHOST") != 0) {
        unsetenv(name);
        printf("unsetenv %s\n", name);
    } else {
        setenv(name, value, 1);
        printf("setenv %s=%s\n", name, value);
    }
}

/* What the server says the session is, or the error, on one line. */
static void report(PGconn *c)
{
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\t')
                *p = ' ';
        printf("  FAIL %s\n", msg);
        return;
    }
    PGresult *res = PQexec(c, "select session_user, current_user, current_database(), "
                              "current_setting('application_name'), "
                              "current_setting('search_path'), "
                              "(select ssl from pg_stat_ssl where pid = pg_backend_pid())");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        printf("  QUERY-FAIL %s", PQerrorMessage(c));
    else
        printf("  OK session_user=%s current_user=%s db=%s app=%s search_path=%s ssl=%s "
               "PQuser=%s PQdb=%s\n",
               PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
               PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5),
               PQuser(c), PQdb(c));
    PQclear(res);
}

static PGconn *poll_to_end(PGconn *c)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (int i = 0; c && i < 100000 && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED; i++) {
        int fd = PQsocket(c);
        if (fd >= 0) {
            fd_set set;
            FD_ZERO(&set);
            FD_SET(fd, &set);
            struct timeval tv = {5, 0};
            if (st == PGRES_POLLING_READING)
                select(fd + 1, &set, NULL, NULL, &tv);
            else
                select(fd + 1, NULL, &set, NULL, &tv);
        }
        st = PQconnectPoll(c);
    }
    return c;
}

static PGconn *connect_as(const struct request *r, int kind)
{
    char s[8192];
    const char *kw[20], *val[20];
    switch (kind) {
    case 0:
        as_string(r, s, sizeof s);
        printf("PQconnectdb(\"%s\")\n", s);
        return PQconnectdb(s);
    case 1:
        as_uri(r, s, sizeof s);
        printf("PQconnectdb(\"%s\")\n", s);
        return PQconnectdb(s);
    case 2:
    case 3: {
        printf("PQconnectdbParams(expand=0:");
        for (int i = 0; i < r->n; i++) {
            kw[i] = r->p[i].kw;
            val[i] = r->p[i].val;
            printf(" %s='%s'", kw[i], val[i]);
        }
        printf(")\n");
        kw[r->n] = val[r->n] = NULL;
        return kind == 2 ? PQconnectdbParams(kw, val, 0)
                         : poll_to_end(PQconnectStartParams(kw, val, 0));
    }
    case 4: {
        /* The first half as an expanded dbname, the rest as keys after it. */
        struct request head = *r;
        head.n = r->n / 2;
        as_string(&head, s, sizeof s);
        kw[0] = "dbname";
        val[0] = s;
        int n = 1;
        printf("PQconnectdbParams(expand=1: dbname=\"%s\"", s);
        for (int i = head.n; i < r->n; i++, n++) {
            kw[n] = r->p[i].kw;
            val[n] = r->p[i].val;
            printf(" %s='%s'", kw[n], val[n]);
        }
        printf(")\n");
        kw[n] = val[n] = NULL;
        return PQconnectdbParams(kw, val, 1);
    }
    case 5:
        as_string(r, s, sizeof s);
        printf("PQconnectStart(\"%s\")\n", s);
        return poll_to_end(PQconnectStart(s));
    default: {
        /* PQsetdbLogin: what it has arguments for, the rest in dbName. */
        const char *host = NULL, *user = NULL, *pw = NULL, *opts = NULL;
        struct request rest = {0};
        for (int i = 0; i < r->n; i++) {
            const char *k = r->p[i].kw, *v = r->p[i].val;
            if (strcmp(k, "host") == 0)
                host = v;
            else if (strcmp(k, "user") == 0)
                user = v;
            else if (strcmp(k, "password") == 0)
                pw = v;
            else if (strcmp(k, "options") == 0)
                opts = v;
            else
                add(&rest, k, v);
        }
        as_string(&rest, s, sizeof s);
        const char *db = rest.n ? s : NULL;
        printf("PQsetdbLogin(host=%s options=%s db=%s user=%s pw=%s)\n", host ? host : "-",
               opts ? opts : "-", db ? db : "-", user ? user : "-", pw ? pw : "-");
        return PQsetdbLogin(host, port, opts, NULL, db, user, pw);
    }
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: identity_fuzz SEED COUNT DIR SOCKDIR PORT [OTHER_UID]\n");
        return 2;
    }
    rng = strtoull(argv[1], NULL, 10) * 2654435761ULL + 88172645463325252ULL;
    int count = atoi(argv[2]);
    dir = argv[3];
    sockdir = argv[4];
    port = argv[5];
    uid_t other = argc > 6 ? (uid_t)atoi(argv[6]) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const char *clear[] = {"PGUSER", "PGDATABASE", "PGPASSWORD", "PGAPPNAME",
                                  "PGSERVICE", "PGOPTIONS", "PGSERVICEFILE",
                                  "PGPASSFILE", "PGSSLMODE", "PGHOSTADDR"};
    for (size_t i = 0; i < sizeof clear / sizeof clear[0]; i++)
        unsetenv(clear[i]);
    setenv("HOME", dir, 1);
    snprintf(second_passfile, sizeof second_passfile, "%s/pgpass2", dir);
    setenv("PGHOST", sockdir, 1);
    setenv("PGPORT", port, 1);
    setenv("PGCONNECT_TIMEOUT", "10", 1);
    rewrite_services();
    rewrite_passfile();

    PGconn *held[3] = {0};
    for (int i = 0; i < count; i++) {
        printf("#%d ", i);
        unsigned what = pick(100);
        if (what < 10) {
            change_environment();
            continue;
        }
        if (what < 15) {
            if (geteuid() != 0) {
                printf("(not root)\n");
                continue;
            }
            rewrite_services();
            printf("services rewritten\n");
            continue;
        }
        if (what < 20) {
            if (geteuid() != 0) {
                printf("(not root)\n");
                continue;
            }
            rewrite_passfile();
            continue;
        }
        if (what < 23) {
            if (other && geteuid() == 0 && seteuid(other) == 0)
                printf("seteuid other\n");
            else if (other && geteuid() != 0 && seteuid(0) == 0)
                printf("seteuid root\n");
            else
                printf("(no other user)\n");
            continue;
        }
        /* Mostly one of the last few requests again, in any spelling:
         * what a pool would share, with the changes above in between. */
        static struct request recent[4];
        static int known;
        struct request r;
        if (known && pick(10) < 7) {
            r = recent[pick((unsigned)known)];
        } else {
            random_request(&r);
            recent[known < 4 ? known++ : (int)pick(4)] = r;
        }
        PGconn *c = connect_as(&r, (int)pick(7));
        report(c);
        /* Mostly finished at once (back to the pool), some held a while. */
        int slot = (int)pick(3);
        if (PQstatus(c) == CONNECTION_OK && pick(4) == 0) {
            if (held[slot])
                PQfinish(held[slot]);
            held[slot] = c;
        } else {
            PQfinish(c);
        }
    }
    for (int i = 0; i < 3; i++)
        if (held[i])
            PQfinish(held[i]);
    return 0;
}
