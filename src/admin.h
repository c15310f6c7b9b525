/*
 * admin: the admin port's routing and reply bytes, pure.  The supervisor
 * reads and parses a request (http_parser.h), hands the method and the raw
 * path here with a table of callbacks, and writes out the whole HTTP/1.1
 * response this builds in its buffer.  No socket, clock, lock or logging
 * in here; the callbacks are where the cache and the metrics are touched.
 *
 *   GET|HEAD /             200 text/html: the status page (admin_status.c)
 *   GET|HEAD /health       200 {"status":"ok","redis":"up",...}, or 503
 *                          {"status":"degraded","redis":"down",...}
 *   GET|HEAD /metrics      200 text/plain; version=0.0.4; charset=utf-8
 *   POST /flush            204 (503 + Retry-After when the cache is busy)
 *   DELETE /cache/<key>    204 whether or not the key was there (as DEL
 *                          is idempotent); key percent-decoded as on the
 *                          data port, any byte allowed; empty key or bad
 *                          escape 400 (503 + Retry-After when busy)
 *   known path, other method   405 with Allow
 *   anything else              404
 *
 * The path is matched as sent, before decoding, so "/h%65alth" is a 404.
 * A request body (POST /flush with one) is the caller's to skip.
 */
#ifndef RCP_ADMIN_H
#define RCP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "http_parser.h"
#include "log.h"

/* admin_handle() and admin_error() need at least this much buffer before
 * they do anything; every reply but /metrics fits in it. */
#define ADMIN_REPLY_MIN 1024

/* What flush and delete did to the cache. */
enum admin_action_rc {
    ADMIN_ACTION_DONE = 0, /* dropped */
    ADMIN_ACTION_ABSENT,   /* delete: the key was not cached */
    ADMIN_ACTION_BUSY      /* cache poisoned or lock not had in time
                              (CACHE_BYPASS): nothing dropped */
};

/* One node of a cluster, or Sentinel's primary, as the workers see it. */
#define ADMIN_NODES_MAX 32

struct admin_node {
    const char *addr;    /* borrowed: "host:port" */
    uint32_t    slots;   /* a cluster primary's slots */
    bool        replica; /* a cluster replica read from */
    const char *state;   /* borrowed: static; "up", "down",
                            "connecting" or "unused" (no
                            worker needed it yet) */
};

struct admin_health {
    bool              redis_up;              /* last PING answered */
    uint32_t          workers;               /* live workers */
    uint64_t          entries;               /* cached entries now */
    bool              cluster;               /* --redis-cluster: redis_up says
                                                every slot has a primary */
    uint64_t          cluster_nodes;         /* primaries in the slot map */
    uint64_t          cluster_slots_covered; /* of 16384 */
    uint64_t          cluster_nodes_down;    /* primaries not reachable */
    const char       *tracking;              /* borrowed, static: "off", "up"
                                                (invalidations flow: cache
                                                answers) or "down" (Redis
                                                answers); NULL: not shown */
    const char       *sentinel_master;       /* borrowed; NULL: no Sentinel */
    /* Cluster: primaries, then replicas read from; Sentinel: the
     * primary in use (none until a sentinel named one). */
    struct admin_node nodes[ADMIN_NODES_MAX];
    uint32_t          nnodes;
    uint32_t          nodes_more; /* left out of nodes[] */
};

/* What the status page shows; filled by the status callback. */
struct admin_status {
    const char *version; /* borrowed: static */
    uint64_t    uptime_seconds;
    uint32_t    workers_alive;
    uint32_t    workers_configured; /* --workers */
    uint64_t    worker_restarts;
    bool        redis_up;   /* last PING answered */
    const char *redis_addr; /* borrowed: as configured */
    uint64_t    hits;
    uint64_t    misses;
    uint64_t    entries;
    uint64_t    capacity_entries;
    uint64_t    bytes;
    uint64_t    capacity_bytes;
    bool        poisoned; /* cache bypassed, recovering */
    int64_t     connections;
    uint32_t    max_clients;
    uint64_t    backend_unreachable; /* rcp_backend_errors_total{kind} */
    uint64_t    backend_timeout;
    uint64_t    backend_reply;
    uint64_t    backend_tls;
    const struct admin_health *backend; /* borrowed, may be NULL: a
                                           cluster's or Sentinel's nodes
                                           (/health's), shown in a table */
    const char *errors[LOG_RECENT_MAX]; /* borrowed: last warn/error log
                                           lines, newest first */
    size_t      nerrors;
};

