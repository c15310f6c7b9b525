/*
 * worker: the data plane of one worker process.
 *
 * Owns the epoll loop, the connection slots (a pool of --max-clients
 * structs allocated at start, handed out on accept), and the backend.
 * Each connection reads into its input buffer, parses one request at a
 * time and appends the answer to its output buffer, so pipelined requests
 * are answered in order without a queue:
 *
 *   readable -> read into in[] -> parse -+- AGAIN: arm header deadline
 *                                         +- ERROR: 4xx, close after write
 *                                         +- DONE:  key in cache? -- hit -+
 *                                                   | miss                |
 *                                                   v                     |
 *                        backend_get (WAITING: parsing pauses)            |
 *                                                   | reply               |
 *                                                   v                     v
 *                            append answer to out[], drop the request bytes,
 *                            parse the next one; then write out[]
 *
 * Invariants: a connection has at most one request waiting on the
 * backend, and parses nothing further until it is answered; a closed
 * connection's slot goes back to the pool only in before_poll, once no
 * callback of this iteration can still hold it.  Connections across all
 * workers are bounded by --max-clients through a shared counter: a slot
 * is reserved before accept4() and released when the connection closes;
 * at the limit this worker stops polling its listening sockets, so new
 * connections wait in the kernel's backlog.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "buf.h"
#include "event.h"
#include "http.h"
#include "http_parser.h"
#include "log.h"
#include "resp.h"
#include "resp_parser.h"
#include "worker.h"

#define WORKER_IN_INITIAL      4096
#define WORKER_OUT_INITIAL     4096
/* Largest HTTP request we buffer: head limit plus body limit. */
#define WORKER_HTTP_IN_MAX     (HTTP_PARSE_HEAD_MAX + HTTP_PARSE_BODY_MAX)
/* Past this much unsent output, stop reading and parsing (backpressure). */
#define WORKER_OUT_HIGH_WATER  (1024 * 1024)
/* Buffers past this size are released when their connection closes. */
#define WORKER_BUF_KEEP        (64 * 1024)
#define WORKER_ACCEPT_BATCH    32
#define WORKER_ACCEPT_RETRY_MS 10
#define WORKER_YIELD_MS        5
#define WORKER_EMFILE_PAUSE_MS 100
#define WORKER_LINGER_MS       1000
/* Access-log lines are flushed in writes of whole lines of at most
 * PIPE_BUF bytes, which the kernel keeps whole between workers. */
#define WORKER_LOG_LINE_MAX    1024
#define WORKER_LOG_DROP_REPORT_MS 10000
/* Largest RESP command we buffer (a GET or an MGET of many keys). */
#define RESP_CONN_IN_MAX       (4 * 1024 * 1024)
/* Most arguments in one RESP command (MGET of 4095 keys). */
#define RESP_CONN_ARGV_MAX     4096
/* Room left before a value copied out of the cache for its RESP header
 * ("$" + 20 digits + CRLF). */
#define RESP_BULK_HEAD_MAX     24

enum conn_proto {
    CONN_HTTP = 0,
    CONN_RESP
};

enum conn_state {
    CONN_FREE = 0,      /* in the pool */
    CONN_READING,       /* parsing requests, or idle between them */
    CONN_WAITING,       /* one request is waiting on the backend */
    CONN_DRAINING,      /* answer sent, write side shut: discard input
                           until EOF or the linger timer */
    CONN_CLOSED         /* fd closed; back to the pool in before_poll */
};

struct worker;
struct conn;

/* One MGET waiting on the backend for some of its keys.  Hits and
 * fetched values are copied into values[] so the answer is assembled in
 * key order once the last fetch is in. */
struct resp_mget_item {
    struct backend_waiter waiter;       /* linked while fetching */
    struct resp_mget     *mget;         /* borrowed: the owner */
    enum backend_result   result;
    bool                  fetch;        /* a miss: asked of the backend */
    size_t                off;          /* of the value in values */
    size_t                len;
};

struct resp_mget {
    struct conn          *conn;         /* borrowed: the owner */
    size_t                n;
    size_t                pending;      /* fetches not yet answered */
    struct buf            values;       /* owned */
    struct resp_mget_item items[];
};

struct conn {
    int                   fd;           /* owned; -1 unless open */
    enum conn_state       state;
    enum conn_proto       proto;
    struct worker        *worker;       /* borrowed: the process's */
    struct event_io       io;
    struct event_timer    timer;        /* header, idle, linger deadline */
    char                 *in;           /* owned */
    size_t                in_len;
    size_t                in_cap;
    struct buf            out;          /* owned: answers not yet sent */
    uint64_t              request_start_ms; /* first byte of the request */
    uint64_t              activity_ms;  /* last read or write progress */
    bool                  close_after_write;
    bool                  peer_closed;  /* read returned 0 */
    uint64_t              requests;     /* answered on this connection */
    char                  peer[INET6_ADDRSTRLEN]; /* for the access log */
    uint64_t              log_start_ms; /* when the request was parsed */
    int                   log_status;   /* HTTP status, or 0 */
    const char           *log_resp;     /* RESP outcome: ok nil err */
    uint64_t              log_bytes;    /* body or value bytes sent */
    const char           *log_cache;    /* HIT MISS - */
    struct http_parse     hp;
    struct http_request   req;          /* the request being answered */
    struct backend_waiter waiter;       /* linked while WAITING */
    struct resp_parse     rp;
    struct resp_arg      *argv;         /* owned: RESP_CONN_ARGV_MAX */
    size_t                resp_consumed; /* bytes of the command waiting */
    size_t                resp_argc;    /* of the command being answered */
    struct resp_mget     *mget;         /* owned: MGET in progress */
    struct conn          *next;         /* pool / closed list */
};

struct worker {
    const struct worker_params *params; /* borrowed: the caller's */
    const struct config *cfg;           /* borrowed: params->cfg */
    struct event_loop    loop;
    struct backend      *backend;       /* owned */
    struct event_io      http_io;
    struct event_io      resp_io;
    int                  http_fd;       /* borrowed until stop, then -1 */
    int                  resp_fd;       /* borrowed until stop, then -1 */
    bool                 accepting;     /* listening fds are polled */
    bool                 accept_yielded; /* left the last one to peers */
    struct event_timer   accept_timer;  /* resume after limit or EMFILE */
    int                  signal_fd;     /* owned */
    struct event_io      signal_io;
    bool                 stopping;
    struct event_timer   stop_timer;    /* --shutdown-timeout */
    struct conn         *conns;         /* owned: max_clients slots */
    struct conn         *free_list;
    struct conn         *closed_list;   /* back to the pool in before_poll */
    size_t               open_conns;
    char                *key_buf;       /* owned: decoded key */
    struct buf           access;        /* owned: lines not yet written */
    uint64_t             access_dropped; /* lines lost to a full pipe */
    uint64_t             access_drop_reported_ms;
    time_t               date_sec;
    char                 date[HTTP_DATE_LEN + 1];
    size_t               ok_prefix_len; /* a 200 head up to the length */
    char                 ok_prefix[HTTP_HEAD_MAX];
};

