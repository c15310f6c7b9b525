/*
 * backend: owns the worker's connection to Redis (one redis_conn), the
 * table of pending fetches, their deadlines, and the reconnect logic.
 *
 * Fetches.  backend_get() finds the pending fetch for a key in a chained
 * hash table or creates one (a copy of the key, a waiter list, a
 * deadline timer, a start time).  A fetch is on at most one list: the
 * unsent list (waiting for a connection) or the in-flight FIFO (its GET
 * written, the reply due in that order).  A fetch ends once: by its
 * reply, its deadline, the loss of its connection, or backend_destroy();
 * it then leaves the table and its waiters are popped one at a time and
 * called, so a callback may cancel other waiters or start new fetches
 * (which never join the ending one).  A fetch that ended early (its
 * deadline) stays in the FIFO as a placeholder, so the late reply is
 * matched to it and dropped; the record is freed once it is on no list.
 * A fetch whose waiters all cancelled still runs to its end, and its
 * value is still handed to the store callback.
 *
 * Purges.  With a token callback (backend_set_token), each fetch takes
 * the caller's token for its key when it is created, before its GET is
 * written, and hands it to the store callback with the value: the cache
 * refuses a value whose key was purged since (cache_set_since).  A
 * request whose token differs from the pending fetch's does not join
 * it: that fetch leaves the table (`solo`, answered and freed as ever)
 * and a new one is sent, so no client that asks after a purge is
 * answered with a value read before it.  In a cluster the new fetch is
 * `fresh`: its node sends a GET of its own rather than join one of the
 * node's older fetches.
 *
 * Expiry.  Each GET is pipelined with a PTTL of its key on the same
 * connection (after a second ASKING when the GET had one); the fetch
 * stays at the FIFO's head until the last of its replies (replies_due),
 * holding GET's value meanwhile, and the store callback and the waiters
 * get Redis' remaining expiry with the value.
 *
 * The gate (backend_set_gate, worker_inflight.c): one fetch per key
 * across processes.  A new fetch others may join asks the gate first:
 * SEND or OWN (the gate's end is called when the fetch ends, after its
 * store and before its waiters), or WAIT: another process is fetching
 * the key, so the fetch is parked (list PARKED, still in the table, so
 * this worker's misses of the key join it) and the gate_poll timer asks
 * again every BACKEND_GATE_POLL_MS, until the gate answers it (a value
 * from the cache: its waiters are called, nothing is stored) or says
 * SEND.  A fetch parked for a whole --redis-timeout is sent anyway, with
 * a new deadline: no waiter is stranded by another process's fetch.
 *
 * Callbacks never run inside backend_get(): a fetch that cannot be sent
 * now waits on the unsent list; when the backend is DOWN the zero-delay
 * `kick` timer fails it on the next loop iteration.
 *
 * Connection states:
 *
 *              refused, TLS, AUTH failed: fail all, backoff
 *        +--------------------------------------------------+
 *        v                                                  |
 *      DOWN --backoff--> CONNECTING --open+AUTH/SELECT--> READY
 *        ^                 ^    |  ^                        |
 *        |                 |    |  +------ stuck (no byte --+
 *        |   at once       |    v          for a timeout):  |
 *        +----------------WAIT <---------- reset, re-send   |
 *            refused            <---------- lost after it   |
 *                                           answered -------+
 *
 * - DOWN: no connection; the reconnect timer waits 100 ms, doubling to
 *   2 s, back to 100 ms once a connection is ready.  New fetches fail
 *   BACKEND_UNREACHABLE on the next iteration: Redis refuses us, 502.
 * - WAIT: no connection, one is made at once; fetches wait on the
 *   unsent list with their deadlines running.  Entered after we reset a
 *   stuck connection, or lost one that had answered (Redis' idle
 *   `timeout`, a restart), so neither costs a 502 window.  A reset
 *   connection that never answered, with nothing waiting, retries
 *   after the backoff instead, until a request comes.
 * - CONNECTING: the connection is opening (TCP, TLS); AUTH and SELECT
 *   (or, with neither, a PING) are queued first and fetches pipelined
 *   behind them.  A failed one is logged and treated as refused (a
 *   Redis at maxclients answers the first command so).  READY comes
 *   with their answers, never with the TCP connect alone.
 * - READY: every reply matched in order to the FIFO.
 *
 * Deadlines.  Each fetch has its own: past --redis-timeout its waiters
 * get BACKEND_TIMEOUT (504) and nothing else happens to the connection,
 * which still has the other requests' answers coming.  A separate
 * watchdog resets the connection when something is due on it
 * (connecting, a handshake or request reply) and no byte has come for a
 * whole timeout: Redis is stalled.  The fetches still waiting on it go
 * back to the unsent list and are re-sent on a new connection with
 * their own deadlines, so a stalled Redis gives 504s, never 502s.  A
 * connection refused or dropped gives 502 (UNREACHABLE).
 *
 * Redis Cluster (--redis-cluster).  The backend the worker holds routes
 * instead of connecting: a fetch keeps its table entry, waiters and
 * deadline here, and is handed to the node backend cluster_route()
 * names (list NODE, through the embedded node_waiter).  A node's reply
 * comes back to backend_node_cb(): -MOVED and -ASK send the fetch on to
 * the node named (ASK with ASKING before it), at most
 * BACKEND_CLUSTER_HOPS_MAX times; -TRYAGAIN and -CLUSTERDOWN wait a
 * short, doubling backoff and route again while the fetch's own
 * deadline allows, then answer BACKEND_UNAVAILABLE (503) with Redis'
 * text.  The fetch's end detaches it from its node (the node's fetch
 * runs on with no waiter).  Clients never see a redirect.  Until the
 * first slot map is read the backend is WAIT; when no seed answers it
 * is DOWN (502), as for a single Redis.
 *
 * Redis Sentinel (--redis-sentinel).  The address comes from sentinel.c
 * instead of the config: until one is known the backend is WAIT (DOWN
 * once no sentinel answers).  ROLE is sent after AUTH/SELECT, and an
 * address whose ROLE is not master is refused like a failed AUTH.
 * Every connection failure, refusal and -READONLY asks the sentinels
 * again; a new address closes the old connection at once (no request
 * is answered by a stale primary after the switch) and re-sends what
 * was in flight to the new one.
 *
 * Metrics count Redis requests, not waiters: one error or one duration
 * per fetch.  Every reply is timed; WRONGTYPE is the client's mistake
 * and not a reply error; fetches failed by backend_destroy() count
 * nothing.  A TLS failure also counts one `tls` error per connection.
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

#include <hiredis/hiredis.h>

#include "backend.h"
#include "cluster.h"
#include "log.h"
#include "metrics.h"
#include "sentinel.h"
#include "redis_conn.h"

#define BACKEND_BACKOFF_MIN_MS    100
#define BACKEND_BACKOFF_MAX_MS    2000
#define BACKEND_WARN_INTERVAL_MS  1000
#define BACKEND_WARN_KINDS        8  /* backend_warn() call sites */
#define BACKEND_CLUSTER_HOPS_MAX  5  /* redirects one fetch follows */
#define BACKEND_CLUSTER_RETRY_MS  10 /* TRYAGAIN backoff, doubling */
#define BACKEND_CLUSTER_RETRY_MAX 200
#define BACKEND_BUCKETS_MIN       64
#define BACKEND_WHY_MAX           320
#define BACKEND_ADDR_MAX          (CONFIG_PATH_MAX + 16)
#define BACKEND_HANDSHAKE_MAX     4 /* AUTH, SELECT, READONLY, ROLE; or PING */

enum backend_state {
    BACKEND_DOWN = 0,
    BACKEND_WAIT,
    BACKEND_CONNECTING,
    BACKEND_READY
};

enum backend_list {
    BACKEND_LIST_NONE = 0,
    BACKEND_LIST_UNSENT,
    BACKEND_LIST_FIFO,
    BACKEND_LIST_NODE,  /* cluster: at a node, or backing off */
    BACKEND_LIST_PARKED /* the gate: another process fetches it */
};

struct backend_fetch {
    struct backend        *b;         /* borrowed: the owner */
    struct backend_fetch  *hash_next; /* chain, while in the table */
    struct backend_fetch  *next;      /* on the unsent list or FIFO */
    struct backend_waiter *head;      /* borrowed: callers' waiters */
    struct backend_waiter *tail;
    struct event_timer     deadline; /* --redis-timeout from start */
    uint64_t               hash;
    uint64_t               start_us; /* for the duration histogram */
    enum backend_list      list;
    bool                   done;          /* ended: out of the table */
    bool                   finishing;     /* its waiters are being called */
    bool                   asking;        /* node: ASKING first; never in
                                             the table (never joined) */
    bool                   solo;          /* not in the table: asking, a
                                             fresh fetch at a node, or
                                             left it when purged */
    bool                   fresh;         /* cluster: its node must not
                                             join an older fetch */
    uint64_t               token;         /* the token callback's, taken
                                             before the GET is sent */
    struct backend_fetch  *detached_next; /* on b->detached: left the
                                             table when purged, not done */
    bool                   detached;
    /* Cluster routing (the worker's backend only). */
    bool                   ask_next;      /* the next node gets ASKING */
    bool                   asked;         /* an -ASK was followed */
    bool                   primary_only;  /* a replica failed it */
    unsigned               hops;          /* redirects followed */
    uint64_t               retry_ms;      /* last TRYAGAIN backoff */
    uint8_t                retrying;      /* the last node answer, being
                                             retried: 0 none, 1 TRYAGAIN,
                                             2 CLUSTERDOWN */
    struct backend        *node;          /* borrowed: cluster's, while
                                             list is NODE */
    struct backend_waiter  node_waiter;   /* on the node's fetch */
    struct event_timer     retry;         /* backoff, or a deferred end */
    bool                   has_slot;      /* cluster command: slot known */
    bool                   keyless;       /* cluster command: no key */
    uint16_t               slot;          /* its keys' slot */
    bool                   command;       /* backend_command(): key holds
                                             the whole encoded command, and
                                             the reply is handed on as RESP
                                             bytes, never stored */
    uint8_t                replies_due;   /* on the FIFO: replies still to
                                             come for it (GET, [ASKING],
                                             PTTL); it leaves at the last */
    bool                   got_get;       /* GET's reply came (PTTL's is
                                             next) */
    struct value          *got;           /* owned: GET's value, held until
                                             PTTL's reply; NULL otherwise */
    bool                   gate_owned;    /* the gate said OWN: call end */
    uint64_t               gate_state[2]; /* the gate's */
    size_t                 key_len;
    char                   key[]; /* owned, key_len bytes */
};

