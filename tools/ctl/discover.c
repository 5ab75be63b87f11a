/*
 * discover.c — finding the control sockets of shimmed processes: one
 * process's through /proc/PID/environ, or every one this user may see
 * (every process's environment, and a socket directory), each asked at
 * once; stale sockets reported, and removed when they are this user's.
 */
#define _GNU_SOURCE
#include "discover.h"

#include "json.h"
#include "util.h"
#include "../../shim/control_path.h"
#include "../../shim/control_protocol.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The whole of a /proc file (NUL-terminated; may hold NULs), or NULL. */
static char *read_proc_file(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *data = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= (16u << 20))
                break;
            cap *= 2;
            data = xrealloc(data, cap);
        }
        ssize_t n = read(fd, data + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            free(data);
            errno = err;
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    data[len] = '\0';
    if (len_out)
        *len_out = len;
    return data;
}

/* PQSHIM_CONTROL from a process's environment (malloc'd), or NULL. */
static char *proc_control_pattern(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    size_t len;
    char *env = read_proc_file(path, &len);
    if (!env)
        return NULL;
    char *found = NULL;
    for (size_t i = 0; i < len; i += strlen(env + i) + 1)
        if (strncmp(env + i, "PQSHIM_CONTROL=", 15) == 0 && env[i + 15]) {
            free(found);
            found = xstrdup(env + i + 15); /* the last one wins, as in getenv */
        }
    free(env);
    return found;
}

/* The effective uid of a process (the one the shim expands %u with, and
 * the owner of the socket it creates). */
static bool proc_euid(pid_t pid, uid_t *uid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *status = read_proc_file(path, NULL);
    if (!status)
        return false;
    char *line = strstr(status, "\nUid:");
    unsigned real, eff;
    bool ok = line && sscanf(line + 5, "%u %u", &real, &eff) == 2;
    if (ok)
        *uid = (uid_t)eff;
    free(status);
    return ok;
}

/* The socket of process pid and its owner; on failure a message and false. */
bool pid_socket(pid_t pid, char *out, size_t size, uid_t *owner)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d", (int)pid);
    struct stat st;
    if (pid <= 0 || stat(dir, &st) != 0) {
        errmsg("no such process: %d", (int)pid);
        return false;
    }
    char *pattern = proc_control_pattern(pid);
    const char *from = "its environment";
    if (!pattern) {
        const char *own = getenv("PQSHIM_CONTROL");
        if (!own || !*own) {
            errmsg("process %d: no PQSHIM_CONTROL in its environment (or it is not "
                   "readable) and none set here; name the socket with -s", (int)pid);
            return false;
        }
        pattern = xstrdup(own);
        from = "this environment";
    }
    uid_t uid;
    if (!proc_euid(pid, &uid))
        uid = st.st_uid;
    *owner = uid;
    bool ok = control_expand_path(pattern, pid, uid, out, size) && strlen(out) < SUN_PATH_SIZE;
    if (!ok)
        errmsg("process %d: PQSHIM_CONTROL from %s expands to an empty or too long path",
               (int)pid, from);
    free(pattern);
    return ok;
}

/* Notes hold paths and words from other users: cleaned once, here. */
static void scan_note(struct scan *s, char *note)
{
    s->notes = xrealloc(s->notes, sizeof *s->notes * (size_t)(s->nnotes + 1));
    s->notes[s->nnotes++] = clean(note);
    free(note);
}

/* A socket at path (looked at, never followed at its end), served by
 * owner's processes; named_by its process, or 0. */
