/*
 * worker_conn: the worker's private data structures, shared by the files
 * that make up a worker: worker.c (loop, accept, connection life and
 * I/O, access log), worker_http.c (HTTP requests) and worker_resp.c
 * (RESP commands), and their helpers (worker_acl.c, worker_resp_*.c).
 * Nothing else includes this.
 *
 * worker.c knows connections, not protocols: each protocol file exports
 * a struct worker_proto (worker_http_proto, worker_resp_proto), a
 * connection points at its listener's, and worker.c calls through it to
 * open, process, time out and close a connection.
 *
 * Invariants: an HTTP connection has at most one request waiting on the
 * backend and parses nothing further until it is answered; a RESP
 * connection may have up to RESP_PIPELINE_MAX GETs waiting, answered in
 * order (worker_resp_pipeline.c).  A slot goes back to the pool only in
 * before_poll, once no callback of the current iteration can still hold
 * it.
 */
#ifndef RCP_WORKER_CONN_H
#define RCP_WORKER_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "access.h"
#include "backend.h"
#include "buf.h"
#include "event.h"
#include "http_reply.h"
#include "http_parser.h"
#include "metrics.h"
#include "resp_parser.h"
#include "resp_session.h"
#include "worker.h"

#define WORKER_IN_INITIAL 4096
/* Largest HTTP request we buffer: head limit plus body limit. */
#define WORKER_HTTP_IN_MAX (HTTP_PARSE_HEAD_MAX + HTTP_PARSE_BODY_MAX)
/* Values from this size on are written from their shared copy rather
 * than copied into each client's output: below it a copy costs less
 * than the extra iovec and reference. */
#define WORKER_SHARE_MIN (64u * 1024u)
/* Most pieces (bytes of out, values) one writev() takes. */
#define WORKER_OUT_IOV_MAX 16
/* Past this much unsent output, stop reading and parsing (backpressure). */
#define WORKER_OUT_HIGH_WATER (1024 * 1024)
/* Buffers past this size are released when their connection closes. */
#define WORKER_BUF_KEEP        (64 * 1024)
#define WORKER_ACCEPT_BATCH    32
#define WORKER_ACCEPT_RETRY_MS 10
#define WORKER_YIELD_MS        5
#define WORKER_EMFILE_PAUSE_MS 100
#define WORKER_LINGER_MS       1000
/* At --max-clients, a connection idle this long may be closed for a
 * new one. */
#define WORKER_REUSE_IDLE_MS 50
/* A stopping worker closes a keep-alive connection idle this long. */
#define WORKER_STOP_IDLE_MS 200
/* Access-log lines are flushed in writes of whole lines of at most
 * PIPE_BUF bytes, which the kernel keeps whole between workers. */
#define WORKER_LOG_LINE_MAX       1024
#define WORKER_LOG_DROP_REPORT_MS 10000
/* Largest RESP command we buffer (a GET or an MGET of many keys). */
#define RESP_CONN_IN_MAX (4 * 1024 * 1024)
/* Most arguments in one RESP command (MGET of 4095 keys). */
#define RESP_CONN_ARGV_MAX 4096
/* Most GETs of one RESP connection whose answers are held back at once
 * (worker_resp_pipeline.c): past it, parsing pauses. */
#define RESP_PIPELINE_MAX 64

/* What the last worker_cache_copy() that answered from the cache
 * answered with; read by its caller right after. */
enum worker_hit {
    WORKER_HIT_FRESH = 0,
    WORKER_HIT_STALE,   /* expired; a refresh was started */
    WORKER_HIT_UPDATING /* expired; a refresh was under way */
};

struct worker_conn;

/* A protocol as worker.c sees it.  Every hook is called with the
 * connection open (the fd valid) unless it says otherwise. */
