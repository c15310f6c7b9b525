"""--tracking: Redis tells the proxy which cached keys changed (CLIENT
TRACKING, RESP2 redirection to a subscriber in each worker), so a write
in Redis is never answered stale, and a proxy that cannot be sure of
that answers from Redis instead of the cache.

Real redis-server from REDIS_SERVER, except the race tests, which use a
stand-in Redis that holds a GET's reply while the test invalidates.
"""
import os
import queue
import random
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import Redis, port_open, wait_for


def metrics(p):
    text = requests.get(p.admin_url("/metrics"), timeout=5).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def tracking_up(p):
    return metrics(p).get("rcp_tracking_up") == 1


def health(p):
    return requests.get(p.admin_url("/health"), timeout=5).json()


def start_tracking_proxy(make_proxy, redis, mode, *extra, workers="2"):
    p = make_proxy(redis, "--workers", workers, "--ttl", "1h",
                   "--tracking", mode, *extra)
    # Every worker up (each flushes the cache as it comes up).
    wait_for(lambda: tracking_up(p)
             and p.log().count("invalidations from") == int(workers),
             what="tracking up in every worker")
    return p


def clients(r, flag):
    """Client ids of Redis connections whose flags include flag ('P': a
    subscriber, 't': tracking on)."""
    out = []
    for c in r.client_list():
        if flag in c["flags"] and c["cmd"] not in ("client|list",):
            out.append(int(c["id"]))
    return out


# --- never stale ----------------------------------------------------------

HOT_KEYS = 20
WRITES = 1000
FRESH_MS = 50


def run_writes(redis_server, proxies, writes, give_up_ms=2000):
    """Writes to random hot keys from a separate client; after each
    write's reply, reads the key through a random proxy until it answers
    the new value, then reads another hot key through every proxy (a
    hit, mostly), which must hold that key's latest value.  Returns the
    milliseconds from each write's reply to the first fresh read
    (give_up_ms when it never came), and the number of other-key reads
    that were stale more than FRESH_MS after their key's write.
    A read counts from when it was sent: a slow answer is not stale."""
    rc = redis_server.client()
    sessions = [requests.Session() for _ in proxies]
    rng = random.Random(16)
    keys = ["hot:%d" % i for i in range(HOT_KEYS)]
    current = {}
    written = {}
    for k in keys:
        rc.set(k, "v0")
        current[k] = "v0"
        written[k] = time.monotonic()
    # Warm every key in every proxy: reads that follow are hits.
    for _ in range(2):
        for s, p in zip(sessions, proxies):
            for k in keys:
                assert s.get(p.url("/" + k), timeout=5).text == "v0"
    delays = []
    stale_others = 0
    stale_reads = 0             # reads that answered the old value
    stale_first = 0             # writes whose first read did
    stale_late = 0              # stale reads sent > FRESH_MS after
    for i in range(writes):
        k = rng.choice(keys)
        new = "v%d" % (i + 1)
        rc.set(k, new)
        t0 = time.monotonic()
        current[k] = new
        written[k] = t0
        j = rng.randrange(len(proxies))
        first = True
        while True:
            start_ms = (time.monotonic() - t0) * 1000
            body = sessions[j].get(proxies[j].url("/" + k), timeout=5).text
            if body == new:
                # When the fresh read was sent: the proxy was fresh by
                # then (a slow answer is not a stale one).
                delays.append(start_ms)
                break
            stale_reads += 1
            if first:
                stale_first += 1
            first = False
            if start_ms > FRESH_MS:
                stale_late += 1
            if start_ms > give_up_ms:
                delays.append(give_up_ms)
                break
        k2 = rng.choice(keys)
        for s, p in zip(sessions, proxies):
            body = s.get(p.url("/" + k2), timeout=5).text
            age_ms = (time.monotonic() - written[k2]) * 1000
            if body != current[k2] and age_ms > FRESH_MS:
                stale_others += 1
    return {"delays": delays, "stale_others": stale_others,
            "stale_reads": stale_reads, "stale_first": stale_first,
            "stale_late": stale_late}


def distribution(delays):
    d = sorted(delays)

    def pct(q):
        return d[min(len(d) - 1, int(q * len(d)))]
    buckets = [1, 2, 5, 10, 20, 50]
    counts = []
    lo = 0
    for b in buckets:
        counts.append("<=%dms:%d" % (b, sum(1 for x in d if lo < x <= b
                                            or (lo == 0 and x <= b))))
        lo = b
    counts.append(">%dms:%d" % (buckets[-1],
                               sum(1 for x in d if x > buckets[-1])))
    return ("n=%d p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms  %s"
            % (len(d), pct(0.5), pct(0.9), pct(0.99), d[-1],
               " ".join(counts)))


@pytest.mark.parametrize("mode", ["default", "bcast"])
def test_two_proxies_never_stale(redis_server, make_proxy, mode):
    proxies = [start_tracking_proxy(make_proxy, redis_server, mode)
               for _ in range(2)]
    hits_before = sum(metrics(p)["rcp_cache_hits_total"] for p in proxies)
    r = run_writes(redis_server, proxies, WRITES)
    print("\n--tracking %s, %d writes; from the write's reply to the "
          "sending of the first read that answered the new value: %s; "
          "stale answers: %d (first read after the write: %d), sent more "
          "than %d ms after the write: %d; other keys stale: %d"
          % (mode, WRITES, distribution(r["delays"]), r["stale_reads"],
             r["stale_first"], FRESH_MS, r["stale_late"],
             r["stale_others"]))
    assert r["stale_late"] == 0, distribution(r["delays"])
    assert r["stale_others"] == 0
    # The reads were answered from the cache, not all from Redis: the
    # proxies did cache, and Redis' word is what kept them fresh.
    hits = sum(metrics(p)["rcp_cache_hits_total"] for p in proxies)
    assert hits - hits_before >= WRITES
    assert sum(metrics(p)["rcp_invalidations_total"] for p in proxies) \
        >= WRITES
    for p in proxies:
        assert health(p)["tracking"] == "up"


