/*
 * identity.c — who the server will believe is connecting, beyond the
 * connection options: the process's effective user and group (peer and
 * ident authentication), the password file, TLS client certificate and
 * key files, root certificates and revocation lists, and the Kerberos
 * credential cache. libpq reads all of them at connect time, so they are
 * read at every connect too and appended to the target's key: a pooled
 * session only goes to a connect that libpq would have authenticated the
 * same way.
 *
 * A file is identified by its contents (two hashes), its mode and owner;
 * the contents are read again whenever the file's status changes, and
 * also while it was changed too recently for its timestamps to tell two
 * writes apart (the "racy" rule of git's index).
 */
#define _GNU_SOURCE
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Files larger than this are identified by their status alone. */
#define CONTENT_MAX (1 << 20)
/* Timestamps closer than this to the reading may hide a later write. */
#define RACY_SECONDS 2
#define REMEMBERED 8
#define PATH_KEPT 512

struct fingerprint {
    char path[PATH_KEPT];
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    mode_t mode;
    uid_t uid;
    time_t read_at;
    uint64_t h1, h2;
};

/* Per thread: no lock, nothing to do at fork. */
static __thread struct fingerprint remembered[REMEMBERED];
static __thread unsigned next_slot;

static bool same_status(const struct fingerprint *f, const struct stat *st)
{
    return f->dev == st->st_dev && f->ino == st->st_ino &&
           f->size == st->st_size && f->mode == st->st_mode &&
           f->uid == st->st_uid && f->mtime.tv_sec == st->st_mtim.tv_sec &&
           f->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           f->ctime.tv_sec == st->st_ctim.tv_sec &&
           f->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Two independent 64-bit hashes of a file's bytes. False: unreadable. */
static bool hash_contents(const char *path, const struct stat *st,
                          uint64_t *h1, uint64_t *h2)
{
    int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat now;
    /* Replaced between stat and open: read nothing but a regular file. */
    if (fstat(fd, &now) != 0 || !S_ISREG(now.st_mode) ||
        now.st_ino != st->st_ino || now.st_dev != st->st_dev) {
        close(fd);
        return false;
    }
    uint64_t a = 1469598103934665603ULL, b = 0x9e3779b97f4a7c15ULL;
    unsigned char buf[4096];
    off_t total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return false;
        }
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            a = (a ^ buf[i]) * 1099511628211ULL;
            b = (b ^ buf[i]) * 0xff51afd7ed558ccdULL + (b >> 31);
        }
        total += n;
        if (total > CONTENT_MAX)
            break;
    }
    close(fd);
    *h1 = a ^ (uint64_t)total;
    *h2 = b;
    return true;
}

/* Two independent 64-bit hashes fed with everything that identifies. */
struct digest {
    uint64_t a, b;
};

static void feed(struct digest *d, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        d->a = (d->a ^ c[i]) * 1099511628211ULL;
        d->b = (d->b ^ c[i]) * 0xff51afd7ed558ccdULL + (d->b >> 31);
    }
}

static void feed_str(struct digest *d, const char *s)
{
    feed(d, s, strlen(s) + 1);
}

/* What identifies path now: absent, its status, or its contents. */
static void feed_file(struct digest *d, const char *path)
{
    struct stat st;
    feed_str(d, path);
    if (stat(path, &st) != 0) {
        int absent = errno == ENOENT || errno == ENOTDIR ? 1 : 2;
        feed(d, &absent, sizeof absent);
        return;
    }
    unsigned owner[2] = {(unsigned)st.st_mode, (unsigned)st.st_uid};
    feed(d, owner, sizeof owner);
    if (!S_ISREG(st.st_mode) || st.st_size > CONTENT_MAX || strlen(path) >= PATH_KEPT) {
        long long status[7] = {(long long)st.st_dev, (long long)st.st_ino,
                               (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                               st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
                               st.st_ctim.tv_nsec};
        feed(d, status, sizeof status);
        return;
    }
    struct fingerprint *f = NULL;
    for (int i = 0; i < REMEMBERED && !f; i++)
        if (strcmp(remembered[i].path, path) == 0)
            f = &remembered[i];
    time_t newest = st.st_mtim.tv_sec > st.st_ctim.tv_sec ? st.st_mtim.tv_sec
                                                          : st.st_ctim.tv_sec;
    if (!f || !same_status(f, &st) || f->read_at - newest < RACY_SECONDS) {
        if (!f)
            f = &remembered[next_slot++ % REMEMBERED];
        snprintf(f->path, sizeof f->path, "%s", path);
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->size = st.st_size;
        f->mtime = st.st_mtim;
        f->ctime = st.st_ctim;
        f->mode = st.st_mode;
        f->uid = st.st_uid;
        f->read_at = time(NULL);
        if (!hash_contents(path, &st, &f->h1, &f->h2)) {
            f->path[0] = '\0'; /* not remembered */
            int unreadable = 3;
            feed(d, &unreadable, sizeof unreadable);
            return;
        }
    }
    uint64_t contents[2] = {f->h1, f->h2};
    feed(d, contents, sizeof contents);
}

/* The Kerberos credential cache: its name, and its file when it is one
 * (KRB5CCNAME, else the usual default FILE:/tmp/krb5cc_UID). A cache of
 * another kind (KEYRING:, KCM:, ...) is identified by its name only. */
static void feed_kerberos(struct digest *d, uid_t euid)
{
    /* Where the Kerberos library finds its configuration and a client
     * keytab (by name: their contents are the administrator's). */
    static const char *const settings[] = {"KRB5_CONFIG", "KRB5_CLIENT_KTNAME",
                                           "KRB5_KTNAME"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(settings[i]);
        feed_str(d, v ? v : "");
    }
    const char *name = getenv("KRB5CCNAME");
    char path[256];
    feed_str(d, name ? name : "");
    if (!name || !*name)
        snprintf(path, sizeof path, "/tmp/krb5cc_%u", (unsigned)euid);
    else if (strncmp(name, "FILE:", 5) == 0)
        snprintf(path, sizeof path, "%s", name + 5);
    else if (name[0] == '/')
        snprintf(path, sizeof path, "%s", name);
    else
        return;
    feed_file(d, path);
}

bool identity_add(struct target *t)
{
    struct digest d = {1469598103934665603ULL, 0x9e3779b97f4a7c15ULL};
    uid_t ids[2] = {geteuid(), getegid()};
    feed(&d, ids, sizeof ids);
    for (const char *p = t->auth_files; *p; p += strlen(p) + 1)
        feed_file(&d, p);
    if (t->over_tcp)
        feed_kerberos(&d, ids[0]);
    /* "\nidentity=" and 32 hex digits, always last in the key. */
    static const char hex[] = "0123456789abcdef";
    char suffix[11 + 32 + 1] = "\nidentity=";
    uint64_t words[2] = {d.a, d.b};
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < 16; i++)
            suffix[10 + w * 16 + i] = hex[(words[w] >> (60 - 4 * i)) & 15];
    suffix[42] = '\0';
    return target_key_append(t, suffix, d.a ^ (d.b >> 7));
}
