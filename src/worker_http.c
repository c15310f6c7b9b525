/*
 * worker_http: a worker's HTTP requests.  One complete request at a time
 * (pipelined ones wait in the input, so answers stay in order): a hit is
 * copied from the segment straight behind its head in the output buffer;
 * a miss waits on the backend (the connection is WAITING) and is answered
 * from the backend callback, which then goes on with the next request.
 *
 * HTTP caching (RFC 9110, 9111, 9211): every 200 carries the value's
 * ETag and Cache-Control: max-age=<seconds before the entry expires>
 * (the full TTL after a miss, 0 once stale); an If-None-Match that
 * matches turns it into a 304 with the same headers and no body, on a
 * hit or a miss.  Every answer carries Cache-Status:
 *
 *   fresh hit          hit; ttl=N                        X-Cache: HIT
 *   negative hit (404) hit; ttl=N                        X-Cache: HIT
 *   stale, refreshing  hit; stale; ttl=-N                STALE / UPDATING
 *   stale, Redis down  hit; stale; ttl=-N; fwd=miss; fwd-status=502|504
 *   miss               fwd=miss; stored (when it was)    X-Cache: MISS
 *   miss, not 200      fwd=miss; fwd-status=404|409|502|504 (; stored)
 *   only-if-cached, not in the cache: 504, no fwd (Redis not asked)
 *   If-Match naming none of the ETag: 412, the hit's or miss's fields
 *   anything else      fwd=bypass (400, 401, 403, 405 ...)
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "worker_conn.h"

const char *
worker_http_date(struct worker *w)
{
    struct worker_http_date *d = &w->http_date;
    /* time() is a vDSO call on Linux: no system call on the hit path. */
    time_t                   now = time(NULL);

    if (now != d->sec) {
        d->sec = now;
        http_reply_format_date(now, d->text);
        d->ok_prefix_len = http_reply_format_ok_prefix(d->text, d->ok_prefix,
                                                       sizeof(d->ok_prefix));
    }
    return d->text;
}

static bool
worker_http_keep_alive(const struct worker_conn *c)
{
    return c->req.keep_alive && !c->worker->stopping;
}

/* Appends an error answer for the current request; after a parse error
 * (fatal) the connection closes once it is written. */
void
worker_http_error(struct worker_conn *c, int status, bool fatal)
{
    struct worker *w = c->worker;
    char           buf[HTTP_REPLY_HEAD_MAX + 128];
    /* A request that failed to parse has no method or version (req is
     * zero but for status); one that parsed keeps its own. */
    bool           parsed = c->req.status == 0;
    bool           keep = !fatal && worker_http_keep_alive(c);
    bool           head = parsed && c->req.method == HTTP_METHOD_HEAD;
    size_t         n;

    n = http_reply_format_error(status, head, keep,
                                parsed && c->req.version_minor == 0,
                                worker_http_date(w), NULL, 0, buf,
                                sizeof(buf));
    if (worker_conn_append(c, buf, n) != 0) {
        worker_conn_close(c);
        return;
    }
    if (!keep) {
        c->close_after_write = true;
    }
    c->log_status = status;
    metrics_count_request(w->params->metrics, METRICS_PROTO_HTTP,
                          metrics_code_from_status(status));
}

/* The request line as sent, for the access log. */
static void
worker_http_log(struct worker_conn *c, size_t head_len)
{
    const char *cr =
        memchr(c->in.data, '\r', head_len < c->in.len ? head_len : c->in.len);
    size_t n = cr != NULL ? (size_t) (cr - c->in.data)
                          : (head_len < c->in.len ? head_len : c->in.len);

    worker_access_log(c, c->in.data, n);
}

static void
worker_http_finish(struct worker_conn *c)
{
    worker_http_log(c, c->req.head_len);
    c->requests++;
    worker_conn_consume(c, c->req.head_len + c->req_body_len);
    http_parse_init(&c->hp);
    http_parse_chunked_init(&c->hc);
    c->continue_sent = false;
    if (!worker_http_keep_alive(c)) {
        c->close_after_write = true;
    }
}

/* Whether the request's If-None-Match matches etag: then a 304. */
static bool
worker_http_not_modified(const struct worker_conn *c, uint64_t etag)
{
    return c->req.inm_len > 0
           && http_reply_if_none_match(c->in.data + c->req.inm_off,
                                       c->req.inm_len, etag)
                  == HTTP_REPLY_INM_MATCH;
}

