/*
 * log: leveled lines on stderr, one write(2) per line.
 *
 * A line reads "LEVEL role[pid]: text", prefixed with an ISO-8601
 * timestamp unless stderr is the journal stream JOURNAL_STREAM names
 * (journald stamps lines itself).
 * The level is tested before anything is formatted, so a debug line in a
 * hot path costs one compare when debug is off.  Never call these while
 * holding the cache lock.
 */
#ifndef RCP_LOG_H
#define RCP_LOG_H

#include <stdarg.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG
};

/* Current threshold; set by log_set_level(), read by the macros. */
extern enum log_level log_level_current;

/* role is "supervisor" or "worker"; index is the worker number (ignored
 * for the supervisor).  Re-called in a forked worker. */
void log_init(const char *role, int index);
void log_set_level(enum log_level level);

/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int         log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The recent-problems ring: the last LOG_RECENT_MAX warn and error lines
 * of every process, for the admin status page.  log_recent_create() maps
 * it MAP_SHARED and anonymous; the supervisor calls it once before
 * forking, so every worker writes into the same ring.  Until then (and in
 * tests that never call it) nothing is recorded.  Writers never block:
 * each claims the next slot with an atomic add; a reader skips a slot
 * being rewritten under it.
 */
#define LOG_RECENT_MAX  8
#define LOG_RECENT_TEXT 240 /* bytes kept of a line, NUL included */

struct log_recent_line {
    char text[LOG_RECENT_TEXT]; /* the whole line, as on stderr, no
                                   newline, cut to fit */
};

/* 0 or -errno (mmap).  A second call is a no-op. */
int    log_recent_create(void);
/* Copies up to max recorded lines, newest first, into out; returns the
 * count. */
size_t log_recent_read(struct log_recent_line *out, size_t max);

/*
 * log_at(level, fmt, ...): the one way a line is logged (Redis' serverLog).
 * The level is compared with the threshold before anything else, so the
 * format arguments are not even evaluated for a line that is filtered
 * out; level is evaluated once.  log_error() ... log_debug() name the
 * level for the common case; pass a variable level where the errno picks
 * it (EAGAIN debug, ECONNABORTED error).
 */
#define log_at(level, ...)                         \
    do {                                           \
        enum log_level log_at_level_ = (level);    \
        if (log_level_current >= log_at_level_) {  \
            log_write(log_at_level_, __VA_ARGS__); \
        }                                          \
    } while (0)
#define log_error(...) log_at(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
