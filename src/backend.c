/*
 * backend: owns the worker's hiredis async context, our event-loop
 * adapter for it, the table of pending fetches and the reconnect logic.
 *
 * Fetches.  backend_get() finds the pending fetch for a key in a chained
 * hash table or creates one (a copy of the key, a waiter list, a
 * deadline timer, a start time) and sends "GET key" at once.  hiredis'
 * privdata is the fetch record, never a connection.  A fetch ends once:
 * by its reply, its deadline, the loss of its connection, or
 * backend_destroy(); it then leaves the table, and its waiters are
 * popped one at a time and called, so a callback may cancel other
 * waiters or start new fetches (which never join the ending one).  The
 * record itself lives on while hiredis still holds it as privdata
 * (in_hiredis), because hiredis calls every pending callback, with a
 * NULL reply if the context dies; then it is freed.  A fetch whose
 * waiters all cancelled still runs to its end: the reply is consumed
 * and still fills the cache.
 *
 * Callbacks never run inside backend_get(): a fetch that cannot be sent
 * now goes on the unsent list, which the zero-delay `kick` timer sends
 * or fails on the next loop iteration.
 *
 * Connection states:
 *
 *   CONNECTING ---> HANDSHAKE ---> READY     (HANDSHAKE is skipped
 *        |              |            |        without AUTH/SELECT)
 *        +--------------+------------+---> CLOSING --cleanup hook--+
 *          error, deadline, loss, reset                             |
 *        ^                                                          v
 *        +--- at once --- RETRY  <--- a reset, or lost after a GET answered
 *        +--- backoff --- DOWN   <--- anything else
 *
 * - DOWN: no context; the reconnect timer waits 100 ms, doubling to
 *   2 s, back to 100 ms once a connection is ready.  New fetches fail
 *   BACKEND_UNREACHABLE on the next iteration.
 * - RETRY: no context, the reconnect timer is due at once; fetches wait
 *   on the unsent list and are sent on the new context.  Entered after
 *   we reset a connection for a timeout, or after losing one that had
 *   answered a GET (e.g. Redis' idle `timeout` closed it), so neither
 *   costs a 502 window.
 * - CONNECTING / HANDSHAKE: fetches are pipelined behind AUTH and
 *   SELECT, which are sent with the connect.  The connect (TCP plus
 *   handshake) has its own deadline of --redis-timeout.  A failed AUTH
 *   or SELECT is logged and treated as unreachable, with backoff.
 * - CLOSING: the context is being freed (by us or by hiredis); its
 *   NULL-reply callbacks are draining.  The ev.cleanup hook, which
 *   hiredis calls once per context after those callbacks, picks the
 *   next state.
 *
 * Deadlines.  A fetch past --redis-timeout on a connected context fails
 * with BACKEND_TIMEOUT and the connection is reset (redisAsyncFree),
 * since Redis answers in order and everything queued behind the late
 * reply waits for it.  The other fetches that were in flight on it lose
 * their answers but not their own deadlines: they are re-sent on a new
 * connection made at once, and fail only when their own deadline
 * passes (TIMEOUT) or the new connection cannot be made (UNREACHABLE).
 * A fetch whose deadline passes before its connection was established,
 * or while it waits to be sent, fails with BACKEND_UNREACHABLE without a
 * reset (the connect deadline deals with the connection).  Every other
 * loss of a connection fails its in-flight fetches with UNREACHABLE.
 *
 * Metrics count Redis requests, not waiters: one error or one duration
 * per fetch.  Every reply is timed; WRONGTYPE is the client's mistake
 * and not a reply error; fetches failed by backend_destroy() count
 * nothing.  hiredis writes with write(2): the process must ignore
 * SIGPIPE, or a Redis that closes its end kills the worker.
 *
 * Hostnames: hiredis resolves them inside redisAsyncConnect(), which
 * blocks.  That happens only when (re)connecting, never per request;
 * use an address (or unix:PATH) to avoid it entirely.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "backend.h"
#include "log.h"

#define BACKEND_BACKOFF_MIN_MS    100
#define BACKEND_BACKOFF_MAX_MS    2000
#define BACKEND_WARN_INTERVAL_MS  1000
#define BACKEND_BUCKETS_MIN       64
#define BACKEND_WHY_MAX           192
#define BACKEND_ADDR_MAX          (CONFIG_PATH_MAX + 8)

enum backend_state {
    BACKEND_DOWN = 0,
    BACKEND_RETRY,
    BACKEND_CONNECTING,
    BACKEND_HANDSHAKE,
    BACKEND_READY,
    BACKEND_CLOSING
};

/* What the end of the current context means for its fetches. */
enum backend_fate {
    BACKEND_FATE_LOST = 0,      /* fail them: UNREACHABLE */
    BACKEND_FATE_RESET,         /* we reset it: re-send them */
    BACKEND_FATE_DESTROY        /* backend_destroy: fail them, no metric */
};

