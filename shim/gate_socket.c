/*
 * gate_socket.c — a gate's socket and what it says: the private
 * directory, listening sockets in it, the connection options that send
 * libpq there first, and the answer to libpq's startup packet (57P03 to
 * let it through, or an error). The gates' bookkeeping and the keeper
 * thread are in gate.c.
 */
#define _GNU_SOURCE
#include "gate.h"
#include "gate_private.h"
#include "thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static atomic_int next_port;

char gate_dir[80];
static pid_t gate_dir_pid;

/* ---- the private directory ------------------------------------------ */

static void remove_gate_dir(void)
{
    if (gate_dir[0] && gate_dir_pid == getpid())
        rmdir(gate_dir); /* gates are unlinked as they close */
}

/* Our directory, made on first use (per process: a forked child makes
 * its own). False when none can be made. Called under gate_lock. */
bool gate_ensure_dir(void)
{
    static bool exit_hook;
    if (gate_dir[0] && gate_dir_pid == pqshim_pid)
        return true;
    const char *bases[] = {getenv("XDG_RUNTIME_DIR"), "/tmp"};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        const char *base = bases[i];
        /* sun_path holds 108 bytes: DIR/.s.PGSQL.NNNNN must fit. */
        if (!base || base[0] != '/' || strlen(base) > 40)
            continue;
        char dir[sizeof gate_dir];
        snprintf(dir, sizeof dir, "%s/pqshim-gate-XXXXXX", base);
        if (!mkdtemp(dir))
            continue;
        memcpy(gate_dir, dir, sizeof gate_dir);
        gate_dir_pid = pqshim_pid;
        if (!exit_hook)
            exit_hook = atexit(remove_gate_dir) == 0;
        return true;
    }
    return false;
}

bool gate_is_host(const char *host)
{
    return host && gate_dir[0] && gate_dir_pid == pqshim_pid &&
           strcmp(host, gate_dir) == 0;
}

static void socket_path(char *buf, size_t size, int port)
{
    snprintf(buf, size, "%s/.s.PGSQL.%d", gate_dir, port);
}

/* A listening socket at a free port of our directory; -1 on failure. */
int listen_gate(int *port)
{
    for (int tries = 0; tries < 64; tries++) {
        int p = 1 + (atomic_fetch_add(&next_port, 1) % 65535);
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        socket_path(addr.sun_path, sizeof addr.sun_path, p);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -1;
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
            listen(fd, 4) == 0) {
            *port = p;
            return fd;
        }
        int err = errno;
        close(fd);
        if (err != EADDRINUSE)
            return -1;
    }
    return -1;
}

/* ---- the connection's options ----------------------------------------- */

static const char *param(const struct target *t, const char *keyword)
{
    return target_param(t->params, keyword);
}

static int list_length(const char *list)
{
    int n = 1;
    for (; *list; list++)
        n += *list == ',';
    return n;
}

const char *gate_unusable(const struct target *t)
{
    /* The options are restated with the gate in front: they must all be
     * known (the target keeps none when they are too long). */
    if (!t->params[0])
        return "connection options too long";
    /* A keyword array cannot say "empty": the environment's value would
     * be used instead of the one the program set empty. */
    if (!t->restatable)
        return "empty option";
    /* Each of these would fail on (or skip past) a local socket, or
     * would be applied differently with an explicit host list. */
    if (*param(t, "requirepeer"))
        return "requirepeer";
    if (strcmp(param(t, "gssencmode"), "require") == 0)
        return "gssencmode=require";
    if (*param(t, "service"))
        return "service";
    if (strcmp(param(t, "load_balance_hosts"), "random") == 0)
        return "load_balance_hosts=random";
    return NULL;
}

/* t's options with the gate first in the host list: host, hostaddr and
 * port get one more leading entry each (an empty host entry is libpq's
 * default socket directory, an empty port the default port). */
