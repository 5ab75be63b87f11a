/*
 * json.h — a small strict JSON parser (json.c) and lookups in what it
 * parsed. Needs nothing but the C library.
 */
#ifndef PQSHIMCTL_JSON_H
#define PQSHIMCTL_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct json {
    enum jtype type;
    double num;
    char *str;          /* J_STR: decoded, NUL-terminated */
    char *key;          /* member name, inside an object */
    struct json *kids;  /* J_ARR, J_OBJ: first element */
    struct json *next;  /* next sibling */
};

/* The value that len bytes of text are (white space around it allowed),
 * or NULL when they are anything else. Free it with json_free. */
struct json *json_parse(const char *text, size_t len);
/* Frees v and its siblings after it; NULL is fine. */
void json_free(struct json *v);

/* Member key of object obj, or NULL (also when obj is NULL or no object). */
const struct json *json_get(const struct json *obj, const char *key);
/* Member key as a string, or dflt when it is missing or not a string. */
const char *json_str(const struct json *obj, const char *key, const char *dflt);
/* Is member key a number? */
bool json_has_num(const struct json *obj, const char *key);
/* Member key as a number, or 0 when it is missing or not a number. */
double json_num(const struct json *obj, const char *key);
/* Is member key true? */
bool json_true(const struct json *obj, const char *key);

#endif
