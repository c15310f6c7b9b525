/*
 * supervisor_admin: the admin port, a small HTTP/1.1 server on the
 * supervisor's loop, for operators.  It parses with the data port's
 * parser and lets admin.c route and format; the callbacks here give
 * admin.c the cache, the metrics and the workers' count.  /health first
 * asks Redis for a PING on a connection of its own, with --redis-timeout
 * as the deadline, and answers when that settles.
 *
 *   accept -> read -> http_parse_request -> admin_needs_health?
 *       no:  supervisor_admin_answer (admin_handle) -> write
 *       yes: supervisor_health_start -> PONG / error / timeout
 *            -> supervisor_health_settle -> supervisor_admin_answer
 *
 * One request at a time per connection; at most ADMIN_CONN_MAX
 * connections, the idlest closed for a newcomer; a sweep timer applies
 * the data port's deadlines.  The supervisor owns both lists (open
 * connections, PINGs in flight), so stopping closes all of them.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>
#include <hiredis/adapters/libuv.h>

#include "admin.h"
#include "cache.h"
#include "http_parser.h"
#include "log.h"
#include "metrics.h"
#include "supervisor_internal.h"

#define ADMIN_IN_MAX (HTTP_PARSE_HEAD_MAX + HTTP_PARSE_BODY_MAX)
/* Admin connections open at once: operators and a scraper need a few;
 * past this the longest-idle one is closed for the newcomer, so idle
 * connections can neither lock operators out nor use up the
 * descriptors the supervisor needs. */
#define ADMIN_CONN_MAX 64
#define ADMIN_SWEEP_MS 250

struct supervisor_admin_conn {
    uv_tcp_t                        tcp;
    struct supervisor              *sup; /* borrowed */
    char                           *in;  /* owned: ADMIN_IN_MAX bytes */
    size_t                          in_len;
    struct http_parse               hp;
    struct http_request             req;
    struct supervisor_health_check *health; /* borrowed: pending PING */
    uint64_t request_start_ms;              /* first byte of a request */
    uint64_t idle_since_ms;                 /* accepted, or last answer sent */
    uint64_t write_start_ms;
    uint64_t answered; /* requests on this connection */
    bool     closing;
    bool     writing;
    bool     peer_closed;   /* EOF read: answer, then close */
    bool     in_full;       /* reading stopped: in is full */
    bool     continue_sent; /* 100 Continue for the current request */
    struct supervisor_admin_conn *next; /* in supervisor.admin_conns */
    struct supervisor_admin_conn *prev;
};

/* One PING to Redis for one /health request.  Freed once both the timer
 * is closed and hiredis is done with the context. */
struct supervisor_health_check {
    struct supervisor_admin_conn   *conn; /* borrowed; NULL once it left */
    redisAsyncContext              *ac;   /* hiredis' own; NULL when gone */
    uv_timer_t                      timer;
    bool                            settled;
    bool                            timer_closed;
    bool                            redis_up;
    struct supervisor              *sup;  /* borrowed */
    struct supervisor_health_check *next; /* in supervisor.health_checks */
    struct supervisor_health_check *prev;
};

/* Intrusive list helpers: both lists are owned by the supervisor, so
 * stopping can close every admin connection and PING still open. */
#define SUPERVISOR_LIST_ADD(head, item) \
    do {                                \
        (item)->prev = NULL;            \
        (item)->next = (head);          \
        if ((head) != NULL) {           \
            (head)->prev = (item);      \
        }                               \
        (head) = (item);                \
    } while (0)
#define SUPERVISOR_LIST_DEL(head, item)        \
    do {                                       \
        if ((item)->prev != NULL) {            \
            (item)->prev->next = (item)->next; \
        } else {                               \
            (head) = (item)->next;             \
        }                                      \
        if ((item)->next != NULL) {            \
            (item)->next->prev = (item)->prev; \
        }                                      \
        (item)->next = (item)->prev = NULL;    \
    } while (0)

struct supervisor_admin_write {
    uv_write_t                    req;
    struct supervisor_admin_conn *conn; /* borrowed */
    bool                          close_after;
    bool                          interim; /* a 100 Continue: no answer */
    char                         *buf;     /* owned */
};

static void supervisor_admin_process(struct supervisor_admin_conn *c);
static void supervisor_admin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void supervisor_admin_read(uv_stream_t *stream, ssize_t nread,
                                  const uv_buf_t *b);
