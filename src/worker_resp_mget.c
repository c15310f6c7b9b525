/*
 * worker_resp_mget: MGET, answered in parts with backpressure, so one
 * command cannot take gigabytes or stall the worker (MGET of a cached
 * 1 MB key 1,000 times used to copy every value into a side array and
 * then again into the output, 1.9 GB, before the first byte went out).
 *
 *   probe every key (a lookup with no room: no copy, no LRU record)
 *     |                                          | some missed
 *     | all cached                               v
 *     |                     WAITING: every miss asked of the backend at
 *     |                     once; a reply holds a reference to the
 *     |                     backend's shared value, not a copy
 *     |                                          | last reply in
 *     |         a backend failure: the whole answer is an error, as
 *     |         Redis fails the whole command (nothing sent yet) ---> done
 *     v                                          v
 *   emit: "*N", then each key in order, straight from the cache (or the
 *   held value) into the output, stopping whenever the output is past
 *   WORKER_OUT_HIGH_WATER; the connection's resume hook brings us back
 *   once it drains (worker_conn_run), and then we go on where we were.
 *
 * So the memory of an MGET is its item array, the values Redis sent for
 * its misses, and at most the high-water mark plus one value of output.
 * A key evicted between the probe and its turn is asked of Redis then
 * (the connection WAITING again); if Redis fails at that point the array
 * is already started, so that one element is the error.
 *
 * The resume hook is the worker's generic way to produce one answer in
 * parts (worker_conn.h): a large value streamed from Redis can use it the
 * same way.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"
#include "value.h"
#include "worker_conn.h"

void
worker_resp_mget_free(struct conn *c)
{
    struct resp_mget *m = c->mget;

    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        backend_cancel(&m->items[i].waiter);
        value_unref(m->items[i].value);
    }
    free(m);
    c->mget = NULL;
    if (c->resume == worker_resp_mget_resume) {
        c->resume = NULL;
    }
}

static const char *
worker_resp_mget_key(const struct conn *c, size_t i, size_t *len)
{
    *len = c->argv[i + 1].len;
    return c->in.data + c->argv[i + 1].off;
}

/* The command is answered: log it, drop its bytes, parse the next. */
static void
worker_resp_mget_done(struct conn *c)
{
    worker_resp_mget_free(c);
    worker_resp_finish(c);
}

/* Appends item i; false when it has to be asked of Redis first (a key
 * evicted since the probe) or out of memory (the connection closed). */
static bool
worker_resp_mget_item(struct conn *c, size_t i)
{
    struct resp_mget      *m = c->mget;
    struct resp_mget_item *it = &m->items[i];
    struct cache_lookup    lk;
    const char            *key;
    size_t                 key_len, hlen;
    char                  *head;
    int                    rc;

    switch (it->kind) {
    case RESP_MGET_CACHED:
        key = worker_resp_mget_key(c, i, &key_len);
        if (worker_cache_copy(c->worker, &c->out, RESP_BULK_HEAD_MAX, 2, key,
                              key_len, &lk)) {
            head = c->out.data + c->out.len;
            if (lk.negative) {
                /* Now a remembered absence: nil, in the room kept for
                 * the bulk header. */
                memcpy(head, "$-1\r\n", 5);
                c->out.len += 5;
                return true;
            }
            hlen = resp_format_bulk_head(head, lk.value_len);
            memmove(head + hlen, head + RESP_BULK_HEAD_MAX, lk.value_len);
            c->out.len += hlen + lk.value_len;
            c->out.data[c->out.len++] = '\r';
            c->out.data[c->out.len++] = '\n';
            c->log_bytes += lk.value_len;
            return true;
        }
        /* Gone since the probe: ask Redis, and come back. */
        it->kind = RESP_MGET_FETCH;
        it->fetch = true;
        m->pending = 1;
        c->state = CONN_WAITING;
        backend_get(c->worker->backend, key, key_len, &it->waiter,
                    worker_resp_mget_cb, it);
        return false;
    case RESP_MGET_FETCH:
        if (it->value != NULL) {
            /* A large value by reference, as GET sends it. */
            rc = worker_resp_append_value(c, it->value);
            c->log_bytes += it->value->len;
            value_unref(it->value);
            it->value = NULL;
        } else if (resp_backend_fails_mget(it->result)) {
            /* Only after the array has started (see the file comment). */
            rc = resp_append_backend_reply(&c->out, it->result, NULL, 0);
        } else {
            rc = resp_append_mget_item(&c->out, it->result, NULL, 0);
        }
        break;
    case RESP_MGET_EMPTY:
    default:
        rc = resp_append_bulk(&c->out, "", 0);
        break;
    }
    if (rc != 0) {
        worker_conn_close(c);
        return false;
    }
    return true;
}

