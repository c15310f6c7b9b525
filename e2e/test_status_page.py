"""The admin port's status page (GET /), read the way people read it: a
headless Chromium (Debian's chromium) loads it and the test reads the
numbers out of the rendered DOM, then compares them with /metrics.  The
page must load nothing else and run no script."""
import html.parser
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import requests

from conftest import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium (Debian: chromium) missing")


class Page(html.parser.HTMLParser):
    """Text and attributes of every element with an id, and the items of
    the errors list."""

    def __init__(self):
        super().__init__()
        self.ids = {}
        self.attrs = {}
        self.stack = []
        self.items = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag in ("meta", "link", "br", "img", "input"):
            return
        self.stack.append((tag, a.get("id")))
        if a.get("id"):
            self.ids[a["id"]] = ""
            self.attrs[a["id"]] = a
        if tag == "li":
            self.items.append("")

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break

    def handle_data(self, data):
        for _, i in self.stack:
            if i:
                self.ids[i] += data
        if any(t == "li" for t, _ in self.stack):
            self.items[-1] += data


def chromium_dom(url):
    """The DOM after Chromium loaded url, as HTML text."""
    profile = tempfile.mkdtemp(prefix="rcp-chromium-")
    argv = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions",
            "--disable-default-apps", "--user-data-dir=" + profile,
            "--dump-dom", url]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")      # Chromium refuses root otherwise
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=90)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    dom = out.stdout.decode()
    assert "</html>" in dom, dom[-500:]
    return dom


def read_page(url):
    p = Page()
    p.feed(chromium_dom(url))
    return p


def metrics(proxy):
    text = requests.get(proxy.admin_url("/metrics"), timeout=5).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def number(s):
    return int(s.strip())


def test_chromium_reads_the_numbers(redis_server, make_proxy):
    p = make_proxy(redis_server, "--workers", "2", "--capacity", "500",
                   "--max-clients", "300")
    c = redis_server.client()
    c.set("a", "x" * 10)
    c.set("b", "y" * 20)
    for key in ("a", "a", "a", "b", "nope"):
        requests.get(p.url("/" + key), timeout=5)
    page = read_page(p.admin_url("/"))
    m = metrics(p)

    assert page.scripts == 0
    assert page.ids["version"].strip() == re.search(
        r'rcp_build_info\{version="([^"]+)"\}', "\n".join(m)).group(1)
    assert number(page.ids["workers"]) == m["rcp_workers"] == 2
    assert page.ids["redis"].strip() == "up"
    assert int(page.attrs["uptime"]["data-seconds"]) >= 0
    hits = int(page.attrs["hit-ratio"]["data-hits"])
    misses = int(page.attrs["hit-ratio"]["data-misses"])
    assert (hits, misses) == (m["rcp_cache_hits_total"],
                              m["rcp_cache_misses_total"]) == (2, 3)
    assert page.ids["hit-ratio"].strip() == "40.0%"
    assert number(page.ids["entries"]) == m["rcp_cache_entries"] == 2
    assert number(page.ids["capacity-entries"]) == 500
    assert number(page.ids["bytes"]) == m["rcp_cache_bytes"]
    assert number(page.ids["capacity-bytes"]) == \
        m["rcp_cache_capacity_bytes"]
    assert number(page.ids["max-clients"]) == m["rcp_max_clients"] == 300
    assert page.ids["cache"].strip() == "ok"
    assert number(page.ids["errors-unreachable"]) == 0


def test_redis_down_shows_down_and_the_error(redis_server, make_proxy):
    p = make_proxy(redis_server, "--workers", "1")
    redis_server.stop()
    wait_for(lambda: requests.get(p.url("/k"), timeout=5).status_code
             == 502, what="502 once Redis is gone")
    # The worker's warning ("connection lost" or "unreachable") reaches
    # the supervisor's page through the shared ring.
    wait_for(lambda: re.search(r"<li>[^<]*warn worker \d+\[\d+\]: redis ",
                               requests.get(p.admin_url("/"),
                                            timeout=5).text),
             what="the worker's warning on the page")
    page = read_page(p.admin_url("/"))
    assert page.ids["redis"].strip() == "down"
    assert number(page.ids["errors-unreachable"]) >= 1
    assert any(re.search(r"warn worker \d+\[\d+\]: redis 127\.0\.0\.1:%d: "
                         % redis_server.port, item)
               for item in page.items), page.items


def test_curl_reads_it_as_text(redis_server, proxy):
    r = requests.get(proxy.admin_url("/"), timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    text = re.sub(r"<[^>]+>", "", r.text.split("</style>", 1)[1])
    assert re.search(r"^Workers2 of 2 running, 0 restarted$", text, re.M)
    assert re.search(r"^Redisup 127\.0\.0\.1:\d+$", text, re.M)
    assert "http://" not in r.text and "https://" not in r.text
