/*
 * cache: owns the shared-memory segment that every worker reads and fills:
 * its layout, the hash index, the LRU list, the lock protocol, crash
 * recovery and the counters.  The allocator for key+value bytes is in
 * cache_arena.c.
 *
 * Layout, fixed at creation (offsets in the header, each region aligned to
 * a cache line; links are uint32 slot indexes, arena places are granule
 * offsets, never pointers, so any process may map the segment anywhere):
 *
 *   0                header: magic, layout version, sizes, region offsets,
 *                    hash seed; the gate line (writer word, LRU word,
 *                    poisoned flag, ttl, generation, sleepers on the
 *                    writer word); gauges, free list and LRU ends
 *   workers_offset   worker_slots x 128 bytes, two lines each: the read
 *                    line (the reader flag, hit counters, its ring's
 *                    tail and head) and the write line (writer and LRU
 *                    lock state, pid, eviction counters)
 *   rings_offset     worker_slots x CACHE_RING x 16 bytes: each slot's
 *                    ring of access records (entry slot, stamp)
 *   lru_offset       capacity x 8 bytes: each entry slot's LRU links
 *   purges_offset    CACHE_PURGE_SLOTS x uint64: purge epochs, bumped by
 *                    a delete of any key hashing to the slot (see Purges)
 *   buckets_offset   bucket_count x uint32 (power of two >= capacity):
 *                    first slot of each hash chain
 *   entries_offset   capacity x 32-byte entry slots: stored time, key
 *                    length + hash tag, value length, arena block, chain
 *                    link
 *   arena_offset     cache_arena: max_memory_bytes + 32 per entry; each
 *                    entry's block is its meta (ETag, fetch time,
 *                    negative flag, Redis' expiry: 24 bytes, outside
 *                    the byte budget),
 *                    then its key, then its value
 *
 * Invariants (cache_check() walks them all): each live entry is in exactly
 * one hash chain, the one its key hashes to, and exactly once in the LRU
 * list, whose prev/next links (in the slot's LRU links) agree; every other
 * slot is on the free list; the arena block of each live entry is a used block
 * of its own, large enough for its meta, key and value, and the arena has no
 * other used block; the entries and bytes gauges equal the count and key+value
 * bytes of the live entries, and never exceed capacity and max_memory_bytes.
 *
 * Locking.  A "big reader" lock made of the worker slots (Linux's brlock,
 * with one reader flag per process instead of per CPU): the read side is
 * this process's own slot saying INSIDE_READ, so a reader writes only its
 * own cache line; the write side is the writer word in the gate line
 * (the holder's pid, taken by compare-and-swap) plus a wait until no slot
 * says INSIDE_READ.  A reader stores INSIDE_READ and then loads the
 * writer word; a writer stores the writer word and then loads the slots
 * (all seq_cst, Dekker-style), so either the reader sees the writer and
 * steps back to WAITING until the word is free again, or the writer sees
 * the reader and waits for it to leave.  Writers win: a reader never
 * enters while the word is held.  Waits spin, then sleep on the writer
 * word (futex, woken by its release) or, for a writer waiting for
 * readers to leave, sched_yield(); all give up after lock_timeout_ms
 * (CACHE_BYPASS).  cache_get takes the read side; set, delete, flush,
 * expiry and eviction the write side.
 *
 * The LRU lock is a third word, lru_pid (the holder's pid, taken by
 * compare-and-swap, waited for by spinning and yielding, timed like the
 * rest), taken inside the read side (lock order: read side, LRU word).
 * It guards the LRU links, the list's ends and the ring heads against
 * other applies; the write side, which waits for every reader, has them
 * to itself without it.  A get takes it to apply the rings, so other
 * processes' hits go on meanwhile: a hit reads none of what it guards.
 * Only gets take it, and writers never do, so an insert pays nothing
 * for it.
 *
 * The LRU list and hits.  A hit does not splice its entry: it appends an
 * access record (entry slot, stamp) to its own slot's ring, and a hit on
 * the entry it recorded last, while that record is not consumed, only
 * moves that record's stamp.  Records are applied to the list by
 * cache_apply_locked, merged in stamp order, each moving its entry to the
 * head: all of them by every acquisition of the write side, and by a get
 * whose ring holds CACHE_RING_SOFT records, under the LRU lock, before
 * its lookup (if the lock is free; once the ring is full, CACHE_RING, it
 * waits for it).  That apply runs while other readers append:
 * it takes a cut, a stamp, before it reads the ring tails, applies only
 * records stamped before the cut, and applies each ring's last record
 * but does not consume it, since its owner may restamp it; the slot's
 * ring_applied keeps the stamp it was applied with, and the next apply
 * skips it unless the stamp has moved (once a later record follows it,
 * it is consumed).  The write side consumes everything.
 *
 *   get:  stamp (and a cut) -> read side -> (ring half full? LRU word,
 *                apply up to the cut, free it) -> find
 *                -> record in own ring -> copy value -> unlock
 *   set:  (prefetch its bucket) -> write side
 *                -> apply all rings -> unlink old -> evict expired tail
 *                -> evict LRU tail until count, bytes and arena fit
 *                   (a tail whose block is just the size needed and
 *                   whose bytes are no fewer: take its slot and block)
 *                -> link at head -> unlock
 *
 * Inserts stay serial: the tail, the arena and the gauges are one, so two
 * processes inserting at once are not faster together than one (see
 * bench/README.md: on the development VM a cache line takes 40 to 190 ns
 * to move between the two CPUs, as the hypervisor places them, and an
 * insert that evicts what another process stored must move several;
 * sharding the index and the LRU, with the global order kept by stamps,
 * measured no faster with two processes and a quarter slower with one).  What
 * the write side holds for an insert is kept short instead: the key's bucket
 * is fetched while the lock is awaited, evicting into a full cache of
 * like-sized values frees and allocates nothing, the evicted entry's chain
 * comes from the hash bits kept in its slot (no key read or hashed), and
 * writers never touch the LRU word.  Each insert still moves, when the
 * other process inserted last, the gate line, the gauges line and the LRU
 * head's links: with two processes inserting, 400 to 500 ns of CPU per
 * insert against 140 alone (bench/README.md, third round).
 *
 * Shared cache lines, and who writes them:
 *   header, fixed part     cache_create only
 *   gate line              writer word: each write-side acquisition and
 *                          release; LRU word: each apply under the LRU
 *                          lock (twice per CACHE_RING_SOFT records of a
 *                          ring);
 *                          word_waiters: processes that sleep on the
 *                          writer word; poisoned: reaper and recovery;
 *                          ttl: SIGHUP; generation: recovery.  Hits only
 *                          read it.
 *   gauges, free list,     the write side; the list's ends also an
 *   LRU ends               apply under the LRU lock
 *   buckets, entries,      the write side (hits read them)
 *   arena
 *   LRU links              applies under the LRU lock and the write
 *                          side; no hit reads them
 *   slot s, read line      its process, on every get (read_state,
 *                          hits, misses, ring_tail); the LRU lock holder
 *                          writes ring_head and ring_applied when it
 *                          applies the ring; every writer reads it
 *   slot s, write line     its process, on every set, delete, flush and
 *                          apply (state, evictions, expirations); nobody
 *                          else but the reaper, which also sets both
 *                          states IDLE after the process died
 *   ring of slot s         its process (hits); the LRU lock holder reads
 *                          it
 * So a hit writes its own slot line and its own ring, nothing that a hit
 * of another process writes, for any key, and nothing that another
 * process's apply writes but ring_head (once per apply).  Applies,
 * amortised over CACHE_RING_SOFT hits, write the LRU links, the list's
 * ends and, to take and free the LRU word, the gate line; every insert,
 * delete and flush writes under the write side.
 *
 * Why the LRU order is exact.  Take two hits A and B where A's get
 * returned before B's began (a sequential client, whichever workers
 * serve it): B must end up nearer the head than A, as a splice at each
 * hit would leave it.  Each get takes its stamp after it begins and
 * before it returns, from a clock that is the same on every CPU
 * (cache_stamp), so stamps follow real time and A's is the earlier; A
 * wrote its record before it returned.  Look at the apply that applies
 * B's record (the list only changes under the write side or the LRU
 * lock, which exclude each other since an apply is a reader, so applies
 * are one at a time).  Under the write side no reader is inside, so every
 * ring is complete: A's record is there, unless an earlier apply applied
 * it.  Under the LRU lock, B's record was stamped before the cut,
 * which was taken before the ring tails were read; A's record was
 * written before B's stamp was taken, so before the tails were read, and
 * is there too, unless applied earlier.  Either way, if one apply applies
 * both, the merge puts B after A by stamp; else A's went first.  A
 * record left for later (at or past the cut) is newer than all applied
 * with it by the same rule.  A ring's last record, applied but kept, may
 * be applied again only with a new stamp, i.e. for a later hit of the
 * same entry: an entry's place depends only on its latest access, so
 * moving a record's stamp, or applying it once per stamp, is the same as
 * a record per hit.  Its owner restamps it only while it is not
 * consumed, and only the write side, with no reader inside, consumes a
 * ring's last record, so no restamp is lost.  Inserts and removals happen
 * after the write side's apply, so they fall between the hits applied
 * before and after them, which is their real order for a sequential
 * client.  A TRUNCATED or expired get records nothing.  So the tail is
 * always the entry read (or stored) least recently.  Records never name a
 * freed entry: freeing needs the write side, which consumes them all
 * first; flush and recovery empty the rings with the index.
 *
 * Under the lock there are loads, stores and memcpy, nothing else: the
 * hash and the stamp are computed before, counters are added and errors
 * formatted after.  Only a wait to get in reads the clock, yields or
 * sleeps, before the lock is had (one wait is inside the read side: a
 * get whose ring is full waits there for the LRU word, whose holder is
 * itself a reader, so it stalls writers no longer than that holder
 * does), and the wake-up of sleepers follows the release.  Each
 * function that locks unlocks in the same function, through one
 * `unlock:` label.
 *
 * Crash safety.  No lock here is kernel-known: a process killed inside
 * one leaves its slot saying so (and, for a writer or an apply, the
 * writer word or the LRU word holding its pid), and everyone else waits
 * for it until their timeout (an apply that died stops writers and
 * other applies, not hits).  Each process's slot states (read_state in
 * its read line, state in its write line), set with sequentially
 * consistent stores, are what the supervisor reads when it reaps the
 * process:
 *
 *   read:   IDLE -> INSIDE_READ -> (poisoned? IDLE, BYPASS) -> (writer
 *           word held? WAITING until free, then again) -> (apply: LRU
 *           word, apply, free it) -> unlock -> IDLE      (read_state)
 *   write:  IDLE -> WAITING -> (poisoned? IDLE, BYPASS) -> writer word
 *           -> wait for readers -> INSIDE_WRITE -> unlock -> IDLE
 *                                                        (state)
 *
 * Every wait is timed (lock_timeout_ms from a CLOCK_MONOTONIC_COARSE
 * reading, so up to one tick shorter) and a timeout is CACHE_BYPASS.  When
 * the supervisor reaps a process whose slot was not IDLE (inside either
 * side, with or without the LRU word, holding the writer word while
 * waiting for readers, or waiting for a writer or for the LRU word), it
 * sets poisoned (cache_reap_slot).  cache_recover() then
 * waits until no slot is WAITING or INSIDE, clears both words,
 * empties the index, LRU, rings and arena, bumps the generation and
 * clears poisoned.  That is safe because a process makes its slot busy
 * before it reads poisoned and recovery sets poisoned before it reads the
 * slots (both seq_cst, Dekker-style): either recovery
 * sees the slot busy and waits, or the process sees poisoned and never
 * touches the lock being rebuilt.  A process that dies outside the lock
 * leaves its ring complete; the next apply applies it, and the next
 * process in that slot goes on appending to it.  Counters live in the
 * worker slots and survive recovery.
 *
 * Expiry: the caller's now_ms (cache_clock_ms() in production, a fake
 * clock in tests) against stored_ms and the header's windows, read before
 * the lock (cache_age_class): an entry is fresh for ttl_ms (a negative
 * one, a remembered absent key, for negative_ttl_ms), then stale for
 * stale_ms (never a negative one), then gone.  An entry fetched with
 * Redis' remaining time to live (its PTTL, cache_entry_info.expire_ms)
 * keeps that as an expiry of its own in its meta: it is fresh until
 * the earlier of the two and never stale past Redis' expiry, so it
 * never outlives the key in Redis.  A stale entry is answered
 * CACHE_STALE with its value, like a hit (its access is recorded: it was
 * read), so the caller can serve it while it refreshes or while Redis
 * fails; a gone one is a MISS as if never stored, and the get that sees
 * it retakes the write side and removes it if it is still gone, and a
 * set first drops gone entries from the LRU tail.  Expirations are
 * counted where an entry is removed, so each counts once.  Stale entries
 * are live entries: they count against capacity and the byte budget and
 * are evicted in LRU order like any other.  Nothing is ever marked
 * invalid: a delete, a flush or a recovery removes the entry, so an
 * invalidated key can never be answered stale.
 *
 * Meta: the ETag (cache_etag: SipHash-1-3 under a fixed key, so every
 * worker and proxy agree) is computed by the caller or by cache_store
 * before the lock, and copied into the block with the key and value.
 *
 * Purges.  A fetch from Redis can be in flight while its key is deleted
 * or the cache flushed; storing its answer afterwards would undo the
 * purge with a value Redis may no longer hold.  So every purge bumps an
 * epoch: cache_delete() the key's slot of the purge table (by the key's
 * hash; keys sharing a slot share its epoch), cache_flush() the flush
 * epoch in the gate line.  cache_purge_token() (no lock: two atomic
 * loads) sums the key's slot and the flush epoch; both only grow, so the
 * sum changes exactly when either does.  A fetcher takes the token
 * before it sends its GET, and cache_set_since() compares it under the
 * write side: a different token means a purge began since, and the value
 * is not stored (CACHE_PURGED).  The bump is an atomic add made before
 * the purge asks for the lock, so it also counts when the purge times
 * out (BYPASS): any set that takes the lock after the bump sees it; a set
 * that took it before stored a value the purge then removes.  The table
 * is outside the index, so flush and recovery leave it (an epoch going
 * back could let a stale token match again).
 *
 * Hash: SipHash-1-3 with a per-segment random key (clients choose keys, so
 * collisions must not be predictable).  The top 8 bits are kept in the
 * slot as a tag beside the 24-bit key length, so a chain walk rarely
 * touches the arena for a key that does not match; keys over 16 MiB - 1
 * are CACHE_TOO_LARGE.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sched.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif
#include <linux/futex.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "cache_arena.h"
#include "cache_inflight.h"
#include "cache_check.h"
#include "etag.h"
#include "siphash.h"

#define CACHE_MAGIC           UINT64_C(0x4548434143504352) /* RCPCACHE */
#define CACHE_LAYOUT_VERSION  5u
#define CACHE_NIL             UINT32_MAX
#define CACHE_KEY_MAX         ((1u << 24) - 1)
#define CACHE_LINE            64u
#define CACHE_CAPACITY_MAX    (1u << 31)
#define CACHE_LOCK_TIMEOUT_MS 50u
#define CACHE_SPINS           256u
/* A sleep on the writer word lasts at most this, so the deadline, read
 * from the coarse clock, is looked at again soon enough. */
