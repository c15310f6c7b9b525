/*
 * Unit tests of proxy_proto.c: one table row per header, good and bad,
 * each parsed whole, one byte at a time (every prefix must be AGAIN
 * until the header is complete) and flush against a PROT_NONE guard
 * page, so a read past len faults.
 */
#include "rcp_autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proxy_proto.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

struct pp_case {
    const char         *in;
    size_t              in_len;         /* 0: strlen(in) */
    enum proxy_proto_rc rc;
    size_t              len;            /* header length on DONE */
    const char         *addr;           /* the client on DONE, or NULL */
    unsigned            port;
    const char         *why;
};

#define B(s) s, sizeof(s) - 1           /* a literal with NULs */

static const struct pp_case pp_cases[] = {
    { "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /", 0,
      PROXY_PROTO_DONE, 47, "192.168.0.1", 56324, "v1 TCP4, then data" },
    { "PROXY TCP6 2001:db8::1 ::1 1234 80\r\n", 0, PROXY_PROTO_DONE, 36,
      "2001:db8::1", 1234, "v1 TCP6" },
    { "PROXY UNKNOWN\r\n", 0, PROXY_PROTO_DONE, 15, NULL, 0,
      "v1 UNKNOWN: keep the socket's address" },
    { "PROXY UNKNOWN whatever follows\r\n", 0, PROXY_PROTO_DONE, 32, NULL,
      0, "v1 UNKNOWN ignores the rest" },
    { "PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n", 0, PROXY_PROTO_DONE, 36,
      "1.2.3.4", 0, "ports 0 and 65535" },
    { "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", 0, PROXY_PROTO_ERROR, 0,
      NULL, 0, "port over 65535" },
    { "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 0, PROXY_PROTO_ERROR, 0, NULL,
      0, "leading zero in a port" },
    { "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 0, PROXY_PROTO_ERROR, 0, NULL, 0,
      "bare LF" },
    { "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 0, PROXY_PROTO_ERROR, 0, NULL,
      0, "two spaces" },
    { "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 0, PROXY_PROTO_ERROR, 0, NULL,
      0, "an extra field" },
    { "PROXY TCP4 ::1 ::1 1 2\r\n", 0, PROXY_PROTO_ERROR, 0, NULL, 0,
      "IPv6 address under TCP4" },
    { "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 0, PROXY_PROTO_ERROR, 0, NULL, 0,
      "short IPv4" },
    { "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 0, PROXY_PROTO_ERROR, 0, NULL,
      0, "unknown protocol" },
    { "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", 0, PROXY_PROTO_ERROR, 0, NULL,
      0, "CR not before LF" },
    { "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 34, PROXY_PROTO_ERROR, 0, NULL,
      0, "NUL in the line" },
    { "PROXY TCP4 1.2.3.4 5.6.7.8 11111111111111111111111111111111111111111"
      "11111111111111111111111111111111111111111111111111111111111111 2\r\n",
      0, PROXY_PROTO_ERROR, 0, NULL, 0, "over 107 bytes" },
    { "PROXY", 0, PROXY_PROTO_AGAIN, 0, NULL, 0, "a prefix of PROXY" },
    { "PROXY TCP4 1.2.3.4", 0, PROXY_PROTO_AGAIN, 0, NULL, 0,
      "an incomplete line" },
    { "PROXZ", 0, PROXY_PROTO_ERROR, 0, NULL, 0, "not PROXY" },
    { "GET / HTTP/1.1\r\n\r\n", 0, PROXY_PROTO_ERROR, 0, NULL, 0,
      "plain HTTP" },
    { B(SIG "\x21\x11\x00\x0c" "\x0a\x00\x00\x01" "\x0a\x00\x00\x02"
        "\x04\xd2\x00\x50" "rest"), PROXY_PROTO_DONE, 28, "10.0.0.1", 1234,
      "v2 PROXY TCP over IPv4" },
    { B(SIG "\x21\x21\x00\x24" "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1"
        "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\2" "\x00\x05\x00\x06"),
      PROXY_PROTO_DONE, 52, "::1", 5, "v2 PROXY TCP over IPv6" },
    { B(SIG "\x21\x11\x00\x0f" "\x01\x02\x03\x04" "\x05\x06\x07\x08"
        "\x00\x01\x00\x02" "\x04\x00\x00"), PROXY_PROTO_DONE, 31, "1.2.3.4",
      1, "v2 with a TLV after the addresses" },
    { B(SIG "\x20\x00\x00\x00"), PROXY_PROTO_DONE, 16, NULL, 0,
      "v2 LOCAL (a health check)" },
    { B(SIG "\x21\x00\x00\x00"), PROXY_PROTO_DONE, 16, NULL, 0,
      "v2 UNSPEC" },
    { B(SIG "\x31\x11\x00\x0c" "\x0a\x00\x00\x01" "\x0a\x00\x00\x02"
        "\x04\xd2\x00\x50"), PROXY_PROTO_ERROR, 0, NULL, 0, "v2 version 3" },
    { B(SIG "\x22\x11\x00\x0c" "\x0a\x00\x00\x01" "\x0a\x00\x00\x02"
        "\x04\xd2\x00\x50"), PROXY_PROTO_ERROR, 0, NULL, 0,
      "v2 unknown command" },
    { B(SIG "\x21\x11\x00\x08" "\x0a\x00\x00\x01" "\x0a\x00\x00\x02"),
      PROXY_PROTO_ERROR, 0, NULL, 0, "v2 IPv4 block too short" },
    { B(SIG "\x21\x51\x00\x0c" "\x0a\x00\x00\x01" "\x0a\x00\x00\x02"
        "\x04\xd2\x00\x50"), PROXY_PROTO_ERROR, 0, NULL, 0,
      "v2 unknown family" },
    { B(SIG "\x21\x11\x00\x0c" "\x0a\x00"), PROXY_PROTO_AGAIN, 0, NULL, 0,
      "v2 incomplete" },
    { B("\r\n\r\n\0\r\nQUIX\n"), PROXY_PROTO_ERROR, 0, NULL, 0,
      "a wrong v2 signature" },
};

