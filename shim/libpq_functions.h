/*
 * libpq_functions.h — every libpq function the shim touches, one row each.
 *
 * From these lists come the table of bound functions of each libpq copy
 * (struct real_libpq, pqshim.h) and its bindings (real.c), the calls
 * through the current copy, real_PQxxx() (pqshim.h), and the entry points
 * (hooks.c): each hooked PQxxx is exported, calls hook_PQxxx, which reaches
 * libpq through real_PQxxx. A hooked name must also be in libpqshim.map.
 *
 * A row is X(ctx, kind, return type, name, (parameters), (arguments)):
 * kind is R for a function that returns a value, V for a void one; ctx is
 * passed through untouched (hooks.c: the libpq copy an entry serves).
 */
#ifndef PQSHIM_LIBPQ_FUNCTIONS_H
#define PQSHIM_LIBPQ_FUNCTIONS_H

#include <libpq-events.h>
#include <libpq-fe.h>
#include <stdio.h>

/* libpq 17's cancel connections, for older headers: the same typedef as
 * libpq's own, so that a build against either declares the same hook. */
#ifndef LIBPQ_HAS_ASYNC_CANCEL
typedef struct pg_cancel_conn PGcancelConn;
PGcancelConn *PQcancelCreate(PGconn *conn);
#endif

/* Intercepted: the shim exports these names. */
#define LIBPQ_HOOKED(X, ctx) LIBPQ_HOOKED_ALWAYS(X, ctx) LIBPQ_HOOKED_NEWER(X, ctx)

/* Intercepted, and in every libpq the shim supports. */
#define LIBPQ_HOOKED_ALWAYS(X, ctx)                                            \
    X(ctx, R, PGconn *, PQconnectdb, (const char *conninfo), (conninfo))       \
    X(ctx, R, PGconn *, PQconnectdbParams,                                     \
      (const char *const *keywords, const char *const *values,                 \
       int expand_dbname),                                                     \
      (keywords, values, expand_dbname))                                       \
    X(ctx, R, PGconn *, PQsetdbLogin,                                          \
      (const char *pghost, const char *pgport, const char *pgoptions,          \
       const char *pgtty, const char *dbName, const char *login,               \
       const char *pwd),                                                       \
      (pghost, pgport, pgoptions, pgtty, dbName, login, pwd))                  \
    X(ctx, R, PGconn *, PQconnectStart, (const char *conninfo), (conninfo))    \
    X(ctx, R, PGconn *, PQconnectStartParams,                                  \
      (const char *const *keywords, const char *const *values,                 \
       int expand_dbname),                                                     \
      (keywords, values, expand_dbname))                                       \
    X(ctx, R, PostgresPollingStatusType, PQconnectPoll, (PGconn *conn),       \
      (conn))                                                                  \
    X(ctx, V, void, PQfinish, (PGconn *conn), (conn))                          \
    X(ctx, V, void, PQreset, (PGconn *conn), (conn))                           \
    X(ctx, R, int, PQresetStart, (PGconn *conn), (conn))                       \
    X(ctx, R, PostgresPollingStatusType, PQresetPoll, (PGconn *conn), (conn))  \
    X(ctx, R, PGPing, PQping, (const char *conninfo), (conninfo))              \
    X(ctx, R, PGPing, PQpingParams,                                            \
      (const char *const *keywords, const char *const *values,                 \
       int expand_dbname),                                                     \
      (keywords, values, expand_dbname))                                       \
    X(ctx, R, int, PQregisterEventProc,                                        \
      (PGconn *conn, PGEventProc proc, const char *name, void *passThrough),   \
      (conn, proc, name, passThrough))                                         \
    X(ctx, R, char *, PQerrorMessage, (const PGconn *conn), (conn))            \
    X(ctx, R, PGcancel *, PQgetCancel, (PGconn *conn), (conn))                 \
    X(ctx, R, int, PQcancel, (PGcancel *cancel, char *errbuf, int errbufsize), \
      (cancel, errbuf, errbufsize))                                            \
    X(ctx, V, void, PQfreeCancel, (PGcancel *cancel), (cancel))                \
    X(ctx, R, int, PQrequestCancel, (PGconn *conn), (conn))                    \
    X(ctx, R, int, PQexitPipelineMode, (PGconn *conn), (conn))                 \
    X(ctx, V, void, PQtrace, (PGconn *conn, FILE *debug_port),                 \
      (conn, debug_port))                                                      \
    X(ctx, R, PQnoticeProcessor, PQsetNoticeProcessor,                         \
      (PGconn *conn, PQnoticeProcessor proc, void *arg), (conn, proc, arg))    \
    X(ctx, R, PQnoticeReceiver, PQsetNoticeReceiver,                           \
      (PGconn *conn, PQnoticeReceiver proc, void *arg), (conn, proc, arg))    \
    X(ctx, R, char *, PQhost, (const PGconn *conn), (conn))                    \
    X(ctx, R, char *, PQport, (const PGconn *conn), (conn))                    \
    X(ctx, R, PQconninfoOption *, PQconninfo, (PGconn *conn), (conn))

