"""The admin port: health, metrics, flush and delete, as an operator uses
them."""
import shutil
import subprocess

import pytest
import requests

from conftest import Redis, wait_for


def metric(text, name):
    """Value of one series line, e.g. 'rcp_cache_hits_total' or
    'rcp_requests_total{protocol="http",code="200"}'."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no series " + name)


def scrape(p):
    r = requests.get(p.admin_url("/metrics"), timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return r.text


def test_counters_move(redis_server, proxy):
    redis_server.client().set("c", "v")
    before = scrape(proxy)
    assert requests.get(proxy.url("/c"), timeout=5).headers[
        "X-Cache"] == "MISS"
    assert requests.get(proxy.url("/c"), timeout=5).headers[
        "X-Cache"] == "HIT"
    after = scrape(proxy)
    for name in ("rcp_cache_hits_total", "rcp_cache_misses_total"):
        assert metric(after, name) - metric(before, name) == 1, name
    ok = 'rcp_requests_total{protocol="http",code="200"}'
    assert metric(after, ok) - metric(before, ok) == 2
    assert metric(after, "rcp_cache_entries") == 1
    assert metric(after, "rcp_workers") == 2
    assert metric(after, "rcp_cache_capacity_entries") == 10000
    assert metric(after, "rcp_backend_request_duration_seconds_count") >= 1


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian: prometheus) not installed")
def test_promtool_accepts_live_metrics(redis_server, proxy):
    redis_server.client().set("x", "v")
    requests.get(proxy.url("/x"), timeout=5)
    requests.get(proxy.url("/absent"), timeout=5)
    out = subprocess.run(["promtool", "check", "metrics"],
                         input=scrape(proxy).encode(), capture_output=True,
                         timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout + out.stderr == b""


def test_flush_and_delete(redis_server, proxy):
    c = redis_server.client()
    for k in ("a", "b", "a/b\x00"):
        c.set(k, "v")
    for k in ("a", "b", "a%2Fb%00"):
        requests.get(proxy.url("/" + k), timeout=5)
        assert requests.get(proxy.url("/" + k), timeout=5).headers[
            "X-Cache"] == "HIT"
    r = requests.delete(proxy.admin_url("/cache/a%2Fb%00"), timeout=5)
    assert r.status_code == 204
    assert requests.get(proxy.url("/a%2Fb%00"), timeout=5).headers[
        "X-Cache"] == "MISS"
    assert requests.get(proxy.url("/a"), timeout=5).headers[
        "X-Cache"] == "HIT"
    r = requests.delete(proxy.admin_url("/cache/a"), timeout=5)
    assert r.status_code == 204
    assert requests.get(proxy.url("/a"), timeout=5).headers[
        "X-Cache"] == "MISS"
    assert requests.get(proxy.url("/b"), timeout=5).headers[
        "X-Cache"] == "HIT"
    r = requests.post(proxy.admin_url("/flush"), timeout=5)
    assert r.status_code == 204
    assert requests.get(proxy.url("/b"), timeout=5).headers[
        "X-Cache"] == "MISS"


def test_health_follows_redis(make_proxy):
    r = Redis().start()
    try:
        p = make_proxy(r, "--redis-timeout", "300ms")
        # Polled: /health answers after a PING of its own, with the
        # 300 ms timeout, which a loaded machine (at a load of 24) did
        # not meet at once.
        h = wait_for(lambda: (lambda h: h if h.status_code == 200 and
                              h.json()["workers"] == 2 else None)(
            requests.get(p.admin_url("/health"), timeout=5)),
            what="/health 200 with both workers")
        body = h.json()
        assert body["redis"] == "up" and body["workers"] == 2
    finally:
        r.stop()
    h = requests.get(p.admin_url("/health"), timeout=5)
    assert h.status_code == 503 and h.json()["redis"] == "down"
    r2 = Redis(port=r.port).start()
    try:
        wait_for(lambda: requests.get(p.admin_url("/health"), timeout=5)
                 .status_code == 200, timeout=5, what="health back")
    finally:
        r2.stop()


def test_admin_routes(proxy):
    assert requests.get(proxy.admin_url("/nope"), timeout=5).status_code \
        == 404
    r = requests.get(proxy.admin_url("/flush"), timeout=5)
    assert r.status_code == 405 and "POST" in r.headers["Allow"]
    assert requests.post(proxy.admin_url("/metrics"), timeout=5) \
        .status_code == 405


def test_metrics_on_data_port_is_a_key(redis_server, proxy):
    r = requests.get(proxy.url("/metrics"), timeout=5)
    assert r.status_code == 404         # no key called "metrics"
    redis_server.client().set("metrics", "just a key")
    assert requests.get(proxy.url("/metrics"), timeout=5).content == \
        b"just a key"


def test_admin_off(redis_server, make_proxy):
    p = make_proxy(redis_server, "--admin-listen", "off")
    with pytest.raises(requests.ConnectionError):
        requests.get(p.admin_url("/health"), timeout=2)


def test_restarts_counted(redis_server, proxy):
    import os
    import signal
    from test_process import worker_pids
    pids = wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
        worker_pids(proxy)), what="workers")
    os.kill(min(pids), signal.SIGKILL)
    wait_for(lambda: metric(scrape(proxy), "rcp_worker_restarts_total")
             == 1, what="restart counted")
    wait_for(lambda: metric(scrape(proxy), "rcp_workers") == 2,
             what="back to two")