static void worker_conn_process(struct conn *c);
static void worker_conn_flush(struct conn *c);
static void worker_conn_close(struct conn *c);
static void worker_conn_update(struct conn *c);
static void worker_http_error(struct conn *c, int status, bool fatal);
static void worker_resp_mget_free(struct conn *c);
static void worker_resp_process(struct conn *c);

/* ---- small helpers --------------------------------------------------- */

static const char *
worker_date(struct worker *w)
{
    /* time() is a vDSO call on Linux: no system call on the hit path. */
    time_t now = time(NULL);

    if (now != w->date_sec) {
        w->date_sec = now;
        http_format_date(now, w->date);
        w->ok_prefix_len = http_format_ok_prefix(w->date, w->ok_prefix,
                                                 sizeof(w->ok_prefix));
    }
    return w->date;
}

static int
worker_buf_grow(char **buf, size_t *cap, size_t need)
{
    size_t  n = *cap == 0 ? 4096 : *cap;
    char   *p;

    if (need <= *cap) {
        return 0;
    }
    while (n < need) {
        n *= 2;
    }
    p = realloc(*buf, n);
    if (p == NULL) {
        return -ENOMEM;
    }
    *buf = p;
    *cap = n;
    return 0;
}

static int
worker_conn_out_reserve(struct conn *c, size_t n)
{
    return buf_reserve(&c->out, n);
}

static int
worker_conn_append(struct conn *c, const void *data, size_t len)
{
    return buf_append(&c->out, data, len);
}

static size_t
worker_conn_unsent(const struct conn *c)
{
    return buf_pending(&c->out);
}

/* ---- client limit ----------------------------------------------------- */

static bool
worker_reserve_client(struct worker *w)
{
    int64_t n = __atomic_add_fetch(w->params->clients, 1, __ATOMIC_SEQ_CST);

    if (n > (int64_t) w->cfg->max_clients) {
        __atomic_sub_fetch(w->params->clients, 1, __ATOMIC_SEQ_CST);
        return false;
    }
    return true;
}

static void
worker_release_client(struct worker *w)
{
    __atomic_sub_fetch(w->params->clients, 1, __ATOMIC_SEQ_CST);
}

static void
worker_set_accepting(struct worker *w, bool on)
{
    unsigned mask = on ? EVENT_READ : 0;

    if (w->accepting == on) {
        return;
    }
    w->accepting = on;
    if (w->http_fd >= 0) {
        event_io_set(&w->loop, &w->http_io, mask);
    }
    if (w->resp_fd >= 0) {
        event_io_set(&w->loop, &w->resp_io, mask);
    }
}

static void
worker_accept_timer_cb(struct event_loop *loop, struct event_timer *t)
{
    struct worker *w = t->data;

    if (!w->stopping) {
        worker_set_accepting(w, true);
    }
}

static void
worker_pause_accepting(struct worker *w, uint64_t ms)
{
    worker_set_accepting(w, false);
    if (event_timer_start(&w->loop, &w->accept_timer, ms) != 0) {
        /* Without the timer nothing would resume accepting. */
        worker_set_accepting(w, true);
    }
}


/* ---- access log -------------------------------------------------------
 *
 * One line per answered request:
 *   TIME CLIENT PROTO "REQUEST" STATUS BYTES CACHE MICROSECONDS
 * e.g. 2026-11-25T15:30:00.123Z 127.0.0.1 http "GET /k HTTP/1.1" 200 5
 * HIT 35.  Lines are gathered during a loop iteration and written to the
 * supervisor's pipe before the next wait; the pipe never blocks us: when
 * it is full, lines are dropped and counted.
 */

/* Appends s with bytes outside printable ASCII (and '"', '\') as \xHH,
 * at most max bytes of input, so a client cannot forge log lines. */
static void
worker_log_escape(char *dst, size_t cap, size_t *pos, const char *s,
                  size_t len, size_t max)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < len && i < max && *pos + 5 < cap; i++) {
        unsigned char ch = (unsigned char) s[i];

        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
            dst[(*pos)++] = '\\';
            dst[(*pos)++] = 'x';
            dst[(*pos)++] = hex[ch >> 4];
            dst[(*pos)++] = hex[ch & 0xf];
        } else {
            dst[(*pos)++] = (char) ch;
        }
    }
}

static void
worker_access_log(struct conn *c, const char *req, size_t req_len)
{
    struct worker  *w = c->worker;
    char            line[WORKER_LOG_LINE_MAX];
    size_t          pos = 0;
    struct timespec ts;
    struct tm       tm;
    char            status[16];
    int             n;

    if (w->params->access_fd < 0) {
        return;
    }
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    pos += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    if (c->log_status != 0) {
        snprintf(status, sizeof(status), "%d", c->log_status);
    } else {
        snprintf(status, sizeof(status), "%s",
                 c->log_resp != NULL ? c->log_resp : "-");
    }
    n = snprintf(line + pos, sizeof(line) - pos, ".%03ldZ %s %s \"",
                 ts.tv_nsec / 1000000, c->peer,
                 c->proto == CONN_HTTP ? "http" : "resp");
    pos += (size_t) n;
    worker_log_escape(line, sizeof(line) - 64, &pos, req, req_len, 512);
    n = snprintf(line + pos, sizeof(line) - pos, "\" %s %llu %s %llu\n",
                 status, (unsigned long long) c->log_bytes,
                 c->log_cache != NULL ? c->log_cache : "-",
                 (unsigned long long) ((event_now_ms(&w->loop)
                                        - c->log_start_ms) * 1000));
    pos += (size_t) n;
    if (pos > sizeof(line)) {
        pos = sizeof(line);
        line[pos - 1] = '\n';
    }
    if (buf_append(&w->access, line, pos) != 0) {
        w->access_dropped++;
    }
}

static void
worker_access_flush(struct worker *w)
{
    while (buf_pending(&w->access) > 0) {
        size_t  n = buf_pending(&w->access);
        ssize_t written;

        if (n > PIPE_BUF) {
            /* Cut at the last line end that fits, so no line is split
             * between two writes. */
            const char *start = w->access.data + w->access.pos;
            const char *nl = memrchr(start, '\n', PIPE_BUF);

            n = (size_t) (nl - start) + 1;
        }
        written = write(w->params->access_fd, w->access.data
                        + w->access.pos, n);
        if (written == (ssize_t) n) {
            w->access.pos += n;
            continue;
        }
        if (written < 0 && errno == EINTR) {
            continue;
        }
        /* Full (EAGAIN) or gone: drop what is left rather than wait. */
        for (size_t i = w->access.pos; i < w->access.len; i++) {
            w->access_dropped += w->access.data[i] == '\n';
        }
        w->access.pos = w->access.len;
    }
    if (w->access_dropped > 0 && event_now_ms(&w->loop)
        - w->access_drop_reported_ms >= WORKER_LOG_DROP_REPORT_MS) {
        log_warn("access log: %llu line(s) dropped, its writer is behind",
                 (unsigned long long) w->access_dropped);
        w->access_dropped = 0;
        w->access_drop_reported_ms = event_now_ms(&w->loop);
    }
}

