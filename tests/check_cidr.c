/*
 * Unit tests of cidr.c: parsing (one row per case, good and bad) and
 * matching, IPv4, IPv6 and IPv4-mapped IPv6 addresses included.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

struct parse_case {
    const char *text;
    int         ok;
    const char *why;
};

static const struct parse_case parse_cases[] = {
    { "127.0.0.1", 1, "a single IPv4 host" },
    { "10.0.0.0/8", 1, "an IPv4 network" },
    { "0.0.0.0/0", 1, "every IPv4 address" },
    { "::1", 1, "a single IPv6 host" },
    { "fd00::/8", 1, "an IPv6 network" },
    { "::/0", 1, "every IPv6 address" },
    { "10.0.0.1/8", 0, "host bits set" },
    { "10.0.0.0/33", 0, "prefix too long" },
    { "::/129", 0, "IPv6 prefix too long" },
    { "10.0.0.0/", 0, "empty prefix" },
    { "10.0.0.0/x", 0, "prefix not a number" },
    { "10.0.0.0/-1", 0, "negative prefix" },
    { "localhost", 0, "a name, not an address" },
    { "", 0, "empty" },
    { "/8", 0, "no address" },
    { "10.0.0", 0, "short IPv4" },
};

START_TEST(test_parse)
{
    const struct parse_case *tc = &parse_cases[_i];
    struct cidr              c;

    ck_assert_msg((cidr_parse(tc->text, &c) == 0) == tc->ok, "%s: '%s'",
                  tc->why, tc->text);
}
END_TEST

struct match_case {
    const char *range;
    const char *addr;
    int         match;
    const char *why;
};

static const struct match_case match_cases[] = {
    { "127.0.0.1", "127.0.0.1", 1, "same host" },
    { "127.0.0.1", "127.0.0.2", 0, "other host" },
    { "10.0.0.0/8", "10.255.1.2", 1, "inside /8" },
    { "10.0.0.0/8", "11.0.0.1", 0, "outside /8" },
    { "192.168.0.0/23", "192.168.1.200", 1, "partial byte, inside" },
    { "192.168.0.0/23", "192.168.2.1", 0, "partial byte, outside" },
    { "0.0.0.0/0", "8.8.8.8", 1, "/0 matches every IPv4" },
    { "0.0.0.0/0", "::1", 0, "but not IPv6" },
    { "::1", "::1", 1, "IPv6 loopback" },
    { "::1", "::2", 0, "other IPv6" },
    { "fd00::/8", "fd12:3456::1", 1, "inside fd00::/8" },
    { "fd00::/8", "fe80::1", 0, "outside fd00::/8" },
    { "127.0.0.0/8", "::ffff:127.0.0.9", 1, "IPv4 client on an IPv6 socket" },
    { "::1", "127.0.0.1", 0, "IPv6 range, IPv4 client" },
};

START_TEST(test_match)
{
    const struct match_case *tc = &match_cases[_i];
    struct cidr              c;
    struct sockaddr_storage  ss;

    memset(&ss, 0, sizeof(ss));
    ck_assert_int_eq(cidr_parse(tc->range, &c), 0);
    if (strchr(tc->addr, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;

        a->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, tc->addr, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *) &ss;

        a->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, tc->addr, &a->sin_addr), 1);
    }
    ck_assert_msg(cidr_match_any(&c, 1, (struct sockaddr *) &ss)
                  == tc->match, "%s: %s in %s", tc->why, tc->addr,
                  tc->range);
}
END_TEST

static Suite *
cidr_suite(void)
{
    Suite *s = suite_create("cidr");
    TCase *tc = tcase_create("cidr");

    tcase_add_loop_test(tc, test_parse, 0,
                        sizeof(parse_cases) / sizeof(parse_cases[0]));
    tcase_add_loop_test(tc, test_match, 0,
                        sizeof(match_cases) / sizeof(match_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cidr_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
