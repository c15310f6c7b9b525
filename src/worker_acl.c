/*
 * worker_acl: the worker's side of access control (access.h): it asks
 * the pure checks at the points where a connection or a request can be
 * refused, and writes the refusal.
 *
 *   accept   --allow-from: closed at once, counted as denied; a peer in
 *            --proxy-protocol-from is let in and judged on the client
 *            its PROXY header names (on itself for LOCAL / UNKNOWN)
 *   first bytes   from a trusted peer: the PROXY header is required,
 *            parsed (proxy_proto.c) and dropped; from any other peer a
 *            PROXY header is refused (400, or a RESP error) and closed
 *   HTTP request  --http-auth-file: 401 + WWW-Authenticate; then
 *            --allow-keys: 403 (before the cache and Redis)
 *   RESP GET/MGET --allow-keys: -NOPERM (before the cache and Redis)
 */
#include "rcp_autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "proxy_proto.h"
#include "resp.h"
#include "worker_conn.h"

static const char worker_acl_noperm[] = RESP_SESSION_NOPERM;

int
worker_acl_init(struct worker *w)
{
    char err[CONFIG_ERR_MAX];
    int  rc =
        access_init(&w->acl, w->cfg, w->params->http_auth, err, sizeof(err));

    if (rc == -ENOMEM) {
        return rc;
    }
    if (rc != 0) {
        /* Fail closed: every HTTP request gets 401 until a reload with
         * a usable file.  Not expected: the supervisor hands every
         * worker the credentials it parsed. */
        log_error("--http-auth-file %s; refusing every HTTP request", err);
    }
    return 0;
}

void
worker_acl_fini(struct worker *w)
{
    access_fini(&w->acl);
}

bool
worker_acl_accept(struct worker *w, int fd,
                  const struct sockaddr_storage *peer, bool *expect_proxy)
{
    const struct sockaddr *sa = (const struct sockaddr *) peer;

    *expect_proxy = access_proxy_trusted(&w->acl, sa);
    if (*expect_proxy || access_client_allowed(&w->acl, sa)) {
        return true;
    }
    /* Counted before the close, so whoever sees the close sees it. */
    metrics_count_connection(w->params->metrics, true);
    if (close(fd) != 0) {
        log_debug("close(%d) failed: %s", fd, strerror(errno));
    }
    return false;
}

/* A refused or broken PROXY header: answer in the connection's protocol
 * and close. */
static void
worker_acl_proxy_refuse(struct worker_conn *c, const char *why)
{
    log_debug("closing connection %d: %s", c->fd, why);
    c->in.len = 0;
    c->proto->proxy_refused(c);
}

bool
worker_acl_proxy(struct worker_conn *c)
{
    struct proxy_proto_result r;
    enum proxy_proto_rc       rc;

    if (c->proxy == CONN_PROXY_REFUSE) {
        size_t need = c->in.len > 0 && c->in.data[0] == 'P' ? 6 : 12;

        if (!proxy_proto_looks_like(c->in.data, c->in.len)) {
            c->proxy = CONN_PROXY_DONE;
            return true;
        }
        if (c->in.len < need && !c->peer_closed) {
            return false; /* cannot tell yet */
        }
        worker_acl_proxy_refuse(c, "PROXY header from an untrusted peer");
        return false;
    }
    rc = proxy_proto_parse(c->in.data, c->in.len, &r);
    if (rc == PROXY_PROTO_AGAIN) {
        if (c->peer_closed) {
            worker_conn_close(c);
        }
        return false;
    }
    if (rc == PROXY_PROTO_ERROR) {
        worker_acl_proxy_refuse(c, r.error);
        return false;
    }
    if (r.has_addr) {
        const void *a =
            r.src.ss_family == AF_INET6
                ? (const void *) &((const struct sockaddr_in6 *) &r.src)
                      ->sin6_addr
                : (const void *) &((const struct sockaddr_in *) &r.src)
                      ->sin_addr;

        inet_ntop(r.src.ss_family, a, c->peer, sizeof(c->peer));
        if (!access_client_allowed(&c->worker->acl,
                                   (const struct sockaddr *) &r.src)) {
            metrics_count_connection(c->worker->params->metrics, true);
            worker_conn_close(c);
            return false;
        }
    } else {
        /* LOCAL / UNKNOWN keep the connection's own address (the man
         * page), so --allow-from judges the trusted peer itself, which
         * accept let in only because it was trusted. */
        struct sockaddr_storage self;
        socklen_t               slen = sizeof(self);

        if (getpeername(c->fd, (struct sockaddr *) &self, &slen) != 0) {
            log_debug("getpeername(%d) failed: %s", c->fd, strerror(errno));
            worker_conn_close(c);
            return false;
        }
        if (!access_client_allowed(&c->worker->acl,
                                   (const struct sockaddr *) &self)) {
            metrics_count_connection(c->worker->params->metrics, true);
            worker_conn_close(c);
            return false;
        }
    }
    worker_conn_consume(c, r.len);
    c->proxy = CONN_PROXY_DONE;
    return true;
}