/* ---- connections ------------------------------------------------------ */

static void
worker_conn_io_cb(struct event_loop *loop, struct event_io *io,
                  unsigned events);
static void
worker_conn_timer_cb(struct event_loop *loop, struct event_timer *t);

static void
worker_conn_open(struct worker *w, int fd, enum conn_proto proto,
                 const struct sockaddr_storage *peer)
{
    struct conn *c = w->free_list;
    int          one = 1;
    int          rc;

    w->free_list = c->next;
    c->next = NULL;
    c->fd = fd;
    c->state = CONN_READING;
    c->proto = proto;
    c->in_len = 0;
    c->out.pos = 0;
    c->out.len = 0;
    c->close_after_write = false;
    c->peer_closed = false;
    c->requests = 0;
    c->peer[0] = '-';
    c->peer[1] = '\0';
    if (w->params->access_fd >= 0) {
        const void *a = peer->ss_family == AF_INET6
            ? (const void *) &((const struct sockaddr_in6 *) peer)->sin6_addr
            : (const void *) &((const struct sockaddr_in *) peer)->sin_addr;

        if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6) {
            inet_ntop(peer->ss_family, a, c->peer, sizeof(c->peer));
        }
    }
    c->activity_ms = event_now_ms(&w->loop);
    c->request_start_ms = c->activity_ms;
    http_parse_init(&c->hp);
    resp_parse_init(&c->rp);
    c->resp_consumed = 0;
    memset(&c->waiter, 0, sizeof(c->waiter));
    event_io_init(&c->io, fd, worker_conn_io_cb, c);
    event_timer_init(&c->timer, worker_conn_timer_cb, c);

    /* Answers are small and written whole: don't let Nagle hold them. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        log_debug("setsockopt(%d, TCP_NODELAY) failed: %s", fd,
                  strerror(errno));
    }
    w->open_conns++;
    metrics_add_connections(w->params->metrics, 1);
    if (proto == CONN_RESP && c->argv == NULL) {
        c->argv = malloc(RESP_CONN_ARGV_MAX * sizeof(*c->argv));
        if (c->argv == NULL) {
            log_error("malloc() of RESP arguments failed");
            worker_conn_close(c);
            return;
        }
    }
    rc = event_io_set(&w->loop, &c->io, EVENT_READ);
    if (rc != 0) {
        log_error("epoll_ctl(ADD, %d) failed: %s", fd, strerror(-rc));
        worker_conn_close(c);
        return;
    }
    worker_conn_update(c);
}

static void
worker_conn_close(struct conn *c)
{
    struct worker *w = c->worker;

    if (c->state == CONN_CLOSED || c->state == CONN_FREE) {
        return;
    }
    backend_cancel(&c->waiter);
    worker_resp_mget_free(c);
    event_io_stop(&w->loop, &c->io);
    event_timer_stop(&w->loop, &c->timer);
    if (close(c->fd) != 0) {
        log_debug("close(%d) failed: %s", c->fd, strerror(errno));
    }
    c->fd = -1;
    c->state = CONN_CLOSED;
    c->next = w->closed_list;
    w->closed_list = c;
    w->open_conns--;
    metrics_add_connections(w->params->metrics, -1);
    worker_release_client(w);
    if (!w->stopping && !w->accepting && !event_timer_active(
            &w->accept_timer)) {
        worker_set_accepting(w, true);
    }
}

/* Runs before each epoll wait: closed slots go back to the pool now that
 * no callback of this iteration can still refer to them. */
static void
worker_before_poll(struct event_loop *loop, void *arg)
{
    struct worker *w = arg;

    if (buf_pending(&w->access) > 0) {
        worker_access_flush(w);
    }
    while (w->closed_list != NULL) {
        struct conn *c = w->closed_list;

        w->closed_list = c->next;
        if (c->in_cap > WORKER_BUF_KEEP) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        if (c->out.cap > WORKER_BUF_KEEP) {
            buf_free(&c->out);
        }
        c->state = CONN_FREE;
        c->next = w->free_list;
        w->free_list = c;
    }
    if (w->stopping && w->open_conns == 0) {
        event_loop_stop(loop);
    }
}

/* Picks the one deadline that matters in the connection's state and arms
 * the timer for it: the header deadline runs from a request's first byte
 * and is not renewed by later bytes (as nginx's client_header_timeout);
 * idle and stalled-write deadlines run from the last progress. */
static void
worker_conn_update(struct conn *c)
{
    struct worker *w = c->worker;
    uint64_t       now = event_now_ms(&w->loop);
    uint64_t       deadline;
    unsigned       mask = 0;
    int            rc;

    if (c->state == CONN_CLOSED || c->state == CONN_FREE) {
        return;
    }
    if (c->state == CONN_DRAINING) {
        mask = EVENT_READ;
        event_io_set(&w->loop, &c->io, mask);
        return;                 /* the linger timer is already armed */
    }

    if (worker_conn_unsent(c) > 0) {
        mask |= EVENT_WRITE;
    }
    if (!c->peer_closed && worker_conn_unsent(c) < WORKER_OUT_HIGH_WATER
        && !c->close_after_write
        && c->in_len < (c->proto == CONN_HTTP ? WORKER_HTTP_IN_MAX
                                              : RESP_CONN_IN_MAX)) {
        mask |= EVENT_READ;
    }
    rc = event_io_set(&w->loop, &c->io, mask);
    if (rc != 0) {
        log_error("epoll_ctl(%d) failed: %s", c->fd, strerror(-rc));
        worker_conn_close(c);
        return;
    }

    if (c->state == CONN_WAITING) {
        event_timer_stop(&w->loop, &c->timer);  /* the backend's deadline */
        return;
    }
    if (worker_conn_unsent(c) > 0) {
        deadline = c->activity_ms + w->cfg->idle_timeout_ms;
    } else if ((c->in_len > 0 && !c->close_after_write)
               || (w->stopping && c->requests == 0)) {
        /* While stopping, a connection that has sent nothing yet gets
         * the time a request head may take, then goes. */
        deadline = c->request_start_ms + w->cfg->header_timeout_ms;
    } else {
        deadline = c->activity_ms + w->cfg->idle_timeout_ms;
    }
    if (event_timer_start(&w->loop, &c->timer, deadline > now
                                               ? deadline - now : 0) != 0) {
        /* A connection without a deadline could hang forever. */
        log_error("no memory for a connection timer: closing %d", c->fd);
        worker_conn_close(c);
    }
}

static void
worker_conn_timer_cb(struct event_loop *loop, struct event_timer *t)
{
    struct conn   *c = t->data;
    struct worker *w = c->worker;

    if (c->state == CONN_READING && worker_conn_unsent(c) == 0
        && c->in_len > 0 && !c->close_after_write) {
        /* A request head that did not arrive in time. */
        if (c->proto == CONN_HTTP) {
            worker_http_error(c, 408, false);
        } else {
            worker_conn_close(c);
            return;
        }
        c->close_after_write = true;
        c->in_len = 0;
        worker_conn_flush(c);
        return;
    }
    log_debug("closing connection %d: %s", c->fd,
              c->state == CONN_DRAINING ? "linger over" : "idle timeout");
    (void) w;
    worker_conn_close(c);
}

