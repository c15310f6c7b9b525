"""Shared fixtures for the end-to-end suite.

Every test runs the built binary (RCP_BINARY) against a private
redis-server that this file starts from a mktemp config on a free loopback
port and stops by PID.  Nothing here sleeps for a fixed time: helpers poll a
condition until a deadline.  Each test's Redis directories and proxy logs
are removed when it ends (e2e/run also points TMPDIR at a directory of its
own and removes it, for whatever else a test leaves).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

BINARY = os.environ.get("RCP_BINARY", os.path.join(
    os.path.dirname(__file__), "..", "redis-cache-proxy"))
# Debian's redis-tools carries the server binary as redis-check-rdb,
# which serves when its argv[0] is not "redis-check-rdb": so the tests
# need neither the redis-server package nor the service it installs.
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")


_handed_out = set()


def free_port():
    """A loopback port nobody listens on, never the same twice in a run
    (the kernel may offer a just-closed port again)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for(cond, timeout=10.0, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def children(pid):
    """Live (not zombie) child pids of pid, from /proc (no dependency on
    procps, which slim images lack)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the ")" that ends the command name: state, ppid.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return out


def vm_kb(pid, field):
    """A memory figure of pid in kB from /proc/<pid>/status: VmRSS,
    VmHWM, ..."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


class Redis:
    """A private redis-server: started on a free port, stopped by PID.
    Every one still running when a test ends is stopped then, even if the
    test failed half-way (see stop_leftover_redis)."""

    running = set()
    created = []                # their directories go when the test ends

    def __init__(self, port=None, extra=""):
        self.dir = tempfile.mkdtemp(prefix="rcp-redis-")
        Redis.created.append(self)
        self.port = port or free_port()
        self.pidfile = os.path.join(self.dir, "redis.pid")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.extra = extra
        self.proc = None

    def start(self):
        conf = os.path.join(self.dir, "redis.conf")
        with open(conf, "w") as f:
            f.write("bind 127.0.0.1\nport %d\nsave \"\"\nappendonly no\n"
                    "daemonize no\npidfile %s\ndir %s\nunixsocket %s\n"
                    "unixsocketperm 700\nenable-debug-command yes\n%s\n"
                    % (self.port, self.pidfile, self.dir, self.sock,
                       self.extra))
        self.proc = subprocess.Popen(["redis-server", conf],
                                     executable=REDIS_SERVER,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        Redis.running.add(self)
        wait_for(lambda: port_open(self.port), what="redis-server")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        Redis.running.discard(self)

    def client(self, **kw):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port


class Proxy:
    """The built binary, run in the foreground as a child of the test."""

    created = []                # their logs go when the test ends

    def __init__(self, args, env=None):
        self.port = free_port()
        self.admin_port = free_port()
        self.args = args
        self.env = dict(os.environ)
        self.env.pop("REDIS_PASSWORD", None)
        self.env.update(env or {})
        self.proc = None
        self.logfile = tempfile.NamedTemporaryFile(
            prefix="rcp-proxy-", suffix=".log", delete=False)
        Proxy.created.append(self)

    def start(self, wait=True):
        argv = [BINARY, "--listen", "127.0.0.1:%d" % self.port,
                "--admin-listen", "127.0.0.1:%d" % self.admin_port] + \
            self.args
        self.proc = subprocess.Popen(argv, env=self.env,
                                     stdout=self.logfile,
                                     stderr=subprocess.STDOUT)
        if wait:
            admin = "off" not in self.args
            wait_for(lambda: (port_open(self.port) and
                              (not admin or port_open(self.admin_port)))
                     or self.proc.poll() is not None, what="proxy ports")
            assert self.proc.poll() is None, self.log()
        return self

    def log(self):
        with open(self.logfile.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("proxy did not stop in time")
        rc = self.proc.returncode if self.proc else None
        return rc

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def admin_url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin_port, path)


def run_cli(*args, env=None, timeout=10):
    """Runs the binary to completion (help, version, bad flags)."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("RCP_") and k != "RCP_BINARY":
            del e[k]
    e.pop("REDIS_PASSWORD", None)
    e.update(env or {})
    return subprocess.run([BINARY] + list(args), env=e, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


@pytest.fixture(autouse=True)
def stop_leftover_redis():
    """Runs around every test (and, being autouse, is torn down after
    the test's other fixtures): stops the Redis servers still running and
    removes what the test's Redis and Proxy objects put in the temporary
    directory.  Proxies are stopped by make_proxy before this."""
    yield
    for r in list(Redis.running):
        r.stop()
    for r in Redis.created:
        shutil.rmtree(r.dir, ignore_errors=True)
    Redis.created.clear()
    for p in Proxy.created:
        if p.proc is not None and p.proc.poll() is None:
            continue                    # still running: keep its log
        p.logfile.close()
        try:
            os.unlink(p.logfile.name)
        except FileNotFoundError:
            pass
    Proxy.created[:] = [p for p in Proxy.created
                        if p.proc is not None and p.proc.poll() is None]


@pytest.fixture
def redis_server():
    r = Redis().start()
    yield r
    r.stop()


@pytest.fixture
def make_proxy():
    """Factory: make_proxy(redis, *args) starts a proxy; all are stopped
    at the end of the test, and each must exit 0 on SIGTERM."""
    started = []

    def factory(redis, *args, env=None, wait=True):
        argv = list(args)
        if redis is not None:
            argv = ["--redis", redis.addr] + argv
        p = Proxy(argv, env=env).start(wait=wait)
        started.append(p)
        return p

    yield factory
    for p in started:
        rc = p.stop()
        if not getattr(p, "killed", False):
            assert rc in (0, None), "proxy exited %r\n%s" % (rc, p.log())


@pytest.fixture
def proxy(redis_server, make_proxy):
    return make_proxy(redis_server, "--workers", "2")


def http_raw(port, data, timeout=5.0, read_until_close=True):
    """Sends raw bytes and returns what the peer answers: everything until
    it closes (or resets) the connection, or with read_until_close=False
    the first chunk.  The peer must do so within `timeout` seconds: a
    timeout fails the test, it is never taken for a close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    "peer did not close within %.1fs; read so far: %r"
                    % (timeout, b"".join(chunks)[:300]))
            s.settimeout(left)
            try:
                b = s.recv(65536)
            except socket.timeout:
                raise AssertionError(
                    "peer did not %s within %.1fs; read so far: %r"
                    % ("close" if read_until_close else "answer", timeout,
                       b"".join(chunks)[:300])) from None
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks)
    finally:
        s.close()


def read_until_close(s, timeout=10.0):
    """Everything the peer sends until it closes (or resets) the
    connection; closes s.  The close must come within `timeout` seconds
    of the call (a socket without its own timeout gets this one): a
    timeout fails the test, it is never taken for a close."""
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    "peer did not close within %.1fs; read so far: %r"
                    % (timeout, data[:300]))
            if s.gettimeout() is None or s.gettimeout() > left:
                s.settimeout(left)
            try:
                b = s.recv(1 << 20)
            except socket.timeout:
                raise AssertionError(
                    "peer did not close within %.1fs; read so far: %r"
                    % (timeout, data[:300])) from None
            except ConnectionResetError:
                break
            if not b:
                break
            data += b
    finally:
        s.close()
    return data