#define CACHE_WAIT_SLEEP_NS 2000000L
/* Access records per worker slot (a power of two): a reader whose ring
 * is full applies the rings (under the LRU lock) before its next
 * lookup. */
#define CACHE_RING 512u
/* From this many pending records a get applies them if the LRU lock is
 * free at once; at CACHE_RING it waits for the lock. */
#define CACHE_RING_SOFT 256u
/* How many records ahead an apply fetches the LRU neighbours. */
#define CACHE_APPLY_AHEAD 4u
/* An entry's block starts with its struct cache_meta_shm, then the key,
 * then the value; the meta bytes are outside the byte budget (like the
 * block header), so the arena reserves them per entry. */
#define CACHE_META_BYTES    24u
#define CACHE_META_NEGATIVE 1u
/* Purge epochs (a power of two): a delete makes fetches in flight for
 * the keys of its slot, 1 in CACHE_PURGE_SLOTS of all keys, not store. */
#define CACHE_PURGE_SLOTS 4096u

enum cache_worker_state {
    CACHE_WORKER_IDLE = 0,
    CACHE_WORKER_WAITING,
    CACHE_WORKER_INSIDE_READ,
    CACHE_WORKER_INSIDE_WRITE,
};

enum cache_lock_mode {
    CACHE_LOCK_READ,
    CACHE_LOCK_WRITE,
};

/* One per worker process, two lines; written only by that process (the
 * states also by the supervisor once the process is dead, the ring head
 * by the LRU lock holder), read by anyone.  The read line is what every
 * writer scans for readers; the write line is what the process writes
 * when it writes (state, counters), so a process that only stores moves
 * no line that the other writers read. */
struct cache_worker_shm {
    /* The read line: written by gets. */
    uint32_t read_state; /* enum cache_worker_state: IDLE,
                            WAITING (for a writer), INSIDE_READ */
    uint32_t ring_tail;  /* records ever appended to this
                            slot's ring (free-running): by the
                            owner inside the read side; atomic */
    uint64_t hits;       /* counters: gets answered HIT */
    uint64_t misses;     /* gets answered MISS */
    uint32_t ring_head;  /* first record not consumed: by the
                            LRU lock holder; atomic */
    uint32_t pad0;
    uint64_t ring_applied; /* the stamp the record at ring_head
                              was applied with, while it stays
                              (it is the ring's last); 0: not
                              applied.  By the LRU lock holder */
    uint8_t  pad1[24];

    /* The write line: written by sets, deletes, flushes, applies. */
    uint32_t state;       /* enum cache_worker_state: IDLE, WAITING,
                             INSIDE_WRITE */
    uint32_t pid;         /* last process attached */
    uint64_t evictions;   /* entries dropped for room */
    uint64_t expirations; /* entries dropped for age */
    uint8_t  pad2[40];
};

/* One hit not yet applied to the LRU list: entry slot and when. */
struct cache_access_shm {
    uint64_t stamp; /* cache_stamp() at the hit */
    uint32_t slot;  /* entry slot */
    uint32_t pad;
};

/* At the start of each entry's arena block; read and written with
 * memcpy, since a block's payload is only 4-byte aligned. */
struct cache_meta_shm {
    uint64_t etag;       /* cache_etag() of the value */
    uint32_t fetch_us;   /* the fetch that stored it took */
    uint32_t flags;      /* CACHE_META_NEGATIVE */
    uint64_t expires_ms; /* cache clock: Redis' own expiry of
                            the key (its PTTL when fetched);
                            0: none, the TTL alone */
};

/* The windows an entry is judged by, read once per operation before the
 * lock. */
struct cache_times {
    uint64_t ttl_ms;
    uint64_t negative_ttl_ms;
    uint64_t stale_ms;
};

/* Where an entry stands, by its age (cache_age_class). */
enum cache_age {
    CACHE_AGE_FRESH = 0, /* a HIT */
    CACHE_AGE_STALE,     /* past its TTL, within stale_ms */
    CACHE_AGE_GONE       /* past both: a MISS, to remove */
};

/* What a hit reads, and only the write side writes.  32 bytes, so an
 * entry never straddles two lines. */
struct cache_entry_shm {
    uint64_t stored_ms;   /* cache clock when set */
    uint32_t key_len_tag; /* key bytes (bits 0-23), hash tag */
    uint32_t value_len;   /* bytes */
    uint32_t block;       /* arena block; CACHE_NIL: slot free */
    uint32_t chain_next;  /* next in the chain, or free list */
    uint32_t hash_low;    /* low 32 bits of the key's hash, so
                             an eviction finds the chain without
                             reading or hashing the key */
    uint32_t unused;      /* zero */
};

/* An entry's place in the LRU list, apart from the entry so that
 * applying access records (under the LRU lock, while hits go on) writes
 * no line a hit reads. */
struct cache_lru_shm {
    uint32_t prev; /* towards the head (more recent) */
    uint32_t next; /* towards the tail (less recent) */
};

struct cache_hdr_shm {
    /* Fixed at creation. */
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_bytes;
    uint64_t segment_bytes;
    uint64_t max_memory_bytes;
    uint64_t max_value_bytes;
    uint64_t lock_timeout_ms;
    uint64_t hash_seed[2];
    uint64_t workers_offset;
    uint64_t rings_offset;
    uint64_t lru_offset;
    uint64_t purges_offset;
    uint64_t buckets_offset;
    uint64_t entries_offset;
    uint64_t arena_offset;
    uint64_t arena_bytes;
    uint32_t capacity;
    uint32_t bucket_count;
    uint32_t worker_slots;
    uint32_t stamp_tsc; /* 1: stamps are the TSC, 0: clock */

    /* The gate: read by every lock acquisition; written by writers
     * (writer_pid) and by the reaper and recovery (poisoned).  ttl_ms is
     * read by every operation and written by SIGHUP. */
    _Alignas(CACHE_LINE) uint32_t writer_pid; /* write side holder, 0 */
    uint32_t poisoned;                        /* seq_cst; 1: bypass */
    uint64_t ttl_ms;                          /* atomic */
    uint64_t generation;                      /* atomic; +1 per recovery */
    uint64_t negative_ttl_ms;                 /* atomic, as ttl_ms */
    uint64_t stale_ms;                        /* atomic, as ttl_ms */
    uint32_t word_waiters;                    /* asleep on writer_pid */
    uint32_t lru_pid;                         /* LRU lock holder, 0 */
    uint64_t flush_epoch;                     /* atomic; +1 per flush */

    /* Written under the write side (the gauges, read lock-free, and the
     * free list) and under the LRU lock (the list's ends). */
    _Alignas(CACHE_LINE) uint64_t entries; /* gauge, atomic */
    uint64_t bytes;                        /* gauge: key+value, atomic */
    uint32_t free_head;                    /* free slots via chain_next */
    uint32_t pad1;
    uint32_t lru_head; /* most recently used */
    uint32_t lru_tail; /* next to evict */
};

