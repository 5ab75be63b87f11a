/*
 * control.c — the control socket: status, metrics, dispose, pause, resume,
 * health, help, served from outside the process with no code change.
 *
 * One thread, started at the first intercepted call when PQSHIM_CONTROL is
 * set, serves one short request at a time: a client writes one line, gets
 * one reply, and the connection is closed. Requests are bounded in size
 * and time, so no client can block, crash or slow the host.
 */
#define _GNU_SOURCE
#include "control.h"
#include "control_protocol.h"
#include "config.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define REQUEST_MAX 4096
#define CLIENT_TIMEOUT_MS 1000

static atomic_int control_pid;   /* process whose socket is up (or tried) */
static int listen_fd = -1;
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pid_t socket_owner;       /* who unlinks it at exit */
static dev_t socket_dev;         /* and which file that is: the path may */
static ino_t socket_ino;         /* have been taken over since */
static dev_t socket_dir_dev;     /* and the directory it is in */
static ino_t socket_dir_ino;
static double started_at;

/* ---- reply buffer ---------------------------------------------------------- */

void buf_printf(struct buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = b->data ? vsnprintf(b->data + b->len, room, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t want = b->cap ? b->cap * 2 : 4096;
        while (n >= 0 && want < b->len + (size_t)n + 1)
            want *= 2;
        char *grown = realloc(b->data, want);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = want;
    }
}

void buf_json_string(struct buf *b, const char *s)
{
    buf_escaped(b, s, ESC_JSON, "\"");
}

/* quote, then every character of s escaped for style, then quote. */
void buf_escaped(struct buf *b, const char *s, enum esc_style style, const char *quote)
{
    buf_printf(b, "%s", quote);
    for (size_t n = strlen(s); n > 0;) {
        char e[ESC_MAX];
        size_t took = esc_char(s, n, style, e);
        buf_printf(b, "%s", e);
        s += took;
        n -= took;
    }
    buf_printf(b, "%s", quote);
}

/* ---- socket ---------------------------------------------------------------- */


static void control_problem(const char *detail)
{
    LOG_EVENT(LOG_LVL_ERROR, "control_failed", LF_S("path", socket_path),
              LF_S("detail", detail), LF_S("error", strerror(errno)));
}

/* Others may replace or remove what is in a directory they can write,
 * unless it is sticky (like /tmp): then only its owner may. */
static void check_directory(int dir)
{
    struct stat st;
    if (fstat(dir, &st) == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
        LOG_EVENT(LOG_LVL_WARN, "control_unsafe_dir", LF_S("path", socket_path),
                  LF_S("detail", "other users may write to the socket's directory and it "
                                 "has no sticky bit: they can replace or remove the socket; "
                                 "use a private directory (or /tmp, /run/user/UID)"));
}

/* Never replace anything but a stale socket of our own user, and only
 * the one that was checked: the name is looked at and removed through
 * the directory's descriptor, with its device and inode compared. */
static bool clear_stale(int dir, const char *base)
{
    struct stat st, again;
    if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return true;
        control_problem("cannot look at the path");
        return false;
    }
    if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        control_problem("the path exists and is not a socket; not replacing it");
        return false;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        control_problem("cannot create the control socket");
        return false;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path);
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int err = errno;
    close(fd);
    if (rc == 0) {
        errno = EADDRINUSE;
        control_problem("another live process serves this path");
        return false;
    }
    if (err != ECONNREFUSED) {
        errno = err;
        control_problem("cannot tell whether the existing socket is stale");
        return false;
    }
    if (st.st_uid != geteuid()) {
        char detail[160];
        snprintf(detail, sizeof detail, "a stale socket of uid %u (no process listening) is "
                 "at the path; it is not ours to remove", (unsigned)st.st_uid);
        errno = EEXIST;
        control_problem(detail);
        return false;
    }
    if (fstatat(dir, base, &again, AT_SYMLINK_NOFOLLOW) != 0 || again.st_dev != st.st_dev ||
        again.st_ino != st.st_ino) {
        errno = EAGAIN;
        control_problem("the stale socket at the path was replaced while it was checked");
        return false;
    }
    if (unlinkat(dir, base, 0) != 0) {
        control_problem("cannot remove the stale socket at the path");
        return false;
    }
    LOG_EVENT(LOG_LVL_INFO, "control_stale_removed", LF_S("path", socket_path),
              LF_S("detail", "a socket of our user that nobody served (left by a process "
                             "that was killed or ended with _exit) was removed"));
    return true;
}

