"""Who may read what: --key-prefix, --allow-keys, --allow-from (IPv4 and
IPv6 loopback), --http-auth-file (htpasswd -B bcrypt and bearer tokens,
SIGHUP reload), and --proxy-protocol-from with PROXY v1 and v2 headers
built here.  A refused key must never reach Redis: the backing Redis'
INFO commandstats is read before and after."""
import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest
import requests

from conftest import children, free_port, http_raw, read_until_close, \
    run_cli, wait_for

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def get_calls(redis_server):
    """How many key reads the backing Redis has served."""
    stats = redis_server.client().info("commandstats")
    return tuple(stats.get("cmdstat_" + c, {}).get("calls", 0)
                 for c in ("get", "mget", "type", "exists"))


def metric(p, name):
    text = requests.get(p.admin_url("/metrics"), timeout=5).text
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, name
    return int(m.group(1))


def complete_replies(data):
    """How many whole RESP2 replies data holds."""
    pos, n = 0, 0

    def one(pos):
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        t, head = data[pos:pos + 1], data[pos + 1:end]
        pos = end + 2
        if t == b"$":
            ln = int(head)
            if ln < 0:
                return pos
            return pos + ln + 2 if len(data) >= pos + ln + 2 else None
        if t == b"*":
            for _ in range(max(int(head), 0)):
                pos = one(pos)
                if pos is None:
                    return None
        return pos

    while pos < len(data):
        pos = one(pos)
        if pos is None:
            break
        n += 1
    return n


def resp(port, *cmds, host="127.0.0.1", raw_prefix=b"", replies=None):
    """Sends commands (inline), returns everything answered: the replies
    to them (and to raw_prefix's commands: replies= says how many in
    all), or what came before the connection closed or went quiet."""
    want = len(cmds) if replies is None else replies
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(raw_prefix + b"".join(c + b"\r\n" for c in cmds))
    s.settimeout(2.0)
    data = b""
    try:
        while complete_replies(data) < want:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except socket.timeout:
        pass
    finally:
        s.close()
    return data


# ---- --key-prefix and --allow-keys ----------------------------------------

def test_key_prefix(redis_server, make_proxy):
    port = free_port()
    p = make_proxy(redis_server, "--key-prefix", "app:", "--resp-listen",
                   "127.0.0.1:%d" % port)
    r = redis_server.client()
    r.set("app:k", "inside")
    r.set("k", "outside")
    assert requests.get(p.url("/k"), timeout=5).content == b"inside"
    assert requests.get(p.url("/k"), timeout=5).headers["X-Cache"] == "HIT"
    assert resp(port, b"GET k") == b"$6\r\ninside\r\n"
    # Forwarded commands get the prefix too.
    assert resp(port, b"STRLEN k") == b":6\r\n"
    assert resp(port, b"EXISTS k nope") == b":1\r\n"
    # The cache holds the client's key: the admin port drops it by that.
    assert requests.delete(p.admin_url("/cache/k"), timeout=5) \
        .status_code == 204
    assert requests.get(p.url("/k"), timeout=5).headers["X-Cache"] == "MISS"


def test_allow_keys_never_reach_redis(redis_server, make_proxy):
    port = free_port()
    p = make_proxy(redis_server, "--allow-keys", "user:*",
                   "--allow-keys", "pub[0-9]", "--resp-listen",
                   "127.0.0.1:%d" % port)
    r = redis_server.client()
    r.set("user:1", "u1")
    r.set("secret", "s")
    r.set("pub7", "p7")
    assert requests.get(p.url("/user:1"), timeout=5).content == b"u1"
    assert requests.get(p.url("/pub7"), timeout=5).content == b"p7"
    before = get_calls(redis_server)
    for path in ("/secret", "/pub10", "/user", "/USER:1"):
        resp_ = requests.get(p.url(path), timeout=5)
        assert resp_.status_code == 403, path
    noperm = b"-NOPERM this user has no permissions to access one of the " \
        b"keys used as arguments\r\n"
    assert resp(port, b"GET secret") == noperm
    assert resp(port, b"MGET user:1 secret") == noperm
    assert resp(port, b"TYPE secret") == noperm
    assert resp(port, b"EXISTS user:1 secret") == noperm
    assert get_calls(redis_server) == before
    assert resp(port, b"MGET user:1 pub7") == \
        b"*2\r\n$2\r\nu1\r\n$2\r\np7\r\n"
    text = requests.get(p.admin_url("/metrics"), timeout=5).text
    assert re.search(r'rcp_requests_total\{protocol="http",code="403"\} 4',
                     text)


