/*
 * cluster: see cluster.h for what it owns.  Flow of a refresh:
 *
 *   cluster_refresh_soon() --(at most 1/s)--> timer --> start:
 *     candidates: the primaries of the map, then the seeds, asked in
 *     turn by redis_ask.c: [AUTH] + CLUSTER SHARDS --> map updated
 *        \--> "unknown subcommand" (Redis < 7): CLUSTER SLOTS on the
 *              same connection, and from then on SLOTS only
 *        \--> refused / error / no reply in --redis-timeout: next one
 *     none answered: keep the map we have (or, with none, tell the
 *     backend so waiting fetches fail 502) and try again in 1 s
 *
 * CLUSTER SHARDS first because Redis 7.0 (Debian 12's) deprecates
 * CLUSTER SLOTS for it; both give the same map.
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
#include "redis_ask.h"
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
    /* owned, by map node index; NULL until first used */
    struct backend       *nodes[CLUSTER_SLOTS_NODES_MAX];

    /* The refresh: asking, and when. */
    struct redis_ask   ask;
    bool               use_slots;    /* a node has no CLUSTER
                                        SHARDS (Redis < 7) */
    bool               asked_shards; /* what is due on ask */
    uint64_t           last_start_ms;
    bool               down; /* no map, a round failed */
    bool               logged_down;
    struct event_timer timer; /* next refresh */

    cluster_nodes_cb nodes_cb; /* --tracking; may be NULL */
    void            *nodes_arg;
};

static void
cluster_nodes_changed(struct cluster *c)
{
    if (c->nodes_cb != NULL) {
        c->nodes_cb(c->nodes_arg);
    }
}

static void cluster_refresh_start(struct cluster *c);

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
    cluster_publish(c, ok);
    c->down = !ok && !c->have_map;
    if (ok) {
        cluster_nodes_changed(c);
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

/* A map from the node asked: applied and logged, or NEXT with why. */
static enum redis_ask_verdict
cluster_apply(struct cluster *c, const redisReply *r, char *why,
              size_t why_len)
{
    static uint16_t before[CLUSTER_SLOTS_COUNT];
    const char     *host = c->ask.host;
    unsigned        port = c->ask.port;
    uint32_t        changed = 0, covered, i, primaries = 0;
    bool            seen[CLUSTER_SLOTS_NODES_MAX];
    int             rc;

    memcpy(before, c->map->owner, sizeof(before));
    rc =
        c->asked_shards
            ? cluster_slots_from_shards(c->map, r, host, c->pick,
                                        c->tls != NULL, why, why_len)
            : cluster_slots_from_reply(c->map, r, host, c->pick, why, why_len);
    if (rc != 0) {
        return REDIS_ASK_NEXT;
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
                     host, port, primaries, changed);
        } else {
            log_warn("redis cluster: slot map from %s:%u: %" PRIu32
                     " primaries, %" PRIu32 " of 16384 slots covered (%" PRIu32
                     " slots changed owner)",
                     host, port, primaries, covered, changed);
        }
    }
    c->have_map = true;
    /* The round is over before the backend hears (it may ask again). */
    redis_ask_stop(&c->ask);
    cluster_refresh_end(c, true);
    c->cb(c->cb_arg, true);
    return REDIS_ASK_DONE;
}

/* redis_ask: the i-th candidate. */
static bool
cluster_ask_target(void *arg, size_t i, struct redis_conn_target *t)
{
    struct cluster *c = arg;
    const char     *host = NULL;
    uint16_t        port = 0;

    if (!cluster_candidate(c, i, &host, &port)) {
        return false;
    }
    t->host = host;
    t->port = port;
    t->tls = c->tls;
    t->server_name = c->cfg->redis_tls_server_name;
    return true;
}

