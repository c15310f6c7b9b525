"""End-to-end tests of the docker-compose stack: one redis, two proxies.

Run by the compose file's e2e service (see docker-compose.yml), which sets
PROXY1_URL, PROXY2_URL, PROXY1_ADMIN_URL, PROXY2_ADMIN_URL, REDIS_HOST and
REDIS_PORT (PROXY1_RESP optionally).  Without them (for example when `make
check` collects the whole e2e/ tree) the module is skipped.

Every test uses keys of its own, so the tests may run in any order and
repeatedly against the same stack.  Nothing sleeps for a fixed time: the
stack is polled until ready, with a deadline.
"""
import os
import time
import uuid

import pytest

REQUIRED = ("PROXY1_URL", "PROXY2_URL", "PROXY1_ADMIN_URL",
            "PROXY2_ADMIN_URL", "REDIS_HOST")
if not all(os.environ.get(name) for name in REQUIRED):
    pytest.skip("not inside the compose stack (PROXY1_URL etc. unset)",
                allow_module_level=True)

import redis     # noqa: E402  (only needed once the skip has not fired)
import requests  # noqa: E402

PROXY1 = os.environ["PROXY1_URL"].rstrip("/")
PROXY2 = os.environ["PROXY2_URL"].rstrip("/")
ADMIN1 = os.environ["PROXY1_ADMIN_URL"].rstrip("/")
ADMIN2 = os.environ["PROXY2_ADMIN_URL"].rstrip("/")
REDIS_HOST = os.environ["REDIS_HOST"]
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
PROXY1_RESP = os.environ.get("PROXY1_RESP", "")
TIMEOUT = 5


def wait_for(cond, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except (requests.RequestException, redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


@pytest.fixture(scope="module")
def backend():
    r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT,
                    socket_timeout=TIMEOUT)
    wait_for(r.ping, what="redis at %s:%d" % (REDIS_HOST, REDIS_PORT))
    for admin in (ADMIN1, ADMIN2):
        wait_for(lambda: requests.get(admin + "/health",
                                      timeout=TIMEOUT).status_code == 200,
                 what=admin + "/health")
    return r


def fresh_key(tag):
    # A '/' and a space inside the key exercise the percent-decoding.
    return "compose/%s %s" % (tag, uuid.uuid4().hex)


def key_path(key):
    return "/" + requests.utils.quote(key, safe="")


def get(base, key):
    return requests.get(base + key_path(key), timeout=TIMEOUT)


@pytest.mark.parametrize("admin", [ADMIN1, ADMIN2],
                         ids=["proxy1", "proxy2"])
def test_health_is_200_on_both_admin_ports(backend, admin):
    resp = requests.get(admin + "/health", timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")


def test_miss_then_hit_on_proxy1(backend):
    key = fresh_key("hit")
    backend.set(key, b"v1")
    first = get(PROXY1, key)
    assert first.status_code == 200
    assert first.content == b"v1"
    assert first.headers["X-Cache"] == "MISS"
    second = get(PROXY1, key)
    assert second.status_code == 200
    assert second.content == b"v1"
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["Content-Type"] == "application/octet-stream"
    assert int(second.headers["Age"]) >= 0


def test_proxy2_serves_the_same_redis(backend):
    key = fresh_key("shared")
    backend.set(key, b"shared-value")
    resp = get(PROXY2, key)
    assert resp.status_code == 200
    assert resp.content == b"shared-value"


def test_each_proxy_has_its_own_cache_over_one_redis(backend):
    """proxy1 caches the old value; proxy2, asked first after the change,
    reads the new one from the same redis; dropping the key from proxy1's
    cache through its admin port makes it read the new value too."""
    key = fresh_key("own-cache")
    backend.set(key, b"old")
    assert get(PROXY1, key).content == b"old"
    backend.set(key, b"new")
    cached = get(PROXY1, key)
    assert cached.headers["X-Cache"] == "HIT"
    assert cached.content == b"old"
    other = get(PROXY2, key)
    assert other.headers["X-Cache"] == "MISS"
    assert other.content == b"new"
    drop = requests.delete(ADMIN1 + "/cache" + key_path(key),
                           timeout=TIMEOUT)
    assert drop.status_code == 204
    again = get(PROXY1, key)
    assert again.headers["X-Cache"] == "MISS"
    assert again.content == b"new"


@pytest.mark.parametrize("base", [PROXY1, PROXY2], ids=["proxy1", "proxy2"])
def test_absent_key_is_404(backend, base):
    assert get(base, fresh_key("absent")).status_code == 404


def test_resp_port_answers_get(backend):
    if not PROXY1_RESP:
        pytest.skip("PROXY1_RESP unset: the RESP port is not enabled")
    host, _, port = PROXY1_RESP.rpartition(":")
    key = fresh_key("resp")
    backend.set(key, b"over-resp")
    client = redis.Redis(host=host, port=int(port), socket_timeout=TIMEOUT)
    assert client.ping()
    assert client.get(key) == b"over-resp"
    assert client.get(fresh_key("resp-absent")) is None


def test_metrics_count_the_stack_traffic(backend):
    resp = requests.get(ADMIN1 + "/metrics", timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    hits = [line for line in resp.text.splitlines()
            if line.startswith("rcp_cache_hits_total")]
    assert hits, resp.text
    # test_miss_then_hit_on_proxy1 may run after this test; a fresh hit
    # here makes the count positive whatever the order.
    key = fresh_key("metrics")
    backend.set(key, b"m")
    get(PROXY1, key)
    assert get(PROXY1, key).headers["X-Cache"] == "HIT"
    after = requests.get(ADMIN1 + "/metrics", timeout=TIMEOUT).text
    value = [line for line in after.splitlines()
             if line.startswith("rcp_cache_hits_total")][0].split()[-1]
    assert float(value) >= 1