struct backend_fetch {
    struct backend        *b;           /* borrowed: the owner */
    struct backend_fetch  *hash_next;   /* chain, while in the table */
    struct backend_fetch  *unsent_prev; /* while on b's unsent list */
    struct backend_fetch  *unsent_next;
    struct backend_waiter *head;        /* borrowed: callers' waiters */
    struct backend_waiter *tail;
    struct event_timer     deadline;    /* --redis-timeout from start */
    uint64_t               hash;
    uint64_t               start_us;    /* for the duration histogram */
    bool                   done;        /* ended: out of table and list */
    bool                   unsent;
    bool                   in_hiredis;  /* hiredis holds it as privdata */
    bool                   finishing;   /* its waiters are being called */
    size_t                 key_len;
    char                   key[];       /* owned, key_len bytes */
};

struct backend {
    struct event_loop       *loop;      /* borrowed: outlives b */
    struct cache            *cache;     /* borrowed, may be NULL */
    struct metrics_slot_shm *slot;      /* borrowed, may be NULL */

    /* Copied from the config, which may be replaced on reload. */
    struct config_redis      redis;
    char                     user[CONFIG_SECRET_MAX];
    char                     password[CONFIG_SECRET_MAX];
    uint32_t                 db;
    uint64_t                 timeout_ms;
    char                     addr[BACKEND_ADDR_MAX];   /* for logs */

    redisAsyncContext       *ac;        /* hiredis': NULL when none */
    struct event_io          io;        /* ac's fd */
    unsigned                 io_mask;   /* what hiredis asked for */
    bool                     io_failed; /* epoll_ctl failed: close ac */
    enum backend_state       state;
    enum backend_fate        fate;
    unsigned                 handshake_left;    /* AUTH/SELECT pending */
    bool                     answered;  /* this context answered a GET */
    bool                     destroying;
    uint64_t                 backoff_ms;
    char                     why[BACKEND_WHY_MAX];  /* why ac ended */

    struct event_timer       reconnect;
    struct event_timer       connect_deadline;
    struct event_timer       kick;      /* 0 ms: unsent list, oom */

    struct backend_fetch   **buckets;   /* owned array, owned fetches */
    size_t                   nbuckets;  /* a power of two */
    size_t                   nfetches;  /* in the table: not done */
    uint64_t                 seed;      /* clients choose keys */

    struct backend_fetch    *unsent_head;   /* borrowed from the table */
    struct backend_fetch    *unsent_tail;
    size_t                   nunsent;

    /* Waiters whose fetch could not be allocated: failed by kick.  A
     * fetch record that is never in the table and never sent. */
    struct backend_fetch    *oom;       /* owned */

    /* Log state: transitions are logged once, repeats rate-limited. */
    bool                     logged_up;
    bool                     logged_down;
    bool                     warned;
    uint64_t                 warn_last_ms;
    uint64_t                 warn_suppressed;
};

static void backend_connect(struct backend *b);
static void backend_fetch_release(struct backend_fetch *f);

