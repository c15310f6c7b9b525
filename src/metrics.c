/*
 * metrics: owns the per-worker counter slots and the Prometheus text they
 * are rendered into.
 *
 * The slots are one anonymous MAP_SHARED mapping made by the supervisor
 * before it forks, so every worker and the supervisor see the same pages
 * and nothing is left behind in /dev/shm.  Invariants:
 *
 *   - each slot has exactly one writer, the worker using it; writers bump
 *     fields with relaxed atomic adds and never take a lock;
 *   - the reader (the supervisor, on a scrape) loads every field with a
 *     relaxed atomic load and sums the slots, so a scrape never blocks a
 *     worker and never sees a torn 64-bit value;
 *   - a slot keeps its counters when its worker is replaced (counters never
 *     go backwards); only its connection gauge is zeroed, because the
 *     kernel closed those connections with the dead worker.
 *
 * Relaxed order means a scrape racing a worker may see one field of an
 * observation updated and the next not yet.  The only place that matters
 * is the histogram, whose +Inf bucket must not be below the others: the
 * writer bumps the bucket before the count, and the renderer takes the
 * larger of the count and the bucket total, so every scrape is a valid
 * (monotonic) histogram.
 *
 *   worker:     metrics_count_request()  --atomic add-->  slot[i]
 *   supervisor: metrics_render()  --sum slot[0..n)-->  text 0.0.4
 *
 * rcp_requests_total always lists every (protocol, code) pair that the
 * protocol can answer with, zero or not, so rate() and absent() work from
 * the first scrape; a pair outside that set (a caller bug) is rendered
 * only when non-zero, so no count is ever hidden.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "metrics.h"
#include "buf.h"

struct metrics {
    struct metrics_slot_shm *slots; /* owned: the shared mapping */
    uint32_t                 nslots;
    size_t                   map_bytes; /* length passed to mmap */
};

/* Bucket upper bounds, in microseconds and as rendered in le="...". */
static const uint64_t metrics_bucket_us[METRICS_BUCKETS] = {
    100,   250,   500,   1000,   2500,   5000,
    10000, 25000, 50000, 100000, 250000, 1000000,
};

static const char *const metrics_bucket_le[METRICS_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "1",
};

static const char *const metrics_code_names[METRICS_CODE_COUNT] = {
    [METRICS_CODE_200] = "200",      [METRICS_CODE_204] = "204",
    [METRICS_CODE_304] = "304",      [METRICS_CODE_400] = "400",
    [METRICS_CODE_401] = "401",      [METRICS_CODE_403] = "403",
    [METRICS_CODE_404] = "404",      [METRICS_CODE_405] = "405",
    [METRICS_CODE_408] = "408",      [METRICS_CODE_409] = "409",
    [METRICS_CODE_412] = "412",      [METRICS_CODE_413] = "413",
    [METRICS_CODE_414] = "414",      [METRICS_CODE_431] = "431",
    [METRICS_CODE_500] = "500",      [METRICS_CODE_501] = "501",
    [METRICS_CODE_502] = "502",      [METRICS_CODE_503] = "503",
    [METRICS_CODE_504] = "504",      [METRICS_CODE_505] = "505",
    [METRICS_CODE_RESP_OK] = "ok",   [METRICS_CODE_RESP_NIL] = "nil",
    [METRICS_CODE_RESP_ERR] = "err",
};

static const char *const metrics_proto_names[METRICS_PROTO_COUNT] = {
    [METRICS_PROTO_HTTP] = "http",
    [METRICS_PROTO_RESP] = "resp",
};

static const char *const metrics_backend_error_names[] = {
    [METRICS_BACKEND_UNREACHABLE] = "unreachable",
    [METRICS_BACKEND_TIMEOUT] = "timeout",
    [METRICS_BACKEND_REPLY] = "reply",
    [METRICS_BACKEND_TLS] = "tls",
};

_Static_assert(sizeof(metrics_backend_error_names)
                       / sizeof(*metrics_backend_error_names)
                   == METRICS_BACKEND_ERROR_COUNT,
               "a name for every backend error kind");

