/*
 * supervisor: the parent process, and (with supervisor_*.c) the only
 * code that uses libuv.  As nginx's ngx_process_cycle.c, this file is the
 * cycle: supervisor_run() opens, loops and closes.
 *
 * Owns the listening sockets, the pid file, the cache segment, the
 * metrics slots and the shared client counter (all made before the first
 * fork and inherited by every worker), and the signal handles.  The
 * workers are supervisor_workers.c's, the admin port supervisor_admin.c's,
 * the access log supervisor_access.c's (supervisor_internal.h has the map).
 *
 *   open:  block signals -> bind sockets -> pid file -> listen -> segment
 *          -> mappings
 *          -> loop, signal handles -> unblock -> admin port, access log
 *   loop:  fork N workers -> uv_run until every worker is gone
 *   close: every handle, mapping, fd; the pid file; the signal mask
 *   SIGTERM/SIGINT/SIGQUIT: SIGTERM every worker, wait for all, exit 0
 *   SIGUSR1: reopen the access log
 *   SIGCHLD, SIGHUP: supervisor_workers.c
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "http_auth.h"
#include "log.h"
#include "metrics.h"
#include "redis_conn.h"
#include "supervisor.h"
#include "supervisor_internal.h"

/* ---- listening sockets ------------------------------------------------ */

/* Opens a TCP socket bound to l, not yet listening.  Returns the fd, or
 * -errno with the failing call named in the log. */
static int
supervisor_bind(const struct config_listen *l)
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
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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
    rc = fd;
    fd = -1;
done:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/* listen() on a socket supervisor_bind() made: 0 or -errno, logged. */
static int
supervisor_listen(int fd, const struct config_listen *l, int backlog)
{
    char name[CONFIG_HOST_MAX + 16];

    if (listen(fd, backlog) != 0) {
        int rc = -errno;

        config_format_listen(l, name, sizeof(name));
        log_error("listen(%s) failed: %s", name, strerror(errno));
        return rc;
    }
    return 0;
}

int
supervisor_timer_start(uv_timer_t *t, uv_timer_cb cb, uint64_t ms,
                       uint64_t repeat_ms, const char *what)
{
    int rc = uv_timer_start(t, cb, ms, repeat_ms);

    if (rc != 0) {
        log_error("uv_timer_start(%s) failed: %s", what, uv_strerror(rc));
    }
    return rc;
}

/* ---- configuration files ---------------------------------------------- */

static const char *
supervisor_path_or_null(const char *path)
{
    return path[0] != '\0' ? path : NULL;
}

/* Whether any connection to Redis uses TLS: --redis-tls (a rediss://
 * --redis or first --redis-cluster seed sets it), or a sentinel given as
 * a rediss:// URL. */
static bool
supervisor_uses_tls(const struct config *cfg)
{
    return cfg->redis_tls || strstr(cfg->redis_sentinel, "rediss://") != NULL;
}

int
supervisor_check_tls_files(const struct config *cfg, char *err, size_t err_len)
{
    char               why[CONFIG_ERR_MAX - 64];
    const char        *opt;
    struct ssl_ctx_st *ctx;

    if (!supervisor_uses_tls(cfg)) {
        return 0;
    }
    /* OpenSSL only notes a directory, to look into on each handshake:
     * one that is not there would fail every verification instead. */
    if (cfg->redis_tls_ca_dir[0] != '\0') {
        struct stat st;
        int         e = 0;

        if (stat(cfg->redis_tls_ca_dir, &st) != 0) {
            e = errno;
        } else if (!S_ISDIR(st.st_mode)) {
            e = ENOTDIR;
        } else if (access(cfg->redis_tls_ca_dir, R_OK | X_OK) != 0) {
            e = errno;
        }
        if (e != 0) {
            snprintf(err, err_len,
                     "--redis-tls-ca-dir: cannot load the CA directory "
                     "'%.*s': %s",
                     (int) (err_len / 2), cfg->redis_tls_ca_dir, strerror(e));
            return -EINVAL;
        }
    }
    /* The authorities and the client certificate apart, so the error
     * can name the option to fix. */
    if (cfg->redis_tls_ca_file[0] != '\0'
        || cfg->redis_tls_ca_dir[0] != '\0') {
        ctx =
            redis_conn_tls_ctx(true,
                               supervisor_path_or_null(cfg->redis_tls_ca_file),
                               supervisor_path_or_null(cfg->redis_tls_ca_dir),
                               NULL, NULL, why, sizeof(why));
        if (ctx == NULL) {
            opt = cfg->redis_tls_ca_file[0] != '\0' ? "redis-tls-ca-file"
                                                    : "redis-tls-ca-dir";
            snprintf(err, err_len, "--%s: %s", opt, why);
            return -EINVAL;
        }
        redis_conn_tls_ctx_free(ctx);
    }
    if (cfg->redis_tls_cert_file[0] != '\0') {
        ctx = redis_conn_tls_ctx(false, NULL, NULL, cfg->redis_tls_cert_file,
                                 supervisor_path_or_null(
                                     cfg->redis_tls_key_file),
                                 why, sizeof(why));
        if (ctx == NULL) {
            /* redis_conn_tls_ctx words a key it cannot use "cannot load
             * key": that is --redis-tls-key-file's, when given. */
            opt = cfg->redis_tls_key_file[0] != '\0'
                          && strncmp(why, "cannot load key", 15) == 0
                      ? "redis-tls-key-file"
                      : "redis-tls-cert-file";
            snprintf(err, err_len, "--%s: %s", opt, why);
            return -EINVAL;
        }
        redis_conn_tls_ctx_free(ctx);
    }
    return 0;
}

