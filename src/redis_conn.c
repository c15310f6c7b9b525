/*
 * redis_conn: see redis_conn.h for the states and the contract.
 *
 * Reading.  rbuf holds bytes read and not yet parsed; rbuf.pos is the
 * start of the reply being read.  redis_conn_parse() runs the scanner
 * over the part of rbuf not yet scanned (`scanned` counts what it
 * consumed of the current reply) and then, per reply kind:
 *   - top-level bulk: the header leaves rbuf; the payload is copied from
 *     rbuf into `value`, and once rbuf is empty the socket is read
 *     straight into the value; then two bytes of CRLF are checked.
 *   - a bulk over max_reply_bytes: `drop_left` bytes are consumed and
 *     dropped as they come, from rbuf or from the socket.
 *   - any other reply: once the scanner says DONE, exactly its bytes go
 *     to redisReader, which must then return one reply.  A too-large
 *     one is dropped as it is scanned.
 *
 * Every callback may close the connection (generation changes): each
 * loop that calls one checks the generation right after.
 *
 * TLS: OpenSSL keeps decrypted bytes epoll cannot see, so a read that
 * stops at its budget with SSL_pending() > 0 re-arms the kick timer to
 * read again.  A write that wants a read (renegotiation) is retried on
 * the next readable event.  SIGPIPE is ignored by the process.
 *
 * Hostnames are resolved with getaddrinfo(), which blocks: only when
 * (re)connecting, never per request; use an address to avoid it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "redis_conn.h"

#define REDIS_CONN_READ_CHUNK (64u * 1024u)

static void redis_conn_on_io(struct event_loop *loop, struct event_io *io,
                             unsigned events);
static void redis_conn_on_kick(struct event_loop  *loop,
                               struct event_timer *timer);

void
redis_conn_init(struct redis_conn *c, struct event_loop *loop,
                const struct redis_conn_ops *ops, void *data)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->ops = ops;
    c->data = data;
    c->fd = -1;
    c->state = REDIS_CONN_CLOSED;
    event_timer_init(&c->kick, redis_conn_on_kick, c);
}

static void
redis_conn_reset_reply(struct redis_conn *c)
{
    redis_scan_init(&c->scan, c->max_reply_bytes);
    c->scanned = 0;
    value_unref(c->value);
    c->value = NULL;
    c->value_got = 0;
    c->drop_left = 0;
    c->drop_size = 0;
    c->crlf_due = false;
}

void
redis_conn_close(struct redis_conn *c)
{
    if (c->state == REDIS_CONN_CLOSED) {
        return;
    }
    c->generation++;
    event_io_stop(c->loop, &c->io);
    event_timer_stop(c->loop, &c->kick);
    c->io_mask = 0;
    if (c->ssl != NULL) {
        /* No close_notify: the socket is going away and a blocked peer
         * must not hold us; Redis treats either the same. */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        /* close() fails only with EINTR or EIO here, and on Linux the
         * fd is released either way: nothing to retry or report. */
        (void) close(c->fd);
        c->fd = -1;
    }
    c->state = REDIS_CONN_CLOSED;
    c->want_write = false;
    c->wbuf.pos = c->wbuf.len = 0;
    c->rbuf.pos = c->rbuf.len = 0;
    redis_conn_reset_reply(c);
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
}

bool
redis_conn_reply_started(const struct redis_conn *c)
{
    return c->state == REDIS_CONN_OPEN
           && (c->value != NULL || c->drop_left > 0 || c->crlf_due
               || buf_pending(&c->rbuf) > 0);
}

void
redis_conn_fini(struct redis_conn *c)
{
    redis_conn_close(c);
    buf_free(&c->wbuf);
    buf_free(&c->rbuf);
}

/* Closes, then tells the owner.  The last thing a caller does. */
static void
redis_conn_fail(struct redis_conn *c, enum redis_conn_error kind,
                const char *why)
{
    char copy[REDIS_CONN_WHY_MAX];

    (void) snprintf(copy, sizeof(copy), "%s", why);
    redis_conn_close(c);
    c->ops->on_error(c, kind, copy);
}

static void
redis_conn_set_io(struct redis_conn *c, unsigned mask)
{
    int rc;

    if (c->io_mask == mask && c->io.registered) {
        return;
    }
    rc = event_io_set(c->loop, &c->io, mask);
    if (rc != 0) {
        char why[REDIS_CONN_WHY_MAX];

        (void) snprintf(why, sizeof(why), "epoll_ctl(fd %d) failed: %s", c->fd,
                        strerror(-rc));
        /* From inside our own loop callbacks only; see callers. */
        redis_conn_fail(c, REDIS_CONN_ERR_LOST, why);
        return;
    }
    c->io_mask = mask;
}

