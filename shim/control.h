/*
 * control.h — the control socket (control.c) and its commands (commands.c).
 */
#ifndef PQSHIM_CONTROL_H
#define PQSHIM_CONTROL_H

#include "util.h"
#include "escape.h"

/* A growing reply buffer; on allocation failure `failed` is set and
 * further output is dropped. */
struct buf {
    char *data;
    size_t len, cap;
    bool failed;
};

void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_json_string(struct buf *b, const char *s);
void buf_escaped(struct buf *b, const char *s, enum esc_style style, const char *quote);

#include "control_path.h"

/* Start this process's control socket if PQSHIM_CONTROL is set and it is
 * not up yet (first call in a process, or first call in a forked child);
 * dispatch runs each request line (commands.c's control_dispatch). */
void control_ensure(void (*dispatch)(const char *line, struct buf *reply));
void control_forget_after_fork(void);
/* The start lock, held across fork() by init.c's handlers (first of all). */
void control_lock_for_fork(void);
void control_unlock_after_fork(void);

double control_uptime(void);

/* Run one request line, appending the reply (commands.c). */
void control_dispatch(const char *line, struct buf *reply);

#endif
