/*
 * supervisor: the parent process, and the only code that uses libuv.
 *
 * Owns the listening sockets, the cache segment, the metrics slots and the
 * shared client counter (all made before the first fork and inherited by
 * every worker), the table of worker processes, and the admin port.
 *
 *   start: sockets -> segment -> fork N workers -> uv loop
 *   SIGCHLD: reap -> cache_reap_slot (poisoned? recover) -> respawn
 *            (backoff when workers die within 1 s of starting)
 *   SIGHUP:  re-read config -> for each worker: fork a new one, wait until
 *            it serves, then SIGTERM the old one (it finishes what it has)
 *   SIGTERM/SIGINT: SIGTERM every worker, wait for all, exit 0
 *
 * A worker holds a slot (cache lock record and metrics counters) for its
 * life; slots are twice the worker count so a reload can run old and new
 * side by side.  A slot's counters outlive its worker, so totals never go
 * back.  The fork seam is worker_fork() here and worker_run() there.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>
#include <hiredis/adapters/libuv.h>

#include "admin.h"
#include "http_auth.h"
#include "http_parser.h"
#include "cache.h"
#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "worker.h"

#define SUPERVISOR_RESPAWN_FLOOR_MS  100
#define SUPERVISOR_RESPAWN_CAP_MS    5000
#define SUPERVISOR_CRASH_WINDOW_MS   1000   /* died this young: backoff */
#define SUPERVISOR_STABLE_MS         10000  /* lived this long: reset */
#define SUPERVISOR_RECOVER_POLL_MS   10
#define SUPERVISOR_KILL_GRACE_MS     2000   /* past --shutdown-timeout */
#define ADMIN_IN_MAX  (HTTP_PARSE_HEAD_MAX + HTTP_PARSE_BODY_MAX)
/* Admin connections open at once: operators and a scraper need a few;
 * past this the longest-idle one is closed for the newcomer, so idle
 * connections can neither lock operators out nor use up the
 * descriptors the supervisor needs. */
#define ADMIN_CONN_MAX           64
#define ADMIN_SWEEP_MS           250
/* Descriptors kept open on /dev/null so that a respawn (its ready pipe)
 * never depends on there being free ones at that moment. */
#define SUPERVISOR_RESERVE_FDS   2

struct admin_conn;
struct health_check;

enum proc_state {
    PROC_FREE = 0,      /* slot unused */
    PROC_STARTING,      /* forked, not yet serving */
    PROC_RUNNING,
    PROC_RETIRING       /* sent SIGTERM: draining, not replaced */
};

struct proc {
    enum proc_state state;
    pid_t           pid;
    uint32_t        index;              /* 1.. as shown in logs and ps */
    uint32_t        generation;         /* supervisor's at fork time */
    uint64_t        started_ms;
    struct ready_watch *ready;          /* owned until closed, or NULL */
    struct proc    *replaces;           /* borrowed: the old worker this
                                           one succeeds in a reload */
    struct supervisor *sup;             /* borrowed */
};

/* The read end of a new worker's ready pipe, on the loop.  Heap-allocated
 * so that closing it (which libuv finishes later) never races with the
 * proc slot being reused by the next fork. */
struct ready_watch {
    uv_poll_t       poll;
    int             fd;                 /* owned */
    struct proc    *proc;               /* borrowed; NULL once detached */
};

struct supervisor {
    uv_loop_t            *loop;         /* borrowed: uv_default_loop() */
    struct config         cfg;          /* the running configuration */
    int                   argc;
    char *const          *argv;         /* borrowed: main's */
    char *const          *envp;         /* borrowed: main's */
    int                   http_fd;      /* owned */
    int                   resp_fd;      /* owned, or -1 */
    struct cache         *cache;        /* owned */
    struct metrics       *metrics;      /* owned */
    int64_t              *clients;      /* owned: shared mapping */
    int                   admin_fd;     /* owned until admin_tcp has it */
    int                   access_wr;    /* owned: workers' end of the
                                           access-log pipe, or -1 */
    uv_pipe_t             access_pipe;  /* our end, read */
    bool                  access_open;
    int                   access_out;   /* owned: the log file, 2 for
                                           stderr, or -1 */
    char                  access_buf[65536];
    uv_tcp_t              admin_tcp;    /* the admin listener */
    bool                  admin_open;
    struct proc          *procs;        /* owned: nslots entries */
    uint32_t              nslots;
    uint32_t              wanted;       /* workers that should run */
    uint64_t              restarts;     /* rcp_worker_restarts_total */
    uint64_t              respawn_delay_ms;
    uv_timer_t            respawn_timer;
    uv_timer_t            recover_timer;
    uv_timer_t            kill_timer;
    uv_signal_t           sig_term;
    uv_signal_t           sig_int;
    uv_signal_t           sig_hup;
    uv_signal_t           sig_chld;
    bool                  stopping;
    bool                  reloading;
    bool                  pid_file_written;
    uint32_t              generation;   /* bumped by each reload */
    uint64_t              young_death_ms; /* last death within 1 s of
                                           starting, for the backoff */
    struct admin_conn    *admin_conns;  /* owned list: open admin conns */
    uint32_t              admin_count;  /* in admin_conns */
    uv_timer_t            admin_timer;  /* closes conns past deadline */
    int                   reserve_fds[SUPERVISOR_RESERVE_FDS]; /* owned,
                                           -1 while given up */
    struct health_check  *health_checks; /* owned list: PINGs in flight */
    int                   exit_status;
    double                start_time;   /* seconds since the epoch */
    char                 *title;        /* borrowed: argv[0]'s storage */
    size_t                title_len;
};

static void supervisor_spawn_missing(struct supervisor *s);
static void supervisor_admin_shutdown(struct supervisor *s);
static void supervisor_reload_step(struct supervisor *s);

static uint64_t
supervisor_now_ms(const struct supervisor *s)
{
    return uv_now(s->loop);
}

/* ---- listening sockets ------------------------------------------------ */

/* Opens a listening TCP socket on l.  Returns the fd, or -errno with the
 * failing call named in the log. */
static int
supervisor_listen(const struct config_listen *l, int backlog)
{
    struct addrinfo  hints;
    struct addrinfo *res = NULL;
    char             port[8];
    char             name[CONFIG_HOST_MAX + 16];
    const char      *host = l->host;
    int              rc, fd = -1, one = 1;

    config_format_listen(l, name, sizeof(name));
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        host = NULL;
    }
    snprintf(port, sizeof(port), "%u", (unsigned) l->port);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        log_error("getaddrinfo(%s) failed: %s", name, gai_strerror(rc));
        return -EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        rc = -errno;
        log_error("socket(%s) failed: %s", name, strerror(errno));
        goto done;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        rc = -errno;
        log_error("setsockopt(%s, SO_REUSEADDR) failed: %s", name,
                  strerror(errno));
        goto done;
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        rc = -errno;
        log_error("bind(%s) failed: %s", name, strerror(errno));
        goto done;
    }
    if (listen(fd, backlog) != 0) {
        rc = -errno;
        log_error("listen(%s) failed: %s", name, strerror(errno));
        goto done;
    }
    rc = fd;
    fd = -1;
done:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/* ---- process title ---------------------------------------------------- */

/* Finds the contiguous argv storage that `ps` shows, to rename workers
 * in place (as nginx's ngx_setproctitle does). */
static void
supervisor_title_init(struct supervisor *s)
{
    char *end;

    if (s->argc < 1 || s->argv[0] == NULL) {
        return;
    }
    end = s->argv[0] + strlen(s->argv[0]);
    for (int i = 1; i < s->argc; i++) {
        if (s->argv[i] != end + 1) {
            break;
        }
        end = s->argv[i] + strlen(s->argv[i]);
    }
    s->title = s->argv[0];
    s->title_len = (size_t) (end - s->argv[0]);
}

static void
supervisor_set_title(struct supervisor *s, const char *title)
{
    char   comm[16];
    size_t i;

    /* The kernel's comm holds 15 bytes: "-cache-proxy: worker 2" would
     * not fit, so it gets the part after "redis". */
    for (i = 0; i < sizeof(comm) - 1 && title[5 + i] != '\0'; i++) {
        comm[i] = title[5 + i];
    }
    comm[i] = '\0';
    if (prctl(PR_SET_NAME, comm, 0, 0, 0) != 0) {
        log_debug("prctl(PR_SET_NAME) failed: %s", strerror(errno));
    }
    if (s->title != NULL && s->title_len > 0) {
        size_t n = strlen(title);

        if (n > s->title_len) {
            n = s->title_len;
        }
        memset(s->title, 0, s->title_len + 1);
        memcpy(s->title, title, n);
    }
}

