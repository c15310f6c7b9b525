/*
 * Unit tests of cache_inflight.c, the in-flight markers: claim, wait,
 * release, same-process and other-key claims, takeover of a dead or
 * overrun owner, the supervisor's reap, and processes racing for one
 * key (exactly one owns it).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache_inflight.h"

#define TIMEOUT_MS 1000u

static struct cache_inflight *t;

static void
setup(void)
{
    ck_assert_int_eq(cache_inflight_create(&t), 0);
}

static void
teardown(void)
{
    cache_inflight_destroy(t);
    t = NULL;
}

/* A live process that is not us: our parent (Check forks each test). */
static uint32_t
other_pid(void)
{
    return (uint32_t)getppid();
}

/* A pid that no process has now: a child that has exited and been
 * reaped. */
static uint32_t
dead_pid(void)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return (uint32_t)pid;
}

static enum cache_inflight_claim
claim(const char *key, uint32_t pid, uint64_t now_ms,
      struct cache_inflight_mark *m)
{
    return cache_inflight_claim(t, key, strlen(key), pid, now_ms,
                                TIMEOUT_MS, m);
}

START_TEST(test_claim_wait_release)
{
    struct cache_inflight_mark owner, waiter, again;

    ck_assert_int_eq(claim("k", other_pid(), 1000, &owner),
                     CACHE_INFLIGHT_OWNER);
    /* A miss in another process waits for the owner's fetch. */
    ck_assert_int_eq(claim("k", (uint32_t)getpid(), 1001, &waiter),
                     CACHE_INFLIGHT_WAIT);
    ck_assert_uint_eq(waiter.slot, owner.slot);
    ck_assert_uint_eq(waiter.word, owner.word);
    ck_assert(cache_inflight_held(t, &waiter, 1500));
    cache_inflight_release(t, &owner);
    ck_assert(!cache_inflight_held(t, &waiter, 1500));
    /* Free again: the next miss owns it, with a new word. */
    ck_assert_int_eq(claim("k", other_pid(), 1600, &again),
                     CACHE_INFLIGHT_OWNER);
    ck_assert_uint_ne(again.word, owner.word);
    ck_assert(!cache_inflight_held(t, &waiter, 1600));
}
END_TEST

START_TEST(test_own_marker_is_not_waited_for)
{
    struct cache_inflight_mark a, b;
    uint32_t me = (uint32_t)getpid();

    ck_assert_int_eq(claim("k", me, 1000, &a), CACHE_INFLIGHT_OWNER);
    /* Another fetch of ours (after a purge, say): never wait on
     * ourselves. */
    ck_assert_int_eq(claim("k", me, 1001, &b), CACHE_INFLIGHT_NONE);
    cache_inflight_release(t, &a);
    ck_assert_int_eq(claim("k", me, 1002, &b), CACHE_INFLIGHT_OWNER);
}
END_TEST

START_TEST(test_other_key_in_the_slot_fetches_alone)
{
    struct cache_inflight_mark first, m;
    char key[32], other[32] = "";
    uint32_t slot;

    ck_assert_int_eq(claim("key-0", other_pid(), 1000, &first),
                     CACHE_INFLIGHT_OWNER);
    slot = first.slot;
    /* Find another key with the same slot (a few thousand tries). */
    for (int i = 1; i < 1000000 && other[0] == '\0'; i++) {
        struct cache_inflight_mark probe;

        snprintf(key, sizeof(key), "key-%d", i);
        if (claim(key, other_pid(), 1000, &probe)
            == CACHE_INFLIGHT_OWNER) {
            cache_inflight_release(t, &probe);
        } else if (probe.slot == slot) {
            memcpy(other, key, sizeof(other));
        }
    }
    ck_assert(other[0] != '\0');
    /* Its marker is key-0's: fetched without one, not waited. */
    ck_assert_int_eq(claim(other, (uint32_t)getpid(), 1001, &m),
                     CACHE_INFLIGHT_NONE);
    ck_assert(cache_inflight_held(t, &first, 1001));
}
END_TEST

START_TEST(test_dead_owner_is_taken_over)
{
    struct cache_inflight_mark dead, waiter, mine;
    uint32_t gone = dead_pid();

    ck_assert_int_eq(claim("k", gone, 1000, &dead), CACHE_INFLIGHT_OWNER);
    /* A waiter that saw a live word stops waiting once its owner is
     * dead, and the next claim takes the marker over. */
    waiter = dead;
    ck_assert(!cache_inflight_held(t, &waiter, 1001));
    ck_assert_int_eq(claim("k", (uint32_t)getpid(), 1001, &mine),
                     CACHE_INFLIGHT_OWNER);
    /* The dead owner's release (its reap racing) frees nothing of
     * ours. */
    cache_inflight_release(t, &dead);
    ck_assert(cache_inflight_held(t, &mine, 1002));
    ck_assert_int_eq(claim("k", other_pid(), 1002, &waiter),
                     CACHE_INFLIGHT_WAIT);
    ck_assert_uint_eq(waiter.word, mine.word);
}
END_TEST

