/*
 * check_event: the epoll loop and its timer heap.  Timer tests assert
 * order, never durations; fd tests use pipes, which are ready at once.
 * A safety timer stops every run, so a broken loop fails instead of
 * hanging.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "event.h"

#define SAFETY_MS 5000

static struct event_loop loop;
static struct event_timer safety;
static bool safety_fired;

static void
safety_cb(struct event_loop *l, struct event_timer *t)
{
    (void)t;
    safety_fired = true;
    event_loop_stop(l);
}

static void
setup(void)
{
    ck_assert_int_eq(event_loop_init(&loop), 0);
    safety_fired = false;
    event_timer_init(&safety, safety_cb, NULL);
    ck_assert_int_eq(event_timer_start(&loop, &safety, SAFETY_MS), 0);
}

static void
teardown(void)
{
    event_timer_stop(&loop, &safety);
    event_loop_fini(&loop);
}

static void
run_loop(void)
{
    ck_assert_int_eq(event_loop_run(&loop, NULL, NULL), 0);
    ck_assert_msg(!safety_fired, "loop ran into the safety timer");
}

/* --- timers ------------------------------------------------------------ */

struct rec_timer {
    struct event_timer timer;
    int                id;
    uint64_t           when_ms;
};

static int fired[512];
static size_t nfired;
static size_t stop_after;

static void
rec_cb(struct event_loop *l, struct event_timer *t)
{
    struct rec_timer *r = t->data;

    ck_assert_uint_le(r->when_ms, event_now_ms(l));
    ck_assert(!event_timer_active(t));
    ck_assert_uint_lt(nfired, sizeof(fired) / sizeof(fired[0]));
    fired[nfired++] = r->id;
    if (nfired == stop_after) {
        event_loop_stop(l);
    }
}

static void
rec_start(struct rec_timer *r, int id, uint64_t after_ms)
{
    event_timer_init(&r->timer, rec_cb, r);
    r->id = id;
    ck_assert_int_eq(event_timer_start(&loop, &r->timer, after_ms), 0);
    ck_assert(event_timer_active(&r->timer));
    r->when_ms = r->timer.when_ms;
}

START_TEST(timers_fire_in_order)
{
    static const uint64_t after[] = { 30, 10, 20, 0, 25, 5, 15 };
    static const int expect[] = { 3, 5, 1, 6, 2, 4, 0 };
    struct rec_timer r[7];
    size_t i;

    nfired = 0;
    stop_after = 7;
    for (i = 0; i < 7; i++) {
        rec_start(&r[i], (int)i, after[i]);
    }
    run_loop();
    ck_assert_uint_eq(nfired, 7);
    for (i = 0; i < 7; i++) {
        ck_assert_int_eq(fired[i], expect[i]);
    }
}
END_TEST

START_TEST(timers_many_random_in_order)
{
    /* The heap keeps order through growth and random removals. */
    static struct rec_timer r[400];
    size_t i, stopped = 0;
    uint64_t last = 0;

    srandom(12345);
    nfired = 0;
    for (i = 0; i < 400; i++) {
        rec_start(&r[i], (int)i, (uint64_t)(random() % 40));
    }
    for (i = 0; i < 400; i += 7) {
        event_timer_stop(&loop, &r[i].timer);
        ck_assert(!event_timer_active(&r[i].timer));
        stopped++;
    }
    stop_after = 400 - stopped;
    run_loop();
    ck_assert_uint_eq(nfired, 400 - stopped);
    for (i = 0; i < nfired; i++) {
        ck_assert_int_ne(fired[i] % 7, 0);
        ck_assert_uint_ge(r[fired[i]].when_ms, last);
        last = r[fired[i]].when_ms;
    }
}
END_TEST

START_TEST(timer_stop_and_restart)
{
    struct rec_timer a, b, c;

    nfired = 0;
    stop_after = 2;
    rec_start(&a, 1, 10);
    rec_start(&b, 2, 20);
    rec_start(&c, 3, 5);
    event_timer_stop(&loop, &c.timer);
    event_timer_stop(&loop, &c.timer);         /* stopping twice is fine */
    /* Re-arming an active timer moves it behind b. */
    ck_assert_int_eq(event_timer_start(&loop, &a.timer, 30), 0);
    a.when_ms = a.timer.when_ms;
    run_loop();
    ck_assert_uint_eq(nfired, 2);
    ck_assert_int_eq(fired[0], 2);
    ck_assert_int_eq(fired[1], 1);
}
END_TEST