/* Drops the first n bytes of input (the request just answered). */
static void
worker_conn_consume(struct conn *c, size_t n)
{
    if (n < c->in_len) {
        memmove(c->in, c->in + n, c->in_len - n);
    }
    c->in_len -= n;
    c->request_start_ms = event_now_ms(&c->worker->loop);
}

static void
worker_conn_read(struct conn *c)
{
    struct worker *w = c->worker;
    size_t         max = c->proto == CONN_HTTP ? WORKER_HTTP_IN_MAX
                                               : RESP_CONN_IN_MAX;

    for (;;) {
        ssize_t n;
        size_t  room;

        if (c->in_len == c->in_cap) {
            if (c->in_cap >= max
                || worker_buf_grow(&c->in, &c->in_cap,
                                   c->in_cap == 0 ? WORKER_IN_INITIAL
                                                  : c->in_cap * 2) != 0) {
                return;                 /* full: parse what we have */
            }
        }
        room = c->in_cap - c->in_len;
        n = read(c->fd, c->in + c->in_len, room);
        if (n > 0) {
            if (c->in_len == 0 && c->state == CONN_READING) {
                c->request_start_ms = event_now_ms(&w->loop);
            }
            c->in_len += (size_t) n;
            c->activity_ms = event_now_ms(&w->loop);
            if ((size_t) n < room) {
                return;                 /* short read: socket drained */
            }
            continue;
        }
        if (n == 0) {
            c->peer_closed = true;
            return;
        }
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }
        log_debug("read(%d) failed: %s", c->fd, strerror(errno));
        worker_conn_close(c);
        return;
    }
}

static void
worker_conn_flush(struct conn *c)
{
    struct worker *w = c->worker;

    while (worker_conn_unsent(c) > 0) {
        ssize_t n = write(c->fd, c->out.data + c->out.pos, worker_conn_unsent(c));

        if (n > 0) {
            c->out.pos += (size_t) n;
            c->activity_ms = event_now_ms(&w->loop);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            worker_conn_update(c);
            return;
        }
        log_debug("write(%d) failed: %s", c->fd, strerror(errno));
        worker_conn_close(c);
        return;
    }
    c->out.pos = 0;
    c->out.len = 0;

    if (c->state == CONN_READING && !c->close_after_write && c->in_len == 0
        && (c->peer_closed || (w->stopping && c->requests > 0))) {
        /* Everything asked is answered and nothing more will come (the
         * client closed its side), or we are stopping and this
         * keep-alive connection is idle. */
        worker_conn_close(c);
        return;
    }
    if (c->close_after_write) {
        if (c->peer_closed) {
            worker_conn_close(c);
            return;
        }
        /* Lingering close: shut our side, then read until the client has
         * seen the answer and closes, so unread input of its own does not
         * make our kernel send a reset over the answer. */
        if (shutdown(c->fd, SHUT_WR) != 0) {
            worker_conn_close(c);
            return;
        }
        c->state = CONN_DRAINING;
        c->in_len = 0;
        if (event_timer_start(&w->loop, &c->timer, WORKER_LINGER_MS) != 0) {
            worker_conn_close(c);
            return;
        }
    }
    worker_conn_update(c);
}

static void
worker_conn_drain(struct conn *c)
{
    char buf[4096];

    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));

        if (n > 0) {
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        worker_conn_close(c);
        return;
    }
}

static void
worker_conn_io_cb(struct event_loop *loop, struct event_io *io,
                  unsigned events)
{
    struct conn *c = io->data;

    if (c->state == CONN_DRAINING) {
        worker_conn_drain(c);
        return;
    }
    if (events & EVENT_READ) {
        worker_conn_read(c);
        if (c->state == CONN_CLOSED) {
            return;
        }
    }
    /* Parse, answer, write; and again while writing everything out made
     * room for requests that backpressure had left in the input. */
    for (;;) {
        uint64_t answered = c->requests;

        worker_conn_process(c);
        if (c->state == CONN_CLOSED) {
            return;
        }
        worker_conn_flush(c);
        if (c->state != CONN_READING || c->in_len == 0
            || c->close_after_write || worker_conn_unsent(c) > 0
            || c->requests == answered) {
            return;
        }
    }
}

/* ---- HTTP requests ---------------------------------------------------- */

static bool
worker_http_keep_alive(const struct conn *c)
{
    return c->req.keep_alive && !c->worker->stopping;
}

/* Appends an error answer for the current request; after a parse error
 * (fatal) the connection closes once it is written. */
static void
worker_http_error(struct conn *c, int status, bool fatal)
{
    struct worker *w = c->worker;
    char           buf[HTTP_HEAD_MAX + 128];
    bool           keep = !fatal && worker_http_keep_alive(c);
    bool           head = !fatal && c->req.method == HTTP_METHOD_HEAD;
    size_t         n;

    n = http_format_error(status, head, keep, !fatal
                          && c->req.version_minor == 0, worker_date(w),
                          NULL, 0, buf, sizeof(buf));
    if (worker_conn_append(c, buf, n) != 0) {
        worker_conn_close(c);
        return;
    }
    if (!keep) {
        c->close_after_write = true;
    }
    c->log_status = status;
    metrics_count_request(w->params->metrics, METRICS_PROTO_HTTP,
                          metrics_code_from_status(status));
}

/* The request line as sent, for the access log. */
static void
worker_http_log(struct conn *c, size_t head_len)
{
    const char *cr = memchr(c->in, '\r', head_len < c->in_len ? head_len
                                                              : c->in_len);
    size_t      n = cr != NULL ? (size_t) (cr - c->in)
                               : (head_len < c->in_len ? head_len
                                                       : c->in_len);

    worker_access_log(c, c->in, n);
}

static void
worker_http_finish(struct conn *c)
{
    worker_http_log(c, c->req.head_len);
    c->requests++;
    worker_conn_consume(c, c->req.head_len + (size_t) c->req.content_length);
    http_parse_init(&c->hp);
    if (!worker_http_keep_alive(c)) {
        c->close_after_write = true;
    }
}