void
worker_resp_mget_resume(struct conn *c)
{
    struct resp_mget *m = c->mget;

    if (!m->started) {
        m->started = true;
        if (resp_append_array(&c->out, m->n) != 0) {
            worker_conn_close(c);
            return;
        }
    }
    while (m->next < m->n) {
        if (worker_conn_unsent(c) >= WORKER_OUT_HIGH_WATER) {
            return; /* resumed once out drains */
        }
        if (!worker_resp_mget_item(c, m->next)) {
            return; /* WAITING, or closed */
        }
        m->next++;
    }
    worker_resp_count(c, METRICS_CODE_RESP_OK);
    worker_resp_mget_done(c);
}

/* Every fetch is in: fail the whole command, or start emitting. */
static void
worker_resp_mget_fetched(struct conn *c)
{
    struct resp_mget *m = c->mget;

    c->state = CONN_READING;
    if (!m->started) {
        for (size_t i = 0; i < m->n; i++) {
            enum backend_result r = m->items[i].result;

            if (m->items[i].kind == RESP_MGET_FETCH
                && resp_backend_fails_mget(r)) {
                worker_resp_count(c, METRICS_CODE_RESP_ERR);
                if (resp_append_backend_reply(&c->out, r, NULL, 0) != 0) {
                    worker_conn_close(c);
                    return;
                }
                worker_resp_mget_done(c);
                worker_conn_schedule(c);
                return;
            }
        }
    }
    c->resume = worker_resp_mget_resume;
    worker_conn_schedule(c);
}

void
worker_resp_mget_cb(struct backend_waiter *wt, const struct backend_reply *r)
{
    struct resp_mget_item *it = wt->data;
    struct resp_mget      *m = it->mget;

    it->result = r->result;
    if (r->result == BACKEND_VALUE && r->value != NULL) {
        it->value = value_ref(r->value);
    } else if (r->result == BACKEND_VALUE) {
        it->value = value_create(r->len);
        if (it->value == NULL) {
            it->result = BACKEND_UNREACHABLE;
        } else if (r->len > 0) {
            memcpy(it->value->data, r->data, r->len);
        }
    }
    if (--m->pending == 0) {
        worker_resp_mget_fetched(m->conn);
    }
}

bool
worker_resp_mget(struct conn *c, const struct resp_command *cmd)
{
    struct worker    *w = c->worker;
    size_t            n = cmd->argc - 1;
    uint64_t          now_ms = cache_clock_ms();
    struct resp_mget *m;

    m = calloc(1, sizeof(*m) + n * sizeof(m->items[0]));
    if (m == NULL) {
        worker_conn_close(c);
        return true;
    }
    m->conn = c;
    m->n = n;
    c->mget = m;
    c->log_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        struct resp_mget_item *it = &m->items[i];
        struct cache_lookup    lk = { .dst = NULL, .dst_cap = 0 };
        size_t                 key_len;
        const char            *key = worker_resp_mget_key(c, i, &key_len);

        it->mget = m;
        /* No room for the value: a cached non-empty value says
         * TRUNCATED without a copy, a hit count or an LRU record; it is
         * read at its turn.  An empty value is a whole hit now. */
        switch (worker_cache_trusted(w)
                    ? cache_get(w->params->cache, key, key_len, now_ms, &lk)
                    : CACHE_MISS) {
        case CACHE_TRUNCATED:
        case CACHE_STALE:
            /* A stale one is judged at its turn by worker_cache_copy
             * (stale-while-revalidate), or fetched then. */
            it->kind = RESP_MGET_CACHED;
            break;
        case CACHE_HIT:
            if (lk.negative) {
                /* A remembered absence (--negative-ttl): nil. */
                it->kind = RESP_MGET_FETCH;
                it->result = BACKEND_NIL;
                if (w->params->metrics != NULL) {
                    metrics_bump(&w->params->metrics->negative_hits);
                }
            } else {
                it->kind = RESP_MGET_EMPTY;
            }
            break;
        default:
            it->kind = RESP_MGET_FETCH;
            it->fetch = true;
            m->pending++;
            break;
        }
    }
    if (m->pending == 0) {
        c->resume = worker_resp_mget_resume;
        return true;
    }
    c->state = CONN_WAITING;
    for (size_t i = 0; i < n; i++) {
        struct resp_mget_item *it = &m->items[i];
        size_t                 key_len;
        const char            *key = worker_resp_mget_key(c, i, &key_len);

        if (it->fetch) {
            backend_get(w->backend, key, key_len, &it->waiter,
                        worker_resp_mget_cb, it);
        }
    }
    return false;
}
