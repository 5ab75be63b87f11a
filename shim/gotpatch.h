/*
 * gotpatch.h — modules that bind libpq in their own scope (gotpatch.c).
 */
#ifndef PQSHIM_GOTPATCH_H
#define PQSHIM_GOTPATCH_H

#include "util.h"

/* What gotpatch.c and the loader wrappers need of the entry points. */
struct entry_points {
    void *(*lookup)(const char *name);
    void *(*lookup_copy)(const char *name, int copy);
    bool (*is_ours)(const void *addr);
};

/* When objects were loaded since the last look, point every module's
 * relocation slots for intercepted libpq names at the entry points (ep)
 * serving the libpq copy that module binds to. Cheap when nothing
 * changed. */
void gotpatch_refresh(const struct entry_points *ep);

/* Log what was rewritten since the last call (one module_rewired line
 * each). Called at a connect, never while loading: the configuration is
 * read on the first log line. */
void gotpatch_log_pending(void);

/* The libpq copy a module bound to another copy than 0 uses, when addr
 * (a return address) lies in it; else 0. For a connect that reached an
 * exported entry point before its module was rewritten. */
int gotpatch_copy_of_caller(const void *addr);

/* dlsym.c: file (as given to dlopen) was loaded with RTLD_DEEPBIND. */
void gotpatch_note_deepbind(const char *file);

/* Fork handlers for the rewrite lock, registered once (the dlopen wrapper
 * calls this before each load, so a fork during one is covered). */
void gotpatch_watch_forks(void);
/* A loader call of the program came back: the loader's lock is free, in
 * a forked child too (see gotpatch.c). */
void gotpatch_loader_proven(void);

#endif
