/*
 * Unit tests of resp_session.c: each row runs a short conversation (a
 * list of commands on one fresh session) and compares the bytes of the
 * last answer with what redis-server 7.0 answers for the same
 * conversation (recorded by hand from a real server), or with the
 * proxy's own value where it differs on purpose.
 */
#include "rcp_autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "resp.h"
#include "resp_session.h"

#define CONV_MAX 6
#define ARGS_MAX 8

struct session_case {
    const char *conv[CONV_MAX][ARGS_MAX];   /* commands; NULL-terminated */
    const char *password;                   /* --resp-password, or NULL */
    const char *user;                       /* --resp-user, or NULL */
    const char *reply;                      /* exact last answer */
    const char *prefix;                     /* or: the answer starts so */
    const char *contains;                   /* and/or: holds this */
    const char *why;
};

static const struct session_case session_cases[] = {
    { { { "MULTI" } }, NULL, NULL, "+OK\r\n", NULL, NULL, "MULTI" },
    { { { "MULTI" }, { "GET", "user:a" } }, NULL, NULL, "+QUEUED\r\n",
      NULL, NULL, "a command inside MULTI is queued" },
    { { { "MULTI" }, { "MGET", "user:a", "secret" } }, NULL, NULL,
      "-" RESP_SESSION_NOPERM "\r\n", NULL, NULL,
      "a refused key is refused when queued, as Redis' ACL" },
    { { { "MULTI" }, { "TYPE", "secret" }, { "EXEC" } }, NULL, NULL, NULL,
      "-EXECABORT", NULL, "and aborts EXEC" },
    { { { "MULTI" }, { "WATCH", "secret" } }, NULL, NULL, NULL,
      "-ERR WATCH inside MULTI", NULL, "WATCH reads no key" },
    { { { "MULTI" }, { "GET", "user:a" }, { "PING" }, { "EXEC" } }, NULL,
      NULL,
      "*2\r\n", NULL, NULL, "EXEC heads the array of queued answers" },
    { { { "MULTI" }, { "GET", "user:a" }, { "SET", "a", "b" }, { "EXEC" } },
      NULL, NULL,
      "-EXECABORT Transaction discarded because of previous errors.\r\n",
      NULL, NULL, "a command the port does not serve aborts EXEC" },
    { { { "MULTI" }, { "SET", "a", "b" } }, NULL, NULL,
      "-ERR unknown command 'SET', with args beginning with: 'a' 'b' \r\n",
      NULL, NULL, "and is answered with its error at once" },
    { { { "MULTI" }, { "GET" }, { "EXEC" } }, NULL, NULL, NULL,
      "-EXECABORT", NULL, "an arity error aborts EXEC too" },
    { { { "MULTI" }, { "MULTI" } }, NULL, NULL,
      "-ERR MULTI calls can not be nested\r\n", NULL, NULL, "nested" },
    { { { "EXEC" } }, NULL, NULL, "-ERR EXEC without MULTI\r\n", NULL, NULL,
      "EXEC alone" },
    { { { "DISCARD" } }, NULL, NULL, "-ERR DISCARD without MULTI\r\n", NULL,
      NULL, "DISCARD alone" },
    { { { "MULTI" }, { "GET", "user:a" }, { "DISCARD" }, { "EXEC" } }, NULL,
      NULL, "-ERR EXEC without MULTI\r\n", NULL, NULL,
      "DISCARD ends the transaction" },
    { { { "WATCH", "a" } }, NULL, NULL, "+OK\r\n", NULL, NULL, "WATCH" },
    { { { "MULTI" }, { "WATCH", "a" } }, NULL, NULL,
      "-ERR WATCH inside MULTI is not allowed\r\n", NULL, NULL,
      "WATCH inside MULTI" },
    { { { "UNWATCH" } }, NULL, NULL, "+OK\r\n", NULL, NULL, "UNWATCH" },
    { { { "CONFIG", "GET", "save" } }, NULL, NULL,
      "*2\r\n$4\r\nsave\r\n$0\r\n\r\n", NULL, NULL, "CONFIG GET save" },
    { { { "CONFIG", "GET", "appendonly" } }, NULL, NULL,
      "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n", NULL, NULL,
      "CONFIG GET appendonly" },
    { { { "CONFIG", "GET", "save", "appendonly" } }, NULL, NULL,
      "*4\r\n$4\r\nsave\r\n$0\r\n\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
      NULL, NULL, "two parameters, as redis-benchmark may ask" },
    { { { "CONFIG", "GET", "maxmemory" } }, NULL, NULL,
      "*2\r\n$9\r\nmaxmemory\r\n$8\r\n67108864\r\n", NULL, NULL,
      "maxmemory is the cache's --max-memory" },
    { { { "CONFIG", "GET", "databases" } }, NULL, NULL,
      "*2\r\n$9\r\ndatabases\r\n$1\r\n1\r\n", NULL, NULL,
      "databases up to --redis-db" },
    { { { "CONFIG", "GET", "MAX*" } }, NULL, NULL,
      "*2\r\n$9\r\nmaxmemory\r\n$8\r\n67108864\r\n", NULL, NULL,
      "a glob, case-insensitive" },
    { { { "CONFIG", "GET", "nonexist" } }, NULL, NULL, "*0\r\n", NULL, NULL,
      "unknown parameter" },
    { { { "CONFIG", "GET" } }, NULL, NULL,
      "-ERR wrong number of arguments for 'config|get' command\r\n", NULL,
      NULL, "CONFIG GET arity" },
    { { { "CONFIG", "SET", "a", "b" } }, NULL, NULL, NULL, "-ERR CONFIG",
      NULL, "CONFIG SET refused" },
    { { { "CLIENT", "ID" } }, NULL, NULL, ":42\r\n", NULL, NULL,
      "CLIENT ID" },
    { { { "CLIENT", "GETNAME" } }, NULL, NULL, "$-1\r\n", NULL, NULL,
      "no name yet" },
    { { { "CLIENT", "SETNAME", "foo" }, { "CLIENT", "GETNAME" } }, NULL,
      NULL, "$3\r\nfoo\r\n", NULL, NULL, "SETNAME then GETNAME" },
    { { { "CLIENT", "SETNAME", "a b" } }, NULL, NULL,
      "-ERR Client names cannot contain spaces, newlines or special "
      "characters.\r\n", NULL, NULL, "a name with a space" },
    { { { "CLIENT", "NO-EVICT", "on" } }, NULL, NULL, "+OK\r\n", NULL, NULL,
      "NO-EVICT" },
    { { { "CLIENT", "NO-TOUCH", "off" } }, NULL, NULL, "+OK\r\n", NULL, NULL,
      "NO-TOUCH" },
    { { { "CLIENT", "NO-EVICT", "maybe" } }, NULL, NULL,
      "-ERR syntax error\r\n", NULL, NULL, "NO-EVICT needs on or off" },
    { { { "CLIENT", "FOO" } }, NULL, NULL,
      "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n", NULL, NULL,
      "unknown CLIENT subcommand" },
    { { { "CLIENT", "SETINFO", "lib-name", "x" } }, NULL, NULL, "+OK\r\n",
      NULL, NULL, "SETINFO" },
    { { { "CLIENT", "INFO" } }, NULL, NULL, NULL, "$",
      "id=42 addr=127.0.0.1:5000 laddr=127.0.0.1:6380 fd=7 name= age=1 ",
      "CLIENT INFO" },
    { { { "RESET" } }, NULL, NULL, "+RESET\r\n", NULL, NULL, "RESET" },
    { { { "CLIENT", "SETNAME", "foo" }, { "RESET" }, { "CLIENT", "GETNAME" } },
      NULL, NULL, "$-1\r\n", NULL, NULL, "RESET forgets the name" },
    { { { "MULTI" }, { "GET", "k" }, { "RESET" }, { "EXEC" } }, NULL, NULL,
      "-ERR EXEC without MULTI\r\n", NULL, NULL,
      "RESET inside MULTI is not queued: it discards the transaction" },
    { { { "RESET" } }, "pw", NULL, "+RESET\r\n", NULL, NULL,
      "RESET needs no AUTH, as in Redis" },
    { { { "AUTH", "pw" }, { "RESET" }, { "PING" } }, "pw", NULL,
      "-NOAUTH Authentication required.\r\n", NULL, NULL,
      "RESET forgets the AUTH when the default user has a password" },
    { { { "CLIENT", "INFO" } }, NULL, NULL, NULL, "$",
      " multi=-1 qbuf=26 qbuf-free=4070 argv-mem=10 multi-mem=0 rbs=4096"
      " rbp=4096 obl=0 oll=0 omem=0 tot-mem=8192 events=r cmd=client|info"
      " user=default redir=-1 resp=2\n\r\n",
      "CLIENT INFO has every field redis-py's client_info() reads, in "
      "Redis 7.0's order" },
    { { { "INFO" } }, NULL, NULL, NULL, "$", "\r\nkeyspace_hits:11\r\n"
      "keyspace_misses:12\r\n", "INFO: the cache's hits and misses" },
    { { { "INFO", "server" } }, NULL, NULL, NULL,
      "$", "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n",
      "INFO server" },
    { { { "INFO", "replication" } }, NULL, NULL,
      "$48\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n",
      NULL, NULL, "INFO replication: one primary, as health checks expect" },
    { { { "INFO", "Cluster" } }, NULL, NULL,
      "$30\r\n# Cluster\r\ncluster_enabled:0\r\n\r\n", NULL, NULL,
      "INFO cluster: not a cluster, in Redis' words" },
    { { { "INFO", "keyspace" } }, NULL, NULL,
      "$44\r\n# Keyspace\r\ndb0:keys=3,expires=3,avg_ttl=0\r\n\r\n", NULL,
      NULL, "INFO keyspace in Redis' shape" },
    { { { "INFO", "CLIENTS" } }, NULL, NULL,
      "$68\r\n# Clients\r\nconnected_clients:5\r\nmaxclients:1024\r\n"
      "blocked_clients:0\r\n\r\n", NULL, NULL, "section names ignore case" },
    { { { "INFO", "bogus" } }, NULL, NULL, "$0\r\n\r\n", NULL, NULL,
      "an unknown section is empty, as in Redis" },
    { { { "HELLO", "3" } }, NULL, NULL,
      "-NOPROTO unsupported protocol version\r\n", NULL, NULL,
      "RESP3 refused: clients stay on RESP2" },
    { { { "HELLO", "2" } }, NULL, NULL, NULL,
      "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15"
      "\r\n$5\r\nproto\r\n:2\r\n", NULL, "HELLO 2" },
    { { { "HELLO", "x" } }, NULL, NULL,
      "-ERR Protocol version is not an integer or out of range\r\n", NULL,
      NULL, "HELLO garbage" },
    { { { "AUTH", "x" } }, NULL, NULL, NULL,
      "-ERR AUTH <password> called without any password configured", NULL,
      "AUTH without a password configured" },
    { { { "GET", "a" } }, "pw", NULL, "-NOAUTH Authentication required.\r\n",
      NULL, NULL, "NOAUTH before AUTH" },
    { { { "EXEC" } }, "pw", NULL, "-EXECABORT Transaction discarded "
      "because of: NOAUTH Authentication required.\r\n", NULL, NULL,
      "EXEC before AUTH: Redis 7's EXECABORT words" },
    { { { "AUTH", "nope" } }, "pw", NULL,
      "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
      NULL, NULL, "wrong password" },
    { { { "AUTH", "pw" } }, "pw", NULL, "+OK\r\n", NULL, NULL,
      "right password" },
    { { { "AUTH", "pw" }, { "GET", "a" } }, "pw", NULL, "", NULL, NULL,
      "after AUTH the gate lets commands pass" },
    { { { "AUTH", "default", "pw" } }, "pw", NULL, "+OK\r\n", NULL, NULL,
      "AUTH default pw" },
    { { { "AUTH", "pw" } }, "pw", "alice", NULL, "-WRONGPASS", NULL,
      "with --resp-user, AUTH needs the user" },
    { { { "AUTH", "alice", "pw" } }, "pw", "alice", "+OK\r\n", NULL, NULL,
      "AUTH user pass" },
    { { { "AUTH", "bob", "pw" } }, "pw", "alice", NULL, "-WRONGPASS", NULL,
      "another user" },
    { { { "HELLO", "2" } }, "pw", NULL, NULL, "-NOAUTH HELLO must be called",
      NULL, "HELLO without AUTH before authenticating" },
    { { { "HELLO" } }, "pw", NULL, NULL, "-NOAUTH HELLO must be called",
      NULL, "bare HELLO before authenticating: Redis 7's words" },
    { { { "HELLO", "2", "AUTH", "default", "pw" }, { "GET", "a" } }, "pw",
      NULL, "", NULL, NULL, "HELLO AUTH authenticates" },
    { { { "HELLO", "2", "SETNAME", "me" }, { "CLIENT", "GETNAME" } }, NULL,
      NULL, "$2\r\nme\r\n", NULL, NULL, "HELLO SETNAME" },
    { { { "HELLO", "2", "SETNAME", "a\nb" } }, NULL, NULL, NULL,
      "-ERR Client names cannot contain", NULL, "HELLO SETNAME checked" },
    { { { "QUIT" } }, "pw", NULL, "+OK\r\n", NULL, NULL,
      "QUIT passes the gate" },
};

