/*
 * redis_ask: asks a question of a list of servers in turn, on a
 * short-lived connection, until one answers: how cluster.c reads the
 * slot map from the nodes and seeds, and sentinel.c the primary's
 * address from the sentinels.  One round:
 *
 *   server i: open --> [AUTH] + the owner's command(s) --> reply
 *      reply(): DONE --> close; round over
 *               MORE --> the owner sent another command; wait for it
 *               NEXT --> server i + 1
 *      refused, AUTH refused, lost, silent for timeout_ms --> i + 1
 *   past the last server: failed(); the owner decides when to retry
 *
 * The next server is always tried from a zero-delay timer, never from
 * inside a callback, so a long list of dead servers never recurses.
 * Also here: redis_ask_open(), opening a connection with that AUTH,
 * for the owner's other connections (Sentinel's subscription).
 */
#ifndef RCP_REDIS_ASK_H
#define RCP_REDIS_ASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "event.h"
#include "redis_conn.h"

#define REDIS_ASK_HOST_MAX 256 /* with its NUL */

struct redis_ask;

enum redis_ask_verdict {
    REDIS_ASK_DONE = 0, /* answered: the round is over */
    REDIS_ASK_MORE,     /* another command was sent on it */
    REDIS_ASK_NEXT      /* no good: ask the next server */
};

struct redis_ask_ops {
    /* The i-th server of this round (counting from 0) into *t (its
     * host is copied before the call returns); false past the last. */
    bool (*target)(void *arg, size_t i, struct redis_conn_target *t);
    /* Sends the question with redis_ask_send(); 0 or -errno. */
    int (*send)(void *arg, struct redis_ask *a);
    /* One reply to it (never AUTH's); why: for a NEXT. */
    enum redis_ask_verdict (*reply)(void *arg, struct redis_ask *a,
                                    const redisReply *r, char *why,
                                    size_t why_len);
    /* No server answered this round. */
    void (*failed)(void *arg);
};

struct redis_ask {
    struct event_loop          *loop;     /* borrowed */
    const struct redis_ask_ops *ops;      /* borrowed, static */
    void                       *arg;      /* borrowed: the owner */
    const char                 *what;     /* borrowed, static: for logs,
                                             "redis cluster" */
    const char                 *user;     /* borrowed: the owner's; "" */
    const char                 *password; /* borrowed; "": no AUTH */
    uint64_t                    timeout_ms;
    uint64_t                    max_reply_bytes;

    struct redis_conn  conn;
    bool               busy;     /* a round is under way */
    uint64_t           round;    /* bumped by each start */
    size_t             index;    /* the server being asked */
    unsigned           auth_due; /* AUTH replies still due */
    unsigned           due;      /* other replies still due */
    char               host[REDIS_ASK_HOST_MAX];
    uint16_t           port;
    struct event_timer next;     /* 0 ms: the next server */
    struct event_timer deadline; /* this server's answer */
};

/* user and password are borrowed (they must outlive a). */
void redis_ask_init(struct redis_ask *a, struct event_loop *loop,
                    const struct redis_ask_ops *ops, void *arg,
                    const char *what, const char *user, const char *password,
                    uint64_t timeout_ms, uint64_t max_reply_bytes);
void redis_ask_fini(struct redis_ask *a);

/* Starts a round at server 0; nothing when one is under way.  Callbacks
 * run later, never from inside this call. */
void redis_ask_start(struct redis_ask *a);

/* Ends the round at once (closes the connection; no callback): what
 * ops->reply does before calling out when it is about to return DONE,
 * so the owner may start another round from there. */
void redis_ask_stop(struct redis_ask *a);

/* From ops->send or ops->reply: queues one command, counting its reply
 * as due.  0 or -ENOMEM. */
int redis_ask_send(struct redis_ask *a, int argc, const char **argv,
                   const size_t *lens);

/* Opens c to t and queues AUTH [user] password when password is not
 * empty.  The replies queued (0 or 1), or -1 with why
 * (REDIS_CONN_WHY_MAX) set. */
int redis_ask_open(struct redis_conn *c, const struct redis_conn_target *t,
                   uint64_t max_reply_bytes, const char *user,
                   const char *password, char *why);

#endif
