"""Logs: the error log's line format and level, and the access log."""
import os
import re
import signal
import socket

import pytest
import requests

from conftest import Proxy, children, free_port, wait_for

LINE = re.compile(r"^(\S+Z )?(error|warn|info|debug) "
                  r"(supervisor|worker \d+)\[\d+\]: ")


def test_log_lines_have_level_role_pid(redis_server, make_proxy):
    p = make_proxy(redis_server)
    requests.get(p.url("/k"), timeout=5)
    lines = [l for l in p.log().splitlines() if l]
    assert lines
    for l in lines:
        m = LINE.match(l)
        assert m, l
        assert m.group(1), "timestamp expected without JOURNAL_STREAM"


def worker_line(line):
    m = LINE.match(line)
    return m is not None and m.group(3).startswith("worker")


@pytest.mark.parametrize("stream,stamped", [(None, False), ("8:1234", True)],
                         ids=["stderr-is-the-journal", "inherited"])
def test_journal_stream_drops_timestamps(redis_server, stream, stamped):
    """Only when stderr is the stream JOURNAL_STREAM names (systemd.exec(5)
    says to compare them; None: its device and inode, as systemd sets
    it): one inherited by a process whose stderr went elsewhere keeps
    the timestamps, or its log file would have none."""
    p = Proxy(["--redis", redis_server.addr, "--workers", "1",
               "--log-level", "debug"])
    st = os.fstat(p.logfile.fileno())
    p.env["JOURNAL_STREAM"] = stream or "%d:%d" % (st.st_dev, st.st_ino)
    try:
        p.start()
        requests.get(p.url("/k"), timeout=5)
        wait_for(lambda: any(worker_line(l) for l in p.log().splitlines()),
                 what="a worker's line")
        for l in p.log().splitlines():
            m = LINE.match(l)
            assert m and (m.group(1) is not None) == stamped, l
    finally:
        assert p.stop() == 0


def test_log_level(redis_server, make_proxy):
    quiet = make_proxy(redis_server, "--log-level", "error")
    requests.get(quiet.url("/k"), timeout=5)
    loud = make_proxy(redis_server, "--log-level", "debug")
    requests.get(loud.url("/k"), timeout=5)
    wait_for(lambda: " debug " in loud.log(), what="debug lines")
    assert quiet.log().strip() == ""


ACCESS = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1 '
                    r'(http|resp) "([^"]*)" (\S+) (\d+) (HIT|MISS|-) (\d+)$')


def test_access_log_file(redis_server, make_proxy, tmp_path):
    log = tmp_path / "access.log"
    rport = free_port()
    p = make_proxy(redis_server, "--access-log", str(log),
                   "--resp-listen", "127.0.0.1:%d" % rport)
    redis_server.client().set("k", "12345")
    requests.get(p.url("/k"), timeout=5)
    requests.get(p.url("/k"), timeout=5)
    requests.get(p.url("/absent"), timeout=5)
    requests.get(p.url("/we%22ird%0A"), timeout=5)
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"BAD\r\n\r\n")
    s.recv(4096)
    s.close()
    s = socket.create_connection(("127.0.0.1", rport))
    s.sendall(b"GET k\r\n")
    s.recv(4096)
    s.close()
    lines = wait_for(lambda: (lambda t: t if len(t) >= 6 else None)(
        log.read_text().splitlines() if log.exists() else []),
        what="access log lines")
    parsed = [ACCESS.match(l) for l in lines]
    assert all(parsed), lines
    got = [(m.group(1), m.group(2), m.group(3), m.group(4), m.group(5))
           for m in parsed]
    assert ("http", "GET /k HTTP/1.1", "200", "5", "MISS") in got
    assert ("http", "GET /k HTTP/1.1", "200", "5", "HIT") in got
    assert ("http", "GET /absent HTTP/1.1", "404", "0", "-") in got
    assert ("http", "GET /we%22ird%0A HTTP/1.1", "404", "0", "-") in got
    assert ("http", "BAD", "400", "0", "-") in got
    assert ("resp", "GET k", "ok", "5", "HIT") in got


def test_sigusr1_reopens_the_access_log(redis_server, make_proxy,
                                        tmp_path):
    """logrotate as written for nginx: rename the file, kill -USR1 the
    pid.  Lines go to a new file of the old name, the workers stay (no
    reload), and the proxy lives on (SIGUSR1's default kills it)."""
    log = tmp_path / "access.log"
    p = make_proxy(redis_server, "--access-log", str(log), "--workers",
                   "1")
    requests.get(p.url("/before"), timeout=5)
    wait_for(lambda: log.exists() and "/before" in log.read_text(),
             what="the first line")
    workers = set(children(p.proc.pid))
    log.rename(tmp_path / "access.log.1")
    os.kill(p.proc.pid, signal.SIGUSR1)
    wait_for(lambda: "SIGUSR1: access log" in p.log(), what="the reopen")
    requests.get(p.url("/after"), timeout=5)
    wait_for(lambda: log.exists() and "/after" in log.read_text(),
             what="a line in the new file")
    assert "/after" not in (tmp_path / "access.log.1").read_text()
    assert p.proc.poll() is None
    assert set(children(p.proc.pid)) == workers


def test_access_log_off_by_default(redis_server, make_proxy):
    p = make_proxy(redis_server)
    requests.get(p.url("/k"), timeout=5)
    assert '"GET /k' not in p.log()