static void
redis_conn_kick(struct redis_conn *c)
{
    if (!event_timer_active(&c->kick)
        && event_timer_start(c->loop, &c->kick, 0) != 0) {
        /* No memory for the heap slot: the next read or send retries. */
        return;
    }
}

/* --- TLS ----------------------------------------------------------------- */

/* OpenSSL's reason for the last failure, with the certificate check's
 * own words when that is what failed. */
static void
redis_conn_tls_why(struct redis_conn *c, const char *what, int ssl_err,
                   char *why, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char   *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    long vr = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;

    if (vr != X509_V_OK) {
        (void) snprintf(why, len, "%s: certificate verify failed: %s", what,
                        X509_verify_cert_error_string(vr));
    } else if (reason != NULL) {
        (void) snprintf(why, len, "%s: %s", what, reason);
    } else if (ssl_err == SSL_ERROR_SYSCALL && errno != 0) {
        (void) snprintf(why, len, "%s: %s", what, strerror(errno));
    } else {
        (void) snprintf(why, len, "%s: connection closed by the server", what);
    }
    ERR_clear_error();
}

/* OpenSSL's words for e; a system error (a missing file) has no reason
 * string in OpenSSL 3, so then the whole error line. */
static const char *
redis_conn_ssl_reason(unsigned long e, char *buf, size_t len)
{
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (reason != NULL) {
        return reason;
    }
    if (e == 0) {
        return "unknown error";
    }
    ERR_error_string_n(e, buf, len);
    return buf;
}

struct ssl_ctx_st *
redis_conn_tls_ctx(bool verify, const char *ca_file, const char *ca_dir,
                   const char *cert_file, const char *key_file, char *err,
                   size_t err_len)
{
    SSL_CTX      *ctx = SSL_CTX_new(TLS_client_method());
    char          reason[160];
    unsigned long e;

    if (ctx == NULL) {
        (void) snprintf(err, err_len, "SSL_CTX_new() failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                              | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (ca_file != NULL || ca_dir != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, ca_dir) != 1) {
            e = ERR_get_error();
            (void) snprintf(err, err_len, "cannot load the CA %s '%s': %s",
                            ca_file != NULL ? "file" : "directory",
                            ca_file != NULL ? ca_file : ca_dir,
                            redis_conn_ssl_reason(e, reason, sizeof(reason)));
            goto fail;
        }
    } else if (verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        (void) snprintf(err, err_len, "cannot load the system CA store");
        goto fail;
    }
    if (cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
            e = ERR_get_error();
            (void) snprintf(err, err_len, "cannot load certificate '%s': %s",
                            cert_file,
                            redis_conn_ssl_reason(e, reason, sizeof(reason)));
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(
                ctx, key_file != NULL ? key_file : cert_file, SSL_FILETYPE_PEM)
                != 1
            || SSL_CTX_check_private_key(ctx) != 1) {
            e = ERR_get_error();
            (void) snprintf(err, err_len, "cannot load key '%s': %s",
                            key_file != NULL ? key_file : cert_file,
                            redis_conn_ssl_reason(e, reason, sizeof(reason)));
            goto fail;
        }
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

void
redis_conn_tls_ctx_free(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}

static int
redis_conn_tls_start(struct redis_conn *c, const struct redis_conn_target *t,
                     char *why)
{
    const char   *name = t->server_name != NULL && t->server_name[0] != '\0'
                             ? t->server_name
                             : t->host;
    unsigned char addr[16];
    bool          is_ip = inet_pton(AF_INET, name, addr) == 1
                 || inet_pton(AF_INET6, name, addr) == 1;

    c->ssl = SSL_new(t->tls);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        (void) snprintf(why, REDIS_CONN_WHY_MAX, "SSL_new() failed");
        return -ENOMEM;
    }
    if (!is_ip && SSL_set_tlsext_host_name(c->ssl, name) != 1) {
        (void) snprintf(why, REDIS_CONN_WHY_MAX, "bad TLS server name '%s'",
                        name);
        return -EINVAL;
    }
    /* The name (or address) the certificate must carry. */
    if (is_ip
            ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1
            : SSL_set1_host(c->ssl, name) != 1) {
        (void) snprintf(why, REDIS_CONN_WHY_MAX, "bad TLS server name '%s'",
                        name);
        return -EINVAL;
    }
    SSL_set_connect_state(c->ssl);
    return 0;
}

