"""RESP MGET of misses (issues 17 and 20): a bounded fetch window, so an
MGET of many missing large keys holds a few MB, not every value at once;
and MGET serving stale-if-error, stale-while-revalidate and negative
entries the way GET does.  Each test failed on the binary before."""
import socket
import time

import pytest

from conftest import children, free_port, vm_kb, wait_for

redis_py = pytest.importorskip("redis")


def resp_proxy(make_proxy, redis, *args):
    port = free_port()
    p = make_proxy(redis, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % port, *args)
    p.resp_port = port
    return p


def redis_gets(redis):
    stats = redis.client().info("commandstats")
    return stats.get("cmdstat_get", {}).get("calls", 0)


def after(seconds):
    t0 = time.monotonic()
    return lambda: time.monotonic() - t0 >= seconds


def test_mget_of_many_missing_big_keys_is_bounded(redis_server, make_proxy):
    """MGET of 120 distinct 1 MB keys, none cached: the worker fetches a
    window ahead of what the client has taken, so its peak RSS grows by a
    few MB rather than by the 120 MB answer (130 MB before); every value
    comes back whole and in order."""
    n = 120
    size = 1000000
    r = redis_server.client()
    for i in range(n):
        r.set("big%d" % i, bytes([i]) * size)
    p = resp_proxy(make_proxy, redis_server, "--max-memory", "8m")
    worker, = wait_for(lambda: children(p.proc.pid), what="the worker")
    redis_py.Redis(host="127.0.0.1", port=p.resp_port).ping()
    base_hwm = vm_kb(worker, "VmHWM")
    keys = [b"big%d" % i for i in range(n)]
    cmd = b"*%d\r\n$4\r\nMGET\r\n" % (n + 1) + b"".join(
        b"$%d\r\n%s\r\n" % (len(k), k) for k in keys)
    item = b"$%d\r\n" % size
    want = len(b"*%d\r\n" % n) + n * (len(item) + size + 2)
    s = socket.create_connection(("127.0.0.1", p.resp_port), timeout=30)
    got = bytearray()
    try:
        s.sendall(cmd)
        buf = bytearray(1 << 20)
        while len(got) < want:
            k = s.recv_into(buf)
            assert k > 0, len(got)
            got += buf[:k]
    finally:
        s.close()
    assert len(got) == want
    pos = len(b"*%d\r\n" % n)
    for i in range(n):
        assert got[pos:pos + len(item)] == item, i
        pos += len(item)
        assert got[pos] == i and got[pos + size - 1] == i, i
        assert got[pos + size:pos + size + 2] == b"\r\n", i
        pos += size + 2
    grew_mb = (vm_kb(worker, "VmHWM") - base_hwm) / 1024.0
    assert grew_mb < 40, grew_mb


