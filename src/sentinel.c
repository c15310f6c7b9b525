/*
 * sentinel: see sentinel.h.  Two connections:
 *
 *   ask:  redis_ask.c asks the sentinels in turn, from ask_next:
 *           [AUTH] + SENTINEL get-master-addr-by-name
 *           --> [host, port]: cb(found), close; next ask in 10 s, first
 *               of the sentinel that answered
 *           --> nil, error, refused, silent for --redis-timeout: the
 *               next sentinel
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
#include "redis_ask.h"
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
    struct redis_ask   ask;
    size_t             ask_next; /* the sentinel to ask first */
    uint64_t           last_ask_ms;
    bool               logged_down;
    struct event_timer ask_timer; /* the next round */

    /* Subscribed. */
    struct redis_conn  sub;
    size_t             sub_index;
    unsigned           sub_auth_due;
    struct event_timer sub_timer; /* reconnect */
};

static void
sentinel_arm(struct sentinel *s, struct event_timer *t, uint64_t after_ms)
{
    if (event_timer_start(s->loop, t, after_ms) != 0) {
        log_error("redis sentinel: cannot arm a timer");
    }
}

/* Opens c to sentinel i, with the sentinels' AUTH: as redis_ask_open. */
static int
sentinel_open(struct sentinel *s, struct redis_conn *c, size_t i, char *why)
{
    struct redis_conn_target t;

    memset(&t, 0, sizeof(t));
    t.host = s->seeds[i].host;
    t.port = s->seeds[i].port;
    t.tls = s->seeds[i].tls ? s->tls : NULL;
    return redis_ask_open(c, &t, 64u * 1024u, s->user, s->password, why);
}

/* --- asking ------------------------------------------------------------ */

static bool
sentinel_ask_target(void *arg, size_t i, struct redis_conn_target *t)
{
    struct sentinel           *s = arg;
    const struct config_redis *r;

    if (i >= s->nseeds) {
        return false;
    }
    r = &s->seeds[(s->ask_next + i) % s->nseeds];
    t->host = r->host;
    t->port = r->port;
    t->tls = r->tls ? s->tls : NULL;
    return true;
}

static int
sentinel_ask_send(void *arg, struct redis_ask *a)
{
    struct sentinel *s = arg;
    const char *argv[3] = { "SENTINEL", "get-master-addr-by-name", s->master };
    size_t      lens[3] = { 8, 23, strlen(s->master) };

    return redis_ask_send(a, 3, argv, lens);
}

static enum redis_ask_verdict
sentinel_ask_reply(void *arg, struct redis_ask *a, const redisReply *rr,
                   char *why, size_t why_len)
{
    struct sentinel *s = arg;
    char             host[CONFIG_HOST_MAX];
    long             port;
    char            *end;

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_STRING
        || rr->element[0]->len == 0 || rr->element[0]->len >= sizeof(host)) {
        (void) snprintf(why, why_len, "no address for the master name");
        return REDIS_ASK_NEXT;
    }
    memcpy(host, rr->element[0]->str, rr->element[0]->len);
    host[rr->element[0]->len] = '\0';
    port = strtol(rr->element[1]->str, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) {
        (void) snprintf(why, why_len, "a bad port");
        return REDIS_ASK_NEXT;
    }
    /* The one that answered is asked first next time. */
    s->ask_next = (s->ask_next + a->index) % s->nseeds;
    redis_ask_stop(a);
    s->logged_down = false;
    sentinel_arm(s, &s->ask_timer, SENTINEL_PERIOD_MS);
    s->cb(s->cb_arg, true, host, (uint16_t) port);
    return REDIS_ASK_DONE;
}

static void
sentinel_ask_failed(void *arg)
{
    struct sentinel *s = arg;

    if (!s->logged_down) {
        log_warn("redis sentinel: no sentinel named the primary of '%s';"
                 " asking again every %d ms",
                 s->master, SENTINEL_RETRY_MS);
        s->logged_down = true;
    }
    sentinel_arm(s, &s->ask_timer, SENTINEL_RETRY_MS);
    s->cb(s->cb_arg, false, NULL, 0);
}

static const struct redis_ask_ops sentinel_ask_ops = {
    .target = sentinel_ask_target,
    .send = sentinel_ask_send,
    .reply = sentinel_ask_reply,
    .failed = sentinel_ask_failed,
};

static void
sentinel_on_ask_timer(struct event_loop *loop, struct event_timer *timer)
{
    struct sentinel *s = timer->data;

    (void) loop;
    if (!s->ask.busy) {
        s->last_ask_ms = event_now_ms(s->loop);
        redis_ask_start(&s->ask);
    }
}

void
sentinel_reask(struct sentinel *s)
{
    uint64_t now = event_now_ms(s->loop);
    uint64_t due = s->last_ask_ms + SENTINEL_REASK_MIN_MS;
    uint64_t after = due > now ? due - now : 0;

    if (s->ask.busy) {
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
    if (!s->ask.busy) {
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
    if (redis_conn_send_argv(&s->sub, 2, argv, lens) != 0) {
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
    redis_ask_init(&s->ask, loop, &sentinel_ask_ops, s, "redis sentinel",
                   s->user, s->password, s->timeout_ms, 64u * 1024u);
    redis_conn_init(&s->sub, loop, &sentinel_sub_ops, s);
    event_timer_init(&s->ask_timer, sentinel_on_ask_timer, s);
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
    event_timer_stop(s->loop, &s->sub_timer);
    redis_ask_fini(&s->ask);
    redis_conn_fini(&s->sub);
    if (s->tls != NULL) {
        redis_conn_tls_ctx_free(s->tls);
    }
    free(s->seeds);
    free(s);
}