static bool supervisor_admin_evict(struct supervisor *s);

static void
supervisor_admin_conn_closed(uv_handle_t *h)
{
    struct supervisor_admin_conn *c = h->data;

    free(c->in);
    free(c);
}

static void
supervisor_admin_close(struct supervisor_admin_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    SUPERVISOR_LIST_DEL(c->sup->admin_conns, c);
    c->sup->admin_count--;
    if (c->health != NULL) {
        c->health->conn = NULL;
        c->health = NULL;
    }
    uv_close((uv_handle_t *) &c->tcp, supervisor_admin_conn_closed);
}

static void
supervisor_admin_written(uv_write_t *req, int status)
{
    struct supervisor_admin_write *w = req->data;
    struct supervisor_admin_conn  *c = w->conn;

    free(w->buf);
    c->writing = false;
    if (!w->interim) {
        c->answered++;
        c->idle_since_ms = supervisor_now_ms(c->sup);
    }
    if (status != 0 || w->close_after) {
        free(w);
        supervisor_admin_close(c);
        return;
    }
    free(w);
    if (c->in_full && c->in_len < ADMIN_IN_MAX && !c->peer_closed) {
        /* A pipeline that filled the buffer: the answered requests made
         * room, so read the rest of it. */
        c->in_full = false;
        if (uv_read_start((uv_stream_t *) &c->tcp, supervisor_admin_alloc,
                          supervisor_admin_read)
            != 0) {
            supervisor_admin_close(c);
            return;
        }
    }
    supervisor_admin_process(c);
    if (c->peer_closed && !c->closing && !c->writing && c->health == NULL) {
        /* The client half-closed after a pipeline: each request it sent
         * whole is answered (the data port does the same); what is left
         * cannot be completed. */
        supervisor_admin_close(c);
    }
}

/* Takes ownership of buf.  interim: a 100 Continue, not an answer. */
static void
supervisor_admin_write(struct supervisor_admin_conn *c, char *buf, size_t len,
                       bool close_after, bool interim)
{
    struct supervisor_admin_write *w = malloc(sizeof(*w));
    uv_buf_t                       b = uv_buf_init(buf, (unsigned) len);

    if (w == NULL) {
        free(buf);
        supervisor_admin_close(c);
        return;
    }
    w->conn = c;
    w->buf = buf;
    w->close_after = close_after;
    w->interim = interim;
    w->req.data = w;
    c->writing = true;
    c->write_start_ms = supervisor_now_ms(c->sup);
    if (uv_write(&w->req, (uv_stream_t *) &c->tcp, &b, 1,
                 supervisor_admin_written)
        != 0) {
        c->writing = false;
        free(buf);
        free(w);
        supervisor_admin_close(c);
    }
}

/* Takes ownership of buf: an answer. */
static void
supervisor_admin_send(struct supervisor_admin_conn *c, char *buf, size_t len,
                      bool close_after)
{
    supervisor_admin_write(c, buf, len, close_after, false);
}

static enum admin_action_rc
supervisor_admin_flush(void *ctx)
{
    struct supervisor_admin_conn *c = ctx;
    struct supervisor            *s = c->sup;

    if (cache_flush(s->cache) == CACHE_BYPASS) {
        return ADMIN_ACTION_BUSY;
    }
    log_info("admin: cache flushed");
    return ADMIN_ACTION_DONE;
}

static enum admin_action_rc
supervisor_admin_delete(void *ctx, const void *key, size_t key_len)
{
    struct supervisor_admin_conn *c = ctx;
    struct supervisor            *s = c->sup;

    switch (cache_delete(s->cache, key, key_len)) {
    case CACHE_DELETED:
        return ADMIN_ACTION_DONE;
    case CACHE_BYPASS:
        return ADMIN_ACTION_BUSY;
    default:
        return ADMIN_ACTION_ABSENT;
    }
}

/* The workers' view of a cluster's nodes or Sentinel's primary
 * (metrics_nodes_view()); the addresses stay valid until the next call,
 * which the supervisor, being one thread, makes after admin_handle(). */
