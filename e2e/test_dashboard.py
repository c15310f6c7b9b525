"""The Grafana dashboard and the Prometheus rules ask only for what a
running proxy exports: every metric name their queries use is scraped
from a live proxy's /metrics (and every label they group by is on some
series), and the dashboard is importable as it stands (a datasource
variable, no fixed datasource, unique panel ids)."""
import json
import os
import re

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
DASHBOARD = os.path.join(HERE, "..", "etc", "grafana", "redis-cache-proxy.json")
RULES = os.path.join(HERE, "..", "etc", "prometheus",
                     "redis-cache-proxy-rules.yml")

METRIC_RE = re.compile(r"\b((?:rcp|process)_[a-z0-9_]+)")
BY_RE = re.compile(r"\bby \(([^)]*)\)")
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


def scrape(p):
    r = requests.get(p.admin_url("/metrics"), timeout=5)
    assert r.status_code == 200
    names, labels = set(), set()
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        series = line.rsplit(" ", 1)[0]
        name, _, rest = series.partition("{")
        names.add(name)
        labels.update(m.group(1) for m in
                      re.finditer(r'([a-z_]+)="', rest))
    return names, labels


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_exprs(d):
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in d["templating"]["list"]
              if v["type"] == "query"]
    return exprs


def test_dashboard_is_importable():
    d = dashboard()
    assert d["id"] is None              # Grafana assigns one on import
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 30
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in d["panels"]:
        assert p["datasource"] == {"type": "prometheus",
                                   "uid": "${datasource}"}, p["title"]
        assert set(p["gridPos"]) == {"x", "y", "w", "h"}, p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert "$instance" in t["expr"], (p["title"], t["expr"])
    # No datasource is named anywhere but through the variable.
    assert "__inputs" not in d
    assert not re.search(r'"uid": "(?!\$\{datasource\})[^"]*"',
                         json.dumps([p["datasource"] for p in d["panels"]]))


def test_dashboard_covers_the_operators_questions():
    exprs = "\n".join(dashboard_exprs(dashboard()))
    for name in ("rcp_requests_total", "rcp_cache_hits_total",
                 "rcp_cache_misses_total",
                 "rcp_backend_request_duration_seconds_bucket",
                 "rcp_cache_evictions_total", "rcp_cache_expirations_total",
                 "rcp_cache_entries", "rcp_cache_capacity_entries",
                 "rcp_cache_bytes", "rcp_cache_capacity_bytes",
                 "rcp_backend_errors_total", "rcp_workers",
                 "rcp_worker_restarts_total", "rcp_connections",
                 "rcp_max_clients"):
        assert re.search(r"\b%s\b" % name, exprs), name
    assert "histogram_quantile(0.99" in exprs
    assert "by (protocol, code)" in exprs and "by (kind)" in exprs


def check_against_scrape(text, names, labels, what):
    used = set(METRIC_RE.findall(text))
    assert used, "no metric found in " + what
    missing = sorted(used - names)
    assert not missing, "%s queries metrics the proxy does not export: %s" \
        % (what, missing)
    grouped = set()
    for m in BY_RE.finditer(text):
        grouped.update(x.strip() for x in m.group(1).split(","))
    unknown = sorted(grouped - labels - TARGET_LABELS)
    assert not unknown, "%s groups by labels no series has: %s" \
        % (what, unknown)


def test_every_queried_metric_is_exported(redis_server, proxy):
    redis_server.client().set("k", "v")
    assert requests.get(proxy.url("/k"), timeout=5).status_code == 200
    assert requests.get(proxy.url("/k"), timeout=5).status_code == 200
    names, labels = scrape(proxy)
    check_against_scrape("\n".join(dashboard_exprs(dashboard())), names,
                         labels, "the dashboard")
    with open(RULES) as f:
        check_against_scrape(f.read(), names, labels, "the alert rules")