struct worker_proto {
    const char *name;   /* the access log's PROTO: "http", "resp" */
    size_t      in_max; /* most request bytes buffered: reading stops */
    /* A connection was accepted into slot c: sets up the protocol's
     * state.  0, or -ENOMEM (logged): worker.c closes it. */
    int (*open)(struct worker_conn *c);
    /* Parses and answers what is buffered, as far as it can now. */
    void (*process)(struct worker_conn *c);
    /* A request has not arrived whole in time: true when an answer was
     * appended (worker.c closes once it is written), false to close
     * now. */
    bool (*timeout)(struct worker_conn *c);
    /* A PROXY header was refused or broken (worker_acl.c): answers so,
     * and closes after writing (or now). */
    void (*proxy_refused)(struct worker_conn *c);
    /* The connection closes: cancels what it waits on, frees what it
     * holds for this connection only. */
    void (*close)(struct worker_conn *c);
    /* The worker exits: frees what slot c keeps from one connection to
     * the next.  Called for every slot and every protocol, open or
     * not. */
    void (*slot_fini)(struct worker_conn *c);
};

extern const struct worker_proto worker_http_proto;
extern const struct worker_proto worker_resp_proto;

/* Where a connection stands with the PROXY protocol (worker_acl.c). */
enum worker_conn_proxy {
    CONN_PROXY_DONE = 0, /* header read, or none may come */
    CONN_PROXY_EXPECT,   /* trusted peer: a header must come first */
    CONN_PROXY_REFUSE    /* other peer: a header is refused */
};

enum worker_conn_state {
    CONN_FREE = 0, /* in the pool */
    CONN_READING,  /* parsing requests, or idle between them */
    CONN_WAITING,  /* one request is waiting on the backend */
    CONN_DRAINING, /* answer sent, write side shut: discard input
                      until EOF or the linger timer */
    CONN_CLOSED    /* fd closed; back to the pool in before_poll */
};

struct worker;

/* A large value in a connection's output (worker_out.c): written from
 * the copy its clients share, after gap more bytes of out. */
struct worker_out_splice {
    struct value *value; /* owned reference */
    size_t        gap;   /* out bytes that go before it */
    size_t        sent;  /* of value, written */
};

/* One GET of a RESP pipeline whose answer cannot go out yet: a miss
 * waiting on the backend, or an answer that came before its turn. */
struct worker_resp_pending {
    struct backend_waiter waiter;   /* linked while fetching */
    struct worker_conn   *conn;     /* borrowed: the owner */
    bool                  done;     /* answered: in answer, or
                                       already in out at the head */
    struct buf            answer;   /* owned */
    struct value         *value;    /* owned ref, or NULL: a large
                                       value's payload, after answer
                                       (its bulk head), then CRLF */
    struct buf            key;      /* owned: the key, kept only with
                                       --stale-if-error */
    const char           *log_resp; /* for the access log and ... */
    const char           *log_cache;
    uint64_t              log_bytes;
    uint64_t              log_start_us;
    size_t                log_req_len;  /* 0 without an access log */
    char                  log_req[100]; /* "GET key", cut */
};

/* One MGET (worker_resp_mget.c): its keys probed, its misses fetched a
 * window at a time, its answer emitted in parts. */
enum worker_resp_mget_kind {
    RESP_MGET_CACHED = 0, /* copied from the cache at its
                             turn */
    RESP_MGET_EMPTY,      /* cached empty string */
    RESP_MGET_FETCH       /* asked of the backend */
};

/* An MGET's misses are fetched at most this many at once ... */
#define RESP_MGET_WINDOW_KEYS 64
/* ... and while the values in, in flight (guessed from the largest seen
 * so far) and not yet emitted stay under this: past it, fetching waits
 * for the client to take what is out. */
#define RESP_MGET_WINDOW_BYTES (4u * 1024u * 1024u)
/* The guess for a value in flight before any has come in: a first
 * window of 4 misses, whatever their size. */
#define RESP_MGET_GUESS_BYTES (RESP_MGET_WINDOW_BYTES / 4)

