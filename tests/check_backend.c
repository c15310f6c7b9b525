/*
 * check_backend: the Redis backend against a real redis-server that each
 * test starts itself (fork/exec on a free port, killed by its PID), plus
 * fake servers (a socket that never answers, a closed port) for the
 * deadline and unreachable paths.
 *
 * Tests drive the event loop with run_until(): it returns once a
 * condition holds or a deadline passes, and never sleeps.  Deadlines are
 * failure bounds, never timing assertions.
 *
 * metrics.c belongs to another module, and the cache is the caller's:
 * the test doubles below record what the backend hands them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "backend.h"
#include "config.h"
#include "event.h"
#include "metrics.h"

#define RUN_MAX_MS 5000

/* --- test doubles for the store callback and metrics.c ---------------- */

static size_t double_cache_sets;
static int64_t double_cache_last_pttl;
static size_t double_cache_nils;
static size_t double_cache_last_len;

/* The worker's store callback stores into the cache; this one counts. */
static bool
double_store(void *arg, const void *key, size_t key_len, struct value *v,
             uint64_t fetch_us, uint64_t token, int64_t pttl_ms)
{
    (void)token;
    double_cache_last_pttl = pttl_ms;
    ck_assert_ptr_null(arg);
    ck_assert(key != NULL || key_len == 0);
    ck_assert_uint_lt(fetch_us, 60u * 1000000u);
    if (v == NULL) {
        double_cache_nils++;        /* an absent key */
        return false;
    }
    ck_assert_uint_ge(v->refs, 1);
    double_cache_sets++;
    double_cache_last_len = v->len;
    return true;
}

static uint64_t
clock_ms(void)
{
    struct timespec ts;

    ck_assert_int_eq(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* TEST DOUBLE: stands in for metrics.c. */
void
metrics_count_coalesced(struct metrics_slot_shm *s, uint64_t n)
{
    s->coalesced_waiters += n;
}

/* TEST DOUBLE: stands in for metrics.c. */
void
metrics_count_backend_error(struct metrics_slot_shm *s,
                            enum metrics_backend_error kind)
{
    ck_assert_int_lt(kind, METRICS_BACKEND_ERROR_COUNT);
    s->backend_errors[kind]++;
}

/* TEST DOUBLE: stands in for metrics.c. */
void
metrics_add_backend_connections(struct metrics_slot_shm *s, int64_t delta)
{
    s->backend_connections += delta;
    ck_assert_int_ge(s->backend_connections, 0);
    ck_assert_int_le(s->backend_connections, 1);
}

/* TEST DOUBLE: stands in for metrics.c. */
void
metrics_observe_backend(struct metrics_slot_shm *s, uint64_t micros)
{
    s->backend_count++;
    s->backend_sum_us += micros;
}

/* TEST DOUBLES: cluster.c's counters, from metrics.c; these tests run
 * one Redis, so none may be called. */
void
metrics_cluster_redirect(struct metrics_slot_shm *s, bool ask)
{
    (void)s;
    (void)ask;
    ck_abort_msg("a redirect counted without a cluster");
}

void
metrics_count_failover(struct metrics_slot_shm *s)
{
    (void)s;
    ck_abort_msg("a failover followed without Sentinel");
}

void
metrics_cluster_nodes_down(struct metrics_slot_shm *s, uint32_t down)
{
    (void)s;
    (void)down;
    ck_abort_msg("nodes counted without a cluster");
}

void
metrics_cluster_refresh(struct metrics_slot_shm *s)
{
    (void)s;
    ck_abort_msg("a map refresh without a cluster");
}

void
metrics_cluster_map(struct metrics_slot_shm *s, uint32_t nodes,
                    uint32_t covered, bool changed)
{
    (void)s;
    (void)nodes;
    (void)covered;
    (void)changed;
    ck_abort_msg("a slot map without a cluster");
}

void
metrics_nodes_publish(struct metrics_slot_shm *s,
                      const struct metrics_node_shm *nodes, uint32_t n,
                      uint32_t more, bool new_list)
{
    (void)s;
    (void)nodes;
    (void)n;
    (void)more;
    (void)new_list;
    ck_abort_msg("a node table without a cluster or Sentinel");
}

void
metrics_node_set_addr(struct metrics_node_shm *n, const char *addr)
{
    (void)n;
    (void)addr;
    ck_abort_msg("a node table without a cluster or Sentinel");
}

/* --- classify (pure) --------------------------------------------------- */

static const struct classify_case {
    const char          *text;
    enum backend_result  expect;
    const char          *why;
} classify_cases[] = {
    { "WRONGTYPE Operation against a key holding the wrong kind of value",
      BACKEND_WRONGTYPE, "Redis' text" },
    { "WRONGTYPE", BACKEND_WRONGTYPE, "the code alone" },
    { "WRONGTYPEX foo", BACKEND_ERROR_REPLY, "another code sharing a prefix" },
    { "wrongtype Operation", BACKEND_ERROR_REPLY, "codes are upper case" },
    { "ERR unknown command", BACKEND_ERROR_REPLY, "generic error" },
    { "NOAUTH Authentication required.", BACKEND_ERROR_REPLY, "auth" },
    { "LOADING Redis is loading", BACKEND_ERROR_REPLY, "loading" },
    { " WRONGTYPE x", BACKEND_ERROR_REPLY, "the code must come first" },
    { "WRONG", BACKEND_ERROR_REPLY, "truncated code" },
    { "", BACKEND_ERROR_REPLY, "empty text" },
};

START_TEST(classify_error)
{
    const struct classify_case *c = &classify_cases[_i];

    ck_assert_msg(backend_classify_error(c->text, strlen(c->text))
                      == c->expect, "%s: '%s'", c->why, c->text);
}
END_TEST

START_TEST(classify_error_uses_len)
{
    /* Only len bytes count: the text need not be NUL-terminated. */
    ck_assert_int_eq(backend_classify_error("WRONGTYPE x", 5),
                     BACKEND_ERROR_REPLY);
    ck_assert_int_eq(backend_classify_error("WRONGTYPE x", 9),
                     BACKEND_WRONGTYPE);
    ck_assert_int_eq(backend_classify_error(NULL, 0), BACKEND_ERROR_REPLY);
}
END_TEST

/* --- redis-server fixture --------------------------------------------- */

struct redis_proc {
    pid_t pid;
    int   port;
    char  dir[64];
    char  sock[128];
    char  password[64];
};

static int
free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port;

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    ck_assert_int_eq(close(fd), 0);
    return port;
}

static uint64_t
mono_ms(void)
{
    return clock_ms();
}

static void
short_pause(void)
{
    /* Between attempts to reach a starting redis-server, which has no
     * event we could wait on. */
    struct timespec ts = { 0, 10 * 1000 * 1000 };

    (void)nanosleep(&ts, NULL);
}

static redisContext *
redis_admin(const struct redis_proc *r)
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    redisReply *reply;

    if (c == NULL || c->err) {
        if (c != NULL) {
            redisFree(c);
        }
        return NULL;
    }
    if (r->password[0] != '\0') {
        reply = redisCommand(c, "AUTH %s", r->password);
        ck_assert_ptr_nonnull(reply);
        ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
        freeReplyObject(reply);
    }
    return c;
}

