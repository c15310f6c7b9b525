"""--tracking: Redis tells the proxy which cached keys changed (CLIENT
TRACKING, RESP2 redirection to a subscriber in each worker), so a write
in Redis is never answered stale, and a proxy that cannot be sure of
that answers from Redis instead of the cache.

Real redis-server from REDIS_SERVER, except the race tests, which use a
stand-in Redis that holds a GET's reply while the test invalidates.
"""
import os
import queue
import random
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import Redis, port_open, read_commands, wait_for


def metrics(p):
    text = requests.get(p.admin_url("/metrics"), timeout=5).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def tracking_up(p):
    return metrics(p).get("rcp_tracking_up") == 1


def health(p):
    return requests.get(p.admin_url("/health"), timeout=5).json()


def start_tracking_proxy(make_proxy, redis, mode, *extra, workers="2",
                         env=None):
    p = make_proxy(redis, "--workers", workers, "--ttl", "1h",
                   "--tracking", mode, *extra, env=env)
    # Every worker up (each flushes the cache as it comes up).
    wait_for(lambda: tracking_up(p)
             and p.log().count("invalidations from") == int(workers),
             what="tracking up in every worker")
    return p


def clients(r, flag):
    """Client ids of Redis connections whose flags include flag ('P': a
    subscriber, 't': tracking on)."""
    out = []
    for c in r.client_list():
        if flag in c["flags"] and c["cmd"] not in ("client|list",):
            out.append(int(c["id"]))
    return out


def socket_inodes(pid):
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def worker_of_reader(p, rc):
    """The pid of the worker whose connection to Redis did the one read
    so far (its last command the fetch's PTTL, or its GET), from Redis'
    CLIENT LIST and /proc: the connection's port, its socket inode, the
    worker holding it."""
    from test_process import worker_pids
    readers = [c for c in rc.client_list()
               if "P" not in c["flags"] and c["cmd"] in ("get", "pttl")]
    assert len(readers) == 1, rc.client_list()
    port = int(readers[0]["addr"].rpartition(":")[2])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    owners = [pid for pid in worker_pids(p) if socket_inodes(pid) & inodes]
    assert len(owners) == 1, (owners, inodes)
    return owners[0]


def worker_pids_of(p):
    from test_process import worker_pids
    return wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
        worker_pids(p)), what="two workers")


def read_fresh(p, key):
    """One read on a connection of its own (a worker that is stopped
    holds the ones it accepted)."""
    return requests.get(p.url("/" + key), timeout=10)


# --- never stale ----------------------------------------------------------

HOT_KEYS = 20
WRITES = 1000
FRESH_MS = 50
# How late a read may still be stale, asserted: a loaded 2-core machine
# stalls the worker or this client for tens to hundreds of ms now and
# then, which made the 50 ms target (now asserted on the median only)
# fail under load.  Without tracking a write is never seen within the
# 1 h TTL, so this still fails it.
SEEN_MS = 1000


