"""The command line as an operator meets it: --help, --version, bad flags
and values (one line on stderr naming the flag, exit 2), and
--check-config (effective config on stdout, exit 0; invalid: exit 1).

None of these start the daemon, so no redis-server is needed.
"""
import os
import re
import tempfile

import pytest

from conftest import run_cli

LONG_OPTIONS = [
    "listen", "resp-listen", "admin-listen", "redis", "redis-user",
    "redis-password", "redis-db", "redis-timeout", "ttl", "capacity",
    "max-memory", "max-value-size", "workers", "max-clients", "backlog",
    "idle-timeout", "header-timeout", "shutdown-timeout", "config",
    "log-level", "pid-file", "access-log", "check-config", "help",
    "version",
]


@pytest.fixture
def conf_file():
    """Writes a config file; removed after the test."""
    paths = []

    def write(text):
        fd, path = tempfile.mkstemp(prefix="rcp-cli-", suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        paths.append(path)
        return path

    yield write
    for p in paths:
        os.unlink(p)


def config_lines(stdout):
    """--check-config's output as {name: value}, comments skipped."""
    out = {}
    for line in stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            out[name] = value
    return out


def test_help_lists_every_option():
    r = run_cli("--help")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    for name in LONG_OPTIONS:
        assert re.search(r"--%s\b" % re.escape(name), r.stdout), name
    for short in "-l, -r, -t, -c, -w, -h, -V,".split():
        assert short in r.stdout
    # Defaults from DESIGN.md are shown.
    for default in ("127.0.0.1:8080", "127.0.0.1:9121", "127.0.0.1:6379",
                    "[60s]", "[10000]", "[64m]", "[1m]", "[1024]", "[511]"):
        assert default in r.stdout, default
    assert all(len(line) <= 80 for line in r.stdout.splitlines())


def test_short_help():
    r = run_cli("-h")
    assert r.returncode == 0
    assert r.stdout == run_cli("--help").stdout


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    r = run_cli(flag)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"redis-cache-proxy \d+\.\d+\.\d+\S*\n", r.stdout)
    assert r.stderr == ""


BAD = [
    # (argv, text the one stderr line must hold)
    (["--ttl", "10x"], "--ttl: invalid duration '10x'"),
    (["--ttl=-1"], "--ttl: invalid duration '-1'"),
    (["-t", "0"], "--ttl: duration must be greater than 0"),
    (["--ttl"], "--ttl: missing value"),
    (["--capacity", "0"], "--capacity:"),
    (["-c", "99999999999999999999"], "--capacity:"),
    (["--max-memory", "10x"], "--max-memory: invalid size '10x'"),
    (["--max-memory", "1m", "--max-value-size", "2m"],
     "--max-value-size: 2m is larger than --max-memory"),
    (["--workers", "0"], "--workers:"),
    (["-w", "1025"], "--workers:"),
    (["--listen", "65536"], "--listen: invalid address"),
    (["--listen", "off"], "--listen: cannot be off"),
    (["--admin-listen", "::1:80"], "--admin-listen: invalid address"),
    (["--redis", "localhost"], "--redis: invalid address 'localhost'"),
    (["--redis", "unix:"], "--redis: invalid address"),
    (["--redis-db", "-1"], "--redis-db:"),
    (["--log-level", "loud"], "--log-level: invalid level 'loud'"),
    (["--header-timeout", "1.5s"], "--header-timeout: invalid duration"),
    (["--backlog", "0"], "--backlog:"),
    (["--bogus"], "unknown option '--bogus'"),
    (["--tt", "5s"], "unknown option '--tt'"),
    (["-x"], "unknown option '-x'"),
    (["stray"], "unexpected argument 'stray'"),
    (["--config", "/nonexistent/rcp.conf"],
     "--config: cannot open '/nonexistent/rcp.conf'"),
    (["--http-auth-file="], "--http-auth-file: empty value"),
    (["--pid-file", ""], "--pid-file: empty value"),
    (["--early-refresh", "0x10"], "--early-refresh: invalid factor '0x10'"),
]


@pytest.mark.parametrize("args,text", BAD,
                         ids=[" ".join(a) for a, _ in BAD])
def test_bad_flag_exits_2_with_one_line(args, text):
    r = run_cli(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("redis-cache-proxy: "), lines[0]
    assert text in lines[0], lines[0]


def test_bad_env_value_names_the_variable():
    r = run_cli(env={"RCP_TTL": "10x"})
    assert r.returncode == 2
    assert r.stderr == ("redis-cache-proxy: RCP_TTL: invalid duration '10x' "
                        "(use e.g. 500ms, 30s, 5m, 1h)\n")


def test_bad_file_line_names_file_and_line(conf_file):
    path = conf_file("# proxy\nttl 5s\n\nworkers lots\n")
    r = run_cli("--config", path)
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "redis-cache-proxy: %s:4: workers: invalid number 'lots' "
        "(use an integer from 1 to 1024)" % path]