struct backend_queue {
    struct backend_fetch *head; /* borrowed from the table, or
                                   done placeholders (owned) */
    struct backend_fetch *tail;
};

struct backend {
    struct event_loop       *loop;      /* borrowed: outlives b */
    struct metrics_slot_shm *slot;      /* borrowed, may be NULL */
    backend_store_cb         store;     /* may be NULL */
    backend_token_cb         token;     /* may be NULL: tokens are 0 */
    void                    *store_arg; /* borrowed */
    backend_conn_cb          conn_cb;   /* may be NULL */
    void                    *conn_arg;  /* borrowed */

    /* Copied from the config, which may be replaced on reload. */
    struct config_redis redis;
    char                user[CONFIG_SECRET_MAX];
    char                password[CONFIG_SECRET_MAX];
    uint32_t            db;
    uint64_t            timeout_ms;
    uint64_t            max_reply_bytes;
    bool                tracking; /* --tracking is on: what an -ASK led
                                     to is not stored */
    /* --key-prefix: put before every key asked of Redis; fetches,
     * coalescing and the cache use the client's. */
    char                key_prefix[CONFIG_ITEM_MAX];
    size_t              key_prefix_len;
    char                addr[BACKEND_ADDR_MAX]; /* for logs */
    struct ssl_ctx_st  *tls;                    /* owned unless tls_borrowed;
                                                   NULL: plain */
    bool                tls_borrowed;           /* a cluster node: cluster's */
    struct cluster     *cluster;                /* owned; NULL: one Redis */
    struct sentinel    *sentinel;               /* owned; NULL: no Sentinel */
    bool                have_addr;              /* sentinel: redis is known */
    char                master[CONFIG_ITEM_MAX]; /* for logs */
    bool                cluster_node;            /* a node of a cluster */
    bool                readonly;  /* node: READONLY (replica reads) */
    backend_state_cb    state_cb;  /* may be NULL */
    void               *state_arg; /* borrowed: the cluster */
    char                tls_name[CONFIG_PATH_MAX];

    struct redis_conn  conn;
    enum backend_state state;
    unsigned           handshake_left; /* handshake replies still due */
    unsigned           handshake_sent; /* handshake commands sent */
    const char        *handshake_cmd[BACKEND_HANDSHAKE_MAX]; /* their
                                                               names, in
                                                               order */
    bool               answered; /* this connection answered */
    bool               counted;  /* in rcp_backend_connections */
    bool               destroying;
    uint64_t           backoff_ms;
    uint64_t           watch_rx; /* conn.rx_bytes at last look */

    struct event_timer reconnect;
    struct event_timer watchdog; /* a stuck connection */
    struct event_timer kick;     /* 0 ms: fail when DOWN, oom */

    struct backend_fetch **buckets;  /* owned array, owned fetches */
    struct backend_fetch  *detached; /* fetches that left the table
                                        when purged, until they end, so
                                        backend_destroy() finds them
                                        wherever they wait (a cluster
                                        node, a retry timer) */
    size_t                 nbuckets; /* a power of two */
    size_t                 nfetches; /* in the table: not done */
    uint64_t               seed;     /* clients choose keys */

    struct backend_queue unsent;
    struct backend_queue fifo;

    /* One fetch per key across processes (backend_set_gate). */
    const struct backend_gate_ops *gate;      /* borrowed; NULL: none */
    struct backend_queue           parked;    /* list PARKED */
    struct event_timer             gate_poll; /* every BACKEND_GATE_POLL_MS
                                                 while parked is not empty */

    /* Waiters whose fetch could not be allocated: failed by kick.  A
     * fetch record that is never in the table and never sent. */
    struct backend_fetch *oom; /* owned */

    /* Log state: transitions are logged once, repeats rate-limited. */
    bool logged_up;
    bool logged_down;
    struct backend_warn_kind {
        const char *fmt; /* the call site's format */
        uint64_t    last_ms;
        uint64_t    suppressed;
    } warns[BACKEND_WARN_KINDS];
};

static void backend_connect(struct backend *b);
static void backend_fetch_release(struct backend_fetch *f);
static void backend_fetch_dispatch(struct backend_fetch *f);
static void backend_fetch_park(struct backend_fetch *f);
static void backend_fetch_unpark(struct backend_fetch *f);
static void backend_on_gate_poll(struct event_loop  *loop,
                                 struct event_timer *timer);
static int  backend_fetch_route(struct backend_fetch *f);
static void backend_format_addr(struct backend *b);

