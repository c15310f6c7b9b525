/*
 * check_metrics: the counter slots (shared across fork, summed by the
 * reader), the status-to-code table, the histogram's buckets and their
 * cumulative rendering, every family named in DESIGN.md, and render's
 * snprintf-like truncation.
 *
 * Run as `check_metrics --render` it prints a sample exposition with every
 * series non-zero instead of running the suite; tests/promtool_metrics
 * feeds that to `promtool check metrics`.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"

#define RENDER_CAP (64 * 1024)

static struct metrics *m;
static char           *text;

static const struct cache_stats stats_sample = {
    .entries = 7, .bytes = 1234, .capacity_entries = 10000,
    .capacity_bytes = 67108864, .hits = 40, .misses = 2, .evictions = 3,
    .expirations = 4, .generation = 1, .poisoned = false,
};

static const struct metrics_process_info info_sample = {
    .version = "0.1.0",
    .start_time_seconds = 1700000000.25,
    .workers_alive = 4,
    .worker_restarts = 5,
    .max_clients = 1024,
};

static void
setup(void)
{
    ck_assert_int_eq(metrics_create(4, &m), 0);
    text = malloc(RENDER_CAP);
    ck_assert_ptr_nonnull(text);
}

static void
teardown(void)
{
    metrics_destroy(m);
    m = NULL;
    free(text);
    text = NULL;
}

static size_t
render(void)
{
    size_t n = metrics_render(m, &stats_sample, &info_sample, text,
                              RENDER_CAP);

    ck_assert_uint_lt(n, RENDER_CAP);
    ck_assert_uint_eq(strlen(text), n);
    return n;
}

/* The text contains this exact line (line given without its newline). */
static void
assert_line(const char *line)
{
    size_t      len = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[len] == '\n') {
            return;
        }
        p++;
    }
    ck_abort_msg("line not rendered: %s\n--- text ---\n%s", line, text);
}

static void
assert_no_line_starting(const char *prefix)
{
    size_t      len = strlen(prefix);
    const char *p = text;

    while ((p = strstr(p, prefix)) != NULL) {
        ck_assert_msg(!(p == text || p[-1] == '\n'),
                      "unexpected line starting %s", prefix);
        p += len;
    }
}

/* ---- create and share -------------------------------------------------- */

START_TEST(create_rejects_zero_slots)
{
    struct metrics *none = NULL;

    ck_assert_int_eq(metrics_create(0, &none), -EINVAL);
    ck_assert_ptr_null(none);
}
END_TEST

START_TEST(create_zeroes_every_slot)
{
    struct metrics_slot_shm zero;

    memset(&zero, 0, sizeof(zero));
    ck_assert_uint_eq(metrics_slot_count(m), 4);
    for (uint32_t i = 0; i < 4; i++) {
        ck_assert_mem_eq(metrics_slot(m, i), &zero, sizeof(zero));
    }
}
END_TEST

START_TEST(slots_are_shared_with_forked_children)
{
    pid_t pids[3];
    int   status;

    /* Three children each own one slot, as workers do; the parent sees
     * their counts without any message passing. */
    for (uint32_t i = 0; i < 3; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            struct metrics_slot_shm *s = metrics_slot(m, i + 1);

            for (uint32_t k = 0; k <= i; k++) {
                metrics_count_request(s, METRICS_PROTO_HTTP,
                                      METRICS_CODE_200);
            }
            metrics_observe_backend(s, 300);
            _exit(0);
        }
    }
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    render();
    assert_line("rcp_requests_total{protocol=\"http\",code=\"200\"} 6");
    assert_line("rcp_backend_request_duration_seconds_count 3");
}
END_TEST

/* ---- counters sum over slots ------------------------------------------ */

