/*
 * hostlimit_file.h — the host limit's shared file (hostlimit_file.c) as
 * hostlimit.c uses it: the layout of the mapped file, the process's
 * descriptor and lock, the target table, the queue of waiters and the
 * futex waits. Nothing else includes it.
 */
#ifndef PQSHIM_HOSTLIMIT_FILE_H
#define PQSHIM_HOSTLIMIT_FILE_H

#include "hostlimit.h"
#include "hostlimit_place.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define HL_MAGIC 0x32306c6d696c7170ULL /* "pqlim02" */
#define HL_TARGETS HOST_TARGETS_MAX
#define HL_WAITERS 1024
/* Lock bytes live far past the end of the file (locks need no data). */
#define HL_WAITER_BYTE(w) ((off_t)(1 << 24) + (w))
#define HL_SLOT_BYTE(slot) ((off_t)(1 << 25) + (slot))
#define HL_POLL_S 0.2
/* A waiter refreshes its heartbeat every HL_POLL_S; one silent for longer
 * than this (stopped, frozen, in a debugger) is passed over. */
#define HL_STALE_MS 1500

struct hl_target {
    _Atomic uint64_t key;    /* hash of the target name; 0 = free */
    _Atomic uint32_t limit;  /* as last applied, for people */
    uint32_t unused;
};

struct hl_waiter {
    _Atomic uint64_t ticket; /* 0 = free */
    _Atomic uint32_t target;
    _Atomic int32_t pid;
    _Atomic uint32_t wake;   /* futex word */
    _Atomic uint32_t since_ms; /* CLOCK_MONOTONIC at joining, modulo 2^32 */
    _Atomic uint64_t beat_ms; /* CLOCK_MONOTONIC, refreshed while waiting */
};

struct hl_shared {
    _Atomic uint64_t magic;
    _Atomic uint64_t next_ticket;
    _Atomic uint32_t demand; /* futex word: a new waiter arrived */
    uint32_t unused;
    struct hl_target targets[HL_TARGETS];
    struct hl_waiter waiters[HL_WAITERS];
};

/* The process's lock over its own maps (own_waiter here, the slots and
 * blocking waiters in hostlimit.c): the slot lock of pqshim.h, a leaf. */
extern pthread_mutex_t hl_lock;
/* The mapped file, NULL until attached (or when it cannot be used). */
extern struct hl_shared *hl;
/* The descriptor was closed or replaced under us, or locking failed for
 * another reason than a taken byte: the limit is off from then on. */
extern atomic_bool hl_broken;
/* The queue entries this process holds (their bytes are locked by us). */
extern uint8_t own_waiter[HL_WAITERS / 8];

static inline bool bit(const uint8_t *map, int i) { return map[i / 8] & (1u << (i % 8)); }
static inline void set_bit(uint8_t *map, int i) { map[i / 8] |= (uint8_t)(1u << (i % 8)); }
static inline void clear_bit(uint8_t *map, int i) { map[i / 8] &= (uint8_t)~(1u << (i % 8)); }

/* Sleep on a futex word while it reads seen, up to seconds (0: no limit);
 * ring one: bump it and wake up to count sleepers. */
void hl_wait_on(_Atomic uint32_t *word, uint32_t seen, double seconds);
void hl_wake(_Atomic uint32_t *word, int count);

/* fcntl on one byte of the file; F_GETLK gives 1 when another process
 * has it, 0 when free. */
int hl_lock_byte(off_t byte, short type, int cmd);

/* Open and map the file once per process: is it usable? */
bool hl_attached(void);
/* The limit is off from now on (said once). */
void hl_mark_broken(const char *why, int err);
/* Is the descriptor still the file we opened? (Says so and breaks if not.) */
bool hl_still_ours(void);
/* May the mapping be touched now? Attached, not broken, still our file,
 * and the file covers the whole mapping (one that shrank is given its size
 * again, said once). Call it before each use: a member who can write the
 * file can truncate it at any time, and a page past its end is SIGBUS. */
bool hl_mapping_ok(void);

uint64_t hl_now_ms(void);
/* Is entry e's waiter still waiting (heartbeat recent)? */
bool hl_fresh(const struct hl_waiter *e, uint64_t now);

/* The table index of a target name, claimed on first use; -1 when full
 * (or, without claim, unknown). */
int hl_target_index(const char *name, bool claim);

/* The pid of a lock on byte that no slot holder took; 0 when there is
 * none (free, or an ordinary slot), -1 when its pid is unknown. */
pid_t hl_foreign_lock(off_t byte);

/* The queue of waiters for a target, oldest ticket first. */
int hl_join_queue(int target, uint64_t *ticket); /* entry, or -1 when full */
bool hl_queued_ahead(int target, uint64_t ticket);
void hl_wake_oldest(int target);
bool hl_remove_if_dead(int w, uint64_t t);
void hl_remove_dead_waiters(int target, uint64_t ticket);
bool hl_anyone_waiting(int target);
int hl_count_waiting(int target);

#endif
