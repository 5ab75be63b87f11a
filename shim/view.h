/*
 * view.h — what a program reads of its connection's options (view.c).
 *
 * Two things make libpq's own answer differ from a direct connect's:
 * - An asynchronous connect that may have to wait is started with the
 *   gate as the first entry of its host, hostaddr and port lists
 *   (gate.h); libpq reports those lists as given, in PQconninfo, and
 *   names the gate in PQhost and PQport while it waits there.
 * - A reused connection was opened by another request of the same
 *   target. Requests of one target differ at most in options given as an
 *   empty string (hostaddr='' counts as set for libpq, and is left out
 *   of the target): PQconninfo reports them as this request gave them.
 * The hooks put the program's own values back.
 */
#ifndef PQSHIM_VIEW_H
#define PQSHIM_VIEW_H

#include "request.h"
#include "target.h"

struct view;

/* What the program that made req (target t) reads of the connection it
 * got: prev is the connection's view from its previous checkout (or
 * NULL), fresh says req opened it, gated that it was opened behind a
 * gate just now. NULL when
 * libpq's own answers are right (or out of memory); otherwise malloc'd,
 * one block (free() frees it). */
struct view *view_for_request(const struct view *prev, bool fresh, bool gated,
                              const struct target *t,
                              const struct connect_request *req);

/* Has this process made any? (A cheap test for the hooks.) */
bool view_any(void);

/* PQhost / PQport: libpq's answer, or while libpq sits at the gate, what
 * it would say at the first real host. */
const char *view_host(const struct view *v, const char *libpq_host);
const char *view_port(const struct view *v, const char *libpq_host,
                      const char *libpq_port);

/* Put the program's values into opts (what PQconninfo returned: values
 * are malloc'd, and freed by PQconninfoFree). */
void view_conninfo(const struct view *v, PQconninfoOption *opts);

#endif
