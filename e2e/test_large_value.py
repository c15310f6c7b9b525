"""A 256 MB value fetched by three clients at once while a fourth
client's hits on the same worker are timed: the value is held once, goes
out incrementally without stalling the worker, and its memory is given
back once the clients are done (VmRSS from /proc/<pid>/status)."""
import http.client
import os
import time

from conftest import Redis, children, get, vm_kb, wait_for

BIG = 256 << 20


def fetch_big(port):
    """curl in its own process (no GIL shared with the timed client),
    writing to /dev/null: the bytes are checked by the RESP test below,
    here the time is the other client's."""
    import subprocess
    return subprocess.Popen(
        ["curl", "-sS", "--max-time", "120", "-o", "/dev/null", "-w",
         "%{http_code} %{size_download}", "http://127.0.0.1:%d/big" % port],
        stdout=subprocess.PIPE)


def test_256mb_value_to_three_clients_while_hits_stay_fast(make_proxy):
    r = Redis(extra="proto-max-bulk-len 512mb").start()
    value = os.urandom(1 << 20) * (BIG >> 20)
    c = r.client()
    c.set("big", value)
    del value
    c.set("hot", "h")
    # 256 MB from Redis inside the default 1 s --redis-timeout: not on a
    # loaded machine (nor under strace), where it was a 504.
    p = make_proxy(r, "--workers", "1", "--ttl", "1h",
                   "--redis-timeout", "60s")
    assert get(p, "hot").headers["X-Cache"] == "MISS"
    worker = wait_for(lambda: (children(p.proc.pid) or [None])[0],
                      what="the worker")
    # A warm-up round so the baseline has what every request allocates.
    hot = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    for _ in range(50):
        hot.request("GET", "/hot")
        assert hot.getresponse().read() == b"h"
    time.sleep(0.2)
    base = vm_kb(worker, "VmRSS")

    fetchers = [fetch_big(p.port) for _ in range(3)]
    peak = 0
    lat = []
    while any(f.poll() is None for f in fetchers):
        t0 = time.perf_counter()
        hot.request("GET", "/hot")
        resp = hot.getresponse()
        assert resp.read() == b"h"
        lat.append(time.perf_counter() - t0)
        assert resp.getheader("X-Cache") == "HIT"
        peak = max(peak, vm_kb(worker, "VmRSS"))
        time.sleep(0.002)
    got = [f.communicate()[0].decode() for f in fetchers]
    assert got == ["200 %d" % BIG] * 3
    lat.sort()
    p99 = lat[int(len(lat) * 0.99)]
    print("hits: %d, p50 %.2f ms, p99 %.2f ms; worker RSS base %d MB, "
          "peak %d MB" % (len(lat), lat[len(lat) // 2] * 1e3, p99 * 1e3,
                          base >> 10, peak >> 10))
    # Held once: three copies would be 768 MB over the baseline.
    assert peak - base < (BIG >> 10) + (128 << 10), (base, peak)
    # Given back once the clients are done.
    wait_for(lambda: vm_kb(worker, "VmRSS") - base < 10 << 10, timeout=30,
             what="RSS back within 10 MB of the baseline")
    # The worker never stops serving the others: the hit client kept
    # going all along.  The 10 ms p99 target is measured (printed above)
    # rather than asserted: make check runs on shared CPUs, where the
    # scheduler alone costs tens of ms (DESIGN: no timed assertions in
    # make check).  The bound below catches a worker that stalls while
    # it reads or writes the value, as the hiredis one did for 5-7 s
    # (then the few hits it answers are all slow).  The bounds are
    # loose because a loaded 2-core machine stalls a healthy worker for
    # hundreds of ms now and then (50 ms p50, 500 ms p99 were tight).
    assert len(lat) >= 20, lat
    assert lat[len(lat) // 2] < 0.100, "p50 %.1f ms" % (
        lat[len(lat) // 2] * 1e3)
    assert p99 < 1.5, "p99 %.1f ms" % (p99 * 1e3)
    hot.close()


def strace_attach(pid, out):
    """strace on pid, writing to out; None when it cannot attach (no
    strace, or ptrace refused, as in a container without
    CAP_SYS_PTRACE)."""
    import shutil
    import subprocess
    if shutil.which("strace") is None:
        return None
    tr = subprocess.Popen(
        ["strace", "-p", str(pid), "-e", "trace=read,writev,munmap",
         "-e", "signal=none", "-s", "0", "-o", out],
        stderr=subprocess.PIPE, text=True)
    line = tr.stderr.readline()
    if "attached" not in line:
        tr.kill()
        tr.wait()
        return None
    return tr


def test_256mb_value_moves_in_bounded_steps(make_proxy, tmp_path):
    """What bounds the pause a big value causes the worker's other
    clients is the size of each step it takes: every read from Redis,
    every write to a client and every unmapping of the freed value.
    Timing them cannot be asserted on shared CPUs, but their sizes can,
    from strace.  Before this was bounded, one writev() of the shared
    value returned 10 MB (the reader drains loopback while the kernel
    copies: 10 ms), and freeing it was one munmap() of 256 MB (45 ms)."""
    import re
    import signal
    r = Redis(extra="proto-max-bulk-len 512mb").start()
    c = r.client()
    c.set("big", os.urandom(1 << 20) * (BIG >> 20))
    # 256 MB from Redis inside the default 1 s --redis-timeout: not on a
    # loaded machine (nor under strace), where it was a 504.
    p = make_proxy(r, "--workers", "1", "--ttl", "1h",
                   "--redis-timeout", "60s")
    assert get(p, "absent").status_code == 404
    worker = wait_for(lambda: (children(p.proc.pid) or [None])[0],
                      what="the worker")
    base = vm_kb(worker, "VmRSS")
    out = str(tmp_path / "strace.out")
    tr = strace_attach(worker, out)
    if tr is None:
        import pytest
        pytest.skip("strace cannot attach here")
    def traced():
        sizes = {"read": [], "writev": [], "munmap": []}
        with open(out) as f:
            for line in f:
                line = line.strip()
                m = re.match(r"(read|writev)\(.*\)\s+= (\d+)$", line)
                if m:
                    sizes[m.group(1)].append(int(m.group(2)))
                m = re.match(r"munmap\(0x[0-9a-f]+, (\d+)\)\s+= 0$", line)
                if m:
                    sizes["munmap"].append(int(m.group(1)))
        return sizes

    try:
        fetchers = [fetch_big(p.port) for _ in range(2)]
        got = [f.communicate()[0].decode() for f in fetchers]
        assert got == ["200 %d" % BIG] * 2
        # Generous: the worker runs under strace on a shared machine.
        wait_for(lambda: vm_kb(worker, "VmRSS") - base < 10 << 10, timeout=30,
                 what="RSS back within 10 MB of the baseline")
        # strace writes each call once it returns.
        wait_for(lambda: sum(traced()["munmap"]) >= BIG, timeout=30,
                 what="the value unmapped")
    finally:
        tr.send_signal(signal.SIGINT)
        tr.wait(10)
    sizes = traced()
    # All of the value went out through the traced calls ...
    assert sum(sizes["writev"]) >= 2 * BIG, sum(sizes["writev"])
    assert sum(sizes["munmap"]) >= BIG, sizes["munmap"]
    # ... each a bounded step (the budgets are 256 KB per loop turn and
    # 4 MB per unmapping; the asserts leave room to tune them).
    assert max(sizes["read"]) <= 1 << 20, max(sizes["read"])
    assert max(sizes["writev"]) <= 1 << 20, max(sizes["writev"])
    assert max(sizes["munmap"]) <= 16 << 20, max(sizes["munmap"])


def test_big_value_over_resp_and_head(make_proxy):
    from conftest import free_port
    import redis as redis_py
    r = Redis().start()
    value = os.urandom(3 << 20)
    r.client().set("v", value)
    port = free_port()
    p = make_proxy(r, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % port, "--ttl", "1ms")
    rc = redis_py.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    # Pipelined around the shared value: answers stay in order.
    pipe = rc.pipeline(transaction=False)
    for k in ("v", "absent", "v", "v"):
        pipe.get(k)
    assert pipe.execute() == [value, None, value, value]
    hc = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    hc.request("HEAD", "/v")
    resp = hc.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Length") == str(len(value))
    assert resp.read() == b""
    hc.request("GET", "/v")
    assert hc.getresponse().read() == value
    hc.close()


def test_resp_large_values_are_shared_not_copied(make_proxy):
    """Over RESP a large value goes out by reference wherever it falls:
    the second of two pipelined GETs of it, and each item of an MGET,
    hold a reference to the one copy the worker read, as HTTP does.
    Three clients that have not read yet cost one copy of the value,
    not one per answer (before: the second GET and every MGET item was
    a copy each, 4 x 64 MB per client here).

    The value is over --max-value-size, so it is not cached: each round
    of misses fetches it once.  Redis is held (CLIENT PAUSE) while the
    three clients ask, so that every miss of the round waits for the one
    fetch however slowly a loaded machine runs the worker; the GETs and
    the MGET are separate rounds, because a client that reads nothing
    holds its later requests back (the worker stops reading a
    connection whose answers are queued), and an MGET read after the
    GETs' fetch landed is a fetch of its own."""
    import hashlib
    import socket
    import threading
    import requests
    from conftest import free_port
    size = 64 << 20
    r = Redis().start()
    value = os.urandom(1 << 20) * (size >> 20)
    r.client().set("big", value)
    port = free_port()
    # 60 s for Redis: 64 MB inside the default 1 s is not sure on a
    # loaded machine (the 256 MB tests above were 504s there).
    p = make_proxy(r, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % port, "--ttl", "1h",
                   "--redis-timeout", "60s")
    worker = wait_for(lambda: (children(p.proc.pid) or [None])[0],
                      what="the worker")
    bulk = b"$%d\r\n" % size
    answer_len = len(bulk) + size + 2
    digest = {}
    for name, parts, n in (
            ("GET", (bulk, value, b"\r\n") * 2, 2 * answer_len),
            ("MGET", (b"*2\r\n",) + (bulk, value, b"\r\n") * 2,
             4 + 2 * answer_len)):
        h = hashlib.sha256()
        for part in parts:
            h.update(part)
        digest[name] = (n, h.hexdigest())
    del value
    warm = socket.create_connection(("127.0.0.1", port), timeout=10)
    warm.sendall(b"PING\r\n")
    assert warm.recv(16) == b"+PONG\r\n"
    base = vm_kb(worker, "VmRSS")
    rc = r.client()

    def resp_ok():
        text = requests.get(p.admin_url("/metrics"), timeout=5).text
        for line in text.splitlines():
            if line.startswith('rcp_requests_total{protocol="resp",'
                               'code="ok"}'):
                return float(line.split()[-1])
        return 0

    def round_of(name, request, answers):
        want_len, want_digest = digest[name]
        ok0 = resp_ok()
        rc.config_resetstat()
        rc.execute_command("CLIENT", "PAUSE", "2000", "ALL")
        clients = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(request)
            clients.append(s)
        # The value read from Redis, and the GETs answered: their answers
        # are queued in the worker (the clients read nothing yet).  An
        # MGET counts once it is all queued, which here is only as the
        # client reads.
        wait_for(lambda: vm_kb(worker, "VmRSS") - base >= (size >> 10),
                 timeout=60, what="the value read")
        if answers:
            wait_for(lambda: resp_ok() - ok0 >= 3 * answers, timeout=30,
                     what="the %ss answered" % name)
        peak = vm_kb(worker, "VmRSS")
        got = [None] * 3

        def read_all(i):
            h = hashlib.sha256()
            n = 0
            while n < want_len:
                chunk = clients[i].recv(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
            got[i] = (n, h.hexdigest())

        readers = [threading.Thread(target=read_all, args=(i,))
                   for i in range(3)]
        for t in readers:
            t.start()
        while any(t.is_alive() for t in readers):
            peak = max(peak, vm_kb(worker, "VmRSS"))
            time.sleep(0.005)
        for t in readers:
            t.join()
        for s in clients:
            s.close()
        assert got == [(want_len, want_digest)] * 3, name
        stats = rc.info("commandstats")
        assert stats["cmdstat_get"]["calls"] == 1, (name, stats)
        print("3 RESP clients, %s of a 64 MB value: worker RSS base %d MB,"
              " peak %d MB" % (name, base >> 10, peak >> 10))
        assert peak - base < (size >> 10) + (16 << 10), (name, base, peak)
        wait_for(lambda: vm_kb(worker, "VmRSS") - base < 10 << 10,
                 timeout=30, what="RSS back within 10 MB of the baseline")

    round_of("GET", b"GET big\r\nGET big\r\n", 2)
    round_of("MGET", b"MGET big big\r\n", None)
    warm.close()