static void
supervisor_health_nodes(struct supervisor *s, struct admin_health *out)
{
    static struct metrics_node_shm view[METRICS_NODES_MAX];
    static const char *const       states[] = {
              [METRICS_NODE_UNUSED] = "unused",
              [METRICS_NODE_CONNECTING] = "connecting",
              [METRICS_NODE_UP] = "up",
              [METRICS_NODE_DOWN] = "down",
    };
    uint32_t n = metrics_nodes_view(s->metrics, view, &out->nodes_more);

    _Static_assert(ADMIN_NODES_MAX == METRICS_NODES_MAX, "one table size");
    for (uint32_t i = 0; i < n; i++) {
        out->nodes[i].addr = view[i].addr;
        out->nodes[i].slots = view[i].slots;
        out->nodes[i].replica = view[i].replica != 0;
        out->nodes[i].state = view[i].state <= METRICS_NODE_DOWN
                                  ? states[view[i].state]
                                  : "unused";
    }
    out->nnodes = n;
}

static void
supervisor_admin_health(void *ctx, struct admin_health *out)
{
    struct supervisor_admin_conn *c = ctx;
    struct cache_stats            cs;

    cache_stats(c->sup->cache, &cs);
    out->redis_up = c->health != NULL && c->health->redis_up;
    out->workers = supervisor_alive(c->sup);
    out->entries = cs.entries;
    out->tracking =
        c->sup->cfg.tracking == CONFIG_TRACKING_OFF ? "off"
        : metrics_tracking_state(c->sup->metrics, metrics_clock_ms())
                == METRICS_TRACKING_UP
            ? "up"
            : "down";
    if (c->sup->cfg.redis_cluster[0] != '\0') {
        struct metrics_slot_shm sum;

        /* The workers' freshest slot map: up when every slot has a
         * primary (the PING only reached the first seed). */
        metrics_sum(c->sup->metrics, &sum);
        out->cluster = true;
        out->cluster_nodes = sum.cluster_nodes;
        out->cluster_slots_covered = sum.cluster_slots_covered;
        out->cluster_nodes_down = sum.cluster_nodes_down;
        out->redis_up = sum.cluster_nodes > 0
                        && sum.cluster_slots_covered == 16384
                        && sum.cluster_nodes_down == 0;
        supervisor_health_nodes(c->sup, out);
    } else if (c->sup->cfg.redis_sentinel[0] != '\0') {
        out->sentinel_master = c->sup->cfg.redis_master;
        supervisor_health_nodes(c->sup, out);
    }
}

static size_t
supervisor_admin_metrics(void *ctx, char *buf, size_t cap)
{
    struct supervisor_admin_conn *c = ctx;
    struct supervisor            *s = c->sup;
    struct cache_stats            cs;
    struct metrics_process_info   info = {
          .version = PACKAGE_VERSION,
          .start_time_seconds = s->start_time,
          .workers_alive = supervisor_alive(s),
          .worker_restarts = s->restarts,
          .max_clients = s->cfg.max_clients,
    };

    cache_stats(s->cache, &cs);
    return metrics_render(s->metrics, &cs, &info, buf, cap);
}

/* The status page's copies of the recent log lines and of the Redis
 * address; admin_handle() reads them before the callback's caller
 * returns, and the supervisor runs one callback at a time. */
static struct log_recent_line supervisor_recent[LOG_RECENT_MAX];
static char                   supervisor_redis_addr[CONFIG_PATH_MAX + 8];