struct worker_resp_mget_item {
    struct backend_waiter      waiter; /* linked while fetching */
    struct worker_resp_mget   *mget;   /* borrowed: the owner */
    enum worker_resp_mget_kind kind;
    bool                       issued;  /* FETCH: asked of the backend */
    bool                       arrived; /* FETCH: result (and value) in */
    enum backend_result        result;  /* FETCH, once in (or NIL for a
                                           remembered absence) */
    struct value              *value;   /* owned reference: FETCH with
                                           BACKEND_VALUE, until emitted */
};

struct worker_resp_mget {
    struct worker_conn          *conn; /* borrowed: the owner */
    size_t                       n;
    size_t                       pending;    /* fetches not yet answered */
    size_t                       next;       /* next item to emit */
    size_t                       fetch_next; /* items before it are asked of
                                                Redis or need not be */
    size_t                       held_bytes; /* values in, not yet emitted */
    size_t                       max_len;    /* largest value fetched */
    bool                         started;    /* the array header is out */
    struct worker_resp_mget_item items[];
};

struct worker_conn {
    /* borrowed: static, its listener's protocol */
    const struct worker_proto *proto;

    int                       fd; /* owned; -1 unless open */
    enum worker_conn_state    state;
    struct worker            *worker; /* borrowed: the process's */
    struct event_io           io;
    struct event_timer        timer;    /* header, idle, linger deadline */
    struct buf                in;       /* owned: request bytes; pos is
                                           always 0, answered requests are
                                           cut off the front */
    struct buf                out;      /* owned: answers not yet sent,
                                           but for the large values
                                           spliced in (worker_out.c) */
    struct worker_out_splice *out_ring; /* owned: out_cap slots, a power
                                           of two, or NULL */
    size_t                    out_cap;
    size_t                    out_head; /* oldest splice */
    size_t                    out_len;  /* splices queued */
    size_t                    out_gaps; /* out's pending bytes before the
                                           last splice */
    size_t                    out_values_unsent; /* bytes of values queued */
    uint64_t                  request_start_ms; /* first byte of the request */
    uint64_t                  activity_ms; /* last read or write progress */
    bool                      close_after_write;
    bool                      peer_closed; /* read returned 0 */
    uint64_t                  requests;    /* answered on this connection */
    char                      peer[INET6_ADDRSTRLEN]; /* for the access log */
    uint64_t                  log_start_us; /* when the request was parsed,
                                               CLOCK_MONOTONIC; 0 without an
                                               access log */
    int                       log_status;   /* HTTP status, or 0 */
    const char               *log_resp;     /* RESP outcome: ok nil err */
    uint64_t                  log_bytes;    /* body or value bytes sent */
    const char               *log_cache;    /* HIT MISS - */
    struct http_parse         hp;
    struct http_request       req;           /* the request being answered */
    struct http_chunked       hc;            /* its chunked body, if any */
    size_t                    req_body_len;  /* its body's bytes, to skip */
    bool                      continue_sent; /* 100 Continue for it */
    struct backend_waiter     waiter;        /* linked while WAITING */
    struct resp_parse         rp;
    struct resp_arg          *argv;          /* owned: RESP_CONN_ARGV_MAX */
    size_t                    resp_consumed; /* end of the command being
                                                answered, from in.data */
    /* Bytes at the front of in already answered: dropped in one move
     * when worker_resp_process returns (0 outside it), never one
     * command at a time (worker_resp.c). */
    size_t                    resp_base;
    size_t                    resp_argc; /* of the command being answered */
    struct worker_resp_mget  *mget;      /* owned: MGET in progress */
    /* An answer produced in parts (an MGET; a large value could be
     * too): worker_conn_run calls it, instead of parsing, while the
     * connection is READING and out is below WORKER_OUT_HIGH_WATER; it
     * appends some, and clears itself once the answer is complete. */
    void (*resume)(struct worker_conn *c);
    struct resp_session         session; /* RESP: AUTH, MULTI, name */
    struct worker_resp_pending *resp_q;  /* owned: RESP_PIPELINE_MAX ring,
                                            or NULL until a miss */
    uint32_t                    resp_q_head;
    uint32_t                    resp_q_len;   /* entries not yet answered */
    size_t                      resp_q_bytes; /* answer bytes held in them */
    bool                        scheduled;    /* on the worker's run list */
    struct worker_conn         *run_next;     /* run list */
    enum worker_conn_proxy      proxy;
    struct worker_conn         *next; /* pool / closed list */
};

