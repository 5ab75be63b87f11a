/*
 * gate_private.h — what gate.c (the gates and their keeper) and
 * gate_socket.c (their sockets) share; gate.c calls gate_socket.c, never
 * the other way.
 */
#ifndef PQSHIM_GATE_PRIVATE_H
#define PQSHIM_GATE_PRIVATE_H

#include "gate.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define GATE_MESSAGE_MAX 1024
#define MAX_PARAMS 100

struct gate {
    struct gate *next, *prev;   /* every gate of this process (all_gates) */
    struct gate *wait_next;     /* the keeper's list */
    bool waiting;               /* on the keeper's list */
    bool busy;                  /* the keeper acts on it outside the lock */
    bool abandoned;             /* finished by the program while busy */
    _Atomic(enum gate_phase) phase;
    atomic_bool granted;        /* pool slot given (pool callback) */
    int listen_fd, peer_fd;
    int port;
    double since, deadline, open_at;
    double next_poll;           /* GATE_HOST: when to look again */
    struct pool *pool;          /* GATE_POOL: where it is queued */
    struct pool *pool_slot;     /* a pool slot it holds */
    struct host_ticket host;
    bool host_queued;
    int host_slot;
    bool slots_taken;           /* handed to the connection */
    bool failing;               /* GATE_TIMER: knocking to fail, not open */
    bool stale_peer;            /* peer_fd is a previous round's (retry) */
    int knocks;
    struct target target;
    char message[GATE_MESSAGE_MAX];
};

/* The private directory of this process's gate sockets ("" until made). */
extern char gate_dir[80];

/* Our directory, made on first use (per process: a forked child makes
 * its own). False when none can be made. Called under gate_lock. */
bool gate_ensure_dir(void);
/* A listening socket at a free port of our directory; -1 on failure. */
int listen_gate(int *port);
/* t's options with the gate first in the host list (kw/val hold up to
 * MAX_PARAMS + 1 entries; host, hostaddr and ports are size bytes). */
bool gated_params(const struct target *t, int port, const char **kw,
                  const char **val, char *host, char *hostaddr,
                  char *ports, size_t size);
/* Close the gate's sockets and unlink its listening socket. */
void gate_close_fds(struct gate *g);
/* Answer the program's pending connection with an ErrorResponse, once g
 * is in phase `then`. False (nothing changed) when libpq has not
 * connected to the gate (yet). */
bool gate_answer(struct gate *g, const char *sqlstate, const char *message,
                 enum gate_phase then);

#endif