_Static_assert(sizeof(struct cache_worker_shm) == 2 * CACHE_LINE
                   && offsetof(struct cache_worker_shm, state) == CACHE_LINE,
               "a worker slot is a read line and a write line");
_Static_assert(sizeof(struct cache_access_shm) == 16,
               "access records are 16 bytes");
_Static_assert(sizeof(struct cache_entry_shm) == 32,
               "entry slots are 32 bytes");
_Static_assert(sizeof(struct cache_lru_shm) == 8, "LRU links are 8 bytes");
_Static_assert(sizeof(struct cache_meta_shm) == CACHE_META_BYTES,
               "entry meta is CACHE_META_BYTES");
_Static_assert((CACHE_RING & (CACHE_RING - 1)) == 0,
               "a ring is a power of two records");
_Static_assert(sizeof(struct cache_hdr_shm) % CACHE_LINE == 0
                   && sizeof(struct cache_hdr_shm) <= 512,
               "header is whole cache lines");
_Static_assert(sizeof(struct cache_arena_shm) % CACHE_ARENA_GRANULE == 0,
               "arena control keeps blocks aligned");

/* Where the merge of the rings stands in one ring (cache_apply_locked). */
struct cache_cursor {
    uint64_t stamp; /* of the record at pos, as read */
    uint32_t ring;  /* worker slot */
    uint32_t pos;   /* next record of that ring (free-running) */
    uint32_t end;   /* its ring_tail when the apply began */
    uint32_t pad;
};

/* Per process; the pointers are computed once from the header offsets. */
struct cache {
    struct cache_hdr_shm    *hdr; /* owned: the mapping */
    size_t                   segment_bytes;
    struct cache_worker_shm *worker;  /* borrowed: slot in the mapping */
    struct cache_worker_shm *workers; /* borrowed: in the mapping */
    struct cache_access_shm *rings;   /* borrowed: in the mapping */
    struct cache_access_shm *ring;    /* borrowed: this slot's ring */
    struct cache_lru_shm    *lru;     /* borrowed: in the mapping,
                                         capacity links */
    uint64_t                *purges;  /* borrowed: in the mapping,
                                         CACHE_PURGE_SLOTS epochs */
    struct cache_cursor     *merge;   /* owned: worker_slots cursors */
    uint32_t                *order;   /* owned: worker_slots x CACHE_RING
                                         entry slots, merged */
    uint32_t                *buckets; /* borrowed: in the mapping */
    struct cache_entry_shm  *entries; /* borrowed: in the mapping */
    struct cache_arena_shm  *arena;   /* borrowed: in the mapping */
    uint64_t                 seed[2];
    uint64_t                 max_memory_bytes;
    uint64_t                 max_value_bytes;
    uint64_t                 lock_timeout_ms;
    uint32_t                 capacity;
    uint32_t                 bucket_mask;
    uint32_t                 worker_slots;
    bool                     stamp_tsc;
    struct cache_inflight   *inflight; /* owned: its own mapping (see
                                          cache_inflight.c) */
};

/* ---- process id --------------------------------------------------------- */

/* getpid() is a real system call (glibc no longer caches it) and was 40%
 * of a set; the writer's pid is kept here, set once and refreshed in
 * every fork() child.  Process-wide, so a static. */
static pthread_once_t cache_pid_once = PTHREAD_ONCE_INIT;
static uint32_t       cache_pid_self;
static bool           cache_pid_tracked; /* atfork handler registered */

static void
cache_pid_refresh(void)
{
    cache_pid_self = (uint32_t) getpid();
}

static void
cache_pid_init(void)
{
    cache_pid_refresh();
    cache_pid_tracked = pthread_atfork(NULL, NULL, cache_pid_refresh) == 0;
}

static uint32_t
cache_pid(void)
{
    return cache_pid_tracked ? cache_pid_self : (uint32_t) getpid();
}

/* ---- hashing ---------------------------------------------------------- */

/* SipHash-1-3 under the segment's seed (siphash.h). */
static uint64_t
cache_hash(const uint64_t seed[2], const void *key, size_t len)
{
    return siphash13(seed, key, len);
}

static inline uint32_t
cache_key_len_tag(uint64_t hash, size_t key_len)
{
    return (uint32_t) (hash >> 56) << 24 | (uint32_t) key_len;
}

/* ---- small helpers ---------------------------------------------------- */

static inline struct cache_entry_shm *
cache_entry(const struct cache *cache, uint32_t i)
{
    assert(i < cache->capacity);
    return &cache->entries[i];
}

static inline uint32_t
cache_entry_key_len(const struct cache_entry_shm *e)
{
    return e->key_len_tag & CACHE_KEY_MAX;
}

/* The key, then the value, after the meta. */
static inline unsigned char *
cache_entry_data(const struct cache *cache, const struct cache_entry_shm *e)
{
    return cache_arena_data(cache->arena, e->block) + CACHE_META_BYTES;
}

static inline void
cache_entry_meta(const struct cache *cache, const struct cache_entry_shm *e,
                 struct cache_meta_shm *out)
{
    memcpy(out, cache_arena_data(cache->arena, e->block), sizeof(*out));
}

static inline void
cache_times_load(const struct cache_hdr_shm *hdr, struct cache_times *t)
{
    t->ttl_ms = __atomic_load_n(&hdr->ttl_ms, __ATOMIC_RELAXED);
    t->negative_ttl_ms =
        __atomic_load_n(&hdr->negative_ttl_ms, __ATOMIC_RELAXED);
    t->stale_ms = __atomic_load_n(&hdr->stale_ms, __ATOMIC_RELAXED);
}

/* Judges an entry stored at stored_ms with meta at now_ms: a negative
 * entry lives negative_ttl_ms and is never stale (a remembered 404 is
 * not worth serving past its time); any other lives ttl_ms, then is
 * stale for stale_ms.  Either lives no longer than meta->expires_ms,
 * Redis' own expiry of the key: the entry is fresh until the earlier of
 * the two and never stale past Redis' (the key is gone from Redis
 * then, so no window may serve it).  *age_ms (since stored) and *left_ms
 * (before expiry, or, once past it, since) are set for the caller. */
static inline enum cache_age
cache_age_class(const struct cache_times *t, uint64_t stored_ms,
                const struct cache_meta_shm *meta, uint64_t now_ms,
                uint64_t *age_ms, uint64_t *left_ms)
{
    bool     negative = (meta->flags & CACHE_META_NEGATIVE) != 0;
    uint64_t ttl_ms = negative ? t->negative_ttl_ms : t->ttl_ms;
    uint64_t until_ms = stored_ms + ttl_ms;

    if (meta->expires_ms != 0 && meta->expires_ms < until_ms) {
        until_ms = meta->expires_ms;
    }
    *age_ms = now_ms > stored_ms ? now_ms - stored_ms : 0;
    if (now_ms < until_ms) {
        *left_ms = until_ms - now_ms;
        return CACHE_AGE_FRESH;
    }
    *left_ms = now_ms - until_ms;
    if (!negative && *left_ms < t->stale_ms
        && (meta->expires_ms == 0 || now_ms < meta->expires_ms)) {
        return CACHE_AGE_STALE;
    }
    return CACHE_AGE_GONE;
}

/* cache_age_class() of slot i, reading its meta. */
static inline enum cache_age
cache_entry_age(const struct cache *cache, const struct cache_times *t,
                const struct cache_entry_shm *e, uint64_t now_ms)
{
    struct cache_meta_shm meta;
    uint64_t              age_ms, left_ms;

    cache_entry_meta(cache, e, &meta);
    return cache_age_class(t, e->stored_ms, &meta, now_ms, &age_ms, &left_ms);
}

/* One writer per counter or gauge, so load + store, not read-modify-write
 * (no lock prefix); the atomics only keep lock-free readers from tearing. */
static inline void
cache_add(uint64_t *counter, uint64_t delta)
{
    __atomic_store_n(counter,
                     __atomic_load_n(counter, __ATOMIC_RELAXED) + delta,
                     __ATOMIC_RELAXED);
}

static inline uint64_t
cache_load(const uint64_t *gauge)
{
    return __atomic_load_n(gauge, __ATOMIC_RELAXED);
}

uint64_t
cache_clock_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0
        && clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/*
 * The access stamp orders hits of different processes in the LRU list, so
 * it must come from one clock that every CPU reads alike and that moves
 * between any two accesses a sequential client makes (microseconds apart
 * when they go through different workers).  The TSC is that clock when
 * the kernel uses it as its clocksource (it checks that the CPUs' TSCs
 * agree and are invariant, and drops it otherwise).  Plain RDTSC may run
 * a little before the instructions ahead of it, but not before the
 * system call that brought the request in nor after the one that sends
 * the answer (both serialise), and that is the order a client sees;
 * within one process the ring keeps program order anyway (RDTSCP would
 * cost twice as much, 19 ns against 10 here).  Anywhere else,
 * CLOCK_MONOTONIC.  A stamp is taken before the lock, so even a
 * clock_gettime() that is a real system call stays out of it.
 */
static bool
cache_tsc_is_clocksource(void)
{
#if defined(__x86_64__)
    char  name[32] = "";
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
                    "current_clocksource",
                    "re");

    if (f == NULL) {
        return false;
    }
    if (fgets(name, sizeof(name), f) == NULL) {
        name[0] = '\0';
    }
    (void) fclose(f); /* read-only: nothing to lose */
    return strcmp(name, "tsc\n") == 0;
#else
    return false;
#endif
}

static inline uint64_t
cache_stamp(const struct cache *cache)
{
    struct timespec ts;

#if defined(__x86_64__)
    if (cache->stamp_tsc) {
        return __rdtsc();
    }
#else
    (void) cache;
#endif
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* A stamp taken before every load that follows it (an apply's cut: see
 * cache_apply_locked). */
static inline uint64_t
cache_stamp_fenced(const struct cache *cache)
{
    uint64_t stamp;

#if defined(__x86_64__)
    if (cache->stamp_tsc) {
        _mm_lfence();
        stamp = __rdtsc();
        _mm_lfence(); /* no later load runs before the read */
        return stamp;
    }
#endif
    stamp = cache_stamp(cache);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return stamp;
}

static void cache_apply_locked(struct cache *cache, uint64_t cut, bool all);

/* ---- locking ---------------------------------------------------------- */

static inline void
cache_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * A wait for a lock word to change: CACHE_SPINS spins, then sched_yield()
 * until lock_timeout_ms has passed.  The clock is read only once the
 * spinning is over, so an uncontended lock costs no clock reading.
 * Waiting is not holding: no cache lock is held by the waiter, or, for a
 * writer waiting for readers to leave, only the writer word, which keeps
 * new readers out but lets nothing in the segment change.
 */
struct cache_wait {
    uint64_t deadline_ms; /* 0 until the spinning is over */
    uint32_t spins;
};

static bool
cache_wait_more(const struct cache *cache, struct cache_wait *w)
{
    uint64_t now_ms;

    if (w->spins < CACHE_SPINS) {
        w->spins++;
        cache_cpu_relax();
        return true;
    }
    now_ms = cache_clock_ms();
    if (w->deadline_ms == 0) {
        w->deadline_ms = now_ms + cache->lock_timeout_ms;
    } else if (now_ms >= w->deadline_ms) {
        return false;
    }
    (void) sched_yield(); /* cannot fail on Linux */
    return true;
}

/*
 * A wait for the writer word to stop holding `held`: CACHE_SPINS spins,
 * then sleeps in the kernel on the word (FUTEX_WAIT, not private: the
 * segment is MAP_SHARED between processes) rather than burning a CPU the
 * holder may need, until lock_timeout_ms has passed.  word_waiters tells
 * the releaser to wake sleepers; it and the word form a Dekker pair
 * (seq_cst), and the kernel rechecks the word before sleeping, so no
 * wake-up is lost.  The writer word is 32 bits for that reason.
 */
static bool
cache_wait_word(const struct cache *cache, struct cache_wait *w, uint32_t held)
{
    struct cache_hdr_shm *hdr = cache->hdr;
    struct timespec       ts;
    uint64_t              now_ms;

    if (w->spins < CACHE_SPINS) {
        w->spins++;
        cache_cpu_relax();
        return true;
    }
    now_ms = cache_clock_ms();
    if (w->deadline_ms == 0) {
        w->deadline_ms = now_ms + cache->lock_timeout_ms;
    } else if (now_ms >= w->deadline_ms) {
        return false;
    }
    /* The coarse clock may lag a tick: sleep at most that at a time. */
    ts.tv_sec = 0;
    ts.tv_nsec = CACHE_WAIT_SLEEP_NS;
    __atomic_add_fetch(&hdr->word_waiters, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&hdr->writer_pid, __ATOMIC_SEQ_CST) == held) {
        /* EAGAIN (changed), EINTR, ETIMEDOUT: all mean look again. */
        (void) syscall(SYS_futex, &hdr->writer_pid, FUTEX_WAIT, held, &ts,
                       NULL, 0);
    }
    __atomic_sub_fetch(&hdr->word_waiters, 1, __ATOMIC_SEQ_CST);
    return true;
}