static uint64_t
backend_now_us(void)
{
    struct timespec ts;

    /* The loop's clock is per iteration and in ms; the histogram wants
     * the real elapsed time in µs. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void backend_warn(struct backend *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rate-limited warning: at most one line per BACKEND_WARN_INTERVAL_MS,
 * the next one saying how many were dropped in between. */
static void
backend_warn(struct backend *b, const char *fmt, ...)
{
    uint64_t now_ms = event_now_ms(b->loop);
    char line[512];
    va_list ap;

    if (b->warned && now_ms - b->warn_last_ms < BACKEND_WARN_INTERVAL_MS) {
        b->warn_suppressed++;
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (b->warn_suppressed > 0) {
        log_warn("%s (and %" PRIu64 " more like it)", line,
                 b->warn_suppressed);
    } else {
        log_warn("%s", line);
    }
    b->warned = true;
    b->warn_last_ms = now_ms;
    b->warn_suppressed = 0;
}

static void
backend_count_error(struct backend *b, enum metrics_backend_error kind)
{
    if (b->slot != NULL) {
        metrics_count_backend_error(b->slot, kind);
    }
}

enum backend_result
backend_classify_error(const char *text, size_t len)
{
    static const char prefix[] = "WRONGTYPE";
    size_t plen = sizeof(prefix) - 1;

    /* Redis error codes are the first word: "WRONGTYPE Operation ...". */
    if (text != NULL && len >= plen && memcmp(text, prefix, plen) == 0
        && (len == plen || text[plen] == ' ')) {
        return BACKEND_WRONGTYPE;
    }
    return BACKEND_ERROR_REPLY;
}

/* --- the fetch table -------------------------------------------------- */

static uint64_t
backend_hash(const struct backend *b, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325u ^ b->seed;
    size_t i;

    /* FNV-1a, seeded per process.  The table only holds fetches in
     * flight (at most one per client connection), so a crafted
     * collision costs a client little more than its own requests. */
    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 29;
    return h;
}

static struct backend_fetch *
backend_table_find(const struct backend *b, uint64_t hash, const void *key,
                   size_t len)
{
    struct backend_fetch *f = b->buckets[hash & (b->nbuckets - 1)];

    for (; f != NULL; f = f->hash_next) {
        if (f->hash == hash && f->key_len == len
            && memcmp(f->key, key, len) == 0) {
            return f;
        }
    }
    return NULL;
}

static void
backend_table_grow(struct backend *b)
{
    size_t n = b->nbuckets * 2;
    struct backend_fetch **nb = calloc(n, sizeof(*nb));
    size_t i;

    if (nb == NULL) {
        return;                 /* longer chains, still correct */
    }
    for (i = 0; i < b->nbuckets; i++) {
        struct backend_fetch *f = b->buckets[i];

        while (f != NULL) {
            struct backend_fetch *next = f->hash_next;
            size_t j = f->hash & (n - 1);

            f->hash_next = nb[j];
            nb[j] = f;
            f = next;
        }
    }
    free(b->buckets);
    b->buckets = nb;
    b->nbuckets = n;
}

static void
backend_table_insert(struct backend *b, struct backend_fetch *f)
{
    size_t i;

    if (b->nfetches >= b->nbuckets) {
        backend_table_grow(b);
    }
    i = f->hash & (b->nbuckets - 1);
    f->hash_next = b->buckets[i];
    b->buckets[i] = f;
    b->nfetches++;
}

static void
backend_table_remove(struct backend *b, struct backend_fetch *f)
{
    struct backend_fetch **pp = &b->buckets[f->hash & (b->nbuckets - 1)];

    while (*pp != f) {
        assert(*pp != NULL);
        pp = &(*pp)->hash_next;
    }
    *pp = f->hash_next;
    f->hash_next = NULL;
    b->nfetches--;
}

/* --- the unsent list -------------------------------------------------- */

static void
backend_unsent_push(struct backend *b, struct backend_fetch *f)
{
    assert(!f->unsent && !f->done);
    f->unsent = true;
    f->unsent_next = NULL;
    f->unsent_prev = b->unsent_tail;
    if (b->unsent_tail != NULL) {
        b->unsent_tail->unsent_next = f;
    } else {
        b->unsent_head = f;
    }
    b->unsent_tail = f;
    b->nunsent++;
}

static void
backend_unsent_remove(struct backend *b, struct backend_fetch *f)
{
    assert(f->unsent);
    if (f->unsent_prev != NULL) {
        f->unsent_prev->unsent_next = f->unsent_next;
    } else {
        b->unsent_head = f->unsent_next;
    }
    if (f->unsent_next != NULL) {
        f->unsent_next->unsent_prev = f->unsent_prev;
    } else {
        b->unsent_tail = f->unsent_prev;
    }
    f->unsent_prev = f->unsent_next = NULL;
    f->unsent = false;
    b->nunsent--;
}

static void
backend_kick(struct backend *b)
{
    int rc;

    if (b->destroying || event_timer_active(&b->kick)) {
        return;
    }
    rc = event_timer_start(b->loop, &b->kick, 0);
    if (rc != 0) {
        /* The next backend_get() or reconnect arms it again. */
        log_error("redis %s: cannot arm a timer: %s", b->addr,
                  strerror(-rc));
    }
}

/* --- waiters and the end of a fetch ----------------------------------- */

static void
backend_waiter_unlink(struct backend_waiter *w)
{
    struct backend_fetch *f = w->fetch;

    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        f->head = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    } else {
        f->tail = w->prev;
    }
    w->next = w->prev = NULL;
    w->fetch = NULL;
}

static void
backend_waiter_append(struct backend_fetch *f, struct backend_waiter *w)
{
    w->fetch = f;
    w->next = NULL;
    w->prev = f->tail;
    if (f->tail != NULL) {
        f->tail->next = w;
    } else {
        f->head = w;
    }
    f->tail = w;
}

/* Pops and calls each waiter; reply is borrowed for the calls. */
static void
backend_call_waiters(struct backend_fetch *f,
                     const struct backend_reply *reply)
{
    struct backend_waiter *w;

    while ((w = f->head) != NULL) {
        backend_waiter_unlink(w);
        w->cb(w, reply);
    }
}

static void
backend_fetch_finish(struct backend_fetch *f,
                     const struct backend_reply *reply)
{
    struct backend *b = f->b;

    assert(!f->done);
    f->done = true;
    backend_table_remove(b, f);
    if (f->unsent) {
        backend_unsent_remove(b, f);
    }
    event_timer_stop(b->loop, &f->deadline);
    f->finishing = true;
    backend_call_waiters(f, reply);
    f->finishing = false;
    backend_fetch_release(f);
}

static void
backend_fetch_fail(struct backend_fetch *f, enum backend_result result,
                   bool count)
{
    struct backend_reply reply = { result, NULL, 0 };

    if (count) {
        backend_count_error(f->b, result == BACKEND_TIMEOUT
                                      ? METRICS_BACKEND_TIMEOUT
                                      : METRICS_BACKEND_UNREACHABLE);
    }
    backend_fetch_finish(f, &reply);
}

static void
backend_fetch_release(struct backend_fetch *f)
{
    if (f->done && !f->in_hiredis && !f->finishing) {
        assert(f->head == NULL && !f->unsent);
        free(f);
    }
}

static void
backend_on_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Sends f's GET on the current context.  0, or -EIO when hiredis
 * refuses it (context closing, no memory). */
static int
backend_fetch_send(struct backend_fetch *f)
{
    struct backend *b = f->b;

    assert(b->ac != NULL && !f->in_hiredis && !f->unsent);
    if (redisAsyncCommand(b->ac, backend_on_reply, f, "GET %b", f->key,
                          f->key_len) != REDIS_OK) {
        return -EIO;
    }
    f->in_hiredis = true;
    return 0;
}

static bool
backend_can_send(const struct backend *b)
{
    return b->state == BACKEND_CONNECTING || b->state == BACKEND_HANDSHAKE
           || b->state == BACKEND_READY;
}

/* Sends, or fails when DOWN, the first n fetches of the unsent list.
 * A bounded count, so a callback that asks again and again cannot keep
 * this loop going. */
static void
backend_flush_unsent(struct backend *b, size_t n)
{
    while (n-- > 0 && b->unsent_head != NULL) {
        struct backend_fetch *f = b->unsent_head;

        if (backend_can_send(b)) {
            backend_unsent_remove(b, f);
            if (backend_fetch_send(f) != 0) {
                backend_fetch_fail(f, BACKEND_UNREACHABLE, true);
            }
        } else if (b->state == BACKEND_DOWN) {
            backend_fetch_fail(f, BACKEND_UNREACHABLE, true);
        } else {
            break;              /* RETRY/CLOSING: the next context */
        }
    }
}

/* --- the context's end ------------------------------------------------- */

/* Records that the current context is ending, once. */
static void
backend_context_dying(struct backend *b, enum backend_fate fate,
                      const char *why)
{
    if (b->state == BACKEND_CLOSING) {
        return;
    }
    b->state = BACKEND_CLOSING;
    b->fate = fate;
    (void)snprintf(b->why, sizeof(b->why), "%s", why);
    event_timer_stop(b->loop, &b->connect_deadline);
}

static const char *
backend_context_error(const redisAsyncContext *ac)
{
    if (ac == NULL) {
        return "connection closed";
    }
    /* hiredis copies c.err to ac->err only when it disconnects, so in
     * onConnect the reason is still in the inner context. */
    if (ac->err != 0 && ac->errstr != NULL && ac->errstr[0] != '\0') {
        return ac->errstr;
    }
    if (ac->c.err != 0 && ac->c.errstr[0] != '\0') {
        return ac->c.errstr;
    }
    return "connection closed";
}

/* Frees the current context.  Synchronous (its callbacks and cleanup
 * run before this returns) unless called from inside a hiredis
 * callback, when hiredis frees it as that callback returns. */
static void
backend_close(struct backend *b, enum backend_fate fate, const char *why)
{
    if (b->ac == NULL || b->state == BACKEND_CLOSING) {
        return;
    }
    backend_context_dying(b, fate, why);
    redisAsyncFree(b->ac);
}

static void
backend_ready(struct backend *b)
{
    b->state = BACKEND_READY;
    b->backoff_ms = BACKEND_BACKOFF_MIN_MS;
    event_timer_stop(b->loop, &b->connect_deadline);
    if (!b->logged_up) {
        log_info("redis %s: connected", b->addr);
        b->logged_up = true;
        b->logged_down = false;
    }
}

static void
backend_arm_reconnect(struct backend *b, uint64_t after_ms)
{
    int rc = event_timer_start(b->loop, &b->reconnect, after_ms);

    if (rc != 0) {
        log_error("redis %s: cannot arm the reconnect timer: %s", b->addr,
                  strerror(-rc));
    }
}

/* No context and none coming at once: wait, fail what waits. */
static void
backend_enter_down(struct backend *b, const char *why)
{
    b->state = BACKEND_DOWN;
    if (b->logged_up) {
        log_warn("redis %s: connection lost: %s", b->addr, why);
    } else if (!b->logged_down) {
        log_warn("redis %s: unreachable: %s; retrying in the background",
                 b->addr, why);
    } else {
        log_debug("redis %s: reconnect failed: %s", b->addr, why);
    }
    b->logged_up = false;
    b->logged_down = true;
    backend_arm_reconnect(b, b->backoff_ms);
    b->backoff_ms *= 2;
    if (b->backoff_ms > BACKEND_BACKOFF_MAX_MS) {
        b->backoff_ms = BACKEND_BACKOFF_MAX_MS;
    }
    if (b->nunsent > 0) {
        backend_kick(b);
    }
}

/* --- hiredis event hooks (modelled on hiredis adapters/ae.h) ---------- */

static void
backend_ev_set(struct backend *b, unsigned mask)
{
    int rc;

    if (b->io_mask == mask && (mask == 0 || b->io.registered)) {
        return;
    }
    b->io_mask = mask;
    rc = event_io_set(b->loop, &b->io, mask);
    if (rc != 0) {
        /* hiredis' hooks return nothing: close from the kick timer. */
        log_error("redis %s: epoll_ctl(fd %d) failed: %s", b->addr,
                  b->io.fd, strerror(-rc));
        b->io_failed = true;
        backend_kick(b);
    }
}

static void
backend_ev_add_read(void *privdata)
{
    struct backend *b = privdata;

    backend_ev_set(b, b->io_mask | EVENT_READ);
}

static void
backend_ev_del_read(void *privdata)
{
    struct backend *b = privdata;

    backend_ev_set(b, b->io_mask & ~EVENT_READ);
}

static void
backend_ev_add_write(void *privdata)
{
    struct backend *b = privdata;

    backend_ev_set(b, b->io_mask | EVENT_WRITE);
}

static void
backend_ev_del_write(void *privdata)
{
    struct backend *b = privdata;

    backend_ev_set(b, b->io_mask & ~EVENT_WRITE);
}

/* hiredis calls this once per context, after the NULL-reply callbacks
 * of whatever was still pending and just before freeing it. */
static void
backend_ev_cleanup(void *privdata)
{
    struct backend *b = privdata;

    event_io_stop(b->loop, &b->io);
    b->io_mask = 0;
    b->io_failed = false;
    backend_context_dying(b, BACKEND_FATE_LOST,
                          backend_context_error(b->ac));
    b->ac = NULL;
    if (b->destroying) {
        b->state = BACKEND_DOWN;
        return;
    }
    if (b->fate == BACKEND_FATE_RESET) {
        b->state = BACKEND_RETRY;
        backend_arm_reconnect(b, 0);
    } else if (b->answered) {
        /* It served GETs, so Redis was fine a moment ago (an idle
         * `timeout`, a restart): try once more at once. */
        if (b->logged_up) {
            log_warn("redis %s: connection lost: %s; reconnecting",
                     b->addr, b->why);
            b->logged_up = false;
        }
        b->state = BACKEND_RETRY;
        backend_arm_reconnect(b, 0);
    } else {
        backend_enter_down(b, b->why);
    }
}

static void
backend_on_io(struct event_loop *loop, struct event_io *io,
              unsigned events)
{
    struct backend *b = io->data;
    redisAsyncContext *ac = b->ac;

    (void)loop;
    if (ac == NULL) {
        return;
    }
    if (events & EVENT_READ) {
        redisAsyncHandleRead(ac);
    }
    /* The read may have freed the context (cleanup clears b->ac); a
     * new one is only ever made from a timer, so no ABA here. */
    if ((events & EVENT_WRITE) && b->ac == ac
        && (b->io_mask & EVENT_WRITE)) {
        redisAsyncHandleWrite(ac);
    }
}

/* --- hiredis callbacks ------------------------------------------------- */

static void
backend_on_connect(const redisAsyncContext *ac, int status)
{
    struct backend *b = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns. */
        backend_context_dying(b, BACKEND_FATE_LOST,
                              backend_context_error(ac));
        return;
    }
    if (b->state != BACKEND_CONNECTING) {
        return;
    }
    if (b->handshake_left == 0) {
        backend_ready(b);
    } else {
        b->state = BACKEND_HANDSHAKE;
    }
}