static uint64_t
backend_now_us(void)
{
    struct timespec ts;

    /* The loop's clock is per iteration and in ms; the histogram wants
     * the real elapsed time in µs. */
    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void backend_warn(struct backend *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rate-limited warning: at most one line per BACKEND_WARN_INTERVAL_MS
 * for each kind (call site, known by its format), the next one saying
 * how many of that kind were dropped in between.  Per kind, so a burst
 * of timeouts never hides the one line a different fault gets. */
static void
backend_warn(struct backend *b, const char *fmt, ...)
{
    uint64_t                  now_ms = event_now_ms(b->loop);
    struct backend_warn_kind *k = NULL;
    char                      line[512];
    va_list                   ap;

    for (size_t i = 0; i < BACKEND_WARN_KINDS; i++) {
        if (b->warns[i].fmt == fmt || b->warns[i].fmt == NULL) {
            k = &b->warns[i];
            break;
        }
    }
    if (k == NULL) {
        k = &b->warns[BACKEND_WARN_KINDS - 1]; /* more sites than slots */
    }
    if (k->fmt == fmt && now_ms - k->last_ms < BACKEND_WARN_INTERVAL_MS) {
        k->suppressed++;
        return;
    }
    va_start(ap, fmt);
    (void) vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (k->fmt == fmt && k->suppressed > 0) {
        log_warn("%s (and %" PRIu64 " more like it)", line, k->suppressed);
    } else {
        log_warn("%s", line);
    }
    k->fmt = fmt;
    k->last_ms = now_ms;
    k->suppressed = 0;
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
    size_t            plen = sizeof(prefix) - 1;

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
    uint64_t             h = 0xcbf29ce484222325u ^ b->seed;
    size_t               i;

    /* FNV-1a, seeded per process.  The table only holds fetches in
     * flight (at most one per client request), so a crafted collision
     * costs a client little more than its own requests. */
    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 29;
    return h;
}

static struct backend_fetch *
backend_table_find(const struct backend *b, uint64_t hash, const void *key,
                   size_t len, bool command)
{
    struct backend_fetch *f = b->buckets[hash & (b->nbuckets - 1)];

    for (; f != NULL; f = f->hash_next) {
        if (f->hash == hash && f->key_len == len && f->command == command
            && memcmp(f->key, key, len) == 0) {
            return f;
        }
    }
    return NULL;
}

static void
backend_table_grow(struct backend *b)
{
    size_t                 n = b->nbuckets * 2;
    struct backend_fetch **nb = calloc(n, sizeof(*nb));
    size_t                 i;

    if (nb == NULL) {
        return; /* longer chains, still correct */
    }
    for (i = 0; i < b->nbuckets; i++) {
        struct backend_fetch *f = b->buckets[i];

        while (f != NULL) {
            struct backend_fetch *next = f->hash_next;
            size_t                j = f->hash & (n - 1);

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

/* --- lists -------------------------------------------------------------- */

static void
backend_queue_push(struct backend_queue *q, struct backend_fetch *f,
                   enum backend_list list)
{
    assert(f->list == BACKEND_LIST_NONE);
    f->list = list;
    f->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = f;
    } else {
        q->head = f;
    }
    q->tail = f;
}

static struct backend_fetch *
backend_queue_pop(struct backend_queue *q)
{
    struct backend_fetch *f = q->head;

    if (f != NULL) {
        q->head = f->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        f->next = NULL;
        f->list = BACKEND_LIST_NONE;
    }
    return f;
}

/* Takes f off q, wherever it is in it (a short list: the fetches of
 * one worker parked by the gate). */
static void
backend_queue_remove(struct backend_queue *q, struct backend_fetch *f)
{
    struct backend_fetch **pp = &q->head, *prev = NULL;

    while (*pp != f) {
        assert(*pp != NULL);
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = f->next;
    if (q->tail == f) {
        q->tail = prev;
    }
    f->next = NULL;
    f->list = BACKEND_LIST_NONE;
}

static void
backend_kick(struct backend *b)
{
    int rc;

    if (event_timer_active(&b->kick)) {
        return;
    }
    rc = event_timer_start(b->loop, &b->kick, 0);
    if (rc != 0) {
        /* The next backend_get() or reconnect arms it again. */
        log_error("redis %s: cannot arm a timer: %s", b->addr, strerror(-rc));
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
backend_call_waiters(struct backend_fetch       *f,
                     const struct backend_reply *reply)
{
    struct backend_waiter *w;

    while ((w = f->head) != NULL) {
        backend_waiter_unlink(w);
        w->cb(w, reply);
    }
}

static void
backend_fetch_finish(struct backend_fetch       *f,
                     const struct backend_reply *reply)
{
    struct backend *b = f->b;

    assert(!f->done);
    f->done = true;
    if (f->detached) {
        struct backend_fetch **pp = &b->detached;

        while (*pp != f) {
            pp = &(*pp)->detached_next;
        }
        *pp = f->detached_next;
        f->detached = false;
    } else if (!f->solo) {
        backend_table_remove(b, f);
    }
    event_timer_stop(b->loop, &f->deadline);
    if (f->list == BACKEND_LIST_NODE) {
        /* Cluster: the node's fetch runs on without us. */
        backend_cancel(&f->node_waiter);
        event_timer_stop(b->loop, &f->retry);
        f->list = BACKEND_LIST_NONE;
    } else if (f->list == BACKEND_LIST_PARKED) {
        backend_queue_remove(&b->parked, f);
    }
    if (f->gate_owned) {
        /* After the store: other processes' waiters read the cache. */
        f->gate_owned = false;
        b->gate->end(b->store_arg, f->key, f->key_len, f->gate_state);
    }
    f->finishing = true;
    backend_call_waiters(f, reply);
    f->finishing = false;
    backend_fetch_release(f);
}

static void
backend_fetch_fail(struct backend_fetch *f, enum backend_result result,
                   bool count)
{
    struct backend_reply reply = { result, NULL, 0, NULL, 0, false };

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
    if (f->done && f->list == BACKEND_LIST_NONE && !f->finishing) {
        assert(f->head == NULL);
        value_unref(f->got);
        free(f);
    }
}

/* --- sending ------------------------------------------------------------ */

/* Keeps rcp_backend_connections: one while a connection is READY. */
static void
backend_count_conn(struct backend *b, bool up)
{
    bool changed = b->counted != up;

    if (changed && b->slot != NULL) {
        metrics_add_backend_connections(b->slot, up ? 1 : -1);
    }
    b->counted = up;
    if (changed && b->conn_cb != NULL) {
        b->conn_cb(b->conn_arg, up);
    }
}

/* Something is now due on the connection.  The watch restarts when it
 * is the first thing due on an idle open connection (a timer left from
 * connecting would otherwise cut the silence short); a running watch
 * re-arms itself while bytes keep coming. */
static void
backend_watch(struct backend *b, bool was_idle)
{
    if (was_idle || !event_timer_active(&b->watchdog)) {
        b->watch_rx = b->conn.rx_bytes;
        (void) event_timer_start(b->loop, &b->watchdog, b->timeout_ms);
    }
}

/* Writes f's GET and then PTTL of the same key on the connection (a
 * fetch with ASKING before the GET gets one before PTTL too, since
 * ASKING holds for one command), and moves it to the FIFO, where it
 * stays until the last of those replies.  Pipelined on one connection,
 * so PTTL reaches the node that answers the GET in the same round trip;
 * Redis may run another client's command in between, which tracking
 * (not this) guards against.  0, or -ENOMEM (f is left where it was;
 * whatever was written is answered to a placeholder). */
static int
backend_fetch_send(struct backend_fetch *f)
{
    struct backend *b = f->b;
    const char     *argv[2] = { "GET", f->key };
    size_t          lens[2] = { 3, f->key_len };
    char           *prefixed = NULL;
    bool            was_idle = b->fifo.head == NULL && b->handshake_left == 0
                    && b->conn.state == REDIS_CONN_OPEN;
    int rc;

    assert(f->list == BACKEND_LIST_NONE);
    if (b->cluster != NULL) {
        return backend_fetch_route(f);
    }
    /* A re-send starts over. */
    value_unref(f->got);
    f->got = NULL;
    f->got_get = false;
    f->replies_due = 1;
    if (f->asking) {
        /* A placeholder takes ASKING's +OK off the FIFO. */
        static const char    *asking_argv[1] = { "ASKING" };
        static const size_t   asking_len[1] = { 6 };
        struct backend_fetch *ph = calloc(1, sizeof(*ph) + 1);

        if (ph == NULL
            || redis_conn_send_argv(&b->conn, 1, asking_argv, asking_len)
                   != 0) {
            free(ph);
            return -ENOMEM;
        }
        ph->b = b;
        ph->done = true;
        ph->asking = true;
        backend_queue_push(&b->fifo, ph, BACKEND_LIST_FIFO);
    }
    if (f->command) {
        rc = redis_conn_send(&b->conn, f->key, f->key_len);
        if (rc != 0) {
            return rc;
        }
        backend_queue_push(&b->fifo, f, BACKEND_LIST_FIFO);
        backend_watch(b, was_idle);
        return 0;
    }
    if (b->key_prefix_len > 0) {
        prefixed = malloc(b->key_prefix_len + f->key_len);
        if (prefixed == NULL) {
            return -ENOMEM;
        }
        memcpy(prefixed, b->key_prefix, b->key_prefix_len);
        memcpy(prefixed + b->key_prefix_len, f->key, f->key_len);
        argv[1] = prefixed;
        lens[1] = b->key_prefix_len + f->key_len;
    }
    rc = redis_conn_send_argv(&b->conn, 2, argv, lens);
    if (rc == 0 && f->asking) {
        static const char  *asking_argv[1] = { "ASKING" };
        static const size_t asking_len[1] = { 6 };

        rc = redis_conn_send_argv(&b->conn, 1, asking_argv, asking_len);
        f->replies_due += rc == 0 ? 1 : 0;
    }
    if (rc == 0) {
        argv[0] = "PTTL";
        lens[0] = 4;
        rc = redis_conn_send_argv(&b->conn, 2, argv, lens);
        f->replies_due += rc == 0 ? 1 : 0;
    }
    free(prefixed);
    if (rc != 0 && f->replies_due == 1) {
        return rc; /* nothing of f's was written */
    }
    /* Even if PTTL could not be written: GET's reply comes and must be
     * taken off the FIFO; without PTTL's the value is not stored. */
    backend_queue_push(&b->fifo, f, BACKEND_LIST_FIFO);
    backend_watch(b, was_idle);
    return 0;
}

static bool
backend_can_send(const struct backend *b)
{
    return b->state == BACKEND_CONNECTING || b->state == BACKEND_READY;
}

/* Sends (or, when DOWN, fails) the first n fetches of the unsent list;
 * done ones are dropped.  A bounded count, so a callback that asks
 * again and again cannot keep this loop going. */
static void
backend_flush_unsent(struct backend *b, size_t n)
{
    struct backend_fetch *f;

    while (n-- > 0 && (f = b->unsent.head) != NULL) {
        if (f->done) {
            (void) backend_queue_pop(&b->unsent);
            backend_fetch_release(f);
        } else if (backend_can_send(b)) {
            (void) backend_queue_pop(&b->unsent);
            if (backend_fetch_send(f) != 0) {
                backend_fetch_fail(f, BACKEND_UNREACHABLE, true);
            }
        } else if (b->state == BACKEND_DOWN) {
            (void) backend_queue_pop(&b->unsent);
            backend_fetch_fail(f, BACKEND_UNREACHABLE, true);
        } else {
            break; /* WAIT: the next connection */
        }
    }
}

static size_t
backend_unsent_count(const struct backend *b)
{
    const struct backend_fetch *f;
    size_t                      n = 0;

    for (f = b->unsent.head; f != NULL; f = f->next) {
        n++;
    }
    return n;
}

/* --- the connection's end ---------------------------------------------- */

static void
backend_arm_reconnect(struct backend *b, uint64_t after_ms)
{
    int rc = event_timer_start(b->loop, &b->reconnect, after_ms);

    if (rc != 0) {
        log_error("redis %s: cannot arm the reconnect timer: %s", b->addr,
                  strerror(-rc));
    }
}

/* Takes the FIFO off a closed connection.  resend: fetches still
 * waiting go back to the front of the unsent list, in order; else they
 * fail UNREACHABLE (counted unless destroying). */
static void
backend_drain_fifo(struct backend *b, bool resend)
{
    struct backend_queue  keep = { NULL, NULL };
    struct backend_fetch *f;
    bool                  head = true;

    b->handshake_left = 0;
    event_timer_stop(b->loop, &b->watchdog);
    while ((f = backend_queue_pop(&b->fifo)) != NULL) {
        bool first = head;

        head = false;
        if (f->done) {
            backend_fetch_release(f);
        } else if (resend
                   && (first
                       || event_now_ms(b->loop) >= f->deadline.when_ms)) {
            /* The request Redis is stuck on (or one already late): sent
             * again, it would hold up everything behind it on the new
             * connection too. */
            backend_fetch_fail(f, BACKEND_TIMEOUT, true);
        } else if (resend) {
            backend_queue_push(&keep, f, BACKEND_LIST_UNSENT);
        } else {
            backend_fetch_fail(f, BACKEND_UNREACHABLE, !b->destroying);
        }
    }
    if (keep.head != NULL) {
        keep.tail->next = b->unsent.head;
        if (b->unsent.tail == NULL) {
            b->unsent.tail = keep.tail;
        }
        b->unsent.head = keep.head;
    }
}

/* Sentinel: the primary this worker uses and its state, for /health
 * (new_list: another address). */
static void
backend_publish_primary(struct backend *b, bool new_list)
{
    struct metrics_node_shm n;

    if (b->slot == NULL || b->sentinel == NULL || !b->have_addr) {
        return;
    }
    memset(&n, 0, sizeof(n));
    metrics_node_set_addr(&n, b->addr);
    n.state = (uint8_t) backend_node_state(b);
    metrics_nodes_publish(b->slot, &n, 1, 0, new_list);
}

/* backend_node_state() may have changed: tell whoever shows it. */
static void
backend_state_changed(struct backend *b)
{
    if (b->state_cb != NULL) {
        b->state_cb(b->state_arg);
    }
    backend_publish_primary(b, false);
}

/* Refused: no connection, fail what waits, retry after the backoff. */
static void
backend_enter_down(struct backend *b, const char *why)
{
    bool was_down = b->logged_down;

    if (b->sentinel != NULL) {
        sentinel_reask(b->sentinel);
    }
    b->state = BACKEND_DOWN;
    backend_count_conn(b, false);
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
    if (!was_down) {
        backend_state_changed(b);
    }
    backend_drain_fifo(b, false);
    if (b->unsent.head != NULL) {
        backend_kick(b);
    }
}

/* A connection we may try again at once; what waits keeps waiting. */
static void
backend_enter_wait(struct backend *b, bool resend)
{
    b->state = BACKEND_WAIT;
    backend_count_conn(b, false);
    backend_drain_fifo(b, resend);
    backend_arm_reconnect(b, 0);
}

static void
backend_ready(struct backend *b)
{
    b->state = BACKEND_READY;
    backend_count_conn(b, true);
    b->backoff_ms = BACKEND_BACKOFF_MIN_MS;
    if (!b->logged_up) {
        log_info("redis %s: connected%s", b->addr,
                 b->tls != NULL ? " (TLS)" : "");
        b->logged_up = true;
        b->logged_down = false;
        backend_state_changed(b);
    }
}

/* --- connection callbacks ----------------------------------------------- */

static void
backend_on_open(struct redis_conn *c)
{
    struct backend *b = c->data;

    if (b->handshake_left == 0) {
        backend_ready(b);
    }
}

static void
backend_on_error(struct redis_conn *c, enum redis_conn_error kind,
                 const char *why)
{
    struct backend *b = c->data;

    if (b->sentinel != NULL) {
        /* A failover may be under way: the sentinels will say. */
        sentinel_reask(b->sentinel);
    }
    if (kind == REDIS_CONN_ERR_TLS) {
        /* One per failed connection; backend_enter_down() logs the
         * reason, in OpenSSL's words, once per outage. */
        backend_count_error(b, METRICS_BACKEND_TLS);
    }
    if ((kind == REDIS_CONN_ERR_LOST || kind == REDIS_CONN_ERR_PROTOCOL)
        && b->answered) {
        /* It served requests, so Redis was fine a moment ago (an idle
         * `timeout`, a restart): try once more at once.  What was in
         * flight was dropped with it: 502.  Rate-limited, and no
         * "connected" after it (a failed reconnect logs the outage): a
         * Redis that drops the connection at each request (a reply past
         * its client-output-buffer-limit, a stream it garbles) cost two
         * lines per request. */
        backend_warn(b, "redis %s: connection lost: %s; reconnecting", b->addr,
                     why);
        backend_enter_wait(b, false);
        return;
    }
    backend_enter_down(b, why);
}

/* A PING (the handshake when there is no other) answered -LOADING or
 * -BUSY: that Redis is ours but cannot serve yet (a restart loading
 * its data, a long script).  The connection is kept, as when AUTH,
 * which Redis allows meanwhile, is the handshake: each GET gets the
 * error (502) until it can, and no reconnect backoff delays the first
 * answer after. */
static bool
backend_handshake_busy(const struct backend *b, const redisReply *rr)
{
    const char *cmd = b->handshake_cmd[b->handshake_sent - b->handshake_left];

    return strcmp(cmd, "PING") == 0
           && ((rr->len >= 7 && memcmp(rr->str, "LOADING", 7) == 0)
               || (rr->len >= 4 && memcmp(rr->str, "BUSY", 4) == 0));
}

static void
backend_handshake_reply(struct backend *b, const struct redis_conn_reply *r)
{
    char              why[BACKEND_WHY_MAX];
    const redisReply *rr = r->kind == REDIS_CONN_REPLY_OTHER ? r->reply : NULL;

    if (b->sentinel != NULL && b->handshake_left == 1
        && !(rr != NULL && rr->type == REDIS_REPLY_ARRAY && rr->elements > 0
             && rr->element[0]->type == REDIS_REPLY_STRING
             && strcmp(rr->element[0]->str, "master") == 0)) {
        /* ROLE's answer: an address that is no primary is not used. */
        (void) snprintf(why, sizeof(why),
                        "ROLE says %s, not master; "
                        "asking the sentinels again",
                        rr != NULL && rr->type == REDIS_REPLY_ARRAY
                                && rr->elements > 0
                                && rr->element[0]->type == REDIS_REPLY_STRING
                            ? rr->element[0]->str
                            : "no role");
        redis_conn_close(&b->conn);
        b->answered = false;
        sentinel_distrust(b->sentinel);
        backend_enter_down(b, why);
        return;
    }
    if (r->kind == REDIS_CONN_REPLY_OTHER
        && r->reply->type == REDIS_REPLY_ERROR
        && !backend_handshake_busy(b, r->reply)) {
        (void) snprintf(
            why, sizeof(why), "%s failed: %.*s",
            b->handshake_cmd[b->handshake_sent - b->handshake_left],
            (int) (r->reply->len > 120 ? 120 : r->reply->len), r->reply->str);
        redis_conn_close(&b->conn);
        b->answered = false;
        backend_enter_down(b, why);
        return;
    }
    if (--b->handshake_left == 0 && b->conn.state == REDIS_CONN_OPEN) {
        backend_ready(b);
    }
}

/* A backend_command() reply: re-encoded as RESP for the caller to pass
 * on as it is.  The commands forwarded answer an integer or a status;
 * an error reply is the client's to see, as Redis gave it. */
static void
backend_deliver_command(struct backend *b, struct backend_fetch *f,
                        const struct redis_conn_reply *r)
{
    static const char    unexpected[] = "unexpected reply type";
    char                 buf[BACKEND_WHY_MAX + 32];
    int                  n = -1;
    struct backend_reply out = {
        BACKEND_ERROR_REPLY, unexpected, sizeof(unexpected) - 1, NULL, 0, false
    };

    if (r->kind == REDIS_CONN_REPLY_NIL) {
        n = snprintf(buf, sizeof(buf), "$-1\r\n");
    } else if (r->kind == REDIS_CONN_REPLY_OTHER) {
        const redisReply *rr = r->reply;
        int               len =
            (int) (rr->len < BACKEND_WHY_MAX ? rr->len : BACKEND_WHY_MAX);

        if (rr->type == REDIS_REPLY_INTEGER) {
            n = snprintf(buf, sizeof(buf), ":%lld\r\n", rr->integer);
        } else if (rr->type == REDIS_REPLY_STATUS) {
            n = snprintf(buf, sizeof(buf), "+%.*s\r\n", len, rr->str);
        } else if (rr->type == REDIS_REPLY_ERROR) {
            n = snprintf(buf, sizeof(buf), "-%.*s\r\n", len, rr->str);
        }
    }
    if (n > 0 && (size_t) n < sizeof(buf)) {
        out.result = BACKEND_VALUE;
        out.data = buf;
        out.len = (size_t) n;
    } else {
        backend_count_error(b, METRICS_BACKEND_REPLY);
        backend_warn(b,
                     "redis %s: a forwarded command got an unexpected "
                     "reply",
                     b->addr);
    }
    backend_fetch_finish(f, &out);
}

/* r is GET's reply (or the command's); pttl_ms is PTTL's, parsed
 * (backend_pttl_of), for a value. */
static void
backend_deliver(struct backend *b, struct backend_fetch *f,
                const struct redis_conn_reply *r, int64_t pttl_ms)
{
    static const char    unexpected[] = "unexpected reply type to GET";
    static const char    too_large[] = "reply over --max-reply-size";
    struct backend_reply out = {
        BACKEND_ERROR_REPLY, unexpected, sizeof(unexpected) - 1, NULL, 0, false
    };

    uint64_t fetch_us = backend_now_us() - f->start_us;

    if (b->slot != NULL) {
        metrics_observe_backend(b->slot, fetch_us);
    }
    if (f->command) {
        backend_deliver_command(b, f, r);
        return;
    }
    switch (r->kind) {
    case REDIS_CONN_REPLY_BULK:
        out.result = BACKEND_VALUE;
        out.data = r->value->data;
        out.len = r->value->len;
        out.value = r->value;
        out.pttl_ms = pttl_ms;
        if (b->store != NULL) {
            /* Once per fetch, before any waiter can look it up again. */
            out.stored = b->store(b->store_arg, f->key, f->key_len, r->value,
                                  fetch_us, f->token, pttl_ms);
        }
        break;
    case REDIS_CONN_REPLY_NIL:
        out.result = BACKEND_NIL;
        out.data = NULL;
        out.len = 0;
        if (b->store != NULL) {
            /* An absent key: remembered, or its stale entry dropped. */
            out.stored = b->store(b->store_arg, f->key, f->key_len, NULL,
                                  fetch_us, f->token, BACKEND_PTTL_UNKNOWN);
        }
        break;
    case REDIS_CONN_REPLY_TOO_LARGE:
        out.data = too_large;
        out.len = sizeof(too_large) - 1;
        backend_count_error(b, METRICS_BACKEND_REPLY);
        backend_warn(b,
                     "redis %s: GET reply of %" PRIu64 " bytes is over"
                     " --max-reply-size (%" PRIu64 "); dropped",
                     b->addr, r->size, b->max_reply_bytes);
        break;
    case REDIS_CONN_REPLY_OTHER:
        if (r->reply->type != REDIS_REPLY_ERROR) {
            backend_count_error(b, METRICS_BACKEND_REPLY);
            backend_warn(b, "redis %s: GET answered with reply type %d",
                         b->addr, r->reply->type);
            break;
        }
        out.result = backend_classify_error(r->reply->str, r->reply->len);
        out.data = r->reply->str;
        out.len = r->reply->len;
        if (out.result == BACKEND_WRONGTYPE) {
            /* The client asked for a key of another type: its error. */
            log_debug("redis %s: GET: %.*s", b->addr, (int) r->reply->len,
                      r->reply->str);
            break;
        }
        if (b->sentinel != NULL && r->reply->len >= 8
            && memcmp(r->reply->str, "READONLY", 8) == 0) {
            /* Our primary was demoted. */
            sentinel_reask(b->sentinel);
        }
        if (b->cluster_node) {
            struct cluster_redirect cr;

            cluster_redirect_parse(r->reply->str, r->reply->len, &cr);
            if (cr.kind != CLUSTER_REDIRECT_NONE) {
                /* The router's to follow, not a failure. */
                log_debug("redis %s: GET: %.*s", b->addr,
                          (int) (r->reply->len > 200 ? 200 : r->reply->len),
                          r->reply->str);
                break;
            }
        }
        backend_count_error(b, METRICS_BACKEND_REPLY);
        backend_warn(b, "redis %s: GET failed: %.*s", b->addr,
                     (int) (r->reply->len > 200 ? 200 : r->reply->len),
                     r->reply->str);
        break;
    }
    backend_fetch_finish(f, &out);
}

/* PTTL's reply: ms left, BACKEND_PTTL_NONE, or BACKEND_PTTL_UNKNOWN
 * (an error such as -ASK, or -2: the key went away after the GET). */
static int64_t
backend_pttl_of(const struct redis_conn_reply *r)
{
    if (r->kind != REDIS_CONN_REPLY_OTHER
        || r->reply->type != REDIS_REPLY_INTEGER) {
        return BACKEND_PTTL_UNKNOWN;
    }
    if (r->reply->integer >= 0 || r->reply->integer == -1) {
        return (int64_t) r->reply->integer;
    }
    return BACKEND_PTTL_UNKNOWN;
}

static void
backend_on_reply(struct redis_conn *c, const struct redis_conn_reply *r)
{
    struct backend       *b = c->data;
    struct backend_fetch *f;

    b->answered = true;
    if (b->handshake_left > 0) {
        backend_handshake_reply(b, r);
        return;
    }
    f = b->fifo.head;
    if (f == NULL) {
        /* Redis never speaks unasked: this stream cannot be trusted. */
        redis_conn_close(&b->conn);
        backend_enter_down(b, "reply to no request");
        return;
    }
    if (f->replies_due > 1) {
        /* Not f's last reply: GET's, with PTTL's to come (and ASKING's
         * +OK before it).  A value waits for its PTTL; anything else is
         * answered now, and f stays on the FIFO for the rest. */
        f->replies_due--;
        if (!f->got_get) {
            f->got_get = true;
            if (f->done) {
                /* its deadline passed */
            } else if (r->kind == REDIS_CONN_REPLY_BULK) {
                f->got = value_ref(r->value);
            } else {
                backend_deliver(b, f, r, BACKEND_PTTL_UNKNOWN);
            }
        }
        return;
    }
    (void) backend_queue_pop(&b->fifo);
    if (b->fifo.head == NULL) {
        event_timer_stop(b->loop, &b->watchdog);
    }
    if (f->done) {
        /* Its deadline passed: nobody waits for this late answer. */
        backend_fetch_release(f);
        return;
    }
    if (f->got_get) {
        /* PTTL's reply, for the value GET read. */
        struct redis_conn_reply get = { REDIS_CONN_REPLY_BULK, f->got, NULL,
                                        0 };

        assert(f->got != NULL);
        backend_deliver(b, f, &get, backend_pttl_of(r));
        return;
    }
    backend_deliver(b, f, r, BACKEND_PTTL_UNKNOWN);
}

static const struct redis_conn_ops backend_conn_ops = {
    .on_open = backend_on_open,
    .on_reply = backend_on_reply,
    .on_error = backend_on_error,
};

/* --- timers ------------------------------------------------------------ */

/* The deadline came while a TRYAGAIN or CLUSTERDOWN was being
 * retried: that answer (503, or Redis' error for a command), as when
 * no time is left for another try, not a timeout. */
static void
backend_fetch_retry_expired(struct backend_fetch *f)
{
    static const char tryagain[] =
        "-TRYAGAIN Multiple keys request during rehashing of slot\r\n";
    static const char down[] = "-CLUSTERDOWN The cluster is down\r\n";
    const char       *text = f->retrying == 1 ? tryagain : down;
    size_t len = f->retrying == 1 ? sizeof(tryagain) - 1 : sizeof(down) - 1;
    struct backend_reply out = { BACKEND_VALUE, text, len, NULL, 0, false };

    if (!f->command) {
        out.result = BACKEND_UNAVAILABLE;
        out.data = text + 1;
        out.len = len - 3;
    }
    backend_fetch_finish(f, &out);
}

static void
backend_on_deadline(struct event_loop *loop, struct event_timer *timer)
{
    struct backend_fetch *f = timer->data;
    struct backend       *b = f->b;

    (void) loop;
    assert(!f->done);
    if (f->list == BACKEND_LIST_PARKED) {
        /* Another process's fetch has not ended in a whole timeout
         * (stuck, or its owner died unseen): ask Redis ourselves. */
        backend_queue_remove(&b->parked, f);
        backend_fetch_unpark(f);
        return;
    }
    if (b->cluster != NULL && f->retrying != 0) {
        backend_fetch_retry_expired(f);
        return;
    }
    if (b->fifo.head == f
        && (f->got_get || redis_conn_reply_started(&b->conn))) {
        /* Its reply is arriving (a big value takes a while): from now
         * on the watchdog, which sees every byte, guards it. */
        (void) event_timer_start(b->loop, &f->deadline, b->timeout_ms);
        return;
    }
    backend_warn(b, "redis %s: GET timed out after %" PRIu64 " ms", b->addr,
                 b->timeout_ms);
    /* On a list it stays there: a placeholder for its reply.  In a
     * cluster, the node's own fetch times out and counts it. */
    backend_fetch_fail(f, BACKEND_TIMEOUT, b->cluster == NULL);
}

static void
backend_on_watchdog(struct event_loop *loop, struct event_timer *timer)
{
    struct backend *b = timer->data;
    bool            answered;

    (void) loop;
    if (b->state != BACKEND_CONNECTING && b->state != BACKEND_READY) {
        return;
    }
    if (b->conn.state == REDIS_CONN_OPEN && b->handshake_left == 0
        && b->fifo.head == NULL) {
        return; /* nothing due: an idle connection */
    }
    if (b->conn.rx_bytes != b->watch_rx) {
        b->watch_rx = b->conn.rx_bytes;
        (void) event_timer_start(b->loop, &b->watchdog, b->timeout_ms);
        return;
    }
    backend_warn(b,
                 "redis %s: no reply for %" PRIu64 " ms%s; resetting"
                 " the connection",
                 b->addr, b->timeout_ms,
                 b->conn.state == REDIS_CONN_OPEN ? ""
                 : b->conn.state == REDIS_CONN_HANDSHAKE
                     ? " during the TLS handshake (does the server speak TLS?)"
                     : " while connecting");
    answered = b->answered;
    redis_conn_close(&b->conn);
    b->answered = false;
    backend_enter_wait(b, true);
    if (!answered && b->unsent.head == NULL) {
        /* Not a word from this server (stopped, or not speaking Redis)
         * and nothing waiting to be sent: the next try backs off, as
         * after a refusal, instead of a new connection and a reset
         * every timeout while idle (each one left in a stopped Redis'
         * accept queue).  A request arriving tries at once
         * (backend_queue_unsent). */
        backend_arm_reconnect(b, b->backoff_ms);
        b->backoff_ms *= 2;
        if (b->backoff_ms > BACKEND_BACKOFF_MAX_MS) {
            b->backoff_ms = BACKEND_BACKOFF_MAX_MS;
        }
    }
}

static void
backend_on_reconnect(struct event_loop *loop, struct event_timer *timer)
{
    struct backend *b = timer->data;

    (void) loop;
    if (b->state == BACKEND_DOWN || b->state == BACKEND_WAIT) {
        backend_connect(b);
    }
}

static void
backend_on_kick(struct event_loop *loop, struct event_timer *timer)
{
    struct backend      *b = timer->data;
    struct backend_reply reply = {
        BACKEND_UNREACHABLE, NULL, 0, NULL, 0, false
    };
    struct backend_waiter *w;
    size_t                 n;

    (void) loop;
    backend_flush_unsent(b, backend_unsent_count(b));
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

/* --- the gate: one fetch per key across processes --------------------- */

/* f waits for the connection: failed by the kick when DOWN.  In WAIT,
 * a reconnect backing off from a server that never answered
 * (backend_on_watchdog) is tried now: somebody waits for it. */
static void
backend_queue_unsent(struct backend *b, struct backend_fetch *f)
{
    backend_queue_push(&b->unsent, f, BACKEND_LIST_UNSENT);
    if (b->state != BACKEND_WAIT) {
        backend_kick(b);
    } else if (event_timer_active(&b->reconnect)
               && b->reconnect.when_ms > event_now_ms(b->loop)) {
        backend_arm_reconnect(b, 0);
    }
}

/* Sends f now, or queues it for the connection. */
static void
backend_fetch_dispatch(struct backend_fetch *f)
{
    struct backend *b = f->b;

    if (backend_can_send(b) && b->unsent.head == NULL
        && backend_fetch_send(f) == 0) {
        return;
    }
    backend_queue_unsent(b, f);
}

static void
backend_gate_poll_arm(struct backend *b)
{
    int rc;

    if (event_timer_active(&b->gate_poll)) {
        return;
    }
    rc = event_timer_start(b->loop, &b->gate_poll, BACKEND_GATE_POLL_MS);
    if (rc != 0) {
        /* Its deadline still sends the fetch. */
        log_error("redis %s: cannot arm a timer: %s", b->addr, strerror(-rc));
    }
}

/* Another process fetches f's key: f waits (its deadline running). */
static void
backend_fetch_park(struct backend_fetch *f)
{
    backend_queue_push(&f->b->parked, f, BACKEND_LIST_PARKED);
    backend_gate_poll_arm(f->b);
}

/* f (off the parked list) goes to Redis itself, with a deadline and a
 * duration counted from now. */
static void
backend_fetch_unpark(struct backend_fetch *f)
{
    struct backend *b = f->b;

    event_update_time(b->loop);
    f->start_us = backend_now_us();
    if (event_timer_start(b->loop, &f->deadline, b->timeout_ms) != 0) {
        backend_fetch_fail(f, BACKEND_UNREACHABLE, true);
        return;
    }
    backend_fetch_dispatch(f);
}

static void
backend_on_gate_poll(struct event_loop *loop, struct event_timer *timer)
{
    struct backend       *b = timer->data;
    struct backend_fetch *f;
    size_t                n = 0;

    (void) loop;
    for (f = b->parked.head; f != NULL; f = f->next) {
        n++;
    }
    /* Only those parked now, each once: those still waiting go back to
     * the tail, as do fetches that answers start and park. */
    while (n-- > 0 && (f = backend_queue_pop(&b->parked)) != NULL) {
        struct backend_reply reply = { BACKEND_NIL, NULL, 0, NULL, 0, false };
        const struct backend_waiter *w;
        uint64_t                     waiters = 0;

        switch (b->gate->poll(b->store_arg, f->key, f->key_len, f->gate_state,
                              &reply)) {
        case BACKEND_GATE_WAIT:
            backend_queue_push(&b->parked, f, BACKEND_LIST_PARKED);
            break;
        case BACKEND_GATE_OWN:
            f->gate_owned = true;
            /* fall through */
        case BACKEND_GATE_SEND:
            backend_fetch_unpark(f);
            break;
        case BACKEND_GATE_ANSWERED:
            for (w = f->head; w != NULL; w = w->next) {
                waiters++;
            }
            if (b->slot != NULL) {
                metrics_count_coalesced(b->slot, waiters);
            }
            /* Read from the cache, where another worker's fetch put it. */
            reply.stored = true;
            backend_fetch_finish(f, &reply);
            value_unref(reply.value);
            break;
        }
    }
    if (b->parked.head != NULL) {
        backend_gate_poll_arm(b);
    }
}

/* --- connecting -------------------------------------------------------- */

/* Queues one handshake command; its reply is judged by
 * backend_handshake_reply(), which names it in a refusal. */
static int
backend_handshake_cmd(struct backend *b, int argc, const char **argv,
                      const size_t *lens)
{
    int rc = redis_conn_send_argv(&b->conn, argc, argv, lens);

    if (rc == 0) {
        assert(b->handshake_sent < BACKEND_HANDSHAKE_MAX);
        b->handshake_cmd[b->handshake_sent++] = argv[0];
        b->handshake_left++;
    }
    return rc;
}

static int
backend_send_handshake(struct backend *b)
{
    const char *argv[3];
    size_t      lens[3];
    char        db[16];
    int         rc;

    b->handshake_left = 0;
    b->handshake_sent = 0;
    if (b->password[0] != '\0') {
        int argc = 0;

        argv[argc] = "AUTH";
        lens[argc++] = 4;
        if (b->user[0] != '\0') {
            argv[argc] = b->user;
            lens[argc++] = strlen(b->user);
        }
        argv[argc] = b->password;
        lens[argc++] = strlen(b->password);
        if ((rc = backend_handshake_cmd(b, argc, argv, lens)) != 0) {
            return rc;
        }
    }
    if (b->db != 0) {
        (void) snprintf(db, sizeof(db), "%" PRIu32, b->db);
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = db;
        lens[1] = strlen(db);
        if ((rc = backend_handshake_cmd(b, 2, argv, lens)) != 0) {
            return rc;
        }
    }
    if (b->readonly) {
        /* A cluster replica serves reads of its slots only after it. */
        argv[0] = "READONLY";
        lens[0] = 8;
        if ((rc = backend_handshake_cmd(b, 1, argv, lens)) != 0) {
            return rc;
        }
    }
    if (b->sentinel != NULL) {
        /* Last: backend_handshake_reply() trusts only a master. */
        argv[0] = "ROLE";
        lens[0] = 4;
        if ((rc = backend_handshake_cmd(b, 1, argv, lens)) != 0) {
            return rc;
        }
    }
    if (b->handshake_sent == 0) {
        /* Nothing else to ask: a PING, so that the connection counts as
         * up only once Redis has answered on it.  A Redis that refuses
         * us at accept (maxclients, protected mode) writes its error and
         * closes; without a question due, that error came as a reply to
         * nothing, and a TCP connect alone had reset the backoff: a
         * reconnect every 100 ms, logged twice each. */
        argv[0] = "PING";
        lens[0] = 4;
        if ((rc = backend_handshake_cmd(b, 1, argv, lens)) != 0) {
            return rc;
        }
    }
    return 0;
}

static void
backend_connect(struct backend *b)
{
    struct redis_conn_target t = {
        .is_unix = b->redis.is_unix,
        .host = b->redis.host,
        .port = b->redis.port,
        .path = b->redis.path,
        .tls = b->tls,
        .server_name = b->tls_name,
    };
    char why[REDIS_CONN_WHY_MAX];
    int  rc;

    event_timer_stop(b->loop, &b->reconnect);
    assert(b->conn.state == REDIS_CONN_CLOSED && b->fifo.head == NULL);
    if (b->sentinel != NULL && !b->have_addr) {
        return; /* backend_sentinel_cb() will call */
    }
    b->answered = false;
    rc = redis_conn_open(&b->conn, &t, b->max_reply_bytes, why);
    if (rc != 0) {
        backend_enter_down(b, why);
        return;
    }
    b->state = BACKEND_CONNECTING;
    /* Connecting is something due: a silent peer trips the watchdog. */
    b->watch_rx = 0;
    (void) event_timer_start(b->loop, &b->watchdog, b->timeout_ms);
    if (backend_send_handshake(b) != 0) {
        redis_conn_close(&b->conn);
        backend_enter_down(b, "out of memory for the handshake");
        return;
    }
    backend_flush_unsent(b, backend_unsent_count(b));
}

/* --- Redis Cluster routing (the worker's backend) ------------------ */

static void backend_node_cb(struct backend_waiter      *w,
                            const struct backend_reply *reply);
static void backend_command_encoded(struct backend *b, const char *cmd,
                                    size_t len, bool has_slot, uint16_t slot,
                                    bool asking, struct backend_waiter *w,
                                    backend_cb cb, void *data);

/* Hands f to node (list NODE). */
static void
backend_fetch_to_node(struct backend_fetch *f, struct backend *node)
{
    f->node = node;
    f->list = BACKEND_LIST_NODE;
    if (f->command) {
        /* Encoded, prefix and all: the node sends it as it is. */
        bool asking = f->ask_next;

        f->ask_next = false;
        backend_command_encoded(node, f->key, f->key_len, f->has_slot, f->slot,
                                asking, &f->node_waiter, backend_node_cb, f);
    } else if (f->ask_next) {
        f->ask_next = false;
        backend_get_asking(node, f->key, f->key_len, &f->node_waiter,
                           backend_node_cb, f);
    } else if (f->fresh) {
        /* Purged since the node's fetch of this key began, if one is
         * in flight: its answer may be older than the purge. */
        backend_get_solo(node, f->key, f->key_len, &f->node_waiter,
                         backend_node_cb, f);
    } else {
        backend_get(node, f->key, f->key_len, &f->node_waiter, backend_node_cb,
                    f);
    }
}

/* Runs f's retry timer after_ms from now (list NODE).  Without a timer
 * slot the fetch is left to its deadline. */
static void
backend_fetch_defer(struct backend_fetch *f, uint64_t after_ms)
{
    f->list = BACKEND_LIST_NODE;
    f->node = NULL;
    (void) event_timer_start(f->b->loop, &f->retry, after_ms);
}

/* backend_fetch_send() in cluster mode: always 0, the fetch is now at
 * a node or will end from its retry timer (never from inside here). */
static int
backend_fetch_route(struct backend_fetch *f)
{
    struct backend    *b = f->b;
    struct backend    *node = NULL;
    enum cluster_route route;

    if (f->command && !f->has_slot) {
        /* The timer ends it: CROSSSLOT, or no key to route by. */
        f->retry_ms = UINT64_MAX - 2;
        backend_fetch_defer(f, 0);
        return 0;
    }
    route = f->command ? cluster_route_slot(b->cluster, f->slot,
                                            f->primary_only, &node)
                       : cluster_route(b->cluster, f->key, f->key_len,
                                       f->primary_only, &node);
    switch (route) {
    case CLUSTER_ROUTE_OK:
        backend_fetch_to_node(f, node);
        return 0;
    case CLUSTER_ROUTE_UNCOVERED:
        f->retry_ms = UINT64_MAX; /* the timer ends it: 503 */
        break;
    case CLUSTER_ROUTE_WAIT:
    case CLUSTER_ROUTE_DOWN:
    case CLUSTER_ROUTE_NOMEM:
        f->retry_ms = UINT64_MAX - 1; /* the timer ends it: 502 */
        break;
    }
    backend_fetch_defer(f, 0);
    return 0;
}

static void
backend_on_retry(struct event_loop *loop, struct event_timer *timer)
{
    static const char     uncovered[] = "CLUSTERDOWN Hash slot not served";
    struct backend_fetch *f = timer->data;
    struct backend_reply  out = {
         BACKEND_UNAVAILABLE, uncovered, sizeof(uncovered) - 1, NULL, 0, false
    };

    (void) loop;
    assert(f->list == BACKEND_LIST_NODE && !f->done);
    f->list = BACKEND_LIST_NONE;
    if (f->retry_ms == UINT64_MAX - 2) {
        static const char crossslot[] =
            "-CROSSSLOT Keys in request don't hash to the same slot\r\n";

        static const char keyless[] =
            "-ERR redis-cache-proxy: not supported with --redis-cluster"
            "\r\n";

        /* A command's reply is RESP bytes for the client. */
        out.result = BACKEND_VALUE;
        out.data = f->keyless ? keyless : crossslot;
        out.len = f->keyless ? sizeof(keyless) - 1 : sizeof(crossslot) - 1;
        backend_fetch_finish(f, &out);
    } else if (f->retry_ms == UINT64_MAX) {
        backend_fetch_finish(f, &out);
    } else if (f->retry_ms == UINT64_MAX - 1) {
        backend_fetch_fail(f, BACKEND_UNREACHABLE, true);
    } else {
        (void) backend_fetch_route(f);
    }
}

static void
backend_node_cb(struct backend_waiter *w, const struct backend_reply *r)
{
    struct backend_fetch *f = w->data;
    struct backend       *b = f->b;
    struct backend       *to = NULL;
    struct backend_reply  out = { .result = BACKEND_VALUE };
    uint64_t              elapsed_ms, delay;

    const char *text = r->data;
    size_t      text_len = r->len;
    bool cluster_error = r->result == BACKEND_ERROR_REPLY && text != NULL;

    assert(f->list == BACKEND_LIST_NODE && !f->done);
    f->list = BACKEND_LIST_NONE;
    f->retrying = 0;
    if (f->command && r->result == BACKEND_VALUE && text_len >= 3
        && text[0] == '-') {
        /* A command's error comes as RESP bytes: "-MOVED ...\r\n". */
        cluster_error = true;
        text++;
        text_len -= 3;
    }
    if (cluster_error) {
        switch (cluster_redirect(b->cluster, f->node, text, text_len, &to)) {
        case CLUSTER_REDIRECT_MOVED:
        case CLUSTER_REDIRECT_ASK:
            if (to != NULL && f->hops < BACKEND_CLUSTER_HOPS_MAX) {
                f->hops++;
                f->ask_next = text_len >= 3 && memcmp(text, "ASK", 3) == 0;
                f->asked |= f->ask_next;
                backend_fetch_to_node(f, to);
                return;
            }
            if (f->command) {
                /* Never a redirect to the client, which sees one
                 * ordinary Redis: our own error instead. */
                static const char loop[] =
                    "-ERR redis-cache-proxy: the cluster kept redirecting "
                    "this request\r\n";

                out.result = BACKEND_VALUE;
                out.data = loop;
                out.len = sizeof(loop) - 1;
                out.value = NULL;
                backend_fetch_finish(f, &out);
                return;
            }
            break; /* a redirect loop: 502, Redis' text unshown */
        case CLUSTER_REDIRECT_DOWN:
            /* A primary may have failed: the map will say. */
            cluster_node_failed(b->cluster);
            /* fall through */
        case CLUSTER_REDIRECT_TRYAGAIN:
            delay = f->retry_ms == 0 ? BACKEND_CLUSTER_RETRY_MS
                                     : f->retry_ms * 2;
            if (delay > BACKEND_CLUSTER_RETRY_MAX) {
                delay = BACKEND_CLUSTER_RETRY_MAX;
            }
            elapsed_ms = (backend_now_us() - f->start_us) / 1000u;
            if (elapsed_ms + delay < b->timeout_ms) {
                f->retry_ms = delay;
                /* Should the deadline come first, this answer is
                 * given (backend_fetch_retry_expired). */
                f->retrying = memcmp(text, "TRYAGAIN", 8) == 0 ? 1 : 2;
                backend_fetch_defer(f, delay);
                return;
            }
            out.result = f->command ? BACKEND_VALUE : BACKEND_UNAVAILABLE;
            out.data = f->command ? r->data : text;
            out.len = f->command ? r->len : text_len;
            out.value = NULL;
            out.stored = false;
            backend_fetch_finish(f, &out);
            return;
        case CLUSTER_REDIRECT_NONE:
            break;
        }
    }
    if (r->result == BACKEND_UNREACHABLE) {
        cluster_node_failed(b->cluster);
        if (!f->primary_only && f->hops < BACKEND_CLUSTER_HOPS_MAX
            && cluster_prefers_replica(b->cluster)) {
            /* The replica is gone: its primary serves the read. */
            f->hops++;
            f->primary_only = true;
            (void) backend_fetch_route(f);
            return;
        }
    }
    /* Stored once per fetch, before any waiter can look it up again; an
     * absent key too (remembered, or its stale entry dropped).  With
     * --tracking, not what an -ASK led to: the node importing the slot
     * may own no slot yet, so no subscriber of ours hears of its writes
     * (tracking.c); a migration is brief, and the value is answered,
     * just not kept. */
    if (((r->result == BACKEND_VALUE && r->value != NULL)
         || r->result == BACKEND_NIL)
        && b->store != NULL && !f->command && !(f->asked && b->tracking)) {
        out = *r;
        out.stored = b->store(b->store_arg, f->key, f->key_len,
                              r->result == BACKEND_VALUE ? r->value : NULL,
                              backend_now_us() - f->start_us, f->token,
                              r->result == BACKEND_VALUE
                                  ? r->pttl_ms
                                  : BACKEND_PTTL_UNKNOWN);
        backend_fetch_finish(f, &out);
        return;
    }
    backend_fetch_finish(f, r);
}

/* The cluster read its map (ready) or found no seed with none. */
static void
backend_cluster_state(void *arg, bool ready)
{
    struct backend *b = arg;

    if (ready && b->state != BACKEND_READY) {
        b->state = BACKEND_READY;
    } else if (!ready) {
        b->state = BACKEND_DOWN;
    }
    if (b->unsent.head != NULL) {
        backend_kick(b);
    }
}

/* --- Redis Sentinel ---------------------------------------------------- */

static void
backend_sentinel_cb(void *arg, bool found, const char *host, uint16_t port)
{
    struct backend       *b = arg;
    struct backend_queue  keep = { NULL, NULL };
    struct backend_fetch *f;
    char                  was[BACKEND_ADDR_MAX];

    if (!found) {
        if (!b->have_addr) {
            b->state = BACKEND_DOWN;
            if (b->unsent.head != NULL) {
                backend_kick(b);
            }
        }
        return;
    }
    if (b->have_addr && b->redis.port == port
        && strcmp(b->redis.host, host) == 0) {
        return;
    }
    (void) snprintf(was, sizeof(was), "%s", b->addr);
    (void) snprintf(b->redis.host, sizeof(b->redis.host), "%s", host);
    b->redis.port = port;
    b->redis.is_unix = false;
    backend_format_addr(b);
    if (b->have_addr) {
        log_info("redis sentinel: the primary of '%s' is now %s (was %s)",
                 b->master, b->addr, was);
        if (b->slot != NULL) {
            metrics_count_failover(b->slot);
        }
    } else {
        log_info("redis sentinel: the primary of '%s' is %s", b->master,
                 b->addr);
    }
    b->have_addr = true;
    /* Never another request to the old one: what was in flight goes to
     * the new primary, all of it (nothing was stuck), in order. */
    redis_conn_close(&b->conn);
    b->answered = false;
    b->logged_up = false;
    b->logged_down = false;
    b->backoff_ms = BACKEND_BACKOFF_MIN_MS;
    b->handshake_left = 0;
    event_timer_stop(b->loop, &b->watchdog);
    while ((f = backend_queue_pop(&b->fifo)) != NULL) {
        if (f->done) {
            backend_fetch_release(f);
        } else {
            backend_queue_push(&keep, f, BACKEND_LIST_UNSENT);
        }
    }
    if (keep.head != NULL) {
        keep.tail->next = b->unsent.head;
        if (b->unsent.tail == NULL) {
            b->unsent.tail = keep.tail;
        }
        b->unsent.head = keep.head;
    }
    backend_enter_wait(b, false);
    backend_publish_primary(b, true);
}

/* --- the interface ----------------------------------------------------- */

static void
backend_format_addr(struct backend *b)
{
    const char *scheme = b->tls != NULL ? "rediss://" : "";

    if (b->redis.is_unix) {
        (void) snprintf(b->addr, sizeof(b->addr), "unix:%s", b->redis.path);
    } else if (strchr(b->redis.host, ':') != NULL) {
        (void) snprintf(b->addr, sizeof(b->addr), "%s[%s]:%u", scheme,
                        b->redis.host, (unsigned) b->redis.port);
    } else {
        (void) snprintf(b->addr, sizeof(b->addr), "%s%s:%u", scheme,
                        b->redis.host, (unsigned) b->redis.port);
    }
}

static const char *
backend_path_or_null(const char *path)
{
    return path[0] != '\0' ? path : NULL;
}

/* The worker's TLS client context, made once: certificates are read at
 * start (and again by the next worker after SIGHUP), never per
 * connection. */
static int
backend_tls_setup(struct backend *b, const struct config *cfg)
{
    char err[BACKEND_WHY_MAX];

    if (!cfg->redis_tls) {
        return 0;
    }
    b->tls = redis_conn_tls_ctx(true,
                                backend_path_or_null(cfg->redis_tls_ca_file),
                                backend_path_or_null(cfg->redis_tls_ca_dir),
                                backend_path_or_null(cfg->redis_tls_cert_file),
                                backend_path_or_null(cfg->redis_tls_key_file),
                                err, sizeof(err));
    if (b->tls == NULL) {
        log_error("redis TLS: %s", err);
        return -EINVAL;
    }
    (void) snprintf(b->tls_name, sizeof(b->tls_name), "%s",
                    cfg->redis_tls_server_name);
    return 0;
}

/* The common part of backend_create() and backend_create_node(). */
static int
backend_create_with(struct event_loop *loop, const struct config *cfg,
                    const struct config_redis *redis,
                    struct ssl_ctx_st *node_tls, struct metrics_slot_shm *slot,
                    backend_store_cb store, void *store_arg, bool node,
                    struct backend **out)
{
    struct backend *b = calloc(1, sizeof(*b));
    int             rc;

    if (b == NULL) {
        return -ENOMEM;
    }
    b->buckets = calloc(BACKEND_BUCKETS_MIN, sizeof(*b->buckets));
    b->oom = calloc(1, sizeof(*b->oom));
    if (b->buckets == NULL || b->oom == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    b->nbuckets = BACKEND_BUCKETS_MIN;
    if (getrandom(&b->seed, sizeof(b->seed), GRND_NONBLOCK)
        != (ssize_t) sizeof(b->seed)) {
        /* Early boot: any per-process value still beats a constant. */
        b->seed = ((uint64_t) getpid() << 32) ^ backend_now_us();
    }
    b->loop = loop;
    b->slot = slot;
    b->store = store;
    b->store_arg = store_arg;
    b->redis = *redis;
    b->cluster_node = node;
    b->readonly = node && cfg->redis_read_from != CONFIG_READ_PRIMARY;
    (void) snprintf(b->user, sizeof(b->user), "%s", cfg->redis_user);
    (void) snprintf(b->password, sizeof(b->password), "%s",
                    cfg->redis_password);
    b->db = cfg->redis_db;
    b->timeout_ms = cfg->redis_timeout_ms;
    b->max_reply_bytes = cfg->max_reply_bytes;
    b->tracking = cfg->tracking != CONFIG_TRACKING_OFF;
    b->key_prefix_len = strlen(cfg->key_prefix);
    memcpy(b->key_prefix, cfg->key_prefix, b->key_prefix_len);
    if (node) {
        b->tls = node_tls;
        b->tls_borrowed = true;
        (void) snprintf(b->tls_name, sizeof(b->tls_name), "%s",
                        cfg->redis_tls_server_name);
    } else if (cfg->redis_cluster[0] == '\0') {
        rc = backend_tls_setup(b, cfg);
        if (rc != 0) {
            goto fail;
        }
    }
    backend_format_addr(b);
    b->backoff_ms = BACKEND_BACKOFF_MIN_MS;
    b->state = BACKEND_WAIT;
    b->oom->b = b;
    b->oom->done = true; /* never in the table, never sent */
    redis_conn_init(&b->conn, loop, &backend_conn_ops, b);
    event_timer_init(&b->reconnect, backend_on_reconnect, b);
    event_timer_init(&b->watchdog, backend_on_watchdog, b);
    event_timer_init(&b->kick, backend_on_kick, b);
    event_timer_init(&b->gate_poll, backend_on_gate_poll, b);
    if (!node && cfg->redis_cluster[0] != '\0') {
        (void) snprintf(b->addr, sizeof(b->addr), "cluster");
        rc = cluster_create(loop, cfg, slot, backend_cluster_state, b,
                            &b->cluster);
        if (rc != 0) {
            goto fail;
        }
        *out = b;
        return 0;
    }
    if (!node && cfg->redis_sentinel[0] != '\0') {
        /* --redis-cluster, above, takes precedence. */
        (void) snprintf(b->master, sizeof(b->master), "%s", cfg->redis_master);
        (void) snprintf(b->addr, sizeof(b->addr), "sentinel:%s",
                        cfg->redis_master);
        rc = sentinel_create(loop, cfg, backend_sentinel_cb, b, &b->sentinel);
        if (rc != 0) {
            goto fail;
        }
        *out = b;
        return 0;
    }
    backend_connect(b);
    *out = b;
    return 0;
fail:
    if (b->tls != NULL && !b->tls_borrowed) {
        redis_conn_tls_ctx_free(b->tls);
    }
    free(b->buckets);
    free(b->oom);
    free(b);
    return rc;
}

bool
backend_fetching(struct backend *b, const void *key, size_t key_len)
{
    return backend_table_find(b, backend_hash(b, key, key_len), key, key_len,
                              false)
           != NULL;
}

int
backend_create(struct event_loop *loop, const struct config *cfg,
               struct metrics_slot_shm *slot, backend_store_cb store,
               void *store_arg, struct backend **out)
{
    return backend_create_with(loop, cfg, &cfg->redis, NULL, slot, store,
                               store_arg, false, out);
}

bool
backend_usable(const struct backend *b)
{
    return b->state != BACKEND_DOWN;
}

enum metrics_node_state
backend_node_state(const struct backend *b)
{
    if (b->state == BACKEND_READY) {
        return METRICS_NODE_UP;
    }
    return b->logged_down ? METRICS_NODE_DOWN : METRICS_NODE_CONNECTING;
}

void
backend_set_state_cb(struct backend *b, backend_state_cb fn, void *arg)
{
    b->state_cb = fn;
    b->state_arg = arg;
}

int
backend_create_node(struct event_loop *loop, const struct config *cfg,
                    const char *host, uint16_t port, struct ssl_ctx_st *tls,
                    struct metrics_slot_shm *slot, struct backend **out)
{
    struct config_redis *r = calloc(1, sizeof(*r));
    int                  rc;

    if (r == NULL) {
        return -ENOMEM;
    }
    (void) snprintf(r->host, sizeof(r->host), "%s", host);
    r->port = port;
    r->tls = tls != NULL;
    rc = backend_create_with(loop, cfg, r, tls, slot, NULL, NULL, true, out);
    free(r);
    return rc;
}

/* asking: as backend_get_asking(); solo: neither joins nor is joined
 * (backend_get_solo()). */
static void
backend_get_with(struct backend *b, const void *key, size_t key_len,
                 struct backend_waiter *w, backend_cb cb, void *data,
                 bool asking, bool solo)
{
    uint64_t hash = backend_hash(b, key, key_len);
    uint64_t token = b->token != NULL ? b->token(b->store_arg, key, key_len)
                                      : 0;
    bool     fresh = false;
    struct backend_fetch *f =
        asking || solo ? NULL
                       : backend_table_find(b, hash, key, key_len, false);

    w->cb = cb;
    w->data = data;
    if (f != NULL && f->token == token) {
        backend_waiter_append(f, w);
        return;
    }
    if (f != NULL) {
        /* The key was purged after f's GET went out: f's answer may be
         * older than the purge, so this client waits for a GET of its
         * own, and f leaves the table to be joined no more. */
        backend_table_remove(b, f);
        f->solo = true;
        f->detached = true;
        f->detached_next = b->detached;
        b->detached = f;
        fresh = true;
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
    /* The loop reads its clock once per iteration; work done earlier in
     * this one (a bcrypt check, a big copy) must not eat into the
     * deadline, or into the watchdog's look at a silent connection. */
    event_update_time(b->loop);
    f->asking = asking;
    f->solo = asking || solo;
    f->fresh = fresh || solo;
    f->token = token;
    event_timer_init(&f->retry, backend_on_retry, f);
    event_timer_init(&f->deadline, backend_on_deadline, f);
    if (event_timer_start(b->loop, &f->deadline, b->timeout_ms) != 0) {
        free(f);
        backend_waiter_append(b->oom, w);
        backend_kick(b);
        return;
    }
    if (!f->solo) {
        backend_table_insert(b, f);
    }
    backend_waiter_append(f, w);
    if (b->destroying) {
        return; /* backend_destroy() fails it */
    }
    if (b->gate != NULL && !f->solo) {
        switch (b->gate->begin(b->store_arg, key, key_len, f->gate_state)) {
        case BACKEND_GATE_WAIT:
            backend_fetch_park(f);
            return;
        case BACKEND_GATE_OWN:
            f->gate_owned = true;
            break;
        case BACKEND_GATE_SEND:
        case BACKEND_GATE_ANSWERED:
            break;
        }
    }
    backend_fetch_dispatch(f);
}

void
backend_get(struct backend *b, const void *key, size_t key_len,
            struct backend_waiter *w, backend_cb cb, void *data)
{
    backend_get_with(b, key, key_len, w, cb, data, false, false);
}

void
backend_get_solo(struct backend *b, const void *key, size_t key_len,
                 struct backend_waiter *w, backend_cb cb, void *data)
{
    backend_get_with(b, key, key_len, w, cb, data, false, true);
}

void
backend_set_conn_cb(struct backend *b, backend_conn_cb cb, void *arg)
{
    b->conn_cb = cb;
    b->conn_arg = arg;
}

struct cluster *
backend_cluster(const struct backend *b)
{
    return b->cluster;
}

bool
backend_target(const struct backend *b, struct backend_target *out)
{
    if (b->cluster != NULL || (b->sentinel != NULL && !b->have_addr)) {
        return false;
    }
    out->is_unix = b->redis.is_unix;
    out->host = b->redis.host;
    out->port = b->redis.port;
    out->path = b->redis.path;
    out->tls = b->tls;
    out->server_name = b->tls_name;
    out->user = b->user;
    out->password = b->password;
    out->addr = b->addr;
    out->key_prefix = b->key_prefix;
    return true;
}

void
backend_set_token(struct backend *b, backend_token_cb token)
{
    b->token = token;
}

void
backend_set_gate(struct backend *b, const struct backend_gate_ops *ops)
{
    b->gate = ops;
}

void
backend_get_asking(struct backend *b, const void *key, size_t key_len,
                   struct backend_waiter *w, backend_cb cb, void *data)
{
    backend_get_with(b, key, key_len, w, cb, data, true, false);
}

/* backend_command() once encoded (--key-prefix applied).  has_slot and
 * slot: where a cluster routes it; asking: as backend_get_asking(). */
static void
backend_command_encoded(struct backend *b, const char *cmd, size_t len,
                        bool has_slot, uint16_t slot, bool asking,
                        struct backend_waiter *w, backend_cb cb, void *data)
{
    uint64_t              hash;
    struct backend_fetch *f = NULL;

    w->cb = cb;
    w->data = data;
    hash = backend_hash(b, cmd, len);
    f = asking ? NULL : backend_table_find(b, hash, cmd, len, true);
    if (f != NULL) {
        /* The same read-only command already on its way: share it. */
        backend_waiter_append(f, w);
        return;
    }
    f = malloc(sizeof(*f) + len);
    if (f == NULL) {
        goto oom;
    }
    memset(f, 0, sizeof(*f));
    f->b = b;
    f->hash = hash;
    f->command = true;
    f->asking = asking;
    f->solo = asking;
    f->has_slot = has_slot;
    f->keyless = b->cluster != NULL && !has_slot && slot == UINT16_MAX;
    f->slot = has_slot ? slot : 0;
    f->key_len = len;
    memcpy(f->key, cmd, len);
    f->start_us = backend_now_us();
    event_timer_init(&f->retry, backend_on_retry, f);
    event_timer_init(&f->deadline, backend_on_deadline, f);
    if (event_timer_start(b->loop, &f->deadline, b->timeout_ms) != 0) {
        free(f);
        goto oom;
    }
    if (!f->solo) {
        backend_table_insert(b, f);
    }
    backend_waiter_append(f, w);
    if (b->destroying) {
        return;
    }
    if (!(backend_can_send(b) && b->unsent.head == NULL
          && backend_fetch_send(f) == 0)) {
        backend_queue_unsent(b, f);
    }
    return;
oom:
    backend_waiter_append(b->oom, w);
    backend_kick(b);
}

void
backend_command(struct backend *b, int argc, const char *const *argv,
                const size_t *lens, int key_from, struct backend_waiter *w,
                backend_cb cb, void *data)
{
    const char *av[BACKEND_COMMAND_ARGS_MAX];
    size_t      al[BACKEND_COMMAND_ARGS_MAX];
    char       *prefixed[BACKEND_COMMAND_ARGS_MAX] = { NULL };
    char       *cmd = NULL;
    int         len = -1;
    bool        has_slot = false;
    uint16_t    slot = 0;

    assert(argc > 0 && argc <= BACKEND_COMMAND_ARGS_MAX);
    w->cb = cb;
    w->data = data;
    for (int i = 0; i < argc; i++) {
        av[i] = argv[i];
        al[i] = lens[i];
        if (i >= key_from && b->key_prefix_len > 0) {
            prefixed[i] = malloc(b->key_prefix_len + lens[i] + 1);
            if (prefixed[i] == NULL) {
                goto oom;
            }
            memcpy(prefixed[i], b->key_prefix, b->key_prefix_len);
            memcpy(prefixed[i] + b->key_prefix_len, argv[i], lens[i]);
            av[i] = prefixed[i];
            al[i] = b->key_prefix_len + lens[i];
        }
    }
    if (b->cluster != NULL && key_from >= argc) {
        slot = UINT16_MAX; /* keyless: nothing to route by */
    } else if (b->cluster != NULL) {
        /* A cluster sends it where its keys live, if they live in one
         * slot (else CROSSSLOT, as Redis Cluster answers). */
        has_slot = true;
        slot = cluster_keyslot(av[key_from], al[key_from]);
        for (int i = key_from + 1; i < argc; i++) {
            if (cluster_keyslot(av[i], al[i]) != slot) {
                has_slot = false;
            }
        }
    }
    len = redisFormatCommandArgv(&cmd, argc, av, al);
    if (len < 0 || cmd == NULL) {
        goto oom;
    }
    backend_command_encoded(b, cmd, (size_t) len, has_slot, slot, false, w, cb,
                            data);
    goto done;
oom:
    backend_waiter_append(b->oom, w);
    backend_kick(b);
done:
    if (cmd != NULL) {
        redisFreeCommand(cmd);
    }
    for (int i = 0; i < argc; i++) {
        free(prefixed[i]);
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
    struct backend_reply reply = {
        BACKEND_UNREACHABLE, NULL, 0, NULL, 0, false
    };
    struct backend_fetch  *f;
    struct backend_waiter *w;
    size_t                 i;

    b->destroying = true;
    event_timer_stop(b->loop, &b->reconnect);
    event_timer_stop(b->loop, &b->watchdog);
    event_timer_stop(b->loop, &b->kick);
    event_timer_stop(b->loop, &b->gate_poll);
    redis_conn_close(&b->conn);
    b->state = BACKEND_DOWN;
    backend_count_conn(b, false);
    backend_drain_fifo(b, false);
    while ((f = backend_queue_pop(&b->unsent)) != NULL) {
        if (f->done) {
            backend_fetch_release(f);
        } else {
            backend_fetch_fail(f, BACKEND_UNREACHABLE, false);
        }
    }
    /* Callbacks may start fetches; they land in the table, not sent. */
    while (b->nfetches > 0 || b->oom->head != NULL || b->detached != NULL) {
        while (b->detached != NULL) {
            backend_fetch_fail(b->detached, BACKEND_UNREACHABLE, false);
        }
        for (i = 0; i < b->nbuckets && b->nfetches > 0; i++) {
            while (b->buckets[i] != NULL) {
                backend_fetch_fail(b->buckets[i], BACKEND_UNREACHABLE, false);
            }
        }
        while ((w = b->oom->head) != NULL) {
            backend_waiter_unlink(w);
            w->cb(w, &reply);
        }
    }
    /* Fetches started by those callbacks sit on the unsent list, done. */
    while ((f = backend_queue_pop(&b->unsent)) != NULL) {
        backend_fetch_release(f);
    }
    redis_conn_fini(&b->conn);
    if (b->cluster != NULL) {
        /* Every fetch of ours has left its node by now. */
        cluster_destroy(b->cluster);
    }
    if (b->sentinel != NULL) {
        sentinel_destroy(b->sentinel);
    }
    if (b->tls != NULL && !b->tls_borrowed) {
        redis_conn_tls_ctx_free(b->tls);
    }
    free(b->oom);
    free(b->buckets);
    free(b);
}
