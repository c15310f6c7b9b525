"""The client matrix: what people use to talk to Redis, with default
options, against the RESP port.  redis-py (Debian's python3-redis): get,
the default pipeline() (a MULTI/EXEC transaction), transaction=False,
asyncio, mget.  ioredis and node-redis from npm (ready check, get, mget,
pipeline, multi), installed under the build tree on first use; only when
npm cannot install them is that part skipped, with one line.  redis-cli
(--stat, --latency, -r, --pipe, -3) and redis-benchmark, with no warning
line."""
import asyncio
import json
import os
import re
import subprocess
import time

import pytest
import redis as redis_py
import redis.asyncio as redis_asyncio

from conftest import BINARY, free_port

NODE_PACKAGES = ["ioredis@5", "redis@4"]


@pytest.fixture
def resp_proxy(redis_server, make_proxy):
    port = free_port()
    p = make_proxy(redis_server, "--workers", "2", "--resp-listen",
                   "127.0.0.1:%d" % port)
    p.resp_port = port
    r = redis_server.client()
    r.set("k1", "v1")
    r.set("k2", "v2")
    return p


def node_clients_dir():
    """Where `make node-clients` (and this test) install the npm
    clients: a directory of the build tree."""
    return os.environ.get("RCP_NODE_CLIENTS_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(BINARY)), "e2e-node")


@pytest.fixture(scope="session")
def node_modules():
    d = node_clients_dir()
    mods = os.path.join(d, "node_modules")
    if all(os.path.isdir(os.path.join(mods, m)) for m in ("ioredis", "redis")):
        return mods
    try:
        out = subprocess.run(["npm", "install", "--prefix", d, "--no-audit",
                              "--no-fund", "--loglevel=error"]
                             + NODE_PACKAGES, capture_output=True,
                             timeout=300, text=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip("npm cannot install %s: %s" % (" ".join(NODE_PACKAGES),
                                                   e))
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["exit %d"
                                                    % out.returncode])[-1]
        pytest.skip("npm cannot install %s: %s" % (" ".join(NODE_PACKAGES),
                                                   last))
    return mods


# ---- redis-py ----------------------------------------------------------

def test_redis_py_get_mget(resp_proxy):
    r = redis_py.Redis(host="127.0.0.1", port=resp_proxy.resp_port,
                       socket_timeout=5)
    assert r.get("k1") == b"v1"
    assert r.get("absent") is None
    assert r.mget("k1", "absent", "k2") == [b"v1", None, b"v2"]


def test_redis_py_client_info(resp_proxy):
    """redis-py's client_info() converts Redis 7's memory fields to
    integers and raised KeyError('omem') when one was missing."""
    r = redis_py.Redis(host="127.0.0.1", port=resp_proxy.resp_port,
                       socket_timeout=5, client_name="me")
    info = r.client_info()
    assert info["id"] == r.client_id()
    assert info["name"] == "me" and info["db"] == 0 and info["multi"] == -1
    assert info["qbuf"] >= 0 and info["tot-mem"] > 0, info


def test_redis_py_default_pipeline_is_a_transaction(resp_proxy):
    r = redis_py.Redis(host="127.0.0.1", port=resp_proxy.resp_port,
                       socket_timeout=5)
    with r.pipeline() as p:             # transaction=True: MULTI ... EXEC
        p.get("k1").get("absent").mget("k1", "k2")
        assert p.execute() == [b"v1", None, [b"v1", b"v2"]]


def test_redis_py_default_pipeline_of_100000_gets(resp_proxy):
    """redis-py's default pipeline() is a MULTI/EXEC transaction: one
    of 100,000 GETs (about 3 MB of commands) is answered whole.  The
    port used to refuse a transaction past 1 MB, so EXEC aborted."""
    r = redis_py.Redis(host="127.0.0.1", port=resp_proxy.resp_port,
                       socket_timeout=30)
    with r.pipeline() as p:
        for i in range(100000):
            p.get("k1" if i % 2 else "k2")
        got = p.execute()
    assert got == [b"v1" if i % 2 else b"v2" for i in range(100000)]


def test_transaction_input_memory_goes_back_once_answered(resp_proxy):
    """EXEC replays its queued commands into the connection's input,
    which grows past the 4 MB a read may fill (250,000 GETs: about 5.5
    MB).  Once they are answered the input shrinks back, or every
    connection that ran a big transaction would keep the memory until
    it closed (rbs, CLIENT INFO's read buffer size, is its capacity)."""
    r = redis_py.Redis(host="127.0.0.1", port=resp_proxy.resp_port,
                       socket_timeout=30)
    with r.pipeline() as p:
        for _ in range(250000):
            p.get("k1")
        got = p.execute()
    assert len(got) == 250000 and got[-1] == b"v1"
    info = r.client_info()              # on the same pooled connection
    assert int(info["rbs"]) <= 64 * 1024, info


def test_redis_py_pipeline_without_transaction(resp_proxy):
    r = redis_py.Redis(host="127.0.0.1", port=resp_proxy.resp_port,
                       socket_timeout=5)
    with r.pipeline(transaction=False) as p:
        for i in range(50):
            p.get("k1" if i % 2 else "k2")
        got = p.execute()
    assert got == [b"v1" if i % 2 else b"v2" for i in range(50)]


def test_redis_py_transaction_with_unserved_command_aborts(resp_proxy):
    r = redis_py.Redis(host="127.0.0.1", port=resp_proxy.resp_port,
                       socket_timeout=5)
    with r.pipeline() as p:
        p.get("k1").set("k1", "x")
        with pytest.raises(redis_py.exceptions.ResponseError,
                           match="unknown command"):
            p.execute()
    assert r.get("k1") == b"v1"


def test_redis_py_asyncio(resp_proxy):
    async def run():
        r = redis_asyncio.Redis(host="127.0.0.1", port=resp_proxy.resp_port)
        try:
            got = await asyncio.gather(r.get("k1"), r.get("k2"),
                                       r.mget("k1", "k2"))
            async with r.pipeline() as p:
                p.get("k1").get("k2")
                tx = await p.execute()
            return got, tx
        finally:
            await r.close()

    got, tx = asyncio.run(run())
    assert got == [b"v1", b"v2", [b"v1", b"v2"]]
    assert tx == [b"v1", b"v2"]


# ---- ioredis and node-redis ---------------------------------------------

def test_node_clients_default_options(resp_proxy, node_modules):
    env = dict(os.environ, NODE_PATH=node_modules)
    out = subprocess.run(["node", os.path.join(os.path.dirname(__file__),
                                               "node_clients.js"),
                          str(resp_proxy.resp_port)], env=env,
                         capture_output=True, timeout=60, text=True)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ioredis"] == {
        "get": "v1", "mget": ["v1", "v2", None],
        "pipeline": [[None, "v1"], [None, "v2"]],
        "multi": [[None, "v1"], [None, ["v1", "v2"]]],
        "info": True}, res
    assert res["noderedis"] == {
        "get": "v1", "mget": ["v1", "v2", None],
        "pipeline": ["v1", "v2"], "auto": ["v1", "v2", None],
        "multi": ["v1", ["v1", "v2"]]}, res


