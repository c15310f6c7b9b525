/*
 * worker_resp_mget: MGET, answered in parts with backpressure, so one
 * command cannot take gigabytes or stall the worker, whether its keys
 * are cached (MGET of a cached 1 MB key 1,000 times used to copy every
 * value into a side array and then again into the output, 1.9 GB) or
 * missing (200 missing 1 MB keys used to be fetched all at once and held
 * until the last came in, 216 MB).
 *
 *   probe every key (a lookup with no room: no copy, no LRU record)
 *     |
 *     v
 *   first window: the first misses asked of the backend (a reply holds
 *   a reference to the backend's shared value, not a copy); WAITING
 *     |                                     | one failed (and no stale
 *     | all in                              v copy --stale-if-error may
 *     |                    the whole answer is an error, as Redis fails
 *     |                    the whole command (nothing sent yet) --> done
 *     v
 *   emit: "*N", then each key in order, straight from the cache (or the
 *   held value) into the output, stopping whenever the output is past
 *   WORKER_OUT_HIGH_WATER; the connection's resume hook brings us back
 *   once it drains (worker_conn_run).  Each emitted value makes room in
 *   the window, and the next misses are asked then: so fetching keeps
 *   ahead of the client by at most the window, and no further.  A key
 *   whose turn comes before its value is WAITING again, until it is in.
 *
 * The window (worker_resp_mget_pump): at most RESP_MGET_WINDOW_KEYS
 * fetches in flight, and values in or in flight (each guessed as large
 * as the largest seen) under RESP_MGET_WINDOW_BYTES; the next key due is
 * always asked, so the answer always moves.  So the memory of an MGET is
 * its item array, the window, and at most the high-water mark plus one
 * value of output, whatever the number of keys (a value much larger than
 * those before it can overshoot the guess once, by at most the window's
 * keys times --max-reply-size).  A miss is probed again before it is
 * asked: an earlier fetch of this MGET may have stored it.
 *
 * A fetch that Redis fails (unreachable, timed out) is answered from the
 * recently expired copy when --stale-if-error allows, as GET is.  After
 * the first window the array is already started, so a failure there (or
 * of a key evicted between the probe and its turn) is that element's
 * error.
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
worker_resp_mget_free(struct worker_conn *c)
{
    struct worker_resp_mget *m = c->mget;

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
worker_resp_mget_key(const struct worker_conn *c, size_t i, size_t *len)
{
    *len = c->argv[i + 1].len;
    return c->in.data + c->argv[i + 1].off;
}

/* The command is answered: log it, drop its bytes, parse the next. */
static void
worker_resp_mget_done(struct worker_conn *c)
{
    worker_resp_mget_free(c);
    worker_resp_finish(c);
}

/* Judges item i from the cache without copying it: CACHED (read at its
 * turn), EMPTY, a remembered absence (FETCH, already NIL), or FETCH to
 * be asked of Redis. */
static void
worker_resp_mget_probe(struct worker_conn *c, size_t i, uint64_t now_ms)
{
    struct worker                *w = c->worker;
    struct worker_resp_mget_item *it = &c->mget->items[i];
    struct cache_lookup           lk = { .dst = NULL, .dst_cap = 0 };
    size_t                        key_len;
    const char                   *key = worker_resp_mget_key(c, i, &key_len);

    /* No room for the value: a cached non-empty value says TRUNCATED
     * without a copy, a hit count or an LRU record; it is read at its
     * turn.  An empty value is a whole hit now. */
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
            it->issued = true;
            it->arrived = true;
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
        break;
    }
}

static void
worker_resp_mget_issue(struct worker_conn *c, size_t i)
{
    struct worker_resp_mget      *m = c->mget;
    struct worker_resp_mget_item *it = &m->items[i];
    size_t                        key_len;
    const char                   *key = worker_resp_mget_key(c, i, &key_len);

    it->issued = true;
    m->pending++;
    backend_get(c->worker->backend, key, key_len, &it->waiter,
                worker_resp_mget_cb, it);
}

/* Asks Redis for the next misses, as far as the window allows (see the
 * file comment); the key due next is always asked. */
static void
worker_resp_mget_pump(struct worker_conn *c)
{
    struct worker_resp_mget *m = c->mget;
    uint64_t                 now_ms = cache_clock_ms();

    while (m->fetch_next < m->n) {
        size_t                        i = m->fetch_next;
        struct worker_resp_mget_item *it = &m->items[i];
        size_t guess = m->max_len > 0 ? m->max_len : RESP_MGET_GUESS_BYTES;

        if (it->kind != RESP_MGET_FETCH || it->issued) {
            m->fetch_next++;
            continue;
        }
        if (i != m->next
            && (m->pending >= RESP_MGET_WINDOW_KEYS
                || m->held_bytes + (m->pending + 1) * guess
                       > RESP_MGET_WINDOW_BYTES)) {
            return;
        }
        if (m->started) {
            /* An earlier fetch of this command may have stored it. */
            worker_resp_mget_probe(c, i, now_ms);
            if (it->kind != RESP_MGET_FETCH || it->issued) {
                m->fetch_next++;
                continue;
            }
        }
        worker_resp_mget_issue(c, i);
        m->fetch_next++;
    }
}

