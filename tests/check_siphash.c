/*
 * check_siphash: the one-shot siphash13() (the cache's and the in-flight
 * table's key hash) gives, under the ETag's fixed key, the hash etag.c
 * gives fed in pieces, at every length across the word boundaries.  The
 * ETag's own known tags are pinned in check_cache (test_etag_in_pieces),
 * so this pins siphash13() to SipHash-1-3 too.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "etag.h"
#include "siphash.h"

/* etag.c's fixed key. */
static const uint64_t check_key[2] = { UINT64_C(0x7263702d65746167),
                                       UINT64_C(0x76616c7565206964) };

static unsigned char check_buf[1000];

static void
check_fill(void)
{
    for (size_t i = 0; i < sizeof(check_buf); i++) {
        check_buf[i] = (unsigned char) (i * 7 + 3);
    }
}

START_TEST(one_shot_agrees_with_the_etag_at_every_length)
{
    check_fill();
    for (size_t len = 0; len <= 64; len++) {
        ck_assert_uint_eq(siphash13(check_key, check_buf, len),
                          etag_of(check_buf, len));
    }
    ck_assert_uint_eq(siphash13(check_key, check_buf, sizeof(check_buf)),
                      etag_of(check_buf, sizeof(check_buf)));
}
END_TEST

START_TEST(the_key_matters)
{
    static const uint64_t other[2] = { 1, 2 };

    check_fill();
    ck_assert_uint_ne(siphash13(other, check_buf, 8),
                      siphash13(check_key, check_buf, 8));
}
END_TEST

static Suite *
siphash_suite(void)
{
    Suite *s = suite_create("siphash");
    TCase *tc = tcase_create("siphash13");

    tcase_add_test(tc, one_shot_agrees_with_the_etag_at_every_length);
    tcase_add_test(tc, the_key_matters);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(siphash_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
