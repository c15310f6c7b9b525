/*
 * tracking: keeps the shared cache coherent with Redis through client-side
 * caching (CLIENT TRACKING, Redis 6+), over RESP2 since hiredis 0.14 has
 * no RESP3 push replies: invalidations are redirected to a connection
 * SUBSCRIBEd to `__redis__:invalidate`.
 *
 * Where the subscriber lives: one per worker, on the worker's own epoll
 * loop (a redis_conn: TCP, unix or TLS, with the backend's AUTH).  In
 * the default mode Redis remembers which *connection* read a key and
 * redirects that connection's invalidations to one client id; the reads
 * are on each worker's backend connection, so each worker needs a
 * subscriber of its own to redirect to (one per proxy would need the
 * supervisor, which holds no Redis connection on the data path, to hand
 * its client id to every worker and to survive their restarts).  Per
 * worker also keeps failure local: a worker's channel and its tracked
 * connection fail and recover together, on one loop, with no
 * cross-process protocol.  In bcast mode tracking is on the subscriber
 * itself (CLIENT TRACKING on REDIRECT <own id> BCAST, then SUBSCRIBE),
 * so every worker is told every change under the prefixes: n workers
 * drop a key n times, which is cheap, and rcp_invalidations_total
 * counts each.
 *
 *   CLOSED --connect--> HELLO --CLIENT ID--> SUBSCRIBING --subscribed--> LIVE
 *     ^   (AUTH, CLIENT ID)    ([bcast: CLIENT TRACKING], SUBSCRIBE)      |
 *     +---- error, EOF, PING unanswered, CLIENT TRACKING refused --------+
 *           (backoff 100 ms .. 2 s; at once when the backend reconnects
 *            to another address: a Sentinel failover)
 *
 * UP (invalidations flow) needs: the subscriber LIVE, on the address the
 * backend's connection is on, that connection ready, and in the default
 * mode `CLIENT TRACKING on REDIRECT <subscriber id>` answered +OK on it
 * (sent through backend_command(), so it is pipelined in order with the
 * GETs: every GET sent after it is tracked).  On becoming UP the cache
 * is flushed first (what was stored while down was read untracked, or
 * its invalidations went to a dead subscriber), then the worker's slot
 * says UP.  Anything else is DOWN, at once: the slot says DOWN and no
 * worker answers from the cache (metrics_tracking_state(), asked before
 * every lookup), because a key this worker read is reported to this
 * worker's subscriber only.  Redis sends a RESP2 client nothing when a
 * redirect breaks, so loss is detected: EOF on either connection, the
 * backend's conn callback, and a PING every second on the subscriber
 * that must come back (as a "pong" message) within --redis-timeout.
 *
 * Race guard: an invalidation is a cache_delete() and a FLUSHALL a
 * cache_flush(), which bump the purge epochs, so a fetch in flight that
 * took its token before it answers its waiters but stores nothing.  A
 * drop that does not get the lock in time (CACHE_BYPASS: a writer stuck
 * past the lock's timeout) leaves its entry: the worker goes DOWN, and
 * tracking_maybe_up() retries the flush until it has the lock.
 *
 * Heartbeat: a worker that is stopped or hung while UP applies nothing
 * its subscriber is told, and cannot say DOWN.  So UP holds only until
 * the slot's heartbeat time (tracking_beat(): each PING answered, and
 * each UP, vouch for a PING's interval + --redis-timeout + slack more);
 * metrics_tracking_state() counts an UP slot past it as DOWN, for every
 * worker, /health and rcp_tracking_up alike.
 *
 * What it costs: every worker that starts (start-up, respawn, SIGHUP)
 * and every recovery flushes the whole shared cache, and a worker's exit
 * makes the supervisor flush it (metrics_reap_tracking): Redis told that
 * worker alone of the keys it read.
 *
 * --redis-cluster: a node tells only of its own keys, on its own
 * connections, so the instance above is made per node: the worker's
 * tracking is then a group (no subscriber of its own) holding one
 * instance per node backend (cluster.c) that is made and owns slots in
 * the map, each with its subscriber on that node and, in default mode,
 * CLIENT TRACKING on that node's data connection.  An instance is made
 * the moment its node backend is (before its first GET is sent), and
 * dropped, on a later turn of the loop, when a map no longer gives the
 * node a slot (a failed primary must not hold tracking down); then the
 * cache is flushed before the group is UP again, since nobody tracks
 * what was read there (its keys now live, untracked, on another node).
 * The group is UP while every instance is (none: nothing was read,
 * nothing to hear of); each instance still flushes on becoming UP, so
 * the last to recover flushes last.  Reads go to primaries only (config.c): a
 * replica's tracking would need its own subscriber.  A value read after
 * an -ASK is answered but not cached (backend.c): the node importing the
 * slot may own no slot yet, and so have no instance to hear from.
 *
 * --key-prefix: Redis names its own keys; one without our prefix is not
 * ours, and ours are dropped without it.  bcast registers the prefixes
 * (--tracking-prefix, each after --key-prefix; none: --key-prefix, or
 * every key), and a key outside them is never cached (tracking_covers).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "log.h"
#include "redis_conn.h"
#include "tracking.h"

#define TRACKING_CHANNEL        "__redis__:invalidate"
#define TRACKING_HEARTBEAT_MS   1000
#define TRACKING_BACKOFF_MIN_MS 100
#define TRACKING_BACKOFF_MAX_MS 2000
#define TRACKING_RETRY_MS       50 /* a flush timed out on the lock */
/* The heartbeat's grace past a PING's interval and --redis-timeout, for
 * a loaded machine's late timers: past them all a worker whose PING
 * has not come back counts as DOWN (metrics_tracking_beat). */