/* Appends a fetched item: its value, nil, or its failure. */
static int
worker_resp_mget_fetched_item(struct worker_conn           *c,
                              struct worker_resp_mget_item *it)
{
    struct worker_resp_mget *m = c->mget;
    int                      rc;

    if (it->value == NULL) {
        if (resp_backend_fails_mget(it->result)) {
            /* Only after the array has started (see the file comment). */
            return resp_append_backend_reply(&c->out, it->result, NULL, 0);
        }
        return resp_append_mget_item(&c->out, it->result, NULL, 0);
    }
    /* A large value by reference, as GET sends it (worker_out.c). */
    rc = worker_resp_append_value(c, it->value);
    c->log_bytes += it->value->len;
    m->held_bytes -= it->value->len;
    value_unref(it->value);
    it->value = NULL;
    return rc;
}

/* Appends item i; false when it has to be asked of Redis first (its
 * fetch not in yet, or a key evicted since the probe: WAITING) or out of
 * memory (the connection closed). */
static bool
worker_resp_mget_item(struct worker_conn *c, size_t i)
{
    struct worker_resp_mget      *m = c->mget;
    struct worker_resp_mget_item *it = &m->items[i];
    struct cache_lookup           lk;
    const char                   *key;
    size_t                        key_len;
    char                         *head;
    int                           rc;

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
            resp_end_bulk_in_place(&c->out, lk.value_len);
            c->log_bytes += lk.value_len;
            return true;
        }
        /* Gone since the probe: ask Redis, and come back. */
        it->kind = RESP_MGET_FETCH;
        worker_resp_mget_issue(c, i);
        c->state = CONN_WAITING;
        return false;
    case RESP_MGET_FETCH:
        if (!it->arrived) {
            if (!it->issued) {
                worker_resp_mget_pump(c); /* asks for it: next due */
            }
            c->state = CONN_WAITING;
            return false;
        }
        rc = worker_resp_mget_fetched_item(c, it);
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
worker_resp_mget_resume(struct worker_conn *c)
{
    struct worker_resp_mget *m = c->mget;

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
        worker_resp_mget_pump(c);
    }
    worker_resp_count(c, METRICS_CODE_RESP_OK);
    worker_resp_mget_done(c);
}

/* The first window is in: fail the whole command, or start emitting. */
static void
worker_resp_mget_start(struct worker_conn *c)
{
    struct worker_resp_mget *m = c->mget;

    c->state = CONN_READING;
    for (size_t i = 0; i < m->fetch_next; i++) {
        enum backend_result r = m->items[i].result;

        if (m->items[i].kind == RESP_MGET_FETCH && m->items[i].arrived
            && m->items[i].value == NULL && resp_backend_fails_mget(r)) {
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
    c->resume = worker_resp_mget_resume;
    worker_conn_schedule(c);
}

/* Redis failed item i: --stale-if-error may answer it from a recently
 * expired copy, held as a value of its own until its turn.  True when
 * it did. */
static bool
worker_resp_mget_stale(struct worker_conn *c, struct worker_resp_mget_item *it)
{
    struct worker_resp_mget *m = it->mget;
    struct cache_lookup      lk;
    struct buf               tmp = { 0 };
    size_t                   key_len;
    const char              *key =
        worker_resp_mget_key(c, (size_t) (it - m->items), &key_len);
    bool ok = false;

    if (c->worker->cfg->stale_if_error_ms == 0
        || !worker_cache_stale_if_error(c->worker, &tmp, 0, 0, key, key_len,
                                        &lk)) {
        buf_free(&tmp);
        return false;
    }
    if (lk.negative) {
        it->result = BACKEND_NIL; /* a remembered absence */
        ok = true;
    } else if ((it->value = value_create(lk.value_len)) != NULL) {
        memcpy(it->value->data, tmp.data, lk.value_len);
        it->result = BACKEND_VALUE;
        ok = true;
    }
    buf_free(&tmp);
    return ok;
}

void
worker_resp_mget_cb(struct backend_waiter *wt, const struct backend_reply *r)
{
    struct worker_resp_mget_item *it = wt->data;
    struct worker_resp_mget      *m = it->mget;
    struct worker_conn           *c = m->conn;

    it->arrived = true;
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
    } else if (r->result == BACKEND_UNREACHABLE
               || r->result == BACKEND_TIMEOUT) {
        (void) worker_resp_mget_stale(c, it);
    }
    if (it->value != NULL) {
        m->held_bytes += it->value->len;
        if (it->value->len > m->max_len) {
            m->max_len = it->value->len;
        }
    }
    m->pending--;
    if (!m->started) {
        if (m->pending == 0) {
            worker_resp_mget_start(c);
        }
        return;
    }
    worker_resp_mget_pump(c);
    if (c->state == CONN_WAITING && &m->items[m->next] == it) {
        /* The key due next: emitting goes on. */
        c->state = CONN_READING;
        worker_conn_schedule(c);
    }
}

bool
worker_resp_mget(struct worker_conn *c, const struct resp_command *cmd)
{
    size_t                   n = cmd->argc - 1;
    uint64_t                 now_ms = cache_clock_ms();
    struct worker_resp_mget *m;

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
        m->items[i].mget = m;
        worker_resp_mget_probe(c, i, now_ms);
    }
    worker_resp_mget_pump(c);
    if (m->pending == 0) {
        c->resume = worker_resp_mget_resume;
        return true;
    }
    c->state = CONN_WAITING;
    return false;
}
