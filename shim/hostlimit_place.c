/*
 * hostlimit_place.c — where the host limit's file lives.
 *
 * PQSHIM_HOST_LIMIT_FILE when set. Otherwise a place no other user can
 * take, and the same one for every process of the user whatever its
 * environment (a cron job, a service and a login shell see different
 * variables, XDG_RUNTIME_DIR among them, so none is read):
 *   1. HOME/.pqshim-hostlimit (HOME from the password database), when it
 *      exists: an earlier process found the place below taken;
 *   2. /tmp/pqshim-UID/hostlimit, the directory made mode 0700 and used
 *      only while it is a real directory of the user's that nobody else
 *      may write;
 *   3. when another user took that name first (or it cannot be made):
 *      HOME/.pqshim-hostlimit, created, said once (host_limit_fallback).
 * Every file is opened through its directory's descriptor, never through
 * a symbolic link.
 */
#define _GNU_SOURCE
#include "hostlimit_place.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PRIVATE_DIR "/tmp/pqshim-%u"
#define PRIVATE_NAME "hostlimit"
#define HOME_NAME ".pqshim-hostlimit"

#define FILE_FLAGS (O_RDWR | O_NOFOLLOW | O_CLOEXEC)

void hl_unusable(const char *path, const char *why, int err)
{
    char error[512];
    snprintf(error, sizeof error, "%s%s%s", why, err ? ": " : "",
             err ? strerror(err) : "");
    LOG_EVENT(LOG_LVL_ERROR, "host_limit_unavailable", LF_S("file", path),
              LF_S("error", error),
              LF_S("effect", "PQSHIM_HOST_LIMIT is not applied"));
}

/* Why directory dfd is no place for the user's file (NULL: it is one):
 * it must be the user's, and nobody else may add or replace its entries. */
static const char *dir_refused(int dfd)
{
    struct stat st;
    if (fstat(dfd, &st) != 0)
        return "cannot inspect it";
    if (!S_ISDIR(st.st_mode))
        return "not a directory";
    if (st.st_uid != geteuid())
        return "owned by another user, who made it first";
    if (st.st_mode & 0022)
        return "others may write in it";
    return NULL;
}

/* /tmp/pqshim-UID, made when missing: its descriptor, or -1 with *why. */
static int private_dir(const char *dir, const char **why, int *err)
{
    *err = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        *err = errno;
        *why = "cannot create the directory";
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        *err = errno;
        struct stat st;
        if (lstat(dir, &st) == 0 && st.st_uid != geteuid()) {
            *err = 0; /* mode 0700, say: we may not even look inside */
            *why = "owned by another user, who made it first";
        } else {
            *why = *err == ELOOP || *err == ENOTDIR
                       ? "a symbolic link or another kind of file"
                       : "cannot open the directory";
        }
        return -1;
    }
    *why = dir_refused(dfd);
    if (*why) {
        close(dfd);
        return -1;
    }
    return dfd;
}

/* The user's home directory from the password database (not $HOME, which
 * sudo and su may carry over from another user): its descriptor when it
 * is a fit place, else -1. */
static int home_dir(char *home, size_t size)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &found) != 0 || !found ||
        pw.pw_dir[0] != '/')
        return -1;
    snprintf(home, size, "%s", pw.pw_dir);
    int dfd = open(pw.pw_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0 && dir_refused(dfd)) {
        close(dfd);
        dfd = -1;
    }
    return dfd;
}

static int open_default(char *path, size_t size)
{
    char home[4096], dir[64];
    snprintf(dir, sizeof dir, PRIVATE_DIR, (unsigned)geteuid());
    int home_fd = home_dir(home, sizeof home);
    int fd = home_fd >= 0 ? openat(home_fd, HOME_NAME, FILE_FLAGS) : -1;
    if (fd >= 0) {
        snprintf(path, size, "%s/%s", home, HOME_NAME);
        close(home_fd);
        return fd;
    }
    const char *why;
    int err;
    int dfd = private_dir(dir, &why, &err);
    snprintf(path, size, "%s/%s", dir, PRIVATE_NAME);
    if (dfd >= 0) {
        fd = openat(dfd, PRIVATE_NAME, FILE_FLAGS | O_CREAT, 0600);
        if (fd < 0)
            hl_unusable(path, "cannot open", errno);
        close(dfd);
    } else if (home_fd >= 0) {
        snprintf(path, size, "%s/%s", home, HOME_NAME);
        fd = openat(home_fd, HOME_NAME, FILE_FLAGS | O_CREAT, 0600);
        if (fd < 0) {
            hl_unusable(path, "cannot open", errno);
        } else {
            char error[256];
            snprintf(error, sizeof error, "%s%s%s", why, err ? ": " : "",
                     err ? strerror(err) : "");
            LOG_EVENT(LOG_LVL_WARN, "host_limit_fallback", LF_S("dir", dir),
                      LF_S("error", error), LF_S("file", path));
        }
    } else {
        char error[256];
        snprintf(error, sizeof error, "%s; no home directory of the user's own to use instead",
                 why);
        hl_unusable(dir, error, err);
    }
    if (home_fd >= 0)
        close(home_fd);
    return fd;
}

int hostlimit_place_open(char *path, size_t size, bool *chosen)
{
    const char *configured = config_get()->host_limit_file;
    *chosen = configured[0] != '\0';
    if (!*chosen)
        return open_default(path, size);
    snprintf(path, size, "%s", configured);
    int fd = open(path, FILE_FLAGS | O_CREAT, 0600);
    if (fd < 0)
        hl_unusable(path, "cannot open", errno);
    return fd;
}