#define TRACKING_BEAT_SLACK_MS 500
#define TRACKING_WHY_MAX       320

enum tracking_sub {
    TRACKING_SUB_CLOSED = 0,
    TRACKING_SUB_HELLO,       /* AUTH (if any) and CLIENT ID sent */
    TRACKING_SUB_SUBSCRIBING, /* [CLIENT TRACKING], SUBSCRIBE sent */
    TRACKING_SUB_LIVE
};

struct tracking {
    struct event_loop       *loop;    /* borrowed */
    const struct config     *cfg;     /* borrowed */
    struct backend          *backend; /* borrowed */
    struct cache            *cache;   /* borrowed, may be NULL */
    struct metrics_slot_shm *slot;    /* borrowed, may be NULL */
    enum config_tracking     mode;
    char                     key_prefix[CONFIG_ITEM_MAX];
    size_t                   key_prefix_len;

    /* The subscriber. */
    struct redis_conn  sub;
    enum tracking_sub  sub_state;
    unsigned           hello_left;                /* AUTH replies due */
    unsigned           ok_left;                   /* bcast: CLIENT TRACKING */
    long long          sub_id;                    /* CLIENT ID, once known */
    char               sub_host[CONFIG_PATH_MAX]; /* where it is: */
    uint16_t           sub_port;                  /* host/port or unix path */
    bool               sub_unix;
    char               sub_addr[CONFIG_PATH_MAX + 16]; /* logs */
    bool               ping_due;     /* a PING not answered yet */
    uint64_t           ping_sent_ms; /* metrics_clock_ms() of the last */
    uint64_t           backoff_ms;
    struct event_timer reconnect;
    struct event_timer heartbeat; /* interval, then deadline */

    /* The backend's connection (the tracked one in default mode). */
    bool                  backend_up;
    bool                  data_tracked; /* +OK on this connection,
                                           for this subscriber */
    uint64_t              seq;          /* bumped by every change to
                                           either connection */
    uint64_t              sent_seq;     /* of the command in flight */
    struct backend_waiter waiter;       /* CLIENT TRACKING in flight */
    struct event_timer    kick;         /* 0 ms: act outside the
                                           backend's callbacks */

    bool up;
    bool ever_up;

    /* --redis-cluster.  A group: cluster set, nodes[] its instances (by
     * the map's node index), no subscriber.  An instance: group set. */
    struct cluster    *cluster; /* borrowed */
    struct tracking  **nodes;   /* owned, CLUSTER_SLOTS_NODES_MAX */
    struct tracking   *group;   /* borrowed */
    struct event_timer reconcile;
    bool               flush_due; /* a node left: what was read there
                                     is tracked by nobody now */
};

static void tracking_connect(struct tracking *t);

/* --- the message parser ------------------------------------------------ */

static bool
tracking_str_is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);

    return r->type == REDIS_REPLY_STRING && r->len == n
           && memcmp(r->str, s, n) == 0;
}

enum tracking_msg
tracking_parse(const redisReply *r, const redisReply **keys)
{
    const redisReply *body;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        return TRACKING_MSG_OTHER;
    }
    if (tracking_str_is(r->element[0], "pong")) {
        return TRACKING_MSG_PONG;
    }
    if (r->elements != 3
        || !tracking_str_is(r->element[1], TRACKING_CHANNEL)) {
        return TRACKING_MSG_OTHER;
    }
    if (tracking_str_is(r->element[0], "subscribe")) {
        return TRACKING_MSG_SUBSCRIBED;
    }
    if (!tracking_str_is(r->element[0], "message")) {
        return TRACKING_MSG_OTHER;
    }
    body = r->element[2];
    if (body->type != REDIS_REPLY_ARRAY) {
        return TRACKING_MSG_FLUSH; /* nil: FLUSHALL, FLUSHDB */
    }
    for (size_t i = 0; i < body->elements; i++) {
        if (body->element[i]->type != REDIS_REPLY_STRING) {
            return TRACKING_MSG_FLUSH; /* unreadable: the safe reading */
        }
    }
    *keys = body;
    return TRACKING_MSG_KEYS;
}

