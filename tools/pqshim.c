/*
 * pqshim.c — the launcher: run a command with the shim preloaded.
 *
 *   pqshim [options] [--] command [args...]
 *
 * Each option sets one PQSHIM_* variable, after checking the value exactly
 * as the shim would (a value the shim would refuse is refused here, before
 * the command starts). The library is found next to this executable (the
 * build directory), under its install prefix (<prefix>/lib/pqshim), or in
 * the directory compiled in as PQSHIM_LIBDIR (a distribution package's
 * /usr/lib/<multiarch>/pqshim), by absolute path only: never in the
 * current directory. It is put first in LD_PRELOAD (after any sanitizer
 * runtimes, which must lead), the existing entries are kept, and the
 * command replaces this process (no fork).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../shim/strict_number.h"
#include <sys/stat.h>
#include <unistd.h>

/* The Makefile passes the version from the file VERSION. */
#ifndef PQSHIM_VERSION
#define PQSHIM_VERSION "unknown"
#endif

/* The library's directory in a distribution package
 * (LIBDIR=/usr/lib/<multiarch>/pqshim), looked at after the two places
 * relative to the launcher. */
#ifdef PQSHIM_LIBDIR
#define LIBDIR_HELP ",\nthen in " PQSHIM_LIBDIR
#else
#define LIBDIR_HELP ""
#endif

#define LIB_NAME "libpqshim.so"
#define PATH_LIMIT 4096 /* the shim's buffer for paths, with the NUL */

enum {
    EXIT_USAGE = 2,       /* bad option or value */
    EXIT_SETUP = 125,     /* the launcher itself failed (library missing) */
    EXIT_NOEXEC = 126,    /* the command exists but cannot be run */
    EXIT_NOTFOUND = 127,  /* the command does not exist */
};

static const char *progname = "pqshim";

/* ---- values, checked as the shim checks them (shim/config.c) ---------- */

static bool match_word(const char *value, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strcasecmp(value, words[i]) == 0)
            return true;
    return false;
}

/* Numbers as the shim reads them. */
static bool valid_int(const char *value, long min, long max, long *out)
{
    long v;
    if (!strict_long(value, min, max, &v))
        return false;
    if (out)
        *out = v;
    return true;
}

static bool valid_seconds(const char *value, double max)
{
    double v;
    return strict_seconds(value, max, &v);
}

static bool valid_policy(const char *v)
{
    static const char *const words[] = {"null", "capped", NULL};
    return match_word(v, words);
}

static bool valid_log(const char *v)
{
    static const char *const words[] = {"stderr", "syslog", "none", NULL};
    return match_word(v, words) || (v[0] == '/' && strlen(v) < PATH_LIMIT);
}

static bool valid_log_level(const char *v)
{
    static const char *const words[] = {"error", "warn", "info", "debug", NULL};
    return match_word(v, words);
}

static bool valid_log_format(const char *v)
{
    static const char *const words[] = {"text", "json", NULL};
    return match_word(v, words);
}

static bool valid_count(const char *v)
{
    return valid_int(v, 0, 10000, NULL);
}

static bool valid_pool_timeout(const char *v)
{
    return valid_seconds(v, 86400);
}

static bool valid_reset(const char *v)
{
    static const char *const words[] = {"discard", "rollback", "none", NULL};
    return match_word(v, words);
}

static bool valid_pre_ping(const char *v)
{
    static const char *const words[] = {"off", "on", "always", "0", "1",
                                        "false", "true", "no", "yes", NULL};
    return match_word(v, words);
}

static bool valid_interval(const char *v)
{
    return valid_seconds(v, 1e9);
}

static bool valid_retry_full(const char *v)
{
    static const char *const words[] = {"off", "on", "0", "1", "false",
                                        "true", "no", "yes", NULL};
    return match_word(v, words);
}

static bool valid_host_limit(const char *v)
{
    return valid_int(v, 0, 1000, NULL);
}

static bool valid_host_limit_shared(const char *v)
{
    static const char *const words[] = {"off", "group", NULL};
    return match_word(v, words);
}

static bool valid_path(const char *v)
{
    return v[0] == '/' && strlen(v) < PATH_LIMIT;
}

struct option_def {
    const char *name;      /* without the leading -- */
    const char *variable;  /* NULL: handled by the launcher itself */
    bool (*valid)(const char *value);
    const char *accepted;  /* the shim's wording */
    const char *meta;
    const char *help;
};