START_TEST(counters_sum_over_slots)
{
    struct metrics_slot_shm sum;

    for (uint32_t i = 0; i < 4; i++) {
        struct metrics_slot_shm *s = metrics_slot(m, i);

        for (uint32_t k = 0; k < 10 * (i + 1); k++) {
            metrics_count_request(s, METRICS_PROTO_HTTP, METRICS_CODE_404);
        }
        metrics_count_request(s, METRICS_PROTO_RESP, METRICS_CODE_RESP_NIL);
        metrics_count_backend_error(s, METRICS_BACKEND_TIMEOUT);
        metrics_add_connections(s, 3);
    }
    metrics_add_connections(metrics_slot(m, 2), -1);

    metrics_sum(m, &sum);
    ck_assert_uint_eq(sum.requests[METRICS_PROTO_HTTP][METRICS_CODE_404],
                      100);
    ck_assert_uint_eq(sum.requests[METRICS_PROTO_RESP]
                                  [METRICS_CODE_RESP_NIL], 4);
    ck_assert_uint_eq(sum.backend_errors[METRICS_BACKEND_TIMEOUT], 4);
    ck_assert_int_eq(sum.connections, 11);

    render();
    assert_line("rcp_requests_total{protocol=\"http\",code=\"404\"} 100");
    assert_line("rcp_requests_total{protocol=\"resp\",code=\"nil\"} 4");
    assert_line("rcp_backend_errors_total{kind=\"timeout\"} 4");
    assert_line("rcp_backend_errors_total{kind=\"unreachable\"} 0");
    assert_line("rcp_connections 11");
}
END_TEST

/* Cluster gauges are one worker's view, not a sum: the slot with the
 * freshest map wins; redirect and refresh counters add up. */
START_TEST(cluster_gauges_take_the_freshest_map)
{
    struct metrics_slot_shm sum;
    struct metrics_slot_shm *a = metrics_slot(m, 0);
    struct metrics_slot_shm *b = metrics_slot(m, 1);

    metrics_cluster_map(a, 3, 16384, true);
    metrics_cluster_redirect(a, false);
    metrics_cluster_redirect(b, true);
    metrics_cluster_redirect(b, true);
    metrics_cluster_refresh(a);
    metrics_cluster_refresh(b);
    metrics_count_failover(b);
    metrics_sum(m, &sum);
    ck_assert_uint_eq(sum.cluster_nodes, 3);
    ck_assert_uint_eq(sum.cluster_slots_covered, 16384);
    /* b reads a later map with a primary gone. */
    b->cluster_map_ms = a->cluster_map_ms + 1;
    b->cluster_nodes = 2;
    b->cluster_slots_covered = 10923;
    metrics_sum(m, &sum);
    ck_assert_uint_eq(sum.cluster_nodes, 2);
    ck_assert_uint_eq(sum.cluster_slots_covered, 10923);
    render();
    assert_line("rcp_backend_redirects_total{kind=\"moved\"} 1");
    assert_line("rcp_backend_redirects_total{kind=\"ask\"} 2");
    assert_line("rcp_backend_map_refreshes_total 2");
    assert_line("rcp_backend_map_changes_total 1");
    assert_line("rcp_backend_failovers_total 1");
    assert_line("rcp_backend_nodes 2");
    assert_line("rcp_backend_slots_covered 10923");
}
END_TEST

static struct metrics_node_shm
node(const char *addr, uint32_t slots, enum metrics_node_state state)
{
    struct metrics_node_shm n;

    memset(&n, 0, sizeof(n));
    metrics_node_set_addr(&n, addr);
    n.slots = slots;
    n.state = (uint8_t) state;
    return n;
}

