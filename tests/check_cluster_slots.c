/*
 * check_cluster_slots: key slots against `redis-cli cluster keyslot`
 * (Redis 7.0), the map read from CLUSTER SLOTS replies (as RESP bytes,
 * parsed by hiredis as the router does) and the redirect texts, one
 * table row per case with a .why.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster_slots.h"

static const struct {
    const char *key;
    size_t      len;
    unsigned    slot;
    const char *why;
} slot_cases[] = {
    { "", 0, 0, "empty key" },
    { "foo", 3, 12182, "plain key" },
    { "bar", 3, 5061, "plain key" },
    { "hello", 5, 866, "plain key" },
    { "123456789", 9, 12739, "CRC16 check string (0x31c3)" },
    { "key:0", 5, 2592, "redis-benchmark style" },
    { "{user1000}.following", 21, 3443, "hash tag" },
    { "{user1000}.followers", 21, 3443, "same tag, same slot" },
    { "foo{}{bar}", 10, 8363, "empty first tag: the whole key" },
    { "foo{{bar}}zap", 13, 4015, "tag is '{bar' up to the first '}'" },
    { "foo{bar}{zap}", 13, 5061, "only the first tag counts" },
    { "{}", 2, 15257, "empty tag alone" },
    { "a{b", 3, 13340, "unclosed tag: the whole key" },
    { "}{x}", 4, 16287, "a '}' before the '{' is ignored" },
    { "k{a}b{c}", 8, 15495, "first tag of two" },
    { "x{bar}", 6, 5061, "tag equals the key 'bar'" },
    { "{bar\0}", 6, 14042, "NUL inside the tag is a byte like any" },
};

START_TEST(keyslot_table)
{
    unsigned got = cluster_keyslot(slot_cases[_i].key, slot_cases[_i].len);

    ck_assert_msg(got == slot_cases[_i].slot, "%s: '%s' gave %u, want %u",
                  slot_cases[_i].why, slot_cases[_i].key, got,
                  slot_cases[_i].slot);
}
END_TEST

START_TEST(crc16_check_value)
{
    /* The CRC16-XMODEM check value of "123456789". */
    ck_assert_uint_eq(cluster_crc16("123456789", 9), 0x31c3);
    ck_assert_uint_eq(cluster_crc16("", 0), 0);
}
END_TEST

