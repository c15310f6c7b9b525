"""The Redis-protocol port with real Redis clients: redis-cli,
redis-benchmark and redis-py."""
import socket
import subprocess

import pytest
import redis as redis_py

from conftest import Redis, free_port, http_raw, read_until_close


@pytest.fixture
def resp_proxy(redis_server, make_proxy):
    port = free_port()
    p = make_proxy(redis_server, "--workers", "2", "--resp-listen",
                   "127.0.0.1:%d" % port)
    p.resp_port = port
    return p


def client(p):
    return redis_py.Redis(host="127.0.0.1", port=p.resp_port,
                          socket_timeout=5)


def cli(p, *args, stdin=None):
    return subprocess.run(["redis-cli", "-p", str(p.resp_port)] +
                          list(args), input=stdin, capture_output=True,
                          timeout=10)


def test_redis_cli_get(redis_server, resp_proxy):
    redis_server.client().set("k", "hello")
    out = cli(resp_proxy, "GET", "k")
    assert out.returncode == 0
    assert out.stdout == b"hello\n"
    assert cli(resp_proxy, "GET", "absent").stdout == b"\n"
    assert cli(resp_proxy, "PING").stdout == b"PONG\n"


def test_redis_cli_interactive_start(redis_server, resp_proxy):
    out = cli(resp_proxy, stdin=b"PING\nGET nothing\n")
    assert out.returncode == 0
    assert b"ERR" not in out.stdout + out.stderr, out
    assert b"PONG" in out.stdout


def test_redis_py_commands(redis_server, resp_proxy):
    redis_server.client().set("a", b"\x00bin\r\nary\xff")
    c = client(resp_proxy)
    assert c.ping() is True
    assert c.get("a") == b"\x00bin\r\nary\xff"
    assert c.get("a") == b"\x00bin\r\nary\xff"
    assert c.get("missing") is None
    assert c.echo("hi") == b"hi"
    with pytest.raises(redis_py.ResponseError, match="unknown command"):
        c.set("x", "y")
    with pytest.raises(redis_py.ResponseError, match="WRONGTYPE"):
        redis_server.client().lpush("list", "x")
        c.get("list")


def test_mget_with_missing_keys(redis_server, resp_proxy):
    r = redis_server.client()
    r.set("m1", "one")
    r.set("m3", "three")
    c = client(resp_proxy)
    assert c.get("m1") == b"one"        # m1 now cached, m3 not
    assert c.mget("m1", "m2", "m3") == [b"one", None, b"three"]
    assert c.mget("m3", "m1") == [b"three", b"one"]


def test_mget_wrong_type_is_nil_for_that_key(redis_server, resp_proxy):
    r = redis_server.client()
    r.set("s1", "one")
    r.lpush("l1", "x")
    want = [b"one", None, None]
    assert r.mget("s1", "l1", "none") == want       # what Redis says
    c = client(resp_proxy)
    assert c.mget("s1", "l1", "none") == want       # all misses
    assert c.mget("s1", "l1", "none") == want       # s1 now a hit
    with pytest.raises(redis_py.ResponseError, match="WRONGTYPE"):
        c.get("l1")


def test_mget_with_redis_down_is_an_error(redis_server, make_proxy):
    port = free_port()
    make_proxy(redis_server, "--resp-listen", "127.0.0.1:%d" % port,
               "--redis-timeout", "300ms")
    redis_server.client().set("cached", "v")
    c = redis_py.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    assert c.get("cached") == b"v"
    redis_server.stop()
    # A hit does not hide the miss that Redis could not answer: the
    # whole command fails, never a nil that says "absent".
    for keys in (("cached", "other"), ("other",), ("other", "cached")):
        with pytest.raises(redis_py.ResponseError, match="unavailable"):
            c.mget(*keys)
    assert c.mget("cached") == [b"v"]


def test_pipeline_of_1000(redis_server, resp_proxy):
    r = redis_server.client()
    for i in range(0, 1000, 3):
        r.set("p%d" % i, "v%d" % i)
    c = client(resp_proxy)
    pipe = c.pipeline(transaction=False)
    for i in range(1000):
        pipe.get("p%d" % i)
    got = pipe.execute()
    assert got == [(b"v%d" % i if i % 3 == 0 else None) for i in range(1000)]
    # Again, now mostly hits: same order.
    pipe = c.pipeline(transaction=False)
    for i in range(1000):
        pipe.get("p%d" % i)
    assert pipe.execute() == got


def test_inline_commands(redis_server, resp_proxy):
    redis_server.client().set("in", "line")
    s = socket.create_connection(("127.0.0.1", resp_proxy.resp_port),
                                 timeout=5)
    s.sendall(b"PING\r\nGET in\r\nQUIT\r\n")
    data = read_until_close(s)
    assert data == b"+PONG\r\n$4\r\nline\r\n+OK\r\n"


def test_protocol_error_closes(resp_proxy):
    out = http_raw(resp_proxy.resp_port, b"*1\r\n$x\r\n")
    assert out.startswith(b"-ERR Protocol error")


def test_backend_down_is_an_error(make_proxy):
    r = Redis()
    port = free_port()
    make_proxy(r, "--resp-listen", "127.0.0.1:%d" % port,
                   "--redis-timeout", "300ms")
    c = redis_py.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    with pytest.raises(redis_py.ResponseError, match="unavailable"):
        c.get("k")


def test_redis_benchmark(redis_server, resp_proxy):
    redis_server.client().set("key:__rand_int__", "x" * 10)
    out = subprocess.run(["redis-benchmark", "-p", str(resp_proxy.resp_port),
                          "-t", "get,ping", "-n", "100000", "-P", "16",
                          "-q"], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert "GET:" in text and "PING_INLINE:" in text, text
    assert "ERR" not in text and "rror" not in out.stderr.decode()


def test_pipeline_of_large_values_sent_before_reading(redis_server,
                                                      resp_proxy):
    big = b"x" * 300000
    redis_server.client().set("big", big)
    want = b"$300000\r\n" + big + b"\r\n"
    for _ in range(2):                  # cold (misses), then warm (hits)
        s = socket.create_connection(("127.0.0.1", resp_proxy.resp_port),
                                     timeout=10)
        s.sendall(b"GET big\r\n" * 40)
        data = b""
        while len(data) < 40 * len(want):
            b = s.recv(1 << 20)
            if not b:
                break
            data += b
        s.close()
        assert data == want * 40
