/*
 * metrics: per-worker counter slots in an anonymous shared mapping made by
 * the supervisor before it forks, and their Prometheus text rendering.
 * Each slot has one writer (the worker using it) and no lock: a worker
 * bumps plain uint64_t fields with relaxed atomics, and the supervisor sums
 * the slots when /metrics is scraped.  A slot keeps its counts when its
 * worker is replaced, so counters never go backwards.
 */
#ifndef RCP_METRICS_H
#define RCP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"

enum metrics_proto {
    METRICS_PROTO_HTTP = 0,
    METRICS_PROTO_RESP,
    METRICS_PROTO_COUNT
};

/* HTTP status codes we answer with, and RESP outcomes; index into
 * requests[][]. */
enum metrics_code {
    METRICS_CODE_200 = 0,
    METRICS_CODE_204,
    METRICS_CODE_304,
    METRICS_CODE_400,
    METRICS_CODE_401,
    METRICS_CODE_403,
    METRICS_CODE_404,
    METRICS_CODE_405,
    METRICS_CODE_408,
    METRICS_CODE_409,
    METRICS_CODE_412,
    METRICS_CODE_413,
    METRICS_CODE_414,
    METRICS_CODE_431,
    METRICS_CODE_500,
    METRICS_CODE_501,
    METRICS_CODE_502,
    METRICS_CODE_503,
    METRICS_CODE_504,
    METRICS_CODE_505,
    METRICS_CODE_RESP_OK,
    METRICS_CODE_RESP_NIL,
    METRICS_CODE_RESP_ERR,
    METRICS_CODE_COUNT
};

enum metrics_backend_error {
    METRICS_BACKEND_UNREACHABLE = 0,
    METRICS_BACKEND_TIMEOUT,
    METRICS_BACKEND_REPLY,
    METRICS_BACKEND_TLS, /* a TLS handshake or certificate failed */
    METRICS_BACKEND_ERROR_COUNT
};

/* Why an expired value was answered (rcp_stale_answers_total). */
enum metrics_stale {
    METRICS_STALE_REVALIDATE = 0, /* --stale-while-revalidate */
    METRICS_STALE_ERROR,          /* --stale-if-error */
    METRICS_STALE_COUNT
};

/* Why a background refresh was started (rcp_refreshes_total). */
enum metrics_refresh {
    METRICS_REFRESH_STALE = 0, /* a stale answer */
    METRICS_REFRESH_EARLY,     /* --early-refresh */
    METRICS_REFRESH_COUNT
};

/*
 * The backend's nodes as one worker sees them, for /health and the
 * status page: a cluster's primaries (and the replicas it reads from),
 * or the primary Sentinel named.  The worker writes the table between
 * two increments of nodes_seq (odd while it writes); a reader copies it
 * and retries when the sequence was odd or moved (a seqlock).
 */
#define METRICS_NODES_MAX     32
#define METRICS_NODE_ADDR_MAX 96

enum metrics_node_state {
    METRICS_NODE_UNUSED = 0, /* no connection needed yet */
    METRICS_NODE_CONNECTING, /* first connection, or a reconnection
                                after a good one, under way */
    METRICS_NODE_UP,         /* connected, handshake done */
    METRICS_NODE_DOWN        /* refused or unreachable, last we tried */
};

struct metrics_node_shm {
    char     addr[METRICS_NODE_ADDR_MAX]; /* "host:port", NUL-terminated */
    uint32_t slots;   /* a cluster primary's slots; 0 else */
    uint8_t  replica; /* 1: a replica reads go to */
    uint8_t  state;   /* enum metrics_node_state */
    uint8_t  pad[2];
};

/* Upper bounds, in seconds, of the backend duration histogram. */
#define METRICS_BUCKETS 12