int
metrics_create(uint32_t nslots, struct metrics **out)
{
    struct metrics *m;
    void           *map;
    size_t          bytes;

    /* No uint32_t slot count can overflow the byte count on the 64-bit
     * targets we build for; the assert keeps that true. */
    _Static_assert(SIZE_MAX / sizeof(struct metrics_slot_shm)
                       > (uint64_t) UINT32_MAX,
                   "slot bytes fit in size_t");
    if (nslots == 0) {
        return -EINVAL;
    }
    /* One slot more than asked for, never rendered: the supervisor's
     * (metrics_hold_tracking). */
    bytes = ((size_t) nslots + 1) * sizeof(struct metrics_slot_shm);

    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -ENOMEM;
    }
    /* Anonymous and shared: children forked after this see the same
     * pages, and there is no name to unlink.  The kernel zero-fills it. */
    map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
               -1, 0);
    if (map == MAP_FAILED) {
        int rc = -errno;

        free(m);
        return rc;
    }
    m->slots = map;
    m->nslots = nslots;
    m->map_bytes = bytes;
    *out = m;
    return 0;
}

void
metrics_destroy(struct metrics *m)
{
    if (m == NULL) {
        return;
    }
    /* munmap of a range we mapped can only fail on a bad argument, which
     * would be a bug here, not a run-time condition. */
    if (munmap(m->slots, m->map_bytes) != 0) {
        assert(!"munmap of the metrics slots failed");
    }
    free(m);
}

struct metrics_slot_shm *
metrics_slot(struct metrics *m, uint32_t slot)
{
    assert(slot < m->nslots);
    return &m->slots[slot];
}

uint32_t
metrics_slot_count(const struct metrics *m)
{
    return m->nslots;
}

void
metrics_reap_slot(struct metrics *m, uint32_t slot)
{
    assert(slot < m->nslots);
    /* The dead worker was the slot's only writer and its replacement has
     * not started, so nobody races this store. */
    __atomic_store_n(&m->slots[slot].connections, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&m->slots[slot].backend_connections, 0, __ATOMIC_RELAXED);
    /* Its node states die with its connections. */
    metrics_nodes_publish(&m->slots[slot], NULL, 0, 0, false);
}

bool
metrics_reap_tracking(struct metrics *m, uint32_t slot)
{
    assert(slot < m->nslots);
    return __atomic_exchange_n(&m->slots[slot].tracking, METRICS_TRACKING_NONE,
                               __ATOMIC_SEQ_CST)
           != METRICS_TRACKING_NONE;
}

void
metrics_set_tracking(struct metrics_slot_shm *s, int64_t state)
{
    /* Seq-cst: a worker that sees UP must also see the flush made
     * before it was stored. */
    __atomic_store_n(&s->tracking, state, __ATOMIC_SEQ_CST);
}

void
metrics_count_invalidations(struct metrics_slot_shm *s, uint64_t n)
{
    __atomic_fetch_add(&s->invalidations, n, __ATOMIC_RELAXED);
}

void
metrics_tracking_beat(struct metrics_slot_shm *s, uint64_t until_ms)
{
    /* Seq-cst, as the state: a reader that sees the new time sees the
     * invalidations applied before it. */
    __atomic_store_n(&s->tracking_until_ms, until_ms, __ATOMIC_SEQ_CST);
}

void
metrics_hold_tracking(struct metrics *m, bool held)
{
    metrics_set_tracking(&m->slots[m->nslots],
                         held ? METRICS_TRACKING_DOWN : METRICS_TRACKING_NONE);
}

/* The supervisor's slot (index nslots) is read too: it is only ever NONE
 * or DOWN. */
int64_t
metrics_tracking_state(const struct metrics *m, uint64_t now_ms)
{
    int64_t state = METRICS_TRACKING_NONE;

    for (uint32_t i = 0; i <= m->nslots; i++) {
        const struct metrics_slot_shm *s = &m->slots[i];
        int64_t t = __atomic_load_n(&s->tracking, __ATOMIC_SEQ_CST);

        if (t == METRICS_TRACKING_DOWN) {
            return METRICS_TRACKING_DOWN;
        }
        if (t == METRICS_TRACKING_UP) {
            /* A worker stopped or hung while UP says UP for ever; the
             * keys it read are told to its subscriber alone, which
             * nobody reads now. */
            if (now_ms
                > __atomic_load_n(&s->tracking_until_ms, __ATOMIC_SEQ_CST)) {
                return METRICS_TRACKING_DOWN;
            }
            state = METRICS_TRACKING_UP;
        }
    }
    return state;
}

