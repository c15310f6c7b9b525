"""--tracking with --redis-cluster: tracking runs per node.  Each worker
has a subscriber on every primary it reads from (and, in default mode,
CLIENT TRACKING on its connection to that node), so a write through
`redis-cli -c` on a key in any slot is seen fresh through the proxy;
losing one node's subscriber stops cache serving until it is back; a
primary that fails over loses its subscriber and the promoted replica
gets one.

A real 3-primary, 3-replica cluster (test_cluster.py's fixture)."""
import subprocess
import time

import pytest
import requests

from conftest import wait_for
from test_cluster import cluster, keyslot, replicas_of  # noqa: F401
from test_tracking import (FRESH_MS, SEEN_MS, clients, distribution,
                           read_all_fresh, tracking_up)

WRITES = 150


def keys_per_primary(cluster, n):  # noqa: F811
    """n keys owned by each primary: {port: [key, ...]}."""
    out = {}
    i = 0
    while len(out) < 3 or any(len(v) < n for v in out.values()):
        k = "ct:%d" % i
        i += 1
        port = cluster.owner(keyslot(k)).port
        if len(out.setdefault(port, [])) < n:
            out[port].append(k)
    return out


def cli_set(cluster, key, value):  # noqa: F811
    """A write as a cluster client does it: redis-cli -c follows MOVED."""
    live = next(n for n in cluster.nodes if n.proc.poll() is None)
    r = subprocess.run(["redis-cli", "-c", "-p", str(live.port), "SET", key,
                        value], check=True, capture_output=True, text=True,
                       timeout=10)
    assert r.stdout.strip() == "OK", r.stdout + r.stderr


def tracking_proxy(make_proxy, cluster, mode, workers):  # noqa: F811
    seeds = ",".join(n.addr for n in cluster.nodes[:2])
    return make_proxy(None, "--redis-cluster", seeds, "--workers", workers,
                      "--ttl", "1h", "--tracking", mode)


def warm(p, keys, want):
    """Reads every key until it is a HIT with want: each worker has made
    its node subscribers and tracking is up everywhere."""
    s = requests.Session()

    def all_hits():
        if not tracking_up(p):
            return False
        for k in keys:
            r = s.get(p.url("/" + k), timeout=5)
            assert r.status_code == 200 and r.text == want[k], (k, r.text)
            if r.headers["X-Cache"] != "HIT":
                return False
        return True
    wait_for(all_hits, timeout=15, what="every key a HIT, tracking up")


