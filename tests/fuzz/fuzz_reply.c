/*
 * fuzz_reply.c — libFuzzer target for what pqshimctl does with a reply it
 * cannot trust: its JSON parser, the status/health/ls renderers on whatever
 * parses, and the Prometheus merger of metrics --all. The tool's source is
 * included whole (its functions are static); its main() is renamed away.
 *
 *   make fuzz && build/fuzz/fuzz_reply
 */
#define main pqshimctl_main
int pqshimctl_main(int argc, char **argv);
#include "../../tools/pqshimctl.c"
#undef main

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
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
    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct families f = {0};
    merge_exposition(&f, text, 1);
    for (int i = 0; i < f.n; i++) {
        free(f.v[i].name);
        free(f.v[i].help);
        free(f.v[i].type);
        free(f.v[i].samples);
    }
    free(f.v);
    free(text);
    return 0;
}