/* HTTP's Date header and the head of a 200 up to its length, remade
 * once a second (worker_http_date()). */
struct worker_http_date {
    time_t sec;
    char   text[HTTP_REPLY_DATE_LEN + 1];
    size_t ok_prefix_len;
    char   ok_prefix[HTTP_REPLY_HEAD_MAX];
};

struct worker {
    const struct worker_params *params; /* borrowed: the caller's */
    const struct config        *cfg;    /* borrowed: params->cfg */
    struct event_loop           loop;
    struct backend             *backend;  /* owned */
    struct tracking            *tracking; /* owned; NULL: --tracking off */
    struct event_io             http_io;
    struct event_io             resp_io;
    int                         http_fd;   /* borrowed until stop, then -1 */
    int                         resp_fd;   /* borrowed until stop, then -1 */
    bool                        accepting; /* listening fds are polled */
    bool                accept_yielded;    /* left the last one to peers */
    struct event_timer  accept_timer;      /* resume after limit or EMFILE */
    int                 accept_reserve_fd; /* owned: /dev/null, or -1;
                                              given up at EMFILE to refuse
                                              clients (worker_accept.c) */
    uint64_t            accept_warned_ms;  /* last accept4() failure line */
    uint64_t            accept_warns_dropped; /* since that line */
    uint64_t            accept_refused;       /* since that line */
    int                 signal_fd;            /* owned */
    struct event_io     signal_io;
    bool                stopping;
    struct event_timer  stop_timer; /* --shutdown-timeout */
    struct event_timer  reap_timer; /* 0 ms while big values' mappings
                                       are being given back */
    struct worker_conn *conns;      /* owned: max_clients slots */
    struct worker_conn *free_list;
    struct worker_conn *closed_list; /* back to the pool in before_poll */
    struct worker_conn *run_list;    /* run in before_poll */
    size_t              open_conns;
    uint64_t            client_ids;     /* RESP connections opened */
    struct access       acl;            /* owned: who may read what */
    char               *key_buf;        /* owned: decoded key */
    struct buf          access;         /* owned: lines not yet written */
    uint64_t            access_dropped; /* lines lost to a full pipe */
    uint64_t            access_drop_reported_ms;
    enum worker_hit     last_hit; /* of the last worker_cache_copy */
    uint64_t            rng;      /* worker_random() state, != 0 */

    struct worker_http_date http_date; /* worker_http.c's */
};

/* worker_inflight.c: the backend's gate, one fetch per key across
 * workers; its arg is the worker. */
extern const struct backend_gate_ops worker_inflight_gate;

/* worker.c */
/* Redis' remaining expiry of a fetched key (the PTTL read with it,
 * backend_store_cb) as the cache's expire_ms, counted from the end of a
 * fetch of fetch_us: PTTL ran after the fetch began, so the key lives
 * at least pttl_ms - fetch time from now.  0 for a key with no expiry.
 * False when the value must not be cached: PTTL unknown, or the key
 * expires before its fetch could be stored. */
bool worker_expire_ms(int64_t pttl_ms, uint64_t fetch_us, uint64_t *expire_ms);
int  worker_conn_out_reserve(struct worker_conn *c, size_t n);
int  worker_conn_append(struct worker_conn *c, const void *data, size_t len);
size_t            worker_conn_unsent(const struct worker_conn *c);
/* Whether the cache may answer now: false while --tracking is on and
 * some worker's invalidation channel is not whole (tracking.c). */