/* ---- workers ---------------------------------------------------------- */

static struct proc *
supervisor_free_slot(struct supervisor *s)
{
    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->procs[i].state == PROC_FREE) {
            return &s->procs[i];
        }
    }
    return NULL;
}

static uint32_t
supervisor_count(const struct supervisor *s, enum proc_state a,
                 enum proc_state b)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->procs[i].state == a || s->procs[i].state == b) {
            n++;
        }
    }
    return n;
}

/* The cache's lock-record slot of a worker: slot 0 is the supervisor's
 * (admin flush and delete), workers use 1.. */
static uint32_t
supervisor_cache_slot(const struct supervisor *s, const struct proc *p)
{
    return (uint32_t) (p - s->procs) + 1;
}

/* Worker processes that exist (starting, serving or draining). */
static uint32_t
supervisor_alive(const struct supervisor *s)
{
    return s->nslots - supervisor_count(s, PROC_FREE, PROC_FREE);
}

static int
supervisor_cmp_int(const void *a, const void *b)
{
    return *(const int *) a - *(const int *) b;
}

static void
supervisor_close_except(int *keep, size_t n)
{
    unsigned from = 3;

    qsort(keep, n, sizeof(*keep), supervisor_cmp_int);
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < (int) from) {
            continue;                   /* -1 (not used), or a duplicate */
        }
        if ((unsigned) keep[i] > from
            && close_range(from, (unsigned) keep[i] - 1, 0) != 0) {
            log_warn("close_range(%u, %d) failed: %s", from, keep[i] - 1,
                     strerror(errno));
        }
        from = (unsigned) keep[i] + 1;
    }
    if (close_range(from, ~0u, 0) != 0) {
        log_warn("close_range(%u, ~0) failed: %s", from, strerror(errno));
    }
}

/* The child side of the fork seam: own nothing of the parent's but the
 * sockets and mappings it needs, then serve. */
static void
supervisor_child(struct supervisor *s, struct proc *p, int ready_wr,
                 pid_t parent)
{
    struct worker_params params;
    char                 title[64];
    sigset_t             none;
    struct sigaction     dfl;
    int                  keep[4] = { s->http_fd, s->resp_fd, ready_wr,
                                     s->access_wr };
    int                  status;

    /* libuv installed handlers in the parent; none of them may run here. */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            sigaction(sig, &dfl, NULL);
        }
    }
    /* Unblock everything but what the worker reads from its signalfd,
     * so a SIGTERM sent before that is set up waits instead of killing
     * it. */
    sigemptyset(&none);
    sigaddset(&none, SIGTERM);
    sigaddset(&none, SIGINT);
    sigaddset(&none, SIGHUP);
    sigaddset(&none, SIGUSR2);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0) {
        log_error("prctl(PR_SET_PDEATHSIG) failed: %s", strerror(errno));
        _exit(WORKER_EXIT_FATAL);
    }
    if (getppid() != parent) {
        _exit(WORKER_EXIT_OK);          /* the parent is already gone */
    }

    /* Close every fd of the parent's (libuv's loop, the admin socket)
     * except the four this worker owns: close_range() over the gaps
     * between them, in ascending order. */
    supervisor_close_except(keep, 4);

    srandom((unsigned) getpid() ^ (unsigned) time(NULL));
    log_init("worker", (int) p->index);
    snprintf(title, sizeof(title), "redis-cache-proxy: worker %u", p->index);
    supervisor_set_title(s, title);
    cache_attach(s->cache, supervisor_cache_slot(s, p));

    params.cfg = &s->cfg;
    params.index = p->index;
    params.slot = (uint32_t) (p - s->procs);
    params.http_fd = s->http_fd;
    params.resp_fd = s->resp_fd;
    params.ready_fd = ready_wr;
    params.access_fd = s->access_wr;
    params.cache = s->cache;
    params.metrics = metrics_slot(s->metrics, params.slot);
    params.clients = s->clients;
    params.metrics_all = s->metrics;
    params.supervisor_pid = (long) parent;
    params.start_time = s->start_time;
    status = worker_run(&params);
    _exit(status);
}

static void
supervisor_ready_closed(uv_handle_t *h)
{
    struct ready_watch *rw = h->data;

    close(rw->fd);
    free(rw);
}

static void
supervisor_ready_detach(struct proc *p)
{
    struct ready_watch *rw = p->ready;

    if (rw == NULL) {
        return;
    }
    p->ready = NULL;
    rw->proc = NULL;
    uv_poll_stop(&rw->poll);
    uv_close((uv_handle_t *) &rw->poll, supervisor_ready_closed);
}

/* A new worker serves once it has written its byte; EOF without it means
 * it died first, which the reaper handles. */
static void
supervisor_ready_cb(uv_poll_t *handle, int status, int events)
{
    struct ready_watch *rw = handle->data;
    struct proc        *p = rw->proc;
    struct supervisor  *s;
    char                byte;
    ssize_t             n;

    if (p == NULL) {
        return;
    }
    s = p->sup;
    n = read(rw->fd, &byte, 1);
    if (n < 0 && errno == EAGAIN) {
        return;
    }
    supervisor_ready_detach(p);
    if (n != 1 || p->state != PROC_STARTING) {
        return;
    }
    p->state = PROC_RUNNING;
    log_debug("worker %u (pid %ld) is serving", p->index, (long) p->pid);
    if (p->replaces != NULL) {
        struct proc *old = p->replaces;

        /* The successor serves: only now does the old one stop taking
         * connections, so some worker always accepts. */
        p->replaces = NULL;
        if (old->state == PROC_RUNNING) {
            old->state = PROC_RETIRING;
            if (kill(old->pid, SIGTERM) != 0 && errno != ESRCH) {
                log_warn("kill(%ld, SIGTERM) failed: %s", (long) old->pid,
                         strerror(errno));
            }
        }
    }
    if (s->reloading) {
        supervisor_reload_step(s);
    }
}

/* Opens what is missing of the descriptor reserve; a failure (no
 * descriptor free now) is retried at the next fork. */
static void
supervisor_reserve_take(struct supervisor *s)
{
    for (int i = 0; i < SUPERVISOR_RESERVE_FDS; i++) {
        if (s->reserve_fds[i] < 0) {
            s->reserve_fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
    }
}

static void
supervisor_reserve_release(struct supervisor *s)
{
    for (int i = 0; i < SUPERVISOR_RESERVE_FDS; i++) {
        if (s->reserve_fds[i] >= 0) {
            close(s->reserve_fds[i]);
            s->reserve_fds[i] = -1;
        }
    }
}

/* pipe2(), falling back on the reserve when descriptors have run out,
 * so that replacing a worker never fails for want of them. */
static int
supervisor_pipe(struct supervisor *s, int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) == 0) {
        return 0;
    }
    if (errno == EMFILE || errno == ENFILE) {
        log_warn("pipe2() failed: %s; using the reserved descriptors",
                 strerror(errno));
        supervisor_reserve_release(s);
        if (pipe2(fds, O_CLOEXEC) == 0) {
            return 0;
        }
    }
    return -errno;
}

/* The parent side of the fork seam.  0 or -errno. */
static int
supervisor_fork(struct supervisor *s, struct proc *p)
{
    sigset_t all, old;
    int      pipefd[2];
    pid_t    parent = getpid();
    pid_t    pid;
    int      rc;

    rc = supervisor_pipe(s, pipefd);
    if (rc != 0) {
        log_error("pipe2() failed: %s", strerror(-rc));
        supervisor_reserve_take(s);
        return rc;
    }
    p->index = (uint32_t) (p - s->procs) + 1;
    p->generation = s->generation;
    p->sup = s;

    /* No signal handler of ours may run in the child before it has reset
     * them, so block everything around fork(). */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        supervisor_child(s, p, pipefd[1], parent);
    }
    rc = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);
    supervisor_reserve_take(s);
    if (pid < 0) {
        close(pipefd[0]);
        log_error("fork() failed: %s", strerror(rc));
        return -rc;
    }

    p->pid = pid;
    p->state = PROC_STARTING;
    p->started_ms = supervisor_now_ms(s);
    p->replaces = NULL;
    p->ready = malloc(sizeof(*p->ready));
    rc = p->ready == NULL ? UV_ENOMEM : 0;
    if (rc == 0) {
        p->ready->fd = pipefd[0];
        p->ready->proc = p;
        p->ready->poll.data = p->ready;
        rc = uv_poll_init(s->loop, &p->ready->poll, pipefd[0]);
        if (rc != 0) {
            free(p->ready);
            p->ready = NULL;
        }
    }
    if (rc == 0) {
        rc = uv_poll_start(&p->ready->poll, UV_READABLE | UV_DISCONNECT,
                           supervisor_ready_cb);
        if (rc != 0) {
            supervisor_ready_detach(p);
        }
    } else {
        close(pipefd[0]);
    }
    if (rc != 0) {
        /* Without the pipe we cannot tell when it serves: trust it. */
        log_warn("watching worker %u's ready pipe failed: %s", p->index,
                 uv_strerror(rc));
        p->state = PROC_RUNNING;
    }
    log_info("started worker %u (pid %ld)", p->index, (long) pid);
    return 0;
}

