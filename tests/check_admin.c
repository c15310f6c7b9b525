/*
 * check_admin: the admin port's route table (method and path to status,
 * Allow, Content-Type, body), the health JSON with Redis up and down, the
 * keys flush and delete receive (decoded, any byte), busy-cache replies,
 * and the buffer contract (nothing runs below ADMIN_REPLY_MIN; /metrics
 * asks for more and a retry gives the whole text), and the status page's
 * HTML: each number in its element, log lines escaped, a long page asks
 * for a bigger buffer.
 *
 * Every reply is parsed back and checked for HTTP/1.1 framing: status line,
 * Content-Length equal to the body sent (none on HEAD, none at all on 204)
 * and the Connection header.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

#define REPLY_CAP (64 * 1024)

/* Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example date. */
#define RFC_EXAMPLE_TIME ((time_t) 784111777)

struct fake {
    int                  flushes;
    int                  deletes;
    int                  healths;
    int                  renders;
    int                  statuses;
    struct admin_status  status;
    enum admin_action_rc flush_rc;
    enum admin_action_rc delete_rc;
    struct admin_health  health;
    const char          *metrics_text;
    char                 key[256];
    size_t               key_len;
};

static struct fake fake;
static char        reply[REPLY_CAP];

static enum admin_action_rc
fake_flush(void *ctx)
{
    struct fake *f = ctx;

    f->flushes++;
    return f->flush_rc;
}

static enum admin_action_rc
fake_delete(void *ctx, const void *key, size_t key_len)
{
    struct fake *f = ctx;

    f->deletes++;
    ck_assert_uint_le(key_len, sizeof(f->key));
    memcpy(f->key, key, key_len);
    f->key_len = key_len;
    return f->delete_rc;
}

static void
fake_health(void *ctx, struct admin_health *out)
{
    struct fake *f = ctx;

    f->healths++;
    *out = f->health;
}

static size_t
fake_metrics(void *ctx, char *buf, size_t cap)
{
    struct fake *f = ctx;
    int          n;

    f->renders++;
    n = snprintf(buf, cap, "%s", f->metrics_text);
    ck_assert_int_ge(n, 0);
    return (size_t) n;
}

static void
fake_status(void *ctx, struct admin_status *out)
{
    struct fake *f = ctx;

    f->statuses++;
    *out = f->status;
}

static const struct admin_ops fake_ops = {
    .flush = fake_flush,
    .delete_key = fake_delete,
    .health = fake_health,
    .metrics = fake_metrics,
    .status = fake_status,
    .ctx = &fake,
};

static void
setup(void)
{
    memset(&fake, 0, sizeof(fake));
    fake.flush_rc = ADMIN_ACTION_DONE;
    fake.delete_rc = ADMIN_ACTION_DONE;
    fake.health = (struct admin_health) {
        .redis_up = true, .workers = 3, .entries = 42,
    };
    fake.metrics_text = "# HELP rcp_workers x\n# TYPE rcp_workers gauge\n"
                        "rcp_workers 3\n";
    fake.status = (struct admin_status) {
        .version = "0.1.0", .uptime_seconds = 3725, .workers_alive = 2,
        .workers_configured = 2, .worker_restarts = 1, .redis_up = true,
        .redis_addr = "127.0.0.1:6379", .hits = 3, .misses = 1,
        .entries = 42, .capacity_entries = 10000, .bytes = 4200,
        .capacity_bytes = 67108864, .connections = 5, .max_clients = 1024,
        .backend_unreachable = 7, .backend_timeout = 8, .backend_reply = 9,
        .backend_tls = 10,
    };
    memset(reply, 0, sizeof(reply));
}

/* A reply taken apart. */
struct parsed {
    int         status;
    const char *head;               /* points into reply */
    size_t      head_len;           /* up to and including CRLFCRLF */
    const char *body;
    size_t      body_len;
};