static void
supervisor_admin_status(void *ctx, struct admin_status *out)
{
    struct supervisor_admin_conn *c = ctx;
    struct supervisor            *s = c->sup;
    struct cache_stats            cs;
    struct metrics_slot_shm       sum;
    struct timespec               ts;
    double                        now;
    const struct config_redis    *r = &s->cfg.redis;

    cache_stats(s->cache, &cs);
    metrics_sum(s->metrics, &sum);
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
    if (r->is_unix) {
        snprintf(supervisor_redis_addr, sizeof(supervisor_redis_addr),
                 "unix:%s", r->path);
    } else {
        snprintf(supervisor_redis_addr, sizeof(supervisor_redis_addr),
                 strchr(r->host, ':') != NULL ? "[%s]:%u" : "%s:%u", r->host,
                 (unsigned) r->port);
    }
    out->version = PACKAGE_VERSION;
    out->uptime_seconds =
        now > s->start_time ? (uint64_t) (now - s->start_time) : 0;
    out->workers_alive = supervisor_alive(s);
    out->workers_configured = s->cfg.workers;
    out->worker_restarts = s->restarts;
    out->redis_up = c->health != NULL && c->health->redis_up;
    out->redis_addr = supervisor_redis_addr;
    out->hits = cs.hits;
    out->misses = cs.misses;
    out->entries = cs.entries;
    out->capacity_entries = cs.capacity_entries;
    out->bytes = cs.bytes;
    out->capacity_bytes = cs.capacity_bytes;
    out->poisoned = cs.poisoned;
    out->connections = sum.connections;
    out->max_clients = s->cfg.max_clients;
    out->backend_unreachable = sum.backend_errors[METRICS_BACKEND_UNREACHABLE];
    out->backend_timeout = sum.backend_errors[METRICS_BACKEND_TIMEOUT];
    out->backend_reply = sum.backend_errors[METRICS_BACKEND_REPLY];
    out->backend_tls = sum.backend_errors[METRICS_BACKEND_TLS];
    if (s->cfg.redis_cluster[0] != '\0' || s->cfg.redis_sentinel[0] != '\0') {
        static struct admin_health nodes;

        /* The address configured is none of these: say what is. */
        memset(&nodes, 0, sizeof(nodes));
        supervisor_admin_health(ctx, &nodes);
        out->backend = &nodes;
        out->redis_up = nodes.redis_up;
        /* (Not the seeds: their URLs may hold passwords.) */
        if (s->cfg.redis_cluster[0] != '\0') {
            snprintf(supervisor_redis_addr, sizeof(supervisor_redis_addr),
                     "Redis Cluster (nodes below)");
        } else {
            snprintf(supervisor_redis_addr, sizeof(supervisor_redis_addr),
                     "Sentinel master '%.100s' (below)", s->cfg.redis_master);
        }
    }
    out->nerrors = log_recent_read(supervisor_recent, LOG_RECENT_MAX);
    for (size_t i = 0; i < out->nerrors; i++) {
        out->errors[i] = supervisor_recent[i].text;
    }
}

/* Answers the parsed request in c->req; the PING for /health is done. */
static struct admin_request
supervisor_admin_request(const struct supervisor_admin_conn *c)
{
    struct admin_request ar = {
        .method = c->req.method,
        .path = c->in + c->req.path_off,
        .path_len = c->req.path_len,
        .keep_alive = c->req.keep_alive && !c->sup->stopping,
        .now = time(NULL),
    };

    return ar;
}

static void
supervisor_admin_answer(struct supervisor_admin_conn *c)
{
    struct admin_request ar = supervisor_admin_request(c);
    struct admin_ops     ops = {
            .flush = supervisor_admin_flush,
            .delete_key = supervisor_admin_delete,
            .health = supervisor_admin_health,
            .metrics = supervisor_admin_metrics,
            .status = supervisor_admin_status,
            .ctx = c,
    };
    size_t cap = 16384;
    char  *buf = NULL;
    size_t n, used;
    int    status = 0;

    for (;;) {
        char *nb = realloc(buf, cap);

        if (nb == NULL) {
            free(buf);
            supervisor_admin_close(c);
            return;
        }
        buf = nb;
        n = admin_handle(&ar, &ops, buf, cap, &status);
        if (n <= cap) {
            break;
        }
        cap = n; /* only /metrics: no side effect */
    }
    if (c->health != NULL) {
        c->health->conn = NULL;
        c->health = NULL;
    }
    log_debug("admin: %.*s -> %d", (int) ar.path_len, ar.path, status);
    /* Drop the request (and its ignored body) before parsing the next. */
    used = c->req.head_len + (size_t) c->req.content_length;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    /* A pipelined request's deadline runs from here, as on the data
     * port, not from the first byte of the whole pipeline. */
    c->request_start_ms = supervisor_now_ms(c->sup);
    c->continue_sent = false;
    http_parse_init(&c->hp);
    supervisor_admin_send(c, buf, n, !ar.keep_alive);
}

static void
supervisor_health_free(struct supervisor_health_check *hc)
{
    SUPERVISOR_LIST_DEL(hc->sup->health_checks, hc);
    free(hc);
}

static void
supervisor_health_timer_closed(uv_handle_t *h)
{
    struct supervisor_health_check *hc = h->data;

    hc->timer_closed = true;
    if (hc->ac == NULL) {
        supervisor_health_free(hc);
    }
}

/* Settles the check once: answers the waiting connection (if it is still
 * there) and starts tearing down the Redis context and the timer. */