/* --- up and down --------------------------------------------------------- */

/* The heartbeat (metrics_tracking_beat): every invalidation Redis sent
 * this worker before base_ms has been applied, and the next proof is due
 * within a PING's interval and --redis-timeout (and the slack); a worker
 * that misses it goes DOWN itself, and one that cannot (stopped, hung)
 * is counted DOWN by the others once it has passed. */
static void
tracking_beat(struct tracking *t, uint64_t base_ms)
{
    if (t->slot != NULL) {
        metrics_tracking_beat(t->slot, base_ms + TRACKING_HEARTBEAT_MS
                                           + t->cfg->redis_timeout_ms
                                           + TRACKING_BEAT_SLACK_MS);
    }
}

/* A group is UP while every instance is. */
static void
tracking_group_update(struct tracking *g)
{
    bool up = true;

    for (uint32_t i = 0; i < CLUSTER_SLOTS_NODES_MAX; i++) {
        if (g->nodes[i] != NULL && !g->nodes[i]->up) {
            up = false;
        }
    }
    if (up && g->flush_due && g->cache != NULL
        && cache_flush(g->cache) == CACHE_BYPASS
        && !cache_poisoned(g->cache)) {
        /* The lock was busy: stay down, try again. */
        (void) event_timer_start(g->loop, &g->reconcile, TRACKING_RETRY_MS);
        up = false;
    } else if (up) {
        g->flush_due = false;
    }
    g->up = up;
    if (up && g->slot != NULL) {
        bool any = false;

        for (uint32_t i = 0; i < CLUSTER_SLOTS_NODES_MAX; i++) {
            any = any || g->nodes[i] != NULL;
        }
        /* No node read from: no subscriber to PING, and nothing that
         * anybody must hear of (instances beat the slot themselves). */
        if (any) {
            tracking_beat(g, metrics_clock_ms());
        } else {
            metrics_tracking_beat(g->slot, UINT64_MAX);
        }
    }
    if (g->slot != NULL) {
        metrics_set_tracking(g->slot,
                             up ? METRICS_TRACKING_UP : METRICS_TRACKING_DOWN);
    }
}

/* Call after t->up changed. */
static void
tracking_set_slot(struct tracking *t, int64_t state)
{
    if (t->group != NULL) {
        tracking_group_update(t->group);
    } else if (t->slot != NULL) {
        metrics_set_tracking(t->slot, state);
    }
}

static void
tracking_down(struct tracking *t, const char *why)
{
    bool was_up = t->up;

    t->up = false;
    tracking_set_slot(t, METRICS_TRACKING_DOWN);
    if (was_up) {
        log_warn("tracking: %s; answering from Redis, not the cache, until "
                 "tracking is back",
                 why);
    } else {
        log_debug("tracking: %s", why);
    }
}

static bool
tracking_same_target(const struct tracking *t, const struct backend_target *bt)
{
    if (t->sub_state == TRACKING_SUB_CLOSED || bt->is_unix != t->sub_unix) {
        return false;
    }
    return bt->is_unix
               ? strcmp(bt->path, t->sub_host) == 0
               : bt->port == t->sub_port && strcmp(bt->host, t->sub_host) == 0;
}

/* Becomes UP when everything holds: flush first, then say so. */
static void
tracking_maybe_up(struct tracking *t)
{
    struct backend_target bt;

    if (t->up || t->sub_state != TRACKING_SUB_LIVE || !t->backend_up
        || (t->mode == CONFIG_TRACKING_DEFAULT && !t->data_tracked)
        || !backend_target(t->backend, &bt) || !tracking_same_target(t, &bt)) {
        return;
    }
    if (t->cache != NULL && cache_flush(t->cache) == CACHE_BYPASS
        && !cache_poisoned(t->cache)) {
        /* The lock was busy: entries read untracked may remain. */
        (void) event_timer_start(t->loop, &t->kick, TRACKING_RETRY_MS);
        return;
    }
    t->up = true;
    tracking_beat(t, metrics_clock_ms());
    tracking_set_slot(t, METRICS_TRACKING_UP);
    if (!t->ever_up) {
        log_info("tracking (%s): invalidations from %s on client %lld",
                 config_tracking_name(t->mode), t->sub_addr, t->sub_id);
    } else {
        log_warn("tracking (%s): back on %s (client %lld); cache flushed",
                 config_tracking_name(t->mode), t->sub_addr, t->sub_id);
    }
    t->ever_up = true;
    t->backoff_ms = TRACKING_BACKOFF_MIN_MS;
}