/* What the request's preconditions make of a 200 whose ETag is etag,
 * in RFC 9110 13.2.2's order: 412 when If-Match names none of it, else
 * 304 when If-None-Match matches, else 200.  If-Unmodified-Since and
 * If-Modified-Since have no Last-Modified to compare with: ignored. */
static int
worker_http_precondition(const struct worker_conn *c, uint64_t etag)
{
    if (c->req.im_len > 0
        && http_reply_if_match(c->in.data + c->req.im_off, c->req.im_len, etag)
               == HTTP_REPLY_INM_NO_MATCH) {
        return 412;
    }
    return worker_http_not_modified(c, etag) ? 304 : 200;
}

static void worker_http_error_cached(struct worker_conn *c, int status,
                                     const struct http_reply *cached,
                                     const char *detail, size_t detail_len);

/* If-Match failed: 412 with the cache's headers, but no max-age, so
 * that no cache in front keeps it for requests without the condition. */
static void
worker_http_precondition_failed(struct worker_conn *c, struct http_reply *r)
{
    r->has_max_age = false;
    c->log_bytes = 0;
    worker_http_error_cached(c, 412, r, NULL, 0);
}

static void
worker_http_count(struct worker_conn *c, int status)
{
    struct metrics_slot_shm *m = c->worker->params->metrics;

    c->log_status = status;
    metrics_count_request(m, METRICS_PROTO_HTTP,
                          metrics_code_from_status(status));
    if (status == 304 && m != NULL) {
        metrics_bump(&m->not_modified);
    }
}

/* A 404 or 502/504 answered with cache headers (a negative hit, a miss
 * of an absent key, a failed fetch). */
static void
worker_http_error_cached(struct worker_conn *c, int status,
                         const struct http_reply *cached, const char *detail,
                         size_t detail_len)
{
    char   hb[HTTP_REPLY_HEAD_MAX + 512];
    bool   head = c->req.method == HTTP_METHOD_HEAD;
    bool   keep = worker_http_keep_alive(c);
    size_t n;

    n = http_reply_format_error_cached(status, head, keep,
                                       c->req.version_minor == 0,
                                       worker_http_date(c->worker), detail,
                                       detail_len, cached, hb, sizeof(hb));
    if (worker_conn_append(c, hb, n) != 0) {
        worker_conn_close(c);
        return;
    }
    if (!keep) {
        c->close_after_write = true;
    }
    worker_http_count(c, status);
}

/* Answers from a value that is at c->out.data + c->out.len +
 * HTTP_REPLY_HEAD_MAX (worker_cache_lookup put it there): a 200, or a 304 when
 * the request's If-None-Match matches.  reply has the cache fields set. */
static void
worker_http_answer_copied(struct worker_conn *c, struct http_reply *reply,
                          size_t value_len)
{
    char  *head = c->out.data + c->out.len;
    size_t n;

    reply->keep_alive = worker_http_keep_alive(c);
    reply->http10 = c->req.version_minor == 0;
    reply->content_type = "application/octet-stream";
    reply->content_length = value_len;
    reply->has_etag = true;
    reply->has_max_age = true;
    reply->date = worker_http_date(c->worker);
    reply->status = worker_http_precondition(c, reply->etag);
    if (reply->status == 412) {
        worker_http_precondition_failed(c, reply);
        return;
    }
    n = http_reply_format_head(reply, head, HTTP_REPLY_HEAD_MAX);
    if (reply->status == 200 && c->req.method != HTTP_METHOD_HEAD) {
        memmove(head + n, head + HTTP_REPLY_HEAD_MAX, value_len);
        c->out.len += value_len;
    }
    c->out.len += n;
    c->log_bytes = reply->status == 200 ? value_len : 0;
    worker_http_count(c, reply->status);
}

/* Seconds of a stale entry past its expiry, as Cache-Status' negative
 * ttl: at least 1. */
static int64_t
worker_http_stale_ttl(uint64_t stale_ms)
{
    return -(int64_t) (stale_ms / 1000 + 1);
}