/* --allow-keys user:* for the MULTI rows. */
static bool
fake_key_allowed(void *arg, const char *key, size_t len)
{
    (void) arg;
    return len >= 5 && memcmp(key, "user:", 5) == 0;
}

static void
fake_info(void *arg, struct resp_session_server_info *si)
{
    si->proxy_version = "0.1.0";
    si->pid = 1234;
    si->tcp_port = 6380;
    si->uptime_s = 100;
    si->now_ms = 2000;
    si->connected_clients = 5;
    si->cache.entries = 3;
    si->cache.hits = 11;
    si->cache.misses = 12;
    si->fd = 7;
    si->addr = "127.0.0.1:5000";
    si->laddr = "127.0.0.1:6380";
    si->qbuf = 26;
    si->qbuf_free = 4070;
    si->tot_mem = 8192;
}

/* Runs one command the way the worker does: gate, then dispatch, then
 * the session.  Returns the answer in out. */
static void
run_one(struct resp_session *s, const struct resp_session_env *env,
        const char *const args[ARGS_MAX], struct buf *out)
{
    char                data[512];
    struct resp_arg     argv[ARGS_MAX];
    struct resp_command cmd = { .argv = argv, .argv_cap = ARGS_MAX };
    size_t              off = 0;
    enum resp_session_rc rc;

    for (size_t i = 0; i < ARGS_MAX && args[i] != NULL; i++) {
        size_t n = strlen(args[i]);

        memcpy(data + off, args[i], n);
        argv[i].off = off;
        argv[i].len = n;
        off += n;
        cmd.argc++;
    }
    cmd.consumed = off;
    rc = resp_session_gate(s, data, &cmd, data, off, env, out);
    if (rc != RESP_SESSION_PASS) {
        return;
    }
    if (resp_dispatch(data, &cmd, 0, out) == RESP_ACTION_SESSION) {
        rc = resp_session_command(s, data, &cmd, env, out);
        ck_assert(rc != RESP_SESSION_NOMEM);
    }
}

