/*
 * textbuf: a cursor over a caller's fixed buffer that keeps counting once
 * the buffer is full, so a renderer learns the length it needs, as
 * snprintf does.  Used where a reply is built in one pass and retried
 * with a bigger buffer if it did not fit (admin replies, /metrics).
 */
#ifndef RCP_TEXTBUF_H
#define RCP_TEXTBUF_H

#include <stddef.h>

struct textbuf {
    char  *buf; /* borrowed: the caller's buffer */
    size_t cap;
    size_t len; /* bytes produced, even past cap */
};

void textbuf_printf(struct textbuf *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void textbuf_bytes(struct textbuf *t, const void *bytes, size_t len);

#endif
