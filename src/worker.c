/*
 * worker: the data plane of one worker process.
 *
 * Owns the epoll loop, the connection slots (a pool of --max-clients
 * structs allocated at start, handed out on accept), the backend, the
 * connections' reads, writes and deadlines, and the access log.  What a
 * request means is worker_http.c's and worker_resp.c's: a connection
 * points at its protocol's struct worker_proto, and this file reaches
 * the protocol only through it.  The structures the three share are in
 * worker_conn.h.
 * Each connection reads into its input buffer, parses one request at a
 * time and appends the answer to its output buffer, so pipelined requests
 * are answered in order without a queue:
 *
 *   readable -> read into in[] -> parse -+- AGAIN: arm header deadline
 *                                         +- ERROR: 4xx, close after write
 *                                         +- DONE:  key in cache? -- hit -+
 *                                                   | miss                |
 *                                                   v                     |
 *                        backend_get (WAITING: parsing pauses)            |
 *                                                   | reply               |
 *                                                   v                     v
 *                            append answer to out[], drop the request bytes,
 *                            parse the next one; then write out[]
 *
 * Invariants: a connection has at most one request waiting on the
 * backend, and parses nothing further until it is answered; a closed
 * connection's slot goes back to the pool only in before_poll, once no
 * callback of this iteration can still hold it.  Connections across all
 * workers are bounded by --max-clients through a shared counter: a slot
 * is reserved before accept4() and released when the connection closes;
 * at the limit this worker stops polling its listening sockets, so new
 * connections wait in the kernel's backlog.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "event.h"
#include "http_parser.h"
#include "log.h"
#include "tracking.h"
#include "value.h"
#include "worker.h"
#include "worker_conn.h"

static void worker_conn_update(struct worker_conn *c);
static void worker_conn_read(struct worker_conn *c);
static void worker_conn_linger(struct worker_conn *c);
static void worker_conn_stop_idle(struct worker_conn *c);
static bool worker_test_hook(const char *name);
/* How long the lock-stall test hook holds the cache's write lock. */
#define WORKER_STALL_MS 1500

/* The protocols, each with its slot state to free at exit. */
static const struct worker_proto *const worker_protos[] = {
    &worker_http_proto,
    &worker_resp_proto,
};

/* ---- small helpers --------------------------------------------------- */

bool
worker_expire_ms(int64_t pttl_ms, uint64_t fetch_us, uint64_t *expire_ms)
{
    uint64_t fetch_ms = (fetch_us + 999) / 1000;

    *expire_ms = 0;
    if (pttl_ms == BACKEND_PTTL_NONE) {
        return true;
    }
    if (pttl_ms < 0 || (uint64_t) pttl_ms <= fetch_ms) {
        return false;
    }
    *expire_ms = (uint64_t) pttl_ms - fetch_ms;
    return true;
}

/* A worker without --tracking stores nothing while a worker of ours
 * tracks (a reload that turns --tracking on or off runs both side by
 * side, and an old worker finishes what it had accepted after the new
 * ones flushed): what it read is reported to no subscriber, and every
 * tracking worker would answer it as if it were.  Asked after the fetch
 * took its purge token, and a tracking worker's slot says DOWN before
 * its first flush: a value read while the state still said NONE is
 * refused by that flush's epoch (CACHE_PURGED) or dropped by it. */
static bool
worker_may_store_untracked(const struct worker *w)
{
    return w->tracking != NULL || w->params->metrics_all == NULL
           || metrics_tracking_state(w->params->metrics_all,
                                     metrics_clock_ms())
                  == METRICS_TRACKING_NONE;
}

/* The backend's store callback: a value read from Redis goes into the
 * shared cache once per fetch, before its waiters are answered, with its
 * ETag (computed here, once, and kept on the value for the waiters), the
 * fetch's duration (early refresh) and Redis' own expiry of the key
 * (worker_expire_ms).  An absent key is remembered with --negative-ttl;
 * otherwise, when stale answers are on, its stale entry is dropped,
 * since Redis no longer has the key; so is it for a value that may not
 * be kept (its PTTL unknown, or as good as over).  Neither is stored
 * when the key was purged (DELETE /cache/<key>, POST /flush) after the
 * fetch took its token.  CACHE_TOO_LARGE, CACHE_BYPASS or CACHE_PURGED
 * just mean not stored: false, and Cache-Status says no "stored". */
static bool
worker_store_value(void *arg, const void *key, size_t key_len, struct value *v,
                   uint64_t fetch_us, uint64_t token, int64_t pttl_ms)
{
    struct worker          *w = arg;
    struct cache_entry_info info = {
        .fetch_us = fetch_us > UINT32_MAX ? UINT32_MAX : (uint32_t) fetch_us,
        .check_purge = true,
        .purge_token = token,
    };
    bool keep = v != NULL
                && worker_expire_ms(pttl_ms, fetch_us, &info.expire_ms);

    if (v != NULL && !v->has_etag) {
        v->etag = cache_etag(v->data, v->len);
        v->has_etag = true;
    }
    if (w->params->cache == NULL || !tracking_covers(w->tracking, key, key_len)
        || !worker_may_store_untracked(w)) {
        return false;
    }
    if (!keep) {
        if (v == NULL && w->cfg->negative_ttl_ms > 0) {
            info.negative = true;
            return cache_store(w->params->cache, key, key_len, NULL, 0,
                               cache_clock_ms(), &info)
                   == CACHE_STORED;
        }
        if (config_stale_ms(w->cfg) > 0) {
            (void) cache_delete(w->params->cache, key, key_len);
        }
        return false;
    }
    info.etag = v->etag;
    return cache_store(w->params->cache, key, key_len, v->data, v->len,
                       cache_clock_ms(), &info)
           == CACHE_STORED;
}

/* A background refresh: a GET whose answer only goes to the cache (the
 * store callback); the record is freed when it ends, whatever the
 * result, and backend_destroy() ends it at the latest. */
struct worker_refresh {
    struct backend_waiter waiter; /* linked while fetching */
};

static void
worker_refresh_cb(struct backend_waiter *wt, const struct backend_reply *r)
{
    (void) r;
    free(wt->data);
}

/* Starts a refresh of key unless a GET of it is in flight already (a
 * client's miss or an earlier refresh): one per key per worker.  True
 * when one was started. */
