/*
 * real.h — the libpq functions the shim calls, bound lazily, per libpq
 * copy (real.c).
 */
#ifndef PQSHIM_REAL_H
#define PQSHIM_REAL_H

#include "util.h"

#include "libpq_functions.h"

#include <libpq-fe.h>
#include <libpq-events.h>

/* The functions of one libpq copy, as bound (libpq_functions.h lists
 * them; a pointer is NULL when that libpq lacks the symbol). */
struct real_libpq {
#define REAL_FIELD(ctx, kind, ret, name, params, args) ret (*name) params;
    LIBPQ_FUNCTIONS(REAL_FIELD, _)
#undef REAL_FIELD

    int copy;      /* which libpq copy: 0 is the one the global scope finds */
    bool complete; /* every function bound: the shim may act */
};

/* How many different libpq copies one process can have served. */
#define REAL_MAX_COPIES 8

/* The table of the libpq copy the current call belongs to (set by the
 * hook the program entered through, see real_use()), else of the copy the
 * global scope finds. NULL when no libpq could be found (pass-through is
 * then impossible; callers fail the call cleanly). Binds on first use.
 * A pointer is NULL when that symbol is missing from that libpq. */
const struct real_libpq *real_libpq(void);

/* real_PQxxx(...): PQxxx of the current copy (real_libpq()), for code
 * that runs only while the shim acts, when every function is bound. */
#define REAL_CALL_R(ret, name, params, args) \
    static inline ret real_##name params { return real_libpq()->name args; }
#define REAL_CALL_V(ret, name, params, args) \
    static inline void real_##name params { real_libpq()->name args; }
#define REAL_CALL(ctx, kind, ret, name, params, args) \
    REAL_CALL_##kind(ret, name, params, args)
LIBPQ_FUNCTIONS(REAL_CALL, _)
#undef REAL_CALL
#undef REAL_CALL_R
#undef REAL_CALL_V

/* Make pq (NULL: the default copy) current for this thread's calls to
 * real_libpq(); returns what was current before, to hand back later. */
const struct real_libpq *real_use(const struct real_libpq *pq);

/* What is current for this thread, NULL meaning the default copy. */
const struct real_libpq *real_current(void);

/* The table of copy `index` (REAL_MAX_COPIES > index >= 0), or NULL. */
const struct real_libpq *real_copy(int index);

/* The index of the libpq copy loaded at base (path: its file name), bound
 * and pinned (never unloaded) on first sight; -1 when it cannot be served
 * (no table left, nothing bound). */
int real_copy_index(const void *base, const char *path);

/* True when the current copy is completely bound: only then does the shim
 * act; otherwise each hook passes straight through. */
bool real_complete(void);

/* The copies lock, held across fork() by init.c's handlers. */
void real_lock_for_fork(void);
void real_unlock_after_fork(void);

/* Remember a libpq found through a private dlopen handle (dlsym.c), so
 * the binder can use it when the global scope does not contain libpq. */
void real_note_library(const char *path);

/* Is this file name a libpq ("libpq.so.5", "libpq-<hash>.so.5.x")? */
bool real_is_libpq_name(const char *path);

#endif