/* Intercepted when the libpq copy has them (a newer libpq than some
 * hosts load): bound without a warning when missing. PQcancelCreate is
 * libpq 17's: its cancel connection may send a cancel at any time later
 * (PQcancelReset makes it reusable), so the checkout it was made in is
 * never handed on. */
#define LIBPQ_HOOKED_NEWER(X, ctx)                                             \
    X(ctx, R, PGcancelConn *, PQcancelCreate, (PGconn *conn), (conn))

/* Only called. */
#define LIBPQ_CALLED(X, ctx)                                                   \
    X(ctx, R, ConnStatusType, PQstatus, (const PGconn *conn), (conn))          \
    X(ctx, R, PGTransactionStatusType, PQtransactionStatus,                    \
      (const PGconn *conn), (conn))                                            \
    X(ctx, R, PGpipelineStatus, PQpipelineStatus, (const PGconn *conn),        \
      (conn))                                                                  \
    X(ctx, R, int, PQbackendPID, (const PGconn *conn), (conn))                 \
    X(ctx, R, int, PQsocket, (const PGconn *conn), (conn))                     \
    X(ctx, R, int, PQsslInUse, (PGconn *conn), (conn))                         \
    X(ctx, R, int, PQisBusy, (PGconn *conn), (conn))                           \
    X(ctx, R, int, PQconsumeInput, (PGconn *conn), (conn))                     \
    X(ctx, R, char *, PQuser, (const PGconn *conn), (conn))                    \
    X(ctx, R, char *, PQdb, (const PGconn *conn), (conn))                      \
    X(ctx, R, PQconninfoOption *, PQconndefaults, (void), ())                  \
    X(ctx, R, PQconninfoOption *, PQconninfoParse,                             \
      (const char *conninfo, char **errmsg), (conninfo, errmsg))               \
    X(ctx, V, void, PQconninfoFree, (PQconninfoOption *connOptions),           \
      (connOptions))                                                           \
    X(ctx, V, void, PQfreemem, (void *ptr), (ptr))                             \
    X(ctx, R, PGresult *, PQexec, (PGconn *conn, const char *query),           \
      (conn, query))                                                           \
    X(ctx, R, int, PQsendQuery, (PGconn *conn, const char *query),             \
      (conn, query))                                                           \
    X(ctx, R, PGresult *, PQgetResult, (PGconn *conn), (conn))                 \
    X(ctx, R, ExecStatusType, PQresultStatus, (const PGresult *res), (res))    \
    X(ctx, V, void, PQclear, (PGresult *res), (res))                           \
    X(ctx, R, int, PQsetnonblocking, (PGconn *conn, int arg), (conn, arg))     \
    X(ctx, V, void, PQuntrace, (PGconn *conn), (conn))                         \
    X(ctx, R, PGnotify *, PQnotifies, (PGconn *conn), (conn))                  \
    X(ctx, R, PGVerbosity, PQsetErrorVerbosity,                                \
      (PGconn *conn, PGVerbosity verbosity), (conn, verbosity))                \
    X(ctx, R, PGContextVisibility, PQsetErrorContextVisibility,                \
      (PGconn *conn, PGContextVisibility show_context), (conn, show_context))  \
    X(ctx, R, char *, PQresultErrorField,                                      \
      (const PGresult *res, int fieldcode), (res, fieldcode))

/* All of them: what each copy's table binds. */
#define LIBPQ_FUNCTIONS(X, ctx) LIBPQ_HOOKED(X, ctx) LIBPQ_CALLED(X, ctx)

#endif
