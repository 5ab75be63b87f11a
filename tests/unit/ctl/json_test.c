/*
 * json_test.c — unit tests of pqshimctl's JSON parser (tools/ctl/json.c),
 * linked alone: what it accepts, what it refuses, how strings decode, and
 * the lookups the renderers rely on.
 */
#define _GNU_SOURCE
#include "../../../tools/ctl/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, cases;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        cases++;                                                                     \
        if (!(cond)) {                                                               \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                   \
            failures++;                                                              \
        }                                                                            \
    } while (0)

/* Does text (all of it, up to its NUL) parse? */
static bool parses(const char *text)
{
    struct json *j = json_parse(text, strlen(text));
    json_free(j);
    return j != NULL;
}

/* The string text decodes to (text is one JSON string), or "(refused)". */
static char decoded[256];
static const char *decode(const char *text)
{
    struct json *j = json_parse(text, strlen(text));
    snprintf(decoded, sizeof decoded, "%s", j && j->type == J_STR ? j->str : "(refused)");
    json_free(j);
    return decoded;
}

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 2 + 1);
    memset(s, '[', (size_t)depth);
    memset(s + depth, ']', (size_t)depth);
    s[depth * 2] = '\0';
    return s;
}

static void test_accepts(void)
{
    const char *good[] = {
        "{}", "[]", " \t\r\n{ } \n", "null", "true", "false", "0", "-0", "12", "-1.5",
        "1e3", "1E+3", "2.5e-2", "\"\"", "\"a b\"", "[1,\"x\",null,true,false,{}]",
        "{\"a\":{\"b\":[1,{\"c\":\"d\"}]},\"e\":-3}", "{\"a\":1,\"a\":2}", NULL};
    for (int i = 0; good[i]; i++)
        CHECK(parses(good[i]));
}

static void test_refuses(void)
{
    const char *bad[] = {
        "", "   ", "{} x", "{}{}", "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10",
        "NaN", "Infinity", "tru", "nul", "True", "'a'", "\"open", "\"a\nb\"", "\"tab\there\"",
        "\"\\x\"", "\"\\u12g4\"", "\"\\u123\"", "\"\\", "[1,]", "[,1]", "[1 2]", "[", "]",
        "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{1:2}", "{a:1}", "{\"a\" 1}", "{\"a\":1 \"b\":2}",
        NULL};
    for (int i = 0; bad[i]; i++) {
        bool refused = !parses(bad[i]);
        if (!refused)
            printf("     accepted: '%s'\n", bad[i]);
        CHECK(refused);
    }
    /* A number longer than any double needs is refused, not cut. */
    char longnum[512];
    memset(longnum, '1', sizeof longnum - 1);
    longnum[sizeof longnum - 1] = '\0';
    CHECK(!parses(longnum));
}

static void test_length_bounds_the_text(void)
{
    struct json *j = json_parse("[1]garbage", 3);
    CHECK(j && j->type == J_ARR && j->kids && j->kids->num == 1);
    json_free(j);
    /* A NUL inside the text is not the end of it. */
    CHECK(json_parse("[1]\0", 4) == NULL);
    CHECK(json_parse("\"a\0b\"", 5) == NULL);
    CHECK(json_parse("[1]", 0) == NULL);
}

static void test_depth_is_bounded(void)
{
    char *ok = nested(64), *deep = nested(65), *deeper = nested(100000);
    CHECK(parses(ok));
    CHECK(!parses(deep));
    CHECK(!parses(deeper));
    free(ok);
    free(deep);
    free(deeper);
}

static void test_strings_decode(void)
{
    CHECK(strcmp(decode("\"plain\""), "plain") == 0);
    CHECK(strcmp(decode("\"q\\\"b\\\\s\\/\""), "q\"b\\s/") == 0);
    CHECK(strcmp(decode("\"\\b\\f\\n\\r\\t\""), "\b\f\n\r\t") == 0);
    CHECK(strcmp(decode("\"\\u00e9t\\u00C9\""), "\xc3\xa9t\xc3\x89") == 0);
    CHECK(strcmp(decode("\"\\u20ac\""), "\xe2\x82\xac") == 0);
    CHECK(strcmp(decode("\"\\ud83d\\ude00\""), "\xf0\x9f\x98\x80") == 0);
    /* A lone surrogate, or a NUL a C string cannot hold: U+FFFD. */
    CHECK(strcmp(decode("\"a\\ud83db\""), "a\xef\xbf\xbd" "b") == 0);
    CHECK(strcmp(decode("\"\\ude00\""), "\xef\xbf\xbd") == 0);
    CHECK(strcmp(decode("\"x\\u0000y\""), "x\xef\xbf\xbdy") == 0);
    /* Bytes other than control characters pass as they are, invalid
     * UTF-8 too (the renderers clean them); a raw control character is
     * refused. */
    CHECK(strcmp(decode("\"\xc3\xa9\x7f\xff\""), "\xc3\xa9\x7f\xff") == 0);
    CHECK(strcmp(decode("\"a\x1b[31m\""), "(refused)") == 0);
}

static void test_numbers(void)
{
    const char *text = "[0, -0.5, 1e2, 4294967297, 1.7976931348623157e308]";
    struct json *j = json_parse(text, strlen(text));
    CHECK(j && j->type == J_ARR);
    double want[] = {0, -0.5, 100, 4294967297.0, 1.7976931348623157e308};
    int i = 0;
    for (const struct json *k = j ? j->kids : NULL; k; k = k->next, i++)
        CHECK(i < 5 && k->type == J_NUM && k->num == want[i]);
    CHECK(i == 5);
    json_free(j);
}

static void test_lookups(void)
{
    const char *text = "{\"pid\":42,\"program\":\"app\",\"paused\":true,\"idle\":false,"
                       "\"cap\":null,\"n\":\"7\",\"host\":{\"limit\":4},\"pid\":43}";
    struct json *j = json_parse(text, strlen(text));
    CHECK(j && j->type == J_OBJ);
    CHECK(json_num(j, "pid") == 42);  /* the first of two wins */
    CHECK(json_has_num(j, "pid"));
    CHECK(!json_has_num(j, "cap"));
    CHECK(!json_has_num(j, "n"));     /* a string is no number */
    CHECK(json_num(j, "n") == 0);
    CHECK(json_num(j, "missing") == 0);
    CHECK(strcmp(json_str(j, "program", "?"), "app") == 0);
    CHECK(strcmp(json_str(j, "pid", "?"), "?") == 0);
    CHECK(strcmp(json_str(j, "missing", "dflt"), "dflt") == 0);
    CHECK(json_str(j, "missing", NULL) == NULL);
    CHECK(json_true(j, "paused"));
    CHECK(!json_true(j, "idle"));
    CHECK(!json_true(j, "cap"));
    CHECK(json_num(json_get(j, "host"), "limit") == 4);
    CHECK(json_get(json_get(j, "program"), "x") == NULL); /* not an object */
    CHECK(json_get(NULL, "x") == NULL);
    CHECK(json_num(NULL, "x") == 0);
    CHECK(strcmp(json_str(NULL, "x", "d"), "d") == 0);
    json_free(j);
    json_free(NULL);
    /* Lookups in an array find nothing. */
    j = json_parse("[{\"a\":1}]", 9);
    CHECK(j && json_get(j, "a") == NULL);
    json_free(j);
}

int main(void)
{
    test_accepts();
    test_refuses();
    test_length_bounds_the_text();
    test_depth_is_bounded();
    test_strings_decode();
    test_numbers();
    test_lookups();
    printf("%d checks, %d failed\n", cases, failures);
    return failures ? 1 : 0;
}