/* Appends a 401 with WWW-Authenticate: the error answer, with the header
 * put in before the blank line that ends its head. */
static void
worker_acl_http_401(struct worker_conn *c)
{
    struct worker *w = c->worker;
    const char    *challenge =
        w->acl.http_auth != NULL
               ? http_auth_challenge(w->acl.http_auth)
               : "Basic realm=\"redis-cache-proxy\", charset=\"UTF-8\"";
    size_t before = buf_pending(&c->out);
    char   hdr[160];
    int    hlen =
        snprintf(hdr, sizeof(hdr), "WWW-Authenticate: %s\r\n", challenge);
    char *start, *end;

    worker_http_error(c, 401, false);
    if (c->state == CONN_CLOSED) {
        return;
    }
    start = c->out.data + c->out.pos + before;
    end = memmem(start, c->out.len - (size_t) (start - c->out.data),
                 "\r\n\r\n", 4);
    if (end == NULL || worker_conn_out_reserve(c, (size_t) hlen) != 0) {
        worker_conn_close(c);
        return;
    }
    /* The reserve may have moved the buffer: find the spot again. */
    start = c->out.data + c->out.pos + before;
    end = memmem(start, c->out.len - (size_t) (start - c->out.data),
                 "\r\n\r\n", 4)
          + 2;
    memmove(end + hlen, end, (size_t) (c->out.data + c->out.len - end));
    memcpy(end, hdr, (size_t) hlen);
    c->out.len += (size_t) hlen;
    metrics_count_auth_failure(w->params->metrics);
}

bool
worker_acl_http_request(struct worker_conn *c)
{
    struct worker *w = c->worker;
    const char    *value = NULL;
    size_t         len = 0;
    bool           ok;

    if (!w->acl.http_auth_on) {
        return true;
    }
    if (w->acl.http_auth != NULL
        && !http_auth_find_header(c->in.data, c->req.head_len, "authorization",
                                  &value, &len)) {
        value = NULL;
    }
    if (w->acl.http_auth == NULL) {
        worker_acl_http_401(c);
        return false;
    }
    ok = http_auth_check(w->acl.http_auth, value, len) == HTTP_AUTH_OK;
    /* A credential not yet remembered costs a bcrypt, tens of
     * milliseconds: the loop's clock is stale after it, and a Redis
     * deadline armed from it would be spent before it starts. */
    event_update_time(&w->loop);
    if (!ok) {
        worker_acl_http_401(c);
        return false;
    }
    return true;
}

bool
worker_acl_http_key(struct worker_conn *c, const char *key, size_t len)
{
    if (access_key_allowed(&c->worker->acl, key, len)) {
        return true;
    }
    worker_http_error(c, 403, false);
    return false;
}

bool
worker_acl_resp_keys(struct worker_conn *c, const struct resp_command *cmd)
{
    for (size_t i = 1; i < cmd->argc; i++) {
        if (!access_key_allowed(&c->worker->acl, c->in.data + cmd->argv[i].off,
                                cmd->argv[i].len)) {
            if (resp_append_error(&c->out, worker_acl_noperm,
                                  strlen(worker_acl_noperm))
                != 0) {
                worker_conn_close(c);
                return false;
            }
            worker_resp_count(c, METRICS_CODE_RESP_ERR);
            return false;
        }
    }
    return true;
}
