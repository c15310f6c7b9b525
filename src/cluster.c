/*
 * cluster: see cluster.h for what it owns.  Flow of a refresh:
 *
 *   cluster_refresh_soon() --(at most 1/s)--> timer --> start:
 *     candidates: the primaries of the map, then the seeds, in turn
 *     open --> [AUTH] + CLUSTER SLOTS --> reply --> map updated, close
 *        \--> refused / error / no reply in --redis-timeout: next one
 *     none answered: keep the map we have (or, with none, tell the
 *     backend so waiting fetches fail 502) and try again in 1 s
 *
 * Node backends are made on first use and kept for the worker's life
 * (an address once in the map keeps its index, cluster_slots.h), so a
 * node that comes back after a failover keeps its connection state.
 * The map itself is per worker: each worker reads its own, which costs
 * the cluster one CLUSTER SLOTS per worker per refresh.
 *
 * Metrics: redirects by kind, refreshes that changed or confirmed the
 * map, and the gauges of primaries and covered slots (one worker's
 * view; admin takes the freshest).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "backend.h"
#include "cluster.h"
#include "log.h"
#include "redis_conn.h"

#define CLUSTER_REFRESH_MIN_MS 1000 /* Envoy's redirect threshold */
#define CLUSTER_RETRY_MS       1000 /* after a round with no answer */

struct cluster {
    struct event_loop       *loop; /* borrowed */
    struct metrics_slot_shm *slot; /* borrowed, may be NULL */
    cluster_state_cb         cb;
    void                    *cb_arg; /* borrowed: the backend */
    struct config           *cfg;    /* owned copy: node backends are
                                        made from it */
    struct config_redis     *seeds;  /* owned array */
    size_t                   nseeds;
    struct ssl_ctx_st       *tls; /* owned; NULL: plain */

    struct cluster_slots *map; /* owned */
    bool                  have_map;
    unsigned              pick; /* which replica: per worker */
    struct backend       *nodes[CLUSTER_SLOTS_NODES_MAX]; /* owned,
                                        by map node index; NULL
                                        until first used */

    /* The refresh in progress, if any. */
    struct redis_conn  conn;
    bool               busy;
    unsigned           replies_due; /* AUTH, CLUSTER SLOTS */
    size_t             attempt;     /* candidates tried */
    size_t             ncandidates;
    char               asked_host[CLUSTER_SLOTS_HOST_MAX];
    uint16_t           asked_port;
    uint64_t           last_start_ms;
    bool               resume; /* timer: next candidate */
    bool               down;   /* no map, a round failed */
    bool               logged_down;
    struct event_timer timer;    /* next refresh */
    struct event_timer deadline; /* this attempt */
};

static void cluster_refresh_start(struct cluster *c);
static void cluster_attempt(struct cluster *c);

/* --- refreshing the map ------------------------------------------------ */

/* The i-th candidate address: primaries of the map first, then seeds. */
static bool
cluster_candidate(const struct cluster *c, size_t i, const char **host,
                  uint16_t *port)
{
    size_t n;

    for (n = 0; n < c->map->nnodes; n++) {
        bool     primary = false;
        uint32_t s;

        for (s = 0; s < CLUSTER_SLOTS_COUNT && !primary; s++) {
            primary = c->map->owner[s] == n;
        }
        if (primary && i-- == 0) {
            *host = c->map->nodes[n].host;
            *port = c->map->nodes[n].port;
            return true;
        }
    }
    if (i < c->nseeds) {
        *host = c->seeds[i].host;
        *port = c->seeds[i].port;
        return true;
    }
    return false;
}

static void
cluster_arm(struct cluster *c, uint64_t after_ms)
{
    if (event_timer_start(c->loop, &c->timer, after_ms) != 0) {
        log_error("redis cluster: cannot arm the refresh timer");
    }
}

/*
 * Publishes the map's nodes as this worker sees them (metrics.h): the
 * primaries with their slot counts, then the replicas reads go to, each
 * with its connection's state; and how many primaries refuse us
 * (/health's nodes_down).  new_list: after a map was read.
 */