def test_allow_keys_in_multi_as_redis_acl(redis_server, make_proxy):
    """A refused key in a transaction: the same answers as a Redis whose
    ACL user may read only user:*."""
    from conftest import Redis
    port = free_port()
    make_proxy(redis_server, "--allow-keys", "user:*", "--resp-listen",
               "127.0.0.1:%d" % port)
    ref = Redis(extra="user limited on nopass ~user:* +@all").start()
    try:
        for r in (redis_server.client(), ref.client()):
            r.set("user:1", "u1")
        conv = [b"MULTI", b"GET user:1", b"MGET user:1 secret",
                b"EXISTS secret", b"EXEC", b"MULTI", b"GET user:1",
                b"EXEC"]
        want = resp(ref.port, *conv, raw_prefix=b"AUTH limited x\r\n",
                    replies=len(conv) + 1)
        assert want.startswith(b"+OK\r\n")
        assert resp(port, *conv) == want[5:]
    finally:
        ref.stop()


# ---- --allow-from ------------------------------------------------------------

def closed_at_accept(port, host="127.0.0.1"):
    """True when the proxy closes the connection without a word."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((host, port))
    try:
        s.sendall(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
    except OSError:
        s.close()
        return True
    return read_until_close(s) == b""


def test_allow_from_ipv4(redis_server, make_proxy):
    p = make_proxy(redis_server, "--allow-from", "10.0.0.0/8")
    redis_server.client().set("k", "v")
    assert closed_at_accept(p.port)
    assert closed_at_accept(p.port)
    # Also the start-up probe of the test harness, when it was denied.
    wait_for(lambda: metric(p, "rcp_connections_denied_total") >= 2,
             what="denied connections counted")
    q = make_proxy(redis_server, "--allow-from", "10.0.0.0/8 127.0.0.1")
    assert requests.get(q.url("/k"), timeout=5).content == b"v"


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_allow_from_ipv6(redis_server, make_proxy):
    redis_server.client().set("k", "v6")
    port = free_port()
    p = make_proxy(redis_server, "--listen", "[::1]:%d" % port,
                   "--allow-from", "::1/128", wait=False)
    wait_for(lambda: socket_ok(port), what="IPv6 listener")
    r = requests.get("http://[::1]:%d/k" % port, timeout=5)
    assert r.content == b"v6"
    port2 = free_port()
    q = make_proxy(redis_server, "--listen", "[::1]:%d" % port2,
                   "--allow-from", "127.0.0.0/8", wait=False)
    wait_for(lambda: socket_ok(port2), what="IPv6 listener")
    assert closed_at_accept(port2, host="::1")
    wait_for(lambda: metric(q, "rcp_connections_denied_total") >= 1,
             what="denied connection counted")
    del p


def socket_ok(port):
    try:
        with socket.create_connection(("::1", port), timeout=0.2):
            return True
    except OSError:
        return False


# ---- --http-auth-file --------------------------------------------------------

def bcrypt_line(user, password, cost=5):
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-nbB", "-C", str(cost), user,
                              password], capture_output=True, text=True,
                             check=True)
        return out.stdout.strip()
    import crypt
    return "%s:%s" % (user, crypt.crypt(
        password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << cost)))


def bearer_line(token):
    return "bearer:" + hashlib.sha256(token.encode()).hexdigest()


def test_http_auth_basic_and_bearer(redis_server, make_proxy, tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text("# users\n%s\n\n%s\n" % (bcrypt_line("alice", "s3cret"),
                                          bearer_line("tok-123")))
    p = make_proxy(redis_server, "--http-auth-file", str(f), "--workers",
                   "1")
    redis_server.client().set("k", "v")
    r = requests.get(p.url("/k"), timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="')
    assert requests.get(p.url("/k"), auth=("alice", "wrong"),
                        timeout=5).status_code == 401
    assert requests.get(p.url("/k"), auth=("bob", "s3cret"),
                        timeout=5).status_code == 401
    assert requests.get(p.url("/k"), auth=("alice", "s3cret"),
                        timeout=5).content == b"v"
    assert requests.get(p.url("/k"), timeout=5, headers={
        "Authorization": "Bearer tok-123"}).content == b"v"
    assert requests.get(p.url("/k"), timeout=5, headers={
        "Authorization": "Bearer tok-124"}).status_code == 401
    assert requests.head(p.url("/k"), timeout=5).status_code == 401
    assert metric(p, "rcp_auth_failures_total") == 5
    # Secrets never reach the log or --check-config.
    assert "s3cret" not in p.log() and "tok-123" not in p.log()
    out = run_cli("--http-auth-file", str(f), "--check-config")
    assert out.returncode == 0 and "http-auth-file %s" % f in out.stdout
    assert "$2" not in out.stdout


def test_http_auth_keep_alive_pays_bcrypt_once(redis_server, make_proxy,
                                               tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text(bcrypt_line("alice", "pw", cost=12) + "\n")
    p = make_proxy(redis_server, "--http-auth-file", str(f), "--workers",
                   "1")
    redis_server.client().set("k", "v")
    s = requests.Session()
    s.auth = ("alice", "pw")
    t0 = time.monotonic()
    assert s.get(p.url("/k"), timeout=30).content == b"v"
    first = time.monotonic() - t0
    t0 = time.monotonic()
    for _ in range(20):
        assert s.get(p.url("/k"), timeout=30).content == b"v"
    rest = time.monotonic() - t0
    # bcrypt at cost 12 takes a good fraction of a second; 20 more
    # verifications would take many seconds.
    assert rest < max(5 * first, 2.0), (first, rest)


def test_http_auth_reload_on_sighup(redis_server, make_proxy, tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text(bearer_line("old") + "\n")
    p = make_proxy(redis_server, "--http-auth-file", str(f), "--workers",
                   "1")
    redis_server.client().set("k", "v")
    hdr = lambda t: {"Authorization": "Bearer " + t, "Connection": "close"}
    assert requests.get(p.url("/k"), headers=hdr("old"),
                        timeout=5).status_code == 200
    old = set(wait_for(lambda: children(p.proc.pid), what="the worker"))
    f.write_text(bearer_line("new") + "\n")
    os.kill(p.proc.pid, signal.SIGHUP)
    wait_for(lambda: "reload complete" in p.log(), timeout=10,
             what="reload")
    wait_for(lambda: requests.get(p.url("/k"), headers=hdr("new"),
                                  timeout=5).status_code == 200,
             what="new token accepted")
    # "reload complete" is logged when the old worker is sent SIGTERM;
    # until it has handled it, it still accepts from the shared socket
    # with the old file (a loaded machine widens that window), so the
    # old token is refused once it has gone, not at once.  Gone, not
    # one 401 seen: that may come from the new worker while the old one
    # still accepts the next request.
    wait_for(lambda: not old & set(children(p.proc.pid)), timeout=10,
             what="the old worker gone")
    wait_for(lambda: requests.get(p.url("/k"), headers=hdr("old"),
                                  timeout=5).status_code == 401,
             what="old token refused")
    for _ in range(5):
        assert requests.get(p.url("/k"), headers=hdr("old"),
                            timeout=5).status_code == 401
        assert requests.get(p.url("/k"), headers=hdr("new"),
                            timeout=5).status_code == 200


def test_http_auth_broken_file_at_reload_keeps_running(redis_server,
                                                       make_proxy, tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text(bearer_line("tok") + "\n")
    p = make_proxy(redis_server, "--http-auth-file", str(f))
    redis_server.client().set("k", "v")
    hdr = {"Authorization": "Bearer tok", "Connection": "close"}
    assert requests.get(p.url("/k"), headers=hdr, timeout=5).status_code == 200
    f.write_text("garbage\n")
    os.kill(p.proc.pid, signal.SIGHUP)
    wait_for(lambda: "keeping the running configuration" in p.log(),
             timeout=10, what="reload refused")
    assert "reload complete" not in p.log()
    for _ in range(10):
        assert requests.get(p.url("/k"), headers=hdr,
                            timeout=5).status_code == 200


def test_http_auth_worker_replaced_after_the_file_broke(redis_server,
                                                      make_proxy, tmp_path):
    """A worker that replaces one that died uses the credentials the
    supervisor last accepted, not what the file holds by then (before,
    it read the broken file and answered every request 401)."""
    f = tmp_path / "htpasswd"
    f.write_text(bearer_line("tok") + "\n")
    p = make_proxy(redis_server, "--http-auth-file", str(f), "--workers",
                   "1")
    redis_server.client().set("k", "v")
    hdr = {"Authorization": "Bearer tok", "Connection": "close"}
    assert requests.get(p.url("/k"), headers=hdr, timeout=5).status_code == 200
    old, = wait_for(lambda: children(p.proc.pid), what="the worker")
    f.write_text("garbage\n")
    os.kill(old, signal.SIGKILL)
    new, = wait_for(lambda: [c for c in children(p.proc.pid) if c != old],
                    timeout=10, what="the replacement worker")
    wait_for(lambda: requests.get(p.url("/k"), headers=hdr,
                                  timeout=5).status_code != 503,
             timeout=10, what="the replacement serving")
    for _ in range(5):
        r = requests.get(p.url("/k"), headers=hdr, timeout=5)
        assert (r.status_code, r.text) == (200, "v"), r.status_code
    assert requests.get(p.url("/k"), timeout=5).status_code == 401


def test_http_auth_bad_file(tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text("alice:$apr1$abc$def\n")
    out = run_cli("--http-auth-file", str(f))
    assert out.returncode == 2
    assert "unsupported hash" in out.stderr and "htpasswd -B" in out.stderr
    out = run_cli("--http-auth-file", str(tmp_path / "absent"),
                  "--check-config")
    assert out.returncode == 1 and "cannot open" in out.stderr


# ---- --proxy-protocol-from ---------------------------------------------------

def v2_header(src_ip, src_port, dst_ip="127.0.0.1", dst_port=80):
    if ":" in src_ip:
        addrs = socket.inet_pton(socket.AF_INET6, src_ip) + \
            socket.inet_pton(socket.AF_INET6, "::1")
        fam = 0x21
    else:
        addrs = socket.inet_aton(src_ip) + socket.inet_aton(dst_ip)
        fam = 0x11
    body = addrs + struct.pack(">HH", src_port, dst_port)
    return V2_SIG + bytes([0x21, fam]) + struct.pack(">H", len(body)) + body


def test_proxy_protocol(redis_server, make_proxy, tmp_path):
    log = tmp_path / "access.log"
    rport = free_port()
    p = make_proxy(redis_server, "--proxy-protocol-from", "127.0.0.1",
                   "--allow-from", "10.0.0.0/8", "--access-log", str(log),
                   "--resp-listen", "127.0.0.1:%d" % rport)
    redis_server.client().set("k", "v")
    req = b"GET /k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = http_raw(p.port, b"PROXY TCP4 10.1.2.3 127.0.0.1 5555 80\r\n" + req)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\nv")
    out = http_raw(p.port, v2_header("10.9.8.7", 4444) + req)
    assert out.startswith(b"HTTP/1.1 200 ")
    out = resp(rport, b"GET k",
               raw_prefix=b"PROXY TCP4 10.4.4.4 127.0.0.1 1 2\r\n")
    assert out == b"$1\r\nv\r\n"
    # The real client is judged by --allow-from: 192.0.2.1 is not in it.
    before = metric(p, "rcp_connections_denied_total")
    assert http_raw(p.port, b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n"
                    + req) == b""
    wait_for(lambda: metric(p, "rcp_connections_denied_total")
             == before + 1, what="denied connection counted")
    # A trusted peer must send the header: a bare request is refused.
    assert http_raw(p.port, req).startswith(b"HTTP/1.1 400 ")
    lines = wait_for(lambda: (lambda t: t if len(t) >= 3 else None)(
        log.read_text().splitlines() if log.exists() else []),
        what="access log")
    assert any(" 10.1.2.3 http " in l for l in lines), lines
    assert any(" 10.9.8.7 http " in l for l in lines), lines
    assert any(" 10.4.4.4 resp " in l for l in lines), lines


def test_proxy_local_header_judges_the_connection(redis_server, make_proxy):
    """A LOCAL (v2) or UNKNOWN (v1) header keeps the connection's own
    address (man page), so --allow-from judges that address: a trusted
    peer outside --allow-from is not let in by naming no client."""
    p = make_proxy(redis_server, "--proxy-protocol-from", "127.0.0.1",
                   "--allow-from", "10.0.0.0/8")
    redis_server.client().set("k", "v")
    req = b"GET /k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    local = V2_SIG + bytes([0x20, 0x00]) + struct.pack(">H", 0)
    before = metric(p, "rcp_connections_denied_total")
    assert http_raw(p.port, b"PROXY UNKNOWN\r\n" + req) == b""
    assert http_raw(p.port, local + req) == b""
    wait_for(lambda: metric(p, "rcp_connections_denied_total")
             == before + 2, what="denied connections counted")
    q = make_proxy(redis_server, "--proxy-protocol-from", "127.0.0.1",
                   "--allow-from", "127.0.0.0/8")
    out = http_raw(q.port, local + req)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\nv")
    out = http_raw(q.port, b"PROXY UNKNOWN\r\n" + req)
    assert out.startswith(b"HTTP/1.1 200 ")


def test_proxy_header_from_untrusted_peer(redis_server, make_proxy):
    rport = free_port()
    p = make_proxy(redis_server, "--proxy-protocol-from", "10.0.0.1",
                   "--resp-listen", "127.0.0.1:%d" % rport)
    redis_server.client().set("k", "v")
    req = b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n"
    out = http_raw(p.port, b"PROXY TCP4 10.1.2.3 127.0.0.1 5555 80\r\n" + req)
    assert out.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in out
    out = http_raw(p.port, v2_header("10.1.2.3", 1) + req)
    assert out.startswith(b"HTTP/1.1 400 ")
    out = resp(rport, b"GET k",
               raw_prefix=b"PROXY TCP4 10.4.4.4 127.0.0.1 1 2\r\n")
    assert out.startswith(b"-ERR PROXY protocol header refused")
    # Without a header the peer is served as usual.
    assert requests.get(p.url("/k"), timeout=5).content == b"v"