static bool
worker_refresh(struct worker *w, const void *key, size_t key_len,
               enum metrics_refresh why)
{
    struct worker_refresh *r;

    if (backend_fetching(w->backend, key, key_len)) {
        return false;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return false; /* the next stale answer tries again */
    }
    backend_get(w->backend, key, key_len, &r->waiter, worker_refresh_cb, r);
    if (w->params->metrics != NULL) {
        metrics_bump(&w->params->metrics->refreshes[why]);
    }
    return true;
}

/* xorshift64*: the worker's own generator for early refresh, seeded in
 * worker_init; quality is ample for a coin toss per hit. */
static uint64_t
worker_random(struct worker *w)
{
    uint64_t x = w->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

/*
 * XFetch (Vattani, Chierichetti and Lowenstein, VLDB 2015): refresh when
 * now - delta * beta * ln(rand) >= expiry, i.e. when -delta * beta *
 * ln(rand) reaches the time left; delta is what the entry's own fetch
 * took.  -ln of a 53-bit rand is below 37, so an entry with more time
 * left than 37 * delta * beta is passed without drawing.
 */
static bool
worker_early_refresh_due(struct worker *w, const struct cache_lookup *lk)
{
    double beta = w->cfg->early_refresh_beta;
    double delta_us = (double) lk->fetch_us;
    double left_us = (double) lk->ttl_left_ms * 1000.0;
    double r;

    if (beta <= 0 || lk->fetch_us == 0 || left_us > 37.0 * delta_us * beta) {
        return false;
    }
    r = (double) ((worker_random(w) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    return -delta_us * beta * log(r) >= left_us;
}

/* The backend's token callback: taken before each fetch is sent. */
static uint64_t
worker_purge_token(void *arg, const void *key, size_t key_len)
{
    struct worker *w = arg;

    return w->params->cache != NULL
               ? cache_purge_token(w->params->cache, key, key_len)
               : 0;
}

int
worker_conn_out_reserve(struct worker_conn *c, size_t n)
{
    return buf_reserve(&c->out, n);
}

int
worker_conn_append(struct worker_conn *c, const void *data, size_t len)
{
    return buf_append(&c->out, data, len);
}

size_t
worker_conn_unsent(const struct worker_conn *c)
{
    return buf_pending(&c->out) + c->out_values_unsent;
}

/* Most bytes one connection writes per loop iteration.  With three
 * clients of a 256 MB value and one read from Redis per iteration, 1 MB
 * each made iterations of 4-5 ms of CPU, and a hit waited up to two of
 * them; 256 KB keeps one under a millisecond. */
#define WORKER_WRITE_BUDGET (256u * 1024u)

/* Allocations from this size on are mappings of their own. */
#define WORKER_MMAP_THRESHOLD (1024 * 1024)

/* The first guess at a value's size; a longer one costs one more lookup
 * with exactly the room it needs. */
#define WORKER_VALUE_GUESS 4096

bool
worker_cache_trusted(const struct worker *w)
{
    return w->tracking == NULL || w->params->metrics_all == NULL
           || metrics_tracking_state(w->params->metrics_all,
                                     metrics_clock_ms())
                  != METRICS_TRACKING_DOWN;
}

enum cache_status
worker_cache_lookup(struct worker *w, struct buf *b, size_t head_room,
                    size_t tail_room, const void *key, size_t key_len,
                    struct cache_lookup *lk)
{
    size_t want = WORKER_VALUE_GUESS;

    if (!worker_cache_trusted(w)) {
        return CACHE_MISS; /* Redis may have changed it unheard */
    }
    /* The value may be replaced between two lookups, so a second
     * TRUNCATED is possible; after three tries the caller asks Redis. */
    for (int attempt = 0; attempt < 3; attempt++) {
        enum cache_status st;

        if (buf_reserve(b, head_room + want + tail_room) != 0) {
            return false;
        }
        lk->dst = b->data + b->len + head_room;
        lk->dst_cap = b->cap - b->len - head_room - tail_room;
        st = cache_get(w->params->cache, key, key_len, cache_clock_ms(), lk);
        if (st == CACHE_HIT || st == CACHE_STALE) {
            return st;
        }
        if (st != CACHE_TRUNCATED) {
            return CACHE_MISS;
        }
        want = lk->value_len;
    }
    return CACHE_MISS;
}

bool
worker_cache_copy(struct worker *w, struct buf *b, size_t head_room,
                  size_t tail_room, const void *key, size_t key_len,
                  struct cache_lookup *lk)
{
    struct metrics_slot_shm *m = w->params->metrics;
    enum cache_status        st;

    st = worker_cache_lookup(w, b, head_room, tail_room, key, key_len, lk);
    w->last_hit = WORKER_HIT_FRESH;
    if (st == CACHE_HIT) {
        if (lk->negative) {
            if (m != NULL) {
                metrics_bump(&m->negative_hits);
            }
        } else if (worker_early_refresh_due(w, lk)) {
            (void) worker_refresh(w, key, key_len, METRICS_REFRESH_EARLY);
        }
        return true;
    }
    if (st == CACHE_STALE
        && lk->stale_ms < w->cfg->stale_while_revalidate_ms) {
        w->last_hit = worker_refresh(w, key, key_len, METRICS_REFRESH_STALE)
                          ? WORKER_HIT_STALE
                          : WORKER_HIT_UPDATING;
        if (m != NULL) {
            metrics_bump(&m->stale_answers[METRICS_STALE_REVALIDATE]);
        }
        return true;
    }
    return false;
}

bool
worker_cache_stale_if_error(struct worker *w, struct buf *b, size_t head_room,
                            size_t tail_room, const void *key, size_t key_len,
                            struct cache_lookup *lk)
{
    enum cache_status st;

    if (w->cfg->stale_if_error_ms == 0) {
        return false;
    }
    st = worker_cache_lookup(w, b, head_room, tail_room, key, key_len, lk);
    /* A fresh one: another worker fetched it meanwhile. */
    if (st == CACHE_HIT && !lk->negative) {
        return true;
    }
    if (st == CACHE_STALE && lk->stale_ms < w->cfg->stale_if_error_ms) {
        if (w->params->metrics != NULL) {
            metrics_bump(
                &w->params->metrics->stale_answers[METRICS_STALE_ERROR]);
        }
        return true;
    }
    return false;
}

/* ---- client limit ----------------------------------------------------- */

static bool
worker_reserve_client(struct worker *w)
{
    int64_t n = __atomic_add_fetch(w->params->clients, 1, __ATOMIC_SEQ_CST);

    if (n > (int64_t) w->cfg->max_clients) {
        __atomic_sub_fetch(w->params->clients, 1, __ATOMIC_SEQ_CST);
        return false;
    }
    return true;
}

static void
worker_release_client(struct worker *w)
{
    __atomic_sub_fetch(w->params->clients, 1, __ATOMIC_SEQ_CST);
}

static void
worker_set_accepting(struct worker *w, bool on)
{
    unsigned mask = on ? EVENT_READ : 0;

    if (w->accepting == on) {
        return;
    }
    w->accepting = on;
    if (w->http_fd >= 0) {
        event_io_set(&w->loop, &w->http_io, mask);
    }
    if (w->resp_fd >= 0) {
        event_io_set(&w->loop, &w->resp_io, mask);
    }
}

static void
worker_accept_timer_cb(struct event_loop *loop, struct event_timer *t)
{
    struct worker *w = t->data;

    if (!w->stopping) {
        worker_set_accepting(w, true);
    }
}

static void
worker_pause_accepting(struct worker *w, uint64_t ms)
{
    worker_set_accepting(w, false);
    if (event_timer_start(&w->loop, &w->accept_timer, ms) != 0) {
        /* Without the timer nothing would resume accepting. */
        worker_set_accepting(w, true);
    }
}

/* ---- access log -------------------------------------------------------
 *
 * One line per answered request:
 *   TIME CLIENT PROTO "REQUEST" STATUS BYTES CACHE MICROSECONDS
 * e.g. 2026-11-25T15:30:00.123Z 127.0.0.1 http "GET /k HTTP/1.1" 200 5
 * HIT 35.  Lines are gathered during a loop iteration and written to the
 * supervisor's pipe before the next wait; the pipe never blocks us: when
 * it is full, lines are dropped and counted.
 */

/* Appends s with bytes outside printable ASCII (and '"', '\') as \xHH,
 * at most max bytes of input, so a client cannot forge log lines. */
static void
worker_log_escape(char *dst, size_t cap, size_t *pos, const char *s,
                  size_t len, size_t max)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < len && i < max && *pos + 5 < cap; i++) {
        unsigned char ch = (unsigned char) s[i];

        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            dst[(*pos)++] = '\\';
            dst[(*pos)++] = 'x';
            dst[(*pos)++] = hex[ch >> 4];
            dst[(*pos)++] = hex[ch & 0xf];
        } else {
            dst[(*pos)++] = (char) ch;
        }
    }
}