static void
supervisor_health_settle(struct supervisor_health_check *hc, bool up,
                         bool in_hiredis)
{
    struct supervisor_admin_conn *c = hc->conn;

    if (hc->settled) {
        return;
    }
    hc->settled = true;
    hc->redis_up = up;
    uv_timer_stop(&hc->timer);
    uv_close((uv_handle_t *) &hc->timer, supervisor_health_timer_closed);
    if (c != NULL) {
        supervisor_admin_answer(c);
    }
    if (hc->ac != NULL) {
        if (in_hiredis) {
            /* hiredis frees the context after the callback returns. */
            redisAsyncDisconnect(hc->ac);
        } else {
            redisAsyncContext *ac = hc->ac;

            /* Detach first: the NULL-reply callbacks that redisAsyncFree
             * makes must find nothing to settle. */
            ac->data = NULL;
            hc->ac = NULL;
            redisAsyncFree(ac);
        }
    }
}

static void
supervisor_health_ping_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct supervisor_health_check *hc = ac->data;
    redisReply                     *reply = r;

    if (hc == NULL || reply == NULL) {
        return; /* torn down: the disconnect cb settles */
    }
    supervisor_health_settle(hc,
                             reply != NULL && reply->type == REDIS_REPLY_STATUS
                                 && strcmp(reply->str, "PONG") == 0,
                             reply != NULL);
}

static void
supervisor_health_connect_cb(const redisAsyncContext *ac, int status)
{
    struct supervisor_health_check *hc = ac->data;

    if (status != REDIS_OK && hc != NULL) {
        /* hiredis frees a context whose connect failed. */
        hc->ac = NULL;
        supervisor_health_settle(hc, false, true);
        if (hc->timer_closed) {
            supervisor_health_free(hc);
        }
    }
}

static void
supervisor_health_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct supervisor_health_check *hc = ac->data;

    if (hc == NULL) {
        return;
    }
    hc->ac = NULL;
    supervisor_health_settle(hc, false, true);
    if (hc->timer_closed) {
        supervisor_health_free(hc);
    }
}

static void
supervisor_health_timeout_cb(uv_timer_t *t)
{
    supervisor_health_settle(t->data, false, false);
}

static void
supervisor_health_start(struct supervisor_admin_conn *c)
{
    struct supervisor              *s = c->sup;
    struct supervisor_health_check *hc = calloc(1, sizeof(*hc));
    redisAsyncContext              *ac;

    if (hc == NULL) {
        supervisor_admin_close(c);
        return;
    }
    hc->conn = c;
    hc->sup = s;
    c->health = hc;
    SUPERVISOR_LIST_ADD(s->health_checks, hc);
    uv_timer_init(s->loop, &hc->timer);
    hc->timer.data = hc;
    if (supervisor_timer_start(&hc->timer, supervisor_health_timeout_cb,
                               s->cfg.redis_timeout_ms, 0, "health check")
        != 0) {
        /* No deadline, no PING: Redis counts as down. */
        supervisor_health_settle(hc, false, false);
        return;
    }

    if (s->cfg.redis_tls || s->cfg.redis_sentinel[0] != '\0'
        || s->cfg.redis_cluster[0] != '\0') {
        struct metrics_slot_shm sum;

        /* hiredis 0.14 speaks no TLS, and the workers do: a TLS Redis is
         * up while some worker holds a ready connection to it (a worker
         * that cannot reach it has none, within a timeout).  So is the
         * primary Sentinel names, which only the workers know; a
         * cluster's health is its slot map's (supervisor_admin_health). */
        metrics_sum(s->metrics, &sum);
        supervisor_health_settle(hc, sum.backend_connections > 0, false);
        return;
    }
    if (s->cfg.redis.is_unix) {
        ac = redisAsyncConnectUnix(s->cfg.redis.path);
    } else {
        ac = redisAsyncConnect(s->cfg.redis.host, s->cfg.redis.port);
    }
    if (ac == NULL || ac->err != 0 || redisLibuvAttach(ac, s->loop) != 0) {
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        supervisor_health_settle(hc, false, false);
        return;
    }
    hc->ac = ac;
    ac->data = hc;
    redisAsyncSetConnectCallback(ac, supervisor_health_connect_cb);
    redisAsyncSetDisconnectCallback(ac, supervisor_health_disconnect_cb);
    if (s->cfg.redis_password[0] != '\0') {
        if (s->cfg.redis_user[0] != '\0') {
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", s->cfg.redis_user,
                              s->cfg.redis_password);
        } else {
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s",
                              s->cfg.redis_password);
        }
    }
    redisAsyncCommand(ac, supervisor_health_ping_cb, NULL, "PING");
}