/* --- connecting ---------------------------------------------------------- */

static int
redis_conn_socket(struct redis_conn *c, int family, const struct sockaddr *sa,
                  socklen_t len, char *why)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0) {
        int e = errno;

        (void) snprintf(why, REDIS_CONN_WHY_MAX, "socket() failed: %s",
                        strerror(e));
        return -e;
    }
    if (family != AF_UNIX) {
        /* Commands are small and pipelined by our own batching. */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
        int e = errno;

        (void) snprintf(why, REDIS_CONN_WHY_MAX, "connect() failed: %s",
                        strerror(e));
        (void) close(fd);
        return -e;
    }
    c->fd = fd;
    return 0;
}

int
redis_conn_open(struct redis_conn *c, const struct redis_conn_target *t,
                uint64_t max_reply_bytes, char *why)
{
    int rc = -EINVAL;

    assert(c->state == REDIS_CONN_CLOSED);
    c->max_reply_bytes = max_reply_bytes;
    c->rx_bytes = 0;
    redis_conn_reset_reply(c);
    c->reader = redisReaderCreate();
    if (c->reader == NULL) {
        (void) snprintf(why, REDIS_CONN_WHY_MAX, "out of memory");
        return -ENOMEM;
    }
    if (t->is_unix) {
        struct sockaddr_un sun;

        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(t->path) >= sizeof(sun.sun_path)) {
            (void) snprintf(why, REDIS_CONN_WHY_MAX, "socket path too long");
            goto fail;
        }
        memcpy(sun.sun_path, t->path, strlen(t->path));
        rc = redis_conn_socket(c, AF_UNIX, (struct sockaddr *) &sun,
                               sizeof(sun), why);
    } else {
        struct addrinfo hints, *res = NULL, *ai;
        char            port[8];
        int             gai;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_ADDRCONFIG;
        (void) snprintf(port, sizeof(port), "%u", (unsigned) t->port);
        gai = getaddrinfo(t->host, port, &hints, &res);
        if (gai != 0) {
            (void) snprintf(why, REDIS_CONN_WHY_MAX,
                            "getaddrinfo(%s) failed: %s", t->host,
                            gai_strerror(gai));
            rc = -EHOSTUNREACH;
            goto fail;
        }
        for (ai = res; ai != NULL; ai = ai->ai_next) {
            rc = redis_conn_socket(c, ai->ai_family, ai->ai_addr,
                                   ai->ai_addrlen, why);
            if (rc == 0) {
                break;
            }
        }
        freeaddrinfo(res);
    }
    if (rc != 0) {
        goto fail;
    }
    if (t->tls != NULL && (rc = redis_conn_tls_start(c, t, why)) != 0) {
        goto fail;
    }
    c->state = REDIS_CONN_CONNECTING;
    event_io_init(&c->io, c->fd, redis_conn_on_io, c);
    c->io_mask = 0;
    rc = event_io_set(c->loop, &c->io, EVENT_WRITE);
    if (rc != 0) {
        (void) snprintf(why, REDIS_CONN_WHY_MAX, "epoll_ctl(fd %d) failed: %s",
                        c->fd, strerror(-rc));
        goto fail;
    }
    c->io_mask = EVENT_WRITE;
    return 0;
fail:
    c->state = REDIS_CONN_CONNECTING; /* so close() releases it all */
    redis_conn_close(c);
    return rc != 0 ? rc : -EINVAL;
}

/* --- writing ------------------------------------------------------------- */

int
redis_conn_send(struct redis_conn *c, const char *cmd, size_t len)
{
    assert(c->state != REDIS_CONN_CLOSED);
    if (buf_append(&c->wbuf, cmd, len) != 0) {
        return -ENOMEM;
    }
    if (c->state == REDIS_CONN_OPEN && !c->want_write) {
        redis_conn_kick(c);
    }
    return 0;
}

int
redis_conn_send_argv(struct redis_conn *c, int argc, const char **argv,
                     const size_t *lens)
{
    char *cmd = NULL;
    int   len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    int   rc;

    if (len < 0 || cmd == NULL) {
        return -ENOMEM;
    }
    rc = redis_conn_send(c, cmd, (size_t) len);
    redisFreeCommand(cmd);
    return rc;
}

static void redis_conn_update_io(struct redis_conn *c);

