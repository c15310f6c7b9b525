/*
 * check_worker_out: a connection's output of bytes and shared values.
 * The stream written (what worker_out_iov hands out, consumed in steps
 * of every size by worker_out_advance) must equal the bytes and values
 * in the order they were appended, while appends in between make out
 * rewind or move its pending bytes to the front (buf_reserve), and each
 * value must be released once written.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "value.h"
#include "worker_conn.h"

static struct value *
make_value(size_t len, char fill)
{
    struct value *v = value_create(len);

    ck_assert_ptr_nonnull(v);
    memset(v->data, fill, len);
    return v;
}

/* Writes up to max bytes as the worker would: one worker_out_iov, a
 * "writev" of at most max, then advance.  Appends them to sink. */
static size_t
drain_some(struct worker_conn *c, struct buf *sink, size_t room, size_t max)
{
    struct iovec iov[WORKER_OUT_IOV_MAX];
    int          n = worker_out_iov(c, iov, room);
    size_t       done = 0;

    ck_assert_int_gt(n, 0);
    for (int i = 0; i < n && done < max; i++) {
        size_t k = iov[i].iov_len < max - done ? iov[i].iov_len
                                               : max - done;

        ck_assert_int_eq(buf_append(sink, iov[i].iov_base, k), 0);
        done += k;
    }
    ck_assert_uint_le(done, room);
    worker_out_advance(c, done);
    return done;
}

static size_t
unsent(const struct worker_conn *c)
{
    return buf_pending(&c->out) + c->out_values_unsent;
}

/* Appends to both the connection and the expected stream. */
static void
put_bytes(struct worker_conn *c, struct buf *want, const char *s)
{
    ck_assert_int_eq(buf_append(&c->out, s, strlen(s)), 0);
    ck_assert_int_eq(buf_append(want, s, strlen(s)), 0);
}

static void
put_value(struct worker_conn *c, struct buf *want, struct value *v)
{
    ck_assert_int_eq(worker_out_append_value(c, v), 0);
    ck_assert_int_eq(buf_append(want, v->data, v->len), 0);
}

/* Steps of 1, 7, 4096, 70000 ... bytes: writes that stop anywhere. */
static const size_t steps[] = { 1, 7, 4096, 65537, 70000, 1u << 20 };

START_TEST(stream_is_in_order_whatever_the_steps)
{
    size_t step = steps[_i];
    struct worker_conn c;
    struct buf want = { 0 }, got = { 0 };
    struct value *a = make_value(WORKER_SHARE_MIN, 'a');
    struct value *b = make_value(3 * WORKER_SHARE_MIN + 5, 'b');
    struct value *small = make_value(100, 's');
    unsigned round = 0;

    memset(&c, 0, sizeof(c));
    put_bytes(&c, &want, "head0 ");
    put_value(&c, &want, a);
    put_bytes(&c, &want, "\r\nhead1 ");
    put_value(&c, &want, b);
    put_value(&c, &want, a);            /* two values, no bytes between */
    put_value(&c, &want, small);        /* small: copied into out */
    ck_assert_uint_eq(c.out_len, 3);
    ck_assert_uint_eq(a->refs, 3);
    while (unsent(&c) > 0) {
        (void)drain_some(&c, &got, 256 * 1024, step);
        /* Appends while values are queued: out rewinds or compacts. */
        if (round++ < 60 && round % 3 == 0) {
            char tail[64];

            (void)snprintf(tail, sizeof(tail), "|tail%u|", round);
            put_bytes(&c, &want, tail);
            if (round % 2 == 0) {
                put_value(&c, &want, b);
            }
        }
        ck_assert_uint_lt(round, 10000000);
    }
    ck_assert_uint_eq(unsent(&c), 0);
    ck_assert_uint_eq(c.out_len, 0);
    ck_assert_uint_eq(c.out_gaps, 0);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert(memcmp(got.data, want.data, want.len) == 0);
    /* Every reference the output took is given back. */
    ck_assert_uint_eq(a->refs, 1);
    ck_assert_uint_eq(b->refs, 1);
    value_unref(a);
    value_unref(b);
    value_unref(small);
    worker_out_free(&c);
    buf_free(&c.out);
    buf_free(&want);
    buf_free(&got);
    value_reap_all();
}
END_TEST