/* Frees the writer word, then wakes whoever sleeps on it: the wake-up is
 * a system call, made after the lock is gone and only when someone
 * waits. */
static void
cache_word_release(struct cache_hdr_shm *hdr)
{
    __atomic_store_n(&hdr->writer_pid, 0, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&hdr->word_waiters, __ATOMIC_SEQ_CST) != 0) {
        (void) syscall(SYS_futex, &hdr->writer_pid, FUTEX_WAKE, INT32_MAX,
                       NULL, NULL, 0);
    }
}

static inline uint32_t
cache_read_state_load(const struct cache_worker_shm *w)
{
    return __atomic_load_n(&w->read_state, __ATOMIC_SEQ_CST);
}

/* Read side: this process's slot says INSIDE_READ while no writer holds
 * the writer word.  Only this process's own line is written. */
static bool
cache_lock_read(struct cache *cache)
{
    struct cache_hdr_shm    *hdr = cache->hdr;
    struct cache_worker_shm *me = cache->worker;
    struct cache_wait        wait = { 0, 0 };
    uint32_t                 held;

    for (;;) {
        /* Dekker pair with writers (writer_pid) and with recovery
         * (poisoned): our INSIDE_READ store is ordered before both
         * loads, their store before their read of our slot. */
        __atomic_store_n(&me->read_state, CACHE_WORKER_INSIDE_READ,
                         __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&hdr->poisoned, __ATOMIC_SEQ_CST)) {
            break;
        }
        if (__atomic_load_n(&hdr->writer_pid, __ATOMIC_SEQ_CST) == 0) {
            return true;
        }
        /* A writer is in or about to be: step back and let it. */
        __atomic_store_n(&me->read_state, CACHE_WORKER_WAITING,
                         __ATOMIC_SEQ_CST);
        while ((held = __atomic_load_n(&hdr->writer_pid, __ATOMIC_RELAXED))
                   != 0
               && !__atomic_load_n(&hdr->poisoned, __ATOMIC_RELAXED)) {
            if (!cache_wait_word(cache, &wait, held)) {
                goto bail;
            }
        }
    }

bail:
    __atomic_store_n(&me->read_state, CACHE_WORKER_IDLE, __ATOMIC_SEQ_CST);
    return false;
}

/* The LRU word: its holder's pid, taken by compare-and-swap.  Holders
 * are short (an apply of the rings, or a writer's splices), so a waiter
 * spins, then yields, until lock_timeout_ms; not patient: gives up at
 * once if the word is held. */
static bool
cache_lru_word_take(struct cache *cache, uint32_t pid, bool patient)
{
    struct cache_hdr_shm *hdr = cache->hdr;
    struct cache_wait     wait = { 0, 0 };
    uint32_t              held;

    for (;;) {
        held = __atomic_load_n(&hdr->lru_pid, __ATOMIC_RELAXED);
        if (held == 0
            && __atomic_compare_exchange_n(&hdr->lru_pid, &held, pid, false,
                                           __ATOMIC_ACQUIRE,
                                           __ATOMIC_RELAXED)) {
            return true;
        }
        if (!patient || __atomic_load_n(&hdr->poisoned, __ATOMIC_RELAXED)
            || !cache_wait_more(cache, &wait)) {
            return false;
        }
    }
}

static inline void
cache_lru_word_release(struct cache_hdr_shm *hdr)
{
    __atomic_store_n(&hdr->lru_pid, 0, __ATOMIC_RELEASE);
}

/* Write side: the writer word (pid of the holder) keeps other writers and
 * new readers out; then wait until no slot is INSIDE_READ (readers are
 * short and wake no one: spin, then yield).  An apply under the LRU
 * lock is a reader too, so the write side has the LRU list to itself
 * without taking the LRU word. */
static bool
cache_lock_write_as(struct cache *cache, uint32_t pid)
{
    struct cache_hdr_shm    *hdr = cache->hdr;
    struct cache_worker_shm *me = cache->worker;
    struct cache_wait        wait = { 0, 0 };
    uint32_t                 held;

    __atomic_store_n(&me->state, CACHE_WORKER_WAITING, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&hdr->poisoned, __ATOMIC_SEQ_CST)) {
        goto bail;
    }
    for (;;) {
        held = __atomic_load_n(&hdr->writer_pid, __ATOMIC_RELAXED);
        if (held == 0
            && __atomic_compare_exchange_n(&hdr->writer_pid, &held, pid, false,
                                           __ATOMIC_SEQ_CST,
                                           __ATOMIC_RELAXED)) {
            break;
        }
        if (__atomic_load_n(&hdr->poisoned, __ATOMIC_RELAXED)) {
            goto bail;
        }
        if (held == 0) {
            cache_cpu_relax(); /* lost the race: look again */
        } else if (!cache_wait_word(cache, &wait, held)) {
            goto bail;
        }
    }
    wait.spins = 0;
    for (uint32_t s = 0; s < cache->worker_slots; s++) {
        while (cache_read_state_load(&cache->workers[s])
               == CACHE_WORKER_INSIDE_READ) {
            if (!cache_wait_more(cache, &wait)) {
                goto release; /* a dead reader, or a slow one */
            }
        }
    }
    /* Only WAITING against poisoned needs seq_cst (the Dekker pair); the
     * reaper reads INSIDE after waitpid(), recovery only more strictly. */
    __atomic_store_n(&me->state, CACHE_WORKER_INSIDE_WRITE, __ATOMIC_RELEASE);
    if (!__atomic_load_n(&hdr->poisoned, __ATOMIC_ACQUIRE)) {
        /* No reader is inside, so every ring is complete: apply them
         * all, and the LRU list is exact from here. */
        cache_apply_locked(cache, UINT64_MAX, true);
        return true;
    }
    /* Poisoned while we waited: store nothing more. */

release:
    cache_word_release(hdr);
bail:
    __atomic_store_n(&me->state, CACHE_WORKER_IDLE, __ATOMIC_SEQ_CST);
    return false;
}

/*
 * Takes the read or write side within lock_timeout_ms, recording it in
 * this process's worker slot.  Returns false (slot IDLE again) when the
 * cache is poisoned or the lock was not had in time; the caller answers
 * CACHE_BYPASS.
 */
static bool
cache_lock(struct cache *cache, enum cache_lock_mode mode, uint32_t pid)
{
    return mode == CACHE_LOCK_WRITE ? cache_lock_write_as(cache, pid)
                                    : cache_lock_read(cache);
}

static void
cache_unlock(struct cache *cache, enum cache_lock_mode mode)
{
    if (mode == CACHE_LOCK_WRITE) {
        cache_word_release(cache->hdr);
    }
    /* A recovery that still sees the old state just waits longer. */
    __atomic_store_n(mode == CACHE_LOCK_WRITE ? &cache->worker->state
                                              : &cache->worker->read_state,
                     CACHE_WORKER_IDLE, __ATOMIC_RELEASE);
}

/* The write side and the LRU lock are one word each: a dead holder's
 * pid is simply cleared.  Nobody sleeps on the writer word now (a
 * sleeper's slot says WAITING), so the count of sleepers, which a
 * process killed asleep leaves raised, restarts. */
static void
cache_locks_init(struct cache_hdr_shm *hdr)
{
    __atomic_store_n(&hdr->word_waiters, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->lru_pid, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->writer_pid, 0, __ATOMIC_RELEASE);
}

/* ---- index, LRU and slots (write side held) -------------------------- */

/* Write side, or read side: chains are only changed under the write side. */
static uint32_t
cache_find_locked(const struct cache *cache, uint64_t hash, const void *key,
                  size_t key_len)
{
    uint32_t want = cache_key_len_tag(hash, key_len);
    uint32_t i = cache->buckets[hash & cache->bucket_mask];

    while (i != CACHE_NIL) {
        const struct cache_entry_shm *e = cache_entry(cache, i);

        if (e->key_len_tag == want
            && (key_len == 0
                || memcmp(cache_entry_data(cache, e), key, key_len) == 0)) {
            return i;
        }
        i = e->chain_next;
    }
    return CACHE_NIL;
}

/* LRU links, the list's ends and the ring heads only change under the
 * write side or the LRU lock (inside the read side). */
static inline struct cache_lru_shm *
cache_lru(const struct cache *cache, uint32_t i)
{
    assert(i < cache->capacity);
    return &cache->lru[i];
}

static void
cache_lru_unlink_locked(struct cache *cache, uint32_t i)
{
    struct cache_hdr_shm *hdr = cache->hdr;
    struct cache_lru_shm *l = cache_lru(cache, i);

    if (l->prev != CACHE_NIL) {
        cache_lru(cache, l->prev)->next = l->next;
    } else {
        hdr->lru_head = l->next;
    }
    if (l->next != CACHE_NIL) {
        cache_lru(cache, l->next)->prev = l->prev;
    } else {
        hdr->lru_tail = l->prev;
    }
}

static void
cache_lru_push_locked(struct cache *cache, uint32_t i)
{
    struct cache_hdr_shm *hdr = cache->hdr;
    struct cache_lru_shm *l = cache_lru(cache, i);

    l->prev = CACHE_NIL;
    l->next = hdr->lru_head;
    if (hdr->lru_head != CACHE_NIL) {
        cache_lru(cache, hdr->lru_head)->prev = i;
    } else {
        hdr->lru_tail = i;
    }
    hdr->lru_head = i;
}