/* Writes what is queued.  0, or -1 when it failed (closed, reported). */
static int
redis_conn_flush(struct redis_conn *c)
{
    while (buf_pending(&c->wbuf) > 0) {
        const char *p = c->wbuf.data + c->wbuf.pos;
        size_t      n = buf_pending(&c->wbuf);
        ssize_t     w;

        if (c->ssl != NULL) {
            int r;

            ERR_clear_error();
            r = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int) n);

            if (r <= 0) {
                int  e = SSL_get_error(c->ssl, r);
                char why[REDIS_CONN_WHY_MAX];

                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    c->want_write = e == SSL_ERROR_WANT_WRITE;
                    redis_conn_update_io(c);
                    return 0;
                }
                redis_conn_tls_why(c, "TLS write failed", e, why, sizeof(why));
                redis_conn_fail(c, REDIS_CONN_ERR_LOST, why);
                return -1;
            }
            w = r;
        } else {
            w = write(c->fd, p, n);
            if (w < 0) {
                char why[REDIS_CONN_WHY_MAX];

                if (errno == EAGAIN || errno == EINTR) {
                    c->want_write = errno == EAGAIN;
                    redis_conn_update_io(c);
                    return 0;
                }
                (void) snprintf(why, sizeof(why), "write() failed: %s",
                                strerror(errno));
                redis_conn_fail(c, REDIS_CONN_ERR_LOST, why);
                return -1;
            }
        }
        c->wbuf.pos += (size_t) w;
    }
    c->wbuf.pos = c->wbuf.len = 0;
    if (c->want_write) {
        c->want_write = false;
        redis_conn_update_io(c);
    }
    return 0;
}

static void
redis_conn_update_io(struct redis_conn *c)
{
    redis_conn_set_io(c, EVENT_READ | (c->want_write ? EVENT_WRITE : 0));
}

/* --- reading ------------------------------------------------------------- */

static void
redis_conn_deliver(struct redis_conn *c, const struct redis_conn_reply *r)
{
    c->ops->on_reply(c, r);
}

/* Parses what rbuf holds.  Returns false when the connection closed. */
static bool
redis_conn_parse(struct redis_conn *c)
{
    uint64_t gen = c->generation;

    for (;;) {
        struct buf             *rb = &c->rbuf;
        size_t                  pending = buf_pending(rb);
        struct redis_conn_reply r;
        enum redis_scan_rc      rc;
        size_t                  used, n;

        memset(&r, 0, sizeof(r));
        if (c->value != NULL && !c->crlf_due) {
            /* A bulk payload, from what was read with its header. */
            n = c->value->len - c->value_got;
            if (n > pending) {
                n = pending;
            }
            memcpy(c->value->data + c->value_got, rb->data + rb->pos, n);
            value_fed(c->value, c->value_got, n);
            c->value_got += n;
            rb->pos += n;
            if (c->value_got < c->value->len) {
                return true;
            }
            c->crlf_due = true;
            pending = buf_pending(rb);
        }
        if (c->drop_left > 0) {
            n = pending < c->drop_left ? pending : (size_t) c->drop_left;
            rb->pos += n;
            c->drop_left -= n;
            if (c->drop_left > 0) {
                return true;
            }
            pending = buf_pending(rb);
            if (c->value == NULL && !c->crlf_due) {
                /* A dropped bulk: its CRLF was counted in drop_left. */
                r.kind = REDIS_CONN_REPLY_TOO_LARGE;
                r.size = c->drop_size;
                redis_conn_reset_reply(c);
                redis_conn_deliver(c, &r);
                if (c->generation != gen) {
                    return false;
                }
                continue;
            }
        }
        if (c->crlf_due) {
            if (pending < 2) {
                return true;
            }
            if (rb->data[rb->pos] != '\r' || rb->data[rb->pos + 1] != '\n') {
                redis_conn_fail(c, REDIS_CONN_ERR_PROTOCOL,
                                "bulk reply without its CRLF");
                return false;
            }
            rb->pos += 2;
            r.kind = REDIS_CONN_REPLY_BULK;
            r.value = c->value;
            c->value = NULL;
            redis_conn_reset_reply(c);
            redis_conn_deliver(c, &r);
            value_unref(r.value);
            if (c->generation != gen) {
                return false;
            }
            continue;
        }
        if (pending == c->scanned) {
            return true;
        }

        rc = redis_scan(&c->scan, rb->data + rb->pos + c->scanned,
                        pending - c->scanned, &used);
        c->scanned += used;
        if (c->scan.too_large) {
            /* Keep nothing of it: the scanner knows where it ends. */
            rb->pos += c->scanned;
            c->scanned = 0;
        }
        switch (rc) {
        case REDIS_SCAN_AGAIN:
            return true;
        case REDIS_SCAN_BAD:
            redis_conn_fail(c, REDIS_CONN_ERR_PROTOCOL,
                            "malformed reply from Redis");
            return false;
        case REDIS_SCAN_BULK:
            rb->pos += c->scanned;
            c->scanned = 0;
            if ((uint64_t) c->scan.bulk_len > c->max_reply_bytes) {
                c->drop_size = (uint64_t) c->scan.bulk_len;
                c->drop_left = (uint64_t) c->scan.bulk_len + 2;
                continue;
            }
            c->value = value_create((size_t) c->scan.bulk_len);
            if (c->value == NULL) {
                redis_conn_fail(c, REDIS_CONN_ERR_NOMEM,
                                "out of memory for a reply");
                return false;
            }
            c->value_got = 0;
            if (c->value->len == 0) {
                c->crlf_due = true;
            }
            continue;
        case REDIS_SCAN_DONE:
            break;
        }
        if (c->scan.too_large) {
            r.kind = REDIS_CONN_REPLY_TOO_LARGE;
            r.size = c->scan.size;
            redis_conn_reset_reply(c);
            redis_conn_deliver(c, &r);
        } else if (c->scan.type == '$') {
            rb->pos += c->scanned;
            redis_conn_reset_reply(c);
            r.kind = REDIS_CONN_REPLY_NIL;
            redis_conn_deliver(c, &r);
        } else {
            void *reply = NULL;

            if (redisReaderFeed(c->reader, rb->data + rb->pos, c->scanned)
                    != REDIS_OK
                || redisReaderGetReply(c->reader, &reply) != REDIS_OK
                || reply == NULL) {
                if (reply != NULL) {
                    freeReplyObject(reply);
                }
                redis_conn_fail(c, REDIS_CONN_ERR_PROTOCOL,
                                "malformed reply from Redis");
                return false;
            }
            rb->pos += c->scanned;
            redis_conn_reset_reply(c);
            r.kind = REDIS_CONN_REPLY_OTHER;
            r.reply = reply;
            redis_conn_deliver(c, &r);
            freeReplyObject(reply);
        }
        if (c->generation != gen) {
            return false;
        }
    }
}

