"""HTTP caching the way HTTP caches do it: ETag and If-None-Match (304),
Cache-Control: max-age, Cache-Status (RFC 9211) beside X-Cache, and the
opt-in windows --stale-while-revalidate, --stale-if-error,
--negative-ttl and --early-refresh.  Requests that reach Redis are
counted with INFO commandstats."""
import re
import socket
import time

import pytest
import requests

from conftest import free_port, http_raw, parse_responses, wait_for

CS = "redis-cache-proxy"


def gets(redis):
    """GETs Redis has answered since the last CONFIG RESETSTAT."""
    stats = redis.client().info("commandstats")
    return stats.get("cmdstat_get", {}).get("calls", 0)


def reset(redis):
    redis.client().config_resetstat()


def req(p, key, headers=None, method="GET"):
    return requests.request(method, p.url("/" + key), headers=headers or {},
                            timeout=5)


def max_age(r):
    m = re.fullmatch(r"max-age=(\d+)", r.headers["Cache-Control"])
    assert m, r.headers.get("Cache-Control")
    return int(m.group(1))


def after(seconds):
    """A deadline condition for wait_for: the clock, not a sleep."""
    end = time.monotonic() + seconds
    return lambda: time.monotonic() >= end


# ---- validators --------------------------------------------------------


def test_etag_same_across_proxies_and_new_after_change(redis_server,
                                                       make_proxy):
    redis_server.client().set("e", b"one")
    a = make_proxy(redis_server, "--workers", "2")
    b = make_proxy(redis_server, "--workers", "1")
    ra, rb = req(a, "e"), req(b, "e")
    assert ra.headers["X-Cache"] == rb.headers["X-Cache"] == "MISS"
    assert re.fullmatch(r'"[0-9a-f]{16}"', ra.headers["ETag"])
    assert ra.headers["ETag"] == rb.headers["ETag"]
    # A hit carries the ETag stored with the entry: the same.
    hit = req(a, "e")
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["ETag"] == ra.headers["ETag"]
    assert req(a, "e", method="HEAD").headers["ETag"] == ra.headers["ETag"]
    redis_server.client().set("e", b"two")
    assert requests.delete(a.admin_url("/cache/e"), timeout=5).status_code \
        in (200, 204)
    changed = req(a, "e")
    assert changed.content == b"two"
    assert changed.headers["ETag"] != ra.headers["ETag"]


@pytest.mark.parametrize("inm,want", [
    ("{tag}", 304),
    ('"nope", {tag}', 304),
    ("W/{tag}", 304),
    ("*", 304),
    ('"nope"', 200),
    ('W/"nope", "other"', 200),
    ("not-a-tag", 200),
])
def test_if_none_match_on_hit_and_miss(redis_server, make_proxy, inm, want):
    redis_server.client().set("c", b"value")
    a = make_proxy(redis_server, "--workers", "1")
    b = make_proxy(redis_server, "--workers", "1")
    tag = req(a, "c").headers["ETag"]
    h = {"If-None-Match": inm.format(tag=tag)}
    hit = req(a, "c", h)                    # a hit on a
    miss = req(b, "c", h)                   # a miss on b
    assert hit.headers["X-Cache"] == "HIT"
    assert miss.headers["X-Cache"] == "MISS"
    for r in (hit, miss):
        assert r.status_code == want
        assert r.headers["ETag"] == tag
        assert "max-age=" in r.headers["Cache-Control"]
        if want == 304:
            assert r.content == b""
            assert "Content-Length" not in r.headers
        else:
            assert r.content == b"value"
    if want == 304:
        m = requests.get(a.admin_url("/metrics"), timeout=5).text
        assert re.search(r"^rcp_not_modified_total [1-9]", m, re.M), m


def test_304_keeps_the_connection_in_step(redis_server, proxy):
    """A 304 has no body: pipelined answers after it still parse."""
    redis_server.client().set("p", b"12345")
    tag = req(proxy, "p").headers["ETag"]
    raw = (b"GET /p HTTP/1.1\r\nHost: x\r\nIf-None-Match: " +
           tag.encode() + b"\r\n\r\n"
           b"HEAD /p HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n"
           b"GET /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resps = parse_responses(http_raw(proxy.port, raw))
    assert [(s, b) for s, _, b in resps] == [(304, b""), (304, b""),
                                             (200, b"12345")]


# ---- freshness and Cache-Status -----------------------------------------


def test_max_age_counts_down(redis_server, make_proxy):
    redis_server.client().set("m", b"v")
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "3s")
    first = req(p, "m")
    assert first.headers["X-Cache"] == "MISS"
    assert max_age(first) == 3
    wait_for(lambda: max_age(req(p, "m")) == 1, timeout=5,
             what="max-age down to 1")
    r = req(p, "m")
    assert r.headers["X-Cache"] == "HIT"
    assert max_age(r) <= 1
    assert r.headers["Cache-Status"] == "%s; hit; ttl=%d" % (CS, max_age(r))


