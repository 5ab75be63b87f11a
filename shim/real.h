/*
 * real.h — the libpq functions the shim calls, bound lazily, per libpq
 * copy (real.c).
 */
#ifndef PQSHIM_REAL_H
#define PQSHIM_REAL_H

#include "util.h"

#include <libpq-fe.h>
#include <libpq-events.h>

struct real_libpq {
    PGconn *(*PQconnectdb)(const char *);
    PGconn *(*PQconnectdbParams)(const char *const *, const char *const *, int);
    PGconn *(*PQsetdbLogin)(const char *, const char *, const char *,
                            const char *, const char *, const char *,
                            const char *);
    PGconn *(*PQconnectStart)(const char *);
    PGconn *(*PQconnectStartParams)(const char *const *, const char *const *,
                                    int);
    PostgresPollingStatusType (*PQconnectPoll)(PGconn *);
    void (*PQfinish)(PGconn *);
    void (*PQreset)(PGconn *);
    int (*PQresetStart)(PGconn *);
    PostgresPollingStatusType (*PQresetPoll)(PGconn *);
    PGPing (*PQping)(const char *);
    PGPing (*PQpingParams)(const char *const *, const char *const *, int);
    int (*PQregisterEventProc)(PGconn *, PGEventProc, const char *, void *);
    char *(*PQerrorMessage)(const PGconn *);

    /* Not intercepted, only called. */
    ConnStatusType (*PQstatus)(const PGconn *);
    PGTransactionStatusType (*PQtransactionStatus)(const PGconn *);
    PGpipelineStatus (*PQpipelineStatus)(const PGconn *);
    int (*PQbackendPID)(const PGconn *);
    int (*PQsocket)(const PGconn *);
    int (*PQsslInUse)(PGconn *);
    int (*PQisBusy)(PGconn *);
    int (*PQconsumeInput)(PGconn *);
    char *(*PQuser)(const PGconn *);
    char *(*PQhost)(const PGconn *);
    char *(*PQport)(const PGconn *);
    char *(*PQdb)(const PGconn *);
    PQconninfoOption *(*PQconndefaults)(void);
    PQconninfoOption *(*PQconninfoParse)(const char *, char **);
    void (*PQconninfoFree)(PQconninfoOption *);
    void (*PQfreemem)(void *);
    PGresult *(*PQexec)(PGconn *, const char *);
    int (*PQsendQuery)(PGconn *, const char *);
    PGresult *(*PQgetResult)(PGconn *);
    ExecStatusType (*PQresultStatus)(const PGresult *);
    void (*PQclear)(PGresult *);
    int (*PQsetnonblocking)(PGconn *, int);
    PQnoticeProcessor (*PQsetNoticeProcessor)(PGconn *, PQnoticeProcessor,
                                              void *);
    PQnoticeReceiver (*PQsetNoticeReceiver)(PGconn *, PQnoticeReceiver,
                                            void *);
    void (*PQuntrace)(PGconn *);
    PGnotify *(*PQnotifies)(PGconn *);
    PGVerbosity (*PQsetErrorVerbosity)(PGconn *, PGVerbosity);
    PGContextVisibility (*PQsetErrorContextVisibility)(PGconn *,
                                                       PGContextVisibility);
    char *(*PQresultErrorField)(const PGresult *, int);
    PGcancel *(*PQgetCancel)(PGconn *);
    int (*PQcancel)(PGcancel *, char *, int);
    void (*PQfreeCancel)(PGcancel *);
    int (*PQexitPipelineMode)(PGconn *);
    void (*PQtrace)(PGconn *, FILE *);

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

/* Remember a libpq found through a private dlopen handle (dlsym.c), so
 * the binder can use it when the global scope does not contain libpq. */
void real_note_library(const char *path);

/* Is this file name a libpq ("libpq.so.5", "libpq-<hash>.so.5.x")? */
bool real_is_libpq_name(const char *path);

#endif