static void
cluster_publish(struct cluster *c, bool new_list)
{
    static struct metrics_node_shm out[METRICS_NODES_MAX];
    uint32_t                       slots[CLUSTER_SLOTS_NODES_MAX];
    bool                           replica[CLUSTER_SLOTS_NODES_MAX];
    char                           addr[CLUSTER_SLOTS_HOST_MAX + 16];
    uint32_t                       i, n = 0, more = 0, down = 0;
    uint16_t                       o;

    if (c->slot == NULL) {
        return;
    }
    memset(slots, 0, sizeof(slots));
    memset(replica, 0, sizeof(replica));
    for (i = 0; i < CLUSTER_SLOTS_COUNT; i++) {
        o = c->map->owner[i];
        if (o != CLUSTER_SLOTS_NONE) {
            slots[o]++;
        }
        o = c->map->replica[i];
        if (o != CLUSTER_SLOTS_NONE
            && c->cfg->redis_read_from != CONFIG_READ_PRIMARY) {
            replica[o] = true;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        for (i = 0; i < c->map->nnodes; i++) {
            const struct cluster_slots_node *node = &c->map->nodes[i];
            enum metrics_node_state          st;

            if (pass == 0 ? slots[i] == 0 : !replica[i] || slots[i] > 0) {
                continue;
            }
            st = c->nodes[i] == NULL ? METRICS_NODE_UNUSED
                                     : backend_node_state(c->nodes[i]);
            down += pass == 0 && st == METRICS_NODE_DOWN;
            if (n == METRICS_NODES_MAX) {
                more++;
                continue;
            }
            memset(&out[n], 0, sizeof(out[n]));
            (void) snprintf(addr, sizeof(addr),
                            strchr(node->host, ':') != NULL ? "[%s]:%u"
                                                            : "%s:%u",
                            node->host, (unsigned) node->port);
            metrics_node_set_addr(&out[n], addr);
            out[n].slots = slots[i];
            out[n].replica = pass == 1;
            out[n].state = (uint8_t) st;
            n++;
        }
    }
    metrics_cluster_nodes_down(c->slot, down);
    metrics_nodes_publish(c->slot, out, n, more, new_list);
}

/* A node backend's connection became ready or was refused. */
static void
cluster_on_node_state(void *arg)
{
    cluster_publish(arg, false);
}

static void
cluster_refresh_end(struct cluster *c, bool ok)
{
    redis_conn_close(&c->conn);
    event_timer_stop(c->loop, &c->deadline);
    c->busy = false;
    c->resume = false;
    cluster_publish(c, ok);
    c->down = !ok && !c->have_map;
    if (ok) {
        c->logged_down = false;
        cluster_arm(c, c->cfg->redis_cluster_refresh_ms);
        return;
    }
    if (!c->logged_down) {
        log_warn("redis cluster: no node answered CLUSTER SLOTS; %s",
                 c->have_map ? "keeping the slot map we have"
                             : "answering 502 until one does");
        c->logged_down = true;
    }
    cluster_arm(c, CLUSTER_RETRY_MS);
    if (!c->have_map) {
        c->cb(c->cb_arg, false);
    }
}

/* This candidate failed: the next, or the end of the round. */
static void
cluster_next(struct cluster *c, const char *why)
{
    log_debug("redis cluster: CLUSTER SLOTS from %s:%u failed: %s",
              c->asked_host, (unsigned) c->asked_port, why);
    redis_conn_close(&c->conn);
    event_timer_stop(c->loop, &c->deadline);
    c->attempt++;
    if (c->attempt >= c->ncandidates) {
        cluster_refresh_end(c, false);
        return;
    }
    cluster_attempt(c);
}

static void
cluster_apply(struct cluster *c, const redisReply *r)
{
    static uint16_t before[CLUSTER_SLOTS_COUNT];
    char            why[128];
    uint32_t        changed = 0, covered, i, primaries = 0;
    bool            seen[CLUSTER_SLOTS_NODES_MAX];
    int             rc;

    memcpy(before, c->map->owner, sizeof(before));
    rc = cluster_slots_from_reply(c->map, r, c->asked_host, c->pick, why,
                                  sizeof(why));
    if (rc != 0) {
        cluster_next(c, why);
        return;
    }
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < CLUSTER_SLOTS_COUNT; i++) {
        changed += before[i] != c->map->owner[i];
        if (c->map->owner[i] != CLUSTER_SLOTS_NONE
            && !seen[c->map->owner[i]]) {
            seen[c->map->owner[i]] = true;
            primaries++;
        }
    }
    covered = cluster_slots_covered(c->map);
    if (c->slot != NULL) {
        metrics_cluster_map(c->slot, primaries, covered, changed > 0);
    }
    if (!c->have_map || changed > 0) {
        if (covered == CLUSTER_SLOTS_COUNT) {
            log_info("redis cluster: slot map from %s:%u: %" PRIu32
                     " primaries, all slots covered (%" PRIu32
                     " slots changed owner)",
                     c->asked_host, (unsigned) c->asked_port, primaries,
                     changed);
        } else {
            log_warn("redis cluster: slot map from %s:%u: %" PRIu32
                     " primaries, %" PRIu32 " of 16384 slots covered (%" PRIu32
                     " slots changed owner)",
                     c->asked_host, (unsigned) c->asked_port, primaries,
                     covered, changed);
        }
    }
    c->have_map = true;
    cluster_refresh_end(c, true);
    c->cb(c->cb_arg, true);
}

