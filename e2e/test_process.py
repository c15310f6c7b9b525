"""The process model: pre-forked workers, respawn, graceful stop, reload,
the client limit and crash recovery of the cache lock."""
import http.client
import os
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import Proxy, SlowRedis, children, get, pid_alive, \
    read_http_response, wait_for



def worker_pids(p):
    """{pid: command line} of the supervisor's children, from /proc (no
    dependency on procps, which slim images lack)."""
    pids = {}
    for pid in children(p.proc.pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        args = cmdline.split(b"\0")
        pids[pid] = b" ".join(a for a in args if a).decode("utf-8",
                                                            "replace")
    return pids


def test_workers_named_in_ps(proxy):
    # A worker renames itself just after fork: wait for both names.
    names = wait_for(lambda: (lambda d: sorted(d.values()) if len(d) == 2 and
                              all(v.startswith("redis-cache-proxy: worker")
                                  for v in d.values()) else None)(
        worker_pids(proxy)), what="two named workers")
    assert names == ["redis-cache-proxy: worker 1",
                     "redis-cache-proxy: worker 2"]


def worker_of(p, sock):
    """The pid of the worker holding the proxy's end of sock, from /proc
    (None while the connection waits in the backlog)."""
    local = sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == p.port \
                    and int(cols[2].split(":")[1], 16) == local \
                    and cols[3] == "01" and cols[9] != "0":
                inode = "socket:[%s]" % cols[9]
    if inode is None:
        return None
    for pid in worker_pids(p):
        fd_dir = "/proc/%d/fd" % pid
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(os.path.join(fd_dir, fd)) == inode:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


def pair_in_two_workers(p):
    """Two connections held by two different workers.  The kernel, not
    the proxy, picks the worker that accepts each connection, and one
    worker may win every race for a while (an idle machine gave both of
    a pair to one worker, which answers them in order; a loaded one gave
    18 in a row to one): connections are made, each until a worker holds
    it, until two workers hold one."""
    held = {}
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        pid = wait_for(lambda: worker_of(p, s), what="the connection "
                       "accepted")
        if pid in held:
            s.close()
            continue
        held[pid] = s
        if len(held) == 2:
            return list(held.values())
    raise AssertionError("200 connections, all to one worker")


def read_reply(s):
    """One HTTP response: its status."""
    return int(read_http_response(s).split(b" ")[1])


def timed_pair(socks, round_):
    """Two misses on the two connections, the second 50 ms after the
    first: their statuses and how long until both are answered."""
    start = time.monotonic()
    for i, s in enumerate(socks):
        if i:
            time.sleep(0.05)
        s.sendall(b"GET /a%d-%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, round_))
    codes = [read_reply(s) for s in socks]
    return codes, time.monotonic() - start


def test_parallel_with_two_workers_serial_with_one(make_proxy):
    slow = SlowRedis(delay=0.6)
    try:
        p2 = make_proxy(slow, "--workers", "2", "--redis-timeout", "10s")
        wait_for(lambda: len(worker_pids(p2)) == 2, what="workers")
        # A pair in two workers (new keys each round, so misses); a
        # round slowed down by a loaded machine is run again: one with
        # one Redis connection in all never overlaps, in any round.
        for round_ in range(3):
            socks = pair_in_two_workers(p2)
            codes, took2 = timed_pair(socks, round_)
            for s in socks:
                s.close()
            assert codes == [200, 200], codes
            if took2 < 1.1:
                break
        p1 = make_proxy(slow, "--workers", "1", "--redis-timeout", "10s")
        socks = [socket.create_connection(("127.0.0.1", p1.port),
                                          timeout=10) for _ in range(2)]
        codes, took1 = timed_pair(socks, 0)
        for s in socks:
            s.close()
        assert codes == [200, 200], codes
    finally:
        slow.stop()
    # One Redis connection per worker, answered in order: two misses take
    # two delays on one worker and overlap on two.
    assert took1 >= 1.2, took1
    assert took2 < 1.1, took2


def uptime_s():
    """Seconds since boot: the clock of the start times in /proc."""
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def start_s(pid):
    """When pid started, in uptime_s() seconds, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    start_ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    return start_ticks / os.sysconf("SC_CLK_TCK")


def proc_age(pid):
    """Seconds since pid started, from /proc."""
    return uptime_s() - start_s(pid)


def replaced_after(p, old_pids, victim):
    """Waits for a worker to replace victim; how long after now (the
    kill) the replacement started, by its start time in /proc.  The
    kernel's clock, not when this test saw it: a scan of /proc on a
    loaded machine, against a client thread holding the GIL, once saw a
    replacement 1.5 s after the kill."""
    killed = uptime_s()
    new = wait_for(lambda: (lambda d: d if len(d) == 2 and victim not in
                            d else None)(worker_pids(p)), timeout=5,
                   what="replacement")
    took = start_s((set(new) - set(old_pids)).pop()) - killed
    print("replacement started %.0f ms after the kill" % (took * 1000))
    return new, took


def test_killed_worker_is_replaced(redis_server, proxy):
    redis_server.client().set("k", "v")
    pids = wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
        worker_pids(proxy)), what="workers")
    errors = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                r = get(proxy, "k", timeout=5)
                if r.status_code != 200:
                    errors.append(r.status_code)
            except requests.RequestException as e:
                errors.append(repr(e))

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        new, took = replaced_after(proxy, pids, victim)
        assert took < 1.0, (took, proxy.log())
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    assert len(new) == 2
    # A request in flight on the killed worker may fail; the rest must not.
    assert len(errors) <= 1, errors
    assert get(proxy, "k").status_code == 200
    assert "killed by signal 9" in proxy.log()


def test_worker_killed_after_its_first_second_is_replaced(redis_server,
                                                          proxy):
    # Deaths within a worker's first second take the backoff path (the
    # test above); one that has lived longer is replaced at once.
    redis_server.client().set("k", "v")
    pids = wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
        worker_pids(proxy)), what="workers")
    victim = min(pids)
    wait_for(lambda: proc_age(victim) > 1.3, timeout=5,
             what="worker older than a second")
    os.kill(victim, signal.SIGKILL)
    new, took = replaced_after(proxy, pids, victim)
    assert took < 1.0, (took, proxy.log())
    assert get(proxy, "k").status_code == 200
    # The replacement is replaced too when it dies after its first second.
    victim = (set(new) - set(pids)).pop()
    wait_for(lambda: proc_age(victim) > 1.3, timeout=5,
             what="replacement older than a second")
    os.kill(victim, signal.SIGKILL)
    _, took = replaced_after(proxy, new, victim)
    assert took < 1.0, (took, proxy.log())


def test_sigterm_finishes_in_flight_requests(make_proxy):
    slow = SlowRedis(delay=0.5)
    try:
        p = make_proxy(slow, "--workers", "2", "--redis-timeout", "10s")
        # Each client connected and its request sent before SIGTERM:
        # connected means in the kernel's backlog at least, which a
        # stopping worker still accepts and answers.  (Threads given a
        # fixed 0.2 s to get there were not always there on a loaded
        # machine: one still connecting was refused.)
        conns = []
        for i in range(8):
            c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
            c.request("GET", "/s%d" % i)
            conns.append(c)
        os.kill(p.proc.pid, signal.SIGTERM)
        statuses = []
        for c in conns:
            r = c.getresponse()
            r.read()
            statuses.append(r.status)
            c.close()
        assert statuses == [200] * 8
        assert p.proc.wait(10) == 0
        assert not worker_pids(p)
    finally:
        slow.stop()


def test_sigterm_exit_status_and_no_leftovers(proxy):
    pids = wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
        worker_pids(proxy)), what="workers")
    os.kill(proxy.proc.pid, signal.SIGTERM)
    assert proxy.proc.wait(10) == 0
    for pid in pids:
        wait_for(lambda: not pid_alive(pid), what="worker exit")


def test_sigquit_stops_as_sigterm_does(proxy):
    """nginx's graceful stop: exit 0, workers gone, where the default
    action killed the supervisor alone."""
    pids = wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
        worker_pids(proxy)), what="workers")
    os.kill(proxy.proc.pid, signal.SIGQUIT)
    assert proxy.proc.wait(10) == 0
    assert "SIGQUIT" in proxy.log()
    for pid in pids:
        wait_for(lambda: not pid_alive(pid), what="worker exit")


def test_sighup_reload_new_ttl_no_failed_request(redis_server, make_proxy,
                                                 tmp_path):
    conf = tmp_path / "rcp.conf"
    conf.write_text("ttl 60s\n")
    p = make_proxy(redis_server, "--config", str(conf), "--workers", "2")
    c = redis_server.client()
    c.set("r", "v1")
    assert get(p, "r").status_code == 200
    errors = []
    count = [0]
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                # A new connection each time: keep-alive connections to a
                # retiring worker may be closed between requests.
                r = requests.get(p.url("/r"), timeout=5,
                                 headers={"Connection": "close"})
                count[0] += 1
                if r.status_code != 200:
                    errors.append(r.status_code)
            except requests.RequestException as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=loop, daemon=True)
               for _ in range(4)]
    for t in threads:
        t.start()
    try:
        # The load runs from before the signal until after the old
        # workers are gone (polled: a fixed count of requests in all was
        # not always reached on a loaded machine).
        wait_for(lambda: count[0] > 10, what="load running")
        old = set(worker_pids(p))
        conf.write_text("ttl 200ms\n")
        os.kill(p.proc.pid, signal.SIGHUP)
        wait_for(lambda: "reload complete" in p.log(), timeout=10,
                 what="reload")
        wait_for(lambda: not (old & set(worker_pids(p))), timeout=10,
                 what="old workers gone")
        n = count[0]
        wait_for(lambda: count[0] > n + 10, what="load after the reload")
        c.set("r", "v2")
        wait_for(lambda: get(p, "r").content == b"v2", timeout=5,
                 what="new ttl")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []


def test_sighup_with_broken_config_keeps_running(redis_server, make_proxy,
                                                 tmp_path):
    conf = tmp_path / "rcp.conf"
    conf.write_text("ttl 60s\n")
    p = make_proxy(redis_server, "--config", str(conf))
    conf.write_text("ttl 10x\n")
    os.kill(p.proc.pid, signal.SIGHUP)
    wait_for(lambda: "keeping the running configuration" in p.log(),
             what="reload refused")
    redis_server.client().set("still", "ok")
    assert get(p, "still").status_code == 200


def test_sighup_with_unusable_tls_file_keeps_running(redis_server,
                                                     make_proxy, tmp_path):
    """A reload naming a CA file that cannot be loaded is refused with the
    reason, as a bad value is, instead of starting a worker that cannot
    initialise."""
    conf = tmp_path / "rcp.conf"
    conf.write_text("ttl 60s\n")
    p = make_proxy(redis_server, "--config", str(conf), "--workers", "1")
    conf.write_text("redis-tls yes\nredis-tls-ca-file /nonexistent/ca.pem\n")
    os.kill(p.proc.pid, signal.SIGHUP)
    wait_for(lambda: "keeping the running configuration" in p.log()
             or "died before serving" in p.log(), what="reload refused")
    assert ("reload: --redis-tls-ca-file: cannot load the CA file "
            "'/nonexistent/ca.pem'" in p.log()), p.log()
    assert "died before serving" not in p.log()
    assert p.log().count("started worker") == 1
    redis_server.client().set("still", "ok")
    assert get(p, "still").status_code == 200


def test_max_clients(redis_server, make_proxy):
    p = make_proxy(redis_server, "--max-clients", "2", "--workers", "2")
    redis_server.client().set("m", "v")
    # One at a time, each left in the middle of a request before the next
    # connects: at the limit an idle connection (one that has sent nothing
    # yet included) is closed to admit the next client (test_hostile.py),
    # and under load the harness' start-up probe may still hold a slot.
    a = b = None
    for name in ("a", "b"):
        s = socket.create_connection(("127.0.0.1", p.port))
        s.settimeout(5)
        s.sendall(b"GET /m HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /m HTTP/1.1\r\nHo")
        if name == "a":
            a = s
        else:
            b = s
    c = socket.create_connection(("127.0.0.1", p.port))   # in the backlog
    c.settimeout(0.5)
    c.sendall(b"GET /m HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        got = c.recv(4096)
    except socket.timeout:
        got = None
    assert got is None, "third connection served at the limit"
    a.close()
    c.settimeout(5)
    assert c.recv(4096).startswith(b"HTTP/1.1 200")
    b.close()
    c.close()


@pytest.mark.parametrize("hook", ["lock-crash", "lru-crash"])
def test_worker_dying_in_write_lock(redis_server, make_proxy, hook):
    # lock-crash dies inside the write side, lru-crash holding the LRU
    # word inside the read side (as an apply of the access rings does).
    p = make_proxy(redis_server, "--workers", "2",
                   env={"REDIS_CACHE_PROXY_TEST_HOOKS": hook})
    c = redis_server.client()
    c.set("w", "v")
    assert get(p, "w").status_code == 200
    pids = wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
        worker_pids(p)), what="workers")
    victim = min(pids)
    os.kill(victim, signal.SIGUSR2)
    wait_for(lambda: "died inside the cache lock" in p.log(), timeout=5,
             what="poison detected")
    # The others keep serving, and the cache works again after rebuild.
    for _ in range(10):
        assert get(p, "w", timeout=3).status_code == 200
    wait_for(lambda: "cache rebuilt" in p.log(), timeout=5, what="rebuild")
    get(p, "w")
    wait_for(lambda: get(p, "w").headers["X-Cache"] == "HIT", timeout=5,
             what="caching again")


def test_pid_file(redis_server, make_proxy, tmp_path):
    pidfile = tmp_path / "rcp.pid"
    p = make_proxy(redis_server, "--pid-file", str(pidfile))
    assert int(pidfile.read_text()) == p.proc.pid
    os.kill(p.proc.pid, signal.SIGTERM)
    assert p.proc.wait(10) == 0
    assert not pidfile.exists()


def test_port_in_use_exits_1(redis_server, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    pidfile = tmp_path / "rcp.pid"
    p = Proxy(["--redis", redis_server.addr, "--pid-file", str(pidfile)])
    p.port = port
    p.start(wait=False)
    assert p.proc.wait(10) == 1
    assert "Address already in use" in p.log()
    assert not pidfile.exists(), "pid file left behind by a failed start"
    s.close()


def test_second_instance_leaves_the_running_pid_file(redis_server,
                                                      make_proxy, tmp_path):
    """A second start by mistake (same ports, same pid file) fails on the
    port in use and must neither overwrite nor delete the running
    instance's pid file, which `kill $(cat pidfile)` and init scripts
    rely on."""
    pidfile = tmp_path / "rcp.pid"
    first = make_proxy(redis_server, "--pid-file", str(pidfile),
                       "--workers", "1")
    assert int(pidfile.read_text()) == first.proc.pid
    second = Proxy(["--redis", redis_server.addr, "--pid-file",
                    str(pidfile), "--workers", "1"])
    second.port = first.port
    second.start(wait=False)
    assert second.proc.wait(10) == 1
    assert "Address already in use" in second.log()
    assert pidfile.exists(), "the running instance's pid file was deleted"
    assert int(pidfile.read_text()) == first.proc.pid
    assert get(first, "k").status_code == 404


def test_workers_die_with_the_supervisor(redis_server, proxy):
    pids = wait_for(lambda: (lambda d: d if len(d) == 2 else None)(
        worker_pids(proxy)), what="workers")
    proxy.killed = True
    os.kill(proxy.proc.pid, signal.SIGKILL)
    proxy.proc.wait(5)
    for pid in pids:
        wait_for(lambda: not pid_alive(pid), timeout=5,
                 what="worker %d to follow its supervisor" % pid)


def test_two_quick_sighups(redis_server, make_proxy, tmp_path):
    conf = tmp_path / "rcp.conf"
    conf.write_text("ttl 60s\n")
    p = make_proxy(redis_server, "--config", str(conf), "--workers", "2")
    wait_for(lambda: len(worker_pids(p)) == 2, what="workers")
    conf.write_text("ttl 200ms\n")
    os.kill(p.proc.pid, signal.SIGHUP)
    os.kill(p.proc.pid, signal.SIGHUP)
    wait_for(lambda: "reload complete" in p.log(), timeout=10,
             what="reload")
    wait_for(lambda: len(worker_pids(p)) == 2, timeout=10,
             what="back to two workers")
    time.sleep(0.3)
    assert len(worker_pids(p)) == 2
    redis_server.client().set("q", "v1")
    get(p, "q")
    redis_server.client().set("q", "v2")
    wait_for(lambda: get(p, "q").content == b"v2", timeout=5,
             what="new ttl everywhere")


def test_crash_loop_backs_off(redis_server, make_proxy):
    p = make_proxy(redis_server, "--workers", "1",
                   env={"REDIS_CACHE_PROXY_TEST_HOOKS": "crash-at-start"})
    # 100, 200, 400, 800 ms ...: a handful of starts in 2 s, not a spin.
    wait_for(lambda: "respawning in 800 ms" in p.log(), timeout=5,
             what="backoff to reach 800 ms")
    starts = p.log().count("started worker")
    assert 4 <= starts <= 8, starts
    assert "respawning in 100 ms" in p.log()
    assert "respawning in 400 ms" in p.log()


def test_worker_that_cannot_initialise_is_not_respawned(redis_server,
                                                        make_proxy):
    p = make_proxy(redis_server, "--workers", "2", wait=False,
                   env={"REDIS_CACHE_PROXY_TEST_HOOKS": "fail-init"})
    p.killed = True             # it exits on its own, with status 1
    assert p.proc.wait(10) == 1
    log = p.log()
    assert log.count("exited with fatal code 2 and cannot be respawned") \
        == 2, log
    assert "no worker left: exiting" in log
    assert log.count("started worker") == 2
