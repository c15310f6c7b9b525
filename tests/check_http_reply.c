/*
 * Unit tests of http_reply.c: the exact heads and error bodies the data port
 * sends.
 */
#include "rcp_autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_reply.h"

static const char date[] = "Wed, 25 Nov 2026 15:00:00 GMT";

static int
contains(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

#define ETAG_X UINT64_C(0x0123456789abcdef)
#define TAG_X "\"0123456789abcdef\""

/* One head per row, formatted whole: it fits in HTTP_REPLY_HEAD_MAX and
 * ends its header block; `exact` (when set) is all of it, each of `has`
 * is in it and none of `lacks`.  content_type and date are the same for
 * every row (set by the test). */
static const struct head_case {
    struct http_reply reply;
    const char       *exact;
    const char       *has[4];
    const char       *lacks[2];
    const char       *why;
} head_cases[] = {
    { { .status = 200, .keep_alive = true, .content_length = 5,
        .cache = HTTP_REPLY_CACHE_HIT, .age_s = 12 },
      "HTTP/1.1 200 OK\r\n"
      "Server: redis-cache-proxy/" PACKAGE_VERSION "\r\n"
      "Date: Wed, 25 Nov 2026 15:00:00 GMT\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Content-Length: 5\r\n"
      "X-Cache: HIT\r\n"
      "Age: 12\r\n"
      "\r\n",
      { NULL }, { NULL }, "a hit, byte for byte" },
    { { .status = 200, .keep_alive = false, .http10 = true,
        .content_length = 0, .cache = HTTP_REPLY_CACHE_MISS },
      NULL,
      { "X-Cache: MISS\r\nAge: 0\r\n", "Content-Length: 0\r\n",
        "Connection: close\r\n" },
      { NULL }, "HTTP/1.0 miss, closing" },
    { { .status = 200, .keep_alive = true, .http10 = true,
        .content_length = 0, .cache = HTTP_REPLY_CACHE_MISS },
      NULL, { "Connection: keep-alive\r\n" }, { NULL },
      "HTTP/1.0 miss, kept alive" },
    { { .status = 505, .keep_alive = false, .content_length = UINT64_MAX,
        .cache = HTTP_REPLY_CACHE_HIT, .age_s = UINT64_MAX, .allow = true },
      NULL, { "Content-Length: 18446744073709551615\r\n" }, { NULL },
      "the longest head fits" },
    { { .status = 200, .keep_alive = true, .content_length = 5,
        .cache = HTTP_REPLY_CACHE_HIT, .age_s = 12, .has_etag = true,
        .etag = ETAG_X, .has_max_age = true, .max_age_s = 48,
        .cs = { .on = true, .hit = true, .has_ttl = true, .ttl_s = 48 } },
      NULL,
      { "Content-Length: 5\r\n"
        "ETag: " TAG_X "\r\n"
        "Cache-Control: max-age=48\r\n"
        "X-Cache: HIT\r\n"
        "Age: 12\r\n"
        "Cache-Status: redis-cache-proxy; hit; ttl=48\r\n"
        "\r\n" },
      { NULL }, "the cache headers of a hit, in order" },
    { { .status = 200, .keep_alive = true, .content_length = 5,
        .cache = HTTP_REPLY_CACHE_STALE, .age_s = 12, .has_etag = true,
        .etag = ETAG_X, .has_max_age = true, .max_age_s = 0,
        .cs = { .on = true, .hit = true, .stale = true, .has_ttl = true,
                .ttl_s = -3, .fwd_miss = true, .fwd_status = 502 } },
      NULL,
      { "X-Cache: STALE\r\nAge: 12\r\n", "Cache-Control: max-age=0\r\n",
        "Cache-Status: redis-cache-proxy; hit; stale; ttl=-3; fwd=miss; "
        "fwd-status=502\r\n" },
      { NULL }, "stale, Redis failing" },
    { { .status = 200, .keep_alive = true, .content_length = 5,
        .cache = HTTP_REPLY_CACHE_UPDATING, .age_s = 12, .has_etag = true,
        .etag = ETAG_X, .has_max_age = true, .max_age_s = 0,
        .cs = { .on = true, .hit = true, .stale = true, .has_ttl = true,
                .ttl_s = -3, .fwd_miss = true, .fwd_status = 502 } },
      NULL, { "X-Cache: UPDATING\r\n" }, { NULL }, "stale, updating" },
    { { .status = 200, .keep_alive = true, .content_length = 5,
        .cache = HTTP_REPLY_CACHE_MISS, .age_s = 12, .has_etag = true,
        .etag = ETAG_X, .has_max_age = true, .max_age_s = 0,
        .cs = { .on = true, .fwd_miss = true, .stored = true } },
      NULL,
      { "X-Cache: MISS\r\nAge: 0\r\n",
        "Cache-Status: redis-cache-proxy; fwd=miss; stored\r\n" },
      { NULL }, "a miss, stored" },
    { { .status = 200, .keep_alive = true, .content_length = 5,
        .cache = HTTP_REPLY_CACHE_MISS, .age_s = 12, .has_etag = true,
        .etag = ETAG_X, .has_max_age = true, .max_age_s = 0,
        .cs = { .on = true, .fwd_bypass = true } },
      NULL, { "Cache-Status: redis-cache-proxy; fwd=bypass\r\n" }, { NULL },
      "a bypass" },
    { { .status = 304, .keep_alive = true, .content_length = 5,
        .cache = HTTP_REPLY_CACHE_HIT, .age_s = 1, .has_etag = true,
        .etag = ETAG_X, .has_max_age = true, .max_age_s = 9,
        .cs = { .on = true, .hit = true, .has_ttl = true, .ttl_s = 9 } },
      NULL,
      { "HTTP/1.1 304 Not Modified\r\n", "ETag: " TAG_X "\r\n",
        "Cache-Control: max-age=9\r\n" },
      { "Content-Length", "Content-Type" },
      "304: the validators, no length or type" },
    { { .status = 505, .keep_alive = false, .http10 = true,
        .content_length = UINT64_MAX, .cache = HTTP_REPLY_CACHE_UPDATING,
        .age_s = UINT64_MAX, .allow = true, .has_etag = true,
        .etag = UINT64_MAX, .has_max_age = true, .max_age_s = UINT64_MAX,
        .cs = { .on = true, .hit = true, .stale = true, .has_ttl = true,
                .ttl_s = INT64_MIN, .fwd_miss = true, .fwd_status = 999,
                .stored = true } },
      NULL, { "ttl=-9223372036854775808;" }, { NULL },
      "the longest head with every cache header fits" },
};

START_TEST(test_heads)
{
    const struct head_case *tc = &head_cases[_i];
    struct http_reply       r = tc->reply;
    char                    buf[HTTP_REPLY_HEAD_MAX];
    size_t                  n;

    r.content_type = "application/octet-stream";
    r.date = date;
    n = http_reply_format_head(&r, buf, sizeof(buf));
    ck_assert_msg(n < HTTP_REPLY_HEAD_MAX, "%s: %zu bytes", tc->why, n);
    ck_assert_msg(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0,
                  "%s: no blank line at the end:\n%.*s", tc->why, (int) n,
                  buf);
    if (tc->exact != NULL) {
        ck_assert_msg(n == strlen(tc->exact)
                          && memcmp(buf, tc->exact, n) == 0,
                      "%s: got\n%.*s", tc->why, (int) n, buf);
    }
    for (size_t k = 0; k < sizeof(tc->has) / sizeof(tc->has[0]); k++) {
        ck_assert_msg(tc->has[k] == NULL || contains(buf, n, tc->has[k]),
                      "%s: no '%s' in\n%.*s", tc->why, tc->has[k], (int) n,
                      buf);
    }
    for (size_t k = 0; k < sizeof(tc->lacks) / sizeof(tc->lacks[0]); k++) {
        ck_assert_msg(tc->lacks[k] == NULL || !contains(buf, n, tc->lacks[k]),
                      "%s: '%s' in\n%.*s", tc->why, tc->lacks[k], (int) n,
                      buf);
    }
}
END_TEST

struct err_case {
    int         status;
    bool        head;
    const char *status_line;
    const char *body;
};

static const struct err_case err_cases[] = {
    { 400, false, "HTTP/1.1 400 Bad Request\r\n", "400 Bad Request\n" },
    { 404, false, "HTTP/1.1 404 Not Found\r\n", "404 Not Found\n" },
    { 405, false, "HTTP/1.1 405 Method Not Allowed\r\n",
      "405 Method Not Allowed\n" },
    { 408, false, "HTTP/1.1 408 Request Timeout\r\n",
      "408 Request Timeout\n" },
    { 413, false, "HTTP/1.1 413 Content Too Large\r\n",
      "413 Content Too Large\n" },
    { 414, false, "HTTP/1.1 414 URI Too Long\r\n", "414 URI Too Long\n" },
    { 431, false, "HTTP/1.1 431 Request Header Fields Too Large\r\n",
      "431 Request Header Fields Too Large\n" },
    { 502, false, "HTTP/1.1 502 Bad Gateway\r\n", "502 Bad Gateway\n" },
    { 504, false, "HTTP/1.1 504 Gateway Timeout\r\n",
      "504 Gateway Timeout\n" },
    { 505, false, "HTTP/1.1 505 HTTP Version Not Supported\r\n",
      "505 HTTP Version Not Supported\n" },
    { 404, true, "HTTP/1.1 404 Not Found\r\n", "" },
};

START_TEST(test_errors)
{
    const struct err_case *tc = &err_cases[_i];
    char                   buf[HTTP_REPLY_HEAD_MAX + 256];
    size_t                 n;
    const char            *end;
    char                   cl[64];

    n = http_reply_format_error(tc->status, tc->head, true, false, date,
                                NULL, 0, buf, sizeof(buf));
    ck_assert(memcmp(buf, tc->status_line, strlen(tc->status_line)) == 0);
    end = memmem(buf, n, "\r\n\r\n", 4);
    ck_assert_ptr_nonnull(end);
    end += 4;
    ck_assert_uint_eq((size_t) (buf + n - end), strlen(tc->body));
    ck_assert(memcmp(end, tc->body, strlen(tc->body)) == 0);
    /* HEAD keeps the length GET would have had. */
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n",
             strlen(err_cases[_i].head ? "404 Not Found\n" : tc->body));
    ck_assert(contains(buf, n, cl));
    ck_assert(contains(buf, n, "Allow: GET, HEAD\r\n") == (tc->status == 405));
}
END_TEST

