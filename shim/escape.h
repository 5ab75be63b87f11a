/*
 * escape.h — one character of untrusted text at a time, escaped for where
 * it goes: a JSON string, a text log value, a Prometheus label value, or a
 * terminal. Shared by the shim and pqshimctl (no libpq here either).
 *
 * Names of programs, databases and users are bytes, not text: they may be
 * invalid UTF-8 or hold control characters. Every format gets valid UTF-8
 * and no raw control character (but the newline a format defines).
 */
#ifndef PQSHIM_ESCAPE_H
#define PQSHIM_ESCAPE_H

#include <stddef.h>

enum esc_style {
    ESC_JSON,  /* \" \\ \u00XX; invalid bytes become \ufffd */
    ESC_TEXT,  /* \" \\; newline, CR, tab: a space; other controls and
                  invalid bytes: \xXX */
    ESC_PROM,  /* \" \\ \n; other controls and invalid bytes: U+FFFD */
    ESC_TERM,  /* C0, DEL, C1 controls and invalid bytes: '?' */
};

#define ESC_MAX 8 /* the longest escaped character, with its NUL */

/* The length (1 to 4) of the valid UTF-8 sequence at s (n bytes left),
 * or 0 when s does not start one (a lone continuation byte, an overlong
 * form, a surrogate, past U+10FFFF, or cut short). */
size_t utf8_sequence(const unsigned char *s, size_t n);

/* Escape the character at s (n > 0 bytes left) into out (NUL-terminated)
 * and return how many input bytes it took (at least 1). */
size_t esc_char(const char *s, size_t n, enum esc_style style, char out[ESC_MAX]);

#endif
