/*
 * worker_resp_pipeline: a RESP connection's GETs whose answers cannot go
 * into the output yet, so that a pipeline of misses costs one Redis round
 * trip rather than one each.
 *
 * Each such GET has an entry in the connection's ring (at most
 * RESP_PIPELINE_MAX, allocated at the first miss): a miss waits there on
 * its own backend_get (the backend pipelines them on its connection and
 * coalesces equal keys), and a hit that comes after a waiting miss is
 * copied into its entry at once.  A large value from Redis that comes
 * before its turn is not copied: the entry holds its bulk head and a
 * reference, and the drain splices it into the output (worker_out.c).
 * Answers leave the ring only from its head, in request order:
 *
 *   parse GET --hit, ring empty--> out (as before, no entry)
 *       |     --hit, ring busy---> entry (done, answer copied)
 *       +------miss--------------> entry (waiting) --backend reply--+
 *                                                                   v
 *   head done? -> its answer to out, log, count; next head ... <- done
 *
 * While the ring holds entries the connection is CONN_WAITING, so its
 * deadlines are the backend's and it is never taken for idle; parsing
 * goes on for GETs only, as long as the ring has room and out plus the
 * answers held here stay under WORKER_OUT_HIGH_WATER.  Any other command
 * (MGET, MULTI, a parse error ...) waits until the ring is empty, and is
 * then answered as before: so everything but GET keeps the one command
 * at a time model, and nothing is reordered.
 *
 * A backend callback never writes to the socket itself: it schedules the
 * connection (worker_conn_schedule), and the loop runs it once before
 * the next wait, so a burst of replies costs one write.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"
#include "value.h"
#include "worker_conn.h"

static struct worker_resp_pending *
worker_resp_pipeline_head(struct worker_conn *c)
{
    return &c->resp_q[c->resp_q_head];
}

bool
worker_resp_pipeline_busy(const struct worker_conn *c)
{
    return c->resp_q_len > 0;
}

bool
worker_resp_pipeline_full(const struct worker_conn *c)
{
    return c->resp_q_len >= RESP_PIPELINE_MAX;
}

/* Moves every answered entry at the head into out, in order. */
static int
worker_resp_pipeline_drain(struct worker_conn *c)
{
    int rc = 0;

    while (c->resp_q_len > 0 && worker_resp_pipeline_head(c)->done) {
        struct worker_resp_pending *e = worker_resp_pipeline_head(c);
        size_t                      n = buf_pending(&e->answer);

        if (n > 0) {
            rc |= worker_conn_append(c, e->answer.data + e->answer.pos, n);
            c->resp_q_bytes -= n;
        }
        e->answer.pos = 0;
        e->answer.len = 0;
        if (e->answer.cap > WORKER_BUF_KEEP) {
            buf_free(&e->answer);
        }
        if (e->value != NULL) {
            /* Its head is out: the payload by reference, then CRLF. */
            rc |= worker_out_append_value(c, e->value);
            rc |= worker_conn_append(c, "\r\n", 2);
            c->resp_q_bytes -= e->value->len + 2;
            value_unref(e->value);
            e->value = NULL;
        }
        c->log_status = 0;
        c->log_resp = e->log_resp;
        c->log_bytes = e->log_bytes;
        c->log_cache = e->log_cache;
        c->log_start_us = e->log_start_us;
        if (e->log_req_len > 0) {
            worker_access_log(c, e->log_req, e->log_req_len);
        }
        c->requests++;
        c->resp_q_head = (c->resp_q_head + 1) % RESP_PIPELINE_MAX;
        c->resp_q_len--;
    }
    if (c->resp_q_len == 0 && c->state == CONN_WAITING && c->mget == NULL) {
        c->state = CONN_READING;
    }
    return rc;
}

/* Redis failed: --stale-if-error may answer e from a recently expired
 * copy, into dst.  True when it did. */
static bool
worker_resp_stale_if_error(struct worker_conn         *c,
                           struct worker_resp_pending *e, struct buf *dst)
{
    struct cache_lookup lk;

    if (!worker_cache_stale_if_error(c->worker, dst, RESP_BULK_HEAD_MAX, 2,
                                     e->key.data, e->key.len, &lk)) {
        return false;
    }
    resp_end_bulk_in_place(dst, lk.value_len);
    worker_resp_count(c, METRICS_CODE_RESP_OK);
    e->log_resp = c->log_resp;
    e->log_bytes = lk.value_len;
    e->log_cache = "STALE";
    return true;
}

