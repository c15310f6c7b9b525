"""One fetch per key per proxy: concurrent misses for a key in any worker
wait for one GET (an in-flight marker shared by the workers) and are
answered from the cache when it lands.  A fetcher that dies or passes
its deadline does not strand the others.

The misses are made concurrent by opening every connection first (so
the workers have accepted them all), then sending every request before
reading any answer, while Redis is held up: by CLIENT PAUSE for the real
one, by its gate for the stand-in (conftest.StandInRedis).
"""
import os
import re
import signal
import socket
import threading
import time

import requests

from conftest import StandInRedis, children, wait_for


def metric(p, name):
    text = requests.get(p.admin_url("/metrics"), timeout=5).text
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def clients_per_worker(p):
    """How many client connections each worker holds, from /proc."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == p.port and cols[3] == "01":
                inodes.add("socket:[%s]" % cols[9])
    counts = {}
    for pid in children(p.proc.pid):
        fd_dir = "/proc/%d/fd" % pid
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, fd)) in inodes:
                    counts[pid] = counts.get(pid, 0) + 1
            except OSError:
                continue
    return counts


def open_clients(p, n, workers):
    """At least n client connections, spread over the workers: a burst
    of connects lands on whichever worker wakes first, so each is
    accepted before the next is made, and more are made (up to 3n) until
    every worker holds some.  Which worker wins each wake-up is the
    kernel's choice, and on a loaded machine one of them can lose every
    race; what these tests need is misses in more than one worker at
    once, so two workers holding clients is enough."""
    socks = []
    while len(socks) < n or (len(clients_per_worker(p)) < workers
                             and len(socks) < 3 * n):
        socks.append(socket.create_connection(("127.0.0.1", p.port),
                                              timeout=10))
        wait_for(lambda: metric(p, "rcp_connections") == len(socks),
                 timeout=10, what="the connection accepted")
    counts = clients_per_worker(p)
    assert len(counts) >= 2, counts
    return socks


def read_answer(s):
    """One HTTP response (Content-Length framed); None when the
    connection was closed or reset first."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            b = s.recv(65536)
            if not b:
                return None
            data += b
        head, _, body = data.partition(b"\r\n\r\n")
        n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < n:
            b = s.recv(65536)
            if not b:
                return None
            body += b
    except (ConnectionResetError, socket.timeout):
        return None
    return int(head.split(b" ")[1]), body


def ask_all(socks, key):
    req = b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % key
    for s in socks:
        s.sendall(req)


