/*
 * Unit tests of resp.c: what each command answers, and the encoders.
 * Commands are built as argument lists over one buffer, the way the
 * parser hands them over.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

struct cmd_case {
    const char       *args[6];          /* NULL-terminated */
    enum resp_action  action;
    const char       *reply;            /* exact bytes, or NULL */
    const char       *prefix;           /* reply starts with, or NULL */
    const char       *why;
};

static const struct cmd_case cmd_cases[] = {
    { { "PING", NULL }, RESP_ACTION_REPLIED, "+PONG\r\n", NULL,
      "PING without a message" },
    { { "ping", "hi", NULL }, RESP_ACTION_REPLIED, "$2\r\nhi\r\n", NULL,
      "PING is case-insensitive and echoes its message" },
    { { "PING", "a", "b", NULL }, RESP_ACTION_REPLIED, NULL,
      "-ERR wrong number of arguments for 'ping' command", "PING arity" },
    { { "ECHO", "x y", NULL }, RESP_ACTION_REPLIED, "$3\r\nx y\r\n", NULL,
      "ECHO" },
    { { "ECHO", NULL }, RESP_ACTION_REPLIED,
      "-ERR wrong number of arguments for 'echo' command\r\n", NULL,
      "ECHO arity" },
    { { "QUIT", NULL }, RESP_ACTION_CLOSE, "+OK\r\n", NULL, "QUIT closes" },
    { { "GET", "k", NULL }, RESP_ACTION_GET, "", NULL, "GET goes to cache" },
    { { "GET", NULL }, RESP_ACTION_REPLIED,
      "-ERR wrong number of arguments for 'get' command\r\n", NULL,
      "GET arity" },
    { { "GET", "a", "b", NULL }, RESP_ACTION_REPLIED, NULL,
      "-ERR wrong number", "GET with two keys" },
    { { "MGET", "a", "b", NULL }, RESP_ACTION_MGET, "", NULL, "MGET" },
    { { "MGET", NULL }, RESP_ACTION_REPLIED, NULL, "-ERR wrong number",
      "MGET arity" },
    { { "SELECT", "0", NULL }, RESP_ACTION_REPLIED, "+OK\r\n", NULL,
      "SELECT of the configured db" },
    { { "SELECT", "3", NULL }, RESP_ACTION_REPLIED, NULL,
      "-ERR this proxy serves db 0 only", "SELECT of another db" },
    { { "SELECT", "x", NULL }, RESP_ACTION_REPLIED, NULL,
      "-ERR value is not an integer", "SELECT of garbage" },
    { { "COMMAND", "DOCS", NULL }, RESP_ACTION_REPLIED, "*0\r\n", NULL,
      "COMMAND DOCS for redis-cli" },
    { { "COMMAND", "COUNT", NULL }, RESP_ACTION_REPLIED, ":24\r\n", NULL,
      "COMMAND COUNT" },
    { { "COMMAND", NULL }, RESP_ACTION_REPLIED, NULL, "*24\r\n*6\r\n$3\r\nget",
      "COMMAND lists the commands" },
    { { "CONFIG", "GET", "save", NULL }, RESP_ACTION_SESSION, "", NULL,
      "CONFIG is the session's" },
    { { "HELLO", "3", NULL }, RESP_ACTION_SESSION, "", NULL,
      "HELLO is the session's" },
    { { "CLIENT", "SETNAME", "me", NULL }, RESP_ACTION_SESSION, "", NULL,
      "CLIENT is the session's" },
    { { "info", NULL }, RESP_ACTION_SESSION, "", NULL, "INFO" },
    { { "MULTI", NULL }, RESP_ACTION_SESSION, "", NULL, "MULTI" },
    { { "MULTI", "x", NULL }, RESP_ACTION_REPLIED,
      "-ERR wrong number of arguments for 'multi' command\r\n", NULL,
      "MULTI arity is checked before the session" },
    { { "EXEC", NULL }, RESP_ACTION_SESSION, "", NULL, "EXEC" },
    { { "WATCH", NULL }, RESP_ACTION_REPLIED, NULL, "-ERR wrong number",
      "WATCH needs a key" },
    { { "AUTH", "pw", NULL }, RESP_ACTION_SESSION, "", NULL, "AUTH" },
    { { "DBSIZE", NULL }, RESP_ACTION_FORWARD, "", NULL, "DBSIZE to Redis" },
    { { "exists", "a", "b", NULL }, RESP_ACTION_FORWARD, "", NULL,
      "EXISTS of several keys" },
    { { "TTL", "k", NULL }, RESP_ACTION_FORWARD, "", NULL, "TTL" },
    { { "PTTL", "k", NULL }, RESP_ACTION_FORWARD, "", NULL, "PTTL" },
    { { "STRLEN", "k", NULL }, RESP_ACTION_FORWARD, "", NULL, "STRLEN" },
    { { "TYPE", "k", NULL }, RESP_ACTION_FORWARD, "", NULL, "TYPE" },
    { { "TTL", NULL }, RESP_ACTION_REPLIED,
      "-ERR wrong number of arguments for 'ttl' command\r\n", NULL,
      "TTL arity, answered here" },
    { { "DBSIZE", "x", NULL }, RESP_ACTION_REPLIED, NULL,
      "-ERR wrong number", "DBSIZE takes no argument" },
    { { "SET", "k", "v", NULL }, RESP_ACTION_REPLIED,
      "-ERR unknown command 'SET', with args beginning with: 'k' 'v' \r\n",
      NULL, "unknown command, Redis 7 wording" },
    { { "FOO\r\nBAR", NULL }, RESP_ACTION_REPLIED,
      "-ERR unknown command 'FOO  BAR', with args beginning with: \r\n",
      NULL, "CR and LF in a name cannot break the error line" },
    { { "FOO", "\x01a\x7f", NULL }, RESP_ACTION_REPLIED,
      "-ERR unknown command 'FOO', with args beginning with: '\x01a\x7f' "
      "\r\n", NULL, "other bytes are shown as they are, as Redis does" },
    { { "FOO",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "c", NULL }, RESP_ACTION_REPLIED,
      "-ERR unknown command 'FOO', with args beginning with: "
      "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' 'bbbbbbbbbbbbbbbbbbbbbbbbbbb' \r\n",
      NULL, "arguments are shown while they total under 128 bytes, the "
      "last cut to fit, as Redis 7 does" },
};

