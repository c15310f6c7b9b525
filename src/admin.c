/*
 * admin: owns the admin port's route table and the bytes of its replies.
 *
 *   method + raw path
 *        |
 *        v
 *   route table --no path--> 404
 *        |  method not allowed --> 405 + Allow
 *        v
 *   /        -- status() --> 200, HTML (admin_status.c), rendered in
 *               place as /metrics is
 *   /health  -- health() --> 200 | 503, JSON
 *   /metrics -- metrics() --> 200, body rendered in place (see below)
 *   /flush   -- flush() --> 204 | 503 busy
 *   /cache/k -- decode k (400 on bad escape or empty) -- delete() -->
 *               204 | 503 busy
 *
 * Invariants: the caller's buffer is checked against ADMIN_REPLY_MIN
 * before any callback runs, and every reply but /metrics and / fits in
 * that, so
 * the only reply that can ask for a bigger buffer is one with no side
 * effect.  A HEAD reply carries the headers its GET would, no body; a 204
 * carries neither body nor Content-Length (RFC 9110 section 8.6).
 *
 * /metrics is rendered straight into the caller's buffer at offset
 * ADMIN_HEAD_MAX, the head is then built (it needs the body's length) and
 * the body slid down to sit right after it, so the text is never copied
 * through a second buffer.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "http_reply.h"
#include "buf.h"

/* Room kept in front of a rendered /metrics body for the head. */
#define ADMIN_HEAD_MAX 512

_Static_assert(ADMIN_HEAD_MAX < ADMIN_REPLY_MIN,
               "a /metrics body has room after the head");

enum admin_action {
    ADMIN_STATUS,
    ADMIN_HEALTH,
    ADMIN_METRICS,
    ADMIN_FLUSH,
    ADMIN_DELETE
};

#define ADMIN_M(method) (1u << (method))

static const struct admin_route {
    const char       *path;
    size_t            path_len;
    bool              prefix;  /* path is a prefix; the rest is a key */
    unsigned          methods; /* ADMIN_M() bits */
    const char       *allow;   /* the Allow header on a 405 */
    enum admin_action action;
} admin_routes[] = {
    { "/", 1, false, ADMIN_M(HTTP_METHOD_GET) | ADMIN_M(HTTP_METHOD_HEAD),
      "GET, HEAD", ADMIN_STATUS },
    { "/health", 7, false,
      ADMIN_M(HTTP_METHOD_GET) | ADMIN_M(HTTP_METHOD_HEAD), "GET, HEAD",
      ADMIN_HEALTH },
    { "/metrics", 8, false,
      ADMIN_M(HTTP_METHOD_GET) | ADMIN_M(HTTP_METHOD_HEAD), "GET, HEAD",
      ADMIN_METRICS },
    { "/flush", 6, false, ADMIN_M(HTTP_METHOD_POST), "POST", ADMIN_FLUSH },
    { "/cache/", 7, true, ADMIN_M(HTTP_METHOD_DELETE), "DELETE",
      ADMIN_DELETE },
};

static const char admin_text[] = "text/plain; charset=utf-8";
static const char admin_json[] = "application/json";
static const char admin_html[] = "text/html; charset=utf-8";
static const char admin_prometheus[] =
    "text/plain; version=0.0.4; charset=utf-8";

/* What one reply looks like, before it becomes bytes. */
struct admin_reply {
    int         status;
    const char *content_type; /* NULL: no body, no Content-Length */
    const char *body;         /* borrowed */
    size_t      body_len;
    const char *allow;       /* borrowed: NULL unless 405 */
    bool        retry_after; /* 503 busy: try again in a second */
    bool        head_only;   /* HEAD: headers of the GET, no body */
    bool        keep_alive;
};

/* The Date header; http_reply.c formats it (IMF-fixdate, our own month and
 * day names, so the process locale cannot change them). */
