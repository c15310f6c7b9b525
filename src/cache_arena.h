/*
 * cache_arena: the allocator for key+value bytes inside the cache segment.
 * Internal to cache.c (not an interface between modules): it knows nothing
 * of keys, entries or locks, and the caller holds the cache's write lock
 * around every call except cache_arena_data().
 *
 * The arena region is a struct cache_arena_shm followed by blocks.  A block
 * is named by its offset in 8-byte granules from the start of the blocks,
 * so the region can sit at any address in any process.  See cache_arena.c
 * for the block format and the fragmentation bound.
 */
#ifndef RCP_CACHE_ARENA_H
#define RCP_CACHE_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache_check.h"

#define CACHE_ARENA_NIL     UINT32_MAX
#define CACHE_ARENA_GRANULE 8u
/* Bytes of arena reserved per entry on top of max_memory_bytes: a block's
 * 4-byte header plus its rounding to a granule is at most 15 bytes, so an
 * unfragmented arena always has room for a full byte budget. */
#define CACHE_ARENA_ENTRY_SLACK 16u
#define CACHE_ARENA_SL_LOG2     4u
#define CACHE_ARENA_SL_COUNT    (1u << CACHE_ARENA_SL_LOG2)
/* Block sizes are below 2^30 granules, so first levels 0 .. 26. */
#define CACHE_ARENA_FL_COUNT     27u
#define CACHE_ARENA_MAX_GRANULES (1u << 30)

/* Lives at the start of the arena region, in the segment. */
struct cache_arena_shm {
    uint32_t granules;                        /* blocks, sentinel included */
    uint32_t fl_bitmap;                       /* bit f: some list in level f */
    uint32_t sl_bitmap[CACHE_ARENA_FL_COUNT]; /* bit s: list f,s used */
    uint32_t used_blocks;
    uint64_t used_granules;
    uint32_t heads[CACHE_ARENA_FL_COUNT][CACHE_ARENA_SL_COUNT];
};

/* Bytes of a region whose blocks hold data_bytes, or 0 when that is more
 * than one arena can address (2^30 granules). */
size_t cache_arena_region_bytes(uint64_t data_bytes);

/* Makes the region one free block (and the end sentinel). */
void cache_arena_init(struct cache_arena_shm *arena, size_t region_bytes);

/* A block whose payload holds bytes, or CACHE_ARENA_NIL when no free
 * block is large enough.  O(1): two bitmap scans and one list head. */
uint32_t cache_arena_alloc(struct cache_arena_shm *arena, size_t bytes);

/* Frees block and merges it with free neighbours.  O(1). */
void cache_arena_free(struct cache_arena_shm *arena, uint32_t block);

/* Whether used block is exactly what cache_arena_alloc(bytes) would
 * return (its size in granules), so a new payload of bytes can take the
 * place of its old one with nothing freed, allocated or wasted.  Reads
 * only the block's header; callable without the arena's lock while the
 * caller owns the block. */
bool cache_arena_fits_exactly(const struct cache_arena_shm *arena,
                              uint32_t block, size_t bytes);

/* Payload bytes block can hold (for cache_check). */
uint64_t cache_arena_block_capacity(const struct cache_arena_shm *arena,
                                    uint32_t                      block);

/*
 * Walks every block and every free list.  used_starts, when not NULL, has
 * one bit per granule and gets the start of each used block set (so the
 * caller can match entries to blocks).  Returns 0 or -EUCLEAN with *fault
 * filled in.  Loads and stores only: callable under the lock.
 */
int cache_arena_check(const struct cache_arena_shm *arena,
                      uint8_t *used_starts, struct cache_fault *fault);

/* Where block's payload starts: on the hit path, so inline. */
static inline unsigned char *
cache_arena_data(struct cache_arena_shm *arena, uint32_t block)
{
    return (unsigned char *) arena + sizeof(*arena)
           + (size_t) block * CACHE_ARENA_GRANULE + sizeof(uint32_t);
}

#endif