static void
redis_start(struct redis_proc *r, const char *password)
{
    char port[16];
    const char *argv[32];
    int argc = 0;
    uint64_t deadline;
    const char *server;

    (void)snprintf(port, sizeof(port), "%d", r->port);
    (void)snprintf(r->password, sizeof(r->password), "%s",
                   password != NULL ? password : "");
    argv[argc++] = "redis-server";
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "-::1";              /* optional: IPv6 may be absent */
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--daemonize";
    argv[argc++] = "no";
    argv[argc++] = "--dir";
    argv[argc++] = r->dir;
    argv[argc++] = "--unixsocket";
    argv[argc++] = r->sock;
    argv[argc++] = "--unixsocketperm";
    argv[argc++] = "700";
    argv[argc++] = "--enable-debug-command";
    argv[argc++] = "yes";
    argv[argc++] = "--loglevel";
    argv[argc++] = "warning";
    if (password != NULL) {
        argv[argc++] = "--requirepass";
        argv[argc++] = password;
    }
    argv[argc] = NULL;

    /* make check exports the redis-server configure found. */
    server = getenv("REDIS_SERVER");
    if (server == NULL || server[0] == '\0' || strcmp(server, "no") == 0) {
        server = "redis-server";
    }
    /* Debian's redis-tools ships the server as redis-check-rdb, which
     * serves only when argv[0] does not name it: always say redis-server. */
    argv[0] = "redis-server";
    r->pid = fork();
    ck_assert_int_ge(r->pid, 0);
    if (r->pid == 0) {
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

        /* If the test dies on a failed assertion, so does its server. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || devnull < 0
            || dup2(devnull, STDOUT_FILENO) < 0) {
            _exit(127);
        }
        execvp(server, (char *const *)argv);
        _exit(127);
    }

    deadline = mono_ms() + RUN_MAX_MS;
    for (;;) {
        redisContext *c = redis_admin(r);
        int status;

        if (c != NULL) {
            redisReply *reply = redisCommand(c, "PING");
            bool ok = reply != NULL && reply->type == REDIS_REPLY_STATUS;

            if (reply != NULL) {
                freeReplyObject(reply);
            }
            redisFree(c);
            if (ok) {
                return;
            }
        }
        ck_assert_msg(waitpid(r->pid, &status, WNOHANG) == 0,
                      "redis-server exited at start");
        ck_assert_msg(mono_ms() < deadline, "redis-server did not start");
        short_pause();
    }
}

static void
redis_kill(struct redis_proc *r)
{
    int status;

    if (r->pid <= 0) {
        return;
    }
    ck_assert_int_eq(kill(r->pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(r->pid, &status, 0), r->pid);
    r->pid = 0;
}

static void
redis_cmd_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *reply;

    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(reply != NULL, "redis: %s", c->errstr);
    ck_assert_msg(reply->type != REDIS_REPLY_ERROR, "redis: %s",
                  reply->str);
    freeReplyObject(reply);
}

static void
redis_set(const struct redis_proc *r, const void *key, size_t klen,
          const void *val, size_t vlen)
{
    redisContext *c = redis_admin(r);

    ck_assert_ptr_nonnull(c);
    redis_cmd_ok(c, "SET %b %b", key, klen, val, vlen);
    redisFree(c);
}

static long
redis_get_calls(const struct redis_proc *r)
{
    redisContext *c = redis_admin(r);
    redisReply *reply;
    const char *p;
    long calls = 0;

    ck_assert_ptr_nonnull(c);
    reply = redisCommand(c, "INFO commandstats");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    p = strstr(reply->str, "cmdstat_get:calls=");
    if (p != NULL) {
        calls = strtol(p + strlen("cmdstat_get:calls="), NULL, 10);
    }
    freeReplyObject(reply);
    redisFree(c);
    return calls;
}

/* Returns once a PING goes unanswered for 100 ms: on a quiet machine, the
 * server is inside DEBUG SLEEP.  (On a loaded one it may also be a server
 * not yet scheduled, which may then answer a GET sent after it before it
 * starts the sleep; redis_wait_blocked asks /proc first.) */
static void
redis_wait_ping_unanswered(const struct redis_proc *r)
{
    struct timeval tv = { 0, 100 * 1000 };
    uint64_t deadline = mono_ms() + RUN_MAX_MS;

    for (;;) {
        redisContext *c = redis_admin(r);
        redisReply *reply;

        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(redisSetTimeout(c, tv), REDIS_OK);
        reply = redisCommand(c, "PING");
        if (reply == NULL) {
            ck_assert_int_eq(c->err, REDIS_ERR_IO);
            redisFree(c);
            return;
        }
        freeReplyObject(reply);
        redisFree(c);
        ck_assert_msg(mono_ms() < deadline, "DEBUG SLEEP never started");
    }
}

/* Returns once the server's main thread is inside DEBUG SLEEP, so that a
 * request sent now cannot be served before the sleep ends: /proc says
 * its current system call is nanosleep or clock_nanosleep, where an
 * idle server waits in epoll.  Where /proc/PID/syscall cannot be read
 * (a container that denies it), an unanswered PING has to do. */
static void
redis_wait_blocked(const struct redis_proc *r)
{
    uint64_t deadline = mono_ms() + RUN_MAX_MS;
    char     path[64];

    (void) snprintf(path, sizeof(path), "/proc/%d/syscall", (int) r->pid);
    for (;;) {
        char  line[32];
        long  nr;
        FILE *f = fopen(path, "r");

        if (f == NULL) {
            redis_wait_ping_unanswered(r);
            return;
        }
        if (fgets(line, sizeof(line), f) == NULL) {
            fclose(f);
            redis_wait_ping_unanswered(r);
            return;
        }
        fclose(f);
        nr = strtol(line, NULL, 10);
        if (nr == SYS_clock_nanosleep || nr == SYS_nanosleep) {
            return;
        }
        ck_assert_msg(mono_ms() < deadline, "DEBUG SLEEP never started");
        usleep(1000);
    }
}

/* Sends DEBUG SLEEP without waiting for its answer; returns the context
 * (the caller frees it). */
static redisContext *
redis_debug_sleep(const struct redis_proc *r, const char *seconds)
{
    redisContext *c = redis_admin(r);
    int done = 0;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(redisAppendCommand(c, "DEBUG SLEEP %s", seconds),
                     REDIS_OK);
    while (!done) {
        ck_assert_int_eq(redisBufferWrite(c, &done), REDIS_OK);
    }
    redis_wait_blocked(r);
    return c;
}

/* --- loop and backend fixture ----------------------------------------- */

static struct event_loop loop;
static struct config cfg;
static struct backend *be;
static struct metrics_slot_shm slot;
static struct redis_proc redis;

struct got {
    struct backend_waiter w;
    int                   calls;
    enum backend_result   result;
    char                 *data;         /* owned copy */
    size_t                len;
    size_t                cache_sets;   /* double_cache_sets at the call */
    int64_t               pttl_ms;      /* the reply's */
    void                (*then)(struct got *g);
    struct got           *peer;
};

static int got_total;

static void
got_cb(struct backend_waiter *w, const struct backend_reply *reply)
{
    struct got *g = w->data;

    ck_assert_ptr_eq(&g->w, w);
    ck_assert_ptr_null(w->fetch);
    g->calls++;
    got_total++;
    g->result = reply->result;
    g->pttl_ms = reply->pttl_ms;
    free(g->data);
    g->data = NULL;
    g->len = reply->len;
    if (reply->len > 0) {
        g->data = malloc(reply->len);
        ck_assert_ptr_nonnull(g->data);
        memcpy(g->data, reply->data, reply->len);
    }
    g->cache_sets = double_cache_sets;
    if (g->then != NULL) {
        g->then(g);
    }
}

static void
got_init(struct got *g)
{
    memset(g, 0, sizeof(*g));
}

static void
got_fini(struct got *g)
{
    free(g->data);
    g->data = NULL;
}

static void
get(const void *key, size_t len, struct got *g)
{
    int before = g->calls;

    backend_get(be, key, len, &g->w, got_cb, g);
    ck_assert_msg(g->calls == before, "callback ran inside backend_get");
}

static void
get_str(const char *key, struct got *g)
{
    get(key, strlen(key), g);
}

static void
run_stop_cb(struct event_loop *l, struct event_timer *t)
{
    (void)t;
    event_loop_stop(l);
}

struct until {
    bool (*cond)(void *arg);
    void  *arg;
};

static void
until_check(struct event_loop *l, void *arg)
{
    struct until *u = arg;

    if (u->cond != NULL && u->cond(u->arg)) {
        event_loop_stop(l);
    }
}

/* Runs the loop until cond(arg) holds or max_ms pass; returns cond. */
static bool
run_until(bool (*cond)(void *), void *arg, uint64_t max_ms)
{
    struct event_timer stop;
    struct until u = { cond, arg };

    event_timer_init(&stop, run_stop_cb, NULL);
    event_update_time(&loop);
    ck_assert_int_eq(event_timer_start(&loop, &stop, max_ms), 0);
    ck_assert_int_eq(event_loop_run(&loop, until_check, &u), 0);
    event_timer_stop(&loop, &stop);
    return cond == NULL || cond(arg);
}

static bool
called(void *arg)
{
    return ((struct got *)arg)->calls > 0;
}

static bool
total_at_least(void *arg)
{
    return got_total >= *(int *)arg;
}

static bool
nothing_pending(void *arg)
{
    (void)arg;
    return backend_pending(be) == 0;
}

static void
cfg_tcp(const char *host, int port, uint64_t timeout_ms)
{
    memset(&cfg, 0, sizeof(cfg));
    (void)snprintf(cfg.redis.host, sizeof(cfg.redis.host), "%s", host);
    cfg.redis.port = (uint16_t)port;
    cfg.redis_timeout_ms = timeout_ms;
    cfg.max_reply_bytes = 512u << 20;
}

static void
backend_up(bool store)
{
    ck_assert_int_eq(backend_create(&loop, &cfg, &slot,
                                    store ? double_store : NULL, NULL, &be),
                     0);
    ck_assert_ptr_nonnull(be);
}

static void
setup(void)
{
    ck_assert_int_eq(event_loop_init(&loop), 0);
    memset(&slot, 0, sizeof(slot));
    memset(&redis, 0, sizeof(redis));
    be = NULL;
    got_total = 0;
    double_cache_sets = 0;
    double_cache_nils = 0;
    double_cache_last_len = 0;
    log_set_level(LOG_LEVEL_ERROR);
    (void)snprintf(redis.dir, sizeof(redis.dir), "/tmp/check_backend.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(redis.dir));
    (void)snprintf(redis.sock, sizeof(redis.sock), "%s/redis.sock",
                   redis.dir);
    redis.port = free_port();
}

static void
teardown(void)
{
    if (be != NULL) {
        backend_destroy(be);
        be = NULL;
    }
    event_loop_fini(&loop);
    redis_kill(&redis);
    (void)unlink(redis.sock);
    ck_assert_int_eq(rmdir(redis.dir), 0);
}

/* Starts redis (optionally with a password) and a TCP backend on it. */
static void
start_redis_and_backend(const char *password, uint64_t timeout_ms)
{
    redis_start(&redis, password);
    cfg_tcp("127.0.0.1", redis.port, timeout_ms);
    if (password != NULL) {
        (void)snprintf(cfg.redis_password, sizeof(cfg.redis_password), "%s",
                       password);
    }
    backend_up(false);
}

static void
expect_value(struct got *g, const void *val, size_t len)
{
    ck_assert_int_eq(g->calls, 1);
    ck_assert_int_eq(g->result, BACKEND_VALUE);
    ck_assert_uint_eq(g->len, len);
    ck_assert(len == 0 || memcmp(g->data, val, len) == 0);
}

/* --- values ------------------------------------------------------------ */

START_TEST(get_value_every_byte)
{
    unsigned char key[256], val[1024];
    struct got g;
    size_t i;

    for (i = 0; i < sizeof(key); i++) {
        key[i] = (unsigned char)(255 - i);
    }
    for (i = 0; i < sizeof(val); i++) {
        val[i] = (unsigned char)i;
    }
    start_redis_and_backend(NULL, 2000);
    redis_set(&redis, key, sizeof(key), val, sizeof(val));
    got_init(&g);
    get(key, sizeof(key), &g);
    ck_assert_uint_eq(backend_pending(be), 1);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, val, sizeof(val));
    ck_assert_uint_eq(backend_pending(be), 0);
    ck_assert_uint_eq(slot.backend_count, 1);
    got_fini(&g);
}
END_TEST

START_TEST(get_empty_and_large_values)
{
    size_t big_len = 5u * 1024 * 1024;
    unsigned char *big = malloc(big_len);
    struct got e, g;
    size_t i;
    uint32_t x = 2463534242u;

    ck_assert_ptr_nonnull(big);
    for (i = 0; i < big_len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big[i] = (unsigned char)x;
    }
    redis_start(&redis, NULL);
    cfg_tcp("127.0.0.1", redis.port, 5000);
    backend_up(true);
    redis_set(&redis, "empty", 5, "", 0);
    redis_set(&redis, "big", 3, big, big_len);
    got_init(&e);
    got_init(&g);
    get_str("empty", &e);
    get_str("big", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    ck_assert(run_until(called, &e, RUN_MAX_MS));
    expect_value(&e, "", 0);
    expect_value(&g, big, big_len);
    ck_assert_uint_eq(double_cache_sets, 2);
    ck_assert_uint_eq(double_cache_last_len, big_len);
    got_fini(&e);
    got_fini(&g);
    free(big);
}
END_TEST

START_TEST(get_nil)
{
    struct got g;

    redis_start(&redis, NULL);
    cfg_tcp("127.0.0.1", redis.port, 2000);
    backend_up(true);
    got_init(&g);
    get_str("absent", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.result, BACKEND_NIL);
    ck_assert_uint_eq(g.len, 0);
    /* The store callback heard of the absent key, once. */
    ck_assert_uint_eq(double_cache_nils, 1);
    ck_assert_uint_eq(double_cache_sets, 0);
    got_fini(&g);
}
END_TEST

START_TEST(get_reads_pttl_with_value)
{
    redisContext *c;
    struct got g, h;

    redis_start(&redis, NULL);
    cfg_tcp("127.0.0.1", redis.port, 2000);
    backend_up(true);
    c = redis_admin(&redis);
    ck_assert_ptr_nonnull(c);
    redis_cmd_ok(c, "SET short v PX 5000");
    redis_cmd_ok(c, "SET forever v");
    redisFree(c);
    got_init(&g);
    got_init(&h);
    get_str("short", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "v", 1);
    /* PTTL came in the same round trip, to the store and the waiter. */
    ck_assert_int_gt(double_cache_last_pttl, 0);
    ck_assert_int_le(double_cache_last_pttl, 5000);
    ck_assert_int_eq(g.pttl_ms, double_cache_last_pttl);
    get_str("forever", &h);
    ck_assert(run_until(called, &h, RUN_MAX_MS));
    ck_assert_int_eq(double_cache_last_pttl, BACKEND_PTTL_NONE);
    ck_assert_int_eq(h.pttl_ms, BACKEND_PTTL_NONE);
    /* One request each, timed once. */
    ck_assert_uint_eq(slot.backend_count, 2);
    ck_assert_uint_eq(double_cache_sets, 2);
    got_fini(&g);
    got_fini(&h);
}
END_TEST

START_TEST(get_wrongtype)
{
    redisContext *c;
    struct got g;

    start_redis_and_backend(NULL, 2000);
    c = redis_admin(&redis);
    ck_assert_ptr_nonnull(c);
    redis_cmd_ok(c, "LPUSH alist x");
    redisFree(c);
    got_init(&g);
    get_str("alist", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    ck_assert_int_eq(g.result, BACKEND_WRONGTYPE);
    ck_assert_uint_ge(g.len, 9);
    ck_assert(memcmp(g.data, "WRONGTYPE", 9) == 0);
    /* The client's mistake, not a Redis failure. */
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_REPLY], 0);
    got_fini(&g);
}
END_TEST

/* --- coalescing and cancel --------------------------------------------- */

static void
check_cached_first(struct got *g)
{
    /* The value is in the cache before any waiter hears of it. */
    ck_assert_uint_eq(double_cache_sets, 1);
    (void)g;
}

START_TEST(concurrent_gets_share_one_fetch)
{
    struct got g[50];
    redisContext *c;
    int want = 50;
    size_t i;

    redis_start(&redis, NULL);
    cfg_tcp("127.0.0.1", redis.port, 2000);
    backend_up(true);
    redis_set(&redis, "shared", 6, "value", 5);
    c = redis_admin(&redis);
    ck_assert_ptr_nonnull(c);
    redis_cmd_ok(c, "CONFIG RESETSTAT");
    redisFree(c);
    for (i = 0; i < 50; i++) {
        got_init(&g[i]);
        g[i].then = check_cached_first;
        get_str("shared", &g[i]);
    }
    ck_assert_uint_eq(backend_pending(be), 1);
    ck_assert(run_until(total_at_least, &want, RUN_MAX_MS));
    for (i = 0; i < 50; i++) {
        expect_value(&g[i], "value", 5);
        got_fini(&g[i]);
    }
    ck_assert_int_eq(redis_get_calls(&redis), 1);
    ck_assert_uint_eq(double_cache_sets, 1);
    ck_assert_uint_eq(slot.backend_count, 1);
}
END_TEST

START_TEST(cancelled_waiter_not_called)
{
    struct got a, b, c;
    int want = 2;

    start_redis_and_backend(NULL, 2000);
    redis_set(&redis, "k", 1, "v", 1);
    got_init(&a);
    got_init(&b);
    got_init(&c);
    get_str("k", &a);
    get_str("k", &b);
    get_str("k", &c);
    backend_cancel(&b.w);
    ck_assert_ptr_null(b.w.fetch);
    backend_cancel(&b.w);                   /* idle: a no-op */
    ck_assert(run_until(total_at_least, &want, RUN_MAX_MS));
    ck_assert(run_until(nothing_pending, NULL, RUN_MAX_MS));
    expect_value(&a, "v", 1);
    expect_value(&c, "v", 1);
    ck_assert_int_eq(b.calls, 0);
    got_fini(&a);
    got_fini(&c);
}
END_TEST

START_TEST(all_cancelled_fetch_still_fills_cache)
{
    struct got a, b;

    redis_start(&redis, NULL);
    cfg_tcp("127.0.0.1", redis.port, 2000);
    backend_up(true);
    redis_set(&redis, "k", 1, "v", 1);
    got_init(&a);
    got_init(&b);
    get_str("k", &a);
    get_str("k", &b);
    backend_cancel(&a.w);
    backend_cancel(&b.w);
    ck_assert_uint_eq(backend_pending(be), 1);
    ck_assert(run_until(nothing_pending, NULL, RUN_MAX_MS));
    ck_assert_uint_eq(double_cache_sets, 1);
    ck_assert_int_eq(a.calls + b.calls, 0);
}
END_TEST

static struct got reentrant_new;

static void
reentrant_then(struct got *g)
{
    /* Cancel a later waiter of this very fetch and ask for the key
     * again: the new request must start a fetch of its own. */
    backend_cancel(&g->peer->w);
    get_str("k", &reentrant_new);
}

START_TEST(callback_cancels_and_refetches)
{
    struct got a, b, c;
    int want = 3;

    start_redis_and_backend(NULL, 2000);
    redis_set(&redis, "k", 1, "v", 1);
    got_init(&a);
    got_init(&b);
    got_init(&c);
    got_init(&reentrant_new);
    a.then = reentrant_then;
    a.peer = &c;
    get_str("k", &a);
    get_str("k", &b);
    get_str("k", &c);
    ck_assert(run_until(total_at_least, &want, RUN_MAX_MS));
    ck_assert(run_until(nothing_pending, NULL, RUN_MAX_MS));
    expect_value(&a, "v", 1);
    expect_value(&b, "v", 1);
    expect_value(&reentrant_new, "v", 1);
    ck_assert_int_eq(c.calls, 0);
    ck_assert_int_eq(redis_get_calls(&redis), 2);
    got_fini(&a);
    got_fini(&b);
    got_fini(&reentrant_new);
}
END_TEST

/* --- connection variants ---------------------------------------------- */

START_TEST(unix_socket)
{
    struct got g;

    redis_start(&redis, NULL);
    memset(&cfg, 0, sizeof(cfg));
    cfg.redis.is_unix = true;
    (void)snprintf(cfg.redis.path, sizeof(cfg.redis.path), "%s",
                   redis.sock);
    cfg.redis_timeout_ms = 2000;
    cfg.max_reply_bytes = 512u << 20;
    backend_up(false);
    redis_set(&redis, "k", 1, "unix", 4);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "unix", 4);
    got_fini(&g);
}
END_TEST

START_TEST(ipv6_loopback)
{
    struct sockaddr_in6 sa;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct got g;

    /* Skip where the machine has no ::1 (the server binds it optionally). */
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "ipv6_loopback: no ::1 here, skipped\n");
        if (fd >= 0) {
            ck_assert_int_eq(close(fd), 0);
        }
        return;
    }
    ck_assert_int_eq(close(fd), 0);
    redis_start(&redis, NULL);
    cfg_tcp("::1", redis.port, 2000);
    backend_up(false);
    redis_set(&redis, "k", 1, "six", 3);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "six", 3);
    got_fini(&g);
}
END_TEST

