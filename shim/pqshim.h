/*
 * pqshim.h — every module's header (for the tests), and the rules that
 * hold across modules.
 *
 * Modules are layered; each calls only modules below it (make callgraph
 * checks the objects), bottom up:
 *   util, thread, loader, escape, control_path; config; log; real;
 *   target, identity, request, notice; target_resolve; conn; hostlimit_place;
 *   hostlimit_file; settle, hostlimit; pool_count; pool_wait; pool;
 *   gate_socket; cancel, gate, retry, view; lifecycle_open; lifecycle_async;
 *   lifecycle; control, commands; init; gotpatch; hooks; dlsym.
 * A lower module that must reach up is handed a function (hostlimit's
 * watcher, control's dispatcher, gotpatch's entry points).
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   0. start lock    (control.c) — held while the control socket starts,
 *                                  which logs a line
 *   1. registry lock (conn.c)  — the table of connections the shim created
 *   2. gate lock     (gate.c)  — asynchronous connects waiting their turn
 *   3. pool lock     (pool_count.c) — targets, idle lists, waiters
 *   4. slot lock     (hostlimit_file.c) — host-wide slots this process holds
 * Leaf locks, under which nothing else is taken: the target cache lock
 * (target_cache.c), the copies lock (real.c), the log's open lock (log.c,
 * held across open and fstat of the log file) and the rewrite lock
 * (gotpatch.c, held across mprotect and slot stores).
 *
 * At fork, every one of them is taken, so that no thread the child lacks
 * can hold one: init.c's prepare handler takes 0-4, then the target
 * cache, copies and open locks; the parent handler releases them; the
 * child handler resets what 1-4 guard and releases every one (the forking
 * thread holds them: unlocking, not re-initialising, keeps ThreadSanitizer's
 * picture of the held locks true). The rewrite lock has handlers of its own (gotpatch.c,
 * registered at its first use, which can come before activation); it is
 * never taken under another lock nor held while taking one, so its place
 * among the others does not matter.
 * The pthread_once controls (activation, configuration, binding libpq,
 * attaching the host-limit file) need nothing: glibc starts an
 * initialisation over in a child forked while another thread ran it.
 * The record locks on the host-limit file are the process's and are not
 * inherited (a child holds no slot of its parent's).
 * No lock is ever held across a real libpq call, dlsym, a log write or
 * socket I/O: those can block for a network round trip or re-enter us
 * (the start lock excepted: it covers making the control socket, a local
 * bind, and its one line, once per process).
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
#include "target_resolve.h"
#include "identity.h"
#include "notice.h"
#include "conn.h"
#include "cancel.h"
#include "settle.h"
#include "init.h"
#include "gotpatch.h"
#include "hooks.h"

#endif