def run_writes(redis_server, proxies, writes, give_up_ms=2000,
               late_ms=SEEN_MS):
    """Writes to random hot keys from a separate client; after each
    write's reply, reads the key through a random proxy until it answers
    the new value, then reads another hot key through every proxy (a
    hit, mostly), which must hold that key's latest value.  Returns the
    milliseconds from each write's reply to the first fresh read
    (give_up_ms when it never came), and the number of other-key reads
    that were stale more than late_ms after their key's write.
    A read counts from when it was sent: a slow answer is not stale."""
    rc = redis_server.client()
    sessions = [requests.Session() for _ in proxies]
    rng = random.Random(16)
    keys = ["hot:%d" % i for i in range(HOT_KEYS)]
    current = {}
    written = {}
    for k in keys:
        rc.set(k, "v0")
        current[k] = "v0"
        written[k] = time.monotonic()
    # Warm every key in every proxy: reads that follow are hits.
    for _ in range(2):
        for s, p in zip(sessions, proxies):
            for k in keys:
                assert s.get(p.url("/" + k), timeout=5).text == "v0"
    delays = []
    stale_others = 0
    stale_reads = 0             # reads that answered the old value
    stale_first = 0             # writes whose first read did
    stale_late = 0              # stale reads sent > late_ms after
    for i in range(writes):
        k = rng.choice(keys)
        new = "v%d" % (i + 1)
        rc.set(k, new)
        t0 = time.monotonic()
        current[k] = new
        written[k] = t0
        j = rng.randrange(len(proxies))
        first = True
        while True:
            start_ms = (time.monotonic() - t0) * 1000
            body = sessions[j].get(proxies[j].url("/" + k), timeout=5).text
            if body == new:
                # When the fresh read was sent: the proxy was fresh by
                # then (a slow answer is not a stale one).
                delays.append(start_ms)
                break
            stale_reads += 1
            if first:
                stale_first += 1
            first = False
            if start_ms > late_ms:
                stale_late += 1
            if start_ms > give_up_ms:
                delays.append(give_up_ms)
                break
        k2 = rng.choice(keys)
        for s, p in zip(sessions, proxies):
            body = s.get(p.url("/" + k2), timeout=5).text
            age_ms = (time.monotonic() - written[k2]) * 1000
            if body != current[k2] and age_ms > late_ms:
                stale_others += 1
    return {"delays": delays, "stale_others": stale_others,
            "stale_reads": stale_reads, "stale_first": stale_first,
            "stale_late": stale_late}


def distribution(delays):
    d = sorted(delays)

    def pct(q):
        return d[min(len(d) - 1, int(q * len(d)))]
    buckets = [1, 2, 5, 10, 20, 50]
    counts = []
    lo = 0
    for b in buckets:
        counts.append("<=%dms:%d" % (b, sum(1 for x in d if lo < x <= b
                                            or (lo == 0 and x <= b))))
        lo = b
    counts.append(">%dms:%d" % (buckets[-1],
                               sum(1 for x in d if x > buckets[-1])))
    return ("n=%d p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms  %s"
            % (len(d), pct(0.5), pct(0.9), pct(0.99), d[-1],
               " ".join(counts)))