def test_mget_fetches_only_a_window_ahead_of_a_stalled_client(
        redis_server, make_proxy):
    """A client that sends MGET of 60 missing 1 MB keys and reads
    nothing: Redis is asked for what fills the socket, the output's
    high-water mark and the window, not for all 60; once the client
    reads, the rest are fetched and the answer completes."""
    n = 60
    size = 1000000
    r = redis_server.client()
    for i in range(n):
        r.set("w%d" % i, bytes([i]) * size)
    p = resp_proxy(make_proxy, redis_server, "--max-memory", "8m")
    base = redis_gets(redis_server)
    cmd = b"*%d\r\n$4\r\nMGET\r\n" % (n + 1) + b"".join(
        b"$%d\r\nw%d\r\n" % (len(b"w%d" % i), i) for i in range(n))
    want = len(b"*%d\r\n" % n) + n * (len(b"$%d\r\n" % size) + size + 2)
    s = socket.create_connection(("127.0.0.1", p.resp_port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        s.sendall(cmd)
        seen = []

        def settled():
            seen.append(redis_gets(redis_server))
            return len(seen) >= 5 and seen[-1] == seen[-5] > base

        wait_for(settled, interval=0.1, what="fetching to stop")
        ahead = seen[-1] - base
        assert ahead < 20, ahead
        got = 0
        buf = bytearray(1 << 20)
        while got < want:
            k = s.recv_into(buf)
            assert k > 0, got
            got += k
    finally:
        s.close()
    assert got == want
    assert redis_gets(redis_server) - base >= n - 8     # a few cached


def test_mget_of_many_missing_small_keys_in_order(redis_server, make_proxy):
    """2,000 keys, a third absent, some repeated, half cached: the
    window moves over all of them, and each answer is in its place."""
    r = redis_server.client()
    for i in range(0, 2000, 3):
        r.set("s%d" % i, b"v%d" % i)
    p = resp_proxy(make_proxy, redis_server)
    c = redis_py.Redis(host="127.0.0.1", port=p.resp_port, socket_timeout=10)
    assert c.mget(*["s%d" % i for i in range(0, 2000, 2)])      # some cached
    keys = ["s%d" % (i % 1500) for i in range(2000)]
    want = [b"v%d" % (i % 1500) if (i % 1500) % 3 == 0 else None
            for i in range(2000)]
    assert c.mget(*keys) == want
    assert c.mget(*keys) == want                                # all cached
    assert c.ping()


def test_mget_stale_if_error(redis_server, make_proxy):
    """Redis stopped, the entries expired: MGET answers the stale copies
    within --stale-if-error, as GET does; a key never cached still fails
    the command, and past the window so does every key."""
    p = resp_proxy(make_proxy, redis_server, "--ttl", "300ms",
                   "--stale-if-error", "2s", "--redis-timeout", "300ms")
    c = redis_py.Redis(host="127.0.0.1", port=p.resp_port, socket_timeout=10)
    redis_server.client().set("a", b"kept-a")
    redis_server.client().set("b", b"kept-b")
    assert c.mget("a", "b") == [b"kept-a", b"kept-b"]
    t0 = time.monotonic()
    redis_server.stop()
    wait_for(after(0.4), what="the entries to expire")
    assert c.mget("a", "b", "a") == [b"kept-a", b"kept-b", b"kept-a"]
    with pytest.raises(redis_py.exceptions.ResponseError):
        c.mget("a", "never-cached")
    text = wait_for(lambda: __import__("requests").get(
        p.admin_url("/metrics"), timeout=5).text, what="metrics")
    assert 'rcp_stale_answers_total{reason="error"} 3' in text, text
    wait_for(lambda: time.monotonic() - t0 > 2.5, timeout=5,
             what="the window")
    with pytest.raises(redis_py.exceptions.ResponseError):
        c.mget("a", "b")


def test_mget_stale_while_revalidate_and_negative(redis_server, make_proxy):
    """An expired entry within --stale-while-revalidate is answered at
    once by MGET while one refresh goes to Redis; a remembered absence
    is nil without asking Redis."""
    # A 1 s TTL, not 300 ms: the refreshed entry must still be fresh
    # when the GETs are counted after the refresh is seen (a loaded
    # machine can stall the test for 300 ms: a second refresh).
    p = resp_proxy(make_proxy, redis_server, "--ttl", "1s",
                   "--stale-while-revalidate", "30s", "--negative-ttl",
                   "30s")
    c = redis_py.Redis(host="127.0.0.1", port=p.resp_port, socket_timeout=10)
    redis_server.client().set("w", b"old")
    assert c.mget("w", "gone") == [b"old", None]
    before = redis_gets(redis_server)
    assert c.mget("gone", "gone") == [None, None]
    assert redis_gets(redis_server) == before          # negative hits
    redis_server.client().set("w", b"new")
    wait_for(after(1.1), what="the entry to expire")
    assert c.mget("w", "gone") == [b"old", None]       # stale at once
    wait_for(lambda: c.mget("w")[0] == b"new", what="the refresh")
    assert redis_gets(redis_server) == before + 1