static void
worker_http_backend_cb(struct backend_waiter *wt,
                       const struct backend_reply *r)
{
    struct conn      *c = wt->data;
    struct worker    *w = c->worker;
    bool              head = c->req.method == HTTP_METHOD_HEAD;
    char              hb[HTTP_HEAD_MAX + 512];
    size_t            n;
    int               status;
    struct http_reply reply = {
        .status = 200,
        .keep_alive = worker_http_keep_alive(c),
        .http10 = c->req.version_minor == 0,
        .content_type = "application/octet-stream",
        .content_length = r->len,
        .cache = HTTP_CACHE_MISS,
        .date = worker_date(w),
    };

    c->state = CONN_READING;
    switch (r->result) {
    case BACKEND_VALUE:
        n = http_format_head(&reply, hb, sizeof(hb));
        if (worker_conn_out_reserve(c, n + (head ? 0 : r->len)) != 0) {
            worker_conn_close(c);
            return;
        }
        worker_conn_append(c, hb, n);
        if (!head) {
            worker_conn_append(c, r->data, r->len);
        }
        c->log_status = 200;
        c->log_bytes = r->len;
        c->log_cache = "MISS";
        metrics_count_request(w->params->metrics, METRICS_PROTO_HTTP,
                              METRICS_CODE_200);
        break;
    case BACKEND_NIL:
        worker_http_error(c, 404, false);
        break;
    case BACKEND_WRONGTYPE:
        status = 409;
        n = http_format_error(status, head, reply.keep_alive, reply.http10,
                              reply.date, r->data,
                              r->len > 256 ? 256 : r->len, hb, sizeof(hb));
        if (worker_conn_append(c, hb, n) != 0) {
            worker_conn_close(c);
            return;
        }
        c->log_status = status;
        metrics_count_request(w->params->metrics, METRICS_PROTO_HTTP,
                              metrics_code_from_status(status));
        break;
    case BACKEND_ERROR_REPLY:
    case BACKEND_UNREACHABLE:
        worker_http_error(c, 502, false);
        break;
    case BACKEND_TIMEOUT:
        worker_http_error(c, 504, false);
        break;
    }
    if (c->state == CONN_CLOSED) {
        return;
    }
    worker_http_finish(c);
    worker_conn_process(c);
    if (c->state != CONN_CLOSED) {
        worker_conn_flush(c);
    }
}

/* Serves a hit straight from the segment into the output buffer: the
 * value is copied once, under the read lock, behind room left for the
 * head, and then the head is put in front of it. */
static bool
worker_http_try_hit(struct conn *c, const char *key, size_t key_len)
{
    struct worker      *w = c->worker;
    bool                head_only = c->req.method == HTTP_METHOD_HEAD;
    struct cache_lookup lk;
    enum cache_status   st;
    size_t              want = 4096;
    size_t              n;

    for (int attempt = 0; attempt < 3; attempt++) {
        if (worker_conn_out_reserve(c, HTTP_HEAD_MAX + want) != 0) {
            return false;
        }
        lk.dst = c->out.data + c->out.len + HTTP_HEAD_MAX;
        lk.dst_cap = c->out.cap - c->out.len - HTTP_HEAD_MAX;
        st = cache_get(w->params->cache, key, key_len,
                       cache_clock_ms(), &lk);
        if (st == CACHE_TRUNCATED) {
            want = lk.value_len;        /* it may change: ask again */
            continue;
        }
        if (st != CACHE_HIT) {
            return false;
        }
        struct http_reply reply = {
            .status = 200,
            .keep_alive = worker_http_keep_alive(c),
            .http10 = c->req.version_minor == 0,
            .content_type = "application/octet-stream",
            .content_length = lk.value_len,
            .cache = HTTP_CACHE_HIT,
            .age_s = lk.age_ms / 1000,
        };
        char *head = c->out.data + c->out.len;

        /* The head goes straight in front of the value: the Date-bound
         * prefix is made once a second, the rest per answer. */
        worker_date(w);
        memcpy(head, w->ok_prefix, w->ok_prefix_len);
        n = w->ok_prefix_len;
        n += http_format_ok_suffix(&reply, head + n, HTTP_HEAD_MAX - n);
        if (!head_only) {
            memmove(head + n, head + HTTP_HEAD_MAX, lk.value_len);
            c->out.len += lk.value_len;
        }
        c->out.len += n;
        c->log_status = 200;
        c->log_bytes = lk.value_len;
        c->log_cache = "HIT";
        metrics_count_request(w->params->metrics, METRICS_PROTO_HTTP,
                              METRICS_CODE_200);
        return true;
    }
    return false;
}

/* Answers one complete request; returns false when it now waits on the
 * backend. */
static bool
worker_http_handle(struct conn *c)
{
    struct worker *w = c->worker;
    const char    *path = c->in + c->req.path_off;
    size_t         path_len = c->req.path_len;
    const char    *key;
    ssize_t        key_len;

    if (c->req.method != HTTP_METHOD_GET
        && c->req.method != HTTP_METHOD_HEAD) {
        worker_http_error(c, 405, false);
        return true;
    }
    if (path_len < 2 || path[0] != '/') {
        worker_http_error(c, 400, false);
        return true;
    }
    /* Most keys need no decoding: then the key is the path itself. */
    key = path + 1;
    key_len = (ssize_t) path_len - 1;
    if (memchr(key, '%', (size_t) key_len) != NULL) {
        key_len = http_parse_decode(path + 1, path_len - 1, w->key_buf);
        if (key_len < 0) {
            worker_http_error(c, 400, false);
            return true;
        }
        key = w->key_buf;
    }
    if (worker_http_try_hit(c, key, (size_t) key_len)) {
        return true;
    }
    c->state = CONN_WAITING;
    backend_get(w->backend, key, (size_t) key_len, &c->waiter,
                worker_http_backend_cb, c);
    return false;
}

static void
worker_http_process(struct conn *c)
{
    while (c->state == CONN_READING && !c->close_after_write
           && c->in_len > 0 && worker_conn_unsent(c) < WORKER_OUT_HIGH_WATER) {
        enum http_parse_rc rc = http_parse_request(&c->hp, c->in, c->in_len,
                                                   &c->req);

        if (rc == HTTP_PARSE_AGAIN) {
            return;
        }
        c->log_start_ms = event_now_ms(&c->worker->loop);
        c->log_bytes = 0;
        c->log_cache = NULL;
        if (rc == HTTP_PARSE_ERROR) {
            worker_http_error(c, c->req.status, true);
            worker_http_log(c, c->in_len);
            c->in_len = 0;
            return;
        }
        if (c->in_len < c->req.head_len + c->req.content_length) {
            return;                     /* the ignored body is still due */
        }
        if (!worker_http_handle(c)) {
            return;                     /* WAITING; resumed by callback */
        }
        if (c->state == CONN_CLOSED) {
            return;
        }
        worker_http_finish(c);
    }
}

static void
worker_conn_process(struct conn *c)
{
    if (c->proto == CONN_HTTP) {
        worker_http_process(c);
    } else {
        worker_resp_process(c);
    }
    if (c->state == CONN_READING && c->peer_closed && c->in_len > 0
        && worker_conn_unsent(c) == 0 && !c->close_after_write) {
        /* The client closed in the middle of a request: nothing more
         * will come to complete it. */
        worker_conn_close(c);
    }
}

/* ---- RESP commands ---------------------------------------------------- */

static void
worker_resp_count(struct conn *c, enum metrics_code code)
{
    c->log_status = 0;
    c->log_resp = code == METRICS_CODE_RESP_OK ? "ok"
                  : code == METRICS_CODE_RESP_NIL ? "nil" : "err";
    metrics_count_request(c->worker->params->metrics, METRICS_PROTO_RESP,
                          code);
}

static void
worker_resp_mget_free(struct conn *c)
{
    struct resp_mget *m = c->mget;

    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        backend_cancel(&m->items[i].waiter);
    }
    buf_free(&m->values);
    free(m);
    c->mget = NULL;
}