/* The subscriber is gone or untrusted: close it, retry after the
 * backoff. */
static void
tracking_lost(struct tracking *t, const char *why)
{
    char line[TRACKING_WHY_MAX];

    (void) snprintf(line, sizeof(line), "subscriber %.120s: %.180s",
                    t->sub_addr, why);
    redis_conn_close(&t->sub);
    t->sub_state = TRACKING_SUB_CLOSED;
    t->sub_id = 0;
    t->ping_due = false;
    t->data_tracked = false;
    t->seq++;
    event_timer_stop(t->loop, &t->heartbeat);
    tracking_down(t, line);
    (void) event_timer_start(t->loop, &t->reconnect, t->backoff_ms);
    t->backoff_ms *= 2;
    if (t->backoff_ms > TRACKING_BACKOFF_MAX_MS) {
        t->backoff_ms = TRACKING_BACKOFF_MAX_MS;
    }
}

/* --- the subscriber ------------------------------------------------------ */

static int
tracking_send_words(struct tracking *t, int argc, const char **argv)
{
    size_t lens[8];

    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    return redis_conn_send_argv(&t->sub, argc, argv, lens);
}

/* After CLIENT ID: bcast turns tracking on here, redirected to itself;
 * then SUBSCRIBE.  Pipelined: one round trip. */
static int
tracking_send_subscribe(struct tracking *t)
{
    const char               *argv[3 + 2 * CONFIG_LIST_MAX + 2];
    size_t                    lens[3 + 2 * CONFIG_LIST_MAX + 2];
    char                      id[24];
    char                     *prefixed[CONFIG_LIST_MAX] = { NULL };
    const struct config_list *l = &t->cfg->tracking_prefixes;
    int                       argc = 0;
    int                       rc = 0;

    if (t->mode == CONFIG_TRACKING_BCAST) {
        (void) snprintf(id, sizeof(id), "%lld", t->sub_id);
        argv[argc++] = "CLIENT";
        argv[argc++] = "TRACKING";
        argv[argc++] = "on";
        argv[argc++] = "REDIRECT";
        argv[argc++] = id;
        argv[argc++] = "BCAST";
        for (int i = 0; i < argc; i++) {
            lens[i] = strlen(argv[i]);
        }
        for (uint32_t i = 0; i < l->n; i++) {
            size_t n = strlen(l->items[i]);

            prefixed[i] = malloc(t->key_prefix_len + n + 1);
            if (prefixed[i] == NULL) {
                rc = -ENOMEM;
                goto done;
            }
            memcpy(prefixed[i], t->key_prefix, t->key_prefix_len);
            memcpy(prefixed[i] + t->key_prefix_len, l->items[i], n + 1);
            argv[argc] = "PREFIX";
            lens[argc++] = 6;
            argv[argc] = prefixed[i];
            lens[argc++] = t->key_prefix_len + n;
        }
        if (l->n == 0 && t->key_prefix_len > 0) {
            argv[argc] = "PREFIX";
            lens[argc++] = 6;
            argv[argc] = t->key_prefix;
            lens[argc++] = t->key_prefix_len;
        }
        rc = redis_conn_send_argv(&t->sub, argc, argv, lens);
        if (rc != 0) {
            goto done;
        }
        t->ok_left = 1;
    }
    argv[0] = "SUBSCRIBE";
    argv[1] = TRACKING_CHANNEL;
    rc = tracking_send_words(t, 2, argv);
done:
    for (uint32_t i = 0; i < l->n; i++) {
        free(prefixed[i]);
    }
    return rc;
}

/* Drops what Redis says changed.  A drop that did not get the cache
 * lock in time (CACHE_BYPASS: a writer held it past the lock's timeout)
 * left the entry in place, so it would be a stale hit once the lock is
 * free: tracking goes DOWN (no worker answers from the cache) and comes
 * back, through tracking_maybe_up(), only after a whole flush has had
 * the lock.  A poisoned cache needs none of that: its recovery empties
 * the index. */