struct metrics_slot_shm {
    uint64_t requests[METRICS_PROTO_COUNT][METRICS_CODE_COUNT];
    uint64_t backend_errors[METRICS_BACKEND_ERROR_COUNT];
    uint64_t backend_buckets[METRICS_BUCKETS]; /* non-cumulative */
    uint64_t backend_count;
    uint64_t backend_sum_us;
    int64_t  connections;          /* gauge: open now */
    int64_t  backend_connections;  /* gauge: ready Redis conns */
    uint64_t connections_accepted; /* accepted and served */
    uint64_t connections_denied;   /* closed at accept: --allow-from */
    uint64_t connections_refused;  /* answered "full" at accept: out of
                                      descriptors (worker_accept.c) */
    uint64_t auth_failures;        /* 401s, WRONGPASS, NOAUTH */
    uint64_t stale_answers[METRICS_STALE_COUNT];
    uint64_t refreshes[METRICS_REFRESH_COUNT]; /* background GETs */
    uint64_t not_modified;                     /* 304s */
    uint64_t negative_hits;                    /* remembered absent keys */
    uint64_t coalesced_waiters;                /* misses answered by another
                                                  worker's fetch of the key */
    /* Redis Cluster (cluster.c); zero with a single Redis. */
    uint64_t cluster_redirects[2];  /* [0] MOVED, [1] ASK */
    uint64_t cluster_refreshes;     /* CLUSTER SLOTS rounds started */
    uint64_t cluster_map_changes;   /* maps read that moved a slot */
    uint64_t failovers;             /* Sentinel: new primaries */
    uint64_t cluster_map_ms;        /* gauge: CLOCK_MONOTONIC ms of
                                       this worker's last map; 0
                                       none.  The freshest slot's
                                       view is the one shown: */
    uint64_t cluster_nodes;         /* gauge: primaries in it */
    uint64_t cluster_slots_covered; /* gauge: slots with a primary */
    uint64_t cluster_nodes_down;    /* gauge: primaries refusing us */
    /* --tracking (tracking.c); zero when off. */
    uint64_t invalidations;     /* keys dropped by Redis' word,
                                   a flush counting one */
    int64_t  tracking;          /* gauge: METRICS_TRACKING_* */
    uint64_t tracking_until_ms; /* CLOCK_MONOTONIC ms: past it an UP
                                   slot counts as DOWN (its worker's
                                   heartbeat is late: stopped, hung) */
    /* The node table (see above); metrics_sum() leaves it out. */
    uint64_t nodes_seq; /* odd while being written */
    uint64_t nodes_ms;  /* CLOCK_MONOTONIC ms the list
                           (not a state) last changed */
    uint32_t nnodes;
    uint32_t nodes_more; /* left out: past NODES_MAX */
    struct metrics_node_shm nodes[METRICS_NODES_MAX];
};

/* A slot's tracking state.  NONE: no worker of ours tracks in it (off,
 * or the slot is free); DOWN: its worker's channel from Redis is not
 * whole, so no worker may answer from the cache (it would miss that
 * worker's invalidations); UP: whole. */
#define METRICS_TRACKING_NONE 0
#define METRICS_TRACKING_DOWN 1
#define METRICS_TRACKING_UP   2

struct metrics;

/* Creates the shared mapping for nslots slots.  0 or -errno. */
int                      metrics_create(uint32_t nslots, struct metrics **out);
void                     metrics_destroy(struct metrics *m);
struct metrics_slot_shm *metrics_slot(struct metrics *m, uint32_t slot);
uint32_t                 metrics_slot_count(const struct metrics *m);

/* Supervisor, after reaping the worker that used slot (before its
 * replacement starts): zeroes the slot's connection gauge, since the
 * kernel closed those connections.  Counters are kept. */
void metrics_reap_slot(struct metrics *m, uint32_t slot);

/* Supervisor, after reaping the worker that used slot: clears its
 * tracking state; true when it tracked (the keys it was told about are
 * told to nobody now: the caller flushes the cache). */
bool metrics_reap_tracking(struct metrics *m, uint32_t slot);

/* tracking.c: this worker's state (METRICS_TRACKING_*), and n
 * invalidated keys. */
void metrics_set_tracking(struct metrics_slot_shm *s, int64_t state);
void metrics_count_invalidations(struct metrics_slot_shm *s, uint64_t n);
/* tracking.c, the heartbeat: this worker vouches for its channel until
 * until_ms (metrics_clock_ms()); past it, its UP counts as DOWN.  Call
 * before saying UP, and each time the channel proves whole again
 * (UINT64_MAX: nothing to hear of, so for ever). */
void metrics_tracking_beat(struct metrics_slot_shm *s, uint64_t until_ms);

/* Supervisor: while held, tracking counts as DOWN whatever the workers
 * say (a flush the cache needs has not had the lock yet). */
void metrics_hold_tracking(struct metrics *m, bool held);