/* The loop's clock has millisecond steps and stands still within an
 * iteration, so a hit would always log 0: the access log reads its own
 * (a vDSO call, and only when the log is on). */
static uint64_t
worker_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

void
worker_access_start(struct worker_conn *c)
{
    c->log_start_us = c->worker->params->access_fd >= 0 ? worker_now_us() : 0;
}

void
worker_access_log(struct worker_conn *c, const char *req, size_t req_len)
{
    struct worker  *w = c->worker;
    char            line[WORKER_LOG_LINE_MAX];
    size_t          pos = 0;
    struct timespec ts;
    struct tm       tm;
    char            status[16];
    int             n;

    if (w->params->access_fd < 0) {
        return;
    }
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    pos += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    if (c->log_status != 0) {
        snprintf(status, sizeof(status), "%d", c->log_status);
    } else {
        snprintf(status, sizeof(status), "%s",
                 c->log_resp != NULL ? c->log_resp : "-");
    }
    n = snprintf(line + pos, sizeof(line) - pos, ".%03ldZ %s %s \"",
                 ts.tv_nsec / 1000000, c->peer, c->proto->name);
    pos += (size_t) n;
    worker_log_escape(line, sizeof(line) - 64, &pos, req, req_len, 512);
    n = snprintf(line + pos, sizeof(line) - pos, "\" %s %llu %s %llu\n",
                 status, (unsigned long long) c->log_bytes,
                 c->log_cache != NULL ? c->log_cache : "-",
                 (unsigned long long) (worker_now_us() - c->log_start_us));
    pos += (size_t) n;
    if (pos > sizeof(line)) {
        pos = sizeof(line);
        line[pos - 1] = '\n';
    }
    if (buf_append(&w->access, line, pos) != 0) {
        w->access_dropped++;
    }
}

static void
worker_access_flush(struct worker *w)
{
    while (buf_pending(&w->access) > 0) {
        size_t  n = buf_pending(&w->access);
        ssize_t written;

        if (n > PIPE_BUF) {
            /* Cut at the last line end that fits, so no line is split
             * between two writes. */
            const char *start = w->access.data + w->access.pos;
            const char *nl = memrchr(start, '\n', PIPE_BUF);

            n = (size_t) (nl - start) + 1;
        }
        written =
            write(w->params->access_fd, w->access.data + w->access.pos, n);
        if (written == (ssize_t) n) {
            w->access.pos += n;
            continue;
        }
        if (written < 0 && errno == EINTR) {
            continue;
        }
        /* Full (EAGAIN) or gone: drop what is left rather than wait. */
        for (size_t i = w->access.pos; i < w->access.len; i++) {
            w->access_dropped += w->access.data[i] == '\n';
        }
        w->access.pos = w->access.len;
    }
    if (w->access_dropped > 0
        && event_now_ms(&w->loop) - w->access_drop_reported_ms
               >= WORKER_LOG_DROP_REPORT_MS) {
        log_warn("access log: %llu line(s) dropped, its writer is behind",
                 (unsigned long long) w->access_dropped);
        w->access_dropped = 0;
        w->access_drop_reported_ms = event_now_ms(&w->loop);
    }
}

/* ---- connections ------------------------------------------------------ */

static void worker_conn_io_cb(struct event_loop *loop, struct event_io *io,
                              unsigned events);
static void worker_conn_timer_cb(struct event_loop  *loop,
                                 struct event_timer *t);

