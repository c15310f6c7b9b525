/*
 * check_cache: unit tests for the shared-memory cache (src/cache.c and
 * src/cache_arena.c).  Each test gets a fresh segment from the fixture
 * (recreated with other parameters where a test needs them) and ends with
 * cache_check() in the teardown, so every test also checks the invariants.
 * Time is the injected now_ms clock except in the stress test; crash tests
 * fork a child that takes the lock and SIGKILL it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "cache_arena.h"
#include "etag.h"
#include "value.h"

static struct cache *tc;        /* the cache under test */

static const struct cache_params tc_defaults = {
    .capacity = 3,
    .max_memory_bytes = 1 << 20,
    .max_value_bytes = 64 << 10,
    .ttl_ms = 1000,
    .worker_slots = 8,
    .lock_timeout_ms = 0,
};

static void
tc_check(void)
{
    char err[256] = "";
    int rc = cache_check(tc, err, sizeof(err));

    ck_assert_msg(rc == 0, "cache_check: %d %s", rc, err);
}

static void
tc_recreate(const struct cache_params *params)
{
    int rc;

    cache_destroy(tc);
    tc = NULL;
    rc = cache_create(params, &tc);
    ck_assert_msg(rc == 0, "cache_create: %s", strerror(-rc));
}

static void
tc_setup(void)
{
    tc = NULL;
    tc_recreate(&tc_defaults);
}

static void
tc_teardown(void)
{
    if (tc != NULL && !cache_poisoned(tc)) {
        tc_check();
    }
    cache_destroy(tc);
    tc = NULL;
}

static void
tc_put_at(const char *key, const char *value, uint64_t now_ms)
{
    ck_assert_int_eq(cache_set(tc, key, strlen(key), value, strlen(value),
                               now_ms), CACHE_STORED);
}

static void
tc_put(const char *key, const char *value)
{
    tc_put_at(key, value, 1000);
}

static enum cache_status
tc_get_at(const char *key, uint64_t now_ms, char *out, size_t cap,
          struct cache_lookup *lookup)
{
    memset(lookup, 0, sizeof(*lookup));
    lookup->dst = out;
    lookup->dst_cap = cap;
    return cache_get(tc, key, strlen(key), now_ms, lookup);
}