START_TEST(nodes_view_freshest_list_worst_state)
{
    struct metrics_node_shm out[METRICS_NODES_MAX];
    struct metrics_node_shm a[2], b[2], c[1];
    uint32_t more = 99;

    ck_assert_uint_eq(metrics_nodes_view(m, out, &more), 0);
    ck_assert_uint_eq(more, 0);
    a[0] = node("10.0.0.1:7000", 8192, METRICS_NODE_UP);
    a[1] = node("10.0.0.2:7000", 8192, METRICS_NODE_UNUSED);
    metrics_nodes_publish(metrics_slot(m, 0), a, 2, 0, true);
    /* Slot 1 reads a later map (one node more left out); slot 2 has an
     * old one, but its worker found 10.0.0.2 down. */
    c[0] = node("10.0.0.2:7000", 16384, METRICS_NODE_DOWN);
    metrics_nodes_publish(metrics_slot(m, 2), c, 1, 0, true);
    metrics_slot(m, 2)->nodes_ms -= 10;
    b[0] = node("10.0.0.2:7000", 8192, METRICS_NODE_CONNECTING);
    b[1] = node("10.0.0.3:7000", 8192, METRICS_NODE_UP);
    metrics_nodes_publish(metrics_slot(m, 1), b, 2, 1, true);
    metrics_slot(m, 1)->nodes_ms += 10;
    /* A state-only update keeps the list's time. */
    b[1].state = METRICS_NODE_CONNECTING;
    metrics_nodes_publish(metrics_slot(m, 1), b, 2, 1, false);
    ck_assert_uint_eq(metrics_nodes_view(m, out, &more), 2);
    ck_assert_uint_eq(more, 1);
    ck_assert_str_eq(out[0].addr, "10.0.0.2:7000");
    ck_assert_uint_eq(out[0].slots, 8192);
    ck_assert_uint_eq(out[0].state, METRICS_NODE_DOWN);
    ck_assert_str_eq(out[1].addr, "10.0.0.3:7000");
    ck_assert_uint_eq(out[1].state, METRICS_NODE_CONNECTING);
    /* A reaped worker's states no longer count. */
    metrics_reap_slot(m, 2);
    ck_assert_uint_eq(metrics_nodes_view(m, out, &more), 2);
    ck_assert_uint_eq(out[0].state, METRICS_NODE_CONNECTING);
    ck_assert_uint_eq(metrics_slot(m, 2)->nodes_seq % 2, 0);
}
END_TEST

START_TEST(node_addr_is_cut_to_fit)
{
    struct metrics_node_shm n;
    char long_addr[300];

    memset(long_addr, 'h', sizeof(long_addr) - 1);
    long_addr[sizeof(long_addr) - 1] = '\0';
    memset(&n, 0x55, sizeof(n));
    metrics_node_set_addr(&n, long_addr);
    ck_assert_uint_eq(strlen(n.addr), METRICS_NODE_ADDR_MAX - 1);
}
END_TEST

START_TEST(reap_zeroes_connections_and_keeps_counters)
{
    struct metrics_slot_shm *s = metrics_slot(m, 1);

    metrics_add_connections(s, 5);
    metrics_add_connections(metrics_slot(m, 0), 2);
    metrics_count_request(s, METRICS_PROTO_HTTP, METRICS_CODE_502);
    metrics_reap_slot(m, 1);

    render();
    assert_line("rcp_connections 2");
    assert_line("rcp_requests_total{protocol=\"http\",code=\"502\"} 1");
}
END_TEST

/* One worker down keeps every worker off the cache; a reaped slot no
 * longer counts, and says it tracked (the supervisor flushes then). */
START_TEST(tracking_state_over_slots)
{
    uint64_t now = metrics_clock_ms();

    ck_assert_int_eq(metrics_tracking_state(m, now), METRICS_TRACKING_NONE);
    metrics_tracking_beat(metrics_slot(m, 0), now + 60000);
    metrics_set_tracking(metrics_slot(m, 0), METRICS_TRACKING_UP);
    metrics_set_tracking(metrics_slot(m, 2), METRICS_TRACKING_DOWN);
    ck_assert_int_eq(metrics_tracking_state(m, now), METRICS_TRACKING_DOWN);
    render();
    assert_line("rcp_tracking_up 0");
    ck_assert(metrics_reap_tracking(m, 2));
    ck_assert(!metrics_reap_tracking(m, 3));
    ck_assert_int_eq(metrics_tracking_state(m, now), METRICS_TRACKING_UP);
    metrics_count_invalidations(metrics_slot(m, 0), 3);
    metrics_count_invalidations(metrics_slot(m, 1), 1);
    render();
    assert_line("rcp_tracking_up 1");
    assert_line("rcp_invalidations_total 4");
}
END_TEST