bool              worker_cache_trusted(const struct worker *w);
/* Copies key's cached value into b at b->len + head_room, leaving room
 * for tail_room bytes after it; b->len is not moved.  CACHE_HIT or
 * CACHE_STALE (lk set); CACHE_MISS for a miss, a gone entry, a bypassed
 * cache or no memory. */
enum cache_status worker_cache_lookup(struct worker *w, struct buf *b,
                                      size_t head_room, size_t tail_room,
                                      const void *key, size_t key_len,
                                      struct cache_lookup *lk);
/* worker_cache_lookup, and whether the answer may come from the cache
 * now: a fresh hit (lk->negative: a remembered absent key, answer 404 /
 * nil), which may start an early refresh; or a stale entry within
 * --stale-while-revalidate, which starts a refresh unless one runs.
 * w->last_hit says which.  False: ask Redis. */
bool worker_cache_copy(struct worker *w, struct buf *b, size_t head_room,
                       size_t tail_room, const void *key, size_t key_len,
                       struct cache_lookup *lk);
/* After Redis failed (unreachable, timed out): copies key's value as
 * worker_cache_lookup does and says whether it may be answered instead:
 * stale, as --stale-if-error allows (counted), or fresh again (another
 * worker fetched it meanwhile: lk->ttl_left_ms > 0). */
bool worker_cache_stale_if_error(struct worker *w, struct buf *b,
                                 size_t head_room, size_t tail_room,
                                 const void *key, size_t key_len,
                                 struct cache_lookup *lk);
/* Closes the fd and cancels what waits; the slot is recycled later. */
void worker_conn_close(struct worker_conn *c);
/* Writes what it can; may move to the lingering close or close. */
void worker_conn_flush(struct worker_conn *c);
/* Drops the first n bytes of input (the request just answered). */
void worker_conn_consume(struct worker_conn *c, size_t n);
/* Parses and answers buffered requests by protocol. */
void worker_conn_process(struct worker_conn *c);
/* process + flush until nothing more can be answered now. */
void worker_conn_run(struct worker_conn *c);
/* worker_conn_run, once, before the loop next waits: from backend
 * callbacks, so that many answers at once cost one write. */
void worker_conn_schedule(struct worker_conn *c);
void worker_access_log(struct worker_conn *c, const char *req, size_t req_len);
/* Marks when a request was parsed, for the access log's duration. */
void worker_access_start(struct worker_conn *c);

/* worker_out.c */
/* Appends v's bytes to the output: a large value by reference (the
 * shared copy is written out from where it is, incrementally, and no
 * client holds another), a small one by copy.  0 or -ENOMEM. */
int  worker_out_append_value(struct worker_conn *c, struct value *v);
/* Fills iov (WORKER_OUT_IOV_MAX) with the unsent output in order, at
 * most room bytes; returns the count. */
int  worker_out_iov(const struct worker_conn *c, struct iovec *iov,
                    size_t room);
/* n bytes of what worker_out_iov gave were written. */
void worker_out_advance(struct worker_conn *c, size_t n);
/* Drops the values queued (the connection closes); out is the caller's. */
void worker_out_drop(struct worker_conn *c);
/* worker_out_drop, and frees the ring. */
void worker_out_free(struct worker_conn *c);

/* worker_http.c */
/* The Date header's value now (http_date, remade once a second). */
const char *worker_http_date(struct worker *w);
/* Appends an error answer; fatal (a parse error) closes after writing. */
void        worker_http_error(struct worker_conn *c, int status, bool fatal);

/* worker_resp.c */
void worker_resp_count(struct worker_conn *c, enum metrics_code code);
/* The command being answered is done: logged, its bytes dropped, the
 * parser reset, the connection READING. */
void worker_resp_finish(struct worker_conn *c);

