/*
 * textbuf: snprintf-style output over a fixed buffer.  Nothing is ever
 * written past cap; len keeps growing so the caller can retry with
 * exactly the room it needs.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "textbuf.h"

void
textbuf_printf(struct textbuf *t, const char *fmt, ...)
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
textbuf_bytes(struct textbuf *t, const void *bytes, size_t len)
{
    if (t->len < t->cap) {
        size_t room = t->cap - t->len;

        memcpy(t->buf + t->len, bytes, len < room ? len : room);
    }
    t->len += len;
}