static void
supervisor_respawn_cb(uv_timer_t *t)
{
    supervisor_spawn_missing(t->data);
}

/* Starts workers until `wanted` are starting or running. */
static void
supervisor_spawn_missing(struct supervisor *s)
{
    if (s->stopping) {
        return;
    }
    while (supervisor_count(s, PROC_STARTING, PROC_RUNNING) < s->wanted) {
        struct proc *p = supervisor_free_slot(s);

        if (p == NULL || supervisor_fork(s, p) != 0) {
            /* Out of slots or fork failed: try again later. */
            uv_timer_start(&s->respawn_timer, supervisor_respawn_cb,
                           SUPERVISOR_RESPAWN_CAP_MS, 0);
            return;
        }
    }
}

static void
supervisor_recover_cb(uv_timer_t *t)
{
    struct supervisor *s = t->data;
    int                rc = cache_recover(s->cache);

    if (rc == -EBUSY) {
        uv_timer_start(&s->recover_timer, supervisor_recover_cb,
                       SUPERVISOR_RECOVER_POLL_MS, 0);
        return;
    }
    if (rc != 0) {
        log_error("cache_recover() failed: %s", strerror(-rc));
        return;
    }
    log_warn("cache rebuilt after a worker died inside its lock; "
             "cached entries were dropped");
}

static void
supervisor_reap(struct supervisor *s, pid_t pid, int status)
{
    struct proc *p = NULL;
    uint64_t     lived;
    bool         fatal;

    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->procs[i].state != PROC_FREE && s->procs[i].pid == pid) {
            p = &s->procs[i];
            break;
        }
    }
    if (p == NULL) {
        return;
    }
    lived = supervisor_now_ms(s) - p->started_ms;
    fatal = WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_FATAL;

    if (WIFSIGNALED(status)) {
        log_warn("worker %u (pid %ld) killed by signal %d (%s)", p->index,
                 (long) pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else if (WEXITSTATUS(status) != 0 || p->state != PROC_RETIRING) {
        log_warn("worker %u (pid %ld) exited with status %d", p->index,
                 (long) pid, WEXITSTATUS(status));
    } else {
        log_info("worker %u (pid %ld) exited", p->index, (long) pid);
    }

    /* The kernel closed that worker's connections: give their places
     * under --max-clients back. */
    __atomic_sub_fetch(s->clients,
                       metrics_slot(s->metrics, (uint32_t) (p - s->procs))
                           ->connections, __ATOMIC_SEQ_CST);
    metrics_reap_slot(s->metrics, (uint32_t) (p - s->procs));
    if (metrics_reap_tracking(s->metrics, (uint32_t) (p - s->procs))) {
        /* --tracking: Redis told that worker's subscriber alone of the
         * keys it read; nobody hears of them now. */
        (void) cache_flush(s->cache);
    }

    if (cache_reap_slot(s->cache, supervisor_cache_slot(s, p))) {
        log_error("worker %u died inside the cache lock: serving from "
                  "Redis until the cache is rebuilt", p->index);
        uv_timer_start(&s->recover_timer, supervisor_recover_cb, 0, 0);
    }
    supervisor_ready_detach(p);
    /* A successor whose predecessor this was must not retire whatever
     * process takes this slot next. */
    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->procs[i].replaces == p) {
            s->procs[i].replaces = NULL;
        }
    }

    if (s->stopping || p->state == PROC_RETIRING) {
        p->state = PROC_FREE;
        return;
    }
    if (p->replaces != NULL) {
        /* A reload's new worker died before serving: its predecessor was
         * never told to stop, so keep it and give the reload up rather
         * than trade working workers for failing ones. */
        log_error("reload: new worker %u died before serving; keeping the "
                  "running workers", p->index);
        p->replaces = NULL;
        p->state = PROC_FREE;
        s->reloading = false;
        return;
    }
    p->state = PROC_FREE;

    if (fatal) {
        /* It cannot initialise; starting it again would fail the same
         * way (nginx: "exited with fatal code 2 and cannot be
         * respawned"). */
        log_error("worker %u exited with fatal code 2 and cannot be "
                  "respawned", p->index);
        if (s->wanted > 0) {
            s->wanted--;
        }
        if (s->wanted == 0) {
            log_error("no worker left: exiting");
            s->exit_status = 1;
            s->stopping = true;
            uv_stop(s->loop);
        }
        return;
    }

    s->restarts++;
    if (lived < SUPERVISOR_CRASH_WINDOW_MS) {
        uint64_t now = supervisor_now_ms(s);

        /* Back to no delay once workers have lived 10 s without a young
         * death; otherwise each one doubles it. */
        if (now - s->young_death_ms >= SUPERVISOR_STABLE_MS) {
            s->respawn_delay_ms = 0;
        }
        s->young_death_ms = now;
        s->respawn_delay_ms = s->respawn_delay_ms == 0
            ? SUPERVISOR_RESPAWN_FLOOR_MS
            : s->respawn_delay_ms * 2;
        if (s->respawn_delay_ms > SUPERVISOR_RESPAWN_CAP_MS) {
            s->respawn_delay_ms = SUPERVISOR_RESPAWN_CAP_MS;
        }
        log_warn("worker died %llu ms after starting: respawning in "
                 "%llu ms", (unsigned long long) lived,
                 (unsigned long long) s->respawn_delay_ms);
        uv_timer_start(&s->respawn_timer, supervisor_respawn_cb,
                       s->respawn_delay_ms, 0);
        return;
    }
    if (lived >= SUPERVISOR_STABLE_MS) {
        s->respawn_delay_ms = 0;
    }
    supervisor_spawn_missing(s);
}

static void
supervisor_sigchld_cb(uv_signal_t *h, int signum)
{
    struct supervisor *s = h->data;
    pid_t              pid;
    int                status;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        supervisor_reap(s, pid, status);
    }
    if (s->stopping && supervisor_count(s, PROC_STARTING, PROC_RUNNING) == 0
        && supervisor_count(s, PROC_RETIRING, PROC_RETIRING) == 0) {
        uv_stop(s->loop);
    }
    if (s->reloading) {
        supervisor_reload_step(s);
    }
}

static void
supervisor_signal_workers(struct supervisor *s, int sig)
{
    for (uint32_t i = 0; i < s->nslots; i++) {
        struct proc *p = &s->procs[i];

        if (p->state != PROC_FREE && kill(p->pid, sig) != 0
            && errno != ESRCH) {
            log_warn("kill(%ld, %d) failed: %s", (long) p->pid, sig,
                     strerror(errno));
        }
    }
}

static void
supervisor_kill_cb(uv_timer_t *t)
{
    struct supervisor *s = t->data;

    log_warn("workers still running after the shutdown timeout: killing");
    supervisor_signal_workers(s, SIGKILL);
}

static void
supervisor_stop(struct supervisor *s, const char *why)
{
    if (s->stopping) {
        return;
    }
    log_info("%s: stopping gracefully", why);
    s->stopping = true;
    s->reloading = false;
    uv_timer_stop(&s->respawn_timer);
    if (s->admin_open) {
        uv_close((uv_handle_t *) &s->admin_tcp, NULL);
        uv_close((uv_handle_t *) &s->admin_timer, NULL);
        s->admin_open = false;
    }
    supervisor_admin_shutdown(s);
    /* Our copies of the listening sockets: once the workers have closed
     * theirs, new connections are refused instead of left to wait. */
    if (s->http_fd >= 0) {
        close(s->http_fd);
        s->http_fd = -1;
    }
    if (s->resp_fd >= 0) {
        close(s->resp_fd);
        s->resp_fd = -1;
    }
    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->procs[i].state != PROC_FREE) {
            s->procs[i].state = PROC_RETIRING;
        }
    }
    supervisor_signal_workers(s, SIGTERM);
    uv_timer_start(&s->kill_timer, supervisor_kill_cb,
                   s->cfg.shutdown_timeout_ms + SUPERVISOR_KILL_GRACE_MS, 0);
    if (supervisor_count(s, PROC_RETIRING, PROC_RETIRING) == 0) {
        uv_stop(s->loop);
    }
}

