/*
 * check_log: the recent-problems ring behind the status page.  Nothing is
 * kept before log_recent_create(); after it, warn and error lines are
 * kept (info and debug never), newest first, the last LOG_RECENT_MAX of
 * them, cut to LOG_RECENT_TEXT, with their time even when stderr lines
 * go without it (journald); and a line written by a forked child is
 * seen by its parent, as a worker's is by the supervisor.
 *
 * And the macro: log_at(level, ...) (and log_error() ... log_debug() on
 * top of it) writes a line exactly when the level passes the threshold,
 * evaluates its arguments only then, and writes "LEVEL role[pid]: text",
 * timestamped unless JOURNAL_STREAM names stderr's device and inode (a
 * JOURNAL_STREAM inherited by a process whose stderr went elsewhere
 * does not count).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static struct log_recent_line lines[LOG_RECENT_MAX + 2];

/* Sets JOURNAL_STREAM as systemd does: the device and inode of the
 * stream it made stderr. */
static void
journal_is_stderr(void)
{
    struct stat st;
    char        v[64];

    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long) st.st_dev,
             (unsigned long long) st.st_ino);
    ck_assert_int_eq(setenv("JOURNAL_STREAM", v, 1), 0);
}

/* Log lines go to stderr; keep the test output readable.  Each test runs
 * in its own forked process (CK_FORK), so the ring starts empty. */
static void
quiet(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    log_init("supervisor", 0);
    log_set_level(LOG_LEVEL_DEBUG);
}

START_TEST(nothing_kept_before_create)
{
    quiet();
    log_error("before the ring exists");
    ck_assert_uint_eq(log_recent_read(lines, LOG_RECENT_MAX), 0);
}
END_TEST

START_TEST(warn_and_error_kept_info_not)
{
    quiet();
    ck_assert_int_eq(log_recent_create(), 0);
    ck_assert_int_eq(log_recent_create(), 0);       /* idempotent */
    log_info("an info line");
    log_debug("a debug line");
    log_warn("a warning %d", 1);
    log_error("an error %d", 2);
    ck_assert_uint_eq(log_recent_read(lines, LOG_RECENT_MAX), 2);
    ck_assert_msg(strstr(lines[0].text, "error supervisor[") != NULL
                  && strstr(lines[0].text, "]: an error 2") != NULL,
                  "newest first: %s", lines[0].text);
    ck_assert_ptr_nonnull(strstr(lines[1].text, "warn supervisor["));
    ck_assert_ptr_null(strchr(lines[0].text, '\n'));
}
END_TEST

START_TEST(last_max_newest_first)
{
    char want[32];

    quiet();
    ck_assert_int_eq(log_recent_create(), 0);
    for (int i = 0; i < LOG_RECENT_MAX + 5; i++) {
        log_warn("line %d.", i);
    }
    ck_assert_uint_eq(log_recent_read(lines, LOG_RECENT_MAX + 2),
                      LOG_RECENT_MAX);
    for (int i = 0; i < LOG_RECENT_MAX; i++) {
        snprintf(want, sizeof(want), "line %d.", LOG_RECENT_MAX + 4 - i);
        ck_assert_msg(strstr(lines[i].text, want) != NULL, "%d: %s", i,
                      lines[i].text);
    }
    ck_assert_uint_eq(log_recent_read(lines, 3), 3);
}
END_TEST

START_TEST(time_kept_without_stderr_timestamps)
{
    quiet();
    journal_is_stderr(); /* as under systemd */
    log_init("supervisor", 0);
    ck_assert_int_eq(log_recent_create(), 0);
    log_warn("under journald");
    ck_assert_uint_eq(log_recent_read(lines, 1), 1);
    /* 2026-12-01T15:11:59.077Z warn supervisor[...]: under journald */
    ck_assert_msg(strlen(lines[0].text) > 25 && lines[0].text[4] == '-'
                  && lines[0].text[10] == 'T' && lines[0].text[23] == 'Z'
                  && strncmp(lines[0].text + 25, "warn supervisor[", 16) == 0,
                  "%s", lines[0].text);
}
END_TEST

START_TEST(long_line_is_cut)
{
    char long_text[LOG_RECENT_TEXT * 2];

    quiet();
    ck_assert_int_eq(log_recent_create(), 0);
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    log_error("%s", long_text);
    ck_assert_uint_eq(log_recent_read(lines, 1), 1);
    ck_assert_uint_eq(strlen(lines[0].text), LOG_RECENT_TEXT - 1);
}
END_TEST

