/*
 * supervisor_workers: the worker processes, as nginx's ngx_process.c:
 * the fork seam, the ready pipe, reaping, respawn with backoff, and the
 * rolling reload on SIGHUP.
 *
 * A worker holds a slot (cache lock record and metrics counters) for its
 * life; slots are twice the worker count so a reload can run old and new
 * side by side.  A slot's counters outlive its worker, so totals never go
 * back.  The fork seam is supervisor_fork() (parent) and
 * supervisor_child() here, and worker_run() there.
 *
 *   fork -> PROC_STARTING --ready byte--> PROC_RUNNING --SIGTERM-->
 *        PROC_RETIRING --reaped--> PROC_FREE
 *   SIGCHLD: reap -> cache_reap_slot (poisoned? recover) -> respawn
 *            (backoff when workers die within 1 s of starting; exit
 *            status 2 is not respawned)
 *   SIGHUP:  re-read config -> for each worker: fork a new one, wait until
 *            it serves, then SIGTERM the old one (it finishes what it has)
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "http_auth.h"
#include "log.h"
#include "metrics.h"
#include "supervisor.h"
#include "supervisor_internal.h"
#include "worker.h"

static void supervisor_reload_step(struct supervisor *s);

/* ---- process title ---------------------------------------------------- */

/* Finds the contiguous argv storage that `ps` shows, to rename workers
 * in place (as nginx's ngx_setproctitle does). */
void
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

static struct supervisor_proc *
supervisor_free_slot(struct supervisor *s)
{
    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->procs[i].state == PROC_FREE) {
            return &s->procs[i];
        }
    }
    return NULL;
}

uint32_t
supervisor_count(const struct supervisor *s, enum supervisor_proc_state a,
                 enum supervisor_proc_state b)
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
supervisor_cache_slot(const struct supervisor      *s,
                      const struct supervisor_proc *p)
{
    return (uint32_t) (p - s->procs) + 1;
}

/* Worker processes that exist (starting, serving or draining). */
uint32_t
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
            continue; /* -1 (not used), or a duplicate */
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
supervisor_child(struct supervisor *s, struct supervisor_proc *p, int ready_wr,
                 pid_t parent)
{
    struct worker_params params;
    char                 title[64];
    sigset_t             none;
    struct sigaction     dfl;
    int keep[4] = { s->http_fd, s->resp_fd, ready_wr, s->access_wr };
    int status;

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
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0) {
        log_error("sigprocmask(SIG_SETMASK) failed: %s", strerror(errno));
        _exit(WORKER_EXIT_FATAL);
    }

    if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) != 0) {
        log_error("prctl(PR_SET_PDEATHSIG) failed: %s", strerror(errno));
        _exit(WORKER_EXIT_FATAL);
    }
    if (getppid() != parent) {
        _exit(WORKER_EXIT_OK); /* the parent is already gone */
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
    params.http_auth = s->http_auth;
    status = worker_run(&params);
    _exit(status);
}

static void
supervisor_ready_closed(uv_handle_t *h)
{
    struct supervisor_ready_watch *rw = h->data;

    close(rw->fd);
    free(rw);
}