/* Sends "100 Continue" for the request being read.  Not an answer: the
 * write callback counts nothing, and the request is answered once its
 * body is in. */
static void
supervisor_admin_continue(struct supervisor_admin_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char             *buf = malloc(sizeof(cont) - 1);

    c->continue_sent = true;
    if (buf == NULL) {
        supervisor_admin_close(c);
        return;
    }
    memcpy(buf, cont, sizeof(cont) - 1);
    supervisor_admin_write(c, buf, sizeof(cont) - 1, false, true);
}

/* Parses and answers what is buffered, one request at a time. */
static void
supervisor_admin_process(struct supervisor_admin_conn *c)
{
    struct admin_request ar;
    enum http_parse_rc   rc;
    size_t               n;
    char                *buf;

    if (c->closing || c->writing || c->health != NULL || c->in_len == 0) {
        return;
    }
    rc = http_parse_request(&c->hp, c->in, c->in_len, &c->req);
    if (rc == HTTP_PARSE_AGAIN) {
        return;
    }
    if (rc == HTTP_PARSE_ERROR || c->req.chunked) {
        /* No admin request has a body: a chunked one is refused rather
         * than read, and the connection closes. */
        buf = malloc(ADMIN_REPLY_MIN);
        if (buf == NULL) {
            supervisor_admin_close(c);
            return;
        }
        n = admin_error(rc == HTTP_PARSE_ERROR ? c->req.status : 400,
                        time(NULL), buf, ADMIN_REPLY_MIN);
        supervisor_admin_send(c, buf, n, true);
        return;
    }
    if (c->in_len < c->req.head_len + c->req.content_length) {
        /* The body is still coming; a client that waits for "100
         * Continue" before sending it gets it at once (RFC 9110
         * 10.1.1), as on the data port. */
        if (c->req.expect_continue && !c->continue_sent) {
            supervisor_admin_continue(c);
        }
        return;
    }
    /* admin.c routes; it only tells us first whether Redis must be
     * asked, which it cannot do itself. */
    ar = supervisor_admin_request(c);
    if (admin_needs_health(&ar)) {
        supervisor_health_start(c);
        return;
    }
    supervisor_admin_answer(c);
}

static void
supervisor_admin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct supervisor_admin_conn *c = h->data;

    *buf =
        uv_buf_init(c->in + c->in_len, (unsigned) (ADMIN_IN_MAX - c->in_len));
}

static void
supervisor_admin_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct supervisor_admin_conn *c = stream->data;

    if (nread == UV_EOF && (c->health != NULL || c->writing)) {
        /* Half-closed after asking: answer first. */
        c->peer_closed = true;
        uv_read_stop(stream);
        return;
    }
    if (nread < 0) {
        supervisor_admin_close(c);
        return;
    }
    if (c->in_len == 0 && nread > 0) {
        c->request_start_ms = supervisor_now_ms(c->sup);
    }
    c->in_len += (size_t) nread;
    if (c->in_len == ADMIN_IN_MAX) {
        /* A head or body too long gets 431/413 from the parser; a
         * pipeline of many requests is read on once answers make room
         * (supervisor_admin_written). */
        uv_read_stop(stream);
        c->in_full = true;
    }
    supervisor_admin_process(c);
}

static void
supervisor_admin_accept(uv_stream_t *server, int status)
{
    struct supervisor            *s = server->data;
    struct supervisor_admin_conn *c;

    bool refuse;

    if (status != 0) {
        log_error("admin accept failed: %s", uv_strerror(status));
        return;
    }
    refuse = s->admin_count >= ADMIN_CONN_MAX && !supervisor_admin_evict(s);
    c = calloc(1, sizeof(*c));
    if (c != NULL && !refuse) {
        c->in = malloc(ADMIN_IN_MAX);
    }
    if (c == NULL || (c->in == NULL && !refuse)) {
        log_error("admin: out of memory for a connection");
        if (c != NULL) {
            free(c);
        }
        return;
    }
    c->sup = s;
    c->idle_since_ms = supervisor_now_ms(s);
    SUPERVISOR_LIST_ADD(s->admin_conns, c);
    s->admin_count++;
    http_parse_init(&c->hp);
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    /* Accepted even when refused: left in the backlog, it would stop
     * libuv from accepting at all. */
    if (uv_accept(server, (uv_stream_t *) &c->tcp) != 0 || refuse
        || uv_read_start((uv_stream_t *) &c->tcp, supervisor_admin_alloc,
                         supervisor_admin_read)
               != 0) {
        supervisor_admin_close(c);
    }
}

