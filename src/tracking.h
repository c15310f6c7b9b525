/*
 * tracking: Redis client-side caching (CLIENT TRACKING) over RESP2
 * redirection, one subscriber per worker (per node per worker with
 * --redis-cluster).  Redis names the keys that
 * changed on the subscriber's `__redis__:invalidate` channel and the
 * worker drops them from the shared cache; while the channel is not
 * known to be whole, no worker answers from the cache.  See tracking.c
 * for the states and why the subscriber lives in each worker.
 */
#ifndef RCP_TRACKING_H
#define RCP_TRACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "backend.h"
#include "cache.h"
#include "config.h"
#include "event.h"
#include "metrics.h"

struct tracking;

/* What one reply on the subscriber's connection is (tracking_parse). */
enum tracking_msg {
    TRACKING_MSG_OTHER = 0,  /* not for us: ignored */
    TRACKING_MSG_SUBSCRIBED, /* ["subscribe", channel, n] */
    TRACKING_MSG_PONG,       /* ["pong", ""]: a PING answered while
                                subscribed */
    TRACKING_MSG_KEYS,       /* ["message", channel, [key, ...]]:
                                the array is *keys */
    TRACKING_MSG_FLUSH       /* ["message", channel, nil] (FLUSHALL,
                                FLUSHDB) or a key list we cannot
                                read: drop everything */
};

/* Pure: classifies r, a reply read on the subscriber.  On KEYS, *keys
 * is the element holding the array of key names (borrowed from r). */
enum tracking_msg tracking_parse(const redisReply *r, const redisReply **keys);

/* Starts tracking for a worker when cfg->tracking is not off (else *out
 * is NULL and 0 is returned).  Everything is borrowed and must outlive
 * t; cache and slot may be NULL.  Hooks the backend's connection events,
 * marks slot DOWN at once and connects the subscriber.  0 or -errno. */
int tracking_create(struct event_loop *loop, const struct config *cfg,
                    struct backend *b, struct cache *cache,
                    struct metrics_slot_shm *slot, struct tracking **out);

/* Unhooks from the backend (call before backend_destroy), closes the
 * subscriber and frees.  NULL is a no-op.  The slot keeps its state: a
 * worker ending is cleared by the supervisor's reap. */
void tracking_destroy(struct tracking *t);

/* Whether Redis tells us of changes to key: false only for a key
 * outside every --tracking-prefix in bcast mode (such a key is not
 * cached: nobody would drop it).  True when t is NULL. */
bool tracking_covers(const struct tracking *t, const void *key,
                     size_t key_len);

#endif
