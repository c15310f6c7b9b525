/*
 * cache_inflight: owns the table of in-flight markers that makes
 * concurrent misses of one key, in any worker, wait for one GET.
 *
 * The table is its own small shared mapping (CACHE_INFLIGHT_SLOTS x 16
 * bytes), made by the supervisor with the cache before it forks, apart
 * from the cache segment: it is never touched under the cache's lock and
 * survives the cache's crash recovery (a marker does not hold entries).
 * Each slot is one marker:
 *
 *   word         0 when free; else the owner's pid (bits 32-63), a
 *                per-process sequence number (bits 24-31, so a marker
 *                released and claimed again by the same process is a
 *                new word) and a tag of the key's hash (bits 0-23,
 *                never 0).  Claimed, taken over and released only by
 *                compare-and-swap, so exactly one process owns it.
 *   deadline_ms  the owner's fetch gives up then (cache clock); stored
 *                by the owner just after its claim.
 *
 * A key's slot is its hash (SipHash-1-3, random key per table) modulo
 * the table size; there is no probing.  A key whose slot holds another
 * key's marker is fetched without one: coalescing is lost for it, never
 * correctness.  Two keys with one slot and one tag wait for each other's
 * fetch and then, finding their own key absent from the cache, fetch
 * it: a little latency, again never a wrong answer, since a waiter only
 * ever answers from the cache.
 *
 *   miss -> claim: free ------------------> OWNER: fetch, store, release
 *                  other key, or ours ----> NONE: fetch, no marker
 *                  owner dead / overran --> take over: OWNER
 *                  owner live ------------> WAIT: poll held() until it
 *                                           is not, then read the cache;
 *                                           on a miss claim again
 *
 * Crash safety: a worker killed while it owns markers leaves them set;
 * the supervisor frees them when it reaps the worker
 * (cache_inflight_reap, by pid), and until then each waiter sees its
 * owner's pid gone (kill(pid, 0): ESRCH) or its deadline passed and
 * stops waiting.  A pid reused by a new process looks alive, but the
 * deadline still ends the wait.  The deadline is stored after the claim,
 * so for a moment a reader may see the previous owner's, already past,
 * and take over a live claim: at worst one more GET.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "cache_inflight.h"
#include "siphash.h"

#define CACHE_INFLIGHT_TAG_MASK UINT64_C(0xffffff)

_Static_assert((CACHE_INFLIGHT_SLOTS & (CACHE_INFLIGHT_SLOTS - 1)) == 0,
               "the slot count is a power of two");

struct cache_inflight_slot_shm {
    uint64_t word;        /* atomic; see above */
    uint64_t deadline_ms; /* atomic; the owner's */
};

_Static_assert(sizeof(struct cache_inflight_slot_shm) == 16,
               "a marker is 16 bytes");

struct cache_inflight_shm {
    uint64_t                       seed[2]; /* fixed at creation */
    struct cache_inflight_slot_shm slots[CACHE_INFLIGHT_SLOTS];
};

/* Per process: copied into each worker by fork(). */
struct cache_inflight {
    struct cache_inflight_shm *shm; /* owned: the mapping */
    uint32_t                   seq; /* this process's claims */
};

int
cache_inflight_create(struct cache_inflight **out)
{
    struct cache_inflight *t = calloc(1, sizeof(*t));
    unsigned char         *p;
    size_t                 left;

    if (t == NULL) {
        return -ENOMEM;
    }
    t->shm = mmap(NULL, sizeof(*t->shm), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t->shm == MAP_FAILED) {
        int rc = -errno;

        free(t);
        return rc;
    }
    /* Fresh pages are zero: every marker free. */
    p = (unsigned char *) t->shm->seed;
    left = sizeof(t->shm->seed);
    while (left > 0) {
        ssize_t n = getrandom(p, left, 0);

        if (n < 0) {
            int rc = -errno;

            if (rc == -EINTR) {
                continue;
            }
            cache_inflight_destroy(t);
            return rc;
        }
        p += n;
        left -= (size_t) n;
    }
    *out = t;
    return 0;
}

void
cache_inflight_destroy(struct cache_inflight *t)
{
    if (t == NULL) {
        return;
    }
    /* munmap() of our own mapping fails only for a bug. */
    (void) munmap(t->shm, sizeof(*t->shm));
    free(t);
}

