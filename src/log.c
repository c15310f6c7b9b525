/*
 * log: owns the process's log role and level, and the format of a line.
 *
 * Each line is built in a stack buffer and written with one write(2) to
 * stderr, so lines from several workers sharing one stderr never
 * interleave mid-line (writes under PIPE_BUF are atomic on pipes).  A
 * line too long for the buffer is cut and ends in "...".
 *
 * Warn and error lines are also copied into the recent-problems ring
 * (log.h) when the supervisor has made it.  The ring is LOG_RECENT_MAX
 * slots in one shared mapping; a writer takes slot (next++ % MAX) with an
 * atomic add, marks it busy (seq 0), copies the line and publishes
 * seq = its ticket + 1.  A reader keeps a slot only when it reads the same
 * non-zero seq before and after copying, so a slot rewritten meanwhile
 * (by another process, or a writer that died half-way) is skipped, never
 * shown torn.  No lock, so a worker dying anywhere cannot block anyone.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 2048

enum log_level log_level_current = LOG_LEVEL_INFO;

struct log_recent_slot_shm {
    uint64_t seq; /* atomic: 0 busy or never used,
                     else the writer's ticket + 1 */
    char     text[LOG_RECENT_TEXT];
};

struct log_recent_shm {
    uint64_t                   next; /* atomic: tickets handed out */
    struct log_recent_slot_shm slots[LOG_RECENT_MAX];
};

/* borrowed: the shared mapping, never unmapped (it lives as long as the
 * process); NULL until log_recent_create(). */
static struct log_recent_shm *log_recent;

static char log_role[32] = "supervisor";
static int  log_timestamps = 1;

static const char *const log_level_names[] = {
    [LOG_LEVEL_ERROR] = "error",
    [LOG_LEVEL_WARN] = "warn",
    [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_DEBUG] = "debug",
};

/* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it gave us as
 * stderr, and a process started with stderr sent elsewhere (a shell
 * script's 2>>file under a unit, a child of such a service) inherits the
 * variable: it holds only while stderr is still that stream, which
 * systemd.exec(5) says to check by comparing the two. */
static bool
log_stderr_is_journal(void)
{
    const char        *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat        st;
    char               end;

    if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2) {
        return false;
    }
    if (fstat(STDERR_FILENO, &st) != 0) {
        return false; /* no stderr at all: nothing to stamp either way */
    }
    return (unsigned long long) st.st_dev == dev
           && (unsigned long long) st.st_ino == ino;
}

void
log_init(const char *role, int index)
{
    if (strcmp(role, "worker") == 0) {
        snprintf(log_role, sizeof(log_role), "worker %d", index);
    } else {
        snprintf(log_role, sizeof(log_role), "%s", role);
    }
    log_timestamps = !log_stderr_is_journal();
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

int
log_recent_create(void)
{
    void *p;

    if (log_recent != NULL) {
        return 0;
    }
    p = mmap(NULL, sizeof(*log_recent), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return -errno;
    }
    log_recent = p; /* zero-filled: every slot unused */
    return 0;
}

/* The ring always keeps the time, even when stderr lines go without it
 * (journald stamps those itself): stamp, then the line. */
static void
log_recent_record(const char *stamp, size_t stamp_len, const char *line,
                  size_t len)
{
    struct log_recent_slot_shm *slot;
    uint64_t                    ticket;
    size_t                      room;

    ticket = __atomic_fetch_add(&log_recent->next, 1, __ATOMIC_RELAXED);
    slot = &log_recent->slots[ticket % LOG_RECENT_MAX];
    __atomic_store_n(&slot->seq, 0, __ATOMIC_RELAXED);
    /* The busy mark is visible before any byte of the new text. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    room = sizeof(slot->text) - 1;
    if (stamp_len > room) {
        stamp_len = room;
    }
    memcpy(slot->text, stamp, stamp_len);
    room -= stamp_len;
    if (len > room) {
        len = room;
    }
    memcpy(slot->text + stamp_len, line, len);
    slot->text[stamp_len + len] = '\0';
    __atomic_store_n(&slot->seq, ticket + 1, __ATOMIC_RELEASE);
}

size_t
log_recent_read(struct log_recent_line *out, size_t max)
{
    uint64_t next;
    size_t   n = 0;

    if (log_recent == NULL) {
        return 0;
    }
    next = __atomic_load_n(&log_recent->next, __ATOMIC_ACQUIRE);
    for (uint64_t i = 0; i < LOG_RECENT_MAX && i < next && n < max; i++) {
        uint64_t                    ticket = next - 1 - i;
        struct log_recent_slot_shm *slot =
            &log_recent->slots[ticket % LOG_RECENT_MAX];
        uint64_t seq;

        seq = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
        if (seq != ticket + 1) {
            continue; /* busy, or already reused by a newer one */
        }
        memcpy(out[n].text, slot->text, sizeof(out[n].text));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&slot->seq, __ATOMIC_RELAXED) != seq) {
            continue; /* rewritten while we copied */
        }
        out[n].text[sizeof(out[n].text) - 1] = '\0';
        n++;
    }
    return n;
}

void
log_write(enum log_level level, const char *fmt, ...)
{
    char    line[LOG_LINE_MAX];
    char    stamp[48];
    size_t  stamp_len = 0;
    size_t  n = 0;
    int     saved_errno = errno;
    va_list ap;
    int     rc;
    int     record = log_recent != NULL && level <= LOG_LEVEL_WARN;

    if (log_timestamps || record) {
        struct timespec ts;
        struct tm       tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        stamp_len = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        stamp_len += (size_t) snprintf(stamp + stamp_len,
                                       sizeof(stamp) - stamp_len, ".%03ldZ ",
                                       ts.tv_nsec / 1000000);
    }
    if (log_timestamps) {
        memcpy(line, stamp, stamp_len);
        n = stamp_len;
    }

    rc = snprintf(line + n, sizeof(line) - n,
                  "%s %s[%ld]: ", log_level_names[level], log_role,
                  (long) getpid());
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
    if (record) {
        size_t skip = log_timestamps ? stamp_len : 0;

        log_recent_record(stamp, stamp_len, line + skip, n - skip);
    }
    line[n++] = '\n';

    /* A failed or short write of a log line has nowhere to be reported. */
    if (write(STDERR_FILENO, line, n) < 0) {
        errno = saved_errno;
    }
    errno = saved_errno;
}