START_TEST(test_error_detail)
{
    char       buf[HTTP_REPLY_HEAD_MAX + 256];
    const char detail[] = "WRONGTYPE Operation against a key holding the "
                          "wrong kind of value";
    size_t     n = http_reply_format_error(409, false, true, false, date,
                                           detail, sizeof(detail) - 1, buf,
                                           sizeof(buf));

    ck_assert(memcmp(buf, "HTTP/1.1 409 Conflict\r\n", 23) == 0);
    ck_assert(memcmp(buf + n - sizeof(detail), detail,
                     sizeof(detail) - 1) == 0);
    ck_assert_int_eq(buf[n - 1], '\n');
}
END_TEST

START_TEST(test_ok_prefix_suffix_match_head)
{
    static const struct http_reply replies[] = {
        { .status = 200, .keep_alive = true, .cache = HTTP_REPLY_CACHE_HIT,
          .content_length = 5, .age_s = 3 },
        { .status = 200, .keep_alive = false, .cache = HTTP_REPLY_CACHE_HIT,
          .content_length = 0, .age_s = 0 },
        { .status = 200, .keep_alive = true, .http10 = true,
          .cache = HTTP_REPLY_CACHE_HIT, .content_length = 1048576,
          .age_s = 59 },
        { .status = 200, .keep_alive = true, .cache = HTTP_REPLY_CACHE_MISS,
          .content_length = 7 },
    };

    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        struct http_reply r = replies[i];
        char              whole[HTTP_REPLY_HEAD_MAX];
        char              split[2 * HTTP_REPLY_HEAD_MAX];
        size_t            n, m;

        r.content_type = "application/octet-stream";
        r.date = date;
        n = http_reply_format_head(&r, whole, sizeof(whole));
        m = http_reply_format_ok_prefix(date, split, HTTP_REPLY_HEAD_MAX);
        m += http_reply_format_ok_suffix(&r, split + m, HTTP_REPLY_HEAD_MAX);
        ck_assert_uint_eq(n, m);
        ck_assert(memcmp(whole, split, n) == 0);
    }
}
END_TEST