static void
admin_date(struct buf_fixed *o, time_t now)
{
    char date[HTTP_REPLY_DATE_LEN + 1];

    http_reply_format_date(now, date);
    buf_fixed_printf(o, "Date: %s\r\n", date);
}

static void
admin_head(struct buf_fixed *o, const struct admin_reply *r, time_t now)
{
    buf_fixed_printf(o, "HTTP/1.1 %d %s\r\n", r->status,
                     http_reply_reason(r->status));
    admin_date(o, now);
    if (r->content_type != NULL) {
        buf_fixed_printf(o, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                         r->content_type, r->body_len);
    }
    if (r->allow != NULL) {
        buf_fixed_printf(o, "Allow: %s\r\n", r->allow);
    }
    if (r->retry_after) {
        buf_fixed_printf(o, "Retry-After: 1\r\n");
    }
    buf_fixed_printf(o, "Connection: %s\r\n\r\n",
                     r->keep_alive ? "keep-alive" : "close");
}

/* Writes a whole reply whose body is already in memory. */
static size_t
admin_write(const struct admin_reply *r, time_t now, char *buf, size_t cap)
{
    struct buf_fixed o = { .buf = buf, .cap = cap, .len = 0 };

    admin_head(&o, r, now);
    if (r->content_type != NULL && !r->head_only) {
        buf_fixed_bytes(&o, r->body, r->body_len);
    }
    return o.len;
}

static void
admin_text_reply(struct admin_reply *r, int status, const char *text)
{
    r->status = status;
    r->content_type = admin_text;
    r->body = text;
    r->body_len = strlen(text);
}

static void
admin_action_reply(struct admin_reply *r, enum admin_action_rc rc)
{
    if (rc == ADMIN_ACTION_BUSY) {
        admin_text_reply(r, 503,
                         "cache busy (recovering or locked), "
                         "try again\n");
        r->retry_after = true;
        return;
    }
    r->status = 204;
    r->content_type = NULL;
}

/* The status page, as a renderer with /metrics' signature. */
static size_t
admin_status_page(const struct admin_ops *ops, char *buf, size_t cap)
{
    struct admin_status st;

    memset(&st, 0, sizeof(st));
    st.version = "";
    st.redis_addr = "";
    ops->status(ops->ctx, &st);
    return admin_status_html(&st, buf, cap);
}

static void admin_health(const struct admin_ops *ops, struct admin_reply *r,
                         struct buf_fixed *o);

/* A reply whose body (/metrics, /health or the status page) may be
 * large (a cluster's nodes): rendered
 * straight into buf after room for the head, then slid down. */
static size_t
admin_big(const struct admin_request *req, const struct admin_ops *ops,
          enum admin_action action, struct admin_reply *r, char *buf,
          size_t cap)
{
    char             head[ADMIN_HEAD_MAX];
    struct buf_fixed o = { .buf = head, .cap = sizeof(head), .len = 0 };
    size_t           room = cap - ADMIN_HEAD_MAX;
    size_t           body_len;

    if (action == ADMIN_METRICS) {
        body_len = ops->metrics(ops->ctx, buf + ADMIN_HEAD_MAX, room);
        r->content_type = admin_prometheus;
    } else if (action == ADMIN_HEALTH) {
        struct buf_fixed b = { .buf = buf + ADMIN_HEAD_MAX,
                               .cap = room,
                               .len = 0 };

        admin_health(ops, r, &b);
        body_len = b.len;
    } else {
        body_len = admin_status_page(ops, buf + ADMIN_HEAD_MAX, room);
        r->content_type = admin_html;
    }
    if (body_len >= room) {
        return ADMIN_HEAD_MAX + body_len + 1;
    }
    if (action != ADMIN_HEALTH) {
        r->status = 200;
    }
    r->body_len = body_len;
    admin_head(&o, r, req->now);
    /* The head is a status line and a few fixed headers. */
    assert(o.len < sizeof(head));
    if (!r->head_only) {
        memmove(buf + o.len, buf + ADMIN_HEAD_MAX, body_len);
    }
    memcpy(buf, head, o.len);
    return o.len + (r->head_only ? 0 : body_len);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void
admin_json_string(struct buf_fixed *o, const char *s)
{
    buf_fixed_bytes(o, "\"", 1);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            buf_fixed_printf(o, "\\%c", *s);
        } else if ((unsigned char) *s < 0x20) {
            buf_fixed_printf(o, "\\u%04x", (unsigned) (unsigned char) *s);
        } else {
            buf_fixed_bytes(o, s, 1);
        }
    }
    buf_fixed_bytes(o, "\"", 1);
}