/* One read into p.  >0 bytes, 0 nothing now, -1 closed (reported). */
static ssize_t
redis_conn_recv(struct redis_conn *c, char *p, size_t n)
{
    char    why[REDIS_CONN_WHY_MAX];
    ssize_t r;

    if (c->ssl != NULL) {
        int got;
        int e;

        ERR_clear_error();
        got = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int) n);
        if (got > 0) {
            return got;
        }
        e = SSL_get_error(c->ssl, got);
        if (e == SSL_ERROR_WANT_READ) {
            return 0;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            c->want_write = true;
            redis_conn_update_io(c);
            return c->state == REDIS_CONN_CLOSED ? -1 : 0;
        }
        if (e == SSL_ERROR_ZERO_RETURN
            || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
            redis_conn_fail(c, REDIS_CONN_ERR_LOST,
                            "connection closed by the server");
            return -1;
        }
        redis_conn_tls_why(c, "TLS read failed", e, why, sizeof(why));
        redis_conn_fail(c, REDIS_CONN_ERR_LOST, why);
        return -1;
    }
    r = read(c->fd, p, n);
    if (r > 0) {
        return r;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }
    if (r == 0) {
        redis_conn_fail(c, REDIS_CONN_ERR_LOST,
                        "connection closed by the server");
    } else {
        (void) snprintf(why, sizeof(why), "read() failed: %s",
                        strerror(errno));
        redis_conn_fail(c, REDIS_CONN_ERR_LOST, why);
    }
    return -1;
}

