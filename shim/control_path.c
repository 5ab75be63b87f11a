/*
 * control_path.c — expand a PQSHIM_CONTROL pattern (shim and pqshimctl).
 */
#include "control_path.h"

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