static void
supervisor_sigterm_cb(uv_signal_t *h, int signum)
{
    supervisor_stop(h->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}


/* ---- access log -------------------------------------------------------
 *
 * Workers write whole lines into a pipe whose write end is non-blocking
 * (a full pipe costs them dropped lines, never a wait); the supervisor
 * reads it and appends to the file.  A slow disk therefore slows only
 * this process.  SIGHUP reopens the file, for log rotation.
 */

/* Opens (or, on SIGHUP, reopens) the destination; on failure the one
 * already open is kept, so lines are not silently lost. */
static int
supervisor_access_open_file(struct supervisor *s)
{
    int fd = STDERR_FILENO;

    if (strcmp(s->cfg.access_log, "stderr") != 0) {
        fd = open(s->cfg.access_log, O_WRONLY | O_APPEND | O_CREAT
                  | O_CLOEXEC, 0644);
        if (fd < 0) {
            int rc = -errno;

            log_error("open(%s) failed: %s", s->cfg.access_log,
                      strerror(errno));
            return rc;
        }
    }
    if (s->access_out > STDERR_FILENO) {
        close(s->access_out);
    }
    s->access_out = fd;
    return 0;
}

static void
supervisor_access_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct supervisor *s = h->data;

    *buf = uv_buf_init(s->access_buf, sizeof(s->access_buf));
}

static void
supervisor_access_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct supervisor *s = stream->data;
    size_t             off = 0;

    if (nread <= 0 || s->access_out < 0) {
        return;
    }
    while (off < (size_t) nread) {
        ssize_t n = write(s->access_out, b->base + off, (size_t) nread - off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            log_error("write(access log %s) failed: %s", s->cfg.access_log,
                      strerror(errno));
            return;
        }
        off += (size_t) n;
    }
}

static int
supervisor_access_start(struct supervisor *s)
{
    int fds[2];
    int rc;

    if (s->cfg.access_log[0] == '\0') {
        return 0;
    }
    rc = supervisor_access_open_file(s);
    if (rc != 0) {
        return rc;
    }
    if (pipe2(fds, O_CLOEXEC) != 0) {
        rc = -errno;
        log_error("pipe2(access log) failed: %s", strerror(errno));
        return rc;
    }
    if (fcntl(fds[1], F_SETFL, O_NONBLOCK) != 0) {
        rc = -errno;
        log_error("fcntl(access log pipe, O_NONBLOCK) failed: %s",
                  strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
    s->access_wr = fds[1];
    uv_pipe_init(s->loop, &s->access_pipe, 0);
    s->access_pipe.data = s;
    s->access_open = true;
    rc = uv_pipe_open(&s->access_pipe, fds[0]);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *) &s->access_pipe,
                           supervisor_access_alloc, supervisor_access_read);
    }
    if (rc != 0) {
        log_error("access log pipe: %s", uv_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---- reload ----------------------------------------------------------- */

/* Options that live in what was made before the first fork (sockets, the
 * segment's size, slot counts) keep their running values. */
static void
supervisor_keep_fixed(const struct config *old, struct config *next)
{
#define KEEP(field, name)                                                  \
    if (memcmp(&old->field, &next->field, sizeof(old->field)) != 0) {      \
        log_warn("reload: %s cannot change without a restart; keeping "   \
                 "the running value", name);                               \
        memcpy(&next->field, &old->field, sizeof(old->field));             \
    }
    KEEP(listen, "listen");
    KEEP(resp_listen, "resp-listen");
    KEEP(admin_listen, "admin-listen");
    KEEP(capacity, "capacity");
    KEEP(max_memory_bytes, "max-memory");
    KEEP(max_value_bytes, "max-value-size");
    KEEP(workers, "workers");
    KEEP(max_clients, "max-clients");
    KEEP(backlog, "backlog");
    KEEP(pid_file, "pid-file");
    /* The pipe exists or not from the start; its file can change. */
    if ((old->access_log[0] == '\0') != (next->access_log[0] == '\0')) {
        log_warn("reload: access-log cannot be turned on or off without a "
                 "restart; keeping the running value");
        memcpy(next->access_log, old->access_log, sizeof(old->access_log));
    }
#undef KEEP
}

/* One step of the rolling replacement.  Old workers (of an earlier
 * generation) are replaced one at a time: fork the successor, and only
 * when it serves (supervisor_ready_cb) SIGTERM the old one, which finishes
 * what it has accepted.  Some worker always accepts. */
static void
supervisor_reload_step(struct supervisor *s)
{
    struct proc *old = NULL;
    struct proc *p;

    if (!s->reloading || s->stopping
        || supervisor_count(s, PROC_STARTING, PROC_STARTING) > 0) {
        return;                         /* wait until the successor serves */
    }
    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->procs[i].state == PROC_RUNNING
            && s->procs[i].generation != s->generation) {
            old = &s->procs[i];
            break;
        }
    }
    if (old == NULL) {
        s->reloading = false;
        log_info("reload complete");
        return;
    }
    if (supervisor_count(s, PROC_STARTING, PROC_RUNNING) != s->wanted) {
        /* A retirement is still due, or a crashed worker's respawn is
         * pending: replacing now could leave one worker short. */
        return;
    }
    p = supervisor_free_slot(s);
    if (p == NULL) {
        return;         /* slots are held by draining workers: the reaper
                           calls us again when one exits */
    }
    if (supervisor_fork(s, p) != 0) {
        log_error("reload: cannot start a new worker; the running ones "
                  "keep serving");
        s->reloading = false;
        return;
    }
    p->replaces = old;
}

static void
supervisor_sighup_cb(uv_signal_t *h, int signum)
{
    struct supervisor *s = h->data;
    struct config      next;
    char               err[CONFIG_ERR_MAX];

    if (s->stopping) {
        return;
    }
    config_defaults(&next);
    if (config_load(&next, s->argc, s->argv, s->envp, err, sizeof(err))
        != CONFIG_OK) {
        log_error("reload: %s; keeping the running configuration", err);
        return;
    }
    if (next.http_auth_file[0] != '\0') {
        /* Workers read the credential file as they start: one that no
         * longer parses would make every request 401.  Judge it here, as
         * any other bad value of the new configuration. */
        struct http_auth *auth = NULL;

        if (http_auth_load_file(next.http_auth_file, &auth, err,
                                sizeof(err)) != 0) {
            log_error("reload: --http-auth-file: %s; keeping the running "
                      "configuration", err);
            return;
        }
        http_auth_free(auth);
    }
    supervisor_keep_fixed(&s->cfg, &next);
    s->cfg = next;
    if (s->access_open && s->cfg.access_log[0] != '\0') {
        supervisor_access_open_file(s);
    }
    log_set_level(s->cfg.log_level);
    cache_set_ttl(s->cache, s->cfg.ttl_ms);
    cache_set_windows(s->cache, s->cfg.negative_ttl_ms,
                      config_stale_ms(&s->cfg));
    /* A reload already under way simply goes on to the newer
     * generation: workers of every older one are replaced. */
    s->generation++;
    s->reloading = true;
    log_info("SIGHUP: configuration re-read; replacing workers one at a "
             "time");
    supervisor_reload_step(s);
}


/* ---- admin port --------------------------------------------------------
 *
 * A small HTTP/1.1 server on the supervisor's loop, for operators: it
 * parses with the data port's parser and lets admin.c route and format.
 * /health first asks Redis for a PING on a connection of its own, with
 * --redis-timeout as the deadline, and answers when that settles.
 */

struct admin_conn {
    uv_tcp_t            tcp;
    struct supervisor  *sup;            /* borrowed */
    char               *in;             /* owned: ADMIN_IN_MAX bytes */
    size_t              in_len;
    struct http_parse   hp;
    struct http_request req;
    struct health_check *health;        /* borrowed: pending PING */
    uint64_t            request_start_ms; /* first byte of a request */
    uint64_t            idle_since_ms;  /* accepted, or last answer sent */
    uint64_t            write_start_ms;
    uint64_t            answered;       /* requests on this connection */
    bool                closing;
    bool                writing;
    bool                peer_closed;    /* EOF read: answer, then close */
    struct admin_conn  *next;           /* in supervisor.admin_conns */
    struct admin_conn  *prev;
};

