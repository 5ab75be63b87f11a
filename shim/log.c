/*
 * log.c — lifecycle log lines.
 *
 * Each line is built in a stack buffer and written with one write(), so
 * lines from threads and processes sharing the destination never interleave.
 */
#define _GNU_SOURCE
#include "pqshim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return true;
    }
    return false;
}

/* A string value is cut to this many bytes as written (escapes included)
 * and then ends in "...": however long a libpq message or a target name,
 * the line keeps room for every field and its closing quote, so a long
 * value never leaves an unterminated string (or invalid JSON) behind. */
#define VALUE_MAX_BYTES 600

/* Bytes that character c takes once escaped (text: 2 for a quote or a
 * backslash; JSON: 6 for a control character). */
static size_t escaped_size(unsigned char c, bool json)
{
    if (c == '"' || c == '\\')
        return 2;
    if (json && (c < ' ' || c == 0x7f))
        return 6;
    return 1;
}

/* How many of the n bytes of s fit in VALUE_MAX_BYTES once escaped;
 * *cut says whether some were left out ("..." then follows them). */
static size_t value_fit(const char *s, size_t n, bool json, bool *cut)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        used += escaped_size((unsigned char)s[i], json);
        if (used > VALUE_MAX_BYTES - 3) {
            /* Never in the middle of a UTF-8 sequence. */
            while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
                i--;
            *cut = true;
            return i;
        }
    }
    *cut = false;
    return n;
}

static void put_text_value(struct out *o, const char *s)
{
    size_t n = trimmed_length(s);
    bool quote = needs_quotes(s, n), cut;
    n = value_fit(s, n, false, &cut);
    if (quote)
        put_char(o, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            put_char(o, '\\');
            put_char(o, (char)c);
        } else if (c < ' ' || c == 0x7f) {
            put_char(o, ' ');
        } else {
            put_char(o, (char)c);
        }
    }
    if (cut)
        put(o, "...");
    if (quote)
        put_char(o, '"');
}

static void put_json_string(struct out *o, const char *s, size_t n)
{
    bool cut;
    n = value_fit(s, n, true, &cut);
    put_char(o, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            put_char(o, '\\');
            put_char(o, (char)c);
        } else if (c < ' ' || c == 0x7f) {
            put(o, "\\u%04x", c);
        } else {
            put_char(o, (char)c);
        }
    }
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

static bool still_log_file(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == log_dev && st.st_ino == log_ino;
}

/* Opened on the first line, never earlier: an unused shim opens nothing.
 * O_NOFOLLOW: a symlink planted at the path by someone else is refused.
 * O_NONBLOCK: a FIFO with no reader at the path fails the open (the lines
 * go to stderr) instead of blocking the host forever; for a regular file
 * the flag changes nothing. A program may close every descriptor (as
 * daemonizing code does) and reuse the number for its own file: the file
 * is checked before each line and opened again when it is not ours. */
static int file_fd(const char *path)
{
    int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0 && still_log_file(fd))
        return fd;
    pthread_mutex_lock(&open_lock);
    if (log_fd < 0 || !still_log_file(log_fd)) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
                            O_NOCTTY | O_NONBLOCK, 0600);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0) {
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
        int fd = file_fd(cfg->log_path);
        if (fd >= 0)
            write_all(fd, line, len);
        else
            write_all(STDERR_FILENO, line, len);
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

void log_event(enum log_level level, const char *event,
               const struct log_field *fields)
{
    log_emit(config_get(), level, event, fields);
}

double now_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double now_realtime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
