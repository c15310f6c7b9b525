/*
 * backend: the worker's requests to the backing Redis, pipelined on the
 * worker's own connection (redis_conn.c: TCP, unix socket or TLS).
 *
 * Concurrent misses for one key share one GET: a pending fetch record
 * (owned by the backend) lists its waiters; a waiter is embedded in the
 * caller's object and unlinks itself with backend_cancel().  Every waiter
 * not cancelled gets its callback exactly once.  Each fetch has its own
 * deadline (--redis-timeout): past it, its waiters alone get
 * BACKEND_TIMEOUT; the connection is reset only when no reply byte has
 * come for a whole timeout, and the requests still in flight are re-sent
 * with their own deadlines.  While Redis refuses connections, fetches
 * fail at once and a reconnect runs in the background with capped
 * exponential backoff.
 *
 * The backend knows nothing of the cache: a value read for a fetch is
 * handed to the store callback given at creation, once per fetch and
 * before any waiter is called, so the caller can cache it.  Each GET is
 * followed on the same connection (so the same node) by a PTTL of its
 * key, and the value comes with Redis' remaining expiry of the key.
 */
#ifndef RCP_BACKEND_H
#define RCP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "metrics.h"
#include "value.h"

/* metrics.c's per-worker slot; only a pointer is kept here, so this
 * header stays clear of the cache's (metrics.h renders cache stats). */
struct metrics_slot_shm;

enum backend_result {
    BACKEND_VALUE = 0,   /* string reply: data/len is the value */
    BACKEND_NIL,         /* key absent: 404 / nil */
    BACKEND_WRONGTYPE,   /* data/len: Redis' error text: 409 */
    BACKEND_ERROR_REPLY, /* other error reply, or a reply over
                            --max-reply-size; text in data: 502 */
    BACKEND_UNREACHABLE, /* no connection: 502 */
    BACKEND_TIMEOUT,     /* past --redis-timeout: 504 */
    BACKEND_UNAVAILABLE  /* Redis Cluster: the slot has no node,
                            or TRYAGAIN/CLUSTERDOWN outlasted the
                            deadline; data: the error text: 503 */
};

struct backend_reply {
    enum backend_result result;
    const char         *data; /* borrowed: valid only during callback */
    size_t              len;
    struct value       *value;   /* BACKEND_VALUE: the shared bytes data
                                    points into; value_ref() to keep them
                                    past the callback.  NULL otherwise. */
    int64_t             pttl_ms; /* BACKEND_VALUE of a GET: the key's
                                    PTTL, read with it (BACKEND_PTTL_*
                                    or ms left); 0 otherwise */
    bool                stored;  /* what the store callback said: the
                                    value (or the absence) is now cached */
};

/* Redis' PTTL of a key read with its value: -1 when the key has no
 * expiry; UNKNOWN when PTTL failed (an -ASK redirect, a reply of
 * another type) or the key was gone by then (-2): not to be cached. */
#define BACKEND_PTTL_NONE    INT64_C(-1)
#define BACKEND_PTTL_UNKNOWN INT64_C(-3)

struct backend_waiter;
typedef void (*backend_cb)(struct backend_waiter      *w,
                           const struct backend_reply *reply);

/* Called once per GET fetch that read a string value or found the key
 * absent (v NULL), before its waiters (even when they all cancelled).
 * v is borrowed: value_ref() it to keep it.  fetch_us: from the fetch's
 * start to its reply.  token: what the token callback said when the
 * fetch began (0 without one).  pttl_ms: with a value, the key's PTTL
 * read in the same round trip (BACKEND_PTTL_NONE, BACKEND_PTTL_UNKNOWN,
 * or ms left when Redis ran it, which was after the fetch's start).
 * True when it stored it: the waiters' reply says so (stored). */
typedef bool (*backend_store_cb)(void *arg, const void *key, size_t key_len,
                                 struct value *v, uint64_t fetch_us,
                                 uint64_t token, int64_t pttl_ms);