static void
redis_conn_read(struct redis_conn *c)
{
    uint64_t gen = c->generation;
    size_t   budget = REDIS_CONN_READ_BUDGET;

    while (budget > 0) {
        struct buf *rb = &c->rbuf;
        ssize_t     got;

        if (c->value != NULL && !c->crlf_due && buf_pending(rb) == 0) {
            /* The payload goes straight into the value. */
            size_t n = c->value->len - c->value_got;

            got = redis_conn_recv(c, c->value->data + c->value_got,
                                  n < budget ? n : budget);
            if (got <= 0) {
                return;
            }
            value_fed(c->value, c->value_got, (size_t) got);
            c->value_got += (size_t) got;
            c->rx_bytes += (uint64_t) got;
            budget -= (size_t) got < budget ? (size_t) got : budget;
            if (c->value_got == c->value->len) {
                c->crlf_due = true;
                if (!redis_conn_parse(c)) {
                    return;
                }
            }
            continue;
        }
        if (rb->pos > 0 && rb->cap - rb->len < REDIS_CONN_READ_CHUNK) {
            /* Slide the partial reply to the front before growing. */
            memmove(rb->data, rb->data + rb->pos, buf_pending(rb));
            rb->len -= rb->pos;
            rb->pos = 0;
        }
        if (buf_reserve(rb, REDIS_CONN_READ_CHUNK) != 0) {
            redis_conn_fail(c, REDIS_CONN_ERR_NOMEM,
                            "out of memory for a reply");
            return;
        }
        got = redis_conn_recv(c, rb->data + rb->len, REDIS_CONN_READ_CHUNK);
        if (got <= 0) {
            return;
        }
        rb->len += (size_t) got;
        c->rx_bytes += (uint64_t) got;
        budget -= (size_t) got < budget ? (size_t) got : budget;
        if (!redis_conn_parse(c) || c->generation != gen) {
            return;
        }
        if (buf_pending(rb) == 0) {
            rb->pos = rb->len = 0;
        }
    }
    /* Out of budget: the socket stays readable (level-triggered), but
     * TLS may hold decrypted bytes epoll will not report. */
    if (c->ssl != NULL && SSL_pending(c->ssl) > 0) {
        redis_conn_kick(c);
    }
}

/* --- events -------------------------------------------------------------- */

static void
redis_conn_opened(struct redis_conn *c)
{
    uint64_t gen = c->generation;

    c->state = REDIS_CONN_OPEN;
    c->want_write = false;
    redis_conn_update_io(c);
    if (c->generation != gen) {
        return;
    }
    c->ops->on_open(c);
    if (c->generation == gen && buf_pending(&c->wbuf) > 0) {
        (void) redis_conn_flush(c);
    }
}

static void
redis_conn_handshake(struct redis_conn *c)
{
    char why[REDIS_CONN_WHY_MAX];
    int  r, e;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        redis_conn_opened(c);
        return;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        redis_conn_set_io(c, EVENT_READ);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        redis_conn_set_io(c, EVENT_WRITE);
        return;
    }
    redis_conn_tls_why(c, "TLS handshake failed", e, why, sizeof(why));
    redis_conn_fail(c, REDIS_CONN_ERR_TLS, why);
}

static void
redis_conn_connected(struct redis_conn *c)
{
    int       err = 0;
    socklen_t len = sizeof(err);
    char      why[REDIS_CONN_WHY_MAX];

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        (void) snprintf(why, sizeof(why), "connect() failed: %s",
                        strerror(err));
        redis_conn_fail(c, REDIS_CONN_ERR_CONNECT, why);
        return;
    }
    if (c->ssl != NULL) {
        c->state = REDIS_CONN_HANDSHAKE;
        redis_conn_handshake(c);
        return;
    }
    redis_conn_opened(c);
}

static void
redis_conn_on_io(struct event_loop *loop, struct event_io *io, unsigned events)
{
    struct redis_conn *c = io->data;
    uint64_t           gen = c->generation;

    (void) loop;
    switch (c->state) {
    case REDIS_CONN_CONNECTING:
        redis_conn_connected(c);
        return;
    case REDIS_CONN_HANDSHAKE:
        redis_conn_handshake(c);
        return;
    case REDIS_CONN_OPEN:
        break;
    case REDIS_CONN_CLOSED:
        return;
    }
    if (events & EVENT_READ) {
        redis_conn_read(c);
        if (c->generation != gen) {
            return;
        }
    }
    if (buf_pending(&c->wbuf) > 0
        && ((events & EVENT_WRITE) || c->ssl != NULL)) {
        (void) redis_conn_flush(c);
    }
}

static void
redis_conn_on_kick(struct event_loop *loop, struct event_timer *timer)
{
    struct redis_conn *c = timer->data;
    uint64_t           gen = c->generation;

    (void) loop;
    if (c->state != REDIS_CONN_OPEN) {
        return;
    }
    if (c->ssl != NULL && SSL_pending(c->ssl) > 0) {
        redis_conn_read(c);
        if (c->generation != gen) {
            return;
        }
    }
    if (!c->want_write && buf_pending(&c->wbuf) > 0) {
        (void) redis_conn_flush(c);
    }
}