/* The command is answered: drop it and go on with the next one. */
/* Logs the command being answered as its name and first argument. */
static void
worker_resp_log(struct conn *c)
{
    char   req[300];
    size_t n = 0;

    if (c->worker->params->access_fd < 0 || c->resp_argc == 0) {
        return;
    }
    for (size_t i = 0; i < c->resp_argc && i < 2; i++) {
        size_t len = c->argv[i].len < 140 ? c->argv[i].len : 140;

        if (i > 0) {
            req[n++] = ' ';
        }
        memcpy(req + n, c->in + c->argv[i].off, len);
        n += len;
    }
    worker_access_log(c, req, n);
}

static void
worker_resp_done(struct conn *c)
{
    worker_resp_log(c);
    c->requests++;
    c->state = CONN_READING;
    worker_conn_consume(c, c->resp_consumed);
    c->resp_consumed = 0;
    resp_parse_init(&c->rp);
    worker_resp_process(c);
    if (c->state != CONN_CLOSED) {
        worker_conn_flush(c);
    }
}

static const char *
worker_resp_failure(enum backend_result r)
{
    return r == BACKEND_TIMEOUT
        ? "ERR redis-cache-proxy: the backend Redis timed out"
        : "ERR redis-cache-proxy: the backend Redis is unavailable";
}

static int
worker_resp_append_result(struct conn *c, const struct backend_reply *r)
{
    switch (r->result) {
    case BACKEND_VALUE:
        worker_resp_count(c, METRICS_CODE_RESP_OK);
        c->log_bytes = r->len;
        c->log_cache = "MISS";
        return resp_append_bulk(&c->out, r->data, r->len);
    case BACKEND_NIL:
        worker_resp_count(c, METRICS_CODE_RESP_NIL);
        return resp_append_nil(&c->out);
    case BACKEND_WRONGTYPE:
        worker_resp_count(c, METRICS_CODE_RESP_ERR);
        return resp_append_error(&c->out, r->data, r->len);
    case BACKEND_ERROR_REPLY:
    case BACKEND_UNREACHABLE:
    case BACKEND_TIMEOUT:
        break;
    }
    worker_resp_count(c, METRICS_CODE_RESP_ERR);
    return resp_append_error(&c->out, worker_resp_failure(r->result),
                             strlen(worker_resp_failure(r->result)));
}

static void
worker_resp_get_cb(struct backend_waiter *wt, const struct backend_reply *r)
{
    struct conn *c = wt->data;

    if (worker_resp_append_result(c, r) != 0) {
        worker_conn_close(c);
        return;
    }
    worker_resp_done(c);
}

/* Copies a cached value into out behind room for its bulk header, then
 * writes the header right in front of it.  Returns true on a hit. */
static bool
worker_resp_try_hit(struct conn *c, const char *key, size_t key_len)
{
    struct worker      *w = c->worker;
    struct cache_lookup lk;
    size_t              want = 4096;

    for (int attempt = 0; attempt < 3; attempt++) {
        enum cache_status st;
        char              head[RESP_BULK_HEAD_MAX];
        int               hlen;

        if (buf_reserve(&c->out, RESP_BULK_HEAD_MAX + want + 2) != 0) {
            return false;
        }
        lk.dst = c->out.data + c->out.len + RESP_BULK_HEAD_MAX;
        lk.dst_cap = c->out.cap - c->out.len - RESP_BULK_HEAD_MAX - 2;
        st = cache_get(w->params->cache, key, key_len,
                       cache_clock_ms(), &lk);
        if (st == CACHE_TRUNCATED) {
            want = lk.value_len;
            continue;
        }
        if (st != CACHE_HIT) {
            return false;
        }
        hlen = snprintf(head, sizeof(head), "$%zu\r\n", lk.value_len);
        memcpy(c->out.data + c->out.len, head, (size_t) hlen);
        memmove(c->out.data + c->out.len + hlen,
                c->out.data + c->out.len + RESP_BULK_HEAD_MAX, lk.value_len);
        c->out.len += (size_t) hlen + lk.value_len;
        c->out.data[c->out.len++] = '\r';
        c->out.data[c->out.len++] = '\n';
        worker_resp_count(c, METRICS_CODE_RESP_OK);
        c->log_bytes = lk.value_len;
        c->log_cache = "HIT";
        return true;
    }
    return false;
}

/* Appends the whole MGET answer and frees the MGET.  0 or -ENOMEM. */
static int
worker_resp_mget_reply(struct conn *c)
{
    struct resp_mget *m = c->mget;
    int               rc = 0;

    /* A backend that failed makes the whole answer an error, as Redis
     * would fail the whole command; a wrong type is nil, as in MGET. */
    for (size_t i = 0; i < m->n; i++) {
        enum backend_result r = m->items[i].result;

        if (r == BACKEND_UNREACHABLE || r == BACKEND_TIMEOUT
            || r == BACKEND_ERROR_REPLY) {
            worker_resp_count(c, METRICS_CODE_RESP_ERR);
            rc = resp_append_error(&c->out, worker_resp_failure(r),
                                   strlen(worker_resp_failure(r)));
            goto done;
        }
    }
    rc |= resp_append_array(&c->out, m->n);
    for (size_t i = 0; i < m->n; i++) {
        struct resp_mget_item *it = &m->items[i];

        if (it->result == BACKEND_VALUE) {
            rc |= resp_append_bulk(&c->out, m->values.data + it->off,
                                   it->len);
        } else {
            rc |= resp_append_nil(&c->out);
        }
    }
    worker_resp_count(c, METRICS_CODE_RESP_OK);
done:
    worker_resp_mget_free(c);
    return rc;
}

static void
worker_resp_mget_cb(struct backend_waiter *wt, const struct backend_reply *r)
{
    struct resp_mget_item *it = wt->data;
    struct resp_mget      *m = it->mget;

    it->result = r->result;
    if (r->result == BACKEND_VALUE) {
        it->off = m->values.len;
        it->len = r->len;
        if (buf_append(&m->values, r->data, r->len) != 0) {
            it->result = BACKEND_UNREACHABLE;
        }
    }
    if (--m->pending == 0) {
        struct conn *c = m->conn;

        if (worker_resp_mget_reply(c) != 0) {
            worker_conn_close(c);
            return;
        }
        worker_resp_done(c);
    }
}

/* Hits are copied now; every miss is sent at once, so Redis sees them
 * back to back in one write and the MGET costs one round trip.  Returns
 * true when answered now, false when waiting on the backend. */