static struct parsed
parse_reply(size_t len)
{
    struct parsed p;
    const char   *end;

    ck_assert_uint_lt(len, sizeof(reply));
    reply[len] = '\0';
    ck_assert_msg(sscanf(reply, "HTTP/1.1 %d ", &p.status) == 1,
                  "status line: %.40s", reply);
    end = strstr(reply, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    p.head = reply;
    p.head_len = (size_t) (end - reply) + 4;
    p.body = reply + p.head_len;
    p.body_len = len - p.head_len;
    return p;
}

/* The value of header name, copied into out; false when absent. */
static bool
header(const struct parsed *p, const char *name, char *out, size_t out_cap)
{
    char        want[64];
    const char *at;
    const char *eol;

    snprintf(want, sizeof(want), "\r\n%s: ", name);
    at = strstr(p->head, want);
    if (at == NULL || (size_t) (at - p->head) >= p->head_len) {
        return false;
    }
    at += strlen(want);
    eol = strstr(at, "\r\n");
    ck_assert_ptr_nonnull(eol);
    ck_assert_uint_lt((size_t) (eol - at), out_cap);
    memcpy(out, at, (size_t) (eol - at));
    out[eol - at] = '\0';
    return true;
}

static size_t
handle(enum http_method method, const char *path, bool keep_alive,
       int *status)
{
    struct admin_request req = {
        .method = method,
        .path = path,
        .path_len = strlen(path),
        .keep_alive = keep_alive,
        .now = RFC_EXAMPLE_TIME,
    };

    return admin_handle(&req, &fake_ops, reply, sizeof(reply) - 1, status);
}

/* ---- routing table ----------------------------------------------------- */

static const char prom[] = "text/plain; version=0.0.4; charset=utf-8";
static const char json[] = "application/json";
static const char text[] = "text/plain; charset=utf-8";
static const char html[] = "text/html; charset=utf-8";

static const struct route_case {
    enum http_method method;
    const char      *path;
    int              status;
    const char      *allow;         /* NULL: no Allow header */
    const char      *content_type;  /* NULL: no Content-Type, no body */
    const char      *body;          /* substring of the GET body; NULL: none
                                       sent (HEAD) */
    int              flushes;
    int              deletes;
    const char      *why;
} route_cases[] = {
    { HTTP_METHOD_GET, "/health", 200, NULL, json, "\"status\":\"ok\"",
      0, 0, "health" },
    { HTTP_METHOD_HEAD, "/health", 200, NULL, json, NULL, 0, 0,
      "HEAD health: headers, no body" },
    { HTTP_METHOD_GET, "/metrics", 200, NULL, prom, "rcp_workers 3\n",
      0, 0, "metrics" },
    { HTTP_METHOD_HEAD, "/metrics", 200, NULL, prom, NULL, 0, 0,
      "HEAD metrics" },
    { HTTP_METHOD_POST, "/flush", 204, NULL, NULL, NULL, 1, 0, "flush" },
    { HTTP_METHOD_DELETE, "/cache/foo", 204, NULL, NULL, NULL, 0, 1,
      "delete one key" },
    { HTTP_METHOD_DELETE, "/cache/%2F", 204, NULL, NULL, NULL, 0, 1,
      "an escaped slash is a key" },
    { HTTP_METHOD_DELETE, "/cache/", 400, NULL, text, "empty key", 0, 0,
      "no key" },
    { HTTP_METHOD_DELETE, "/cache/%zz", 400, NULL, text, "percent-escape",
      0, 0, "bad hex in escape" },
    { HTTP_METHOD_DELETE, "/cache/a%4", 400, NULL, text, "percent-escape",
      0, 0, "escape cut short" },
    { HTTP_METHOD_DELETE, "/cache/%", 400, NULL, text, "percent-escape",
      0, 0, "lone percent" },
    { HTTP_METHOD_DELETE, "/cache", 404, NULL, text, "not found", 0, 0,
      "the prefix needs its slash" },
    { HTTP_METHOD_GET, "/cache/foo", 405, "DELETE", text,
      "method not allowed", 0, 0, "keys are not read on the admin port" },
    { HTTP_METHOD_POST, "/cache/foo", 405, "DELETE", text,
      "method not allowed", 0, 0, "POST on a key" },
    { HTTP_METHOD_GET, "/cache/%zz", 405, "DELETE", text,
      "method not allowed", 0, 0, "method before key" },
    { HTTP_METHOD_POST, "/health", 405, "GET, HEAD", text,
      "method not allowed", 0, 0, "health is read-only" },
    { HTTP_METHOD_PUT, "/metrics", 405, "GET, HEAD", text,
      "method not allowed", 0, 0, "PUT metrics" },
    { HTTP_METHOD_OTHER, "/metrics", 405, "GET, HEAD", text,
      "method not allowed", 0, 0, "a method we do not know" },
    { HTTP_METHOD_DELETE, "/health", 405, "GET, HEAD", text,
      "method not allowed", 0, 0, "DELETE health" },
    { HTTP_METHOD_GET, "/flush", 405, "POST", text, "method not allowed",
      0, 0, "a GET must not flush" },
    { HTTP_METHOD_HEAD, "/flush", 405, "POST", text, NULL, 0, 0,
      "HEAD flush: 405 without a body" },
    { HTTP_METHOD_DELETE, "/flush", 405, "POST", text, "method not allowed",
      0, 0, "DELETE flush" },
    { HTTP_METHOD_GET, "/", 200, NULL, html, "<h1>redis-cache-proxy</h1>",
      0, 0, "the status page" },
    { HTTP_METHOD_HEAD, "/", 200, NULL, html, NULL, 0, 0,
      "HEAD status page" },
    { HTTP_METHOD_POST, "/", 405, "GET, HEAD", text, "method not allowed",
      0, 0, "the status page is read-only" },
    { HTTP_METHOD_GET, "//", 404, NULL, text, "not found", 0, 0,
      "root matches exactly" },
    { HTTP_METHOD_GET, "/health/", 404, NULL, text, "not found", 0, 0,
      "trailing slash" },
    { HTTP_METHOD_GET, "/HEALTH", 404, NULL, text, "not found", 0, 0,
      "paths are case-sensitive" },
    { HTTP_METHOD_GET, "/h%65alth", 404, NULL, text, "not found", 0, 0,
      "paths match as sent, not decoded" },
    { HTTP_METHOD_GET, "/metricsx", 404, NULL, text, "not found", 0, 0,
      "longer than a route" },
    { HTTP_METHOD_GET, "/metric", 404, NULL, text, "not found", 0, 0,
      "shorter than a route" },
    { HTTP_METHOD_POST, "/flush/", 404, NULL, text, "not found", 0, 0,
      "flush takes no key" },
    { HTTP_METHOD_HEAD, "/nothing", 404, NULL, text, NULL, 0, 0,
      "HEAD 404: no body" },
    { HTTP_METHOD_GET, "", 404, NULL, text, "not found", 0, 0,
      "empty path" },
};

static void
check_route(const struct route_case *c, bool keep_alive)
{
    struct parsed p;
    char          value[128];
    int           status = -1;
    size_t        len;

    len = handle(c->method, c->path, keep_alive, &status);
    ck_assert_uint_le(len, sizeof(reply) - 1);
    p = parse_reply(len);
    ck_assert_msg(p.status == c->status && status == c->status,
                  "%s: got %d (out %d), want %d", c->why, p.status, status,
                  c->status);

    if (c->allow == NULL) {
        ck_assert_msg(!header(&p, "Allow", value, sizeof(value)),
                      "%s: Allow sent", c->why);
    } else {
        ck_assert_msg(header(&p, "Allow", value, sizeof(value)),
                      "%s: no Allow", c->why);
        ck_assert_str_eq(value, c->allow);
    }

    if (c->content_type == NULL) {
        ck_assert_msg(!header(&p, "Content-Type", value, sizeof(value)),
                      "%s: Content-Type on a body-less reply", c->why);
        ck_assert_msg(!header(&p, "Content-Length", value, sizeof(value)),
                      "%s: Content-Length on 204", c->why);
        ck_assert_uint_eq(p.body_len, 0);
    } else {
        unsigned long long length;

        ck_assert(header(&p, "Content-Type", value, sizeof(value)));
        ck_assert_str_eq(value, c->content_type);
        ck_assert(header(&p, "Content-Length", value, sizeof(value)));
        length = strtoull(value, NULL, 10);
        ck_assert_uint_gt(length, 0);
        if (c->method == HTTP_METHOD_HEAD) {
            ck_assert_msg(p.body_len == 0, "%s: body on HEAD", c->why);
        } else {
            ck_assert_uint_eq(p.body_len, length);
            ck_assert_msg(strstr(p.body, c->body) != NULL,
                          "%s: body lacks %s: %s", c->why, c->body, p.body);
        }
    }

    ck_assert(header(&p, "Connection", value, sizeof(value)));
    ck_assert_str_eq(value, keep_alive ? "keep-alive" : "close");
    ck_assert(header(&p, "Date", value, sizeof(value)));
    ck_assert_str_eq(value, "Sun, 06 Nov 1994 08:49:37 GMT");

    ck_assert_int_eq(fake.flushes, c->flushes);
    ck_assert_int_eq(fake.deletes, c->deletes);
}

START_TEST(route_keep_alive)
{
    check_route(&route_cases[_i], true);
}
END_TEST

START_TEST(route_close)
{
    check_route(&route_cases[_i], false);
}
END_TEST

START_TEST(head_length_is_the_get_length)
{
    static const char *const paths[] = { "/health", "/metrics", "/nothing",
                                         "/" };
    char                     get_len[32];
    char                     head_len[32];
    struct parsed            p;
    int                      status;

    for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
        p = parse_reply(handle(HTTP_METHOD_GET, paths[i], true, &status));
        ck_assert(header(&p, "Content-Length", get_len, sizeof(get_len)));
        p = parse_reply(handle(HTTP_METHOD_HEAD, paths[i], true, &status));
        ck_assert(header(&p, "Content-Length", head_len, sizeof(head_len)));
        ck_assert_str_eq(get_len, head_len);
    }
}
END_TEST