static void
tracking_invalidate(struct tracking *t, enum tracking_msg kind,
                    const redisReply *keys)
{
    uint64_t n = 0;
    bool     missed = false;

    if (kind == TRACKING_MSG_FLUSH) {
        if (t->cache != NULL) {
            missed = cache_flush(t->cache) == CACHE_BYPASS;
        }
        n = 1;
        log_debug("tracking: Redis flushed: cache flushed");
    } else {
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];

            if (k->len < t->key_prefix_len
                || memcmp(k->str, t->key_prefix, t->key_prefix_len) != 0) {
                continue; /* not one of ours */
            }
            /* After one miss the rest would each wait out the lock's
             * timeout too; the flush that must come first drops them. */
            if (t->cache != NULL && !missed
                && cache_delete(t->cache, k->str + t->key_prefix_len,
                                k->len - t->key_prefix_len)
                       == CACHE_BYPASS) {
                missed = true;
            }
            n++;
        }
    }
    if (t->slot != NULL && n > 0) {
        metrics_count_invalidations(t->slot, n);
    }
    if (missed && !cache_poisoned(t->cache)) {
        tracking_down(t, "an invalidation did not get the cache lock in "
                         "time; the cache is flushed before it is used "
                         "again");
        (void) event_timer_start(t->loop, &t->kick, TRACKING_RETRY_MS);
    }
}

static void
tracking_on_open(struct redis_conn *c)
{
    (void) c; /* the HELLO replies say more */
}

static void
tracking_on_error(struct redis_conn *c, enum redis_conn_error kind,
                  const char *why)
{
    struct tracking *t = c->data;

    (void) kind;
    t->sub_state = TRACKING_SUB_CLOSED; /* already closed */
    tracking_lost(t, why);
}

/* One reply before LIVE: AUTH's, CLIENT ID's, CLIENT TRACKING's, then
 * SUBSCRIBE's confirmation. */
static void
tracking_handshake_reply(struct tracking *t, const redisReply *rr)
{
    char              why[TRACKING_WHY_MAX];
    const redisReply *keys = NULL;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        (void) snprintf(why, sizeof(why), "%s failed: %.*s",
                        t->hello_left > 0 ? "AUTH"
                        : t->sub_state == TRACKING_SUB_HELLO
                            ? "CLIENT ID"
                            : "CLIENT TRACKING",
                        (int) (rr->len > 160 ? 160 : rr->len), rr->str);
        if (!t->ever_up) {
            log_error("tracking: %s", why);
        }
        tracking_lost(t, why);
        return;
    }
    if (t->hello_left > 0) {
        t->hello_left--;
        return;
    }
    if (t->sub_state == TRACKING_SUB_HELLO) {
        if (rr == NULL || rr->type != REDIS_REPLY_INTEGER) {
            tracking_lost(t, "CLIENT ID: unexpected reply");
            return;
        }
        t->sub_id = rr->integer;
        t->sub_state = TRACKING_SUB_SUBSCRIBING;
        if (tracking_send_subscribe(t) != 0) {
            tracking_lost(t, "out of memory for SUBSCRIBE");
        }
        return;
    }
    if (t->ok_left > 0) {
        t->ok_left--;
        return;
    }
    if (rr == NULL || tracking_parse(rr, &keys) != TRACKING_MSG_SUBSCRIBED) {
        tracking_lost(t, "SUBSCRIBE: unexpected reply");
        return;
    }
    t->sub_state = TRACKING_SUB_LIVE;
    t->ping_due = false;
    t->seq++;
    t->data_tracked = false;
    (void) event_timer_start(t->loop, &t->heartbeat, TRACKING_HEARTBEAT_MS);
    /* Default mode: the backend's connection redirects to the new id. */
    (void) event_timer_start(t->loop, &t->kick, 0);
    tracking_maybe_up(t);
}

static void
tracking_on_reply(struct redis_conn *c, const struct redis_conn_reply *r)
{
    struct tracking  *t = c->data;
    const redisReply *rr = r->kind == REDIS_CONN_REPLY_OTHER ? r->reply : NULL;
    const redisReply *keys = NULL;
    enum tracking_msg kind;

    if (t->sub_state != TRACKING_SUB_LIVE) {
        tracking_handshake_reply(t, rr);
        return;
    }
    if (r->kind == REDIS_CONN_REPLY_TOO_LARGE) {
        /* A key list over --max-reply-size: whatever it named goes. */
        tracking_invalidate(t, TRACKING_MSG_FLUSH, NULL);
        return;
    }
    if (rr == NULL) {
        return;
    }
    kind = tracking_parse(rr, &keys);
    switch (kind) {
    case TRACKING_MSG_PONG:
        /* Everything Redis sent before it saw the PING is applied. */
        t->ping_due = false;
        tracking_beat(t, t->ping_sent_ms);
        (void) event_timer_start(t->loop, &t->heartbeat,
                                 TRACKING_HEARTBEAT_MS);
        break;
    case TRACKING_MSG_KEYS:
    case TRACKING_MSG_FLUSH:
        tracking_invalidate(t, kind, keys);
        break;
    case TRACKING_MSG_SUBSCRIBED:
    case TRACKING_MSG_OTHER:
        break;
    }
}