/* Moves entry i to the head of the LRU list, if it is not there. */
static inline void
cache_lru_touch_locked(struct cache *cache, uint32_t i)
{
    if (cache->hdr->lru_head != i) {
        cache_lru_unlink_locked(cache, i);
        cache_lru_push_locked(cache, i);
    }
}

static inline struct cache_access_shm *
cache_ring(const struct cache *cache, uint32_t slot)
{
    return &cache->rings[(size_t) slot * CACHE_RING];
}

static inline uint64_t
cache_record_stamp(const struct cache_access_shm *ring, uint32_t pos)
{
    return __atomic_load_n(&ring[pos & (CACHE_RING - 1)].stamp,
                           __ATOMIC_RELAXED);
}

/* LRU lock held: the records of slot w before head are consumed, and
 * the one at head was applied with stamp applied (0: not applied). */
static inline void
cache_ring_consume_locked(struct cache_worker_shm *w, uint32_t head,
                          uint64_t applied)
{
    __atomic_store_n(&w->ring_applied, applied, __ATOMIC_RELAXED);
    __atomic_store_n(&w->ring_head, head, __ATOMIC_RELEASE);
}

static inline bool
cache_cursor_before(const struct cache_cursor *a, const struct cache_cursor *b)
{
    return a->stamp < b->stamp || (a->stamp == b->stamp && a->ring < b->ring);
}

static void
cache_cursor_sift(struct cache_cursor *heap, uint32_t n, uint32_t k)
{
    for (;;) {
        uint32_t            least = k, l = 2 * k + 1, r = 2 * k + 2;
        struct cache_cursor tmp;

        if (l < n && cache_cursor_before(&heap[l], &heap[least])) {
            least = l;
        }
        if (r < n && cache_cursor_before(&heap[r], &heap[least])) {
            least = r;
        }
        if (least == k) {
            return;
        }
        tmp = heap[k];
        heap[k] = heap[least];
        heap[least] = tmp;
        k = least;
    }
}

/*
 * LRU lock held: applies the pending access records whose stamp is
 * below cut to the LRU list, all rings merged in stamp order (each ring
 * in its own order, which is its process's), and consumes them.  Each
 * record moves its entry to the head, so afterwards the list is what
 * splicing at each hit would have made.
 *
 * all (the write side is held, so no reader is inside and every ring is
 * complete; cut is UINT64_MAX): every record is applied and consumed.
 * Otherwise readers go on appending meanwhile: cut is a stamp taken
 * before the ring tails are read, and each ring's last record is applied
 * but not consumed, since its owner may restamp it (a hit on the same
 * entry); ring_applied remembers the stamp it was applied with, and the
 * next apply skips it unless the stamp moved.  Why that is exact: see
 * "Why the LRU order is exact" at the top.
 *
 * The merge is a binary heap of one cursor per ring with records to
 * apply, O(log rings) per record, in this process's own arrays; it
 * writes the merged order out first, so the splices can fetch the links
 * a few records ahead.
 */
static void
cache_apply_locked(struct cache *cache, uint64_t cut, bool all)
{
    struct cache_cursor *heap = cache->merge;
    uint32_t            *order = cache->order;
    uint32_t             n = 0, m = 0;

    for (uint32_t s = 0; s < cache->worker_slots; s++) {
        struct cache_worker_shm       *w = &cache->workers[s];
        const struct cache_access_shm *ring = cache_ring(cache, s);
        uint32_t end = __atomic_load_n(&w->ring_tail, __ATOMIC_ACQUIRE);
        uint32_t pos = __atomic_load_n(&w->ring_head, __ATOMIC_RELAXED);
        uint64_t stamp, applied;

        if (pos == end) {
            continue;
        }
        assert(end - pos <= CACHE_RING);
        stamp = cache_record_stamp(ring, pos);
        applied = __atomic_load_n(&w->ring_applied, __ATOMIC_RELAXED);
        if (applied != 0 && stamp == applied) {
            /* Applied by an earlier apply as the ring's last record,
             * and not hit again since: consumed once another follows. */
            if (++pos == end) {
                if (all) {
                    cache_ring_consume_locked(w, end, 0);
                }
                continue;
            }
            stamp = cache_record_stamp(ring, pos);
            if (stamp >= cut) {
                cache_ring_consume_locked(w, pos, 0);
                continue;
            }
        }
        if (stamp >= cut) {
            continue;
        }
        heap[n].stamp = stamp;
        heap[n].ring = s;
        heap[n].pos = pos;
        heap[n].end = end;
        n++;
    }
    if (n == 0) {
        return;
    }
    for (uint32_t k = n / 2; k-- > 0;) {
        cache_cursor_sift(heap, n, k);
    }
    while (n > 0) {
        struct cache_cursor           *c = &heap[0];
        const struct cache_access_shm *ring = cache_ring(cache, c->ring);
        uint64_t                       stamp = c->stamp;

        order[m] = ring[c->pos & (CACHE_RING - 1)].slot;
        __builtin_prefetch(&cache->lru[order[m]], 1);
        m++;
        /* pos and end run free and wrap: != (pos never passes end),
         * never <. */
        if (++c->pos != c->end
            && (c->stamp = cache_record_stamp(ring, c->pos)) < cut) {
            cache_cursor_sift(heap, n, 0);
            continue;
        }
        /* This ring is done: up to its end, or to a record at or past
         * the cut, which stays for a later apply. */
        if (all || c->pos != c->end) {
            cache_ring_consume_locked(&cache->workers[c->ring], c->pos, 0);
        } else {
            cache_ring_consume_locked(&cache->workers[c->ring], c->end - 1,
                                      stamp);
        }
        heap[0] = heap[--n];
        cache_cursor_sift(heap, n, 0);
    }
    for (uint32_t j = 0; j < m; j++) {
        if (j + CACHE_APPLY_AHEAD < m) {
            /* Its links were asked for during the merge: fetch the
             * neighbours its splice will write.  They may change before
             * then; a prefetch of the wrong line costs only itself. */
            const struct cache_lru_shm *a =
                &cache->lru[order[j + CACHE_APPLY_AHEAD]];

            if (a->prev < cache->capacity) {
                __builtin_prefetch(&cache->lru[a->prev], 1);
            }
            if (a->next < cache->capacity) {
                __builtin_prefetch(&cache->lru[a->next], 1);
            }
        }
        cache_lru_touch_locked(cache, order[j]);
    }
}

/* Takes entry i, of key hash, out of its chain, the LRU list and the
 * gauges; its slot and arena block stay its own (the caller frees them,
 * or a new entry takes both). */
static void
cache_unlink_locked(struct cache *cache, uint32_t i, uint64_t hash)
{
    struct cache_hdr_shm   *hdr = cache->hdr;
    struct cache_entry_shm *e = cache_entry(cache, i);
    uint32_t               *link = &cache->buckets[hash & cache->bucket_mask];

    while (*link != i) {
        assert(*link != CACHE_NIL);
        link = &cache_entry(cache, *link)->chain_next;
    }
    *link = e->chain_next;
    cache_lru_unlink_locked(cache, i);
    cache_add(&hdr->entries, (uint64_t) -1);
    cache_add(&hdr->bytes,
              -(uint64_t) (cache_entry_key_len(e) + (uint64_t) e->value_len));
}

static void
cache_remove_locked(struct cache *cache, uint32_t i, uint64_t hash)
{
    struct cache_hdr_shm   *hdr = cache->hdr;
    struct cache_entry_shm *e = cache_entry(cache, i);

    cache_unlink_locked(cache, i, hash);
    cache_arena_free(cache->arena, e->block);
    e->block = CACHE_NIL;
    e->chain_next = hdr->free_head;
    hdr->free_head = i;
}

/* Enough of the hash of entry i's key to find its chain (bucket_mask
 * is below 2^31), kept in the slot: an eviction under the write side
 * neither reads nor hashes the key. */
static uint64_t
cache_entry_hash(const struct cache *cache, uint32_t i)
{
    return cache_entry(cache, i)->hash_low;
}

/* Drops the least recently used entry. */
static void
cache_evict_tail_locked(struct cache *cache)
{
    uint32_t i = cache->hdr->lru_tail;

    cache_remove_locked(cache, i, cache_entry_hash(cache, i));
}

/* Empties index, LRU, slots and arena.  Write side held, or recovery. */
static void
cache_reset_locked(struct cache *cache)
{
    struct cache_hdr_shm *hdr = cache->hdr;

    memset(cache->buckets, 0xff,
           (size_t) (cache->bucket_mask + 1u) * sizeof(uint32_t));
    for (uint32_t i = 0; i < cache->capacity; i++) {
        struct cache_entry_shm *e = &cache->entries[i];

        e->stored_ms = 0;
        e->key_len_tag = 0;
        e->value_len = 0;
        e->block = CACHE_NIL;
        e->chain_next = i + 1 < cache->capacity ? i + 1 : CACHE_NIL;
        e->hash_low = 0;
        e->unused = 0;
        cache->lru[i].prev = CACHE_NIL;
        cache->lru[i].next = CACHE_NIL;
    }
    for (uint32_t w = 0; w < cache->worker_slots; w++) {
        struct cache_worker_shm *slot = &cache->workers[w];

        /* The owner, outside the read side, does not append now. */
        cache_ring_consume_locked(
            slot, __atomic_load_n(&slot->ring_tail, __ATOMIC_RELAXED), 0);
    }
    hdr->free_head = 0;
    hdr->lru_head = CACHE_NIL;
    hdr->lru_tail = CACHE_NIL;
    cache_arena_init(cache->arena, hdr->arena_bytes);
    __atomic_store_n(&hdr->entries, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->bytes, 0, __ATOMIC_RELAXED);
}

/* ---- segment ---------------------------------------------------------- */

static uint64_t
cache_align(uint64_t x)
{
    return (x + CACHE_LINE - 1) & ~(uint64_t) (CACHE_LINE - 1);
}

static int
cache_random(void *buf, size_t len)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/* shm_open a new name, unlink it at once so nothing is left in /dev/shm
 * whatever happens next, size it (reserving the pages, so a full /dev/shm
 * fails here and not as SIGBUS later) and map it shared. */
static int
cache_map(uint64_t bytes, void **out)
{
    char     name[64];
    uint64_t nonce;
    void    *map = NULL;
    int      fd = -1, rc;

    for (int attempt = 0;; attempt++) {
        rc = cache_random(&nonce, sizeof(nonce));
        if (rc != 0) {
            return rc;
        }
        snprintf(name, sizeof(name), "/rcp-cache.%ld.%016" PRIx64,
                 (long) getpid(), nonce);
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) {
            break;
        }
        if (errno != EEXIST || attempt == 8) {
            return -errno;
        }
    }
    if (shm_unlink(name) != 0) {
        rc = -errno;
        goto out;
    }
    if (ftruncate(fd, (off_t) bytes) != 0) {
        rc = -errno;
        goto out;
    }
    rc = posix_fallocate(fd, 0, (off_t) bytes);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        rc = -rc;
        goto out;
    }
    map =
        mmap(NULL, (size_t) bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    *out = map;
    rc = 0;

out:
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
        if (munmap(*out, (size_t) bytes) != 0) {
            rc = -errno;
        }
    }
    return rc;
}