/* An UP slot whose heartbeat is past counts as DOWN (its worker is
 * stopped or hung: nobody applies what Redis tells it), until it beats
 * again. */
START_TEST(tracking_late_heartbeat_is_down)
{
    struct metrics_slot_shm *s0 = metrics_slot(m, 0);
    struct metrics_slot_shm *s1 = metrics_slot(m, 1);

    metrics_tracking_beat(s0, 5000);
    metrics_set_tracking(s0, METRICS_TRACKING_UP);
    metrics_tracking_beat(s1, 3000);
    metrics_set_tracking(s1, METRICS_TRACKING_UP);
    ck_assert_int_eq(metrics_tracking_state(m, 3000), METRICS_TRACKING_UP);
    ck_assert_int_eq(metrics_tracking_state(m, 3001), METRICS_TRACKING_DOWN);
    metrics_tracking_beat(s1, 6000);
    ck_assert_int_eq(metrics_tracking_state(m, 5000), METRICS_TRACKING_UP);
    ck_assert_int_eq(metrics_tracking_state(m, 5001), METRICS_TRACKING_DOWN);
    /* A DOWN or reaped slot's heartbeat does not matter. */
    metrics_set_tracking(s0, METRICS_TRACKING_DOWN);
    ck_assert_int_eq(metrics_tracking_state(m, 100), METRICS_TRACKING_DOWN);
    ck_assert(metrics_reap_tracking(m, 0));
    ck_assert_int_eq(metrics_tracking_state(m, 5500), METRICS_TRACKING_UP);
}
END_TEST

/* The supervisor's hold (a flush that has not had the lock) is DOWN
 * whatever the workers say, and is in no worker's slot. */
START_TEST(tracking_held_by_supervisor_is_down)
{
    struct metrics_slot_shm *s0 = metrics_slot(m, 0);

    ck_assert_int_eq(metrics_tracking_state(m, 10), METRICS_TRACKING_NONE);
    metrics_hold_tracking(m, true);
    ck_assert_int_eq(metrics_tracking_state(m, 10), METRICS_TRACKING_DOWN);
    metrics_tracking_beat(s0, 1000);
    metrics_set_tracking(s0, METRICS_TRACKING_UP);
    ck_assert_int_eq(metrics_tracking_state(m, 10), METRICS_TRACKING_DOWN);
    for (uint32_t i = 0; i < metrics_slot_count(m); i++) {
        ck_assert(metrics_slot(m, i)->tracking != METRICS_TRACKING_DOWN);
    }
    metrics_hold_tracking(m, false);
    ck_assert_int_eq(metrics_tracking_state(m, 10), METRICS_TRACKING_UP);
}
END_TEST

START_TEST(every_protocol_code_pair_is_listed_even_at_zero)
{
    char line[128];

    render();
    for (int c = 0; c < METRICS_CODE_RESP_OK; c++) {
        static const char *const http_codes[] = {
            "200", "204", "304", "400", "401", "403", "404", "405", "408",
            "409", "412",
            "413", "414",
            "431", "500", "501", "502", "503", "504", "505",
        };

        snprintf(line, sizeof(line),
                 "rcp_requests_total{protocol=\"http\",code=\"%s\"} 0",
                 http_codes[c]);
        assert_line(line);
    }
    assert_line("rcp_requests_total{protocol=\"resp\",code=\"ok\"} 0");
    assert_line("rcp_requests_total{protocol=\"resp\",code=\"nil\"} 0");
    assert_line("rcp_stale_answers_total{reason=\"revalidate\"} 0");
    assert_line("rcp_stale_answers_total{reason=\"error\"} 0");
    assert_line("rcp_refreshes_total{reason=\"stale\"} 0");
    assert_line("rcp_refreshes_total{reason=\"early\"} 0");
    assert_line("rcp_not_modified_total 0");
    assert_line("rcp_negative_hits_total 0");
    assert_line("rcp_requests_total{protocol=\"resp\",code=\"err\"} 0");
    /* Pairs a protocol never answers with are not listed at zero. */
    assert_no_line_starting("rcp_requests_total{protocol=\"resp\",code=\"2");
    assert_no_line_starting("rcp_requests_total{protocol=\"http\",code=\"ok");
}
END_TEST

