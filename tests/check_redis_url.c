/*
 * check_redis_url: the Redis URL parser and the password mask, one table
 * row per case with a .why.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_url.h"

struct url_case {
    const char        *in;
    enum redis_url_rc  rc;
    bool               tls;
    bool               is_unix;
    const char        *host;        /* or the socket path */
    unsigned           port;
    const char        *user;
    const char        *password;    /* NULL: none given */
    int                db;          /* -1: none given */
    const char        *why;
};

static const struct url_case url_cases[] = {
    { "redis://localhost", REDIS_URL_OK, false, false, "localhost", 6379,
      "", NULL, -1, "host alone: the default port" },
    { "redis://10.0.0.5:6380", REDIS_URL_OK, false, false, "10.0.0.5", 6380,
      "", NULL, -1, "IPv4 and port" },
    { "redis://[::1]:7000/3", REDIS_URL_OK, false, false, "::1", 7000, "",
      NULL, 3, "IPv6 in brackets, db in the path" },
    { "redis://[::1]", REDIS_URL_OK, false, false, "::1", 6379, "", NULL, -1,
      "IPv6 without a port" },
    { "rediss://cache.example.com:6380/0", REDIS_URL_OK, true, false,
      "cache.example.com", 6380, "", NULL, 0, "TLS scheme" },
    { "redis://:s3cret@h:1", REDIS_URL_OK, false, false, "h", 1, "",
      "s3cret", -1, "password only" },
    { "redis://alice:s3cret@h/2", REDIS_URL_OK, false, false, "h", 6379,
      "alice", "s3cret", 2, "user, password and db" },
    { "redis://s3cret@h", REDIS_URL_OK, false, false, "h", 6379, "",
      "s3cret", -1, "no colon: a password, as redis-cli reads it" },
    { "redis://al%69ce:p%40ss%3Aw%2Frd@h", REDIS_URL_OK, false, false, "h",
      6379, "alice", "p@ss:w/rd", -1, "percent-decoded user and password" },
    { "redis://u:p@ss@h", REDIS_URL_OK, false, false, "h", 6379, "u",
      "p@ss", -1, "the last '@' ends the user info" },
    { "redis://h/", REDIS_URL_OK, false, false, "h", 6379, "", NULL, -1,
      "an empty path is no db" },
    { "redis://h?db=5", REDIS_URL_OK, false, false, "h", 6379, "", NULL, 5,
      "db as a query" },
    { "unix:///run/redis.sock", REDIS_URL_OK, false, true, "/run/redis.sock",
      0, "", NULL, -1, "unix socket" },
    { "unix:///run/redis.sock?db=4", REDIS_URL_OK, false, true,
      "/run/redis.sock", 0, "", NULL, 4, "unix socket with a db" },
    { "unix://:pw@/tmp/r.sock", REDIS_URL_OK, false, true, "/tmp/r.sock", 0,
      "", "pw", -1, "unix socket with a password" },
    { "redis://h:0", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "port 0" },
    { "redis://h:65536", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL,
      -1, "port too large" },
    { "redis://h:", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "empty port" },
    { "redis://h:6x", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "port with junk" },
    { "redis://", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "no host" },
    { "redis://:pw@", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "user info, no host" },
    { "redis://h/x", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "the path is not a number" },
    { "redis://h/2147483648", REDIS_URL_BAD, false, false, NULL, 0, NULL,
      NULL, -1, "db out of range" },
    { "redis://h/1?db=2", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL,
      -1, "db twice" },
    { "redis://h?timeout=1", REDIS_URL_BAD, false, false, NULL, 0, NULL,
      NULL, -1, "unknown query" },
    { "redis://[::1", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "unclosed bracket" },
    { "redis://[nothex]:1", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL,
      -1, "bracketed non-address" },
    { "redis://::1:6379", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL,
      -1, "IPv6 needs brackets" },
    { "redis://h o", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "space in the host" },
    { "redis://:p%zz@h", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL,
      -1, "bad percent escape" },
    { "redis://:p%00@h", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL,
      -1, "NUL in the password" },
    { "redis://:p%4@h", REDIS_URL_BAD, false, false, NULL, 0, NULL, NULL, -1,
      "truncated percent escape" },
    { "unix://run/redis.sock", REDIS_URL_BAD, false, true, NULL, 0, NULL,
      NULL, -1, "relative socket path" },
    { "unix://", REDIS_URL_BAD, false, true, NULL, 0, NULL, NULL, -1,
      "no socket path" },
    { "127.0.0.1:6379", REDIS_URL_NOT_URL, false, false, NULL, 0, NULL, NULL,
      -1, "HOST:PORT is the caller's" },
    { "unix:/tmp/r.sock", REDIS_URL_NOT_URL, false, false, NULL, 0, NULL,
      NULL, -1, "unix:PATH is the caller's" },
    { "http://h", REDIS_URL_NOT_URL, false, false, NULL, 0, NULL, NULL, -1,
      "another scheme" },
};