/* worker_resp_mget.c */
/* Answers MGET cmd: true when it is being answered now (resume set),
 * false when it waits on the backend (or the connection closed). */
bool worker_resp_mget(struct worker_conn *c, const struct resp_command *cmd);
void worker_resp_mget_cb(struct backend_waiter      *wt,
                         const struct backend_reply *r);
void worker_resp_mget_resume(struct worker_conn *c);
void worker_resp_mget_free(struct worker_conn *c);
/* The command waiting on the backend is answered: finish, go on. */
void worker_resp_done(struct worker_conn *c);

/* worker_resp_forward.c: sends cmd to Redis uncached; the connection
 * WAITs and the callback answers with Redis' reply as it is.  False
 * when answered at once instead (an error; or closed, no memory). */
bool worker_resp_forward(struct worker_conn        *c,
                         const struct resp_command *cmd);

/* worker_resp_pipeline.c */
bool worker_resp_pipeline_busy(const struct worker_conn *c);
bool worker_resp_pipeline_full(const struct worker_conn *c);
/* Queues GET key behind the answers still due: a hit (when try_cache)
 * is copied into its entry, a miss asked of the backend, and the
 * connection is then WAITING.  0 or -ENOMEM. */
int  worker_resp_pipeline_get(struct worker_conn *c, const char *key,
                              size_t key_len, bool try_cache);
/* Cancels and frees the ring (the connection closes). */
void worker_resp_pipeline_free(struct worker_conn *c);
/* Appends v to the output as a bulk string, a large one by reference
 * (worker_out.c).  0 or -ENOMEM. */
int  worker_resp_append_value(struct worker_conn *c, struct value *v);
/* Appends key's cached value to b as a bulk string, counted; true on a
 * hit. */
bool worker_resp_copy_hit(struct worker_conn *c, struct buf *b,
                          const char *key, size_t key_len);
/* worker_accept.c */
/* Opens the descriptor kept in reserve (a failure is logged: EMFILE then
 * only pauses accepting). */
void worker_accept_reserve_open(struct worker *w);
void worker_accept_reserve_close(struct worker *w);
/* accept4() on lfd failed with err, and accepting pauses for pause_ms:
 * at EMFILE/ENFILE, refuses the waiting clients through the reserve;
 * logs, at most one line a second. */
void worker_accept_exhausted(struct worker *w, int lfd,
                             const struct worker_proto *proto, int err,
                             int pause_ms);

/* worker_acl.c */
int  worker_acl_init(struct worker *w);
void worker_acl_fini(struct worker *w);
/* After accept4: false when --allow-from refuses the peer (fd closed,
 * counted); expect_proxy: the peer must send a PROXY header. */
bool worker_acl_accept(struct worker *w, int fd,
                       const struct sockaddr_storage *peer,
                       bool                          *expect_proxy);
/* Before parsing a connection's first request: true when its input may
 * be parsed now; false when more bytes are needed or it was refused. */
bool worker_acl_proxy(struct worker_conn *c);
/* False when the request was answered (401, 403). */
bool worker_acl_http_request(struct worker_conn *c);
bool worker_acl_http_key(struct worker_conn *c, const char *key, size_t len);
/* False when a key of cmd (argv[1..]) is refused: -NOPERM appended. */
bool worker_acl_resp_keys(struct worker_conn        *c,
                          const struct resp_command *cmd);

/* worker_resp_session.c */
void worker_resp_session_open(struct worker_conn *c);
void worker_resp_session_fini(struct worker_conn *c);
/* Before dispatch: true when the command was answered here (NOAUTH,
 * queued in MULTI); the caller logs it and goes on. */
bool worker_resp_gate(struct worker_conn *c, const struct resp_command *cmd);
/* RESP_ACTION_SESSION: answers it; false when the connection was
 * closed (no memory). */
bool worker_resp_session(struct worker_conn        *c,
                         const struct resp_command *cmd);

#endif