START_TEST(test_session)
{
    const struct session_case *tc = &session_cases[_i];
    struct config              cfg;
    struct resp_session        s;
    struct resp_session_env    env = { .cfg = &cfg, .fill_info = fake_info,
                                       .key_allowed = fake_key_allowed };
    struct buf                 out = { 0 };

    config_defaults(&cfg);
    if (tc->password != NULL) {
        strcpy(cfg.resp_password, tc->password);
    }
    if (tc->user != NULL) {
        strcpy(cfg.resp_user, tc->user);
    }
    memset(&s, 0, sizeof(s));
    resp_session_init(&s, 42, 1000, &cfg);
    for (size_t i = 0; i < CONV_MAX && tc->conv[i][0] != NULL; i++) {
        out.len = 0;
        run_one(&s, &env, tc->conv[i], &out);
    }
    if (tc->reply != NULL) {
        ck_assert_msg(out.len == strlen(tc->reply)
                      && memcmp(out.data, tc->reply, out.len) == 0,
                      "%s: got '%.*s'", tc->why, (int) out.len,
                      out.data != NULL ? out.data : "");
    }
    if (tc->prefix != NULL) {
        ck_assert_msg(out.len >= strlen(tc->prefix)
                      && memcmp(out.data, tc->prefix, strlen(tc->prefix))
                         == 0, "%s: got '%.*s'", tc->why, (int) out.len,
                      out.data != NULL ? out.data : "");
    }
    if (tc->contains != NULL) {
        ck_assert_msg(out.len > 0 && memmem(out.data, out.len, tc->contains,
                                            strlen(tc->contains)) != NULL,
                      "%s: got '%.*s'", tc->why, (int) out.len,
                      out.data != NULL ? out.data : "");
    }
    buf_free(&out);
    resp_session_fini(&s);
}
END_TEST

