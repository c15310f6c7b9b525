"""Cluster and Sentinel cases a healthy real setup does not show on
demand, and a TLS cluster:

- a one-node "cluster" (fake_redis.py) whose GET answers -TRYAGAIN: the
  proxy retries with a backoff inside --redis-timeout, then answers 503
  (HTTP) and Redis' error (RESP); a TRYAGAIN that clears in time is a
  200.  It also answers CLUSTER SHARDS with an error, as Redis before 7
  does, so the map comes from the CLUSTER SLOTS fallback;
- a node that only ever answers -MOVED: no redirect reaches a client;
- Sentinel's -READONLY re-ask: the primary a (fake) sentinel named
  starts answering -READONLY, as a demoted primary does to writes, and
  that sentinel now names another primary but never publishes
  +switch-master: the proxy follows within a second, not at its 10 s
  periodic ask; the sentinels get --redis-sentinel-user/-password, the
  data nodes --redis-password;
- a TLS cluster: three redis-servers with only --tls-port and
  `tls-cluster yes`, made by `redis-cli --tls --cluster create`, read
  through rediss:// seeds.
"""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import redis
import requests

from conftest import REDIS_SERVER, Redis, free_port, port_open, wait_for
from fake_redis import FakeRedis, array, bulk
from test_cluster import cluster_port, keyslot
from test_redis_tls import make_ca, make_cert


def resp(port, *args):
    c = redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                    socket_timeout=10)
    try:
        return c.execute_command(*args)
    finally:
        c.close()


class TryagainNode:
    """One node serving all 16384 slots; GET answers -TRYAGAIN while
    self.tryagain > 0 (counting down) or forever when it is None."""

    def __init__(self):
        self.tryagain = None
        self.node = FakeRedis(self.handle)

    def handle(self, args):
        cmd = args[0].upper()
        if cmd == b"CLUSTER" and args[1].upper() == b"SHARDS":
            return b"-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n"
        if cmd == b"CLUSTER" and args[1].upper() == b"SLOTS":
            return array([[0, 16383, ["127.0.0.1", self.node.port,
                                      "id0"]]])
        if cmd == b"GET":
            if self.tryagain is None or self.tryagain > 0:
                if self.tryagain is not None:
                    self.tryagain -= 1
                return (b"-TRYAGAIN Multiple keys request during "
                        b"rehashing of slot\r\n")
            return bulk(b"value-of-" + args[1])
        return b"+OK\r\n"


def test_tryagain_retried_in_the_deadline_then_503(make_proxy):
    n = TryagainNode()
    try:
        rport = free_port()
        p = make_proxy(None, "--redis-cluster", n.node.addr, "--workers",
                       "1", "--max-value-size", "1", "--redis-timeout",
                       "1s", "--resp-listen", "127.0.0.1:%d" % rport)
        s = requests.Session()
        # Answered by CLUSTER SLOTS after SHARDS was refused.
        wait_for(lambda: "slot map from" in p.log(), what="the map")
        assert [a[1].upper() for a in n.node.seen if a[0] == "CLUSTER"][:2] \
            == ["SHARDS", "SLOTS"], n.node.seen
        assert "has no CLUSTER SHARDS; using CLUSTER SLOTS" in p.log()
        # Stuck: retried with a growing backoff until the deadline, 503.
        before = n.node.count("GET")
        t0 = time.monotonic()
        r = s.get(p.url("/k1"), timeout=5)
        took = time.monotonic() - t0
        assert r.status_code == 503, (r.status_code, r.text)
        # Until the 1 s deadline, not past it (the bound leaves a loaded
        # machine 1.5 s: 0.5 s was tight).
        assert 0.7 <= took <= 2.5, took
        tries = n.node.count("GET") - before
        # 10, 20, 40, 80, 160, 200, 200.. ms: a handful, not a spin.
        assert 4 <= tries <= 12, tries
        with pytest.raises(redis.ResponseError, match="^TRYAGAIN"):
            resp(rport, "GET", "k2")
        # A TRYAGAIN that clears inside the deadline: the value.
        n.tryagain = 3
        r = s.get(p.url("/k3"), timeout=5)
        assert (r.status_code, r.text) == (200, "value-of-k3")
        assert n.tryagain == 0
    finally:
        n.node.close()


