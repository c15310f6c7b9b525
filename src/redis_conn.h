/*
 * redis_conn: one non-blocking connection to Redis on the worker's own
 * event loop: TCP, a unix socket, or TLS over TCP (OpenSSL).  It owns
 * the socket, the TLS session, a write queue of encoded commands and
 * the reading of replies, bounded by max_reply_bytes.  It knows nothing
 * of what the commands mean: the owner (backend.c) matches replies to
 * requests in order.
 *
 *   redis_conn_open -> CONNECTING --(TLS)--> HANDSHAKE --> OPEN
 *         |                 |                    |           |
 *         +-----------------+--------------------+-----------+--> CLOSED
 *           failure: ops->on_error(kind, why) once, from the loop
 *           the owner: redis_conn_close(), no callback
 *
 * Commands queued before OPEN are written once it is.  Writes are
 * batched: redis_conn_send() only appends, and a zero-delay timer
 * writes everything queued in this loop iteration with one call, so
 * a burst of misses becomes one pipelined write.
 *
 * Replies: a top-level bulk string (what GET answers) is read straight
 * into a refcounted struct value of its exact size, never into the read
 * buffer; any other reply is scanned to its end by redis_scan and then
 * parsed by hiredis' redisReader.  A reply longer than max_reply_bytes
 * is read and dropped as it arrives and reported as TOO_LARGE.  One
 * readable event reads at most REDIS_CONN_READ_BUDGET bytes, so a huge
 * value arrives over many loop iterations and never stalls the worker.
 *
 * Callbacks run from the loop only, never from inside redis_conn_open,
 * redis_conn_send or redis_conn_close.  A callback may close the
 * connection (and the owner may then open it again from a timer).
 */
#ifndef RCP_REDIS_CONN_H
#define RCP_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "buf.h"
#include "event.h"
#include "redis_scan.h"
#include "value.h"

/* Per readable event.  A big value's bytes also cost page faults (its
 * mapping is fresh) and hashing (its ETag) as they arrive: about 2 ms
 * per MB on a 2-core VM, so 256 KB keeps a loop iteration short. */
#define REDIS_CONN_READ_BUDGET (256u * 1024u)
#define REDIS_CONN_WHY_MAX     256

struct ssl_ctx_st;
struct ssl_st;

enum redis_conn_state {
    REDIS_CONN_CLOSED = 0,
    REDIS_CONN_CONNECTING, /* connect() in progress */
    REDIS_CONN_HANDSHAKE,  /* TLS handshake in progress */
    REDIS_CONN_OPEN
};

enum redis_conn_error {
    REDIS_CONN_ERR_CONNECT = 0, /* resolve or connect failed */
    REDIS_CONN_ERR_TLS,         /* handshake or certificate failed */
    REDIS_CONN_ERR_LOST,        /* EOF, reset, I/O error once open */
    REDIS_CONN_ERR_PROTOCOL,    /* Redis sent something not RESP2 */
    REDIS_CONN_ERR_NOMEM
};

enum redis_conn_reply_kind {
    REDIS_CONN_REPLY_BULK = 0, /* value */
    REDIS_CONN_REPLY_NIL,      /* $-1 */
    REDIS_CONN_REPLY_OTHER,    /* reply: status, error, integer, array */
    REDIS_CONN_REPLY_TOO_LARGE /* size bytes, dropped */
};

struct redis_conn_reply {
    enum redis_conn_reply_kind kind;
    struct value              *value; /* borrowed for the call: ref it */
    const redisReply          *reply; /* borrowed for the call */
    uint64_t                   size;  /* TOO_LARGE: bytes of the reply */
};

struct redis_conn;

struct redis_conn_ops {
    void (*on_open)(struct redis_conn *c);
    void (*on_reply)(struct redis_conn *c, const struct redis_conn_reply *r);
    /* The connection is already closed: fd, session and buffers. */
    void (*on_error)(struct redis_conn *c, enum redis_conn_error kind,
                     const char *why);
};

/* Where to connect; all borrowed for the duration of redis_conn_open. */
struct redis_conn_target {
    bool               is_unix;
    const char        *host; /* TCP: name or address */
    uint16_t           port;
    const char        *path;        /* unix */
    struct ssl_ctx_st *tls;         /* NULL: plain */
    const char        *server_name; /* TLS: SNI and name verified */
};

struct redis_conn {
    struct event_loop           *loop; /* borrowed */
    const struct redis_conn_ops *ops;  /* borrowed, static */
    void                        *data; /* borrowed: the owner */
    enum redis_conn_state        state;
    int                          fd;  /* owned; -1 when closed */
    struct ssl_st               *ssl; /* owned; NULL unless TLS */
    struct event_io              io;
    unsigned                     io_mask;
    struct event_timer           kick;       /* 0 ms: flush writes, re-read
                                                TLS bytes already decrypted */
    bool                         want_write; /* wbuf blocked: EPOLLOUT */
    struct buf                   wbuf;       /* owned: commands not yet sent */
    struct buf                   rbuf;   /* owned: reply bytes not parsed */
    redisReader                 *reader; /* owned */
    uint64_t                     max_reply_bytes;
    uint64_t                     rx_bytes;   /* read since open */
    uint64_t                     generation; /* bumped by close */

    /* The reply being read. */
    struct redis_scan scan;
    size_t            scanned; /* of rbuf's pending */
    struct value     *value;   /* owned: bulk filling */
    size_t            value_got;
    uint64_t          drop_left; /* too large: to drop */
    uint64_t          drop_size;
    bool              crlf_due; /* after a bulk payload */
};

void redis_conn_init(struct redis_conn *c, struct event_loop *loop,
                     const struct redis_conn_ops *ops, void *data);

/* Starts connecting.  0, or -errno with why (REDIS_CONN_WHY_MAX) set
 * when it failed at once (resolving, socket(), a refused unix socket);
 * on_error is not called then. */
int redis_conn_open(struct redis_conn *c, const struct redis_conn_target *t,
                    uint64_t max_reply_bytes, char *why);

/* Queues one encoded command.  0 or -ENOMEM. */
int redis_conn_send(struct redis_conn *c, const char *cmd, size_t len);

/* Encodes argv (binary-safe, lens[i] bytes each) with hiredis and
 * queues it.  0 or -ENOMEM. */
int redis_conn_send_argv(struct redis_conn *c, int argc, const char **argv,
                         const size_t *lens);

/* True while part of a reply has been read and not yet delivered. */
bool redis_conn_reply_started(const struct redis_conn *c);

/* Closes whatever is open, drops what is queued; no callback. */
void redis_conn_close(struct redis_conn *c);

/* Frees what init and open allocated (reader, buffers). */
void redis_conn_fini(struct redis_conn *c);

/* A TLS client context from PEM files; NULL with err set on failure.
 * verify: check the server's certificate against ca_file / ca_dir, or
 * the system's store when both are NULL. */
struct ssl_ctx_st *redis_conn_tls_ctx(bool verify, const char *ca_file,
                                      const char *ca_dir,
                                      const char *cert_file,
                                      const char *key_file, char *err,
                                      size_t err_len);
void               redis_conn_tls_ctx_free(struct ssl_ctx_st *ctx);

#endif