static void
cluster_on_open(struct redis_conn *rc)
{
    (void) rc;
}

static void
cluster_on_reply(struct redis_conn *rc, const struct redis_conn_reply *r)
{
    struct cluster *c = rc->data;
    char            why[160];

    if (r->kind != REDIS_CONN_REPLY_OTHER) {
        cluster_next(c, "unexpected reply");
        return;
    }
    if (--c->replies_due > 0) {
        /* AUTH's answer. */
        if (r->reply->type == REDIS_REPLY_ERROR) {
            (void) snprintf(why, sizeof(why), "AUTH failed: %.*s",
                            (int) (r->reply->len > 120 ? 120 : r->reply->len),
                            r->reply->str);
            log_warn("redis cluster: %s:%u: %s", c->asked_host,
                     (unsigned) c->asked_port, why);
            cluster_next(c, why);
        }
        return;
    }
    cluster_apply(c, r->reply);
}

static void
cluster_on_error(struct redis_conn *rc, enum redis_conn_error kind,
                 const char *why)
{
    struct cluster *c = rc->data;

    (void) kind;
    cluster_next(c, why);
}

static const struct redis_conn_ops cluster_conn_ops = {
    .on_open = cluster_on_open,
    .on_reply = cluster_on_reply,
    .on_error = cluster_on_error,
};

static int
cluster_send(struct cluster *c, int argc, const char **argv,
             const size_t *lens)
{
    char *cmd = NULL;
    int   len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    int   rc;

    if (len < 0 || cmd == NULL) {
        return -ENOMEM;
    }
    rc = redis_conn_send(&c->conn, cmd, (size_t) len);
    redisFreeCommand(cmd);
    return rc;
}

static void
cluster_attempt(struct cluster *c)
{
    const char              *host = NULL;
    uint16_t                 port = 0;
    struct redis_conn_target t;
    char                     why[REDIS_CONN_WHY_MAX];
    const char              *argv[3];
    size_t                   lens[3];
    int                      argc = 0;

    if (!cluster_candidate(c, c->attempt, &host, &port)) {
        cluster_refresh_end(c, false);
        return;
    }
    (void) snprintf(c->asked_host, sizeof(c->asked_host), "%s", host);
    c->asked_port = port;
    memset(&t, 0, sizeof(t));
    t.host = c->asked_host;
    t.port = port;
    t.tls = c->tls;
    t.server_name = c->cfg->redis_tls_server_name;
    if (redis_conn_open(&c->conn, &t, c->cfg->max_reply_bytes, why) != 0) {
        log_debug("redis cluster: %s:%u: %s", c->asked_host, (unsigned) port,
                  why);
        /* The next one from the timer: never recurse through them. */
        c->attempt++;
        if (c->attempt >= c->ncandidates) {
            cluster_refresh_end(c, false);
        } else {
            c->resume = true;
            cluster_arm(c, 0);
        }
        return;
    }
    c->replies_due = 0;
    if (c->cfg->redis_password[0] != '\0') {
        argv[argc] = "AUTH";
        lens[argc++] = 4;
        if (c->cfg->redis_user[0] != '\0') {
            argv[argc] = c->cfg->redis_user;
            lens[argc++] = strlen(c->cfg->redis_user);
        }
        argv[argc] = c->cfg->redis_password;
        lens[argc++] = strlen(c->cfg->redis_password);
        if (cluster_send(c, argc, argv, lens) != 0) {
            cluster_next(c, "out of memory");
            return;
        }
        c->replies_due++;
    }
    argv[0] = "CLUSTER";
    lens[0] = 7;
    argv[1] = "SLOTS";
    lens[1] = 5;
    if (cluster_send(c, 2, argv, lens) != 0) {
        cluster_next(c, "out of memory");
        return;
    }
    c->replies_due++;
    (void) event_timer_start(c->loop, &c->deadline, c->cfg->redis_timeout_ms);
}

