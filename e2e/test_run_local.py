"""`make run` (scripts/run-local) as a new user meets it: the lines it
prints name the ports actually in use, --redis in ARGS is honoured, and
Ctrl-C stops everything it started with status 0."""
import os
import signal
import subprocess

import requests

from conftest import BINARY, free_port, pid_alive, port_open, wait_for

RUN_LOCAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "scripts", "run-local")


def ctrl_c_as_in_a_terminal():
    """In the child: SIGINT back to its default.  A test run started in
    the background by a non-interactive shell (`make check &`, some CI
    runners) inherits SIGINT ignored, and sh cannot trap a signal that
    was ignored when it started, so Ctrl-C would never reach the
    script."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class RunLocal:
    """scripts/run-local in a session of its own, so that a SIGINT to its
    process group is what Ctrl-C in a terminal sends."""

    def __init__(self, port, args):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("RCP_") or k in ("REDIS", "REDIS_PASSWORD"):
                del env[k]
        env.update(PORT=str(port), ARGS=args)
        self.proc = subprocess.Popen(["sh", RUN_LOCAL, BINARY], env=env,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=ctrl_c_as_in_a_terminal)
        self.out = b""

    def ctrl_c(self, timeout=15):
        os.killpg(self.proc.pid, signal.SIGINT)
        out, _ = self.proc.communicate(timeout=timeout)
        self.out += out
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def test_private_redis_hints_and_ctrl_c(redis_server):
    port, admin, resp = free_port(), free_port(), free_port()
    r = RunLocal(port, "--workers 1 --admin-listen 127.0.0.1:%d "
                 "--resp-listen 127.0.0.1:%d" % (admin, resp))
    try:
        wait_for(lambda: port_open(port) and port_open(admin), timeout=15,
                 what="make run's proxy")
        got = requests.get("http://127.0.0.1:%d/greeting" % port, timeout=5)
        assert got.status_code == 200
        assert got.content == b"hello from redis"
        rc = r.ctrl_c()
    finally:
        r.kill()
    text = r.out.decode()
    assert rc == 0, text
    assert "run-local: stopped" in text, text
    assert "curl -i http://127.0.0.1:%d/greeting" % port in text
    assert "curl http://127.0.0.1:%d/metrics" % admin in text
    assert ":9121" not in text
    assert "redis-cli -h 127.0.0.1 -p %d GET greeting" % resp in text
    # The private Redis it started is gone with it.
    line = [l for l in text.splitlines() if "started redis-server" in l][0]
    redis_pid = int(line.rsplit("pid ", 1)[1].rstrip(")"))
    wait_for(lambda: not pid_alive(redis_pid), timeout=5,
             what="the private redis-server to stop")


def test_redis_in_args_is_used(redis_server):
    redis_server.client().set("greeting", b"from the given redis")
    port = free_port()
    r = RunLocal(port, "--workers 1 --admin-listen off --redis %s"
                 % redis_server.addr)
    try:
        wait_for(lambda: port_open(port), timeout=15, what="make run's proxy")
        got = requests.get("http://127.0.0.1:%d/greeting" % port, timeout=5)
        assert got.content == b"from the given redis"
        rc = r.ctrl_c()
    finally:
        r.kill()
    text = r.out.decode()
    assert rc == 0, text
    assert "started redis-server" not in text, text
    assert "metrics" not in text, text
