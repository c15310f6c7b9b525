"""Hostile traffic and small lies (issue 17): half-closed partial
requests, Expect: 100-continue, HTTP strictness both ways, chunked
bodies on GET, and what the operator reads (access log, metrics, startup
lines).  Each test failed on the binary before the fix."""
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import Proxy, SlowRedis, children, free_port, \
    parse_responses, vm_kb, wait_for


def exchange(port, data, shut=False, timeout=5.0):
    """Sends data (then half-closes when shut), reads until the peer
    closes or timeout passes.  Returns (bytes, closed, seconds)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    start = time.monotonic()
    out = b""
    closed = False
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        deadline = start + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            out += b
    finally:
        s.close()
    return out, closed, time.monotonic() - start


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def both(redis_server, make_proxy):
    port = free_port()
    p = make_proxy(redis_server, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % port)
    p.resp_port = port
    return p


def read_response(s, tail):
    got = b""
    while not got.endswith(tail):
        b = s.recv(65536)
        assert b, got
        got += b
    return got


# --- 1: MGET of a big cached value, many times --------------------------

def test_mget_of_a_big_value_is_bounded_and_stalls_nobody(redis_server,
                                                          make_proxy):
    """MGET of one cached 1 MB key 1,000 times (an 11 KB command): the
    worker's peak RSS grows by a few MB, not by the answer's 1 GB; the
    first byte comes at once; another client's hits on the same worker
    stay fast meanwhile."""
    rport = free_port()
    p = make_proxy(redis_server, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % rport, "--max-memory", "16m")
    value = bytes(range(256)) * (1000000 // 256)
    redis_server.client().set("big", value)
    redis_server.client().set("small", b"s")
    for key in ("big", "small"):
        assert requests.get(p.url("/" + key), timeout=10).status_code == 200
    assert requests.get(p.url("/big"), timeout=10).headers[
        "X-Cache"] == "HIT"
    worker, = children(p.proc.pid)
    base_hwm = vm_kb(worker, "VmHWM")

    n = 1000
    item = b"$%d\r\n" % len(value)
    want = len(b"*%d\r\n" % n) + n * (len(item) + len(value) + 2)
    latencies = []
    stop = threading.Event()

    def hits():
        with requests.Session() as s:
            while not stop.is_set():
                t = time.monotonic()
                r = s.get(p.url("/small"), timeout=10)
                latencies.append(time.monotonic() - t)
                assert r.status_code == 200 and r.content == b"s"

    t = threading.Thread(target=hits)
    s = socket.create_connection(("127.0.0.1", rport), timeout=30)
    try:
        s.sendall(b"*%d\r\n$4\r\nMGET\r\n" % (n + 1)
                  + b"$3\r\nbig\r\n" * n)
        start = time.monotonic()
        buf = bytearray(1 << 20)
        got = s.recv_into(buf)
        first = time.monotonic() - start
        head = bytes(buf[:32])
        t.start()
        total = got
        while total < want:
            k = s.recv_into(buf)
            assert k > 0, total
            total += k
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        tail = b""
        while not tail.endswith(b"+PONG\r\n"):
            k = s.recv(64)
            assert k
            tail += k
    finally:
        stop.set()
        if t.is_alive():
            t.join()
        s.close()
    assert head.startswith(b"*1000\r\n" + item), head
    assert total == want and tail == b"+PONG\r\n", (total, want, tail)
    grew_mb = (vm_kb(worker, "VmHWM") - base_hwm) / 1024.0
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0
    print("MGET first bytes after %.3f s; hits p99 %.1f ms" % (
        first, p99 * 1e3))
    # Measured 11-24 ms from this Python client; 8-10 s before.  The
    # bounds leave a loaded machine's stalls room (1 s and 0.5 s were
    # tight there) and still fail the 8-10 s stall.
    assert first < 3.0, first
    assert grew_mb < 32, grew_mb
    assert len(latencies) > 10 and p99 < 2.0, (len(latencies), p99)


# --- 2: the admin port under a connection flood --------------------------

def test_admin_flood_is_capped_and_respawn_still_works(redis_server,
                                                       make_proxy):
    """Hundreds of idle admin connections neither exhaust the
    supervisor's descriptors (here limited to 128) nor lock operators
    out; a worker killed meanwhile is replaced; idle ones are closed
    at the header deadline."""
    p = make_proxy(redis_server, "--workers", "1", "--header-timeout", "2s")
    resource.prlimit(p.proc.pid, resource.RLIMIT_NOFILE, (128, 128))
    held = []
    try:
        for _ in range(300):
            try:
                held.append(socket.create_connection(
                    ("127.0.0.1", p.admin_port), timeout=2))
            except OSError:
                pass
        r = requests.get(p.admin_url("/health"), timeout=5)
        assert r.status_code == 200
        old = children(p.proc.pid)
        assert len(old) == 1
        os.kill(old[0], signal.SIGKILL)
        new = wait_for(lambda: [c for c in children(p.proc.pid)
                                if c != old[0]], timeout=10,
                       what="a replacement worker")
        assert len(new) == 1
        assert wait_for(lambda: requests.get(p.url("/absent"), timeout=5)
                        .status_code == 404, what="the new worker serving")
        assert "Too many open files" not in p.log()
        # Every idle admin connection is closed by the header deadline.
        start = time.monotonic()
        for s in held:
            s.settimeout(max(0.1, start + 6 - time.monotonic()))
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
        assert time.monotonic() - start < 6
    finally:
        for s in held:
            s.close()


# --- 3: --max-clients with idle keep-alive connections -------------------

def test_max_clients_closes_idlest_for_a_new_client(redis_server,
                                                    make_proxy):
    p = make_proxy(redis_server, "--workers", "2", "--max-clients", "50")
    redis_server.client().set("mc", b"v")
    held = []
    try:
        # 25 keep-alive connections idle after a request, 25 that never
        # sent one.
        for i in range(50):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            if i % 2 == 0:
                s.sendall(b"GET /mc HTTP/1.1\r\nHost: x\r\n\r\n")
                read_response(s, b"\r\n\r\nv")
            held.append(s)
        wait_for(lambda: metric(requests.get(p.admin_url("/metrics"),
                                             timeout=5).text,
                                "rcp_connections") == 50,
                 what="50 connections")
        # Served at once, not when an idle connection times out or
        # never (the 5 s timeout); 3 s leaves a loaded machine room.
        for _ in range(3):
            start = time.monotonic()
            r = requests.get(p.url("/mc"), timeout=5)
            assert r.status_code == 200 and r.content == b"v"
            assert time.monotonic() - start < 3.0
    finally:
        for s in held:
            s.close()


# --- 4: reload under keep-alive load -------------------------------------

def keep_alive_client(port, stop, stats, lock):
    """GETs back to back on one keep-alive connection, reconnecting after
    Connection: close.  A connection closed before any byte of the answer
    to a request sent on it after an earlier one is retried once on a new
    connection, as RFC 9112 9.3.1 allows and urllib3 does (counted in
    retries); anything else that fails is a failure."""
    req = b"GET /ka HTTP/1.1\r\nHost: x\r\n\r\n"
    s = None
    retried = False
    while not stop.is_set():
        reused = s is not None
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(req)
            got = b""
            while True:
                b = s.recv(4096)
                if not b:
                    raise EOFError
                got += b
                if got.endswith(b"\r\n\r\nvalue"):
                    break
        except (OSError, EOFError) as e:
            if s is not None:
                s.close()
            s = None
            if reused and not got and not retried:
                retried = True
                with lock:
                    stats["retries"] += 1
                continue
            with lock:
                stats["failures"].append(repr(e) + repr(got[:60]))
            retried = False
            continue
        retried = False
        with lock:
            stats["ok"] += 1
        assert got.startswith(b"HTTP/1.1 200 ")
        if b"Connection: close" in got:
            s.close()
            s = None
    if s is not None:
        s.close()


def test_reload_under_keep_alive_load(redis_server, make_proxy, tmp_path):
    """Two SIGHUP reloads while 8 keep-alive clients send requests back to
    back: no request fails, and almost none even needs the retry."""
    conf = tmp_path / "rcp.conf"
    conf.write_text("ttl 60s\n")
    p = make_proxy(redis_server, "--config", str(conf), "--workers", "2")
    redis_server.client().set("ka", b"value")
    stats = {"ok": 0, "retries": 0, "failures": []}
    lock = threading.Lock()
    stop = threading.Event()
    threads = [threading.Thread(target=keep_alive_client,
                                args=(p.port, stop, stats, lock))
               for _ in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: stats["ok"] > 200, what="load running")
        for n in (1, 2):
            os.kill(p.proc.pid, signal.SIGHUP)
            wait_for(lambda: p.log().count("reload complete") >= n,
                     timeout=15, what="reload %d" % n)
            before = stats["ok"]
            wait_for(lambda: stats["ok"] > before + 200, what="load again")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert stats["failures"] == [], stats
    assert stats["retries"] <= 2, stats


# --- 5: half-close with a partial next request ---------------------------

def test_half_close_with_partial_request_closes_at_once(make_proxy):
    """After EOF, an incomplete request can never complete: answer what
    is complete and close, rather than wait 10 s for a 408.  The first
    request is a slow miss, so the FIN is read while it waits."""
    slow = SlowRedis(0.3)
    try:
        rport = free_port()
        p = make_proxy(slow, "--workers", "1", "--ttl", "1ms",
                       "--resp-listen", "127.0.0.1:%d" % rport)
        out, closed, took = exchange(
            p.port, b"GET /hc HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /hc HTTP/1.1\r\nHo", shut=True)
        assert closed and took < 3, (out, took)
        (status, _, body), = parse_responses(out)
        assert status == 200 and body == b"slow-value"
        assert b" 408 " not in out
        out, closed, took = exchange(
            rport, b"*2\r\n$3\r\nGET\r\n$2\r\nhc\r\n*2\r\n$3\r\nGE",
            shut=True)
        assert closed and took < 3, (out, took)
        assert out == b"$10\r\nslow-value\r\n"
    finally:
        slow.stop()


# --- 6: Expect: 100-continue ---------------------------------------------

def test_expect_100_continue_is_answered_at_once(redis_server, both):
    redis_server.client().set("ex", b"expected")
    s = socket.create_connection(("127.0.0.1", both.port), timeout=5)
    try:
        s.sendall(b"GET /ex HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 5\r\n\r\n")
        # No body is sent until the 100 comes: a proxy that waited for
        # the body would never send it, so a generous timeout still
        # fails it (a short one failed on loaded machines).
        s.settimeout(5)
        got = s.recv(4096)
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n", got
        s.settimeout(5)
        s.sendall(b"hello")
        got = b""
        while b"expected" not in got:
            b = s.recv(4096)
            assert b, got
            got += b
        (status, headers, body), = parse_responses(got)
        assert status == 200 and body == b"expected"
    finally:
        s.close()
    # curl, as the issue measured it: no wait for the 100.  curl's own
    # wait (1 s by default) is made 10 s, so a proxy that never sends
    # the 100 takes 10 s here, while the bound leaves a loaded machine
    # seconds of slack (0.8 s against 1 s failed under load).
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                        "%{http_code} %{time_total}", "-X", "GET",
                        "--expect100-timeout", "10",
                        "-H", "Expect: 100-continue", "--data-binary",
                        "body", both.url("/ex")],
                       capture_output=True, text=True, timeout=30)
    code, took = r.stdout.split()
    print("curl with Expect: 100-continue took %s s" % took)
    assert code == "200" and float(took) < 5, r.stdout


# --- 7: HTTP strictness, both ways ---------------------------------------

@pytest.mark.parametrize("request_bytes", [
    b"GET /k HTTP/1.1\nHost: x\n\n",
    b"GET /k HTTP/1.1\r\nHost: x\n\r\n",
    b"GET /k HTTP/1.1\r\nHost: x\r\n\n",
    b"\nGET /k HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_bare_lf_is_400_and_closes(both, request_bytes):
    out, closed, _ = exchange(both.port, request_bytes)
    assert out.startswith(b"HTTP/1.1 400 "), out
    assert b"Connection: close" in out and closed


@pytest.mark.parametrize("path", [b"/%zz", b"/ab%4", b"/"])
def test_400_for_bad_key_closes(both, path):
    out, closed, took = exchange(both.port, b"GET " + path +
                                 b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 "), out
    assert b"Connection: close" in out
    assert closed and took < 3


def test_nginx_path_bytes_are_keys(redis_server, both):
    key = 'user|42"{a}^`b'
    redis_server.client().set(key, b"odd")
    out, _, _ = exchange(both.port, b"GET /" + key.encode() +
                         b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (status, _, body), = parse_responses(out)
    assert status == 200 and body == b"odd"
    # As curl sends it, unescaped.
    redis_server.client().set("user|7", b"seven")
    r = subprocess.run(["curl", "-s", "-g", both.url("/user|7")],
                       capture_output=True, timeout=10)
    assert r.stdout == b"seven"


def test_chunked_get_body_is_read_and_ignored(redis_server, both):
    redis_server.client().set("ck", b"chunky")
    req = (b"GET /ck HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: t\r\n\r\n"
           b"GET /ck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out, closed, _ = exchange(both.port, req)
    assert [(s, b) for s, _, b in parse_responses(out)] == [
        (200, b"chunky"), (200, b"chunky")]
    # Sent in pieces, as a streaming client would.
    s = socket.create_connection(("127.0.0.1", both.port), timeout=5)
    try:
        for piece in (b"GET /ck HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n", b"4\r\nab",
                      b"cd\r\n", b"0\r\n", b"\r\n"):
            s.sendall(piece)
            time.sleep(0.05)
        got = b""
        while b"chunky" not in got:
            b = s.recv(4096)
            assert b, got
            got += b
        assert got.startswith(b"HTTP/1.1 200 ")
    finally:
        s.close()
    # Past the 64 KiB body limit: 413; bad framing: 400; both close.
    big = b"8000\r\n" + b"x" * 0x8000 + b"\r\n"
    out, closed, _ = exchange(both.port, b"GET /ck HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" + big * 3)
    assert out.startswith(b"HTTP/1.1 413 ") and closed, out[:80]
    out, closed, _ = exchange(both.port, b"GET /ck HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and closed, out[:80]


# --- 8: what operators read ----------------------------------------------

ACCESS_US = re.compile(r' (HIT|MISS|-) (\d+)$')


def test_access_log_microseconds_are_measured(redis_server, make_proxy,
                                              tmp_path):
    log = tmp_path / "access.log"
    p = make_proxy(redis_server, "--workers", "1", "--access-log", str(log))
    c = redis_server.client()
    for i in range(20):
        c.set("us%d" % i, b"v" * 100)
    with requests.Session() as s:
        for i in range(20):
            assert s.get(p.url("/us%d" % i), timeout=5).status_code == 200
            assert s.get(p.url("/us%d" % i), timeout=5).status_code == 200
    lines = wait_for(lambda: (lambda t: t if len(t) >= 40 else None)(
        log.read_text().splitlines() if log.exists() else []),
        what="access log lines")
    us = [int(ACCESS_US.search(l).group(2)) for l in lines]
    # A loop-clock millisecond times 1000 is always a multiple of 1000;
    # measured microseconds are not, and a miss takes more than 0.
    assert any(u % 1000 != 0 for u in us), us
    misses = [int(ACCESS_US.search(l).group(2)) for l in lines
              if " MISS " in l]
    assert misses and all(0 < u < 5000000 for u in misses), misses


def test_unknown_resp_command_counts_as_err(both):
    def counts():
        t = requests.get(both.admin_url("/metrics"), timeout=5).text
        return (metric(t, 'rcp_requests_total{protocol="resp",code="ok"}'),
                metric(t, 'rcp_requests_total{protocol="resp",code="err"}'))

    ok0, err0 = counts()
    out, _, _ = exchange(both.resp_port, b"NOSUCHCMD a\r\nPING\r\nQUIT\r\n")
    assert out.startswith(b"-ERR unknown command")
    assert out.endswith(b"+PONG\r\n+OK\r\n")
    ok1, err1 = counts()
    assert err1 - err0 == 1 and ok1 - ok0 == 2, (ok0, err0, ok1, err1)


def test_startup_names_every_listener_and_warns_on_bare_admin_port(
        redis_server):
    rport = free_port()
    p = Proxy(["--redis", redis_server.addr, "--workers", "1",
               "--resp-listen", "127.0.0.1:%d" % rport])
    p.args += ["--admin-listen", str(p.admin_port)]
    p.start()
    try:
        log = wait_for(lambda: (lambda t: t if "listening on" in t
                                else None)(p.log()), what="startup line")
        line = [l for l in log.splitlines() if "listening on" in l][0]
        assert "http 127.0.0.1:%d" % p.port in line, line
        assert "resp 127.0.0.1:%d" % rport in line, line
        assert "admin *:%d" % p.admin_port in line, line
        warn = [l for l in log.splitlines()
                if l.startswith("WARN") or " WARN " in l or "warn" in l
                and "admin-listen" in l]
        assert any("admin-listen %d binds every address" % p.admin_port
                   in l for l in warn), log
    finally:
        assert p.stop() == 0


# --- the accept path when descriptors run out ----------------------------

def read_answer(s, timeout):
    """What a connection answers within timeout: ("ok", bytes) once a
    whole 200 is in, ("refused", bytes) for a 503, a close or a reset,
    ("hung", bytes) when nothing decisive came."""
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            if got.startswith(b"HTTP/1.1 200") and got.endswith(b"\r\n\r\nv"):
                return "ok", got
            b = s.recv(4096)
            if not b:
                return "refused", got
            got += b
    except ConnectionResetError:
        return "refused", got
    except socket.timeout:
        return ("refused" if got.startswith(b"HTTP/1.1 503") else "hung"), got


def test_descriptors_run_out_clients_are_refused_then_served(redis_server,
                                                            make_proxy):
    """A worker out of descriptors (its limit lowered to what it has open
    plus 20) keeps serving its open connections, refuses the clients it
    has no descriptor for at once (503 with Retry-After, from the one it
    keeps in reserve) instead of leaving them hanging in the backlog, logs
    that at most once a second with a count, and serves new clients as
    soon as descriptors are free again."""
    p = make_proxy(redis_server, "--workers", "1", "--max-clients", "5000")
    redis_server.client().set("fd", b"v")
    worker, = wait_for(lambda: children(p.proc.pid), what="the worker")
    ka = requests.Session()
    assert ka.get(p.url("/fd"), timeout=5).content == b"v"
    limit = len(os.listdir("/proc/%d/fd" % worker)) + 20
    resource.prlimit(worker, resource.RLIMIT_NOFILE, (limit, limit))
    req = b"GET /fd HTTP/1.1\r\nHost: x\r\n\r\n"
    held = []
    t_out = time.monotonic()            # out of descriptors from here
    try:
        for _ in range(150):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s.sendall(req)
            held.append(s)
        kinds = {"ok": 0, "refused": 0, "hung": 0}
        for s in held:
            kind, got = read_answer(s, 3.0)
            kinds[kind] += 1
            if got.startswith(b"HTTP/1.1 503"):
                assert b"\r\nRetry-After: 1\r\n" in got, got
                # Issue 20: Cache-Status on every answer of the data port.
                assert b"\r\nCache-Status: redis-cache-proxy\r\n" in got, got
        assert kinds["hung"] == 0, kinds
        assert kinds["ok"] >= 5 and kinds["refused"] >= 100, kinds
        # The connection that was open before goes on being served.
        assert ka.get(p.url("/fd"), timeout=5).content == b"v"
        # Still out of descriptors for more than a second: refused at
        # once each time, and the log's line comes again with a count.
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            s.sendall(req)
            kind, _ = read_answer(s, 3.0)
            s.close()
            assert kind == "refused", kind
            kinds["refused"] += 1
        out_s = time.monotonic() - t_out
        # Each refusal is counted.  The worker adds a batch's refusals
        # up after their answers went out, so the last one's count may
        # trail its answer (a loaded machine can preempt the worker in
        # between): polled, and a count that passes or never reaches
        # what the clients saw still fails.
        def refused():
            return metric(requests.get(p.admin_url("/metrics"),
                                       timeout=5).text,
                          "rcp_connections_refused_total")
        wait_for(lambda: refused() >= kinds["refused"], timeout=5,
                 what="%d refusals counted" % kinds["refused"])
        assert refused() == kinds["refused"], kinds
    finally:
        for s in held:
            s.close()
    # Descriptors free again: new clients are served.
    wait_for(lambda: requests.get(p.url("/fd"), timeout=5).content == b"v",
             what="serving again")
    for _ in range(20):
        assert requests.get(p.url("/fd"), timeout=5).content == b"v"
    lines = [l for l in p.log().splitlines() if "accept4() failed" in l]
    # The first refusal, then at most one line a second while they go
    # on (one per refusal would be hundreds): a bound of 5 lines assumed
    # the refusals were over within 4 s, which a loaded machine can
    # take longer for.
    assert 2 <= len(lines) <= 2 + out_s, (out_s, lines)
    assert "Too many open files" in lines[0], lines
    # A later line counts the ones held back (not necessarily the last:
    # on a loaded machine the last refusal can come over a second after
    # the one before, with nothing held back in between).
    assert any(re.search(r"connections refused \(and \d+ more like it\)",
                         l) for l in lines[1:]), lines


# --- the admin port as an HTTP server -------------------------------------

def test_admin_answers_a_pipeline_sent_before_a_half_close(redis_server,
                                                           make_proxy):
    """`printf 'GET /metrics ...GET /x ...' | nc -N`: every request the
    client sent whole before shutting its side is answered, in order, and
    then the connection closes (the data port does the same).  Only the
    first was answered: the EOF, read while /health's PING was out,
    closed the connection once that answer was written."""
    p = make_proxy(redis_server, "--workers", "1")
    req = (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
           b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    out, closed, _ = exchange(p.admin_port, req, shut=True, timeout=10)
    assert closed
    assert [s for s, _, _ in parse_responses(out, head_requests=(2,))] == \
        [200, 404, 200], out[-300:]


def test_admin_reads_on_after_a_pipeline_fills_its_buffer(redis_server,
                                                         make_proxy):
    """3,000 pipelined requests (96 KB, more than the 80 KiB the admin
    port buffers) are all answered.  Reading stopped for good once the
    buffer was full: 2,642 answers, then nothing until the header
    deadline closed the connection."""
    p = make_proxy(redis_server, "--workers", "1")
    one = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    req = one * 2999 + b"GET /nope HTTP/1.1\r\nHost: x\r\n" \
        b"Connection: close\r\n\r\n"
    assert len(req) > 80 * 1024
    out, closed, _ = exchange(p.admin_port, req, timeout=30)
    assert closed
    statuses = [s for s, _, _ in parse_responses(out)]
    assert statuses == [404] * 3000, (len(statuses), out[-200:])


def test_admin_answers_expect_100_continue(redis_server, make_proxy):
    """POST /flush with a body and Expect: 100-continue (what curl sends
    for a larger body, and .NET's HttpClient for any): "100 Continue" at
    once, then the 204 once the body is in.  The admin port sent
    nothing, and a client that waits for the 100 before its body waited
    until the header deadline closed the connection."""
    p = make_proxy(redis_server, "--workers", "1")
    s = socket.create_connection(("127.0.0.1", p.admin_port), timeout=10)
    try:
        s.sendall(b"POST /flush HTTP/1.1\r\nHost: x\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        assert read_response(s, b"\r\n\r\n") == \
            b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"abc")
        got = read_response(s, b"\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 204 "), got
        # The connection goes on: the next request gets its answer.
        s.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, b"not found\n").startswith(
            b"HTTP/1.1 404 ")
    finally:
        s.close()
