/*
 * cache_arena: a two-level segregated-fit allocator (TLSF, Masmano et al.
 * 2004) for the key+value bytes of cache entries, inside the segment.
 *
 * Blocks are runs of 8-byte granules, named by their granule offset from
 * the start of the blocks.  Each begins with a 4-byte header word:
 *
 *   bits 0..29  size in granules (the header included)
 *   bit 30      PREV_FREE: the block just before this one is free
 *   bit 31      FREE
 *
 *   used block:  [hdr][payload ............................]
 *   free block:  [hdr][next free][prev free] .... [size]  <- footer
 *
 * A used block spends 4 bytes on its header and at most 7 on rounding up to
 * a granule; a free block keeps its list links in the payload and its size
 * in its last word, so the block after it can find its start when both
 * merge.  Free neighbours are always merged, so no two free blocks touch.
 * The last granule is a used sentinel of size 0 that stops the walk.
 *
 * Free blocks sit in lists by size class: level f holds sizes in
 * [2^(f+3), 2^(f+4)) split into 16 equal sub-ranges (sizes below 16
 * granules get a list each in level 0).  Two bitmaps say which lists are
 * non-empty, so finding a block is two find-first-set operations.  A
 * request is rounded up to the next class boundary before the search, so
 * any block in the list found is large enough (good fit, no list walk);
 * if that finds nothing, the head of the request's own class is tried,
 * since it may still be large enough.  Alloc and free are O(1).
 *
 * Fragmentation: blocks are split exactly, so waste inside a used block is
 * at most 11 bytes (15 for payloads under 12 bytes) and the cache reserves
 * CACHE_ARENA_ENTRY_SLACK per entry for it.  Free space can still be cut
 * into pieces too small for a request; the cache then evicts more LRU
 * entries (their blocks merge with their neighbours) until the request
 * fits, which always happens once the arena is empty.  The price is some
 * entries evicted before the byte budget strictly needed it; the gain is
 * that every byte of max_memory_bytes serves any size, where slab classes
 * (memcached) would strand memory in classes that are no longer asked for
 * and would need a per-class LRU, which is not the exact global LRU we
 * promise.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "cache_arena.h"

#define CACHE_ARENA_FREE      0x80000000u
#define CACHE_ARENA_PREV_FREE 0x40000000u
#define CACHE_ARENA_SIZE_MASK 0x3fffffffu
#define CACHE_ARENA_MIN_BLOCK 2u /* header, 2 links, footer */

_Static_assert(sizeof(struct cache_arena_shm) % CACHE_ARENA_GRANULE == 0,
               "blocks must start on a granule");
_Static_assert(CACHE_ARENA_FL_COUNT + CACHE_ARENA_SL_LOG2 - 1 == 30,
               "levels must cover every size below 2^30 granules");

static inline uint32_t *
cache_arena_word(const struct cache_arena_shm *arena, uint32_t block,
                 uint32_t word)
{
    return (uint32_t *) ((unsigned char *) arena + sizeof(*arena)
                         + (size_t) block * CACHE_ARENA_GRANULE
                         + (size_t) word * sizeof(uint32_t));
}

static inline uint32_t
cache_arena_size(const struct cache_arena_shm *arena, uint32_t block)
{
    return *cache_arena_word(arena, block, 0) & CACHE_ARENA_SIZE_MASK;
}

/* The footer: the last word of a free block. */
static inline uint32_t *
cache_arena_footer(const struct cache_arena_shm *arena, uint32_t block,
                   uint32_t size)
{
    return cache_arena_word(arena, block, size * 2 - 1);
}

static inline uint32_t
cache_arena_msb(uint32_t x)
{
    return 31u - (uint32_t) __builtin_clz(x);
}

static void
cache_arena_mapping(uint32_t size, uint32_t *fl, uint32_t *sl)
{
    uint32_t msb;

    if (size < CACHE_ARENA_SL_COUNT) {
        *fl = 0;
        *sl = size;
        return;
    }
    msb = cache_arena_msb(size);
    *fl = msb - CACHE_ARENA_SL_LOG2 + 1;
    *sl = (size >> (msb - CACHE_ARENA_SL_LOG2)) - CACHE_ARENA_SL_COUNT;
}