static const struct option_def options[] = {
    {"policy", "PQSHIM_POLICY", valid_policy, "null or capped", "P",
     "null (log connections, change nothing) or capped\n"
     "(pool them; at most size + overflow per target).\n"
     "Default null."},
    {"log", "PQSHIM_LOG", valid_log,
     "stderr, syslog, none or an absolute file path", "DEST",
     "stderr, syslog, none, or an absolute file path\n"
     "(appended to). Default stderr."},
    {"log-level", "PQSHIM_LOG_LEVEL", valid_log_level,
     "error, warn, info or debug", "L",
     "error, warn, info, or debug (adds checkout and\n"
     "checkin lines). Default info."},
    {"log-format", "PQSHIM_LOG_FORMAT", valid_log_format, "text or json", "F",
     "text or json (one object per line). Default text."},
    {"pool-size", "PQSHIM_POOL_SIZE", valid_count, "an integer from 0 to 10000",
     "N", "Idle connections kept per target, 0..10000.\n"
     "Default 5."},
    {"max-overflow", "PQSHIM_MAX_OVERFLOW", valid_count,
     "an integer from 0 to 10000", "N",
     "Connections allowed beyond the pool size,\n"
     "0..10000. Default 10."},
    {"pool-timeout", "PQSHIM_POOL_TIMEOUT", valid_pool_timeout,
     "seconds from 0 to 86400, decimals allowed", "S",
     "Seconds a connect waits at the cap before it\n"
     "fails, 0..86400, decimals allowed; 0 fails at\n"
     "once. Default 30."},
    {"reset", "PQSHIM_RESET", valid_reset, "discard, rollback or none", "M",
     "How a returned connection is cleaned: discard\n"
     "(ROLLBACK if needed, then DISCARD ALL), rollback,\n"
     "or none. Default discard."},
    {"pre-ping", "PQSHIM_PRE_PING", valid_pre_ping, "on, off or always", "M",
     "Check an idle connection before reuse: on (a\n"
     "socket check on local connections, a real ping\n"
     "otherwise), always (a real ping), or off.\n"
     "Default on."},
    {"recycle", "PQSHIM_POOL_RECYCLE", valid_interval, "seconds, 0 for never",
     "S", "Close connections older than S seconds instead\n"
     "of reusing them; 0 never. Default 3600."},
    {"idle-timeout", "PQSHIM_IDLE_TIMEOUT", valid_interval,
     "seconds, 0 for never", "S",
     "Close connections idle in the pool longer than\n"
     "S seconds; 0 never. Default 600."},
    {"retry-full", "PQSHIM_RETRY_FULL", valid_retry_full, "on or off", "M",
     "on: when the server (or a pooler) refuses a\n"
     "blocking connect as full, retry it with jittered\n"
     "backoff for up to the pool timeout; off: fail at\n"
     "once. Default on."},
    {"host-limit", "PQSHIM_HOST_LIMIT", valid_host_limit,
     "an integer from 1 to 1000, or 0 for no limit", "N",
     "At most N server connections per target across\n"
     "every shimmed process sharing the host limit\n"
     "file; callers beyond it wait in arrival order up\n"
     "to the pool timeout. 0 or unset: no limit."},
    {"host-limit-file", "PQSHIM_HOST_LIMIT_FILE", valid_path,
     "an absolute path", "PATH",
     "The file the processes share for the host limit.\n"
     "Default /tmp/pqshim-hostlimit-UID."},
    {"host-limit-shared", "PQSHIM_HOST_LIMIT_SHARED", valid_host_limit_shared,
     "off or group", "M",
     "group: use a host limit file that other users\n"
     "can open too (its owner and group, never every\n"
     "user), trusting them with the limit. Default off:\n"
     "such a file is refused."},
    {"control", "PQSHIM_CONTROL", valid_path,
     "an absolute path (%p pid, %u uid, %% a percent sign)", "PATH",
     "Absolute path of the control socket; %p stands\n"
     "for the pid, %u the uid, %% a percent sign.\n"
     "Default unset."},
    {"lib", NULL, NULL, NULL, "PATH",
     "Preload this library instead of the one found\n"
     "next to the launcher or under its prefix."},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};