/* Redis failed: --stale-if-error may answer a recently expired copy. */
static bool
worker_http_stale_if_error(struct worker_conn *c, int status)
{
    struct worker      *w = c->worker;
    struct cache_lookup lk;
    const char         *key = c->in.data + c->req.path_off + 1;
    size_t              key_len = c->req.path_len - 1;
    struct http_reply   reply = { .cache = HTTP_REPLY_CACHE_STALE };
    bool                fresh;

    /* The key as the request named it: decoded again, since key_buf
     * may have been reused while the request waited. */
    if (memchr(key, '%', key_len) != NULL) {
        ssize_t n = http_parse_decode(key, key_len, w->key_buf);

        if (n < 0) {
            return false;
        }
        key = w->key_buf;
        key_len = (size_t) n;
    }
    if (worker_conn_out_reserve(c, HTTP_REPLY_HEAD_MAX) != 0
        || !worker_cache_stale_if_error(w, &c->out, HTTP_REPLY_HEAD_MAX, 0,
                                        key, key_len, &lk)) {
        return false;
    }
    fresh = lk.ttl_left_ms > 0; /* fetched by another worker */
    reply.age_s = lk.age_ms / 1000;
    reply.etag = lk.etag;
    reply.max_age_s = lk.ttl_left_ms / 1000;
    reply.cs = (struct http_reply_cache_status){
        .on = true,
        .hit = true,
        .stale = !fresh,
        .has_ttl = true,
        .fwd_miss = true,
        .fwd_status = status,
        .ttl_s = fresh ? (int64_t) (lk.ttl_left_ms / 1000)
                       : worker_http_stale_ttl(lk.stale_ms),
    };
    if (fresh) {
        reply.cache = HTTP_REPLY_CACHE_HIT;
    }
    c->log_cache = fresh ? "HIT" : "STALE";
    worker_http_answer_copied(c, &reply, lk.value_len);
    return true;
}

static void
worker_http_backend_cb(struct backend_waiter      *wt,
                       const struct backend_reply *r)
{
    struct worker_conn *c = wt->data;
    struct worker      *w = c->worker;
    bool                head = c->req.method == HTTP_METHOD_HEAD;
    char                hb[HTTP_REPLY_HEAD_MAX + 512];
    size_t              n;
    int                 status = http_reply_status_for_backend(r->result);
    struct http_reply   reply = {
          .status = 200,
          .keep_alive = worker_http_keep_alive(c),
          .http10 = c->req.version_minor == 0,
          .content_type = "application/octet-stream",
          .content_length = r->len,
          .cache = HTTP_REPLY_CACHE_MISS,
          .date = worker_http_date(w),
          .has_etag = true,
          .has_max_age = true,
          .max_age_s = w->cfg->ttl_ms / 1000,
          .cs = { .on = true, .fwd_miss = true },
    };

    c->state = CONN_READING;
    if (status == 200 && r->pttl_ms >= 0
        && (uint64_t) r->pttl_ms < w->cfg->ttl_ms) {
        /* Redis expires the key sooner than the TTL would. */
        reply.max_age_s = (uint64_t) r->pttl_ms / 1000;
    }
    if (status == 200) {
        if (r->value == NULL) {
            reply.etag = cache_etag(r->data, r->len);
        } else {
            if (!r->value->has_etag) {
                r->value->etag = cache_etag(r->data, r->len);
                r->value->has_etag = true;
            }
            reply.etag = r->value->etag;
        }
        reply.cs.stored = r->stored;
        reply.status = worker_http_precondition(c, reply.etag);
    }
    if (status == 200 && reply.status == 412) {
        c->log_cache = "MISS";
        worker_http_precondition_failed(c, &reply);
    } else if (status == 200) {
        n = http_reply_format_head(&reply, hb, sizeof(hb));
        if (reply.status == 304) {
            head = true;
        }
        if (worker_conn_append(c, hb, n) != 0
            || (!head
                && (r->value != NULL ? worker_out_append_value(c, r->value)
                                     : worker_conn_append(c, r->data, r->len))
                       != 0)) {
            worker_conn_close(c);
            return;
        }
        c->log_bytes = head ? 0 : r->len;
        c->log_cache = "MISS";
        worker_http_count(c, reply.status);
    } else if (r->result == BACKEND_WRONGTYPE || r->result == BACKEND_NIL) {
        /* Redis' error text is the body: it names the key's type. */
        reply.has_max_age = false;
        reply.cache = HTTP_REPLY_CACHE_NONE;
        reply.cs.fwd_status = status;
        if (r->result == BACKEND_NIL && r->stored) {
            reply.cs.stored = true;
            reply.cache = HTTP_REPLY_CACHE_MISS;
            reply.has_max_age = true;
            reply.max_age_s = w->cfg->negative_ttl_ms / 1000;
        }
        worker_http_error_cached(c, status, &reply,
                                 r->result == BACKEND_NIL ? NULL : r->data,
                                 r->len > 256 ? 256 : r->len);
    } else if ((r->result == BACKEND_UNREACHABLE
                || r->result == BACKEND_TIMEOUT)
               && worker_http_stale_if_error(c, status)) {
        /* answered from the stale copy */
    } else {
        reply.has_max_age = false;
        reply.cache = HTTP_REPLY_CACHE_NONE;
        reply.cs.fwd_status = status;
        worker_http_error_cached(c, status, &reply, NULL, 0);
    }
    if (c->state == CONN_CLOSED) {
        return;
    }
    worker_http_finish(c);
    worker_conn_run(c);
}