def read_http_response(s):
    """One whole HTTP response (headers and a Content-Length body, none
    when there is no Content-Length) from socket s, as bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        assert b, data
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    want = int(m.group(1)) if m else 0
    while len(body) < want:
        b = s.recv(65536)
        assert b, data
        body += b
    assert len(body) == want, data
    return head + b"\r\n\r\n" + body


def get(p, key, timeout=5):
    """GET /<key> on a proxy's data port."""
    import requests
    return requests.get(p.url("/" + key), timeout=timeout)


def parse_responses(data, head_requests=()):
    """Splits a byte stream into (status, headers, body) tuples.
    head_requests: indexes of responses that answer HEAD (no body)."""
    out = []
    i = 0
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("incomplete response: %r" % data[:200])
        lines = head.split(b"\r\n")
        # Every answer starts with a status line: stray bytes (a body
        # sent for HEAD, a wrong Content-Length) fail here.
        if not lines[0].startswith(b"HTTP/1.1 "):
            raise AssertionError("response %d does not start with a "
                                 "status line: %r" % (i, head[:200]))
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        n = 0 if i in head_requests else int(headers.get("content-length",
                                                         "0"))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
        i += 1
    return out


def read_commands(f):
    """Yields each command a client sends on f (a socket's makefile("rb")),
    as a list of bytes, until EOF; lines outside an array are skipped.
    A socket error (OSError) or a malformed length (ValueError) is the
    caller's to catch."""
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
        yield args


