/*
 * siphash: the SipHash round, shared by the cache's key hash (cache.c,
 * one shot, per-segment key) and the ETag (etag.c, in pieces, fixed key).
 * Header-only so both inline it on their hot paths.
 */
#ifndef RCP_SIPHASH_H
#define RCP_SIPHASH_H

#include <stdint.h>

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

#endif