static void
cache_bind(struct cache *cache, struct cache_hdr_shm *hdr)
{
    unsigned char *base = (unsigned char *) hdr;

    cache->hdr = hdr;
    cache->segment_bytes = (size_t) hdr->segment_bytes;
    cache->workers = (struct cache_worker_shm *) (base + hdr->workers_offset);
    cache->worker = &cache->workers[0];
    cache->rings = (struct cache_access_shm *) (base + hdr->rings_offset);
    cache->ring = cache_ring(cache, 0);
    cache->lru = (struct cache_lru_shm *) (base + hdr->lru_offset);
    cache->purges = (uint64_t *) (base + hdr->purges_offset);
    cache->buckets = (uint32_t *) (base + hdr->buckets_offset);
    cache->entries = (struct cache_entry_shm *) (base + hdr->entries_offset);
    cache->arena = (struct cache_arena_shm *) (base + hdr->arena_offset);
    cache->seed[0] = hdr->hash_seed[0];
    cache->seed[1] = hdr->hash_seed[1];
    cache->max_memory_bytes = hdr->max_memory_bytes;
    cache->max_value_bytes = hdr->max_value_bytes;
    cache->lock_timeout_ms = hdr->lock_timeout_ms;
    cache->capacity = hdr->capacity;
    cache->bucket_mask = hdr->bucket_count - 1;
    cache->worker_slots = hdr->worker_slots;
    cache->stamp_tsc = hdr->stamp_tsc != 0;
}

int
cache_create(const struct cache_params *params, struct cache **out)
{
    struct cache_hdr_shm *hdr;
    struct cache         *cache;
    uint64_t              seed[2], bucket_count = 1, arena_bytes, off;
    uint64_t workers_off, rings_off, lru_off, purges_off, buckets_off;
    uint64_t entries_off;
    uint64_t arena_off;
    void    *map = NULL;
    int      rc;

    rc = pthread_once(&cache_pid_once, cache_pid_init);
    if (rc != 0) {
        return -rc;
    }
    if (params->capacity < 1 || params->capacity > CACHE_CAPACITY_MAX
        || params->max_memory_bytes < 1 || params->ttl_ms == 0
        || params->worker_slots < 1 || params->worker_slots > 1u << 16) {
        return -EINVAL;
    }
    while (bucket_count < params->capacity) {
        bucket_count <<= 1;
    }
    if (params->max_memory_bytes > UINT64_C(1) << 40) {
        return -EINVAL;
    }
    arena_bytes = cache_arena_region_bytes(
        params->max_memory_bytes
        + (uint64_t) params->capacity
              * (CACHE_ARENA_ENTRY_SLACK + CACHE_META_BYTES));
    if (arena_bytes == 0) {
        return -EINVAL; /* over 8 GiB of arena */
    }
    workers_off = cache_align(sizeof(struct cache_hdr_shm));
    rings_off = cache_align(workers_off
                            + (uint64_t) params->worker_slots
                                  * sizeof(struct cache_worker_shm));
    lru_off = cache_align(rings_off
                          + (uint64_t) params->worker_slots * CACHE_RING
                                * sizeof(struct cache_access_shm));
    purges_off = cache_align(
        lru_off + (uint64_t) params->capacity * sizeof(struct cache_lru_shm));
    buckets_off =
        cache_align(purges_off + CACHE_PURGE_SLOTS * sizeof(uint64_t));
    entries_off = cache_align(buckets_off + bucket_count * sizeof(uint32_t));
    arena_off = cache_align(entries_off
                            + (uint64_t) params->capacity
                                  * sizeof(struct cache_entry_shm));
    off = arena_off + arena_bytes;
    if (off > SIZE_MAX / 2) {
        return -EINVAL;
    }
    rc = cache_random(seed, sizeof(seed));
    if (rc != 0) {
        return rc;
    }
    cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        return -ENOMEM;
    }
    cache->merge = calloc(params->worker_slots, sizeof(*cache->merge));
    cache->order = calloc((size_t) params->worker_slots * CACHE_RING,
                          sizeof(*cache->order));
    if (cache->merge == NULL || cache->order == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = cache_inflight_create(&cache->inflight);
    if (rc != 0) {
        goto fail;
    }
    rc = cache_map(off, &map);
    if (rc != 0) {
        goto fail;
    }

    hdr = map; /* fresh pages are zero: counters and slots start idle */
    hdr->magic = CACHE_MAGIC;
    hdr->layout_version = CACHE_LAYOUT_VERSION;
    hdr->header_bytes = (uint32_t) sizeof(*hdr);
    hdr->segment_bytes = off;
    hdr->max_memory_bytes = params->max_memory_bytes;
    hdr->max_value_bytes = params->max_value_bytes;
    hdr->lock_timeout_ms = params->lock_timeout_ms != 0
                               ? params->lock_timeout_ms
                               : CACHE_LOCK_TIMEOUT_MS;
    hdr->hash_seed[0] = seed[0];
    hdr->hash_seed[1] = seed[1];
    hdr->workers_offset = workers_off;
    hdr->rings_offset = rings_off;
    hdr->lru_offset = lru_off;
    hdr->purges_offset = purges_off;
    hdr->buckets_offset = buckets_off;
    hdr->entries_offset = entries_off;
    hdr->arena_offset = arena_off;
    hdr->arena_bytes = arena_bytes;
    hdr->capacity = params->capacity;
    hdr->bucket_count = (uint32_t) bucket_count;
    hdr->worker_slots = params->worker_slots;
    hdr->stamp_tsc = cache_tsc_is_clocksource() ? 1 : 0;
    hdr->ttl_ms = params->ttl_ms;
    hdr->negative_ttl_ms = params->negative_ttl_ms;
    hdr->stale_ms = params->stale_ms;
    cache_locks_init(hdr);
    cache_bind(cache, hdr);
    cache_reset_locked(cache);
    cache->worker->pid = (uint32_t) getpid();
    *out = cache;
    return 0;

fail:
    cache_inflight_destroy(cache->inflight);
    free(cache->merge);
    free(cache->order);
    free(cache);
    return rc;
}

void
cache_destroy(struct cache *cache)
{
    int rc;

    if (cache == NULL) {
        return;
    }
    rc = munmap(cache->hdr, cache->segment_bytes);
    assert(rc == 0); /* only fails for a bad address: a bug here */
    (void) rc;
    cache_inflight_destroy(cache->inflight);
    free(cache->merge);
    free(cache->order);
    free(cache);
}

struct cache_inflight *
cache_inflight(struct cache *cache)
{
    return cache->inflight;
}

size_t
cache_segment_bytes(const struct cache *cache)
{
    return cache->segment_bytes;
}

void
cache_attach(struct cache *cache, uint32_t slot)
{
    assert(slot < cache->worker_slots);
    if (slot >= cache->worker_slots) {
        return;
    }
    cache->worker = &cache->workers[slot];
    cache->ring = cache_ring(cache, slot);
    __atomic_store_n(&cache->worker->pid, (uint32_t) getpid(),
                     __ATOMIC_RELAXED);
}

void
cache_set_ttl(struct cache *cache, uint64_t ttl_ms)
{
    __atomic_store_n(&cache->hdr->ttl_ms, ttl_ms, __ATOMIC_RELAXED);
}

void
cache_set_windows(struct cache *cache, uint64_t negative_ttl_ms,
                  uint64_t stale_ms)
{
    __atomic_store_n(&cache->hdr->negative_ttl_ms, negative_ttl_ms,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&cache->hdr->stale_ms, stale_ms, __ATOMIC_RELAXED);
}

uint64_t
cache_etag(const void *value, size_t value_len)
{
    return etag_of(value, value_len);
}

/* ---- operations ------------------------------------------------------- */

/* A get saw key past its stale window: remove it for good if it still
 * is. */
static void
cache_expire(struct cache *cache, uint64_t hash, const void *key,
             size_t key_len, uint64_t now_ms)
{
    struct cache_times times;
    uint32_t           pid = cache_pid();
    bool               removed = false;
    uint32_t           i;

    cache_times_load(cache->hdr, &times);
    if (!cache_lock(cache, CACHE_LOCK_WRITE, pid)) {
        return; /* the next set or get reclaims it */
    }
    i = cache_find_locked(cache, hash, key, key_len);
    if (i != CACHE_NIL
        && cache_entry_age(cache, &times, cache_entry(cache, i), now_ms)
               == CACHE_AGE_GONE) {
        cache_remove_locked(cache, i, hash);
        removed = true;
    }
    cache_unlock(cache, CACHE_LOCK_WRITE);
    if (removed) {
        cache_add(&cache->worker->expirations, 1);
    }
}

enum cache_status
cache_get(struct cache *cache, const void *key, size_t key_len,
          uint64_t now_ms, struct cache_lookup *lookup)
{
    uint64_t                 hash = cache_hash(cache->seed, key, key_len);
    struct cache_worker_shm *me = cache->worker;
    struct cache_times       times;
    struct cache_meta_shm    meta;
    enum cache_status        status;
    struct cache_entry_shm  *e;
    enum cache_age           age;
    bool                     expired = false;
    uint64_t                 age_ms, left_ms, stamp, cut;
    uint32_t                 i, n, tail;

    cache_times_load(cache->hdr, &times);
    if (key_len > CACHE_KEY_MAX) {
        cache_add(&cache->worker->misses, 1);
        return CACHE_MISS; /* never stored */
    }
    tail = __atomic_load_n(&me->ring_tail, __ATOMIC_RELAXED);
    n = tail - __atomic_load_n(&me->ring_head, __ATOMIC_RELAXED);
    /* An apply's cut is taken before the lock: earlier is as good, and
     * no clock is read under a lock. */
    cut = n >= CACHE_RING_SOFT ? cache_stamp_fenced(cache) : 0;
    stamp = cache_stamp(cache);
    if (!cache_lock(cache, CACHE_LOCK_READ, 0)) {
        return CACHE_BYPASS;
    }
    if (cut != 0) {
        /* Apply the rings under the LRU word, inside the read side, so
         * other processes' hits go on: when the ring is full this get
         * waits for the word, before that only if it is free. */
        if (cache_lru_word_take(cache, cache_pid(), n >= CACHE_RING)) {
            cache_apply_locked(cache, cut, false);
            cache_lru_word_release(cache->hdr);
        } else if (n >= CACHE_RING) {
            status = CACHE_BYPASS;
            goto unlock;
        }
    }
    i = cache_find_locked(cache, hash, key, key_len);
    if (i == CACHE_NIL) {
        status = CACHE_MISS;
        goto unlock;
    }
    e = cache_entry(cache, i);
    cache_entry_meta(cache, e, &meta);
    age = cache_age_class(&times, e->stored_ms, &meta, now_ms, &age_ms,
                          &left_ms);
    if (age == CACHE_AGE_GONE) {
        status = CACHE_MISS;
        expired = true;
        goto unlock;
    }
    lookup->value_len = e->value_len;
    if (e->value_len > lookup->dst_cap) {
        status = CACHE_TRUNCATED; /* no record: the retry renews */
        goto unlock;
    }
    /* Record the access in our own ring; a hit on the key we recorded
     * last, while that record is not consumed, only moves its stamp, so
     * a hot key writes one word of our own line and the ring does not
     * fill.  An apply under the LRU lock never consumes a ring's
     * last record (it may be restamped), one under the write side
     * consumes all: then no reader is inside, and the head we read here
     * is the one it left. */
    n = tail - __atomic_load_n(&me->ring_head, __ATOMIC_RELAXED);
    if (n > 0 && cache->ring[(tail - 1) & (CACHE_RING - 1)].slot == i) {
        __atomic_store_n(&cache->ring[(tail - 1) & (CACHE_RING - 1)].stamp,
                         stamp, __ATOMIC_RELAXED);
    } else if (n < CACHE_RING) {
        struct cache_access_shm *r = &cache->ring[tail & (CACHE_RING - 1)];

        __atomic_store_n(&r->stamp, stamp, __ATOMIC_RELAXED);
        r->slot = i;
        __atomic_store_n(&me->ring_tail, tail + 1, __ATOMIC_RELEASE);
    } else {
        /* Full although applied before the lock: only if our records
         * were not below the apply's cut (clocks out of step).  Answer
         * without the cache rather than lose the access. */
        status = CACHE_BYPASS;
        goto unlock;
    }
    if (e->value_len > 0) {
        memcpy(lookup->dst, cache_entry_data(cache, e) + key_len,
               e->value_len);
    }
    lookup->age_ms = age_ms;
    lookup->ttl_left_ms = age == CACHE_AGE_FRESH ? left_ms : 0;
    lookup->stale_ms = age == CACHE_AGE_STALE ? left_ms : 0;
    lookup->etag = meta.etag;
    lookup->fetch_us = meta.fetch_us;
    lookup->negative = (meta.flags & CACHE_META_NEGATIVE) != 0;
    status = age == CACHE_AGE_FRESH ? CACHE_HIT : CACHE_STALE;

unlock:
    cache_unlock(cache, CACHE_LOCK_READ);
    /* A stale answer is counted as a miss: the entry is not fresh, and
     * the caller counts the answers it serves stale itself. */
    if (status == CACHE_HIT) {
        cache_add(&cache->worker->hits, 1);
    } else if (status == CACHE_MISS || status == CACHE_STALE) {
        cache_add(&cache->worker->misses, 1);
    }
    if (expired) {
        cache_expire(cache, hash, key, key_len, now_ms);
    }
    return status;
}