/* Called (with the store callback's arg) for each backend_get(), before
 * anything is sent: a value that changes when key is purged
 * (cache_purge_token).  A request whose token differs from that of the
 * fetch in flight for its key starts a fetch of its own. */
typedef uint64_t (*backend_token_cb)(void *arg, const void *key,
                                     size_t key_len);

/* Embedded in the caller's object; zero it or leave it to backend_get. */
struct backend_waiter {
    struct backend_waiter *next; /* in the fetch's waiter list */
    struct backend_waiter *prev;
    void                  *fetch; /* borrowed: NULL when idle */
    backend_cb             cb;
    void                  *data; /* borrowed: the caller's object */
};

struct backend;
struct ssl_ctx_st;

/* Parses nothing: cfg is already valid.  slot and store may be NULL (no
 * metrics, nothing stored).  Starts connecting at once.  0 or -errno;
 * a TLS setup that cannot be made (a CA file that does not load) is
 * -EINVAL with the reason logged. */
int backend_create(struct event_loop *loop, const struct config *cfg,
                   struct metrics_slot_shm *slot, backend_store_cb store,
                   void *store_arg, struct backend **out);
/* One node of a Redis Cluster, for cluster.c: a backend on host:port
 * with cfg's AUTH, timeouts and --key-prefix, and tls (borrowed: NULL
 * for plain) as its TLS context; READONLY after AUTH unless
 * --redis-read-from is primary.  Nothing stored; cluster errors
 * (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) are handed to the waiter as
 * BACKEND_ERROR_REPLY without counting or logging them. */
int backend_create_node(struct event_loop *loop, const struct config *cfg,
                        const char *host, uint16_t port,
                        struct ssl_ctx_st *tls, struct metrics_slot_shm *slot,
                        struct backend **out);

/* False while the backend knows its Redis refuses it (DOWN). */
bool backend_usable(const struct backend *b);

/* b's connection as /health shows it: METRICS_NODE_UP once ready,
 * DOWN after a refusal until the next ready, else CONNECTING. */
enum metrics_node_state backend_node_state(const struct backend *b);

/* A node's owner (cluster.c) hears of its state: fn(arg) runs after
 * backend_node_state() may have changed (ready, or refused); from the
 * loop, never from inside a call of the owner's. */
typedef void (*backend_state_cb)(void *arg);
void backend_set_state_cb(struct backend *b, backend_state_cb fn, void *arg);

/* Fails every waiter with BACKEND_UNREACHABLE, then frees.  Not to be
 * called from inside a waiter's callback. */
void backend_destroy(struct backend *b);

/* Starts (or joins) the fetch of key; w->cb(w, reply) runs later, never
 * from inside this call.  w must not be waiting already. */
void backend_get(struct backend *b, const void *key, size_t key_len,
                 struct backend_waiter *w, backend_cb cb, void *data);

/* Whether a GET of key is in flight (a backend_get() would join it). */
bool backend_fetching(struct backend *b, const void *key, size_t key_len);
/* As backend_get, for a Redis Cluster -ASK: ASKING is sent just before
 * the GET, and the fetch neither joins nor is joined by another. */
void backend_get_asking(struct backend *b, const void *key, size_t key_len,
                        struct backend_waiter *w, backend_cb cb, void *data);

/* As backend_get, but the fetch neither joins nor is joined by another
 * (a cluster node's GET for a fetch purged meanwhile). */
void backend_get_solo(struct backend *b, const void *key, size_t key_len,
                      struct backend_waiter *w, backend_cb cb, void *data);

/* Sets the token callback (NULL: none); call before the first get. */
void backend_set_token(struct backend *b, backend_token_cb token);

/*
 * One fetch per key across processes (worker_inflight.c).  A gate set
 * on a backend is asked, with the store callback's arg, about each new
 * GET fetch that others may join (not a command, an ASKING or a solo
 * fetch, nor a cluster node's): send it, or park it while another
 * process fetches the key.  A parked fetch is in the table as ever
 * (local misses of the key join it) and is polled every
 * BACKEND_GATE_POLL_MS; once its deadline (--redis-timeout) passes it
 * is sent anyway, with a deadline of its own from then.  state is the
 * gate's, kept in the fetch.
 */
