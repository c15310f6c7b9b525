/*
 * sentinel: see sentinel.h.  Two connections, each a redis_conn:
 *
 *   ask:  open sentinel i --> [AUTH] + SENTINEL get-master-addr-by-name
 *           --> [host, port]: cb(found), close; next ask in 10 s
 *           --> nil, error, refused, silent for --redis-timeout: i + 1
 *         a whole round without an answer: cb(!found), again in 1 s
 *   sub:  open a sentinel --> [AUTH] + SUBSCRIBE +switch-master
 *           --> "message": "NAME oldip oldport newip newport" for our
 *               NAME: cb(found, new address) and an ask to confirm
 *           --> lost: the next sentinel, 1 s later
 *
 * Sentinels speak plain TCP unless given as rediss:// URLs (then with
 * the --redis-tls-* files); they are asked with --redis-sentinel-user
 * and --redis-sentinel-password, never the data nodes' credentials.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "redis_conn.h"
#include "sentinel.h"

#define SENTINEL_REASK_MIN_MS 100   /* between asks on failures */
#define SENTINEL_PERIOD_MS    10000 /* asked anyway this often */
#define SENTINEL_RETRY_MS     1000  /* after a round with no answer */

struct sentinel {
    struct event_loop   *loop; /* borrowed */
    sentinel_cb          cb;
    void                *cb_arg; /* borrowed: the backend */
    struct config_redis *seeds;  /* owned array */
    size_t               nseeds;
    char                 master[CONFIG_ITEM_MAX];
    char                 user[CONFIG_SECRET_MAX];
    char                 password[CONFIG_SECRET_MAX];
    uint64_t             timeout_ms;
    struct ssl_ctx_st   *tls; /* owned; NULL: all plain */

    /* Asking. */
    struct redis_conn  ask;
    bool               asking;
    unsigned           ask_due;   /* replies still to come */
    size_t             ask_next;  /* the sentinel to ask first */
    size_t             ask_tried; /* in this round */
    uint64_t           last_ask_ms;
    bool               logged_down;
    struct event_timer ask_timer;    /* the next ask */
    struct event_timer ask_deadline; /* this sentinel's answer */

    /* Subscribed. */
    struct redis_conn  sub;
    size_t             sub_index;
    unsigned           sub_auth_due;
    struct event_timer sub_timer; /* reconnect */
};

static void sentinel_ask_start(struct sentinel *s);
static void sentinel_ask_one(struct sentinel *s);

static void
sentinel_arm(struct sentinel *s, struct event_timer *t, uint64_t after_ms)
{
    if (event_timer_start(s->loop, t, after_ms) != 0) {
        log_error("redis sentinel: cannot arm a timer");
    }
}

