/*
 * cluster_slots: the pure half of Redis Cluster support.  Key slots
 * (CRC16-XMODEM of the key, or of its first non-empty {hash tag}, mod
 * 16384, exactly as Redis' keyHashSlot()), the slot map (which node
 * serves each slot), reading that map from a CLUSTER SLOTS reply, and
 * reading -MOVED / -ASK redirect texts.  No I/O, no allocation, no
 * logging: cluster.c owns the connections and calls these.
 *
 * Invariants of struct cluster_slots: every owner[] entry is
 * CLUSTER_SLOTS_NONE or an index below nnodes; nodes are only ever
 * appended (an index, once given to an address, names it for the life
 * of the map), so the router can keep per-node state in a parallel
 * array across refreshes.
 */
#ifndef RCP_CLUSTER_SLOTS_H
#define RCP_CLUSTER_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define CLUSTER_SLOTS_COUNT     16384u
#define CLUSTER_SLOTS_NONE      0xffffu
#define CLUSTER_SLOTS_NODES_MAX 256u /* distinct addresses remembered */
#define CLUSTER_SLOTS_HOST_MAX  256  /* with its NUL */

struct cluster_slots_node {
    char     host[CLUSTER_SLOTS_HOST_MAX];
    uint16_t port;
};

struct cluster_slots {
    uint16_t                  owner[CLUSTER_SLOTS_COUNT]; /* node index */
    /* node index of one of the slot's replicas, or NONE */
    uint16_t                  replica[CLUSTER_SLOTS_COUNT];
    uint32_t                  nnodes;
    struct cluster_slots_node nodes[CLUSTER_SLOTS_NODES_MAX];
};

enum cluster_redirect_kind {
    CLUSTER_REDIRECT_NONE = 0, /* not a cluster error */
    CLUSTER_REDIRECT_MOVED,    /* the slot lives elsewhere now */
    CLUSTER_REDIRECT_ASK,      /* this one key: ask there once */
    CLUSTER_REDIRECT_TRYAGAIN, /* a multi-key op during a migration */
    CLUSTER_REDIRECT_DOWN      /* CLUSTERDOWN: retry, then give up */
};

struct cluster_redirect {
    enum cluster_redirect_kind kind;
    uint16_t                   slot; /* MOVED/ASK */
    char                       host[CLUSTER_SLOTS_HOST_MAX];
    uint16_t                   port;
};

/* CRC16-XMODEM (polynomial 0x1021, initial 0), Redis' crc16(). */
uint16_t cluster_crc16(const void *buf, size_t len);

/* The slot of key, as `CLUSTER KEYSLOT` answers. */
uint16_t cluster_keyslot(const void *key, size_t len);

/* An empty map: no node, no slot served. */
void cluster_slots_init(struct cluster_slots *m);

/* The index of host:port in m, added when new.  -ENOSPC when the map
 * holds CLUSTER_SLOTS_NODES_MAX addresses, -ENAMETOOLONG for a host
 * that does not fit. */
int cluster_slots_node(struct cluster_slots *m, const char *host,
                       size_t host_len, uint16_t port);

/* Slots with an owner. */
uint32_t cluster_slots_covered(const struct cluster_slots *m);

/*
 * Replaces m's owners with what a CLUSTER SLOTS reply says: the primary
 * of each range, and one of its replicas (number pick % their count, so
 * workers given different picks spread over them).  A node given with
 * an empty address (one that does not know its own) is asked_host, the
 * node that answered; "?" (an unknown endpoint) is skipped.  Nodes
 * already in m keep their indexes.  0, or -EINVAL with why set (m's
 * owners unchanged) when the reply is not a CLUSTER SLOTS answer;
 * -ENOSPC when too many nodes.
 */
int cluster_slots_from_reply(struct cluster_slots *m, const redisReply *r,
                             const char *asked_host, unsigned pick, char *why,
                             size_t why_len);

/*
 * The same from a CLUSTER SHARDS reply (Redis 7; CLUSTER SLOTS is
 * deprecated there): each shard's slot ranges go to its node whose role
 * is master, whatever its health (as CLUSTER SLOTS lists a failed
 * primary until a replica is promoted), and one of its replicas whose
 * health is online is picked as above.  A node's address is its
 * "endpoint" (else "ip"), its port "tls-port" when tls (else "port"),
 * or the other when that one is absent.  Same returns as above.
 */
int cluster_slots_from_shards(struct cluster_slots *m, const redisReply *r,
                              const char *asked_host, unsigned pick, bool tls,
                              char *why, size_t why_len);

/* Reads "MOVED 3999 127.0.0.1:6381", "ASK ...", "TRYAGAIN ...",
 * "CLUSTERDOWN ...".  Anything else (or a malformed redirect) is
 * CLUSTER_REDIRECT_NONE.  An empty host in MOVED/ASK (":6381", Redis'
 * way of saying "the endpoint you used") is left empty for the caller
 * to fill. */
void cluster_redirect_parse(const char *text, size_t len,
                            struct cluster_redirect *out);

#endif