uint64_t
metrics_clock_ms(void)
{
    struct timespec ts;

    /* Not the coarse clock: its tick (4 ms) is of no matter against a
     * heartbeat of a second, but one clock for every reader is. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

enum metrics_code
metrics_code_from_status(int http_status)
{
    switch (http_status) {
    case 200:
        return METRICS_CODE_200;
    case 204:
        return METRICS_CODE_204;
    case 304:
        return METRICS_CODE_304;
    case 400:
        return METRICS_CODE_400;
    case 401:
        return METRICS_CODE_401;
    case 403:
        return METRICS_CODE_403;
    case 404:
        return METRICS_CODE_404;
    case 405:
        return METRICS_CODE_405;
    case 408:
        return METRICS_CODE_408;
    case 409:
        return METRICS_CODE_409;
    case 412:
        return METRICS_CODE_412;
    case 413:
        return METRICS_CODE_413;
    case 414:
        return METRICS_CODE_414;
    case 431:
        return METRICS_CODE_431;
    case 500:
        return METRICS_CODE_500;
    case 501:
        return METRICS_CODE_501;
    case 502:
        return METRICS_CODE_502;
    case 503:
        return METRICS_CODE_503;
    case 504:
        return METRICS_CODE_504;
    case 505:
        return METRICS_CODE_505;
    default:
        break;
    }
    /* A status we never send: count it in its class rather than drop it,
     * so the total still equals the number of answers. */
    if (http_status >= 400 && http_status < 500) {
        return METRICS_CODE_400;
    }
    if (http_status >= 200 && http_status < 300) {
        return METRICS_CODE_200;
    }
    return METRICS_CODE_500;
}

void
metrics_count_request(struct metrics_slot_shm *s, enum metrics_proto proto,
                      enum metrics_code code)
{
    assert(proto < METRICS_PROTO_COUNT && code < METRICS_CODE_COUNT);
    __atomic_fetch_add(&s->requests[proto][code], 1, __ATOMIC_RELAXED);
}

void
metrics_count_backend_error(struct metrics_slot_shm   *s,
                            enum metrics_backend_error kind)
{
    assert(kind < METRICS_BACKEND_ERROR_COUNT);
    __atomic_fetch_add(&s->backend_errors[kind], 1, __ATOMIC_RELAXED);
}

void
metrics_observe_backend(struct metrics_slot_shm *s, uint64_t micros)
{
    /* Bucket first, count last: see the file comment on why the reader
     * can then always render a monotonic histogram. */
    for (size_t i = 0; i < METRICS_BUCKETS; i++) {
        if (micros <= metrics_bucket_us[i]) {
            __atomic_fetch_add(&s->backend_buckets[i], 1, __ATOMIC_RELAXED);
            break;
        }
    }
    __atomic_fetch_add(&s->backend_sum_us, micros, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->backend_count, 1, __ATOMIC_RELAXED);
}

void
metrics_count_coalesced(struct metrics_slot_shm *s, uint64_t n)
{
    __atomic_fetch_add(&s->coalesced_waiters, n, __ATOMIC_RELAXED);
}

void
metrics_add_connections(struct metrics_slot_shm *s, int64_t delta)
{
    __atomic_fetch_add(&s->connections, delta, __ATOMIC_RELAXED);
}

void
metrics_add_backend_connections(struct metrics_slot_shm *s, int64_t delta)
{
    __atomic_fetch_add(&s->backend_connections, delta, __ATOMIC_RELAXED);
}

void
metrics_count_connection(struct metrics_slot_shm *s, bool denied)
{
    __atomic_fetch_add(denied ? &s->connections_denied
                              : &s->connections_accepted,
                       1, __ATOMIC_RELAXED);
}

void
metrics_count_refused(struct metrics_slot_shm *s, uint64_t n)
{
    __atomic_fetch_add(&s->connections_refused, n, __ATOMIC_RELAXED);
}

void
metrics_count_auth_failure(struct metrics_slot_shm *s)
{
    __atomic_fetch_add(&s->auth_failures, 1, __ATOMIC_RELAXED);
}

