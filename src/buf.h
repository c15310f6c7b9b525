/*
 * buf: the two byte buffers output is built in.
 *
 * struct buf is growable, owns its storage and has a read position, for
 * connection input and output.  Bytes [pos, len) are pending; appends go
 * at len.  Growth is by doubling; the buffer is never shrunk while in
 * use.
 *
 * struct buf_fixed is a cursor over a caller's fixed array that keeps
 * counting once the array is full, so a renderer learns the length it
 * needs, as snprintf does.  Used where a reply is built in one pass and
 * retried with a bigger array if it did not fit (admin replies,
 * /metrics).
 */
#ifndef RCP_BUF_H
#define RCP_BUF_H

#include <stddef.h>

struct buf {
    char  *data; /* owned */
    size_t pos;  /* first pending byte */
    size_t len;  /* end of pending bytes */
    size_t cap;
};

/* Makes room for n more bytes at len: rewinding when nothing is pending,
 * moving the pending bytes to the front when that is enough, else
 * growing.  Offsets into data taken before the call are stale after it.
 * 0 or -ENOMEM. */
int  buf_reserve(struct buf *b, size_t n);
/* 0 or -ENOMEM. */
int  buf_append(struct buf *b, const void *data, size_t n);
/* Frees the storage and zeroes b. */
void buf_free(struct buf *b);

static inline size_t
buf_pending(const struct buf *b)
{
    return b->len - b->pos;
}

struct buf_fixed {
    char  *buf; /* borrowed: the caller's array */
    size_t cap;
    size_t len; /* bytes produced, even past cap */
};

/* Nothing is ever written past cap; len grows by what was asked. */
void buf_fixed_printf(struct buf_fixed *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_fixed_bytes(struct buf_fixed *t, const void *bytes, size_t len);

#endif
