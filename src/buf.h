/*
 * buf: a growable byte buffer with a read position, for connection input
 * and output.  Bytes [pos, len) are pending; appends go at len.  Growth is by
 * doubling; the buffer is never shrunk while in use.
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

#endif
