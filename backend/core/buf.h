/*
 * A growable byte buffer with a hard limit, for everything that grows with
 * outside input (request heads, CouchDB bodies, feed lines, responses).
 * After buf_init the data is always NUL-terminated (not counted in len).
 * (After curl's dynbuf: a buffer that would pass its limit fails with
 * -E2BIG and is left unchanged.)
 */
#ifndef IMES_BUF_H
#define IMES_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* hard limit of len */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Empties without freeing. */
void buf_reset(struct buf *b);
/* 0, -E2BIG past max, -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Drops n bytes from the front. */
void buf_consume(struct buf *b, size_t n);
/* Hands the data over (caller frees; never NULL) and leaves b empty. */
char *buf_steal(struct buf *b);

#endif
