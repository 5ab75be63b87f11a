/*
 * deepbind.c — load plugins linked to libpq the way PHP loads its
 * extensions, and run their connect loops. Not linked to libpq itself.
 *
 *   deepbind [-c loops] [-r rounds] [-l] MODULE...
 *
 * Each round dlopens every MODULE (RTLD_NOW | RTLD_DEEPBIND, or with -l
 * plain RTLD_LOCAL), calls its pqmod_run("", loops), and dlcloses it again
 * when more rounds follow. Exit status: 0 when every connect succeeded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int loops = 3, rounds = 1, mode = RTLD_NOW | RTLD_DEEPBIND, opt;
    while ((opt = getopt(argc, argv, "c:r:l")) != -1) {
        if (opt == 'c')
            loops = atoi(optarg);
        else if (opt == 'r')
            rounds = atoi(optarg);
        else if (opt == 'l')
            mode = RTLD_NOW | RTLD_LOCAL;
        else
            return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: deepbind [-c loops] [-r rounds] [-l] MODULE...\n");
        return 2;
    }
    int failures = 0;
    for (int r = 0; r < rounds; r++) {
        for (int m = optind; m < argc; m++) {
            void *h = dlopen(argv[m], mode);
            if (!h) {
                fprintf(stderr, "dlopen %s: %s\n", argv[m], dlerror());
                return 1;
            }
            int (*run)(const char *, int) = (int (*)(const char *, int))dlsym(h, "pqmod_run");
            if (!run) {
                fprintf(stderr, "dlsym pqmod_run: %s\n", dlerror());
                return 1;
            }
            printf("round=%d module=%s\n", r + 1, argv[m]);
            fflush(stdout);
            failures += run("", loops);
            if (r + 1 < rounds && dlclose(h) != 0) {
                fprintf(stderr, "dlclose %s: %s\n", argv[m], dlerror());
                return 1;
            }
        }
    }
    return failures ? 1 : 0;
}
