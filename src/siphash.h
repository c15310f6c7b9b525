/*
 * siphash: SipHash-1-3 (one compression round a word, three finalisation
 * rounds), shared by the cache's key hash (cache.c) and the in-flight
 * table's (cache_inflight.c), both one shot under a random key of their
 * segment, and by the ETag (etag.c), fed in pieces under a fixed key.
 * Words are read little-endian, so a hash is the same on every host.
 * Header-only so all three inline it on their hot paths.
 */
#ifndef RCP_SIPHASH_H
#define RCP_SIPHASH_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SIPHASH_C0 UINT64_C(0x736f6d6570736575)
#define SIPHASH_C1 UINT64_C(0x646f72616e646f6d)
#define SIPHASH_C2 UINT64_C(0x6c7967656e657261)
#define SIPHASH_C3 UINT64_C(0x7465646279746573)

static inline uint64_t
siphash_rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static inline void
siphash_round(uint64_t *v0, uint64_t *v1, uint64_t *v2, uint64_t *v3)
{
    *v0 += *v1;
    *v1 = siphash_rotl(*v1, 13);
    *v1 ^= *v0;
    *v0 = siphash_rotl(*v0, 32);
    *v2 += *v3;
    *v3 = siphash_rotl(*v3, 16);
    *v3 ^= *v2;
    *v0 += *v3;
    *v3 = siphash_rotl(*v3, 21);
    *v3 ^= *v0;
    *v2 += *v1;
    *v1 = siphash_rotl(*v1, 17);
    *v1 ^= *v2;
    *v2 = siphash_rotl(*v2, 32);
}

/* The four state words for a 128-bit key. */
static inline void
siphash_begin(uint64_t *v0, uint64_t *v1, uint64_t *v2, uint64_t *v3,
              const uint64_t key[2])
{
    *v0 = SIPHASH_C0 ^ key[0];
    *v1 = SIPHASH_C1 ^ key[1];
    *v2 = SIPHASH_C2 ^ key[0];
    *v3 = SIPHASH_C3 ^ key[1];
}

/* Compresses one whole 8-byte word m (already little-endian decoded). */
static inline void
siphash_compress(uint64_t *v0, uint64_t *v1, uint64_t *v2, uint64_t *v3,
                 uint64_t m)
{
    *v3 ^= m;
    siphash_round(v0, v1, v2, v3);
    *v0 ^= m;
}

/* The hash, from the state after the whole words and the last word b:
 * the input's length in its top byte, the len % 8 bytes left over below
 * it. */
static inline uint64_t
siphash_end(uint64_t v0, uint64_t v1, uint64_t v2, uint64_t v3, uint64_t b)
{
    siphash_compress(&v0, &v1, &v2, &v3, b);
    v2 ^= 0xff;
    siphash_round(&v0, &v1, &v2, &v3);
    siphash_round(&v0, &v1, &v2, &v3);
    siphash_round(&v0, &v1, &v2, &v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

/* SipHash-1-3 of len bytes at data under key, in one shot. */
static inline uint64_t
siphash13(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t             v0, v1, v2, v3;
    uint64_t             b = (uint64_t) len << 56;
    size_t               whole = len & ~(size_t) 7;
    uint64_t             m;

    siphash_begin(&v0, &v1, &v2, &v3, key);
    for (size_t off = 0; off < whole; off += 8) {
        memcpy(&m, p + off, sizeof(m));
        siphash_compress(&v0, &v1, &v2, &v3, le64toh(m));
    }
    for (size_t k = 0; k < (len & 7); k++) {
        b |= (uint64_t) p[whole + k] << (8 * k);
    }
    return siphash_end(v0, v1, v2, v3, b);
}

#endif
