/*
 * cache: the shared-memory LRU cache.  One POSIX shm segment, created by
 * the supervisor before it forks and inherited by every worker, holds a
 * header (magic, layout, sizes, lock, per-worker slots and counters), a
 * hash index, fixed entry slots with LRU links, and an arena for key and
 * value bytes.  See cache.c for the locking scheme and why LRU is exact.
 *
 * Every call that takes the lock copies in or out of caller memory; a hit
 * allocates nothing and makes no system call.
 */
#ifndef RCP_CACHE_H
#define RCP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache; /* per-process handle */

struct cache_params {
    uint32_t capacity;         /* keys, >= 1 */
    uint64_t max_memory_bytes; /* key + value bytes in the arena */
    uint64_t max_value_bytes;  /* larger values are not stored */
    uint64_t ttl_ms;           /* global expiry, > 0 */
    uint64_t negative_ttl_ms;  /* expiry of a remembered absent
                                  key; 0: none are stored */
    uint64_t stale_ms;         /* entries are kept this long past
                                  their expiry, answered as
                                  CACHE_STALE; 0: dropped */
    uint32_t worker_slots;     /* lock-holder / counter slots */
    uint64_t lock_timeout_ms;  /* each timed acquisition; 0: 50 */
};

enum cache_status {
    CACHE_HIT = 0,   /* get: value copied out */
    CACHE_STALE,     /* get: past its TTL by less than stale_ms;
                        value copied out as for a HIT */
    CACHE_MISS,      /* get/delete: absent or expired */
    CACHE_TRUNCATED, /* get: value longer than dst_cap; value_len set,
                        nothing copied: grow and call again */
    CACHE_STORED,    /* set: stored (replacing any old value) */
    CACHE_TOO_LARGE, /* set: value over max_value_bytes, key+value
                        over max_memory_bytes, or key over 16 MiB - 1:
                        not stored, any old value left as it was */
    CACHE_DELETED,   /* delete: removed; flush: done */
    CACHE_BYPASS,    /* poisoned, or lock not had in time: act as if
                        there were no cache (answer from Redis) */
    CACHE_PURGED     /* set_since: the key was deleted or the cache
                        flushed after the token was taken: not stored */
};

/* Out fields are set on HIT and STALE unless said otherwise. */
struct cache_lookup {
    void    *dst;         /* in: where the value goes */
    size_t   dst_cap;     /* in */
    size_t   value_len;   /* out: also on TRUNCATED */
    uint64_t age_ms;      /* out: now - stored time */
    uint64_t ttl_left_ms; /* out: HIT: until it expires,
                             by the TTL or Redis' expiry,
                             whichever is sooner; STALE: 0 */
    uint64_t stale_ms;    /* out: STALE: how long ago it
                             expired; HIT: 0 */
    uint64_t etag;        /* out: cache_etag() of the value */
    uint32_t fetch_us;    /* out: what fetching it took */
    bool     negative;    /* out: a remembered absent key
                             (value_len 0; never STALE) */
};

/* What is kept with an entry besides its key and value (cache_store). */
struct cache_entry_info {
    uint64_t etag;        /* cache_etag(value) */
    uint32_t fetch_us;    /* the fetch's duration, for
                             early refresh; saturated */
    bool     negative;    /* an absent key: value_len 0,
                             expires after negative_ttl_ms */
    bool     check_purge; /* store only if purge_token is
                             still the key's (else
                             CACHE_PURGED) */
    uint64_t purge_token; /* cache_purge_token() taken
                             before the fetch was sent */
    uint64_t expire_ms;   /* > 0: the key expires in Redis
                             this long after now_ms: the
                             entry is fresh until then at
                             the latest (if the TTL ends
                             sooner, then) and never stale
                             past it; 0: no such expiry */
};

struct cache_stats {
    uint64_t entries; /* gauge */
    uint64_t bytes;   /* gauge: key + value bytes */
    uint64_t capacity_entries;
    uint64_t capacity_bytes;
    uint64_t hits; /* counters, summed over slots */
    uint64_t misses;
    uint64_t evictions;
    uint64_t expirations;
    uint64_t generation; /* bumped by each recovery */
    bool     poisoned;
};

/*
 * Creates and maps the segment (shm_open with a unique name, ftruncate,
 * mmap, shm_unlink at once) and initialises it.  Returns 0 or -errno; on
 * success *out is owned by the caller (cache_destroy).  The mapping is
 * MAP_SHARED, so children forked afterwards share it.
 */
int cache_create(const struct cache_params *params, struct cache **out);

/* Unmaps this process's view and frees the handle. */
void cache_destroy(struct cache *cache);

/* The table of in-flight markers (cache_inflight.h) made with the
 * cache: one fetch per key across workers.  Borrowed: lives as long as
 * cache.  cache_reap_slot() frees the markers of the process it reaps. */
struct cache_inflight *cache_inflight(struct cache *cache);

/* Total bytes of the segment, for the start-up log line. */
size_t cache_segment_bytes(const struct cache *cache);

/* Called in a freshly forked worker: which slot (0 .. worker_slots-1)
 * this process records its lock state and counters in.  Until called, the
 * process uses slot 0 (tests that use no workers). */