/* "members":[{"addr":..,"role":..,"slots":..,"state":..},..],
 * "down":[addr,..]: which nodes are up and which are not. */
static void
admin_health_nodes(struct buf_fixed *o, const struct admin_health *h)
{
    bool first = true;

    buf_fixed_printf(o, "\"members\":[");
    for (uint32_t i = 0; i < h->nnodes; i++) {
        buf_fixed_printf(o, "%s{\"addr\":", i > 0 ? "," : "");
        admin_json_string(o, h->nodes[i].addr);
        if (h->cluster) {
            buf_fixed_printf(o, ",\"role\":\"%s\",\"slots\":%" PRIu32,
                             h->nodes[i].replica ? "replica" : "primary",
                             h->nodes[i].slots);
        }
        buf_fixed_printf(o, ",\"state\":\"%s\"}", h->nodes[i].state);
    }
    buf_fixed_printf(o, "],\"down\":[");
    for (uint32_t i = 0; i < h->nnodes; i++) {
        if (strcmp(h->nodes[i].state, "down") == 0) {
            buf_fixed_printf(o, "%s", first ? "" : ",");
            admin_json_string(o, h->nodes[i].addr);
            first = false;
        }
    }
    buf_fixed_printf(o, "]");
    if (h->nodes_more > 0) {
        buf_fixed_printf(o, ",\"members_not_listed\":%" PRIu32, h->nodes_more);
    }
}

/* The /health body into o; its status into r. */
static void
admin_health(const struct admin_ops *ops, struct admin_reply *r,
             struct buf_fixed *o)
{
    static struct admin_health h;

    memset(&h, 0, sizeof(h));
    ops->health(ops->ctx, &h);
    buf_fixed_printf(o,
                     "{\"status\":\"%s\",\"redis\":\"%s\",\"workers\":%" PRIu32
                     ",\"entries\":%" PRIu64,
                     h.redis_up ? "ok" : "degraded",
                     h.redis_up ? "up" : "down", h.workers, h.entries);
    if (h.tracking != NULL) {
        /* --tracking's state: "off", "up" or "down" (a static word). */
        buf_fixed_printf(o, ",\"tracking\":\"%s\"", h.tracking);
    }
    if (h.cluster) {
        buf_fixed_printf(o,
                         ",\"cluster\":{\"nodes\":%" PRIu64
                         ",\"nodes_down\":%" PRIu64
                         ",\"slots_covered\":%" PRIu64 ",\"slots\":16384,",
                         h.cluster_nodes, h.cluster_nodes_down,
                         h.cluster_slots_covered);
        admin_health_nodes(o, &h);
        buf_fixed_printf(o, "}");
    } else if (h.sentinel_master != NULL) {
        buf_fixed_printf(o, ",\"sentinel\":{\"master\":");
        admin_json_string(o, h.sentinel_master);
        buf_fixed_printf(o, ",");
        admin_health_nodes(o, &h);
        buf_fixed_printf(o, "}");
    }
    buf_fixed_printf(o, "}\n");
    r->status = h.redis_up ? 200 : 503;
    r->content_type = admin_json;
}