bool gated_params(const struct target *t, int port, const char **kw,
                  const char **val, char *host, char *hostaddr,
                  char *ports, size_t size)
{
    const char *h = param(t, "host"), *a = param(t, "hostaddr"),
               *p = param(t, "port");
    int hosts = *h ? list_length(h) : *a ? list_length(a) : 1;
    int n;
    if (*h)
        n = snprintf(host, size, "%s,%s", gate_dir, h);
    else {
        n = snprintf(host, size, "%s", gate_dir);
        for (int i = 0; i < hosts && n > 0 && (size_t)n < size; i++)
            n += snprintf(host + n, size - (size_t)n, ",");
    }
    if (n < 0 || (size_t)n >= size)
        return false;
    n = snprintf(hostaddr, size, ",%s", a);
    if (n < 0 || (size_t)n >= size)
        return false;
    n = snprintf(ports, size, "%d", port);
    if (*p && list_length(p) == hosts)
        n += snprintf(ports + n, size - (size_t)n, ",%s", p);
    else /* one port (or none) for every host */
        for (int i = 0; i < hosts && n > 0 && (size_t)n < size; i++)
            n += snprintf(ports + n, size - (size_t)n, ",%s", p);
    if (n < 0 || (size_t)n >= size)
        return false;

    int k = 0;
    for (const char *q = t->params; *q && k < MAX_PARAMS - 4;) {
        const char *v = q + strlen(q) + 1;
        if (strcmp(q, "host") && strcmp(q, "hostaddr") && strcmp(q, "port")) {
            kw[k] = q;
            val[k++] = v;
        }
        q = v + strlen(v) + 1;
    }
    kw[k] = "host", val[k++] = host;
    if (*a)
        kw[k] = "hostaddr", val[k++] = hostaddr;
    kw[k] = "port", val[k++] = ports;
    kw[k] = val[k] = NULL;
    return true;
}


void gate_close_fds(struct gate *g)
{
    if (g->peer_fd >= 0)
        close(g->peer_fd);
    if (g->listen_fd >= 0) {
        char path[108];
        socket_path(path, sizeof path, g->port);
        unlink(path);
        close(g->listen_fd);
    }
    g->peer_fd = g->listen_fd = -1;
}

/* Answer the program's pending connection with an ErrorResponse, once g
 * is in phase `then`. False (nothing changed) when libpq has not
 * connected to the gate (yet). */
bool gate_answer(struct gate *g, const char *sqlstate, const char *message,
                 enum gate_phase then)
{
    if (g->stale_peer && g->peer_fd >= 0) {
        close(g->peer_fd); /* the previous round's, before a restart */
        g->peer_fd = -1;
    }
    g->stale_peer = false;
    if (g->peer_fd < 0) {
        for (int tries = 0; tries < 8; tries++) {
            int fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                break;
            struct ucred cred;
            socklen_t len = sizeof cred;
            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                cred.pid == pqshim_pid) {
                g->peer_fd = fd;
                break;
            }
            close(fd); /* not our process: nobody else may pass */
        }
    }
    if (g->peer_fd < 0)
        return false;
    int fd = g->peer_fd;
    /* The phase first: once libpq has the answer, the program may look at
     * the gate, and must find it settled. */
    atomic_store(&g->phase, then);
    char buf[GATE_MESSAGE_MAX + 64];
    size_t len = 5;
    buf[0] = 'E';
    len += (size_t)snprintf(buf + len, sizeof buf - len, "SFATAL") + 1;
    len += (size_t)snprintf(buf + len, sizeof buf - len, "VFATAL") + 1;
    len += (size_t)snprintf(buf + len, sizeof buf - len, "C%s", sqlstate) + 1;
    len += (size_t)snprintf(buf + len, sizeof buf - len, "M%s", message) + 1;
    buf[len++] = '\0';
    uint32_t n = htonl((uint32_t)(len - 1));
    memcpy(buf + 1, &n, 4);
    /* A fresh socket's buffer takes it whole; the peer end stays open
     * until the connect is over (closing first would fail libpq's send
     * of its startup packet). A failed send leaves libpq to time out. */
    (void)send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    return true;
}