static void
backend_on_handshake(redisAsyncContext *ac, void *r, void *privdata)
{
    struct backend *b = privdata;
    redisReply *reply = r;
    char why[BACKEND_WHY_MAX];

    if (reply == NULL) {
        backend_context_dying(b, BACKEND_FATE_LOST,
                              backend_context_error(ac));
        return;
    }
    if (b->state == BACKEND_CLOSING) {
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        (void)snprintf(why, sizeof(why), "%s failed: %.*s",
                       b->handshake_left > 1 || b->db == 0 ? "AUTH"
                                                           : "SELECT",
                       (int)(reply->len > 120 ? 120 : reply->len),
                       reply->str);
        /* Never retried at once: backend_close() leaves b->answered
         * false, so cleanup goes DOWN with backoff. */
        b->answered = false;
        backend_close(b, BACKEND_FATE_LOST, why);
        return;
    }
    assert(b->handshake_left > 0);
    if (--b->handshake_left == 0 && b->state == BACKEND_HANDSHAKE) {
        backend_ready(b);
    }
}

static void
backend_deliver(struct backend *b, struct backend_fetch *f,
                const redisReply *reply)
{
    static const char unexpected[] = "unexpected reply type to GET";
    struct backend_reply out = { BACKEND_ERROR_REPLY, unexpected,
                                 sizeof(unexpected) - 1 };

    if (b->slot != NULL) {
        metrics_observe_backend(b->slot, backend_now_us() - f->start_us);
    }
    switch (reply->type) {
    case REDIS_REPLY_STRING:
        out.result = BACKEND_VALUE;
        out.data = reply->str;
        out.len = reply->len;
        if (b->cache != NULL) {
            /* Once per fetch, before any waiter can look it up again.
             * CACHE_TOO_LARGE or CACHE_BYPASS just mean not stored. */
            (void)cache_set(b->cache, f->key, f->key_len, reply->str,
                            reply->len, cache_clock_ms());
        }
        break;
    case REDIS_REPLY_NIL:
        out.result = BACKEND_NIL;
        out.data = NULL;
        out.len = 0;
        break;
    case REDIS_REPLY_ERROR:
        out.result = backend_classify_error(reply->str, reply->len);
        out.data = reply->str;
        out.len = reply->len;
        if (out.result == BACKEND_WRONGTYPE) {
            /* The client asked for a key of another type: its error. */
            log_debug("redis %s: GET: %.*s", b->addr, (int)reply->len,
                      reply->str);
            break;
        }
        backend_count_error(b, METRICS_BACKEND_REPLY);
        backend_warn(b, "redis %s: GET failed: %.*s", b->addr,
                     (int)(reply->len > 200 ? 200 : reply->len),
                     reply->str);
        break;
    default:
        backend_count_error(b, METRICS_BACKEND_REPLY);
        backend_warn(b, "redis %s: GET answered with reply type %d",
                     b->addr, reply->type);
        break;
    }
    backend_fetch_finish(f, &out);
}

