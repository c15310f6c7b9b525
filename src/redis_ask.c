/*
 * redis_ask: see redis_ask.h for the round.  Invariants: the connection
 * is open only while busy; the deadline runs only while a reply is due
 * on it; at most one of `next` and the connection is active.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "redis_ask.h"

int
redis_ask_open(struct redis_conn *c, const struct redis_conn_target *t,
               uint64_t max_reply_bytes, const char *user,
               const char *password, char *why)
{
    const char *argv[3];
    size_t      lens[3];
    int         argc = 0;

    if (redis_conn_open(c, t, max_reply_bytes, why) != 0) {
        return -1;
    }
    if (password[0] == '\0') {
        return 0;
    }
    argv[argc] = "AUTH";
    lens[argc++] = 4;
    if (user[0] != '\0') {
        argv[argc] = user;
        lens[argc++] = strlen(user);
    }
    argv[argc] = password;
    lens[argc++] = strlen(password);
    if (redis_conn_send_argv(c, argc, argv, lens) != 0) {
        (void) snprintf(why, REDIS_CONN_WHY_MAX, "out of memory");
        redis_conn_close(c);
        return -1;
    }
    return 1;
}

/* This server failed us: close, and the next one from the timer. */
static void
redis_ask_next(struct redis_ask *a, const char *why)
{
    log_debug("%s %s:%u: %s", a->what, a->host, (unsigned) a->port, why);
    redis_conn_close(&a->conn);
    event_timer_stop(a->loop, &a->deadline);
    a->index++;
    if (event_timer_start(a->loop, &a->next, 0) != 0) {
        log_error("%s: cannot arm a timer", a->what);
    }
}

void
redis_ask_stop(struct redis_ask *a)
{
    redis_conn_close(&a->conn);
    event_timer_stop(a->loop, &a->deadline);
    event_timer_stop(a->loop, &a->next);
    a->busy = false;
}

/* Asks server a->index, or ends the round past the last. */
static void
redis_ask_try(struct redis_ask *a)
{
    struct redis_conn_target t;
    char                     why[REDIS_CONN_WHY_MAX];
    int                      auth;

    memset(&t, 0, sizeof(t));
    if (!a->ops->target(a->arg, a->index, &t)) {
        redis_ask_stop(a);
        a->ops->failed(a->arg);
        return;
    }
    (void) snprintf(a->host, sizeof(a->host), "%s", t.host);
    a->port = t.port;
    t.host = a->host;
    auth = redis_ask_open(&a->conn, &t, a->max_reply_bytes, a->user,
                          a->password, why);
    if (auth < 0) {
        redis_ask_next(a, why);
        return;
    }
    a->auth_due = (unsigned) auth;
    a->due = 0;
    if (a->ops->send(a->arg, a) != 0) {
        redis_ask_next(a, "out of memory");
        return;
    }
    if (event_timer_start(a->loop, &a->deadline, a->timeout_ms) != 0) {
        log_error("%s: cannot arm a timer", a->what);
    }
}

int
redis_ask_send(struct redis_ask *a, int argc, const char **argv,
               const size_t *lens)
{
    int rc = redis_conn_send_argv(&a->conn, argc, argv, lens);

    if (rc == 0) {
        a->due++;
    }
    return rc;
}

static void
redis_ask_on_open(struct redis_conn *c)
{
    (void) c;
}

static void
redis_ask_on_reply(struct redis_conn *c, const struct redis_conn_reply *r)
{
    struct redis_ask *a = c->data;
    char              why[160] = "no good answer";
    uint64_t          round = a->round;

    if (r->kind != REDIS_CONN_REPLY_OTHER) {
        redis_ask_next(a, "unexpected reply");
        return;
    }
    if (a->auth_due > 0) {
        a->auth_due--;
        if (r->reply->type == REDIS_REPLY_ERROR) {
            (void) snprintf(why, sizeof(why), "AUTH failed: %.*s",
                            (int) (r->reply->len > 120 ? 120 : r->reply->len),
                            r->reply->str);
            log_warn("%s %s:%u: %s", a->what, a->host, (unsigned) a->port,
                     why);
            redis_ask_next(a, why);
        }
        return;
    }
    if (a->due == 0) {
        return; /* a reply the owner did not ask for */
    }
    a->due--;
    switch (a->ops->reply(a->arg, a, r->reply, why, sizeof(why))) {
    case REDIS_ASK_DONE:
        if (a->round == round && a->busy) {
            redis_ask_stop(a);
        }
        break;
    case REDIS_ASK_MORE:
        break;
    case REDIS_ASK_NEXT:
        redis_ask_next(a, why);
        break;
    }
}

static void
redis_ask_on_error(struct redis_conn *c, enum redis_conn_error kind,
                   const char *why)
{
    (void) kind;
    redis_ask_next(c->data, why);
}

static const struct redis_conn_ops redis_ask_conn_ops = {
    .on_open = redis_ask_on_open,
    .on_reply = redis_ask_on_reply,
    .on_error = redis_ask_on_error,
};

static void
redis_ask_on_next(struct event_loop *loop, struct event_timer *timer)
{
    struct redis_ask *a = timer->data;

    (void) loop;
    if (a->busy) {
        redis_ask_try(a);
    }
}

static void
redis_ask_on_deadline(struct event_loop *loop, struct event_timer *timer)
{
    (void) loop;
    redis_ask_next(timer->data, "no answer within --redis-timeout");
}

void
redis_ask_start(struct redis_ask *a)
{
    if (a->busy) {
        return;
    }
    a->busy = true;
    a->round++;
    a->index = 0;
    if (event_timer_start(a->loop, &a->next, 0) != 0) {
        log_error("%s: cannot arm a timer", a->what);
        a->busy = false;
    }
}

void
redis_ask_init(struct redis_ask *a, struct event_loop *loop,
               const struct redis_ask_ops *ops, void *arg, const char *what,
               const char *user, const char *password, uint64_t timeout_ms,
               uint64_t max_reply_bytes)
{
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->ops = ops;
    a->arg = arg;
    a->what = what;
    a->user = user;
    a->password = password;
    a->timeout_ms = timeout_ms;
    a->max_reply_bytes = max_reply_bytes;
    redis_conn_init(&a->conn, loop, &redis_ask_conn_ops, a);
    event_timer_init(&a->next, redis_ask_on_next, a);
    event_timer_init(&a->deadline, redis_ask_on_deadline, a);
}

void
redis_ask_fini(struct redis_ask *a)
{
    event_timer_stop(a->loop, &a->next);
    event_timer_stop(a->loop, &a->deadline);
    redis_conn_fini(&a->conn);
    a->busy = false;
}