/* ---- health ------------------------------------------------------------ */

static const struct health_case {
    struct admin_health health;
    int                 status;
    const char         *body;
    const char         *why;
} health_cases[] = {
    { { .redis_up = true, .workers = 3, .entries = 42, .cluster = false, .cluster_nodes = 0, .cluster_slots_covered = 0, .cluster_nodes_down = 0 }, 200,
      "{\"status\":\"ok\",\"redis\":\"up\",\"workers\":3,\"entries\":42}\n",
      "Redis up" },
    { { .redis_up = true, .workers = 2, .entries = 7, .cluster = true, .cluster_nodes = 3, .cluster_slots_covered = 16384, .cluster_nodes_down = 0 }, 200,
      "{\"status\":\"ok\",\"redis\":\"up\",\"workers\":2,\"entries\":7,"
      "\"cluster\":{\"nodes\":3,\"nodes_down\":0,\"slots_covered\":16384,"
      "\"slots\":16384,\"members\":[],\"down\":[]}}\n",
      "a cluster with every slot covered" },
    { { .redis_up = false, .workers = 2, .entries = 7, .cluster = true, .cluster_nodes = 2, .cluster_slots_covered = 12288, .cluster_nodes_down = 1 }, 503,
      "{\"status\":\"degraded\",\"redis\":\"down\",\"workers\":2,"
      "\"entries\":7,\"cluster\":{\"nodes\":2,\"nodes_down\":1,"
      "\"slots_covered\":12288,\"slots\":16384,\"members\":[],\"down\":[]}}\n",
      "a cluster with slots uncovered: 503" },
    { { .redis_up = false, .workers = UINT32_MAX, .entries = UINT64_MAX, .cluster = true, .cluster_nodes = UINT64_MAX, .cluster_slots_covered = UINT64_MAX, .cluster_nodes_down = UINT64_MAX }, 503,
      "{\"status\":\"degraded\",\"redis\":\"down\",\"workers\":4294967295,"
      "\"entries\":18446744073709551615,\"cluster\":{\"nodes\":"
      "18446744073709551615,\"nodes_down\":18446744073709551615,"
      "\"slots_covered\":18446744073709551615,\"slots\":16384,\"members\":[],\"down\":[]}}\n",
      "widest cluster numbers fit" },
    { { .redis_up = false, .workers = 3, .entries = 42, .cluster = false, .cluster_nodes = 0, .cluster_slots_covered = 0, .cluster_nodes_down = 0 }, 503,
      "{\"status\":\"degraded\",\"redis\":\"down\",\"workers\":3,"
      "\"entries\":42}\n",
      "Redis down: 503, still says what it knows" },
    { { .redis_up = true, .workers = 0, .entries = 0, .cluster = false, .cluster_nodes = 0, .cluster_slots_covered = 0, .cluster_nodes_down = 0 }, 200,
      "{\"status\":\"ok\",\"redis\":\"up\",\"workers\":0,\"entries\":0}\n",
      "no worker alive is still reported, not hidden" },
    { { .redis_up = false, .workers = UINT32_MAX, .entries = UINT64_MAX, .cluster = false, .cluster_nodes = 0, .cluster_slots_covered = 0, .cluster_nodes_down = 0 }, 503,
      "{\"status\":\"degraded\",\"redis\":\"down\",\"workers\":4294967295,"
      "\"entries\":18446744073709551615}\n",
      "widest numbers fit" },
    { { .redis_up = true, .workers = 2, .entries = 5, .tracking = "up" }, 200,
      "{\"status\":\"ok\",\"redis\":\"up\",\"workers\":2,\"entries\":5,"
      "\"tracking\":\"up\"}\n",
      "--tracking: invalidations flow" },
    { { .redis_up = true, .workers = 2, .entries = 5, .tracking = "down" },
      200,
      "{\"status\":\"ok\",\"redis\":\"up\",\"workers\":2,\"entries\":5,"
      "\"tracking\":\"down\"}\n",
      "tracking down: Redis answers, still healthy" },
    { { .redis_up = true, .workers = 2, .entries = 7, .cluster = true,
        .cluster_nodes = 3, .cluster_slots_covered = 16384,
        .tracking = "off" }, 200,
      "{\"status\":\"ok\",\"redis\":\"up\",\"workers\":2,\"entries\":7,"
      "\"tracking\":\"off\",\"cluster\":{\"nodes\":3,\"nodes_down\":0,"
      "\"slots_covered\":16384,\"slots\":16384,\"members\":[],"
      "\"down\":[]}}\n",
      "tracking's state before the cluster's" },
    { { .redis_up = false, .workers = 2, .entries = 7, .cluster = true,
        .cluster_nodes = 2, .cluster_slots_covered = 16384,
        .cluster_nodes_down = 1,
        .nodes = { { "10.0.0.1:7000", 8192, false, "up" },
                   { "10.0.0.2:7000", 8192, false, "down" },
                   { "10.0.0.3:7000", 0, true, "connecting" } },
        .nnodes = 3, .nodes_more = 2 }, 503,
      "{\"status\":\"degraded\",\"redis\":\"down\",\"workers\":2,"
      "\"entries\":7,\"cluster\":{\"nodes\":2,\"nodes_down\":1,"
      "\"slots_covered\":16384,\"slots\":16384,\"members\":["
      "{\"addr\":\"10.0.0.1:7000\",\"role\":\"primary\",\"slots\":8192,"
      "\"state\":\"up\"},{\"addr\":\"10.0.0.2:7000\",\"role\":\"primary\","
      "\"slots\":8192,\"state\":\"down\"},{\"addr\":\"10.0.0.3:7000\","
      "\"role\":\"replica\",\"slots\":0,\"state\":\"connecting\"}],"
      "\"down\":[\"10.0.0.2:7000\"],\"members_not_listed\":2}}\n",
      "a cluster names which nodes are up and which are down" },
    { { .redis_up = true, .workers = 1, .entries = 0,
        .sentinel_master = "my\"master",
        .nodes = { { "h\\\x01:6379", 0, false, "up" } }, .nnodes = 1 },
      200,
      "{\"status\":\"ok\",\"redis\":\"up\",\"workers\":1,\"entries\":0,"
      "\"sentinel\":{\"master\":\"my\\\"master\",\"members\":[{\"addr\":"
      "\"h\\\\\\u0001:6379\",\"state\":\"up\"}],\"down\":[]}}\n",
      "Sentinel: the primary in use, strings JSON-escaped" },
};