/* The purge epoch of hash's slot: its own line of the table only for
 * keys that share it. */
static inline uint64_t *
cache_purge_slot(const struct cache *cache, uint64_t hash)
{
    return &cache->purges[hash & (CACHE_PURGE_SLOTS - 1)];
}

static uint64_t
cache_token_of(const struct cache *cache, uint64_t hash)
{
    return __atomic_load_n(cache_purge_slot(cache, hash), __ATOMIC_ACQUIRE)
           + __atomic_load_n(&cache->hdr->flush_epoch, __ATOMIC_ACQUIRE);
}

uint64_t
cache_purge_token(const struct cache *cache, const void *key, size_t key_len)
{
    return cache_token_of(cache, cache_hash(cache->seed, key, key_len));
}

/* A purge is beginning: fetches in flight must not store (see Purges).
 * Before the lock is asked for, so a purge that times out counts too. */
static void
cache_purge_bump(uint64_t *epoch)
{
    (void) __atomic_add_fetch(epoch, 1, __ATOMIC_SEQ_CST);
}

enum cache_status
cache_set(struct cache *cache, const void *key, size_t key_len,
          const void *value, size_t value_len, uint64_t now_ms)
{
    return cache_store(cache, key, key_len, value, value_len, now_ms, NULL);
}

enum cache_status
cache_store(struct cache *cache, const void *key, size_t key_len,
            const void *value, size_t value_len, uint64_t now_ms,
            const struct cache_entry_info *info)
{
    struct cache_hdr_shm   *hdr = cache->hdr;
    uint64_t                hash, need, evicted = 0, expired = 0;
    uint32_t                pid = cache_pid();
    struct cache_times      times;
    struct cache_meta_shm   meta;
    enum cache_status       status;
    struct cache_entry_shm *e;
    uint32_t                i, block, *bucket;
    unsigned char          *data;

    if (key_len > CACHE_KEY_MAX || value_len > cache->max_value_bytes
        || key_len > cache->max_memory_bytes
        || value_len > cache->max_memory_bytes - key_len) {
        return CACHE_TOO_LARGE;
    }
    cache_times_load(hdr, &times);
    memset(&meta, 0, sizeof(meta));
    if (info == NULL) {
        meta.etag = cache_etag(value, value_len); /* before the lock */
    } else {
        if (info->negative && (value_len != 0 || times.negative_ttl_ms == 0)) {
            return CACHE_TOO_LARGE;
        }
        meta.etag = info->etag;
        meta.fetch_us = info->fetch_us;
        meta.flags = info->negative ? CACHE_META_NEGATIVE : 0;
        /* Redis' expiry as a time on our clock (saturating). */
        if (info->expire_ms != 0) {
            meta.expires_ms = now_ms + info->expire_ms > now_ms
                                  ? now_ms + info->expire_ms
                                  : UINT64_MAX;
        }
    }
    need = (uint64_t) key_len + value_len;
    hash = cache_hash(cache->seed, key, key_len);
    /* The key's bucket is a miss inside the lock unless asked for now
     * (the lock may take a while: let the fetch overlap the wait). */
    __builtin_prefetch(&cache->buckets[hash & cache->bucket_mask], 1);
    if (!cache_lock(cache, CACHE_LOCK_WRITE, pid)) {
        return CACHE_BYPASS;
    }

    if (info != NULL && info->check_purge
        && cache_token_of(cache, hash) != info->purge_token) {
        status = CACHE_PURGED; /* a purge began since the fetch */
        goto unlock;
    }
    i = cache_find_locked(cache, hash, key, key_len);
    if (i != CACHE_NIL) {
        cache_remove_locked(cache, i, hash); /* replaced, not evicted */
    }
    /* Entries at the tail past their stale window are gone for readers
     * already (stale ones may still be answered, so they stay). */
    while (hdr->lru_tail != CACHE_NIL
           && cache_entry_age(cache, &times, cache_entry(cache, hdr->lru_tail),
                              now_ms)
                  == CACHE_AGE_GONE) {
        cache_evict_tail_locked(cache);
        expired++;
    }
    i = CACHE_NIL;
    while (cache_load(&hdr->entries) >= cache->capacity
           || cache_load(&hdr->bytes) + need > cache->max_memory_bytes) {
        uint32_t t = hdr->lru_tail;

        e = cache_entry(cache, t);
        if (cache_entry_key_len(e) + (uint64_t) e->value_len >= need
            && cache_arena_fits_exactly(cache->arena, e->block,
                                        CACHE_META_BYTES + need)) {
            /* The tail's block is just the size we need and its bytes
             * are no fewer than ours, so once it is out the count and
             * the bytes fit: the new entry takes its slot and block as
             * they are, with nothing freed or allocated (the usual case
             * in a full cache of like-sized values). */
            cache_unlink_locked(cache, t, cache_entry_hash(cache, t));
            evicted++;
            i = t;
            block = e->block;
            break;
        }
        cache_evict_tail_locked(cache);
        evicted++;
    }
    /* The budget fits; free space may still be in pieces too small. */
    while (i == CACHE_NIL) {
        block = cache_arena_alloc(cache->arena, CACHE_META_BYTES + need);
        if (block != CACHE_ARENA_NIL) {
            i = hdr->free_head;
            hdr->free_head = cache_entry(cache, i)->chain_next;
            break;
        }
        if (hdr->lru_tail == CACHE_NIL) {
            assert(!"an empty arena must fit max_memory_bytes");
            status = CACHE_TOO_LARGE;
            goto unlock;
        }
        cache_evict_tail_locked(cache);
        evicted++;
    }
    e = cache_entry(cache, i);
    e->stored_ms = now_ms;
    e->key_len_tag = cache_key_len_tag(hash, key_len);
    e->hash_low = (uint32_t) hash;
    e->value_len = (uint32_t) value_len;
    e->block = block;
    memcpy(cache_arena_data(cache->arena, block), &meta, sizeof(meta));
    data = cache_entry_data(cache, e);
    if (key_len > 0) {
        memcpy(data, key, key_len);
    }
    if (value_len > 0) {
        memcpy(data + key_len, value, value_len);
    }
    bucket = &cache->buckets[hash & cache->bucket_mask];
    e->chain_next = *bucket;
    *bucket = i;
    cache_lru_push_locked(cache, i);
    cache_add(&hdr->entries, 1);
    cache_add(&hdr->bytes, need);
    status = CACHE_STORED;

unlock:
    cache_unlock(cache, CACHE_LOCK_WRITE);
    if (evicted > 0) {
        cache_add(&cache->worker->evictions, evicted);
    }
    if (expired > 0) {
        cache_add(&cache->worker->expirations, expired);
    }
    return status;
}

enum cache_status
cache_set_since(struct cache *cache, const void *key, size_t key_len,
                const void *value, size_t value_len, uint64_t now_ms,
                uint64_t token)
{
    struct cache_entry_info info = {
        .etag = cache_etag(value, value_len),
        .check_purge = true,
        .purge_token = token,
    };

    return cache_store(cache, key, key_len, value, value_len, now_ms, &info);
}

/* Delete takes no clock, so it does not judge age: a present entry is
 * deleted even if it expired unseen (an admin delete answers 204 either
 * way, and nothing is served from it). */
enum cache_status
cache_delete(struct cache *cache, const void *key, size_t key_len)
{
    uint64_t          hash = cache_hash(cache->seed, key, key_len);
    uint32_t          pid = cache_pid();
    enum cache_status status;
    uint32_t          i;

    if (key_len > CACHE_KEY_MAX) {
        return CACHE_MISS;
    }
    /* Even when the key is not cached: its fetch may be in flight. */
    cache_purge_bump(cache_purge_slot(cache, hash));
    if (!cache_lock(cache, CACHE_LOCK_WRITE, pid)) {
        return CACHE_BYPASS;
    }
    i = cache_find_locked(cache, hash, key, key_len);
    if (i == CACHE_NIL) {
        status = CACHE_MISS;
        goto unlock;
    }
    cache_remove_locked(cache, i, hash);
    status = CACHE_DELETED;

unlock:
    cache_unlock(cache, CACHE_LOCK_WRITE);
    return status;
}

enum cache_status
cache_flush(struct cache *cache)
{
    cache_purge_bump(&cache->hdr->flush_epoch);
    if (!cache_lock(cache, CACHE_LOCK_WRITE, cache_pid())) {
        return CACHE_BYPASS;
    }
    cache_reset_locked(cache);
    cache_unlock(cache, CACHE_LOCK_WRITE);
    return CACHE_DELETED;
}