static void
worker_conn_open(struct worker *w, int fd, const struct worker_proto *proto,
                 const struct sockaddr_storage *peer, bool expect_proxy)
{
    struct worker_conn *c = w->free_list;
    int                 one = 1;
    int                 rc;

    w->free_list = c->next;
    c->next = NULL;
    c->fd = fd;
    c->state = CONN_READING;
    c->proto = proto;
    c->in.len = 0;
    c->out.pos = 0;
    c->out.len = 0;
    c->close_after_write = false;
    c->peer_closed = false;
    c->proxy = expect_proxy ? CONN_PROXY_EXPECT : CONN_PROXY_REFUSE;
    c->requests = 0;
    c->peer[0] = '-';
    c->peer[1] = '\0';
    if (w->params->access_fd >= 0) {
        const void *a =
            peer->ss_family == AF_INET6
                ? (const void *) &((const struct sockaddr_in6 *) peer)
                      ->sin6_addr
                : (const void *) &((const struct sockaddr_in *) peer)
                      ->sin_addr;

        if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6) {
            inet_ntop(peer->ss_family, a, c->peer, sizeof(c->peer));
        }
    }
    c->activity_ms = event_now_ms(&w->loop);
    c->request_start_ms = c->activity_ms;
    memset(&c->waiter, 0, sizeof(c->waiter));
    event_io_init(&c->io, fd, worker_conn_io_cb, c);
    event_timer_init(&c->timer, worker_conn_timer_cb, c);

    /* Answers are small and written whole: don't let Nagle hold them. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        log_debug("setsockopt(%d, TCP_NODELAY) failed: %s", fd,
                  strerror(errno));
    }
    w->open_conns++;
    metrics_add_connections(w->params->metrics, 1);
    metrics_count_connection(w->params->metrics, false);
    if (proto->open(c) != 0) {
        worker_conn_close(c);
        return;
    }
    rc = event_io_set(&w->loop, &c->io, EVENT_READ);
    if (rc != 0) {
        log_error("epoll_ctl(ADD, %d) failed: %s", fd, strerror(-rc));
        worker_conn_close(c);
        return;
    }
    worker_conn_update(c);
}

void
worker_conn_close(struct worker_conn *c)
{
    struct worker *w = c->worker;

    if (c->state == CONN_CLOSED || c->state == CONN_FREE) {
        return;
    }
    backend_cancel(&c->waiter);
    c->proto->close(c);
    worker_out_drop(c);
    event_io_stop(&w->loop, &c->io);
    event_timer_stop(&w->loop, &c->timer);
    if (close(c->fd) != 0) {
        log_debug("close(%d) failed: %s", c->fd, strerror(errno));
    }
    c->fd = -1;
    c->state = CONN_CLOSED;
    c->next = w->closed_list;
    w->closed_list = c;
    w->open_conns--;
    metrics_add_connections(w->params->metrics, -1);
    worker_release_client(w);
    if (!w->stopping && !w->accepting
        && !event_timer_active(&w->accept_timer)) {
        worker_set_accepting(w, true);
    }
}

/* Gives back one step of a dead big value's mapping per iteration (see
 * value.h), so that freeing 256 MB never stalls the other clients;
 * before_poll re-arms it while more is left. */
static void
worker_reap_timer_cb(struct event_loop *loop, struct event_timer *t)
{
    (void) loop;
    (void) t;
    (void) value_reap();
}

/* Runs before each epoll wait: closed slots go back to the pool now that
 * no callback of this iteration can still refer to them. */
static void
worker_before_poll(struct event_loop *loop, void *arg)
{
    struct worker *w = arg;

    /* Connections answered by backend callbacks during this iteration:
     * one write each, for all their answers. */
    while (w->run_list != NULL) {
        struct worker_conn *c = w->run_list;

        w->run_list = c->run_next;
        c->run_next = NULL;
        c->scheduled = false;
        if (c->state != CONN_CLOSED && c->state != CONN_FREE) {
            worker_conn_run(c);
        }
    }
    if (buf_pending(&w->access) > 0) {
        worker_access_flush(w);
    }
    while (w->closed_list != NULL) {
        struct worker_conn *c = w->closed_list;

        w->closed_list = c->next;
        if (c->in.cap > WORKER_BUF_KEEP) {
            buf_free(&c->in);
        }
        if (c->out.cap > WORKER_BUF_KEEP) {
            buf_free(&c->out);
        }
        c->state = CONN_FREE;
        c->next = w->free_list;
        w->free_list = c;
    }
    if (value_reap_pending() && !event_timer_active(&w->reap_timer)
        && event_timer_start(loop, &w->reap_timer, 0) != 0) {
        /* No heap slot: the next iteration tries again. */
        log_debug("event_timer_start(reap) failed: out of memory");
    }
    if (w->stopping && w->open_conns == 0) {
        event_loop_stop(loop);
    }
}

/* Picks the one deadline that matters in the connection's state and arms
 * the timer for it: the header deadline runs from a request's first byte
 * and is not renewed by later bytes (as nginx's client_header_timeout);
 * idle and stalled-write deadlines run from the last progress. */
static void
worker_conn_update(struct worker_conn *c)
{
    struct worker *w = c->worker;
    uint64_t       now = event_now_ms(&w->loop);
    uint64_t       deadline;
    unsigned       mask = 0;
    int            rc;

    if (c->state == CONN_CLOSED || c->state == CONN_FREE) {
        return;
    }
    if (c->state == CONN_DRAINING) {
        mask = EVENT_READ;
        event_io_set(&w->loop, &c->io, mask);
        return; /* the linger timer is already armed */
    }

    if (worker_conn_unsent(c) > 0
        || (c->resume != NULL && c->state == CONN_READING)) {
        /* Level-triggered: with nothing unsent this fires at once, which
         * is how an answer in parts goes on after yielding. */
        mask |= EVENT_WRITE;
    }
    if (!c->peer_closed && worker_conn_unsent(c) < WORKER_OUT_HIGH_WATER
        && !c->close_after_write && c->in.len < c->proto->in_max) {
        mask |= EVENT_READ;
    }
    rc = event_io_set(&w->loop, &c->io, mask);
    if (rc != 0) {
        log_error("epoll_ctl(%d) failed: %s", c->fd, strerror(-rc));
        worker_conn_close(c);
        return;
    }

    if (c->state == CONN_WAITING) {
        event_timer_stop(&w->loop, &c->timer); /* the backend's deadline */
        return;
    }
    if (worker_conn_unsent(c) > 0 || c->resume != NULL) {
        /* A write that stalls, or an answer in parts. */
        deadline = c->activity_ms + w->cfg->idle_timeout_ms;
    } else if ((c->in.len > 0 && !c->close_after_write)
               || (w->stopping && c->requests == 0)) {
        /* While stopping, a connection that has sent nothing yet gets
         * the time a request head may take, then goes. */
        deadline = c->request_start_ms + w->cfg->header_timeout_ms;
    } else if (w->stopping && !c->close_after_write) {
        /* Between requests on a stopping worker: it goes once it has
         * been idle a moment (worker_conn_stop_idle). */
        deadline = c->activity_ms + WORKER_STOP_IDLE_MS;
    } else {
        deadline = c->activity_ms + w->cfg->idle_timeout_ms;
    }
    if (event_timer_start(&w->loop, &c->timer,
                          deadline > now ? deadline - now : 0)
        != 0) {
        /* A connection without a deadline could hang forever. */
        log_error("no memory for a connection timer: closing %d", c->fd);
        worker_conn_close(c);
    }
}