@pytest.mark.parametrize("mode", ["default", "bcast"])
def test_two_proxies_never_stale(redis_server, make_proxy, mode):
    proxies = [start_tracking_proxy(make_proxy, redis_server, mode)
               for _ in range(2)]
    hits_before = sum(metrics(p)["rcp_cache_hits_total"] for p in proxies)
    r = run_writes(redis_server, proxies, WRITES)
    print("\n--tracking %s, %d writes; from the write's reply to the "
          "sending of the first read that answered the new value: %s; "
          "stale answers: %d (first read after the write: %d), sent more "
          "than %d ms after the write: %d; other keys stale: %d"
          % (mode, WRITES, distribution(r["delays"]), r["stale_reads"],
             r["stale_first"], SEEN_MS, r["stale_late"],
             r["stale_others"]))
    assert r["stale_late"] == 0, distribution(r["delays"])
    assert r["stale_others"] == 0
    # The target holds for the typical write, stalls aside.
    assert sorted(r["delays"])[len(r["delays"]) // 2] < FRESH_MS, \
        distribution(r["delays"])
    # The reads were answered from the cache, not all from Redis: the
    # proxies did cache, and Redis' word is what kept them fresh.
    hits = sum(metrics(p)["rcp_cache_hits_total"] for p in proxies)
    assert hits - hits_before >= WRITES
    assert sum(metrics(p)["rcp_invalidations_total"] for p in proxies) \
        >= WRITES
    for p in proxies:
        assert health(p)["tracking"] == "up"


def test_without_tracking_reads_are_stale(redis_server, make_proxy):
    """The control: the same load with --tracking off is stale for the
    whole TTL, so the test above can tell."""
    proxies = [make_proxy(redis_server, "--workers", "2", "--ttl", "1h")
               for _ in range(2)]
    r = run_writes(redis_server, proxies, 30, give_up_ms=100,
                   late_ms=FRESH_MS)
    assert r["stale_late"] >= 25
    # The median the test above asserts below FRESH_MS.
    assert sorted(r["delays"])[len(r["delays"]) // 2] >= FRESH_MS
    assert health(proxies[0])["tracking"] == "off"


# --- FLUSHALL, FLUSHDB --------------------------------------------------------

@pytest.mark.parametrize("mode", ["default", "bcast"])
@pytest.mark.parametrize("flush", ["flushall", "flushdb"])
def test_redis_flush_drops_everything(redis_server, make_proxy, mode, flush):
    p = start_tracking_proxy(make_proxy, redis_server, mode)
    rc = redis_server.client()
    for i in range(50):
        rc.set("f:%d" % i, "x")
    s = requests.Session()

    def all_cached():
        # In bcast mode a worker may read the SETs' invalidations after
        # another cached the keys, and drop them: read until they stay.
        for i in range(50):
            assert s.get(p.url("/f:%d" % i), timeout=5).status_code == 200
        return metrics(p)["rcp_cache_entries"] == 50
    wait_for(all_cached, what="50 keys cached")
    getattr(rc, flush)()
    # Within milliseconds normally; a loaded machine gets 10 s (without
    # the nil invalidation the cache would keep them for the 1 h TTL).
    wait_for(lambda: metrics(p)["rcp_cache_entries"] == 0,
             timeout=10, what="the cache emptied by " + flush)
    for i in range(50):
        assert s.get(p.url("/f:%d" % i), timeout=5).status_code == 404


# --- losing the channel ------------------------------------------------------

def read_all_fresh(p, key, want, ms=300):
    """Reads key through p for ms milliseconds: every answer is want."""
    s = requests.Session()
    deadline = time.monotonic() + ms / 1000.0
    n = 0
    while time.monotonic() < deadline:
        r = s.get(p.url("/" + key), timeout=5)
        assert r.status_code == 200 and r.text == want, (n, r.text)
        n += 1
    return n


def assert_caching_again(p, rc, key):
    """Tracking is back: key is a hit again, and a write to it is seen
    at once (the invalidations flow again)."""
    wait_for(lambda: tracking_up(p), what="tracking back")
    rc.set(key, "before")
    s = requests.Session()
    # The invalidation of the key read before is on its way and may land
    # just after this read stored "before", dropping it again (correctly:
    # the proxy cannot tell which write it was for), and a worker whose
    # own PING the fault held up may still go down and back once more:
    # so the first read after the write may be followed by a miss; a hit
    # must come soon.  Until the invalidation has landed, a read just
    # after the write may still answer the value cached before it
    # (tracking is fresh within milliseconds, not at once); past
    # SEEN_MS it must not.
    t0 = time.monotonic()

    def hit():
        r = s.get(p.url("/" + key), timeout=5)
        if r.text != "before":
            assert time.monotonic() - t0 < SEEN_MS / 1000.0, r.text
            return False
        return r.headers["X-Cache"] == "HIT"
    wait_for(hit, timeout=10, what="a hit on %s again" % key)
    rc.set(key, "after")
    wait_for(lambda: s.get(p.url("/" + key), timeout=5).text == "after",
             timeout=SEEN_MS / 1000.0, interval=0.001,
             what="the write after recovery seen")


@pytest.mark.parametrize("victim,mode", [("subscriber", "default"),
                                         ("tracked", "default"),
                                         ("subscriber", "bcast")])
def test_client_kill_stops_cache_then_recovers(redis_server, make_proxy,
                                               victim, mode):
    p = start_tracking_proxy(make_proxy, redis_server, mode, workers="1")
    rc = redis_server.client()
    rc.set("k", "v1")
    assert requests.get(p.url("/k"), timeout=5).text == "v1"
    r = requests.get(p.url("/k"), timeout=5)
    assert r.text == "v1" and r.headers["X-Cache"] == "HIT"
    if victim == "subscriber":
        ids = clients(rc, "P")
    else:
        ids = [i for i in clients(rc, "t") if i not in clients(rc, "P")]
    assert len(ids) == 1, rc.client_list()
    assert rc.client_kill_filter(_id=ids[0]) == 1
    # The write's invalidation has nowhere to go now; the proxy must not
    # answer v1 from its cache.
    rc.set("k", "v2")
    read_all_fresh(p, "k", "v2")
    assert "answering from Redis" in p.log()
    assert_caching_again(p, rc, "k")


def test_redis_restart(make_proxy):
    r = Redis().start()
    p = start_tracking_proxy(make_proxy, r, "default")
    rc = r.client()
    rc.set("k", "v1")
    s = requests.Session()
    for _ in range(3):
        assert s.get(p.url("/k"), timeout=5).text == "v1"
    assert metrics(p)["rcp_cache_entries"] == 1
    port = r.port
    r.stop()
    wait_for(lambda: not tracking_up(p), timeout=2, what="tracking down")
    r2 = Redis(port=port).start()
    rc2 = r2.client()
    rc2.set("k", "v2")
    # Nothing read before the restart is answered after it.
    wait_for(lambda: s.get(p.url("/k"), timeout=5).text == "v2",
             timeout=5, what="the proxy to reach the new Redis")
    read_all_fresh(p, "k", "v2")
    assert_caching_again(p, rc2, "k")
    r2.stop()


def test_unanswered_heartbeat(redis_server, make_proxy):
    """A Redis that stops answering (SIGSTOP) without closing anything:
    the subscriber's PING goes unanswered, tracking goes down; once
    Redis answers again it comes back."""
    p = start_tracking_proxy(make_proxy, redis_server, "default",
                             "--redis-timeout", "300ms", workers="1")
    pid = redis_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not tracking_up(p), timeout=3,
                 what="tracking down on an unanswered PING")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "no answer" in p.log()
    assert_caching_again(p, redis_server.client(), "k")


def test_invalidation_that_misses_the_cache_lock(redis_server, make_proxy):
    """An invalidation whose drop does not get the cache lock in time (a
    writer stuck inside it) must not leave the old value to be served
    once the lock is free: tracking goes down, and the cache is flushed
    before it is used again."""
    p = start_tracking_proxy(make_proxy, redis_server, "default",
                             env={"REDIS_CACHE_PROXY_TEST_HOOKS":
                                  "lock-stall"})
    rc = redis_server.client()
    rc.set("k", "v1")
    assert read_fresh(p, "k").text == "v1"
    r = read_fresh(p, "k")
    assert r.text == "v1" and r.headers["X-Cache"] == "HIT"
    reader = worker_of_reader(p, rc)
    staller, = [pid for pid in worker_pids_of(p) if pid != reader]
    # The other worker holds the write lock for 1.5 s; Redis tells the
    # reader of the write meanwhile, and its drop times out.
    os.kill(staller, signal.SIGUSR2)
    wait_for(lambda: "holding the cache write lock" in p.log(),
             what="the stall")
    rc.set("k", "v2")
    wait_for(lambda: "cache write lock released" in p.log(),
             what="the stall's end")
    for _ in range(20):
        r = read_fresh(p, "k")
        assert r.text == "v2", r.headers
    assert_caching_again(p, rc, "k")
    log = p.log()
    if "did not get the cache lock" in log:
        assert "cache flushed" in log


# How long a worker's word holds without its heartbeat: a PING's
# interval (1 s), --redis-timeout and 0.5 s of slack (tracking.c).
BEAT_S = 1.0 + 0.5


@pytest.mark.parametrize("mode", ["default", "bcast"])
def test_stopped_worker_stops_the_others_caching(redis_server, make_proxy,
                                                 mode):
    """In the default mode Redis tells a change only to the subscriber
    of the worker whose connection read the key.  That worker stopped
    (SIGSTOP) applies nothing, and says UP for ever: the others must
    count it DOWN once its heartbeat is late (1.5 s + --redis-timeout),
    and stop answering from the cache; /health and /metrics say so.
    Once it runs again everything is as before.  (bcast: every worker
    is told every change; the stopped one is counted DOWN all the
    same.)"""
    timeout_s = 0.5
    # Written before the proxy starts (see test_key_prefix).
    rc = redis_server.client()
    rc.set("k", "v1")
    p = start_tracking_proxy(make_proxy, redis_server, mode,
                             "--redis-timeout", "%dms" % (timeout_s * 1000))
    assert read_fresh(p, "k").text == "v1"
    r = read_fresh(p, "k")
    assert r.text == "v1" and r.headers["X-Cache"] == "HIT"
    reader = worker_of_reader(p, rc)
    os.kill(reader, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        rc.set("k", "v2")
        # Within the bound the other worker may still answer v1 (the
        # stopped one's word is good that long); past it, never.
        wait_for(lambda: not tracking_up(p),
                 timeout=BEAT_S + timeout_s + 10, interval=0.02,
                 what="the stopped worker counted down")
        took = time.monotonic() - t0
        # The bound, plus what a loaded machine adds to a scrape.
        assert took < BEAT_S + timeout_s + 3, took
        for _ in range(10):
            r = read_fresh(p, "k")
            assert r.text == "v2" and r.headers["X-Cache"] == "MISS"
        assert not tracking_up(p)
        assert health(p)["tracking"] == "down"
    finally:
        os.kill(reader, signal.SIGCONT)
    assert_caching_again(p, rc, "k")
    assert health(p)["tracking"] == "up"


# --- the race guard ----------------------------------------------------------

class TrackingStandIn:
    """A stand-in Redis speaking just enough RESP2 for --tracking: CLIENT
    ID, CLIENT TRACKING (+OK), SUBSCRIBE, PING (a pong message while
    subscribed), and GET (with its PTTL: -1, no expiry) from a dict; while `gate` is clear a GET of a
    key in `held` waits for it, with the value read when the GET arrived
    (as Redis executes it).  invalidate() sends an invalidation message
    to every subscriber, as Redis would on a write."""

    def __init__(self):
        self.values = {}
        self.held = set()
        self.gate = threading.Event()
        self.gets = {}
        self.lock = threading.Lock()
        self.conns = []
        self.subscribers = []           # their reply queues
        self.next_id = 1
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

    @staticmethod
    def _bulk(b):
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def _serve(self, c):
        replies = queue.Queue()
        threading.Thread(target=self._answer, args=(c, replies),
                         daemon=True).start()
        with self.lock:
            my_id = self.next_id
            self.next_id += 1
        subscribed = False
        f = c.makefile("rb")
        try:
            for args in read_commands(f):
                cmd = args[0].upper()
                sub = args[1].upper() if len(args) > 1 else b""
                if cmd == b"GET":
                    key = args[1]
                    with self.lock:
                        value = self.values.get(key)
                        self.gets[key] = self.gets.get(key, 0) + 1
                        hold = key in self.held
                    replies.put((hold, b"$-1\r\n" if value is None
                                 else self._bulk(value)))
                elif cmd == b"PTTL":
                    # Behind its GET in the queue, so held with it.
                    with self.lock:
                        present = args[1] in self.values
                    replies.put((False, b":-1\r\n" if present
                                 else b":-2\r\n"))
                elif cmd == b"CLIENT" and sub == b"ID":
                    replies.put((False, b":%d\r\n" % my_id))
                elif cmd == b"SUBSCRIBE":
                    subscribed = True
                    with self.lock:
                        self.subscribers.append(replies)
                    replies.put((False, b"*3\r\n" + self._bulk(b"subscribe")
                                 + self._bulk(args[1]) + b":1\r\n"))
                elif cmd == b"PING" and subscribed:
                    replies.put((False, b"*2\r\n" + self._bulk(b"pong")
                                 + self._bulk(b"")))
                elif cmd == b"PING":
                    replies.put((False, b"+PONG\r\n"))
                else:
                    replies.put((False, b"+OK\r\n"))   # CLIENT TRACKING
        except OSError:
            return
        finally:
            with self.lock:
                if replies in self.subscribers:
                    self.subscribers.remove(replies)
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

    def invalidate(self, keys):
        """keys: a list of names, or None for a flush (a nil message)."""
        body = (b"$-1\r\n" if keys is None else
                b"*%d\r\n" % len(keys) + b"".join(self._bulk(k)
                                                  for k in keys))
        msg = (b"*3\r\n" + self._bulk(b"message")
               + self._bulk(b"__redis__:invalidate") + body)
        with self.lock:
            for q in self.subscribers:
                q.put((False, msg))

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
def stand_in():
    r = TrackingStandIn()
    yield r
    r.stop()


@pytest.mark.parametrize("purge", ["invalidate", "redis-flush", "delete",
                                   "flush"])
def test_purge_beats_fetch_in_flight_with_tracking(stand_in, make_proxy,
                                                   purge):
    """A fetch that began before its key was reported changed (or
    purged, or everything flushed) answers the client that asked before,
    and nothing else: not the cache, not a client asking after."""
    p = make_proxy(stand_in, "--workers", "1", "--ttl", "1h",
                   "--redis-timeout", "5s", "--tracking", "default")
    wait_for(lambda: tracking_up(p), what="tracking up")
    stand_in.values[b"k"] = b"OLD"
    stand_in.held.add(b"k")
    first = {}

    def ask_first():
        first["r"] = requests.get(p.url("/k"), timeout=10)

    t = threading.Thread(target=ask_first)
    t.start()
    wait_for(lambda: stand_in.get_count(b"k") == 1, what="the first GET")
    with stand_in.lock:
        stand_in.values[b"k"] = b"NEW"      # a write in Redis ...
        stand_in.held.discard(b"k")
    before = metrics(p)["rcp_invalidations_total"]
    if purge == "invalidate":               # ... and Redis says so
        stand_in.invalidate([b"k"])
    elif purge == "redis-flush":
        stand_in.invalidate(None)
    elif purge == "delete":
        assert requests.delete(p.admin_url("/cache/k"),
                               timeout=5).status_code == 204
    else:
        assert requests.post(p.admin_url("/flush"),
                             timeout=5).status_code == 204
    if purge in ("invalidate", "redis-flush"):
        wait_for(lambda: metrics(p)["rcp_invalidations_total"] > before,
                 what="the invalidation read")
    second = {}

    def ask_second():
        second["r"] = requests.get(p.url("/k"), timeout=10)

    t2 = threading.Thread(target=ask_second)
    t2.start()
    wait_for(lambda: stand_in.get_count(b"k") == 2, timeout=3,
             what="a GET for the client after the invalidation")
    stand_in.gate.set()
    t.join(10)
    t2.join(10)
    assert first["r"].content == b"OLD"
    # Answered, not stored: the purge came after its fetch began.
    assert "fwd=miss" in first["r"].headers["Cache-Status"]
    assert "stored" not in first["r"].headers["Cache-Status"]
    assert second["r"].content == b"NEW"
    assert "stored" in second["r"].headers["Cache-Status"]
    for _ in range(3):
        r = requests.get(p.url("/k"), timeout=5)
        assert r.content == b"NEW", r.headers
    assert r.headers["X-Cache"] == "HIT"
    assert stand_in.get_count(b"k") == 2


# --- Sentinel: the subscriber follows the primary ------------------------------

def test_sentinel_failover_moves_tracking(make_proxy):
    from test_sentinel import Setup
    setup = Setup()
    try:
        p = make_proxy(None, "--redis-sentinel", setup.seeds(),
                       "--redis-master", "mymaster", "--workers", "2",
                       "--ttl", "1h", "--tracking", "default")
        wait_for(lambda: tracking_up(p)
                 and p.log().count("invalidations from") == 2,
                 what="tracking up in both workers")
        old = setup.primary.client()
        old.set("k", "v1")
        s = requests.Session()
        assert s.get(p.url("/k"), timeout=5).text == "v1"
        setup.sentinels[0].client().execute_command(
            "SENTINEL", "FAILOVER", "mymaster")
        wait_for(lambda: setup.sentinels[0].master_port()
                 == setup.replica.port, timeout=30, interval=0.05,
                 what="sentinel failover")
        wait_for(lambda: p.log().count("is now 127.0.0.1:%d"
                                       % setup.replica.port) == 2,
                 timeout=5, what="both workers switch")
        wait_for(lambda: tracking_up(p), timeout=5,
                 what="tracking up on the new primary")
        new = setup.replica.client()
        # Both workers' connections are tracked on the new primary, each
        # redirected to a subscriber there.
        cl = new.client_list()
        subs = {c["id"] for c in cl if "P" in c["flags"]}
        tracked = [c for c in cl if "t" in c["flags"]]
        assert len(tracked) == 2, cl
        assert all(c["redir"] in subs for c in tracked), cl
        new.set("k", "v2")
        wait_for(lambda: s.get(p.url("/k"), timeout=5).text == "v2",
                 timeout=2, what="the new value")
        # Cached, then changed on the new primary: seen at once.
        for _ in range(4):
            s.get(p.url("/k"), timeout=5)
        r = s.get(p.url("/k"), timeout=5)
        assert r.text == "v2" and r.headers["X-Cache"] == "HIT"
        new.set("k", "v3")
        wait_for(lambda: s.get(p.url("/k"), timeout=5).text == "v3",
                 timeout=SEEN_MS / 1000.0, interval=0.001,
                 what="the write on the new primary seen")
    finally:
        setup.stop()


# --- --key-prefix and --tracking-prefix -------------------------------------

def fresh_within(s, p, key, want, ms=SEEN_MS):
    wait_for(lambda: s.get(p.url("/" + key), timeout=5).text == want,
             timeout=ms / 1000.0, interval=0.001,
             what="%s = %s through the proxy" % (key, want))


@pytest.mark.parametrize("mode", ["default", "bcast"])
def test_key_prefix(redis_server, make_proxy, mode):
    """Redis names its own keys (app:k); the cache holds the client's
    (k)."""
    # Written before the proxy starts: in bcast mode a SET's
    # invalidation could otherwise reach a worker after it cached the
    # value (late, on a loaded machine) and drop it, and the HIT below
    # would be a MISS.
    rc = redis_server.client()
    rc.set("app:k", "v1")
    rc.set("k", "not ours")
    p = start_tracking_proxy(make_proxy, redis_server, mode,
                             "--key-prefix", "app:")
    s = requests.Session()
    assert s.get(p.url("/k"), timeout=5).text == "v1"
    r = s.get(p.url("/k"), timeout=5)
    assert r.text == "v1" and r.headers["X-Cache"] == "HIT"
    rc.set("k", "still not ours")       # no effect on the cache
    rc.set("app:k", "v2")
    fresh_within(s, p, "k", "v2")


def test_bcast_prefixes_cache_only_what_they_cover(redis_server, make_proxy):
    # Written before the proxy starts (see test_key_prefix).
    rc = redis_server.client()
    rc.set("app:user:1", "u1")
    rc.set("app:other:1", "o1")
    p = start_tracking_proxy(make_proxy, redis_server, "bcast",
                             "--key-prefix", "app:", "--tracking-prefix",
                             "user:", "--tracking-prefix", "item:")
    s = requests.Session()
    for _ in range(2):
        r = s.get(p.url("/user:1"), timeout=5)
    assert r.text == "u1" and r.headers["X-Cache"] == "HIT"
    rc.set("app:user:1", "u2")
    fresh_within(s, p, "user:1", "u2")
    # Outside the prefixes Redis would not say: answered, never cached.
    for _ in range(3):
        r = s.get(p.url("/other:1"), timeout=5)
        assert r.text == "o1" and r.headers["X-Cache"] == "MISS"
    # Each worker's subscriber tracks in bcast mode ('B'), and no data
    # connection tracks: Redis keeps no per-key state for us.
    cl = rc.client_list()
    assert len([c for c in cl if "B" in c["flags"]]) == 2, cl
    assert not [c for c in cl if "t" in c["flags"] and "P" not in
                c["flags"]], cl