/* ---- messages ---------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [options] [--] command [args...]\n"
            "\n"
            "Run command with the pqshim library preloaded, so every libpq\n"
            "connection it opens goes through pqshim's connection policy.\n"
            "Each option sets the environment variable named after it;\n"
            "variables already set in the environment are kept unless an\n"
            "option overrides them. Options end at \"--\" or at the first\n"
            "word that is not an option. Both --opt VALUE and --opt=VALUE work.\n"
            "\n"
            "Options:\n",
            progname);
    for (const struct option_def *o = options; o->name; o++) {
        char head[64];
        snprintf(head, sizeof head, "--%s %s", o->name, o->meta);
        fprintf(out, "  %-22s ", head);
        for (const char *p = o->help; *p; p++) {
            fputc(*p, out);
            if (*p == '\n')
                fprintf(out, "  %-22s ", "");
        }
        fputc('\n', out);
        if (o->variable)
            fprintf(out, "  %-22s [sets %s]\n", "", o->variable);
    }
    fprintf(out,
            "  %-22s Show this help and exit.\n"
            "  %-22s Show the version and exit.\n"
            "\n"
            "The library is looked for next to the launcher (a build\n"
            "directory), then under its install prefix\n"
            "(<prefix>/lib/pqshim/%s)%s,\n"
            "never in the current directory.\n"
            "Its absolute path is put first in LD_PRELOAD (after sanitizer\n"
            "runtimes, which must lead); existing entries are kept after it,\n"
            "and it is not added twice.\n"
            "\n"
            "Examples:\n"
            "  %s -- psql -c 'select 1'\n"
            "      log every connect and close of psql to stderr\n"
            "  %s --policy capped --pool-size 4 --max-overflow 4 -- \\\n"
            "      pgbench -C -S -c 24 -T 10 bench\n"
            "      at most 8 server connections, however many clients connect\n"
            "  %s --policy=capped --log=/var/log/app/pqshim.log --log-format=json \\\n"
            "      python3 app.py\n"
            "      pool the application's connections, log as JSON to a file\n"
            "\n"
            "Exit status: the command's; %d for a usage error; %d when the\n"
            "library cannot be found; %d when the command cannot be executed;\n"
            "%d when it is not found.\n",
            "-h, --help", "-V, --version", LIB_NAME, LIBDIR_HELP, progname,
            progname, progname, EXIT_USAGE, EXIT_SETUP, EXIT_NOEXEC,
            EXIT_NOTFOUND);
}

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int status, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(status);
}

/* ---- the library --------------------------------------------------------- */

/* An LD_PRELOAD entry cannot contain its own separators. */
static bool preloadable(const char *path)
{
    return strcspn(path, ": \t\n") == strlen(path);
}

/* The canonical absolute path of a regular file, or NULL (errno set). */
static char *regular_file(const char *path)
{
    char *real = realpath(path, NULL);
    struct stat st;
    if (!real)
        return NULL;
    if (stat(real, &st) != 0) {
        free(real);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        free(real);
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return NULL;
    }
    return real;
}

static char *find_library(const char *override)
{
    char *lib;
    if (override) {
        lib = regular_file(override);
        if (!lib)
            die(EXIT_SETUP, "--lib %s: %s", override, strerror(errno));
        if (access(lib, R_OK) != 0)
            die(EXIT_SETUP, "--lib %s: %s", override, strerror(errno));
        if (!preloadable(lib))
            die(EXIT_SETUP, "--lib %s: the path contains ':' or white space, "
                "which LD_PRELOAD cannot hold", lib);
        return lib;
    }

    char *exe = realpath("/proc/self/exe", NULL);
    if (!exe)
        die(EXIT_SETUP, "cannot find the launcher's own location "
            "(/proc/self/exe: %s); name the library with --lib PATH",
            strerror(errno));
    const char *dir = dirname(exe);
    char candidates[3][PATH_MAX];
    int n = 0;
    snprintf(candidates[n++], sizeof candidates[0], "%s/%s", dir, LIB_NAME);
    snprintf(candidates[n++], sizeof candidates[0], "%s/../lib/pqshim/%s", dir,
             LIB_NAME);
#ifdef PQSHIM_LIBDIR
    snprintf(candidates[n++], sizeof candidates[0], "%s/%s", PQSHIM_LIBDIR,
             LIB_NAME);
#endif
    for (int i = 0; i < n; i++) {
        lib = regular_file(candidates[i]);
        if (!lib)
            continue;
        if (access(lib, R_OK) != 0 || !preloadable(lib)) {
            free(lib);
            continue;
        }
        free(exe);
        return lib;
    }
#ifdef PQSHIM_LIBDIR
    die(EXIT_SETUP, "cannot find %s: looked for %s, %s/../lib/pqshim/%s and %s "
        "(reinstall the package, or name it with --lib PATH)",
        LIB_NAME, candidates[0], dir, LIB_NAME, candidates[2]);
#else
    die(EXIT_SETUP, "cannot find %s: looked for %s and %s/../lib/pqshim/%s "
        "(install with 'make install', or name it with --lib PATH)",
        LIB_NAME, candidates[0], dir, LIB_NAME);
#endif
}

/* Sanitizer runtimes refuse to start unless they come first. */
static bool sanitizer_runtime(const char *entry, size_t len)
{
    static const char *const prefixes[] = {"libasan", "libtsan", "libubsan",
                                           "liblsan", "libhwasan", "libmsan",
                                           "libclang_rt.", NULL};
    size_t base = len;
    while (base > 0 && entry[base - 1] != '/')
        base--;
    for (int i = 0; prefixes[i]; i++) {
        size_t n = strlen(prefixes[i]);
        if (len - base >= n && strncmp(entry + base, prefixes[i], n) == 0)
            return true;
    }
    return false;
}

