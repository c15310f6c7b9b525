/*
 * supervisor_internal: the supervisor's state, shared by its files and
 * by nothing else (it includes uv.h, which only supervisor*.c may).
 *
 *   supervisor.c          supervisor_run: open (sockets, pid file,
 *                         segment, mappings, signals), loop, close; stop
 *   supervisor_workers.c  worker processes: fork seam, ready pipe, reap,
 *                         respawn backoff, reload (SIGHUP)
 *   supervisor_admin.c    the admin port: connections, routing to
 *                         admin.c, the /health PING
 *   supervisor_access.c   the access-log pipe from the workers to a file
 *
 * Everything runs on one libuv loop in one thread, so no field needs a
 * lock; callbacks find the supervisor through their handle's data.
 */
#ifndef RCP_SUPERVISOR_INTERNAL_H
#define RCP_SUPERVISOR_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "config.h"

#define SUPERVISOR_RESPAWN_FLOOR_MS 100
#define SUPERVISOR_RESPAWN_CAP_MS   5000
#define SUPERVISOR_CRASH_WINDOW_MS  1000  /* died this young: backoff */
#define SUPERVISOR_STABLE_MS        10000 /* lived this long: reset */
#define SUPERVISOR_RECOVER_POLL_MS  10
#define SUPERVISOR_FLUSH_RETRY_MS   50   /* a flush timed out on the lock */
#define SUPERVISOR_KILL_GRACE_MS    2000 /* past --shutdown-timeout */
/* Descriptors kept open on /dev/null so that a respawn (its ready pipe)
 * never depends on there being free ones at that moment. */
#define SUPERVISOR_RESERVE_FDS 2

struct supervisor_admin_conn;
struct supervisor_health_check;
struct cache;
struct metrics;

enum supervisor_proc_state {
    PROC_FREE = 0, /* slot unused */
    PROC_STARTING, /* forked, not yet serving */
    PROC_RUNNING,
    PROC_RETIRING /* sent SIGTERM: draining, not replaced */
};

struct supervisor_proc {
    enum supervisor_proc_state     state;
    pid_t                          pid;
    uint32_t                       index; /* 1.. as shown in logs and ps */
    uint32_t                       generation; /* supervisor's at fork time */
    uint64_t                       started_ms;
    struct supervisor_ready_watch *ready;    /* owned until closed, or NULL */
    struct supervisor_proc        *replaces; /* borrowed: the old worker this
                                                one succeeds in a reload */
    struct supervisor             *sup;      /* borrowed */
};

/* The read end of a new worker's ready pipe, on the loop.  Heap-allocated
 * so that closing it (which libuv finishes later) never races with the
 * proc slot being reused by the next fork. */
struct supervisor_ready_watch {
    uv_poll_t               poll;
    int                     fd;   /* owned */
    struct supervisor_proc *proc; /* borrowed; NULL once detached */
};

