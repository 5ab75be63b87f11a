/*
 * pqshimctl.c — talk to the control sockets of programs running with pqshim.
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
 */
#define _GNU_SOURCE
#include "../shim/control_path.h"
#include "../shim/escape.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* The Makefile passes the version from the file VERSION. */
#ifndef PQSHIM_VERSION
#define PQSHIM_VERSION "unknown"
#endif

enum {
    EXIT_OK = 0,
    EXIT_REPLY = 1,  /* error reply, health failing, malformed reply */
    EXIT_USAGE = 2,  /* bad arguments, or nothing to talk to */
};

#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)
#define DEFAULT_TIMEOUT 2.0
#define HEALTH_TIMEOUT 15.0       /* health opens connections (5 s each at most) */
#define OVERALL_FACTOR 5          /* ls, top, metrics --all: all within 5 timeouts */
#define REPLY_MAX (64u << 20)     /* never buffer more than this */
#define JSON_MAX_DEPTH 64

static const char *progname = "pqshimctl";

static char *clean(const char *s);

/* A message may carry paths and words from other users' processes: no
 * control character reaches the terminal. */
static void __attribute__((format(printf, 1, 0))) vsay(const char *fmt, va_list ap)
{
    char *text = NULL;
    if (vasprintf(&text, fmt, ap) < 0) {
        fprintf(stderr, "%s: out of memory\n", progname);
        return;
    }
    char *shown = clean(text);
    fprintf(stderr, "%s: %s\n", progname, shown);
    free(shown);
    free(text);
}

static void __attribute__((format(printf, 1, 2))) errmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

static void __attribute__((format(printf, 1, 2), noreturn)) usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    fprintf(stderr, "Try '%s --help'.\n", progname);
    va_end(ap);
    exit(EXIT_USAGE);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_USAGE);
    }
    return p;
}

static void *xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_USAGE);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static char *__attribute__((format(printf, 1, 0))) xvasprintf(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_USAGE);
    }
    return s;
}

static char *__attribute__((format(printf, 1, 2))) xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Text from a process goes to a terminal: no control character (C0,
 * DEL, C1) and no invalid UTF-8, so a target or program name can never
 * inject escape sequences. */
static char *clean(const char *s)
{
    size_t n = strlen(s), len = 0;
    char *out = xmalloc(n + 1); /* '?' replaces one byte or more */
    while (n > 0) {
        char e[ESC_MAX];
        size_t took = esc_char(s, n, ESC_TERM, e);
        memcpy(out + len, e, strlen(e));
        len += strlen(e);
        s += took;
        n -= took;
    }
    out[len] = '\0';
    return out;
}

/* A reply shown as it came (help, metrics, --json): lines and tabs kept,
 * every other control character and invalid byte shown as '?'. */
static void print_text(const char *s, size_t n)
{
    while (n > 0) {
        char e[ESC_MAX];
        size_t took = 1;
        if (*s == '\n' || *s == '\t')
            e[0] = *s, e[1] = '\0';
        else
            took = esc_char(s, n, ESC_TERM, e);
        fputs(e, stdout);
        s += took;
        n -= took;
    }
}

/* Columns a string takes (UTF-8 aware enough for alignment). */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

/* ---- JSON: a small strict parser ---------------------------------------- */

enum jtype { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct json {
    enum jtype type;
    double num;
    char *str;          /* J_STR: decoded, NUL-terminated */
    char *key;          /* member name, inside an object */
    struct json *kids;  /* J_ARR, J_OBJ: first element */
    struct json *next;  /* next sibling */
};

struct jparser {
    const char *s, *end;
    int depth;
};

static void json_free(struct json *v)
{
    while (v) {
        struct json *next = v->next;
        json_free(v->kids);
        free(v->str);
        free(v->key);
        free(v);
        v = next;
    }
}

static void jp_ws(struct jparser *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static bool hex4(const char *s, const char *end, unsigned *out)
{
    if (end - s < 4)
        return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)s[i];
        int d = isdigit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0)
            return false;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return true;
}