/* Serves a hit straight from the segment into the output buffer: the
 * value is copied once, under the read lock, behind room left for the
 * head, and then the head is put in front of it. */
static bool
worker_http_try_hit(struct worker_conn *c, const char *key, size_t key_len)
{
    struct worker      *w = c->worker;
    struct cache_lookup lk;
    char               *head;
    size_t              n;

    if (!worker_cache_copy(w, &c->out, HTTP_REPLY_HEAD_MAX, 0, key, key_len,
                           &lk)) {
        return false;
    }
    struct http_reply reply = {
        .status = 200,
        .keep_alive = worker_http_keep_alive(c),
        .http10 = c->req.version_minor == 0,
        .content_type = "application/octet-stream",
        .content_length = lk.value_len,
        .cache = HTTP_REPLY_CACHE_HIT,
        .age_s = lk.age_ms / 1000,
        .has_etag = true,
        .etag = lk.etag,
        .has_max_age = true,
        .max_age_s = lk.ttl_left_ms / 1000,
        .cs = { .on = true,
                .hit = true,
                .has_ttl = true,
                .ttl_s = (int64_t) (lk.ttl_left_ms / 1000) },
    };

    c->log_cache = "HIT";
    if (lk.negative) {
        reply.has_etag = false;
        worker_http_error_cached(c, 404, &reply, NULL, 0);
        return true;
    }
    if (w->last_hit != WORKER_HIT_FRESH) {
        reply.cache = w->last_hit == WORKER_HIT_STALE
                          ? HTTP_REPLY_CACHE_STALE
                          : HTTP_REPLY_CACHE_UPDATING;
        reply.cs.stale = true;
        reply.cs.ttl_s = worker_http_stale_ttl(lk.stale_ms);
        c->log_cache = w->last_hit == WORKER_HIT_STALE ? "STALE" : "UPDATING";
    }
    if (worker_http_precondition(c, lk.etag) != 200) {
        worker_http_answer_copied(c, &reply, lk.value_len);
        return true;
    }
    /* The head goes straight in front of the value: the Date-bound
     * prefix is made once a second, the rest per answer. */
    head = c->out.data + c->out.len;
    worker_http_date(w);
    memcpy(head, w->http_date.ok_prefix, w->http_date.ok_prefix_len);
    n = w->http_date.ok_prefix_len;
    n +=
        http_reply_format_ok_suffix(&reply, head + n, HTTP_REPLY_HEAD_MAX - n);
    if (c->req.method != HTTP_METHOD_HEAD) {
        memmove(head + n, head + HTTP_REPLY_HEAD_MAX, lk.value_len);
        c->out.len += lk.value_len;
    }
    c->out.len += n;
    c->log_bytes = lk.value_len;
    worker_http_count(c, 200);
    return true;
}

/* Cache-Control: only-if-cached and nothing cached to answer with: 504
 * without asking Redis (RFC 9111 5.2.1.7), as a cache that honours the
 * directive answers.  Cache-Status names the cache and no forward. */
static void
worker_http_only_if_cached(struct worker_conn *c)
{
    struct http_reply none = { .cs = { .on = true } };

    worker_http_error_cached(c, 504, &none, NULL, 0);
}

/* Whether the request's body (ignored, but read so the next request is
 * found) is all in; false while it is still due, or after a malformed
 * chunked body, which is answered and closes.  A client waiting for
 * "100 Continue" before sending the body gets it at once. */