START_TEST(health_json)
{
    const struct health_case *c = &health_cases[_i];
    struct parsed             p;
    int                       status;

    fake.health = c->health;
    p = parse_reply(handle(HTTP_METHOD_GET, "/health", true, &status));
    ck_assert_msg(p.status == c->status, "%s", c->why);
    ck_assert_int_eq(status, c->status);
    ck_assert_str_eq(p.body, c->body);
    ck_assert_int_eq(fake.healths, 1);
}
END_TEST

/* ---- delete keys -------------------------------------------------------- */

static const struct key_case {
    const char *path;
    const char *key;
    size_t      key_len;
    const char *why;
} key_cases[] = {
    { "/cache/foo", "foo", 3, "plain" },
    { "/cache/a%00b", "a\0b", 3, "NUL inside a key" },
    { "/cache/%00", "\0", 1, "a key that is one NUL" },
    { "/cache/a%2Fb", "a/b", 3, "escaped slash" },
    { "/cache/a%2fb", "a/b", 3, "lower-case hex" },
    { "/cache/a/b", "a/b", 3, "a raw slash stays in the key" },
    { "/cache//", "/", 1, "a key that is one slash" },
    { "/cache/%41%42", "AB", 2, "all escaped" },
    { "/cache/%e2%82%ac", "\xe2\x82\xac", 3, "UTF-8 bytes" },
    { "/cache/%ff", "\xff", 1, "a high byte" },
    { "/cache/a+b", "a+b", 3, "plus is not a space in a path" },
    { "/cache/%25", "%", 1, "an escaped percent" },
};