class StandInRedis:
    """A stand-in Redis whose answers the test times: reads the commands
    of each connection as they arrive (so pipelined ones are seen at
    once) and answers them in order, as Redis does.  A GET reads its
    value when it arrives, as Redis runs it (`values`, else
    `value_of(key)`, else `value`; keys are bytes), then its answer waits
    `delay` seconds (or `delays[key]`, key as str), and, while `gate` is
    clear, for the gate if the key is in `held`.  PTTL answers -1 (no
    expiry) or -2 (absent).  Records the GETs of each key, the client
    port each came from (`peers`), and the most commands read but not
    yet answered on one connection (`max_in_flight`)."""

    def __init__(self, delay=0, delays=None, value=b"v", value_of=None):
        import threading
        self.delay = delay
        self.delays = delays or {}
        self.value = value
        self.value_of = value_of
        self.values = {}
        self.held = set()
        self.gate = threading.Event()
        self.get_counts = {}
        self.peers = {}
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.conns = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def gets(self):
        with self.lock:
            return sum(self.get_counts.values())

    def get_count(self, key):
        with self.lock:
            return self.get_counts.get(key, 0)

    def _accept(self):
        import threading
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, peer[1]),
                             daemon=True).start()

    def _value(self, key):
        if key in self.values:
            return self.values[key]
        if self.value_of is not None:
            return self.value_of(key.decode())
        return self.value

    def _serve(self, c, peer_port):
        import queue
        import threading
        replies = queue.Queue()
        threading.Thread(target=self._answer, args=(c, replies),
                         daemon=True).start()
        f = c.makefile("rb")
        try:
            for args in read_commands(f):
                cmd = args[0].upper()
                if cmd == b"GET":
                    key = args[1]
                    with self.lock:
                        value = self._value(key)
                        self.get_counts[key] = \
                            self.get_counts.get(key, 0) + 1
                        self.peers.setdefault(key, []).append(peer_port)
                        hold = key in self.held
                    delay = self.delays.get(key.decode("latin-1"),
                                            self.delay)
                    data = b"$-1\r\n" if value is None else \
                        b"$%d\r\n%s\r\n" % (len(value), value)
                    replies.put((hold, delay, data))
                elif cmd == b"PTTL":
                    with self.lock:
                        absent = self._value(args[1]) is None
                    replies.put((False, 0, b":-2\r\n" if absent
                                 else b":-1\r\n"))
                elif cmd == b"PING":
                    replies.put((False, 0, b"+PONG\r\n"))
                else:
                    replies.put((False, 0, b"+OK\r\n"))
                with self.lock:
                    self.max_in_flight = max(self.max_in_flight,
                                             replies.qsize())
        except (OSError, ValueError):
            return
        finally:
            replies.put(None)

    def _answer(self, c, replies):
        try:
            while True:
                item = replies.get()
                if item is None:
                    return
                hold, delay, data = item
                if delay:
                    time.sleep(delay)
                if hold:
                    self.gate.wait(10)
                c.sendall(data)
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        self.gate.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def SlowRedis(delay, value=b"slow-value"):
    """A stand-in Redis whose every GET takes `delay` seconds."""
    return StandInRedis(delay=delay, value=value)


@pytest.fixture
def stand_in():
    """A StandInRedis, stopped when the test ends."""
    r = StandInRedis()
    yield r
    r.stop()