struct peer_timer {
    struct event_timer  timer;
    struct event_timer *victim;
    int                 rearm_left;
    int                 calls;
};

static void
stop_victim_cb(struct event_loop *l, struct event_timer *t)
{
    struct peer_timer *p = t->data;

    p->calls++;
    event_timer_stop(l, p->victim);
}

static void
victim_cb(struct event_loop *l, struct event_timer *t)
{
    (void)l;
    (void)t;
    ck_abort_msg("a timer stopped by another callback fired");
}

static void
rearm_cb(struct event_loop *l, struct event_timer *t)
{
    struct peer_timer *p = t->data;

    p->calls++;
    if (p->rearm_left-- > 0) {
        ck_assert_int_eq(event_timer_start(l, t, 0), 0);
    } else {
        event_loop_stop(l);
    }
}

START_TEST(timer_callback_stops_other_and_rearms_self)
{
    struct peer_timer killer, self;
    struct event_timer victim;

    /* Same deadline: whichever the heap pops first, the killer must run
     * before the victim, so give the victim a later one. */
    event_timer_init(&victim, victim_cb, NULL);
    event_timer_init(&killer.timer, stop_victim_cb, &killer);
    killer.victim = &victim;
    killer.calls = 0;
    ck_assert_int_eq(event_timer_start(&loop, &killer.timer, 0), 0);
    ck_assert_int_eq(event_timer_start(&loop, &victim, 1), 0);

    event_timer_init(&self.timer, rearm_cb, &self);
    self.calls = 0;
    self.rearm_left = 5;
    ck_assert_int_eq(event_timer_start(&loop, &self.timer, 2), 0);
    run_loop();
    ck_assert_int_eq(killer.calls, 1);
    ck_assert_int_eq(self.calls, 6);
    ck_assert(!event_timer_active(&victim));
}
END_TEST

/* --- fds --------------------------------------------------------------- */

struct pipe_io {
    struct event_io  io;
    int              fds[2];
    unsigned         got;
    int              calls;
    struct pipe_io  *other;
};

static void
pipe_open(struct pipe_io *p, event_io_cb cb)
{
    ck_assert_int_eq(pipe2(p->fds, O_CLOEXEC | O_NONBLOCK), 0);
    p->got = 0;
    p->calls = 0;
    p->other = NULL;
    event_io_init(&p->io, p->fds[0], cb, p);
}

static void
pipe_close(struct pipe_io *p)
{
    if (p->fds[0] >= 0) {
        ck_assert_int_eq(close(p->fds[0]), 0);
    }
    if (p->fds[1] >= 0) {
        ck_assert_int_eq(close(p->fds[1]), 0);
    }
    p->fds[0] = p->fds[1] = -1;
}

static void
record_and_stop_cb(struct event_loop *l, struct event_io *io,
                   unsigned events)
{
    struct pipe_io *p = io->data;

    p->got |= events;
    p->calls++;
    event_io_stop(l, io);
    ck_assert(!io->registered);
    event_loop_stop(l);
}

START_TEST(pipe_readable)
{
    struct pipe_io p;

    pipe_open(&p, record_and_stop_cb);
    ck_assert_int_eq(event_io_set(&loop, &p.io, EVENT_READ), 0);
    ck_assert(p.io.registered);
    ck_assert_int_eq(write(p.fds[1], "x", 1), 1);
    run_loop();
    ck_assert_int_eq(p.calls, 1);
    ck_assert_uint_eq(p.got, EVENT_READ);
    pipe_close(&p);
}
END_TEST

START_TEST(pipe_writable)
{
    struct pipe_io p;

    pipe_open(&p, record_and_stop_cb);
    event_io_init(&p.io, p.fds[1], record_and_stop_cb, &p);
    ck_assert_int_eq(event_io_set(&loop, &p.io, EVENT_READ | EVENT_WRITE),
                     0);
    run_loop();
    ck_assert_int_eq(p.calls, 1);
    ck_assert_uint_eq(p.got, EVENT_WRITE);
    pipe_close(&p);
}
END_TEST

