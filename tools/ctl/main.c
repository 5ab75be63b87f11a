/*
 * main.c — pqshimctl: talk to the control sockets of programs running with pqshim.
 *
 *   pqshimctl [-s SOCKET | -p PID] [--json] [-t SECONDS] COMMAND
 *   pqshimctl ls [-d DIR] [--json]
 *   pqshimctl top [-d DIR] [-i SECONDS] [-n ITERATIONS]
 *   pqshimctl metrics --all [-d DIR]
 *
 * A control socket answers one command line with one reply and closes
 * (shim/control.c). This tool finds the socket (by path, by process id
 * through /proc/PID/environ, or by scanning every process and a socket
 * directory), sends the command, and shows the reply as tables, as raw JSON,
 * or as one merged Prometheus exposition. Every exchange is bounded in time,
 * so a hung process never hangs the tool. No libpq: only sockets and /proc.
 *
 * Exit status: 0 ok; 1 the process answered with an error (or health found
 * a target failing, or the reply was malformed); 2 usage error, or no reply
 * could be had at all (no such process, no socket, refused, timed out).
 *
 * This file parses the command line and hands over to one command's file
 * (single.c, ls.c, top.c, metrics.c).
 */
#define _GNU_SOURCE
#include "discover.h"
#include "ls.h"
#include "metrics.h"
#include "options.h"
#include "single.h"
#include "top.h"
#include "util.h"
#include "../../shim/control_protocol.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Makefile passes the version from the file VERSION. */
#ifndef PQSHIM_VERSION
#define PQSHIM_VERSION "unknown"
#endif

static void help(void)
{
    printf(
"Usage: %1$s [-s SOCKET | -p PID] [--json] [-t SECONDS] COMMAND\n"
"       %1$s ls [-d DIR | -D DIR] [--json]\n"
"       %1$s top [-d DIR | -D DIR] [-i SECONDS] [-n ITERATIONS]\n"
"       %1$s metrics --all [-d DIR | -D DIR]\n"
"\n"
"Talk to the control socket of a program running with pqshim (PQSHIM_CONTROL\n"
"set: a Unix socket, mode 0600, answering its own user and root).\n"
"\n"
"Commands for one process:\n"
"  status    pid, program, policy, pause state, uptime, and per target: cap,\n"
"            open, used (checked out), idle, waiting, connects, reuses,\n"
"            timeouts, total wait, oldest checkout (tables)\n"
"  metrics   Prometheus text format (always; --json changes nothing)\n"
"  dispose   close idle connections now; checked-out ones close at checkin\n"
"  pause     new checkouts wait (at most PQSHIM_POOL_TIMEOUT) until resume\n"
"  resume    end a pause\n"
"  health    SELECT 1 on every target, through an idle connection or a new one\n"
"  help      the process's own list of commands\n"
"\n"
"Which process:\n"
"  -s, --socket PATH   the socket itself\n"
"  -p, --pid PID       read PQSHIM_CONTROL from /proc/PID/environ (else from this\n"
"                      environment) and expand %%p, %%u with that process's pid\n"
"                      and effective uid\n"
"  (neither)           PQSHIM_CONTROL of this environment, if it has no %%p\n"
"\n"
"Options:\n"
"  -j, --json          print the reply as the process sent it (JSON)\n"
"  -t, --timeout SECS  bound on connect + reply (default %2$g s; health %3$g s)\n"
"  -h, --help          this text;  -V, --version  the version\n"
"\n"
"Every shimmed process on this host:\n"
"  ls                  one line per process: pid, program, policy, pause state,\n"
"                      socket, and per target open/used/idle/waiting and cap\n"
"                      (--json: an array of status objects)\n"
"  top                 the same as a live view, with a bar of open connections\n"
"                      against the cap per target; q quits\n"
"      -i, --interval SECS    refresh every SECS (default 1)\n"
"      -n, --iterations N     stop after N screens\n"
"  metrics --all       one Prometheus exposition for all of them (each family's\n"
"                      HELP and TYPE once, then every process's samples)\n"
"  -d, --dir DIR       also look at every socket in DIR (default: the directory\n"
"                      of this environment's PQSHIM_CONTROL, unless it has %%p)\n"
"  -D, --only DIR      look at the sockets in DIR only (no /proc scan)\n"
"Processes are found through /proc/*/environ (those this user may read) and the\n"
"directory, and asked at once: each within the timeout, all within %4$d times\n"
"it; those that did not answer in time are named. A socket is believed only\n"
"when the kernel says its server runs as the owner of the process that names\n"
"it (or of the socket file, in a directory); a user other than root believes\n"
"only its own processes. A socket nobody listens on (its process died) is\n"
"reported, and removed only when it is this user's own.\n"
"\n"
"Exit status: 0 ok; 1 the process answered with an error, health found a target\n"
"failing, or the reply was malformed; 2 usage error, no such process or socket,\n"
"connection refused, a server that is not believed, or no reply in time.\n",
        progname, DEFAULT_TIMEOUT, HEALTH_TIMEOUT, OVERALL_FACTOR);
}