START_TEST(a_misfiled_pair_is_still_shown)
{
    metrics_count_request(metrics_slot(m, 0), METRICS_PROTO_RESP,
                          METRICS_CODE_500);
    render();
    assert_line("rcp_requests_total{protocol=\"resp\",code=\"500\"} 1");
}
END_TEST

/* ---- status to code ----------------------------------------------------- */

static const struct code_case {
    int               status;
    enum metrics_code code;
    const char       *why;
} code_cases[] = {
    { 200, METRICS_CODE_200, "hit or miss found" },
    { 204, METRICS_CODE_204, "admin flush" },
    { 400, METRICS_CODE_400, "malformed" },
    { 401, METRICS_CODE_401, "no or wrong credentials" },
    { 403, METRICS_CODE_403, "a key --allow-keys refuses" },
    { 404, METRICS_CODE_404, "absent in Redis" },
    { 405, METRICS_CODE_405, "other method" },
    { 408, METRICS_CODE_408, "slow headers" },
    { 409, METRICS_CODE_409, "wrong type" },
    { 413, METRICS_CODE_413, "body too big" },
    { 414, METRICS_CODE_414, "line too long" },
    { 431, METRICS_CODE_431, "headers too big" },
    { 500, METRICS_CODE_500, "internal" },
    { 501, METRICS_CODE_501, "unknown transfer coding" },
    { 502, METRICS_CODE_502, "Redis unreachable" },
    { 503, METRICS_CODE_503, "admin health down" },
    { 504, METRICS_CODE_504, "Redis timeout" },
    { 505, METRICS_CODE_505, "HTTP/2 request line" },
    { 206, METRICS_CODE_200, "unlisted 2xx counts as 200" },
    { 418, METRICS_CODE_400, "unlisted 4xx counts as 400" },
    { 599, METRICS_CODE_500, "unlisted 5xx counts as 500" },
    { 302, METRICS_CODE_500, "a class we never send counts as 500" },
    { 0, METRICS_CODE_500, "no status at all counts as 500" },
};

START_TEST(code_from_status)
{
    const struct code_case *c = &code_cases[_i];

    ck_assert_msg(metrics_code_from_status(c->status) == c->code,
                  "%d: %s", c->status, c->why);
}
END_TEST

/* ---- histogram ---------------------------------------------------------- */

static const char *const le_names[METRICS_BUCKETS + 1] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05", "0.1", "0.25", "1", "+Inf",
};

static const struct bucket_case {
    uint64_t    micros;
    int         first_le;       /* index into le_names of the first bucket
                                   that counts it */
    const char *sum;
    const char *why;
} bucket_cases[] = {
    { 0, 0, "0.000000", "zero lands in the first bucket" },
    { 100, 0, "0.000100", "a bound is inclusive (le)" },
    { 101, 1, "0.000101", "just past a bound goes up one" },
    { 999, 3, "0.000999", "under a millisecond" },
    { 1000, 3, "0.001000", "exactly a millisecond" },
    { 250000, 10, "0.250000", "quarter second" },
    { 1000000, 11, "1.000000", "the last finite bound" },
    { 1000001, 12, "1.000001", "past every bound: only +Inf" },
    { 123456789, 12, "123.456789", "minutes: sum keeps every digit" },
};

START_TEST(histogram_buckets_are_cumulative)
{
    const struct bucket_case *c = &bucket_cases[_i];
    char                      line[160];

    metrics_observe_backend(metrics_slot(m, 0), c->micros);
    render();
    for (int i = 0; i <= METRICS_BUCKETS; i++) {
        snprintf(line, sizeof(line),
                 "rcp_backend_request_duration_seconds_bucket{le=\"%s\"} %d",
                 le_names[i], i >= c->first_le ? 1 : 0);
        assert_line(line);
    }
    snprintf(line, sizeof(line), "rcp_backend_request_duration_seconds_sum %s",
             c->sum);
    assert_line(line);
    assert_line("rcp_backend_request_duration_seconds_count 1");
}
END_TEST