START_TEST(requirepass_good_and_bad)
{
    struct got g, bad;

    start_redis_and_backend("p@ss w0rd", 2000);
    redis_set(&redis, "k", 1, "secret", 6);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "secret", 6);
    backend_destroy(be);
    be = NULL;

    /* A wrong password is unreachable, never an error reply. */
    (void)snprintf(cfg.redis_password, sizeof(cfg.redis_password), "nope");
    backend_up(false);
    got_init(&bad);
    get_str("k", &bad);
    ck_assert(run_until(called, &bad, RUN_MAX_MS));
    ck_assert_int_eq(bad.result, BACKEND_UNREACHABLE);
    ck_assert_uint_ge(slot.backend_errors[METRICS_BACKEND_UNREACHABLE], 1);
    got_fini(&g);
    got_fini(&bad);
}
END_TEST

START_TEST(acl_user)
{
    redisContext *c;
    struct got g, bad;

    redis_start(&redis, NULL);
    c = redis_admin(&redis);
    ck_assert_ptr_nonnull(c);
    redis_cmd_ok(c, "ACL SETUSER alice on >s3cret ~* +@all");
    redis_cmd_ok(c, "SET k acl");
    redisFree(c);
    cfg_tcp("127.0.0.1", redis.port, 2000);
    (void)snprintf(cfg.redis_user, sizeof(cfg.redis_user), "alice");
    (void)snprintf(cfg.redis_password, sizeof(cfg.redis_password), "s3cret");
    backend_up(false);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "acl", 3);
    backend_destroy(be);
    be = NULL;

    (void)snprintf(cfg.redis_password, sizeof(cfg.redis_password), "wrong");
    backend_up(false);
    got_init(&bad);
    get_str("k", &bad);
    ck_assert(run_until(called, &bad, RUN_MAX_MS));
    ck_assert_int_eq(bad.result, BACKEND_UNREACHABLE);
    got_fini(&g);
    got_fini(&bad);
}
END_TEST

