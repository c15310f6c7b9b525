/*
 * check_tracking: tracking_parse(), the reading of what arrives on the
 * subscriber's connection, one table row per reply as Redis 7 sends it
 * in RESP2 (bytes taken from redis-server 7.0 with CLIENT TRACKING on
 * REDIRECT), with a .why.
 */
#include <check.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "tracking.h"

#define CH "$20\r\n__redis__:invalidate\r\n"

static const struct parse_case {
    const char        *in;
    enum tracking_msg  kind;
    size_t             keys;        /* KEYS: how many */
    const char        *first;       /* KEYS: the first one */
    const char        *why;
} cases[] = {
    { "*3\r\n$9\r\nsubscribe\r\n" CH ":1\r\n", TRACKING_MSG_SUBSCRIBED, 0,
      NULL, "SUBSCRIBE's confirmation" },
    { "*2\r\n$4\r\npong\r\n$0\r\n\r\n", TRACKING_MSG_PONG, 0, NULL,
      "PING while subscribed" },
    { "*3\r\n$7\r\nmessage\r\n" CH "*1\r\n$3\r\nfoo\r\n", TRACKING_MSG_KEYS,
      1, "foo", "one key (default mode)" },
    { "*3\r\n$7\r\nmessage\r\n" CH "*2\r\n$3\r\na:1\r\n$0\r\n\r\n",
      TRACKING_MSG_KEYS, 2, "a:1", "several keys, one empty (bcast)" },
    { "*3\r\n$7\r\nmessage\r\n" CH "$-1\r\n", TRACKING_MSG_FLUSH, 0, NULL,
      "nil: FLUSHALL or FLUSHDB" },
    { "*3\r\n$7\r\nmessage\r\n" CH "*-1\r\n", TRACKING_MSG_FLUSH, 0, NULL,
      "a nil array reads as a flush too" },
    { "*3\r\n$7\r\nmessage\r\n" CH "*2\r\n$1\r\na\r\n:1\r\n",
      TRACKING_MSG_FLUSH, 0, NULL, "a key we cannot read: flush, safe" },
    { "*3\r\n$7\r\nmessage\r\n" CH "*0\r\n", TRACKING_MSG_KEYS, 0, NULL,
      "an empty list drops nothing" },
    { "*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n*1\r\n$1\r\nk\r\n",
      TRACKING_MSG_OTHER, 0, NULL, "another channel: not ours" },
    { "*3\r\n$8\r\npmessage\r\n" CH "*1\r\n$1\r\nk\r\n", TRACKING_MSG_OTHER,
      0, NULL, "not a plain message" },
    { "+OK\r\n", TRACKING_MSG_OTHER, 0, NULL, "a status" },
    { ":42\r\n", TRACKING_MSG_OTHER, 0, NULL, "an integer (CLIENT ID)" },
    { "*1\r\n$7\r\nmessage\r\n", TRACKING_MSG_OTHER, 0, NULL,
      "too short" },
    { "*3\r\n:1\r\n" CH "*1\r\n$1\r\nk\r\n", TRACKING_MSG_OTHER, 0, NULL,
      "kind not a string" },
};

START_TEST(parse)
{
    const struct parse_case *c = &cases[_i];
    redisReader             *rd = redisReaderCreate();
    void                    *reply = NULL;
    const redisReply        *keys = NULL;
    enum tracking_msg        kind;

    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(redisReaderFeed(rd, c->in, strlen(c->in)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    kind = tracking_parse(reply, &keys);
    ck_assert_msg(kind == c->kind, "%s: kind %d, want %d", c->why, kind,
                  c->kind);
    if (kind == TRACKING_MSG_KEYS) {
        ck_assert_ptr_nonnull(keys);
        ck_assert_uint_eq(keys->elements, c->keys);
        if (c->first != NULL) {
            ck_assert_str_eq(keys->element[0]->str, c->first);
        }
    }
    freeReplyObject(reply);
    redisReaderFree(rd);
}
END_TEST

static Suite *
tracking_suite(void)
{
    Suite *s = suite_create("tracking");
    TCase *tc = tcase_create("parse");

    tcase_add_loop_test(tc, parse, 0, sizeof(cases) / sizeof(cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(tracking_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
