/*
 * pqshim.c — the launcher: run a command with the shim preloaded.
 *
 *   pqshim [options] [--] command [args...]
 *
 * Each option sets one PQSHIM_* variable, after checking the value exactly
 * as the shim would (a value the shim would refuse is refused here, before
 * the command starts): the options are the shim's table of settings
 * (shim/settings.def), checked by the same code (shim/settings.h).
 *
 * The library is found next to this executable (the build directory),
 * under its install prefix (<prefix>/lib/pqshim), or in
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
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shim/settings.h"
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

enum {
    EXIT_USAGE = 2,       /* bad option or value */
    EXIT_SETUP = 125,     /* the launcher itself failed (library missing) */
    EXIT_NOEXEC = 126,    /* the command exists but cannot be run */
    EXIT_NOTFOUND = 127,  /* the command does not exist */
};

static const char *progname = "pqshim";

/* ---- the settings: one option each, checked as the shim checks them --- */

static const struct setting settings[] = {
#define SETTING(KIND, field, ctype, ...) {.kind = SETTING_##KIND, __VA_ARGS__},
#include "../shim/settings.def"
#undef SETTING
    {.name = NULL},
};

/* The one option that is not a setting. */
static const char lib_option[] = "lib", lib_meta[] = "PATH",
                  lib_help[] = "Preload this library instead of the one found\n"
                               "next to the launcher or under its prefix.";

/* ---- messages ---------------------------------------------------------- */

/* One option in --help: the help's lines indented under the option,
 * then the variable it sets. */
static void print_option(FILE *out, const char *name, const char *meta,
                         const char *help, const char *variable)
{
    char head[64];
    snprintf(head, sizeof head, "--%s %s", name, meta);
    fprintf(out, "  %-22s ", head);
    for (const char *p = help; *p; p++) {
        fputc(*p, out);
        if (*p == '\n')
            fprintf(out, "  %-22s ", "");
    }
    fputc('\n', out);
    if (variable)
        fprintf(out, "  %-22s [sets %s]\n", "", variable);
}

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
    for (const struct setting *o = settings; o->name; o++)
        print_option(out, o->option, o->meta, o->help, o->name);
    print_option(out, lib_option, lib_meta, lib_help, NULL);
    fprintf(out,
            "  %-22s Show this help and exit.\n"
            "  %-22s Show the version and exit.\n"
            "  %-22s List the settings, one line each (tab-separated:\n"
            "  %-22s variable, option, default, accepted values,\n"
            "  %-22s description), and exit.\n"
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
            "-h, --help", "-V, --version", "--list-settings", "", "", LIB_NAME, LIBDIR_HELP, progname,
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

static const struct setting *lookup(const char *name, size_t len)
{
    for (const struct setting *o = settings; o->name; o++)
        if (strlen(o->option) == len && strncmp(o->option, name, len) == 0)
            return o;
    return NULL;
}

/* The number the shim will use for variable: the environment's (ours
 * included) when valid, else the default. */
static double effective_number(const char *variable)
{
    const struct setting *s = settings;
    while (strcmp(s->name, variable) != 0)
        s++;
    const char *v = getenv(variable);
    double n = 0;
    if (!v || !setting_parse(s, v, &n))
        setting_parse(s, s->def, &n);
    return n;
}

/* --list-settings: one line per setting, fields separated by tabs:
 * variable, option, default (as the control socket's status shows it),
 * accepted values, what it does. For scripts and the documentation
 * checks. */
static void list_settings(void)
{
    for (const struct setting *s = settings; s->name; s++) {
        printf("%s\t--%s\t%s\t%s\t", s->name, s->option,
               s->def[0] ? s->def : s->unset, s->accepted);
        for (const char *p = s->help; *p; p++)
            putchar(*p == '\n' ? ' ' : *p);
        putchar('\n');
    }
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
        if (strcmp(arg, "--list-settings") == 0) {
            list_settings();
            return 0;
        }
        if (arg[1] != '-')
            die(EXIT_USAGE, "unknown option '%s' (see %s --help)", arg, progname);

        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct setting *o = lookup(name, len);
        bool lib = len == strlen(lib_option) && strncmp(name, lib_option, len) == 0;
        if (!o && !lib)
            die(EXIT_USAGE, "unknown option '--%.*s' (see %s --help)", (int)len,
                name, progname);
        const char *value;
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            die(EXIT_USAGE, "option --%s needs a value (%s)",
                lib ? lib_option : o->option, lib ? lib_meta : o->meta);

        if (lib) {
            lib_override = value;
            continue;
        }
        double number;
        if (!setting_parse(o, value, &number))
            die(EXIT_USAGE, "invalid value '%.200s%s' for --%s (%s): "
                "accepted: %s", value, strlen(value) > 200 ? "..." : "",
                o->option, o->name, o->accepted);
        if (setenv(o->name, value, 1) != 0)
            die(EXIT_SETUP, "cannot set %s: %s", o->name, strerror(errno));
    }
    if (i >= argc)
        die(EXIT_USAGE, "no command given (see %s --help)", progname);

    if (effective_number("PQSHIM_POOL_SIZE") +
            effective_number("PQSHIM_MAX_OVERFLOW") < 1)
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
