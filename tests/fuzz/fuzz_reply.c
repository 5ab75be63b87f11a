/*
 * fuzz_reply.c — libFuzzer target for what pqshimctl does with a reply it
 * cannot trust: its JSON parser (tools/ctl/json.c), the status, health and
 * ls renderers on whatever parses, and the Prometheus merger of
 * metrics --all. It links those modules alone: no socket, no main.
 *
 *   make fuzz && build/fuzz/fuzz_reply
 *
 * With -DFUZZ_REPLAY_MAIN it is a plain program instead: each argument is a
 * file (one input), or, with no arguments, stdin holds the inputs separated
 * by NUL bytes.
 */
#define _GNU_SOURCE
#include "../../tools/ctl/health.h"
#include "../../tools/ctl/json.h"
#include "../../tools/ctl/pool_text.h"
#include "../../tools/ctl/prom_merge.h"
#include "../../tools/ctl/status.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet && freopen("/dev/null", "w", stdout))
        quiet = true;
    struct json *j = json_parse((const char *)data, size);
    if (j) {
        show_status(j);
        show_health(j);
        free(targets_summary(j));
        json_free(j);
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct families f = {0};
    merge_exposition(&f, text, 1);
    families_print(&f);
    families_free(&f);
    free(text);
    return 0;
}

#ifdef FUZZ_REPLAY_MAIN
int main(int argc, char **argv)
{
    long n = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            if (!f) {
                perror(argv[i]);
                return 2;
            }
            static uint8_t input[1 << 16];
            size_t got = fread(input, 1, sizeof input, f);
            fclose(f);
            LLVMFuzzerTestOneInput(input, got);
            n++;
        }
    } else {
        char *input = NULL;
        size_t cap = 0;
        ssize_t got;
        while ((got = getdelim(&input, &cap, '\0', stdin)) > 0) {
            size_t len = (size_t)got;
            if (input[len - 1] == '\0')
                len--;
            LLVMFuzzerTestOneInput((const uint8_t *)input, len);
            n++;
        }
        free(input);
    }
    /* stdout went to /dev/null: the count goes to stderr. */
    fprintf(stderr, "%ld inputs ok\n", n);
    return 0;
}
#endif
