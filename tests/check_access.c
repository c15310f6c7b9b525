/*
 * Unit tests of access.c: --allow-keys, --allow-from and
 * --proxy-protocol-from decided from a configuration, one row per case.
 */
#include "rcp_autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"

struct key_case {
    const char *globs;                  /* blank-separated, "" none */
    const char *key;
    int         allowed;
    const char *why;
};

static const struct key_case key_cases[] = {
    { "", "anything", 1, "no list: every key" },
    { "user:*", "user:42", 1, "matches the pattern" },
    { "user:*", "session:42", 0, "matches no pattern" },
    { "user:* pub?", "pub1", 1, "a second pattern" },
    { "user:* pub?", "pub12", 0, "? is one byte" },
    { "user:*", "USER:1", 0, "case-sensitive, as Redis' ACL" },
    { "[ab]*", "b-side", 1, "a class" },
    { "*", "", 1, "star and the empty key" },
};

static void
load_list(struct config_list *l, const char *items)
{
    char        copy[512];
    char       *save = NULL;

    memset(l, 0, sizeof(*l));
    snprintf(copy, sizeof(copy), "%s", items);
    for (char *t = strtok_r(copy, " ", &save); t != NULL;
         t = strtok_r(NULL, " ", &save)) {
        snprintf(l->items[l->n++], CONFIG_ITEM_MAX, "%s", t);
    }
}

START_TEST(test_keys)
{
    const struct key_case *tc = &key_cases[_i];
    static struct config   cfg;
    struct access          a;
    char                   err[256];

    config_defaults(&cfg);
    load_list(&cfg.allow_keys, tc->globs);
    ck_assert_int_eq(access_init(&a, &cfg, NULL, err, sizeof(err)), 0);
    ck_assert_msg(access_key_allowed(&a, tc->key, strlen(tc->key))
                  == tc->allowed, "%s", tc->why);
    access_fini(&a);
}
END_TEST

struct addr_case {
    const char *allow;                  /* --allow-from, "" none */
    const char *proxy;                  /* --proxy-protocol-from */
    const char *addr;
    int         allowed;
    int         trusted;
    const char *why;
};

static const struct addr_case addr_cases[] = {
    { "", "", "192.0.2.1", 1, 0, "no lists: everyone, no PROXY" },
    { "10.0.0.0/8", "", "10.1.1.1", 1, 0, "inside" },
    { "10.0.0.0/8", "", "11.1.1.1", 0, 0, "outside" },
    { "10.0.0.0/8 ::1", "", "::1", 1, 0, "IPv6 loopback in the list" },
    { "10.0.0.0/8", "", "::ffff:10.0.0.5", 1, 0, "IPv4-mapped" },
    { "10.0.0.0/8", "127.0.0.1", "127.0.0.1", 0, 1,
      "a load balancer is trusted, judged on its header" },
    { "", "fd00::/8", "fd00::1", 1, 1, "an IPv6 load balancer" },
};

START_TEST(test_addrs)
{
    const struct addr_case *tc = &addr_cases[_i];
    static struct config    cfg;
    struct access           a;
    struct sockaddr_storage ss;
    char                    err[256];

    config_defaults(&cfg);
    load_list(&cfg.allow_from, tc->allow);
    load_list(&cfg.proxy_protocol_from, tc->proxy);
    ck_assert_int_eq(access_init(&a, &cfg, NULL, err, sizeof(err)), 0);
    memset(&ss, 0, sizeof(ss));
    if (strchr(tc->addr, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;

        s6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, tc->addr, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;

        s4->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, tc->addr, &s4->sin_addr), 1);
    }
    ck_assert_msg(access_client_allowed(&a, (struct sockaddr *) &ss)
                  == tc->allowed, "%s: allowed", tc->why);
    ck_assert_msg(access_proxy_trusted(&a, (struct sockaddr *) &ss)
                  == tc->trusted, "%s: trusted", tc->why);
    access_fini(&a);
}
END_TEST

START_TEST(test_auth_file_missing)
{
    static struct config cfg;
    struct access        a;
    char                 err[256];

    config_defaults(&cfg);
    snprintf(cfg.http_auth_file, sizeof(cfg.http_auth_file),
             "/nonexistent/htpasswd");
    ck_assert_int_eq(access_init(&a, &cfg, NULL, err, sizeof(err)), -EINVAL);
    /* Fail closed: auth is on, with no table to pass. */
    ck_assert(a.http_auth_on);
    ck_assert_ptr_null(a.http_auth);
    ck_assert(strstr(err, "cannot open") != NULL);
    access_fini(&a);
}
END_TEST

static Suite *
access_suite(void)
{
    Suite *s = suite_create("access");
    TCase *tc = tcase_create("access");

    tcase_add_loop_test(tc, test_keys, 0,
                        sizeof(key_cases) / sizeof(key_cases[0]));
    tcase_add_loop_test(tc, test_addrs, 0,
                        sizeof(addr_cases) / sizeof(addr_cases[0]));
    tcase_add_test(tc, test_auth_file_missing);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(access_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