static uint64_t
cache_inflight_hash(const struct cache_inflight *t, const void *key,
                    size_t len)
{
    return siphash13(t->shm->seed, key, len);
}

static inline uint32_t
cache_inflight_pid_of(uint64_t word)
{
    return (uint32_t) (word >> 32);
}

/* kill(pid, 0): ESRCH means no such process; EPERM one we may not
 * signal, alive.  A dead worker not reaped yet (a zombie) still looks
 * alive: its reap frees its markers. */
static bool
cache_inflight_alive(uint32_t pid)
{
    return pid != 0 && (kill((pid_t) pid, 0) == 0 || errno != ESRCH);
}

/* The marker in word is held by a live owner within its deadline. */
static bool
cache_inflight_live(const struct cache_inflight_slot_shm *s, uint64_t word,
                    uint64_t now_ms)
{
    uint64_t deadline_ms = __atomic_load_n(&s->deadline_ms, __ATOMIC_ACQUIRE);

    if (deadline_ms != 0 && now_ms >= deadline_ms) {
        return false;
    }
    return cache_inflight_alive(cache_inflight_pid_of(word));
}

enum cache_inflight_claim
cache_inflight_claim(struct cache_inflight *t, const void *key, size_t key_len,
                     uint32_t pid, uint64_t now_ms, uint64_t timeout_ms,
                     struct cache_inflight_mark *mark)
{
    uint64_t hash = cache_inflight_hash(t, key, key_len);
    uint64_t tag = ((hash >> 32) & CACHE_INFLIGHT_TAG_MASK) | 1u;
    struct cache_inflight_slot_shm *s;
    uint64_t                        mine, seen;

    mark->slot = (uint32_t) (hash & (CACHE_INFLIGHT_SLOTS - 1));
    s = &t->shm->slots[mark->slot];
    t->seq++;
    mine = (uint64_t) pid << 32 | (uint64_t) (t->seq & 0xff) << 24 | tag;
    seen = __atomic_load_n(&s->word, __ATOMIC_ACQUIRE);
    for (;;) {
        if (seen != 0) {
            if ((seen & CACHE_INFLIGHT_TAG_MASK) != tag
                || cache_inflight_pid_of(seen) == pid) {
                mark->word = seen;
                return CACHE_INFLIGHT_NONE;
            }
            if (cache_inflight_live(s, seen, now_ms)) {
                mark->word = seen;
                return CACHE_INFLIGHT_WAIT;
            }
            /* Its owner died or overran: take it over. */
        }
        if (__atomic_compare_exchange_n(&s->word, &seen, mine, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            break;
        }
        /* Lost a race: seen is the new word; judge it again. */
    }
    __atomic_store_n(&s->deadline_ms, now_ms + timeout_ms, __ATOMIC_RELEASE);
    mark->word = mine;
    return CACHE_INFLIGHT_OWNER;
}

bool
cache_inflight_held(const struct cache_inflight      *t,
                    const struct cache_inflight_mark *mark, uint64_t now_ms)
{
    const struct cache_inflight_slot_shm *s = &t->shm->slots[mark->slot];

    return __atomic_load_n(&s->word, __ATOMIC_ACQUIRE) == mark->word
           && cache_inflight_live(s, mark->word, now_ms);
}

void
cache_inflight_release(struct cache_inflight            *t,
                       const struct cache_inflight_mark *mark)
{
    struct cache_inflight_slot_shm *s = &t->shm->slots[mark->slot];
    uint64_t                        expect = mark->word;

    /* Fails only when another process took it over: then it is its. */
    (void) __atomic_compare_exchange_n(&s->word, &expect, 0, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

unsigned
cache_inflight_reap(struct cache_inflight *t, uint32_t pid)
{
    unsigned freed = 0;

    for (uint32_t i = 0; i < CACHE_INFLIGHT_SLOTS; i++) {
        struct cache_inflight_slot_shm *s = &t->shm->slots[i];
        uint64_t word = __atomic_load_n(&s->word, __ATOMIC_ACQUIRE);

        if (word != 0 && cache_inflight_pid_of(word) == pid
            && __atomic_compare_exchange_n(&s->word, &word, 0, false,
                                           __ATOMIC_ACQ_REL,
                                           __ATOMIC_RELAXED)) {
            freed++;
        }
    }
    return freed;
}