static bool
worker_http_body(struct worker_conn *c)
{
    size_t avail = c->in.len - c->req.head_len;

    c->req_body_len = (size_t) c->req.content_length;
    if (c->req.chunked) {
        enum http_parse_rc rc =
            http_parse_chunked(&c->hc, c->in.data + c->req.head_len, avail);

        if (rc == HTTP_PARSE_ERROR) {
            worker_http_error(c, c->hc.status, true);
            worker_http_log(c, c->req.head_len);
            c->in.len = 0;
            return false;
        }
        if (rc == HTTP_PARSE_DONE) {
            c->req_body_len = c->hc.body_len;
            return true;
        }
    } else if (avail >= c->req_body_len) {
        return true;
    }
    if (c->req.expect_continue && !c->continue_sent) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

        c->continue_sent = true;
        if (worker_conn_append(c, cont, sizeof(cont) - 1) != 0) {
            worker_conn_close(c);
        }
    }
    return false;
}

/* Answers one complete request; returns false when it now waits on the
 * backend. */
static bool
worker_http_handle(struct worker_conn *c)
{
    struct worker *w = c->worker;
    const char    *path = c->in.data + c->req.path_off;
    size_t         path_len = c->req.path_len;
    const char    *key;
    ssize_t        key_len;

    if (!worker_acl_http_request(c)) {
        return true; /* 401 */
    }
    if (c->req.method != HTTP_METHOD_GET
        && c->req.method != HTTP_METHOD_HEAD) {
        worker_http_error(c, 405, false);
        return true;
    }
    /* A 400 closes, as after any malformed request (nginx does too). */
    if (path_len < 2 || path[0] != '/') {
        worker_http_error(c, 400, true);
        return true;
    }
    /* Most keys need no decoding: then the key is the path itself. */
    key = path + 1;
    key_len = (ssize_t) path_len - 1;
    if (memchr(key, '%', (size_t) key_len) != NULL) {
        key_len = http_parse_decode(path + 1, path_len - 1, w->key_buf);
        if (key_len < 0) {
            worker_http_error(c, 400, true);
            return true;
        }
        key = w->key_buf;
    }
    if (!worker_acl_http_key(c, key, (size_t) key_len)) {
        return true; /* 403 */
    }
    if (worker_http_try_hit(c, key, (size_t) key_len)) {
        return true;
    }
    if (c->req.only_if_cached) {
        worker_http_only_if_cached(c);
        return true;
    }
    c->state = CONN_WAITING;
    backend_get(w->backend, key, (size_t) key_len, &c->waiter,
                worker_http_backend_cb, c);
    return false;
}

static void
worker_http_process(struct worker_conn *c)
{
    while (c->state == CONN_READING && !c->close_after_write && c->in.len > 0
           && worker_conn_unsent(c) < WORKER_OUT_HIGH_WATER) {
        enum http_parse_rc rc =
            http_parse_request(&c->hp, c->in.data, c->in.len, &c->req);

        if (rc == HTTP_PARSE_AGAIN) {
            return;
        }
        worker_access_start(c);
        c->log_bytes = 0;
        c->log_cache = NULL;
        if (rc == HTTP_PARSE_ERROR) {
            worker_http_error(c, c->req.status, true);
            worker_http_log(c, c->in.len);
            c->in.len = 0;
            return;
        }
        if (!worker_http_body(c)) {
            return; /* the ignored body is still due */
        }
        if (!worker_http_handle(c)) {
            return; /* WAITING; resumed by callback */
        }
        if (c->state == CONN_CLOSED) {
            return;
        }
        worker_http_finish(c);
    }
}

static int
worker_http_open(struct worker_conn *c)
{
    http_parse_init(&c->hp);
    http_parse_chunked_init(&c->hc);
    c->continue_sent = false;
    return 0;
}

/* A request head, or the body after it, that did not arrive in time:
 * 408, and the connection closes, which the answer says (a request
 * whose head was in asked for keep-alive, and would be told nothing). */
static bool
worker_http_timeout(struct worker_conn *c)
{
    worker_http_error(c, 408, true);
    return true;
}

static void
worker_http_proxy_refused(struct worker_conn *c)
{
    worker_http_error(c, 400, true);
}

/* What an HTTP connection waits on is c->waiter, which worker.c
 * cancels; the slot keeps nothing of its own. */
static void
worker_http_nothing(struct worker_conn *c)
{
    (void) c;
}

const struct worker_proto worker_http_proto = {
    .name = "http",
    .in_max = WORKER_HTTP_IN_MAX,
    .open = worker_http_open,
    .process = worker_http_process,
    .timeout = worker_http_timeout,
    .proxy_refused = worker_http_proxy_refused,
    .close = worker_http_nothing,
    .slot_fini = worker_http_nothing,
};