def test_two_backends_exit_2_from_every_layer(conf_file):
    """--redis, --redis-cluster and --redis-sentinel exclude each other,
    whether from flags, the environment or the file."""
    path = conf_file("redis-sentinel 127.0.0.1:26379\nredis-master m\n")
    for args, env, text in (
            (["--redis", "127.0.0.1:6379", "--redis-cluster",
              "127.0.0.1:7000"], {}, "--redis-cluster and --redis"),
            (["--redis", "127.0.0.1:6379"],
             {"RCP_REDIS_CLUSTER": "127.0.0.1:7000"},
             "RCP_REDIS_CLUSTER and --redis"),
            (["--config", path], {"RCP_REDIS_CLUSTER": "127.0.0.1:7000"},
             "redis-sentinel (config file) and RCP_REDIS_CLUSTER")):
        r = run_cli(*args, env=env)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert text + " both name the backend: give only one of --redis," \
            " --redis-cluster and --redis-sentinel" in lines[0], lines[0]


def test_check_config_valid(conf_file):
    path = conf_file("ttl 3s\ncapacity 300\nworkers 3\n"
                     "redis-password from-file\nbacklog 33\n")
    r = run_cli("--check-config", "--config", path, "--ttl", "1s",
                env={"RCP_TTL": "2s", "RCP_CAPACITY": "200",
                     "REDIS_PASSWORD": "from-env-secret"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    cfg = config_lines(r.stdout)
    assert cfg["ttl"] == "1s"            # flag over env and file
    assert cfg["capacity"] == "200"      # env over file
    assert cfg["workers"] == "3"         # file over default
    assert cfg["backlog"] == "33"
    assert cfg["max-clients"] == "1024"  # default
    assert cfg["redis-password"] == "********"
    assert "from-env-secret" not in r.stdout
    assert "from-file" not in r.stdout
    for name in LONG_OPTIONS:
        if name not in ("config", "check-config", "help", "version",
                        "redis-user", "pid-file"):
            assert name in cfg, name


def test_check_config_output_is_a_config_file(conf_file):
    r = run_cli("--check-config", "--resp-listen", "6380", "-t", "90s",
                "--redis", "unix:/tmp/redis.sock", "--access-log", "stderr")
    assert r.returncode == 0, r.stderr
    again = run_cli("--check-config", "--config", conf_file(r.stdout))
    assert again.returncode == 0, again.stderr
    assert config_lines(again.stdout) == config_lines(r.stdout)


@pytest.mark.parametrize("args", [
    ["--check-config", "--ttl", "10x"],
    ["--ttl", "10x", "--check-config"],
    ["--bogus", "--check-config"],
])
def test_check_config_invalid_exits_1(args):
    r = run_cli(*args)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("redis-cache-proxy: ")


def test_check_config_invalid_file_exits_1(conf_file):
    path = conf_file("ttl 5s\nbogus 1\n")
    r = run_cli("--check-config", env={"RCP_CONFIG": path})
    assert r.returncode == 1
    assert r.stderr == ("redis-cache-proxy: %s:2: unknown option 'bogus'\n"
                        % path)


@pytest.mark.parametrize("args,text", [
    (["--redis-tls-ca-file", "/nonexistent/ca.pem"],
     "--redis-tls-ca-file: cannot load the CA file '/nonexistent/ca.pem': "),
    (["--redis-tls-ca-dir", "/nonexistent/certs"],
     "--redis-tls-ca-dir: cannot load the CA directory"),
    (["--redis-tls-cert-file", "/nonexistent/client.pem"],
     "--redis-tls-cert-file: cannot load certificate "
     "'/nonexistent/client.pem'"),
], ids=["ca-file", "ca-dir", "cert-file"])
def test_unusable_tls_file_is_a_bad_value(args, text):
    """A TLS file that cannot be loaded is found by --check-config (exit
    1) and refused at start (exit 2, one line naming the option), as
    nginx -t checks its certificates, instead of workers that cannot
    initialise after the ports are open."""
    argv = ["--redis", "rediss://127.0.0.1:1"] + args
    for extra, status in ((["--check-config"], 1), ([], 2)):
        r = run_cli(*(argv + extra))
        assert r.returncode == status, (extra, r.returncode, r.stderr)
        assert r.stdout == ""
        lines = r.stderr.splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith("redis-cache-proxy: " + text), lines[0]
        assert "No such file or directory" in lines[0], lines[0]
