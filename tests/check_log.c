/*
 * check_log: the recent-problems ring behind the status page.  Nothing is
 * kept before log_recent_create(); after it, warn and error lines are
 * kept (info and debug never), newest first, the last LOG_RECENT_MAX of
 * them, cut to LOG_RECENT_TEXT, with their time even when stderr lines
 * go without it (journald); and a line written by a forked child is
 * seen by its parent, as a worker's is by the supervisor.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

static struct log_recent_line lines[LOG_RECENT_MAX + 2];

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
    setenv("JOURNAL_STREAM", "8:1234", 1);  /* as under systemd */
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
