"""RESP commands the port answers itself (MULTI/EXEC/DISCARD, WATCH,
CONFIG GET, CLIENT, AUTH, HELLO, INFO), checked byte for byte against a
real redis-server 7 given the same conversation, and INFO's values
against the cache's own counters."""
import socket
import time

import pytest
import requests

from conftest import Redis, free_port, wait_for


def enc(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(f):
    """One whole RESP2 reply, as raw bytes."""
    line = f.readline()
    assert line.endswith(b"\r\n"), line
    t = line[:1]
    if t == b"$":
        n = int(line[1:-2])
        return line + (f.read(n + 2) if n >= 0 else b"")
    if t == b"*":
        n = int(line[1:-2])
        return line + b"".join(read_reply(f) for _ in range(max(n, 0)))
    return line


def converse(port, commands):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rb")
    try:
        replies = []
        for c in commands:
            s.sendall(enc(*c))
            replies.append(read_reply(f))
        return replies
    finally:
        f.close()
        s.close()


@pytest.fixture
def pair(redis_server, make_proxy):
    """A proxy in front of redis_server, and a second, empty Redis to
    compare replies with."""
    port = free_port()
    p = make_proxy(redis_server, "--workers", "2", "--resp-listen",
                   "127.0.0.1:%d" % port)
    p.resp_port = port
    ref = Redis().start()
    for r in (redis_server.client(), ref.client()):
        r.set("k1", "v1")
        r.set("k2", "v2")
        r.rpush("lst", "a")
    yield p, ref
    ref.stop()


SAME_AS_REDIS = [
    [("MULTI",), ("GET", "k1"), ("MGET", "k1", "absent"), ("EXEC",)],
    [("MULTI",), ("GET", "k1"), ("FOO", "k1", "x"), ("EXEC",)],
    [("MULTI",), ("GET",), ("EXEC",)],
    [("MULTI",), ("MULTI",), ("DISCARD",), ("DISCARD",), ("EXEC",)],
    [("WATCH", "k1"), ("UNWATCH",), ("MULTI",), ("WATCH", "k1"),
     ("GET", "k2"), ("EXEC",)],
    [("MULTI",), ("PING",), ("ECHO", "x"), ("EXEC",), ("GET", "k1")],
    [("CONFIG", "GET", "save"), ("CONFIG", "GET", "appendonly"),
     ("CONFIG", "GET", "nonexist"),
     ("CONFIG", "GET")],
    [("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", "me"),
     ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", "a b"),
     ("CLIENT", "NO-EVICT", "on"), ("CLIENT", "NO-EVICT", "maybe"),
     ("CLIENT", "FOO")],
    [("AUTH", "x"), ("AUTH", "someone", "x"), ("HELLO", "x")],
    [("INFO", "bogus")],
    [("INFO", "cluster")],
    # Redis' unknown-command words: the name cut at 128 bytes, the
    # arguments quoted while they total less than 128, each a C string.
    [("NOSUCH", "k", "x" * 200), ("NOSUCH", "a" * 60, "b" * 60, "c" * 60),
     ("NO\x00SUCH", "a\x00b", "\x01\x7f\r\n"), ("Y" * 200, "z")],
    [("CLIENT", "SETNAME", "me"), ("MULTI",), ("GET", "k1"), ("RESET",),
     ("CLIENT", "GETNAME"), ("EXEC",), ("RESET", "x"), ("reset",)],
    # Forwarded to Redis uncached: the same answers as Redis' own.
    [("EXISTS", "k1", "k2", "absent"), ("TTL", "k1"), ("PTTL", "absent"),
     ("STRLEN", "k1"), ("TYPE", "k1"), ("TYPE", "lst"), ("STRLEN", "lst"),
     ("TTL",), ("EXISTS", "k1", "k1")],
    [("MULTI",), ("TYPE", "k1"), ("EXISTS", "k1"), ("GET", "k1"),
     ("EXEC",)],
]


@pytest.mark.parametrize("conv", SAME_AS_REDIS,
                         ids=[" ".join(c[0])[:40] + "..."
                              for c in SAME_AS_REDIS])
def test_replies_as_redis(pair, conv):
    p, ref = pair
    assert converse(p.resp_port, conv) == converse(ref.port, conv)


def test_forwarded_uncached(pair, redis_server):
    p, ref = pair
    conv = [("DBSIZE",), ("STRLEN", "k1")]
    assert converse(p.resp_port, conv) == [b":3\r\n", b":2\r\n"]
    # Not cached: a change in Redis shows at once.
    redis_server.client().set("k1", "longer")
    assert converse(p.resp_port, [("STRLEN", "k1"), ("DBSIZE",)]) == \
        [b":6\r\n", b":3\r\n"]


def test_config_get_several(pair):
    """Redis answers several parameters in its dict's order, which
    varies; compare the pairs."""
    p, ref = pair
    conv = [("CONFIG", "GET", "save", "appendonly")]

    def pairs(raw):
        parts = raw.split(b"\r\n")
        assert parts[0] == b"*4"
        vals = parts[2:-1:2]
        return dict(zip(vals[0::2], vals[1::2]))

    assert pairs(converse(p.resp_port, conv)[0]) == \
        pairs(converse(ref.port, conv)[0]) == \
        {b"save": b"", b"appendonly": b"no"}


def test_reply_shapes_that_differ_on_purpose(pair):
    p, ref = pair
    got = converse(p.resp_port, [("HELLO", "3"), ("HELLO", "2"),
                                 ("CLIENT", "ID"), ("CLIENT", "INFO"),
                                 ("CONFIG", "GET", "maxmemory")])
    # RESP2 only: the error a Redis without RESP3 gives, then RESP2.
    assert got[0] == b"-NOPROTO unsupported protocol version\r\n"
    want = converse(ref.port, [("HELLO", "2")])[0]
    # Same 14-element shape; the id differs.
    assert got[1].split(b"$2\r\nid\r\n")[0] == \
        want.split(b"$2\r\nid\r\n")[0].replace(
            b"$6\r\n" + want.split(b"$7\r\nversion\r\n$6\r\n")[1][:6],
            b"$6\r\n7.0.15")
    cid = int(got[2][1:-2])
    assert got[3].startswith(b"$") and b"id=%d addr=127.0.0.1:" % cid \
        in got[3] and b" laddr=127.0.0.1:%d " % p.resp_port in got[3]
    assert got[4] == b"*2\r\n$9\r\nmaxmemory\r\n$8\r\n67108864\r\n"


def info(port, *sections):
    raw = converse(port, [("INFO",) + sections])[0]
    body = raw.split(b"\r\n", 1)[1][:-2].decode()
    fields = {}
    for line in body.split("\r\n"):
        if line and not line.startswith("#"):
            k, v = line.split(":", 1)
            fields[k] = v
    return body, fields


def test_info_values(pair):
    p, ref = pair
    before = info(p.resp_port, "stats")[1]
    conv = [("GET", "k1"), ("GET", "k1"), ("GET", "absent")]
    converse(p.resp_port, conv)
    body, f = info(p.resp_port)
    assert [l for l in body.split("\r\n") if l.startswith("#")] == [
        "# Server", "# Clients", "# Memory", "# Persistence", "# Stats",
        "# Replication", "# Cluster", "# Keyspace"]
    assert f["role"] == "master" and f["connected_slaves"] == "0"
    assert f["cluster_enabled"] == "0"
    assert f["redis_version"] == "7.0.15"
    assert f["redis_mode"] == "standalone"
    assert int(f["process_id"]) == p.proc.pid
    assert int(f["tcp_port"]) == p.resp_port
    assert 0 <= int(f["uptime_in_seconds"]) < 60
    assert int(f["connected_clients"]) >= 1
    assert f["loading"] == "0"
    # The cache's counters: k1 missed once then hit, absent missed.
    assert int(f["keyspace_hits"]) - int(before["keyspace_hits"]) == 1
    assert int(f["keyspace_misses"]) - int(before["keyspace_misses"]) == 2
    assert f["db0"] == "keys=1,expires=1,avg_ttl=0"
    assert int(f["used_memory"]) == len("k1") + len("v1")
    assert int(f["maxmemory"]) == 64 << 20
    metrics = requests.get(p.admin_url("/metrics"), timeout=5).text
    hits = int(re_find(r"^rcp_cache_hits_total (\d+)$", metrics))
    assert hits == int(f["keyspace_hits"])
    # Only the sections asked for, in Redis' order.
    body, _ = info(p.resp_port, "keyspace", "server")
    assert body.startswith("# Server\r\n")
    assert "\r\n\r\n# Keyspace\r\n" in body and "# Clients" not in body


def re_find(pattern, text):
    import re
    m = re.search(pattern, text, re.M)
    assert m, pattern
    return m.group(1)


def test_resp_password(redis_server, make_proxy, tmp_path):
    port = free_port()
    log = tmp_path / "access.log"
    p = make_proxy(redis_server, "--resp-listen", "127.0.0.1:%d" % port,
                   "--workers", "1", "--access-log", str(log),
                   env={"RCP_RESP_PASSWORD": "s3cret pw"})
    ref = Redis(extra='requirepass "s3cret pw"').start()
    conv = [("GET", "k1"), ("MGET", "k1"), ("PING",), ("AUTH", "wrong"),
            ("AUTH", "default", "wrong"), ("HELLO", "2"), ("RESET",),
            ("AUTH", "s3cret pw"), ("RESET",), ("GET", "k1")]
    try:
        assert converse(port, conv) == converse(ref.port, conv)
    finally:
        ref.stop()
    redis_server.client().set("k1", "v1")
    got = converse(port, [("AUTH", "s3cret pw"), ("GET", "k1")])
    assert got == [b"+OK\r\n", b"$2\r\nv1\r\n"]
    got = converse(port, [("HELLO", "2", "AUTH", "default", "s3cret pw"),
                          ("GET", "k1")])
    assert got[0].startswith(b"*14\r\n") and got[1] == b"$2\r\nv1\r\n"
    assert "s3cret" not in p.log()
    lines = wait_for(lambda: (lambda t: t if len(t) >= 10 else None)(
        log.read_text().splitlines() if log.exists() else []),
        what="access log")
    assert any('"AUTH" ok' in l for l in lines), lines
    assert not any("s3cret" in l for l in lines), lines
    metrics = requests.get(p.admin_url("/metrics"), timeout=5).text
    assert int(re_find(r"^rcp_auth_failures_total (\d+)$", metrics)) >= 5


def test_resp_user(redis_server, make_proxy):
    port = free_port()
    make_proxy(redis_server, "--resp-listen", "127.0.0.1:%d" % port,
               "--resp-user", "reader", "--resp-password", "pw")
    redis_server.client().set("k1", "v1")
    got = converse(port, [("AUTH", "pw"), ("AUTH", "default", "pw"),
                          ("AUTH", "reader", "pw"), ("GET", "k1")])
    wrong = b"-WRONGPASS invalid username-password pair or user is " \
        b"disabled.\r\n"
    assert got == [wrong, wrong, b"+OK\r\n", b"$2\r\nv1\r\n"]