def test_cache_status_forms(redis_server, make_proxy):
    c = redis_server.client()
    c.set("s", b"v")
    c.lpush("l", "x")
    p = make_proxy(redis_server, "--workers", "1", "--max-value-size", "4")
    c.set("big", b"0123456789")
    assert req(p, "s").headers["Cache-Status"] == CS + "; fwd=miss; stored"
    assert req(p, "s").headers["Cache-Status"].startswith(CS + "; hit; ttl=")
    assert req(p, "big").headers["Cache-Status"] == CS + "; fwd=miss"
    r = req(p, "absent")
    assert r.status_code == 404
    assert r.headers["Cache-Status"] == CS + "; fwd=miss; fwd-status=404"
    r = req(p, "l")
    assert r.status_code == 409
    assert r.headers["Cache-Status"] == CS + "; fwd=miss; fwd-status=409"
    r = requests.post(p.url("/s"), timeout=5)
    assert r.status_code == 405
    assert r.headers["Cache-Status"] == CS + "; fwd=bypass"
    redis_server.stop()
    r = req(p, "gone")
    assert r.status_code == 502
    assert r.headers["Cache-Status"] == CS + "; fwd=miss; fwd-status=502"


def test_cache_status_stored_is_what_the_cache_did(redis_server,
                                                   make_proxy):
    """"stored" is the store's own answer, not a guess from the value's
    size: a value within --max-value-size that does not fit the cache
    with its key (--max-memory 1m, a 1 MiB value) is not stored, and
    says so; the next GET is a miss again."""
    p = make_proxy(redis_server, "--workers", "1", "--max-memory", "1m")
    redis_server.client().set("whole", b"x" * (1 << 20))
    redis_server.client().set("small", b"v")
    for _ in range(2):
        r = req(p, "whole")
        assert r.status_code == 200 and len(r.content) == 1 << 20
        assert r.headers["Cache-Status"] == CS + "; fwd=miss", r.headers
        assert r.headers["X-Cache"] == "MISS"
    assert req(p, "small").headers["Cache-Status"] == \
        CS + "; fwd=miss; stored"


# ---- serving stale ------------------------------------------------------


def test_stale_while_revalidate_one_get(redis_server, make_proxy):
    c = redis_server.client()
    c.set("w", b"old")
    # A 1 s TTL, not 300 ms: the refreshed entry must still be fresh
    # for the HIT and the GET count read after the refresh is seen, and
    # a loaded machine stalled the test past 300 ms there (a second
    # refresh, a second GET).
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "1s",
                   "--stale-while-revalidate", "30s")
    assert req(p, "w").headers["X-Cache"] == "MISS"
    c.set("w", b"new")
    wait_for(after(1.1), what="the entry to expire")
    reset(redis_server)
    # Twenty requests in one write: all answered at once from the stale
    # copy, one background GET for them all.
    raw = b"GET /w HTTP/1.1\r\nHost: x\r\n\r\n" * 19 + \
        b"GET /w HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resps = parse_responses(http_raw(p.port, raw))
    assert len(resps) == 20
    assert all(s == 200 and b == b"old" for s, _, b in resps)
    assert resps[0][1]["x-cache"] == "STALE"
    assert {h["x-cache"] for _, h, _ in resps[1:]} <= {"UPDATING", "STALE"}
    assert re.fullmatch(CS + r"; hit; stale; ttl=-\d+",
                        resps[0][1]["cache-status"])
    assert resps[0][1]["cache-control"] == "max-age=0"
    # The refresh lands: a fresh hit with the new value.
    wait_for(lambda: req(p, "w").content == b"new", what="the refresh")
    r = req(p, "w")
    assert r.headers["X-Cache"] == "HIT"
    assert gets(redis_server) == 1
    m = requests.get(p.admin_url("/metrics"), timeout=5).text
    # At least the twenty (the wait above may have seen more), and one
    # refresh for them all.
    n = re.search(r'^rcp_stale_answers_total\{reason="revalidate"\} (\d+)',
                  m, re.M)
    assert n and int(n.group(1)) >= 20, m
    assert 'rcp_refreshes_total{reason="stale"} 1\n' in m


def test_stale_refresh_of_a_deleted_key_drops_it(redis_server, make_proxy):
    c = redis_server.client()
    c.set("d", b"old")
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "300ms",
                   "--stale-while-revalidate", "30s")
    req(p, "d")
    c.delete("d")
    wait_for(after(0.4), what="the entry to expire")
    assert req(p, "d").headers["X-Cache"] == "STALE"
    wait_for(lambda: req(p, "d").status_code == 404, what="the key dropped")