START_TEST(delete_gets_decoded_key)
{
    const struct key_case *c = &key_cases[_i];
    int                    status;
    size_t                 len;

    len = handle(HTTP_METHOD_DELETE, c->path, true, &status);
    ck_assert_uint_le(len, sizeof(reply) - 1);
    ck_assert_int_eq(status, 204);
    ck_assert_int_eq(fake.deletes, 1);
    ck_assert_msg(fake.key_len == c->key_len, "%s: length %zu", c->why,
                  fake.key_len);
    ck_assert_mem_eq(fake.key, c->key, c->key_len);
}
END_TEST

/* ---- action outcomes --------------------------------------------------- */

static const struct action_case {
    enum http_method     method;
    const char          *path;
    enum admin_action_rc rc;
    int                  status;
    bool                 retry_after;
    const char          *why;
} action_cases[] = {
    { HTTP_METHOD_POST, "/flush", ADMIN_ACTION_DONE, 204, false, "flushed" },
    { HTTP_METHOD_POST, "/flush", ADMIN_ACTION_BUSY, 503, true,
      "cache recovering: nothing flushed, say so" },
    { HTTP_METHOD_DELETE, "/cache/k", ADMIN_ACTION_DONE, 204, false,
      "deleted" },
    { HTTP_METHOD_DELETE, "/cache/k", ADMIN_ACTION_ABSENT, 204, false,
      "absent: still 204, as DEL is idempotent" },
    { HTTP_METHOD_DELETE, "/cache/k", ADMIN_ACTION_BUSY, 503, true,
      "cache busy: nothing deleted, say so" },
};

