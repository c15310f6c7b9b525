"""Redis' own expiry: a cached entry never outlives its key in Redis.

Each GET to Redis is pipelined with a PTTL of the key, and the entry
expires at the earlier of --ttl and the key's expiry in Redis; max-age
counts down to that time, and no stale window runs past it.  A key with
no expiry (PTTL -1, PERSIST) lives the global TTL.
"""
import re
import time

import redis
import requests

from conftest import get, wait_for
# The cluster and Sentinel set-ups, as their own tests build them.
from test_cluster import cluster, keyslot  # noqa: F401
from test_sentinel import setup  # noqa: F401


def max_age(r):
    m = re.search(r"max-age=(\d+)", r.headers.get("Cache-Control", ""))
    assert m, r.headers
    return int(m.group(1))


def watch_until_gone(p, key, set_at, value, limit_s):
    """Reads key through the proxy until it is 404; returns (hits, the
    latest time after set_at at which a request that was answered with
    value was sent).  The send time, not the answer's: on a busy machine
    an answer may come a while after the proxy wrote it."""
    s = requests.Session()
    hits = 0
    last_served = None
    deadline = set_at + limit_s
    while time.monotonic() < deadline:
        sent = time.monotonic()
        r = s.get(p.url("/" + key), timeout=5)
        if r.status_code == 404:
            return hits, last_served
        assert r.status_code == 200 and r.content == value, r
        if r.headers["X-Cache"] == "HIT":
            hits += 1
        last_served = sent - set_at
    raise AssertionError("%s still served after %.1f s" % (key, limit_s))


def px_300_rounds(p, client, keys):
    """SET PX 300 of each key (through client), then reads it through the
    proxy until it is gone: never served past 300 ms (+ 20 ms).  Returns
    the hits seen meanwhile."""
    total_hits = 0
    for key in keys:
        client.set(key, "v", px=300)
        set_at = time.monotonic()       # after SET's reply
        hits, last = watch_until_gone(p, key, set_at, b"v", 5)
        total_hits += hits
        assert last is not None and last <= 0.320, (key, last)
    return total_hits


def test_px_300_not_served_after_it_expires(redis_server, make_proxy):
    p = make_proxy(redis_server, "--workers", "2", "--ttl", "1h")
    c = redis_server.client()
    # Never served past 300 ms (+ 20 ms) ...
    total_hits = px_300_rounds(p, c, ["px%d" % i for i in range(5)])
    # ... though cached meanwhile: the expiry is the cache's, not a miss
    # asking Redis each time (a very busy machine may take the 300 ms of
    # one round for its first miss alone).
    assert total_hits > 0


def test_max_age_counts_down_to_redis_expiry(redis_server, make_proxy):
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "1h")
    c = redis_server.client()
    c.set("ex", "v", ex=100)
    r = get(p, "ex")
    assert r.headers["X-Cache"] == "MISS"
    assert 98 <= max_age(r) <= 100, r.headers
    r = get(p, "ex")
    assert r.headers["X-Cache"] == "HIT"
    assert 98 <= max_age(r) <= 100, r.headers
    # Without an expiry in Redis: the whole TTL.
    c.set("forever", "v")
    r = get(p, "forever")
    assert max_age(r) == 3600, r.headers
    r = get(p, "forever")
    assert r.headers["X-Cache"] == "HIT"
    assert 3599 <= max_age(r) <= 3600, r.headers


def test_no_expiry_or_persist_lives_the_global_ttl(redis_server, make_proxy):
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "1s")
    c = redis_server.client()
    c.set("plain", "v")
    c.set("persisted", "v", px=300)
    c.persist("persisted")
    # Before the fetches: "plain"'s TTL runs from its fetch, and taken
    # after both, t0 lost what the second took (>50 ms under load).
    t0 = time.monotonic()
    for key in ("plain", "persisted"):
        assert get(p, key).headers["X-Cache"] == "MISS"
    # Redis would have dropped "persisted" at 300 ms without PERSIST:
    # both are HITs well past that, until the TTL.
    wait_for(lambda: time.monotonic() - t0 > 0.5, what="half a second")
    for key in ("plain", "persisted"):
        r = get(p, key)
        assert r.status_code == 200 and r.headers["X-Cache"] == "HIT", key
    wait_for(lambda: get(p, "plain").headers["X-Cache"] == "MISS",
             timeout=3, what="the TTL to end")
    assert time.monotonic() - t0 >= 0.95


def test_stale_windows_end_at_redis_expiry(redis_server, make_proxy):
    """--stale-while-revalidate and --stale-if-error never answer a key
    Redis has expired: the window is cut at Redis' expiry."""
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "1h",
                   "--stale-while-revalidate", "1h",
                   "--stale-if-error", "1h")
    c = redis_server.client()
    assert px_300_rounds(p, c, ["k%d" % i for i in range(3)]) > 0
    # And with Redis gone, stale-if-error has nothing to serve.
    c.set("j", "v", px=300)
    assert get(p, "j").headers["X-Cache"] == "MISS"
    redis_server.stop()
    wait_for(lambda: get(p, "j").status_code != 200, timeout=2,
             what="the entry to end with Redis down")



def test_cluster_reads_pttl_from_the_node_of_the_get(cluster, make_proxy):
    """With --redis-cluster, PTTL goes to the node that answers the GET
    (pipelined behind it); a PTTL answered by another node would be a
    -MOVED, and the value would then not be cached at all."""
    seeds = ",".join(n.addr for n in cluster.nodes[:2])
    p = make_proxy(None, "--redis-cluster", seeds, "--workers", "1",
                   "--ttl", "1h")
    rc = redis.cluster.RedisCluster(host="127.0.0.1",
                                    port=cluster.nodes[0].port)
    try:
        keys = ["exp:%d" % i for i in range(12)]
        assert len({cluster.owner(keyslot(k)).port for k in keys}) == 3
        for k in keys[:3]:
            rc.set(k, "v")
        for k in keys[:3]:
            get(p, k)
            assert get(p, k).headers["X-Cache"] == "HIT"
        assert px_300_rounds(p, rc, keys[3:9]) > 0
    finally:
        rc.close()


def test_sentinel_reads_pttl_with_the_value(setup, make_proxy):
    p = make_proxy(None, "--redis-sentinel", setup.seeds(),
                   "--redis-master", "mymaster", "--workers", "1",
                   "--ttl", "1h")
    c = setup.primary.client()
    wait_for(lambda: get(p, "none").status_code == 404,
             what="the primary found")
    assert px_300_rounds(p, c, ["k%d" % i for i in range(3)]) > 0
