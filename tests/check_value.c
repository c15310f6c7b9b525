/*
 * check_value: a value's references, and the giving back of a big
 * value's mapping in bounded steps (value_reap), so that freeing 256 MB
 * never costs the worker one long munmap().  Whether a range is still
 * mapped is asked of mincore(), which fails with ENOMEM on a hole.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "value.h"

/* True when every page of [p, p + len) is mapped. */
static bool
mapped(const char *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page;
    unsigned char *vec = malloc(pages);
    int rc;

    ck_assert_ptr_nonnull(vec);
    rc = mincore((void *)p, len, vec);
    free(vec);
    if (rc != 0) {
        ck_assert_int_eq(errno, ENOMEM);
    }
    return rc == 0;
}

/* True when no page of [p, p + len) is mapped. */
static bool
unmapped(const char *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    for (size_t at = 0; at < len; at += page) {
        if (mapped(p + at, 1)) {
            return false;
        }
    }
    return true;
}

START_TEST(small_value_is_freed_at_once)
{
    struct value *v = value_create(100);

    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(v->map_len, 0);
    memset(v->data, 'x', 100);
    ck_assert_ptr_eq(value_ref(v), v);
    value_unref(v);
    ck_assert_uint_eq(v->refs, 1);
    value_unref(v);
    ck_assert(!value_reap_pending());
    ck_assert(!value_reap());
}
END_TEST

START_TEST(mapping_up_to_one_step_is_unmapped_at_once)
{
    struct value *v = value_create(VALUE_REAP_STEP_BYTES - 1);
    char *data;
    size_t len;

    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(v->map_len, VALUE_REAP_STEP_BYTES);
    data = v->data;
    len = v->map_len;
    memset(data, 'x', v->len);
    value_unref(v);
    ck_assert(!value_reap_pending());
    ck_assert(unmapped(data, len));
}
END_TEST

START_TEST(big_mapping_is_given_back_in_steps)
{
    size_t len = 10 * VALUE_REAP_STEP_BYTES + 12345;
    struct value *v = value_create(len);
    char *data;
    size_t map_len, left;
    unsigned steps = 0;

    ck_assert_ptr_nonnull(v);
    data = v->data;
    map_len = v->map_len;
    memset(data, 'x', len);
    value_unref(v);
    /* Nothing given back yet: the last unref only queues it. */
    ck_assert(value_reap_pending());
    ck_assert(mapped(data, map_len));
    left = map_len;
    while (value_reap_pending()) {
        bool more = value_reap();
        size_t step = left < VALUE_REAP_STEP_BYTES ? left
                                                   : VALUE_REAP_STEP_BYTES;

        left -= step;
        steps++;
        /* One step from the end; the rest still mapped. */
        ck_assert(unmapped(data + left, step));
        if (left > 0) {
            ck_assert(mapped(data, left));
        }
        ck_assert(more == (left > 0));
    }
    ck_assert_uint_eq(left, 0);
    ck_assert_uint_eq(steps, (map_len + VALUE_REAP_STEP_BYTES - 1)
                                 / VALUE_REAP_STEP_BYTES);
}
END_TEST

START_TEST(dead_mappings_go_in_order_and_all_at_exit)
{
    struct value *a = value_create(3 * VALUE_REAP_STEP_BYTES);
    struct value *b = value_create(2 * VALUE_REAP_STEP_BYTES);
    char *da, *db;
    size_t la, lb;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    da = a->data;
    la = a->map_len;
    db = b->data;
    lb = b->map_len;
    value_unref(a);
    value_unref(b);
    /* The first dead one goes first. */
    ck_assert(value_reap());
    ck_assert(mapped(db, lb));
    value_reap_all();
    ck_assert(!value_reap_pending());
    ck_assert(unmapped(da, la));
    ck_assert(unmapped(db, lb));
}
END_TEST

static Suite *
value_suite(void)
{
    Suite *s = suite_create("value");
    TCase *tc = tcase_create("refs_and_reap");

    tcase_add_test(tc, small_value_is_freed_at_once);
    tcase_add_test(tc, mapping_up_to_one_step_is_unmapped_at_once);
    tcase_add_test(tc, big_mapping_is_given_back_in_steps);
    tcase_add_test(tc, dead_mappings_go_in_order_and_all_at_exit);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(value_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