/* ---- stop -------------------------------------------------------------- */

static void
supervisor_stop(struct supervisor *s, const char *why)
{
    if (s->stopping) {
        return;
    }
    log_info("%s: stopping gracefully", why);
    s->stopping = true;
    s->reloading = false;
    supervisor_admin_stop(s);
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
    supervisor_workers_stop(s);
    if (supervisor_count(s, PROC_RETIRING, PROC_RETIRING) == 0) {
        uv_stop(s->loop);
    }
}

/* SIGQUIT stops as SIGTERM does: it is nginx's graceful stop, and its
 * default action would kill the supervisor alone, leaving the pid file
 * and workers that only notice through their parent-death signal. */
static void
supervisor_sigterm_cb(uv_signal_t *h, int signum)
{
    supervisor_stop(h->data, signum == SIGINT    ? "SIGINT"
                             : signum == SIGQUIT ? "SIGQUIT"
                                                 : "SIGTERM");
}

/* SIGUSR1 reopens the access log, as nginx reopens its logs on it, so a
 * logrotate postrotate written for nginx (kill -USR1 `cat pidfile`)
 * works here too, without the worker replacement a SIGHUP makes. */
static void
supervisor_sigusr1_cb(uv_signal_t *h, int signum)
{
    struct supervisor *s = h->data;

    (void) signum;
    if (s->access_open && s->cfg.access_log[0] != '\0'
        && supervisor_access_open_file(s) == 0) {
        log_info("SIGUSR1: access log %s reopened", s->cfg.access_log);
    }
}

/* ---- start and run ---------------------------------------------------- */

/* "http 127.0.0.1:8080, resp *:6380, admin 127.0.0.1:9121": every
 * listener, so the startup line says where each port is. */