def test_invalidated_entry_is_never_stale(redis_server, make_proxy):
    c = redis_server.client()
    c.set("i", b"old")
    c.set("f", b"old")
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "300ms",
                   "--stale-while-revalidate", "30s",
                   "--stale-if-error", "30s")
    req(p, "i")
    req(p, "f")
    assert requests.delete(p.admin_url("/cache/i"), timeout=5).ok
    assert requests.post(p.admin_url("/flush"), timeout=5).ok
    wait_for(after(0.4), what="the TTL to pass")
    redis_server.stop()
    assert req(p, "i").status_code == 502
    assert req(p, "f").status_code == 502


def test_stale_if_error_then_502_after_the_window(redis_server, make_proxy):
    redis_server.client().set("e", b"kept")
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "300ms",
                   "--stale-if-error", "1500ms", "--redis-timeout", "300ms")
    tag = req(p, "e").headers["ETag"]
    t0 = time.monotonic()
    redis_server.stop()
    wait_for(after(0.4), what="the entry to expire")
    r = req(p, "e")
    assert r.status_code == 200, r.text
    assert r.content == b"kept"
    assert r.headers["X-Cache"] == "STALE"
    assert r.headers["ETag"] == tag
    assert re.fullmatch(CS + r"; hit; stale; ttl=-\d+; fwd=miss; "
                        r"fwd-status=502", r.headers["Cache-Status"])
    m = requests.get(p.admin_url("/metrics"), timeout=5).text
    assert 'rcp_stale_answers_total{reason="error"} 1' in m
    # Past TTL + window: the error itself.
    wait_for(lambda: time.monotonic() - t0 > 1.9, what="the window")
    assert req(p, "e").status_code == 502


def test_stale_if_error_off_by_default(redis_server, make_proxy):
    redis_server.client().set("o", b"v")
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "300ms")
    req(p, "o")
    redis_server.stop()
    wait_for(after(0.4), what="the entry to expire")
    assert req(p, "o").status_code == 502


# ---- negative caching ---------------------------------------------------


def test_negative_ttl_one_get_per_window(redis_server, make_proxy):
    # 3 s: the twenty hits below must all come inside the first window,
    # and twenty new connections took most of a second on a loaded
    # machine.
    p = make_proxy(redis_server, "--workers", "1", "--negative-ttl", "3s")
    reset(redis_server)
    first = req(p, "nope")
    assert first.status_code == 404
    assert first.headers["Cache-Status"] == \
        CS + "; fwd=miss; fwd-status=404; stored"
    for _ in range(20):
        r = req(p, "nope")
        assert r.status_code == 404
        assert r.headers["X-Cache"] == "HIT"
        assert r.headers["Cache-Status"].startswith(CS + "; hit; ttl=")
    assert gets(redis_server) == 1
    m = requests.get(p.admin_url("/metrics"), timeout=5).text
    assert "rcp_negative_hits_total 20" in m
    # A new window asks Redis again, once.
    wait_for(lambda: req(p, "nope").headers.get("X-Cache") != "HIT",
             timeout=10, what="the negative entry to expire")
    assert gets(redis_server) == 2
    # Purge drops it: the value set meanwhile shows at once.
    redis_server.client().set("nope", b"here")
    assert requests.delete(p.admin_url("/cache/nope"), timeout=5).ok
    assert req(p, "nope").content == b"here"


def test_resp_port_negative_and_stale(redis_server, make_proxy):
    import redis as redis_py
    port = free_port()
    p = make_proxy(redis_server, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % port, "--negative-ttl", "10s",
                   "--ttl", "300ms", "--stale-while-revalidate", "30s")
    c = redis_py.Redis(host="127.0.0.1", port=port)
    redis_server.client().set("rk", b"old")
    reset(redis_server)
    assert c.get("absent") is None
    assert c.get("absent") is None
    assert c.mget("absent", "rk") == [None, b"old"]
    assert gets(redis_server) == 2          # absent once, rk once
    redis_server.client().set("rk", b"new")
    wait_for(after(0.4), what="the entry to expire")
    assert c.get("rk") == b"old"            # stale at once
    wait_for(lambda: c.get("rk") == b"new", what="the refresh")


def test_resp_stale_if_error(redis_server, make_proxy):
    import redis as redis_py
    port = free_port()
    p = make_proxy(redis_server, "--workers", "1", "--resp-listen",
                   "127.0.0.1:%d" % port, "--ttl", "300ms",
                   "--stale-if-error", "30s", "--redis-timeout", "300ms")
    c = redis_py.Redis(host="127.0.0.1", port=port)
    redis_server.client().set("rs", b"kept")
    assert c.get("rs") == b"kept"
    redis_server.stop()
    wait_for(after(0.4), what="the entry to expire")
    assert c.get("rs") == b"kept"           # stale, not an error
    with pytest.raises(redis_py.exceptions.ResponseError):
        c.get("never-cached")