static bool
worker_resp_mget(struct conn *c, const struct resp_command *cmd)
{
    struct worker    *w = c->worker;
    size_t            n = cmd->argc - 1;
    struct resp_mget *m;

    m = calloc(1, sizeof(*m) + n * sizeof(m->items[0]));
    if (m == NULL) {
        worker_conn_close(c);
        return true;
    }
    m->conn = c;
    m->n = n;
    c->mget = m;
    for (size_t i = 0; i < n; i++) {
        struct resp_mget_item *it = &m->items[i];
        const char            *key = c->in + cmd->argv[i + 1].off;
        size_t                 key_len = cmd->argv[i + 1].len;
        struct cache_lookup    lk = { 0 };
        enum cache_status      st = CACHE_TRUNCATED;
        size_t                 want = 4096;

        it->mget = m;
        for (int attempt = 0; attempt < 3 && st == CACHE_TRUNCATED;
             attempt++) {
            if (buf_reserve(&m->values, want) != 0) {
                break;
            }
            lk.dst = m->values.data + m->values.len;
            lk.dst_cap = m->values.cap - m->values.len;
            st = cache_get(w->params->cache, key, key_len,
                           cache_clock_ms(), &lk);
            want = lk.value_len;
        }
        if (st == CACHE_HIT) {
            it->result = BACKEND_VALUE;
            it->off = m->values.len;
            it->len = lk.value_len;
            m->values.len += lk.value_len;
            continue;
        }
        it->fetch = true;
        m->pending++;
    }
    if (m->pending == 0) {
        if (worker_resp_mget_reply(c) != 0) {
            worker_conn_close(c);
        }
        return true;
    }
    c->state = CONN_WAITING;
    for (size_t i = 0; i < n; i++) {
        struct resp_mget_item *it = &m->items[i];

        if (it->fetch) {
            backend_get(w->backend, c->in + cmd->argv[i + 1].off,
                        cmd->argv[i + 1].len, &it->waiter,
                        worker_resp_mget_cb, it);
        }
    }
    return false;
}

static void
worker_resp_process(struct conn *c)
{
    struct worker *w = c->worker;

    while (c->state == CONN_READING && !c->close_after_write
           && c->in_len > 0 && worker_conn_unsent(c) < WORKER_OUT_HIGH_WATER) {
        struct resp_command cmd = {
            .argv = c->argv,
            .argv_cap = RESP_CONN_ARGV_MAX,
        };
        enum resp_parse_rc  rc;
        enum resp_action    act;

        rc = resp_parse_command(&c->rp, c->in, c->in_len, &cmd);
        if (rc == RESP_PARSE_AGAIN) {
            if (c->in_len >= RESP_CONN_IN_MAX) {
                cmd.error = "Protocol error: too big request";
                rc = RESP_PARSE_ERROR;
            } else {
                return;
            }
        }
        if (rc == RESP_PARSE_ERROR) {
            char msg[160];
            int  n = snprintf(msg, sizeof(msg), "ERR %s", cmd.error);

            if (resp_append_error(&c->out, msg, (size_t) n) != 0) {
                worker_conn_close(c);
                return;
            }
            worker_resp_count(c, METRICS_CODE_RESP_ERR);
            c->close_after_write = true;
            c->in_len = 0;
            return;
        }
        c->resp_consumed = cmd.consumed;
        c->resp_argc = cmd.argc;
        c->log_start_ms = event_now_ms(&w->loop);
        c->log_bytes = 0;
        c->log_cache = NULL;
        if (cmd.argc == 0) {
            worker_conn_consume(c, c->resp_consumed);
            resp_parse_init(&c->rp);
            continue;
        }
        act = resp_dispatch(c->in, &cmd, w->cfg->redis_db, &c->out);
        switch (act) {
        case RESP_ACTION_REPLIED:
            worker_resp_count(c, METRICS_CODE_RESP_OK);
            break;
        case RESP_ACTION_CLOSE:
            worker_resp_count(c, METRICS_CODE_RESP_OK);
            c->close_after_write = true;
            break;
        case RESP_ACTION_NOMEM:
            worker_conn_close(c);
            return;
        case RESP_ACTION_GET:
            if (worker_resp_try_hit(c, c->in + cmd.argv[1].off,
                                    cmd.argv[1].len)) {
                break;
            }
            c->state = CONN_WAITING;
            backend_get(w->backend, c->in + cmd.argv[1].off, cmd.argv[1].len,
                        &c->waiter, worker_resp_get_cb, c);
            return;
        case RESP_ACTION_MGET:
            if (!worker_resp_mget(c, &cmd)) {
                return;
            }
            if (c->state == CONN_CLOSED) {
                return;
            }
            break;
        }
        worker_resp_log(c);
        worker_conn_consume(c, c->resp_consumed);
        c->resp_consumed = 0;
        c->requests++;
        resp_parse_init(&c->rp);
    }
}

/* ---- accepting -------------------------------------------------------- */

static bool
worker_should_yield(const struct worker *w)
{
    int64_t total = __atomic_load_n(w->params->clients, __ATOMIC_RELAXED);

    if (w->cfg->workers < 2 || w->stopping || w->accept_yielded) {
        return false;
    }
    return (int64_t) w->open_conns * (int64_t) w->cfg->workers > total;
}

static void
worker_accept(struct worker *w, int lfd, enum conn_proto proto)
{
    /* With peers, take one connection per wake-up, and leave it to them
     * when this worker holds more than its share: every worker polling
     * the socket is woken (no EPOLLEXCLUSIVE), so an idle one takes it.  A burst is spread
     * over the workers instead of landing on whichever woke first.  On
     * stop, drain the backlog. */
    int batch = w->stopping ? (int) w->cfg->max_clients
                : w->cfg->workers > 1 ? 1 : WORKER_ACCEPT_BATCH;

    if (worker_should_yield(w)) {
        /* Once: if no peer took it within a few milliseconds, they are
         * busy and this worker accepts after all. */
        w->accept_yielded = true;
        worker_pause_accepting(w, WORKER_YIELD_MS);
        return;
    }
    w->accept_yielded = false;
    for (int i = 0; i < batch; i++) {
        struct sockaddr_storage peer;
        socklen_t               peer_len;
        int                     fd;

        if (w->free_list == NULL || !worker_reserve_client(w)) {
            /* At --max-clients: leave new connections in the backlog and
             * look again shortly (a peer worker may free a slot). */
            worker_pause_accepting(w, WORKER_ACCEPT_RETRY_MS);
            return;
        }
        peer_len = sizeof(peer);
        fd = accept4(lfd, (struct sockaddr *) &peer, &peer_len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;

            worker_release_client(w);
            switch (err) {
            case EAGAIN:
            case EINTR:
                return;
            case ECONNABORTED:
            case EPROTO:
                log_error("accept4() failed: %s", strerror(err));
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                log_error("accept4() failed: %s; pausing accepts for %d ms",
                          strerror(err), WORKER_EMFILE_PAUSE_MS);
                worker_pause_accepting(w, WORKER_EMFILE_PAUSE_MS);
                return;
            default:
                log_error("accept4() failed: %s", strerror(err));
                return;
            }
        }
        worker_conn_open(w, fd, proto, &peer);
    }
}

static void
worker_http_accept_cb(struct event_loop *loop, struct event_io *io,
                      unsigned events)
{
    struct worker *w = io->data;

    worker_accept(w, w->http_fd, CONN_HTTP);
}

static void
worker_resp_accept_cb(struct event_loop *loop, struct event_io *io,
                      unsigned events)
{
    struct worker *w = io->data;

    worker_accept(w, w->resp_fd, CONN_RESP);
}