static void
cache_arena_insert(struct cache_arena_shm *arena, uint32_t block,
                   uint32_t size)
{
    uint32_t fl, sl, head;

    cache_arena_mapping(size, &fl, &sl);
    head = arena->heads[fl][sl];
    *cache_arena_word(arena, block, 1) = head;
    *cache_arena_word(arena, block, 2) = CACHE_ARENA_NIL;
    if (head != CACHE_ARENA_NIL) {
        *cache_arena_word(arena, head, 2) = block;
    }
    arena->heads[fl][sl] = block;
    arena->sl_bitmap[fl] |= 1u << sl;
    arena->fl_bitmap |= 1u << fl;
    *cache_arena_footer(arena, block, size) = size;
}

static void
cache_arena_remove(struct cache_arena_shm *arena, uint32_t block,
                   uint32_t size)
{
    uint32_t fl, sl;
    uint32_t next = *cache_arena_word(arena, block, 1);
    uint32_t prev = *cache_arena_word(arena, block, 2);

    cache_arena_mapping(size, &fl, &sl);
    if (next != CACHE_ARENA_NIL) {
        *cache_arena_word(arena, next, 2) = prev;
    }
    if (prev != CACHE_ARENA_NIL) {
        *cache_arena_word(arena, prev, 1) = next;
        return;
    }
    arena->heads[fl][sl] = next;
    if (next == CACHE_ARENA_NIL) {
        arena->sl_bitmap[fl] &= ~(1u << sl);
        if (arena->sl_bitmap[fl] == 0) {
            arena->fl_bitmap &= ~(1u << fl);
        }
    }
}

size_t
cache_arena_region_bytes(uint64_t data_bytes)
{
    uint64_t granules =
        (data_bytes + CACHE_ARENA_GRANULE - 1) / CACHE_ARENA_GRANULE
        + 1; /* + the sentinel */

    if (data_bytes > (uint64_t) CACHE_ARENA_MAX_GRANULES * CACHE_ARENA_GRANULE
        || granules < CACHE_ARENA_MIN_BLOCK + 1
        || granules > CACHE_ARENA_MAX_GRANULES) {
        return 0;
    }
    return sizeof(struct cache_arena_shm)
           + (size_t) granules * CACHE_ARENA_GRANULE;
}

void
cache_arena_init(struct cache_arena_shm *arena, size_t region_bytes)
{
    uint32_t granules =
        (uint32_t) ((region_bytes - sizeof(*arena)) / CACHE_ARENA_GRANULE);
    uint32_t size = granules - 1;

    assert(granules >= CACHE_ARENA_MIN_BLOCK + 1
           && granules <= CACHE_ARENA_MAX_GRANULES);
    memset(arena, 0, sizeof(*arena));
    memset(arena->heads, 0xff, sizeof(arena->heads));
    arena->granules = granules;
    *cache_arena_word(arena, 0, 0) = size | CACHE_ARENA_FREE;
    cache_arena_insert(arena, 0, size);
    /* The sentinel: used, size 0, after one free block. */
    *cache_arena_word(arena, size, 0) = CACHE_ARENA_PREV_FREE;
}