static void
worker_conn_timer_cb(struct event_loop *loop, struct event_timer *t)
{
    struct worker_conn *c = t->data;
    struct worker      *w = c->worker;

    if (c->state == CONN_READING && worker_conn_unsent(c) == 0 && c->in.len > 0
        && !c->close_after_write && c->resume == NULL) {
        /* A request head that did not arrive in time. */
        if (!c->proto->timeout(c)) {
            worker_conn_close(c);
            return;
        }
        c->close_after_write = true;
        c->in.len = 0;
        worker_conn_flush(c);
        return;
    }
    if (w->stopping && c->state == CONN_READING && c->in.len == 0
        && worker_conn_unsent(c) == 0 && !c->close_after_write
        && c->requests > 0) {
        worker_conn_stop_idle(c);
        return;
    }
    log_debug("closing connection %d: %s", c->fd,
              c->state == CONN_DRAINING ? "linger over" : "idle timeout");
    (void) w;
    worker_conn_close(c);
}

/* Drops the first n bytes of input (the request just answered). */
void
worker_conn_consume(struct worker_conn *c, size_t n)
{
    if (n < c->in.len) {
        memmove(c->in.data, c->in.data + n, c->in.len - n);
    }
    c->in.len -= n;
    c->request_start_ms = event_now_ms(&c->worker->loop);
}

static void
worker_conn_read(struct worker_conn *c)
{
    struct worker *w = c->worker;
    size_t         max = c->proto->in_max;

    for (;;) {
        ssize_t n;
        size_t  room;

        if (c->in.len >= max) {
            return; /* full: parse what we have */
        }
        if (c->in.len == c->in.cap
            && buf_reserve(&c->in, WORKER_IN_INITIAL) != 0) {
            return; /* out of memory: parse what we have */
        }
        /* Doubling (buf_reserve) may overshoot max, and an EXEC's replay
         * grows the input past it: a read never fills beyond max. */
        room = (c->in.cap < max ? c->in.cap : max) - c->in.len;
        n = read(c->fd, c->in.data + c->in.len, room);
        if (n > 0) {
            if (c->in.len == 0 && c->state == CONN_READING) {
                c->request_start_ms = event_now_ms(&w->loop);
            }
            c->in.len += (size_t) n;
            c->activity_ms = event_now_ms(&w->loop);
            if ((size_t) n < room) {
                return; /* short read: socket drained */
            }
            continue;
        }
        if (n == 0) {
            c->peer_closed = true;
            return;
        }
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }
        log_debug("read(%d) failed: %s", c->fd, strerror(errno));
        worker_conn_close(c);
        return;
    }
}

void
worker_conn_flush(struct worker_conn *c)
{
    struct worker *w = c->worker;

    size_t written = 0;

    while (worker_conn_unsent(c) > 0) {
        struct iovec iov[WORKER_OUT_IOV_MAX];
        ssize_t      n;
        /* The budget bounds each call too: on loopback the reader
         * drains the socket while one writev() copies, so a call
         * offered a whole 256 MB value returned after 10 MB, 10 ms. */
        int niov = worker_out_iov(c, iov, WORKER_WRITE_BUDGET - written);

        n = writev(c->fd, iov, niov);
        if (n > 0) {
            worker_out_advance(c, (size_t) n);
            c->activity_ms = event_now_ms(&w->loop);
            written += (size_t) n;
            if (written >= WORKER_WRITE_BUDGET && worker_conn_unsent(c) > 0) {
                /* A fast reader of a big value would keep this loop
                 * going for hundreds of MB: let the other connections
                 * have the worker, and go on when epoll says so. */
                worker_conn_update(c);
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            worker_conn_update(c);
            return;
        }
        log_debug("write(%d) failed: %s", c->fd, strerror(errno));
        worker_conn_close(c);
        return;
    }
    c->out.pos = 0;
    c->out.len = 0;

    if (c->state == CONN_READING && !c->close_after_write && c->in.len == 0
        && c->peer_closed) {
        /* Everything asked is answered and nothing more will come: the
         * client closed its side.  (A stopping worker's idle keep-alive
         * connections wait for worker_conn_stop_idle.) */
        worker_conn_close(c);
        return;
    }
    if (c->close_after_write) {
        if (c->peer_closed) {
            worker_conn_close(c);
            return;
        }
        worker_conn_linger(c);
        return;
    }
    worker_conn_update(c);
}

/* Lingering close: shut our side, then read until the client has seen
 * the answer and closes, so unread input of its own does not make our
 * kernel send a reset over the answer. */
static void
worker_conn_linger(struct worker_conn *c)
{
    struct worker *w = c->worker;

    if (shutdown(c->fd, SHUT_WR) != 0) {
        worker_conn_close(c);
        return;
    }
    c->state = CONN_DRAINING;
    c->in.len = 0;
    if (event_timer_start(&w->loop, &c->timer, WORKER_LINGER_MS) != 0) {
        worker_conn_close(c);
        return;
    }
    worker_conn_update(c);
}

/* A stopping worker's keep-alive connection has been idle a moment.  If
 * its next request is already in the kernel's queue (the readable event
 * may not have been handled yet), it is read and answered, with
 * Connection: close on HTTP; a connection is never closed over request
 * bytes.  Otherwise a lingering close: a request that crosses our FIN
 * gets no byte of answer, which is the case where RFC 9112 9.3.1 lets a
 * client retry, as browsers and urllib3 do. */
static void
worker_conn_stop_idle(struct worker_conn *c)
{
    int waiting = 0;

    if (ioctl(c->fd, FIONREAD, &waiting) != 0) {
        log_debug("ioctl(%d, FIONREAD) failed: %s", c->fd, strerror(errno));
        waiting = 0;
    }
    if (waiting > 0) {
        worker_conn_read(c);
        if (c->state != CONN_CLOSED) {
            worker_conn_run(c);
        }
        return;
    }
    log_debug("stopping: closing idle connection %d", c->fd);
    worker_conn_linger(c);
}

static void
worker_conn_drain(struct worker_conn *c)
{
    char buf[4096];

    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));

        if (n > 0) {
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        worker_conn_close(c);
        return;
    }
}

