/*
 * cache_inflight: one fetch per key per proxy.  A table of in-flight
 * markers shared by every worker (as nginx's proxy_cache_lock): the
 * worker that misses a key first claims its marker and fetches it; a
 * miss in another worker finds the marker, waits, and reads the value
 * from the cache once the marker is gone.  See cache_inflight.c for the
 * marker word and why it is crash-safe.
 *
 * Lock-free: every operation is a few atomic loads and compare-and-swaps
 * on the table, plus (for a marker of another process) a kill(pid, 0)
 * made outside any lock to see whether its owner still lives.
 */
#ifndef RCP_CACHE_INFLIGHT_H
#define RCP_CACHE_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache_inflight; /* per-process handle */

/* Markers in the table: a key uses the one its hash names. */
#define CACHE_INFLIGHT_SLOTS 4096u

enum cache_inflight_claim {
    CACHE_INFLIGHT_OWNER = 0, /* the marker is now ours: fetch the key,
                                 store it, then release the marker */
    CACHE_INFLIGHT_WAIT,      /* another live process fetches the key:
                                 poll cache_inflight_held() */
    CACHE_INFLIGHT_NONE       /* the marker holds another key, or one
                                 of ours: fetch without one */
};

/* Which marker a claim saw or made; the caller keeps it. */
struct cache_inflight_mark {
    uint32_t slot;
    uint64_t word; /* owner pid, sequence, key tag */
};

/* Maps the table (MAP_SHARED | MAP_ANONYMOUS, so children forked later
 * share it) with a random hash seed.  0 or -errno; *out is the caller's
 * (cache_inflight_destroy). */
int  cache_inflight_create(struct cache_inflight **out);
void cache_inflight_destroy(struct cache_inflight *t);

/*
 * A miss of key by process pid at now_ms, whose fetch gives up after
 * timeout_ms: claims the key's marker when it is free, or when its owner
 * is dead or past its deadline (a takeover); WAIT when another live
 * process holds it within its deadline.  *mark says which marker, for
 * cache_inflight_held() and cache_inflight_release().
 */
enum cache_inflight_claim
cache_inflight_claim(struct cache_inflight *t, const void *key, size_t key_len,
                     uint32_t pid, uint64_t now_ms, uint64_t timeout_ms,
                     struct cache_inflight_mark *mark);

/* Whether the marker a WAIT saw is still held by a live owner within its
 * deadline.  False once it was released, taken over, or its owner died
 * or overran: look in the cache, then claim again. */
bool cache_inflight_held(const struct cache_inflight      *t,
                         const struct cache_inflight_mark *mark,
                         uint64_t                          now_ms);

/* The owner's fetch ended (stored or not): frees the marker unless
 * another process took it over meanwhile. */
void cache_inflight_release(struct cache_inflight            *t,
                            const struct cache_inflight_mark *mark);

/* Supervisor: process pid died; frees every marker it held, so its
 * waiters look again at once.  Returns how many. */
unsigned cache_inflight_reap(struct cache_inflight *t, uint32_t pid);

#endif
