/*
 * worker_resp_session: the worker's side of resp_session.c.  Fills in
 * what INFO and CLIENT INFO report from the process (the shared client
 * count, every worker's metrics slot, the cache's counters), runs the
 * session gate before each command, and at EXEC puts the transaction's
 * queued commands back into the connection's input, right after EXEC's
 * own bytes: once EXEC is consumed they are the next commands parsed,
 * and their answers follow EXEC's "*N" as the array's elements.
 */
#include "rcp_autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "resp.h"
#include "worker_conn.h"

struct worker_resp_info_arg {
    struct worker_conn *conn;
    char                addr[INET6_ADDRSTRLEN + 8];
    char                laddr[INET6_ADDRSTRLEN + 8];
};

/* "ip:port" of a socket address, as Redis' CLIENT INFO shows it. */
static void
worker_resp_format_addr(const struct sockaddr_storage *ss, char *buf,
                        size_t len)
{
    char     ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *) ss;

        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *) ss;

        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    }
    snprintf(buf, len, "%s:%u", ip, port);
}

static void
worker_resp_fill_info(void *arg, struct resp_session_server_info *si)
{
    struct worker_resp_info_arg *ia = arg;
    struct worker_conn          *c = ia->conn;
    struct worker               *w = c->worker;
    const struct worker_params  *p = w->params;
    struct metrics_slot_shm      sum;
    struct sockaddr_storage      ss;
    socklen_t                    sl;
    struct timespec              ts;

    metrics_sum(p->metrics_all, &sum);
    cache_stats(p->cache, &si->cache);
    clock_gettime(CLOCK_REALTIME, &ts);
    si->proxy_version = PACKAGE_VERSION;
    si->pid = p->supervisor_pid;
    si->tcp_port = w->cfg->resp_listen.port;
    si->uptime_s = (double) ts.tv_sec > p->start_time
                       ? (uint64_t) ((double) ts.tv_sec - p->start_time)
                       : 0;
    si->now_ms = event_now_ms(&w->loop);
    si->connected_clients =
        (uint64_t) __atomic_load_n(p->clients, __ATOMIC_RELAXED);
    si->connections_received = sum.connections_accepted;
    si->connections_rejected = sum.connections_denied;
    for (size_t i = 0; i < METRICS_CODE_COUNT; i++) {
        si->commands_processed += sum.requests[METRICS_PROTO_RESP][i];
    }
    si->error_replies =
        sum.requests[METRICS_PROTO_RESP][METRICS_CODE_RESP_ERR];
    si->fd = c->fd;
    sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getpeername(c->fd, (struct sockaddr *) &ss, &sl) == 0) {
        worker_resp_format_addr(&ss, ia->addr, sizeof(ia->addr));
    }
    sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(c->fd, (struct sockaddr *) &ss, &sl) == 0) {
        worker_resp_format_addr(&ss, ia->laddr, sizeof(ia->laddr));
    }
    si->addr = ia->addr;
    si->laddr = ia->laddr;
    si->qbuf = c->in.len;
    si->qbuf_free = c->in.cap - c->in.len;
    si->obl = buf_pending(&c->out);
    si->oll = c->out_len;
    si->omem = c->out_values_unsent;
    si->tot_mem = c->in.cap + c->out.cap;
}

static bool
worker_resp_key_allowed(void *arg, const char *key, size_t len)
{
    struct worker_resp_info_arg *ia = arg;

    return access_key_allowed(&ia->conn->worker->acl, key, len);
}

/* What the session may ask of the worker, for ia's connection. */
static struct resp_session_env
worker_resp_env(struct worker_resp_info_arg *ia)
{
    struct resp_session_env env = {
        .cfg = ia->conn->worker->cfg,
        .fill_info = worker_resp_fill_info,
        .key_allowed = worker_resp_key_allowed,
        .arg = ia,
    };

    return env;
}

void
worker_resp_session_open(struct worker_conn *c)
{
    struct worker *w = c->worker;

    /* Unique across workers: the worker's index in the high bits. */
    resp_session_init(&c->session,
                      ((uint64_t) w->params->index << 32) | ++w->client_ids,
                      event_now_ms(&w->loop), w->cfg);
}

void
worker_resp_session_fini(struct worker_conn *c)
{
    resp_session_fini(&c->session);
}

/* Counts the answer the session just wrote after the pending bytes
 * that were there before (appending may have rewound out, hence pos +
 * pending): an error or not. */
static void
worker_resp_session_count(struct worker_conn *c, size_t pending)
{
    size_t from = c->out.pos + pending;
    bool   err = c->out.len > from && c->out.data[from] == '-';

    worker_resp_count(c, err ? METRICS_CODE_RESP_ERR : METRICS_CODE_RESP_OK);
    if (err && c->out.len - from > 5
        && (memcmp(c->out.data + from, "-NOAUTH", 7) == 0
            || memcmp(c->out.data + from, "-WRONGPASS", 10) == 0)) {
        metrics_count_auth_failure(c->worker->params->metrics);
    }
}

bool
worker_resp_gate(struct worker_conn *c, const struct resp_command *cmd)
{
    struct worker_resp_info_arg ia = { .conn = c };
    struct resp_session_env     env = worker_resp_env(&ia);
    size_t                      pending = buf_pending(&c->out);
    enum resp_session_rc        rc;

    if (c->session.authed && !c->session.in_multi) {
        return false; /* the common case, decided fast */
    }
    /* Offsets count from in.data; the command ends at resp_consumed. */
    rc = resp_session_gate(&c->session, c->in.data, cmd,
                           c->in.data + c->resp_consumed - cmd->consumed,
                           cmd->consumed, &env, &c->out);
    if (rc == RESP_SESSION_PASS) {
        return false;
    }
    if (rc == RESP_SESSION_NOMEM) {
        worker_conn_close(c);
        return true;
    }
    worker_resp_session_count(c, pending);
    return true;
}

/* Puts the queued commands right after EXEC's bytes in the input
 * (exec_end: where they end, from in.data). */
static int
worker_resp_replay(struct worker_conn *c, size_t exec_end)
{
    struct buf q;
    size_t     qlen;
    int        rc;

    resp_session_take_queue(&c->session, &q);
    qlen = q.len;
    if (qlen == 0) {
        buf_free(&q);
        return 0;
    }
    rc = buf_reserve(&c->in, qlen);
    if (rc == 0) {
        memmove(c->in.data + exec_end + qlen, c->in.data + exec_end,
                c->in.len - exec_end);
        memcpy(c->in.data + exec_end, q.data, qlen);
        c->in.len += qlen;
    }
    buf_free(&q);
    return rc;
}

bool
worker_resp_session(struct worker_conn *c, const struct resp_command *cmd)
{
    struct worker_resp_info_arg ia = { .conn = c };
    struct resp_session_env     env = worker_resp_env(&ia);
    size_t                      pending = buf_pending(&c->out);
    enum resp_session_rc        rc;

    rc = resp_session_command(&c->session, c->in.data, cmd, &env, &c->out);
    if (rc == RESP_SESSION_EXEC
        && worker_resp_replay(c, c->resp_consumed) != 0) {
        rc = RESP_SESSION_NOMEM;
    }
    if (rc == RESP_SESSION_NOMEM) {
        worker_conn_close(c);
        return false;
    }
    worker_resp_session_count(c, pending);
    if (rc == RESP_SESSION_CLOSE) {
        c->close_after_write = true;
    }
    return true;
}