static void
worker_conn_io_cb(struct event_loop *loop, struct event_io *io,
                  unsigned events)
{
    struct worker_conn *c = io->data;

    if (c->state == CONN_DRAINING) {
        worker_conn_drain(c);
        return;
    }
    if (events & EVENT_READ) {
        worker_conn_read(c);
        if (c->state == CONN_CLOSED) {
            return;
        }
    }
    worker_conn_run(c);
}

void
worker_conn_run(struct worker_conn *c)
{
    /* Parse, answer, write; and again while writing everything out made
     * room for requests that backpressure had left in the input.  An
     * answer produced in parts (c->resume) comes first: more of it each
     * time the output is below the high-water mark, the next request
     * only once it is complete. */
    for (;;) {
        uint64_t answered = c->requests;
        bool     blocked = worker_conn_unsent(c) >= WORKER_OUT_HIGH_WATER;

        if (c->resume != NULL) {
            if (c->state == CONN_READING && !blocked) {
                c->resume(c);
                if (c->state == CONN_CLOSED) {
                    return;
                }
            }
            if (c->resume != NULL) {
                /* Back to the loop after each high-water mark's worth,
                 * so the other connections are served in between: the
                 * write event (armed while c->resume is set, see
                 * worker_conn_update) or a callback resumes. */
                worker_conn_flush(c);
                return;
            }
        }
        worker_conn_process(c);
        if (c->state == CONN_CLOSED) {
            return;
        }
        if (c->resume != NULL) {
            continue;
        }
        worker_conn_flush(c);
        if (c->state != CONN_READING || c->in.len == 0 || c->close_after_write
            || worker_conn_unsent(c) > 0
            || (c->requests == answered && !blocked)) {
            return;
        }
    }
}

void
worker_conn_schedule(struct worker_conn *c)
{
    struct worker *w = c->worker;

    if (!c->scheduled) {
        c->scheduled = true;
        c->run_next = w->run_list;
        w->run_list = c;
    }
}

void
worker_conn_process(struct worker_conn *c)
{
    if (c->resume != NULL) {
        return; /* the answer in parts comes first */
    }
    if (c->proxy != CONN_PROXY_DONE && c->in.len > 0 && !worker_acl_proxy(c)) {
        return;
    }
    c->proto->process(c);
    if (c->state == CONN_READING && c->peer_closed && c->in.len > 0
        && worker_conn_unsent(c) < WORKER_OUT_HIGH_WATER
        && !c->close_after_write) {
        /* The client closed in the middle of a request (below the high
         * water mark, parsing stopped only for want of bytes): nothing
         * more will come to complete it.  Send what is answered, then
         * close, rather than wait for the header deadline. */
        c->in.len = 0;
        if (worker_conn_unsent(c) == 0) {
            worker_conn_close(c);
        } else {
            c->close_after_write = true;
        }
    }
}

/* ---- accepting -------------------------------------------------------- */

/* A worker waiting on Redis for some of its clients leaves a new
 * connection to a peer that holds fewer, so two slow misses arriving
 * together are not queued on one backend connection.  Hits never wait
 * on Redis, so a hit-only load never yields (and never pauses). */
static bool
worker_should_yield(const struct worker *w)
{
    int64_t total;

    if (w->cfg->workers < 2 || w->stopping || w->accept_yielded
        || backend_pending(w->backend) == 0) {
        return false;
    }
    total = __atomic_load_n(w->params->clients, __ATOMIC_RELAXED);
    return (int64_t) w->open_conns * (int64_t) w->cfg->workers > total;
}

/* Closes the connection that has been idle longest: between requests
 * (or not yet sent one), nothing buffered either way, for at least
 * WORKER_REUSE_IDLE_MS (a client just accepted, whose request is on its
 * way, is not one), and no request bytes waiting in the kernel.  A
 * linear scan, done only at --max-clients.  Returns whether one was
 * closed. */
static bool
worker_close_idlest(struct worker *w)
{
    uint64_t            now = event_now_ms(&w->loop);
    struct worker_conn *idlest = NULL;
    int                 waiting = 0;

    for (uint32_t i = 0; i < w->cfg->max_clients; i++) {
        struct worker_conn *c = &w->conns[i];

        if (c->state == CONN_READING && c->in.len == 0
            && worker_conn_unsent(c) == 0 && !c->close_after_write
            && c->resume == NULL
            && now - c->activity_ms >= WORKER_REUSE_IDLE_MS
            && (idlest == NULL || c->activity_ms < idlest->activity_ms)) {
            idlest = c;
        }
    }
    if (idlest == NULL || ioctl(idlest->fd, FIONREAD, &waiting) != 0
        || waiting > 0) {
        return false;
    }
    log_debug(
        "at max-clients: closing connection %d, idle %llu ms", idlest->fd,
        (unsigned long long) (event_now_ms(&w->loop) - idlest->activity_ms));
    worker_conn_close(idlest);
    return true;
}

