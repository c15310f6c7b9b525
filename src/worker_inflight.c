/*
 * worker_inflight: one fetch per key per proxy.  The backend's gate
 * (backend_gate_ops) over the cache's table of in-flight markers
 * (cache_inflight.c): before a new GET fetch of the worker's backend is
 * sent, its key's marker is claimed.
 *
 *   claimed ----------> OWN: the GET goes out; when the fetch ends (after
 *                       its value is stored, whatever its result) the
 *                       marker is released
 *   another's key, or
 *   one of ours ------> SEND: the GET goes out, no marker
 *   held by another
 *   live worker ------> WAIT: the fetch is parked (its local waiters and
 *                       later local misses of the key wait with it) and
 *                       polled; once the marker is no longer held
 *                       (released, taken over, its owner dead) the cache
 *                       is read: a fresh entry answers every waiter
 *                       (ANSWERED), else the fetch goes to Redis (SEND).
 *                       A fetch parked for a whole --redis-timeout goes
 *                       to Redis anyway (the backend's deadline).
 *
 * Why polling, every BACKEND_GATE_POLL_MS, rather than a wake-up: a
 * waiter must notice an owner that dies as well as one that finishes,
 * and no signal comes from a SIGKILLed process; a wake-up (an eventfd per
 * worker, a futex) would need the owner to know who waits, a list in
 * shared memory that a crash can leave half-written.  A poll is one
 * atomic load per waited key (plus kill(pid, 0) to see the owner live),
 * runs only while this worker has a fetch parked, and adds at most 2 ms
 * to a wait that is a Redis round trip.  No cache lock is held for any
 * of it: the markers are atomics outside the cache segment, and the
 * read of the value is an ordinary cache_get().
 *
 * A waiter answers only from the cache, so a value the owner did not
 * store (too large, purged since its fetch began, an error) is fetched
 * again by each worker that waited: coalescing is lost for it, not
 * correctness.
 */
#include "rcp_autoconf.h"

#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cache.h"
#include "cache_inflight.h"
#include "worker_conn.h"

/* The markers, or NULL when waiters could not answer from the cache:
 * no cache, or --tracking has lost its channel (worker_cache_trusted). */
static struct cache_inflight *
worker_inflight_table(const struct worker *w)
{
    return w->params->cache != NULL && worker_cache_trusted(w)
               ? cache_inflight(w->params->cache)
               : NULL;
}

static void
worker_inflight_save(uint64_t state[2], const struct cache_inflight_mark *m)
{
    state[0] = m->slot;
    state[1] = m->word;
}

static void
worker_inflight_load(const uint64_t state[2], struct cache_inflight_mark *m)
{
    m->slot = (uint32_t) state[0];
    m->word = state[1];
}

static enum backend_gate
worker_inflight_begin(void *arg, const void *key, size_t key_len,
                      uint64_t state[2])
{
    struct worker             *w = arg;
    struct cache_inflight     *t = worker_inflight_table(w);
    struct cache_inflight_mark mark;

    if (t == NULL) {
        return BACKEND_GATE_SEND;
    }
    switch (cache_inflight_claim(t, key, key_len, (uint32_t) getpid(),
                                 cache_clock_ms(), w->cfg->redis_timeout_ms,
                                 &mark)) {
    case CACHE_INFLIGHT_OWNER:
        worker_inflight_save(state, &mark);
        return BACKEND_GATE_OWN;
    case CACHE_INFLIGHT_WAIT:
        worker_inflight_save(state, &mark);
        return BACKEND_GATE_WAIT;
    case CACHE_INFLIGHT_NONE:
        break;
    }
    return BACKEND_GATE_SEND;
}

/* The cache's fresh entry of key as a reply: a value of its own (one
 * reference, the caller's) or, for a remembered absent key, NIL.  False
 * when there is none (or no memory for it). */
static bool
worker_inflight_answer(struct worker *w, const void *key, size_t key_len,
                       struct backend_reply *reply)
{
    struct cache_lookup lk;
    struct value       *v = NULL;
    enum cache_status   st = CACHE_MISS;

    memset(&lk, 0, sizeof(lk));
    /* The value may be replaced between two lookups: three tries. */
    for (int attempt = 0; attempt < 3; attempt++) {
        lk.dst = v != NULL ? v->data : NULL;
        lk.dst_cap = v != NULL ? v->len : 0;
        st = cache_get(w->params->cache, key, key_len, cache_clock_ms(), &lk);
        if (st != CACHE_TRUNCATED) {
            break;
        }
        value_unref(v);
        v = value_create(lk.value_len);
        if (v == NULL) {
            return false;
        }
    }
    if (st != CACHE_HIT) {
        value_unref(v);
        return false;
    }
    if (lk.negative) {
        value_unref(v);
        reply->result = BACKEND_NIL;
        return true;
    }
    if (v == NULL && (v = value_create(0)) == NULL) {
        return false;
    }
    v->len = lk.value_len;
    v->etag = lk.etag;
    v->has_etag = true;
    reply->result = BACKEND_VALUE;
    reply->data = v->data;
    reply->len = v->len;
    reply->value = v;
    /* What is left of the entry's life, for max-age. */
    reply->pttl_ms = lk.ttl_left_ms < INT64_MAX ? (int64_t) lk.ttl_left_ms
                                                : INT64_MAX;
    return true;
}

static enum backend_gate
worker_inflight_poll(void *arg, const void *key, size_t key_len,
                     uint64_t state[2], struct backend_reply *reply)
{
    struct worker             *w = arg;
    struct cache_inflight     *t = worker_inflight_table(w);
    struct cache_inflight_mark mark;

    if (t == NULL) {
        return BACKEND_GATE_SEND;
    }
    worker_inflight_load(state, &mark);
    if (cache_inflight_held(t, &mark, cache_clock_ms())) {
        return BACKEND_GATE_WAIT;
    }
    /* Released (stored or not), taken over, or its owner died.  Not
     * claimed again: every worker that waited goes at once, rather than
     * one after another when the value was not stored. */
    return worker_inflight_answer(w, key, key_len, reply)
               ? BACKEND_GATE_ANSWERED
               : BACKEND_GATE_SEND;
}

static void
worker_inflight_end(void *arg, const void *key, size_t key_len,
                    const uint64_t state[2])
{
    struct worker             *w = arg;
    struct cache_inflight_mark mark;

    (void) key;
    (void) key_len;
    if (w->params->cache != NULL) {
        worker_inflight_load(state, &mark);
        cache_inflight_release(cache_inflight(w->params->cache), &mark);
    }
}

const struct backend_gate_ops worker_inflight_gate = {
    .begin = worker_inflight_begin,
    .poll = worker_inflight_poll,
    .end = worker_inflight_end,
};