static void
cluster_refresh_start(struct cluster *c)
{
    size_t      n = 0;
    const char *host;
    uint16_t    port;

    if (c->busy) {
        return;
    }
    while (cluster_candidate(c, n, &host, &port)) {
        n++;
    }
    c->ncandidates = n;
    c->attempt = 0;
    c->busy = true;
    c->resume = false;
    c->last_start_ms = event_now_ms(c->loop);
    if (c->slot != NULL) {
        metrics_cluster_refresh(c->slot);
    }
    cluster_attempt(c);
}

static void
cluster_on_timer(struct event_loop *loop, struct event_timer *timer)
{
    struct cluster *c = timer->data;

    (void) loop;
    if (c->busy) {
        if (c->resume) {
            /* The round goes on after a candidate failed at once. */
            c->resume = false;
            cluster_attempt(c);
        }
        return;
    }
    cluster_refresh_start(c);
}

static void
cluster_on_deadline(struct event_loop *loop, struct event_timer *timer)
{
    struct cluster *c = timer->data;

    (void) loop;
    cluster_next(c, "no answer within --redis-timeout");
}

/* Asks for a refresh, at most one a second. */
static void
cluster_refresh_soon(struct cluster *c)
{
    uint64_t now = event_now_ms(c->loop);
    uint64_t due = c->last_start_ms + CLUSTER_REFRESH_MIN_MS;
    uint64_t after = due > now ? due - now : 0;

    if (c->busy) {
        return;
    }
    if (event_timer_active(&c->timer) && c->timer.when_ms <= now + after) {
        return;
    }
    cluster_arm(c, after);
}

/* --- routing ----------------------------------------------------------- */

static struct backend *
cluster_node_backend(struct cluster *c, uint32_t idx)
{
    int rc;

    if (c->nodes[idx] == NULL) {
        rc = backend_create_node(c->loop, c->cfg, c->map->nodes[idx].host,
                                 c->map->nodes[idx].port, c->tls, c->slot,
                                 &c->nodes[idx]);
        if (rc != 0) {
            log_error("redis cluster: node %s:%u: backend_create() "
                      "failed: %s",
                      c->map->nodes[idx].host,
                      (unsigned) c->map->nodes[idx].port, strerror(-rc));
            c->nodes[idx] = NULL;
        } else {
            backend_set_state_cb(c->nodes[idx], cluster_on_node_state, c);
        }
    }
    return c->nodes[idx];
}

enum cluster_route
cluster_route(struct cluster *c, const void *key, size_t key_len,
              bool primary_only, struct backend **node)
{
    size_t   plen = strlen(c->cfg->key_prefix);
    char     small[512];
    char    *full = small;
    uint16_t slot;

    if (!c->have_map) {
        return c->down ? CLUSTER_ROUTE_DOWN : CLUSTER_ROUTE_WAIT;
    }
    if (plen > 0) {
        /* The slot of the key Redis will see, prefix and all. */
        if (plen + key_len > sizeof(small)
            && (full = malloc(plen + key_len)) == NULL) {
            return CLUSTER_ROUTE_NOMEM;
        }
        memcpy(full, c->cfg->key_prefix, plen);
        memcpy(full + plen, key, key_len);
        slot = cluster_keyslot(full, plen + key_len);
        if (full != small) {
            free(full);
        }
    } else {
        slot = cluster_keyslot(key, key_len);
    }
    return cluster_route_slot(c, slot, primary_only, node);
}

bool
cluster_prefers_replica(const struct cluster *c)
{
    return c->cfg->redis_read_from == CONFIG_READ_PREFER_REPLICA;
}

enum cluster_route
cluster_route_slot(struct cluster *c, uint16_t slot, bool primary_only,
                   struct backend **node)
{
    uint16_t owner, replica;

    if (!c->have_map) {
        return c->down ? CLUSTER_ROUTE_DOWN : CLUSTER_ROUTE_WAIT;
    }
    owner = c->map->owner[slot & (CLUSTER_SLOTS_COUNT - 1)];
    replica = c->map->replica[slot & (CLUSTER_SLOTS_COUNT - 1)];
    if (owner == CLUSTER_SLOTS_NONE) {
        return CLUSTER_ROUTE_UNCOVERED;
    }
    if (!primary_only && replica != CLUSTER_SLOTS_NONE
        && c->cfg->redis_read_from != CONFIG_READ_PRIMARY) {
        struct backend *r = cluster_node_backend(c, replica);

        if (r != NULL
            && (c->cfg->redis_read_from == CONFIG_READ_REPLICA
                || backend_usable(r))) {
            *node = r;
            return CLUSTER_ROUTE_OK;
        }
    }
    *node = cluster_node_backend(c, owner);
    return *node != NULL ? CLUSTER_ROUTE_OK : CLUSTER_ROUTE_NOMEM;
}

