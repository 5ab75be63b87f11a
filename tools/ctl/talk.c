/*
 * talk.c — the exchange with control sockets: connect, check who serves
 * (SO_PEERCRED), send one command line, read the reply; many sockets at
 * once, each bounded in time, all within an overall bound.
 */
#define _GNU_SOURCE
#include "talk.h"

#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPLY_MAX (64u << 20)     /* never buffer more than this */

void reply_free(struct reply *r)
{
    free(r->data);
    r->data = NULL;
    r->len = 0;
}

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
void exchange_all(struct entry *v, int n, const char *command, double timeout,
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

const char *talk_error(const struct entry *e, double timeout)
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