void
metrics_bump(uint64_t *counter)
{
    __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

void
metrics_sum(const struct metrics *m, struct metrics_slot_shm *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t n = 0; n < m->nslots; n++) {
        const struct metrics_slot_shm *s = &m->slots[n];

        for (size_t p = 0; p < METRICS_PROTO_COUNT; p++) {
            for (size_t c = 0; c < METRICS_CODE_COUNT; c++) {
                out->requests[p][c] +=
                    __atomic_load_n(&s->requests[p][c], __ATOMIC_RELAXED);
            }
        }
        for (size_t k = 0; k < METRICS_BACKEND_ERROR_COUNT; k++) {
            out->backend_errors[k] +=
                __atomic_load_n(&s->backend_errors[k], __ATOMIC_RELAXED);
        }
        for (size_t i = 0; i < METRICS_BUCKETS; i++) {
            out->backend_buckets[i] +=
                __atomic_load_n(&s->backend_buckets[i], __ATOMIC_RELAXED);
        }
        out->backend_count +=
            __atomic_load_n(&s->backend_count, __ATOMIC_RELAXED);
        out->backend_sum_us +=
            __atomic_load_n(&s->backend_sum_us, __ATOMIC_RELAXED);
        out->connections += __atomic_load_n(&s->connections, __ATOMIC_RELAXED);
        out->backend_connections +=
            __atomic_load_n(&s->backend_connections, __ATOMIC_RELAXED);
        out->connections_accepted +=
            __atomic_load_n(&s->connections_accepted, __ATOMIC_RELAXED);
        out->connections_denied +=
            __atomic_load_n(&s->connections_denied, __ATOMIC_RELAXED);
        out->connections_refused +=
            __atomic_load_n(&s->connections_refused, __ATOMIC_RELAXED);
        out->auth_failures +=
            __atomic_load_n(&s->auth_failures, __ATOMIC_RELAXED);
        for (size_t k = 0; k < METRICS_STALE_COUNT; k++) {
            out->stale_answers[k] +=
                __atomic_load_n(&s->stale_answers[k], __ATOMIC_RELAXED);
        }
        for (size_t k = 0; k < METRICS_REFRESH_COUNT; k++) {
            out->refreshes[k] +=
                __atomic_load_n(&s->refreshes[k], __ATOMIC_RELAXED);
        }
        out->not_modified +=
            __atomic_load_n(&s->not_modified, __ATOMIC_RELAXED);
        out->negative_hits +=
            __atomic_load_n(&s->negative_hits, __ATOMIC_RELAXED);
        out->coalesced_waiters +=
            __atomic_load_n(&s->coalesced_waiters, __ATOMIC_RELAXED);
        for (size_t k = 0; k < 2; k++) {
            out->cluster_redirects[k] +=
                __atomic_load_n(&s->cluster_redirects[k], __ATOMIC_RELAXED);
        }
        out->cluster_refreshes +=
            __atomic_load_n(&s->cluster_refreshes, __ATOMIC_RELAXED);
        out->cluster_map_changes +=
            __atomic_load_n(&s->cluster_map_changes, __ATOMIC_RELAXED);
        out->failovers += __atomic_load_n(&s->failovers, __ATOMIC_RELAXED);
        out->invalidations +=
            __atomic_load_n(&s->invalidations, __ATOMIC_RELAXED);
        /* Gauges of one worker's view: the freshest map wins. */
        if (__atomic_load_n(&s->cluster_map_ms, __ATOMIC_RELAXED)
            > out->cluster_map_ms) {
            out->cluster_map_ms =
                __atomic_load_n(&s->cluster_map_ms, __ATOMIC_RELAXED);
            out->cluster_nodes =
                __atomic_load_n(&s->cluster_nodes, __ATOMIC_RELAXED);
            out->cluster_slots_covered =
                __atomic_load_n(&s->cluster_slots_covered, __ATOMIC_RELAXED);
            out->cluster_nodes_down =
                __atomic_load_n(&s->cluster_nodes_down, __ATOMIC_RELAXED);
        }
    }
}

void
metrics_cluster_redirect(struct metrics_slot_shm *s, bool ask)
{
    __atomic_fetch_add(&s->cluster_redirects[ask ? 1 : 0], 1,
                       __ATOMIC_RELAXED);
}

void
metrics_count_failover(struct metrics_slot_shm *s)
{
    __atomic_fetch_add(&s->failovers, 1, __ATOMIC_RELAXED);
}

