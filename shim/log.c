/*
 * log.c — lifecycle log lines.
 *
 * Each line is built in a stack buffer and written with one write(), so
 * lines from threads and processes sharing the destination never interleave.
 */
#define _GNU_SOURCE
#include "log.h"
#include "escape.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

static const char *const level_names[] = {"error", "warn", "info", "debug"};

struct out {
    char *buf;
    size_t size;
    size_t len;
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    if (o->len >= o->size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n < o->size - o->len ? (size_t)n : o->size - o->len - 1;
}

static void put_char(struct out *o, char c)
{
    if (o->len + 1 < o->size) {
        o->buf[o->len++] = c;
        o->buf[o->len] = '\0';
    }
}

/* libpq messages end in newlines and may span lines: a log line may not. */
static size_t trimmed_length(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        n--;
    return n;
}

/* A value is quoted when it is empty, holds a space, '=', or anything
 * that is escaped. */
static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n;) {
        char e[ESC_MAX];
        size_t took = esc_char(s + i, n - i, ESC_TEXT, e);
        if (strlen(e) != took || memcmp(e, s + i, took) != 0 || s[i] == ' ' || s[i] == '=')
            return true;
        i += took;
    }
    return false;
}

/* A string value is cut to this many bytes as written (escapes included)
 * and then ends in "...": however long a libpq message or a target name,
 * the line keeps room for every field and its closing quote, so a long
 * value never leaves an unterminated string (or invalid JSON) behind. */
#define VALUE_MAX_BYTES 600

/* How many of the n bytes of s fit in VALUE_MAX_BYTES once escaped, never
 * ending inside a character; *cut says whether some were left out ("..."
 * then follows them). */
static size_t value_fit(const char *s, size_t n, enum esc_style style, bool *cut)
{
    size_t used = 0;
    for (size_t i = 0; i < n;) {
        char e[ESC_MAX];
        size_t took = esc_char(s + i, n - i, style, e);
        used += strlen(e);
        if (used > VALUE_MAX_BYTES - 3) {
            *cut = true;
            return i;
        }
        i += took;
    }
    *cut = false;
    return n;
}

/* Every character escaped for its format: names may be any bytes. */
static void put_escaped(struct out *o, const char *s, size_t n, enum esc_style style)
{
    for (size_t i = 0; i < n;) {
        char e[ESC_MAX];
        i += esc_char(s + i, n - i, style, e);
        put(o, "%s", e);
    }
}

static void put_text_value(struct out *o, const char *s)
{
    size_t n = trimmed_length(s);
    bool quote = needs_quotes(s, n), cut;
    n = value_fit(s, n, ESC_TEXT, &cut);
    if (quote)
        put_char(o, '"');
    put_escaped(o, s, n, ESC_TEXT);
    if (cut)
        put(o, "...");
    if (quote)
        put_char(o, '"');
}

static void put_json_string(struct out *o, const char *s, size_t n)
{
    bool cut;
    n = value_fit(s, n, ESC_JSON, &cut);
    put_char(o, '"');
    put_escaped(o, s, n, ESC_JSON);
    if (cut)
        put(o, "...");
    put_char(o, '"');
}

size_t log_format_line(char *buf, size_t size, enum log_format format,
                       pid_t pid, double unix_time, enum log_level level,
                       const char *event, const struct log_field *fields)
{
    struct out o = {buf, size - 1, 0}; /* keep room for the newline */
    buf[0] = '\0';
    if (format == LOG_FMT_JSON) {
        time_t secs = (time_t)unix_time;
        struct tm tm;
        gmtime_r(&secs, &tm);
        char ts[40];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        put(&o, "{\"ts\":\"%s.%03dZ\",\"pid\":%d,\"level\":\"%s\",\"event\":",
            ts, (int)((unix_time - (double)secs) * 1000) % 1000, (int)pid,
            level_names[level]);
        put_json_string(&o, event, strlen(event));
        for (const struct log_field *f = fields; f && f->key; f++) {
            put(&o, ",\"%s\":", f->key);
            if (f->type == LF_STR)
                put_json_string(&o, f->s ? f->s : "", trimmed_length(f->s ? f->s : ""));
            else if (f->type == LF_INT)
                put(&o, "%lld", f->i);
            else
                put(&o, "%.2f", f->d);
        }
        put_char(&o, '}');
    } else {
        put(&o, "pqshim[%d]: %s event=%s", (int)pid, level_names[level], event);
        for (const struct log_field *f = fields; f && f->key; f++) {
            put(&o, " %s=", f->key);
            if (f->type == LF_STR)
                put_text_value(&o, f->s ? f->s : "");
            else if (f->type == LF_INT)
                put(&o, "%lld", f->i);
            else
                put(&o, "%.2f", f->d);
        }
    }
    buf[o.len++] = '\n';
    buf[o.len] = '\0';
    return o.len;
}

static int log_fd = -1;
static dev_t log_dev;
static ino_t log_ino;
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;

/* A leaf (only open and fstat under it), held across fork() by init.c's
 * handlers: a child inheriting it taken would hang at its first line. */
void log_lock_for_fork(void) { pthread_mutex_lock(&open_lock); }
void log_unlock_after_fork(void) { pthread_mutex_unlock(&open_lock); }