struct supervisor {
    uv_loop_t              *loop; /* borrowed: uv_default_loop() */
    struct config           cfg;  /* the running configuration */
    int                     argc;
    char *const            *argv;        /* borrowed: main's */
    char *const            *envp;        /* borrowed: main's */
    int                     http_fd;     /* owned */
    int                     resp_fd;     /* owned, or -1 */
    struct cache           *cache;       /* owned */
    struct http_auth       *http_auth;   /* owned: --http-auth-file of
                                            the running configuration,
                                            parsed; NULL when off */
    struct metrics         *metrics;     /* owned */
    int64_t                *clients;     /* owned: shared mapping */
    int                     admin_fd;    /* owned until admin_tcp has it */
    int                     access_wr;   /* owned: workers' end of the
                                            access-log pipe, or -1 */
    uv_pipe_t               access_pipe; /* our end, read */
    bool                    access_open;
    int                     access_out; /* owned: the log file, 2 for
                                           stderr, or -1 */
    char                    access_buf[65536];
    uv_tcp_t                admin_tcp; /* the admin listener */
    bool                    admin_open;
    struct supervisor_proc *procs; /* owned: nslots entries */
    uint32_t                nslots;
    uint32_t                wanted;   /* workers that should run */
    uint64_t                restarts; /* rcp_worker_restarts_total */
    uint64_t                respawn_delay_ms;
    uv_timer_t              respawn_timer;
    uv_timer_t              recover_timer;
    uv_timer_t              flush_timer; /* retries a reaped tracking
                                            worker's flush */
    bool                    flush_held;  /* until it got the lock:
                                            tracking held DOWN */
    uv_timer_t              kill_timer;
    uv_signal_t             sig_term;
    uv_signal_t             sig_int;
    uv_signal_t             sig_hup;
    uv_signal_t             sig_quit; /* as SIGTERM (nginx's graceful stop) */
    uv_signal_t             sig_usr1; /* reopen the access log (logrotate) */
    uv_signal_t             sig_chld;
    bool                    stopping;
    bool                    reloading;
    bool                    pid_file_written;
    uint32_t                generation;     /* bumped by each reload */
    uint64_t                young_death_ms; /* last death within 1 s of
                                               starting, for the backoff */
    /* owned, -1 while given up */
    int                     reserve_fds[SUPERVISOR_RESERVE_FDS];
    int                     exit_status;
    sigset_t                saved_mask; /* the caller's, restored at the
                                           end whatever happens */
    bool                    mask_saved;
    double                  start_time; /* seconds since the epoch */
    char                   *title;      /* borrowed: argv[0]'s storage */
    size_t                  title_len;

    /* The admin port's connections and /health checks
     * (supervisor_admin.c). */
    struct supervisor_admin_conn   *admin_conns;   /* owned: open conns */
    uint32_t                        admin_count;   /* in admin_conns */
    uv_timer_t                      admin_timer;   /* closes late conns */
    struct supervisor_health_check *health_checks; /* owned: PINGs in flight */
};

static inline uint64_t
supervisor_now_ms(const struct supervisor *s)
{
    return uv_now(s->loop);
}

/* ---- supervisor.c ---- */

/* uv_timer_start, a failure logged with what the timer is for (`what`).
 * 0 or a libuv error. */
int supervisor_timer_start(uv_timer_t *t, uv_timer_cb cb, uint64_t ms,
                           uint64_t repeat_ms, const char *what);

/* ---- supervisor_workers.c ---- */

/* Finds argv's storage, to rename workers in place (ps). */
void     supervisor_title_init(struct supervisor *s);
/* Processes in state a or b. */
uint32_t supervisor_count(const struct supervisor   *s,
                          enum supervisor_proc_state a,
                          enum supervisor_proc_state b);
/* Worker processes that exist (starting, serving or draining). */
uint32_t supervisor_alive(const struct supervisor *s);
void     supervisor_reserve_take(struct supervisor *s);
void     supervisor_reserve_release(struct supervisor *s);
/* Starts workers until `wanted` are starting or running. */
void     supervisor_spawn_missing(struct supervisor *s);
/* Marks every worker retiring, SIGTERMs it, and arms the kill timer. */
void     supervisor_workers_stop(struct supervisor *s);
void     supervisor_sigchld_cb(uv_signal_t *h, int signum);
void     supervisor_sighup_cb(uv_signal_t *h, int signum);

/* ---- supervisor_admin.c ---- */

/* Takes s->admin_fd and listens on it.  0 or a libuv error (logged). */
int  supervisor_admin_start(struct supervisor *s);
/* Closes the listener, every admin connection and every PING in flight. */
void supervisor_admin_stop(struct supervisor *s);

/* ---- supervisor_access.c ---- */

/* Opens --access-log and the workers' pipe (nothing when it is unset).
 * 0 or -errno / a libuv error (logged). */
int  supervisor_access_start(struct supervisor *s);
/* Opens (or, on SIGHUP, reopens) the destination; on failure the one
 * already open is kept.  0 or -errno (logged). */
int  supervisor_access_open_file(struct supervisor *s);
/* After the loop: closes our copy of the write end and takes the lines
 * still in the pipe. */
void supervisor_access_drain(struct supervisor *s);
/* Closes what supervisor_access_start opened but the loop does not. */
void supervisor_access_close(struct supervisor *s);

#endif