/* Over every slot at now_ms (metrics_clock_ms()): NONE when no worker
 * tracks, DOWN when one is down or its heartbeat is past (or the
 * supervisor holds it), else UP.  Relaxed loads, no lock: cheap enough
 * for every cache read (the workers ask before answering from the
 * cache). */
int64_t metrics_tracking_state(const struct metrics *m, uint64_t now_ms);

/* CLOCK_MONOTONIC in ms, as every process of the proxy reads it. */
uint64_t metrics_clock_ms(void);

/* Sums every slot into *out (relaxed loads, no lock): what a scrape
 * sees.  For tests and for the supervisor's own logging. */
void metrics_sum(const struct metrics *m, struct metrics_slot_shm *out);

/* A status we never send is counted in its class: other 2xx as 200,
 * other 4xx as 400, anything else as 500. */
enum metrics_code metrics_code_from_status(int http_status);

void metrics_count_request(struct metrics_slot_shm *s,
                           enum metrics_proto proto, enum metrics_code code);
void metrics_count_backend_error(struct metrics_slot_shm   *s,
                                 enum metrics_backend_error kind);
void metrics_observe_backend(struct metrics_slot_shm *s, uint64_t micros);
/* n misses were answered by another worker's fetch (backend gate). */
void metrics_count_coalesced(struct metrics_slot_shm *s, uint64_t n);
void metrics_add_connections(struct metrics_slot_shm *s, int64_t delta);
void metrics_add_backend_connections(struct metrics_slot_shm *s,
                                     int64_t                  delta);
/* A connection accepted (denied: closed at once by --allow-from). */
void metrics_count_connection(struct metrics_slot_shm *s, bool denied);
void metrics_count_refused(struct metrics_slot_shm *s, uint64_t n);
void metrics_count_auth_failure(struct metrics_slot_shm *s);
/* One HTTP-caching event: a stale answer, a refresh started, a 304, a
 * negative hit.  counter is a field of s. */
void metrics_bump(uint64_t *counter);
/* Redis Cluster: a redirect followed, a refresh started, a map read. */
void metrics_cluster_redirect(struct metrics_slot_shm *s, bool ask);
void metrics_cluster_refresh(struct metrics_slot_shm *s);
/* Sentinel: the backend followed a new primary. */
void metrics_count_failover(struct metrics_slot_shm *s);
void metrics_cluster_map(struct metrics_slot_shm *s, uint32_t nodes,
                         uint32_t covered, bool changed);
/* How many primaries of the map this worker cannot reach now. */
void metrics_cluster_nodes_down(struct metrics_slot_shm *s, uint32_t down);

/* Worker: replaces its node table with nodes[0..n) (n at most
 * METRICS_NODES_MAX; more: how many were left out).  new_list: the set
 * of nodes changed (a new map or primary), not only their states. */
void metrics_nodes_publish(struct metrics_slot_shm       *s,
                           const struct metrics_node_shm *nodes, uint32_t n,
                           uint32_t more, bool new_list);

/* Sets n->addr to addr, cut to fit (a long host name's tail is lost). */
void metrics_node_set_addr(struct metrics_node_shm *n, const char *addr);

/* Supervisor: the nodes of the worker whose list is freshest, each with
 * the worst state any worker listing the same address reports (DOWN
 * over UP over CONNECTING over UNUSED), into out[METRICS_NODES_MAX].
 * The count; *more: nodes left out of the list. */
uint32_t metrics_nodes_view(const struct metrics    *m,
                            struct metrics_node_shm *out, uint32_t *more);

/* What the supervisor knows and the slots don't. */
struct metrics_process_info {
    const char *version;
    double      start_time_seconds; /* since the epoch */
    uint32_t    workers_alive;
    uint64_t    worker_restarts;
    uint32_t    max_clients; /* --max-clients, for dashboards
                                and alerts on rcp_connections */
};

/* Renders the Prometheus text exposition (version 0.0.4) into buf.
 * Returns the length written, or the length needed if over cap.
 * As snprintf: the text is complete (and NUL-terminated) only when the
 * return value is below cap; otherwise call again with cap > the return
 * value.  buf may be NULL when cap is 0. */
size_t metrics_render(const struct metrics *m, const struct cache_stats *cs,
                      const struct metrics_process_info *info, char *buf,
                      size_t cap);

#endif