static void
admin_delete(const struct admin_request *req, const struct admin_ops *ops,
             const struct admin_route *route, struct admin_reply *r)
{
    /* A request line is at most HTTP_PARSE_LINE_MAX bytes, so a key
     * decoded from it (never longer than its escape) fits here. */
    char        key[HTTP_PARSE_LINE_MAX];
    const char *raw = req->path + route->path_len;
    size_t      raw_len = req->path_len - route->path_len;
    ssize_t     key_len;

    if (raw_len == 0) {
        admin_text_reply(r, 400, "empty key\n");
        return;
    }
    if (raw_len > sizeof(key)) {
        admin_text_reply(r, 414, "key too long\n");
        return;
    }
    key_len = http_parse_decode(raw, raw_len, key);
    if (key_len < 0) {
        admin_text_reply(r, 400, "bad percent-escape in key\n");
        return;
    }
    if (key_len == 0) {
        admin_text_reply(r, 400, "empty key\n");
        return;
    }
    admin_action_reply(r, ops->delete_key(ops->ctx, key, (size_t) key_len));
}

static const struct admin_route *
admin_route_find(const char *path, size_t path_len)
{
    for (size_t i = 0; i < sizeof(admin_routes) / sizeof(*admin_routes); i++) {
        const struct admin_route *route = &admin_routes[i];

        if (route->prefix ? path_len >= route->path_len
                          : path_len == route->path_len) {
            if (memcmp(path, route->path, route->path_len) == 0) {
                return route;
            }
        }
    }
    return NULL;
}

bool
admin_needs_health(const struct admin_request *req)
{
    const struct admin_route *route =
        admin_route_find(req->path, req->path_len);

    return route != NULL
           && (route->action == ADMIN_HEALTH || route->action == ADMIN_STATUS)
           && (route->methods & ADMIN_M(req->method)) != 0;
}

size_t
admin_handle(const struct admin_request *req, const struct admin_ops *ops,
             char *buf, size_t cap, int *status)
{
    const struct admin_route *route;
    struct admin_reply        r;
    size_t                    len;

    if (cap < ADMIN_REPLY_MIN) {
        return ADMIN_REPLY_MIN;
    }
    memset(&r, 0, sizeof(r));
    r.keep_alive = req->keep_alive;
    r.head_only = req->method == HTTP_METHOD_HEAD;

    route = admin_route_find(req->path, req->path_len);
    if (route == NULL) {
        admin_text_reply(&r, 404, "not found\n");
    } else if ((route->methods & ADMIN_M(req->method)) == 0) {
        admin_text_reply(&r, 405, "method not allowed\n");
        r.allow = route->allow;
    } else {
        switch (route->action) {
        case ADMIN_HEALTH:
        case ADMIN_STATUS:
        case ADMIN_METRICS:
            len = admin_big(req, ops, route->action, &r, buf, cap);
            if (len <= cap) {
                *status = r.status;
            }
            return len;
        case ADMIN_FLUSH:
            admin_action_reply(&r, ops->flush(ops->ctx));
            break;
        case ADMIN_DELETE:
            admin_delete(req, ops, route, &r);
            break;
        }
    }
    len = admin_write(&r, req->now, buf, cap);
    /* Every reply built above is a short head and a short body. */
    assert(len <= ADMIN_REPLY_MIN);
    *status = r.status;
    return len;
}

size_t
admin_error(int status, time_t now, char *buf, size_t cap)
{
    struct admin_reply r;
    char               text[64];
    int                n;

    if (cap < ADMIN_REPLY_MIN) {
        return ADMIN_REPLY_MIN;
    }
    memset(&r, 0, sizeof(r));
    n = snprintf(text, sizeof(text), "%s\n", http_reply_reason(status));
    assert(n > 0 && (size_t) n < sizeof(text));
    r.status = status;
    r.content_type = admin_text;
    r.body = text;
    r.body_len = (size_t) n;
    r.keep_alive = false;
    return admin_write(&r, now, buf, cap);
}