static size_t
pp_len(const struct pp_case *tc)
{
    return tc->in_len != 0 ? tc->in_len : strlen(tc->in);
}

static void
pp_check(const struct pp_case *tc, const char *buf, size_t len)
{
    struct proxy_proto_result r;
    enum proxy_proto_rc       rc = proxy_proto_parse(buf, len, &r);

    ck_assert_msg(rc == tc->rc, "%s: rc %d", tc->why, rc);
    if (rc == PROXY_PROTO_ERROR) {
        ck_assert_ptr_nonnull(r.error);
    }
    if (rc != PROXY_PROTO_DONE) {
        return;
    }
    ck_assert_msg(r.len == tc->len, "%s: len %zu", tc->why, r.len);
    ck_assert_msg(r.has_addr == (tc->addr != NULL), "%s: has_addr", tc->why);
    if (tc->addr != NULL) {
        char     text[INET6_ADDRSTRLEN];
        unsigned port;

        if (r.src.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const void *) &r.src;

            inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
            port = ntohs(a->sin_port);
        } else {
            const struct sockaddr_in6 *a = (const void *) &r.src;

            ck_assert_int_eq(r.src.ss_family, AF_INET6);
            inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
            port = ntohs(a->sin6_port);
        }
        ck_assert_msg(strcmp(text, tc->addr) == 0 && port == tc->port,
                      "%s: %s port %u", tc->why, text, port);
    }
}

START_TEST(test_whole)
{
    pp_check(&pp_cases[_i], pp_cases[_i].in, pp_len(&pp_cases[_i]));
}
END_TEST

START_TEST(test_bytewise)
{
    const struct pp_case     *tc = &pp_cases[_i];
    size_t                    len = pp_len(tc);
    struct proxy_proto_result r;

    /* Every prefix is AGAIN, or already the final answer. */
    for (size_t n = 0; n < len; n++) {
        enum proxy_proto_rc rc = proxy_proto_parse(tc->in, n, &r);

        if (rc == PROXY_PROTO_AGAIN) {
            continue;
        }
        ck_assert_msg(rc == tc->rc, "%s: prefix %zu gives %d", tc->why, n,
                      rc);
        if (rc == PROXY_PROTO_DONE) {
            ck_assert_msg(r.len <= n && r.len == tc->len,
                          "%s: prefix %zu", tc->why, n);
        }
    }
}
END_TEST

START_TEST(test_guard_page)
{
    const struct pp_case *tc = &pp_cases[_i];
    size_t                len = pp_len(tc);
    long                  page = sysconf(_SC_PAGESIZE);
    char                 *map = mmap(NULL, (size_t) page * 2,
                                     PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char                 *at;

    ck_assert(map != MAP_FAILED);
    ck_assert_int_eq(mprotect(map + page, (size_t) page, PROT_NONE), 0);
    at = map + page - len;
    memcpy(at, tc->in, len);
    pp_check(tc, at, len);
    ck_assert_int_eq(munmap(map, (size_t) page * 2), 0);
}
END_TEST

START_TEST(test_looks_like)
{
    ck_assert(proxy_proto_looks_like("PROXY TCP4", 10));
    ck_assert(proxy_proto_looks_like("PRO", 3));
    ck_assert(proxy_proto_looks_like(SIG, 12));
    ck_assert(proxy_proto_looks_like("\r\n\r\n", 4));
    ck_assert(!proxy_proto_looks_like("GET / HTTP/1.1", 14));
    ck_assert(!proxy_proto_looks_like("*1\r\n", 4));
    ck_assert(!proxy_proto_looks_like("", 0));
}
END_TEST

static Suite *
pp_suite(void)
{
    Suite *s = suite_create("proxy_proto");
    TCase *tc = tcase_create("headers");
    int    n = sizeof(pp_cases) / sizeof(pp_cases[0]);

    tcase_add_loop_test(tc, test_whole, 0, n);
    tcase_add_loop_test(tc, test_bytewise, 0, n);
    tcase_add_loop_test(tc, test_guard_page, 0, n);
    tcase_add_test(tc, test_looks_like);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(pp_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