static void
worker_resp_pipeline_cb(struct backend_waiter      *wt,
                        const struct backend_reply *r)
{
    struct worker_resp_pending *e = wt->data;
    struct worker_conn         *c = e->conn;
    /* The head's answer goes straight to out: no copy into the entry. */
    struct buf *dst = e == worker_resp_pipeline_head(c) ? &c->out : &e->answer;
    size_t      before = buf_pending(dst);
    enum metrics_code code = r->result == BACKEND_VALUE ? METRICS_CODE_RESP_OK
                             : r->result == BACKEND_NIL
                                 ? METRICS_CODE_RESP_NIL
                                 : METRICS_CODE_RESP_ERR;

    if ((r->result == BACKEND_UNREACHABLE || r->result == BACKEND_TIMEOUT)
        && worker_resp_stale_if_error(c, e, dst)) {
        goto answered;
    }
    worker_resp_count(c, code);
    e->log_resp = c->log_resp;
    e->log_bytes = r->result == BACKEND_VALUE ? r->len : 0;
    e->log_cache = r->result == BACKEND_VALUE ? "MISS" : NULL;
    if (dst == &c->out && r->result == BACKEND_VALUE && r->value != NULL) {
        /* Straight to out: a large value goes from its shared copy. */
        if (worker_resp_append_value(c, r->value) != 0) {
            worker_conn_close(c);
            return;
        }
    } else if (r->result == BACKEND_VALUE && r->value != NULL
               && r->len >= WORKER_SHARE_MIN) {
        /* Not its turn yet: the entry keeps the bulk head and a
         * reference, never a copy of the payload. */
        char   head[RESP_BULK_HEAD_MAX];
        size_t hlen = resp_format_bulk_head(head, r->len);

        if (buf_append(dst, head, hlen) != 0) {
            worker_conn_close(c);
            return;
        }
        e->value = value_ref(r->value);
        c->resp_q_bytes += r->len + 2;
    } else if (resp_append_backend_reply(dst, r->result, r->data, r->len)
               != 0) {
        worker_conn_close(c);
        return;
    }
answered:
    if (dst == &e->answer) {
        c->resp_q_bytes += buf_pending(dst) - before;
    }
    e->done = true;
    if (worker_resp_pipeline_drain(c) != 0) {
        worker_conn_close(c);
        return;
    }
    worker_conn_schedule(c);
}

int
worker_resp_append_value(struct worker_conn *c, struct value *v)
{
    char   head[RESP_BULK_HEAD_MAX];
    size_t hlen = resp_format_bulk_head(head, v->len);

    if (worker_conn_append(c, head, hlen) != 0
        || worker_out_append_value(c, v) != 0
        || worker_conn_append(c, "\r\n", 2) != 0) {
        return -ENOMEM;
    }
    return 0;
}

/* Copies a cached value into b as a bulk string; true on a hit. */
bool
worker_resp_copy_hit(struct worker_conn *c, struct buf *b, const char *key,
                     size_t key_len)
{
    struct cache_lookup lk;

    if (!worker_cache_copy(c->worker, b, RESP_BULK_HEAD_MAX, 2, key, key_len,
                           &lk)) {
        return false;
    }
    if (lk.negative) {
        /* A remembered absent key: nil, as Redis would say.  The room
         * reserved for a bulk string holds it. */
        (void) resp_append_nil(b);
        worker_resp_count(c, METRICS_CODE_RESP_NIL);
        c->log_bytes = 0;
        c->log_cache = "HIT";
        return true;
    }
    resp_end_bulk_in_place(b, lk.value_len);
    worker_resp_count(c, METRICS_CODE_RESP_OK);
    c->log_bytes = lk.value_len;
    c->log_cache = "HIT";
    return true;
}

int
worker_resp_pipeline_get(struct worker_conn *c, const char *key,
                         size_t key_len, bool try_cache)
{
    struct worker              *w = c->worker;
    struct worker_resp_pending *e;

    if (c->resp_q == NULL) {
        c->resp_q = calloc(RESP_PIPELINE_MAX, sizeof(*c->resp_q));
        if (c->resp_q == NULL) {
            return -ENOMEM;
        }
        c->resp_q_head = 0;
    }
    e = &c->resp_q[(c->resp_q_head + c->resp_q_len) % RESP_PIPELINE_MAX];
    c->resp_q_len++;
    e->conn = c;
    e->done = false;
    e->log_start_us = c->log_start_us;
    e->log_req_len = 0;
    if (w->params->access_fd >= 0) {
        size_t n = key_len < sizeof(e->log_req) - 4 ? key_len
                                                    : sizeof(e->log_req) - 4;

        memcpy(e->log_req, "GET ", 4);
        memcpy(e->log_req + 4, key, n);
        e->log_req_len = 4 + n;
    }
    if (try_cache) {
        size_t before = buf_pending(&e->answer);

        if (worker_resp_copy_hit(c, &e->answer, key, key_len)) {
            c->resp_q_bytes += buf_pending(&e->answer) - before;
            e->log_resp = c->log_resp;
            e->log_bytes = c->log_bytes;
            e->log_cache = c->log_cache;
            e->done = true;
            return 0;
        }
    }
    e->key.pos = 0;
    e->key.len = 0;
    if (w->cfg->stale_if_error_ms > 0
        && buf_append(&e->key, key, key_len) != 0) {
        return -ENOMEM;
    }
    c->state = CONN_WAITING;
    backend_get(w->backend, key, key_len, &e->waiter, worker_resp_pipeline_cb,
                e);
    return 0;
}

void
worker_resp_pipeline_free(struct worker_conn *c)
{
    if (c->resp_q == NULL) {
        return;
    }
    for (size_t i = 0; i < RESP_PIPELINE_MAX; i++) {
        backend_cancel(&c->resp_q[i].waiter);
        value_unref(c->resp_q[i].value);
        c->resp_q[i].value = NULL;
        buf_free(&c->resp_q[i].answer);
        buf_free(&c->resp_q[i].key);
    }
    free(c->resp_q);
    c->resp_q = NULL;
    c->resp_q_head = 0;
    c->resp_q_len = 0;
    c->resp_q_bytes = 0;
}