START_TEST(error_reply_noperm)
{
    redisContext *c;
    struct got g;

    /* bob may read only "pub*" keys: GET secret is an error reply. */
    redis_start(&redis, NULL);
    c = redis_admin(&redis);
    ck_assert_ptr_nonnull(c);
    redis_cmd_ok(c, "ACL SETUSER bob on >pw ~pub* +@all");
    redis_cmd_ok(c, "SET secret x");
    redisFree(c);
    cfg_tcp("127.0.0.1", redis.port, 2000);
    (void)snprintf(cfg.redis_user, sizeof(cfg.redis_user), "bob");
    (void)snprintf(cfg.redis_password, sizeof(cfg.redis_password), "pw");
    backend_up(false);
    got_init(&g);
    get_str("secret", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    ck_assert_int_eq(g.result, BACKEND_ERROR_REPLY);
    ck_assert_uint_ge(g.len, 6);
    ck_assert(memcmp(g.data, "NOPERM", 6) == 0);
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_REPLY], 1);
    got_fini(&g);
}
END_TEST

START_TEST(hostname)
{
    struct got g;

    /* Resolved by hiredis when connecting (127.0.0.1 first). */
    redis_start(&redis, NULL);
    cfg_tcp("localhost", redis.port, 2000);
    backend_up(false);
    redis_set(&redis, "k", 1, "named", 5);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "named", 5);
    got_fini(&g);
}
END_TEST