static char *utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* At the opening quote; returns the decoded string (malloc'd) or NULL.
 * Decoding never grows the text, so the raw length bounds the output. */
static char *jp_string(struct jparser *p)
{
    const char *q = ++p->s;
    while (q < p->end && *q != '"') {
        if ((unsigned char)*q < 0x20)
            return NULL;
        if (*q == '\\' && ++q >= p->end)
            return NULL;
        q++;
    }
    if (q >= p->end)
        return NULL;
    char *out = xmalloc((size_t)(q - p->s) + 1), *o = out;
    for (const char *r = p->s; r < q;) {
        if (*r != '\\') {
            *o++ = *r++;
            continue;
        }
        r++;
        char c = *r++;
        unsigned cp, lo;
        switch (c) {
        case '"': case '\\': case '/': *o++ = c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (!hex4(r, q, &cp))
                goto bad;
            r += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && q - r >= 6 && r[0] == '\\' &&
                r[1] == 'u' && hex4(r + 2, q, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                r += 6;
            } else if ((cp >= 0xd800 && cp < 0xe000) || cp == 0) {
                cp = 0xfffd; /* lone surrogate, or a NUL a C string cannot hold */
            }
            o = utf8_put(o, cp);
            break;
        default:
            goto bad;
        }
    }
    *o = '\0';
    p->s = q + 1;
    return out;
bad:
    free(out);
    return NULL;
}

static bool jp_number(struct jparser *p, double *out)
{
    const char *q = p->s, *end = p->end;
#define DIGITS_AT(x) ((x) < end && isdigit((unsigned char)*(x)))
    if (q < end && *q == '-')
        q++;
    if (!DIGITS_AT(q))
        return false;
    if (*q == '0')
        q++;
    else
        while (DIGITS_AT(q))
            q++;
    if (q < end && *q == '.') {
        q++;
        if (!DIGITS_AT(q))
            return false;
        while (DIGITS_AT(q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (!DIGITS_AT(q))
            return false;
        while (DIGITS_AT(q))
            q++;
    }
#undef DIGITS_AT
    char tmp[400];
    size_t n = (size_t)(q - p->s);
    if (n >= sizeof tmp)
        return false;
    memcpy(tmp, p->s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    p->s = q;
    return true;
}

static bool jp_literal(struct jparser *p, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0)
        return false;
    p->s += n;
    return true;
}

static struct json *jp_value(struct jparser *p);

/* Elements of an array or members of an object, after the opening bracket. */
static bool jp_container(struct jparser *p, struct json *v, char close)
{
    struct json **tail = &v->kids;
    jp_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        if (close == '}') {
            jp_ws(p);
            if (p->s >= p->end || *p->s != '"' || !(key = jp_string(p)))
                return false;
            jp_ws(p);
            if (p->s >= p->end || *p->s != ':') {
                free(key);
                return false;
            }
            p->s++;
        }
        struct json *kid = jp_value(p);
        if (!kid) {
            free(key);
            return false;
        }
        kid->key = key;
        *tail = kid;
        tail = &kid->next;
        jp_ws(p);
        if (p->s >= p->end)
            return false;
        char c = *p->s++;
        if (c == close)
            return true;
        if (c != ',')
            return false;
    }
}

static struct json *jp_value(struct jparser *p)
{
    jp_ws(p);
    if (p->s >= p->end || p->depth >= JSON_MAX_DEPTH)
        return NULL;
    struct json *v = xmalloc(sizeof *v);
    memset(v, 0, sizeof *v);
    bool ok;
    p->depth++;
    switch (*p->s) {
    case '{':
        v->type = J_OBJ;
        p->s++;
        ok = jp_container(p, v, '}');
        break;
    case '[':
        v->type = J_ARR;
        p->s++;
        ok = jp_container(p, v, ']');
        break;
    case '"':
        v->type = J_STR;
        ok = (v->str = jp_string(p)) != NULL;
        break;
    case 't': v->type = J_TRUE; ok = jp_literal(p, "true"); break;
    case 'f': v->type = J_FALSE; ok = jp_literal(p, "false"); break;
    case 'n': v->type = J_NULL; ok = jp_literal(p, "null"); break;
    default:
        v->type = J_NUM;
        ok = jp_number(p, &v->num);
    }
    p->depth--;
    if (!ok) {
        json_free(v);
        return NULL;
    }
    return v;
}

/* The whole text must be one value (surrounding white space allowed). */
static struct json *json_parse(const char *text, size_t len)
{
    struct jparser p = {text, text + len, 0};
    struct json *v = jp_value(&p);
    jp_ws(&p);
    if (v && p.s != p.end) {
        json_free(v);
        v = NULL;
    }
    return v;
}

static const struct json *json_get(const struct json *obj, const char *key)
{
    if (!obj || obj->type != J_OBJ)
        return NULL;
    for (const struct json *k = obj->kids; k; k = k->next)
        if (k->key && strcmp(k->key, key) == 0)
            return k;
    return NULL;
}

static const char *json_str(const struct json *obj, const char *key, const char *dflt)
{
    const struct json *v = json_get(obj, key);
    return v && v->type == J_STR ? v->str : dflt;
}

static bool json_has_num(const struct json *obj, const char *key)
{
    const struct json *v = json_get(obj, key);
    return v && v->type == J_NUM;
}

static double json_num(const struct json *obj, const char *key)
{
    const struct json *v = json_get(obj, key);
    return v && v->type == J_NUM ? v->num : 0;
}

static bool json_true(const struct json *obj, const char *key)
{
    const struct json *v = json_get(obj, key);
    return v && v->type == J_TRUE;
}

/* ---- talking to sockets ------------------------------------------------------ */

struct reply {
    char *data;   /* NUL-terminated */
    size_t len;
};

static void reply_free(struct reply *r)
{
    free(r->data);
    r->data = NULL;
    r->len = 0;
}

/* Talk errors besides errno values: the server is not who may serve the
 * socket; the overall time ran out before the socket was asked. */
#define E_UNTRUSTED 10001
#define E_NOT_ASKED 10002

/* One candidate socket: where it was found, who must serve it, and what
 * came back. */
struct entry {
    char path[SUN_PATH_SIZE];
    dev_t dev;                /* the socket file, for duplicates */
    ino_t ino;
    pid_t named_by;           /* the process whose environment names it; 0: a directory's */
    uid_t owner;              /* who must serve it: named_by's owner, or the file's */
    pid_t pid;                /* who serves it (SO_PEERCRED), once connected */
    uid_t peer_uid;
    int rc;                   /* 0 or a negative errno (or -E_*) */
    struct reply reply;
    struct json *status;      /* parsed status reply, when asked */
    /* the exchange in flight */
    int fd;
    enum { X_IDLE, X_CONNECT, X_SEND, X_READ, X_DONE } state;
    double deadline;
    size_t sent, cap;
};

/* May this server answer for e? The kernel says who listens (SO_PEERCRED).
 * It must be the user who owns the process that names the socket (or the
 * socket file, for one found in a directory): someone else who planted a
 * socket at that path is never believed, and never sent a command. A user
 * other than root can only be answered by its own processes (the shim
 * answers no one else), so it believes no one else either. */
static bool peer_trusted(struct entry *e, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0)
        return false;
    e->pid = cred.pid;
    e->peer_uid = cred.uid;
    return cred.uid == e->owner && (geteuid() == 0 || cred.uid == geteuid());
}

static void x_finish(struct entry *e, int rc)
{
    if (e->fd >= 0)
        close(e->fd);
    e->fd = -1;
    e->rc = rc;
    e->state = X_DONE;
    if (rc < 0)
        reply_free(&e->reply);
    else
        e->reply.data[e->reply.len] = '\0';
}

static void x_connect(struct entry *e)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, e->path, strlen(e->path) + 1);
    if (connect(e->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (errno == EAGAIN || errno == EINTR) /* a full listen queue: try again */
            return;
        x_finish(e, -errno);
        return;
    }
    e->state = peer_trusted(e, e->fd) ? X_SEND : X_DONE;
    if (e->state == X_DONE)
        x_finish(e, -E_UNTRUSTED);
}

static void x_send(struct entry *e, const char *command)
{
    char line[256];
    int n = snprintf(line, sizeof line, "%s\n", command);
    while (e->sent < (size_t)n) {
        ssize_t w = send(e->fd, line + e->sent, (size_t)n - e->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            e->sent += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EINTR))
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break; /* EPIPE: the process answered without reading (a refusal) */
    }
    shutdown(e->fd, SHUT_WR);
    e->state = X_READ;
}

static void x_read(struct entry *e)
{
    for (;;) {
        if (e->reply.len + 1 >= e->cap) {
            if (e->cap >= REPLY_MAX) {
                x_finish(e, -E2BIG);
                return;
            }
            e->cap = e->cap ? e->cap * 2 : 4096;
            e->reply.data = xrealloc(e->reply.data, e->cap);
        }
        ssize_t got = recv(e->fd, e->reply.data + e->reply.len, e->cap - 1 - e->reply.len,
                           MSG_DONTWAIT);
        if (got > 0) {
            e->reply.len += (size_t)got;
            continue;
        }
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return;
        /* EOF (or a reset after the reply) */
        x_finish(e, got < 0 && e->reply.len == 0 ? -errno : 0);
        return;
    }
}

static void x_start(struct entry *e, double deadline)
{
    e->deadline = deadline;
    e->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    e->reply.data = xmalloc(4096);
    e->cap = 4096;
    e->reply.len = 0;
    if (e->fd < 0) {
        x_finish(e, -errno);
        return;
    }
    e->state = X_CONNECT;
    x_connect(e);
}

#define MAX_IN_FLIGHT 64

/* Ask every entry, up to MAX_IN_FLIGHT at a time, each within timeout
 * seconds of its start and all within overall seconds: a socket that
 * accepts and never answers costs its own timeout, in parallel with the
 * others, and never more than overall in all. Sets each entry's rc. */