static double parse_seconds(const char *opt, const char *value, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !(v >= min && v <= max))
        usage_error("%s: invalid value '%s' (seconds, %g to %g)", opt, value, min, max);
    return v;
}

static long parse_long(const char *opt, const char *value, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max)
        usage_error("%s: invalid value '%s' (a whole number, %ld to %ld)", opt, value, min, max);
    return v;
}

/* Match -x VALUE, --long VALUE or --long=VALUE; advances *i. */
static const char *option_value(int argc, char **argv, int *i, const char *shortopt,
                                const char *longopt)
{
    const char *a = argv[*i];
    size_t n = strlen(longopt);
    if (strncmp(a, longopt, n) == 0 && a[n] == '=')
        return a + n + 1;
    if (strcmp(a, shortopt) != 0 && strcmp(a, longopt) != 0)
        return NULL;
    if (*i + 1 >= argc)
        usage_error("%s needs a value", a);
    return argv[++*i];
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct options o = {.interval = 1.0};
    bool seen_interval = false, seen_iterations = false;
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (only_args || a[0] != '-' || a[1] == '\0') {
            if (o.command)
                usage_error("unexpected argument '%s' (one command at a time)", a);
            o.command = a;
        } else if (strcmp(a, "--") == 0) {
            only_args = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help();
            return EXIT_OK;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("pqshimctl %s\n", PQSHIM_VERSION);
            return EXIT_OK;
        } else if (strcmp(a, "-j") == 0 || strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "-a") == 0 || strcmp(a, "--all") == 0) {
            o.all = true;
        } else if ((v = option_value(argc, argv, &i, "-s", "--socket"))) {
            if (!*v)
                usage_error("-s: empty socket path");
            o.socket = v;
        } else if ((v = option_value(argc, argv, &i, "-p", "--pid"))) {
            o.pid = parse_long("-p", v, 1, INT_MAX);
        } else if ((v = option_value(argc, argv, &i, "-t", "--timeout"))) {
            o.timeout = parse_seconds("-t", v, 0.001, 3600);
        } else if ((v = option_value(argc, argv, &i, "-d", "--dir"))) {
            if (o.dir)
                usage_error("-d and -D: one directory");
            o.dir = v;
        } else if ((v = option_value(argc, argv, &i, "-D", "--only"))) {
            if (o.dir)
                usage_error("-d and -D: one directory");
            o.dir = v;
            o.only_dir = true;
        } else if ((v = option_value(argc, argv, &i, "-i", "--interval"))) {
            o.interval = parse_seconds("-i", v, 0.05, 3600);
            seen_interval = true;
        } else if ((v = option_value(argc, argv, &i, "-n", "--iterations"))) {
            o.iterations = parse_long("-n", v, 1, LONG_MAX);
            seen_iterations = true;
        } else {
            usage_error("unknown option '%s'", a);
        }
    }
    if (!o.command)
        usage_error("no command given");
    bool is_ls = strcmp(o.command, "ls") == 0, is_top = strcmp(o.command, "top") == 0;
    bool is_all = o.all && strcmp(o.command, CONTROL_CMD_METRICS) == 0;
    if (o.all && !is_all)
        usage_error("--all goes with metrics only");
    if (is_ls || is_top || is_all) {
        if (o.socket || o.pid)
            usage_error("%s looks at every process: -s and -p do not apply", o.command);
        if ((seen_interval || seen_iterations) && !is_top)
            usage_error("-i and -n go with top only");
        if (is_top && o.json)
            usage_error("top has no --json; use ls --json");
        if (is_all && o.json)
            usage_error("metrics are Prometheus text; --json does not apply");
        return is_ls ? run_ls(&o) : is_top ? run_top(&o) : run_metrics_all(&o);
    }
    if (!single_command_known(o.command))
        usage_error("unknown command '%s'", o.command);
    if (o.dir || seen_interval || seen_iterations)
        usage_error("-d, -D, -i and -n go with ls, top and metrics --all");
    if (o.socket && o.pid)
        usage_error("-s and -p: choose one");
    return run_single(&o);
}