START_TEST(select_db)
{
    redisContext *c;
    struct got g;

    redis_start(&redis, "pw");
    c = redis_admin(&redis);
    ck_assert_ptr_nonnull(c);
    redis_cmd_ok(c, "SET k zero");
    redis_cmd_ok(c, "SELECT 3");
    redis_cmd_ok(c, "SET k three");
    redisFree(c);
    cfg_tcp("127.0.0.1", redis.port, 2000);
    (void)snprintf(cfg.redis_password, sizeof(cfg.redis_password), "pw");
    cfg.redis_db = 3;
    backend_up(false);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "three", 5);
    got_fini(&g);
}
END_TEST

/* --- failures ---------------------------------------------------------- */

START_TEST(nothing_listening_is_unreachable)
{
    struct got g;

    cfg_tcp("127.0.0.1", redis.port, 2000);    /* a free port */
    backend_up(false);
    got_init(&g);
    get_str("k", &g);                          /* asserts: not called yet */
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    ck_assert_int_eq(g.calls, 1);
    ck_assert_int_eq(g.result, BACKEND_UNREACHABLE);
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_UNREACHABLE], 1);
    got_fini(&g);
}
END_TEST

static int
listen_silent(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    return fd;
}

START_TEST(silent_server_times_out)
{
    /* The kernel completes the connect; nobody ever answers the GET. */
    int fd = listen_silent(redis.port);
    struct got g;

    cfg_tcp("127.0.0.1", redis.port, 200);
    backend_up(false);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    ck_assert_int_eq(g.result, BACKEND_TIMEOUT);
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_TIMEOUT], 1);
    ck_assert_int_eq(close(fd), 0);
    got_fini(&g);
}
END_TEST

START_TEST(silent_server_with_auth_times_out)
{
    /* AUTH is never answered: a stalled Redis, so 504, never 502 (it
     * was UNREACHABLE before the connection layer was rebuilt). */
    int fd = listen_silent(redis.port);
    struct got g;

    cfg_tcp("127.0.0.1", redis.port, 200);
    (void)snprintf(cfg.redis_password, sizeof(cfg.redis_password), "pw");
    backend_up(false);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    ck_assert_int_eq(g.result, BACKEND_TIMEOUT);
    ck_assert_int_eq(close(fd), 0);
    got_fini(&g);
}
END_TEST

