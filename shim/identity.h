/*
 * identity.h — what, besides its options, makes a connect authenticate as
 * someone (identity.c).
 */
#ifndef PQSHIM_IDENTITY_H
#define PQSHIM_IDENTITY_H

#include "target.h"

/* Append to t's key what identifies this process to the server now (as
 * two hashes): its effective user and group, and the state of the files
 * libpq may read to authenticate (t->auth_files) and of the Kerberos
 * cache (over TCP). False when out of memory: the caller must not use t. */
bool identity_add(struct target *t);

#endif