static void exchange_all(struct entry *v, int n, const char *command, double timeout,
                         double overall)
{
    double end_all = now_mono() + overall;
    int next = 0, active = 0;
    struct pollfd *pfd = xmalloc(sizeof *pfd * MAX_IN_FLIGHT);
    int *which = xmalloc(sizeof *which * MAX_IN_FLIGHT);
    for (int i = 0; i < n; i++) {
        v[i].fd = -1;
        v[i].state = X_IDLE;
    }
    for (;;) {
        double now = now_mono();
        while (active < MAX_IN_FLIGHT && next < n && now < end_all) {
            struct entry *e = &v[next++];
            x_start(e, now + timeout < end_all ? now + timeout : end_all);
            active += e->state != X_DONE;
        }
        if (active == 0)
            break;
        int np = 0, wait_ms;
        bool retry = false;
        double wake = end_all;
        for (int i = 0; i < next; i++) {
            struct entry *e = &v[i];
            if (e->state == X_DONE || e->state == X_IDLE)
                continue;
            if (now >= e->deadline) {
                x_finish(e, -ETIMEDOUT);
                active--;
                continue;
            }
            if (e->state == X_CONNECT)
                x_connect(e);
            if (e->state == X_SEND)
                x_send(e, command);
            if (e->state == X_DONE) {
                active--;
                continue;
            }
            if (e->state == X_CONNECT) {
                retry = true;
            } else {
                pfd[np].fd = e->fd;
                pfd[np].events = e->state == X_SEND ? POLLOUT : POLLIN;
                pfd[np].revents = 0;
                which[np++] = i;
            }
            if (e->deadline < wake)
                wake = e->deadline;
        }
        if (active == 0)
            continue;
        wait_ms = (int)((wake - now) * 1000) + 1;
        if (retry && wait_ms > 20)
            wait_ms = 20;
        if (poll(pfd, (nfds_t)np, wait_ms) <= 0)
            continue;
        for (int k = 0; k < np; k++) {
            struct entry *e = &v[which[k]];
            if (!pfd[k].revents)
                continue;
            if (e->state == X_SEND)
                x_send(e, command);
            if (e->state == X_READ)
                x_read(e);
            if (e->state == X_DONE)
                active--;
        }
    }
    for (int i = next; i < n; i++) {
        v[i].rc = -E_NOT_ASKED;
        v[i].state = X_DONE;
    }
    free(pfd);
    free(which);
}

static const char *talk_error(const struct entry *e, double timeout)
{
    static char text[160];
    switch (-e->rc) {
    case ENOENT: return "no such socket";
    case ECONNREFUSED: return "nothing is listening (stale socket of a dead process?)";
    case EACCES: return "permission denied (the socket belongs to another user)";
    case ENAMETOOLONG: return "path too long for a Unix socket";
    case E2BIG: return "reply too large";
    case ETIMEDOUT:
        snprintf(text, sizeof text, "no reply within %g s", timeout);
        return text;
    case E_NOT_ASKED:
        return "not asked: the overall time limit ran out";
    case E_UNTRUSTED:
        if (e->named_by)
            snprintf(text, sizeof text, "served by uid %u (pid %d), not by uid %u who owns "
                     "process %d: not believed, nothing sent", (unsigned)e->peer_uid,
                     (int)e->pid, (unsigned)e->owner, (int)e->named_by);
        else
            snprintf(text, sizeof text, "served by uid %u (pid %d), not by %s (uid %u): not "
                     "believed, nothing sent", (unsigned)e->peer_uid, (int)e->pid,
                     e->owner == geteuid() ? "this user" : "the socket's owner",
                     (unsigned)(e->owner == geteuid() || geteuid() == 0 ? e->owner : geteuid()));
        return text;
    default: return strerror(-e->rc);
    }
}

/* ---- finding sockets ----------------------------------------------------------- */

/* The whole of a /proc file (NUL-terminated; may hold NULs), or NULL. */
static char *read_proc_file(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *data = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= (16u << 20))
                break;
            cap *= 2;
            data = xrealloc(data, cap);
        }
        ssize_t n = read(fd, data + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            free(data);
            errno = err;
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    data[len] = '\0';
    if (len_out)
        *len_out = len;
    return data;
}

/* PQSHIM_CONTROL from a process's environment (malloc'd), or NULL. */
static char *proc_control_pattern(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    size_t len;
    char *env = read_proc_file(path, &len);
    if (!env)
        return NULL;
    char *found = NULL;
    for (size_t i = 0; i < len; i += strlen(env + i) + 1)
        if (strncmp(env + i, "PQSHIM_CONTROL=", 15) == 0 && env[i + 15]) {
            free(found);
            found = xstrdup(env + i + 15); /* the last one wins, as in getenv */
        }
    free(env);
    return found;
}

/* The effective uid of a process (the one the shim expands %u with, and
 * the owner of the socket it creates). */
static bool proc_euid(pid_t pid, uid_t *uid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *status = read_proc_file(path, NULL);
    if (!status)
        return false;
    char *line = strstr(status, "\nUid:");
    unsigned real, eff;
    bool ok = line && sscanf(line + 5, "%u %u", &real, &eff) == 2;
    if (ok)
        *uid = (uid_t)eff;
    free(status);
    return ok;
}

/* The socket of process pid and its owner; on failure a message and false. */
static bool pid_socket(pid_t pid, char *out, size_t size, uid_t *owner)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d", (int)pid);
    struct stat st;
    if (pid <= 0 || stat(dir, &st) != 0) {
        errmsg("no such process: %d", (int)pid);
        return false;
    }
    char *pattern = proc_control_pattern(pid);
    const char *from = "its environment";
    if (!pattern) {
        const char *own = getenv("PQSHIM_CONTROL");
        if (!own || !*own) {
            errmsg("process %d: no PQSHIM_CONTROL in its environment (or it is not "
                   "readable) and none set here; name the socket with -s", (int)pid);
            return false;
        }
        pattern = xstrdup(own);
        from = "this environment";
    }
    uid_t uid;
    if (!proc_euid(pid, &uid))
        uid = st.st_uid;
    *owner = uid;
    bool ok = control_expand_path(pattern, pid, uid, out, size) && strlen(out) < SUN_PATH_SIZE;
    if (!ok)
        errmsg("process %d: PQSHIM_CONTROL from %s expands to an empty or too long path",
               (int)pid, from);
    free(pattern);
    return ok;
}

struct scan {
    struct entry *v;
    int n, cap;
    char **notes;             /* stale sockets, refusals, ... */
    int nnotes;
};

/* Notes hold paths and words from other users: cleaned once, here. */
static void scan_note(struct scan *s, char *note)
{
    s->notes = xrealloc(s->notes, sizeof *s->notes * (size_t)(s->nnotes + 1));
    s->notes[s->nnotes++] = clean(note);
    free(note);
}

/* A socket at path (looked at, never followed at its end), served by
 * owner's processes; named_by its process, or 0. */
