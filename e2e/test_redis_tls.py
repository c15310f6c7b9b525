"""TLS to Redis: a redis-server started with --tls-port and certificates
made by the test with `openssl req`, reached with rediss:// URLs and the
--redis-tls-* flags.  The admin side of each test talks to Redis over its
unix socket, which stays plain."""
import os
import shutil
import signal
import subprocess
import tempfile

import pytest
import requests

from conftest import Redis, get, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            name + ".key", "-out", name + ".crt", "-days", "2", "-subj",
            "/CN=" + name, cwd=d)


def make_cert(d, ca, name, cn):
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
            cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
            "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".crt",
            "-days", "2", "-extfile", name + ".ext", cwd=d)


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="rcp-tls-")
    try:
        make_ca(d, "ca")
        make_ca(d, "other-ca")
        make_cert(d, "ca", "server", "localhost")
        make_cert(d, "ca", "client", "rcp-client")
        yield lambda name: os.path.join(d, name)
    finally:
        shutil.rmtree(d)


class TlsRedis(Redis):
    """redis-server with only a TLS port (self.port) and its unix socket."""

    def __init__(self, certs, extra="", port=None):
        super().__init__(port=port)
        self.extra = ("tls-port %d\nport 0\ntls-cert-file %s\n"
                      "tls-key-file %s\ntls-ca-cert-file %s\n%s\n"
                      % (self.port, certs("server.crt"), certs("server.key"),
                         certs("ca.crt"), extra))
        if "tls-auth-clients" not in extra:
            self.extra += "tls-auth-clients no\n"

    def start(self):
        super().start()
        # The unix socket opens just after the TLS port.
        wait_for(lambda: os.path.exists(self.sock), what="unix socket")
        wait_for(self._answers, what="redis on its unix socket")
        return self

    def _answers(self):
        import redis
        try:
            return self.client().ping()
        except redis.exceptions.AuthenticationError:
            return True
        except redis.exceptions.ResponseError:
            return True         # NOAUTH: it is up
        except redis.exceptions.ConnectionError:
            return False

    def client(self, **kw):
        import redis
        return redis.Redis(unix_socket_path=self.sock, **kw)

    def url(self, auth="", db=""):
        return "rediss://%s127.0.0.1:%d%s" % (auth, self.port, db)


def proxy_tls(make_proxy, redis_url, *args, env=None):
    return make_proxy(None, "--redis", redis_url, *args, env=env)