static void
run_cmd(const struct cmd_case *tc, struct buf *out, enum resp_action *act)
{
    char                data[256];
    struct resp_arg     argv[6];
    struct resp_command cmd = { .argv = argv, .argv_cap = 6 };
    size_t              off = 0;

    for (size_t i = 0; tc->args[i] != NULL; i++) {
        size_t n = strlen(tc->args[i]);

        memcpy(data + off, tc->args[i], n);
        argv[i].off = off;
        argv[i].len = n;
        off += n;
        cmd.argc++;
    }
    *act = resp_dispatch(data, &cmd, 0, out);
}

START_TEST(test_dispatch)
{
    const struct cmd_case *tc = &cmd_cases[_i];
    struct buf             out = { 0 };
    enum resp_action       act;

    run_cmd(tc, &out, &act);
    ck_assert_msg(act == tc->action, "%s: action %d", tc->why, act);
    if (tc->reply != NULL) {
        ck_assert_msg(out.len == strlen(tc->reply)
                      && (out.len == 0
                          || memcmp(out.data, tc->reply, out.len) == 0),
                      "%s: got '%.*s'", tc->why, (int) out.len,
                      out.data != NULL ? out.data : "");
    }
    if (tc->prefix != NULL) {
        ck_assert_msg(out.len >= strlen(tc->prefix)
                      && memcmp(out.data, tc->prefix, strlen(tc->prefix))
                         == 0, "%s: got '%.*s'", tc->why, (int) out.len,
                      out.data != NULL ? out.data : "");
    }
    buf_free(&out);
}
END_TEST

START_TEST(test_encoders)
{
    struct buf out = { 0 };
    const char bin[] = { 'a', '\0', '\r', '\n', 'b' };
    const char want[] = "$5\r\na\0\r\nb\r\n$0\r\n\r\n$-1\r\n*3\r\n:-7\r\n"
                        "+OK\r\n-E a b\r\n";

    ck_assert_int_eq(resp_append_bulk(&out, bin, sizeof(bin)), 0);
    ck_assert_int_eq(resp_append_bulk(&out, "", 0), 0);
    ck_assert_int_eq(resp_append_nil(&out), 0);
    ck_assert_int_eq(resp_append_array(&out, 3), 0);
    ck_assert_int_eq(resp_append_integer(&out, -7), 0);
    ck_assert_int_eq(resp_append_status(&out, "OK"), 0);
    ck_assert_int_eq(resp_append_error(&out, "E a\nb", 5), 0);
    ck_assert_uint_eq(out.len, sizeof(want) - 1);
    ck_assert(memcmp(out.data, want, out.len) == 0);
    buf_free(&out);
}
END_TEST

START_TEST(test_bulk_head)
{
    char   head[RESP_BULK_HEAD_MAX];
    size_t n;

    n = resp_format_bulk_head(head, 0);
    ck_assert_uint_eq(n, 4);
    ck_assert(memcmp(head, "$0\r\n", 4) == 0);
    n = resp_format_bulk_head(head, 1048576);
    ck_assert(n == 10 && memcmp(head, "$1048576\r\n", 10) == 0);
    n = resp_format_bulk_head(head, (size_t) -1);
    ck_assert_uint_eq(n, 1 + 20 + 2);
    ck_assert(memcmp(head, "$18446744073709551615\r\n", n) == 0);
}
END_TEST

/* A cache hit is copied RESP_BULK_HEAD_MAX bytes past the end of what
 * is queued; ending it in place gives what resp_append_bulk would, after
 * what was there, for an empty value, a short one and one whose header
 * is longer. */