static void
supervisor_format_listeners(const struct config *cfg, char *buf, size_t cap)
{
    const struct config_listen *ls[] = { &cfg->listen, &cfg->resp_listen,
                                         &cfg->admin_listen };
    static const char *const    names[] = { "http", "resp", "admin" };
    size_t                      pos = 0;

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
    char buf[32];
    int  fd, n, rc = 0;

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

/* A signal handle on the loop, its failure logged with the call's name.
 * 0 or a libuv error. */
static int
supervisor_signal_open(struct supervisor *s, uv_signal_t *h, uv_signal_cb cb,
                       int signum)
{
    int rc = uv_signal_init(s->loop, h);

    if (rc != 0) {
        log_error("uv_signal_init(%s) failed: %s", strsignal(signum),
                  uv_strerror(rc));
        return rc;
    }
    h->data = s;
    rc = uv_signal_start(h, cb, signum);
    if (rc != 0) {
        log_error("uv_signal_start(%s) failed: %s", strsignal(signum),
                  uv_strerror(rc));
    }
    return rc;
}

/* Everything made before the loop runs: 0, or -1 with s->exit_status
 * set and the failing call logged.  What it made is undone by
 * supervisor_close, whatever the point of failure. */
static int
supervisor_open(struct supervisor *s, struct config *cfg, int argc,
                char *const argv[], char *const envp[])
{
    struct cache_params cp;
    struct timespec     ts;
    sigset_t            early;
    int                 rc;

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
    log_init("supervisor", 0);
    log_set_level(s->cfg.log_level);

    /* Signals sent before the loop's handlers exist must wait for them,
     * not kill us: block them now, unblock once uv_signal_start is done.
     * supervisor_close restores the caller's mask. */
    sigemptyset(&early);
    sigaddset(&early, SIGTERM);
    sigaddset(&early, SIGINT);
    sigaddset(&early, SIGHUP);
    sigaddset(&early, SIGQUIT);
    sigaddset(&early, SIGUSR1);
    sigaddset(&early, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &early, &s->saved_mask) != 0) {
        log_error("sigprocmask(SIG_BLOCK) failed: %s", strerror(errno));
        goto fail;
    }
    s->mask_saved = true;

    supervisor_reserve_take(s);
    clock_gettime(CLOCK_REALTIME, &ts);
    s->start_time = (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
    supervisor_title_init(s);

    rc = supervisor_bind(&s->cfg.listen);
    if (rc < 0) {
        goto fail;
    }
    s->http_fd = rc;
    if (s->cfg.resp_listen.enabled) {
        rc = supervisor_bind(&s->cfg.resp_listen);
        if (rc < 0) {
            goto fail;
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
                     "mean it",
                     (unsigned) s->cfg.admin_listen.port,
                     (unsigned) s->cfg.admin_listen.port,
                     (unsigned) s->cfg.admin_listen.port);
        }
        rc = supervisor_bind(&s->cfg.admin_listen);
        if (rc < 0) {
            goto fail;
        }
        s->admin_fd = rc;
    }

    /* The pid file once every port is bound, as nginx and Redis write
     * theirs: a second instance started by mistake fails on a port in
     * use above and leaves the running one's pid file alone (writing it
     * first, it would overwrite the file, then delete it on its way
     * out).  And before listen(), so a script that waits for a port to
     * answer finds the pid file written.  Removed again at close. */
    if (supervisor_write_pid_file(&s->cfg) != 0) {
        goto fail;
    }
    s->pid_file_written = s->cfg.pid_file[0] != '\0';
    if (supervisor_listen(s->http_fd, &s->cfg.listen, (int) s->cfg.backlog)
            != 0
        || (s->resp_fd >= 0
            && supervisor_listen(s->resp_fd, &s->cfg.resp_listen,
                                 (int) s->cfg.backlog)
                   != 0)
        || (s->admin_fd >= 0
            && supervisor_listen(s->admin_fd, &s->cfg.admin_listen, 64)
                   != 0)) {
        goto fail;
    }
    if (s->cfg.http_auth_file[0] != '\0') {
        /* Parsed here once, and inherited by every worker through fork:
         * a worker (re)started later never reads the file itself, so
         * one changed on disk counts only when a reload accepts it. */
        char err[CONFIG_ERR_MAX];

        if (http_auth_load_file(s->cfg.http_auth_file, &s->http_auth, err,
                                sizeof(err))
            != 0) {
            log_error("--http-auth-file %s", err);
            rc = -EINVAL;
            goto fail;
        }
    }
    s->nslots = s->cfg.workers * 2;
    memset(&cp, 0, sizeof(cp));
    cp.capacity = s->cfg.capacity;
    cp.max_memory_bytes = s->cfg.max_memory_bytes;
    cp.max_value_bytes = s->cfg.max_value_bytes;
    cp.ttl_ms = s->cfg.ttl_ms;
    cp.negative_ttl_ms = s->cfg.negative_ttl_ms;
    cp.stale_ms = config_stale_ms(&s->cfg);
    cp.worker_slots = s->nslots + 1; /* slot 0: the supervisor's own */
    rc = cache_create(&cp, &s->cache);
    if (rc != 0) {
        log_error("cache_create(capacity %u, max-memory %llu) failed: %s",
                  s->cfg.capacity,
                  (unsigned long long) s->cfg.max_memory_bytes, strerror(-rc));
        goto fail;
    }
    /* Before any fork, so workers' warnings reach the status page. */
    rc = log_recent_create();
    if (rc != 0) {
        log_warn("log_recent_create() failed: %s; the status page will "
                 "show no recent errors",
                 strerror(-rc));
    }
    rc = metrics_create(s->nslots, &s->metrics);
    if (rc != 0) {
        log_error("metrics_create() failed: %s", strerror(-rc));
        goto fail;
    }
    s->clients = mmap(NULL, sizeof(*s->clients), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s->clients == MAP_FAILED) {
        s->clients = NULL;
        log_error("mmap(client counter) failed: %s", strerror(errno));
        goto fail;
    }
    s->procs = calloc(s->nslots, sizeof(*s->procs));
    if (s->procs == NULL) {
        log_error("calloc(%u workers) failed", s->nslots);
        goto fail;
    }

    s->loop = uv_default_loop();
    if (s->loop == NULL) {
        log_error("uv_default_loop() failed");
        goto fail;
    }
    uv_timer_init(s->loop, &s->respawn_timer);
    uv_timer_init(s->loop, &s->recover_timer);
    uv_timer_init(s->loop, &s->flush_timer);
    uv_timer_init(s->loop, &s->kill_timer);
    s->respawn_timer.data = s;
    s->recover_timer.data = s;
    s->flush_timer.data = s;
    s->kill_timer.data = s;
    if (supervisor_signal_open(s, &s->sig_term, supervisor_sigterm_cb, SIGTERM)
            != 0
        || supervisor_signal_open(s, &s->sig_int, supervisor_sigterm_cb,
                                  SIGINT)
               != 0
        || supervisor_signal_open(s, &s->sig_hup, supervisor_sighup_cb, SIGHUP)
               != 0
        || supervisor_signal_open(s, &s->sig_quit, supervisor_sigterm_cb,
                                  SIGQUIT)
               != 0
        || supervisor_signal_open(s, &s->sig_usr1, supervisor_sigusr1_cb,
                                  SIGUSR1)
               != 0
        || supervisor_signal_open(s, &s->sig_chld, supervisor_sigchld_cb,
                                  SIGCHLD)
               != 0) {
        goto fail;
    }
    /* A client that goes away mid-answer must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_SETMASK, &s->saved_mask, NULL) != 0) {
        log_error("sigprocmask(SIG_SETMASK) failed: %s", strerror(errno));
        goto fail;
    }

    if (s->cfg.admin_listen.enabled) {
        rc = supervisor_admin_start(s);
        if (rc != 0) {
            goto fail;
        }
    }
    if (supervisor_access_start(s) != 0) {
        goto fail;
    }
    return 0;

fail:
    s->exit_status = 1;
    return -1;
}

/* Forks the workers and runs until every one is gone. */
static void
supervisor_loop(struct supervisor *s)
{
    char addr[3 * (CONFIG_HOST_MAX + 24)];

    supervisor_format_listeners(&s->cfg, addr, sizeof(addr));
    log_info("redis-cache-proxy %s: listening on %s; %u worker(s), cache "
             "segment %zu bytes (%u keys, %llu bytes of data)",
             PACKAGE_VERSION, addr, s->cfg.workers,
             cache_segment_bytes(s->cache), s->cfg.capacity,
             (unsigned long long) s->cfg.max_memory_bytes);

    s->wanted = s->cfg.workers;
    supervisor_spawn_missing(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    supervisor_access_drain(s);

    /* Every worker is gone (or was never started); reap stragglers. */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    log_info("stopped");
}

/* Undoes whatever supervisor_open made, from any point of failure. */
static void
supervisor_close(struct supervisor *s)
{
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
    http_auth_free(s->http_auth);
    s->http_auth = NULL;
    if (s->admin_fd >= 0) {
        close(s->admin_fd);
    }
    supervisor_access_close(s);
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
    if (s->mask_saved && sigprocmask(SIG_SETMASK, &s->saved_mask, NULL) != 0) {
        log_error("sigprocmask(SIG_SETMASK) failed: %s", strerror(errno));
    }
}

int
supervisor_run(struct config *cfg, int argc, char *const argv[],
               char *const envp[])
{
    struct supervisor sup;

    if (supervisor_open(&sup, cfg, argc, argv, envp) == 0) {
        supervisor_loop(&sup);
    }
    supervisor_close(&sup);
    return sup.exit_status;
}
