/*
 * cluster_slots: key slots, the slot map and the redirect texts; see
 * cluster_slots.h.  Everything here is a pure function of its
 * arguments, so tests/check_cluster_slots.c drives it with tables
 * (slots checked against `redis-cli cluster keyslot`).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster_slots.h"

/* CRC16-XMODEM by table, as Redis' crc16.c: the table is
 * crc16(i << 8) for each byte value i. */
static uint16_t cluster_crc16_table[256];
static bool     cluster_crc16_ready;

static void
cluster_crc16_init(void)
{
    unsigned i, bit;

    for (i = 0; i < 256; i++) {
        uint16_t crc = (uint16_t) (i << 8);

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t) ((crc << 1) ^ 0x1021u)
                                  : (uint16_t) (crc << 1);
        }
        cluster_crc16_table[i] = crc;
    }
    cluster_crc16_ready = true;
}

uint16_t
cluster_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t             crc = 0;
    size_t               i;

    if (!cluster_crc16_ready) {
        /* Idempotent: every process computes the same table. */
        cluster_crc16_init();
    }
    for (i = 0; i < len; i++) {
        crc = (uint16_t) ((crc << 8)
                          ^ cluster_crc16_table[((crc >> 8) ^ p[i]) & 0xffu]);
    }
    return crc;
}

uint16_t
cluster_keyslot(const void *key, size_t len)
{
    const char *k = key;
    const char *open = memchr(k, '{', len);

    /* As Redis: only the first '{' counts, then the first '}' after it;
     * an empty tag ("{}") hashes the whole key. */
    if (open != NULL) {
        size_t      start = (size_t) (open - k) + 1;
        const char *close = memchr(k + start, '}', len - start);

        if (close != NULL && close > k + start) {
            return cluster_crc16(k + start, (size_t) (close - (k + start)))
                   & (CLUSTER_SLOTS_COUNT - 1);
        }
    }
    return cluster_crc16(k, len) & (CLUSTER_SLOTS_COUNT - 1);
}

void
cluster_slots_init(struct cluster_slots *m)
{
    memset(m->owner, 0xff, sizeof(m->owner));
    memset(m->replica, 0xff, sizeof(m->replica));
    m->nnodes = 0;
}

int
cluster_slots_node(struct cluster_slots *m, const char *host, size_t host_len,
                   uint16_t port)
{
    uint32_t i;

    if (host_len >= CLUSTER_SLOTS_HOST_MAX) {
        return -ENAMETOOLONG;
    }
    for (i = 0; i < m->nnodes; i++) {
        if (m->nodes[i].port == port && strlen(m->nodes[i].host) == host_len
            && memcmp(m->nodes[i].host, host, host_len) == 0) {
            return (int) i;
        }
    }
    if (m->nnodes >= CLUSTER_SLOTS_NODES_MAX) {
        return -ENOSPC;
    }
    memcpy(m->nodes[i].host, host, host_len);
    m->nodes[i].host[host_len] = '\0';
    m->nodes[i].port = port;
    m->nnodes++;
    return (int) i;
}

uint32_t
cluster_slots_covered(const struct cluster_slots *m)
{
    uint32_t i, n = 0;

    for (i = 0; i < CLUSTER_SLOTS_COUNT; i++) {
        n += m->owner[i] != CLUSTER_SLOTS_NONE;
    }
    return n;
}

/* One range's checks; the node itself is looked up by the caller. */
static bool
cluster_slots_range_ok(const redisReply *e, char *why, size_t why_len)
{
    const redisReply *node;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
        || e->element[0]->type != REDIS_REPLY_INTEGER
        || e->element[1]->type != REDIS_REPLY_INTEGER) {
        (void) snprintf(why, why_len, "a range is not [start, end, node..]");
        return false;
    }
    if (e->element[0]->integer < 0
        || e->element[1]->integer >= (long long) CLUSTER_SLOTS_COUNT
        || e->element[0]->integer > e->element[1]->integer) {
        (void) snprintf(why, why_len, "bad slot range %lld-%lld",
                        e->element[0]->integer, e->element[1]->integer);
        return false;
    }
    node = e->element[2];
    if (node->type != REDIS_REPLY_ARRAY || node->elements < 2
        || node->element[0]->type != REDIS_REPLY_STRING
        || node->element[1]->type != REDIS_REPLY_INTEGER
        || node->element[1]->integer < 0
        || node->element[1]->integer > 65535) {
        (void) snprintf(why, why_len, "a node is not [host, port, ...]");
        return false;
    }
    return true;
}

/* The index of the node a CLUSTER SLOTS entry names (checked to be
 * [host, port, ...]): CLUSTER_SLOTS_NONE for "?", or -errno. */