START_TEST(test_overrun_owner_is_taken_over)
{
    struct cache_inflight_mark owner, waiter, mine;

    ck_assert_int_eq(claim("k", other_pid(), 1000, &owner),
                     CACHE_INFLIGHT_OWNER);
    ck_assert_int_eq(claim("k", (uint32_t)getpid(), 1000 + TIMEOUT_MS - 1,
                           &waiter), CACHE_INFLIGHT_WAIT);
    ck_assert(cache_inflight_held(t, &waiter, 1000 + TIMEOUT_MS - 1));
    /* Live, but past its deadline (a pid reused, a stuck owner): no
     * longer waited for. */
    ck_assert(!cache_inflight_held(t, &waiter, 1000 + TIMEOUT_MS));
    ck_assert_int_eq(claim("k", (uint32_t)getpid(), 1000 + TIMEOUT_MS,
                           &mine), CACHE_INFLIGHT_OWNER);
    cache_inflight_release(t, &owner);      /* late: not its any more */
    ck_assert_int_eq(claim("k", other_pid(), 1000 + TIMEOUT_MS + 1,
                           &waiter), CACHE_INFLIGHT_WAIT);
}
END_TEST

START_TEST(test_reap_frees_the_dead_workers_markers)
{
    struct cache_inflight_mark a, b, c, w;
    uint32_t pid = other_pid();
    char key[16];
    int i;

    ck_assert_int_eq(claim("a", pid, 1000, &a), CACHE_INFLIGHT_OWNER);
    /* Two more keys with slots of their own (1 in 4096 shares one). */
    i = 0;
    do {
        snprintf(key, sizeof(key), "b%d", i++);
    } while (claim(key, pid, 1000, &b) != CACHE_INFLIGHT_OWNER);
    i = 0;
    do {
        snprintf(key, sizeof(key), "c%d", i++);
    } while (claim(key, (uint32_t)getpid(), 1000, &c)
             != CACHE_INFLIGHT_OWNER);
    ck_assert_int_eq(claim("a", (uint32_t)getpid(), 1000, &w),
                     CACHE_INFLIGHT_WAIT);
    ck_assert_uint_eq(cache_inflight_reap(t, pid), 2);
    ck_assert(!cache_inflight_held(t, &w, 1001));
    /* Ours stays. */
    ck_assert(cache_inflight_held(t, &c, 1001));
    ck_assert_uint_eq(cache_inflight_reap(t, pid), 0);
}
END_TEST

/* N processes claim one key at once: exactly one owns it, every other
 * waits for that one's word. */
START_TEST(test_processes_race_for_one_key)
{
    enum { N = 8 };
    int results[2], go[2], done[2];
    pid_t kids[N];
    unsigned owners = 0, waiters = 0;

    ck_assert_int_eq(pipe(results), 0);
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(done), 0);
    for (int i = 0; i < N; i++) {
        kids[i] = fork();
        ck_assert_int_ge(kids[i], 0);
        if (kids[i] == 0) {
            struct cache_inflight_mark m;
            char c, out;

            /* All start together, and stay alive until all claimed. */
            if (read(go[0], &c, 1) != 1) {
                _exit(2);
            }
            out = (char)('0' + claim("hot", (uint32_t)getpid(), 1000,
                                     &m));
            if (write(results[1], &out, 1) != 1) {
                _exit(3);
            }
            if (read(done[0], &c, 1) != 1) {
                _exit(4);
            }
            _exit(0);
        }
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(write(go[1], "x", 1), 1);
    }
    for (int i = 0; i < N; i++) {
        char r;

        ck_assert_int_eq(read(results[0], &r, 1), 1);
        owners += r == '0' + CACHE_INFLIGHT_OWNER;
        waiters += r == '0' + CACHE_INFLIGHT_WAIT;
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(write(done[1], "x", 1), 1);
    }
    for (int i = 0; i < N; i++) {
        int status;

        ck_assert_int_eq(waitpid(kids[i], &status, 0), kids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ck_assert_uint_eq(owners, 1);
    ck_assert_uint_eq(waiters, N - 1);
    close(results[0]);
    close(results[1]);
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
}
END_TEST

static Suite *
cache_inflight_suite(void)
{
    Suite *s = suite_create("cache_inflight");
    TCase *tc = tcase_create("markers");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_claim_wait_release);
    tcase_add_test(tc, test_own_marker_is_not_waited_for);
    tcase_add_test(tc, test_other_key_in_the_slot_fetches_alone);
    tcase_add_test(tc, test_dead_owner_is_taken_over);
    tcase_add_test(tc, test_overrun_owner_is_taken_over);
    tcase_add_test(tc, test_reap_frees_the_dead_workers_markers);
    tcase_add_test(tc, test_processes_race_for_one_key);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cache_inflight_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
