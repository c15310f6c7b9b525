/*
 * Unit tests of http_auth.c: the credential file (one row per line
 * shape, good and bad), header lookup, and verification of Basic
 * (htpasswd -B bcrypt) and Bearer credentials, remembered or not.
 */
#include "rcp_autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http_auth.h"

#define ALICE "alice:$2y$04$vF2Xq7mtdNcRCvSzF8O2fuJ8xrjR1e1.IldJk0qn5FmmOT5xSLnOm"
#define TOKEN_SHA "4f6e1f65055263866dedb3c5fe22defb0cc045648cf0b87afac54cc6420e5647"

struct load_case {
    const char *text;
    int         ok;
    const char *err;                    /* in the error, when !ok */
    const char *why;
};

static const struct load_case load_cases[] = {
    { ALICE "\n", 1, NULL, "one htpasswd -B line" },
    { "# comment\n\n  " ALICE "  \n", 1, NULL, "comments, blanks" },
    { "bearer:" TOKEN_SHA "\n", 1, NULL, "one bearer line" },
    { "bearer:" TOKEN_SHA, 1, NULL, "no final newline" },
    { "", 0, "no credentials", "empty file" },
    { "# only\n", 0, "no credentials", "comments only" },
    { "alice\n", 0, "line 1", "no colon" },
    { ":hash\n", 0, "line 1", "no user" },
    { "alice:\n", 0, "line 1", "no hash" },
    { "alice:$apr1$x$y\n", 0, "htpasswd -B", "htpasswd's MD5" },
    { "alice:{SHA}abc\n", 0, "unsupported hash", "htpasswd -s" },
    { "alice:plain\n", 0, "unsupported hash", "a plain password" },
    { "bearer:abc\n", 0, "64 hex", "short digest" },
    { "bearer:" TOKEN_SHA "0\n", 0, "64 hex", "long digest" },
    { "ok\n" ALICE "\n", 0, "line 1", "the error names the line" },
    { ALICE "\nbad\n", 0, "line 2", "the second line" },
};

START_TEST(test_load)
{
    const struct load_case *tc = &load_cases[_i];
    struct http_auth       *a = NULL;
    char                    err[256] = "";
    int                     rc = http_auth_load_text(tc->text,
                                                     strlen(tc->text), &a,
                                                     err, sizeof(err));

    ck_assert_msg((rc == 0) == tc->ok, "%s: rc %d %s", tc->why, rc, err);
    if (!tc->ok) {
        ck_assert_msg(strstr(err, tc->err) != NULL, "%s: '%s'", tc->why,
                      err);
        ck_assert_msg(strstr(err, "$2y$") == NULL, "%s: a secret in '%s'",
                      tc->why, err);
    }
    http_auth_free(a);
}
END_TEST

struct check_case {
    const char           *value;        /* Authorization, NULL: absent */
    enum http_auth_result want;
    const char           *why;
};

static const struct check_case check_cases[] = {
    { NULL, HTTP_AUTH_MISSING, "no header" },
    { "Basic YWxpY2U6c2VjcmV0", HTTP_AUTH_OK, "right password" },
    { "basic YWxpY2U6c2VjcmV0", HTTP_AUTH_OK, "scheme is case-insensitive" },
    { "Basic YWxpY2U6d3Jvbmc=", HTTP_AUTH_DENIED, "wrong password" },
    { "Basic Ym9iOnNlY3JldA==", HTTP_AUTH_DENIED, "unknown user" },
    { "Basic !!!", HTTP_AUTH_DENIED, "not base64" },
    { "Basic YWxpY2U=", HTTP_AUTH_DENIED, "no colon" },
    { "Bearer tok123", HTTP_AUTH_OK, "right token" },
    { "Bearer tok124", HTTP_AUTH_DENIED, "wrong token" },
    { "Bearer ", HTTP_AUTH_DENIED, "empty token" },
    { "Digest x", HTTP_AUTH_DENIED, "other scheme" },
    { "", HTTP_AUTH_DENIED, "empty value" },
};

START_TEST(test_check)
{
    const struct check_case *tc = &check_cases[_i];
    const char               text[] = ALICE "\nbearer:" TOKEN_SHA "\n";
    struct http_auth        *a = NULL;
    char                     err[256];

    ck_assert_int_eq(http_auth_load_text(text, strlen(text), &a, err,
                                         sizeof(err)), 0);
    /* Twice: the second answer may come from the memo, and must agree. */
    for (int i = 0; i < 2; i++) {
        enum http_auth_result r = http_auth_check(a, tc->value,
            tc->value != NULL ? strlen(tc->value) : 0);

        ck_assert_msg(r == tc->want, "%s (try %d): %d", tc->why, i, r);
    }
    http_auth_free(a);
}
END_TEST

START_TEST(test_find_header)
{
    const char  head[] = "GET /k HTTP/1.1\r\nHost: x\r\n"
                         "authorization:   Basic abc  \r\n"
                         "X-Other: y\r\n\r\n";
    const char *v;
    size_t      n;

    ck_assert(http_auth_find_header(head, strlen(head), "authorization",
                                    &v, &n));
    ck_assert_uint_eq(n, 9);
    ck_assert(memcmp(v, "Basic abc", 9) == 0);
    ck_assert(http_auth_find_header(head, strlen(head), "host", &v, &n));
    ck_assert(n == 1 && v[0] == 'x');
    ck_assert(!http_auth_find_header(head, strlen(head), "cookie", &v, &n));
    /* The request line is not a header, even if it looks like one. */
    ck_assert(!http_auth_find_header("authorization: x\r\n\r\n", 20,
                                     "authorization", &v, &n));
}
END_TEST

START_TEST(test_challenge)
{
    const char        basic[] = ALICE "\n";
    const char        bearer[] = "bearer:" TOKEN_SHA "\n";
    struct http_auth *a = NULL;
    char              err[256];

    ck_assert_int_eq(http_auth_load_text(basic, strlen(basic), &a, err,
                                         sizeof(err)), 0);
    ck_assert_str_eq(http_auth_challenge(a),
                     "Basic realm=\"redis-cache-proxy\", charset=\"UTF-8\"");
    http_auth_free(a);
    ck_assert_int_eq(http_auth_load_text(bearer, strlen(bearer), &a, err,
                                         sizeof(err)), 0);
    ck_assert_str_eq(http_auth_challenge(a),
                     "Bearer realm=\"redis-cache-proxy\"");
    /* A Basic attempt against bearer lines only is refused. */
    ck_assert_int_eq(http_auth_check(a, "Basic YWxpY2U6c2VjcmV0", strlen("Basic YWxpY2U6c2VjcmV0")),
                     HTTP_AUTH_DENIED);
    http_auth_free(a);
}
END_TEST

static Suite *
auth_suite(void)
{
    Suite *s = suite_create("http_auth");
    TCase *tc = tcase_create("auth");

    tcase_add_loop_test(tc, test_load, 0,
                        sizeof(load_cases) / sizeof(load_cases[0]));
    tcase_add_loop_test(tc, test_check, 0,
                        sizeof(check_cases) / sizeof(check_cases[0]));
    tcase_add_test(tc, test_find_header);
    tcase_add_test(tc, test_challenge);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