def metric(p, name):
    text = requests.get(p.admin_url("/metrics"), timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_rediss_url_with_ca_file(certs, make_proxy):
    r = TlsRedis(certs).start()
    r.client().set("k", "over tls")
    p = proxy_tls(make_proxy, r.url(), "--redis-tls-ca-file",
                  certs("ca.crt"))
    resp = get(p, "k")
    assert resp.status_code == 200, p.log()
    assert resp.content == b"over tls"
    assert resp.headers["X-Cache"] == "MISS"
    assert get(p, "absent").status_code == 404
    # --redis-tls on a plain address is the same thing.
    p2 = make_proxy(None, "--redis", "127.0.0.1:%d" % r.port, "--redis-tls",
                    "--redis-tls-ca-file", certs("ca.crt"))
    assert get(p2, "k").content == b"over tls"
    assert metric(p, "rcp_backend_connections") >= 1
    # /health speaks through the workers' TLS connections.
    wait_for(lambda: requests.get(p.admin_url("/health"),
                                  timeout=5).status_code == 200,
             what="/health 200 over TLS")
    r.stop()
    wait_for(lambda: requests.get(p.admin_url("/health"),
                                  timeout=5).status_code == 503,
             what="/health 503 with the TLS Redis gone")


def test_wrong_ca_is_502_with_reason_then_sighup_fixes_it(certs, make_proxy,
                                                          tmp_path):
    r = TlsRedis(certs).start()
    r.client().set("k", "v")
    conf = tmp_path / "rcp.conf"
    conf.write_text("redis-tls-ca-file %s\n" % certs("other-ca.crt"))
    p = proxy_tls(make_proxy, r.url(), "--config", str(conf), "--workers",
                  "1")
    assert get(p, "k").status_code == 502
    wait_for(lambda: "certificate verify failed" in p.log(),
             what="the TLS log line")
    lines = [ln for ln in p.log().splitlines()
             if "certificate verify failed" in ln]
    # OpenSSL's own words for why ("self-signed certificate in
    # certificate chain", "unable to get local issuer certificate").
    assert "TLS handshake failed: certificate verify failed: " in lines[0]
    assert "certificate" in lines[0].split("verify failed: ")[1], lines
    # One line for the outage, however many retries follow.
    assert len(lines) == 1, p.log()
    assert metric(p, 'rcp_backend_errors_total{kind="tls"}') >= 1
    # The right CA, by SIGHUP: no restart.
    conf.write_text("redis-tls-ca-file %s\n" % certs("ca.crt"))
    os.kill(p.proc.pid, signal.SIGHUP)
    wait_for(lambda: get(p, "k").status_code == 200, timeout=10,
             what="recovery after SIGHUP")


def test_name_verified(certs, make_proxy):
    r = TlsRedis(certs).start()
    r.client().set("k", "v")
    # The certificate names 127.0.0.1 and localhost, not this.
    p = proxy_tls(make_proxy, r.url(), "--redis-tls-ca-file",
                  certs("ca.crt"), "--redis-tls-server-name",
                  "redis.example")
    assert get(p, "k").status_code == 502
    wait_for(lambda: "certificate verify failed" in p.log(),
             what="the TLS log line")
    p2 = proxy_tls(make_proxy, r.url(), "--redis-tls-ca-file",
                   certs("ca.crt"), "--redis-tls-server-name", "localhost")
    assert get(p2, "k").status_code == 200


def test_mutual_tls(certs, make_proxy):
    r = TlsRedis(certs, extra="tls-auth-clients yes").start()
    r.client().set("k", "mutual")
    p = proxy_tls(make_proxy, r.url(), "--redis-tls-ca-file",
                  certs("ca.crt"))
    assert get(p, "k").status_code == 502
    p2 = proxy_tls(make_proxy, r.url(), "--redis-tls-ca-file",
                   certs("ca.crt"), "--redis-tls-cert-file",
                   certs("client.crt"), "--redis-tls-key-file",
                   certs("client.key"))
    assert get(p2, "k").content == b"mutual"


def test_auth_and_db_over_tls(certs, make_proxy):
    r = TlsRedis(certs, extra="requirepass s3cret").start()
    c = r.client(password="s3cret")
    c.set("k", "zero")
    c.execute_command("SELECT", "3")
    c.set("k", "three")
    p = proxy_tls(make_proxy, r.url(auth=":s3cret@", db="/3"),
                  "--redis-tls-ca-file", certs("ca.crt"))
    assert get(p, "k").content == b"three"
    assert "s3cret" not in p.log()
    # Explicit flags override the URL's parts.
    p2 = proxy_tls(make_proxy, r.url(auth=":wrong@", db="/3"),
                   "--redis-tls-ca-file", certs("ca.crt"),
                   "--redis-password", "s3cret", "--redis-db", "0")
    assert get(p2, "k").content == b"zero"


def test_redis_restarted_on_the_tls_port(certs, make_proxy):
    r = TlsRedis(certs).start()
    r.client().set("k", "before")
    p = proxy_tls(make_proxy, r.url(), "--redis-tls-ca-file",
                  certs("ca.crt"), "--ttl", "1ms")
    assert get(p, "k").content == b"before"
    r.stop()
    # Another key: "k" may still be a hit within the cache clock's tick.
    assert get(p, "absent").status_code == 502
    r2 = TlsRedis(certs, port=r.port).start()
    r2.client().set("k", "after")
    wait_for(lambda: get(p, "k").content == b"after", timeout=5,
             what="recovery on the restarted TLS Redis")


def test_check_config_masks_the_url_password():
    from conftest import run_cli
    out = run_cli("--redis", "rediss://app:hunter2@10.0.0.5:6380/2",
                  "--check-config")
    assert out.returncode == 0, out.stderr
    assert "hunter2" not in out.stdout + out.stderr
    assert "redis rediss://10.0.0.5:6380" in out.stdout
    assert "redis-user app" in out.stdout
    assert "redis-password ********" in out.stdout
    assert "redis-db 2" in out.stdout
    bad = run_cli("--redis", "redis://app:hunter2@10.0.0.5:0/2")
    assert bad.returncode == 2
    assert "hunter2" not in bad.stderr
    assert "redis://app:****@10.0.0.5:0/2" in bad.stderr


def test_unreadable_ca_file_stops_the_start_with_the_reason(make_proxy):
    # A bad value: one line naming the option, exit status 2, before any
    # worker is forked (and so before any port is opened).
    p = make_proxy(None, "--redis", "rediss://127.0.0.1:1",
                   "--redis-tls-ca-file", "/nonexistent/ca.pem",
                   "--workers", "1", wait=False)
    p.proc.wait(10)
    assert p.proc.returncode == 2, p.log()
    p.killed = True
    lines = p.log().splitlines()
    assert len(lines) == 1, p.log()
    assert lines[0].startswith(
        "redis-cache-proxy: --redis-tls-ca-file: cannot load the CA file "
        "'/nonexistent/ca.pem': "), p.log()
    assert "No such file or directory" in lines[0]


def test_tls_to_a_server_that_does_not_speak_it_names_the_handshake(
        certs, make_proxy):
    # A plain Redis on a rediss:// address often just waits for a line
    # end in the ClientHello: the stall's log line must say it was the
    # TLS handshake that got no answer, not "connecting".
    import socket
    import threading
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    held = []

    def accept():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            held.append(c)      # reads nothing, answers nothing
    threading.Thread(target=accept, daemon=True).start()
    try:
        p = proxy_tls(make_proxy,
                      "rediss://127.0.0.1:%d" % ls.getsockname()[1],
                      "--redis-tls-ca-file", certs("ca.crt"),
                      "--redis-timeout", "300ms", "--workers", "1")
        assert get(p, "k").status_code in (502, 504)
        wait_for(lambda: "during the TLS handshake" in p.log(),
                 what="the handshake named in the log")
        assert "while connecting" not in p.log()
    finally:
        ls.close()
        for c in held:
            c.close()
