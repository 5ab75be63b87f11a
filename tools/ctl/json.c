/*
 * json.c — a small strict JSON parser for the replies of control sockets:
 * the whole text must be one value, strings are decoded to UTF-8, nesting
 * is bounded. A leaf: it needs nothing but the C library.
 */
#define _GNU_SOURCE
#include "json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

struct jparser {
    const char *s, *end;
    int depth;
};

/* As xmalloc in util.c (this file stays a leaf): never NULL. */
static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fputs("pqshimctl: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

void json_free(struct json *v)
{
    while (v) {
        struct json *next = v->next;
        json_free(v->kids);
        free(v->str);
        free(v->key);
        free(v);
        v = next;
    }
}

static void jp_ws(struct jparser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static bool hex4(const char *s, const char *end, unsigned *out)
{
    if (end - s < 4)
        return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)s[i];
        int d = isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0)
            return false;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return true;
}

static char *utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* At the opening quote; returns the decoded string (malloc'd) or NULL.
 * Decoding never grows the text, so the raw length bounds the output. */
static char *jp_string(struct jparser *p)
{
    const char *q = ++p->s;
    while (q < p->end && *q != '"') {
        if ((unsigned char)*q < 0x20)
            return NULL;
        if (*q == '\\' && ++q >= p->end)
            return NULL;
        q++;
    }
    if (q >= p->end)
        return NULL;
    char *out = xmalloc((size_t)(q - p->s) + 1), *o = out;
    for (const char *r = p->s; r < q;) {
        if (*r != '\\') {
            *o++ = *r++;
            continue;
        }
        r++;
        char c = *r++;
        unsigned cp, lo;
        switch (c) {
        case '"': case '\\': case '/': *o++ = c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (!hex4(r, q, &cp))
                goto bad;
            r += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && q - r >= 6 && r[0] == '\\' &&
                r[1] == 'u' && hex4(r + 2, q, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r += 6;
            } else if ((cp >= 0xd800 && cp < 0xe000) || cp == 0) {
                cp = 0xfffd; /* lone surrogate, or a NUL a C string cannot hold */
            }
            o = utf8_put(o, cp);
            break;
        default:
            goto bad;
        }
    }
    *o = '\0';
    p->s = q + 1;
    return out;
bad:
    free(out);
    return NULL;
}

static bool jp_number(struct jparser *p, double *out)
{
    const char *q = p->s, *end = p->end;
#define DIGITS_AT(x) ((x) < end && isdigit((unsigned char)*(x)))
    if (q < end && *q == '-')
        q++;
    if (!DIGITS_AT(q))
        return false;
    if (*q == '0')
        q++;
    else
        while (DIGITS_AT(q))
            q++;
    if (q < end && *q == '.') {
        q++;
        if (!DIGITS_AT(q))
            return false;
        while (DIGITS_AT(q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (!DIGITS_AT(q))
            return false;
        while (DIGITS_AT(q))
            q++;
    }
#undef DIGITS_AT
    char tmp[400];
    size_t n = (size_t)(q - p->s);
    if (n >= sizeof tmp)
        return false;
    memcpy(tmp, p->s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    p->s = q;
    return true;
}

static bool jp_literal(struct jparser *p, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0)
        return false;
    p->s += n;
    return true;
}

static struct json *jp_value(struct jparser *p);

/* Elements of an array or members of an object, after the opening bracket. */
static bool jp_container(struct jparser *p, struct json *v, char close)
{
    struct json **tail = &v->kids;
    jp_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        if (close == '}') {
            jp_ws(p);
            if (p->s >= p->end || *p->s != '"' || !(key = jp_string(p)))
                return false;
            jp_ws(p);
            if (p->s >= p->end || *p->s != ':') {
                free(key);
                return false;
            }
            p->s++;
        }
        struct json *kid = jp_value(p);
        if (!kid) {
            free(key);
            return false;
        }
        kid->key = key;
        *tail = kid;
        tail = &kid->next;
        jp_ws(p);
        if (p->s >= p->end)
            return false;
        char c = *p->s++;
        if (c == close)
            return true;
        if (c != ',')
            return false;
    }
}

static struct json *jp_value(struct jparser *p)
{
    jp_ws(p);
    if (p->s >= p->end || p->depth >= JSON_MAX_DEPTH)
        return NULL;
    struct json *v = xmalloc(sizeof *v);
    memset(v, 0, sizeof *v);
    bool ok;
    p->depth++;
    switch (*p->s) {
    case '{':
        v->type = J_OBJ;
        p->s++;
        ok = jp_container(p, v, '}');
        break;
    case '[':
        v->type = J_ARR;
        p->s++;
        ok = jp_container(p, v, ']');
        break;
    case '"':
        v->type = J_STR;
        ok = (v->str = jp_string(p)) != NULL;
        break;
    case 't': v->type = J_TRUE; ok = jp_literal(p, "true"); break;
    case 'f': v->type = J_FALSE; ok = jp_literal(p, "false"); break;
    case 'n': v->type = J_NULL; ok = jp_literal(p, "null"); break;
    default:
        v->type = J_NUM;
        ok = jp_number(p, &v->num);
    }
    p->depth--;
    if (!ok) {
        json_free(v);
        return NULL;
    }
    return v;
}

/* The whole text must be one value (surrounding white space allowed). */
struct json *json_parse(const char *text, size_t len)
{
    struct jparser p = {text, text + len, 0};
    struct json *v = jp_value(&p);
    jp_ws(&p);
    if (v && p.s != p.end) {
        json_free(v);
        v = NULL;
    }
    return v;
}

const struct json *json_get(const struct json *obj, const char *key)
{
    if (!obj || obj->type != J_OBJ)
        return NULL;
    for (const struct json *k = obj->kids; k; k = k->next)
        if (k->key && strcmp(k->key, key) == 0)
            return k;
    return NULL;
}

const char *json_str(const struct json *obj, const char *key, const char *dflt)
{
    const struct json *v = json_get(obj, key);
    return v && v->type == J_STR ? v->str : dflt;
}

bool json_has_num(const struct json *obj, const char *key)
{
    const struct json *v = json_get(obj, key);
    return v && v->type == J_NUM;
}

double json_num(const struct json *obj, const char *key)
{
    const struct json *v = json_get(obj, key);
    return v && v->type == J_NUM ? v->num : 0;
}

bool json_true(const struct json *obj, const char *key)
{
    const struct json *v = json_get(obj, key);
    return v && v->type == J_TRUE;
}