def test_a_redirect_loop_never_reaches_the_client(make_proxy):
    """A node that answers every key with -MOVED to itself: the proxy
    follows a few hops, then gives up with its own error (502 over
    HTTP); the RESP client never sees a MOVED."""
    def handle(args):
        cmd = args[0].upper()
        if cmd == b"CLUSTER" and args[1].upper() == b"SHARDS":
            return array([["slots", [0, 16383], "nodes", [[
                "id", "n0", "port", node.port, "ip", "127.0.0.1",
                "endpoint", "127.0.0.1", "role", "master",
                "replication-offset", 0, "health", "online"]]]])
        if cmd in (b"GET", b"EXISTS"):
            return b"-MOVED 42 127.0.0.1:%d\r\n" % node.port
        return b"+OK\r\n"
    node = FakeRedis(handle)
    try:
        rport = free_port()
        p = make_proxy(None, "--redis-cluster", node.addr, "--workers", "1",
                       "--max-value-size", "1", "--resp-listen",
                       "127.0.0.1:%d" % rport)
        wait_for(lambda: "slot map from" in p.log(), what="the map")
        assert "has no CLUSTER SHARDS" not in p.log()
        r = requests.get(p.url("/k"), timeout=5)
        assert r.status_code == 502, (r.status_code, r.text)
        assert "MOVED" not in r.text
        for cmd in (("EXISTS", "k", "k"), ("GET", "k")):
            with pytest.raises(redis.ResponseError) as e:
                resp(rport, *cmd)
            assert "MOVED" not in str(e.value), e.value
        # Followed a few times each, not forever.
        assert 2 * 6 <= node.count("GET") + node.count("EXISTS") <= 3 * 6
    finally:
        node.close()


def test_sentinel_readonly_reask(make_proxy):
    """The primary answers -READONLY: the sentinels are asked again at
    once and the new primary they name is used."""
    new = Redis(extra="requirepass data-pw").start()
    new.client(password="data-pw").set("k", "value-new")
    state = {"demoted": False}

    def primary(args):
        cmd = args[0].upper()
        if cmd == b"ROLE":
            return array(["slave", "127.0.0.1", new.port, "connected", 0]) \
                if state["demoted"] else array(["master", 0, []])
        if cmd == b"GET":
            if state["demoted"]:
                return (b"-READONLY You can't write against a read only "
                        b"replica.\r\n")
            return bulk(b"value-old")
        return b"+OK\r\n"
    old = FakeRedis(primary)

    def sentinel(args):
        if args[0].upper() == b"AUTH":
            return b"+OK\r\n" if args[1:] == [b"watcher", b"s3cret"] \
                else b"-WRONGPASS invalid username-password pair\r\n"
        if args[0].upper() == b"SENTINEL":
            port = new.port if state["demoted"] else old.port
            return array(["127.0.0.1", str(port)])
        if args[0].upper() == b"SUBSCRIBE":
            return array(["subscribe", "+switch-master", 1])
        return b"+OK\r\n"
    sent = FakeRedis(sentinel)
    try:
        p = make_proxy(None, "--redis-sentinel", sent.addr, "--redis-master",
                       "mymaster", "--workers", "1", "--max-value-size", "1",
                       "--redis-sentinel-user", "watcher",
                       "--redis-sentinel-password", "s3cret",
                       "--redis-password", "data-pw")
        s = requests.Session()
        wait_for(lambda: s.get(p.url("/k"), timeout=5).text == "value-old",
                 what="reads from the first primary")
        asked = sent.count("SENTINEL")
        state["demoted"] = True
        t0 = time.monotonic()
        codes = []
        while True:
            r = s.get(p.url("/k"), timeout=5)
            codes.append(r.status_code)
            if r.status_code == 200 and r.text == "value-new":
                break
            assert time.monotonic() - t0 < 5, (codes, p.log())
        took = time.monotonic() - t0
        print("followed a -READONLY primary in %.3fs (%d reads before)"
              % (took, len(codes) - 1))
        # About 0.1 s here (the re-ask is rate-limited to one per
        # 100 ms); the bound leaves room for a loaded CI machine and is
        # still far inside the 10 s periodic ask, so the -READONLY is
        # what triggered it.
        assert took < 2.0, (took, codes, p.log())
        assert sent.count("SENTINEL") > asked
        assert "the primary of 'mymaster' is now 127.0.0.1:%d" % new.port \
            in p.log()
        assert sent.count("PUBLISH") == 0
        # The sentinels get their own credentials on both connections
        # (asking and subscribed), the data nodes theirs, never mixed.
        assert sent.count("AUTH") >= 2
        assert all(a[1:] == ["watcher", "s3cret"]
                   for a in sent.seen if a[0].upper() == "AUTH")
        assert all(a[1:] == ["data-pw"]
                   for a in old.seen if a[0].upper() == "AUTH")
        assert old.count("AUTH") >= 1
    finally:
        sent.close()
        old.close()
        new.stop()


