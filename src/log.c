/*
 * log: owns the process's log role and level, and the format of a line.
 *
 * Each line is built in a stack buffer and written with one write(2) to
 * stderr, so lines from several workers sharing one stderr never
 * interleave mid-line (writes under PIPE_BUF are atomic on pipes).  A
 * line too long for the buffer is cut and ends in "...".
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 2048

enum log_level log_level_current = LOG_LEVEL_INFO;

static char log_role[32] = "supervisor";
static int  log_timestamps = 1;

static const char *const log_level_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

void
log_init(const char *role, int index)
{
    if (strcmp(role, "worker") == 0) {
        snprintf(log_role, sizeof(log_role), "worker %d", index);
    } else {
        snprintf(log_role, sizeof(log_role), "%s", role);
    }
    log_timestamps = getenv("JOURNAL_STREAM") == NULL;
}

void
log_set_level(enum log_level level)
{
    log_level_current = level;
}

int
log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(log_level_names) / sizeof(*log_level_names);
         i++) {
        if (strcmp(name, log_level_names[i]) == 0) {
            *out = (enum log_level) i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *
log_level_name(enum log_level level)
{
    return log_level_names[level];
}

void
log_write(enum log_level level, const char *fmt, ...)
{
    char     line[LOG_LINE_MAX];
    size_t   n = 0;
    int      saved_errno = errno;
    va_list  ap;
    int      rc;

    if (log_timestamps) {
        struct timespec ts;
        struct tm       tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t) snprintf(line + n, sizeof(line) - n, ".%03ldZ ",
                               ts.tv_nsec / 1000000);
    }

    rc = snprintf(line + n, sizeof(line) - n, "%s %s[%ld]: ",
                  log_level_names[level], log_role, (long) getpid());
    n += (size_t) rc;

    va_start(ap, fmt);
    rc = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);

    if (rc < 0) {
        rc = 0;
    }
    if ((size_t) rc >= sizeof(line) - n - 1) {
        n = sizeof(line) - 5;
        memcpy(line + n, "...", 3);
        n += 3;
    } else {
        n += (size_t) rc;
    }
    line[n++] = '\n';

    /* A failed or short write of a log line has nowhere to be reported. */
    if (write(STDERR_FILENO, line, n) < 0) {
        errno = saved_errno;
    }
    errno = saved_errno;
}
