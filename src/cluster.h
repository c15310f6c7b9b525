/*
 * cluster: a worker's view of a Redis Cluster (--redis-cluster): the
 * slot map, one node backend (backend.c, one pipelined connection with
 * the same TLS, AUTH and deadlines as a single Redis) per primary,
 * opened on first use, and the refreshes of the map.
 *
 * backend.c routes each fetch through here: cluster_route() names the
 * node serving the key's slot; a node's error reply goes to
 * cluster_redirect(), which reads -MOVED (the slot moved: the map is
 * updated at once and a full refresh asked for, at most one a second)
 * and -ASK (ask that node once; the map is unchanged).  A node that
 * cannot be reached also asks for a refresh, so a failed primary's
 * slots are served again as soon as the cluster has promoted a replica.
 *
 * The map is read with CLUSTER SHARDS (CLUSTER SLOTS from Redis < 7),
 * through redis_ask.c, on a short-lived connection of its
 * own, from a primary of the current map or else from the seeds in
 * turn; at start, then every --redis-cluster-refresh, and when asked.
 */
#ifndef RCP_CLUSTER_H
#define RCP_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster_slots.h"
#include "config.h"
#include "event.h"
#include "metrics.h"

struct backend;
struct cluster;

enum cluster_route {
    CLUSTER_ROUTE_OK = 0,    /* *node serves the slot */
    CLUSTER_ROUTE_WAIT,      /* no map yet; one is being read */
    CLUSTER_ROUTE_DOWN,      /* no map: no seed answered */
    CLUSTER_ROUTE_UNCOVERED, /* the map has no node for the slot */
    CLUSTER_ROUTE_NOMEM      /* the node's backend cannot be made */
};

/* Called when the map was read (ready) or could not be read while there
 * is none (not ready); from the loop only. */
typedef void (*cluster_state_cb)(void *arg, bool ready);

/* cfg is copied; starts reading the map at once.  0 or -errno (a TLS
 * context that cannot be made: -EINVAL, logged). */
int  cluster_create(struct event_loop *loop, const struct config *cfg,
                    struct metrics_slot_shm *slot, cluster_state_cb cb,
                    void *cb_arg, struct cluster **out);
/* Destroys the node backends (their waiters must be gone). */
void cluster_destroy(struct cluster *c);

/* The node for key (as the client gave it: --key-prefix is added here,
 * as Redis will see it). */
/* --redis-read-from: a replica of the slot unless primary_only (a
 * replica already failed this request) or the mode is primary; with
 * prefer-replica only while its connection is not refused. */
enum cluster_route cluster_route(struct cluster *c, const void *key,
                                 size_t key_len, bool primary_only,
                                 struct backend **node);

/* The node for a slot (a forwarded command's keys, prefix included). */
enum cluster_route cluster_route_slot(struct cluster *c, uint16_t slot,
                                      bool             primary_only,
                                      struct backend **node);

/* --redis-read-from prefer-replica: a failed replica read is retried
 * on the primary. */
bool cluster_prefers_replica(const struct cluster *c);

/* Reads a node's error reply.  MOVED/ASK: *to is the node to ask (NULL
 * when it cannot be made); MOVED also updates the slot and asks for a
 * refresh.  from: the node that answered (for an address left empty).
 * Counts redirects in the metrics. */
enum cluster_redirect_kind cluster_redirect(struct cluster       *c,
                                            const struct backend *from,
                                            const char *text, size_t len,
                                            struct backend **to);

/* A node could not be reached: refresh the map soon (rate-limited). */
void cluster_node_failed(struct cluster *c);

/* --tracking (tracking.c): told, from inside cluster code, when a node
 * backend was made and when the map changed; cb must not destroy node
 * state there.  NULL cb: none. */
typedef void (*cluster_nodes_cb)(void *arg);
void cluster_set_nodes_cb(struct cluster *c, cluster_nodes_cb cb, void *arg);

/* out[i] (CLUSTER_SLOTS_NODES_MAX of them): node i's backend when it is
 * made and owns a slot in the map, else NULL. */
void cluster_primaries(const struct cluster *c, struct backend **out);

#endif