static int
cluster_slots_entry(struct cluster_slots *m, const redisReply *node,
                    const char *asked_host)
{
    const char *host = node->element[0]->str;
    size_t      host_len = node->element[0]->len;

    if (host_len == 1 && host[0] == '?') {
        return CLUSTER_SLOTS_NONE; /* an unknown endpoint */
    }
    if (host_len == 0) {
        host = asked_host;
        host_len = strlen(asked_host);
    }
    return cluster_slots_node(m, host, host_len,
                              (uint16_t) node->element[1]->integer);
}

static bool
cluster_slots_node_ok(const redisReply *node)
{
    return node->type == REDIS_REPLY_ARRAY && node->elements >= 2
           && node->element[0]->type == REDIS_REPLY_STRING
           && node->element[1]->type == REDIS_REPLY_INTEGER
           && node->element[1]->integer >= 0
           && node->element[1]->integer <= 65535;
}

int
cluster_slots_from_reply(struct cluster_slots *m, const redisReply *r,
                         const char *asked_host, unsigned pick, char *why,
                         size_t why_len)
{
    uint16_t owner[CLUSTER_SLOTS_COUNT];
    uint16_t replica[CLUSTER_SLOTS_COUNT];
    size_t   i, k;

    if (r->type != REDIS_REPLY_ARRAY) {
        (void) snprintf(why, why_len, "%s",
                        r->type == REDIS_REPLY_ERROR ? r->str
                                                     : "not an array");
        return -EINVAL;
    }
    /* Check everything before touching m, so a bad reply changes
     * nothing (nodes added by a good prefix are harmless). */
    for (i = 0; i < r->elements; i++) {
        if (!cluster_slots_range_ok(r->element[i], why, why_len)) {
            return -EINVAL;
        }
    }
    memset(owner, 0xff, sizeof(owner));
    memset(replica, 0xff, sizeof(replica));
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        size_t            nrep = 0, want;
        long long         s;
        int               idx, rep = CLUSTER_SLOTS_NONE;

        idx = cluster_slots_entry(m, e->element[2], asked_host);
        for (k = 3; k < e->elements; k++) {
            nrep += cluster_slots_node_ok(e->element[k]);
        }
        want = nrep > 0 ? pick % nrep : 0;
        for (k = 3; k < e->elements && nrep > 0 && idx >= 0; k++) {
            if (!cluster_slots_node_ok(e->element[k])) {
                continue;
            }
            if (want-- == 0) {
                rep = cluster_slots_entry(m, e->element[k], asked_host);
                break;
            }
        }
        if (idx < 0 || rep < 0) {
            idx = idx < 0 ? idx : rep;
            (void) snprintf(why, why_len, "%s",
                            idx == -ENOSPC ? "too many nodes"
                                           : "host name too long");
            return idx == -ENOSPC ? -ENOSPC : -EINVAL;
        }
        for (s = e->element[0]->integer; s <= e->element[1]->integer; s++) {
            owner[s] = (uint16_t) idx;
            replica[s] = idx == CLUSTER_SLOTS_NONE ? CLUSTER_SLOTS_NONE
                                                   : (uint16_t) rep;
        }
    }
    memcpy(m->owner, owner, sizeof(owner));
    memcpy(m->replica, replica, sizeof(replica));
    return 0;
}

/* --- CLUSTER SHARDS ---------------------------------------------------- */

/* The value of key name in a RESP2 flattened map (key, value, ...), or
 * NULL. */
static const redisReply *
cluster_shards_field(const redisReply *kv, const char *name)
{
    size_t n = strlen(name), i;

    for (i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i];

        if (k->type == REDIS_REPLY_STRING && k->len == n
            && memcmp(k->str, name, n) == 0) {
            return kv->element[i + 1];
        }
    }
    return NULL;
}

static bool
cluster_shards_is(const redisReply *v, const char *text)
{
    return v != NULL && v->type == REDIS_REPLY_STRING && v->len == strlen(text)
           && memcmp(v->str, text, v->len) == 0;
}

/* A slot number: Redis gives integers; digits in a string are taken
 * too.  -1 when it is neither or out of range. */
static long long
cluster_shards_slot(const redisReply *v)
{
    long long n = -1;
    size_t    i;

    if (v->type == REDIS_REPLY_INTEGER) {
        n = v->integer;
    } else if (v->type == REDIS_REPLY_STRING && v->len > 0 && v->len <= 5) {
        for (n = 0, i = 0; i < v->len; i++) {
            if (v->str[i] < '0' || v->str[i] > '9') {
                return -1;
            }
            n = n * 10 + (v->str[i] - '0');
        }
    }
    return n >= 0 && n < (long long) CLUSTER_SLOTS_COUNT ? n : -1;
}

