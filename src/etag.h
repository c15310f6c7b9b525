/*
 * etag: the entity tag of a value, SipHash-1-3 of its bytes under a fixed
 * key, so one value has one tag on every worker and every proxy.  It can
 * be computed in pieces as a value arrives from Redis (a 256 MB value
 * hashed at once would stall its worker's loop for a fifth of a second);
 * the pieces give the same tag as etag_of() over the whole.
 */
#ifndef RCP_ETAG_H
#define RCP_ETAG_H

#include <stddef.h>
#include <stdint.h>

struct etag_state {
    uint64_t v0, v1, v2, v3;
    uint64_t tail; /* the last len % 8 bytes, little-endian */
    size_t   len;  /* bytes fed so far */
};

void     etag_begin(struct etag_state *s);
void     etag_update(struct etag_state *s, const void *data, size_t len);
uint64_t etag_end(const struct etag_state *s);
uint64_t etag_of(const void *data, size_t len);

#endif