class TlsCluster:
    """Three TLS-only primaries (no replicas: the TLS path, not the
    failover, is what is tested here), bus on TLS too."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rcp-tlscluster-")
        make_ca(self.dir, "ca")
        make_cert(self.dir, "ca", "server", "localhost")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.procs = []
        self.ports = []
        for _ in range(3):
            port = cluster_port()
            d = os.path.join(self.dir, str(port))
            os.mkdir(d)
            conf = os.path.join(d, "redis.conf")
            with open(conf, "w") as f:
                f.write("bind 127.0.0.1\nport 0\ntls-port %d\n"
                        "tls-cert-file %s\ntls-key-file %s\n"
                        "tls-ca-cert-file %s\ntls-auth-clients no\n"
                        "tls-cluster yes\ntls-replication yes\n"
                        "save \"\"\nappendonly no\ndir %s\n"
                        "cluster-enabled yes\n"
                        "cluster-config-file nodes.conf\n"
                        # A node forgets a MEET whose handshake is not
                        # done within the node timeout, and the cluster
                        # never joins: on a loaded machine a TLS
                        # handshake on the bus can take over a second.
                        "cluster-node-timeout 5000\n"
                        % (port, os.path.join(self.dir, "server.crt"),
                           os.path.join(self.dir, "server.key"), self.ca,
                           d))
            self.procs.append(subprocess.Popen(
                ["redis-server", conf], executable=REDIS_SERVER,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.ports.append(port)
        for port in self.ports:
            wait_for(lambda: port_open(port), what="TLS cluster node")

    def cli(self, *args):
        return subprocess.run(["redis-cli", "--tls", "--cacert", self.ca]
                              + list(args), check=True, timeout=60,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True).stdout

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def tls_cluster():
    c = TlsCluster()
    try:
        c.cli("--cluster", "create",
              *["127.0.0.1:%d" % p for p in c.ports], "--cluster-yes")
        wait_for(lambda: all("cluster_state:ok" in c.cli(
            "-p", str(p), "CLUSTER", "INFO") for p in c.ports),
            timeout=30, interval=0.1, what="TLS cluster_state:ok")
        yield c
    finally:
        c.stop()


def test_tls_cluster(tls_cluster, make_proxy):
    c = tls_cluster
    keys = ["tls:%d" % i for i in range(30)]
    for k in keys:
        c.cli("-c", "-p", str(c.ports[0]), "SET", k, "value-of-" + k)
    # redis-cli gives the three primaries 0-5460, 5461-10922 and
    # 10923-16383: the keys span all of them.
    assert {0 if keyslot(k) <= 5460 else 1 if keyslot(k) <= 10922 else 2
            for k in keys} == {0, 1, 2}
    seeds = ",".join("rediss://127.0.0.1:%d" % p for p in c.ports[:2])
    p = make_proxy(None, "--redis-cluster", seeds, "--redis-tls-ca-file",
                   c.ca, "--workers", "1", "--max-value-size", "1")
    s = requests.Session()
    for k in keys:
        r = s.get(p.url("/" + k), timeout=5)
        assert (r.status_code, r.text) == (200, "value-of-" + k), \
            (k, r.status_code, p.log())
    h = requests.get(p.admin_url("/health"), timeout=5)
    assert h.status_code == 200, h.text
    members = h.json()["cluster"]["members"]
    assert sorted(m["addr"] for m in members) == \
        sorted("127.0.0.1:%d" % port for port in c.ports), members
    assert all(m["state"] == "up" for m in members), members
    assert p.log().count("(TLS)") >= 3      # "connected (TLS)" per node