def answers(socks):
    """Each client's (answer, seconds from now until it came), read in
    parallel."""
    out = [None] * len(socks)
    t0 = time.monotonic()

    def one(i):
        a = read_answer(socks[i])
        out[i] = (a, time.monotonic() - t0)

    threads = [threading.Thread(target=one, args=(i,))
               for i in range(len(socks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def cmdstat_calls(client, cmd):
    return client.info("commandstats").get("cmdstat_" + cmd,
                                           {}).get("calls", 0)


def test_200_misses_over_4_workers_one_get(redis_server, make_proxy):
    p = make_proxy(redis_server, "--workers", "4", "--ttl", "1h",
                   "--redis-timeout", "5s", "--max-clients", "1024")
    c = redis_server.client()
    for i in range(3):
        key = "hot%d" % i
        c.set(key, "value-%d" % i)
        socks = open_clients(p, 200, 4)
        c.config_resetstat()
        # Redis runs no command for 0.5 s from here: every worker with
        # clients misses the key while the first GET waits in Redis.
        c.execute_command("CLIENT", "PAUSE", "500", "ALL")
        ask_all(socks, key.encode())
        got = answers(socks)
        for a, _ in got:
            assert a is not None and a[0] == 200, a
            assert a[1] == b"value-%d" % i
        assert cmdstat_calls(c, "get") == 1, c.info("commandstats")
        for s in socks:
            s.close()
        wait_for(lambda: metric(p, "rcp_connections") == 0,
                 what="connections closed")
    # Waiters in the workers that did not fetch were answered from the
    # cache when the GET landed.
    assert metric(p, "rcp_coalesced_waiters_total") > 0


def pid_with_connection(pids, port, peer_port):
    """Which of pids holds the open TCP connection from 127.0.0.1:port
    to peer_port."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port \
                    and int(cols[2].split(":")[1], 16) == peer_port \
                    and cols[3] == "01":
                inode = cols[9]
    assert inode is not None
    for pid in pids:
        fd_dir = "/proc/%d/fd" % pid
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(os.path.join(fd_dir, fd)) == \
                            "socket:[%s]" % inode:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    raise AssertionError("no worker has port %d" % port)


def start_held_fetch(p, stand_in, key, n):
    """n clients ask for key at once, over the workers; the first GET
    is held by the stand-in.  Returns the sockets, the time they asked,
    and the pid of the worker that sent the GET."""
    stand_in.values[key] = b"V"
    stand_in.held.add(key)
    socks = open_clients(p, n, 4)
    t_ask = time.monotonic()
    ask_all(socks, key)
    wait_for(lambda: stand_in.get_count(key) == 1, what="the first GET")
    # Every other worker parks its fetch behind the marker: still one.
    time.sleep(0.2)
    assert stand_in.get_count(key) == 1
    owner = pid_with_connection(children(p.proc.pid),
                                stand_in.peers[key][0], stand_in.port)
    # From now on GETs are answered at once: only the first is held.
    with stand_in.lock:
        stand_in.held.discard(key)
    return socks, t_ask, owner


def test_fetcher_killed_mid_fetch_does_not_strand_waiters(make_proxy):
    stand_in = StandInRedis()
    try:
        p = make_proxy(stand_in, "--workers", "4", "--ttl", "1h",
                       "--redis-timeout", "3s")
        socks, t_ask, owner = start_held_fetch(p, stand_in, b"k", 200)
        t_kill = time.monotonic()
        os.kill(owner, signal.SIGKILL)
        got = answers(socks)            # times from the kill
        served = [(a, t) for a, t in got if a is not None]
        # The killed worker's own clients lost their connection; every
        # other one is answered, soon after the kill (its death is seen
        # and its marker freed at once), inside --redis-timeout from
        # when it asked: a waiter stranded behind the dead fetcher's
        # marker is sent only once parked a whole timeout (3 s).  The
        # bounds leave a loaded machine seconds of slack (the last
        # answer 200 ms after a kill 600 ms after asking was measured
        # there; 0.5 s, and 2.0 s + 100 ms against a 2 s timeout, were
        # too tight to tell a stranded waiter from a slow machine).
        assert len(served) > 0, len(served)
        for a, _ in served:
            assert a == (200, b"V"), a
        latest = max(t for _, t in served)
        print("killed %.0f ms after asking" % ((t_kill - t_ask) * 1000))
        assert (t_kill - t_ask) + latest < 3.0, (t_kill - t_ask, latest)
        assert latest < 1.0, latest
        # A GET for each worker that waited, and none more.
        assert 2 <= stand_in.get_count(b"k") <= 4
        print("answered %d waiters, the last %.0f ms after the kill"
              % (len(served), latest * 1000))
        for s in socks:
            s.close()
    finally:
        stand_in.stop()


def test_fetcher_past_its_deadline_does_not_strand_waiters(make_proxy):
    stand_in = StandInRedis()
    try:
        p = make_proxy(stand_in, "--workers", "4", "--ttl", "1h",
                       "--redis-timeout", "2s")
        socks, t_ask, _ = start_held_fetch(p, stand_in, b"k", 100)
        t_read = time.monotonic()
        got = answers(socks)
        assert all(a is not None for a, _ in got)
        # The fetcher's clients get 504 at its deadline; the others then
        # go to Redis themselves and are answered 200, soon after the
        # timeout from when they asked.  A waiter parked again for
        # another whole timeout would take twice the timeout (4 s); the
        # bound leaves a loaded machine 1 s (1.46 s against a 1 s
        # timeout and a 1.1 s bound was measured there).
        codes = [a[0] for a, _ in got]
        assert set(codes) == {200, 504}, codes
        assert codes.count(200) > 0, codes.count(200)
        latest = (t_read - t_ask) + max(t for _, t in got)
        print("%d answered 200, %d 504; the last %.0f ms after asking"
              % (codes.count(200), codes.count(504), latest * 1000))
        assert latest < 2.0 + 1.0, latest
        for s in socks:
            s.close()
    finally:
        stand_in.stop()