static void
backend_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct backend_fetch *f = privdata;
    struct backend *b = f->b;
    redisReply *reply = r;

    f->in_hiredis = false;
    if (reply == NULL) {
        backend_context_dying(b, BACKEND_FATE_LOST,
                              backend_context_error(ac));
        if (f->done) {
            backend_fetch_release(f);
        } else if (b->fate == BACKEND_FATE_RESET) {
            backend_unsent_push(b, f);
        } else {
            backend_fetch_fail(f, BACKEND_UNREACHABLE,
                               b->fate != BACKEND_FATE_DESTROY);
        }
        return;
    }
    b->answered = true;
    if (f->done) {
        /* Failed earlier (deadline while connecting): nobody waits. */
        backend_fetch_release(f);
        return;
    }
    backend_deliver(b, f, reply);
}

/* --- timers ------------------------------------------------------------ */

static void
backend_on_deadline(struct event_loop *loop, struct event_timer *timer)
{
    struct backend_fetch *f = timer->data;
    struct backend *b = f->b;
    bool reset;

    (void)loop;
    assert(!f->done);
    if (!f->in_hiredis || b->state == BACKEND_CONNECTING) {
        /* Never reached a connected Redis. */
        backend_fetch_fail(f, BACKEND_UNREACHABLE, true);
        return;
    }
    reset = b->state == BACKEND_HANDSHAKE || b->state == BACKEND_READY;
    backend_warn(b, "redis %s: GET timed out after %" PRIu64 " ms%s",
                 b->addr, b->timeout_ms,
                 reset ? "; resetting the connection" : "");
    backend_fetch_fail(f, BACKEND_TIMEOUT, true);
    if (reset) {
        backend_close(b, BACKEND_FATE_RESET, "GET timed out");
    }
}

