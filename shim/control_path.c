/*
 * control_path.c — expand a PQSHIM_CONTROL pattern (shim and pqshimctl).
 */
#include "control_path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

bool control_expand_path(const char *pattern, pid_t pid, uid_t uid, char *out,
                         size_t size)
{
    size_t len = 0;
    for (const char *p = pattern; *p; p++) {
        char piece[32];
        const char *add = piece;
        if (*p == '%' && p[1] == 'p') {
            snprintf(piece, sizeof piece, "%d", (int)pid);
            p++;
        } else if (*p == '%' && p[1] == 'u') {
            snprintf(piece, sizeof piece, "%u", (unsigned)uid);
            p++;
        } else if (*p == '%' && p[1] == '%') {
            add = "%";
            p++;
        } else {
            piece[0] = *p;
            piece[1] = '\0';
        }
        size_t n = strlen(add);
        if (len + n + 1 > size)
            return false;
        memcpy(out + len, add, n + 1);
        len += n;
    }
    return len > 0;
}

int control_open_dir(const char *path, char *base, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *last = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    char dir[4096];
    if (!*last || strcmp(last, ".") == 0 || strcmp(last, "..") == 0 ||
        strlen(last) >= size || dirlen >= sizeof dir) {
        errno = EINVAL;
        return -1;
    }
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (dirlen == 0)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)dirlen, path);
    snprintf(base, size, "%s", last);
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}