enum backend_gate {
    BACKEND_GATE_SEND = 0, /* send the GET */
    BACKEND_GATE_OWN,      /* send it, and call end when it ends */
    BACKEND_GATE_WAIT,     /* park it; poll again later */
    BACKEND_GATE_ANSWERED  /* poll: *reply is its answer */
};

#define BACKEND_GATE_POLL_MS 2

struct backend_gate_ops {
    enum backend_gate (*begin)(void *arg, const void *key, size_t key_len,
                               uint64_t state[2]);
    /* A parked fetch: WAIT, SEND, OWN, or ANSWERED with *reply filled
     * (BACKEND_VALUE with a value whose one reference is handed over,
     * or BACKEND_NIL); the store callback is not called for it. */
    enum backend_gate (*poll)(void *arg, const void *key, size_t key_len,
                              uint64_t state[2], struct backend_reply *reply);
    /* A fetch that was OWN ended, after its store, before its waiters
     * are called. */
    void (*end)(void *arg, const void *key, size_t key_len,
                const uint64_t state[2]);
};

/* Sets the gate (borrowed, NULL: none); call before the first get. */
void backend_set_gate(struct backend *b, const struct backend_gate_ops *ops);

/* Unlinks w if it is waiting; its callback will not run.  Safe on an
 * idle waiter. */
void backend_cancel(struct backend_waiter *w);

/* Called when the backend's connection to Redis becomes ready (up: its
 * handshake answered) and when a ready one is lost or closed (down), so
 * tracking.c knows which connection its CLIENT TRACKING is on.  Runs
 * inside backend code: it must not call into b (defer with a timer). */
typedef void (*backend_conn_cb)(void *arg, bool up);
void backend_set_conn_cb(struct backend *b, backend_conn_cb cb, void *arg);

/* Where the backend connects now (a Sentinel's primary changes it) and
 * how it authenticates, for a second connection to the same Redis.  All
 * borrowed from b: valid until the loop runs again.  False while no
 * address is known (Sentinel not answered yet). */
struct backend_target {
    bool               is_unix;
    const char        *host;
    uint16_t           port;
    const char        *path;
    struct ssl_ctx_st *tls;         /* NULL: plain */
    const char        *server_name; /* TLS: "" is the host */
    const char        *user;        /* "" none */
    const char        *password;    /* "" none */
    const char        *addr;        /* for logs */
    const char        *key_prefix;  /* --key-prefix, "" none */
};
bool backend_target(const struct backend *b, struct backend_target *out);

/* --redis-cluster: the cluster b routes through (tracking.c makes a
 * subscriber per node); NULL for one Redis or a node. */
struct cluster *backend_cluster(const struct backend *b);

/* Most arguments of a backend_command(). */
#define BACKEND_COMMAND_ARGS_MAX 64

/* Sends a read-only command (argv[0..argc), at most
 * BACKEND_COMMAND_ARGS_MAX) uncached; --key-prefix is put before
 * argv[key_from..argc).  cb gets BACKEND_VALUE with data/len the whole
 * reply as RESP bytes (an integer, a status, or Redis' error), or the
 * failures backend_get() has (UNREACHABLE, TIMEOUT, ERROR_REPLY for a
 * reply of an unexpected type).  Identical commands in flight at once
 * share one request.  Never calls cb before returning. */
void backend_command(struct backend *b, int argc, const char *const *argv,
                     const size_t *lens, int key_from,
                     struct backend_waiter *w, backend_cb cb, void *data);

/* Number of fetches in flight (for a graceful stop). */
size_t backend_pending(const struct backend *b);

/* Maps a reply's error text: "WRONGTYPE ..." is BACKEND_WRONGTYPE, any
 * other is BACKEND_ERROR_REPLY.  Exposed for tests. */
enum backend_result backend_classify_error(const char *text, size_t len);

#endif