/* Remove our socket: only the very file we bound, in the very directory. */
static void remove_socket(void)
{
    char base[sizeof socket_path];
    int dir = control_open_dir(socket_path, base, sizeof base);
    if (dir < 0)
        return;
    struct stat d, st;
    if (fstat(dir, &d) == 0 && d.st_dev == socket_dir_dev && d.st_ino == socket_dir_ino &&
        fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == socket_dev &&
        st.st_ino == socket_ino)
        unlinkat(dir, base, 0);
    close(dir);
}

static void unlink_at_exit(void)
{
    if (socket_owner == getpid() && socket_path[0])
        remove_socket();
}

static void *control_main(void *arg);

/* Runs a request line (commands.c's, handed down by init.c). */
static void (*_Atomic dispatcher)(const char *line, struct buf *reply);

/* Bind a socket at base in dir, mode 0600 from the start. The mode of a
 * new socket file is the socket's own mode less the umask, so fchmod()
 * before bind() sets it without a path and without touching the umask
 * (which other threads of the program share). -1 on failure. */
static int bind_private(int dir, const char *base)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        control_problem("cannot create the control socket");
        return -1;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path);
    if (fchmod(fd, 0600) != 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        control_problem("cannot create the control socket");
        close(fd);
        return -1;
    }
    struct stat st, d;
    if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode) ||
        fstat(dir, &d) != 0) {
        control_problem("the control socket vanished after it was created");
        close(fd);
        return -1;
    }
    socket_dev = st.st_dev;
    socket_ino = st.st_ino;
    socket_dir_dev = d.st_dev;
    socket_dir_ino = d.st_ino;
    socket_owner = pqshim_pid;
    if ((st.st_mode & 0077) || listen(fd, 64) != 0) {
        if (st.st_mode & 0077)
            errno = EPERM;
        control_problem("cannot set up the control socket");
        close(fd);
        remove_socket();
        return -1;
    }
    return fd;
}

static void start(void)
{
    const struct pqshim_config *cfg = config_get();
    if (!control_expand_path(cfg->control_path, pqshim_pid, geteuid(),
                             socket_path, sizeof socket_path)) {
        errno = ENAMETOOLONG;
        control_problem("PQSHIM_CONTROL expands to an empty or too long path");
        return;
    }
    char base[sizeof socket_path];
    int dir = control_open_dir(socket_path, base, sizeof base);
    if (dir < 0) {
        control_problem("cannot open the directory of the control socket");
        return;
    }
    check_directory(dir);
    int fd = clear_stale(dir, base) ? bind_private(dir, base) : -1;
    close(dir);
    if (fd < 0)
        return;
    static atomic_bool exit_registered;
    if (!atomic_exchange(&exit_registered, true))
        atexit(unlink_at_exit);
    listen_fd = fd;
    started_at = now_monotonic();

    if (start_internal_thread(control_main)) {
        LOG_EVENT(LOG_LVL_DEBUG, "control_listening", LF_S("path", socket_path));
    } else {
        control_problem("cannot start the control thread");
        close(fd);
        listen_fd = -1;
        remove_socket();
    }
}

/* Held while a thread starts the socket (which logs a line): the first
 * lock init.c's fork handlers take, so a child never inherits it taken. */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