void
metrics_cluster_nodes_down(struct metrics_slot_shm *s, uint32_t down)
{
    __atomic_store_n(&s->cluster_nodes_down, down, __ATOMIC_RELAXED);
}

void
metrics_cluster_refresh(struct metrics_slot_shm *s)
{
    __atomic_fetch_add(&s->cluster_refreshes, 1, __ATOMIC_RELAXED);
}

void
metrics_cluster_map(struct metrics_slot_shm *s, uint32_t nodes,
                    uint32_t covered, bool changed)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    if (changed) {
        __atomic_fetch_add(&s->cluster_map_changes, 1, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&s->cluster_nodes, nodes, __ATOMIC_RELAXED);
    __atomic_store_n(&s->cluster_slots_covered, covered, __ATOMIC_RELAXED);
    __atomic_store_n(&s->cluster_map_ms,
                     (uint64_t) ts.tv_sec * 1000u
                         + (uint64_t) ts.tv_nsec / 1000000u,
                     __ATOMIC_RELAXED);
}

static uint64_t
metrics_now_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

void
metrics_nodes_publish(struct metrics_slot_shm       *s,
                      const struct metrics_node_shm *nodes, uint32_t n,
                      uint32_t more, bool new_list)
{
    uint64_t seq = __atomic_load_n(&s->nodes_seq, __ATOMIC_RELAXED);

    assert(n <= METRICS_NODES_MAX);
    __atomic_store_n(&s->nodes_seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    if (n > 0) {
        memcpy(s->nodes, nodes, n * sizeof(*nodes));
    }
    s->nnodes = n;
    s->nodes_more = more;
    if (new_list) {
        s->nodes_ms = metrics_now_ms();
    } else if (n == 0) {
        s->nodes_ms = 0;
    }
    __atomic_store_n(&s->nodes_seq, seq + 2, __ATOMIC_RELEASE);
}

void
metrics_node_set_addr(struct metrics_node_shm *n, const char *addr)
{
    size_t len = strnlen(addr, sizeof(n->addr) - 1);

    memcpy(n->addr, addr, len);
    n->addr[len] = '\0';
}

/* A consistent copy of slot s's table into *out (its nodes, nnodes,
 * nodes_more, nodes_ms); false when the writer kept it busy. */
static bool
metrics_nodes_copy(const struct metrics_slot_shm *s,
                   struct metrics_slot_shm       *out)
{
    for (int tries = 0; tries < 100; tries++) {
        uint64_t before = __atomic_load_n(&s->nodes_seq, __ATOMIC_ACQUIRE);

        if (before % 2 != 0) {
            continue;
        }
        out->nnodes = s->nnodes;
        out->nodes_more = s->nodes_more;
        out->nodes_ms = s->nodes_ms;
        if (out->nnodes > METRICS_NODES_MAX) {
            continue; /* torn: read again */
        }
        memcpy(out->nodes, s->nodes, out->nnodes * sizeof(*out->nodes));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->nodes_seq, __ATOMIC_RELAXED) == before) {
            for (uint32_t i = 0; i < out->nnodes; i++) {
                out->nodes[i].addr[METRICS_NODE_ADDR_MAX - 1] = '\0';
            }
            return true;
        }
    }
    return false;
}

/* How bad a state is, for the merge: DOWN worst, UNUSED least. */
static int
metrics_node_badness(uint8_t state)
{
    switch (state) {
    case METRICS_NODE_DOWN:
        return 3;
    case METRICS_NODE_UP:
        return 2;
    case METRICS_NODE_CONNECTING:
        return 1;
    default:
        return 0;
    }
}