START_TEST(url_table)
{
    const struct url_case *c = &url_cases[_i];
    struct redis_url u;
    const char *why = NULL;
    enum redis_url_rc rc = redis_url_parse(c->in, &u, &why);

    ck_assert_msg(rc == c->rc, "%s: '%s' gave %d (%s)", c->why, c->in, rc,
                  why);
    ck_assert_ptr_nonnull(why);
    if (rc != REDIS_URL_OK) {
        ck_assert_msg(rc != REDIS_URL_BAD || why[0] != '\0',
                      "%s: no reason", c->why);
        return;
    }
    ck_assert_msg(u.tls == c->tls && u.is_unix == c->is_unix, "%s: scheme",
                  c->why);
    if (c->is_unix) {
        ck_assert_str_eq(u.path, c->host);
    } else {
        ck_assert_str_eq(u.host, c->host);
        ck_assert_uint_eq(u.port, c->port);
    }
    ck_assert_str_eq(u.user, c->user);
    ck_assert_msg(u.has_password == (c->password != NULL), "%s: password",
                  c->why);
    if (c->password != NULL) {
        ck_assert_str_eq(u.password, c->password);
    }
    ck_assert_msg(u.has_db == (c->db >= 0), "%s: db given", c->why);
    if (c->db >= 0) {
        ck_assert_uint_eq(u.db, (unsigned)c->db);
    }
}
END_TEST

static const struct {
    const char *in;
    const char *out;
    const char *why;
} mask_cases[] = {
    { "redis://alice:s3cret@h:1/2", "redis://alice:****@h:1/2",
      "user kept, password hidden" },
    { "rediss://:s3cret@h", "rediss://:****@h", "password only" },
    { "redis://s3cret@h", "redis://****@h", "no colon: still a password" },
    { "redis://u:p@ss@h", "redis://u:****@h", "'@' inside the password" },
    { "unix://:pw@/tmp/r.sock?db=1", "unix://:****@/tmp/r.sock?db=1",
      "unix socket" },
    { "redis://u:s3cr?et@h", "redis://u:****@h",
      "'?' inside the password (a bad URL, whose error shows it)" },
    { "unix://:pa?ss@/tmp/r.sock", "unix://:****@/tmp/r.sock",
      "'?' inside a unix URL's password" },
    { "redis://h:1/2", "redis://h:1/2", "nothing to hide" },
    { "10.0.0.1:6379", "10.0.0.1:6379", "not a URL" },
};

START_TEST(url_mask)
{
    char out[128];

    redis_url_mask(mask_cases[_i].in, out, sizeof(out));
    ck_assert_msg(strcmp(out, mask_cases[_i].out) == 0, "%s: '%s'",
                  mask_cases[_i].why, out);
}
END_TEST

START_TEST(url_mask_truncates)
{
    char out[12];

    redis_url_mask("redis://alice:s3cret@host:1", out, sizeof(out));
    ck_assert_uint_eq(strlen(out), sizeof(out) - 1);
    ck_assert_ptr_null(strstr(out, "s3c"));
}
END_TEST

START_TEST(url_long_parts)
{
    char in[1200], want[600];
    struct redis_url u;
    const char *why;

    /* A 511-byte password fits (the NUL makes 512); 512 does not. */
    memset(want, 'p', 511);
    want[511] = '\0';
    (void)snprintf(in, sizeof(in), "redis://:%s@h", want);
    ck_assert_int_eq(redis_url_parse(in, &u, &why), REDIS_URL_OK);
    ck_assert_str_eq(u.password, want);
    (void)snprintf(in, sizeof(in), "redis://:%sp@h", want);
    ck_assert_int_eq(redis_url_parse(in, &u, &why), REDIS_URL_BAD);
    /* A socket path must fit sun_path. */
    memset(want, 'd', 200);
    want[200] = '\0';
    (void)snprintf(in, sizeof(in), "unix:///%s", want);
    ck_assert_int_eq(redis_url_parse(in, &u, &why), REDIS_URL_BAD);
}
END_TEST

static Suite *
redis_url_suite(void)
{
    Suite *s = suite_create("redis_url");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, url_table, 0,
                        sizeof(url_cases) / sizeof(url_cases[0]));
    tcase_add_loop_test(tc, url_mask, 0,
                        sizeof(mask_cases) / sizeof(mask_cases[0]));
    tcase_add_test(tc, url_mask_truncates);
    tcase_add_test(tc, url_long_parts);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(redis_url_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
