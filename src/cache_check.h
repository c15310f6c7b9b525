/*
 * cache_check: what the segment's invariant checks share.  cache_check()
 * (cache.c: index, LRU, slots, gauges) and cache_arena_check()
 * (cache_arena.c: blocks and free lists) report a fault the same way,
 * through cache_fault_set(), and mark what they have seen in the same
 * kind of bitmap.  Both run under the cache lock, so nothing here does
 * more than load and store: the caller formats the fault after it has
 * dropped the lock.
 */
#ifndef RCP_CACHE_CHECK_H
#define RCP_CACHE_CHECK_H

#include <stdbool.h>
#include <stdint.h>

/* What a check found wrong: a static text and two numbers, formatted by
 * the caller after it drops the lock. */
struct cache_fault {
    const char *what; /* borrowed: a string literal */
    uint64_t    a;
    uint64_t    b;
};

/* Fills *fault and returns -EUCLEAN, so a check can `return` it. */
int cache_fault_set(struct cache_fault *fault, const char *what, uint64_t a,
                    uint64_t b);

/* Bit i of a bitmap of one bit per slot or granule. */
static inline bool
cache_check_bit(const uint8_t *map, uint64_t i)
{
    return (map[i / 8] >> (i % 8)) & 1u;
}

static inline void
cache_check_bit_flip(uint8_t *map, uint64_t i)
{
    map[i / 8] ^= (uint8_t) (1u << (i % 8));
}

#endif