uint32_t
metrics_nodes_view(const struct metrics *m, struct metrics_node_shm *out,
                   uint32_t *more)
{
    /* Two slot-sized copies: static, as the supervisor is one thread. */
    static struct metrics_slot_shm best, other;
    uint64_t                       best_ms = 0;
    bool                           have = false;

    *more = 0;
    for (uint32_t i = 0; i < m->nslots; i++) {
        if (metrics_nodes_copy(&m->slots[i], &other) && other.nnodes > 0
            && (!have || other.nodes_ms > best_ms)) {
            best.nnodes = other.nnodes;
            best.nodes_more = other.nodes_more;
            memcpy(best.nodes, other.nodes,
                   other.nnodes * sizeof(*other.nodes));
            best_ms = other.nodes_ms;
            have = true;
        }
    }
    if (!have) {
        return 0;
    }
    for (uint32_t i = 0; i < m->nslots; i++) {
        if (!metrics_nodes_copy(&m->slots[i], &other)) {
            continue;
        }
        for (uint32_t j = 0; j < other.nnodes; j++) {
            for (uint32_t k = 0; k < best.nnodes; k++) {
                if (strcmp(best.nodes[k].addr, other.nodes[j].addr) == 0
                    && metrics_node_badness(other.nodes[j].state)
                           > metrics_node_badness(best.nodes[k].state)) {
                    best.nodes[k].state = other.nodes[j].state;
                }
            }
        }
    }
    memcpy(out, best.nodes, best.nnodes * sizeof(*out));
    *more = best.nodes_more;
    return best.nnodes;
}

/* ---- rendering -------------------------------------------------------- */

/* A label value with '\\', '"' and newline escaped, as 0.0.4 asks. */
static void
metrics_label_value(struct buf_fixed *o, const char *value)
{
    for (const char *p = value; *p != '\0'; p++) {
        switch (*p) {
        case '\\':
            buf_fixed_printf(o, "\\\\");
            break;
        case '"':
            buf_fixed_printf(o, "\\\"");
            break;
        case '\n':
            buf_fixed_printf(o, "\\n");
            break;
        default:
            buf_fixed_printf(o, "%c", *p);
            break;
        }
    }
}

static void
metrics_family(struct buf_fixed *o, const char *name, const char *type,
               const char *help)
{
    buf_fixed_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                     type);
}

static void
metrics_u64(struct buf_fixed *o, const char *name, const char *type,
            const char *help, uint64_t value)
{
    metrics_family(o, name, type, help);
    buf_fixed_printf(o, "%s %" PRIu64 "\n", name, value);
}

/* Seconds from microseconds without going through a double, so a large
 * sum keeps every digit. */
static void
metrics_seconds_us(struct buf_fixed *o, uint64_t micros)
{
    buf_fixed_printf(o, "%" PRIu64 ".%06" PRIu64, micros / 1000000,
                     micros % 1000000);
}

static bool
metrics_code_fits(size_t proto, size_t code)
{
    bool resp_code = code >= METRICS_CODE_RESP_OK;

    return (proto == METRICS_PROTO_RESP) == resp_code;
}

static void
metrics_render_requests(struct buf_fixed              *o,
                        const struct metrics_slot_shm *sum)
{
    metrics_family(o, "rcp_requests_total", "counter",
                   "Requests answered, by protocol and status "
                   "(HTTP code, or RESP ok/nil/err).");
    for (size_t p = 0; p < METRICS_PROTO_COUNT; p++) {
        for (size_t c = 0; c < METRICS_CODE_COUNT; c++) {
            uint64_t v = sum->requests[p][c];

            if (!metrics_code_fits(p, c) && v == 0) {
                continue;
            }
            buf_fixed_printf(o,
                             "rcp_requests_total{protocol=\"%s\",code=\"%s\"} "
                             "%" PRIu64 "\n",
                             metrics_proto_names[p], metrics_code_names[c], v);
        }
    }
}

static void
metrics_render_backend(struct buf_fixed *o, const struct metrics_slot_shm *sum)
{
    uint64_t cumulative = 0;
    uint64_t count;

    metrics_family(o, "rcp_backend_errors_total", "counter",
                   "Requests to Redis that failed, by kind.");
    for (size_t k = 0; k < METRICS_BACKEND_ERROR_COUNT; k++) {
        buf_fixed_printf(o,
                         "rcp_backend_errors_total{kind=\"%s\"} %" PRIu64 "\n",
                         metrics_backend_error_names[k],
                         sum->backend_errors[k]);
    }

    metrics_family(o, "rcp_backend_request_duration_seconds", "histogram",
                   "Time of each request to Redis.");
    for (size_t i = 0; i < METRICS_BUCKETS; i++) {
        cumulative += sum->backend_buckets[i];
        buf_fixed_printf(o,
                         "rcp_backend_request_duration_seconds_bucket"
                         "{le=\"%s\"} %" PRIu64 "\n",
                         metrics_bucket_le[i], cumulative);
    }
    /* A scrape racing an observation may see its bucket but not yet its
     * count; never let +Inf fall below the last finite bucket. */
    count = sum->backend_count > cumulative ? sum->backend_count : cumulative;
    buf_fixed_printf(o,
                     "rcp_backend_request_duration_seconds_bucket"
                     "{le=\"+Inf\"} %" PRIu64 "\n",
                     count);
    buf_fixed_printf(o, "rcp_backend_request_duration_seconds_sum ");
    metrics_seconds_us(o, sum->backend_sum_us);
    buf_fixed_printf(o,
                     "\nrcp_backend_request_duration_seconds_count %" PRIu64
                     "\n",
                     count);
}