START_TEST(test_date)
{
    char out[HTTP_REPLY_DATE_LEN + 1];

    http_reply_format_date(784111777, out);
    ck_assert_str_eq(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    http_reply_format_date(0, out);
    ck_assert_str_eq(out, "Thu, 01 Jan 1970 00:00:00 GMT");
}
END_TEST

/* What each backend outcome becomes on the data port (DESIGN.md, "HTTP
 * data port"); a new outcome must be added here with its status. */
static const struct backend_case {
    enum backend_result result;
    int                 status;
    const char         *why;
} backend_cases[] = {
    { BACKEND_VALUE, 200, "a string value is served" },
    { BACKEND_NIL, 404, "an absent key is 404" },
    { BACKEND_WRONGTYPE, 409, "a key of another type is 409" },
    { BACKEND_ERROR_REPLY, 502, "any other Redis error is a bad gateway" },
    { BACKEND_UNREACHABLE, 502, "Redis unreachable is 502" },
    { BACKEND_TIMEOUT, 504, "Redis past --redis-timeout is 504" },
};

START_TEST(test_status_for_backend)
{
    const struct backend_case *tc = &backend_cases[_i];

    ck_assert_msg(http_reply_status_for_backend(tc->result) == tc->status,
                  "%s: got %d", tc->why,
                  http_reply_status_for_backend(tc->result));
}
END_TEST

/* HEAD answers carry GET's Content-Length and no body, whatever the
 * status: a byte after the head would be read as the next answer. */
START_TEST(test_head_error_has_no_body)
{
    static const int statuses[] = { 404, 409, 502, 504 };
    const char       detail[] = "WRONGTYPE Operation against a key";

    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        char   get[HTTP_REPLY_HEAD_MAX + 256], head[HTTP_REPLY_HEAD_MAX + 256];
        size_t ng, nh;
        bool   d = statuses[i] == 409;

        ng = http_reply_format_error(statuses[i], false, true, false, date,
                                     d ? detail : NULL,
                                     d ? sizeof(detail) - 1 : 0, get,
                                     sizeof(get));
        nh = http_reply_format_error(statuses[i], true, true, false, date,
                                     d ? detail : NULL,
                                     d ? sizeof(detail) - 1 : 0, head,
                                     sizeof(head));
        ck_assert_ptr_nonnull(memmem(head, nh, "\r\n\r\n", 4));
        ck_assert_msg((const char *) memmem(head, nh, "\r\n\r\n", 4) + 4
                      == head + nh, "%d: HEAD has a body", statuses[i]);
        ck_assert_msg(nh < ng && memcmp(get, head, nh) == 0,
                      "%d: HEAD's head differs from GET's", statuses[i]);
    }
}
END_TEST