static void scan_add(struct scan *s, const char *path, pid_t named_by, uid_t owner)
{
    struct stat st;
    if (strlen(path) >= SUN_PATH_SIZE || lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return;
    /* A process's own socket is its owner's file: a path that leads to
     * anyone else's socket (through a symlinked directory, say) is not
     * even connected to. */
    if (named_by && st.st_uid != owner) {
        scan_note(s, xasprintf("%s (named by process %d of uid %u) is a socket of uid %u: "
                               "not asked", path, (int)named_by, (unsigned)owner,
                               (unsigned)st.st_uid));
        return;
    }
    for (int i = 0; i < s->n; i++)
        if (s->v[i].dev == st.st_dev && s->v[i].ino == st.st_ino)
            return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = xrealloc(s->v, sizeof *s->v * (size_t)s->cap);
    }
    struct entry *e = &s->v[s->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", path);
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->named_by = named_by;
    e->owner = named_by ? owner : st.st_uid;
    e->fd = -1;
}

/* Every process whose environment we may read and that names a socket. */
static void scan_processes(struct scan *s)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    pid_t self = getpid();
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid > INT_MAX || pid == self)
            continue;
        char *pattern = proc_control_pattern((pid_t)pid);
        uid_t uid;
        char path[SUN_PATH_SIZE];
        if (pattern && proc_euid((pid_t)pid, &uid) &&
            control_expand_path(pattern, (pid_t)pid, uid, path, sizeof path))
            scan_add(s, path, (pid_t)pid, uid);
        free(pattern);
    }
    closedir(d);
}

/* Every socket in dir. False when dir cannot be read. */
static bool scan_dir(struct scan *s, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < (int)sizeof path)
            scan_add(s, path, 0, 0);
    }
    closedir(d);
    return true;
}

/* The directory of our own PQSHIM_CONTROL pattern, unless it varies per
 * process (%p): then there is no one directory to look in. */
static bool own_socket_dir(char *out, size_t size)
{
    const char *pattern = getenv("PQSHIM_CONTROL");
    if (!pattern || pattern[0] != '/')
        return false;
    const char *slash = strrchr(pattern, '/');
    char dir[PATH_MAX];
    size_t n = (size_t)(slash - pattern);
    if (n >= sizeof dir)
        return false;
    memcpy(dir, pattern, n);
    dir[n] = '\0';
    if (n == 0)
        snprintf(dir, sizeof dir, "/");
    if (strstr(dir, "%p"))
        return false;
    return control_expand_path(dir, getpid(), geteuid(), out, size);
}

/* Does the socket named base in dir refuse connections? Connected to
 * through the directory's descriptor, so it is the very file looked at. */
static bool refuses(int dir, const char *base)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", dir, base) >=
        (int)sizeof addr.sun_path)
        return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int err = errno;
    close(fd);
    return rc != 0 && err == ECONNREFUSED;
}

/* Remove a socket nobody listens on, if it is ours to remove: our own
 * user's socket, named by none of another user's processes. It is looked
 * at, tested and removed through its directory's descriptor, never
 * followed, and only if it is still the same file (device and inode):
 * a path from anyone's environment can never make this remove anything
 * else. A note, or NULL. */
static char *clear_stale(const struct entry *e)
{
    if (e->owner != geteuid())
        return xasprintf("stale socket %s (no process listening), served for uid %u: "
                         "not removed (only this user's own are)", e->path, (unsigned)e->owner);
    char base[SUN_PATH_SIZE];
    int dir = control_open_dir(e->path, base, sizeof base);
    if (dir < 0)
        return xasprintf("stale socket %s (no process listening): not removed: %s", e->path,
                         strerror(errno));
    struct stat st, again;
    char *note = NULL;
    if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode) ||
        st.st_dev != e->dev || st.st_ino != e->ino) {
        note = xasprintf("%s: replaced while it was looked at; left alone", e->path);
    } else if (st.st_uid != geteuid()) {
        note = xasprintf("stale socket %s (no process listening), owned by uid %u: not removed",
                         e->path, (unsigned)st.st_uid);
    } else {
        /* A process between bind() and listen() refuses too: look again. */
        poll(NULL, 0, 50);
        if (!refuses(dir, base))
            note = NULL;
        else if (fstatat(dir, base, &again, AT_SYMLINK_NOFOLLOW) != 0 ||
                 again.st_dev != st.st_dev || again.st_ino != st.st_ino)
            note = xasprintf("%s: replaced while it was looked at; left alone", e->path);
        else if (unlinkat(dir, base, 0) != 0)
            note = xasprintf("stale socket %s (no process listening): cannot remove: %s",
                             e->path, strerror(errno));
        else
            note = xasprintf("stale socket %s (no process listening): removed (its process "
                             "was killed or ended with _exit)", e->path);
    }
    close(dir);
    return note;
}