void
cache_stats(const struct cache *cache, struct cache_stats *out)
{
    const struct cache_hdr_shm *hdr = cache->hdr;

    memset(out, 0, sizeof(*out));
    out->entries = cache_load(&hdr->entries);
    out->bytes = cache_load(&hdr->bytes);
    out->capacity_entries = cache->capacity;
    out->capacity_bytes = cache->max_memory_bytes;
    for (uint32_t s = 0; s < cache->worker_slots; s++) {
        const struct cache_worker_shm *w = &cache->workers[s];

        out->hits += cache_load(&w->hits);
        out->misses += cache_load(&w->misses);
        out->evictions += cache_load(&w->evictions);
        out->expirations += cache_load(&w->expirations);
    }
    out->generation = cache_load(&hdr->generation);
    out->poisoned = __atomic_load_n(&hdr->poisoned, __ATOMIC_SEQ_CST) != 0;
}

/* ---- invariants ------------------------------------------------------- */

/* Write side held.  in_index and in_lru have a bit per slot, used_starts
 * a bit per arena granule, all zero on entry. */
static int
cache_check_locked(struct cache *cache, uint8_t *in_index, uint8_t *in_lru,
                   uint8_t *used_starts, struct cache_fault *fault)
{
    struct cache_hdr_shm *hdr = cache->hdr;
    uint64_t              indexed = 0, listed = 0, free_slots = 0, bytes = 0;
    uint32_t              prev;
    int                   rc;

    rc = cache_arena_check(cache->arena, used_starts, fault);
    if (rc != 0) {
        return rc;
    }

    for (uint64_t b = 0; b <= cache->bucket_mask; b++) {
        for (uint32_t i = cache->buckets[b]; i != CACHE_NIL;) {
            struct cache_entry_shm *e;
            uint64_t                hash, len;

            if (i >= cache->capacity) {
                return cache_fault_set(fault,
                                       "chain link out of range "
                                       "(bucket, slot)",
                                       b, i);
            }
            if (cache_check_bit(in_index, i)) {
                return cache_fault_set(fault,
                                       "slot reachable twice from the "
                                       "index (bucket, slot)",
                                       b, i);
            }
            cache_check_bit_flip(in_index, i);
            e = &cache->entries[i];
            if (e->block >= cache->arena->granules
                || !cache_check_bit(used_starts, e->block)) {
                return cache_fault_set(fault,
                                       "indexed slot has no arena "
                                       "block of its own (slot, block)",
                                       i, e->block);
            }
            cache_check_bit_flip(used_starts, e->block); /* claimed */
            len = cache_entry_key_len(e) + (uint64_t) e->value_len;
            if (cache_arena_block_capacity(cache->arena, e->block)
                < CACHE_META_BYTES + len) {
                return cache_fault_set(fault,
                                       "arena block too small for its "
                                       "entry (slot, bytes)",
                                       i, len);
            }
            hash = cache_hash(cache->seed, cache_entry_data(cache, e),
                              cache_entry_key_len(e));
            if ((hash & cache->bucket_mask) != b
                || cache_key_len_tag(hash, cache_entry_key_len(e))
                       != e->key_len_tag
                || (uint32_t) hash != e->hash_low) {
                return cache_fault_set(
                    fault,
                    "entry in the wrong chain or "
                    "with the wrong tag or hash (bucket, slot)",
                    b, i);
            }
            bytes += len;
            indexed++;
            i = e->chain_next;
        }
    }

    prev = CACHE_NIL;
    for (uint32_t i = hdr->lru_head; i != CACHE_NIL;) {
        if (i >= cache->capacity) {
            return cache_fault_set(fault,
                                   "LRU link out of range (after, "
                                   "slot)",
                                   prev, i);
        }
        if (!cache_check_bit(in_index, i)) {
            return cache_fault_set(fault,
                                   "LRU lists a slot not in the index "
                                   "(slot, position)",
                                   i, listed);
        }
        if (cache_check_bit(in_lru, i)) {
            return cache_fault_set(fault,
                                   "LRU lists a slot twice (slot, "
                                   "position)",
                                   i, listed);
        }
        cache_check_bit_flip(in_lru, i);
        if (cache->lru[i].prev != prev) {
            return cache_fault_set(fault,
                                   "LRU prev link wrong (slot, "
                                   "prev)",
                                   i, cache->lru[i].prev);
        }
        listed++;
        prev = i;
        i = cache->lru[i].next;
    }
    if (hdr->lru_tail != prev) {
        return cache_fault_set(fault,
                               "LRU tail is not the last entry (tail, "
                               "last)",
                               hdr->lru_tail, prev);
    }
    if (listed != indexed) {
        return cache_fault_set(fault,
                               "LRU length and index count "
                               "differ (LRU, index)",
                               listed, indexed);
    }
    if (indexed != cache_load(&hdr->entries) || indexed > cache->capacity) {
        return cache_fault_set(fault, "entries gauge wrong (counted, gauge)",
                               indexed, cache_load(&hdr->entries));
    }
    if (bytes != cache_load(&hdr->bytes) || bytes > cache->max_memory_bytes) {
        return cache_fault_set(fault,
                               "bytes gauge wrong or over budget "
                               "(counted, gauge)",
                               bytes, cache_load(&hdr->bytes));
    }
    if (cache->arena->used_blocks != indexed) {
        return cache_fault_set(fault,
                               "arena used blocks differ from entries "
                               "(blocks, entries)",
                               cache->arena->used_blocks, indexed);
    }

    for (uint32_t i = hdr->free_head; i != CACHE_NIL;) {
        if (i >= cache->capacity || cache_check_bit(in_index, i)) {
            return cache_fault_set(fault,
                                   "free list holds a bad, live or "
                                   "repeated slot (slot, free so far)",
                                   i, free_slots);
        }
        cache_check_bit_flip(in_index, i);
        if (cache->entries[i].block != CACHE_NIL) {
            return cache_fault_set(fault,
                                   "free slot has an arena block "
                                   "(slot, block)",
                                   i, cache->entries[i].block);
        }
        free_slots++;
        i = cache->entries[i].chain_next;
    }
    if (indexed + free_slots != cache->capacity) {
        return cache_fault_set(fault, "slots lost (live + free, capacity)",
                               indexed + free_slots, cache->capacity);
    }
    return 0;
}

int
cache_check(struct cache *cache, char *err, size_t err_len)
{
    size_t             slot_map = (size_t) cache->capacity / 8 + 1;
    size_t             arena_map = (size_t) cache->arena->granules / 8 + 1;
    uint8_t           *in_index = calloc(1, slot_map);
    uint8_t           *in_lru = calloc(1, slot_map);
    uint8_t           *used_starts = calloc(1, arena_map);
    struct cache_fault fault = { NULL, 0, 0 };
    int                rc;

    if (in_index == NULL || in_lru == NULL || used_starts == NULL) {
        rc = -ENOMEM;
        fault.what = "no memory for the check's bitmaps";
        goto out;
    }
    if (!cache_lock(cache, CACHE_LOCK_WRITE, cache_pid())) {
        rc = -EBUSY;
        fault.what = "poisoned, or the write lock was not had in time";
        goto out;
    }
    rc = cache_check_locked(cache, in_index, in_lru, used_starts, &fault);
    cache_unlock(cache, CACHE_LOCK_WRITE);

out:
    if (rc != 0 && err != NULL && err_len > 0) {
        snprintf(err, err_len, "%s: %" PRIu64 ", %" PRIu64, fault.what,
                 fault.a, fault.b);
    }
    free(in_index);
    free(in_lru);
    free(used_starts);
    return rc;
}

/* ---- crash recovery (supervisor) -------------------------------------- */

bool
cache_reap_slot(struct cache *cache, uint32_t slot)
{
    struct cache_worker_shm *w;

    if (slot >= cache->worker_slots) {
        return false;
    }
    w = &cache->workers[slot];
    /* Its fetches in flight are over: their waiters look again now. */
    (void) cache_inflight_reap(cache->inflight,
                               __atomic_load_n(&w->pid, __ATOMIC_RELAXED));
    if (__atomic_load_n(&w->state, __ATOMIC_SEQ_CST) == CACHE_WORKER_IDLE
        && cache_read_state_load(w) == CACHE_WORKER_IDLE) {
        return false;
    }
    /* Poison before the slot reads idle, so recovery cannot miss it. */
    __atomic_store_n(&cache->hdr->poisoned, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&w->state, CACHE_WORKER_IDLE, __ATOMIC_SEQ_CST);
    __atomic_store_n(&w->read_state, CACHE_WORKER_IDLE, __ATOMIC_SEQ_CST);
    return true;
}

int
cache_recover(struct cache *cache)
{
    struct cache_hdr_shm *hdr = cache->hdr;

    if (!__atomic_load_n(&hdr->poisoned, __ATOMIC_SEQ_CST)) {
        return 0;
    }
    for (uint32_t s = 0; s < cache->worker_slots; s++) {
        if (__atomic_load_n(&cache->workers[s].state, __ATOMIC_SEQ_CST)
                != CACHE_WORKER_IDLE
            || cache_read_state_load(&cache->workers[s])
                   != CACHE_WORKER_IDLE) {
            return -EBUSY;
        }
    }
    /* Nobody is inside or waiting, and anyone arriving sees poisoned. */
    cache_locks_init(hdr);
    cache_reset_locked(cache);
    __atomic_store_n(&hdr->generation, cache_load(&hdr->generation) + 1,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&hdr->poisoned, 0, __ATOMIC_SEQ_CST);
    return 0;
}

bool
cache_poisoned(const struct cache *cache)
{
    return __atomic_load_n(&cache->hdr->poisoned, __ATOMIC_SEQ_CST) != 0;
}

void
cache_debug_hold_lru_lock(struct cache *cache)
{
    /* As an apply holds it: inside the read side. */
    cache_debug_hold_lock(cache, false);
    if (cache_poisoned(cache)) {
        return;
    }
    while (!cache_lru_word_take(cache, cache_pid(), true)) {
        if (cache_poisoned(cache)) {
            return;
        }
    }
}

void
cache_debug_ring_at(struct cache *cache, uint32_t at)
{
    struct cache_worker_shm *me = cache->worker;

    assert(__atomic_load_n(&me->ring_tail, __ATOMIC_RELAXED)
           == __atomic_load_n(&me->ring_head, __ATOMIC_RELAXED));
    __atomic_store_n(&me->ring_head, at, __ATOMIC_RELEASE);
    __atomic_store_n(&me->ring_tail, at, __ATOMIC_RELEASE);
    __atomic_store_n(&me->ring_applied, 0, __ATOMIC_RELAXED);
}

void
cache_debug_stall(struct cache *cache, uint64_t hold_ms)
{
    struct timespec ts = {
        .tv_sec = (time_t) (hold_ms / 1000u),
        .tv_nsec = (long) (hold_ms % 1000u) * 1000000L,
    };

    if (!cache_lock(cache, CACHE_LOCK_WRITE, cache_pid())) {
        return;
    }
    /* A test hook: sleeping under the lock is the fault it injects. */
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    cache_unlock(cache, CACHE_LOCK_WRITE);
}

void
cache_debug_hold_lock(struct cache *cache, bool write)
{
    /* The pid is read before the lock, like every caller does.  Each
     * attempt is timed; keep at it, as the blocking lock this hook once
     * took would have, unless the cache is poisoned. */
    while (!cache_lock(cache, write ? CACHE_LOCK_WRITE : CACHE_LOCK_READ,
                       cache_pid())) {
        if (cache_poisoned(cache)) {
            return;
        }
    }
}
