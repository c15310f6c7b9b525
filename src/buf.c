/*
 * buf: growable connection buffers, the only allocation on a request's
 * path, and it happens only when a request or an answer outgrows what
 * the connection already has; and snprintf-style output over a fixed
 * array (buf_fixed), which never writes past cap but keeps counting so
 * that the caller can retry with exactly the room it needs.
 */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define BUF_MIN 4096

int
buf_reserve(struct buf *b, size_t n)
{
    size_t cap;
    char  *p;

    if (b->pos == b->len) {
        b->pos = 0;
        b->len = 0;
    }
    if (b->cap - b->len >= n) {
        return 0;
    }
    if (b->pos > 0 && b->cap - (b->len - b->pos) >= n) {
        /* Room enough once the bytes already consumed are dropped: a
         * buffer written out a little at a time while more is appended
         * (a slow reader of a long answer) stays bounded instead of
         * growing by all it ever held. */
        memmove(b->data, b->data + b->pos, b->len - b->pos);
        b->len -= b->pos;
        b->pos = 0;
        return 0;
    }
    if (n > ((size_t) -1) / 2 - b->len) {
        return -ENOMEM;
    }
    cap = b->cap == 0 ? BUF_MIN : b->cap;
    while (cap - b->len < n) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        return -ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int
buf_append(struct buf *b, const void *data, size_t n)
{
    int rc = buf_reserve(b, n);

    if (rc != 0) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->data + b->len, data, n);
    }
    b->len += n;
    return 0;
}

void
buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->pos = 0;
    b->len = 0;
    b->cap = 0;
}

void
buf_fixed_printf(struct buf_fixed *t, const char *fmt, ...)
{
    va_list ap;
    int     n;
    char   *dst = NULL;
    size_t  room = 0;

    if (t->len < t->cap) {
        dst = t->buf + t->len;
        room = t->cap - t->len;
    }
    va_start(ap, fmt);
    n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    /* Our formats have no wide characters, so vsnprintf cannot fail. */
    assert(n >= 0);
    t->len += (size_t) n;
}

void
buf_fixed_bytes(struct buf_fixed *t, const void *bytes, size_t len)
{
    if (t->len < t->cap) {
        size_t room = t->cap - t->len;

        memcpy(t->buf + t->len, bytes, len < room ? len : room);
    }
    t->len += len;
}
