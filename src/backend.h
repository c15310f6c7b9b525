/*
 * backend: the worker's connection to the backing Redis, through hiredis'
 * async API driven by the worker's own event loop (our adapter for
 * hiredis 0.14's addRead/delRead/addWrite/delWrite/cleanup hooks).
 *
 * Concurrent misses for one key share one GET: a pending fetch record
 * (owned by the backend) lists its waiters; a waiter is embedded in the
 * caller's object and unlinks itself with backend_cancel().  Every waiter
 * not cancelled gets its callback exactly once.  Deadlines are our own
 * timers (hiredis 0.14 has none): past --redis-timeout the waiters get
 * BACKEND_TIMEOUT and the connection is reset, since a late reply could
 * not be matched.  While Redis is unreachable, fetches fail at once and
 * a reconnect runs in the background with capped exponential backoff.
 * A string reply is stored in the cache once per fetch, before the
 * waiters are called.
 */
#ifndef RCP_BACKEND_H
#define RCP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "event.h"
#include "metrics.h"

enum backend_result {
    BACKEND_VALUE = 0,          /* string reply: data/len is the value */
    BACKEND_NIL,                /* key absent: 404 / nil */
    BACKEND_WRONGTYPE,          /* data/len: Redis' error text: 409 */
    BACKEND_ERROR_REPLY,        /* other error reply, text in data: 502 */
    BACKEND_UNREACHABLE,        /* no connection: 502 */
    BACKEND_TIMEOUT             /* past --redis-timeout: 504 */
};

struct backend_reply {
    enum backend_result result;
    const char         *data;   /* borrowed: valid only during callback */
    size_t              len;
};

struct backend_waiter;
typedef void (*backend_cb)(struct backend_waiter *w,
                           const struct backend_reply *reply);

/* Embedded in the caller's object; zero it or leave it to backend_get. */
struct backend_waiter {
    struct backend_waiter *next;        /* in the fetch's waiter list */
    struct backend_waiter *prev;
    void                  *fetch;       /* borrowed: NULL when idle */
    backend_cb             cb;
    void                  *data;        /* borrowed: the caller's object */
};

struct backend;

/* Parses nothing: cfg is already valid.  cache and slot may be NULL
 * (no caching, no metrics).  Starts connecting at once.  0 or -errno. */
int  backend_create(struct event_loop *loop, const struct config *cfg,
                    struct cache *cache, struct metrics_slot_shm *slot,
                    struct backend **out);
/* Fails every waiter with BACKEND_UNREACHABLE, then frees.  Not to be
 * called from inside a waiter's callback. */
void backend_destroy(struct backend *b);

/* Starts (or joins) the fetch of key; w->cb(w, reply) runs later, never
 * from inside this call.  w must not be waiting already. */
void backend_get(struct backend *b, const void *key, size_t key_len,
                 struct backend_waiter *w, backend_cb cb, void *data);

/* Unlinks w if it is waiting; its callback will not run.  Safe on an
 * idle waiter. */
void backend_cancel(struct backend_waiter *w);

/* Number of fetches in flight (for a graceful stop). */
size_t backend_pending(const struct backend *b);

/* Maps a reply's error text: "WRONGTYPE ..." is BACKEND_WRONGTYPE, any
 * other is BACKEND_ERROR_REPLY.  Exposed for tests. */
enum backend_result backend_classify_error(const char *text, size_t len);

#endif