size_t
metrics_render(const struct metrics *m, const struct cache_stats *cs,
               const struct metrics_process_info *info, char *buf, size_t cap)
{
    struct metrics_slot_shm sum;
    struct buf_fixed        o = { .buf = buf, .cap = cap, .len = 0 };

    metrics_sum(m, &sum);

    metrics_render_requests(&o, &sum);

    metrics_u64(&o, "rcp_cache_hits_total", "counter",
                "Lookups answered from the cache.", cs->hits);
    metrics_u64(&o, "rcp_cache_misses_total", "counter",
                "Lookups not answered from the cache.", cs->misses);
    metrics_u64(&o, "rcp_cache_evictions_total", "counter",
                "Entries dropped to make room.", cs->evictions);
    metrics_u64(&o, "rcp_cache_expirations_total", "counter",
                "Entries dropped for age.", cs->expirations);
    metrics_u64(&o, "rcp_cache_entries", "gauge", "Entries held now.",
                cs->entries);
    metrics_u64(&o, "rcp_cache_bytes", "gauge",
                "Key and value bytes held now.", cs->bytes);
    metrics_u64(&o, "rcp_cache_capacity_entries", "gauge",
                "Most entries the cache holds (--capacity).",
                cs->capacity_entries);
    metrics_u64(&o, "rcp_cache_capacity_bytes", "gauge",
                "Most key and value bytes the cache holds (--max-memory).",
                cs->capacity_bytes);
    /* Poisoned: a worker died inside the lock and the cache is bypassed
     * until the supervisor rebuilds it; each rebuild bumps the count. */
    metrics_u64(&o, "rcp_cache_poisoned", "gauge",
                "1 while the cache is bypassed for crash recovery.",
                cs->poisoned ? 1 : 0);
    metrics_u64(&o, "rcp_cache_recoveries_total", "counter",
                "Cache rebuilds after a worker died inside the lock.",
                cs->generation);

    metrics_family(&o, "rcp_stale_answers_total", "counter",
                   "Expired values answered, by reason.");
    buf_fixed_printf(&o,
                     "rcp_stale_answers_total{reason=\"revalidate\"} %" PRIu64
                     "\n",
                     sum.stale_answers[METRICS_STALE_REVALIDATE]);
    buf_fixed_printf(&o,
                     "rcp_stale_answers_total{reason=\"error\"} %" PRIu64 "\n",
                     sum.stale_answers[METRICS_STALE_ERROR]);
    metrics_family(&o, "rcp_refreshes_total", "counter",
                   "Background fetches that refresh a cached value, by "
                   "reason.");
    buf_fixed_printf(&o, "rcp_refreshes_total{reason=\"stale\"} %" PRIu64 "\n",
                     sum.refreshes[METRICS_REFRESH_STALE]);
    buf_fixed_printf(&o, "rcp_refreshes_total{reason=\"early\"} %" PRIu64 "\n",
                     sum.refreshes[METRICS_REFRESH_EARLY]);
    metrics_u64(&o, "rcp_not_modified_total", "counter",
                "304 answers to If-None-Match.", sum.not_modified);
    metrics_u64(&o, "rcp_negative_hits_total", "counter",
                "Lookups answered by a remembered absent key.",
                sum.negative_hits);
    metrics_u64(&o, "rcp_coalesced_waiters_total", "counter",
                "Misses answered by another worker's fetch of the key "
                "(one fetch per key across workers).",
                sum.coalesced_waiters);

    metrics_render_backend(&o, &sum);

    /* Each worker opens and closes its connections in its own slot, so
     * the sum is negative only in a bug: show it rather than clamp it. */
    metrics_family(&o, "rcp_connections", "gauge",
                   "Open client connections, all workers together.");
    buf_fixed_printf(&o, "rcp_connections %" PRId64 "\n", sum.connections);
    metrics_family(&o, "rcp_backend_connections", "gauge",
                   "Connections to Redis ready for requests, all workers "
                   "together.");
    buf_fixed_printf(&o, "rcp_backend_connections %" PRId64 "\n",
                     sum.backend_connections);
    metrics_u64(&o, "rcp_invalidations_total", "counter",
                "Keys dropped because Redis said they changed (--tracking);"
                " a FLUSHALL or FLUSHDB counts one.",
                sum.invalidations);
    metrics_family(&o, "rcp_tracking_up", "gauge",
                   "1 while every worker's invalidation channel from Redis "
                   "is whole (--tracking); 0 when it is off or not.");
    buf_fixed_printf(&o, "rcp_tracking_up %d\n",
                     metrics_tracking_state(m, metrics_clock_ms())
                         == METRICS_TRACKING_UP);
    metrics_u64(&o, "rcp_connections_accepted_total", "counter",
                "Client connections accepted on the data ports.",
                sum.connections_accepted);
    metrics_u64(&o, "rcp_connections_denied_total", "counter",
                "Client connections closed at accept by --allow-from.",
                sum.connections_denied);
    metrics_u64(&o, "rcp_connections_refused_total", "counter",
                "Client connections refused at accept (HTTP 503, RESP"
                " -ERR) because the worker was out of descriptors.",
                sum.connections_refused);
    metrics_u64(&o, "rcp_auth_failures_total", "counter",
                "Requests refused for missing or wrong credentials.",
                sum.auth_failures);
    metrics_family(&o, "rcp_backend_redirects_total", "counter",
                   "Redis Cluster redirects followed, by kind.");
    buf_fixed_printf(&o,
                     "rcp_backend_redirects_total{kind=\"moved\"} %" PRIu64
                     "\n",
                     sum.cluster_redirects[0]);
    buf_fixed_printf(&o,
                     "rcp_backend_redirects_total{kind=\"ask\"} %" PRIu64 "\n",
                     sum.cluster_redirects[1]);
    metrics_u64(&o, "rcp_backend_map_refreshes_total", "counter",
                "Redis Cluster slot map reads started (CLUSTER SHARDS).",
                sum.cluster_refreshes);
    metrics_u64(&o, "rcp_backend_map_changes_total", "counter",
                "Slot maps read that moved a slot (failovers and "
                "migrations followed).",
                sum.cluster_map_changes);
    metrics_u64(&o, "rcp_backend_failovers_total", "counter",
                "New primaries followed, as Redis Sentinel named them.",
                sum.failovers);
    metrics_u64(&o, "rcp_backend_nodes", "gauge",
                "Redis Cluster primaries in the slot map (0: one Redis).",
                sum.cluster_nodes);
    metrics_u64(&o, "rcp_backend_nodes_down", "gauge",
                "Redis Cluster primaries the workers cannot reach (as of "
                "the last map read).",
                sum.cluster_nodes_down);
    metrics_u64(&o, "rcp_backend_slots_covered", "gauge",
                "Redis Cluster slots with a primary, of 16384.",
                sum.cluster_slots_covered);
    metrics_u64(&o, "rcp_max_clients", "gauge",
                "Most client connections, all workers together "
                "(--max-clients).",
                info->max_clients);
    metrics_u64(&o, "rcp_workers", "gauge", "Live worker processes.",
                info->workers_alive);
    metrics_u64(&o, "rcp_worker_restarts_total", "counter",
                "Workers replaced after dying.", info->worker_restarts);

    metrics_family(&o, "rcp_build_info", "gauge",
                   "Constant 1, labelled with the version.");
    buf_fixed_printf(&o, "rcp_build_info{version=\"");
    metrics_label_value(&o, info->version);
    buf_fixed_printf(&o, "\"} 1\n");

    metrics_family(&o, "process_start_time_seconds", "gauge",
                   "Start time of the process since the epoch, in seconds.");
    buf_fixed_printf(&o, "process_start_time_seconds %.3f\n",
                     info->start_time_seconds);

    return o.len;
}