@pytest.mark.parametrize("mode", ["default", "bcast"])
def test_writes_in_every_slot_seen_fresh(cluster, make_proxy,  # noqa: F811
                                         mode):
    per = keys_per_primary(cluster, 3)
    keys = [k for v in per.values() for k in v]
    want = {}
    for k in keys:
        cli_set(cluster, k, "v0")
        want[k] = "v0"
    p = tracking_proxy(make_proxy, cluster, mode, "2")
    warm(p, keys, want)
    # A subscriber on every primary, one per worker that read there.
    for port in per:
        node = cluster.by_port(port)
        assert len(clients(node.client(), "P")) >= 1, port
    s = requests.Session()
    delays = []
    hits = 0
    for i in range(WRITES):
        k = keys[i % len(keys)]
        new = "v%d" % (i + 1)
        cli_set(cluster, k, new)
        t0 = time.monotonic()
        while True:
            start_ms = (time.monotonic() - t0) * 1000
            r = s.get(p.url("/" + k), timeout=5)
            if r.text == new:
                delays.append(start_ms)
                break
            # Every write seen within SEEN_MS, the typical one within
            # FRESH_MS (asserted below), as in test_tracking.py: with two
            # workers, the one that fetched the key reads its
            # invalidation, and a loaded machine can leave it unscheduled
            # for tens of ms while the other answers hits (48 ms
            # measured there, against 50 asserted for every write).
            assert start_ms <= SEEN_MS, (k, new, r.text, start_ms)
        # The cache is in use: the next read is a hit.
        r = s.get(p.url("/" + k), timeout=5)
        assert r.text == new
        hits += r.headers["X-Cache"] == "HIT"
    print("cluster %s: %d writes, %d keys on 3 primaries: %s; re-reads "
          "that were hits: %d" % (mode, WRITES, len(keys),
                                  distribution(delays), hits))
    assert max(delays) <= SEEN_MS
    assert sorted(delays)[len(delays) // 2] < FRESH_MS, distribution(delays)
    assert hits >= WRITES * 9 // 10
    assert "answering from Redis" not in p.log()


@pytest.mark.parametrize("mode", ["default", "bcast"])
def test_one_node_subscriber_killed(cluster, make_proxy, mode):  # noqa: F811
    per = keys_per_primary(cluster, 1)
    ports = sorted(per)
    k, other = per[ports[0]][0], per[ports[1]][0]
    want = {k: "a1", other: "b1"}
    for key, v in want.items():
        cli_set(cluster, key, v)
    p = tracking_proxy(make_proxy, cluster, mode, "1")
    warm(p, [k, other], want)
    victim = cluster.by_port(ports[0]).client()
    ids = clients(victim, "P")
    assert len(ids) == 1, victim.client_list()
    assert victim.client_kill_filter(_id=ids[0]) == 1
    # That node's invalidations have nowhere to go: nothing is answered
    # from the cache, on any node, until its subscriber is back.
    cli_set(cluster, k, "a2")
    s = requests.Session()
    r = s.get(p.url("/" + other), timeout=5)
    assert r.text == "b1" and r.headers["X-Cache"] != "HIT", r.headers
    read_all_fresh(p, k, "a2")
    assert "answering from Redis" in p.log()
    # Back: a new subscriber on that node, the cache flushed and used,
    # writes seen at once again.
    want[k] = "a2"
    warm(p, [k, other], want)
    assert len(clients(victim, "P")) == 1
    for key, v in ((k, "a3"), (other, "b3")):
        cli_set(cluster, key, v)
        wait_for(lambda: s.get(p.url("/" + key), timeout=5).text == v,
                 timeout=SEEN_MS / 1000.0, interval=0.001,
                 what="the write after recovery seen")


def test_failover_moves_the_subscriber(cluster, make_proxy):  # noqa: F811
    """Last in this module: it kills a primary.  The dead node leaves the
    map and its subscriber goes; the promoted replica gets one."""
    per = keys_per_primary(cluster, 1)
    port = sorted(per)[0]
    k = per[port][0]
    others = [per[q][0] for q in per if q != port]
    want = {k: "f1"}
    cli_set(cluster, k, "f1")
    for o in others:
        cli_set(cluster, o, "o1")
        want[o] = "o1"
    p = tracking_proxy(make_proxy, cluster, "default", "1")
    warm(p, list(want), want)
    old = cluster.by_port(port)
    # A replica in sync, or it would not take over.
    wait_for(lambda: any(n.client().info("replication")
                         .get("master_link_status") == "up"
                         for n in replicas_of(cluster, old)),
             timeout=30, what="a replica in sync")
    old.kill()
    wait_for(lambda: (cluster.owner(keyslot(k)) or old) is not old,
             timeout=30, interval=0.1, what="a replica promoted")
    new = cluster.owner(keyslot(k))
    s = requests.Session()

    def dropped():
        # A read of k finds the dead node and asks for a new map.
        s.get(p.url("/" + k), timeout=5)
        return "left the map" in p.log()
    wait_for(dropped, timeout=15, interval=0.1,
             what="the dead node's subscriber dropped")
    warm(p, list(want), want)
    assert len(clients(new.client(), "P")) == 1, p.log()
    cli_set(cluster, k, "f2")
    wait_for(lambda: s.get(p.url("/" + k), timeout=5).text == "f2",
             timeout=SEEN_MS / 1000.0, interval=0.001,
             what="the write on the promoted primary seen")


def test_a_read_that_followed_ask_is_not_cached(cluster,  # noqa: F811
                                                make_proxy):
    """While a slot migrates, a key already moved is read through -ASK
    from the importing node, which may own no slot yet and so have no
    subscriber of ours: answered, never kept, so it cannot go stale."""
    key = "{askt}k"
    slot = keyslot(key)
    src = cluster.owner(slot)
    dst = next(n for n in cluster.primaries() if n is not src)
    cli_set(cluster, key, "v1")
    p = tracking_proxy(make_proxy, cluster, "default", "1")
    wait_for(lambda: tracking_up(p), what="tracking up")
    src_id = src.client().execute_command("CLUSTER", "MYID")
    dst_id = dst.client().execute_command("CLUSTER", "MYID")
    dst.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING",
                                 src_id)
    src.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING",
                                 dst_id)
    try:
        src.client().execute_command("MIGRATE", "127.0.0.1", dst.port, "",
                                     0, 5000, "KEYS", key)
        s = requests.Session()
        for _ in range(3):
            r = s.get(p.url("/" + key), timeout=5)
            assert (r.status_code, r.text) == (200, "v1"), r.text
            assert r.headers["X-Cache"] != "HIT", r.headers
            assert "stored" not in r.headers.get("Cache-Status", ""), \
                r.headers
        text = requests.get(p.admin_url("/metrics"), timeout=5).text
        assert 'rcp_backend_redirects_total{kind="ask"} 0' not in text
    finally:
        # The slot ends on dst, as a finished migration leaves it.
        for node in [dst, src] + [x for x in cluster.primaries()
                                  if x not in (src, dst)]:
            node.client().execute_command("CLUSTER", "SETSLOT", slot,
                                          "NODE", dst_id)