START_TEST(action_outcome)
{
    const struct action_case *c = &action_cases[_i];
    struct parsed             p;
    char                      value[32];
    int                       status;

    fake.flush_rc = c->rc;
    fake.delete_rc = c->rc;
    p = parse_reply(handle(c->method, c->path, true, &status));
    ck_assert_msg(p.status == c->status, "%s: %d", c->why, p.status);
    ck_assert_int_eq(status, c->status);
    ck_assert_int_eq(fake.flushes + fake.deletes, 1);
    if (c->retry_after) {
        ck_assert(header(&p, "Retry-After", value, sizeof(value)));
        ck_assert_str_eq(value, "1");
        ck_assert(header(&p, "Content-Length", value, sizeof(value)));
        ck_assert_uint_eq(strtoull(value, NULL, 10), p.body_len);
    } else {
        ck_assert(!header(&p, "Retry-After", value, sizeof(value)));
        ck_assert_uint_eq(p.body_len, 0);
    }
}
END_TEST

/* ---- buffer contract ---------------------------------------------------- */

START_TEST(small_buffer_runs_nothing)
{
    struct admin_request req = {
        .method = HTTP_METHOD_POST, .path = "/flush", .path_len = 6,
        .keep_alive = true, .now = RFC_EXAMPLE_TIME,
    };
    int                  status = -1;

    memset(reply, '#', sizeof(reply));
    ck_assert_uint_eq(admin_handle(&req, &fake_ops, reply,
                                   ADMIN_REPLY_MIN - 1, &status),
                      ADMIN_REPLY_MIN);
    ck_assert_int_eq(fake.flushes, 0);
    ck_assert_int_eq(status, -1);
    ck_assert_int_eq(reply[0], '#');
    ck_assert_uint_eq(admin_error(400, RFC_EXAMPLE_TIME, reply, 10),
                      ADMIN_REPLY_MIN);
    ck_assert_int_eq(reply[0], '#');
}
END_TEST

START_TEST(big_metrics_asks_for_more_then_fits)
{
    static char          big[20000];
    struct admin_request req = {
        .method = _i == 0 ? HTTP_METHOD_GET : HTTP_METHOD_HEAD,
        .path = "/metrics", .path_len = 8, .keep_alive = false,
        .now = RFC_EXAMPLE_TIME,
    };
    struct parsed        p;
    char                 value[32];
    char                *buf;
    size_t               need;
    size_t               len;
    int                  status = -1;

    for (size_t i = 0; i < sizeof(big) - 1; i++) {
        big[i] = (char) ('a' + i % 26);
    }
    big[sizeof(big) - 1] = '\0';
    fake.metrics_text = big;

    buf = malloc(4096);
    ck_assert_ptr_nonnull(buf);
    need = admin_handle(&req, &fake_ops, buf, 4096, &status);
    ck_assert_uint_gt(need, 4096);
    ck_assert_int_eq(status, -1);
    free(buf);

    buf = malloc(need);
    ck_assert_ptr_nonnull(buf);
    len = admin_handle(&req, &fake_ops, buf, need, &status);
    ck_assert_uint_le(len, need);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(fake.renders, 2);
    memcpy(reply, buf, len);
    free(buf);

    p = parse_reply(len);
    ck_assert(header(&p, "Content-Length", value, sizeof(value)));
    ck_assert_uint_eq(strtoull(value, NULL, 10), sizeof(big) - 1);
    if (req.method == HTTP_METHOD_GET) {
        ck_assert_uint_eq(p.body_len, sizeof(big) - 1);
        ck_assert_mem_eq(p.body, big, sizeof(big) - 1);
    } else {
        ck_assert_uint_eq(p.body_len, 0);
    }
}
END_TEST

/* ---- parser errors ------------------------------------------------------ */

