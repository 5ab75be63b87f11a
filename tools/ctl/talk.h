/*
 * talk.h — asking control sockets, many at once, each bounded in time
 * (talk.c).
 */
#ifndef PQSHIMCTL_TALK_H
#define PQSHIMCTL_TALK_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/un.h>

#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

struct json;

struct reply {
    char *data;   /* NUL-terminated */
    size_t len;
};

/* Frees r's data and empties it. */
void reply_free(struct reply *r);

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

/* Send command to each of the n entries (path and owner set) and read the
 * replies: each within timeout seconds, all within overall. Sets each
 * entry's rc, pid, peer_uid, and its reply when rc is 0. */
void exchange_all(struct entry *v, int n, const char *command, double timeout,
                  double overall);
/* Why e's exchange failed, in words (a static buffer for some). */
const char *talk_error(const struct entry *e, double timeout);

#endif
