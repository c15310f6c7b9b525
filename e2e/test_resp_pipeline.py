"""RESP pipelines of misses (issue 14's pipelining item, issue 17's
worker side): a client's pipeline of GETs that miss is sent to Redis
without waiting for each answer, and the answers still come back in
request order."""
import socket
import threading
import time

import pytest

from conftest import free_port


class CountingRedis:
    """A stand-in Redis that answers GET k with "v:k" after 20 ms, reading
    ahead meanwhile, and records the most GETs it held unanswered at
    once: 1 for a client that waits for each answer."""

    def __init__(self):
        self.max_in_flight = 0
        self.gets = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    @staticmethod
    def _parse(buf):
        """Complete commands at the front of buf: (list of argv, rest)."""
        cmds = []
        while buf.startswith(b"*"):
            pos = buf.find(b"\r\n")
            if pos < 0:
                break
            n = int(buf[1:pos])
            pos += 2
            args = []
            for _ in range(n):
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    return cmds, buf
                ln = int(buf[pos + 1:end])
                if len(buf) < end + 2 + ln + 2:
                    return cmds, buf
                args.append(buf[end + 2:end + 2 + ln])
                pos = end + 2 + ln + 2
            else:
                cmds.append(args)
                buf = buf[pos:]
                continue
            break
        return cmds, buf

    def _serve(self, c):
        buf = b""
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    return
                buf += b
                cmds, buf = self._parse(buf)
                if not cmds:
                    continue
                gets = [a for a in cmds if a[0].upper() == b"GET"]
                if gets:
                    # Hold them a moment, reading what else comes.
                    time.sleep(0.02)
                    c.setblocking(False)
                    try:
                        while True:
                            more = c.recv(65536)
                            if not more:
                                break
                            buf += more
                    except BlockingIOError:
                        pass
                    c.setblocking(True)
                    more_cmds, buf = self._parse(buf)
                    cmds += more_cmds
                    gets = [a for a in cmds if a[0].upper() == b"GET"]
                    self.max_in_flight = max(self.max_in_flight, len(gets))
                    self.gets += len(gets)
                out = []
                for a in cmds:
                    if a[0].upper() == b"GET":
                        v = b"v:" + a[1]
                        out.append(b"$%d\r\n%s\r\n" % (len(v), v))
                    elif a[0].upper() == b"PING":
                        out.append(b"+PONG\r\n")
                    elif a[0].upper() == b"PTTL":
                        out.append(b":-1\r\n")
                    else:
                        out.append(b"+OK\r\n")
                c.sendall(b"".join(out))
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


@pytest.fixture
def counting():
    r = CountingRedis()
    yield r
    r.stop()


def resp_get(key):
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)


def read_answers(s, n, timeout=20):
    """n bulk answers from s, in order."""
    s.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < n:
        b = s.recv(1 << 20)
        assert b, "closed after %d answers" % len(out)
        buf += b
        while True:
            if not buf.startswith(b"$"):
                assert not buf or buf[:1] in b"+-*:", buf[:40]
                if buf[:1] in (b"+", b"-"):
                    end = buf.find(b"\r\n")
                    if end < 0:
                        break
                    out.append(buf[:end])
                    buf = buf[end + 2:]
                    continue
                break
            end = buf.find(b"\r\n")
            if end < 0:
                break
            ln = int(buf[1:end])
            if len(buf) < end + 2 + ln + 2:
                break
            out.append(buf[end + 2:end + 2 + ln])
            buf = buf[end + 2 + ln + 2:]
    return out


def test_pipeline_of_1000_misses_in_order_many_in_flight(counting,
                                                         make_proxy):
    rport = free_port()
    p = make_proxy(counting, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % rport)
    keys = [b"pk%04d" % i for i in range(1000)]
    s = socket.create_connection(("127.0.0.1", rport), timeout=20)
    try:
        start = time.monotonic()
        s.sendall(b"".join(resp_get(k) for k in keys))
        answers = read_answers(s, 1000)
        took = time.monotonic() - start
    finally:
        s.close()
    assert answers == [b"v:" + k for k in keys]
    assert counting.gets == 1000
    assert counting.max_in_flight >= 10, counting.max_in_flight
    # One round trip each would be 1000 x 20 ms.
    assert took < 10, took


def test_pipeline_mixes_hits_misses_and_other_commands_in_order(
        redis_server, make_proxy):
    rport = free_port()
    p = make_proxy(redis_server, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % rport)
    c = redis_server.client()
    for i in range(50):
        c.set(b"mx%d" % i, b"val%d" % i)
    s = socket.create_connection(("127.0.0.1", rport), timeout=10)
    try:
        # Warm half the keys, so hits and misses interleave.
        s.sendall(b"".join(resp_get(b"mx%d" % i) for i in range(0, 50, 2)))
        read_answers(s, 25)
        req = []
        want = []
        for i in range(50):
            req.append(resp_get(b"mx%d" % i))
            want.append(b"val%d" % i)
            if i % 10 == 9:
                req.append(b"*1\r\n$4\r\nPING\r\n")
                want.append(b"+PONG")
            if i == 25:
                req.append(resp_get(b"absent"))
                want.append(None)
        s.sendall(b"".join(req))
        got = read_answers_nil(s, len(want))
    finally:
        s.close()
    assert got == want


def read_answers_nil(s, n):
    """Like read_answers, but "$-1" (nil) is None."""
    s.settimeout(10)
    buf = b""
    out = []
    while len(out) < n:
        b = s.recv(1 << 20)
        assert b
        buf += b
        while buf:
            end = buf.find(b"\r\n")
            if end < 0:
                break
            if buf.startswith(b"$-1\r\n"):
                out.append(None)
                buf = buf[5:]
            elif buf.startswith(b"$"):
                ln = int(buf[1:end])
                if len(buf) < end + 2 + ln + 2:
                    break
                out.append(buf[end + 2:end + 2 + ln])
                buf = buf[end + 2 + ln + 2:]
            else:
                out.append(buf[:end])
                buf = buf[end + 2:]
    return out