static void scan_add(struct scan *s, const char *path, pid_t named_by, uid_t owner)
{
    struct stat st;
    if (strlen(path) >= SUN_PATH_SIZE || lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return;
    /* A process's own socket is its owner's file: a path that leads to
     * anyone else's socket (through a symlinked directory, say) is not
     * even connected to. */
    if (named_by && st.st_uid != owner) {
        scan_note(s, xasprintf("%s (named by process %d of uid %u) is a socket of uid %u: "
                               "not asked", path, (int)named_by, (unsigned)owner,
                               (unsigned)st.st_uid));
        return;
    }
    for (int i = 0; i < s->n; i++)
        if (s->v[i].dev == st.st_dev && s->v[i].ino == st.st_ino)
            return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = xrealloc(s->v, sizeof *s->v * (size_t)s->cap);
    }
    struct entry *e = &s->v[s->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", path);
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->named_by = named_by;
    e->owner = named_by ? owner : st.st_uid;
    e->fd = -1;
}

/* Every process whose environment we may read and that names a socket. */
static void scan_processes(struct scan *s)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    pid_t self = getpid();
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid > INT_MAX || pid == self)
            continue;
        char *pattern = proc_control_pattern((pid_t)pid);
        uid_t uid;
        char path[SUN_PATH_SIZE];
        if (pattern && proc_euid((pid_t)pid, &uid) &&
            control_expand_path(pattern, (pid_t)pid, uid, path, sizeof path))
            scan_add(s, path, (pid_t)pid, uid);
        free(pattern);
    }
    closedir(d);
}

/* Every socket in dir. False when dir cannot be read. */
static bool scan_dir(struct scan *s, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) < (int)sizeof path)
            scan_add(s, path, 0, 0);
    }
    closedir(d);
    return true;
}

/* The directory of our own PQSHIM_CONTROL pattern, unless it varies per
 * process (%p): then there is no one directory to look in. */
static bool own_socket_dir(char *out, size_t size)
{
    const char *pattern = getenv("PQSHIM_CONTROL");
    if (!pattern || pattern[0] != '/')
        return false;
    const char *slash = strrchr(pattern, '/');
    char dir[PATH_MAX];
    size_t n = (size_t)(slash - pattern);
    if (n >= sizeof dir)
        return false;
    memcpy(dir, pattern, n);
    dir[n] = '\0';
    if (n == 0)
        snprintf(dir, sizeof dir, "/");
    if (strstr(dir, "%p"))
        return false;
    return control_expand_path(dir, getpid(), geteuid(), out, size);
}

/* Does the socket named base in dir refuse connections? Connected to
 * through the directory's descriptor, so it is the very file looked at. */
static bool refuses(int dir, const char *base)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", dir, base) >=
        (int)sizeof addr.sun_path)
        return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return false;
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int err = errno;
    close(fd);
    return rc != 0 && err == ECONNREFUSED;
}

/* Remove a socket nobody listens on, if it is ours to remove: our own
 * user's socket, named by none of another user's processes. It is looked
 * at, tested and removed through its directory's descriptor, never
 * followed, and only if it is still the same file (device and inode):
 * a path from anyone's environment can never make this remove anything
 * else. A note, or NULL. */
static char *clear_stale(const struct entry *e)
{
    if (e->owner != geteuid())
        return xasprintf("stale socket %s (no process listening), served for uid %u: "
                         "not removed (only this user's own are)", e->path, (unsigned)e->owner);
    char base[SUN_PATH_SIZE];
    int dir = control_open_dir(e->path, base, sizeof base);
    if (dir < 0)
        return xasprintf("stale socket %s (no process listening): not removed: %s", e->path,
                         strerror(errno));
    struct stat st, again;
    char *note = NULL;
    if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode) ||
        st.st_dev != e->dev || st.st_ino != e->ino) {
        note = xasprintf("%s: replaced while it was looked at; left alone", e->path);
    } else if (st.st_uid != geteuid()) {
        note = xasprintf("stale socket %s (no process listening), owned by uid %u: not removed",
                         e->path, (unsigned)st.st_uid);
    } else {
        /* A process between bind() and listen() refuses too: look again. */
        poll(NULL, 0, 50);
        if (!refuses(dir, base))
            note = NULL;
        else if (fstatat(dir, base, &again, AT_SYMLINK_NOFOLLOW) != 0 ||
                 again.st_dev != st.st_dev || again.st_ino != st.st_ino)
            note = xasprintf("%s: replaced while it was looked at; left alone", e->path);
        else if (unlinkat(dir, base, 0) != 0)
            note = xasprintf("stale socket %s (no process listening): cannot remove: %s",
                             e->path, strerror(errno));
        else
            note = xasprintf("stale socket %s (no process listening): removed (its process "
                             "was killed or ended with _exit)", e->path);
    }
    close(dir);
    return note;
}

/* Ask every candidate; keep those that answered as themselves, note the
 * rest (which ones timed out, which were not believed, ...). */
static void scan_query(struct scan *s, const char *command, double timeout)
{
    exchange_all(s->v, s->n, command, timeout, timeout * OVERALL_FACTOR);
    int kept = 0;
    bool is_status = strcmp(command, "status") == 0;
    for (int i = 0; i < s->n; i++) {
        struct entry *e = &s->v[i];
        if (e->rc == -ECONNREFUSED) {
            char *note = clear_stale(e);
            if (note)
                scan_note(s, note);
            continue;
        }
        if (e->rc == -ENOENT)
            continue; /* gone meanwhile: the process exited */
        if (e->rc < 0) {
            if (e->pid > 0)
                scan_note(s, xasprintf("%s (pid %d): %s", e->path, (int)e->pid,
                                       talk_error(e, timeout)));
            else
                scan_note(s, xasprintf("%s: %s", e->path, talk_error(e, timeout)));
            continue;
        }
        struct json *j = NULL;
        if (e->reply.data[0] == '{')
            j = json_parse(e->reply.data, e->reply.len);
        const char *error = json_str(j, "error", NULL);
        bool bad_pid = is_status && j && !error && json_num(j, "pid") != (double)e->pid;
        if (error || (!j && is_status) || bad_pid) {
            if (bad_pid)
                scan_note(s, xasprintf("%s: the reply claims pid %.0f but pid %d serves it: "
                                       "ignored", e->path, json_num(j, "pid"), (int)e->pid));
            else
                scan_note(s, xasprintf("%s: %s", e->path, error ? error : "malformed reply"));
            json_free(j);
            reply_free(&e->reply);
            continue;
        }
        bool dup = false;
        for (int k = 0; k < kept; k++)
            dup |= s->v[k].pid == e->pid;
        if (dup) {
            json_free(j);
            reply_free(&e->reply);
            continue;
        }
        if (is_status)
            e->status = j;
        else
            json_free(j);
        if (kept != i) {
            s->v[kept] = *e;
            memset(e, 0, sizeof *e);
        }
        kept++;
    }
    s->n = kept;
}

