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

/* What identifies path now, appended to buf at *len. */
static bool add_fingerprint(char *buf, size_t size, size_t *len,
                            const char *path)
{
    struct stat st;
    int n;
    if (stat(path, &st) != 0) {
        n = snprintf(buf + *len, size - *len, "\nfile=%s#%s", path,
                     errno == ENOENT || errno == ENOTDIR ? "absent" : "unreadable");
    } else if (!S_ISREG(st.st_mode) || st.st_size > CONTENT_MAX ||
               strlen(path) >= PATH_KEPT) {
        n = snprintf(buf + *len, size - *len,
                     "\nfile=%s#%o:%u:%llx:%llx:%llx:%lld.%09ld:%lld.%09ld", path,
                     (unsigned)st.st_mode, (unsigned)st.st_uid,
                     (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                     (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
                     st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
                     st.st_ctim.tv_nsec);
    } else {
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
                n = snprintf(buf + *len, size - *len, "\nfile=%s#%o:%u:unreadable",
                             path, (unsigned)st.st_mode, (unsigned)st.st_uid);
                goto added;
            }
        }
        n = snprintf(buf + *len, size - *len, "\nfile=%s#%o:%u:%016llx%016llx",
                     path, (unsigned)st.st_mode, (unsigned)st.st_uid,
                     (unsigned long long)f->h1, (unsigned long long)f->h2);
    }
added:
    if (n < 0 || (size_t)n >= size - *len)
        return false;
    *len += (size_t)n;
    return true;
}

/* The Kerberos credential cache: its name, and its file when it is one
 * (KRB5CCNAME, else the usual default FILE:/tmp/krb5cc_UID). A cache of
 * another kind (KEYRING:, KCM:, ...) is identified by its name only. */
static bool add_kerberos(char *buf, size_t size, size_t *len, uid_t euid)
{
    const char *name = getenv("KRB5CCNAME");
    char path[256];
    int n = snprintf(buf + *len, size - *len, "\nkrb5=%s", name ? name : "");
    if (n < 0 || (size_t)n >= size - *len)
        return false;
    *len += (size_t)n;
    if (!name || !*name)
        snprintf(path, sizeof path, "/tmp/krb5cc_%u", (unsigned)euid);
    else if (strncmp(name, "FILE:", 5) == 0)
        snprintf(path, sizeof path, "%s", name + 5);
    else if (name[0] == '/')
        snprintf(path, sizeof path, "%s", name);
    else
        return true;
    return add_fingerprint(buf, size, len, path);
}

bool identity_add(struct target *t)
{
    char *buf = malloc(IDENTITY_MAX);
    if (!buf)
        return false;
    uid_t euid = geteuid();
    size_t len = 0;
    bool ok = true;
    int n = snprintf(buf, IDENTITY_MAX, "\nidentity=%u:%u", (unsigned)euid,
                     (unsigned)getegid());
    ok = n > 0 && n < IDENTITY_MAX;
    len = ok ? (size_t)n : 0;
    for (const char *p = t->auth_files; ok && *p; p += strlen(p) + 1)
        ok = add_fingerprint(buf, IDENTITY_MAX, &len, p);
    if (ok && t->over_tcp)
        ok = add_kerberos(buf, IDENTITY_MAX, &len, euid);
    ok = ok && target_key_append(t, buf);
    free(buf);
    return ok;
}