START_TEST(pipe_hangup_reported_to_reader)
{
    struct pipe_io p;

    pipe_open(&p, record_and_stop_cb);
    ck_assert_int_eq(event_io_set(&loop, &p.io, EVENT_READ), 0);
    ck_assert_int_eq(close(p.fds[1]), 0);
    p.fds[1] = -1;
    run_loop();
    ck_assert_int_eq(p.calls, 1);
    ck_assert_uint_eq(p.got & EVENT_READ, EVENT_READ);
    pipe_close(&p);
}
END_TEST

START_TEST(mask_change_and_no_event_when_not_ready)
{
    struct pipe_io p;
    struct rec_timer t;

    /* Writable interest on the read end never fires; READ then does. */
    pipe_open(&p, record_and_stop_cb);
    ck_assert_int_eq(event_io_set(&loop, &p.io, EVENT_WRITE), 0);
    ck_assert_int_eq(event_io_set(&loop, &p.io, EVENT_WRITE), 0);
    nfired = 0;
    stop_after = 1;
    rec_start(&t, 1, 20);
    run_loop();
    ck_assert_int_eq(p.calls, 0);
    ck_assert_uint_eq(nfired, 1);

    ck_assert_int_eq(event_io_set(&loop, &p.io, EVENT_READ), 0);
    ck_assert_uint_eq(p.io.mask, EVENT_READ);
    ck_assert_int_eq(write(p.fds[1], "x", 1), 1);
    run_loop();
    ck_assert_int_eq(p.calls, 1);
    ck_assert_uint_eq(p.got, EVENT_READ);
    pipe_close(&p);
}
END_TEST

static struct pipe_io *survivor;
static int stop_other_calls;

static void
stop_other_cb(struct event_loop *l, struct event_io *io, unsigned events)
{
    struct pipe_io *p = io->data;
    struct pipe_io *other = p->other;

    stop_other_calls++;
    p->got |= events;
    p->calls++;
    survivor = p;
    event_io_stop(l, io);
    ck_assert_ptr_nonnull(other);
    event_io_stop(l, &other->io);
    /* ASan reports it if the loop still delivers the other's event;
     * without ASan, stop_other_calls counts it. */
    pipe_close(other);
    free(other);
    p->other = NULL;
}

START_TEST(callback_stops_other_pending_io)
{
    struct pipe_io *a = malloc(sizeof(*a));
    struct pipe_io *b = malloc(sizeof(*b));
    struct rec_timer t;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    /* Both ready in one epoll_wait batch; whichever runs first stops and
     * frees the other, whose event must then be dropped. */
    pipe_open(a, stop_other_cb);
    pipe_open(b, stop_other_cb);
    a->other = b;
    b->other = a;
    survivor = NULL;
    stop_other_calls = 0;
    ck_assert_int_eq(write(a->fds[1], "x", 1), 1);
    ck_assert_int_eq(write(b->fds[1], "x", 1), 1);
    ck_assert_int_eq(event_io_set(&loop, &a->io, EVENT_READ), 0);
    ck_assert_int_eq(event_io_set(&loop, &b->io, EVENT_READ), 0);
    nfired = 0;
    stop_after = 1;
    rec_start(&t, 1, 30);
    run_loop();
    ck_assert_uint_eq(nfired, 1);
    ck_assert_int_eq(stop_other_calls, 1);
    ck_assert_ptr_nonnull(survivor);
    ck_assert_uint_eq(survivor->got, EVENT_READ);
    pipe_close(survivor);
    free(survivor);
}
END_TEST

static void
restart_self_cb(struct event_loop *l, struct event_io *io, unsigned events)
{
    struct pipe_io *p = io->data;
    char c;

    p->got |= events;
    ck_assert_int_eq(read(p->fds[0], &c, 1), 1);
    event_io_stop(l, io);
    if (++p->calls < 3) {
        ck_assert_int_eq(event_io_set(l, io, EVENT_READ), 0);
    } else {
        event_loop_stop(l);
    }
}