/* ---- stopping --------------------------------------------------------- */

static void
worker_stop_timer_cb(struct event_loop *loop, struct event_timer *t)
{
    struct worker *w = t->data;

    if (w->open_conns > 0) {
        log_warn("shutdown timeout: closing %zu connection(s) still open",
                 w->open_conns);
    }
    for (uint32_t i = 0; i < w->cfg->max_clients; i++) {
        worker_conn_close(&w->conns[i]);
    }
    event_loop_stop(loop);
}

/* Graceful stop: accept what is already in the backlog (those clients
 * were accepted by the kernel and are owed an answer), stop listening,
 * close idle connections, and let busy ones finish their request. */
static void
worker_stop(struct worker *w)
{
    if (w->stopping) {
        return;
    }
    log_info("stopping: finishing %zu connection(s)", w->open_conns);
    w->stopping = true;
    event_timer_stop(&w->loop, &w->accept_timer);
    if (w->http_fd >= 0) {
        worker_accept(w, w->http_fd, CONN_HTTP);
        event_io_stop(&w->loop, &w->http_io);
        close(w->http_fd);
        w->http_fd = -1;
    }
    if (w->resp_fd >= 0) {
        worker_accept(w, w->resp_fd, CONN_RESP);
        event_io_stop(&w->loop, &w->resp_io);
        close(w->resp_fd);
        w->resp_fd = -1;
    }
    w->accepting = false;
    for (uint32_t i = 0; i < w->cfg->max_clients; i++) {
        struct conn *c = &w->conns[i];

        /* Idle keep-alive connections go now.  One accepted but not yet
         * heard from is a client whose request is on its way: it is
         * answered (with Connection: close) rather than reset. */
        if (c->state == CONN_READING && c->in_len == 0
            && worker_conn_unsent(c) == 0 && c->requests > 0) {
            worker_conn_close(c);
        } else if (c->state == CONN_READING) {
            worker_conn_update(c);
        }
    }
    event_timer_start(&w->loop, &w->stop_timer, w->cfg->shutdown_timeout_ms);
}

static void
worker_signal_cb(struct event_loop *loop, struct event_io *io,
                 unsigned events)
{
    struct worker          *w = io->data;
    struct signalfd_siginfo si;

    for (;;) {
        ssize_t n = read(w->signal_fd, &si, sizeof(si));

        if (n != (ssize_t) sizeof(si)) {
            return;
        }
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
            worker_stop(w);
            break;
        case SIGUSR2:
            if (getenv("REDIS_CACHE_PROXY_TEST_HOOKS") != NULL) {
                /* Test hook: die inside the write lock, as a crash
                 * would, to exercise the supervisor's recovery. */
                log_warn("test hook: dying inside the cache write lock");
                cache_debug_hold_lock(w->params->cache, true);
                raise(SIGKILL);
            }
            break;
        default:
            break;
        }
    }
}

/* ---- setup ------------------------------------------------------------ */

static int
worker_init(struct worker *w, const struct worker_params *p)
{
    sigset_t set;
    int      rc;

    memset(w, 0, sizeof(*w));
    w->params = p;
    w->cfg = p->cfg;
    w->http_fd = p->http_fd;
    w->resp_fd = p->resp_fd;
    w->signal_fd = -1;

    rc = event_loop_init(&w->loop);
    if (rc != 0) {
        log_error("epoll_create1() failed: %s", strerror(-rc));
        return rc;
    }

    /* A peer (client or Redis) that closes while we write must cost an
     * EPIPE, not the process. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        rc = -errno;
        log_error("signal(SIGPIPE) failed: %s", strerror(errno));
        return rc;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        rc = -errno;
        log_error("sigprocmask() failed: %s", strerror(errno));
        return rc;
    }
    w->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w->signal_fd < 0) {
        rc = -errno;
        log_error("signalfd() failed: %s", strerror(errno));
        return rc;
    }
    event_io_init(&w->signal_io, w->signal_fd, worker_signal_cb, w);
    rc = event_io_set(&w->loop, &w->signal_io, EVENT_READ);
    if (rc != 0) {
        log_error("epoll_ctl(ADD, signalfd) failed: %s", strerror(-rc));
        return rc;
    }

    w->conns = calloc(p->cfg->max_clients, sizeof(*w->conns));
    w->key_buf = malloc(HTTP_PARSE_LINE_MAX + RESP_CONN_IN_MAX);
    if (w->conns == NULL || w->key_buf == NULL) {
        log_error("malloc() of %u connection slots failed",
                  p->cfg->max_clients);
        return -ENOMEM;
    }
    for (uint32_t i = p->cfg->max_clients; i-- > 0;) {
        struct conn *c = &w->conns[i];

        c->fd = -1;
        c->worker = w;
        c->state = CONN_FREE;
        c->next = w->free_list;
        w->free_list = c;
    }

    rc = backend_create(&w->loop, p->cfg, p->cache, p->metrics,
                        &w->backend);
    if (rc != 0) {
        log_error("backend_create() failed: %s", strerror(-rc));
        return rc;
    }

    event_timer_init(&w->accept_timer, worker_accept_timer_cb, w);
    event_timer_init(&w->stop_timer, worker_stop_timer_cb, w);
    if (w->http_fd >= 0) {
        event_io_init(&w->http_io, w->http_fd, worker_http_accept_cb, w);
    }
    if (w->resp_fd >= 0) {
        event_io_init(&w->resp_io, w->resp_fd, worker_resp_accept_cb, w);
    }
    worker_set_accepting(w, true);
    return 0;
}

static void
worker_fini(struct worker *w)
{
    if (w->conns != NULL) {
        for (uint32_t i = 0; i < w->cfg->max_clients; i++) {
            struct conn *c = &w->conns[i];

            worker_conn_close(c);
            free(c->in);
            free(c->argv);
            buf_free(&c->out);
        }
    }
    if (w->backend != NULL) {
        backend_destroy(w->backend);
    }
    if (buf_pending(&w->access) > 0) {
        worker_access_flush(w);
    }
    buf_free(&w->access);
    free(w->conns);
    free(w->key_buf);
    if (w->signal_fd >= 0) {
        event_io_stop(&w->loop, &w->signal_io);
        close(w->signal_fd);
    }
    event_loop_fini(&w->loop);
}

int
worker_run(const struct worker_params *params)
{
    struct worker w;
    int           rc;

    rc = worker_init(&w, params);
    if (rc != 0) {
        worker_fini(&w);
        return WORKER_EXIT_FATAL;
    }
    if (params->ready_fd >= 0) {
        char one = 1;

        if (write(params->ready_fd, &one, 1) != 1) {
            log_warn("write(ready pipe) failed: %s", strerror(errno));
        }
        close(params->ready_fd);
    }
    log_debug("serving");
    rc = event_loop_run(&w.loop, worker_before_poll, &w);
    if (rc != 0) {
        log_error("epoll_wait() failed: %s", strerror(-rc));
    }
    worker_fini(&w);
    log_debug("exiting");
    return rc == 0 ? WORKER_EXIT_OK : WORKER_EXIT_FAIL;
}
