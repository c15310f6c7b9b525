"""--tracking turned on by a SIGHUP reload: an old worker (no tracking)
still finishing what it had accepted reads from Redis untracked, after
the new workers flushed the cache; what it reads is reported to no
subscriber, so it must not reach the shared cache, where a tracking
worker would answer it after Redis changed it.

Deterministic: a request is queued on a keep-alive connection of an old
worker held stopped until the new workers are up.
"""
import os
import signal
import socket
import tempfile

import requests

from conftest import children, read_http_response, read_until_close, \
    wait_for

SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def sigterm_pending(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("ShdPnd:"):
                return int(line.split()[1], 16) & SIGTERM_BIT != 0
    return False


def tracking_up(p):
    text = requests.get(p.admin_url("/metrics"), timeout=5).text
    return "\nrcp_tracking_up 1\n" in text


def test_reload_turning_tracking_on_never_stores_an_untracked_read(
        redis_server, make_proxy):
    r = redis_server.client()
    r.set("k", "old")
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    stopped = []
    c = None
    try:
        conf.write("log-level debug\ntracking off\n")
        conf.close()
        p = make_proxy(redis_server, "--config", conf.name, "--workers", "2",
                       "--ttl", "1h", "--redis-timeout", "5s")
        wait_for(lambda: len(children(p.proc.pid)) == 2, what="2 workers")
        old = children(p.proc.pid)
        # Stopped before it serves, a worker would hold the reload back.
        wait_for(lambda: all("(pid %d) is serving" % pid in p.log()
                             for pid in old), what="old workers serving")
        # A keep-alive connection on old[0]: the only worker running.
        os.kill(old[1], signal.SIGSTOP)
        stopped.append(old[1])
        c = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        c.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_http_response(c).startswith(b"HTTP/1.1 404")
        os.kill(old[0], signal.SIGSTOP)
        stopped.append(old[0])
        # Its next request waits in the kernel while the reload runs.
        c.sendall(b"GET /k HTTP/1.1\r\nHost: t\r\n\r\n")
        with open(conf.name, "w") as f:
            f.write("log-level debug\ntracking default\n")
        os.kill(p.proc.pid, signal.SIGHUP)
        wait_for(lambda: all(sigterm_pending(pid) for pid in old),
                 timeout=20, what="both old workers retired")
        wait_for(lambda: tracking_up(p), timeout=20, what="tracking up")
        # The old worker goes on: it answers the request it had, from
        # Redis, after the new workers' flushes.
        for pid in old:
            os.kill(pid, signal.SIGCONT)
            stopped.remove(pid)
        reply = read_until_close(c)
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"old")
        wait_for(lambda: not any(pid in children(p.proc.pid) for pid in old),
                 what="old workers gone")
        r.set("k", "new")
        wait_for(lambda: requests.get(p.url("/k"), timeout=10).content
                 == b"new", timeout=5, what="k fresh")
    finally:
        if c is not None:
            c.close()
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        os.unlink(conf.name)
