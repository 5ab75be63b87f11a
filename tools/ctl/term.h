/*
 * term.h — the terminal for top (term.c).
 */
#ifndef PQSHIMCTL_TERM_H
#define PQSHIMCTL_TERM_H

#include <stdbool.h>

/* Keys without echo or line editing, and the terminal restored at exit
 * and on SIGINT, SIGTERM, SIGHUP and SIGQUIT. Harmless when stdin is not
 * a terminal. */
void raw_terminal(void);
/* Back to the saved mode, and the cursor on. Async-signal-safe. */
void restore_terminal(void);
/* The terminal's width, or 0 when stdout is not one (no truncation). */
int term_columns(void);
/* Wait up to ms for a key (less when the window is resized); true when
 * the user asked to quit. *stdin_open becomes false at its end. */
bool term_wait_quit(int ms, bool *stdin_open);

#endif
