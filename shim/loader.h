/*
 * loader.h — the real dlsym and dlopen (loader.c).
 */
#ifndef PQSHIM_LOADER_H
#define PQSHIM_LOADER_H

#include "util.h"

/* The real dlsym, found without going through our own wrapper. */
void *real_dlsym(void *handle, const char *name);
void *(*real_dlsym_fn(void))(void *, const char *);

/* The real dlopen, bypassing our wrapper. */
typedef void *(*dlopen_fn)(const char *, int);
void *real_dlopen(const char *file, int mode);
dlopen_fn real_dlopen_fn(void);

#endif