START_TEST(callback_restarts_own_io)
{
    struct pipe_io p;

    pipe_open(&p, restart_self_cb);
    ck_assert_int_eq(write(p.fds[1], "abc", 3), 3);
    ck_assert_int_eq(event_io_set(&loop, &p.io, EVENT_READ), 0);
    run_loop();
    ck_assert_int_eq(p.calls, 3);
    ck_assert(!p.io.registered);
    pipe_close(&p);
}
END_TEST

START_TEST(io_set_bad_fd_fails)
{
    struct event_io io;

    event_io_init(&io, 1000000, record_and_stop_cb, NULL);
    ck_assert_int_eq(event_io_set(&loop, &io, EVENT_READ), -EBADF);
    ck_assert(!io.registered);
    ck_assert_uint_eq(io.mask, 0);
    event_io_stop(&loop, &io);                  /* idle stop is a no-op */
}
END_TEST

/* --- run / stop -------------------------------------------------------- */

static int before_calls;

static void
before_cb(struct event_loop *l, void *arg)
{
    int *limit = arg;

    if (++before_calls == *limit) {
        event_loop_stop(l);
    }
}

static void
tick_cb(struct event_loop *l, struct event_timer *t)
{
    ck_assert_int_eq(event_timer_start(l, t, 1), 0);
}

START_TEST(run_before_poll_and_stop)
{
    struct event_timer tick;
    int limit = 4;

    event_timer_init(&tick, tick_cb, NULL);
    ck_assert_int_eq(event_timer_start(&loop, &tick, 1), 0);
    before_calls = 0;
    ck_assert_int_eq(event_loop_run(&loop, before_cb, &limit), 0);
    ck_assert_int_eq(before_calls, 4);
    ck_assert(!safety_fired);

    /* A stop asked for before run() returns at once, then is consumed. */
    event_loop_stop(&loop);
    ck_assert_int_eq(event_loop_run(&loop, before_cb, &limit), 0);
    ck_assert_int_eq(before_calls, 4);
    limit = 6;
    ck_assert_int_eq(event_loop_run(&loop, before_cb, &limit), 0);
    ck_assert_int_eq(before_calls, 6);
    event_timer_stop(&loop, &tick);
}
END_TEST

static volatile sig_atomic_t got_alarm;

static void
alarm_handler(int sig)
{
    (void)sig;
    got_alarm = 1;
}

START_TEST(run_survives_eintr)
{
    struct sigaction sa, old;
    struct itimerval itv;
    struct rec_timer t;

    /* No SA_RESTART: the signal interrupts epoll_wait() with EINTR. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = alarm_handler;
    ck_assert_int_eq(sigemptyset(&sa.sa_mask), 0);
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
    memset(&itv, 0, sizeof(itv));
    itv.it_value.tv_usec = 10000;
    got_alarm = 0;
    ck_assert_int_eq(setitimer(ITIMER_REAL, &itv, NULL), 0);
    nfired = 0;
    stop_after = 1;
    rec_start(&t, 1, 100);
    run_loop();
    ck_assert_uint_eq(nfired, 1);
    ck_assert_int_eq(got_alarm, 1);
    ck_assert_int_eq(sigaction(SIGALRM, &old, NULL), 0);
}
END_TEST

static Suite *
event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc;

    tc = tcase_create("timers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, timers_fire_in_order);
    tcase_add_test(tc, timers_many_random_in_order);
    tcase_add_test(tc, timer_stop_and_restart);
    tcase_add_test(tc, timer_callback_stops_other_and_rearms_self);
    suite_add_tcase(s, tc);

    tc = tcase_create("fds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, pipe_readable);
    tcase_add_test(tc, pipe_writable);
    tcase_add_test(tc, pipe_hangup_reported_to_reader);
    tcase_add_test(tc, mask_change_and_no_event_when_not_ready);
    tcase_add_test(tc, callback_stops_other_pending_io);
    tcase_add_test(tc, callback_restarts_own_io);
    tcase_add_test(tc, io_set_bad_fd_fails);
    suite_add_tcase(s, tc);

    tc = tcase_create("run");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, run_before_poll_and_stop);
    tcase_add_test(tc, run_survives_eintr);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(event_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
