/*
 * gate.h — the waiting room of asynchronous connects (gate.c).
 *
 * An event-loop program calls PQconnectStart* and then waits on PQsocket
 * in its own loop: the shim must never sleep in that call. A connect that
 * has to wait (pool cap, host-wide limit, a full server's back-off) is
 * started with a private Unix socket of ours as the first host of its
 * host list. libpq connects to it at once, sends its startup packet and
 * waits for an answer, so the program's loop sees
 * PGRES_POLLING_READING on a socket that stays quiet. When the caller's
 * turn comes the gate answers SQLSTATE 57P03 (cannot connect now), and
 * libpq moves on to the real server inside the same PGconn; on timeout
 * it answers an error with the shim's message, and the connect fails.
 */
#ifndef PQSHIM_GATE_H
#define PQSHIM_GATE_H

#include "hostlimit.h"
#include "pool.h"

struct gate;

enum gate_phase {
    GATE_POOL,   /* queued at the pool cap */
    GATE_HOST,   /* holds its pool slot (if any); queued host-wide */
    GATE_TIMER,  /* opens at a set time (retry back-off) */
    GATE_OPEN,   /* told libpq to go on to the server */
    GATE_FAILED, /* told libpq the connect failed: timeout */
};

/* Can req be started behind a gate? NULL when yes; otherwise why not (a
 * static string): the caller then waits the blocking way. */
const char *gate_unusable(const struct target *t);

/* Start t's PGconn behind a new gate (closed). NULL on failure: *pg
 * then is NULL too, and the caller falls back; *why is set when the
 * gate itself could not be made (left alone when libpq refused the
 * options: it will say why to the plain connect). */
struct gate *gate_start(const struct target *t, PGconn **pg, const char **why);

/* Open the gate now (no waiting): the caller's thread, before the gate
 * is shared with the keeper. */
void gate_open_now(struct gate *g);

/* Hand a closed gate to the keeper thread. pool: queued there (capped
 * policy; GATE_POOL), else waiting host-wide (GATE_HOST) with the host
 * ticket already taken; holds_pool_slot: for GATE_HOST under the capped
 * policy. deadline: when to fail with the timeout message. */
bool gate_wait_pool(struct gate *g, struct pool *pool, double deadline,
                    const char *message, int *waiting);
void gate_wait_host(struct gate *g, struct pool *pool_slot,
                    const struct host_ticket *tk, double deadline,
                    const char *message);
/* After a refusal by a full server, once the caller has restarted the
 * PGconn with PQresetStart: open again in delay seconds. */
void gate_rearm(struct gate *g, double delay);

enum gate_phase gate_phase(const struct gate *g);

/* Once the gate is open: take over what it acquired while waiting (the
 * pool slot, the host slot); outputs are left alone for what it did not
 * acquire. Once only. */
void gate_take_slots(struct gate *g, struct pool **pool, int *host_slot);

/* The error text of pg without the lines about the gate (malloc'd), or
 * the gate's own message when it failed the connect. */
char *gate_error_message(struct gate *g, const char *libpq_message);

/* Is host (an entry as PQhost reports it) the directory of this
 * process's gates? */
bool gate_is_host(const char *host);

/* Does any gate exist in this process? (A cheap test for the hooks.) */
bool gate_any(void);

/* The connect is over (established, failed, or finished by the program):
 * leave any queue, release what the gate holds, close and free. */
void gate_done(struct gate *g);

/* Start the keeper thread if it is not running. False if it cannot. */
bool gate_ensure_keeper(void);

/* Fork: the child forgets the parent's gates (closes its copies). */
void gate_lock_for_fork(void);
void gate_unlock_after_fork(void);
void gate_forget_after_fork(void);

#endif