START_TEST(appends_that_move_out_keep_the_order)
{
    struct worker_conn c;
    struct buf want = { 0 }, got = { 0 };
    struct value *v = make_value(WORKER_SHARE_MIN * 2, 'v');
    char x[3001], y[2001];
    char *data;

    memset(&c, 0, sizeof(c));
    memset(x, 'x', sizeof(x) - 1);
    x[sizeof(x) - 1] = '\0';
    memset(y, 'y', sizeof(y) - 1);
    y[sizeof(y) - 1] = '\0';
    put_bytes(&c, &want, x);
    put_value(&c, &want, v);
    ck_assert_uint_eq(c.out.cap, 4096);
    (void)drain_some(&c, &got, 2500, 2500);
    /* 500 bytes before the value are left at out.pos 2500: 2000 more
     * do not fit after them, so buf_reserve moves them to the front. */
    data = c.out.data;
    put_bytes(&c, &want, y);
    ck_assert_ptr_eq(c.out.data, data);
    ck_assert_uint_eq(c.out.pos, 0);
    while (c.out_len > 0) {
        (void)drain_some(&c, &got, 70000, 70000);
    }
    ck_assert_uint_eq(buf_pending(&c.out), 0);
    /* A value alone, partly written: nothing of out is pending, so
     * the next append rewinds out to its start. */
    put_value(&c, &want, v);
    (void)drain_some(&c, &got, 10, 10);
    ck_assert_uint_eq(c.out.pos, c.out.len);
    put_bytes(&c, &want, "after");
    ck_assert_uint_eq(c.out.pos, 0);
    while (unsent(&c) > 0) {
        (void)drain_some(&c, &got, 70000, 70000);
    }
    ck_assert_uint_eq(got.len, want.len);
    ck_assert(memcmp(got.data, want.data, want.len) == 0);
    ck_assert_uint_eq(v->refs, 1);
    value_unref(v);
    worker_out_free(&c);
    buf_free(&c.out);
    buf_free(&want);
    buf_free(&got);
    value_reap_all();
}
END_TEST

START_TEST(room_bounds_each_call)
{
    struct worker_conn c;
    struct iovec iov[WORKER_OUT_IOV_MAX];
    struct value *v = make_value(4u << 20, 'v');
    size_t total = 0;
    int n;

    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(buf_append(&c.out, "head", 4), 0);
    ck_assert_int_eq(worker_out_append_value(&c, v), 0);
    ck_assert_int_eq(buf_append(&c.out, "\r\n", 2), 0);
    n = worker_out_iov(&c, iov, 1000);
    for (int i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    ck_assert_int_eq(n, 2);
    ck_assert_uint_eq(total, 1000);
    ck_assert_ptr_eq(iov[1].iov_base, v->data);
    ck_assert_uint_eq(iov[1].iov_len, 996);
    /* Dropping (a close) gives the reference back. */
    worker_out_drop(&c);
    ck_assert_uint_eq(v->refs, 1);
    ck_assert_uint_eq(c.out_values_unsent, 0);
    value_unref(v);
    worker_out_free(&c);
    buf_free(&c.out);
    value_reap_all();
}
END_TEST

START_TEST(many_values_fill_at_most_the_iov)
{
    struct worker_conn c;
    struct iovec iov[WORKER_OUT_IOV_MAX];
    struct value *v = make_value(WORKER_SHARE_MIN, 'm');
    int n;

    memset(&c, 0, sizeof(c));
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(buf_append(&c.out, "$65536\r\n", 8), 0);
        ck_assert_int_eq(worker_out_append_value(&c, v), 0);
        ck_assert_int_eq(buf_append(&c.out, "\r\n", 2), 0);
    }
    ck_assert_uint_eq(v->refs, 41);
    n = worker_out_iov(&c, iov, (size_t)-1);
    ck_assert_int_eq(n, WORKER_OUT_IOV_MAX);
    worker_out_free(&c);
    ck_assert_uint_eq(v->refs, 1);
    value_unref(v);
    buf_free(&c.out);
}
END_TEST

static Suite *
worker_out_suite(void)
{
    Suite *s = suite_create("worker_out");
    TCase *tc = tcase_create("stream");

    tcase_add_loop_test(tc, stream_is_in_order_whatever_the_steps, 0,
                        sizeof(steps) / sizeof(steps[0]));
    tcase_add_test(tc, appends_that_move_out_keep_the_order);
    tcase_add_test(tc, room_bounds_each_call);
    tcase_add_test(tc, many_values_fill_at_most_the_iov);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(worker_out_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