/* One PING to Redis for one /health request.  Freed once both the timer
 * is closed and hiredis is done with the context. */
struct health_check {
    struct admin_conn  *conn;           /* borrowed; NULL once it left */
    redisAsyncContext  *ac;             /* hiredis' own; NULL when gone */
    uv_timer_t          timer;
    bool                settled;
    bool                timer_closed;
    bool                redis_up;
    struct supervisor  *sup;            /* borrowed */
    struct health_check *next;          /* in supervisor.health_checks */
    struct health_check *prev;
};

/* Intrusive list helpers: both lists are owned by the supervisor, so
 * stopping can close every admin connection and PING still open. */
#define SUPERVISOR_LIST_ADD(head, item)                                    \
    do {                                                                   \
        (item)->prev = NULL;                                               \
        (item)->next = (head);                                             \
        if ((head) != NULL) {                                              \
            (head)->prev = (item);                                         \
        }                                                                  \
        (head) = (item);                                                   \
    } while (0)
#define SUPERVISOR_LIST_DEL(head, item)                                    \
    do {                                                                   \
        if ((item)->prev != NULL) {                                        \
            (item)->prev->next = (item)->next;                             \
        } else {                                                           \
            (head) = (item)->next;                                         \
        }                                                                  \
        if ((item)->next != NULL) {                                        \
            (item)->next->prev = (item)->prev;                             \
        }                                                                  \
        (item)->next = (item)->prev = NULL;                                \
    } while (0)

struct admin_write {
    uv_write_t          req;
    struct admin_conn  *conn;           /* borrowed */
    bool                close_after;
    char               *buf;            /* owned */
};

static void supervisor_admin_process(struct admin_conn *c);
static bool supervisor_admin_evict(struct supervisor *s);

static void
supervisor_admin_conn_closed(uv_handle_t *h)
{
    struct admin_conn *c = h->data;

    free(c->in);
    free(c);
}

static void
supervisor_admin_close(struct admin_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    SUPERVISOR_LIST_DEL(c->sup->admin_conns, c);
    c->sup->admin_count--;
    if (c->health != NULL) {
        c->health->conn = NULL;
        c->health = NULL;
    }
    uv_close((uv_handle_t *) &c->tcp, supervisor_admin_conn_closed);
}

static void
supervisor_admin_written(uv_write_t *req, int status)
{
    struct admin_write *w = req->data;
    struct admin_conn  *c = w->conn;

    free(w->buf);
    c->writing = false;
    c->answered++;
    c->idle_since_ms = supervisor_now_ms(c->sup);
    if (status != 0 || w->close_after || c->peer_closed) {
        free(w);
        supervisor_admin_close(c);
        return;
    }
    free(w);
    supervisor_admin_process(c);
}

/* Takes ownership of buf. */
static void
supervisor_admin_send(struct admin_conn *c, char *buf, size_t len,
                      bool close_after)
{
    struct admin_write *w = malloc(sizeof(*w));
    uv_buf_t            b = uv_buf_init(buf, (unsigned) len);

    if (w == NULL) {
        free(buf);
        supervisor_admin_close(c);
        return;
    }
    w->conn = c;
    w->buf = buf;
    w->close_after = close_after;
    w->req.data = w;
    c->writing = true;
    c->write_start_ms = supervisor_now_ms(c->sup);
    if (uv_write(&w->req, (uv_stream_t *) &c->tcp, &b, 1,
                 supervisor_admin_written) != 0) {
        c->writing = false;
        free(buf);
        free(w);
        supervisor_admin_close(c);
    }
}

static enum admin_action_rc
supervisor_admin_flush(void *ctx)
{
    struct admin_conn *c = ctx;
    struct supervisor *s = c->sup;

    if (cache_flush(s->cache) == CACHE_BYPASS) {
        return ADMIN_ACTION_BUSY;
    }
    log_info("admin: cache flushed");
    return ADMIN_ACTION_DONE;
}

static enum admin_action_rc
supervisor_admin_delete(void *ctx, const void *key, size_t key_len)
{
    struct admin_conn *c = ctx;
    struct supervisor *s = c->sup;

    switch (cache_delete(s->cache, key, key_len)) {
    case CACHE_DELETED:
        return ADMIN_ACTION_DONE;
    case CACHE_BYPASS:
        return ADMIN_ACTION_BUSY;
    default:
        return ADMIN_ACTION_ABSENT;
    }
}

/* The workers' view of a cluster's nodes or Sentinel's primary
 * (metrics_nodes_view()); the addresses stay valid until the next call,
 * which the supervisor, being one thread, makes after admin_handle(). */
static void
supervisor_health_nodes(struct supervisor *s, struct admin_health *out)
{
    static struct metrics_node_shm view[METRICS_NODES_MAX];
    static const char *const states[] = {
        [METRICS_NODE_UNUSED] = "unused",
        [METRICS_NODE_CONNECTING] = "connecting",
        [METRICS_NODE_UP] = "up",
        [METRICS_NODE_DOWN] = "down",
    };
    uint32_t n = metrics_nodes_view(s->metrics, view, &out->nodes_more);

    _Static_assert(ADMIN_NODES_MAX == METRICS_NODES_MAX, "one table size");
    for (uint32_t i = 0; i < n; i++) {
        out->nodes[i].addr = view[i].addr;
        out->nodes[i].slots = view[i].slots;
        out->nodes[i].replica = view[i].replica != 0;
        out->nodes[i].state = view[i].state <= METRICS_NODE_DOWN
                              ? states[view[i].state] : "unused";
    }
    out->nnodes = n;
}

static void
supervisor_admin_health(void *ctx, struct admin_health *out)
{
    struct admin_conn *c = ctx;
    struct cache_stats cs;

    cache_stats(c->sup->cache, &cs);
    out->redis_up = c->health != NULL && c->health->redis_up;
    out->workers = supervisor_alive(c->sup);
    out->entries = cs.entries;
    out->tracking = c->sup->cfg.tracking == CONFIG_TRACKING_OFF ? "off"
                    : metrics_tracking_state(c->sup->metrics)
                          == METRICS_TRACKING_UP ? "up" : "down";
    if (c->sup->cfg.redis_cluster[0] != '\0') {
        struct metrics_slot_shm sum;

        /* The workers' freshest slot map: up when every slot has a
         * primary (the PING only reached the first seed). */
        metrics_sum(c->sup->metrics, &sum);
        out->cluster = true;
        out->cluster_nodes = sum.cluster_nodes;
        out->cluster_slots_covered = sum.cluster_slots_covered;
        out->cluster_nodes_down = sum.cluster_nodes_down;
        out->redis_up = sum.cluster_nodes > 0
                        && sum.cluster_slots_covered == 16384
                        && sum.cluster_nodes_down == 0;
        supervisor_health_nodes(c->sup, out);
    } else if (c->sup->cfg.redis_sentinel[0] != '\0') {
        out->sentinel_master = c->sup->cfg.redis_master;
        supervisor_health_nodes(c->sup, out);
    }
}

static size_t
supervisor_admin_metrics(void *ctx, char *buf, size_t cap)
{
    struct admin_conn          *c = ctx;
    struct supervisor          *s = c->sup;
    struct cache_stats          cs;
    struct metrics_process_info info = {
        .version = PACKAGE_VERSION,
        .start_time_seconds = s->start_time,
        .workers_alive = supervisor_alive(s),
        .worker_restarts = s->restarts,
        .max_clients = s->cfg.max_clients,
    };

    cache_stats(s->cache, &cs);
    return metrics_render(s->metrics, &cs, &info, buf, cap);
}

/* The status page's copies of the recent log lines and of the Redis
 * address; admin_handle() reads them before the callback's caller
 * returns, and the supervisor runs one callback at a time. */
static struct log_recent_line supervisor_recent[LOG_RECENT_MAX];
static char                   supervisor_redis_addr[CONFIG_PATH_MAX + 8];