/* Whether an LD_PRELOAD entry names the library lib (canonical path). */
static bool same_library(const char *entry, size_t len, const char *lib)
{
    char path[PATH_MAX];
    if (len == strlen(lib) && strncmp(entry, lib, len) == 0)
        return true;
    if (len >= sizeof path || entry[0] != '/')
        return false;
    memcpy(path, entry, len);
    path[len] = '\0';
    char *real = realpath(path, NULL);
    bool same = real && strcmp(real, lib) == 0;
    free(real);
    return same;
}

static void set_preload(const char *lib)
{
    static const char seps[] = ": \t\n";
    const char *old = getenv("LD_PRELOAD");
    if (!old || !old[strspn(old, seps)]) {
        if (setenv("LD_PRELOAD", lib, 1) != 0)
            die(EXIT_SETUP, "cannot set LD_PRELOAD: %s", strerror(errno));
        return;
    }

    /* Already there: leave the list as it is. Otherwise note where the
     * leading sanitizer runtimes end: ours goes right after them. */
    size_t insert_at = 0;
    bool leading = true;
    for (const char *p = old; *p;) {
        p += strspn(p, seps);
        size_t len = strcspn(p, seps);
        if (!len)
            break;
        if (same_library(p, len, lib))
            return;
        if (leading && sanitizer_runtime(p, len))
            insert_at = (size_t)(p - old) + len;
        else
            leading = false;
        p += len;
    }

    const char *rest = old + insert_at;
    rest += strspn(rest, seps);
    char *value;
    int n;
    if (insert_at == 0)
        n = asprintf(&value, "%s:%s", lib, old);
    else
        n = asprintf(&value, "%.*s:%s%s%s", (int)insert_at, old, lib,
                     *rest ? ":" : "", rest);
    if (n < 0 || setenv("LD_PRELOAD", value, 1) != 0)
        die(EXIT_SETUP, "cannot set LD_PRELOAD: %s", strerror(errno));
    free(value);
}

/* ---- main ---------------------------------------------------------------- */

static const struct option_def *lookup(const char *name, size_t len)
{
    for (const struct option_def *o = options; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

/* The pool size or overflow the shim will use: ours, else the
 * environment's when valid, else the default. */
static long effective_count(const char *variable, long fallback)
{
    const char *v = getenv(variable);
    long n;
    return v && valid_int(v, 0, 10000, &n) ? n : fallback;
}

int main(int argc, char **argv)
{
    const char *lib_override = NULL;
    int i;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || arg[1] == '\0')
            break; /* the command */
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            printf("pqshim %s\n", PQSHIM_VERSION);
            return 0;
        }
        if (arg[1] != '-')
            die(EXIT_USAGE, "unknown option '%s' (see %s --help)", arg, progname);

        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct option_def *o = lookup(name, len);
        if (!o)
            die(EXIT_USAGE, "unknown option '--%.*s' (see %s --help)", (int)len,
                name, progname);
        const char *value;
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            die(EXIT_USAGE, "option --%s needs a value (%s)", o->name, o->meta);

        if (!o->variable) {
            lib_override = value;
            continue;
        }
        if (!o->valid(value))
            die(EXIT_USAGE, "invalid value '%.200s%s' for --%s (%s): "
                "accepted: %s", value, strlen(value) > 200 ? "..." : "",
                o->name, o->variable, o->accepted);
        if (setenv(o->variable, value, 1) != 0)
            die(EXIT_SETUP, "cannot set %s: %s", o->variable, strerror(errno));
    }
    if (i >= argc)
        die(EXIT_USAGE, "no command given (see %s --help)", progname);

    if (effective_count("PQSHIM_POOL_SIZE", 5) +
            effective_count("PQSHIM_MAX_OVERFLOW", 10) < 1)
        die(EXIT_USAGE, "pool size and overflow are both 0 "
            "(--pool-size, --max-overflow, or PQSHIM_POOL_SIZE and "
            "PQSHIM_MAX_OVERFLOW): the overflow must be at least 1 when "
            "the pool size is 0");

    char *lib = find_library(lib_override);
    set_preload(lib);
    free(lib);

    execvp(argv[i], argv + i);
    int err = errno;
    if (err == ENOENT || err == ENOTDIR)
        die(EXIT_NOTFOUND, "%s: command not found", argv[i]);
    die(EXIT_NOEXEC, "%s: cannot execute: %s", argv[i], strerror(err));
}