START_TEST(histogram_sums_slots_cumulatively)
{
    /* Slot 0: two fast; slot 3: one 20 ms, one 2 s. */
    metrics_observe_backend(metrics_slot(m, 0), 50);
    metrics_observe_backend(metrics_slot(m, 0), 80);
    metrics_observe_backend(metrics_slot(m, 3), 20000);
    metrics_observe_backend(metrics_slot(m, 3), 2000000);
    render();
    assert_line("rcp_backend_request_duration_seconds_bucket"
                "{le=\"0.0001\"} 2");
    assert_line("rcp_backend_request_duration_seconds_bucket"
                "{le=\"0.01\"} 2");
    assert_line("rcp_backend_request_duration_seconds_bucket"
                "{le=\"0.025\"} 3");
    assert_line("rcp_backend_request_duration_seconds_bucket{le=\"1\"} 3");
    assert_line("rcp_backend_request_duration_seconds_bucket"
                "{le=\"+Inf\"} 4");
    assert_line("rcp_backend_request_duration_seconds_sum 2.020130");
    assert_line("rcp_backend_request_duration_seconds_count 4");
}
END_TEST

START_TEST(histogram_inf_never_below_buckets)
{
    struct metrics_slot_shm *s = metrics_slot(m, 2);

    /* What a scrape sees mid-observation: bucket bumped, count not yet. */
    s->backend_buckets[0] = 3;
    s->backend_count = 2;
    render();
    assert_line("rcp_backend_request_duration_seconds_bucket"
                "{le=\"+Inf\"} 3");
    assert_line("rcp_backend_request_duration_seconds_count 3");
}
END_TEST

/* ---- every family ------------------------------------------------------- */

static const struct family_case {
    const char *name;
    const char *type;
    const char *sample;         /* a line that must be rendered */
} family_cases[] = {
    { "rcp_requests_total", "counter",
      "rcp_requests_total{protocol=\"http\",code=\"200\"} 0" },
    { "rcp_cache_hits_total", "counter", "rcp_cache_hits_total 40" },
    { "rcp_cache_misses_total", "counter", "rcp_cache_misses_total 2" },
    { "rcp_cache_evictions_total", "counter",
      "rcp_cache_evictions_total 3" },
    { "rcp_cache_expirations_total", "counter",
      "rcp_cache_expirations_total 4" },
    { "rcp_cache_entries", "gauge", "rcp_cache_entries 7" },
    { "rcp_cache_bytes", "gauge", "rcp_cache_bytes 1234" },
    { "rcp_cache_capacity_entries", "gauge",
      "rcp_cache_capacity_entries 10000" },
    { "rcp_cache_capacity_bytes", "gauge",
      "rcp_cache_capacity_bytes 67108864" },
    { "rcp_cache_poisoned", "gauge", "rcp_cache_poisoned 0" },
    { "rcp_cache_recoveries_total", "counter",
      "rcp_cache_recoveries_total 1" },
    { "rcp_stale_answers_total", "counter",
      "rcp_stale_answers_total{reason=\"error\"} 0" },
    { "rcp_refreshes_total", "counter",
      "rcp_refreshes_total{reason=\"early\"} 0" },
    { "rcp_not_modified_total", "counter", "rcp_not_modified_total 0" },
    { "rcp_negative_hits_total", "counter", "rcp_negative_hits_total 0" },
    { "rcp_coalesced_waiters_total", "counter",
      "rcp_coalesced_waiters_total 0" },
    { "rcp_backend_errors_total", "counter",
      "rcp_backend_errors_total{kind=\"reply\"} 0" },
    { "rcp_backend_request_duration_seconds", "histogram",
      "rcp_backend_request_duration_seconds_count 0" },
    { "rcp_connections", "gauge", "rcp_connections 0" },
    { "rcp_backend_connections", "gauge", "rcp_backend_connections 0" },
    { "rcp_invalidations_total", "counter", "rcp_invalidations_total 0" },
    { "rcp_tracking_up", "gauge", "rcp_tracking_up 0" },
    { "rcp_connections_accepted_total", "counter",
      "rcp_connections_accepted_total 0" },
    { "rcp_connections_denied_total", "counter",
      "rcp_connections_denied_total 0" },
    { "rcp_connections_refused_total", "counter",
      "rcp_connections_refused_total 0" },
    { "rcp_auth_failures_total", "counter", "rcp_auth_failures_total 0" },
    { "rcp_backend_redirects_total", "counter",
      "rcp_backend_redirects_total{kind=\"ask\"} 0" },
    { "rcp_backend_map_refreshes_total", "counter",
      "rcp_backend_map_refreshes_total 0" },
    { "rcp_backend_map_changes_total", "counter",
      "rcp_backend_map_changes_total 0" },
    { "rcp_backend_failovers_total", "counter",
      "rcp_backend_failovers_total 0" },
    { "rcp_backend_nodes", "gauge", "rcp_backend_nodes 0" },
    { "rcp_backend_nodes_down", "gauge", "rcp_backend_nodes_down 0" },
    { "rcp_backend_slots_covered", "gauge", "rcp_backend_slots_covered 0" },
    { "rcp_max_clients", "gauge", "rcp_max_clients 1024" },
    { "rcp_workers", "gauge", "rcp_workers 4" },
    { "rcp_worker_restarts_total", "counter",
      "rcp_worker_restarts_total 5" },
    { "rcp_build_info", "gauge", "rcp_build_info{version=\"0.1.0\"} 1" },
    { "process_start_time_seconds", "gauge",
      "process_start_time_seconds 1700000000.250" },
};