static redisReply *
parse_resp(const char *bytes)
{
    redisReader *r = redisReaderCreate();
    void *reply = NULL;

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(redisReaderFeed(r, bytes, strlen(bytes)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    redisReaderFree(r);
    return reply;
}


static const struct {
    const char *resp;
    int         rc;
    unsigned    covered;
    unsigned    nnodes;
    unsigned    probe_slot;     /* its owner's port is probe_port */
    unsigned    probe_port;
    const char *probe_host;
    const char *why;
} map_cases[] = {
    { "*3\r\n"
      "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$1\r\na\r\n"
      "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$1\r\nd\r\n"
      "*3\r\n:5461\r\n:10922\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$1\r\nb\r\n"
      "*3\r\n:10923\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7002\r\n$1\r\nc\r\n",
      0, 16384, 4, 10922, 7001, "127.0.0.1",
      "three primaries, one with a replica (a node of its own)" },
    { "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$0\r\n\r\n:7000\r\n",
      0, 16384, 1, 42, 7000, "10.9.8.7",
      "empty host: the node that was asked" },
    { "*2\r\n*3\r\n:0\r\n:99\r\n*2\r\n$1\r\n?\r\n:7000\r\n"
      "*3\r\n:100\r\n:199\r\n*2\r\n$1\r\nh\r\n:7001\r\n",
      0, 100, 1, 150, 7001, "h", "'?' is an unknown endpoint: uncovered" },
    { "*1\r\n*3\r\n:0\r\n:9\r\n*2\r\n$1\r\nh\r\n:1\r\n",
      0, 10, 1, 9, 1, "h", "part of the slots only" },
    { "*0\r\n", 0, 0, 0, 0, 0, NULL, "a cluster with no slot assigned" },
    { "-ERR This instance has cluster support disabled\r\n", -22, 0, 0, 0,
      0, NULL, "not a cluster" },
    { "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\nh\r\n:1\r\n", -22, 0, 0, 0, 0,
      NULL, "start after end" },
    { "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n", -22, 0, 0, 0,
      0, NULL, "end past the last slot" },
    { "*1\r\n*2\r\n:0\r\n:1\r\n", -22, 0, 0, 0, 0, NULL, "no node" },
    { "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n", -22, 0, 0, 0, 0, NULL,
      "host not a string" },
    { "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:70000\r\n", -22, 0, 0, 0,
      0, NULL, "port out of range" },
    { "+OK\r\n", -22, 0, 0, 0, 0, NULL, "a status, not an array" },
};

START_TEST(map_table)
{
    static struct cluster_slots m;
    redisReply *r = parse_resp(map_cases[_i].resp);
    char why[128] = "";
    int rc;

    cluster_slots_init(&m);
    rc = cluster_slots_from_reply(&m, r, "10.9.8.7", 0, why, sizeof(why));
    ck_assert_msg(rc == map_cases[_i].rc, "%s: rc %d (%s)",
                  map_cases[_i].why, rc, why);
    if (rc != 0) {
        ck_assert_msg(why[0] != '\0', "%s: no reason", map_cases[_i].why);
        ck_assert_uint_eq(cluster_slots_covered(&m), 0);
    } else {
        ck_assert_uint_eq(cluster_slots_covered(&m), map_cases[_i].covered);
        ck_assert_uint_eq(m.nnodes, map_cases[_i].nnodes);
    }
    if (map_cases[_i].probe_host != NULL) {
        unsigned o = m.owner[map_cases[_i].probe_slot];

        ck_assert_uint_lt(o, m.nnodes);
        ck_assert_str_eq(m.nodes[o].host, map_cases[_i].probe_host);
        ck_assert_uint_eq(m.nodes[o].port, map_cases[_i].probe_port);
    }
    freeReplyObject(r);
}
END_TEST

/* CLUSTER SHARDS replies (Redis 7), RESP2: each shard and node a flat
 * map.  Asked of 10.9.8.7, pick 0. */
static const struct {
    const char *resp;
    int         rc;
    unsigned    covered;
    unsigned    nnodes;
    unsigned    probe_slot;     /* its owner is probe_host:probe_port */
    unsigned    probe_port;
    const char *probe_host;
    bool        tls;            /* connected with TLS: tls-port wanted */
    unsigned    replica_port;   /* the probe slot's replica; 0: none */
    const char *why;
} shards_cases[] = {
    { "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:5460\r\n$5\r\n"
      "nodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:7000\r\n$2\r\nip\r\n$8\r\n10.0.0.1\r\n$8\r\n"
      "endpoint\r\n$8\r\n10.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
      "$18\r\nreplication-offset\r\n:5\r\n$6\r\nhealth\r\n"
      "$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:7003\r\n$2\r\nip\r\n$8\r\n10.0.0.4\r\n$8\r\n"
      "endpoint\r\n$8\r\n10.0.0.4\r\n$4\r\nrole\r\n$7\r\nreplica\r\n"
      "$18\r\nreplication-offset\r\n:5\r\n$6\r\nhealth\r\n"
      "$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5461\r\n"
      ":10922\r\n$5\r\nnodes\r\n*3\r\n*14\r\n$2\r\nid\r\n$3\r\n"
      "abc\r\n$4\r\nport\r\n:7004\r\n$2\r\nip\r\n$8\r\n10.0.0.5\r\n"
      "$8\r\nendpoint\r\n$8\r\n10.0.0.5\r\n$4\r\nrole\r\n$7\r\n"
      "replica\r\n$18\r\nreplication-offset\r\n:5\r\n$6\r\n"
      "health\r\n$4\r\nfail\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n"
      "$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$8\r\n10.0.0.2\r\n"
      "$8\r\nendpoint\r\n$8\r\n10.0.0.2\r\n$4\r\nrole\r\n$6\r\n"
      "master\r\n$18\r\nreplication-offset\r\n:5\r\n$6\r\n"
      "health\r\n$6\r\nonline\r\n*14\r\n$2\r\nid\r\n$3\r\n"
      "abc\r\n$4\r\nport\r\n:7005\r\n$2\r\nip\r\n$8\r\n10.0.0.6\r\n"
      "$8\r\nendpoint\r\n$8\r\n10.0.0.6\r\n$4\r\nrole\r\n$7\r\n"
      "replica\r\n$18\r\nreplication-offset\r\n:5\r\n$6\r\n"
      "health\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*4\r\n"
      ":10923\r\n:16000\r\n:16001\r\n:16383\r\n$5\r\nnodes\r\n"
      "*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\nport\r\n"
      ":7002\r\n$2\r\nip\r\n$8\r\n10.0.0.3\r\n$8\r\nendpoint\r\n"
      "$8\r\n10.0.0.3\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\n"
      "replication-offset\r\n:5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
      0, 16384, 5, 10000, 7001, "10.0.0.2", false, 7005,
      "three shards, a failed replica listed, two ranges in one shard" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\n"
      "nodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$8\r\n"
      "tls-port\r\n:7100\r\n$2\r\nip\r\n$1\r\nh\r\n$8\r\nendpoint\r\n"
      "$1\r\nh\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
      0, 16384, 1, 5, 7100, "h", true, 0,
      "tls-cluster: only tls-port given" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\n"
      "nodes\r\n*1\r\n*16\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:6379\r\n$8\r\ntls-port\r\n:7100\r\n$2\r\nip\r\n"
      "$1\r\nh\r\n$8\r\nendpoint\r\n$1\r\nh\r\n$4\r\nrole\r\n"
      "$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:5\r\n"
      "$6\r\nhealth\r\n$6\r\nonline\r\n",
      0, 16384, 1, 5, 7100, "h", true, 0,
      "TLS: tls-port over port" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\n"
      "nodes\r\n*1\r\n*16\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:6379\r\n$8\r\ntls-port\r\n:7100\r\n$2\r\nip\r\n"
      "$1\r\nh\r\n$8\r\nendpoint\r\n$1\r\nh\r\n$4\r\nrole\r\n"
      "$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:5\r\n"
      "$6\r\nhealth\r\n$6\r\nonline\r\n",
      0, 16384, 1, 5, 6379, "h", false, 0,
      "plain: port over tls-port" },
    { "*2\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:99\r\n$5\r\n"
      "nodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:7000\r\n$2\r\nip\r\n$0\r\n\r\n$8\r\nendpoint\r\n"
      "$0\r\n\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n"
      "*2\r\n:100\r\n:199\r\n$5\r\nnodes\r\n*1\r\n*14\r\n$2\r\n"
      "id\r\n$3\r\nabc\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n"
      "$1\r\n?\r\n$8\r\nendpoint\r\n$1\r\n?\r\n$4\r\nrole\r\n"
      "$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:5\r\n"
      "$6\r\nhealth\r\n$6\r\nonline\r\n",
      0, 100, 1, 50, 7000, "10.9.8.7", false, 0,
      "empty endpoint: the node asked; '?' uncovered" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\n"
      "nodes\r\n*1\r\n*12\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:7000\r\n$2\r\nip\r\n$11\r\n192.168.1.1\r\n"
      "$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
      0, 16384, 1, 0, 7000, "192.168.1.1", false, 0,
      "no endpoint: the ip" },
    { "*3\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:99\r\n$5\r\n"
      "nodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:1\r\n$2\r\nip\r\n$1\r\na\r\n$8\r\nendpoint\r\n"
      "$1\r\na\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n"
      "*0\r\n$5\r\nnodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\n"
      "abc\r\n$4\r\nport\r\n:2\r\n$2\r\nip\r\n$1\r\nb\r\n$8\r\n"
      "endpoint\r\n$1\r\nb\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
      "$18\r\nreplication-offset\r\n:5\r\n$6\r\nhealth\r\n"
      "$6\r\nonline\r\n*4\r\n$5\r\nslots\r\n*2\r\n:100\r\n"
      ":16383\r\n$5\r\nnodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\n"
      "abc\r\n$4\r\nport\r\n:3\r\n$2\r\nip\r\n$1\r\nc\r\n$8\r\n"
      "endpoint\r\n$1\r\nc\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
      "$18\r\nreplication-offset\r\n:5\r\n$6\r\nhealth\r\n"
      "$6\r\nonline\r\n",
      0, 16284, 1, 200, 3, "c", false, 0,
      "a shard with no master: its slots uncovered; an empty shard" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n$5\r\n"
      "nodes\r\n*2\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:1\r\n$2\r\nip\r\n$1\r\na\r\n$8\r\nendpoint\r\n"
      "$1\r\na\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$4\r\nfail\r\n*14\r\n$2\r\nid\r\n"
      "$3\r\nabc\r\n$4\r\nport\r\n:2\r\n$2\r\nip\r\n$1\r\n"
      "b\r\n$8\r\nendpoint\r\n$1\r\nb\r\n$4\r\nrole\r\n$7\r\n"
      "replica\r\n$18\r\nreplication-offset\r\n:5\r\n$6\r\n"
      "health\r\n$6\r\nonline\r\n",
      0, 16384, 2, 0, 1, "a", false, 2,
      "a failed primary keeps its slots until one is promoted" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n$1\r\n0\r\n$5\r\n16383\r\n"
      "$5\r\nnodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n"
      "$4\r\nport\r\n:1\r\n$2\r\nip\r\n$1\r\na\r\n$8\r\nendpoint\r\n"
      "$1\r\na\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
      0, 16384, 1, 16383, 1, "a", false, 0,
      "slot numbers as strings" },
    { "-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n",
      -22, 0, 0, 0, 0, NULL, false, 0,
      "an error reply" },
    { "*1\r\n*2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n",
      -22, 0, 0, 0, 0, NULL, false, 0,
      "a shard with no nodes" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*1\r\n:0\r\n$5\r\nnodes\r\n"
      "*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\nport\r\n"
      ":1\r\n$2\r\nip\r\n$1\r\na\r\n$8\r\nendpoint\r\n$1\r\n"
      "a\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
      -22, 0, 0, 0, 0, NULL, false, 0,
      "an odd slot list" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:5\r\n:4\r\n$5\r\n"
      "nodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:1\r\n$2\r\nip\r\n$1\r\na\r\n$8\r\nendpoint\r\n"
      "$1\r\na\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
      -22, 0, 0, 0, 0, NULL, false, 0,
      "start after end" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:16384\r\n$5\r\n"
      "nodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:1\r\n$2\r\nip\r\n$1\r\na\r\n$8\r\nendpoint\r\n"
      "$1\r\na\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
      -22, 0, 0, 0, 0, NULL, false, 0,
      "past the last slot" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n$5\r\n"
      "nodes\r\n*1\r\n*6\r\n$2\r\nid\r\n$1\r\nx\r\n$4\r\nport\r\n"
      ":1\r\n$8\r\nendpoint\r\n$1\r\na\r\n",
      -22, 0, 0, 0, 0, NULL, false, 0,
      "a node without a role" },
    { "*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n$5\r\n"
      "nodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:70000\r\n$2\r\nip\r\n$1\r\na\r\n$8\r\nendpoint\r\n"
      "$1\r\na\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n",
      -22, 0, 0, 0, 0, NULL, false, 0,
      "port out of range" },
    { "*2\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n$5\r\n"
      "nodes\r\n*1\r\n*14\r\n$2\r\nid\r\n$3\r\nabc\r\n$4\r\n"
      "port\r\n:1\r\n$2\r\nip\r\n$1\r\na\r\n$8\r\nendpoint\r\n"
      "$1\r\na\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n"
      ":5\r\n$6\r\nhealth\r\n$6\r\nonline\r\n$1\r\nx\r\n",
      -22, 0, 0, 0, 0, NULL, false, 0,
      "a shard that is not a map" },
};

START_TEST(shards_table)
{
    static struct cluster_slots m;
    redisReply *r = parse_resp(shards_cases[_i].resp);
    char why[128] = "";
    int rc;

    cluster_slots_init(&m);
    rc = cluster_slots_from_shards(&m, r, "10.9.8.7", 0,
                                   shards_cases[_i].tls, why, sizeof(why));
    ck_assert_msg(rc == shards_cases[_i].rc, "%s: rc %d (%s)",
                  shards_cases[_i].why, rc, why);
    if (rc != 0) {
        ck_assert_msg(why[0] != '\0', "%s: no reason", shards_cases[_i].why);
        ck_assert_uint_eq(cluster_slots_covered(&m), 0);
    } else {
        ck_assert_msg(cluster_slots_covered(&m) == shards_cases[_i].covered,
                      "%s: %u covered", shards_cases[_i].why,
                      cluster_slots_covered(&m));
        ck_assert_msg(m.nnodes == shards_cases[_i].nnodes, "%s: %u nodes",
                      shards_cases[_i].why, m.nnodes);
    }
    if (shards_cases[_i].probe_host != NULL) {
        unsigned o = m.owner[shards_cases[_i].probe_slot];
        unsigned rep = m.replica[shards_cases[_i].probe_slot];

        ck_assert_uint_lt(o, m.nnodes);
        ck_assert_str_eq(m.nodes[o].host, shards_cases[_i].probe_host);
        ck_assert_uint_eq(m.nodes[o].port, shards_cases[_i].probe_port);
        if (shards_cases[_i].replica_port == 0) {
            ck_assert_uint_eq(rep, CLUSTER_SLOTS_NONE);
        } else {
            ck_assert_uint_lt(rep, m.nnodes);
            ck_assert_uint_eq(m.nodes[rep].port,
                              shards_cases[_i].replica_port);
        }
    }
    freeReplyObject(r);
}
END_TEST

START_TEST(map_keeps_node_indexes)
{
    static struct cluster_slots m;
    redisReply *a = parse_resp("*2\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$1\r\na\r\n"
                               ":1\r\n*3\r\n:8192\r\n:16383\r\n*2\r\n$1\r\n"
                               "b\r\n:2\r\n");
    redisReply *b = parse_resp("*2\r\n*3\r\n:0\r\n:8191\r\n*2\r\n$1\r\nc\r\n"
                               ":3\r\n*3\r\n:8192\r\n:16383\r\n*2\r\n$1\r\n"
                               "a\r\n:1\r\n");
    char why[64];

    cluster_slots_init(&m);
    ck_assert_int_eq(cluster_slots_from_reply(&m, a, "x", 0, why, sizeof(why)),
                     0);
    ck_assert_uint_eq(m.owner[0], 0);
    ck_assert_uint_eq(m.owner[16383], 1);
    /* A failover: a's slots go to c, a takes b's.  Indexes stay. */
    ck_assert_int_eq(cluster_slots_from_reply(&m, b, "x", 0, why, sizeof(why)),
                     0);
    ck_assert_uint_eq(m.nnodes, 3);
    ck_assert_uint_eq(m.owner[0], 2);
    ck_assert_uint_eq(m.owner[16383], 0);
    ck_assert_int_eq(cluster_slots_node(&m, "b", 1, 2), 1);
    freeReplyObject(a);
    freeReplyObject(b);
}
END_TEST

START_TEST(map_replicas)
{
    static struct cluster_slots m;
    /* [0-99: a, replicas b and c], [100-199: d, no replica]. */
    redisReply *r = parse_resp(
        "*2\r\n*5\r\n:0\r\n:99\r\n*2\r\n$1\r\na\r\n:1\r\n"
        "*2\r\n$1\r\nb\r\n:2\r\n*2\r\n$1\r\nc\r\n:3\r\n"
        "*3\r\n:100\r\n:199\r\n*2\r\n$1\r\nd\r\n:4\r\n");
    const char *want[] = { "b", "c", "b", "c" };
    char why[64];
    unsigned pick;

    for (pick = 0; pick < 4; pick++) {
        cluster_slots_init(&m);
        ck_assert_int_eq(cluster_slots_from_reply(&m, r, "x", pick, why,
                                                  sizeof(why)), 0);
        ck_assert_str_eq(m.nodes[m.owner[50]].host, "a");
        ck_assert_uint_lt(m.replica[50], m.nnodes);
        ck_assert_str_eq(m.nodes[m.replica[50]].host, want[pick]);
        ck_assert_str_eq(m.nodes[m.owner[150]].host, "d");
        ck_assert_uint_eq(m.replica[150], CLUSTER_SLOTS_NONE);
        ck_assert_uint_eq(m.replica[500], CLUSTER_SLOTS_NONE);
    }
    freeReplyObject(r);
}
END_TEST

START_TEST(map_node_limit)
{
    static struct cluster_slots m;
    char host[16];
    unsigned i;

    cluster_slots_init(&m);
    for (i = 0; i < CLUSTER_SLOTS_NODES_MAX; i++) {
        int n = snprintf(host, sizeof(host), "h%u", i);

        ck_assert_int_eq(cluster_slots_node(&m, host, (size_t)n, 1), (int)i);
    }
    ck_assert_int_eq(cluster_slots_node(&m, "new", 3, 1), -ENOSPC);
    ck_assert_int_eq(cluster_slots_node(&m, "h7", 2, 1), 7);
}
END_TEST

static const struct {
    const char                *text;
    enum cluster_redirect_kind kind;
    unsigned                   slot;
    const char                *host;
    unsigned                   port;
    const char                *why;
} redirect_cases[] = {
    { "MOVED 3999 127.0.0.1:6381", CLUSTER_REDIRECT_MOVED, 3999,
      "127.0.0.1", 6381, "MOVED" },
    { "ASK 3999 127.0.0.1:6381", CLUSTER_REDIRECT_ASK, 3999, "127.0.0.1",
      6381, "ASK" },
    { "MOVED 16383 ::1:7000", CLUSTER_REDIRECT_MOVED, 16383, "::1", 7000,
      "IPv6: the port is after the last colon" },
    { "MOVED 12 redis-1.internal:6379", CLUSTER_REDIRECT_MOVED, 12,
      "redis-1.internal", 6379, "a host name" },
    { "MOVED 12 :6379", CLUSTER_REDIRECT_MOVED, 12, "", 6379,
      "empty host: the endpoint used" },
    { "TRYAGAIN Multiple keys request during rehashing of slot",
      CLUSTER_REDIRECT_TRYAGAIN, 0, "", 0, "TRYAGAIN" },
    { "CLUSTERDOWN Hash slot not served", CLUSTER_REDIRECT_DOWN, 0, "", 0,
      "CLUSTERDOWN" },
    { "CLUSTERDOWN", CLUSTER_REDIRECT_DOWN, 0, "", 0, "bare CLUSTERDOWN" },
    { "MOVED 16384 h:1", CLUSTER_REDIRECT_NONE, 0, "", 0, "slot too big" },
    { "MOVED 12 h", CLUSTER_REDIRECT_NONE, 0, "", 0, "no port" },
    { "MOVED 12 h:0", CLUSTER_REDIRECT_NONE, 0, "", 0, "port 0" },
    { "MOVED 12 h:65536", CLUSTER_REDIRECT_NONE, 0, "", 0, "port too big" },
    { "MOVED x h:1", CLUSTER_REDIRECT_NONE, 0, "", 0, "slot not a number" },
    { "MOVED", CLUSTER_REDIRECT_NONE, 0, "", 0, "truncated" },
    { "MOVEDX 1 h:1", CLUSTER_REDIRECT_NONE, 0, "", 0, "another word" },
    { "ERR unknown command", CLUSTER_REDIRECT_NONE, 0, "", 0, "not ours" },
    { "WRONGTYPE Operation", CLUSTER_REDIRECT_NONE, 0, "", 0, "not ours" },
    { "ASKING", CLUSTER_REDIRECT_NONE, 0, "", 0, "ASK is a whole word" },
};

START_TEST(redirect_table)
{
    struct cluster_redirect r;

    cluster_redirect_parse(redirect_cases[_i].text,
                           strlen(redirect_cases[_i].text), &r);
    ck_assert_msg(r.kind == redirect_cases[_i].kind, "%s: kind %d",
                  redirect_cases[_i].why, r.kind);
    ck_assert_uint_eq(r.slot, redirect_cases[_i].slot);
    ck_assert_str_eq(r.host, redirect_cases[_i].host);
    ck_assert_uint_eq(r.port, redirect_cases[_i].port);
}
END_TEST

static Suite *
cluster_slots_suite(void)
{
    Suite *s = suite_create("cluster_slots");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, keyslot_table, 0,
                        sizeof(slot_cases) / sizeof(slot_cases[0]));
    tcase_add_test(tc, crc16_check_value);
    tcase_add_loop_test(tc, map_table, 0,
                        sizeof(map_cases) / sizeof(map_cases[0]));
    tcase_add_loop_test(tc, shards_table, 0,
                        sizeof(shards_cases) / sizeof(shards_cases[0]));
    tcase_add_test(tc, map_keeps_node_indexes);
    tcase_add_test(tc, map_replicas);
    tcase_add_test(tc, map_node_limit);
    tcase_add_loop_test(tc, redirect_table, 0,
                        sizeof(redirect_cases) / sizeof(redirect_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(cluster_slots_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