uint32_t
cache_arena_alloc(struct cache_arena_shm *arena, size_t bytes)
{
    uint64_t want = (bytes + sizeof(uint32_t) + CACHE_ARENA_GRANULE - 1)
                    / CACHE_ARENA_GRANULE;
    uint32_t need, search, fl, sl, map, block, size, next;

    if (want < CACHE_ARENA_MIN_BLOCK) {
        want = CACHE_ARENA_MIN_BLOCK;
    }
    if (want >= arena->granules) {
        return CACHE_ARENA_NIL;
    }
    need = (uint32_t) want;

    /* Round up to the next class so the first block found fits. */
    search = need;
    if (search >= CACHE_ARENA_SL_COUNT) {
        search += (1u << (cache_arena_msb(search) - CACHE_ARENA_SL_LOG2)) - 1;
    }
    cache_arena_mapping(search, &fl, &sl);
    block = CACHE_ARENA_NIL;
    if (fl < CACHE_ARENA_FL_COUNT) {
        map = arena->sl_bitmap[fl] & (~0u << sl);
        if (map == 0) {
            map = fl + 1 < CACHE_ARENA_FL_COUNT
                      ? arena->fl_bitmap & (~0u << (fl + 1))
                      : 0;
            if (map != 0) {
                fl = (uint32_t) __builtin_ctz(map);
                map = arena->sl_bitmap[fl];
            }
        }
        if (map != 0) {
            sl = (uint32_t) __builtin_ctz(map);
            block = arena->heads[fl][sl];
        }
    }
    if (block == CACHE_ARENA_NIL) {
        cache_arena_mapping(need, &fl, &sl);
        block = arena->heads[fl][sl];
        if (block == CACHE_ARENA_NIL
            || cache_arena_size(arena, block) < need) {
            return CACHE_ARENA_NIL;
        }
    }

    size = cache_arena_size(arena, block);
    assert(size >= need);
    cache_arena_remove(arena, block, size);
    if (size - need >= CACHE_ARENA_MIN_BLOCK) {
        /* Split: the rest stays free, and the block after it still
         * follows a free block, so its PREV_FREE stays set. */
        uint32_t rest = block + need;

        *cache_arena_word(arena, rest, 0) = (size - need) | CACHE_ARENA_FREE;
        cache_arena_insert(arena, rest, size - need);
        size = need;
    } else {
        next = block + size;
        *cache_arena_word(arena, next, 0) &= ~CACHE_ARENA_PREV_FREE;
    }
    /* Free blocks never follow free blocks, so PREV_FREE is clear. */
    *cache_arena_word(arena, block, 0) = size;
    arena->used_blocks++;
    arena->used_granules += size;
    return block;
}

void
cache_arena_free(struct cache_arena_shm *arena, uint32_t block)
{
    uint32_t head = *cache_arena_word(arena, block, 0);
    uint32_t size = head & CACHE_ARENA_SIZE_MASK;
    uint32_t next = block + size;
    uint32_t next_head = *cache_arena_word(arena, next, 0);

    assert((head & CACHE_ARENA_FREE) == 0 && size >= CACHE_ARENA_MIN_BLOCK);
    arena->used_blocks--;
    arena->used_granules -= size;

    if (head & CACHE_ARENA_PREV_FREE) {
        /* The word just before this header is the free block's footer. */
        uint32_t prev_size =
            *((uint32_t *) cache_arena_word(arena, block, 0) - 1);
        uint32_t prev = block - prev_size;

        cache_arena_remove(arena, prev, prev_size);
        block = prev;
        size += prev_size;
    }
    if (next_head & CACHE_ARENA_FREE) {
        uint32_t next_size = next_head & CACHE_ARENA_SIZE_MASK;

        cache_arena_remove(arena, next, next_size);
        size += next_size;
    }
    *cache_arena_word(arena, block, 0) = size | CACHE_ARENA_FREE;
    cache_arena_insert(arena, block, size);
    *cache_arena_word(arena, block + size, 0) |= CACHE_ARENA_PREV_FREE;
}

uint64_t
cache_arena_block_capacity(const struct cache_arena_shm *arena, uint32_t block)
{
    return (uint64_t) cache_arena_size(arena, block) * CACHE_ARENA_GRANULE
           - sizeof(uint32_t);
}

bool
cache_arena_fits_exactly(const struct cache_arena_shm *arena, uint32_t block,
                         size_t bytes)
{
    uint64_t want = (bytes + sizeof(uint32_t) + CACHE_ARENA_GRANULE - 1)
                    / CACHE_ARENA_GRANULE;

    if (want < CACHE_ARENA_MIN_BLOCK) {
        want = CACHE_ARENA_MIN_BLOCK;
    }
    /* Atomic: the allocator may flip PREV_FREE in this word meanwhile;
     * the size of a used block never changes. */
    return (__atomic_load_n(cache_arena_word(arena, block, 0),
                            __ATOMIC_RELAXED)
            & CACHE_ARENA_SIZE_MASK)
           == want;
}

int
cache_arena_check(const struct cache_arena_shm *arena, uint8_t *used_starts,
                  struct cache_fault *fault)
{
    uint32_t block = 0, free_blocks = 0, used_blocks = 0, listed = 0;
    uint64_t used_granules = 0;
    int      prev_free = 0;