static void
supervisor_ready_detach(struct supervisor_proc *p)
{
    struct supervisor_ready_watch *rw = p->ready;

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
    struct supervisor_ready_watch *rw = handle->data;
    struct supervisor_proc        *p = rw->proc;
    struct supervisor             *s;
    char                           byte;
    ssize_t                        n;

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
        struct supervisor_proc *old = p->replaces;

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
void
supervisor_reserve_take(struct supervisor *s)
{
    for (int i = 0; i < SUPERVISOR_RESERVE_FDS; i++) {
        if (s->reserve_fds[i] < 0) {
            s->reserve_fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
    }
}

void
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
supervisor_fork(struct supervisor *s, struct supervisor_proc *p)
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
    if (sigprocmask(SIG_SETMASK, &all, &old) != 0) {
        rc = -errno;
        log_error("sigprocmask(SIG_SETMASK) failed: %s; not forking",
                  strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        supervisor_reserve_take(s);
        return rc;
    }
    pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        supervisor_child(s, p, pipefd[1], parent);
    }
    rc = errno;
    if (sigprocmask(SIG_SETMASK, &old, NULL) != 0) {
        /* The mask stays full: signals wait, and libuv's handlers run
         * once a later fork restores it.  Nothing better to do. */
        log_error("sigprocmask(SIG_SETMASK) failed: %s", strerror(errno));
    }
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
void
supervisor_spawn_missing(struct supervisor *s)
{
    if (s->stopping) {
        return;
    }
    while (supervisor_count(s, PROC_STARTING, PROC_RUNNING) < s->wanted) {
        struct supervisor_proc *p = supervisor_free_slot(s);

        if (p == NULL || supervisor_fork(s, p) != 0) {
            /* Out of slots or fork failed: try again later. */
            supervisor_timer_start(&s->respawn_timer, supervisor_respawn_cb,
                                   SUPERVISOR_RESPAWN_CAP_MS, 0, "respawn");
            return;
        }
    }
}

/* --tracking: the reaped worker's subscriber alone heard of the keys it
 * read, so the cache is flushed.  A flush that did not get the lock in
 * time (a writer stuck past the lock's timeout) left those entries in
 * place: until a retry gets the lock, the metrics hold tracking DOWN, so
 * no worker answers from the cache (a replacement worker flushes before
 * it is UP, but none may come: a reload's retired worker, a crash loop's
 * backoff).  A poisoned cache is emptied by its recovery instead. */
static void supervisor_flush_cb(uv_timer_t *t);

static void
supervisor_tracking_flush(struct supervisor *s)
{
    if (cache_flush(s->cache) == CACHE_BYPASS && !cache_poisoned(s->cache)) {
        if (!s->flush_held) {
            log_warn("tracking: the cache flush after a worker's exit did "
                     "not get the cache lock in time; answering from Redis, "
                     "not the cache, until it does");
        }
        s->flush_held = true;
        metrics_hold_tracking(s->metrics, true);
        supervisor_timer_start(&s->flush_timer, supervisor_flush_cb,
                               SUPERVISOR_FLUSH_RETRY_MS, 0, "flush");
        return;
    }
    if (s->flush_held) {
        log_info("tracking: cache flushed after a worker's exit");
    }
    s->flush_held = false;
    metrics_hold_tracking(s->metrics, false);
}

static void
supervisor_flush_cb(uv_timer_t *t)
{
    supervisor_tracking_flush(t->data);
}

static void
supervisor_recover_cb(uv_timer_t *t)
{
    struct supervisor *s = t->data;
    int                rc = cache_recover(s->cache);

    if (rc == -EBUSY) {
        supervisor_timer_start(&s->recover_timer, supervisor_recover_cb,
                               SUPERVISOR_RECOVER_POLL_MS, 0, "recover");
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
    struct supervisor_proc *p = NULL;
    uint64_t                lived;
    bool                    fatal;

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
    __atomic_sub_fetch(
        s->clients,
        metrics_slot(s->metrics, (uint32_t) (p - s->procs))->connections,
        __ATOMIC_SEQ_CST);
    metrics_reap_slot(s->metrics, (uint32_t) (p - s->procs));
    if (metrics_reap_tracking(s->metrics, (uint32_t) (p - s->procs))) {
        /* --tracking: Redis told that worker's subscriber alone of the
         * keys it read; nobody hears of them now. */
        supervisor_tracking_flush(s);
    }

    if (cache_reap_slot(s->cache, supervisor_cache_slot(s, p))) {
        log_error("worker %u died inside the cache lock: serving from "
                  "Redis until the cache is rebuilt",
                  p->index);
        supervisor_timer_start(&s->recover_timer, supervisor_recover_cb, 0, 0,
                               "recover");
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
                  "running workers",
                  p->index);
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
                  "respawned",
                  p->index);
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
                 "%llu ms",
                 (unsigned long long) lived,
                 (unsigned long long) s->respawn_delay_ms);
        supervisor_timer_start(&s->respawn_timer, supervisor_respawn_cb,
                               s->respawn_delay_ms, 0, "respawn");
        return;
    }
    if (lived >= SUPERVISOR_STABLE_MS) {
        s->respawn_delay_ms = 0;
    }
    supervisor_spawn_missing(s);
}

void
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
        struct supervisor_proc *p = &s->procs[i];

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

/* The workers' part of a graceful stop: each one finishes what it has;
 * past --shutdown-timeout (and a grace) the rest are killed. */
void
supervisor_workers_stop(struct supervisor *s)
{
    uv_timer_stop(&s->respawn_timer);
    for (uint32_t i = 0; i < s->nslots; i++) {
        if (s->procs[i].state != PROC_FREE) {
            s->procs[i].state = PROC_RETIRING;
        }
    }
    supervisor_signal_workers(s, SIGTERM);
    supervisor_timer_start(
        &s->kill_timer, supervisor_kill_cb,
        s->cfg.shutdown_timeout_ms + SUPERVISOR_KILL_GRACE_MS, 0, "kill");
}

/* ---- reload ----------------------------------------------------------- */

/* Options that live in what was made before the first fork (sockets, the
 * segment's size, slot counts) keep their running values. */
static void
supervisor_keep_fixed(const struct config *old, struct config *next)
{
#define KEEP(field, name)                                               \
    if (memcmp(&old->field, &next->field, sizeof(old->field)) != 0) {   \
        log_warn("reload: %s cannot change without a restart; keeping " \
                 "the running value",                                   \
                 name);                                                 \
        memcpy(&next->field, &old->field, sizeof(old->field));          \
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
    struct supervisor_proc *old = NULL;
    struct supervisor_proc *p;

    if (!s->reloading || s->stopping
        || supervisor_count(s, PROC_STARTING, PROC_STARTING) > 0) {
        return; /* wait until the successor serves */
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
        return; /* slots are held by draining workers: the reaper
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

void
supervisor_sighup_cb(uv_signal_t *h, int signum)
{
    struct supervisor *s = h->data;
    struct config      next;
    char               err[CONFIG_ERR_MAX];
    struct http_auth  *auth = NULL;

    if (s->stopping) {
        return;
    }
    config_defaults(&next);
    if (config_load(&next, s->argc, s->argv, s->envp, err, sizeof(err))
        != CONFIG_OK) {
        log_error("reload: %s; keeping the running configuration", err);
        return;
    }
    if (supervisor_check_tls_files(&next, err, sizeof(err)) != 0) {
        /* Else each new worker would fail to start and the reload
         * would stop at the first one: say why, once. */
        log_error("reload: %s; keeping the running configuration", err);
        return;
    }
    if (next.http_auth_file[0] != '\0') {
        /* The new workers inherit the credentials parsed here: one file
         * that no longer parses is judged as any other bad value of the
         * new configuration. */
        if (http_auth_load_file(next.http_auth_file, &auth, err, sizeof(err))
            != 0) {
            log_error("reload: --http-auth-file: %s; keeping the running "
                      "configuration",
                      err);
            return;
        }
    }
    http_auth_free(s->http_auth);
    s->http_auth = auth;
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