static void
backend_on_connect_deadline(struct event_loop *loop,
                            struct event_timer *timer)
{
    struct backend *b = timer->data;
    char why[BACKEND_WHY_MAX];

    (void)loop;
    if (b->state == BACKEND_CONNECTING || b->state == BACKEND_HANDSHAKE) {
        (void)snprintf(why, sizeof(why), "connect timed out after %" PRIu64
                       " ms", b->timeout_ms);
        b->answered = false;
        backend_close(b, BACKEND_FATE_LOST, why);
    }
}

static void
backend_on_reconnect(struct event_loop *loop, struct event_timer *timer)
{
    struct backend *b = timer->data;

    (void)loop;
    if (b->state == BACKEND_DOWN || b->state == BACKEND_RETRY) {
        backend_connect(b);
    }
}

static void
backend_on_kick(struct event_loop *loop, struct event_timer *timer)
{
    struct backend *b = timer->data;
    struct backend_reply reply = { BACKEND_UNREACHABLE, NULL, 0 };
    struct backend_waiter *w;
    size_t n;

    (void)loop;
    if (b->io_failed) {
        b->io_failed = false;
        b->answered = false;
        backend_close(b, BACKEND_FATE_LOST, "epoll_ctl failed");
    }
    backend_flush_unsent(b, b->nunsent);
    /* Waiters that got no fetch record (out of memory). */
    for (n = 0, w = b->oom->head; w != NULL; w = w->next) {
        n++;
    }
    while (n-- > 0 && (w = b->oom->head) != NULL) {
        backend_count_error(b, METRICS_BACKEND_UNREACHABLE);
        backend_waiter_unlink(w);
        w->cb(w, &reply);
    }
}