static bool
poll_until_value(const char *key, const char *val, uint64_t max_ms)
{
    uint64_t deadline = mono_ms() + max_ms;
    struct got g;

    /* One request at a time, the next as soon as the last is answered. */
    while (mono_ms() < deadline) {
        got_init(&g);
        get_str(key, &g);
        if (!run_until(called, &g, deadline - mono_ms() + 1)) {
            backend_cancel(&g.w);
            got_fini(&g);
            return false;
        }
        if (g.result == BACKEND_VALUE && g.len == strlen(val)
            && memcmp(g.data, val, g.len) == 0) {
            got_fini(&g);
            return true;
        }
        got_fini(&g);
    }
    return false;
}

START_TEST(redis_killed_then_restarted)
{
    struct got inflight, after;
    redisContext *c;
    int status;

    start_redis_and_backend(NULL, 3000);
    redis_set(&redis, "k", 1, "v", 1);
    ck_assert(poll_until_value("k", "v", RUN_MAX_MS));

    /* A GET in flight when Redis dies: unreachable, before its
     * deadline (3 s) could turn it into a timeout. */
    c = redis_debug_sleep(&redis, "5");
    got_init(&inflight);
    get_str("k", &inflight);
    ck_assert(!run_until(called, &inflight, 100));  /* GET gets sent */
    ck_assert_int_eq(kill(redis.pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(redis.pid, &status, 0), redis.pid);
    ck_assert(run_until(called, &inflight, RUN_MAX_MS));
    ck_assert_int_eq(inflight.result, BACKEND_UNREACHABLE);
    redisFree(c);

    /* Down: new fetches fail, promptly and not inside backend_get. */
    got_init(&after);
    get_str("k", &after);
    ck_assert(run_until(called, &after, RUN_MAX_MS));
    ck_assert_int_eq(after.result, BACKEND_UNREACHABLE);

    /* Back on the same port: the background reconnect finds it. */
    redis_start(&redis, NULL);
    redis_set(&redis, "k", 1, "again", 5);
    ck_assert(poll_until_value("k", "again", RUN_MAX_MS));
    ck_assert_uint_ge(slot.backend_errors[METRICS_BACKEND_UNREACHABLE], 2);
    got_fini(&inflight);
    got_fini(&after);
}
END_TEST

static bool
never(void *arg)
{
    (void)arg;
    return false;
}

START_TEST(server_closing_idle_connection_costs_nothing)
{
    redisContext *c;
    struct got g;

    /* As Redis' idle `timeout` would: the next request must not see a
     * 502 while the backend reconnects. */
    start_redis_and_backend(NULL, 2000);
    redis_set(&redis, "k", 1, "v", 1);
    ck_assert(poll_until_value("k", "v", RUN_MAX_MS));
    c = redis_admin(&redis);
    ck_assert_ptr_nonnull(c);
    redis_cmd_ok(c, "CLIENT KILL TYPE normal SKIPME yes");
    redisFree(c);
    ck_assert(!run_until(never, NULL, 50));     /* the loop sees the EOF */
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "v", 1);
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_UNREACHABLE], 0);
    got_fini(&g);
}
END_TEST

static struct got late;

static void
start_late_get(struct event_loop *l, struct event_timer *t)
{
    (void)l;
    (void)t;
    get_str("other", &late);
}

START_TEST(slow_redis_times_out_then_recovers)
{
    struct event_timer later;
    redisContext *c;
    struct got g;
    int want = 2;

    start_redis_and_backend(NULL, 200);
    redis_set(&redis, "k", 1, "v", 1);
    redis_set(&redis, "other", 5, "o", 1);
    ck_assert(poll_until_value("k", "v", RUN_MAX_MS));

    /* Redis blocks for 2 s.  The first GET times out at ~200 ms and the
     * connection is reset; the second, sent 100 ms later on the old
     * connection, is re-sent on a new one and times out on its own
     * deadline.  Both are over by ~0.6 s into the sleep: the rest is
     * slack for a loaded machine (or a sanitizer build), where the
     * second could otherwise reach Redis after the sleep and be
     * answered. */
    c = redis_debug_sleep(&redis, "2");
    got_init(&g);
    got_init(&late);
    got_total = 0;
    get_str("k", &g);
    event_timer_init(&later, start_late_get, NULL);
    ck_assert_int_eq(event_timer_start(&loop, &later, 100), 0);
    ck_assert(run_until(total_at_least, &want, RUN_MAX_MS));
    ck_assert_int_eq(g.result, BACKEND_TIMEOUT);
    ck_assert_int_eq(late.result, BACKEND_TIMEOUT);
    ck_assert_uint_ge(slot.backend_errors[METRICS_BACKEND_TIMEOUT], 2);
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_UNREACHABLE], 0);

    /* Once the sleep is over, the same backend serves again. */
    ck_assert(poll_until_value("k", "v", RUN_MAX_MS));
    redisFree(c);
    got_fini(&g);
    got_fini(&late);
}
END_TEST

/* --- deadline bookkeeping against a scripted server ---------------------- */

/* Reads from fd until want GETs have arrived (each "*2\r\n$3\r\nGET"); a
 * child's helper, so it only _exits on failure. */
static void
script_read_gets(int fd, int want)
{
    char buf[4096];
    size_t have = 0;
    int seen = 0;

    while (seen < want) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - have - 1);
        char *p;

        if (n <= 0) {
            _exit(3);
        }
        have += (size_t)n;
        buf[have] = '\0';
        seen = 0;
        for (p = buf; (p = strstr(p, "GET")) != NULL; p += 3) {
            seen++;
        }
    }
}

static void
script_write(int fd, const char *s)
{
    if (write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
        _exit(4);
    }
}

static void
script_pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    (void)nanosleep(&ts, NULL);
}

/* Forks a server on lfd running script(lfd); returns its pid. */
static pid_t
script_start(int lfd, void (*script)(int lfd))
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        script(lfd);
        for (;;) {
            pause();
        }
    }
    return pid;
}

static void
script_stop(pid_t pid)
{
    int status;

    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
}

/* The first connection takes two GETs and never answers; the second
 * answers the handshake's PING, then each GET it gets with "v". */
static void
script_stuck_then_fine(int lfd)
{
    int c1 = accept(lfd, NULL, NULL), c2;

    if (c1 < 0) {
        _exit(2);
    }
    script_read_gets(c1, 2);
    c2 = accept(lfd, NULL, NULL);
    if (c2 < 0) {
        _exit(2);
    }
    script_write(c2, "+PONG\r\n");   /* the handshake's PING */
    for (;;) {
        script_read_gets(c2, 1);
        script_write(c2, "$1\r\nv\r\n:-1\r\n");     /* GET, PTTL */
    }
}