/*
 * Renders the status page, a small HTML document with no script: each
 * number sits in an element with a stable id (version, uptime, workers,
 * redis, hit-ratio, entries, capacity-entries, bytes, capacity-bytes,
 * connections, max-clients, cache, backend-errors, errors) so scripts
 * and tests can read it, and it reads as text under curl too.  Log lines
 * are HTML-escaped.  Returns the length, or the length needed when above
 * cap (as snprintf; nothing is NUL-terminated).
 */
size_t admin_status_html(const struct admin_status *st, char *buf, size_t cap);

/* Callbacks run synchronously inside admin_handle(), at most once each
 * per call, and never after it returns. */
typedef enum admin_action_rc admin_flush_fn(void *ctx);
/* key is the decoded key, valid only during the call; may hold any byte,
 * NUL and '/' included.  key_len >= 1. */
typedef enum admin_action_rc admin_delete_fn(void *ctx, const void *key,
                                             size_t key_len);
typedef void   admin_health_fn(void *ctx, struct admin_health *out);
/* Same contract as metrics_render(): renders into buf, returns the length;
 * the text is complete only when the return is below cap. */
typedef size_t admin_metrics_fn(void *ctx, char *buf, size_t cap);
/* Fills *out for the status page; the PING has settled, as for health.
 * Pointers in *out must stay valid until admin_handle() returns. */
typedef void   admin_status_fn(void *ctx, struct admin_status *out);

struct admin_ops {
    admin_flush_fn   *flush;
    admin_delete_fn  *delete_key;
    admin_health_fn  *health;
    admin_metrics_fn *metrics;
    admin_status_fn  *status;
    void             *ctx; /* borrowed: handed to every callback */
};

struct admin_request {
    enum http_method method;
    const char      *path; /* borrowed: the target up to '?', as sent
                              (http_request.path_off/len), with its
                              leading '/'; valid during the call */
    size_t           path_len;
    bool             keep_alive; /* http_request.keep_alive */
    time_t           now;        /* for the Date header; seconds since the
                                    epoch */
};

/*
 * Routes req, runs the action it names, and writes the full response
 * (status line, Date, Content-Type, Content-Length, Allow on 405,
 * Retry-After on 503 busy, Connection: keep-alive or close, body unless
 * HEAD or 204) into buf.  *status gets the HTTP status (set only when
 * the reply fit).
 *
 * Returns the response length (<= cap).  A return above cap means it did
 * not fit: call again with a buffer of at least the returned size.  That
 * happens only for cap < ADMIN_REPLY_MIN (checked before anything is
 * called or routed) or for /metrics and / (which have no side effect),
 * so a retry never repeats a flush or delete.
 *
 * The connection stays open after the reply exactly when req->keep_alive.
 */
size_t admin_handle(const struct admin_request *req,
                    const struct admin_ops *ops, char *buf, size_t cap,
                    int *status);

/* True when req will call ops->health() or ops->status(): the caller,
 * which learns
 * Redis' state asynchronously, asks Redis first and calls admin_handle()
 * once it knows. */
bool admin_needs_health(const struct admin_request *req);

/*
 * A reply for a request the parser rejected (http_request.status: 400,
 * 408, 413, 414, 431, 501, 505 ...), always with Connection: close: after
 * a framing error the rest of the stream cannot be trusted.  Returns the
 * length, or a value above cap (only when cap < ADMIN_REPLY_MIN).
 */
size_t admin_error(int status, time_t now, char *buf, size_t cap);

#endif