def test_without_tracking_reads_are_stale(redis_server, make_proxy):
    """The control: the same load with --tracking off is stale for the
    whole TTL, so the test above can tell."""
    proxies = [make_proxy(redis_server, "--workers", "2", "--ttl", "1h")
               for _ in range(2)]
    r = run_writes(redis_server, proxies, 30, give_up_ms=100)
    assert r["stale_late"] >= 25
    assert health(proxies[0])["tracking"] == "off"


# --- FLUSHALL, FLUSHDB --------------------------------------------------------

@pytest.mark.parametrize("mode", ["default", "bcast"])
@pytest.mark.parametrize("flush", ["flushall", "flushdb"])
def test_redis_flush_drops_everything(redis_server, make_proxy, mode, flush):
    p = start_tracking_proxy(make_proxy, redis_server, mode)
    rc = redis_server.client()
    for i in range(50):
        rc.set("f:%d" % i, "x")
    s = requests.Session()
    for i in range(50):
        assert s.get(p.url("/f:%d" % i), timeout=5).status_code == 200
    assert metrics(p)["rcp_cache_entries"] == 50
    getattr(rc, flush)()
    wait_for(lambda: metrics(p)["rcp_cache_entries"] == 0,
             timeout=2, what="the cache emptied by " + flush)
    for i in range(50):
        assert s.get(p.url("/f:%d" % i), timeout=5).status_code == 404


# --- losing the channel ------------------------------------------------------

def read_all_fresh(p, key, want, ms=300):
    """Reads key through p for ms milliseconds: every answer is want."""
    s = requests.Session()
    deadline = time.monotonic() + ms / 1000.0
    n = 0
    while time.monotonic() < deadline:
        r = s.get(p.url("/" + key), timeout=5)
        assert r.status_code == 200 and r.text == want, (n, r.text)
        n += 1
    return n


def assert_caching_again(p, rc, key):
    """Tracking is back: key is a hit again, and a write to it is seen
    at once (the invalidations flow again)."""
    wait_for(lambda: tracking_up(p), what="tracking back")
    rc.set(key, "before")
    s = requests.Session()
    s.get(p.url("/" + key), timeout=5)
    r = s.get(p.url("/" + key), timeout=5)
    assert r.headers["X-Cache"] == "HIT"
    rc.set(key, "after")
    wait_for(lambda: s.get(p.url("/" + key), timeout=5).text == "after",
             timeout=FRESH_MS / 1000.0, interval=0.001,
             what="the write after recovery seen")


@pytest.mark.parametrize("victim,mode", [("subscriber", "default"),
                                         ("tracked", "default"),
                                         ("subscriber", "bcast")])
def test_client_kill_stops_cache_then_recovers(redis_server, make_proxy,
                                               victim, mode):
    p = start_tracking_proxy(make_proxy, redis_server, mode, workers="1")
    rc = redis_server.client()
    rc.set("k", "v1")
    assert requests.get(p.url("/k"), timeout=5).text == "v1"
    r = requests.get(p.url("/k"), timeout=5)
    assert r.text == "v1" and r.headers["X-Cache"] == "HIT"
    if victim == "subscriber":
        ids = clients(rc, "P")
    else:
        ids = [i for i in clients(rc, "t") if i not in clients(rc, "P")]
    assert len(ids) == 1, rc.client_list()
    assert rc.client_kill_filter(_id=ids[0]) == 1
    # The write's invalidation has nowhere to go now; the proxy must not
    # answer v1 from its cache.
    rc.set("k", "v2")
    read_all_fresh(p, "k", "v2")
    assert "answering from Redis" in p.log()
    assert_caching_again(p, rc, "k")


def test_redis_restart(make_proxy):
    r = Redis().start()
    p = start_tracking_proxy(make_proxy, r, "default")
    rc = r.client()
    rc.set("k", "v1")
    s = requests.Session()
    for _ in range(3):
        assert s.get(p.url("/k"), timeout=5).text == "v1"
    assert metrics(p)["rcp_cache_entries"] == 1
    port = r.port
    r.stop()
    wait_for(lambda: not tracking_up(p), timeout=2, what="tracking down")
    r2 = Redis(port=port).start()
    rc2 = r2.client()
    rc2.set("k", "v2")
    # Nothing read before the restart is answered after it.
    wait_for(lambda: s.get(p.url("/k"), timeout=5).text == "v2",
             timeout=5, what="the proxy to reach the new Redis")
    read_all_fresh(p, "k", "v2")
    assert_caching_again(p, rc2, "k")
    r2.stop()


def test_unanswered_heartbeat(redis_server, make_proxy):
    """A Redis that stops answering (SIGSTOP) without closing anything:
    the subscriber's PING goes unanswered, tracking goes down; once
    Redis answers again it comes back."""
    p = start_tracking_proxy(make_proxy, redis_server, "default",
                             "--redis-timeout", "300ms", workers="1")
    pid = redis_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not tracking_up(p), timeout=3,
                 what="tracking down on an unanswered PING")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "no answer" in p.log()
    assert_caching_again(p, redis_server.client(), "k")