void control_lock_for_fork(void) { pthread_mutex_lock(&start_lock); }
void control_unlock_after_fork(void) { pthread_mutex_unlock(&start_lock); }

void control_ensure(void (*dispatch)(const char *line, struct buf *reply))
{
    if (atomic_load_explicit(&control_pid, memory_order_acquire) == pqshim_pid)
        return;
    atomic_store(&dispatcher, dispatch);
    pthread_mutex_lock(&start_lock);
    if (atomic_load(&control_pid) != pqshim_pid) {
        if (config_get()->control_path[0])
            start();
        atomic_store_explicit(&control_pid, pqshim_pid, memory_order_release);
    }
    pthread_mutex_unlock(&start_lock);
}

void control_forget_after_fork(void)
{
    /* The parent's socket is the parent's: close our copy of it only. */
    if (listen_fd >= 0)
        close(listen_fd);
    listen_fd = -1;
}

/* ---- serving --------------------------------------------------------------- */

static bool peer_allowed(int fd, char *why, size_t size)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        snprintf(why, size, "cannot identify the peer");
        return false;
    }
    if (cred.uid == 0 || cred.uid == geteuid())
        return true;
    snprintf(why, size, "permission denied: uid %u is not the owner (uid %u) of process %d",
             (unsigned)cred.uid, (unsigned)geteuid(), (int)pqshim_pid);
    return false;
}

/* One line, at most REQUEST_MAX bytes, within CLIENT_TIMEOUT_MS. */
static int read_request(int fd, char *line, size_t size)
{
    size_t len = 0;
    double deadline = now_monotonic() + CLIENT_TIMEOUT_MS / 1000.0;
    while (len + 1 < size) {
        int left = (int)((deadline - now_monotonic()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -ETIMEDOUT;
        ssize_t n = recv(fd, line + len, size - 1 - len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        line[len] = '\0';
        char *nl = memchr(line, '\n', len);
        if (nl) {
            *nl = '\0';
            len = (size_t)(nl - line);
            break;
        }
    }
    if (len + 1 >= size)
        return -E2BIG;
    line[len] = '\0';
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        line[--len] = '\0';
    return (int)len;
}

static void write_reply(int fd, const char *data, size_t len)
{
    double deadline = now_monotonic() + CLIENT_TIMEOUT_MS / 1000.0;
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return;
        int left = (int)((deadline - now_monotonic()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return;
    }
}

static void serve(int fd)
{
    static const char oom[] = "{\"" CONTROL_KEY_ERROR "\":\"out of memory\"}\n";
    char line[REQUEST_MAX + 1];
    struct buf reply = {0};
    char why[160];
    if (!peer_allowed(fd, why, sizeof why)) {
        buf_printf(&reply, "{\"" CONTROL_KEY_ERROR "\":");
        buf_json_string(&reply, why);
        buf_printf(&reply, "}\n");
    } else {
        int n = read_request(fd, line, sizeof line);
        if (n == -E2BIG)
            buf_printf(&reply, "{\"" CONTROL_KEY_ERROR "\":\"request longer than %d bytes\"}\n",
                       REQUEST_MAX);
        else if (n < 0)
            buf_printf(&reply,
                       "{\"" CONTROL_KEY_ERROR "\":\"no complete request line within %d ms\"}\n",
                       CLIENT_TIMEOUT_MS);
        else
            atomic_load(&dispatcher)(line, &reply);
    }
    if (reply.failed)
        write_reply(fd, oom, sizeof oom - 1);
    else if (reply.data)
        write_reply(fd, reply.data, reply.len);
    free(reply.data);
}

static void *control_main(void *arg)
{
    (void)arg;
    int fd = listen_fd;
    for (;;) {
        int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of descriptors: back off instead of spinning. */
                poll(NULL, 0, 100);
                continue;
            }
            return NULL;
        }
        serve(client);
        close(client);
    }
}

double control_uptime(void)
{
    return now_monotonic() - started_at;
}