struct cluster_shards_node {
    const char *host;
    size_t      host_len;
    uint16_t    port;
    bool        primary;
    bool        online;
};

/* Reads one node's map.  false (why set) when it lacks an address, a
 * port or a role. */
static bool
cluster_shards_node_read(const redisReply *n, bool tls,
                         struct cluster_shards_node *out, char *why,
                         size_t why_len)
{
    const redisReply *host, *port, *role, *health;

    if (n->type != REDIS_REPLY_ARRAY || n->elements % 2 != 0) {
        (void) snprintf(why, why_len, "a shard's node is not a map");
        return false;
    }
    host = cluster_shards_field(n, "endpoint");
    if (host == NULL || host->type != REDIS_REPLY_STRING) {
        host = cluster_shards_field(n, "ip");
    }
    port = cluster_shards_field(n, tls ? "tls-port" : "port");
    if (port == NULL) {
        port = cluster_shards_field(n, tls ? "port" : "tls-port");
    }
    role = cluster_shards_field(n, "role");
    if (host == NULL || host->type != REDIS_REPLY_STRING || port == NULL
        || port->type != REDIS_REPLY_INTEGER || port->integer < 0
        || port->integer > 65535 || role == NULL
        || role->type != REDIS_REPLY_STRING) {
        (void) snprintf(why, why_len,
                        "a shard's node lacks an endpoint, "
                        "a port or a role");
        return false;
    }
    health = cluster_shards_field(n, "health");
    out->host = host->str;
    out->host_len = host->len;
    out->port = (uint16_t) port->integer;
    out->primary = cluster_shards_is(role, "master");
    out->online = health == NULL || cluster_shards_is(health, "online");
    return true;
}

/* The index of a node ("?" unknown: CLUSTER_SLOTS_NONE; "" the node
 * asked), or -errno. */
static int
cluster_shards_index(struct cluster_slots             *m,
                     const struct cluster_shards_node *n,
                     const char                       *asked_host)
{
    if (n->host_len == 1 && n->host[0] == '?') {
        return CLUSTER_SLOTS_NONE;
    }
    if (n->host_len == 0) {
        return cluster_slots_node(m, asked_host, strlen(asked_host), n->port);
    }
    return cluster_slots_node(m, n->host, n->host_len, n->port);
}

/* Checks shard (apply false), or writes its slots into owner[] and
 * replica[] (apply true, after every shard was checked).  0, or -errno
 * with why set. */
static int
cluster_shards_one(struct cluster_slots *m, const redisReply *shard,
                   const char *asked_host, unsigned pick, bool tls, bool apply,
                   uint16_t *owner, uint16_t *replica, char *why,
                   size_t why_len)
{
    const redisReply          *slots, *nodes;
    struct cluster_shards_node n;
    const redisReply          *primary = NULL;
    size_t                     i, nrep = 0, want;
    int                        idx, rep = CLUSTER_SLOTS_NONE;

    if (shard->type != REDIS_REPLY_ARRAY || shard->elements % 2 != 0
        || (slots = cluster_shards_field(shard, "slots")) == NULL
        || (nodes = cluster_shards_field(shard, "nodes")) == NULL
        || slots->type != REDIS_REPLY_ARRAY || slots->elements % 2 != 0
        || nodes->type != REDIS_REPLY_ARRAY) {
        (void) snprintf(why, why_len,
                        "a shard is not a map with slots "
                        "and nodes");
        return -EINVAL;
    }
    for (i = 0; i < slots->elements; i += 2) {
        long long lo = cluster_shards_slot(slots->element[i]);
        long long hi = cluster_shards_slot(slots->element[i + 1]);

        if (lo < 0 || hi < lo) {
            (void) snprintf(why, why_len, "a shard's slot range is bad");
            return -EINVAL;
        }
    }
    for (i = 0; i < nodes->elements; i++) {
        if (!cluster_shards_node_read(nodes->element[i], tls, &n, why,
                                      why_len)) {
            return -EINVAL;
        }
        if (n.primary && primary == NULL) {
            primary = nodes->element[i];
        } else if (!n.primary && n.online) {
            nrep++;
        }
    }
    if (!apply || primary == NULL || slots->elements == 0) {
        return 0; /* no primary: its slots stay uncovered */
    }
    (void) cluster_shards_node_read(primary, tls, &n, why, why_len);
    idx = cluster_shards_index(m, &n, asked_host);
    want = nrep > 0 ? pick % nrep : 0;
    for (i = 0; i < nodes->elements && nrep > 0 && idx >= 0; i++) {
        (void) cluster_shards_node_read(nodes->element[i], tls, &n, why,
                                        why_len);
        if (n.primary || !n.online) {
            continue;
        }
        if (want-- == 0) {
            rep = cluster_shards_index(m, &n, asked_host);
            break;
        }
    }
    if (idx < 0 || rep < 0) {
        idx = idx < 0 ? idx : rep;
        (void) snprintf(why, why_len, "%s",
                        idx == -ENOSPC ? "too many nodes"
                                       : "host name too long");
        return idx == -ENOSPC ? -ENOSPC : -EINVAL;
    }
    for (i = 0; i < slots->elements; i += 2) {
        long long s = cluster_shards_slot(slots->element[i]);
        long long hi = cluster_shards_slot(slots->element[i + 1]);

        for (; s <= hi; s++) {
            owner[s] = (uint16_t) idx;
            replica[s] = idx == CLUSTER_SLOTS_NONE ? CLUSTER_SLOTS_NONE
                                                   : (uint16_t) rep;
        }
    }
    return 0;
}

