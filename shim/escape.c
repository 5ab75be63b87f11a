/*
 * escape.c — escape untrusted text per output format (see escape.h).
 */
#include "escape.h"

#include <stdio.h>
#include <string.h>

size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

size_t esc_char(const char *s, size_t n, enum esc_style style, char out[ESC_MAX])
{
    unsigned char c = (unsigned char)s[0];
    size_t len = utf8_sequence((const unsigned char *)s, n);
    if (len > 1) {
        /* C1 controls (U+0080..U+009F) are terminal commands too. */
        if (style == ESC_TERM && c == 0xc2 && (unsigned char)s[1] < 0xa0) {
            strcpy(out, "?");
            return len;
        }
        memcpy(out, s, len);
        out[len] = '\0';
        return len;
    }
    int control = len == 1 && (c < 0x20 || c == 0x7f);
    int invalid = len == 0;
    switch (style) {
    case ESC_JSON:
        if (c == '"' || c == '\\')
            snprintf(out, ESC_MAX, "\\%c", c);
        else if (control)
            snprintf(out, ESC_MAX, "\\u%04x", c);
        else if (invalid)
            strcpy(out, "\\ufffd");
        else
            snprintf(out, ESC_MAX, "%c", c);
        break;
    case ESC_TEXT:
        if (c == '"' || c == '\\')
            snprintf(out, ESC_MAX, "\\%c", c);
        else if (c == '\n' || c == '\r' || c == '\t')
            strcpy(out, " ");
        else if (control || invalid)
            snprintf(out, ESC_MAX, "\\x%02x", c);
        else
            snprintf(out, ESC_MAX, "%c", c);
        break;
    case ESC_PROM:
        if (c == '"' || c == '\\')
            snprintf(out, ESC_MAX, "\\%c", c);
        else if (c == '\n')
            strcpy(out, "\\n");
        else if (control || invalid)
            strcpy(out, "\xef\xbf\xbd");
        else
            snprintf(out, ESC_MAX, "%c", c);
        break;
    case ESC_TERM:
    default:
        if (control || invalid)
            strcpy(out, "?");
        else
            snprintf(out, ESC_MAX, "%c", c);
        break;
    }
    return 1;
}