static bool still_log_file(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == log_dev && st.st_ino == log_ino;
}

/* Why a log file is refused: another user's file (the lines could be
 * read there, and lines forged among them), or one every user may write. A
 * file of root's is fine (root is trusted anyway), and so is a character
 * device such as /dev/null. */
static const char *refusal(const struct stat *st)
{
    if (!S_ISREG(st->st_mode) && !S_ISCHR(st->st_mode) && !S_ISFIFO(st->st_mode))
        return "not a regular file";
    if (st->st_uid != geteuid() && st->st_uid != 0)
        return "owned by another user";
    if ((st->st_mode & S_IWOTH) && !S_ISCHR(st->st_mode))
        return "writable by every user";
    return NULL;
}

/* Opened on the first line, never earlier: an unused shim opens nothing.
 * O_NOFOLLOW: a symlink planted at the path by someone else is refused.
 * O_NONBLOCK: a FIFO with no reader at the path fails the open (the lines
 * go to stderr) instead of blocking the host forever; for a regular file
 * the flag changes nothing. A program may close every descriptor (as
 * daemonizing code does) and reuse the number for its own file: the file
 * is checked before each line and opened again when it is not ours.
 * -1 with *why (and errno in *err, or 0) when the file cannot be used. */
static int file_fd(const char *path, const char **why, int *err)
{
    int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0 && still_log_file(fd))
        return fd;
    pthread_mutex_lock(&open_lock);
    if (log_fd < 0 || !still_log_file(log_fd)) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
                            O_NOCTTY | O_NONBLOCK, 0600);
        struct stat st;
        *err = fd < 0 ? errno : 0;
        *why = fd < 0 ? (*err == ELOOP ? "a symbolic link" : *err == ENXIO ? "a FIFO nobody reads"
                         : "cannot open it")
             : fstat(fd, &st) != 0 ? "cannot inspect it" : refusal(&st);
        if (fd >= 0 && !*why) {
            log_dev = st.st_dev;
            log_ino = st.st_ino;
        } else if (fd >= 0) {
            close(fd);
            fd = -1;
        }
        __atomic_store_n(&log_fd, fd, __ATOMIC_RELEASE);
    }
    fd = log_fd;
    pthread_mutex_unlock(&open_lock);
    return fd;
}

/* Said once per process: the log file cannot be used, lines go to stderr.
 * (Only the thread that says it touches the copy of the settings.) */
static void say_file_unusable(const struct pqshim_config *cfg, const char *why, int err)
{
    static atomic_bool said;
    static struct pqshim_config to_stderr;
    if (atomic_exchange(&said, true))
        return;
    char error[160];
    snprintf(error, sizeof error, "%s%s%s", why ? why : "cannot open it", err ? ": " : "",
             err ? strerror(err) : "");
    to_stderr = *cfg;
    to_stderr.log_dest = LOG_TO_STDERR;
    log_emit(&to_stderr, LOG_LVL_ERROR, "log_file_unavailable",
             (const struct log_field[]){LF_S("file", cfg->log_path), LF_S("error", error),
                                        LF_S("effect", "lines go to stderr instead"), LF_END_});
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

void log_emit(const struct pqshim_config *cfg, enum log_level level,
              const char *event, const struct log_field *fields)
{
    if (level > cfg->log_level || cfg->log_dest == LOG_TO_NONE)
        return;
    int saved_errno = errno;
    char line[LINE_MAX_BYTES];
    size_t len = log_format_line(line, sizeof line, cfg->log_format, getpid(),
                                 now_realtime(), level, event, fields);
    switch (cfg->log_dest) {
    case LOG_TO_STDERR:
        write_all(STDERR_FILENO, line, len);
        break;
    case LOG_TO_FILE: {
        const char *why = NULL;
        int err = 0;
        int fd = file_fd(cfg->log_path, &why, &err);
        if (fd >= 0) {
            write_all(fd, line, len);
        } else {
            say_file_unusable(cfg, why, err);
            write_all(STDERR_FILENO, line, len);
        }
        break;
    }
    case LOG_TO_SYSLOG: {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        line[len - 1] = '\0';
        syslog(LOG_USER | prio[level], "%s", line);
        break;
    }
    case LOG_TO_NONE:
        break;
    }
    errno = saved_errno;
}

static void log_problem(enum log_level level, const char *variable,
                        const char *value, const char *accepted)
{
    const struct pqshim_config *c = config_get();
    if (level == LOG_LVL_WARN) {
        log_emit(c, LOG_LVL_WARN, "config_unknown",
                 (const struct log_field[]){
                     LF_S("variable", variable),
                     LF_S("detail", "not a pqshim variable (misspelt?); ignored"),
                     LF_END_});
        return;
    }
    char using[32];
    config_value_string(c, variable, using, sizeof using);
    log_emit(c, LOG_LVL_ERROR, "config_invalid",
             (const struct log_field[]){LF_S("variable", variable),
                                        LF_S("value", value),
                                        LF_S("accepted", accepted),
                                        LF_S("using", using), LF_END_});
}

void log_config_problems(void)
{
    config_for_each_problem(log_problem);
}

void log_event(enum log_level level, const char *event,
               const struct log_field *fields)
{
    log_emit(config_get(), level, event, fields);
}