void cache_attach(struct cache *cache, uint32_t slot);

/* Injectable clock, for tests: the *_now_ms arguments below are this
 * clock's milliseconds; production passes CLOCK_MONOTONIC(_COARSE). */
uint64_t cache_clock_ms(void);

/* Changes the global TTL (SIGHUP); entries are judged by the new TTL. */
void cache_set_ttl(struct cache *cache, uint64_t ttl_ms);
/* Changes negative_ttl_ms and stale_ms (SIGHUP), as cache_set_ttl. */
void cache_set_windows(struct cache *cache, uint64_t negative_ttl_ms,
                       uint64_t stale_ms);

/* The value's validator: a 64-bit hash of its bytes (SipHash-1-3 under a
 * fixed key, never the segment's seed), so one value has one ETag in
 * every worker and every proxy.  Pure; computed before any lock. */
uint64_t cache_etag(const void *value, size_t value_len);

enum cache_status cache_get(struct cache *cache, const void *key,
                            size_t key_len, uint64_t now_ms,
                            struct cache_lookup *lookup);

/* cache_store() with info computed here: the value's ETag, no fetch
 * time, not negative. */
enum cache_status cache_set(struct cache *cache, const void *key,
                            size_t key_len, const void *value,
                            size_t value_len, uint64_t now_ms);

/* Stores key with value and info (NULL: as cache_set), replacing any
 * entry of key, fresh or stale; with info->check_purge, only if no purge
 * of key began since info->purge_token was taken (else CACHE_PURGED).  A
 * negative info needs value_len 0 and a negative_ttl_ms; without one it
 * is CACHE_TOO_LARGE (not stored). */
enum cache_status cache_store(struct cache *cache, const void *key,
                              size_t key_len, const void *value,
                              size_t value_len, uint64_t now_ms,
                              const struct cache_entry_info *info);

/* Purge safety for a value fetched from Redis: take the token before
 * the fetch's request is sent, and store with cache_set_since() (or
 * cache_store() with check_purge).  When
 * a cache_delete() of a key hashing like key, or a cache_flush(), began
 * in between, the set is CACHE_PURGED and stores nothing (the value may
 * be older than the purge).  Lock-free; cheap (one hash, two loads). */
uint64_t          cache_purge_token(const struct cache *cache, const void *key,
                                    size_t key_len);
enum cache_status cache_set_since(struct cache *cache, const void *key,
                                  size_t key_len, const void *value,
                                  size_t value_len, uint64_t now_ms,
                                  uint64_t token);

/* CACHE_DELETED, CACHE_MISS, or CACHE_BYPASS; either way fetches in
 * flight for key will not store (cache_set_since).  Takes no clock, so an
 * entry that expired unseen is still DELETED. */
enum cache_status cache_delete(struct cache *cache, const void *key,
                               size_t key_len);

/* CACHE_DELETED or CACHE_BYPASS; either way no fetch in flight will
 * store (cache_set_since). */
enum cache_status cache_flush(struct cache *cache);

/* Reads gauges and sums counters without taking the lock. */
void cache_stats(const struct cache *cache, struct cache_stats *out);

/* Walks every invariant (index and LRU agree, counts and bytes add up, no
 * entry reachable twice).  Takes the write lock.  Returns 0, or -EUCLEAN
 * with a description in err (-EBUSY: poisoned or lock not had in time;
 * -ENOMEM: no memory for its bitmaps). */
int cache_check(struct cache *cache, char *err, size_t err_len);

/*
 * Crash recovery, called by the supervisor only.
 * cache_reap_slot(): the process using slot has died; if its slot was not
 * idle (waiting for or inside the lock) the cache is poisoned.  Returns
 * true when it poisoned the cache.
 * cache_recover(): if poisoned and no slot is waiting or inside, rebuilds
 * the lock and an empty index, bumps the generation and clears the flag;
 * returns 0, or -EBUSY when a live slot is still busy (call again later).
 */
bool cache_reap_slot(struct cache *cache, uint32_t slot);
int  cache_recover(struct cache *cache);
bool cache_poisoned(const struct cache *cache);

/* Test hook: takes the write (or read) lock, waiting as long as it takes
 * unless the cache is poisoned, and never releases it, so a test can
 * kill the process inside the lock. */
void cache_debug_hold_lock(struct cache *cache, bool write);

/* Test hook: the same for the LRU word, taken inside the read side as
 * an apply of the access records holds it while other hits go on. */
void cache_debug_hold_lru_lock(struct cache *cache);

/* Test hook: takes the write lock (or returns at once when it is not had
 * in time), holds it for hold_ms, as a stuck writer would, and releases
 * it: other processes' lock attempts time out meanwhile (CACHE_BYPASS). */
void cache_debug_stall(struct cache *cache, uint64_t hold_ms);

/* Test hook: this process's ring, which must hold no pending record,
 * continues from index at (its indexes run free and wrap past 2^32 after
 * that many records: a test starts it just short of the wrap). */
void cache_debug_ring_at(struct cache *cache, uint32_t at);

#endif