static void
supervisor_admin_status(void *ctx, struct admin_status *out)
{
    struct admin_conn      *c = ctx;
    struct supervisor      *s = c->sup;
    struct cache_stats      cs;
    struct metrics_slot_shm sum;
    struct timespec         ts;
    double                  now;
    const struct config_redis *r = &s->cfg.redis;

    cache_stats(s->cache, &cs);
    metrics_sum(s->metrics, &sum);
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
    if (r->is_unix) {
        snprintf(supervisor_redis_addr, sizeof(supervisor_redis_addr),
                 "unix:%s", r->path);
    } else {
        snprintf(supervisor_redis_addr, sizeof(supervisor_redis_addr),
                 strchr(r->host, ':') != NULL ? "[%s]:%u" : "%s:%u",
                 r->host, (unsigned) r->port);
    }
    out->version = PACKAGE_VERSION;
    out->uptime_seconds = now > s->start_time
                          ? (uint64_t) (now - s->start_time) : 0;
    out->workers_alive = supervisor_alive(s);
    out->workers_configured = s->cfg.workers;
    out->worker_restarts = s->restarts;
    out->redis_up = c->health != NULL && c->health->redis_up;
    out->redis_addr = supervisor_redis_addr;
    out->hits = cs.hits;
    out->misses = cs.misses;
    out->entries = cs.entries;
    out->capacity_entries = cs.capacity_entries;
    out->bytes = cs.bytes;
    out->capacity_bytes = cs.capacity_bytes;
    out->poisoned = cs.poisoned;
    out->connections = sum.connections;
    out->max_clients = s->cfg.max_clients;
    out->backend_unreachable =
        sum.backend_errors[METRICS_BACKEND_UNREACHABLE];
    out->backend_timeout = sum.backend_errors[METRICS_BACKEND_TIMEOUT];
    out->backend_reply = sum.backend_errors[METRICS_BACKEND_REPLY];
    out->backend_tls = sum.backend_errors[METRICS_BACKEND_TLS];
    if (s->cfg.redis_cluster[0] != '\0'
        || s->cfg.redis_sentinel[0] != '\0') {
        static struct admin_health nodes;

        /* The address configured is none of these: say what is. */
        memset(&nodes, 0, sizeof(nodes));
        supervisor_admin_health(ctx, &nodes);
        out->backend = &nodes;
        out->redis_up = nodes.redis_up;
        /* (Not the seeds: their URLs may hold passwords.) */
        if (s->cfg.redis_cluster[0] != '\0') {
            snprintf(supervisor_redis_addr, sizeof(supervisor_redis_addr),
                     "Redis Cluster (nodes below)");
        } else {
            snprintf(supervisor_redis_addr, sizeof(supervisor_redis_addr),
                     "Sentinel master '%.100s' (below)", s->cfg.redis_master);
        }
    }
    out->nerrors = log_recent_read(supervisor_recent, LOG_RECENT_MAX);
    for (size_t i = 0; i < out->nerrors; i++) {
        out->errors[i] = supervisor_recent[i].text;
    }
}

/* Answers the parsed request in c->req; the PING for /health is done. */
static struct admin_request
supervisor_admin_request(const struct admin_conn *c)
{
    struct admin_request ar = {
        .method = c->req.method,
        .path = c->in + c->req.path_off,
        .path_len = c->req.path_len,
        .keep_alive = c->req.keep_alive && !c->sup->stopping,
        .now = time(NULL),
    };

    return ar;
}

static void
supervisor_admin_answer(struct admin_conn *c)
{
    struct admin_request ar = supervisor_admin_request(c);
    struct admin_ops     ops = {
        .flush = supervisor_admin_flush,
        .delete_key = supervisor_admin_delete,
        .health = supervisor_admin_health,
        .metrics = supervisor_admin_metrics,
        .status = supervisor_admin_status,
        .ctx = c,
    };
    size_t               cap = 16384;
    char                *buf = NULL;
    size_t               n, used;
    int                  status = 0;

    for (;;) {
        char *nb = realloc(buf, cap);

        if (nb == NULL) {
            free(buf);
            supervisor_admin_close(c);
            return;
        }
        buf = nb;
        n = admin_handle(&ar, &ops, buf, cap, &status);
        if (n <= cap) {
            break;
        }
        cap = n;                        /* only /metrics: no side effect */
    }
    if (c->health != NULL) {
        c->health->conn = NULL;
        c->health = NULL;
    }
    log_debug("admin: %.*s -> %d", (int) ar.path_len, ar.path, status);
    /* Drop the request (and its ignored body) before parsing the next. */
    used = c->req.head_len + (size_t) c->req.content_length;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    http_parse_init(&c->hp);
    supervisor_admin_send(c, buf, n, !ar.keep_alive);
}

static void
supervisor_health_free(struct health_check *hc)
{
    SUPERVISOR_LIST_DEL(hc->sup->health_checks, hc);
    free(hc);
}

static void
supervisor_health_timer_closed(uv_handle_t *h)
{
    struct health_check *hc = h->data;

    hc->timer_closed = true;
    if (hc->ac == NULL) {
        supervisor_health_free(hc);
    }
}

/* Settles the check once: answers the waiting connection (if it is still
 * there) and starts tearing down the Redis context and the timer. */
static void
supervisor_health_settle(struct health_check *hc, bool up, bool in_hiredis)
{
    struct admin_conn *c = hc->conn;

    if (hc->settled) {
        return;
    }
    hc->settled = true;
    hc->redis_up = up;
    uv_timer_stop(&hc->timer);
    uv_close((uv_handle_t *) &hc->timer, supervisor_health_timer_closed);
    if (c != NULL) {
        supervisor_admin_answer(c);
    }
    if (hc->ac != NULL) {
        if (in_hiredis) {
            /* hiredis frees the context after the callback returns. */
            redisAsyncDisconnect(hc->ac);
        } else {
            redisAsyncContext *ac = hc->ac;

            /* Detach first: the NULL-reply callbacks that redisAsyncFree
             * makes must find nothing to settle. */
            ac->data = NULL;
            hc->ac = NULL;
            redisAsyncFree(ac);
        }
    }
}

static void
supervisor_health_ping_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct health_check *hc = ac->data;
    redisReply          *reply = r;

    if (hc == NULL || reply == NULL) {
        return;                 /* torn down: the disconnect cb settles */
    }
    supervisor_health_settle(hc, reply != NULL
                             && reply->type == REDIS_REPLY_STATUS
                             && strcmp(reply->str, "PONG") == 0,
                             reply != NULL);
}

static void
supervisor_health_connect_cb(const redisAsyncContext *ac, int status)
{
    struct health_check *hc = ac->data;

    if (status != REDIS_OK && hc != NULL) {
        /* hiredis frees a context whose connect failed. */
        hc->ac = NULL;
        supervisor_health_settle(hc, false, true);
        if (hc->timer_closed) {
            supervisor_health_free(hc);
        }
    }
}

static void
supervisor_health_disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct health_check *hc = ac->data;

    if (hc == NULL) {
        return;
    }
    hc->ac = NULL;
    supervisor_health_settle(hc, false, true);
    if (hc->timer_closed) {
        supervisor_health_free(hc);
    }
}

static void
supervisor_health_timeout_cb(uv_timer_t *t)
{
    supervisor_health_settle(t->data, false, false);
}

static void
supervisor_health_start(struct admin_conn *c)
{
    struct supervisor   *s = c->sup;
    struct health_check *hc = calloc(1, sizeof(*hc));
    redisAsyncContext   *ac;

    if (hc == NULL) {
        supervisor_admin_close(c);
        return;
    }
    hc->conn = c;
    hc->sup = s;
    c->health = hc;
    SUPERVISOR_LIST_ADD(s->health_checks, hc);
    uv_timer_init(s->loop, &hc->timer);
    hc->timer.data = hc;
    uv_timer_start(&hc->timer, supervisor_health_timeout_cb,
                   s->cfg.redis_timeout_ms, 0);

    if (s->cfg.redis_tls || s->cfg.redis_sentinel[0] != '\0'
        || s->cfg.redis_cluster[0] != '\0') {
        struct metrics_slot_shm sum;

        /* hiredis 0.14 speaks no TLS, and the workers do: a TLS Redis is
         * up while some worker holds a ready connection to it (a worker
         * that cannot reach it has none, within a timeout).  So is the
         * primary Sentinel names, which only the workers know; a
         * cluster's health is its slot map's (supervisor_admin_health). */
        metrics_sum(s->metrics, &sum);
        supervisor_health_settle(hc, sum.backend_connections > 0, false);
        return;
    }
    if (s->cfg.redis.is_unix) {
        ac = redisAsyncConnectUnix(s->cfg.redis.path);
    } else {
        ac = redisAsyncConnect(s->cfg.redis.host, s->cfg.redis.port);
    }
    if (ac == NULL || ac->err != 0 || redisLibuvAttach(ac, s->loop) != 0) {
        if (ac != NULL) {
            redisAsyncFree(ac);
        }
        supervisor_health_settle(hc, false, false);
        return;
    }
    hc->ac = ac;
    ac->data = hc;
    redisAsyncSetConnectCallback(ac, supervisor_health_connect_cb);
    redisAsyncSetDisconnectCallback(ac, supervisor_health_disconnect_cb);
    if (s->cfg.redis_password[0] != '\0') {
        if (s->cfg.redis_user[0] != '\0') {
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s %s", s->cfg.redis_user,
                              s->cfg.redis_password);
        } else {
            redisAsyncCommand(ac, NULL, NULL, "AUTH %s",
                              s->cfg.redis_password);
        }
    }
    redisAsyncCommand(ac, supervisor_health_ping_cb, NULL, "PING");
}