static int
sentinel_send(struct redis_conn *c, int argc, const char **argv,
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

/* Opens c to seed i and queues AUTH when a password is set.  The
 * number of replies queued (0 or 1), or -1 (why set). */
static int
sentinel_open(struct sentinel *s, struct redis_conn *c, size_t i, char *why)
{
    const struct config_redis *r = &s->seeds[i];
    struct redis_conn_target   t;
    const char                *argv[3];
    size_t                     lens[3];
    int                        argc = 0;

    memset(&t, 0, sizeof(t));
    t.host = r->host;
    t.port = r->port;
    t.tls = r->tls ? s->tls : NULL;
    if (redis_conn_open(c, &t, 64u * 1024u, why) != 0) {
        return -1;
    }
    if (s->password[0] == '\0') {
        return 0;
    }
    argv[argc] = "AUTH";
    lens[argc++] = 4;
    if (s->user[0] != '\0') {
        argv[argc] = s->user;
        lens[argc++] = strlen(s->user);
    }
    argv[argc] = s->password;
    lens[argc++] = strlen(s->password);
    if (sentinel_send(c, argc, argv, lens) != 0) {
        (void) snprintf(why, REDIS_CONN_WHY_MAX, "out of memory");
        redis_conn_close(c);
        return -1;
    }
    return 1;
}

/* --- asking ------------------------------------------------------------ */

static void
sentinel_ask_end(struct sentinel *s, bool found, const char *host,
                 uint16_t port)
{
    redis_conn_close(&s->ask);
    event_timer_stop(s->loop, &s->ask_deadline);
    s->asking = false;
    if (found) {
        s->logged_down = false;
        sentinel_arm(s, &s->ask_timer, SENTINEL_PERIOD_MS);
        s->cb(s->cb_arg, true, host, port);
        return;
    }
    if (!s->logged_down) {
        log_warn("redis sentinel: no sentinel named the primary of '%s';"
                 " asking again every %d ms",
                 s->master, SENTINEL_RETRY_MS);
        s->logged_down = true;
    }
    sentinel_arm(s, &s->ask_timer, SENTINEL_RETRY_MS);
    s->cb(s->cb_arg, false, NULL, 0);
}

/* This sentinel failed us: the next one, from the timer. */
static void
sentinel_ask_next(struct sentinel *s, const char *why)
{
    log_debug("redis sentinel %s:%u: %s", s->seeds[s->ask_next].host,
              (unsigned) s->seeds[s->ask_next].port, why);
    redis_conn_close(&s->ask);
    event_timer_stop(s->loop, &s->ask_deadline);
    s->ask_next = (s->ask_next + 1) % s->nseeds;
    if (++s->ask_tried >= s->nseeds) {
        sentinel_ask_end(s, false, NULL, 0);
        return;
    }
    /* Never recurse through every sentinel from one callback. */
    sentinel_arm(s, &s->ask_timer, 0);
}

static void
sentinel_ask_on_open(struct redis_conn *c)
{
    (void) c;
}

static void
sentinel_ask_on_reply(struct redis_conn *c, const struct redis_conn_reply *r)
{
    struct sentinel  *s = c->data;
    const redisReply *rr = r->reply;
    char              host[CONFIG_HOST_MAX];
    long              port;
    char             *end;

    if (--s->ask_due > 0) {
        if (r->kind != REDIS_CONN_REPLY_OTHER
            || rr->type == REDIS_REPLY_ERROR) {
            log_warn("redis sentinel %s:%u: AUTH failed",
                     s->seeds[s->ask_next].host,
                     (unsigned) s->seeds[s->ask_next].port);
            sentinel_ask_next(s, "AUTH failed");
        }
        return;
    }
    if (r->kind != REDIS_CONN_REPLY_OTHER || rr->type != REDIS_REPLY_ARRAY
        || rr->elements != 2 || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_STRING
        || rr->element[0]->len == 0 || rr->element[0]->len >= sizeof(host)) {
        sentinel_ask_next(s, "no address for the master name");
        return;
    }
    memcpy(host, rr->element[0]->str, rr->element[0]->len);
    host[rr->element[0]->len] = '\0';
    port = strtol(rr->element[1]->str, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) {
        sentinel_ask_next(s, "a bad port");
        return;
    }
    sentinel_ask_end(s, true, host, (uint16_t) port);
}

static void
sentinel_ask_on_error(struct redis_conn *c, enum redis_conn_error kind,
                      const char *why)
{
    struct sentinel *s = c->data;

    (void) kind;
    sentinel_ask_next(s, why);
}

static const struct redis_conn_ops sentinel_ask_ops = {
    .on_open = sentinel_ask_on_open,
    .on_reply = sentinel_ask_on_reply,
    .on_error = sentinel_ask_on_error,
};

static void
sentinel_ask_one(struct sentinel *s)
{
    const char *argv[3] = { "SENTINEL", "get-master-addr-by-name", s->master };
    size_t      lens[3] = { 8, 23, strlen(s->master) };
    char        why[REDIS_CONN_WHY_MAX];
    int         auth = sentinel_open(s, &s->ask, s->ask_next, why);

    if (auth < 0) {
        sentinel_ask_next(s, why);
        return;
    }
    if (sentinel_send(&s->ask, 3, argv, lens) != 0) {
        sentinel_ask_next(s, "out of memory");
        return;
    }
    s->ask_due = (unsigned) auth + 1;
    sentinel_arm(s, &s->ask_deadline, s->timeout_ms);
}

static void
sentinel_ask_start(struct sentinel *s)
{
    s->asking = true;
    s->ask_tried = 0;
    s->last_ask_ms = event_now_ms(s->loop);
    sentinel_ask_one(s);
}

static void
sentinel_on_ask_timer(struct event_loop *loop, struct event_timer *timer)
{
    struct sentinel *s = timer->data;

    (void) loop;
    if (s->asking) {
        sentinel_ask_one(s); /* the round goes on */
    } else {
        sentinel_ask_start(s);
    }
}

static void
sentinel_on_ask_deadline(struct event_loop *loop, struct event_timer *timer)
{
    struct sentinel *s = timer->data;

    (void) loop;
    sentinel_ask_next(s, "no answer within --redis-timeout");
}

void
sentinel_reask(struct sentinel *s)
{
    uint64_t now = event_now_ms(s->loop);
    uint64_t due = s->last_ask_ms + SENTINEL_REASK_MIN_MS;
    uint64_t after = due > now ? due - now : 0;

    if (s->asking) {
        return;
    }
    if (event_timer_active(&s->ask_timer)
        && s->ask_timer.when_ms <= now + after) {
        return;
    }
    sentinel_arm(s, &s->ask_timer, after);
}

void
sentinel_distrust(struct sentinel *s)
{
    if (!s->asking) {
        /* The next round starts with the next sentinel. */
        s->ask_next = (s->ask_next + 1) % s->nseeds;
    }
    sentinel_reask(s);
}

/* --- subscribed to +switch-master -------------------------------------- */

static void
sentinel_sub_lost(struct sentinel *s, const char *why)
{
    log_debug("redis sentinel %s:%u: +switch-master subscription: %s",
              s->seeds[s->sub_index].host,
              (unsigned) s->seeds[s->sub_index].port, why);
    redis_conn_close(&s->sub);
    s->sub_index = (s->sub_index + 1) % s->nseeds;
    sentinel_arm(s, &s->sub_timer, SENTINEL_RETRY_MS);
}

static void
sentinel_sub_on_open(struct redis_conn *c)
{
    (void) c;
}

static void
sentinel_sub_on_reply(struct redis_conn *c, const struct redis_conn_reply *r)
{
    struct sentinel  *s = c->data;
    const redisReply *rr = r->reply;
    char              msg[CONFIG_ITEM_MAX + 2 * CONFIG_HOST_MAX + 32];
    char              line[sizeof(msg)];
    char              host[CONFIG_HOST_MAX];
    char             *word[5] = { NULL };
    char             *tok, *save = NULL, *end;
    size_t            i;
    long              port;

    if (r->kind != REDIS_CONN_REPLY_OTHER) {
        sentinel_sub_lost(s, "unexpected reply");
        return;
    }
    if (s->sub_auth_due > 0) {
        s->sub_auth_due--;
        if (rr->type == REDIS_REPLY_ERROR) {
            sentinel_sub_lost(s, "AUTH failed");
        }
        return;
    }
    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 3
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[2]->type != REDIS_REPLY_STRING
        || strcmp(rr->element[0]->str, "message") != 0
        || rr->element[2]->len >= sizeof(msg)) {
        return; /* "subscribe" confirmations and such */
    }
    memcpy(msg, rr->element[2]->str, rr->element[2]->len);
    msg[rr->element[2]->len] = '\0';
    /* "<name> <old-ip> <old-port> <new-ip> <new-port>" */
    memcpy(line, msg, sizeof(line));
    for (i = 0, tok = strtok_r(line, " ", &save); tok != NULL && i < 5;
         i++, tok = strtok_r(NULL, " ", &save)) {
        word[i] = tok;
    }
    if (i != 5 || tok != NULL || strcmp(word[0], s->master) != 0
        || strlen(word[3]) >= sizeof(host)) {
        return;
    }
    port = strtol(word[4], &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) {
        return;
    }
    (void) snprintf(host, sizeof(host), "%s", word[3]);
    log_info("redis sentinel: +switch-master %s", msg);
    s->cb(s->cb_arg, true, host, (uint16_t) port);
}