/* Ask every candidate; keep those that answered as themselves, note the
 * rest (which ones timed out, which were not believed, ...). */
static void scan_query(struct scan *s, const char *command, double timeout)
{
    exchange_all(s->v, s->n, command, timeout, timeout * OVERALL_FACTOR);
    int kept = 0;
    bool is_status = strcmp(command, CONTROL_CMD_STATUS) == 0;
    for (int i = 0; i < s->n; i++) {
        struct entry *e = &s->v[i];
        if (e->rc == -ECONNREFUSED) {
            char *note = clear_stale(e);
            if (note)
                scan_note(s, note);
            continue;
        }
        if (e->rc == -ENOENT)
            continue; /* gone meanwhile: the process exited */
        if (e->rc < 0) {
            if (e->pid > 0)
                scan_note(s, xasprintf("%s (pid %d): %s", e->path, (int)e->pid,
                                       talk_error(e, timeout)));
            else
                scan_note(s, xasprintf("%s: %s", e->path, talk_error(e, timeout)));
            continue;
        }
        struct json *j = NULL;
        if (e->reply.data[0] == '{')
            j = json_parse(e->reply.data, e->reply.len);
        const char *error = json_str(j, CONTROL_KEY_ERROR, NULL);
        bool bad_pid = is_status && j && !error && json_num(j, CONTROL_KEY_PID) != (double)e->pid;
        if (error || (!j && is_status) || bad_pid) {
            if (bad_pid)
                scan_note(s, xasprintf("%s: the reply claims pid %.0f but pid %d serves it: "
                                       "ignored", e->path, json_num(j, CONTROL_KEY_PID),
                                       (int)e->pid));
            else
                scan_note(s, xasprintf("%s: %s", e->path, error ? error : "malformed reply"));
            json_free(j);
            reply_free(&e->reply);
            continue;
        }
        bool dup = false;
        for (int k = 0; k < kept; k++)
            dup |= s->v[k].pid == e->pid;
        if (dup) {
            json_free(j);
            reply_free(&e->reply);
            continue;
        }
        if (is_status)
            e->status = j;
        else
            json_free(j);
        if (kept != i) {
            s->v[kept] = *e;
            memset(e, 0, sizeof *e);
        }
        kept++;
    }
    s->n = kept;
}

static int by_pid(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

void scan_free(struct scan *s)
{
    for (int i = 0; i < s->n; i++) {
        reply_free(&s->v[i].reply);
        json_free(s->v[i].status);
    }
    for (int i = 0; i < s->nnotes; i++)
        free(s->notes[i]);
    free(s->v);
    free(s->notes);
    memset(s, 0, sizeof *s);
}

/* Find and ask every shimmed process we may see (only_dir: just the
 * sockets in dir, no /proc scan). */
bool scan_all(struct scan *s, const char *dir, bool only_dir, const char *command,
                     double timeout)
{
    memset(s, 0, sizeof *s);
    if (!only_dir)
        scan_processes(s);
    char own[PATH_MAX];
    if (dir) {
        if (!scan_dir(s, dir)) {
            errmsg("cannot read directory %s: %s", dir, strerror(errno));
            return false;
        }
    } else if (own_socket_dir(own, sizeof own)) {
        scan_dir(s, own); /* it may not exist yet: nothing there then */
    }
    scan_query(s, command, timeout);
    if (strcmp(command, CONTROL_CMD_STATUS) == 0)
        qsort(s->v, (size_t)s->n, sizeof *s->v, by_pid);
    return true;
}