    /* Physical walk: sizes tile the arena, flags and footers agree. */
    for (;;) {
        uint32_t head = *cache_arena_word(arena, block, 0);
        uint32_t size = head & CACHE_ARENA_SIZE_MASK;
        int      is_free = (head & CACHE_ARENA_FREE) != 0;

        if (((head & CACHE_ARENA_PREV_FREE) != 0) != prev_free) {
            return cache_fault_set(fault,
                                   "arena: PREV_FREE flag wrong at "
                                   "block (granule, flags)",
                                   block, head);
        }
        if (size == 0) {
            if (block != arena->granules - 1 || is_free) {
                return cache_fault_set(fault,
                                       "arena: sentinel misplaced "
                                       "(granule, arena granules)",
                                       block, arena->granules);
            }
            break;
        }
        if (size < CACHE_ARENA_MIN_BLOCK
            || size > arena->granules - 1 - block) {
            return cache_fault_set(fault,
                                   "arena: block size out of range "
                                   "(granule, size)",
                                   block, size);
        }
        if (is_free) {
            if (prev_free) {
                return cache_fault_set(fault,
                                       "arena: two free blocks touch "
                                       "(granule, size)",
                                       block, size);
            }
            if (*cache_arena_footer(arena, block, size) != size) {
                return cache_fault_set(fault,
                                       "arena: footer disagrees "
                                       "(granule, size)",
                                       block, size);
            }
            free_blocks++;
        } else {
            used_blocks++;
            used_granules += size;
            if (used_starts != NULL) {
                cache_check_bit_flip(used_starts, block);
            }
        }
        prev_free = is_free;
        block += size;
    }
    if (used_blocks != arena->used_blocks
        || used_granules != arena->used_granules) {
        return cache_fault_set(fault,
                               "arena: used block count or granules "
                               "wrong (walked blocks, recorded blocks)",
                               used_blocks, arena->used_blocks);
    }

    /* Free lists: each holds free blocks of its class, linked both ways,
     * and the bitmaps say exactly which lists are non-empty. */
    for (uint32_t fl = 0; fl < CACHE_ARENA_FL_COUNT; fl++) {
        int fl_bit = (arena->fl_bitmap >> fl) & 1;

        if (fl_bit != (arena->sl_bitmap[fl] != 0)) {
            return cache_fault_set(fault,
                                   "arena: first-level bitmap wrong "
                                   "(level, bitmap)",
                                   fl, arena->fl_bitmap);
        }
        for (uint32_t sl = 0; sl < CACHE_ARENA_SL_COUNT; sl++) {
            uint32_t prev = CACHE_ARENA_NIL;
            int      sl_bit = (arena->sl_bitmap[fl] >> sl) & 1;

            block = arena->heads[fl][sl];
            if (sl_bit != (block != CACHE_ARENA_NIL)) {
                return cache_fault_set(fault,
                                       "arena: second-level bitmap "
                                       "wrong (level, sub-list)",
                                       fl, sl);
            }
            while (block != CACHE_ARENA_NIL) {
                uint32_t head, f, s;

                if (block >= arena->granules - 1 || ++listed > free_blocks) {
                    return cache_fault_set(fault,
                                           "arena: free list runs "
                                           "wild (granule, listed)",
                                           block, listed);
                }
                head = *cache_arena_word(arena, block, 0);
                if ((head & CACHE_ARENA_FREE) == 0
                    || *cache_arena_word(arena, block, 2) != prev) {
                    return cache_fault_set(fault,
                                           "arena: listed block not "
                                           "free or badly linked (granule, "
                                           "flags)",
                                           block, head);
                }
                cache_arena_mapping(head & CACHE_ARENA_SIZE_MASK, &f, &s);
                if (f != fl || s != sl) {
                    return cache_fault_set(fault,
                                           "arena: free block in the "
                                           "wrong list (granule, size)",
                                           block,
                                           head & CACHE_ARENA_SIZE_MASK);
                }
                prev = block;
                block = *cache_arena_word(arena, block, 1);
            }
        }
    }
    if (listed != free_blocks) {
        return cache_fault_set(fault,
                               "arena: free blocks missing from the "
                               "lists (listed, walked)",
                               listed, free_blocks);
    }
    return 0;
}