static struct got stuck_b;

static void
start_stuck_b(struct event_loop *l, struct event_timer *t)
{
    (void)l;
    (void)t;
    get_str("b", &stuck_b);
}

START_TEST(stuck_connection_fails_its_head_and_resends_the_rest)
{
    int lfd = listen_silent(redis.port);
    pid_t pid = script_start(lfd, script_stuck_then_fine);
    struct event_timer later;
    struct got a;
    int want = 2;

    /* a is sent at once, b 500 ms later on the same connection; nothing
     * comes back for a whole timeout, so the connection is reset: a, the
     * request Redis is stuck on, gets 504; b is sent again on a new
     * connection and answered there, within its own deadline.  b has
     * 500 ms left at the reset: enough for a reconnect on a loaded CI
     * machine, where 100 ms was not. */
    cfg_tcp("127.0.0.1", redis.port, 1000);
    backend_up(false);
    got_init(&a);
    got_init(&stuck_b);
    got_total = 0;
    get_str("a", &a);
    event_timer_init(&later, start_stuck_b, NULL);
    ck_assert_int_eq(event_timer_start(&loop, &later, 500), 0);
    ck_assert(run_until(total_at_least, &want, RUN_MAX_MS));
    ck_assert_int_eq(a.result, BACKEND_TIMEOUT);
    expect_value(&stuck_b, "v", 1);
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_TIMEOUT], 1);
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_UNREACHABLE], 0);
    script_stop(pid);
    ck_assert_int_eq(close(lfd), 0);
    got_fini(&a);
    got_fini(&stuck_b);
}
END_TEST

/* Answers one GET with a 6-byte value, two bytes every 300 ms. */
static void
script_slow_reply(int lfd)
{
    int c = accept(lfd, NULL, NULL);

    if (c < 0) {
        _exit(2);
    }
    script_read_gets(c, 1);
    script_write(c, "+PONG\r\n$6\r\n");   /* the handshake's PING, GET */
    script_pause_ms(300);
    script_write(c, "ab");
    script_pause_ms(300);
    script_write(c, "cd");
    script_pause_ms(300);
    script_write(c, "ef\r\n:-1\r\n");             /* and PTTL's */
}

START_TEST(a_reply_arriving_is_not_cut_by_its_deadline)
{
    int lfd = listen_silent(redis.port);
    pid_t pid = script_start(lfd, script_slow_reply);
    struct got g;

    /* 900 ms to arrive against a 600 ms deadline: bytes keep coming, so
     * the request is served, as a big value taking its time would be.
     * Each gap leaves 300 ms of slack, so a loaded CI machine that
     * oversleeps a pause does not turn it into a timeout. */
    cfg_tcp("127.0.0.1", redis.port, 600);
    backend_up(false);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "abcdef", 6);
    ck_assert_uint_eq(slot.backend_errors[METRICS_BACKEND_TIMEOUT], 0);
    script_stop(pid);
    ck_assert_int_eq(close(lfd), 0);
    got_fini(&g);
}
END_TEST

/* --- the gate: one fetch per key across processes --------------------- */

/* TEST DOUBLE: a gate scripted by the test (stands in for
 * worker_inflight.c). */
static struct {
    enum backend_gate begin;        /* what begin says */
    int               polls_waiting; /* polls answered WAIT, then ... */
    enum backend_gate then;         /* ... this */
    int               begins;
    int               polls;
    int               ends;
    size_t            sets_at_end;  /* double_cache_sets then */
} fake_gate;

static enum backend_gate
fake_gate_begin(void *arg, const void *key, size_t key_len,
                uint64_t state[2])
{
    (void)arg;
    (void)key;
    (void)key_len;
    state[0] = 42;
    fake_gate.begins++;
    return fake_gate.begin;
}

static enum backend_gate
fake_gate_poll(void *arg, const void *key, size_t key_len, uint64_t state[2],
               struct backend_reply *reply)
{
    (void)arg;
    ck_assert_uint_eq(state[0], 42);
    fake_gate.polls++;
    if (fake_gate.polls <= fake_gate.polls_waiting) {
        return BACKEND_GATE_WAIT;
    }
    if (fake_gate.then == BACKEND_GATE_ANSWERED) {
        struct value *v = value_create(6);

        ck_assert_ptr_nonnull(v);
        memcpy(v->data, "cached", 6);
        ck_assert(key_len == 1 && memcmp(key, "k", 1) == 0);
        reply->result = BACKEND_VALUE;
        reply->data = v->data;
        reply->len = v->len;
        reply->value = v;
    }
    return fake_gate.then;
}

static void
fake_gate_end(void *arg, const void *key, size_t key_len,
              const uint64_t state[2])
{
    (void)arg;
    (void)key;
    (void)key_len;
    ck_assert_uint_eq(state[0], 42);
    fake_gate.ends++;
    fake_gate.sets_at_end = double_cache_sets;
}

static const struct backend_gate_ops fake_gate_ops = {
    .begin = fake_gate_begin,
    .poll = fake_gate_poll,
    .end = fake_gate_end,
};

static void
gate_up(uint64_t timeout_ms, enum backend_gate begin, int polls_waiting,
        enum backend_gate then)
{
    memset(&fake_gate, 0, sizeof(fake_gate));
    fake_gate.begin = begin;
    fake_gate.polls_waiting = polls_waiting;
    fake_gate.then = then;
    redis_start(&redis, NULL);
    cfg_tcp("127.0.0.1", redis.port, timeout_ms);
    backend_up(true);
    backend_set_gate(be, &fake_gate_ops);
    redis_set(&redis, "k", 1, "v", 1);
}

START_TEST(gate_parked_fetch_answered_by_the_gate)
{
    struct got g[3];
    int want = 3;

    /* Another process fetches k: this worker's misses of it wait in one
     * parked fetch, and are answered with what the gate found in the
     * cache, without a request to Redis and without a store. */
    gate_up(5000, BACKEND_GATE_WAIT, 3, BACKEND_GATE_ANSWERED);
    for (int i = 0; i < 3; i++) {
        got_init(&g[i]);
        get_str("k", &g[i]);
    }
    ck_assert_int_eq(fake_gate.begins, 1);
    ck_assert(backend_fetching(be, "k", 1));
    ck_assert(run_until(total_at_least, &want, RUN_MAX_MS));
    for (int i = 0; i < 3; i++) {
        expect_value(&g[i], "cached", 6);
        got_fini(&g[i]);
    }
    ck_assert_int_eq(fake_gate.polls, 4);
    ck_assert_int_eq(fake_gate.ends, 0);
    ck_assert_uint_eq(double_cache_sets, 0);
    ck_assert_uint_eq(slot.backend_count, 0);
    ck_assert_uint_eq(slot.coalesced_waiters, 3);
    ck_assert_uint_eq(backend_pending(be), 0);
}
END_TEST