# ---- redis-cli and redis-benchmark ---------------------------------------

def cli(p, *args, stdin=None, timeout=10):
    return subprocess.run(["redis-cli", "-p", str(p.resp_port)] + list(args),
                          input=stdin, capture_output=True, timeout=timeout)


def stat_rows(port, want_rows, min_seconds, timeout=20):
    """Runs redis-cli --stat until it has printed want_rows rows and
    min_seconds have passed (a loaded machine may print them late);
    returns its header and rows."""
    p = subprocess.Popen(["stdbuf", "-oL", "redis-cli", "-p", str(port),
                          "--stat", "-i", "0.5"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines = []
    start = time.monotonic()
    try:
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            rows = len(lines) - 2
            elapsed = time.monotonic() - start
            if (rows >= want_rows and elapsed >= min_seconds) \
                    or elapsed > timeout:
                break
    finally:
        p.terminate()
        p.communicate()
    return lines


def test_redis_cli_stat(resp_proxy):
    lines = stat_rows(resp_proxy.resp_port, 3, 2.0)
    out = "\n".join(lines)
    assert lines[1].split()[:5] == ["keys", "mem", "clients", "blocked",
                                    "requests"], out
    rows = [l.split() for l in lines[2:] if l.strip()]
    assert len(rows) >= 3, out
    for row in rows:
        # keys, mem, clients, blocked, requests: real numbers, no "-".
        assert row[0].isdigit() and row[2].isdigit() and row[3] == "0", out
        assert re.match(r"^\d+(\.\d+)?[BKMG]$", row[1]), out


def test_redis_cli_latency(resp_proxy):
    p = subprocess.Popen(["stdbuf", "-oL", "redis-cli", "-p",
                          str(resp_proxy.resp_port), "--latency", "-i",
                          "0.5"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        # "min max avg samples", once per interval.
        line = p.stdout.readline()
    finally:
        p.terminate()
        _, err = p.communicate()
    fields = line.split()
    assert len(fields) == 4 and int(fields[3]) > 0, (line, err)
    assert float(fields[2]) >= 0 and int(fields[0]) <= int(fields[1])


def test_redis_cli_repeat_pipe_and_resp3(resp_proxy):
    out = cli(resp_proxy, "-r", "3", "GET", "k1")
    assert out.returncode == 0 and out.stdout == b"v1\nv1\nv1\n"
    cmds = b"".join(b"GET k%d\r\n" % (i % 3) for i in range(100))
    out = cli(resp_proxy, "--pipe", stdin=cmds)
    assert out.returncode == 0, out.stderr
    assert b"errors: 0, replies: 100" in out.stdout, out.stdout
    # -3 asks HELLO 3; the port answers NOPROTO as a RESP2-only Redis
    # does, and redis-cli goes on in RESP2.
    out = cli(resp_proxy, "-3", "GET", "k1")
    assert out.returncode == 0 and out.stdout == b"v1\n"
    assert b"NOPROTO" in out.stderr


def test_redis_benchmark_without_warning(resp_proxy):
    out = subprocess.run(["redis-benchmark", "-p", str(resp_proxy.resp_port),
                          "-t", "get", "-n", "2000", "-c", "4", "-q"],
                         capture_output=True, timeout=60, text=True)
    assert out.returncode == 0
    text = out.stdout + out.stderr
    assert "WARNING" not in text and "ERROR" not in text, text
    assert "requests per second" in text, text