START_TEST(family_is_rendered)
{
    const struct family_case *c = &family_cases[_i];
    char                      line[160];

    render();
    snprintf(line, sizeof(line), "# TYPE %s %s", c->name, c->type);
    assert_line(line);
    snprintf(line, sizeof(line), "# HELP %s ", c->name);
    ck_assert_msg(strstr(text, line) != NULL, "no HELP for %s", c->name);
    assert_line(c->sample);
}
END_TEST

START_TEST(no_family_beyond_the_table)
{
    size_t      families = 0;
    const char *p = text;

    render();
    while ((p = strstr(p, "# TYPE ")) != NULL) {
        families++;
        p++;
    }
    ck_assert_uint_eq(families, sizeof(family_cases) / sizeof(*family_cases));
}
END_TEST

START_TEST(build_info_version_is_escaped)
{
    struct metrics_process_info info = info_sample;

    info.version = "1.0 \"beta\"\\x\n";
    ck_assert_uint_lt(metrics_render(m, &stats_sample, &info, text,
                                     RENDER_CAP), RENDER_CAP);
    assert_line("rcp_build_info{version=\"1.0 \\\"beta\\\"\\\\x\\n\"} 1");
}
END_TEST

/* ---- truncation --------------------------------------------------------- */

START_TEST(render_reports_needed_length_and_stays_in_cap)
{
    size_t full = render();
    char  *copy = strdup(text);
    size_t caps[] = { 0, 1, 2, full / 2, full - 1, full };

    ck_assert_ptr_nonnull(copy);
    for (size_t i = 0; i < sizeof(caps) / sizeof(*caps); i++) {
        memset(text, '#', RENDER_CAP);
        ck_assert_uint_eq(metrics_render(m, &stats_sample, &info_sample,
                                         caps[i] == 0 ? NULL : text,
                                         caps[i]), full);
        for (size_t k = caps[i]; k < full + 1; k++) {
            ck_assert_msg(text[k] == '#', "cap %zu: byte %zu written",
                          caps[i], k);
        }
        if (caps[i] > 0) {
            /* What fits is the start of the full text, NUL-terminated. */
            ck_assert_uint_eq(strlen(text), caps[i] - 1);
            ck_assert_mem_eq(text, copy, caps[i] - 1);
        }
    }
    memset(text, '#', RENDER_CAP);
    ck_assert_uint_eq(metrics_render(m, &stats_sample, &info_sample, text,
                                     full + 1), full);
    ck_assert_str_eq(text, copy);
    free(copy);
}
END_TEST