/* --- connecting -------------------------------------------------------- */

static int
backend_send_handshake(struct backend *b)
{
    char db[16];

    b->handshake_left = 0;
    if (b->user[0] != '\0') {
        if (redisAsyncCommand(b->ac, backend_on_handshake, b, "AUTH %s %s",
                              b->user, b->password) != REDIS_OK) {
            return -EIO;
        }
        b->handshake_left++;
    } else if (b->password[0] != '\0') {
        if (redisAsyncCommand(b->ac, backend_on_handshake, b, "AUTH %s",
                              b->password) != REDIS_OK) {
            return -EIO;
        }
        b->handshake_left++;
    }
    if (b->db != 0) {
        (void)snprintf(db, sizeof(db), "%" PRIu32, b->db);
        if (redisAsyncCommand(b->ac, backend_on_handshake, b, "SELECT %s",
                              db) != REDIS_OK) {
            return -EIO;
        }
        b->handshake_left++;
    }
    return 0;
}

static void
backend_connect(struct backend *b)
{
    redisAsyncContext *ac;
    char why[BACKEND_WHY_MAX];
    int rc;

    assert(b->ac == NULL);
    event_timer_stop(b->loop, &b->reconnect);
    if (b->redis.is_unix) {
        ac = redisAsyncConnectUnix(b->redis.path);
    } else {
        ac = redisAsyncConnect(b->redis.host, b->redis.port);
    }
    if (ac == NULL) {
        backend_enter_down(b, "out of memory");
        return;
    }
    if (ac->err != 0) {
        (void)snprintf(why, sizeof(why), "%s", backend_context_error(ac));
        redisAsyncFree(ac);         /* no hooks attached yet */
        backend_enter_down(b, why);
        return;
    }

    b->ac = ac;
    b->state = BACKEND_CONNECTING;
    b->fate = BACKEND_FATE_LOST;
    b->answered = false;
    b->io_failed = false;
    b->io_mask = 0;
    b->why[0] = '\0';
    event_io_init(&b->io, ac->c.fd, backend_on_io, b);
    ac->data = b;
    ac->ev.data = b;
    ac->ev.addRead = backend_ev_add_read;
    ac->ev.delRead = backend_ev_del_read;
    ac->ev.addWrite = backend_ev_add_write;
    ac->ev.delWrite = backend_ev_del_write;
    ac->ev.cleanup = backend_ev_cleanup;
    /* Also asks for the first write event, which tells us the
     * connect() finished. */
    (void)redisAsyncSetConnectCallback(ac, backend_on_connect);

    rc = event_timer_start(b->loop, &b->connect_deadline, b->timeout_ms);
    if (rc == 0) {
        rc = backend_send_handshake(b);
    }
    if (rc != 0) {
        backend_close(b, BACKEND_FATE_LOST, "cannot queue the handshake");
        return;
    }
    backend_flush_unsent(b, b->nunsent);
}

/* --- the interface ----------------------------------------------------- */

static void
backend_format_addr(struct backend *b)
{
    if (b->redis.is_unix) {
        (void)snprintf(b->addr, sizeof(b->addr), "unix:%s", b->redis.path);
    } else if (strchr(b->redis.host, ':') != NULL) {
        (void)snprintf(b->addr, sizeof(b->addr), "[%s]:%u", b->redis.host,
                       (unsigned)b->redis.port);
    } else {
        (void)snprintf(b->addr, sizeof(b->addr), "%s:%u", b->redis.host,
                       (unsigned)b->redis.port);
    }
}

