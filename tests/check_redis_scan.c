/*
 * check_redis_scan: the reply scanner, one table row per case with a
 * .why, each run whole, byte by byte, and split at every point; plus the
 * size bound on a reply that keeps going after it is too large.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_scan.h"

struct scan_case {
    const char         *in;
    size_t              len;        /* 0: strlen(in) */
    uint64_t            max;        /* 0: no bound */
    enum redis_scan_rc  rc;
    size_t              used;       /* DONE / BULK: bytes consumed */
    int64_t             bulk_len;   /* BULK, or -1 for a nil DONE */
    bool                too_large;
    const char         *why;
};

static const struct scan_case cases[] = {
    { "+OK\r\n", 0, 0, REDIS_SCAN_DONE, 5, -1, false, "status" },
    { "-ERR no\r\n", 0, 0, REDIS_SCAN_DONE, 9, -1, false, "error" },
    { ":123\r\n", 0, 0, REDIS_SCAN_DONE, 6, -1, false, "integer" },
    { ":-5\r\n", 0, 0, REDIS_SCAN_DONE, 5, -1, false, "negative integer" },
    { ":\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false, "integer without digits" },
    { ":12a\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false, "integer with garbage" },
    { "$-1\r\n", 0, 0, REDIS_SCAN_DONE, 5, -1, false, "nil bulk" },
    { "$5\r\nhello\r\n", 0, 0, REDIS_SCAN_BULK, 4, 5, false,
      "bulk: stops after the header" },
    { "$0\r\n\r\n", 0, 0, REDIS_SCAN_BULK, 4, 0, false, "empty bulk" },
    { "$600000000\r\n", 0, 100, REDIS_SCAN_BULK, 12, 600000000, false,
      "a big bulk is the caller's to bound" },
    { "$-2\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false, "bad bulk length" },
    { "$abc\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false, "bulk length text" },
    { "$99999999999999999999\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false,
      "bulk length past int64" },
    { "$9999999999999999999\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false,
      "bulk length of 19 digits past int64" },
    { "$9223372036854775808\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false,
      "bulk length one past INT64_MAX" },
    { "*9999999999999999999\r\n:1\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1,
      false, "array count of 19 digits past int64" },
    { "*0\r\n", 0, 0, REDIS_SCAN_DONE, 4, -1, false, "empty array" },
    { "*-1\r\n", 0, 0, REDIS_SCAN_DONE, 5, -1, false, "nil array" },
    { "*2\r\n$3\r\nfoo\r\n:1\r\n", 0, 0, REDIS_SCAN_DONE, 17, -1, false,
      "array of bulk and integer" },
    { "*2\r\n*1\r\n+a\r\n$-1\r\n", 0, 0, REDIS_SCAN_DONE, 17, -1, false,
      "nested array, then a nil" },
    { "*1\r\n$4\r\na\r\nb\r\n", 0, 0, REDIS_SCAN_DONE, 14, -1, false,
      "a nested bulk may hold CR LF" },
    { "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0, 0,
      REDIS_SCAN_DONE, 32, -1, false, "seven levels: the limit" },
    { "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0, 0,
      REDIS_SCAN_BAD, 0, -1, false, "eight levels: too deep" },
    { "?x\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false, "unknown type" },
    { "\r\n", 0, 0, REDIS_SCAN_BAD, 0, -1, false, "empty line" },
    { "+OK\rX", 0, 0, REDIS_SCAN_BAD, 0, -1, false, "CR without LF" },
    { "*2\r\n$20\r\n01234567890123456789\r\n:1\r\n", 0, 10,
      REDIS_SCAN_DONE, 35, -1, true,
      "too large: scanned to its end all the same" },
    { "*1\r\n:1\r\n", 0, 8, REDIS_SCAN_DONE, 8, -1, false,
      "exactly the bound is not too large" },
    { "*1\r\n:1\r\n", 0, 7, REDIS_SCAN_DONE, 8, -1, true,
      "one byte past the bound is" },
    { "+OK\r\n+NEXT\r\n", 0, 0, REDIS_SCAN_DONE, 5, -1, false,
      "stops at the end of the first reply" },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static uint64_t
case_max(const struct scan_case *c)
{
    return c->max != 0 ? c->max : UINT64_MAX;
}

static size_t
case_len(const struct scan_case *c)
{
    return c->len != 0 ? c->len : strlen(c->in);
}

static void
check_end(const struct scan_case *c, const struct redis_scan *st,
          enum redis_scan_rc rc, size_t consumed, const char *how)
{
    ck_assert_msg(rc == c->rc, "%s (%s): rc %d, want %d", c->why, how, rc,
                  c->rc);
    if (rc == REDIS_SCAN_BAD) {
        return;
    }
    ck_assert_msg(consumed == c->used, "%s (%s): used %zu, want %zu", c->why,
                  how, consumed, c->used);
    ck_assert_msg(st->too_large == c->too_large, "%s (%s): too_large",
                  c->why, how);
    ck_assert_msg(st->bulk_len == c->bulk_len, "%s (%s): bulk_len", c->why,
                  how);
    if (!st->too_large) {
        ck_assert_msg(st->size == consumed, "%s (%s): size", c->why, how);
    }
}

START_TEST(scan_whole)
{
    const struct scan_case *c = &cases[_i];
    struct redis_scan st;
    size_t used = 0;
    enum redis_scan_rc rc;

    redis_scan_init(&st, case_max(c));
    rc = redis_scan(&st, c->in, case_len(c), &used);
    check_end(c, &st, rc, used, "whole");
}
END_TEST

START_TEST(scan_byte_by_byte)
{
    const struct scan_case *c = &cases[_i];
    size_t len = case_len(c), consumed = 0, i;
    struct redis_scan st;
    enum redis_scan_rc rc = REDIS_SCAN_AGAIN;

    /* Each call sees the bytes not consumed yet, one more each time;
     * a heap copy lets ASan catch a read past what was given. */
    redis_scan_init(&st, case_max(c));
    for (i = 1; i <= len && rc == REDIS_SCAN_AGAIN; i++) {
        char *p = malloc(i - consumed);
        size_t used = 0;

        ck_assert_ptr_nonnull(p);
        memcpy(p, c->in + consumed, i - consumed);
        rc = redis_scan(&st, p, i - consumed, &used);
        free(p);
        ck_assert_uint_le(used, i - consumed);
        consumed += used;
    }
    check_end(c, &st, rc, consumed, "byte by byte");
}
END_TEST

START_TEST(scan_split)
{
    const struct scan_case *c = &cases[_i];
    size_t len = case_len(c), split;

    for (split = 0; split <= len; split++) {
        struct redis_scan st;
        size_t used = 0, used2 = 0;
        enum redis_scan_rc rc;

        redis_scan_init(&st, case_max(c));
        rc = redis_scan(&st, c->in, split, &used);
        if (rc == REDIS_SCAN_AGAIN) {
            rc = redis_scan(&st, c->in + used, len - used, &used2);
        }
        check_end(c, &st, rc, used + used2, "split");
    }
}
END_TEST

START_TEST(scan_long_line)
{
    size_t n = REDIS_SCAN_LINE_MAX + 8;
    char *p = malloc(n);
    struct redis_scan st;
    size_t used = 0;

    /* A status line with no end in sight is refused, not buffered. */
    ck_assert_ptr_nonnull(p);
    memset(p, 'x', n);
    p[0] = '+';
    redis_scan_init(&st, UINT64_MAX);
    ck_assert_int_eq(redis_scan(&st, p, n, &used), REDIS_SCAN_BAD);
    /* Shorter than the limit: still waiting for its end. */
    redis_scan_init(&st, UINT64_MAX);
    ck_assert_int_eq(redis_scan(&st, p, 1000, &used), REDIS_SCAN_AGAIN);
    ck_assert_uint_eq(used, 0);
    free(p);
}
END_TEST

START_TEST(scan_too_large_streams)
{
    /* A 1 MB nested bulk under a 1 KB bound, fed in 4 KB pieces: the
     * scanner consumes every piece, so the caller holds none of it. */
    size_t payload = 1024 * 1024, total, off = 0;
    char head[] = "*1\r\n$1048576\r\n";
    char *p;
    struct redis_scan st;
    enum redis_scan_rc rc = REDIS_SCAN_AGAIN;

    total = strlen(head) + payload + 2;
    p = malloc(total);
    ck_assert_ptr_nonnull(p);
    memcpy(p, head, strlen(head));
    memset(p + strlen(head), 'v', payload);
    memcpy(p + total - 2, "\r\n", 2);
    redis_scan_init(&st, 1024);
    while (off < total && rc == REDIS_SCAN_AGAIN) {
        size_t n = total - off < 4096 ? total - off : 4096, used = 0;

        rc = redis_scan(&st, p + off, n, &used);
        if (off >= strlen(head)) {
            ck_assert_uint_eq(used, n);
        }
        off += used;
    }
    ck_assert_int_eq(rc, REDIS_SCAN_DONE);
    ck_assert(st.too_large);
    ck_assert_uint_eq(off, total);
    free(p);
}
END_TEST

static Suite *
redis_scan_suite(void)
{
    Suite *s = suite_create("redis_scan");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, scan_whole, 0, NCASES);
    tcase_add_loop_test(tc, scan_byte_by_byte, 0, NCASES);
    tcase_add_loop_test(tc, scan_split, 0, NCASES);
    tcase_add_test(tc, scan_long_line);
    tcase_add_test(tc, scan_too_large_streams);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(redis_scan_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