/* Asserts key is a hit at now_ms holding value. */
static void
tc_expect_at(const char *key, const char *value, uint64_t now_ms)
{
    struct cache_lookup lookup;
    char buf[256];

    ck_assert_int_eq(tc_get_at(key, now_ms, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_uint_eq(lookup.value_len, strlen(value));
    ck_assert(memcmp(buf, value, lookup.value_len) == 0);
}

static void
tc_expect(const char *key, const char *value)
{
    tc_expect_at(key, value, 1000);
}

static void
tc_expect_miss(const char *key, uint64_t now_ms)
{
    struct cache_lookup lookup;
    char buf[256];

    ck_assert_int_eq(tc_get_at(key, now_ms, buf, sizeof(buf), &lookup),
                     CACHE_MISS);
}

static struct cache_stats
tc_stats(void)
{
    struct cache_stats stats;

    cache_stats(tc, &stats);
    return stats;
}

/* ---- LRU order -------------------------------------------------------- */

/*
 * Ops on a capacity-3 cache, one letter key each: "+a" sets a, "?a" reads
 * it, "~a" reads it into too small a buffer (TRUNCATED), "-a" deletes it.
 * Then every key in `kept` must hit and every key in `evicted` miss, and
 * the evictions counter must equal strlen(evicted).
 */
static const struct lru_case {
    const char *ops;
    const char *kept;
    const char *evicted;
    const char *why;
} lru_cases[] = {
    { "+a +b +c +d", "bcd", "a", "no reads: oldest insert goes first" },
    { "+a +b +c ?a ?b ?c ?a +d", "acd", "b",
      "the issue's example: read a b c a, insert d evicts b" },
    { "+a +b +c ?a +d", "acd", "b", "a read renews" },
    { "+a +b +c +a +d", "acd", "b", "a replace renews" },
    { "+a +b +c ?z +d", "bcd", "a", "a miss renews nothing" },
    { "+a +b +c ~a +d", "bcd", "a", "a truncated read renews nothing" },
    { "+a +b +c -b +d", "acd", "", "a delete frees a slot" },
    { "+a +b +c ?c ?c +d +e", "cde", "ab", "repeated reads of the head" },
    { "+a +b +c ?a ?a ?b +d +e", "bde", "ac", "two evictions in order" },
    { "+a +b +c ?b +d ?c +e +f", "cef", "abd", "reads between inserts" },
};

START_TEST(test_lru_order)
{
    const struct lru_case *c = &lru_cases[_i];
    struct cache_lookup lookup;
    char buf[8];

    for (const char *op = c->ops; *op != '\0'; op += 3) {
        char key[2] = { op[1], '\0' };
        char value[3] = { 'v', op[1], '\0' };

        switch (op[0]) {
        case '+':
            tc_put(key, value);
            break;
        case '?':
            (void) tc_get_at(key, 1000, buf, sizeof(buf), &lookup);
            break;
        case '~':
            ck_assert_int_eq(tc_get_at(key, 1000, buf, 1, &lookup),
                             CACHE_TRUNCATED);
            break;
        case '-':
            ck_assert_int_eq(cache_delete(tc, key, 1), CACHE_DELETED);
            break;
        default:
            ck_abort_msg("bad op in case '%s'", c->why);
        }
        if (op[2] == '\0') {
            break;
        }
    }
    ck_assert_msg(tc_stats().evictions == strlen(c->evicted),
                  "%s: %ju evictions", c->why,
                  (uintmax_t) tc_stats().evictions);
    for (const char *k = c->evicted; *k != '\0'; k++) {
        char key[2] = { *k, '\0' };

        ck_assert_msg(tc_get_at(key, 1000, buf, sizeof(buf), &lookup)
                      == CACHE_MISS, "%s: %s still there", c->why, key);
    }
    for (const char *k = c->kept; *k != '\0'; k++) {
        char key[2] = { *k, '\0' };

        ck_assert_msg(tc_get_at(key, 1000, buf, sizeof(buf), &lookup)
                      == CACHE_HIT, "%s: %s evicted", c->why, key);
    }
    tc_check();
}
END_TEST

/*
 * LRU order across processes.  READERS child processes, each in its own
 * worker slot, read keys when the parent tells them to, one read at a
 * time: the parent sends a key to one child and waits for its answer
 * before it sends the next, so the reads are sequential though they come
 * from different processes (as a client going through several workers
 * sees them).  The parent keeps the exact LRU order of a model; then it
 * inserts new keys one by one and after each checks that the entry the
 * model says is least recently used, and only it, is gone.  The reads
 * are far more than one ring holds, so rings fill and get applied
 * between reads, and runs of reads of one key by one child exercise the
 * records a hot key only restamps.
 */
#define ILV_READERS     3
#define ILV_KEYS        40
#define ILV_READS       3000

struct ilv_child {
    pid_t pid;
    int   to;                       /* parent -> child: a key index */
    int   from;                     /* child -> parent: the status */
};

static void
ilv_key(char *key, size_t cap, unsigned k)
{
    snprintf(key, cap, "ilv-%u", k);
}

static void
ilv_child_loop(uint32_t slot, int in, int out)
{
    char key[16], buf[16];
    unsigned k;

    cache_attach(tc, slot);
    for (;;) {
        struct cache_lookup lookup = { .dst = buf,
                                       .dst_cap = sizeof(buf) };
        ssize_t n = read(in, &k, sizeof(k));
        int status;

        if (n != (ssize_t) sizeof(k)) {
            _exit(n == 0 ? 0 : 1);
        }
        ilv_key(key, sizeof(key), k);
        status = cache_get(tc, key, strlen(key), 1000, &lookup);
        if (write(out, &status, sizeof(status)) != sizeof(status)) {
            _exit(1);
        }
    }
}

/* Moves k to the front (most recent) of the model order[0 .. n-1]. */
static void
ilv_model_touch(unsigned *order, unsigned n, unsigned k)
{
    unsigned at = 0;

    while (order[at] != k) {
        at++;
        ck_assert_uint_lt(at, n);
    }
    memmove(&order[1], &order[0], at * sizeof(order[0]));
    order[0] = k;
}

/* A cache of ILV_KEYS keys, stored in order (the model says so), and
 * ILV_READERS children in slots 1.. waiting for keys to read. */
static void
ilv_start(struct ilv_child *kids, unsigned *order)
{
    struct cache_params p = tc_defaults;
    char key[16];

    p.capacity = ILV_KEYS;
    p.lock_timeout_ms = 5000;       /* a loaded test box must not bypass */
    tc_recreate(&p);
    for (unsigned k = 0; k < ILV_KEYS; k++) {
        ilv_key(key, sizeof(key), k);
        tc_put(key, "v");
        order[ILV_KEYS - 1 - k] = k;
    }
    for (unsigned c = 0; c < ILV_READERS; c++) {
        int down[2], up[2];

        ck_assert_int_eq(pipe(down), 0);
        ck_assert_int_eq(pipe(up), 0);
        kids[c].pid = fork();
        ck_assert_int_ge(kids[c].pid, 0);
        if (kids[c].pid == 0) {
            close(down[1]);
            close(up[0]);
            for (unsigned o = 0; o < c; o++) {
                close(kids[o].to);
                close(kids[o].from);
            }
            ilv_child_loop(c + 1, down[0], up[1]);
        }
        close(down[0]);
        close(up[1]);
        kids[c].to = down[1];
        kids[c].from = up[0];
    }
}

/* Child c reads key k and answers before this returns; the model
 * follows a hit.  Keys from ILV_KEYS on are not stored. */
static void
ilv_read(struct ilv_child *kids, unsigned *order, unsigned c, unsigned k)
{
    int status = -1;

    ck_assert_int_eq(write(kids[c].to, &k, sizeof(k)), (ssize_t) sizeof(k));
    ck_assert_int_eq(read(kids[c].from, &status, sizeof(status)),
                     (ssize_t) sizeof(status));
    ck_assert_int_eq(status, k < ILV_KEYS ? CACHE_HIT : CACHE_MISS);
    if (k < ILV_KEYS) {
        ilv_model_touch(order, ILV_KEYS, k);
    }
}

/* Stops the children; then each insert must evict exactly the model's
 * least recent key. */
static void
ilv_finish(struct ilv_child *kids, const unsigned *order)
{
    char key[16];

    for (unsigned c = 0; c < ILV_READERS; c++) {
        int status;

        close(kids[c].to);
        ck_assert_int_eq(waitpid(kids[c].pid, &status, 0), kids[c].pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(kids[c].from);
    }
    for (unsigned j = 0; j < ILV_KEYS; j++) {
        char victim[16];

        snprintf(key, sizeof(key), "new-%u", j);
        tc_put(key, "w");
        ck_assert_uint_eq(tc_stats().evictions, j + 1);
        ilv_key(victim, sizeof(victim), order[ILV_KEYS - 1 - j]);
        ck_assert_msg(cache_delete(tc, victim, strlen(victim)) == CACHE_MISS,
                      "insert %u: %s should have been evicted", j, victim);
    }
    ck_assert_uint_eq(tc_stats().entries, ILV_KEYS);
    tc_check();
}

START_TEST(test_lru_order_across_processes)
{
    struct ilv_child kids[ILV_READERS];
    unsigned order[ILV_KEYS];       /* model: most recent first */
    uint64_t rng = 0x9e3779b97f4a7c15u;

    ilv_start(kids, order);
    for (unsigned r = 0; r < ILV_READS; r++) {
        unsigned c, k;

        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        c = (unsigned) (rng % ILV_READERS);
        /* Skewed towards low keys, and now and then the same key again
         * by the same child, so hot keys and rare ones both occur. */
        k = (unsigned) ((rng >> 8) % ILV_KEYS);
        if ((rng >> 40) % 4 == 0) {
            k /= 4;
        }
        for (unsigned rep = 0; rep < 1 + (unsigned) ((rng >> 48) % 3);
             rep++) {
            ilv_read(kids, order, c, k);
        }
    }
    ilv_finish(kids, order);
}
END_TEST

/*
 * The applies that run under the LRU word, while other hits go on, in
 * known steps.  Such an apply runs at the start of a get whose ring
 * holds CACHE_RING_SOFT (256, in cache.c) records, and applies the last
 * record of each ring without consuming it (its owner may restamp it):
 * the next apply must apply it again if, and only if, it was restamped.
 * Steps: "A256" child A reads keys 8..15 in turn 256 times (so 256
 * records, the last one of key 15); "B1" child B reads key 1; "Bv255"
 * B reads keys 16..23 in turn 255 times; "A15" A reads key 15; "A!"
 * and "B!" a miss (it records nothing, so only the apply happens).
 * ilv_finish() then checks the whole order by evictions.
 */
static const struct ilv_step_case {
    const char *steps;
    const char *why;
} ilv_step_cases[] = {
    { "A256 B1 A15",
      "a record applied as its ring's last, then restamped, is applied "
      "again" },
    { "A256 B1 A! Bv255 B!",
      "a record applied as its ring's last and not restamped is not "
      "applied again, even after later records of other rings" },
    { "A256 A! B1 A15 B! A15",
      "restamped after an apply, and again after the next" },
};

START_TEST(test_lru_apply_while_reading)
{
    const struct ilv_step_case *sc = &ilv_step_cases[_i];
    struct ilv_child kids[ILV_READERS];
    unsigned order[ILV_KEYS];
    const char *st = sc->steps;

    ilv_start(kids, order);
    while (*st != '\0') {
        unsigned c = st[0] == 'A' ? 0 : 1;
        size_t len = strcspn(st, " ");

        if (st[1] == '!') {
            ilv_read(kids, order, c, ILV_KEYS);
        } else if (st[1] == 'v') {
            for (unsigned r = 0; r < 255; r++) {
                ilv_read(kids, order, c, 16 + r % 8);
            }
        } else if (strncmp(st, "A256", len) == 0) {
            for (unsigned r = 0; r < 256; r++) {
                ilv_read(kids, order, c, 8 + r % 8);
            }
        } else {
            ilv_read(kids, order, c, (unsigned) atoi(st + 1));
        }
        st += len;
        st += strspn(st, " ");
    }
    ilv_finish(kids, order);
}
END_TEST

/* The ring's indexes run free: after 2^32 records in one worker slot
 * (half a day of hits) a batch of pending records spans the wrap.  Its
 * records are applied all the same, in order, by the write side and by
 * an apply under the LRU lock (which a get makes at CACHE_RING_SOFT, 256,
 * records: 257 gets of 257 keys, starting 128 short of the wrap).  Both
 * compared the indexes with < once, which took a batch across the wrap
 * for one record: accesses lost, and the write side left records naming
 * entries it then freed. */
START_TEST(test_ring_wraps_under_the_write_side)
{
    struct cache_params p = tc_defaults;

    p.capacity = 8;
    tc_recreate(&p);
    tc_put("a", "1");
    tc_put("b", "2");
    tc_put("c", "3");
    cache_debug_ring_at(tc, UINT32_MAX - 1);
    tc_expect("a", "1");                /* records at 2^32-2, 2^32-1, 0 */
    tc_expect("b", "2");
    tc_expect("c", "3");
    ck_assert_int_eq(cache_delete(tc, "b", 1), CACHE_DELETED);
    tc_check();
    for (char k = 'd'; k <= 'h'; k++) {
        char key[2] = { k, '\0' };

        tc_put(key, "x");               /* 7 entries: a c d e f g h */
    }
    tc_put("i", "x");                   /* 8: full */
    tc_put("j", "x");                   /* evicts a, read first */
    tc_expect_miss("a", 1000);
    tc_expect("c", "3");
    tc_check();
}
END_TEST

START_TEST(test_ring_wraps_under_the_lru_lock)
{
    struct cache_params p = tc_defaults;
    char key[16];

    p.capacity = 257;
    tc_recreate(&p);
    for (unsigned i = 0; i < 257; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        tc_put(key, "v");
    }
    cache_debug_ring_at(tc, UINT32_MAX - 127);
    /* Read in the order stored: the apply at the 257th get takes the
     * first 256 records, across the wrap; the LRU order is as stored. */
    for (unsigned i = 0; i < 257; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        tc_expect(key, "v");
    }
    tc_put("new", "v");                 /* evicts k0, read first */
    tc_expect_miss("k0", 1000);
    tc_expect("k1", "v");
    tc_check();
}
END_TEST

/* ---- replace, delete, flush, empty, capacity 1 ------------------------ */

START_TEST(test_replace_keeps_one)
{
    tc_put("a", "1");
    tc_put("a", "22");
    tc_put("a", "333");
    ck_assert_uint_eq(tc_stats().entries, 1);
    ck_assert_uint_eq(tc_stats().bytes, 1 + 3);
    ck_assert_uint_eq(tc_stats().evictions, 0);
    tc_expect("a", "333");
    tc_check();
}
END_TEST

/* A replace is a new value: its age starts again, so it lives a whole
 * TTL from the replace, not from the first store. */
START_TEST(test_replace_restarts_age)
{
    struct cache_lookup lookup;
    char buf[8];

    tc_put_at("a", "1", 1000);
    tc_put_at("a", "2", 1800);
    ck_assert_int_eq(tc_get_at("a", 1900, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_uint_eq(lookup.age_ms, 100);
    tc_expect_at("a", "2", 2500);       /* past the first store's ttl */
    tc_expect_miss("a", 2800);
    tc_check();
}
END_TEST

START_TEST(test_delete)
{
    tc_put("a", "1");
    tc_put("b", "2");
    ck_assert_int_eq(cache_delete(tc, "a", 1), CACHE_DELETED);
    tc_expect_miss("a", 1000);
    ck_assert_int_eq(cache_delete(tc, "a", 1), CACHE_MISS);
    ck_assert_int_eq(cache_delete(tc, "zz", 2), CACHE_MISS);
    tc_expect("b", "2");
    ck_assert_uint_eq(tc_stats().entries, 1);
    ck_assert_uint_eq(tc_stats().bytes, 2);
    tc_check();
}
END_TEST

START_TEST(test_flush)
{
    tc_put("a", "1");
    tc_put("b", "2");
    tc_put("c", "3");
    ck_assert_int_eq(cache_flush(tc), CACHE_DELETED);
    ck_assert_uint_eq(tc_stats().entries, 0);
    ck_assert_uint_eq(tc_stats().bytes, 0);
    tc_check();
    tc_expect_miss("a", 1000);
    tc_expect_miss("c", 1000);
    tc_put("d", "4");
    tc_expect("d", "4");
    ck_assert_uint_eq(tc_stats().evictions, 0);
}
END_TEST

/* A value fetched before a purge of its key is not stored after it. */
START_TEST(test_purge_delete)
{
    uint64_t before = cache_purge_token(tc, "k", 1);
    uint64_t other = cache_purge_token(tc, "x", 1);
    uint64_t after;
    int unaffected = 0;

    ck_assert_uint_eq(cache_purge_token(tc, "k", 1), before);
    tc_put("k", "old");
    ck_assert_int_eq(cache_delete(tc, "k", 1), CACHE_DELETED);
    after = cache_purge_token(tc, "k", 1);
    ck_assert_uint_ne(after, before);
    ck_assert_int_eq(cache_set_since(tc, "k", 1, "old", 3, 1000, before),
                     CACHE_PURGED);
    tc_expect_miss("k", 1000);
    /* A delete of an absent key counts too: its fetch may be in flight. */
    ck_assert_int_eq(cache_delete(tc, "k", 1), CACHE_MISS);
    ck_assert_int_eq(cache_set_since(tc, "k", 1, "old", 3, 1000, after),
                     CACHE_PURGED);
    after = cache_purge_token(tc, "k", 1);
    ck_assert_int_eq(cache_set_since(tc, "k", 1, "new", 3, 1000, after),
                     CACHE_STORED);
    tc_expect("k", "new");
    /* Keys in other slots of the purge table are not held back (x may
     * share k's slot, 1 in 4096; of 20 keys some do not). */
    if (cache_set_since(tc, "x", 1, "1", 1, 1000, other) == CACHE_STORED) {
        unaffected++;
    }
    for (int i = 0; i < 20; i++) {
        char key[16];
        uint64_t t;

        (void) snprintf(key, sizeof(key), "key%d", i);
        t = cache_purge_token(tc, key, strlen(key));
        ck_assert_int_ne(cache_delete(tc, "k", 1), CACHE_BYPASS);
        if (cache_set_since(tc, key, strlen(key), "v", 1, 1000, t)
            == CACHE_STORED) {
            unaffected++;
        }
    }
    ck_assert_int_ge(unaffected, 15);
    tc_check();
}
END_TEST

START_TEST(test_purge_flush)
{
    uint64_t a = cache_purge_token(tc, "a", 1);
    uint64_t b = cache_purge_token(tc, "b", 1);

    tc_put("a", "1");
    ck_assert_int_eq(cache_flush(tc), CACHE_DELETED);
    ck_assert_int_eq(cache_set_since(tc, "a", 1, "1", 1, 1000, a),
                     CACHE_PURGED);
    ck_assert_int_eq(cache_set_since(tc, "b", 1, "2", 1, 1000, b),
                     CACHE_PURGED);
    ck_assert_uint_eq(tc_stats().entries, 0);
    b = cache_purge_token(tc, "b", 1);
    ck_assert_int_eq(cache_set_since(tc, "b", 1, "2", 1, 1000, b),
                     CACHE_STORED);
    tc_expect("b", "2");
    /* cache_set() takes no token and always stores. */
    tc_put("a", "1");
    tc_expect("a", "1");
    tc_check();
}
END_TEST

START_TEST(test_empty_cache)
{
    struct cache_stats stats;

    tc_check();
    tc_expect_miss("a", 1000);
    ck_assert_int_eq(cache_delete(tc, "a", 1), CACHE_MISS);
    ck_assert_int_eq(cache_flush(tc), CACHE_DELETED);
    cache_stats(tc, &stats);
    ck_assert_uint_eq(stats.entries, 0);
    ck_assert_uint_eq(stats.bytes, 0);
    ck_assert_uint_eq(stats.hits, 0);
    ck_assert_uint_eq(stats.misses, 1);
    ck_assert_uint_eq(stats.generation, 0);
    ck_assert(!stats.poisoned);
}
END_TEST

START_TEST(test_capacity_one)
{
    struct cache_params p = tc_defaults;

    p.capacity = 1;
    tc_recreate(&p);
    tc_put("a", "1");
    tc_put("b", "2");
    tc_expect_miss("a", 1000);
    tc_expect("b", "2");
    tc_put("b", "3");
    tc_expect("b", "3");
    ck_assert_uint_eq(tc_stats().entries, 1);
    ck_assert_uint_eq(tc_stats().evictions, 1);
    tc_check();
}
END_TEST

/* ---- expiry ----------------------------------------------------------- */

START_TEST(test_ttl_expiry)
{
    struct cache_lookup lookup;
    char buf[8];

    tc_put_at("a", "1", 1000);
    tc_expect_at("a", "1", 1000);
    ck_assert_int_eq(tc_get_at("a", 1999, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_uint_eq(lookup.age_ms, 999);
    /* A clock behind the store time reads as age 0, not as expired. */
    ck_assert_int_eq(tc_get_at("a", 500, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_uint_eq(lookup.age_ms, 0);
    tc_expect_miss("a", 2000);
    ck_assert_uint_eq(tc_stats().expirations, 1);
    ck_assert_uint_eq(tc_stats().entries, 0);      /* reclaimed */
    ck_assert_uint_eq(tc_stats().bytes, 0);
    /* Gone for good: an earlier clock does not bring it back. */
    tc_expect_miss("a", 1500);
    ck_assert_uint_eq(tc_stats().expirations, 1);
    ck_assert_uint_eq(tc_stats().evictions, 0);
    tc_check();
}
END_TEST

START_TEST(test_set_ttl)
{
    tc_put_at("a", "1", 5000);
    cache_set_ttl(tc, 10000);
    tc_expect_at("a", "1", 7000);       /* past the old ttl */
    cache_set_ttl(tc, 500);
    tc_expect_miss("a", 5600);          /* past the new one */
    ck_assert_uint_eq(tc_stats().expirations, 1);
    tc_check();
}
END_TEST

START_TEST(test_set_drops_expired_tail)
{
    tc_put_at("a", "1", 1000);
    tc_put_at("b", "2", 1100);
    tc_put_at("c", "3", 5000);
    /* At 5050 a and b are expired (ttl 1000); d needs no eviction for
     * room once they are gone, and they count as expirations. */
    tc_put_at("d", "4", 5050);
    ck_assert_uint_eq(tc_stats().expirations, 2);
    ck_assert_uint_eq(tc_stats().evictions, 0);
    ck_assert_uint_eq(tc_stats().entries, 2);
    tc_expect_at("c", "3", 5050);
    tc_expect_at("d", "4", 5050);
    tc_check();
}
END_TEST

/* ---- validators, stale window, negative entries ------------------------ */

START_TEST(test_etag_is_the_values)
{
    struct cache *other = NULL;
    struct cache_lookup lookup, lookup2;
    char buf[64];
    uint64_t first;

    /* A second segment has another hash seed, but the same ETag. */
    ck_assert_int_eq(cache_create(&tc_defaults, &other), 0);
    tc_put("a", "hello");
    ck_assert_int_eq(cache_set(other, "b", 1, "hello", 5, 1000),
                     CACHE_STORED);
    ck_assert_int_eq(tc_get_at("a", 1000, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    memset(&lookup2, 0, sizeof(lookup2));
    lookup2.dst = buf;
    lookup2.dst_cap = sizeof(buf);
    ck_assert_int_eq(cache_get(other, "b", 1, 1000, &lookup2), CACHE_HIT);
    ck_assert_uint_eq(lookup.etag, lookup2.etag);
    ck_assert_uint_eq(lookup.etag, cache_etag("hello", 5));
    first = lookup.etag;
    cache_destroy(other);
    tc_put("a", "hellp");
    ck_assert_int_eq(tc_get_at("a", 1000, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_uint_ne(lookup.etag, first);
    ck_assert_uint_ne(cache_etag("", 0), cache_etag("\0", 1));
    tc_check();
}
END_TEST

/* The ETag is part of the contract between proxies (and of what clients
 * saved): these are the tags the one-shot SipHash-1-3 gave before it
 * could be fed in pieces.  Every split of the input gives the same tag,
 * and a value fed as it arrives (value_fed) ends with it too. */
START_TEST(test_etag_in_pieces)
{
    static const struct {
        size_t   len;
        uint64_t tag;
    } known[] = {
        { 0, UINT64_C(0xce12749b4a7a81d8) },
        { 1, UINT64_C(0x9f24d99d69772d5f) },
        { 7, UINT64_C(0x8a67a481ea5f90b5) },
        { 8, UINT64_C(0xb3d45744535b1426) },
        { 9, UINT64_C(0x6ff6a58ce35d85cc) },
        { 15, UINT64_C(0xdb9879d9465e81b6) },
        { 16, UINT64_C(0x4f34e9c6597fdce9) },
        { 17, UINT64_C(0xc17edf13bf9cc1fc) },
        { 1000, UINT64_C(0x673016b0bd548bc5) },
    };
    static unsigned char buf[1000];

    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (unsigned char) (i * 7 + 3);
    }
    for (size_t k = 0; k < sizeof(known) / sizeof(*known); k++) {
        size_t len = known[k].len;

        ck_assert_uint_eq(cache_etag(buf, len), known[k].tag);
        ck_assert_uint_eq(etag_of(buf, len), known[k].tag);
        /* Every split in two, and pieces of every size from 1 to 17. */
        for (size_t cut = 0; cut <= len && len <= 17; cut++) {
            struct etag_state s;

            etag_begin(&s);
            etag_update(&s, buf, cut);
            etag_update(&s, buf + cut, len - cut);
            ck_assert_uint_eq(etag_end(&s), known[k].tag);
        }
        for (size_t piece = 1; piece <= 17; piece++) {
            struct value *v = value_create(len);

            ck_assert_ptr_nonnull(v);
            memcpy(v->data, buf, len);
            for (size_t off = 0; off < len; off += piece) {
                ck_assert(!v->has_etag);
                value_fed(v, off, len - off < piece ? len - off : piece);
            }
            ck_assert(v->has_etag);
            ck_assert_uint_eq(v->etag, known[k].tag);
            value_unref(v);
        }
    }
}
END_TEST

START_TEST(test_store_info_kept)
{
    struct cache_entry_info info = { 0x1234, 777, false, false, 0, 0 };
    struct cache_lookup lookup;
    char buf[64];

    ck_assert_int_eq(cache_store(tc, "k", 1, "v", 1, 1000, &info),
                     CACHE_STORED);
    ck_assert_int_eq(tc_get_at("k", 1400, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_uint_eq(lookup.etag, 0x1234);
    ck_assert_uint_eq(lookup.fetch_us, 777);
    ck_assert_uint_eq(lookup.ttl_left_ms, 600);
    ck_assert_uint_eq(lookup.age_ms, 400);
    ck_assert(!lookup.negative);
    tc_check();
}
END_TEST

START_TEST(test_stale_window)
{
    struct cache_lookup lookup;
    char buf[64];

    cache_set_windows(tc, 0, 500);
    tc_put_at("a", "1", 1000);
    tc_expect_at("a", "1", 1999);
    /* Past the TTL (1000) by less than 500: stale, with the value. */
    ck_assert_int_eq(tc_get_at("a", 2000, buf, sizeof(buf), &lookup),
                     CACHE_STALE);
    ck_assert_uint_eq(lookup.value_len, 1);
    ck_assert(buf[0] == '1');
    ck_assert_uint_eq(lookup.stale_ms, 0);
    ck_assert_uint_eq(lookup.ttl_left_ms, 0);
    ck_assert_int_eq(tc_get_at("a", 2499, buf, sizeof(buf), &lookup),
                     CACHE_STALE);
    ck_assert_uint_eq(lookup.stale_ms, 499);
    ck_assert_uint_eq(tc_stats().entries, 1);
    /* A set keeps a stale tail entry ... */
    tc_put_at("b", "2", 2400);
    ck_assert_uint_eq(tc_stats().entries, 2);
    ck_assert_uint_eq(tc_stats().expirations, 0);
    /* ... and drops it once it is past the window. */
    tc_put_at("c", "3", 2500);
    ck_assert_uint_eq(tc_stats().expirations, 1);
    tc_expect_miss("a", 2500);
    /* Replacing a stale entry makes it fresh. */
    tc_put_at("b", "4", 3500);
    tc_expect_at("b", "4", 3600);
    tc_check();
}
END_TEST

START_TEST(test_stale_never_after_delete_or_flush)
{
    struct cache_lookup lookup;
    char buf[64];

    cache_set_windows(tc, 0, 10000);
    tc_put_at("a", "1", 1000);
    tc_put_at("b", "2", 1000);
    ck_assert_int_eq(tc_get_at("a", 3000, buf, sizeof(buf), &lookup),
                     CACHE_STALE);
    ck_assert_int_eq(cache_delete(tc, "a", 1), CACHE_DELETED);
    tc_expect_miss("a", 3000);
    ck_assert_int_eq(cache_flush(tc), CACHE_DELETED);
    tc_expect_miss("b", 3000);
    tc_check();
}
END_TEST

START_TEST(test_stale_counts_against_capacity)
{
    char key[8];

    cache_set_windows(tc, 0, 1000000);
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        tc_put_at(key, "v", 1000);
    }
    /* All three stale; a fourth key evicts the least recent. */
    tc_put_at("x", "v", 5000);
    ck_assert_uint_eq(tc_stats().entries, 3);
    ck_assert_uint_eq(tc_stats().evictions, 1);
    tc_expect_miss("k0", 5000);
    tc_check();
}
END_TEST

START_TEST(test_negative_entry)
{
    struct cache_entry_info neg = { 0, 100, true, false, 0, 0 };
    struct cache_lookup lookup;
    char buf[64];

    /* Without a negative TTL nothing negative is stored. */
    ck_assert_int_eq(cache_store(tc, "n", 1, NULL, 0, 1000, &neg),
                     CACHE_TOO_LARGE);
    cache_set_windows(tc, 300, 5000);
    ck_assert_int_eq(cache_store(tc, "n", 1, "x", 1, 1000, &neg),
                     CACHE_TOO_LARGE);
    ck_assert_int_eq(cache_store(tc, "n", 1, NULL, 0, 1000, &neg),
                     CACHE_STORED);
    ck_assert_int_eq(tc_get_at("n", 1200, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert(lookup.negative);
    ck_assert_uint_eq(lookup.value_len, 0);
    ck_assert_uint_eq(lookup.ttl_left_ms, 100);
    /* Its own TTL, and never stale despite the stale window. */
    tc_expect_miss("n", 1300);
    ck_assert_uint_eq(tc_stats().entries, 0);
    /* It is an entry like any other: counted, deleted, replaced. */
    ck_assert_int_eq(cache_store(tc, "n", 1, NULL, 0, 2000, &neg),
                     CACHE_STORED);
    tc_put_at("a", "1", 2000);
    tc_put_at("b", "2", 2000);
    ck_assert_uint_eq(tc_stats().entries, 3);
    tc_put_at("c", "3", 2000);      /* evicts n, the least recent */
    tc_expect_miss("n", 2000);
    ck_assert_int_eq(cache_store(tc, "a", 1, NULL, 0, 2000, &neg),
                     CACHE_STORED);
    ck_assert_int_eq(tc_get_at("a", 2000, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert(lookup.negative);
    tc_put_at("a", "again", 2000);
    tc_expect_at("a", "again", 2000);
    ck_assert_int_eq(cache_delete(tc, "b", 1), CACHE_DELETED);
    tc_check();
}
END_TEST

/* ---- Redis' own expiry (cache_entry_info.expire_ms) ------------------- */

static void
tc_put_expiring(const char *key, const char *value, uint64_t now_ms,
                uint64_t expire_ms)
{
    struct cache_entry_info info = {
        .etag = cache_etag(value, strlen(value)),
        .expire_ms = expire_ms,
    };

    ck_assert_int_eq(cache_store(tc, key, strlen(key), value, strlen(value),
                                 now_ms, &info), CACHE_STORED);
}

START_TEST(test_redis_expiry_before_ttl)
{
    struct cache_lookup lookup;
    char buf[64];

    /* TTL 1000; Redis expires the key 300 ms after the store. */
    tc_put_expiring("k", "v", 1000, 300);
    ck_assert_int_eq(tc_get_at("k", 1100, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    /* max-age counts down to Redis' expiry, Age from the store. */
    ck_assert_uint_eq(lookup.ttl_left_ms, 200);
    ck_assert_uint_eq(lookup.age_ms, 100);
    ck_assert_int_eq(tc_get_at("k", 1299, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_uint_eq(lookup.ttl_left_ms, 1);
    tc_expect_miss("k", 1300);
    ck_assert_uint_eq(tc_stats().entries, 0);
    ck_assert_uint_eq(tc_stats().expirations, 1);
    tc_check();
}
END_TEST

START_TEST(test_redis_expiry_after_ttl)
{
    struct cache_lookup lookup;
    char buf[64];

    /* Redis keeps it longer than the TTL: the TTL rules. */
    tc_put_expiring("k", "v", 1000, 5000);
    ck_assert_int_eq(tc_get_at("k", 1100, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_uint_eq(lookup.ttl_left_ms, 900);
    tc_expect_miss("k", 2000);
    /* No expiry (PERSIST, PTTL -1): the TTL alone. */
    tc_put_expiring("p", "v", 1000, 0);
    tc_expect_at("p", "v", 1999);
    tc_expect_miss("p", 2000);
    tc_check();
}
END_TEST

START_TEST(test_redis_expiry_ends_stale_window)
{
    struct cache_lookup lookup;
    char buf[64];

    cache_set_windows(tc, 0, 10000);
    /* Cut short by Redis: gone at once, never stale. */
    tc_put_expiring("a", "1", 1000, 300);
    ck_assert_int_eq(tc_get_at("a", 1300, buf, sizeof(buf), &lookup),
                     CACHE_MISS);
    /* Past the TTL, stale only until Redis' expiry. */
    tc_put_expiring("b", "2", 1000, 3000);
    ck_assert_int_eq(tc_get_at("b", 2500, buf, sizeof(buf), &lookup),
                     CACHE_STALE);
    ck_assert_uint_eq(lookup.stale_ms, 500);
    ck_assert_int_eq(tc_get_at("b", 3999, buf, sizeof(buf), &lookup),
                     CACHE_STALE);
    ck_assert_int_eq(tc_get_at("b", 4000, buf, sizeof(buf), &lookup),
                     CACHE_MISS);
    /* Without one, the whole window. */
    tc_put_at("c", "3", 1000);
    ck_assert_int_eq(tc_get_at("c", 10999, buf, sizeof(buf), &lookup),
                     CACHE_STALE);
    tc_check();
}
END_TEST

START_TEST(test_redis_expiry_replaced_and_reclaimed)
{
    /* A store without an expiry replaces one with it. */
    tc_put_expiring("k", "old", 1000, 100);
    tc_put_at("k", "new", 1050);
    tc_expect_at("k", "new", 1500);
    ck_assert_int_eq(cache_flush(tc), CACHE_DELETED);
    /* An entry past Redis' expiry at the LRU tail is dropped by a set
     * and counted as expired, not evicted (capacity 3). */
    tc_put_expiring("x", "1", 2000, 10);
    tc_put_at("y", "2", 2001);
    tc_put_at("z", "3", 2002);
    tc_put_at("w", "4", 2020);
    ck_assert_uint_eq(tc_stats().expirations, 1);
    ck_assert_uint_eq(tc_stats().evictions, 0);
    tc_expect_miss("x", 2020);
    tc_expect_at("w", "4", 2020);
    /* A huge expiry saturates rather than wrapping into the past. */
    tc_put_expiring("h", "5", 3000, UINT64_MAX - 10);
    tc_expect_at("h", "5", 3999);
    tc_check();
}
END_TEST

/* ---- byte budget and sizes -------------------------------------------- */

static void
tc_put_sized(const char *key, size_t value_len, char fill)
{
    char value[1024];

    ck_assert_uint_le(value_len, sizeof(value));
    memset(value, fill, value_len);
    ck_assert_int_eq(cache_set(tc, key, strlen(key), value, value_len, 1000),
                     CACHE_STORED);
}

START_TEST(test_byte_budget_eviction)
{
    struct cache_params p = tc_defaults;
    char key[8];

    p.capacity = 100;
    p.max_memory_bytes = 1000;
    p.max_value_bytes = 1000;
    tc_recreate(&p);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        tc_put_sized(key, 98, (char) ('0' + i));   /* 100 bytes each */
    }
    ck_assert_uint_eq(tc_stats().bytes, 1000);
    ck_assert_uint_eq(tc_stats().evictions, 0);
    /* 800 bytes need 8 of the 10 small entries gone, oldest first. */
    tc_put_sized("big", 797, 'B');
    ck_assert_uint_eq(tc_stats().evictions, 8);
    ck_assert_uint_eq(tc_stats().entries, 3);
    ck_assert_uint_eq(tc_stats().bytes, 1000);
    tc_expect_miss("k7", 1000);
    ck_assert_uint_eq(tc_stats().evictions, 8);
    tc_check();
    {
        struct cache_lookup lookup;
        char buf[1024];

        ck_assert_int_eq(tc_get_at("k8", 1000, buf, sizeof(buf), &lookup),
                         CACHE_HIT);
        ck_assert_int_eq(tc_get_at("big", 1000, buf, sizeof(buf), &lookup),
                         CACHE_HIT);
        ck_assert_uint_eq(lookup.value_len, 797);
        ck_assert(buf[0] == 'B' && buf[796] == 'B');
    }
}
END_TEST

/*
 * A set into a full cache whose LRU tail's block is just the size it
 * needs takes the tail's slot and block in place (cache_store): the same
 * eviction as ever, and the gauges follow the new entry's bytes, fewer
 * or equal, never more.  The meta (16) + key (2) + value (9 or 14) +
 * header (4) of each entry round up to the same 4 granules.
 */
START_TEST(test_eviction_takes_the_tails_place)
{
    struct cache_params p = tc_defaults;

    p.capacity = 2;
    tc_recreate(&p);
    tc_put("k1", "aaaaaaaaaaaaaa");            /* 16 bytes */
    tc_put("k2", "bbbbbbbbbbbbbb");
    tc_put("k3", "ccccccccc");                 /* 11 bytes: in k1's place */
    ck_assert_uint_eq(tc_stats().evictions, 1);
    ck_assert_uint_eq(tc_stats().entries, 2);
    ck_assert_uint_eq(tc_stats().bytes, 16 + 11);
    tc_expect_miss("k1", 1000);
    tc_check();
    tc_expect("k2", "bbbbbbbbbbbbbb");         /* k3 is the tail now */
    tc_put("k4", "dddddddddddddd");            /* 16 > 11: no place */
    ck_assert_uint_eq(tc_stats().evictions, 2);
    ck_assert_uint_eq(tc_stats().bytes, 16 + 16);
    tc_expect_miss("k3", 1000);
    tc_expect("k4", "dddddddddddddd");
    tc_expect("k2", "bbbbbbbbbbbbbb");
    tc_check();
}
END_TEST

START_TEST(test_fragmented_arena_evicts_more)
{
    struct cache_params p = tc_defaults;
    struct cache_lookup lookup;
    char key[8], buf[1024];

    /* Ten 100-byte entries fill the budget; reading the odd ones leaves
     * the even ones, which alternate with them in the arena, at the LRU
     * tail.  Evicting those frees only 104-byte holes, so a 500-byte
     * value needs more evictions than the byte budget alone asks for. */
    p.capacity = 10;
    p.max_memory_bytes = 1000;
    p.max_value_bytes = 1000;
    tc_recreate(&p);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        tc_put_sized(key, 98, (char) ('0' + i));
    }
    for (int i = 1; i < 10; i += 2) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(tc_get_at(key, 1000, buf, sizeof(buf), &lookup),
                         CACHE_HIT);
    }
    tc_put_sized("big", 497, 'B');
    ck_assert_uint_gt(tc_stats().evictions, 5);
    ck_assert_uint_le(tc_stats().bytes, 1000);
    for (int i = 0; i < 10; i += 2) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(tc_get_at(key, 1000, buf, sizeof(buf), &lookup),
                         CACHE_MISS);
    }
    ck_assert_int_eq(tc_get_at("big", 1000, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    ck_assert_int_eq(tc_get_at("k9", 1000, buf, sizeof(buf), &lookup),
                     CACHE_HIT);
    tc_check();
}
END_TEST

/* max_value_bytes 100, max_memory_bytes 150. */
static const struct size_case {
    size_t key_len;
    size_t value_len;
    enum cache_status expect;
    const char *why;
} size_cases[] = {
    { 1, 100, CACHE_STORED, "value exactly max_value_bytes" },
    { 1, 101, CACHE_TOO_LARGE, "value one over max_value_bytes" },
    { 50, 100, CACHE_STORED, "key+value exactly max_memory_bytes" },
    { 51, 100, CACHE_TOO_LARGE, "key+value one over max_memory_bytes" },
    { 151, 0, CACHE_TOO_LARGE, "key alone over max_memory_bytes" },
    { 1, 0, CACHE_STORED, "empty value" },
    { 0, 5, CACHE_STORED, "empty key" },
    { 1, SIZE_MAX, CACHE_TOO_LARGE, "length that would overflow" },
};

START_TEST(test_sizes)
{
    const struct size_case *c = &size_cases[_i];
    struct cache_params p = tc_defaults;
    static char key[200], value[200];
    enum cache_status got;

    p.max_value_bytes = 100;
    p.max_memory_bytes = 150;
    tc_recreate(&p);
    memset(key, 'k', sizeof(key));
    memset(value, 'v', sizeof(value));
    tc_put("x", "y");
    got = cache_set(tc, key, c->key_len, value, c->value_len, 1000);
    ck_assert_msg(got == c->expect, "%s: got %d", c->why, got);
    if (got == CACHE_TOO_LARGE) {
        struct cache_lookup lookup = { .dst = NULL, .dst_cap = 0 };

        ck_assert_uint_eq(tc_stats().entries, 1);   /* nothing stored */
        ck_assert_uint_eq(tc_stats().bytes, 2);
        ck_assert_int_eq(cache_get(tc, key, c->key_len < 200 ? c->key_len
                                   : 1, 1000, &lookup), CACHE_MISS);
    } else {
        struct cache_lookup lookup = { .dst = value,
                                       .dst_cap = sizeof(value) };

        memset(value, 0, sizeof(value));
        ck_assert_int_eq(cache_get(tc, key, c->key_len, 1000, &lookup),
                         CACHE_HIT);
        ck_assert_uint_eq(lookup.value_len, c->value_len);
        for (size_t i = 0; i < c->value_len; i++) {
            ck_assert_int_eq(value[i], 'v');
        }
    }
    tc_check();
}
END_TEST

START_TEST(test_binary_keys_and_values)
{
    unsigned char key[256], value[1024], out[1024];
    struct cache_lookup lookup = { .dst = out, .dst_cap = sizeof(out) };

    for (int i = 0; i < 256; i++) {
        key[i] = (unsigned char) i;
    }
    for (int i = 0; i < 1024; i++) {
        value[i] = (unsigned char) (255 - i % 256);
    }
    ck_assert_int_eq(cache_set(tc, key, sizeof(key), value, sizeof(value),
                               1000), CACHE_STORED);
    /* Keys that differ only after a NUL, or only in length, are apart. */
    ck_assert_int_eq(cache_set(tc, "a\0b", 3, "1\0", 2, 1000), CACHE_STORED);
    ck_assert_int_eq(cache_set(tc, "a\0c", 3, "\0002", 2, 1000),
                     CACHE_STORED);
    ck_assert_int_eq(cache_get(tc, key, sizeof(key), 1000, &lookup),
                     CACHE_HIT);
    ck_assert_uint_eq(lookup.value_len, sizeof(value));
    ck_assert(memcmp(out, value, sizeof(value)) == 0);
    ck_assert_int_eq(cache_get(tc, "a\0b", 3, 1000, &lookup), CACHE_HIT);
    ck_assert(lookup.value_len == 2 && memcmp(out, "1\0", 2) == 0);
    ck_assert_int_eq(cache_get(tc, "a\0c", 3, 1000, &lookup), CACHE_HIT);
    ck_assert(lookup.value_len == 2 && memcmp(out, "\0002", 2) == 0);
    ck_assert_int_eq(cache_get(tc, "a", 1, 1000, &lookup), CACHE_MISS);
    ck_assert_int_eq(cache_get(tc, "a\0", 2, 1000, &lookup), CACHE_MISS);
    ck_assert_int_eq(cache_get(tc, key, 255, 1000, &lookup), CACHE_MISS);
    tc_check();
}
END_TEST

START_TEST(test_truncated)
{
    unsigned char value[100], out[100];
    struct cache_lookup lookup = { .dst = out, .dst_cap = 10 };

    memset(value, 'v', sizeof(value));
    memset(out, 0xaa, sizeof(out));
    ck_assert_int_eq(cache_set(tc, "a", 1, value, sizeof(value), 1000),
                     CACHE_STORED);
    ck_assert_int_eq(cache_get(tc, "a", 1, 1000, &lookup), CACHE_TRUNCATED);
    ck_assert_uint_eq(lookup.value_len, 100);
    for (size_t i = 0; i < sizeof(out); i++) {
        ck_assert_int_eq(out[i], 0xaa);          /* nothing copied */
    }
    ck_assert_uint_eq(tc_stats().hits, 0);
    ck_assert_uint_eq(tc_stats().misses, 0);
    lookup.dst_cap = lookup.value_len;           /* grow, call again */
    ck_assert_int_eq(cache_get(tc, "a", 1, 1000, &lookup), CACHE_HIT);
    ck_assert(memcmp(out, value, sizeof(value)) == 0);
    ck_assert_uint_eq(tc_stats().hits, 1);
    tc_check();
}
END_TEST

/* ---- stats ------------------------------------------------------------ */

START_TEST(test_stats)
{
    struct cache_stats stats;

    tc_put("a", "11");
    tc_put("bb", "2");
    tc_expect("a", "11");
    tc_expect("a", "11");
    tc_expect_miss("zz", 1000);
    tc_put("c", "3");
    tc_put("d", "4");                   /* evicts bb */
    tc_expect_miss("a", 5000);          /* expired */
    cache_stats(tc, &stats);
    ck_assert_uint_eq(stats.entries, 2);
    ck_assert_uint_eq(stats.bytes, 4);
    ck_assert_uint_eq(stats.capacity_entries, 3);
    ck_assert_uint_eq(stats.capacity_bytes, 1 << 20);
    ck_assert_uint_eq(stats.hits, 2);
    ck_assert_uint_eq(stats.misses, 2);
    ck_assert_uint_eq(stats.evictions, 1);
    ck_assert_uint_eq(stats.expirations, 1);
    ck_assert_uint_eq(stats.generation, 0);
    ck_assert(!stats.poisoned);
    ck_assert_uint_gt(cache_segment_bytes(tc), 1 << 20);
}
END_TEST

START_TEST(test_counters_summed_over_slots)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char buf[8];
        struct cache_lookup lookup = { .dst = buf,
                                       .dst_cap = sizeof(buf) };

        cache_attach(tc, 3);
        _exit(cache_set(tc, "a", 1, "1", 1, 1000) == CACHE_STORED
              && cache_get(tc, "a", 1, 1000, &lookup) == CACHE_HIT
              && cache_set(tc, "a", 1, "2", 1, 1000) == CACHE_STORED
              && cache_delete(tc, "zz", 2) == CACHE_MISS ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tc_expect("a", "2");                /* written by the child */
    tc_expect_miss("b", 1000);
    ck_assert_uint_eq(tc_stats().hits, 2);      /* one per process */
    ck_assert_uint_eq(tc_stats().misses, 1);
    ck_assert_uint_eq(tc_stats().entries, 1);
}
END_TEST

static const struct create_case {
    uint32_t capacity;
    uint64_t max_memory_bytes;
    uint64_t ttl_ms;
    uint32_t worker_slots;
    int expect;
    const char *why;
} create_cases[] = {
    { 0, 1000, 1000, 1, -EINVAL, "capacity 0" },
    { 1, 0, 1000, 1, -EINVAL, "no memory" },
    { 1, 1000, 0, 1, -EINVAL, "ttl 0" },
    { 1, 1000, 1000, 0, -EINVAL, "no worker slots" },
    { 1, UINT64_C(1) << 36, 1000, 1, -EINVAL, "arena over 8 GiB" },
    { 1, 1, 1, 1, 0, "smallest cache" },
};

START_TEST(test_create_params)
{
    const struct create_case *c = &create_cases[_i];
    struct cache_params p = tc_defaults;
    struct cache *other = NULL;
    int rc;

    p.capacity = c->capacity;
    p.max_memory_bytes = c->max_memory_bytes;
    p.ttl_ms = c->ttl_ms;
    p.worker_slots = c->worker_slots;
    rc = cache_create(&p, &other);
    ck_assert_msg(rc == c->expect, "%s: %d", c->why, rc);
    if (rc == 0) {
        ck_assert_int_eq(cache_set(other, "k", 1, "", 0, 1), CACHE_STORED);
        ck_assert_int_eq(cache_set(other, "", 0, "v", 1, 1), CACHE_STORED);
        cache_destroy(other);
    }
}
END_TEST

/* ---- crash recovery --------------------------------------------------- */

/* Which lock a crash test's child takes. */
enum tc_lock {
    TC_READ,  /* the read side */
    TC_WRITE, /* the write side (with the LRU lock inside it) */
    TC_LRU,   /* the LRU word, inside the read side, as an apply holds it */
};

static void
tc_hold(enum tc_lock lock)
{
    if (lock == TC_LRU) {
        cache_debug_hold_lru_lock(tc);
    } else {
        cache_debug_hold_lock(tc, lock == TC_WRITE);
    }
}

/* A child that takes the lock from slot and waits to be killed. */
static pid_t
tc_spawn_holder(uint32_t slot, enum tc_lock lock)
{
    int fds[2];
    pid_t pid;
    char c = 'x';
    ssize_t n;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        cache_attach(tc, slot);
        tc_hold(lock);
        if (write(fds[1], &c, 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    close(fds[1]);
    do {
        n = read(fds[0], &c, 1);
    } while (n < 0 && errno == EINTR);
    ck_assert_int_eq(n, 1);
    close(fds[0]);
    return pid;
}

static void
tc_kill(pid_t pid)
{
    int status;

    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void
tc_crash_and_recover(enum tc_lock lock)
{
    struct cache_lookup lookup;
    char buf[8];
    pid_t pid;

    tc_put("a", "1");
    pid = tc_spawn_holder(1, lock);
    tc_kill(pid);

    /* Before the reaper runs: the dead holder keeps the lock, so what
     * needs the side it blocks times out and bypasses.  A dead holder
     * of the LRU word blocks writers but not hits. */
    ck_assert_int_eq(cache_set(tc, "b", 1, "2", 1, 1000), CACHE_BYPASS);
    ck_assert_int_eq(tc_get_at("a", 1000, buf, sizeof(buf), &lookup),
                     lock == TC_WRITE ? CACHE_BYPASS : CACHE_HIT);

    ck_assert(!cache_reap_slot(tc, 0));     /* ours is idle */
    ck_assert(cache_reap_slot(tc, 1));
    ck_assert(cache_poisoned(tc));
    ck_assert(!cache_reap_slot(tc, 1));     /* now idle */
    ck_assert_int_eq(tc_get_at("a", 1000, buf, sizeof(buf), &lookup),
                     CACHE_BYPASS);
    ck_assert_int_eq(cache_set(tc, "b", 1, "2", 1, 1000), CACHE_BYPASS);
    ck_assert_int_eq(cache_delete(tc, "a", 1), CACHE_BYPASS);
    ck_assert_int_eq(cache_flush(tc), CACHE_BYPASS);
    ck_assert(tc_stats().poisoned);
    ck_assert_uint_eq(tc_stats().generation, 0);

    ck_assert_int_eq(cache_recover(tc), 0);
    ck_assert(!cache_poisoned(tc));
    ck_assert_uint_eq(tc_stats().generation, 1);
    ck_assert_uint_eq(tc_stats().entries, 0);
    ck_assert_uint_eq(tc_stats().hits, lock == TC_WRITE ? 0 : 1);
    ck_assert_uint_eq(tc_stats().misses, 0);
    tc_expect_miss("a", 1000);              /* entries lost, not answers */
    tc_put("b", "2");
    tc_expect("b", "2");
    ck_assert_int_eq(cache_delete(tc, "b", 1), CACHE_DELETED);
    ck_assert_int_eq(cache_flush(tc), CACHE_DELETED);
    ck_assert_uint_eq(tc_stats().misses, 1);   /* counters survived */
    ck_assert_uint_eq(tc_stats().hits, lock == TC_WRITE ? 1 : 2);
    ck_assert_int_eq(cache_recover(tc), 0);    /* not poisoned: no-op */
    ck_assert_uint_eq(tc_stats().generation, 1);
    tc_check();
}

START_TEST(test_crash_in_read_lock)
{
    tc_crash_and_recover(TC_READ);
}
END_TEST

START_TEST(test_crash_in_write_lock)
{
    tc_crash_and_recover(TC_WRITE);
}
END_TEST

START_TEST(test_crash_in_lru_lock)
{
    tc_crash_and_recover(TC_LRU);
}
END_TEST

START_TEST(test_recover_waits_for_live_holder)
{
    pid_t dead = tc_spawn_holder(1, TC_READ);
    pid_t live = tc_spawn_holder(2, TC_READ);

    tc_kill(dead);
    ck_assert(cache_reap_slot(tc, 1));
    ck_assert_int_eq(cache_recover(tc), -EBUSY);
    ck_assert(cache_poisoned(tc));
    tc_kill(live);
    ck_assert(cache_reap_slot(tc, 2));
    ck_assert_int_eq(cache_recover(tc), 0);
    ck_assert(!cache_poisoned(tc));
    tc_put("a", "1");
    tc_expect("a", "1");
    tc_check();
}
END_TEST

/*
 * A process killed while it waits for a lock, not inside it: a writer
 * that holds the writer word and waits for a live reader to leave, or
 * for a live holder of the LRU lock; a reader that waits for a live
 * writer; an apply that waits for the LRU lock.  SIGALRM (default
 * action: die) kills it in the middle of the wait, which the long lock
 * timeout keeps going.  Its slot is not idle, so the reap poisons;
 * recovery must clear the words the dead waiter held, or every later
 * set bypasses.
 */
static void
tc_crash_while_waiting(enum tc_lock holds, enum tc_lock waits)
{
    struct cache_params p = tc_defaults;
    pid_t holder, waiter;
    int status;

    p.lock_timeout_ms = 10000;
    tc_recreate(&p);
    tc_put("a", "1");
    holder = tc_spawn_holder(1, holds);
    waiter = fork();
    ck_assert_int_ge(waiter, 0);
    if (waiter == 0) {
        sigset_t alrm;

        /* Check's own timer handler is inherited: die of it instead. */
        sigemptyset(&alrm);
        sigaddset(&alrm, SIGALRM);
        signal(SIGALRM, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &alrm, NULL);
        cache_attach(tc, 2);
        alarm(1);
        tc_hold(waits);
        _exit(3);                       /* had the lock: not the case */
    }
    ck_assert_int_eq(waitpid(waiter, &status, 0), waiter);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM,
                  "the waiter got the lock (status %d)", status);
    ck_assert(cache_reap_slot(tc, 2));
    ck_assert(cache_poisoned(tc));
    ck_assert_int_eq(cache_recover(tc), -EBUSY);   /* holder still in */
    tc_kill(holder);
    ck_assert(cache_reap_slot(tc, 1));
    ck_assert_int_eq(cache_recover(tc), 0);
    tc_put("b", "2");                   /* the writer word is free */
    tc_expect("b", "2");
    tc_expect_miss("a", 1000);
    tc_check();
}

START_TEST(test_crash_writer_waiting_for_reader)
{
    tc_crash_while_waiting(TC_READ, TC_WRITE);
}
END_TEST

START_TEST(test_crash_reader_waiting_for_writer)
{
    tc_crash_while_waiting(TC_WRITE, TC_READ);
}
END_TEST

START_TEST(test_crash_writer_waiting_for_lru)
{
    tc_crash_while_waiting(TC_LRU, TC_WRITE);
}
END_TEST

START_TEST(test_crash_apply_waiting_for_lru)
{
    tc_crash_while_waiting(TC_LRU, TC_LRU);
}
END_TEST

START_TEST(test_crash_apply_waiting_for_writer)
{
    tc_crash_while_waiting(TC_WRITE, TC_LRU);
}
END_TEST

START_TEST(test_clean_exit_is_not_a_crash)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        cache_attach(tc, 1);
        _exit(cache_set(tc, "a", 1, "1", 1, 1000) == CACHE_STORED ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(!cache_reap_slot(tc, 1));
    ck_assert(!cache_poisoned(tc));
    tc_expect("a", "1");
}
END_TEST

/* ---- the arena on its own -------------------------------------------- */

#define ARENA_LIVE  64

/*
 * Random allocs (1 .. 3000 bytes) and frees on a 64 KiB arena, each
 * payload filled with its own byte: no two blocks overlap (the fill is
 * intact at free), cache_arena_check passes after every step, and once
 * all is freed the whole arena is one block again.
 */
/* cache_arena_fits_exactly() says yes exactly for the sizes that
 * cache_arena_alloc() would give a block of the same granules. */
START_TEST(test_arena_fits_exactly)
{
    size_t region = cache_arena_region_bytes(4096);
    struct cache_arena_shm *arena = malloc(region);

    ck_assert_ptr_nonnull(arena);
    for (size_t n = 0; n < 100; n++) {
        uint32_t block, other;

        cache_arena_init(arena, region);
        block = cache_arena_alloc(arena, n);
        ck_assert_uint_ne(block, CACHE_ARENA_NIL);
        for (size_t m = 0; m < 100; m++) {
            other = cache_arena_alloc(arena, m);
            ck_assert_uint_ne(other, CACHE_ARENA_NIL);
            ck_assert_msg(cache_arena_fits_exactly(arena, block, m)
                          == (cache_arena_block_capacity(arena, other)
                              == cache_arena_block_capacity(arena, block)),
                          "sizes %zu and %zu", n, m);
            cache_arena_free(arena, other);
        }
    }
    free(arena);
}
END_TEST

START_TEST(test_arena_random)
{
    size_t region = cache_arena_region_bytes(65536);
    struct cache_arena_shm *arena = malloc(region);
    uint32_t blocks[ARENA_LIVE];
    size_t lens[ARENA_LIVE];
    struct cache_fault fault = { NULL, 0, 0 };
    unsigned seed = 12345, allocs = 0, refusals = 0;

    ck_assert_ptr_nonnull(arena);
    cache_arena_init(arena, region);
    for (int k = 0; k < ARENA_LIVE; k++) {
        blocks[k] = CACHE_ARENA_NIL;
    }
    for (int step = 0; step < 20000; step++) {
        int k = rand_r(&seed) % ARENA_LIVE;
        unsigned char fill = (unsigned char) k;

        if (blocks[k] == CACHE_ARENA_NIL) {
            lens[k] = 1 + (size_t) rand_r(&seed) % 3000;
            blocks[k] = cache_arena_alloc(arena, lens[k]);
            if (blocks[k] == CACHE_ARENA_NIL) {
                refusals++;
                continue;
            }
            allocs++;
            ck_assert_uint_ge(cache_arena_block_capacity(arena, blocks[k]),
                              lens[k]);
            memset(cache_arena_data(arena, blocks[k]), fill, lens[k]);
        } else {
            unsigned char *data = cache_arena_data(arena, blocks[k]);
            size_t j = 0;

            /* One ck_assert per block: each one writes a record. */
            while (j < lens[k] && data[j] == fill) {
                j++;
            }
            ck_assert_msg(j == lens[k], "block %d overwritten at %zu", k, j);
            cache_arena_free(arena, blocks[k]);
            blocks[k] = CACHE_ARENA_NIL;
        }
        ck_assert_msg(cache_arena_check(arena, NULL, &fault) == 0,
                      "step %d: %s %ju %ju", step, fault.what,
                      (uintmax_t) fault.a, (uintmax_t) fault.b);
    }
    ck_assert_uint_gt(allocs, 5000);
    ck_assert_uint_gt(refusals, 0);         /* it did run full */
    for (int k = 0; k < ARENA_LIVE; k++) {
        if (blocks[k] != CACHE_ARENA_NIL) {
            cache_arena_free(arena, blocks[k]);
        }
    }
    ck_assert_int_eq(cache_arena_check(arena, NULL, &fault), 0);
    ck_assert_uint_ne(cache_arena_alloc(arena, 65536 - 4), CACHE_ARENA_NIL);
    ck_assert_uint_eq(cache_arena_alloc(arena, 8), CACHE_ARENA_NIL);
    free(arena);
}
END_TEST

/* ---- multi-process stress --------------------------------------------- */

#define STRESS_PROCS    4
#define STRESS_KEYS     200
#define STRESS_MS       3000

struct stress_tally {
    uint64_t hits;
    uint64_t misses;
    uint64_t stored;
    uint64_t bypassed;
    uint64_t corrupt;
};

/* A value's bytes follow from its key and length, so a reader can tell a
 * torn or misplaced value whoever wrote it. */
static unsigned char
stress_byte(unsigned id, size_t len, size_t j)
{
    return (unsigned char) (id * 31u + j * 7u + len);
}

static void
stress_child(unsigned index, int out_fd)
{
    struct stress_tally t = { 0, 0, 0, 0, 0 };
    unsigned char value[512], buf[512];
    unsigned seed = 0x9e3779b9u * (index + 1);
    uint64_t until = cache_clock_ms() + STRESS_MS;
    char key[16];

    cache_attach(tc, index + 1);
    for (uint64_t n = 0;; n++) {
        unsigned id, r;
        size_t key_len;

        if ((n & 255) == 0 && cache_clock_ms() >= until) {
            break;
        }
        id = (unsigned) rand_r(&seed) % STRESS_KEYS;
        r = (unsigned) rand_r(&seed) % 1000;
        key_len = (size_t) snprintf(key, sizeof(key), "key-%u", id);
        if (r < 600) {
            struct cache_lookup lookup = { .dst = buf,
                                           .dst_cap = sizeof(buf) };

            switch (cache_get(tc, key, key_len, cache_clock_ms(), &lookup)) {
            case CACHE_HIT:
                t.hits++;
                for (size_t j = 0; j < lookup.value_len; j++) {
                    if (buf[j] != stress_byte(id, lookup.value_len, j)) {
                        t.corrupt++;
                        break;
                    }
                }
                break;
            case CACHE_MISS:
                t.misses++;
                break;
            case CACHE_BYPASS:
                t.bypassed++;
                break;
            default:
                t.corrupt++;
            }
        } else if (r < 920) {
            size_t len = (size_t) rand_r(&seed) % 400;

            for (size_t j = 0; j < len; j++) {
                value[j] = stress_byte(id, len, j);
            }
            switch (cache_set(tc, key, key_len, value, len,
                              cache_clock_ms())) {
            case CACHE_STORED:
                t.stored++;
                break;
            case CACHE_BYPASS:
                t.bypassed++;
                break;
            default:
                t.corrupt++;
            }
        } else if (r < 999) {
            (void) cache_delete(tc, key, key_len);
        } else {
            (void) cache_flush(tc);
        }
    }
    _exit(write(out_fd, &t, sizeof(t)) == (ssize_t) sizeof(t) ? 0 : 1);
}

START_TEST(test_stress_processes)
{
    struct cache_params p = tc_defaults;
    struct stress_tally sum = { 0, 0, 0, 0, 0 };
    struct cache_stats stats;
    pid_t pids[STRESS_PROCS];
    int fds[STRESS_PROCS][2];

    p.capacity = 64;
    p.max_memory_bytes = 8192;
    p.max_value_bytes = 512;
    p.ttl_ms = 5;                   /* expiry races eviction */
    p.lock_timeout_ms = 5000;       /* a loaded test box must not bypass */
    tc_recreate(&p);
    for (unsigned i = 0; i < STRESS_PROCS; i++) {
        ck_assert_int_eq(pipe(fds[i]), 0);
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(fds[i][0]);
            stress_child(i, fds[i][1]);
        }
        close(fds[i][1]);
    }
    for (unsigned i = 0; i < STRESS_PROCS; i++) {
        struct stress_tally t;
        ssize_t n;
        int status;

        do {
            n = read(fds[i][0], &t, sizeof(t));
        } while (n < 0 && errno == EINTR);
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "stress child %u failed", i);
        ck_assert_int_eq(n, (ssize_t) sizeof(t));
        close(fds[i][0]);
        sum.hits += t.hits;
        sum.misses += t.misses;
        sum.stored += t.stored;
        sum.bypassed += t.bypassed;
        sum.corrupt += t.corrupt;
    }
    tc_check();
    cache_stats(tc, &stats);
    ck_assert_uint_eq(sum.corrupt, 0);
    ck_assert_uint_eq(stats.hits, sum.hits);
    ck_assert_uint_eq(stats.misses, sum.misses);
    ck_assert_uint_gt(sum.hits, 0);
    ck_assert_uint_gt(sum.stored, 0);
    ck_assert_uint_gt(stats.evictions, 0);
    ck_assert_uint_le(stats.entries, p.capacity);
    ck_assert_uint_le(stats.bytes, p.max_memory_bytes);
    ck_assert(!stats.poisoned);
    fprintf(stderr, "stress: %ju hits, %ju misses, %ju stored, %ju "
            "evictions, %ju expirations, %ju bypassed\n",
            (uintmax_t) sum.hits, (uintmax_t) sum.misses,
            (uintmax_t) sum.stored, (uintmax_t) stats.evictions,
            (uintmax_t) stats.expirations, (uintmax_t) sum.bypassed);
}
END_TEST

/* ---- suite ------------------------------------------------------------ */

#define N_CASES(a) ((int) (sizeof(a) / sizeof((a)[0])))

static TCase *
tc_case(Suite *s, const char *name)
{
    TCase *t = tcase_create(name);

    tcase_add_checked_fixture(t, tc_setup, tc_teardown);
    suite_add_tcase(s, t);
    return t;
}

static Suite *
cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *t;

    t = tc_case(s, "lru");
    tcase_add_loop_test(t, test_lru_order, 0, N_CASES(lru_cases));
    tcase_add_test(t, test_lru_order_across_processes);
    tcase_add_loop_test(t, test_lru_apply_while_reading, 0,
                        N_CASES(ilv_step_cases));
    t = tc_case(s, "replace");
    tcase_add_test(t, test_ring_wraps_under_the_write_side);
    tcase_add_test(t, test_ring_wraps_under_the_lru_lock);
    tcase_add_test(t, test_replace_keeps_one);
    tcase_add_test(t, test_replace_restarts_age);
    t = tc_case(s, "delete");
    tcase_add_test(t, test_delete);
    t = tc_case(s, "flush");
    tcase_add_test(t, test_flush);
    t = tc_case(s, "purge");
    tcase_add_test(t, test_purge_delete);
    tcase_add_test(t, test_purge_flush);
    t = tc_case(s, "empty");
    tcase_add_test(t, test_empty_cache);
    t = tc_case(s, "capacity_one");
    tcase_add_test(t, test_capacity_one);
    t = tc_case(s, "expiry");
    tcase_add_test(t, test_ttl_expiry);
    tcase_add_test(t, test_set_ttl);
    tcase_add_test(t, test_set_drops_expired_tail);
    t = tc_case(s, "validators and windows");
    tcase_add_test(t, test_etag_is_the_values);
    tcase_add_test(t, test_etag_in_pieces);
    tcase_add_test(t, test_store_info_kept);
    tcase_add_test(t, test_stale_window);
    tcase_add_test(t, test_stale_never_after_delete_or_flush);
    tcase_add_test(t, test_stale_counts_against_capacity);
    tcase_add_test(t, test_negative_entry);
    tcase_add_test(t, test_redis_expiry_before_ttl);
    tcase_add_test(t, test_redis_expiry_after_ttl);
    tcase_add_test(t, test_redis_expiry_ends_stale_window);
    tcase_add_test(t, test_redis_expiry_replaced_and_reclaimed);
    t = tc_case(s, "byte_budget");
    tcase_add_test(t, test_byte_budget_eviction);
    tcase_add_test(t, test_eviction_takes_the_tails_place);
    tcase_add_test(t, test_fragmented_arena_evicts_more);
    t = tc_case(s, "sizes");
    tcase_add_loop_test(t, test_sizes, 0, N_CASES(size_cases));
    t = tc_case(s, "binary");
    tcase_add_test(t, test_binary_keys_and_values);
    t = tc_case(s, "truncated");
    tcase_add_test(t, test_truncated);
    t = tc_case(s, "stats");
    tcase_add_test(t, test_stats);
    tcase_add_test(t, test_counters_summed_over_slots);
    t = tc_case(s, "create");
    tcase_add_loop_test(t, test_create_params, 0, N_CASES(create_cases));
    t = tc_case(s, "crash");
    tcase_add_test(t, test_crash_in_read_lock);
    tcase_add_test(t, test_crash_in_write_lock);
    tcase_add_test(t, test_crash_in_lru_lock);
    tcase_add_test(t, test_recover_waits_for_live_holder);
    tcase_add_test(t, test_crash_writer_waiting_for_reader);
    tcase_add_test(t, test_crash_reader_waiting_for_writer);
    tcase_add_test(t, test_crash_writer_waiting_for_lru);
    tcase_add_test(t, test_crash_apply_waiting_for_lru);
    tcase_add_test(t, test_crash_apply_waiting_for_writer);
    tcase_add_test(t, test_clean_exit_is_not_a_crash);
    t = tc_case(s, "arena");
    tcase_add_test(t, test_arena_fits_exactly);
    tcase_add_test(t, test_arena_random);
    t = tc_case(s, "stress");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_stress_processes);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cache_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
