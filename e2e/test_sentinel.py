"""Redis Sentinel (--redis-sentinel, --redis-master): a primary, a
replica and three sentinels (quorum 2, down-after-milliseconds 1000),
all Debian's redis-server on free loopback ports in temp dirs.  Reads
continue through SENTINEL FAILOVER and a SIGKILLed primary, and the old
primary gets no request after the switch; a sentinel naming a replica is
not trusted.

Values are longer than --max-value-size 1, so every read goes to
Redis."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import redis
import requests

from conftest import REDIS_SERVER, Redis, free_port, port_open, wait_for


class Sentinel:
    def __init__(self, primary_port):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="rcp-sentinel-")
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write("bind 127.0.0.1\nport %d\ndaemonize no\ndir %s\n"
                    "sentinel monitor mymaster 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds mymaster 1000\n"
                    "sentinel failover-timeout mymaster 5000\n"
                    "sentinel parallel-syncs mymaster 1\n"
                    % (self.port, self.dir, primary_port))
        # argv[0] names the server, as conftest's Redis does: Debian's
        # binary may be a link under another name (redis-check-rdb).
        self.proc = subprocess.Popen(["redis-server", conf, "--sentinel"],
                                     executable=REDIS_SERVER,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), what="sentinel")

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port,
                           decode_responses=True)

    def master_port(self):
        addr = self.client().execute_command(
            "SENTINEL", "get-master-addr-by-name", "mymaster")
        return int(addr[1]) if addr else None

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port


class Setup:
    def __init__(self):
        self.primary = Redis().start()
        self.replica = Redis(extra="replicaof 127.0.0.1 %d"
                             % self.primary.port).start()
        self.data = {self.primary.port: self.primary,
                     self.replica.port: self.replica}
        wait_for(lambda: self.replica.client().info("replication")
                 .get("master_link_status") == "up", what="replica sync")
        self.sentinels = [Sentinel(self.primary.port) for _ in range(3)]

        def ready():
            for s in self.sentinels:
                m = s.client().execute_command("SENTINEL", "MASTER",
                                               "mymaster")
                m = dict(zip(m[::2], m[1::2]))
                if int(m["num-other-sentinels"]) != 2 or \
                        int(m["num-slaves"]) != 1:
                    return False
            return True
        wait_for(ready, timeout=30, interval=0.1, what="sentinels agree")

    def seeds(self):
        return ",".join(s.addr for s in self.sentinels)

    def stop(self):
        for s in self.sentinels:
            s.stop()
        for r in self.data.values():
            r.stop()
            shutil.rmtree(r.dir, ignore_errors=True)


@pytest.fixture
def setup():
    s = Setup()
    try:
        yield s
    finally:
        s.stop()


def proxy_for(make_proxy, seeds, *args):
    return make_proxy(None, "--redis-sentinel", seeds, "--redis-master",
                      "mymaster", "--workers", "2", "--max-value-size", "1",
                      *args)


def reads_served(r):
    st = r.client().info("stats")
    return st["keyspace_hits"] + st["keyspace_misses"]


class Load:
    def __init__(self, p, key, value):
        self.p, self.key, self.value = p, key, value
        self.stop = threading.Event()
        self.codes = []
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        s = requests.Session()
        while not self.stop.is_set():
            try:
                r = s.get(self.p.url("/" + self.key), timeout=5)
                self.codes.append(r.status_code if r.text == self.value
                                  or r.status_code != 200 else "wrong")
            except requests.RequestException:
                self.codes.append("exception")

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(10)


def test_sentinel_failover_command(setup, make_proxy):
    setup.primary.client().set("greeting", "hello-sentinel")
    wait_for(lambda: setup.replica.client().get("greeting")
             == b"hello-sentinel", what="replicated")
    p = proxy_for(make_proxy, setup.seeds())
    s = requests.Session()
    wait_for(lambda: s.get(p.url("/greeting"), timeout=5).status_code
             == 200, what="first read")
    assert "the primary of 'mymaster' is 127.0.0.1:%d" \
        % setup.primary.port in p.log()
    h = requests.get(p.admin_url("/health"), timeout=5).json()
    assert h["sentinel"] == {"master": "mymaster", "down": [], "members": [
        {"addr": setup.primary.addr, "state": "up"}]}, h
    with Load(p, "greeting", "hello-sentinel") as load:
        wait_for(lambda: len(load.codes) > 20, what="load")
        setup.sentinels[0].client().execute_command(
            "SENTINEL", "FAILOVER", "mymaster")
        wait_for(lambda: setup.sentinels[0].master_port()
                 == setup.replica.port, timeout=30, interval=0.05,
                 what="sentinel failover")
        t0 = time.monotonic()
        # Both workers follow within a second of the announcement.
        wait_for(lambda: p.log().count("is now 127.0.0.1:%d"
                                       % setup.replica.port) == 2,
                 timeout=5, what="both workers switch")
        followed = time.monotonic() - t0
        n = len(load.codes)
        wait_for(lambda: len(load.codes) > n + 20, what="reads after")
    assert followed < 1.0, followed
    assert set(load.codes) == {200}, sorted(set(map(str, load.codes)))
    # No stale primary: the old one (now a replica) serves nothing more.
    old = reads_served(setup.primary)
    new = reads_served(setup.replica)
    for _ in range(20):
        assert s.get(p.url("/greeting"), timeout=5).text == "hello-sentinel"
    assert reads_served(setup.primary) == old
    assert reads_served(setup.replica) >= new + 20
    # /health names the new primary.
    h = requests.get(p.admin_url("/health"), timeout=5).json()
    assert h["sentinel"]["members"] == [
        {"addr": setup.replica.addr, "state": "up"}], h
    text = requests.get(p.admin_url("/metrics"), timeout=5).text
    assert "rcp_backend_failovers_total 2" in text


def test_sentinel_primary_killed(setup, make_proxy):
    setup.primary.client().set("k", "value-k")
    wait_for(lambda: setup.replica.client().get("k") == b"value-k",
             what="replicated")
    p = proxy_for(make_proxy, setup.seeds())
    s = requests.Session()
    wait_for(lambda: s.get(p.url("/k"), timeout=5).status_code == 200,
             what="first read")
    t0 = time.monotonic()
    setup.primary.stop()
    sentinel_time = {}

    def watch():
        wait_for(lambda: setup.sentinels[1].master_port()
                 == setup.replica.port, timeout=30, interval=0.05,
                 what="sentinel failover")
        sentinel_time["t"] = time.monotonic() - t0
    th = threading.Thread(target=watch)
    th.start()
    while True:
        assert time.monotonic() - t0 < 30, "no recovery"
        r = s.get(p.url("/k"), timeout=5)
        if r.status_code == 200:
            assert r.text == "value-k"
            break
        assert r.status_code in (502, 504), r.status_code
        time.sleep(0.02)
    recovered = time.monotonic() - t0
    th.join(35)
    print("sentinel failover %.2fs, proxy recovered after %.2fs"
          % (sentinel_time["t"], recovered))
    assert recovered <= sentinel_time["t"] + 1.0


class LyingSentinel:
    """Answers get-master-addr-by-name with a fixed (replica) address and
    accepts SUBSCRIBE, saying nothing more."""

    def __init__(self, port_named):
        self.port_named = port_named
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.asked = 0
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        buf = b""
        while True:
            try:
                data = c.recv(4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            if b"get-master-addr-by-name" in buf:
                self.asked += 1
                port = str(self.port_named).encode()
                c.sendall(b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n"
                          % (len(port), port))
                buf = b""
            elif b"SUBSCRIBE" in buf:
                c.sendall(b"*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master"
                          b"\r\n:1\r\n")
                buf = b""

    def stop(self):
        self.sock.close()
        for c in self.conns:
            c.close()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port


def test_a_sentinel_naming_a_replica_is_not_trusted(setup, make_proxy):
    setup.primary.client().set("t", "value-t")
    liar = LyingSentinel(setup.replica.port)
    try:
        p = proxy_for(make_proxy, liar.addr + "," + setup.seeds())
        s = requests.Session()
        wait_for(lambda: s.get(p.url("/t"), timeout=5).status_code == 200,
                 what="reads from the true primary")
        assert liar.asked >= 1
        assert "ROLE says slave, not master" in p.log()
        assert "the primary of 'mymaster' is now 127.0.0.1:%d" \
            % setup.primary.port in p.log()
        old = reads_served(setup.replica)
        for _ in range(10):
            assert s.get(p.url("/t"), timeout=5).text == "value-t"
        assert reads_served(setup.replica) == old
    finally:
        liar.stop()