START_TEST(test_exec_queue)
{
    struct config           cfg;
    struct resp_session     s;
    struct resp_session_env env = { .cfg = &cfg, .fill_info = fake_info };
    struct buf              out = { 0 }, q;
    const char             *multi[ARGS_MAX] = { "MULTI" };
    const char             *get[ARGS_MAX] = { "GET", "k" };
    const char             *ping[ARGS_MAX] = { "PING" };
    const char             *exec[ARGS_MAX] = { "EXEC" };

    config_defaults(&cfg);
    memset(&s, 0, sizeof(s));
    resp_session_init(&s, 1, 0, &cfg);
    run_one(&s, &env, multi, &out);
    run_one(&s, &env, get, &out);
    run_one(&s, &env, ping, &out);
    out.len = 0;
    {
        char                data[] = "EXEC";
        struct resp_arg     argv[1] = { { 0, 4 } };
        struct resp_command cmd = { .argv = argv, .argv_cap = 1, .argc = 1,
                                    .consumed = 4 };

        ck_assert_int_eq(resp_session_command(&s, data, &cmd, &env, &out),
                         RESP_SESSION_EXEC);
    }
    (void) exec;
    ck_assert_uint_eq(out.len, 4);
    ck_assert(memcmp(out.data, "*2\r\n", 4) == 0);
    resp_session_take_queue(&s, &q);
    /* The raw bytes of each queued command, in order. */
    ck_assert_uint_eq(q.len, strlen("GETkPING"));
    ck_assert(memcmp(q.data, "GETkPING", q.len) == 0);
    ck_assert(!s.in_multi);
    buf_free(&q);
    buf_free(&out);
    resp_session_fini(&s);
}
END_TEST

START_TEST(test_secret_eq)
{
    ck_assert(resp_session_secret_eq("abc", 3, "abc", 3));
    ck_assert(!resp_session_secret_eq("abd", 3, "abc", 3));
    ck_assert(!resp_session_secret_eq("ab", 2, "abc", 3));
    ck_assert(!resp_session_secret_eq("abcd", 4, "abc", 3));
    ck_assert(!resp_session_secret_eq("abc\0", 4, "abc", 3));
    ck_assert(resp_session_secret_eq("", 0, "", 0));
}
END_TEST

static Suite *
session_suite(void)
{
    Suite *s = suite_create("resp_session");
    TCase *tc = tcase_create("conversations");

    tcase_add_loop_test(tc, test_session, 0,
                        sizeof(session_cases) / sizeof(session_cases[0]));
    tcase_add_test(tc, test_exec_queue);
    tcase_add_test(tc, test_secret_eq);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(session_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