/* At the cap: closes the admin connection idle longest (not answering,
 * nothing buffered).  Returns whether one was closed. */
static bool
supervisor_admin_evict(struct supervisor *s)
{
    struct supervisor_admin_conn *idlest = NULL;

    for (struct supervisor_admin_conn *c = s->admin_conns; c != NULL;
         c = c->next) {
        if (!c->writing && c->health == NULL && c->in_len == 0
            && (idlest == NULL || c->idle_since_ms < idlest->idle_since_ms)) {
            idlest = c;
        }
    }
    if (idlest == NULL) {
        log_debug("admin: %d connections, all busy: refusing one",
                  ADMIN_CONN_MAX);
        return false;
    }
    supervisor_admin_close(idlest);
    return true;
}

/* The data port's deadlines, on the admin port: a request head must
 * arrive within --header-timeout of its first byte (and the first one
 * within --header-timeout of the accept), a connection between requests
 * closes after --idle-timeout, and so does one whose answer is not read.
 * A PING in flight has its own deadline. */
static void
supervisor_admin_sweep_cb(uv_timer_t *t)
{
    struct supervisor            *s = t->data;
    uint64_t                      now = supervisor_now_ms(s);
    struct supervisor_admin_conn *next;

    for (struct supervisor_admin_conn *c = s->admin_conns; c != NULL;
         c = next) {
        uint64_t deadline;

        next = c->next;
        if (c->health != NULL) {
            continue;
        }
        if (c->writing) {
            deadline = c->write_start_ms + s->cfg.idle_timeout_ms;
        } else if (c->in_len > 0) {
            deadline = c->request_start_ms + s->cfg.header_timeout_ms;
        } else if (c->answered == 0) {
            deadline = c->idle_since_ms + s->cfg.header_timeout_ms;
        } else {
            deadline = c->idle_since_ms + s->cfg.idle_timeout_ms;
        }
        if (now >= deadline) {
            log_debug("admin: closing a connection past its deadline");
            supervisor_admin_close(c);
        }
    }
}

/* On stop: close every admin connection and give up every PING still in
 * flight, so nothing of theirs outlives the loop. */
static void
supervisor_admin_shutdown(struct supervisor *s)
{
    while (s->admin_conns != NULL) {
        supervisor_admin_close(s->admin_conns);
    }
    for (struct supervisor_health_check *hc = s->health_checks; hc != NULL;
         hc = hc->next) {
        supervisor_health_settle(hc, false, false);
    }
}

int
supervisor_admin_start(struct supervisor *s)
{
    int rc;

    uv_tcp_init(s->loop, &s->admin_tcp);
    s->admin_tcp.data = s;
    s->admin_open = true;
    uv_timer_init(s->loop, &s->admin_timer);
    s->admin_timer.data = s;
    rc = supervisor_timer_start(&s->admin_timer, supervisor_admin_sweep_cb,
                                ADMIN_SWEEP_MS, ADMIN_SWEEP_MS, "admin sweep");
    if (rc != 0) {
        return rc;
    }
    /* The sweep alone must not keep the loop running at the end. */
    uv_unref((uv_handle_t *) &s->admin_timer);
    rc = uv_tcp_open(&s->admin_tcp, s->admin_fd);
    s->admin_fd = -1; /* libuv closes it from now on */
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *) &s->admin_tcp, 64,
                       supervisor_admin_accept);
    }
    if (rc != 0) {
        log_error("admin port: %s", uv_strerror(rc));
        return rc;
    }
    return 0;
}

void
supervisor_admin_stop(struct supervisor *s)
{
    if (s->admin_open) {
        uv_close((uv_handle_t *) &s->admin_tcp, NULL);
        uv_close((uv_handle_t *) &s->admin_timer, NULL);
        s->admin_open = false;
    }
    supervisor_admin_shutdown(s);
}