static const struct redis_conn_ops tracking_conn_ops = {
    .on_open = tracking_on_open,
    .on_reply = tracking_on_reply,
    .on_error = tracking_on_error,
};

/* Opens the subscriber where the backend connects now. */
static void
tracking_connect(struct tracking *t)
{
    struct backend_target    bt;
    struct redis_conn_target ct;
    char                     why[REDIS_CONN_WHY_MAX];
    const char              *argv[3];
    int                      argc = 0;
    int                      rc;

    event_timer_stop(t->loop, &t->reconnect);
    if (t->sub_state != TRACKING_SUB_CLOSED) {
        redis_conn_close(&t->sub);
        t->sub_state = TRACKING_SUB_CLOSED;
    }
    if (!backend_target(t->backend, &bt)) {
        return; /* the backend's conn callback calls */
    }
    t->sub_unix = bt.is_unix;
    (void) snprintf(t->sub_host, sizeof(t->sub_host), "%s",
                    bt.is_unix ? bt.path : bt.host);
    t->sub_port = bt.port;
    (void) snprintf(t->sub_addr, sizeof(t->sub_addr), "%s", bt.addr);
    ct.is_unix = bt.is_unix;
    ct.host = bt.host;
    ct.port = bt.port;
    ct.path = bt.path;
    ct.tls = bt.tls;
    ct.server_name = bt.server_name;
    rc = redis_conn_open(&t->sub, &ct, t->cfg->max_reply_bytes, why);
    if (rc != 0) {
        tracking_lost(t, why);
        return;
    }
    t->sub_state = TRACKING_SUB_HELLO;
    (void) event_timer_start(t->loop, &t->heartbeat, t->cfg->redis_timeout_ms);
    t->hello_left = 0;
    t->ok_left = 0;
    t->sub_id = 0;
    if (bt.password[0] != '\0') {
        argv[argc++] = "AUTH";
        if (bt.user[0] != '\0') {
            argv[argc++] = bt.user;
        }
        argv[argc++] = bt.password;
        if (tracking_send_words(t, argc, argv) != 0) {
            tracking_lost(t, "out of memory for AUTH");
            return;
        }
        t->hello_left = 1;
    }
    argv[0] = "CLIENT";
    argv[1] = "ID";
    if (tracking_send_words(t, 2, argv) != 0) {
        tracking_lost(t, "out of memory for CLIENT ID");
    }
}

/* --- timers -------------------------------------------------------------- */

static void
tracking_on_reconnect(struct event_loop *loop, struct event_timer *timer)
{
    (void) loop;
    tracking_connect(timer->data);
}

static void
tracking_on_heartbeat(struct event_loop *loop, struct event_timer *timer)
{
    struct tracking *t = timer->data;
    const char      *argv[1] = { "PING" };
    char             why[TRACKING_WHY_MAX];

    (void) loop;
    if (t->sub_state == TRACKING_SUB_CLOSED) {
        return;
    }
    if (t->sub_state != TRACKING_SUB_LIVE) {
        /* A Redis that accepts and never answers (stopped, or not
         * Redis at all) must not hold the subscriber forever. */
        (void) snprintf(why, sizeof(why),
                        "no answer for %" PRIu64 " ms "
                        "while subscribing",
                        t->cfg->redis_timeout_ms);
        tracking_lost(t, why);
        return;
    }
    if (t->ping_due) {
        (void) snprintf(why, sizeof(why),
                        "no answer to PING for %" PRIu64 " ms",
                        t->cfg->redis_timeout_ms);
        tracking_lost(t, why);
        return;
    }
    if (tracking_send_words(t, 1, argv) != 0) {
        tracking_lost(t, "out of memory for PING");
        return;
    }
    t->ping_due = true;
    t->ping_sent_ms = metrics_clock_ms();
    (void) event_timer_start(t->loop, &t->heartbeat, t->cfg->redis_timeout_ms);
}

static void tracking_on_tracked(struct backend_waiter      *w,
                                const struct backend_reply *r);

/* Default mode: asks the backend's connection to redirect its
 * invalidations to the subscriber, once both are there; and retries a
 * flush that did not get the lock. */
