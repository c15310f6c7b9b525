"""Purge safety without tracking: `DELETE /cache/<key>` and `POST /flush`
are never undone by a fetch that was already in flight.

A stand-in Redis holds the first GET of the key until the test lets it
go, having read the value when the GET arrived (as Redis executes it);
meanwhile the key changes in "Redis" and is purged on the admin port.
The old value must reach the client that asked before the purge and
nowhere else: not the cache, not a client that asks after the purge.
"""
import queue
import socket
import threading

import pytest
import requests

from conftest import wait_for


class GatedRedis:
    """Answers GET from a dict, one command at a time per connection as
    Redis does; while `gate` is clear, a GET of a key in `held` waits
    for it with the value it read on arrival.  Counts GETs per key."""

    def __init__(self):
        self.values = {}
        self.held = set()
        self.gate = threading.Event()
        self.gets = {}
        self.lock = threading.Lock()
        self.conns = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        # Commands are read (and GETs counted, their values read) as
        # they arrive, and answered in order by a second thread, so a
        # pipelined GET behind a held one is seen at once.
        replies = queue.Queue()
        threading.Thread(target=self._answer, args=(c, replies),
                         daemon=True).start()
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                if not line.startswith(b"*"):
                    continue
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:-2])
                cmd = args[0].upper()
                if cmd == b"GET":
                    key = args[1]
                    with self.lock:
                        value = self.values.get(key)
                        self.gets[key] = self.gets.get(key, 0) + 1
                        hold = key in self.held
                    if value is None:
                        replies.put((hold, b"$-1\r\n"))
                    else:
                        replies.put((hold, b"$%d\r\n%s\r\n"
                                     % (len(value), value)))
                elif cmd == b"PTTL":
                    # Behind its GET in the queue, so held with it.
                    with self.lock:
                        present = args[1] in self.values
                    replies.put((False, b":-1\r\n" if present
                                 else b":-2\r\n"))
                elif cmd == b"PING":
                    replies.put((False, b"+PONG\r\n"))
                else:
                    replies.put((False, b"+OK\r\n"))
        except OSError:
            return
        finally:
            replies.put(None)

    def _answer(self, c, replies):
        try:
            while True:
                item = replies.get()
                if item is None:
                    return
                hold, data = item
                if hold:
                    self.gate.wait(10)
                c.sendall(data)
        except OSError:
            return
        finally:
            c.close()

    def get_count(self, key):
        with self.lock:
            return self.gets.get(key, 0)

    def stop(self):
        self.gate.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def gated():
    r = GatedRedis()
    yield r
    r.stop()


def purge_delete(p):
    r = requests.delete(p.admin_url("/cache/k"), timeout=5)
    assert r.status_code == 204


def purge_flush(p):
    r = requests.post(p.admin_url("/flush"), timeout=5)
    assert r.status_code == 204


@pytest.mark.parametrize("purge", [purge_delete, purge_flush],
                         ids=["delete", "flush"])
def test_purge_beats_fetch_in_flight(gated, make_proxy, purge):
    # One worker: the client that asks after the purge would otherwise
    # join the fetch in flight in the same worker.
    p = make_proxy(gated, "--workers", "1", "--ttl", "1h",
                   "--redis-timeout", "5s")
    gated.values[b"k"] = b"OLD"
    gated.held.add(b"k")
    first = {}

    def ask_first():
        first["r"] = requests.get(p.url("/k"), timeout=10)

    t = threading.Thread(target=ask_first)
    t.start()
    wait_for(lambda: gated.get_count(b"k") == 1, what="the first GET")
    with gated.lock:
        gated.values[b"k"] = b"NEW"     # a write in Redis ...
        gated.held.discard(b"k")
    purge(p)                            # ... then the purge
    second = {}

    def ask_second():
        second["r"] = requests.get(p.url("/k"), timeout=10)

    t2 = threading.Thread(target=ask_second)
    t2.start()
    # The second client's GET of its own is queued behind the held one
    # on the worker's connection (a joined client sends none).
    wait_for(lambda: gated.get_count(b"k") == 2,
             timeout=3, what="a GET for the client after the purge")
    gated.gate.set()
    t.join(10)
    t2.join(10)
    # Asked before the purge: the value read then is its answer, not
    # stored, and not said to be.
    assert first["r"].status_code == 200
    assert first["r"].content == b"OLD"
    assert first["r"].headers["Cache-Status"] == \
        "redis-cache-proxy; fwd=miss", first["r"].headers
    assert second["r"].headers["Cache-Status"] == \
        "redis-cache-proxy; fwd=miss; stored"
    # Asked after the purge: never the value read before it.
    assert second["r"].status_code == 200
    assert second["r"].content == b"NEW"
    assert gated.get_count(b"k") == 2
    # And the cache holds NEW (or nothing), never OLD.
    for _ in range(3):
        r = requests.get(p.url("/k"), timeout=5)
        assert r.status_code == 200
        assert r.content == b"NEW", r.headers
    assert r.headers["X-Cache"] == "HIT"


def test_purge_of_other_key_keeps_storing(gated, make_proxy):
    """A delete of another key does not stop a fetch in flight from
    being cached (the purge epochs are per key slot, not global)."""
    p = make_proxy(gated, "--workers", "1", "--ttl", "1h",
                   "--redis-timeout", "5s")
    gated.values[b"k"] = b"V"
    gated.held.add(b"k")
    first = {}

    def ask_first():
        first["r"] = requests.get(p.url("/k"), timeout=10)

    t = threading.Thread(target=ask_first)
    t.start()
    wait_for(lambda: gated.get_count(b"k") == 1, what="the first GET")
    # Not k: some other key, whose epoch slot is almost surely another.
    r = requests.delete(p.admin_url("/cache/another-key"), timeout=5)
    assert r.status_code == 204
    gated.gate.set()
    t.join(10)
    assert first["r"].content == b"V"
    r = requests.get(p.url("/k"), timeout=5)
    assert r.content == b"V"
    assert r.headers["X-Cache"] == "HIT"
    assert gated.get_count(b"k") == 1