# ---- early refresh ------------------------------------------------------


def test_early_refresh_keeps_a_hot_key_warm(redis_server, make_proxy):
    redis_server.client().set("hot", b"v")
    p = make_proxy(redis_server, "--workers", "1", "--ttl", "1s",
                   "--early-refresh", "1000")
    s = requests.Session()
    url = p.url("/hot")
    assert s.get(url, timeout=5).headers["X-Cache"] == "MISS"
    reset(redis_server)
    t0 = time.monotonic()
    seen = {}
    while time.monotonic() - t0 < 5.5:
        r = s.get(url, timeout=5)
        assert r.status_code == 200
        seen[r.headers["X-Cache"]] = seen.get(r.headers["X-Cache"], 0) + 1
    m = requests.get(p.admin_url("/metrics"), timeout=5).text
    n = re.search(r'^rcp_refreshes_total\{reason="early"\} (\d+)', m, re.M)
    print("early refresh: %s, %s refreshes, %d GETs"
          % (seen, n and n.group(1), gets(redis_server)))
    # Five expiries passed under load: without early refresh each one
    # is a MISS.  XFetch refreshes ahead by a multiple of what the
    # entry's fetch took, so when that fetch was quick the window is
    # tens of ms, which a loaded machine can stall the client or the
    # worker for: a MISS can slip through now and then (every read was
    # a HIT once, and that failed under load), but most expiries must
    # have been refreshed ahead.
    assert seen.get("HIT", 0) > 0 and set(seen) <= {"HIT", "MISS"}, seen
    assert seen.get("MISS", 0) <= 2, seen
    assert gets(redis_server) >= 5
    assert n and int(n.group(1)) >= 3, m


def test_bad_flags_exit_2():
    from conftest import run_cli
    for args in (["--early-refresh", "x"], ["--early-refresh", "1001"],
                 ["--negative-ttl", "soon"], ["--stale-if-error", "-1s"]):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and args[0] in r.stderr


# ---- request directives ------------------------------------------------

def test_only_if_cached_is_504_on_a_miss_and_asks_redis_nothing(
        redis_server, make_proxy):
    """Cache-Control: only-if-cached (RFC 9111 5.2.1.7): a key the cache
    does not hold is 504 at once, and Redis is not asked (nor is the key
    stored: the next plain GET is a MISS); a cached key is answered from
    the cache as usual.  It was fetched from Redis like any miss."""
    p = make_proxy(redis_server, "--workers", "1")
    redis_server.client().set("oic", b"v")
    oic = {"Cache-Control": "max-age=0, only-if-cached"}
    reset(redis_server)
    for method in ("GET", "HEAD"):
        r = req(p, "oic", oic, method=method)
        assert r.status_code == 504, (method, r.status_code)
        assert r.headers["Cache-Status"] == CS
        assert "X-Cache" not in r.headers
    assert gets(redis_server) == 0
    r = req(p, "oic")
    assert r.status_code == 200 and r.headers["X-Cache"] == "MISS"
    r = req(p, "oic", oic)
    assert (r.status_code, r.content, r.headers["X-Cache"]) == \
        (200, b"v", "HIT")
    assert gets(redis_server) == 1


def test_if_match_is_412_when_it_names_another_etag(redis_server,
                                                    make_proxy):
    """If-Match (RFC 9110 13.1.1), as nginx evaluates it: a list that
    does not name the value's ETag, compared strongly, is 412 on a hit
    and on a miss (and wins over If-None-Match, 13.2.2); ours, or "*",
    is the 200; a 404 ignores it.  It was ignored: 200 whatever it
    named."""
    p = make_proxy(redis_server, "--workers", "1")
    redis_server.client().set("im", b"v")
    other = {"If-Match": '"0000000000000000"'}
    r = req(p, "im", other)                        # a miss
    assert r.status_code == 412, r.status_code
    assert r.headers["Cache-Status"] == CS + "; fwd=miss; stored"
    assert "Cache-Control" not in r.headers
    tag = req(p, "im").headers["ETag"]
    for method in ("GET", "HEAD"):                 # hits
        r = req(p, "im", other, method=method)
        assert r.status_code == 412 and r.headers["X-Cache"] == "HIT"
        assert req(p, "im", {"If-Match": "W/" + tag},
                   method=method).status_code == 412
        assert req(p, "im", {"If-Match": '"x", ' + tag},
                   method=method).status_code == 200
        assert req(p, "im", {"If-Match": "*"}, method=method) \
            .status_code == 200
    r = req(p, "im", {"If-Match": '"x"', "If-None-Match": tag})
    assert r.status_code == 412
    assert req(p, "absent", other).status_code == 404