static void
sentinel_sub_on_error(struct redis_conn *c, enum redis_conn_error kind,
                      const char *why)
{
    struct sentinel *s = c->data;

    (void) kind;
    sentinel_sub_lost(s, why);
}

static const struct redis_conn_ops sentinel_sub_ops = {
    .on_open = sentinel_sub_on_open,
    .on_reply = sentinel_sub_on_reply,
    .on_error = sentinel_sub_on_error,
};

static void
sentinel_on_sub_timer(struct event_loop *loop, struct event_timer *timer)
{
    struct sentinel *s = timer->data;
    const char      *argv[2] = { "SUBSCRIBE", "+switch-master" };
    size_t           lens[2] = { 9, 14 };
    char             why[REDIS_CONN_WHY_MAX];
    int              auth;

    (void) loop;
    auth = sentinel_open(s, &s->sub, s->sub_index, why);
    if (auth < 0) {
        sentinel_sub_lost(s, why);
        return;
    }
    if (sentinel_send(&s->sub, 2, argv, lens) != 0) {
        sentinel_sub_lost(s, "out of memory");
        return;
    }
    s->sub_auth_due = (unsigned) auth;
}

/* --- life -------------------------------------------------------------- */

int
sentinel_create(struct event_loop *loop, const struct config *cfg,
                sentinel_cb cb, void *cb_arg, struct sentinel **out)
{
    struct sentinel *s = calloc(1, sizeof(*s));
    bool             any_tls = false;
    size_t           bad, i;
    int              n;

    if (s == NULL) {
        return -ENOMEM;
    }
    s->seeds = calloc(CONFIG_SEEDS_MAX, sizeof(*s->seeds));
    if (s->seeds == NULL) {
        free(s);
        return -ENOMEM;
    }
    n = config_parse_seeds(cfg->redis_sentinel, s->seeds, CONFIG_SEEDS_MAX,
                           &bad);
    if (n <= 0) {
        /* config_load() checked it. */
        free(s->seeds);
        free(s);
        return -EINVAL;
    }
    s->nseeds = (size_t) n;
    for (i = 0; i < s->nseeds; i++) {
        any_tls = any_tls || s->seeds[i].tls;
    }
    if (any_tls) {
        char err[256];

        s->tls = redis_conn_tls_ctx(
            true,
            cfg->redis_tls_ca_file[0] != '\0' ? cfg->redis_tls_ca_file : NULL,
            cfg->redis_tls_ca_dir[0] != '\0' ? cfg->redis_tls_ca_dir : NULL,
            cfg->redis_tls_cert_file[0] != '\0' ? cfg->redis_tls_cert_file
                                                : NULL,
            cfg->redis_tls_key_file[0] != '\0' ? cfg->redis_tls_key_file
                                               : NULL,
            err, sizeof(err));
        if (s->tls == NULL) {
            log_error("redis sentinel TLS: %s", err);
            free(s->seeds);
            free(s);
            return -EINVAL;
        }
    }
    s->loop = loop;
    s->cb = cb;
    s->cb_arg = cb_arg;
    (void) snprintf(s->master, sizeof(s->master), "%s", cfg->redis_master);
    (void) snprintf(s->user, sizeof(s->user), "%s", cfg->redis_sentinel_user);
    (void) snprintf(s->password, sizeof(s->password), "%s",
                    cfg->redis_sentinel_password);
    s->timeout_ms = cfg->redis_timeout_ms;
    redis_conn_init(&s->ask, loop, &sentinel_ask_ops, s);
    redis_conn_init(&s->sub, loop, &sentinel_sub_ops, s);
    event_timer_init(&s->ask_timer, sentinel_on_ask_timer, s);
    event_timer_init(&s->ask_deadline, sentinel_on_ask_deadline, s);
    event_timer_init(&s->sub_timer, sentinel_on_sub_timer, s);
    sentinel_arm(s, &s->ask_timer, 0);
    sentinel_arm(s, &s->sub_timer, 0);
    *out = s;
    return 0;
}

void
sentinel_destroy(struct sentinel *s)
{
    event_timer_stop(s->loop, &s->ask_timer);
    event_timer_stop(s->loop, &s->ask_deadline);
    event_timer_stop(s->loop, &s->sub_timer);
    redis_conn_fini(&s->ask);
    redis_conn_fini(&s->sub);
    if (s->tls != NULL) {
        redis_conn_tls_ctx_free(s->tls);
    }
    free(s->seeds);
    free(s);
}