int
cluster_slots_from_shards(struct cluster_slots *m, const redisReply *r,
                          const char *asked_host, unsigned pick, bool tls,
                          char *why, size_t why_len)
{
    uint16_t owner[CLUSTER_SLOTS_COUNT];
    uint16_t replica[CLUSTER_SLOTS_COUNT];
    size_t   i;
    int      rc;

    if (r->type != REDIS_REPLY_ARRAY) {
        (void) snprintf(why, why_len, "%s",
                        r->type == REDIS_REPLY_ERROR ? r->str
                                                     : "not an array");
        return -EINVAL;
    }
    /* Check every shard before touching m, as for CLUSTER SLOTS. */
    for (i = 0; i < r->elements; i++) {
        rc = cluster_shards_one(m, r->element[i], asked_host, pick, tls, false,
                                NULL, NULL, why, why_len);
        if (rc != 0) {
            return rc;
        }
    }
    memset(owner, 0xff, sizeof(owner));
    memset(replica, 0xff, sizeof(replica));
    for (i = 0; i < r->elements; i++) {
        rc = cluster_shards_one(m, r->element[i], asked_host, pick, tls, true,
                                owner, replica, why, why_len);
        if (rc != 0) {
            return rc;
        }
    }
    memcpy(m->owner, owner, sizeof(owner));
    memcpy(m->replica, replica, sizeof(replica));
    return 0;
}

/* Parses a decimal in [0, max] from p[0..len).  -1 when it is not. */
static long
cluster_slots_number(const char *p, size_t len, long max)
{
    long   v = 0;
    size_t i;

    if (len == 0 || len > 5) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }
    return v <= max ? v : -1;
}

static bool
cluster_slots_word(const char *text, size_t len, const char *word)
{
    size_t wl = strlen(word);

    return len >= wl && memcmp(text, word, wl) == 0
           && (len == wl || text[wl] == ' ');
}

void
cluster_redirect_parse(const char *text, size_t len,
                       struct cluster_redirect *out)
{
    enum cluster_redirect_kind kind;
    const char                *p, *end = text + len, *sp, *colon;
    long                       slot, port;
    size_t                     host_len;

    memset(out, 0, sizeof(*out));
    if (cluster_slots_word(text, len, "TRYAGAIN")) {
        out->kind = CLUSTER_REDIRECT_TRYAGAIN;
        return;
    }
    if (cluster_slots_word(text, len, "CLUSTERDOWN")) {
        out->kind = CLUSTER_REDIRECT_DOWN;
        return;
    }
    if (cluster_slots_word(text, len, "MOVED")) {
        kind = CLUSTER_REDIRECT_MOVED;
        p = text + 6;
    } else if (cluster_slots_word(text, len, "ASK")) {
        kind = CLUSTER_REDIRECT_ASK;
        p = text + 4;
    } else {
        return;
    }
    if (p >= end || (sp = memchr(p, ' ', (size_t) (end - p))) == NULL) {
        return;
    }
    slot = cluster_slots_number(p, (size_t) (sp - p), CLUSTER_SLOTS_COUNT - 1);
    p = sp + 1;
    /* The port follows the last ':' (an IPv6 address has several). */
    for (colon = NULL, sp = p; sp < end; sp++) {
        if (*sp == ':') {
            colon = sp;
        }
    }
    if (slot < 0 || colon == NULL) {
        return;
    }
    port = cluster_slots_number(colon + 1, (size_t) (end - colon - 1), 65535);
    host_len = (size_t) (colon - p);
    if (port <= 0 || host_len >= CLUSTER_SLOTS_HOST_MAX
        || memchr(p, ' ', host_len) != NULL) {
        return;
    }
    out->kind = kind;
    out->slot = (uint16_t) slot;
    out->port = (uint16_t) port;
    memcpy(out->host, p, host_len);
    out->host[host_len] = '\0';
}