static int by_pid(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

static void scan_free(struct scan *s)
{
    for (int i = 0; i < s->n; i++) {
        reply_free(&s->v[i].reply);
        json_free(s->v[i].status);
    }
    for (int i = 0; i < s->nnotes; i++)
        free(s->notes[i]);
    free(s->v);
    free(s->notes);
    memset(s, 0, sizeof *s);
}

/* Find and ask every shimmed process we may see (only_dir: just the
 * sockets in dir, no /proc scan). */
static bool scan_all(struct scan *s, const char *dir, bool only_dir, const char *command,
                     double timeout)
{
    memset(s, 0, sizeof *s);
    if (!only_dir)
        scan_processes(s);
    char own[PATH_MAX];
    if (dir) {
        if (!scan_dir(s, dir)) {
            errmsg("cannot read directory %s: %s", dir, strerror(errno));
            return false;
        }
    } else if (own_socket_dir(own, sizeof own)) {
        scan_dir(s, own); /* it may not exist yet: nothing there then */
    }
    scan_query(s, command, timeout);
    if (strcmp(command, "status") == 0)
        qsort(s->v, (size_t)s->n, sizeof *s->v, by_pid);
    return true;
}

/* ---- tables --------------------------------------------------------------- */

#define MAX_COLS 14

struct table {
    int ncols;
    const char *head[MAX_COLS];
    bool right[MAX_COLS];
    char **cells;
    int ncells, cap;
};

static void __attribute__((format(printf, 2, 3))) cell(struct table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    if (t->ncells == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = xrealloc(t->cells, sizeof *t->cells * (size_t)t->cap);
    }
    t->cells[t->ncells++] = clean(s);
    free(s);
}

static void pad(size_t n)
{
    while (n-- > 0)
        putchar(' ');
}

/* psql style (boxed: " a | b ", a rule under the header) or plain
 * (columns separated by two spaces, like ps). */
static void table_print(struct table *t, bool boxed)
{
    size_t w[MAX_COLS];
    int rows = t->ncells / t->ncols;
    for (int c = 0; c < t->ncols; c++) {
        w[c] = width_of(t->head[c]);
        for (int r = 0; r < rows; r++) {
            size_t cw = width_of(t->cells[r * t->ncols + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    }
    for (int r = -1; r < rows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = r < 0 ? t->head[c] : t->cells[r * t->ncols + c];
            size_t gap = w[c] - width_of(s);
            bool last = c == t->ncols - 1;
            if (boxed)
                printf(c ? "| " : " ");
            if (t->right[c])
                pad(gap);
            fputs(s, stdout);
            if (!t->right[c] && (boxed || !last))
                pad(gap);
            if (boxed)
                printf(last ? "" : " ");
            else if (!last)
                printf("  ");
        }
        putchar('\n');
        if (r < 0 && boxed) {
            for (int c = 0; c < t->ncols; c++) {
                if (c)
                    putchar('+');
                for (size_t k = 0; k < w[c] + 2 - (c == t->ncols - 1); k++)
                    putchar('-');
            }
            putchar('\n');
        }
    }
    for (int i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->ncells = t->cap = 0;
}

static void format_duration(char *out, size_t size, double s)
{
    if (s < 60)
        snprintf(out, size, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, size, "%dm%02ds", (int)s / 60, (int)s % 60);
    else if (s < 86400)
        snprintf(out, size, "%dh%02dm%02ds", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else
        snprintf(out, size, "%dd%02dh%02dm", (int)(s / 86400), (int)(s / 3600) % 24,
                 (int)(s / 60) % 60);
}

static void cap_text(char *out, size_t size, const struct json *pool)
{
    if (json_has_num(pool, "cap"))
        snprintf(out, size, "%.0f", json_num(pool, "cap"));
    else
        snprintf(out, size, "-");
}

/* The host-wide numbers of a pool: " host=HELD/LIMIT host_waiting=N"
 * (long) or "HELD/LIMIT" (short); nothing or "-" without a host limit. */
static void host_text(char *out, size_t size, const struct json *pool, bool long_form)
{
    const struct json *h = json_get(pool, "host");
    if (!h || !json_has_num(h, "limit")) {
        snprintf(out, size, "%s", long_form ? "" : "-");
        return;
    }
    if (long_form)
        snprintf(out, size, " host=%.0f/%.0f host_waiting=%.0f", json_num(h, "held"),
                 json_num(h, "limit"), json_num(h, "waiting"));
    else
        snprintf(out, size, "%.0f/%.0f", json_num(h, "held"), json_num(h, "limit"));
}

/* ---- single-process commands ------------------------------------------------- */

static void show_status(const struct json *st)
{
    char up[32];
    format_duration(up, sizeof up, json_num(st, "uptime_s"));
    char *program = clean(json_str(st, "program", "?"));
    char *policy = clean(json_str(st, "policy", "?"));
    printf("pid %.0f  program %s  policy %s  paused %s  uptime %s\n", json_num(st, "pid"),
           program, policy, json_true(st, "paused") ? "yes" : "no", up);
    free(program);
    free(policy);
    const struct json *hl = json_get(st, "host_limit");
    if (hl && json_has_num(hl, "limit")) {
        char *file = clean(json_str(hl, "file", "?"));
        printf("host limit %.0f per target, shared through %s\n", json_num(hl, "limit"), file);
        free(file);
    }
    const struct json *pools = json_get(st, "pools");
    int n = 0;
    for (const struct json *p = pools ? pools->kids : NULL; p; p = p->next)
        n++;
    if (n == 0) {
        printf("(no targets yet)\n");
        return;
    }
    putchar('\n');
    struct table t = {
        .ncols = 13,
        .head = {"target", "cap", "open", "used", "idle", "waiting", "connects", "reuses",
                 "timeouts", "wait ms total", "oldest checkout", "host held/limit",
                 "host waiting"},
        .right = {false, true, true, true, true, true, true, true, true, true, true, true,
                  true},
    };
    const struct json *totals = json_get(st, "totals");
    for (const struct json *p = pools->kids;; p = p->next) {
        if (!p) {
            if (n < 2 || !totals)
                break;
            p = totals; /* a summary row when there are several targets */
        }
        char capbuf[32], oldest[32];
        cap_text(capbuf, sizeof capbuf, p);
        double age = json_num(p, "oldest_checkout_s");
        if (age > 0)
            format_duration(oldest, sizeof oldest, age);
        else
            snprintf(oldest, sizeof oldest, "-");
        cell(&t, "%s", p == totals ? "(all)" : json_str(p, "target", "?"));
        cell(&t, "%s", p == totals ? "" : capbuf);
        cell(&t, "%.0f", json_num(p, "open"));
        cell(&t, "%.0f", json_num(p, "checked_out"));
        cell(&t, "%.0f", json_num(p, "idle"));
        cell(&t, "%.0f", json_num(p, "waiting"));
        cell(&t, "%.0f", json_num(p, "connects_total"));
        cell(&t, "%.0f", json_num(p, "reuses_total"));
        cell(&t, "%.0f", json_num(p, "timeouts_total"));
        cell(&t, "%.1f", json_num(p, "wait_ms_total"));
        cell(&t, "%s", oldest);
        char hostbuf[64];
        host_text(hostbuf, sizeof hostbuf, p, false);
        const struct json *h = json_get(p, "host");
        cell(&t, "%s", p == totals ? "" : hostbuf);
        if (p != totals && h && json_has_num(h, "waiting"))
            cell(&t, "%.0f", json_num(h, "waiting"));
        else
            cell(&t, "%s", p == totals ? "" : "-");
        if (p == totals)
            break;
    }
    table_print(&t, true);
}

static bool show_health(const struct json *h)
{
    const struct json *targets = json_get(h, "targets");
    bool ok = json_true(h, "ok");
    if (!targets || !targets->kids) {
        printf("no targets yet: nothing to check\n");
        return ok;
    }
    struct table t = {
        .ncols = 5,
        .head = {"target", "ok", "via", "ms", "error"},
        .right = {false, false, false, true, false},
    };
    int n = 0, bad = 0;
    for (const struct json *p = targets->kids; p; p = p->next) {
        bool good = json_true(p, "ok");
        n++;
        bad += !good;
        cell(&t, "%s", json_str(p, "target", "?"));
        cell(&t, "%s", good ? "ok" : "FAILED");
        cell(&t, "%s", json_str(p, "via", "?"));
        cell(&t, "%.1f", json_num(p, "ms"));
        cell(&t, "%s", json_str(p, "error", ""));
    }
    table_print(&t, true);
    if (bad)
        printf("%d of %d target%s FAILED\n", bad, n, n == 1 ? "" : "s");
    else
        printf("all %d target%s ok\n", n, n == 1 ? "" : "s");
    return ok && !bad;
}

static const char *const single_commands[] = {
    "status", "metrics", "dispose", "pause", "resume", "health", "help", NULL};

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

static int run_single(const struct options *o)
{
    struct entry e;
    memset(&e, 0, sizeof e);
    char who[SUN_PATH_SIZE + 32];
    /* Who must serve the socket: the owner of the process named, else
     * this user (root believes the socket file's owner). */
    uid_t owner = geteuid();
    if (o->socket) {
        if (strlen(o->socket) >= sizeof e.path) {
            errmsg("%s: path too long for a Unix socket", o->socket);
            return EXIT_USAGE;
        }
        snprintf(e.path, sizeof e.path, "%s", o->socket);
        snprintf(who, sizeof who, "%s", e.path);
    } else if (o->pid) {
        if (!pid_socket((pid_t)o->pid, e.path, sizeof e.path, &owner))
            return EXIT_USAGE;
        e.named_by = (pid_t)o->pid;
        snprintf(who, sizeof who, "process %ld (%s)", o->pid, e.path);
    } else {
        const char *pattern = getenv("PQSHIM_CONTROL");
        if (!pattern || !*pattern)
            usage_error("name the process: -p PID or -s SOCKET (or see '%s ls')", progname);
        if (strstr(pattern, "%p"))
            usage_error("PQSHIM_CONTROL (%s) names one socket per process: choose one with "
                        "-p PID (see '%s ls')", pattern, progname);
        if (!control_expand_path(pattern, getpid(), geteuid(), e.path, sizeof e.path)) {
            errmsg("PQSHIM_CONTROL expands to an empty or too long path");
            return EXIT_USAGE;
        }
        snprintf(who, sizeof who, "%s", e.path);
    }
    struct stat st;
    if (!o->pid && geteuid() == 0 && lstat(e.path, &st) == 0)
        owner = st.st_uid;
    e.owner = owner;
    bool is_health = strcmp(o->command, "health") == 0;
    double timeout = o->timeout > 0 ? o->timeout : is_health ? HEALTH_TIMEOUT : DEFAULT_TIMEOUT;
    exchange_all(&e, 1, o->command, timeout, timeout);
    if (e.rc < 0) {
        errmsg("%s: %s", who, talk_error(&e, timeout));
        return EXIT_USAGE;
    }
    struct reply r = e.reply;
    if (o->pid && e.pid != (pid_t)o->pid)
        errmsg("%s: served by process %d (the same user), which shares the socket", who,
               (int)e.pid);
    struct json *j = r.data[0] == '{' ? json_parse(r.data, r.len) : NULL;
    const char *error = json_str(j, "error", NULL);
    bool text_reply = strcmp(o->command, "metrics") == 0 || strcmp(o->command, "help") == 0;
    int status = EXIT_OK;
    if (!error && strcmp(o->command, "status") == 0 && j && json_num(j, "pid") != (double)e.pid) {
        errmsg("%s: the reply claims pid %.0f but pid %d serves the socket: not believed", who,
               json_num(j, "pid"), (int)e.pid);
        status = EXIT_REPLY;
    } else if (error) {
        if (o->json)
            print_text(r.data, r.len);
        else
            errmsg("%s: %s", who, error);
        status = EXIT_REPLY;
    } else if (text_reply || o->json) {
        print_text(r.data, r.len);
        if (!text_reply && !j) {
            errmsg("%s: malformed reply", who);
            status = EXIT_REPLY;
        } else if (is_health && !json_true(j, "ok")) {
            status = EXIT_REPLY;
        }
    } else if (!j || j->type != J_OBJ) {
        errmsg("%s: malformed reply", who);
        status = EXIT_REPLY;
    } else if (strcmp(o->command, "status") == 0) {
        show_status(j);
    } else if (is_health) {
        status = show_health(j) ? EXIT_OK : EXIT_REPLY;
    } else if (strcmp(o->command, "dispose") == 0) {
        double closed = json_num(j, "closed_idle"), later = json_num(j, "close_at_checkin");
        printf("Closed %.0f idle connection%s; %.0f checked-out connection%s will close at checkin.\n",
               closed, closed == 1 ? "" : "s", later, later == 1 ? "" : "s");
    } else if (json_true(j, "paused")) {
        printf("Paused: new checkouts wait (up to PQSHIM_POOL_TIMEOUT) until resume.\n");
    } else {
        printf("Resumed: checkouts proceed.\n");
    }
    json_free(j);
    reply_free(&r);
    return status;
}

/* ---- ls ------------------------------------------------------------------------- */

static char *targets_summary(const struct json *st)
{
    const struct json *pools = json_get(st, "pools");
    size_t len = 0;
    char *out = xstrdup("");
    for (const struct json *p = pools ? pools->kids : NULL; p; p = p->next) {
        char capbuf[32];
        cap_text(capbuf, sizeof capbuf, p);
        char hostbuf[96];
        host_text(hostbuf, sizeof hostbuf, p, true);
        char *piece = xasprintf("%s%s open=%.0f used=%.0f idle=%.0f waiting=%.0f cap=%s%s",
                                len ? "; " : "", json_str(p, "target", "?"),
                                json_num(p, "open"), json_num(p, "checked_out"),
                                json_num(p, "idle"), json_num(p, "waiting"), capbuf,
                                hostbuf);
        size_t n = strlen(piece);
        out = xrealloc(out, len + n + 1);
        memcpy(out + len, piece, n + 1);
        len += n;
        free(piece);
    }
    if (!len) {
        free(out);
        out = xstrdup("(no targets yet)");
    }
    return out;
}

static int run_ls(const struct options *o)
{
    struct scan s;
    if (!scan_all(&s, o->dir, o->only_dir, "status", o->timeout > 0 ? o->timeout : DEFAULT_TIMEOUT))
        return EXIT_USAGE;
    if (o->json) {
        printf("[");
        for (int i = 0; i < s.n; i++) {
            size_t len = s.v[i].reply.len;
            while (len && (s.v[i].reply.data[len - 1] == '\n'))
                len--;
            printf("%s", i ? "," : "");
            print_text(s.v[i].reply.data, len);
        }
        printf("]\n");
        for (int i = 0; i < s.nnotes; i++)
            errmsg("%s", s.notes[i]);
    } else {
        if (s.n) {
            struct table t = {
                .ncols = 6,
                .head = {"PID", "PROGRAM", "POLICY", "PAUSED", "SOCKET", "TARGETS"},
                .right = {true, false, false, false, false, false},
            };
            for (int i = 0; i < s.n; i++) {
                const struct json *st = s.v[i].status;
                char *summary = targets_summary(st);
                cell(&t, "%d", s.v[i].pid);
                cell(&t, "%s", json_str(st, "program", "?"));
                cell(&t, "%s", json_str(st, "policy", "?"));
                cell(&t, "%s", json_true(st, "paused") ? "yes" : "no");
                cell(&t, "%s", s.v[i].path);
                cell(&t, "%s", summary);
                free(summary);
            }
            table_print(&t, false);
        } else {
            printf("no shimmed processes with a control socket found\n");
        }
        for (int i = 0; i < s.nnotes; i++) {
            char *shown = clean(s.notes[i]);
            printf("%s\n", shown);
            free(shown);
        }
    }
    scan_free(&s);
    return EXIT_OK;
}

/* ---- metrics --all ----------------------------------------------------------------- */

struct family {
    char *name;
    char *help, *type;  /* whole lines, the first seen */
    char *samples;
    size_t len;
};

struct families {
    struct family *v;
    int n;
};

/* Index of the family called name (added when new). */
static int family_of(struct families *f, const char *name, size_t len)
{
    for (int i = 0; i < f->n; i++)
        if (strlen(f->v[i].name) == len && memcmp(f->v[i].name, name, len) == 0)
            return i;
    f->v = xrealloc(f->v, sizeof *f->v * (size_t)(f->n + 1));
    struct family *fam = &f->v[f->n];
    memset(fam, 0, sizeof *fam);
    fam->name = xmalloc(len + 1);
    memcpy(fam->name, name, len);
    fam->name[len] = '\0';
    return f->n++;
}

static size_t metric_name_len(const char *s)
{
    size_t n = 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == ':')
        n++;
    return n;
}

/* Printable ASCII or valid UTF-8 with no control character: what a line
 * of the shim's exposition always is. */
static bool clean_line(const char *s)
{
    for (size_t n = strlen(s); n > 0;) {
        size_t k = utf8_sequence((const unsigned char *)s, n);
        if (k == 0 || (k == 1 && ((unsigned char)*s < 0x20 || *s == 0x7f)))
            return false;
        s += k;
        n -= k;
    }
    return true;
}

/* The labels of a sample, at s just past its name: well formed, a pid
 * label equal to pid (and only one), then " VALUE" made of number
 * characters. Only such samples are passed through. */
static bool sample_of(const char *s, int pid)
{
    char want[16];
    snprintf(want, sizeof want, "%d", pid);
    bool pid_ok = false, seen_pid = false;
    if (*s != '{')
        return false;
    s++;
    while (*s != '}') {
        size_t n = 0;
        while (isalnum((unsigned char)s[n]) || s[n] == '_')
            n++;
        if (n == 0 || s[n] != '=' || s[n + 1] != '"')
            return false;
        bool is_pid = n == 3 && memcmp(s, "pid", 3) == 0;
        s += n + 2;
        char value[16];
        size_t len = 0;
        bool fits = true;
        for (; *s && *s != '"'; s++) {
            if (*s == '\\' && (s[1] == '\\' || s[1] == '"' || s[1] == 'n'))
                s++;
            else if (*s == '\\')
                return false;
            if (len + 1 < sizeof value)
                value[len++] = *s;
            else
                fits = false;
        }
        if (*s++ != '"')
            return false;
        value[len] = '\0';
        if (is_pid) {
            if (seen_pid)
                return false;
            seen_pid = true;
            pid_ok = fits && strcmp(value, want) == 0;
        }
        if (*s == ',')
            s++;
        else if (*s != '}')
            return false;
    }
    s++;
    if (*s != ' ' || !s[1])
        return false;
    for (s++; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("+-. ", *s))
            return false;
    return pid_ok;
}

/* Fold the exposition of process pid into the families, keeping their
 * first-seen order. Only pqshim_ families pass, and only samples
 * labelled with that very pid, each series once; a family whose TYPE
 * differs from the one already seen is left out for this process. So a
 * process (or a socket planted by someone) can add nothing but its own
 * pqshim samples: not another process's, nor other metrics. */
static void merge_exposition(struct families *f, char *text, int pid)
{
    int *conflict = NULL, nconflict = 0;
    char **series = NULL;
    int nseries = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (!clean_line(line))
            continue;
        bool help = strncmp(line, "# HELP ", 7) == 0;
        if (help || strncmp(line, "# TYPE ", 7) == 0) {
            size_t n = metric_name_len(line + 7);
            if (!n || strncmp(line + 7, "pqshim_", 7) != 0 || line[7 + n] != ' ')
                continue;
            int k = family_of(f, line + 7, n);
            if (help) {
                if (!f->v[k].help)
                    f->v[k].help = xstrdup(line);
                continue;
            }
            /* The shim's counters end in _total, its gauges do not: the
             * TYPE follows from the name, whoever says otherwise. */
            bool counter = n > 6 && memcmp(line + 7 + n - 6, "_total", 6) == 0;
            if (strcmp(line + 7 + n + 1, counter ? "counter" : "gauge") != 0) {
                conflict = xrealloc(conflict, sizeof *conflict * (size_t)(nconflict + 1));
                conflict[nconflict++] = k;
            } else if (!f->v[k].type) {
                f->v[k].type = xstrdup(line);
            }
            continue;
        }
        size_t n = metric_name_len(line);
        if (line[0] == '#' || !n || strncmp(line, "pqshim_", 7) != 0 || !sample_of(line + n, pid))
            continue;
        int k = family_of(f, line, n);
        bool skip = false;
        for (int c = 0; c < nconflict; c++)
            skip |= conflict[c] == k;
        size_t key = (size_t)(strrchr(line, '}') - line);
        for (int i = 0; i < nseries && !skip; i++)
            skip = strlen(series[i]) == key && memcmp(series[i], line, key) == 0;
        if (skip)
            continue;
        series = xrealloc(series, sizeof *series * (size_t)(nseries + 1));
        series[nseries] = xmalloc(key + 1);
        memcpy(series[nseries], line, key);
        series[nseries++][key] = '\0';
        struct family *fam = &f->v[k];
        size_t add = strlen(line);
        fam->samples = xrealloc(fam->samples, fam->len + add + 2);
        memcpy(fam->samples + fam->len, line, add);
        fam->len += add;
        fam->samples[fam->len++] = '\n';
        fam->samples[fam->len] = '\0';
    }
    for (int i = 0; i < nseries; i++)
        free(series[i]);
    free(series);
    free(conflict);
}

static int run_metrics_all(const struct options *o)
{
    struct scan s;
    if (!scan_all(&s, o->dir, o->only_dir, "metrics", o->timeout > 0 ? o->timeout : DEFAULT_TIMEOUT))
        return EXIT_USAGE;
    struct families f = {0};
    /* This user's own processes first: theirs are the HELP lines kept. */
    for (int own = 1; own >= 0; own--)
        for (int i = 0; i < s.n; i++)
            if ((s.v[i].peer_uid == geteuid()) == own)
                merge_exposition(&f, s.v[i].reply.data, (int)s.v[i].pid);
    for (int i = 0; i < f.n; i++) {
        if (f.v[i].help)
            printf("%s\n", f.v[i].help);
        if (f.v[i].type)
            printf("%s\n", f.v[i].type);
        if (f.v[i].samples)
            fputs(f.v[i].samples, stdout);
        free(f.v[i].name);
        free(f.v[i].help);
        free(f.v[i].type);
        free(f.v[i].samples);
    }
    free(f.v);
    for (int i = 0; i < s.nnotes; i++)
        errmsg("%s", s.notes[i]);
    scan_free(&s);
    return EXIT_OK;
}

/* ---- top ------------------------------------------------------------------------------ */

static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;
static volatile sig_atomic_t resized;

static void restore_terminal(void)
{
    if (tio_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
        tio_saved = 0;
    }
    if (isatty(STDOUT_FILENO)) {
        ssize_t ignored = write(STDOUT_FILENO, "\033[?25h", 6); /* cursor back on */
        (void)ignored;
    }
}

static void on_fatal_signal(int sig)
{
    restore_terminal(); /* tcsetattr and write are async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_winch(int sig)
{
    (void)sig;
    resized = 1;
}

static void raw_terminal(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, NULL);
    atexit(restore_terminal);
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return;
    struct termios raw = saved_tio;
    raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tio_saved = 1;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

static int term_columns(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 0; /* not a terminal: no truncation */
}

/* One line, cut at the terminal's width. */
static void __attribute__((format(printf, 2, 3))) top_line(int cols, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    char *shown = clean(s);
    free(s);
    if (cols > 0) {
        int w = 0;
        char *p = shown;
        for (; *p; p++)
            if (((unsigned char)*p & 0xc0) != 0x80 && ++w > cols)
                break;
        *p = '\0';
    }
    printf("%s\033[K\n", shown);
    free(shown);
}

static void bar(char *out, int width, double used, double idle, double open, double cap)
{
    int u = (int)(used * width / cap + 0.5), i = (int)(idle * width / cap + 0.5);
    int o = (int)(open * width / cap + 0.5);
    if (o > width)
        o = width;
    if (u > o)
        u = o;
    if (u + i > o)
        i = o - u;
    int k = 0;
    out[k++] = '[';
    for (int x = 0; x < width; x++)
        out[k++] = x < u ? '#' : x < u + i ? '=' : x < o ? '+' : '.';
    out[k++] = ']';
    out[k] = '\0';
}

static void top_render(const struct options *o, struct scan *s)
{
    int cols = term_columns();
    char clock[16];
    time_t now = time(NULL);
    struct tm tm;
    strftime(clock, sizeof clock, "%H:%M:%S", localtime_r(&now, &tm));
    printf("\033[H\033[2J");
    top_line(cols, "pqshimctl top  %s  %d process%s  every %gs  (q quits)", clock, s->n,
             s->n == 1 ? "" : "es", o->interval);
    top_line(cols, "bar: # used  = idle  + opening  . free up to the cap");
    top_line(cols, "%s", "");
    for (int i = 0; i < s->n; i++) {
        const struct json *st = s->v[i].status;
        char up[32];
        format_duration(up, sizeof up, json_num(st, "uptime_s"));
        top_line(cols, "%d  %s  %s%s  uptime %s", s->v[i].pid, json_str(st, "program", "?"),
                 json_str(st, "policy", "?"), json_true(st, "paused") ? "  PAUSED" : "", up);
        const struct json *pools = json_get(st, "pools");
        if (!pools || !pools->kids)
            top_line(cols, "    (no targets yet)");
        for (const struct json *p = pools ? pools->kids : NULL; p; p = p->next) {
            char b[64] = "";
            double open = json_num(p, "open"), cap = json_num(p, "cap");
            if (json_has_num(p, "cap") && cap > 0)
                bar(b, 30, json_num(p, "checked_out"), json_num(p, "idle"), open, cap);
            char hostbuf[96];
            host_text(hostbuf, sizeof hostbuf, p, true);
            top_line(cols, "    %s%s", json_str(p, "target", "?"), hostbuf);
            if (b[0])
                top_line(cols, "    %s %3.0f/%-3.0f used %.0f idle %.0f waiting %.0f  "
                         "connects %.0f reuses %.0f timeouts %.0f", b, open, cap,
                         json_num(p, "checked_out"), json_num(p, "idle"), json_num(p, "waiting"),
                         json_num(p, "connects_total"), json_num(p, "reuses_total"),
                         json_num(p, "timeouts_total"));
            else
                top_line(cols, "    open %.0f (no cap) used %.0f idle %.0f waiting %.0f  "
                         "connects %.0f", open, json_num(p, "checked_out"), json_num(p, "idle"),
                         json_num(p, "waiting"), json_num(p, "connects_total"));
        }
    }
    if (s->n == 0)
        top_line(cols, "no shimmed processes with a control socket found");
    for (int i = 0; i < s->nnotes; i++)
        top_line(cols, "%s", s->notes[i]);
    fflush(stdout);
}

/* Wait up to ms for a key; true when the user asked to quit. */
static bool top_wait(int ms, bool *stdin_open)
{
    double deadline = now_mono() + ms / 1000.0;
    for (;;) {
        int left = (int)((deadline - now_mono()) * 1000);
        if (left <= 0 || resized) {
            resized = 0;
            return false;
        }
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int pr = poll(&pfd, *stdin_open ? 1 : 0, left);
        if (pr <= 0)
            continue;
        char keys[64];
        ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
        if (n <= 0) {
            *stdin_open = n < 0 && (errno == EINTR || errno == EAGAIN);
            continue;
        }
        for (ssize_t k = 0; k < n; k++)
            if (keys[k] == 'q' || keys[k] == 'Q' || keys[k] == 4 /* ^D */)
                return true;
    }
}

static int run_top(const struct options *o)
{
    if (o->dir) {
        DIR *d = opendir(o->dir);
        if (!d) {
            errmsg("cannot read directory %s: %s", o->dir, strerror(errno));
            return EXIT_USAGE;
        }
        closedir(d);
    }
    raw_terminal();
    if (isatty(STDOUT_FILENO))
        printf("\033[?25l"); /* no cursor while drawing */
    bool stdin_open = true;
    for (long i = 0; o->iterations == 0 || i < o->iterations; i++) {
        struct scan s;
        if (!scan_all(&s, o->dir, o->only_dir, "status", o->timeout > 0 ? o->timeout : DEFAULT_TIMEOUT))
            return EXIT_USAGE;
        top_render(o, &s);
        scan_free(&s);
        if (o->iterations && i + 1 >= o->iterations)
            break;
        if (top_wait((int)(o->interval * 1000), &stdin_open))
            break;
    }
    restore_terminal();
    return EXIT_OK;
}

/* ---- arguments -------------------------------------------------------------------------- */

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
    bool is_all = o.all && strcmp(o.command, "metrics") == 0;
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
    bool known = false;
    for (int i = 0; single_commands[i]; i++)
        known |= strcmp(o.command, single_commands[i]) == 0;
    if (!known)
        usage_error("unknown command '%s'", o.command);
    if (o.dir || seen_interval || seen_iterations)
        usage_error("-d, -D, -i and -n go with ls, top and metrics --all");
    if (o.socket && o.pid)
        usage_error("-s and -p: choose one");
    return run_single(&o);
}
