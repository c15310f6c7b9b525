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
    s->v0 = SIPHASH_C0 ^ etag_key[0];
    s->v1 = SIPHASH_C1 ^ etag_key[1];
    s->v2 = SIPHASH_C2 ^ etag_key[0];
    s->v3 = SIPHASH_C3 ^ etag_key[1];
    s->tail = 0;
    s->len = 0;
}

static inline void
etag_compress(struct etag_state *s, uint64_t m)
{
    s->v3 ^= m;
    siphash_round(&s->v0, &s->v1, &s->v2, &s->v3);
    s->v0 ^= m;
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
    uint64_t v0 = s->v0, v1 = s->v1, v2 = s->v2, v3 = s->v3;
    uint64_t b = (uint64_t) s->len << 56 | s->tail;

    v3 ^= b;
    siphash_round(&v0, &v1, &v2, &v3);
    v0 ^= b;
    v2 ^= 0xff;
    siphash_round(&v0, &v1, &v2, &v3);
    siphash_round(&v0, &v1, &v2, &v3);
    siphash_round(&v0, &v1, &v2, &v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
etag_of(const void *data, size_t len)
{
    struct etag_state s;

    etag_begin(&s);
    etag_update(&s, data, len);
    return etag_end(&s);
}