static void
worker_accept(struct worker *w, int lfd, const struct worker_proto *proto)
{
    /* With peers, take one connection per wake-up, and leave it to them
     * when this worker is busy with Redis and holds more than its share:
     * every worker polling the socket is woken (no EPOLLEXCLUSIVE), so an
     * idle one takes it.  A burst is spread
     * over the workers instead of landing on whichever woke first.  On
     * stop, drain the backlog. */
    int batch = w->stopping           ? (int) w->cfg->max_clients
                : w->cfg->workers > 1 ? 1
                                      : WORKER_ACCEPT_BATCH;

    if (worker_should_yield(w)) {
        /* Once: if no peer took it within a few milliseconds, they are
         * busy and this worker accepts after all. */
        w->accept_yielded = true;
        worker_pause_accepting(w, WORKER_YIELD_MS);
        return;
    }
    w->accept_yielded = false;
    for (int i = 0; i < batch; i++) {
        struct sockaddr_storage peer;
        socklen_t               peer_len;
        int                     fd;
        bool                    expect_proxy;

        if (w->free_list == NULL || !worker_reserve_client(w)) {
            /* At --max-clients.  Idle connections must not lock new
             * clients out: as nginx reuses connections, close this
             * worker's longest-idle one, and take the new client on the
             * next turn of the loop, once its slot is back in the pool.
             * With none idle, leave new connections in the backlog and
             * look again shortly (a peer worker may free a slot). */
            if (!w->stopping && worker_close_idlest(w)) {
                return;
            }
            worker_pause_accepting(w, WORKER_ACCEPT_RETRY_MS);
            return;
        }
        peer_len = sizeof(peer);
        fd = accept4(lfd, (struct sockaddr *) &peer, &peer_len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;

            worker_release_client(w);
            switch (err) {
            case EAGAIN:
            case EINTR:
                return;
            case ECONNABORTED:
            case EPROTO:
                log_error("accept4() failed: %s", strerror(err));
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                worker_accept_exhausted(w, lfd, proto, err,
                                        WORKER_EMFILE_PAUSE_MS);
                worker_pause_accepting(w, WORKER_EMFILE_PAUSE_MS);
                return;
            default:
                log_error("accept4() failed: %s", strerror(err));
                return;
            }
        }
        if (!worker_acl_accept(w, fd, &peer, &expect_proxy)) {
            worker_release_client(w);
            continue;
        }
        worker_conn_open(w, fd, proto, &peer, expect_proxy);
    }
}

static void
worker_http_accept_cb(struct event_loop *loop, struct event_io *io,
                      unsigned events)
{
    struct worker *w = io->data;

    worker_accept(w, w->http_fd, &worker_http_proto);
}

static void
worker_resp_accept_cb(struct event_loop *loop, struct event_io *io,
                      unsigned events)
{
    struct worker *w = io->data;

    worker_accept(w, w->resp_fd, &worker_resp_proto);
}

/* ---- stopping --------------------------------------------------------- */

static void
worker_stop_timer_cb(struct event_loop *loop, struct event_timer *t)
{
    struct worker *w = t->data;

    if (w->open_conns > 0) {
        log_warn("shutdown timeout: closing %zu connection(s) still open",
                 w->open_conns);
    }
    for (uint32_t i = 0; i < w->cfg->max_clients; i++) {
        worker_conn_close(&w->conns[i]);
    }
    event_loop_stop(loop);
}

/* Graceful stop: accept what is already in the backlog (those clients
 * were accepted by the kernel and are owed an answer), stop listening,
 * close idle connections, and let busy ones finish their request. */
static void
worker_stop(struct worker *w)
{
    if (w->stopping) {
        return;
    }
    log_info("stopping: finishing %zu connection(s)", w->open_conns);
    w->stopping = true;
    event_timer_stop(&w->loop, &w->accept_timer);
    if (w->http_fd >= 0) {
        worker_accept(w, w->http_fd, &worker_http_proto);
        event_io_stop(&w->loop, &w->http_io);
        close(w->http_fd);
        w->http_fd = -1;
    }
    if (w->resp_fd >= 0) {
        worker_accept(w, w->resp_fd, &worker_resp_proto);
        event_io_stop(&w->loop, &w->resp_io);
        close(w->resp_fd);
        w->resp_fd = -1;
    }
    w->accepting = false;
    for (uint32_t i = 0; i < w->cfg->max_clients; i++) {
        struct worker_conn *c = &w->conns[i];

        /* Idle keep-alive connections go once idle a moment, and never
         * over a request already sent (worker_conn_stop_idle).  One
         * accepted but not yet heard from is a client whose request is
         * on its way: it is answered (with Connection: close) rather
         * than reset. */
        if (c->state == CONN_READING) {
            worker_conn_update(c);
        }
    }
    event_timer_start(&w->loop, &w->stop_timer, w->cfg->shutdown_timeout_ms);
}

static void
worker_signal_cb(struct event_loop *loop, struct event_io *io, unsigned events)
{
    struct worker          *w = io->data;
    struct signalfd_siginfo si;

    for (;;) {
        ssize_t n = read(w->signal_fd, &si, sizeof(si));

        if (n != (ssize_t) sizeof(si)) {
            return;
        }
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            worker_stop(w);
            break;
        case SIGUSR2:
            if (worker_test_hook("lock-crash")) {
                /* Test hook: die inside the write lock, as a crash
                 * would, to exercise the supervisor's recovery. */
                log_warn("test hook: dying inside the cache write lock");
                cache_debug_hold_lock(w->params->cache, true);
                raise(SIGKILL);
            } else if (worker_test_hook("lru-crash")) {
                log_warn("test hook: dying inside the cache LRU lock");
                cache_debug_hold_lru_lock(w->params->cache);
                raise(SIGKILL);
            } else if (worker_test_hook("lock-stall")) {
                /* Test hook: a writer stuck inside the lock, whose
                 * peers' lock attempts time out meanwhile. */
                log_warn("test hook: holding the cache write lock");
                cache_debug_stall(w->params->cache, WORKER_STALL_MS);
                log_warn("test hook: cache write lock released");
            }
            break;
        default:
            break;
        }
    }
}

/* ---- setup ------------------------------------------------------------ */

/* Failure injection for the end-to-end tests, off unless the environment
 * variable REDIS_CACHE_PROXY_TEST_HOOKS names the hook:
 *   lock-crash      SIGUSR2 makes the worker die inside the write lock
 *   lru-crash       SIGUSR2 makes it die holding the LRU word (inside
 *                   the read side)
 *   lock-stall      SIGUSR2 makes the worker hold the write lock for
 *                   WORKER_STALL_MS, then let it go
 *   crash-at-start  the worker aborts before serving (respawn backoff)
 *   fail-init       the worker exits 2, "cannot initialise" */