enum cluster_redirect_kind
cluster_redirect(struct cluster *c, const struct backend *from,
                 const char *text, size_t len, struct backend **to)
{
    struct cluster_redirect r;
    int                     idx;
    uint32_t                i;

    *to = NULL;
    cluster_redirect_parse(text, len, &r);
    if (r.kind != CLUSTER_REDIRECT_MOVED && r.kind != CLUSTER_REDIRECT_ASK) {
        return r.kind;
    }
    if (r.host[0] == '\0') {
        /* "the endpoint you used": the node that answered. */
        for (i = 0; i < c->map->nnodes; i++) {
            if (c->nodes[i] == from) {
                (void) snprintf(r.host, sizeof(r.host), "%s",
                                c->map->nodes[i].host);
            }
        }
    }
    idx = cluster_slots_node(c->map, r.host, strlen(r.host), r.port);
    if (c->slot != NULL) {
        metrics_cluster_redirect(c->slot, r.kind == CLUSTER_REDIRECT_ASK);
    }
    if (idx < 0) {
        return r.kind;
    }
    if (r.kind == CLUSTER_REDIRECT_MOVED) {
        c->map->owner[r.slot] = (uint16_t) idx;
        cluster_refresh_soon(c);
    }
    *to = cluster_node_backend(c, (uint32_t) idx);
    return r.kind;
}

void
cluster_node_failed(struct cluster *c)
{
    cluster_refresh_soon(c);
}

/* --- life -------------------------------------------------------------- */

static const char *
cluster_path_or_null(const char *path)
{
    return path[0] != '\0' ? path : NULL;
}

int
cluster_create(struct event_loop *loop, const struct config *cfg,
               struct metrics_slot_shm *slot, cluster_state_cb cb,
               void *cb_arg, struct cluster **out)
{
    struct cluster *c = calloc(1, sizeof(*c));
    size_t          bad;
    int             n;

    if (c == NULL) {
        return -ENOMEM;
    }
    c->cfg = malloc(sizeof(*c->cfg));
    c->map = malloc(sizeof(*c->map));
    c->seeds = calloc(CONFIG_SEEDS_MAX, sizeof(*c->seeds));
    if (c->cfg == NULL || c->map == NULL || c->seeds == NULL) {
        goto nomem;
    }
    *c->cfg = *cfg;
    n = config_parse_seeds(cfg->redis_cluster, c->seeds, CONFIG_SEEDS_MAX,
                           &bad);
    if (n <= 0) {
        /* config_load() checked it. */
        free(c->cfg);
        free(c->map);
        free(c->seeds);
        free(c);
        return -EINVAL;
    }
    c->nseeds = (size_t) n;
    if (cfg->redis_tls) {
        char err[256];

        c->tls = redis_conn_tls_ctx(
            true, cluster_path_or_null(cfg->redis_tls_ca_file),
            cluster_path_or_null(cfg->redis_tls_ca_dir),
            cluster_path_or_null(cfg->redis_tls_cert_file),
            cluster_path_or_null(cfg->redis_tls_key_file), err, sizeof(err));
        if (c->tls == NULL) {
            log_error("redis TLS: %s", err);
            free(c->cfg);
            free(c->map);
            free(c->seeds);
            free(c);
            return -EINVAL;
        }
    }
    cluster_slots_init(c->map);
    /* Workers pick different replicas of a slot, spreading the reads. */
    c->pick = (unsigned) getpid();
    c->loop = loop;
    c->slot = slot;
    c->cb = cb;
    c->cb_arg = cb_arg;
    redis_conn_init(&c->conn, loop, &cluster_conn_ops, c);
    event_timer_init(&c->timer, cluster_on_timer, c);
    event_timer_init(&c->deadline, cluster_on_deadline, c);
    cluster_arm(c, 0);
    *out = c;
    return 0;
nomem:
    free(c->cfg);
    free(c->map);
    free(c->seeds);
    free(c);
    return -ENOMEM;
}

void
cluster_destroy(struct cluster *c)
{
    uint32_t i;

    event_timer_stop(c->loop, &c->timer);
    event_timer_stop(c->loop, &c->deadline);
    redis_conn_fini(&c->conn);
    for (i = 0; i < CLUSTER_SLOTS_NODES_MAX; i++) {
        if (c->nodes[i] != NULL) {
            backend_destroy(c->nodes[i]);
        }
    }
    if (c->tls != NULL) {
        redis_conn_tls_ctx_free(c->tls);
    }
    free(c->seeds);
    free(c->map);
    free(c->cfg);
    free(c);
}