int
backend_create(struct event_loop *loop, const struct config *cfg,
               struct cache *cache, struct metrics_slot_shm *slot,
               struct backend **out)
{
    struct backend *b = calloc(1, sizeof(*b));

    if (b == NULL) {
        return -ENOMEM;
    }
    b->buckets = calloc(BACKEND_BUCKETS_MIN, sizeof(*b->buckets));
    b->oom = calloc(1, sizeof(*b->oom));
    if (b->buckets == NULL || b->oom == NULL) {
        free(b->buckets);
        free(b->oom);
        free(b);
        return -ENOMEM;
    }
    b->nbuckets = BACKEND_BUCKETS_MIN;
    if (getrandom(&b->seed, sizeof(b->seed), GRND_NONBLOCK)
        != (ssize_t)sizeof(b->seed)) {
        /* Early boot: any per-process value still beats a constant. */
        b->seed = ((uint64_t)getpid() << 32) ^ backend_now_us();
    }
    b->loop = loop;
    b->cache = cache;
    b->slot = slot;
    b->redis = cfg->redis;
    (void)snprintf(b->user, sizeof(b->user), "%s", cfg->redis_user);
    (void)snprintf(b->password, sizeof(b->password), "%s",
                   cfg->redis_password);
    b->db = cfg->redis_db;
    b->timeout_ms = cfg->redis_timeout_ms;
    backend_format_addr(b);
    b->backoff_ms = BACKEND_BACKOFF_MIN_MS;
    b->state = BACKEND_RETRY;
    b->oom->b = b;
    b->oom->done = true;        /* never in the table, never sent */
    event_timer_init(&b->reconnect, backend_on_reconnect, b);
    event_timer_init(&b->connect_deadline, backend_on_connect_deadline, b);
    event_timer_init(&b->kick, backend_on_kick, b);
    backend_connect(b);
    *out = b;
    return 0;
}

void
backend_get(struct backend *b, const void *key, size_t key_len,
            struct backend_waiter *w, backend_cb cb, void *data)
{
    uint64_t hash = backend_hash(b, key, key_len);
    struct backend_fetch *f = backend_table_find(b, hash, key, key_len);

    w->cb = cb;
    w->data = data;
    if (f != NULL) {
        backend_waiter_append(f, w);
        return;
    }

    f = malloc(sizeof(*f) + (key_len > 0 ? key_len : 1));
    if (f == NULL) {
        backend_waiter_append(b->oom, w);
        backend_kick(b);
        return;
    }
    memset(f, 0, sizeof(*f));
    f->b = b;
    f->hash = hash;
    f->key_len = key_len;
    if (key_len > 0) {
        memcpy(f->key, key, key_len);
    }
    f->start_us = backend_now_us();
    event_timer_init(&f->deadline, backend_on_deadline, f);
    if (event_timer_start(b->loop, &f->deadline, b->timeout_ms) != 0) {
        free(f);
        backend_waiter_append(b->oom, w);
        backend_kick(b);
        return;
    }
    backend_table_insert(b, f);
    backend_waiter_append(f, w);
    if (b->destroying) {
        return;                 /* backend_destroy() fails it */
    }
    if (backend_can_send(b) && backend_fetch_send(f) == 0) {
        return;
    }
    backend_unsent_push(b, f);
    if (b->state != BACKEND_RETRY && b->state != BACKEND_CLOSING) {
        backend_kick(b);
    }
}

void
backend_cancel(struct backend_waiter *w)
{
    if (w->fetch != NULL) {
        backend_waiter_unlink(w);
    }
}

size_t
backend_pending(const struct backend *b)
{
    return b->nfetches;
}

void
backend_destroy(struct backend *b)
{
    struct backend_reply reply = { BACKEND_UNREACHABLE, NULL, 0 };
    struct backend_waiter *w;
    size_t i;

    b->destroying = true;
    event_timer_stop(b->loop, &b->reconnect);
    event_timer_stop(b->loop, &b->connect_deadline);
    event_timer_stop(b->loop, &b->kick);
    /* Fails what the context holds, through its NULL-reply callbacks. */
    backend_close(b, BACKEND_FATE_DESTROY, "shutting down");
    assert(b->ac == NULL);
    /* Callbacks may start fetches; they land in the table, not sent. */
    while (b->nfetches > 0 || b->oom->head != NULL) {
        for (i = 0; i < b->nbuckets && b->nfetches > 0; i++) {
            while (b->buckets[i] != NULL) {
                backend_fetch_fail(b->buckets[i], BACKEND_UNREACHABLE,
                                   false);
            }
        }
        while ((w = b->oom->head) != NULL) {
            backend_waiter_unlink(w);
            w->cb(w, &reply);
        }
    }
    assert(b->unsent_head == NULL);
    free(b->oom);
    free(b->buckets);
    free(b);
}