static void
tracking_on_kick(struct event_loop *loop, struct event_timer *timer)
{
    struct tracking *t = timer->data;
    char             id[24];
    const char      *argv[5] = { "CLIENT", "TRACKING", "on", "REDIRECT", id };
    size_t           lens[5] = { 6, 8, 2, 8, 0 };

    (void) loop;
    if (t->mode == CONFIG_TRACKING_DEFAULT && t->backend_up
        && t->sub_state == TRACKING_SUB_LIVE && !t->data_tracked
        && t->waiter.fetch == NULL) {
        (void) snprintf(id, sizeof(id), "%lld", t->sub_id);
        lens[4] = strlen(id);
        t->sent_seq = t->seq;
        /* No key: --key-prefix is not put before any argument. */
        backend_command(t->backend, 5, argv, lens, 5, &t->waiter,
                        tracking_on_tracked, t);
        return;
    }
    tracking_maybe_up(t);
}

static void
tracking_on_tracked(struct backend_waiter *w, const struct backend_reply *r)
{
    struct tracking *t = w->data;
    char             why[TRACKING_WHY_MAX];

    if (t->sent_seq != t->seq) {
        /* Either connection changed meanwhile: ask again on the
         * present pair. */
        (void) event_timer_start(t->loop, &t->kick, 0);
        return;
    }
    if (r->result == BACKEND_VALUE && r->len >= 3
        && memcmp(r->data, "+OK", 3) == 0) {
        t->data_tracked = true;
        tracking_maybe_up(t);
        return;
    }
    if (r->result == BACKEND_VALUE) {
        (void) snprintf(why, sizeof(why), "CLIENT TRACKING refused: %.*s",
                        (int) (r->len > 160 ? 160 : r->len), r->data);
        if (!t->ever_up) {
            log_error("tracking: %s", why);
        }
    } else {
        (void) snprintf(why, sizeof(why), "CLIENT TRACKING got no answer");
    }
    /* Start over: a fresh subscriber, then the command again. */
    tracking_lost(t, why);
}

/* --- the backend's connection ------------------------------------------ */

static void
tracking_backend_conn(void *arg, bool up)
{
    struct tracking *t = arg;

    t->backend_up = up;
    t->data_tracked = false;
    t->seq++;
    if (!up) {
        tracking_down(t, "the connection to Redis was lost");
        return;
    }
    /* Never call into the backend from its own callback. */
    (void) event_timer_start(t->loop, &t->kick, 0);
    {
        struct backend_target bt;

        if (backend_target(t->backend, &bt) && !tracking_same_target(t, &bt)
            && (t->sub_state != TRACKING_SUB_CLOSED
                || !event_timer_active(&t->reconnect))) {
            /* A new address (Sentinel), or no subscriber yet. */
            t->backoff_ms = TRACKING_BACKOFF_MIN_MS;
            (void) event_timer_start(t->loop, &t->reconnect, 0);
        }
    }
}

/* --- the interface ------------------------------------------------------- */

bool
tracking_covers(const struct tracking *t, const void *key, size_t key_len)
{
    const struct config_list *l;

    if (t == NULL || t->mode != CONFIG_TRACKING_BCAST) {
        return true;
    }
    l = &t->cfg->tracking_prefixes;
    if (l->n == 0) {
        return true;
    }
    for (uint32_t i = 0; i < l->n; i++) {
        size_t n = strlen(l->items[i]);

        if (key_len >= n && memcmp(key, l->items[i], n) == 0) {
            return true;
        }
    }
    return false;
}

/* One instance: a subscriber for the backend b (one Redis, or a node). */
static int
tracking_create_one(struct event_loop *loop, const struct config *cfg,
                    struct backend *b, struct cache *cache,
                    struct metrics_slot_shm *slot, struct tracking *group,
                    struct tracking **out)
{
    struct tracking *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        return -ENOMEM;
    }
    t->loop = loop;
    t->cfg = cfg;
    t->backend = b;
    t->cache = cache;
    t->slot = slot;
    t->group = group;
    t->mode = cfg->tracking;
    t->key_prefix_len = strlen(cfg->key_prefix);
    memcpy(t->key_prefix, cfg->key_prefix, t->key_prefix_len);
    t->backoff_ms = TRACKING_BACKOFF_MIN_MS;
    (void) snprintf(t->sub_addr, sizeof(t->sub_addr), "(none yet)");
    redis_conn_init(&t->sub, loop, &tracking_conn_ops, t);
    event_timer_init(&t->reconnect, tracking_on_reconnect, t);
    event_timer_init(&t->heartbeat, tracking_on_heartbeat, t);
    event_timer_init(&t->kick, tracking_on_kick, t);
    /* In its group's nodes[] before anything below counts it. */
    *out = t;
    /* Down until the channel is whole: no worker answers from the cache
     * before this worker can hear of the keys it reads. */
    tracking_set_slot(t, METRICS_TRACKING_DOWN);
    backend_set_conn_cb(b, tracking_backend_conn, t);
    /* A node already connected (back in the map): no "up" will come. */
    t->backend_up = group != NULL && backend_node_state(b) == METRICS_NODE_UP;
    tracking_connect(t);
    if (t->backend_up) {
        (void) event_timer_start(loop, &t->kick, 0);
    }
    return 0;
}

