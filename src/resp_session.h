/*
 * resp_session: the Redis-protocol commands whose answer depends on the
 * connection or the process rather than on a key: AUTH and HELLO, MULTI,
 * EXEC, DISCARD, WATCH and UNWATCH, INFO, CONFIG GET and CLIENT.  Pure:
 * the worker hands in what it knows (struct resp_session_server_info) and gets
 * the answer's bytes; nothing here touches a socket.
 *
 * A transaction is kept as the raw bytes of its queued commands.  EXEC
 * answers "*N" and tells the worker to put those bytes back in front of
 * the connection's input, so the N commands are answered, in order, by
 * the ordinary pipeline: the same code path as outside MULTI, cache and
 * backend included, and their N answers complete EXEC's array.
 */
#ifndef RCP_RESP_SESSION_H
#define RCP_RESP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cache.h"
#include "config.h"
#include "resp_parser.h"

/* The Redis version the port answers as (INFO, HELLO): Debian 12's, the
 * redis-server whose replies these were checked against. */
#define RESP_SESSION_REDIS_VERSION "7.0.15"
/* Redis 7.0's answer for a key its ACL refuses. */
#define RESP_SESSION_NOPERM                   \
    "NOPERM this user has no permissions to " \
    "access one of the keys used as arguments"
/* Longest CLIENT SETNAME name kept. */
#define RESP_SESSION_NAME_MAX 128
/* Most bytes of commands one MULTI may queue: redis-py's default
 * pipeline() is a transaction, and one of 100,000 GETs is about 3 MB
 * (1 MB refused 37,000).  Four times what the input buffers. */
#define RESP_SESSION_QUEUE_MAX (16 * 1024 * 1024)
/* A queue's storage past this size is freed when its transaction ends,
 * not kept for the slot's next one. */
#define RESP_SESSION_QUEUE_KEEP (64 * 1024)

struct resp_session {
    uint64_t   id;         /* CLIENT ID, unique per proxy */
    uint64_t   created_ms; /* for CLIENT INFO age */
    bool       authed;     /* AUTH passed (or none needed) */
    bool       in_multi;
    bool       multi_dirty; /* a bad command was queued:
                               EXEC answers EXECABORT */
    uint32_t   multi_count; /* commands queued */
    struct buf multi_queue; /* owned: their raw bytes */
    size_t     name_len;
    char       name[RESP_SESSION_NAME_MAX];
};

/* What INFO and CLIENT INFO report; filled by the worker when asked. */
struct resp_session_server_info {
    const char        *proxy_version;
    long               pid;      /* the supervisor's */
    uint16_t           tcp_port; /* the RESP port */
    uint64_t           uptime_s;
    uint64_t           now_ms;            /* monotonic, as created_ms */
    uint64_t           connected_clients; /* all workers */
    uint64_t           connections_received;
    uint64_t           connections_rejected;
    uint64_t           commands_processed;
    uint64_t           error_replies;
    struct cache_stats cache;
    int                fd;    /* this connection's */
    const char        *addr;  /* "ip:port" of the client */
    const char        *laddr; /* "ip:port" of the proxy's end */
    /* This connection's buffers, for CLIENT INFO's memory fields. */
    size_t             qbuf;      /* input bytes buffered */
    size_t             qbuf_free; /* room left in the input buffer */
    size_t             obl;       /* output bytes not yet written */
    size_t             oll;       /* large values queued by reference */
    size_t             omem;      /* their bytes not yet written */
    size_t             tot_mem;   /* the input and output buffers */
};

/* Where the session's answers come from.  fill_info is called only by
 * INFO and CLIENT INFO. */
struct resp_session_env {
    const struct config *cfg; /* borrowed */
    void (*fill_info)(void *arg, struct resp_session_server_info *si);
    /* --allow-keys, asked when a command is queued in MULTI (as Redis
     * checks ACLs before queuing); NULL: every key. */
    bool (*key_allowed)(void *arg, const char *key, size_t len);
    void *arg;
};

enum resp_session_rc {
    RESP_SESSION_REPLIED = 0, /* the whole answer is in out */
    RESP_SESSION_PASS,        /* gate: not answered, go on */
    RESP_SESSION_EXEC,        /* "*N" is in out: put
                                 take_queue()'s bytes in front
                                 of the input */
    RESP_SESSION_CLOSE,       /* answered; close after writing */
    RESP_SESSION_NOMEM
};

/* A new connection: authenticated already when no --resp-password. */
void resp_session_init(struct resp_session *s, uint64_t id, uint64_t now_ms,
                       const struct config *cfg);
void resp_session_fini(struct resp_session *s);

/* Runs before every command.  raw/raw_len are the command's own bytes
 * (as received) for queuing.  Answers -NOAUTH before AUTH, and inside
 * MULTI checks and queues the command ("+QUEUED", or its error, which
 * makes EXEC fail with EXECABORT).  RESP_SESSION_PASS otherwise. */
enum resp_session_rc resp_session_gate(struct resp_session *s, const char *buf,
                                       const struct resp_command *cmd,
                                       const char *raw, size_t raw_len,
                                       const struct resp_session_env *env,
                                       struct buf                    *out);

/* Answers one of the commands resp_dispatch() left to the session
 * (RESP_ACTION_SESSION). */
enum resp_session_rc resp_session_command(struct resp_session           *s,
                                          const char                    *buf,
                                          const struct resp_command     *cmd,
                                          const struct resp_session_env *env,
                                          struct buf                    *out);

/* After RESP_SESSION_EXEC: the queued bytes, and the transaction ends.
 * The buffer is moved to *q (the caller frees it). */
void resp_session_take_queue(struct resp_session *s, struct buf *q);

/* Compares a guess with a secret in time that depends only on the
 * secret's length. */
bool resp_session_secret_eq(const char *guess, size_t guess_len,
                            const char *secret, size_t secret_len);

#endif