START_TEST(test_bulk_in_place)
{
    static const size_t lens[] = { 0, 5, 1234567 };

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        struct buf got = { 0 }, want = { 0 };
        size_t     n = lens[i];
        char      *v = malloc(n + 1);

        ck_assert_ptr_nonnull(v);
        for (size_t k = 0; k < n; k++) {
            v[k] = (char) ('a' + k % 26);
        }
        ck_assert_int_eq(buf_append(&got, "+OK\r\n", 5), 0);
        ck_assert_int_eq(buf_reserve(&got, RESP_BULK_HEAD_MAX + n + 2), 0);
        memcpy(got.data + got.len + RESP_BULK_HEAD_MAX, v, n);
        resp_end_bulk_in_place(&got, n);
        ck_assert_int_eq(buf_append(&want, "+OK\r\n", 5), 0);
        ck_assert_int_eq(resp_append_bulk(&want, v, n), 0);
        ck_assert_uint_eq(got.len, want.len);
        ck_assert(memcmp(got.data, want.data, got.len) == 0);
        free(v);
        buf_free(&got);
        buf_free(&want);
    }
}
END_TEST

START_TEST(test_large_bulk_grows)
{
    struct buf out = { 0 };
    size_t     n = 3 * 1024 * 1024;
    char      *v = malloc(n);

    ck_assert_ptr_nonnull(v);
    memset(v, 'x', n);
    ck_assert_int_eq(resp_append_bulk(&out, v, n), 0);
    ck_assert_uint_eq(out.len, n + strlen("$3145728\r\n") + 2);
    ck_assert(memcmp(out.data, "$3145728\r\n", 10) == 0);
    free(v);
    buf_free(&out);
}
END_TEST

/* What each backend outcome becomes on the Redis-protocol port, for GET
 * and for one key of an MGET (Redis' own answers where it has one). */
static const char wrongtype[] =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
static const struct backend_case {
    enum backend_result result;
    const char         *data;
    const char         *get;            /* the whole GET answer */
    bool                fails_mget;     /* the whole MGET is an error */
    const char         *mget_item;      /* else this key's part */
    const char         *why;
} backend_cases[] = {
    { BACKEND_VALUE, "v\r\n1", "$4\r\nv\r\n1\r\n", false,
      "$4\r\nv\r\n1\r\n", "a value is a bulk string, binary-safe" },
    { BACKEND_NIL, NULL, "$-1\r\n", false, "$-1\r\n",
      "an absent key is nil" },
    { BACKEND_WRONGTYPE, wrongtype,
      "-WRONGTYPE Operation against a key holding the wrong kind of "
      "value\r\n", false, "$-1\r\n",
      "GET of another type is Redis' error; in MGET it is nil, as Redis" },
    { BACKEND_ERROR_REPLY, "ERR something",
      "-ERR redis-cache-proxy: the backend Redis is unavailable\r\n", true,
      NULL, "another Redis error is ours, never passed on as a value" },
    { BACKEND_UNREACHABLE, NULL,
      "-ERR redis-cache-proxy: the backend Redis is unavailable\r\n", true,
      NULL, "Redis down is an error, never a nil" },
    { BACKEND_TIMEOUT, NULL,
      "-ERR redis-cache-proxy: the backend Redis timed out\r\n", true,
      NULL, "Redis too slow is an error naming the timeout" },
};

START_TEST(test_backend_reply)
{
    const struct backend_case *tc = &backend_cases[_i];
    struct buf                 out = { 0 };
    size_t                     len = tc->data != NULL ? strlen(tc->data) : 0;

    ck_assert_int_eq(resp_append_backend_reply(&out, tc->result, tc->data,
                                               len), 0);
    ck_assert_msg(out.len == strlen(tc->get)
                  && memcmp(out.data, tc->get, out.len) == 0,
                  "%s: GET got '%.*s'", tc->why, (int) out.len, out.data);
    ck_assert_msg(resp_backend_fails_mget(tc->result) == tc->fails_mget,
                  "%s: fails MGET", tc->why);
    if (tc->mget_item != NULL) {
        out.len = 0;
        ck_assert_int_eq(resp_append_mget_item(&out, tc->result, tc->data,
                                               len), 0);
        ck_assert_msg(out.len == strlen(tc->mget_item)
                      && memcmp(out.data, tc->mget_item, out.len) == 0,
                      "%s: MGET item got '%.*s'", tc->why, (int) out.len,
                      out.data);
    }
    buf_free(&out);
}
END_TEST

static Suite *
resp_suite(void)
{
    Suite *s = suite_create("resp");
    TCase *tc = tcase_create("dispatch");

    tcase_add_loop_test(tc, test_dispatch, 0,
                        sizeof(cmd_cases) / sizeof(cmd_cases[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("encoders");
    tcase_add_test(tc, test_encoders);
    tcase_add_test(tc, test_large_bulk_grows);
    tcase_add_test(tc, test_bulk_head);
    tcase_add_test(tc, test_bulk_in_place);
    suite_add_tcase(s, tc);
    tc = tcase_create("backend results");
    tcase_add_loop_test(tc, test_backend_reply, 0,
                        sizeof(backend_cases) / sizeof(backend_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(resp_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
