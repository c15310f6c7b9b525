/*
 * worker_out: a connection's output, bytes and shared values in order.
 *
 * Answers are bytes in c->out, except the payload of a large value (from
 * WORKER_SHARE_MIN on), which is not copied: the connection holds a
 * reference to the one struct value its clients share and writes from
 * it in place.  Any number of values may be queued, for HTTP and RESP
 * alike (pipelined GETs, an MGET's items), so a client reading a 256 MB
 * value costs a reference, whatever the protocol and wherever the value
 * falls in its answers.
 *
 * The queue is a ring of splices, oldest first.  A splice's gap is the
 * number of out's pending bytes that go between the previous splice (or
 * the start, out.pos) and its value:
 *
 *   out:    [ gap 0 bytes ][ gap 1 bytes ][ bytes after the last ]
 *   values:               ^ value 0      ^ value 1
 *
 * Gaps count pending bytes, never offsets into out.data, so they stay
 * true when buf_reserve() rewinds out or moves its pending bytes to the
 * front, which any append may do.  Invariants:
 *   out_gaps == the sum of the splices' gaps <= buf_pending(&c->out);
 *   out_values_unsent == the sum of (value->len - sent);
 *   a splice leaves the ring once its gap and its value are written.
 * Writing takes the pieces in order into one writev(), at most
 * WORKER_OUT_IOV_MAX of them and at most the budget's bytes.
 */
#include "rcp_autoconf.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "value.h"
#include "worker_conn.h"

#define WORKER_OUT_RING_MIN 4

static struct worker_out_splice *
worker_out_at(const struct worker_conn *c, size_t i)
{
    return &c->out_ring[(c->out_head + i) & (c->out_cap - 1)];
}

/* Room for one more splice: the ring doubles (its capacity is a power of
 * two) and is unwrapped into the new storage.  0 or -ENOMEM. */
static int
worker_out_grow(struct worker_conn *c)
{
    struct worker_out_splice *ring;
    size_t                    cap;

    if (c->out_len < c->out_cap) {
        return 0;
    }
    cap = c->out_cap == 0 ? WORKER_OUT_RING_MIN : c->out_cap * 2;
    ring = malloc(cap * sizeof(*ring));
    if (ring == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->out_len; i++) {
        ring[i] = *worker_out_at(c, i);
    }
    free(c->out_ring);
    c->out_ring = ring;
    c->out_cap = cap;
    c->out_head = 0;
    return 0;
}

int
worker_out_append_value(struct worker_conn *c, struct value *v)
{
    struct worker_out_splice *s;
    size_t                    pending = buf_pending(&c->out);

    if (v->len < WORKER_SHARE_MIN) {
        return buf_append(&c->out, v->data, v->len);
    }
    if (worker_out_grow(c) != 0) {
        return -ENOMEM;
    }
    assert(c->out_gaps <= pending);
    s = worker_out_at(c, c->out_len++);
    s->value = value_ref(v);
    s->gap = pending - c->out_gaps;
    s->sent = 0;
    c->out_gaps = pending;
    c->out_values_unsent += v->len;
    return 0;
}

int
worker_out_iov(const struct worker_conn *c, struct iovec *iov, size_t room)
{
    const char *p = c->out.data + c->out.pos;
    int         n = 0;

    for (size_t i = 0; i < c->out_len && room > 0; i++) {
        const struct worker_out_splice *s = worker_out_at(c, i);
        size_t                          left = s->value->len - s->sent;

        if (s->gap > 0) {
            if (n == WORKER_OUT_IOV_MAX) {
                return n;
            }
            iov[n].iov_base = (void *) p;
            iov[n++].iov_len = s->gap < room ? s->gap : room;
            room -= iov[n - 1].iov_len;
            p += s->gap;
        }
        if (left > 0 && room > 0) {
            if (n == WORKER_OUT_IOV_MAX) {
                return n;
            }
            iov[n].iov_base = s->value->data + s->sent;
            iov[n++].iov_len = left < room ? left : room;
            room -= iov[n - 1].iov_len;
        }
    }
    if (room > 0 && p < c->out.data + c->out.len) {
        size_t tail = (size_t) (c->out.data + c->out.len - p);

        if (n < WORKER_OUT_IOV_MAX) {
            iov[n].iov_base = (void *) p;
            iov[n++].iov_len = tail < room ? tail : room;
        }
    }
    return n;
}

void
worker_out_advance(struct worker_conn *c, size_t n)
{
    while (n > 0 && c->out_len > 0) {
        struct worker_out_splice *s = worker_out_at(c, 0);
        size_t                    take = n < s->gap ? n : s->gap;
        size_t                    left;

        c->out.pos += take;
        s->gap -= take;
        c->out_gaps -= take;
        n -= take;
        left = s->value->len - s->sent;
        take = n < left ? n : left;
        s->sent += take;
        c->out_values_unsent -= take;
        n -= take;
        if (s->gap > 0 || s->sent < s->value->len) {
            assert(n == 0);
            return;
        }
        value_unref(s->value);
        s->value = NULL;
        c->out_head = (c->out_head + 1) & (c->out_cap - 1);
        c->out_len--;
    }
    assert(n <= buf_pending(&c->out));
    c->out.pos += n;
}

void
worker_out_drop(struct worker_conn *c)
{
    while (c->out_len > 0) {
        struct worker_out_splice *s = worker_out_at(c, 0);

        value_unref(s->value);
        s->value = NULL;
        c->out_head = (c->out_head + 1) & (c->out_cap - 1);
        c->out_len--;
    }
    c->out_head = 0;
    c->out_gaps = 0;
    c->out_values_unsent = 0;
}

void
worker_out_free(struct worker_conn *c)
{
    worker_out_drop(c);
    free(c->out_ring);
    c->out_ring = NULL;
    c->out_cap = 0;
}