/* ---- If-None-Match and the ETag ----------------------------------------- */

static const struct inm_case {
    const char         *value;
    enum http_reply_inm want;
    const char         *why;
} inm_cases[] = {
    { TAG_X, HTTP_REPLY_INM_MATCH, "the same strong tag" },
    { "W/" TAG_X, HTTP_REPLY_INM_MATCH, "weak comparison ignores W/" },
    { "  " TAG_X "  ", HTTP_REPLY_INM_MATCH, "OWS around" },
    { "\"x\", " TAG_X, HTTP_REPLY_INM_MATCH, "second in a list" },
    { "\"x\",W/" TAG_X ",\"y\"", HTTP_REPLY_INM_MATCH,
      "middle, weak, no OWS" },
    { ", ," TAG_X ",", HTTP_REPLY_INM_MATCH, "empty list elements" },
    { "*", HTTP_REPLY_INM_MATCH, "any representation" },
    { " * ", HTTP_REPLY_INM_MATCH, "* with OWS" },
    { "\"x\"", HTTP_REPLY_INM_NO_MATCH, "another tag" },
    { "\"0123456789ABCDEF\"", HTTP_REPLY_INM_NO_MATCH,
      "tags are case-sensitive" },
    { "\"0123456789abcde\"", HTTP_REPLY_INM_NO_MATCH, "a prefix of ours" },
    { "\"0123456789abcdef0\"", HTTP_REPLY_INM_NO_MATCH, "ours and more" },
    { "\"\"", HTTP_REPLY_INM_NO_MATCH, "the empty tag" },
    { "W/\"x\", \"y\"", HTTP_REPLY_INM_NO_MATCH, "a list without ours" },
    { "", HTTP_REPLY_INM_NONE, "empty value" },
    { " , ", HTTP_REPLY_INM_NONE, "only empty elements" },
    { "0123456789abcdef", HTTP_REPLY_INM_NONE, "unquoted: ignored" },
    { "\"abc", HTTP_REPLY_INM_NONE, "unterminated" },
    { "w/" TAG_X, HTTP_REPLY_INM_NONE, "lower-case w/ is not weak" },
    { TAG_X " " TAG_X, HTTP_REPLY_INM_NONE, "two tags without a comma" },
    { "*, " TAG_X, HTTP_REPLY_INM_NONE, "* in a list is invalid" },
    { "\"a\"b\"", HTTP_REPLY_INM_NONE, "junk after a tag" },
    { "\"a b\"", HTTP_REPLY_INM_NONE, "SP is not an etagc" },
    { "W/ " TAG_X, HTTP_REPLY_INM_NONE, "space after W/" },
};