static int
cluster_ask_send(void *arg, struct redis_ask *a)
{
    struct cluster *c = arg;
    const char     *argv[2] = { "CLUSTER", c->use_slots ? "SLOTS" : "SHARDS" };
    size_t          lens[2] = { 7, c->use_slots ? 5u : 6u };

    c->asked_shards = !c->use_slots;
    return redis_ask_send(a, 2, argv, lens);
}

/* Redis before 7 has no CLUSTER SHARDS: "ERR unknown subcommand
 * 'SHARDS'" (6.2), "ERR Unknown subcommand or wrong number of
 * arguments for 'SHARDS'" (older). */
static bool
cluster_no_shards(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str != NULL
           && strcasestr(r->str, "subcommand") != NULL;
}

static enum redis_ask_verdict
cluster_ask_reply(void *arg, struct redis_ask *a, const redisReply *r,
                  char *why, size_t why_len)
{
    struct cluster *c = arg;
    const char     *argv[2] = { "CLUSTER", "SLOTS" };
    size_t          lens[2] = { 7, 5 };

    if (c->asked_shards && cluster_no_shards(r)) {
        log_info("redis cluster: %s:%u has no CLUSTER SHARDS; using "
                 "CLUSTER SLOTS",
                 a->host, (unsigned) a->port);
        c->use_slots = true;
        c->asked_shards = false;
        if (redis_ask_send(a, 2, argv, lens) != 0) {
            (void) snprintf(why, why_len, "out of memory");
            return REDIS_ASK_NEXT;
        }
        return REDIS_ASK_MORE;
    }
    return cluster_apply(c, r, why, why_len);
}

static void
cluster_ask_failed(void *arg)
{
    cluster_refresh_end(arg, false);
}

static const struct redis_ask_ops cluster_ask_ops = {
    .target = cluster_ask_target,
    .send = cluster_ask_send,
    .reply = cluster_ask_reply,
    .failed = cluster_ask_failed,
};

static void
cluster_refresh_start(struct cluster *c)
{
    if (c->ask.busy) {
        return;
    }
    c->last_start_ms = event_now_ms(c->loop);
    if (c->slot != NULL) {
        metrics_cluster_refresh(c->slot);
    }
    redis_ask_start(&c->ask);
}

static void
cluster_on_timer(struct event_loop *loop, struct event_timer *timer)
{
    (void) loop;
    cluster_refresh_start(timer->data);
}

/* Asks for a refresh, at most one a second. */
static void
cluster_refresh_soon(struct cluster *c)
{
    uint64_t now = event_now_ms(c->loop);
    uint64_t due = c->last_start_ms + CLUSTER_REFRESH_MIN_MS;
    uint64_t after = due > now ? due - now : 0;

    if (c->ask.busy) {
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
            /* Before its first command: tracking hooks it now. */
            cluster_nodes_changed(c);
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
    if (r.kind == CLUSTER_REDIRECT_MOVED) {
        cluster_nodes_changed(c);
    }
    return r.kind;
}

void
cluster_set_nodes_cb(struct cluster *c, cluster_nodes_cb cb, void *arg)
{
    c->nodes_cb = cb;
    c->nodes_arg = arg;
}

void
cluster_primaries(const struct cluster *c, struct backend **out)
{
    uint32_t i;

    memset(out, 0, CLUSTER_SLOTS_NODES_MAX * sizeof(*out));
    for (i = 0; i < CLUSTER_SLOTS_COUNT; i++) {
        uint16_t o = c->map->owner[i];

        if (o != CLUSTER_SLOTS_NONE && o < CLUSTER_SLOTS_NODES_MAX) {
            out[o] = c->nodes[o];
        }
    }
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
    redis_ask_init(&c->ask, loop, &cluster_ask_ops, c, "redis cluster",
                   c->cfg->redis_user, c->cfg->redis_password,
                   c->cfg->redis_timeout_ms, c->cfg->max_reply_bytes);
    event_timer_init(&c->timer, cluster_on_timer, c);
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
    redis_ask_fini(&c->ask);
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
