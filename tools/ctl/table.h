/*
 * table.h — columns of cells printed aligned (table.c).
 */
#ifndef PQSHIMCTL_TABLE_H
#define PQSHIMCTL_TABLE_H

#include <stdbool.h>

#define MAX_COLS 14

struct table {
    int ncols;
    const char *head[MAX_COLS];
    bool right[MAX_COLS];     /* right-aligned (numbers) */
    char **cells;
    int ncells, cap;
};

/* Append one cell (row by row), cleaned for the terminal. */
void cell(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print t and free its cells: psql style (boxed) or plain like ps. */
void table_print(struct table *t, bool boxed);

#endif