START_TEST(test_if_none_match)
{
    const struct inm_case *c = &inm_cases[_i];

    ck_assert_msg(http_reply_if_none_match(c->value, strlen(c->value), ETAG_X)
                  == c->want, "%s: '%s'", c->why, c->value);
}
END_TEST

/* If-Match: the same list syntax, compared strongly (RFC 9110 13.1.1). */
static const struct inm_case im_cases[] = {
    { TAG_X, HTTP_REPLY_INM_MATCH, "the same strong tag" },
    { "\"x\", " TAG_X, HTTP_REPLY_INM_MATCH, "second in a list" },
    { "*", HTTP_REPLY_INM_MATCH, "any representation" },
    { "W/" TAG_X, HTTP_REPLY_INM_NO_MATCH, "a weak tag never matches" },
    { "W/" TAG_X ", \"y\"", HTTP_REPLY_INM_NO_MATCH,
      "ours only as a weak tag: 412" },
    { "W/\"y\", " TAG_X, HTTP_REPLY_INM_MATCH, "ours strong after a weak" },
    { "\"x\"", HTTP_REPLY_INM_NO_MATCH, "another tag" },
    { "", HTTP_REPLY_INM_NONE, "empty value: ignored" },
    { "0123456789abcdef", HTTP_REPLY_INM_NONE, "unquoted: ignored" },
};

START_TEST(test_if_match)
{
    const struct inm_case *c = &im_cases[_i];

    ck_assert_msg(http_reply_if_match(c->value, strlen(c->value), ETAG_X)
                  == c->want, "%s: '%s'", c->why, c->value);
}
END_TEST

START_TEST(test_etag_format)
{
    char out[HTTP_REPLY_ETAG_LEN];

    http_reply_format_etag(ETAG_X, out);
    ck_assert(memcmp(out, TAG_X, HTTP_REPLY_ETAG_LEN) == 0);
    http_reply_format_etag(0, out);
    ck_assert(memcmp(out, "\"0000000000000000\"", HTTP_REPLY_ETAG_LEN) == 0);
}
END_TEST

static Suite *
http_suite(void)
{
    Suite *s = suite_create("http_reply");
    TCase *tc = tcase_create("heads");

    tcase_add_loop_test(tc, test_heads, 0,
                        (int) (sizeof(head_cases) / sizeof(head_cases[0])));
    tcase_add_loop_test(tc, test_if_none_match, 0,
                        (int) (sizeof(inm_cases) / sizeof(inm_cases[0])));
    tcase_add_loop_test(tc, test_if_match, 0,
                        (int) (sizeof(im_cases) / sizeof(im_cases[0])));
    tcase_add_test(tc, test_etag_format);
    tcase_add_test(tc, test_date);
    tcase_add_test(tc, test_ok_prefix_suffix_match_head);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_errors, 0,
                        sizeof(err_cases) / sizeof(err_cases[0]));
    tcase_add_test(tc, test_error_detail);
    tcase_add_test(tc, test_head_error_has_no_body);
    suite_add_tcase(s, tc);
    tc = tcase_create("backend results");
    tcase_add_loop_test(tc, test_status_for_backend, 0,
                        sizeof(backend_cases) / sizeof(backend_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
