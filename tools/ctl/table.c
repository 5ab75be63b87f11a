/*
 * table.c — columns of cells printed aligned, psql style or plain.
 */
#define _GNU_SOURCE
#include "table.h"

#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void __attribute__((format(printf, 2, 3))) cell(struct table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    if (t->ncells == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = xrealloc(t->cells, sizeof *t->cells * (size_t)t->cap);
    }
    t->cells[t->ncells++] = clean(s);
    free(s);
}

static void pad(size_t n)
{
    while (n-- > 0)
        putchar(' ');
}

/* psql style (boxed: " a | b ", a rule under the header) or plain
 * (columns separated by two spaces, like ps). */
void table_print(struct table *t, bool boxed)
{
    size_t w[MAX_COLS];
    int rows = t->ncells / t->ncols;
    for (int c = 0; c < t->ncols; c++) {
        w[c] = width_of(t->head[c]);
        for (int r = 0; r < rows; r++) {
            size_t cw = width_of(t->cells[r * t->ncols + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    }
    for (int r = -1; r < rows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *s = r < 0 ? t->head[c] : t->cells[r * t->ncols + c];
            size_t gap = w[c] - width_of(s);
            bool last = c == t->ncols - 1;
            if (boxed)
                printf(c ? "| " : " ");
            if (t->right[c])
                pad(gap);
            fputs(s, stdout);
            if (!t->right[c] && (boxed || !last))
                pad(gap);
            if (boxed)
                printf(last ? "" : " ");
            else if (!last)
                printf("  ");
        }
        putchar('\n');
        if (r < 0 && boxed) {
            for (int c = 0; c < t->ncols; c++) {
                if (c)
                    putchar('+');
                for (size_t k = 0; k < w[c] + 2 - (c == t->ncols - 1); k++)
                    putchar('-');
            }
            putchar('\n');
        }
    }
    for (int i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->ncells = t->cap = 0;
}

