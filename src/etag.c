/*
 * etag: see etag.h.  The state holds the four SipHash words, the bytes of
 * an unfinished 8-byte word, and the count fed, so any split of the input
 * compresses the same words in the same order.
 */
#include <endian.h>
#include <string.h>

#include "etag.h"
#include "siphash.h"

/* Fixed: the tag must not depend on the segment or the process.  Clients
 * cannot make two values collide on purpose any more cheaply than with
 * any 64-bit hash, and a collision only answers 304 for a value that
 * changed to one with the same hash. */
static const uint64_t etag_key[2] = { UINT64_C(0x7263702d65746167),
                                      UINT64_C(0x76616c7565206964) };

void
etag_begin(struct etag_state *s)
{
    siphash_begin(&s->v0, &s->v1, &s->v2, &s->v3, etag_key);
    s->tail = 0;
    s->len = 0;
}

static inline void
etag_compress(struct etag_state *s, uint64_t m)
{
    siphash_compress(&s->v0, &s->v1, &s->v2, &s->v3, m);
}

void
etag_update(struct etag_state *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t             m;

    /* Finish a word begun by an earlier piece. */
    while (len > 0 && (s->len & 7) != 0) {
        s->tail |= (uint64_t) *p++ << (8 * (s->len & 7));
        s->len++;
        len--;
        if ((s->len & 7) == 0) {
            etag_compress(s, s->tail);
            s->tail = 0;
        }
    }
    for (; len >= 8; p += 8, len -= 8, s->len += 8) {
        memcpy(&m, p, sizeof(m));
        etag_compress(s, le64toh(m));
    }
    for (; len > 0; len--) {
        s->tail |= (uint64_t) *p++ << (8 * (s->len & 7));
        s->len++;
    }
}

uint64_t
etag_end(const struct etag_state *s)
{
    return siphash_end(s->v0, s->v1, s->v2, s->v3,
                       (uint64_t) s->len << 56 | s->tail);
}

uint64_t
etag_of(const void *data, size_t len)
{
    struct etag_state s;

    etag_begin(&s);
    etag_update(&s, data, len);
    return etag_end(&s);
}