static Suite *
metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc;

    tc = tcase_create("create");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, create_rejects_zero_slots);
    tcase_add_test(tc, create_zeroes_every_slot);
    tcase_add_test(tc, slots_are_shared_with_forked_children);
    suite_add_tcase(s, tc);

    tc = tcase_create("counters");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, counters_sum_over_slots);
    tcase_add_test(tc, reap_zeroes_connections_and_keeps_counters);
    tcase_add_test(tc, cluster_gauges_take_the_freshest_map);
    tcase_add_test(tc, tracking_state_over_slots);
    tcase_add_test(tc, tracking_late_heartbeat_is_down);
    tcase_add_test(tc, tracking_held_by_supervisor_is_down);
    tcase_add_test(tc, nodes_view_freshest_list_worst_state);
    tcase_add_test(tc, node_addr_is_cut_to_fit);
    tcase_add_test(tc, every_protocol_code_pair_is_listed_even_at_zero);
    tcase_add_test(tc, a_misfiled_pair_is_still_shown);
    suite_add_tcase(s, tc);

    tc = tcase_create("code_from_status");
    tcase_add_loop_test(tc, code_from_status, 0,
                        sizeof(code_cases) / sizeof(*code_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("histogram");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, histogram_buckets_are_cumulative, 0,
                        sizeof(bucket_cases) / sizeof(*bucket_cases));
    tcase_add_test(tc, histogram_sums_slots_cumulatively);
    tcase_add_test(tc, histogram_inf_never_below_buckets);
    suite_add_tcase(s, tc);

    tc = tcase_create("families");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, family_is_rendered, 0,
                        sizeof(family_cases) / sizeof(*family_cases));
    tcase_add_test(tc, no_family_beyond_the_table);
    tcase_add_test(tc, build_info_version_is_escaped);
    suite_add_tcase(s, tc);

    tc = tcase_create("truncation");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, render_reports_needed_length_and_stays_in_cap);
    suite_add_tcase(s, tc);

    return s;
}

/* Prints an exposition with every series non-zero, for promtool. */
static int
render_sample(void)
{
    struct metrics *sample;
    size_t          n;
    int             rc;

    rc = metrics_create(2, &sample);
    if (rc != 0) {
        fprintf(stderr, "metrics_create: %s\n", strerror(-rc));
        return 1;
    }
    for (uint32_t i = 0; i < 2; i++) {
        struct metrics_slot_shm *s = metrics_slot(sample, i);

        for (int c = 0; c < METRICS_CODE_COUNT; c++) {
            metrics_count_request(s, c < METRICS_CODE_RESP_OK
                                     ? METRICS_PROTO_HTTP
                                     : METRICS_PROTO_RESP,
                                  (enum metrics_code) c);
        }
        for (int k = 0; k < METRICS_BACKEND_ERROR_COUNT; k++) {
            metrics_count_backend_error(s, (enum metrics_backend_error) k);
        }
        for (uint64_t us = 50; us < 3000000; us *= 3) {
            metrics_observe_backend(s, us);
        }
        metrics_add_connections(s, 2);
    }
    n = metrics_render(sample, &stats_sample, &info_sample, NULL, 0);
    text = malloc(n + 1);
    if (text == NULL) {
        metrics_destroy(sample);
        return 1;
    }
    metrics_render(sample, &stats_sample, &info_sample, text, n + 1);
    rc = fwrite(text, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
    free(text);
    metrics_destroy(sample);
    return rc;
}

int
main(int argc, char **argv)
{
    SRunner *sr;
    int      failed;

    if (argc == 2 && strcmp(argv[1], "--render") == 0) {
        return render_sample();
    }
    sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
