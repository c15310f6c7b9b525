/*
 * redis_scan: finds where one RESP2 reply from Redis ends, without
 * building it and within a size bound.  Pure: no I/O, no allocation, no
 * globals; incremental (feed the bytes not yet consumed, in any pieces).
 *
 * A reply that is a bulk string at the top level stops the scan at its
 * header (REDIS_SCAN_BULK): the caller reads the payload itself, into
 * the value's own storage, so the largest replies are never buffered
 * twice and one too large is skipped, never held.  Any other reply is
 * scanned to its end (REDIS_SCAN_DONE), its nested bulks skipped by
 * count; the caller then hands exactly those bytes to a full parser
 * (hiredis' redisReader).  Once a reply passes max_bytes, too_large is
 * set and the scan goes on, so the caller can drop the bytes it has and
 * still find the next reply.
 *
 * Limits are part of the grammar: a header or status line is at most
 * REDIS_SCAN_LINE_MAX bytes, arrays nest at most REDIS_SCAN_DEPTH_MAX
 * deep (as hiredis 0.14's reader), counts fit in an int64.  A nested
 * bulk's trailing CRLF is checked by the full parser, not here.
 */
#ifndef RCP_REDIS_SCAN_H
#define RCP_REDIS_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REDIS_SCAN_LINE_MAX  65536
#define REDIS_SCAN_DEPTH_MAX 7

enum redis_scan_rc {
    REDIS_SCAN_AGAIN = 0, /* more bytes needed */
    REDIS_SCAN_DONE,      /* the reply ended */
    REDIS_SCAN_BULK,      /* top-level bulk header read: bulk_len
                             payload bytes and CRLF follow */
    REDIS_SCAN_BAD        /* not RESP2, or past a limit */
};

struct redis_scan {
    uint64_t max_bytes; /* the reply bound (--max-reply-size) */
    uint64_t size;      /* bytes of this reply consumed so far */
    uint64_t skip;      /* of a nested bulk + CRLF still to pass */
    unsigned depth;     /* arrays open */
    int64_t  left[REDIS_SCAN_DEPTH_MAX]; /* elements due in each */
    int64_t  bulk_len;  /* '$' at the top: payload bytes, -1 nil */
    char     type;      /* first byte of the reply, 0 before */
    bool     too_large; /* size passed max_bytes */
};

void redis_scan_init(struct redis_scan *st, uint64_t max_bytes);

/* Scans buf[0, len): the bytes that follow what earlier calls consumed.
 * *used is how many were consumed (a partial line is left unconsumed,
 * so feed it again with more bytes).  After DONE or BULK, call
 * redis_scan_init() before the next reply. */
enum redis_scan_rc redis_scan(struct redis_scan *st, const char *buf,
                              size_t len, size_t *used);

#endif
