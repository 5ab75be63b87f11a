/*
 * options.h — what the command line asked for (parsed in main.c), and the
 * default time bounds.
 */
#ifndef PQSHIMCTL_OPTIONS_H
#define PQSHIMCTL_OPTIONS_H

#include <stdbool.h>

#define DEFAULT_TIMEOUT 2.0
#define HEALTH_TIMEOUT 15.0       /* health opens connections (5 s each at most) */

struct options {
    const char *command;
    const char *socket;
    long pid;
    bool json;
    bool all;
    double timeout;     /* 0: the default for the command */
    const char *dir;
    bool only_dir;      /* -D: the directory only, no /proc scan */
    double interval;
    long iterations;    /* 0: until q */
};

#endif
