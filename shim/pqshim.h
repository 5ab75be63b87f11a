/*
 * pqshim.h — every module's header (for the tests), and the rules that
 * hold across modules.
 *
 * Modules are layered; each calls only modules below it (make callgraph
 * checks the objects), bottom up:
 *   util, thread, loader, escape, control_path; config; log; real;
 *   target, request, notice; conn; hostlimit_file; settle, hostlimit; pool_count;
 *   pool_wait; pool; gate_socket; cancel, gate, retry, view; lifecycle_open;
 *   lifecycle_async; lifecycle; control, commands; init; gotpatch; hooks;
 *   dlsym.
 * A lower module that must reach up is handed a function (hostlimit's
 * watcher, control's dispatcher, gotpatch's entry points).
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   1. registry lock (conn.c)  — the table of connections the shim created
 *   2. gate lock     (gate.c)  — asynchronous connects waiting their turn
 *   3. pool lock     (pool_count.c) — targets, idle lists, waiters
 *   4. slot lock     (hostlimit_file.c) — host-wide slots this process holds
 * Leaf locks, under which nothing else is taken: the copies lock (real.c),
 * the rewrite lock (gotpatch.c, held across mprotect and slot stores) and
 * the target cache lock (target_cache.c).
 * No lock is ever held across a real libpq call, dlsym, a log write or
 * socket I/O: those can block for a network round trip or re-enter us.
 */
#ifndef PQSHIM_H
#define PQSHIM_H

#include "util.h"
#include "thread.h"
#include "config.h"
#include "log.h"
#include "loader.h"
#include "real.h"
#include "target.h"
#include "target_cache.h"
#include "notice.h"
#include "conn.h"
#include "cancel.h"
#include "settle.h"
#include "init.h"
#include "gotpatch.h"
#include "hooks.h"

#endif