static const struct error_case {
    int         status;
    const char *line;
} error_cases[] = {
    { 400, "HTTP/1.1 400 Bad Request\r\n" },
    { 408, "HTTP/1.1 408 Request Timeout\r\n" },
    { 413, "HTTP/1.1 413 Content Too Large\r\n" },
    { 414, "HTTP/1.1 414 URI Too Long\r\n" },
    { 431, "HTTP/1.1 431 Request Header Fields Too Large\r\n" },
    { 501, "HTTP/1.1 501 Not Implemented\r\n" },
    { 505, "HTTP/1.1 505 HTTP Version Not Supported\r\n" },
};

START_TEST(parser_error_reply_closes)
{
    const struct error_case *c = &error_cases[_i];
    struct parsed            p;
    char                     value[32];
    size_t                   len;

    len = admin_error(c->status, RFC_EXAMPLE_TIME, reply, sizeof(reply) - 1);
    p = parse_reply(len);
    ck_assert_int_eq(p.status, c->status);
    ck_assert_int_eq(strncmp(reply, c->line, strlen(c->line)), 0);
    ck_assert(header(&p, "Connection", value, sizeof(value)));
    ck_assert_str_eq(value, "close");
    ck_assert(header(&p, "Content-Length", value, sizeof(value)));
    ck_assert_uint_eq(strtoull(value, NULL, 10), p.body_len);
    ck_assert_uint_gt(p.body_len, 0);
}
END_TEST

static const struct needs_health_case {
    enum http_method method;
    const char      *path;
    bool             needs;
    const char      *why;
} needs_health_cases[] = {
    { HTTP_METHOD_GET, "/health", true, "GET /health asks Redis" },
    { HTTP_METHOD_HEAD, "/health", true, "HEAD /health asks Redis too" },
    { HTTP_METHOD_POST, "/health", false, "405: no need to ask" },
    { HTTP_METHOD_GET, "/metrics", false, "other routes answer at once" },
    { HTTP_METHOD_GET, "/", true, "the status page shows Redis' state" },
    { HTTP_METHOD_HEAD, "/", true, "HEAD / as GET /" },
    { HTTP_METHOD_POST, "/", false, "405 on the status page" },
    { HTTP_METHOD_GET, "/h%65alth", false, "paths match as sent" },
    { HTTP_METHOD_GET, "/healthz", false, "no prefix match" },
};

START_TEST(test_needs_health)
{
    const struct needs_health_case *tc = &needs_health_cases[_i];
    struct admin_request            req = {
        .method = tc->method,
        .path = tc->path,
        .path_len = strlen(tc->path),
    };

    ck_assert_msg(admin_needs_health(&req) == tc->needs, "%s", tc->why);
}
END_TEST

/* ---- status page --------------------------------------------------------- */

static const char *
status_page(void)
{
    static char page[REPLY_CAP];
    size_t      n = admin_status_html(&fake.status, page, sizeof(page) - 1);

    ck_assert_uint_lt(n, sizeof(page) - 1);
    page[n] = '\0';
    return page;
}

static void
assert_has(const char *page, const char *want)
{
    ck_assert_msg(strstr(page, want) != NULL, "page lacks %s:\n%s", want,
                  page);
}

static const struct status_case {
    const char *want;               /* substring of the page */
    const char *why;
} status_cases[] = {
    { "<td id=\"version\">0.1.0</td>", "version" },
    { "<td id=\"uptime\" data-seconds=\"3725\">1h 2m 5s</td>", "uptime" },
    { "<span id=\"workers\">2</span> of 2 running", "workers" },
    { "<span id=\"restarts\">1</span> restarted", "restarts" },
    { "<span id=\"redis\" class=\"up\">up</span> 127.0.0.1:6379",
      "Redis state and address" },
    { "data-hits=\"3\" data-misses=\"1\">75.0%</td>", "hit ratio" },
    { "<span id=\"entries\">42</span> of <span id=\"capacity-entries\">"
      "10000</span> (0.4%)", "entries against capacity" },
    { "<span id=\"bytes\">4200</span> of <span id=\"capacity-bytes\">"
      "67108864</span>", "bytes against capacity" },
    { "<span id=\"connections\">5</span> of <span id=\"max-clients\">"
      "1024</span>", "connections against max-clients" },
    { "<td id=\"cache\" class=\"up\">ok</td>", "cache state" },
    { "unreachable <span id=\"errors-unreachable\">7</span>, timeout "
      "<span id=\"errors-timeout\">8</span>, reply <span "
      "id=\"errors-reply\">9</span>, tls <span id=\"errors-tls\">10</span>",
      "backend errors by kind" },
    { "<p id=\"errors\" class=\"none\">none since start</p>",
      "no error yet" },
    { "<a href=\"/metrics\">", "links to the machine-readable pages" },
};