static bool
worker_test_hook(const char *name)
{
    const char *hooks = getenv("REDIS_CACHE_PROXY_TEST_HOOKS");

    return hooks != NULL && strstr(hooks, name) != NULL;
}

static int
worker_init(struct worker *w, const struct worker_params *p)
{
    sigset_t set;
    int      rc;

    memset(w, 0, sizeof(*w));
    w->params = p;
    w->cfg = p->cfg;
    w->http_fd = p->http_fd;
    w->resp_fd = p->resp_fd;
    w->signal_fd = -1;
    w->accept_reserve_fd = -1;
    /* Each worker draws its own early-refresh coins (never zero). */
    w->rng = ((uint64_t) getpid() << 32) ^ (uint64_t) time(NULL)
             ^ UINT64_C(0x9e3779b97f4a7c15);

    rc = event_loop_init(&w->loop);
    if (rc != 0) {
        log_error("epoll_create1() failed: %s", strerror(-rc));
        return rc;
    }

    /* A peer (client or Redis) that closes while we write must cost an
     * EPIPE, not the process. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        rc = -errno;
        log_error("signal(SIGPIPE) failed: %s", strerror(errno));
        return rc;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        rc = -errno;
        log_error("sigprocmask() failed: %s", strerror(errno));
        return rc;
    }
    w->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w->signal_fd < 0) {
        rc = -errno;
        log_error("signalfd() failed: %s", strerror(errno));
        return rc;
    }
    event_io_init(&w->signal_io, w->signal_fd, worker_signal_cb, w);
    rc = event_io_set(&w->loop, &w->signal_io, EVENT_READ);
    if (rc != 0) {
        log_error("epoll_ctl(ADD, signalfd) failed: %s", strerror(-rc));
        return rc;
    }

    w->conns = calloc(p->cfg->max_clients, sizeof(*w->conns));
    w->key_buf = malloc(HTTP_PARSE_LINE_MAX + RESP_CONN_IN_MAX);
    if (w->conns == NULL || w->key_buf == NULL) {
        log_error("malloc() of %u connection slots failed",
                  p->cfg->max_clients);
        return -ENOMEM;
    }
    for (uint32_t i = p->cfg->max_clients; i-- > 0;) {
        struct worker_conn *c = &w->conns[i];

        c->fd = -1;
        c->worker = w;
        c->state = CONN_FREE;
        c->next = w->free_list;
        w->free_list = c;
    }

    rc = worker_acl_init(w);
    if (rc != 0) {
        log_error("access control setup failed: %s", strerror(-rc));
        return rc;
    }
    worker_accept_reserve_open(w);
    /* A fixed threshold: glibc's dynamic one rises to the size of the
     * largest block freed (up to 32 MB), after which big buffers come
     * from the heap and their pages stay in RSS once freed. */
    if (mallopt(M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD) != 1) {
        log_warn("mallopt(M_MMAP_THRESHOLD) failed: big buffers may stay "
                 "resident after use");
    }
    rc = backend_create(&w->loop, p->cfg, p->metrics, worker_store_value, w,
                        &w->backend);
    if (rc != 0) {
        log_error("backend_create() failed: %s", strerror(-rc));
        return rc;
    }
    backend_set_token(w->backend, worker_purge_token);
    backend_set_gate(w->backend, &worker_inflight_gate);
    rc = tracking_create(&w->loop, p->cfg, w->backend, p->cache, p->metrics,
                         &w->tracking);
    if (rc != 0) {
        log_error("tracking_create() failed: %s", strerror(-rc));
        return rc;
    }

    event_timer_init(&w->accept_timer, worker_accept_timer_cb, w);
    event_timer_init(&w->stop_timer, worker_stop_timer_cb, w);
    event_timer_init(&w->reap_timer, worker_reap_timer_cb, w);
    if (w->http_fd >= 0) {
        event_io_init(&w->http_io, w->http_fd, worker_http_accept_cb, w);
    }
    if (w->resp_fd >= 0) {
        event_io_init(&w->resp_io, w->resp_fd, worker_resp_accept_cb, w);
    }
    worker_set_accepting(w, true);
    return 0;
}

static void
worker_fini(struct worker *w)
{
    if (w->conns != NULL) {
        for (uint32_t i = 0; i < w->cfg->max_clients; i++) {
            struct worker_conn *c = &w->conns[i];

            worker_conn_close(c);
            buf_free(&c->in);
            for (size_t j = 0;
                 j < sizeof(worker_protos) / sizeof(*worker_protos); j++) {
                worker_protos[j]->slot_fini(c);
            }
            buf_free(&c->out);
            worker_out_free(c);
        }
    }
    /* Before the backend: it unhooks from it. */
    tracking_destroy(w->tracking);
    if (w->backend != NULL) {
        backend_destroy(w->backend);
    }
    worker_acl_fini(w);
    worker_accept_reserve_close(w);
    if (buf_pending(&w->access) > 0) {
        worker_access_flush(w);
    }
    buf_free(&w->access);
    free(w->conns);
    free(w->key_buf);
    value_reap_all();
    if (w->signal_fd >= 0) {
        event_io_stop(&w->loop, &w->signal_io);
        close(w->signal_fd);
    }
    event_loop_fini(&w->loop);
}

int
worker_run(const struct worker_params *params)
{
    struct worker w;
    int           rc;

    if (worker_test_hook("crash-at-start")) {
        abort();
    }
    if (worker_test_hook("fail-init")) {
        return WORKER_EXIT_FATAL;
    }
    rc = worker_init(&w, params);
    if (rc != 0) {
        worker_fini(&w);
        return WORKER_EXIT_FATAL;
    }
    if (params->ready_fd >= 0) {
        char one = 1;

        if (write(params->ready_fd, &one, 1) != 1) {
            log_warn("write(ready pipe) failed: %s", strerror(errno));
        }
        close(params->ready_fd);
    }
    log_debug("serving");
    rc = event_loop_run(&w.loop, worker_before_poll, &w);
    if (rc != 0) {
        log_error("epoll_wait() failed: %s", strerror(-rc));
    }
    worker_fini(&w);
    log_debug("exiting");
    return rc == 0 ? WORKER_EXIT_OK : WORKER_EXIT_FAIL;
}