START_TEST(gate_parked_fetch_goes_to_redis_at_its_deadline)
{
    struct got g;
    uint64_t t0 = clock_ms();

    /* The other process never ends its fetch: after --redis-timeout
     * this one asks Redis itself, with a deadline of its own. */
    gate_up(300, BACKEND_GATE_WAIT, 1000000, BACKEND_GATE_WAIT);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "v", 1);
    ck_assert_uint_ge(clock_ms() - t0, 300);
    /* Asked while parked.  How many times depends on how often the
     * machine ran the loop in those 300 ms: every 2 ms when idle, twice
     * at a load of 24 on 2 cores, where "more than 10" failed (and once,
     * were the loop not run until the deadline).  That a parked fetch
     * asks again and again is gate_parked_fetch_answered_by_the_gate's
     * exact count. */
    ck_assert_int_ge(fake_gate.polls, 1);
    ck_assert_uint_eq(slot.backend_count, 1);
    ck_assert_uint_eq(double_cache_sets, 1);
    got_fini(&g);
}
END_TEST

START_TEST(gate_parked_fetch_sent_when_the_gate_says)
{
    struct got g;

    /* The other process's fetch ended with nothing cached: send. */
    gate_up(5000, BACKEND_GATE_WAIT, 2, BACKEND_GATE_SEND);
    got_init(&g);
    get_str("k", &g);
    ck_assert(run_until(called, &g, RUN_MAX_MS));
    expect_value(&g, "v", 1);
    ck_assert_int_eq(fake_gate.polls, 3);
    ck_assert_int_eq(fake_gate.ends, 0);
    ck_assert_uint_eq(slot.backend_count, 1);
    got_fini(&g);
}
END_TEST

START_TEST(gate_owner_ends_after_its_store)
{
    struct got a, b;
    int want = 2;

    gate_up(5000, BACKEND_GATE_OWN, 0, BACKEND_GATE_SEND);
    got_init(&a);
    got_init(&b);
    get_str("k", &a);
    get_str("k", &b);               /* joins: the gate is asked once */
    ck_assert(run_until(total_at_least, &want, RUN_MAX_MS));
    expect_value(&a, "v", 1);
    expect_value(&b, "v", 1);
    ck_assert_int_eq(fake_gate.begins, 1);
    ck_assert_int_eq(fake_gate.ends, 1);
    /* Released after the value was stored, before the waiters. */
    ck_assert_uint_eq(fake_gate.sets_at_end, 1);
    ck_assert_uint_eq(a.cache_sets, 1);
    got_fini(&a);
    got_fini(&b);
}
END_TEST

/* --- destroy ------------------------------------------------------------ */

static struct got during_destroy;

static void
get_during_destroy(struct got *g)
{
    (void)g;
    get_str("x", &during_destroy);
}

START_TEST(destroy_fails_every_waiter_once)
{
    int fd = listen_silent(redis.port);
    struct got g[3], down;
    size_t i;

    cfg_tcp("127.0.0.1", redis.port, 5000);
    backend_up(false);
    for (i = 0; i < 3; i++) {
        got_init(&g[i]);
    }
    got_init(&during_destroy);
    g[0].then = get_during_destroy;
    get_str("a", &g[0]);
    get_str("a", &g[1]);
    get_str("b", &g[2]);
    ck_assert(!run_until(called, &g[0], 50));   /* sent, never answered */
    ck_assert_uint_eq(backend_pending(be), 2);
    backend_destroy(be);
    be = NULL;
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(g[i].calls, 1);
        ck_assert_int_eq(g[i].result, BACKEND_UNREACHABLE);
        got_fini(&g[i]);
    }
    ck_assert_int_eq(during_destroy.calls, 1);
    ck_assert_int_eq(during_destroy.result, BACKEND_UNREACHABLE);
    got_fini(&during_destroy);
    ck_assert_int_eq(close(fd), 0);

    /* Down, with a failure queued for the next iteration: destroy
     * delivers it instead, once. */
    cfg_tcp("127.0.0.1", free_port(), 5000);
    backend_up(false);
    got_init(&down);
    get_str("k", &down);
    backend_destroy(be);
    be = NULL;
    ck_assert_int_eq(down.calls, 1);
    ck_assert_int_eq(down.result, BACKEND_UNREACHABLE);
    /* Nothing of the backend is left armed in the loop (ASan). */
    ck_assert(run_until(NULL, NULL, 20));
    ck_assert_int_eq(down.calls, 1);
    got_fini(&down);
}
END_TEST

static Suite *
backend_suite(void)
{
    Suite *s = suite_create("backend");
    TCase *tc;

    tc = tcase_create("classify");
    tcase_add_loop_test(tc, classify_error, 0,
                        sizeof(classify_cases) / sizeof(classify_cases[0]));
    tcase_add_test(tc, classify_error_uses_len);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, get_value_every_byte);
    tcase_add_test(tc, get_empty_and_large_values);
    tcase_add_test(tc, get_nil);
    tcase_add_test(tc, get_reads_pttl_with_value);
    tcase_add_test(tc, get_wrongtype);
    suite_add_tcase(s, tc);

    tc = tcase_create("coalescing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, concurrent_gets_share_one_fetch);
    tcase_add_test(tc, cancelled_waiter_not_called);
    tcase_add_test(tc, all_cancelled_fetch_still_fills_cache);
    tcase_add_test(tc, callback_cancels_and_refetches);
    tcase_add_test(tc, gate_parked_fetch_answered_by_the_gate);
    tcase_add_test(tc, gate_parked_fetch_goes_to_redis_at_its_deadline);
    tcase_add_test(tc, gate_parked_fetch_sent_when_the_gate_says);
    tcase_add_test(tc, gate_owner_ends_after_its_store);
    suite_add_tcase(s, tc);

    tc = tcase_create("connections");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, unix_socket);
    tcase_add_test(tc, ipv6_loopback);
    tcase_add_test(tc, requirepass_good_and_bad);
    tcase_add_test(tc, acl_user);
    tcase_add_test(tc, select_db);
    tcase_add_test(tc, error_reply_noperm);
    tcase_add_test(tc, hostname);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, nothing_listening_is_unreachable);
    tcase_add_test(tc, silent_server_times_out);
    tcase_add_test(tc, silent_server_with_auth_times_out);
    tcase_add_test(tc, redis_killed_then_restarted);
    tcase_add_test(tc, server_closing_idle_connection_costs_nothing);
    tcase_add_test(tc, slow_redis_times_out_then_recovers);
    tcase_add_test(tc, stuck_connection_fails_its_head_and_resends_the_rest);
    tcase_add_test(tc, a_reply_arriving_is_not_cut_by_its_deadline);
    suite_add_tcase(s, tc);

    tc = tcase_create("destroy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, destroy_fails_every_waiter_once);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(backend_suite());
    int failed;

    /* A killed redis-server must not kill the test with SIGPIPE. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("signal(SIGPIPE)");
        return EXIT_FAILURE;
    }
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