START_TEST(status_shows_each_number)
{
    assert_has(status_page(), status_cases[_i].want);
}
END_TEST

START_TEST(status_has_no_script)
{
    const char *page = status_page();

    ck_assert_ptr_null(strstr(page, "<script"));
    ck_assert_ptr_null(strstr(page, "http://"));   /* loads nothing */
    ck_assert_ptr_null(strstr(page, "https://"));
}
END_TEST

START_TEST(status_redis_down_and_poisoned)
{
    const char *page;

    fake.status.redis_up = false;
    fake.status.poisoned = true;
    fake.status.hits = 0;
    fake.status.misses = 0;
    fake.status.uptime_seconds = 2 * 86400 + 3 * 3600 + 4 * 60 + 5;
    page = status_page();
    assert_has(page, "<span id=\"redis\" class=\"down\">down</span>");
    assert_has(page, "<td id=\"cache\" class=\"down\">poisoned");
    assert_has(page, "data-misses=\"0\">no lookups yet</td>");
    assert_has(page, ">2d 3h 4m</td>");
}
END_TEST

START_TEST(status_errors_are_escaped_newest_first)
{
    const char *page;

    fake.status.errors[0] = "warn worker 1[9]: redis <x> & \"y\"";
    fake.status.errors[1] = "error supervisor[8]: older";
    fake.status.nerrors = 2;
    page = status_page();
    assert_has(page, "<ol id=\"errors\">\n<li>warn worker 1[9]: redis "
                     "&lt;x&gt; &amp; &quot;y&quot;</li>\n"
                     "<li>error supervisor[8]: older</li>\n</ol>");
    ck_assert_ptr_null(strstr(page, "<x>"));
}
END_TEST

START_TEST(status_big_page_asks_for_more_then_fits)
{
    static char line[LOG_RECENT_TEXT];
    char       *buf;
    size_t      need;
    size_t      len;
    int         status = -1;
    struct admin_request req = {
        .method = HTTP_METHOD_GET, .path = "/", .path_len = 1,
        .keep_alive = true, .now = RFC_EXAMPLE_TIME,
    };

    /* Every byte escaped at its longest: the page passes 16 KiB. */
    memset(line, '"', sizeof(line) - 1);
    for (size_t i = 0; i < LOG_RECENT_MAX; i++) {
        fake.status.errors[i] = line;
    }
    fake.status.nerrors = LOG_RECENT_MAX;
    buf = malloc(REPLY_CAP);
    ck_assert_ptr_nonnull(buf);
    need = admin_handle(&req, &fake_ops, buf, 4096, &status);
    ck_assert_uint_gt(need, 4096);
    ck_assert_int_eq(status, -1);
    len = admin_handle(&req, &fake_ops, buf, need, &status);
    ck_assert_uint_le(len, need);
    ck_assert_int_eq(status, 200);
    ck_assert_int_eq(fake.flushes + fake.deletes, 0);
    ck_assert(len > 6 && memcmp(buf + len - 8, "</html>\n", 8) == 0);
    free(buf);
}
END_TEST

static Suite *
admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc;

    tc = tcase_create("routes");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, route_keep_alive, 0,
                        sizeof(route_cases) / sizeof(*route_cases));
    tcase_add_loop_test(tc, route_close, 0,
                        sizeof(route_cases) / sizeof(*route_cases));
    tcase_add_test(tc, head_length_is_the_get_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("health");
    tcase_add_loop_test(tc, test_needs_health, 0,
                        sizeof(needs_health_cases)
                            / sizeof(needs_health_cases[0]));
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, health_json, 0,
                        sizeof(health_cases) / sizeof(*health_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("delete_key");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, delete_gets_decoded_key, 0,
                        sizeof(key_cases) / sizeof(*key_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("actions");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, action_outcome, 0,
                        sizeof(action_cases) / sizeof(*action_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("buffer");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, small_buffer_runs_nothing);
    tcase_add_loop_test(tc, big_metrics_asks_for_more_then_fits, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("status_page");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, status_shows_each_number, 0,
                        sizeof(status_cases) / sizeof(*status_cases));
    tcase_add_test(tc, status_has_no_script);
    tcase_add_test(tc, status_redis_down_and_poisoned);
    tcase_add_test(tc, status_errors_are_escaped_newest_first);
    tcase_add_test(tc, status_big_page_asks_for_more_then_fits);
    suite_add_tcase(s, tc);

    tc = tcase_create("parser_errors");
    tcase_add_loop_test(tc, parser_error_reply_closes, 0,
                        sizeof(error_cases) / sizeof(*error_cases));
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(admin_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