/* Parses and answers what is buffered, one request at a time. */
static void
supervisor_admin_process(struct admin_conn *c)
{
    struct admin_request ar;
    enum http_parse_rc rc;
    size_t             n;
    char              *buf;

    if (c->closing || c->writing || c->health != NULL || c->in_len == 0) {
        return;
    }
    rc = http_parse_request(&c->hp, c->in, c->in_len, &c->req);
    if (rc == HTTP_PARSE_AGAIN) {
        return;
    }
    if (rc == HTTP_PARSE_ERROR || c->req.chunked) {
        /* No admin request has a body: a chunked one is refused rather
         * than read, and the connection closes. */
        buf = malloc(ADMIN_REPLY_MIN);
        if (buf == NULL) {
            supervisor_admin_close(c);
            return;
        }
        n = admin_error(rc == HTTP_PARSE_ERROR ? c->req.status : 400,
                        time(NULL), buf, ADMIN_REPLY_MIN);
        supervisor_admin_send(c, buf, n, true);
        return;
    }
    if (c->in_len < c->req.head_len + c->req.content_length) {
        return;                         /* the body is still coming */
    }
    /* admin.c routes; it only tells us first whether Redis must be
     * asked, which it cannot do itself. */
    ar = supervisor_admin_request(c);
    if (admin_needs_health(&ar)) {
        supervisor_health_start(c);
        return;
    }
    supervisor_admin_answer(c);
}

static void
supervisor_admin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct admin_conn *c = h->data;

    *buf = uv_buf_init(c->in + c->in_len, (unsigned) (ADMIN_IN_MAX
                                                      - c->in_len));
}

static void
supervisor_admin_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct admin_conn *c = stream->data;

    if (nread == UV_EOF && (c->health != NULL || c->writing)) {
        /* Half-closed after asking: answer first. */
        c->peer_closed = true;
        uv_read_stop(stream);
        return;
    }
    if (nread < 0) {
        supervisor_admin_close(c);
        return;
    }
    if (c->in_len == 0 && nread > 0) {
        c->request_start_ms = supervisor_now_ms(c->sup);
    }
    c->in_len += (size_t) nread;
    if (c->in_len == ADMIN_IN_MAX) {
        uv_read_stop(stream);           /* the parser will say 431/413 */
    }
    supervisor_admin_process(c);
}

static void
supervisor_admin_accept(uv_stream_t *server, int status)
{
    struct supervisor *s = server->data;
    struct admin_conn *c;

    bool               refuse;

    if (status != 0) {
        log_error("admin accept failed: %s", uv_strerror(status));
        return;
    }
    refuse = s->admin_count >= ADMIN_CONN_MAX && !supervisor_admin_evict(s);
    c = calloc(1, sizeof(*c));
    if (c != NULL && !refuse) {
        c->in = malloc(ADMIN_IN_MAX);
    }
    if (c == NULL || (c->in == NULL && !refuse)) {
        log_error("admin: out of memory for a connection");
        if (c != NULL) {
            free(c);
        }
        return;
    }
    c->sup = s;
    c->idle_since_ms = supervisor_now_ms(s);
    SUPERVISOR_LIST_ADD(s->admin_conns, c);
    s->admin_count++;
    http_parse_init(&c->hp);
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    /* Accepted even when refused: left in the backlog, it would stop
     * libuv from accepting at all. */
    if (uv_accept(server, (uv_stream_t *) &c->tcp) != 0 || refuse
        || uv_read_start((uv_stream_t *) &c->tcp, supervisor_admin_alloc,
                         supervisor_admin_read) != 0) {
        supervisor_admin_close(c);
    }
}

/* At the cap: closes the admin connection idle longest (not answering,
 * nothing buffered).  Returns whether one was closed. */
static bool
supervisor_admin_evict(struct supervisor *s)
{
    struct admin_conn *idlest = NULL;

    for (struct admin_conn *c = s->admin_conns; c != NULL; c = c->next) {
        if (!c->writing && c->health == NULL && c->in_len == 0
            && (idlest == NULL || c->idle_since_ms < idlest->idle_since_ms)) {
            idlest = c;
        }
    }
    if (idlest == NULL) {
        log_debug("admin: %d connections, all busy: refusing one",
                  ADMIN_CONN_MAX);
        return false;
    }
    supervisor_admin_close(idlest);
    return true;
}

/* The data port's deadlines, on the admin port: a request head must
 * arrive within --header-timeout of its first byte (and the first one
 * within --header-timeout of the accept), a connection between requests
 * closes after --idle-timeout, and so does one whose answer is not read.
 * A PING in flight has its own deadline. */
static void
supervisor_admin_sweep_cb(uv_timer_t *t)
{
    struct supervisor *s = t->data;
    uint64_t           now = supervisor_now_ms(s);
    struct admin_conn *next;

    for (struct admin_conn *c = s->admin_conns; c != NULL; c = next) {
        uint64_t deadline;

        next = c->next;
        if (c->health != NULL) {
            continue;
        }
        if (c->writing) {
            deadline = c->write_start_ms + s->cfg.idle_timeout_ms;
        } else if (c->in_len > 0) {
            deadline = c->request_start_ms + s->cfg.header_timeout_ms;
        } else if (c->answered == 0) {
            deadline = c->idle_since_ms + s->cfg.header_timeout_ms;
        } else {
            deadline = c->idle_since_ms + s->cfg.idle_timeout_ms;
        }
        if (now >= deadline) {
            log_debug("admin: closing a connection past its deadline");
            supervisor_admin_close(c);
        }
    }
}

/* On stop: close every admin connection and give up every PING still in
 * flight, so nothing of theirs outlives the loop. */
static void
supervisor_admin_shutdown(struct supervisor *s)
{
    while (s->admin_conns != NULL) {
        supervisor_admin_close(s->admin_conns);
    }
    for (struct health_check *hc = s->health_checks; hc != NULL;
         hc = hc->next) {
        supervisor_health_settle(hc, false, false);
    }
}