static void
tracking_destroy_one(struct tracking *t)
{
    backend_set_conn_cb(t->backend, NULL, NULL);
    backend_cancel(&t->waiter);
    event_timer_stop(t->loop, &t->reconnect);
    event_timer_stop(t->loop, &t->heartbeat);
    event_timer_stop(t->loop, &t->kick);
    redis_conn_close(&t->sub);
    redis_conn_fini(&t->sub);
    free(t);
}

/* A group: an instance for each node backend that owns slots, made at
 * once; one that no longer does is dropped only when drop (from the
 * timer: never inside the backend or cluster code that told us). */
static void
tracking_group_sync(struct tracking *g, bool drop)
{
    struct backend *want[CLUSTER_SLOTS_NODES_MAX];
    bool            stale = false;

    cluster_primaries(g->cluster, want);
    for (uint32_t i = 0; i < CLUSTER_SLOTS_NODES_MAX; i++) {
        struct tracking *n = g->nodes[i];

        if (n != NULL && n->backend != want[i]) {
            if (!drop) {
                stale = true;
                continue;
            }
            log_info("tracking: node %s left the map: subscriber closed",
                     n->sub_addr);
            tracking_destroy_one(n);
            g->nodes[i] = NULL;
            n = NULL;
            g->flush_due = true;
        }
        if (n == NULL && want[i] != NULL
            && tracking_create_one(g->loop, g->cfg, want[i], g->cache, g->slot,
                                   g, &g->nodes[i])
                   != 0) {
            /* Without its subscriber this node's reads are untracked:
             * stay down and try again. */
            log_error("tracking: out of memory for a node's subscriber");
            g->nodes[i] = NULL;
            stale = true;
        }
    }
    tracking_group_update(g);
    if (stale && !drop) {
        (void) event_timer_start(g->loop, &g->reconcile, 0);
    } else if (stale) {
        (void) event_timer_start(g->loop, &g->reconcile, TRACKING_RETRY_MS);
        if (g->slot != NULL) {
            metrics_set_tracking(g->slot, METRICS_TRACKING_DOWN);
        }
    }
}

static void
tracking_on_nodes(void *arg)
{
    tracking_group_sync(arg, false);
}

static void
tracking_on_reconcile(struct event_loop *loop, struct event_timer *timer)
{
    (void) loop;
    tracking_group_sync(timer->data, true);
}

int
tracking_create(struct event_loop *loop, const struct config *cfg,
                struct backend *b, struct cache *cache,
                struct metrics_slot_shm *slot, struct tracking **out)
{
    struct tracking *g;

    *out = NULL;
    if (cfg->tracking == CONFIG_TRACKING_OFF) {
        return 0;
    }
    if (backend_cluster(b) == NULL) {
        return tracking_create_one(loop, cfg, b, cache, slot, NULL, out);
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return -ENOMEM;
    }
    g->nodes = calloc(CLUSTER_SLOTS_NODES_MAX, sizeof(*g->nodes));
    if (g->nodes == NULL) {
        free(g);
        return -ENOMEM;
    }
    g->loop = loop;
    g->cfg = cfg;
    g->backend = b;
    g->cache = cache;
    g->slot = slot;
    g->mode = cfg->tracking;
    g->cluster = backend_cluster(b);
    event_timer_init(&g->reconcile, tracking_on_reconcile, g);
    cluster_set_nodes_cb(g->cluster, tracking_on_nodes, g);
    tracking_group_sync(g, false);
    *out = g;
    return 0;
}

void
tracking_destroy(struct tracking *t)
{
    if (t == NULL) {
        return;
    }
    if (t->cluster != NULL) {
        cluster_set_nodes_cb(t->cluster, NULL, NULL);
        event_timer_stop(t->loop, &t->reconcile);
        for (uint32_t i = 0; i < CLUSTER_SLOTS_NODES_MAX; i++) {
            if (t->nodes[i] != NULL) {
                tracking_destroy_one(t->nodes[i]);
            }
        }
        free(t->nodes);
        free(t);
        return;
    }
    tracking_destroy_one(t);
}