START_TEST(child_lines_reach_the_parent)
{
    pid_t pid;
    int   status;

    quiet();
    ck_assert_int_eq(log_recent_create(), 0);
    log_warn("from the parent");
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        log_init("worker", 3);
        log_error("from worker three");
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_uint_eq(log_recent_read(lines, LOG_RECENT_MAX), 2);
    ck_assert_msg(strstr(lines[0].text, "error worker 3[") != NULL
                  && strstr(lines[0].text, "from worker three") != NULL,
                  "%s", lines[0].text);
    ck_assert_ptr_nonnull(strstr(lines[1].text, "from the parent"));
}
END_TEST

/* --- the macro --------------------------------------------------------- */

/* Sends stderr into a pipe and returns its read end (non-blocking), with
 * JOURNAL_STREAM naming that pipe so that lines have no timestamp. */
static int
capture(void)
{
    int fds[2];

    ck_assert_int_eq(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    close(fds[1]);
    journal_is_stderr();
    return fds[0];
}

/* What was written so far, NUL-terminated ("" for nothing). */
static const char *
captured(int fd)
{
    static char buf[4096];
    ssize_t     n = read(fd, buf, sizeof(buf) - 1);

    ck_assert_msg(n >= 0 || errno == EAGAIN, "read: %s", strerror(errno));
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static int evaluated;

static int
count_evaluation(void)
{
    return ++evaluated;
}

static const struct threshold_case {
    enum log_level threshold;
    enum log_level level;
    bool           written;
    const char    *why;
} threshold_cases[] = {
    { LOG_LEVEL_ERROR, LOG_LEVEL_ERROR, true, "error passes at error" },
    { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, false, "warn filtered at error" },
    { LOG_LEVEL_ERROR, LOG_LEVEL_DEBUG, false, "debug filtered at error" },
    { LOG_LEVEL_WARN, LOG_LEVEL_WARN, true, "the threshold itself passes" },
    { LOG_LEVEL_WARN, LOG_LEVEL_INFO, false, "one below the threshold" },
    { LOG_LEVEL_INFO, LOG_LEVEL_ERROR, true, "error passes at info" },
    { LOG_LEVEL_INFO, LOG_LEVEL_INFO, true, "info passes at info" },
    { LOG_LEVEL_INFO, LOG_LEVEL_DEBUG, false, "debug filtered at info" },
    { LOG_LEVEL_DEBUG, LOG_LEVEL_DEBUG, true, "debug passes at debug" },
    { LOG_LEVEL_DEBUG, LOG_LEVEL_ERROR, true, "error passes at debug" },
};

/* log_at with a level known only at run time, and the named macro of the
 * same level: both write or neither, and a filtered line's arguments are
 * never evaluated. */
START_TEST(threshold)
{
    const struct threshold_case *c = &threshold_cases[_i];
    char                         want[64];
    const char                  *got;
    int                          fd = capture();
    enum log_level               level = c->level;

    log_init("supervisor", 0);
    log_set_level(c->threshold);
    evaluated = 0;
    log_at(level, "at run time %d", count_evaluation());
    got = captured(fd);
    ck_assert_msg(c->written == (got[0] != '\0'), "%s: '%s'", c->why, got);
    ck_assert_msg(evaluated == (c->written ? 1 : 0), "%s: evaluated %d",
                  c->why, evaluated);
    if (c->written) {
        snprintf(want, sizeof(want), "%s supervisor[%ld]: at run time 1\n",
                 log_level_name(c->level), (long) getpid());
        ck_assert_str_eq(got, want);
    }

    switch (c->level) {
    case LOG_LEVEL_ERROR:
        log_error("named %d", count_evaluation());
        break;
    case LOG_LEVEL_WARN:
        log_warn("named %d", count_evaluation());
        break;
    case LOG_LEVEL_INFO:
        log_info("named %d", count_evaluation());
        break;
    case LOG_LEVEL_DEBUG:
        log_debug("named %d", count_evaluation());
        break;
    }
    got = captured(fd);
    ck_assert_msg(c->written == (got[0] != '\0'), "%s (named): '%s'", c->why,
                  got);
    ck_assert_msg(evaluated == (c->written ? 2 : 0),
                  "%s (named): evaluated %d", c->why, evaluated);
    close(fd);
}
END_TEST

/* The level expression is evaluated once, whatever the outcome. */
START_TEST(level_evaluated_once)
{
    int fd = capture();

    log_init("supervisor", 0);
    log_set_level(LOG_LEVEL_INFO);
    evaluated = 0;
    log_at(count_evaluation() > 0 ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR, "x");
    ck_assert_int_eq(evaluated, 1);
    ck_assert_str_eq(captured(fd), "");
    log_at(count_evaluation() > 0 ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR, "y");
    ck_assert_int_eq(evaluated, 2);
    ck_assert_msg(strncmp(captured(fd), "warn supervisor[", 16) == 0,
                  "one warn line");
    close(fd);
}
END_TEST

/* The line as tests and operators grep it: "LEVEL role[pid]: text", with
 * an ISO-8601 UTC timestamp first unless JOURNAL_STREAM is set. */
START_TEST(line_format)
{
    char        want[96];
    const char *got;
    int         fd = capture();

    log_init("worker", 3);
    log_set_level(LOG_LEVEL_INFO);
    log_warn("bind(%s) failed: %s", "0.0.0.0:8080", "Address in use");
    snprintf(want, sizeof(want),
             "warn worker 3[%ld]: bind(0.0.0.0:8080) failed: Address in use\n",
             (long) getpid());
    ck_assert_str_eq(captured(fd), want);

    unsetenv("JOURNAL_STREAM");
    log_init("supervisor", 0);
    log_info("started");
    got = captured(fd);
    /* 2026-12-01T15:11:59.077Z info supervisor[123]: started */
    snprintf(want, sizeof(want), "info supervisor[%ld]: started\n",
             (long) getpid());
    ck_assert_msg(strlen(got) == 25 + strlen(want) && got[4] == '-'
                  && got[7] == '-' && got[10] == 'T' && got[13] == ':'
                  && got[16] == ':' && got[19] == '.' && got[23] == 'Z'
                  && got[24] == ' ' && strcmp(got + 25, want) == 0,
                  "'%s'", got);
    close(fd);
}
END_TEST

/* A JOURNAL_STREAM inherited from a unit by a process whose stderr was
 * sent elsewhere (2>>file) names another stream: the lines keep their
 * timestamps, or the file would have none. */
static const struct journal_case {
    const char *value;     /* NULL: stderr's own DEV:INODE */
    unsigned    ino_delta; /* with NULL: added to the inode */
    bool        stamped;
    const char *why;
} journal_cases[] = {
    { NULL, 0, false, "stderr is the journal stream" },
    { NULL, 1, true, "stderr's device, another inode" },
    { "8:1234", 0, true, "another stream's device and inode" },
    { "", 0, true, "empty" },
    { "junk", 0, true, "not DEV:INODE" },
};

START_TEST(journal_stream_must_name_stderr)
{
    const struct journal_case *c = &journal_cases[_i];
    struct stat                st;
    char                       v[64];
    const char                *got;
    int                        fd = capture();

    if (c->value == NULL) {
        ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
        snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long) st.st_dev,
                 (unsigned long long) st.st_ino + c->ino_delta);
        setenv("JOURNAL_STREAM", v, 1);
    } else {
        setenv("JOURNAL_STREAM", c->value, 1);
    }
    log_init("supervisor", 0);
    log_set_level(LOG_LEVEL_INFO);
    log_info("x");
    got = captured(fd);
    ck_assert_msg(c->stamped == (strncmp(got, "info ", 5) != 0), "%s: '%s'",
                  c->why, got);
    close(fd);
}
END_TEST

static Suite *
log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("recent");

    tcase_add_test(tc, nothing_kept_before_create);
    tcase_add_test(tc, warn_and_error_kept_info_not);
    tcase_add_test(tc, last_max_newest_first);
    tcase_add_test(tc, time_kept_without_stderr_timestamps);
    tcase_add_test(tc, long_line_is_cut);
    tcase_add_test(tc, child_lines_reach_the_parent);
    suite_add_tcase(s, tc);

    tc = tcase_create("macro");
    tcase_add_loop_test(tc, threshold, 0,
                        (int) (sizeof(threshold_cases)
                               / sizeof(threshold_cases[0])));
    tcase_add_test(tc, level_evaluated_once);
    tcase_add_test(tc, line_format);
    tcase_add_loop_test(
        tc, journal_stream_must_name_stderr, 0,
        (int) (sizeof(journal_cases) / sizeof(journal_cases[0])));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