static int
supervisor_admin_start(struct supervisor *s)
{
    int rc;

    uv_tcp_init(s->loop, &s->admin_tcp);
    s->admin_tcp.data = s;
    s->admin_open = true;
    uv_timer_init(s->loop, &s->admin_timer);
    s->admin_timer.data = s;
    uv_timer_start(&s->admin_timer, supervisor_admin_sweep_cb,
                   ADMIN_SWEEP_MS, ADMIN_SWEEP_MS);
    /* The sweep alone must not keep the loop running at the end. */
    uv_unref((uv_handle_t *) &s->admin_timer);
    rc = uv_tcp_open(&s->admin_tcp, s->admin_fd);
    s->admin_fd = -1;                   /* libuv closes it from now on */
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *) &s->admin_tcp, 64,
                       supervisor_admin_accept);
    }
    if (rc != 0) {
        log_error("admin port: %s", uv_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---- start and run ---------------------------------------------------- */

/* "http 127.0.0.1:8080, resp *:6380, admin 127.0.0.1:9121": every
 * listener, so the startup line says where each port is. */
static void
supervisor_format_listeners(const struct config *cfg, char *buf, size_t cap)
{
    const struct config_listen *ls[] = {
        &cfg->listen, &cfg->resp_listen, &cfg->admin_listen
    };
    static const char *const names[] = { "http", "resp", "admin" };
    size_t pos = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < 3; i++) {
        char one[CONFIG_HOST_MAX + 16];
        int  n;

        if (!ls[i]->enabled) {
            continue;
        }
        config_format_listen(ls[i], one, sizeof(one));
        n = snprintf(buf + pos, cap - pos, "%s%s %s", pos > 0 ? ", " : "",
                     names[i], one);
        if (n < 0 || (size_t) n >= cap - pos) {
            return;
        }
        pos += (size_t) n;
    }
}

static int
supervisor_write_pid_file(const struct config *cfg)
{
    char  buf[32];
    int   fd, n, rc = 0;

    if (cfg->pid_file[0] == '\0') {
        return 0;
    }
    fd = open(cfg->pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        log_error("open(%s) failed: %s", cfg->pid_file, strerror(errno));
        return rc;
    }
    n = snprintf(buf, sizeof(buf), "%ld\n", (long) getpid());
    if (write(fd, buf, (size_t) n) != n) {
        rc = -errno;
        log_error("write(%s) failed: %s", cfg->pid_file, strerror(errno));
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
        log_error("close(%s) failed: %s", cfg->pid_file, strerror(errno));
    }
    return rc;
}

static void
supervisor_on_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

int
supervisor_run(struct config *cfg, int argc, char *const argv[],
               char *const envp[])
{
    struct supervisor   sup;
    struct supervisor  *s = &sup;
    struct cache_params cp;
    struct timespec     ts;
    char                addr[3 * (CONFIG_HOST_MAX + 24)];
    sigset_t            early, saved_mask;
    int                 rc;

    /* Signals sent before the loop's handlers exist must wait for them,
     * not kill us: block them now, unblock once uv_signal_start is done. */
    sigemptyset(&early);
    sigaddset(&early, SIGTERM);
    sigaddset(&early, SIGINT);
    sigaddset(&early, SIGHUP);
    sigaddset(&early, SIGCHLD);
    sigprocmask(SIG_BLOCK, &early, &saved_mask);

    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->argc = argc;
    s->argv = argv;
    s->envp = envp;
    s->http_fd = -1;
    s->resp_fd = -1;
    s->admin_fd = -1;
    s->access_wr = -1;
    s->access_out = -1;
    s->exit_status = 0;
    for (int i = 0; i < SUPERVISOR_RESERVE_FDS; i++) {
        s->reserve_fds[i] = -1;
    }
    supervisor_reserve_take(s);
    clock_gettime(CLOCK_REALTIME, &ts);
    s->start_time = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
    log_init("supervisor", 0);
    log_set_level(s->cfg.log_level);
    supervisor_title_init(s);

    /* The pid file before the listeners: once a port answers, a script
     * that waits for it may read the pid file.  Removed again at out. */
    if (supervisor_write_pid_file(&s->cfg) != 0) {
        s->exit_status = 1;
        goto out;
    }
    s->pid_file_written = s->cfg.pid_file[0] != '\0';

    rc = supervisor_listen(&s->cfg.listen, (int) s->cfg.backlog);
    if (rc < 0) {
        s->exit_status = 1;
        goto out;
    }
    s->http_fd = rc;
    if (s->cfg.resp_listen.enabled) {
        rc = supervisor_listen(&s->cfg.resp_listen, (int) s->cfg.backlog);
        if (rc < 0) {
            s->exit_status = 1;
            goto out;
        }
        s->resp_fd = rc;
    }
    if (s->cfg.admin_listen.enabled) {
        if (s->cfg.admin_listen.host[0] == '\0') {
            /* A bare port means every address, as for the data ports;
             * for the admin port that is rarely meant. */
            log_warn("admin-listen %u binds every address: the admin port "
                     "(flush, delete) is then open to clients; give "
                     "127.0.0.1:%u for loopback only, or 0.0.0.0:%u to "
                     "mean it", (unsigned) s->cfg.admin_listen.port,
                     (unsigned) s->cfg.admin_listen.port,
                     (unsigned) s->cfg.admin_listen.port);
        }
        rc = supervisor_listen(&s->cfg.admin_listen, 64);
        if (rc < 0) {
            s->exit_status = 1;
            goto out;
        }
        s->admin_fd = rc;
    }
    s->nslots = s->cfg.workers * 2;
    memset(&cp, 0, sizeof(cp));
    cp.capacity = s->cfg.capacity;
    cp.max_memory_bytes = s->cfg.max_memory_bytes;
    cp.max_value_bytes = s->cfg.max_value_bytes;
    cp.ttl_ms = s->cfg.ttl_ms;
    cp.negative_ttl_ms = s->cfg.negative_ttl_ms;
    cp.stale_ms = config_stale_ms(&s->cfg);
    cp.worker_slots = s->nslots + 1;   /* slot 0: the supervisor's own */
    rc = cache_create(&cp, &s->cache);
    if (rc != 0) {
        log_error("cache_create(capacity %u, max-memory %llu) failed: %s",
                  s->cfg.capacity,
                  (unsigned long long) s->cfg.max_memory_bytes,
                  strerror(-rc));
        s->exit_status = 1;
        goto out;
    }
    /* Before any fork, so workers' warnings reach the status page. */
    rc = log_recent_create();
    if (rc != 0) {
        log_warn("log_recent_create() failed: %s; the status page will "
                 "show no recent errors", strerror(-rc));
    }
    rc = metrics_create(s->nslots, &s->metrics);
    if (rc != 0) {
        log_error("metrics_create() failed: %s", strerror(-rc));
        s->exit_status = 1;
        goto out;
    }
    s->clients = mmap(NULL, sizeof(*s->clients), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s->clients == MAP_FAILED) {
        s->clients = NULL;
        log_error("mmap(client counter) failed: %s", strerror(errno));
        s->exit_status = 1;
        goto out;
    }
    s->procs = calloc(s->nslots, sizeof(*s->procs));
    if (s->procs == NULL) {
        log_error("calloc(%u workers) failed", s->nslots);
        s->exit_status = 1;
        goto out;
    }

    s->loop = uv_default_loop();
    uv_timer_init(s->loop, &s->respawn_timer);
    uv_timer_init(s->loop, &s->recover_timer);
    uv_timer_init(s->loop, &s->kill_timer);
    s->respawn_timer.data = s;
    s->recover_timer.data = s;
    s->kill_timer.data = s;
    uv_signal_init(s->loop, &s->sig_term);
    uv_signal_init(s->loop, &s->sig_int);
    uv_signal_init(s->loop, &s->sig_hup);
    uv_signal_init(s->loop, &s->sig_chld);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    s->sig_chld.data = s;
    uv_signal_start(&s->sig_term, supervisor_sigterm_cb, SIGTERM);
    uv_signal_start(&s->sig_int, supervisor_sigterm_cb, SIGINT);
    uv_signal_start(&s->sig_hup, supervisor_sighup_cb, SIGHUP);
    uv_signal_start(&s->sig_chld, supervisor_sigchld_cb, SIGCHLD);
    /* A client that goes away mid-answer must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);

    if (s->cfg.admin_listen.enabled) {
        rc = supervisor_admin_start(s);
        if (rc != 0) {
            s->exit_status = 1;
            goto out;
        }
    }
    if (supervisor_access_start(s) != 0) {
        s->exit_status = 1;
        goto out;
    }

    supervisor_format_listeners(&s->cfg, addr, sizeof(addr));
    log_info("redis-cache-proxy %s: listening on %s; %u worker(s), cache "
             "segment %zu bytes (%u keys, %llu bytes of data)",
             PACKAGE_VERSION, addr, s->cfg.workers,
             cache_segment_bytes(s->cache), s->cfg.capacity,
             (unsigned long long) s->cfg.max_memory_bytes);

    s->wanted = s->cfg.workers;
    supervisor_spawn_missing(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    if (s->access_open) {
        /* The workers' last lines are in the pipe: take them. */
        close(s->access_wr);
        s->access_wr = -1;
        uv_run(s->loop, UV_RUN_NOWAIT);
    }

    /* Every worker is gone (or was never started); reap stragglers. */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    log_info("stopped");

out:
    if (s->loop != NULL) {
        uv_walk(s->loop, supervisor_on_close, NULL);
        uv_run(s->loop, UV_RUN_DEFAULT);
        uv_loop_close(s->loop);
    }
    free(s->procs);
    if (s->clients != NULL) {
        munmap(s->clients, sizeof(*s->clients));
    }
    if (s->metrics != NULL) {
        metrics_destroy(s->metrics);
    }
    if (s->cache != NULL) {
        cache_destroy(s->cache);
    }
    if (s->admin_fd >= 0) {
        close(s->admin_fd);
    }
    if (s->access_wr >= 0) {
        close(s->access_wr);
    }
    if (s->access_out > STDERR_FILENO) {
        close(s->access_out);
    }
    if (s->resp_fd >= 0) {
        close(s->resp_fd);
    }
    if (s->http_fd >= 0) {
        close(s->http_fd);
    }
    if (s->pid_file_written) {
        unlink(s->cfg.pid_file);
    }
    supervisor_reserve_release(s);
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    return s->exit_status;
}
