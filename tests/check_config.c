/*
 * check_config: unit tests of src/config.c.
 *
 * The value parsers have their own tests (check_config_parse.c).  Options
 * go through config_load() the way main and the supervisor call it: an
 * argv, an envp and, where a test needs one, a config file written to a
 * mkstemp path that the fixture removes.  Results are compared through
 * config_print() into an open_memstream buffer, which is also what
 * --check-config shows.
 */
#include "rcp_autoconf.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define ARGV_MAX 8
#define ENV_MAX  4

/* --- helpers ---------------------------------------------------------- */

static char test_file[64];

static void
test_file_setup(void)
{
    test_file[0] = '\0';
}

static void
test_file_teardown(void)
{
    if (test_file[0] != '\0') {
        ck_assert_int_eq(unlink(test_file), 0);
        test_file[0] = '\0';
    }
}

/* Writes text to the test's config file (created on first use) and
 * returns its path. */
static const char *
test_write_file(const char *text)
{
    FILE *f;

    if (test_file[0] == '\0') {
        int fd;

        snprintf(test_file, sizeof(test_file), "/tmp/check_config.XXXXXX");
        fd = mkstemp(test_file);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(close(fd), 0);
    }
    f = fopen(test_file, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
    return test_file;
}

/* config_load with a NULL-terminated argument list after argv[0]. */
static enum config_rc
test_load(struct config *cfg, const char *const *args,
          const char *const *env, char *err)
{
    char *argv[ARGV_MAX + 2];
    char *envp[ENV_MAX + 1];
    int   argc = 0;
    int   envc = 0;

    argv[argc++] = (char *) "redis-cache-proxy";
    for (; args != NULL && args[argc - 1] != NULL; argc++) {
        ck_assert_int_le(argc, ARGV_MAX);
        argv[argc] = (char *) args[argc - 1];
    }
    argv[argc] = NULL;
    for (; env != NULL && env[envc] != NULL; envc++) {
        ck_assert_int_lt(envc, ENV_MAX);
        envp[envc] = (char *) env[envc];
    }
    envp[envc] = NULL;
    config_defaults(cfg);
    return config_load(cfg, argc, argv, envp, err, CONFIG_ERR_MAX);
}

/* config_print into a malloc'd string the caller frees. */
static char *
test_print(const struct config *cfg)
{
    char   *buf = NULL;
    size_t  len = 0;
    FILE   *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    config_print(cfg, f);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

/* Whether the printed config holds exactly this line. */
static int
test_has_line(const char *text, const char *line)
{
    size_t      len = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[len] == '\n') {
            return 1;
        }
        p += len;
    }
    return 0;
}

static void
test_assert_line(const struct config *cfg, const char *line)
{
    char *text = test_print(cfg);

    ck_assert_msg(test_has_line(text, line), "no line '%s' in:\n%s", line,
                  text);
    free(text);
}

/* Loads args/env and expects success with the given printed line. */
static void
test_expect_ok(const char *const *args, const char *const *env,
               const char *line)
{
    struct config  cfg;
    char           err[CONFIG_ERR_MAX];
    enum config_rc rc = test_load(&cfg, args, env, err);

    ck_assert_msg(rc == CONFIG_OK, "rc %d: %s", rc, err);
    test_assert_line(&cfg, line);
}

/* Loads args/env and expects an error starting with prefix and holding
 * what. */
static void
test_expect_error(const char *const *args, const char *const *env,
                  const char *prefix, const char *what)
{
    struct config  cfg;
    char           err[CONFIG_ERR_MAX];
    enum config_rc rc = test_load(&cfg, args, env, err);

    ck_assert_msg(rc == CONFIG_ERROR, "rc %d, expected an error", rc);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
                  "error '%s' does not start with '%s'", err, prefix);
    ck_assert_msg(strstr(err, what) != NULL, "error '%s' lacks '%s'", err,
                  what);
    ck_assert_msg(strchr(err, '\n') == NULL, "error is not one line");
}

/* "max-memory" -> "RCP_MAX_MEMORY=value". */
static void
test_env_assign(char *buf, size_t len, const char *name, const char *value)
{
    size_t n = (size_t) snprintf(buf, len, "RCP_%s", name);

    for (size_t i = 4; i < n; i++) {
        buf[i] = buf[i] == '-' ? '_' : (char) (buf[i] & ~0x20);
    }
    snprintf(buf + n, len - n, "=%s", value);
}

/* --- every option, through flags, environment and file ---------------- */

static const struct option_good_case {
    const char *name;
    const char *value;
    const char *printed;    /* the config_print line */
    const char *why;
} option_good_cases[] = {
    { "listen", "0.0.0.0:80", "listen 0.0.0.0:80", "every IPv4 address" },
    { "listen", "8081", "listen *:8081", "bare port" },
    { "listen", "[::1]:8080", "listen [::1]:8080", "IPv6" },
    { "resp-listen", "127.0.0.1:6380", "resp-listen 127.0.0.1:6380", "on" },
    { "resp-listen", "off", "resp-listen off", "off" },
    { "admin-listen", "*:9000", "admin-listen *:9000", "any address" },
    { "admin-listen", "off", "admin-listen off", "disabled" },
    { "redis", "10.0.0.1:6380", "redis 10.0.0.1:6380", "TCP" },
    { "redis", "unix:/run/redis.sock", "redis unix:/run/redis.sock",
      "unix socket" },
    { "redis", "[::1]:6379", "redis [::1]:6379", "IPv6" },
    { "redis", "rediss://h:6380", "redis rediss://h:6380", "TLS URL" },
    { "redis", "redis://h:7000/2", "redis h:7000", "URL: db shown apart" },
    { "redis", "unix:///run/r.sock?db=1", "redis unix:/run/r.sock",
      "unix URL" },
    { "redis-tls-ca-file", "/etc/ssl/ca.pem",
      "redis-tls-ca-file /etc/ssl/ca.pem", "CA file" },
    { "redis-tls-ca-dir", "/etc/ssl/certs", "redis-tls-ca-dir /etc/ssl/certs",
      "CA directory" },
    { "redis-tls-cert-file", "/etc/rcp/client.pem",
      "redis-tls-cert-file /etc/rcp/client.pem", "client certificate" },
    { "redis-tls-server-name", "redis.internal",
      "redis-tls-server-name redis.internal", "verified name" },
    { "max-reply-size", "1g", "max-reply-size 1g", "reply bound" },
    { "redis-user", "app", "redis-user app", "ACL user" },
    { "redis-password", "s3cret", "redis-password ********", "masked" },
    { "redis-db", "15", "redis-db 15", "a database" },
    { "redis-db", "2147483647", "redis-db 2147483647", "largest db" },
    { "redis-timeout", "250ms", "redis-timeout 250ms", "milliseconds" },
    { "ttl", "2s", "ttl 2s", "seconds" },
    { "ttl", "90", "ttl 90s", "bare number is seconds" },
    { "ttl", "1500ms", "ttl 1500ms", "not whole seconds" },
    { "ttl", "120s", "ttl 2m", "printed in the largest exact unit" },
    { "ttl", "8760h", "ttl 8760h", "a year, the longest" },
    { "stale-while-revalidate", "30s", "stale-while-revalidate 30s",
      "a stale window" },
    { "stale-while-revalidate", "0", "stale-while-revalidate 0", "off" },
    { "stale-if-error", "5m", "stale-if-error 5m", "an error window" },
    { "negative-ttl", "1500ms", "negative-ttl 1500ms", "negative TTL" },
    { "negative-ttl", "0", "negative-ttl 0", "off" },
    { "early-refresh", "1", "early-refresh 1", "XFetch's usual beta" },
    { "early-refresh", "0.5", "early-refresh 0.5", "a fraction" },
    { "early-refresh", "1000", "early-refresh 1000", "largest" },
    { "capacity", "1", "capacity 1", "smallest" },
    { "capacity", "2147483648", "capacity 2147483648", "2^31, largest" },
    { "max-memory", "1g", "max-memory 1g", "gibibyte" },
    { "max-memory", "1048576", "max-memory 1m", "bytes printed as m" },
    { "max-memory", "1024g", "max-memory 1024g", "largest" },
    { "max-value-size", "512k", "max-value-size 512k", "smaller values" },
    { "max-value-size", "64m", "max-value-size 64m", "as big as memory" },
    { "workers", "1", "workers 1", "sequential" },
    { "workers", "1024", "workers 1024", "largest" },
    { "max-clients", "1", "max-clients 1", "smallest" },
    { "max-clients", "100000", "max-clients 100000", "many" },
    { "backlog", "1", "backlog 1", "smallest" },
    { "backlog", "65535", "backlog 65535", "largest" },
    { "idle-timeout", "5m", "idle-timeout 5m", "minutes" },
    { "header-timeout", "500ms", "header-timeout 500ms", "milliseconds" },
    { "shutdown-timeout", "30s", "shutdown-timeout 30s", "grace period" },
    { "log-level", "debug", "log-level debug", "debug" },
    { "log-level", "error", "log-level error", "error" },
    { "pid-file", "/run/rcp.pid", "pid-file /run/rcp.pid", "pid file" },
    { "access-log", "stderr", "access-log stderr", "to stderr" },
    { "access-log", "/var/log/rcp.log", "access-log /var/log/rcp.log",
      "to a file" },
    { "access-log", "off", "access-log off", "off" },
    { "resp-password", "pw with spaces", "resp-password ********",
      "RESP password, masked" },
    { "resp-user", "reader", "resp-user reader", "RESP AUTH user" },
    { "key-prefix", "app:", "key-prefix app:", "key prefix" },
    { "allow-keys", "user:*", "allow-keys user:*", "one glob" },
    { "allow-keys", "user:* pub[0-9]", "allow-keys user:* pub[0-9]",
      "two globs in one value" },
    { "allow-from", "10.0.0.0/8", "allow-from 10.0.0.0/8", "IPv4 range" },
    { "allow-from", "::1 127.0.0.1", "allow-from ::1 127.0.0.1",
      "IPv6 and IPv4 hosts" },
    { "proxy-protocol-from", "fd00::/8", "proxy-protocol-from fd00::/8",
      "IPv6 load balancers" },
    { "http-auth-file", "/etc/rcp/htpasswd",
      "http-auth-file /etc/rcp/htpasswd", "credential file" },
    { "redis-cluster", "10.0.0.1:7000,[::1]:7001,redis://h:7002",
      "redis-cluster 10.0.0.1:7000,[::1]:7001,redis://h:7002",
      "seeds as given" },
    { "redis-cluster", "off", "redis-cluster off", "off: one Redis" },
    { "redis-cluster-refresh", "30s", "redis-cluster-refresh 30s",
      "refresh period" },
    { "redis-read-from", "replica", "redis-read-from replica",
      "replicas of a cluster" },
    { "redis-read-from", "prefer-replica", "redis-read-from prefer-replica",
      "replicas, else primaries" },
    { "redis-sentinel-user", "watcher", "redis-sentinel-user watcher",
      "sentinel ACL user" },
    { "tracking", "default", "tracking default", "keys read are tracked" },
    { "tracking", "bcast", "tracking bcast", "every key broadcast" },
    { "tracking", "off", "tracking off", "off: the TTL alone" },
    { "redis-sentinel-password", "s3cret", "redis-sentinel-password ********",
      "sentinel password masked" },
};

#define LAYER_FLAG 1u
#define LAYER_ENV  2u
#define LAYER_FILE 4u
#define LAYER_ALL  (LAYER_FLAG | LAYER_ENV | LAYER_FILE)

static const struct option_bad_case {
    const char *name;
    const char *value;      /* repeat > 0: value[0] repeat times, then
                               the rest of value */
    unsigned    repeat;
    unsigned    layers;     /* where the value is wrong as written */
    const char *what;       /* in the error text */
    const char *why;
} option_bad_cases[] = {
    { "listen", "off", 0, LAYER_ALL, "cannot be off", "data port needed" },
    { "listen", "0", 0, LAYER_ALL, "invalid address '0'", "port 0" },
    { "listen", "65536", 0, LAYER_ALL, "invalid address", "port range" },
    { "listen", "host:", 0, LAYER_ALL, "invalid address", "no port" },
    { "listen", "::1:80", 0, LAYER_ALL, "[IPv6]:PORT", "IPv6 needs []" },
    { "listen", "a:80", 300, LAYER_ALL, "host name too long",
      "host length" },
    { "resp-listen", "x:y", 0, LAYER_ALL, "or off", "bad port" },
    { "admin-listen", "127.0.0.1:-1", 0, LAYER_ALL, "invalid address",
      "negative port" },
    { "redis", "localhost", 0, LAYER_ALL, "unix:PATH", "no port" },
    { "redis", "unix:", 0, LAYER_ALL, "invalid address", "empty path" },
    { "redis", "x:6379", 300, LAYER_ALL, "too long", "host length" },
    { "redis", "redis://h:0", 0, LAYER_ALL, "port must be 1-65535",
      "URL port 0" },
    { "redis", "redis://u:hunter2@h/x", 0, LAYER_ALL,
      "invalid URL 'redis://u:****@h/x'", "URL password masked" },
    { "redis", "rediss://h?tls=1", 0, LAYER_ALL, "?db=N", "URL query" },
    { "redis-cluster", "h:1,,h:2", 0, LAYER_ALL, "seed 2 of 'h:1,,h:2'",
      "an empty seed" },
    { "redis-cluster", "h:1,unix:/run/r.sock", 0, LAYER_ALL, "seed 2 of",
      "no unix socket in a cluster" },
    { "redis-cluster", "h", 0, LAYER_ALL, "seed 1 of 'h' is not HOST:PORT",
      "no port" },
    { "redis-cluster", "h:1,redis://u:hunter2@h:0", 0, LAYER_ALL,
      "'h:1,redis://u:****@h:0'", "a seed's password masked" },
    { "redis-cluster", "h:1,h:2,h:3,h:4,h:5,h:6,h:7,h:8,h:9,h:10,h:11,h:12,"
      "h:13,h:14,h:15,h:16,h:17", 0, LAYER_ALL, "more than 16 seed nodes",
      "too many seeds" },
    { "redis-cluster-refresh", "0", 0, LAYER_ALL, "greater than 0",
      "a refresh needs a period" },
    { "tracking", "on", 0, LAYER_ALL, "use off, default or bcast",
      "CLIENT TRACKING's word, not ours" },
    { "tracking", "BCAST", 0, LAYER_ALL, "invalid value 'BCAST'",
      "upper case" },
    { "redis-read-from", "replicas", 0, LAYER_ALL,
      "use primary, replica or prefer-replica", "a typo" },
    { "redis-sentinel", "s:1,,s:2", 0, LAYER_ALL, "seed 2 of",
      "an empty sentinel" },
    { "redis-tls", "maybe", 0, LAYER_ENV | LAYER_FILE, "use yes or no",
      "a boolean" },
    { "max-reply-size", "0", 0, LAYER_ALL, "out of range", "zero" },
    { "redis-user", "u", 512, LAYER_ALL, "too long", "user length" },
    { "redis-password", "p", 512, LAYER_ALL, "too long",
      "password length, not echoed" },
    { "redis-db", "-1", 0, LAYER_ALL, "invalid number '-1'", "sign" },
    { "redis-db", "2147483648", 0, LAYER_ALL, "out of range", "2^31" },
    { "redis-timeout", "0", 0, LAYER_ALL, "greater than 0", "zero" },
    { "redis-timeout", "1d", 0, LAYER_ALL, "invalid duration", "days" },
    { "ttl", "10x", 0, LAYER_ALL,
      "invalid duration '10x' (use e.g. 500ms, 30s, 5m, 1h)", "unit" },
    { "ttl", "-1", 0, LAYER_ALL, "invalid duration", "sign" },
    { "ttl", "+5", 0, LAYER_ALL, "invalid duration", "plus" },
    { "ttl", "1.5s", 0, LAYER_ALL, "invalid duration", "fraction" },
    { "ttl", "0ms", 0, LAYER_ALL, "greater than 0", "zero with unit" },
    { "ttl", "8761h", 0, LAYER_ALL, "too long", "over a year" },
    { "ttl", "99999999999999999999", 0, LAYER_ALL, "too long",
      "overflow" },
    { "ttl", "", 0, LAYER_FLAG, "invalid duration ''",
      "empty (unset in env, missing in file)" },
    { "ttl", " 5s", 0, LAYER_FLAG | LAYER_ENV, "invalid duration",
      "leading space (the file trims it)" },
    { "capacity", "0", 0, LAYER_ALL, "out of range (1 to 2147483648)",
      "zero keys" },
    { "capacity", "2147483649", 0, LAYER_ALL, "out of range", "2^31+1" },
    { "capacity", "1e3", 0, LAYER_ALL, "invalid number", "exponent" },
    { "max-memory", "10x", 0, LAYER_ALL, "invalid size '10x'", "unit" },
    { "max-memory", "0", 0, LAYER_ALL, "out of range", "zero" },
    { "max-memory", "1025g", 0, LAYER_ALL, "out of range", "over 1t" },
    { "max-memory", "99999999999999999999k", 0, LAYER_ALL, "out of range",
      "overflow" },
    { "max-memory", "1kb", 0, LAYER_ALL, "invalid size", "two letters" },
    { "max-value-size", "0", 0, LAYER_ALL, "out of range", "zero" },
    { "max-value-size", "-1", 0, LAYER_ALL, "invalid size", "sign" },
    { "stale-while-revalidate", "soon", 0, LAYER_ALL, "invalid duration",
      "a word" },
    { "stale-if-error", "-1s", 0, LAYER_ALL, "invalid duration", "sign" },
    { "negative-ttl", "9000h", 0, LAYER_ALL, "too long", "over a year" },
    { "early-refresh", "x", 0, LAYER_ALL, "invalid factor 'x'", "a word" },
    { "early-refresh", "1001", 0, LAYER_ALL, "invalid factor", "too big" },
    { "early-refresh", "-1", 0, LAYER_ALL, "invalid factor", "negative" },
    { "early-refresh", "nan", 0, LAYER_ALL, "invalid factor", "not a number" },
    { "early-refresh", "1x", 0, LAYER_ALL, "invalid factor", "junk after" },
    { "early-refresh", "0x10", 0, LAYER_ALL, "invalid factor", "hex" },
    { "early-refresh", "1e2", 0, LAYER_ALL, "invalid factor", "exponent" },
    { "early-refresh", "+1", 0, LAYER_ALL, "invalid factor", "plus" },
    { "early-refresh", " 1", 0, LAYER_FLAG | LAYER_ENV, "invalid factor",
      "leading space (the file trims it)" },
    { "workers", "0", 0, LAYER_ALL, "out of range (1 to 1024)", "none" },
    { "workers", "1025", 0, LAYER_ALL, "out of range", "too many" },
    { "workers", "two", 0, LAYER_ALL, "invalid number 'two'", "word" },
    { "max-clients", "0", 0, LAYER_ALL, "out of range", "none" },
    { "backlog", "0", 0, LAYER_ALL, "out of range", "zero" },
    { "backlog", "65536", 0, LAYER_ALL, "out of range", "too big" },
    { "idle-timeout", "0", 0, LAYER_ALL, "greater than 0", "zero" },
    { "header-timeout", "10x", 0, LAYER_ALL, "invalid duration", "unit" },
    { "shutdown-timeout", "-1", 0, LAYER_ALL, "invalid duration", "sign" },
    { "log-level", "verbose", 0, LAYER_ALL, "invalid level 'verbose'",
      "unknown level" },
    { "log-level", "INFO", 0, LAYER_ALL, "invalid level", "upper case" },
    { "pid-file", "p", 1024, LAYER_ALL, "too long", "path length" },
    { "pid-file", "", 0, LAYER_FLAG, "--pid-file: empty value",
      "empty (unset in env, missing in file)" },
    { "config", "", 0, LAYER_FLAG, "--config: empty value", "no file" },
    { "http-auth-file", "", 0, LAYER_FLAG, "--http-auth-file: empty value",
      "an unset shell variable must not turn authentication off" },
    { "redis-tls-ca-file", "", 0, LAYER_FLAG, "empty value", "no file" },
    { "redis-tls-server-name", "", 0, LAYER_FLAG, "empty value",
      "no name" },
    { "key-prefix", "", 0, LAYER_FLAG, "--key-prefix: empty value",
      "an empty prefix is no prefix: leave it out" },
    { "redis-master", "", 0, LAYER_FLAG, "--redis-master: empty value",
      "no name" },
    { "access-log", "", 0, LAYER_FLAG, "empty value", "empty" },
    { "access-log", "a", 1024, LAYER_ALL, "too long", "path length" },
    { "allow-from", "10.0.0.1/8", 0, LAYER_ALL,
      "invalid address range '10.0.0.1/8'", "host bits set" },
    { "allow-from", "localhost", 0, LAYER_ALL, "invalid address range",
      "a name" },
    { "proxy-protocol-from", "::/129", 0, LAYER_ALL,
      "invalid address range", "prefix too long" },
    { "allow-keys", "", 0, LAYER_FLAG, "empty value", "empty" },
    { "allow-keys", "k", 300, LAYER_ALL, "too long", "glob length" },
    { "key-prefix", "p", 300, LAYER_ALL, "too long", "prefix length" },
    { "resp-password", "p", 512, LAYER_ALL, "too long",
      "RESP password length, not echoed" },
};

/* Options that need another one (the backend kind they belong to):
 * given alone they are an error, so the good cases give that too. */
static const struct option_context {
    const char *prefix;
    const char *args[5];
    const char *envs[3];
    const char *lines;
} option_contexts[] = {
    { "redis-read-from", { "--redis-cluster", "c:1", NULL },
      { "RCP_REDIS_CLUSTER=c:1", NULL }, "redis-cluster c:1\n" },
    { "redis-cluster-refresh", { "--redis-cluster", "c:1", NULL },
      { "RCP_REDIS_CLUSTER=c:1", NULL }, "redis-cluster c:1\n" },
    { "redis-sentinel-",
      { "--redis-sentinel", "s:1", "--redis-master", "m", NULL },
      { "RCP_REDIS_SENTINEL=s:1", "RCP_REDIS_MASTER=m", NULL },
      "redis-sentinel s:1\nredis-master m\n" },
};

static const struct option_context *
test_option_context(const char *name)
{
    static const struct option_context none = { "", { NULL }, { NULL }, "" };

    for (size_t i = 0; i < sizeof(option_contexts) / sizeof(option_contexts[0]);
         i++) {
        if (strncmp(name, option_contexts[i].prefix,
                    strlen(option_contexts[i].prefix))
            == 0) {
            return &option_contexts[i];
        }
    }
    return &none;
}

/* Appends the NULL-terminated ctx after n entries of v. */
static void
test_append(const char **v, size_t n, const char *const *ctx)
{
    while (*ctx != NULL) {
        v[n++] = *ctx++;
    }
    v[n] = NULL;
}

START_TEST(test_option_good)
{
    const struct option_good_case *c = &option_good_cases[_i];
    const struct option_context   *ctx = test_option_context(c->name);
    char                           flag[64];
    char                           joined[128];
    char                           env[128];
    char                           line[256];
    const char                    *args[8];
    const char                    *envs[4];

    /* --name value */
    snprintf(flag, sizeof(flag), "--%s", c->name);
    args[0] = flag;
    args[1] = c->value;
    test_append(args, 2, ctx->args);
    test_expect_ok(args, NULL, c->printed);

    /* --name=value */
    snprintf(joined, sizeof(joined), "--%s=%s", c->name, c->value);
    args[0] = joined;
    test_append(args, 1, ctx->args);
    test_expect_ok(args, NULL, c->printed);

    /* RCP_NAME=value */
    test_env_assign(env, sizeof(env), c->name, c->value);
    envs[0] = env;
    test_append(envs, 1, ctx->envs);
    test_expect_ok(NULL, envs, c->printed);

    /* a `name value` line in the file */
    snprintf(line, sizeof(line), "%s%s %s\n", ctx->lines, c->name, c->value);
    args[0] = "--config";
    args[1] = test_write_file(line);
    args[2] = NULL;
    test_expect_ok(args, NULL, c->printed);
}
END_TEST

START_TEST(test_option_bad)
{
    const struct option_bad_case *c = &option_bad_cases[_i];
    char                          value[2048];
    char                          flag[64];
    char                          prefix[CONFIG_PATH_MAX + 64];
    char                          env[2100];
    char                          line[2100];
    const char                   *args[4];
    const char                   *envs[2];

    if (c->repeat > 0) {
        ck_assert_uint_lt(c->repeat, sizeof(value));
        memset(value, c->value[0], c->repeat);
        snprintf(value + c->repeat, sizeof(value) - c->repeat, "%s",
                 c->value + 1);
    } else {
        snprintf(value, sizeof(value), "%s", c->value);
    }

    if (c->layers & LAYER_FLAG) {
        snprintf(flag, sizeof(flag), "--%s", c->name);
        snprintf(prefix, sizeof(prefix), "--%s: ", c->name);
        args[0] = flag;
        args[1] = value;
        args[2] = NULL;
        test_expect_error(args, NULL, prefix, c->what);
    }
    if (c->layers & LAYER_ENV) {
        test_env_assign(prefix, sizeof(prefix), c->name, "");
        snprintf(strchr(prefix, '='), 3, ": ");
        test_env_assign(env, sizeof(env), c->name, value);
        envs[0] = env;
        envs[1] = NULL;
        test_expect_error(NULL, envs, prefix, c->what);
    }
    if (c->layers & LAYER_FILE) {
        snprintf(line, sizeof(line), "# a comment\n\n%s %s\n", c->name,
                 value);
        args[0] = "--config";
        args[1] = test_write_file(line);
        args[2] = NULL;
        snprintf(prefix, sizeof(prefix), "%s:3: %s: ", args[1], c->name);
        test_expect_error(args, NULL, prefix, c->what);
    }
    if (strcmp(c->name, "redis-password") == 0
        || strcmp(c->name, "redis-user") == 0) {
        struct config cfg;
        char          err[CONFIG_ERR_MAX];

        /* A secret is never echoed, even when it is wrong. */
        args[0] = c->name[6] == 'p' ? "--redis-password" : "--redis-user";
        args[1] = value;
        args[2] = NULL;
        ck_assert_int_eq(test_load(&cfg, args, NULL, err), CONFIG_ERROR);
        ck_assert_ptr_null(strstr(err, value));
    }
}
END_TEST

/* --- Redis URLs merged with explicit options ---------------------------- */

START_TEST(test_redis_url_merge)
{
    struct config cfg;
    char          err[CONFIG_ERR_MAX];
    char         *out;
    const char   *url[] = { "--redis", "redis://alice:pw1@h:1/4", NULL };
    const char   *over[] = { "--redis", "rediss://:pw1@h", "--redis-password",
                             "pw2", "--redis-db", "7", "--redis-user",
                             "bob", NULL };
    const char   *fallback[] = { "REDIS_PASSWORD=pw3", NULL };
    const char   *tls_off[] = { "RCP_REDIS_TLS=no", NULL };
    const char   *tls_on[] = { "--redis", "h:6380", "--redis-tls", NULL };
    const char   *tls_unix[] = { "--redis", "unix:/tmp/r.sock",
                                 "--redis-tls", NULL };
    const char   *key_only[] = { "--redis-tls-key-file", "/k.pem", NULL };

    /* The URL's parts fill what no option gave. */
    ck_assert_int_eq(test_load(&cfg, url, NULL, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_user, "alice");
    ck_assert_str_eq(cfg.redis_password, "pw1");
    ck_assert_uint_eq(cfg.redis_db, 4);
    ck_assert(!cfg.redis_tls);
    out = test_print(&cfg);
    ck_assert_ptr_null(strstr(out, "pw1"));
    ck_assert_ptr_nonnull(strstr(out, "redis h:1\n"));
    ck_assert_ptr_nonnull(strstr(out, "redis-password ********\n"));
    free(out);

    /* Explicit options win over the URL. */
    ck_assert_int_eq(test_load(&cfg, over, NULL, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_password, "pw2");
    ck_assert_str_eq(cfg.redis_user, "bob");
    ck_assert_uint_eq(cfg.redis_db, 7);
    ck_assert(cfg.redis_tls);

    /* REDIS_PASSWORD is a fallback: a URL's password beats it. */
    ck_assert_int_eq(test_load(&cfg, url, fallback, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_password, "pw1");
    ck_assert_int_eq(test_load(&cfg, NULL, fallback, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_password, "pw3");

    /* rediss:// turns TLS on unless redis-tls says no. */
    ck_assert_int_eq(test_load(&cfg, (const char *[]){ "--redis",
                                                       "rediss://h", NULL },
                               tls_off, err), CONFIG_OK);
    ck_assert(!cfg.redis_tls);
    out = test_print(&cfg);
    ck_assert_ptr_nonnull(strstr(out, "redis h:6379\n"));
    ck_assert_ptr_nonnull(strstr(out, "redis-tls no\n"));
    free(out);

    /* --redis-tls on a plain address. */
    ck_assert_int_eq(test_load(&cfg, tls_on, NULL, err), CONFIG_OK);
    ck_assert(cfg.redis_tls);
    out = test_print(&cfg);
    ck_assert_ptr_nonnull(strstr(out, "redis rediss://h:6380\n"));
    free(out);

    ck_assert_int_eq(test_load(&cfg, tls_unix, NULL, err), CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "unix socket"));
    ck_assert_int_eq(test_load(&cfg, key_only, NULL, err), CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "--redis-tls-cert-file"));
}
END_TEST

/* --- the command line itself ------------------------------------------ */

static const struct cli_case {
    const char     *args[6];
    enum config_rc  rc;
    const char     *expect;     /* error text, or a printed line on OK */
    const char     *why;
} cli_cases[] = {
    { { "--bogus", NULL }, CONFIG_ERROR, "unknown option '--bogus'",
      "unknown long option" },
    { { "--bogus=1", NULL }, CONFIG_ERROR, "unknown option '--bogus'",
      "unknown, value not echoed" },
    { { "-x", NULL }, CONFIG_ERROR, "unknown option '-x'", "unknown short" },
    { { "--tt", "5s", NULL }, CONFIG_ERROR, "unknown option '--tt'",
      "abbreviations are not accepted" },
    { { "--max", "1", NULL }, CONFIG_ERROR, "unknown option '--max'",
      "ambiguous abbreviation" },
    { { "--ttl", NULL }, CONFIG_ERROR, "--ttl: missing value",
      "missing value, long" },
    { { "-t", NULL }, CONFIG_ERROR, "--ttl: missing value",
      "missing value, short" },
    { { "--check-config=yes", NULL }, CONFIG_ERROR,
      "--check-config: takes no value", "no-value flag with a value" },
    { { "--help=yes", NULL }, CONFIG_ERROR, "--help: takes no value",
      "--help with a value" },
    { { "stray", NULL }, CONFIG_ERROR, "unexpected argument 'stray'",
      "positional argument" },
    { { "--ttl", "5s", "stray", NULL }, CONFIG_ERROR,
      "unexpected argument 'stray'", "positional after options" },
    { { "--", "--ttl", NULL }, CONFIG_ERROR, "unexpected argument '--ttl'",
      "-- ends the options" },
    { { "--ttl", "10x", "--workers", "0", NULL }, CONFIG_ERROR,
      "--ttl: invalid duration", "the first error is reported" },
    { { "--bogus", "--ttl", "10x", NULL }, CONFIG_ERROR,
      "unknown option '--bogus'", "first error, unknown then value" },
    { { "--help", NULL }, CONFIG_HELP, NULL, "help" },
    { { "-h", NULL }, CONFIG_HELP, NULL, "short help" },
    { { "--version", NULL }, CONFIG_VERSION, NULL, "version" },
    { { "-V", NULL }, CONFIG_VERSION, NULL, "short version" },
    { { "--ttl", "10x", "--help", NULL }, CONFIG_HELP, NULL,
      "help wins over a bad value" },
    { { "-l", "8081", NULL }, CONFIG_OK, "listen *:8081", "-l" },
    { { "-r", "h:1", NULL }, CONFIG_OK, "redis h:1", "-r" },
    { { "-t", "3s", NULL }, CONFIG_OK, "ttl 3s", "-t" },
    { { "-t3s", NULL }, CONFIG_OK, "ttl 3s", "-t with attached value" },
    { { "-c", "7", NULL }, CONFIG_OK, "capacity 7", "-c" },
    { { "-w", "3", NULL }, CONFIG_OK, "workers 3", "-w" },
    { { "--ttl", "1s", "--ttl", "2s", NULL }, CONFIG_OK, "ttl 2s",
      "the last of a repeated flag wins" },
    { { "--redis-password=", NULL }, CONFIG_OK, "# redis-password (none)",
      "an empty password is none" },
    { { "--max-memory", "512k", NULL }, CONFIG_OK, "max-value-size 512k",
      "the default max-value-size shrinks to a small max-memory" },
    { { "--max-memory", "1m", "--max-value-size", "2m", NULL },
      CONFIG_ERROR, "--max-value-size: 2m is larger than --max-memory (1m)",
      "a chosen max-value-size must fit" },
};

START_TEST(test_cli)
{
    const struct cli_case *c = &cli_cases[_i];
    struct config          cfg;
    char                   err[CONFIG_ERR_MAX];
    enum config_rc         rc = test_load(&cfg, c->args, NULL, err);

    ck_assert_msg(rc == c->rc, "%s: rc %d, expected %d (%s)", c->why, rc,
                  c->rc, err);
    if (rc == CONFIG_ERROR) {
        ck_assert_msg(strstr(err, c->expect) != NULL, "%s: '%s' lacks '%s'",
                      c->why, err, c->expect);
    } else if (rc == CONFIG_OK) {
        test_assert_line(&cfg, c->expect);
    }
}
END_TEST

/* --- precedence ------------------------------------------------------- */

START_TEST(test_flag_over_env)
{
    const char *args[] = { "--ttl", "1s", NULL };
    const char *env[] = { "RCP_TTL=2s", NULL };

    test_expect_ok(args, env, "ttl 1s");
}
END_TEST

START_TEST(test_env_over_file)
{
    const char *args[] = { "--config", test_write_file("ttl 3s\n"), NULL };
    const char *env[] = { "RCP_TTL=2s", NULL };

    test_expect_ok(args, env, "ttl 2s");
}
END_TEST

START_TEST(test_flag_over_file)
{
    const char *args[] = { "--config", test_write_file("ttl 3s\n"),
                           "--ttl", "1s", NULL };

    test_expect_ok(args, NULL, "ttl 1s");
}
END_TEST

START_TEST(test_file_over_default)
{
    const char *args[] = { "--config", test_write_file("ttl 3s\n"), NULL };

    test_expect_ok(args, NULL, "ttl 3s");
    test_expect_ok(args, NULL, "capacity 10000");
}
END_TEST

START_TEST(test_all_layers_at_once)
{
    const char *args[] = { "--config",
                           test_write_file("ttl 3s\nworkers 3\n"
                                           "capacity 33\n"),
                           "--ttl", "1s", NULL };
    const char *env[] = { "RCP_TTL=2s", "RCP_WORKERS=2", NULL };
    struct config  cfg;
    char           err[CONFIG_ERR_MAX];

    ck_assert_int_eq(test_load(&cfg, args, env, err), CONFIG_OK);
    ck_assert_uint_eq(cfg.ttl_ms, 1000);
    ck_assert_uint_eq(cfg.workers, 2);
    ck_assert_uint_eq(cfg.capacity, 33);
    ck_assert_uint_eq(cfg.max_clients, 1024);
}
END_TEST

START_TEST(test_password_sources)
{
    const char   *file_args[] = { "--config",
                                  test_write_file("redis-password f\n"),
                                  NULL };
    const char   *flag_args[] = { "--config", test_file,
                                  "--redis-password", "a", NULL };
    const char   *both[] = { "REDIS_PASSWORD=r", "RCP_REDIS_PASSWORD=e",
                             NULL };
    const char   *plain[] = { "REDIS_PASSWORD=r", NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    ck_assert_int_eq(test_load(&cfg, file_args, NULL, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_password, "f");
    ck_assert_int_eq(test_load(&cfg, file_args, plain, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_password, "r");
    ck_assert_int_eq(test_load(&cfg, file_args, both, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_password, "e");
    ck_assert_int_eq(test_load(&cfg, flag_args, both, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_password, "a");
}
END_TEST

START_TEST(test_config_from_env)
{
    char          env[128];
    const char   *envs[] = { env, NULL };
    const char   *args[] = { "--config", "/nonexistent/flag.conf", NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    snprintf(env, sizeof(env), "RCP_CONFIG=%s",
             test_write_file("capacity 5\n"));
    ck_assert_int_eq(test_load(&cfg, NULL, envs, err), CONFIG_OK);
    ck_assert_uint_eq(cfg.capacity, 5);

    /* --config beats RCP_CONFIG, and a missing file names the flag. */
    test_expect_error(args, envs, "--config: cannot open "
                      "'/nonexistent/flag.conf': ", "No such file");
}
END_TEST

START_TEST(test_env_empty_and_foreign)
{
    /* Empty counts as unset; RCP_ names we do not know (RCP_BINARY is
     * the test harness's own) are ignored. */
    const char *env[] = { "RCP_TTL=", "RCP_BINARY=/x", "RCP_NOPE=1",
                          "XRCP_TTL=5s", NULL };

    test_expect_ok(NULL, env, "ttl 1m");
}
END_TEST

START_TEST(test_env_check_config_not_an_option)
{
    const char   *env[] = { "RCP_CHECK_CONFIG=1", "RCP_HELP=1", NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    ck_assert_int_eq(test_load(&cfg, NULL, env, err), CONFIG_OK);
    ck_assert(!cfg.check_config);
}
END_TEST

START_TEST(test_overridden_file_value_checked)
{
    const char *args[] = { "--config", test_write_file("ttl 10x\n"),
                           "--ttl", "1s", NULL };
    char        prefix[128];

    /* A file that only works while a flag hides its bad line would break
     * the day the flag goes. */
    snprintf(prefix, sizeof(prefix), "%s:1: ttl: ", test_file);
    test_expect_error(args, NULL, prefix, "invalid duration '10x'");
}
END_TEST

/* --- the file format -------------------------------------------------- */

START_TEST(test_file_format)
{
    const char   *args[] = { "--config",
                             test_write_file(
                                 "# comment\n"
                                 "\n"
                                 "   \t\n"
                                 "  # indented comment\n"
                                 "ttl 5m\r\n"
                                 "\tworkers \t 3  \n"
                                 "redis-password  p a#ss  \n"
                                 "capacity 1\n"
                                 "capacity 2\n"
                                 "log-level debug"),
                             NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    ck_assert_msg(test_load(&cfg, args, NULL, err) == CONFIG_OK, "%s", err);
    ck_assert_uint_eq(cfg.ttl_ms, 300000);
    ck_assert_uint_eq(cfg.workers, 3);
    ck_assert_str_eq(cfg.redis_password, "p a#ss");
    ck_assert_uint_eq(cfg.capacity, 2);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
    ck_assert_str_eq(cfg.config_file, test_file);
}
END_TEST

/* A UTF-8 byte order mark (Notepad's) starts the file, not a name; on
 * another line it is no blank, and the name it is glued to is unknown. */
START_TEST(test_file_utf8_bom)
{
    const char   *args[] = { "--config", NULL, NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    args[1] = test_write_file("\xEF\xBB\xBFttl 5m\nworkers 3\n");
    ck_assert_msg(test_load(&cfg, args, NULL, err) == CONFIG_OK, "%s", err);
    ck_assert_uint_eq(cfg.ttl_ms, 300000);
    ck_assert_uint_eq(cfg.workers, 3);

    args[1] = test_write_file("ttl 5m\n\xEF\xBB\xBFworkers 3\n");
    ck_assert_int_eq(test_load(&cfg, args, NULL, err), CONFIG_ERROR);
    ck_assert_msg(strstr(err, ":2: unknown option") != NULL, "%s", err);
}
END_TEST

static const struct file_error_case {
    const char *text;
    const char *what;       /* after "<path>:" */
    const char *why;
} file_error_cases[] = {
    { "ttl 5s\nbogus 3\n", "2: unknown option 'bogus'", "unknown option" },
    { "ttl 5s\n\n# x\nworkers\n", "4: workers: missing value",
      "no value, line counted past blanks and comments" },
    { "--ttl 5s\n", "1: unknown option '--ttl'", "flags are not keys" },
    { "config /etc/x.conf\n", "1: config: cannot be set in a config file",
      "no includes" },
    { "check-config 1\n", "1: unknown option 'check-config'",
      "not a file option" },
    { "ttl=5s\n", "1: unknown option 'ttl=5s'", "no '=' syntax" },
    { "TTL 5s\n", "1: unknown option 'TTL'", "names are lower case" },
    { "ttl 5s # five\n", "1: ttl: invalid duration '5s # five'",
      "only whole-line comments" },
};

START_TEST(test_file_errors)
{
    const struct file_error_case *c = &file_error_cases[_i];
    const char                   *args[] = { "--config",
                                             test_write_file(c->text),
                                             NULL };
    char                          prefix[128];

    snprintf(prefix, sizeof(prefix), "%s:", test_file);
    test_expect_error(args, NULL, prefix, c->what);
}
END_TEST

START_TEST(test_file_missing)
{
    const char *args[] = { "--config", "/nonexistent/rcp.conf", NULL };

    test_expect_error(args, NULL, "--config: cannot open "
                      "'/nonexistent/rcp.conf'", "No such file");
}
END_TEST

START_TEST(test_file_is_directory)
{
    const char *args[] = { "--config", "/", NULL };

    test_expect_error(args, NULL, "--config: cannot read '/'",
                      "directory");
}
END_TEST

/* --- --check-config --------------------------------------------------- */

static const struct check_case {
    const char *args[5];
    bool        file_bad;
    bool        check_config;
    const char *why;
} check_cases[] = {
    { { "--check-config", "--ttl", "10x", NULL }, false, true,
      "before the bad value" },
    { { "--ttl", "10x", "--check-config", NULL }, false, true,
      "after the bad value" },
    { { "--bogus", "--check-config", NULL }, false, true,
      "after an unknown option" },
    { { "--ttl", "--check-config", NULL }, false, false,
      "taken as --ttl's value: an error, and no check" },
    { { "--check-config", "--config", NULL }, true, true, "bad file" },
};

START_TEST(test_check_config_on_error)
{
    const struct check_case *c = &check_cases[_i];
    struct config            cfg;
    char                     err[CONFIG_ERR_MAX];
    const char              *args[6];
    size_t                   n = 0;

    for (; c->args[n] != NULL; n++) {
        args[n] = c->args[n];
    }
    if (c->file_bad) {
        args[n++] = test_write_file("workers 0\n");
    }
    args[n] = NULL;
    ck_assert_int_eq(test_load(&cfg, args, NULL, err), CONFIG_ERROR);
    ck_assert_msg(cfg.check_config == c->check_config, "%s", c->why);
}
END_TEST

START_TEST(test_check_config_off_by_default)
{
    const char   *bad[] = { "--ttl", "10x", NULL };
    const char   *good[] = { "--check-config", NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    ck_assert_int_eq(test_load(&cfg, bad, NULL, err), CONFIG_ERROR);
    ck_assert(!cfg.check_config);
    ck_assert_int_eq(test_load(&cfg, good, NULL, err), CONFIG_OK);
    ck_assert(cfg.check_config);
}
END_TEST

/* --- re-loading, as on SIGHUP ----------------------------------------- */

START_TEST(test_reload_same_result)
{
    const char   *args[] = { "--config",
                             test_write_file("ttl 5m\nworkers 3\n"),
                             "-c", "9", "--ttl=2s", NULL };
    const char   *env[] = { "RCP_BACKLOG=77", NULL };
    struct config a;
    struct config b;
    char          err[CONFIG_ERR_MAX];
    char         *pa;
    char         *pb;

    ck_assert_int_eq(test_load(&a, args, env, err), CONFIG_OK);
    ck_assert_int_eq(test_load(&b, args, env, err), CONFIG_OK);
    pa = test_print(&a);
    pb = test_print(&b);
    ck_assert_str_eq(pa, pb);
    ck_assert(test_has_line(pa, "ttl 2s"));
    ck_assert(test_has_line(pa, "capacity 9"));
    ck_assert(test_has_line(pa, "workers 3"));
    ck_assert(test_has_line(pa, "backlog 77"));
    free(pa);
    free(pb);
}
END_TEST

START_TEST(test_reload_reads_the_file_again)
{
    const char   *args[] = { "--config",
                             test_write_file("ttl 5m\nworkers 3\n"),
                             NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    ck_assert_int_eq(test_load(&cfg, args, NULL, err), CONFIG_OK);
    ck_assert_uint_eq(cfg.workers, 3);

    /* Same cfg, as the supervisor would pass it: a line removed from the
     * file goes back to its default rather than keeping the old value. */
    test_write_file("ttl 7s\n");
    ck_assert_int_eq(config_load(&cfg, 3,
                                 (char *const[]) { "rcp", "--config",
                                                   test_file, NULL },
                                 NULL, err, sizeof(err)), CONFIG_OK);
    ck_assert_uint_eq(cfg.ttl_ms, 7000);
    {
        struct config defaults;

        config_defaults(&defaults);
        ck_assert_uint_eq(cfg.workers, defaults.workers);
    }
}
END_TEST

START_TEST(test_reload_after_other_argv)
{
    const char   *first[] = { "--ttl", "1s", "--workers", "2", NULL };
    const char   *second[] = { "-w", "5", NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    /* getopt's optind must be reset, or the second call would start
     * past its argv's end. */
    ck_assert_int_eq(test_load(&cfg, first, NULL, err), CONFIG_OK);
    ck_assert_int_eq(test_load(&cfg, second, NULL, err), CONFIG_OK);
    ck_assert_uint_eq(cfg.workers, 5);
    ck_assert_uint_eq(cfg.ttl_ms, 60000);
}
END_TEST

/* --- output ----------------------------------------------------------- */

START_TEST(test_print_masks_password)
{
    const char   *args[] = { "--redis-password", "hunter2-secret",
                             "--redis-user", "app", NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];
    char         *text;

    ck_assert_int_eq(test_load(&cfg, args, NULL, err), CONFIG_OK);
    text = test_print(&cfg);
    ck_assert(test_has_line(text, "redis-password ********"));
    ck_assert(test_has_line(text, "redis-user app"));
    ck_assert_ptr_null(strstr(text, "hunter2"));
    free(text);

    ck_assert_int_eq(test_load(&cfg, NULL, NULL, err), CONFIG_OK);
    text = test_print(&cfg);
    ck_assert(test_has_line(text, "# redis-password (none)"));
    ck_assert_ptr_null(strstr(text, "********"));
    free(text);
}
END_TEST

START_TEST(test_list_layers)
{
    /* Repeats within a layer add up; a higher layer replaces. */
    const char   *args[] = { "--allow-keys", "a*", "--allow-keys", "b*",
                             NULL };
    const char   *env[] = { "RCP_ALLOW_KEYS=c* d*", NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];

    ck_assert_int_eq(test_load(&cfg, args, env, err), CONFIG_OK);
    ck_assert_uint_eq(cfg.allow_keys.n, 2);
    ck_assert_str_eq(cfg.allow_keys.items[1], "b*");
    ck_assert_int_eq(test_load(&cfg, NULL, env, err), CONFIG_OK);
    ck_assert_uint_eq(cfg.allow_keys.n, 2);
    ck_assert_str_eq(cfg.allow_keys.items[0], "c*");
}
END_TEST

START_TEST(test_print_masks_resp_password)
{
    const char   *env[] = { "RCP_RESP_PASSWORD=hunter2-resp", NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];
    char         *text;

    ck_assert_int_eq(test_load(&cfg, NULL, env, err), CONFIG_OK);
    ck_assert_str_eq(cfg.resp_password, "hunter2-resp");
    text = test_print(&cfg);
    ck_assert(test_has_line(text, "resp-password ********"));
    ck_assert_ptr_null(strstr(text, "hunter2"));
    free(text);
}
END_TEST

START_TEST(test_print_round_trip)
{
    const char   *args[] = { "--listen", "[::1]:81", "--resp-listen",
                             "6380", "--redis", "unix:/tmp/r.sock",
                             "--ttl", "1500ms", NULL };
    const char   *env[] = { "RCP_MAX_MEMORY=3g", "RCP_PID_FILE=/run/p",
                            "RCP_ACCESS_LOG=stderr", "RCP_REDIS_DB=4",
                            NULL };
    struct config cfg;
    char          err[CONFIG_ERR_MAX];
    char         *first;
    char         *second;
    const char   *reload[] = { "--config", NULL, NULL };

    /* What --check-config prints is itself a valid config file that
     * gives the same configuration. */
    ck_assert_int_eq(test_load(&cfg, args, env, err), CONFIG_OK);
    first = test_print(&cfg);
    reload[1] = test_write_file(first);
    ck_assert_msg(test_load(&cfg, reload, NULL, err) == CONFIG_OK, "%s",
                  err);
    second = test_print(&cfg);
    /* The second names the file it was read from; the rest is equal. */
    ck_assert_ptr_nonnull(strstr(second, "# read from "));
    ck_assert_str_eq(strchr(strstr(second, "# read from "), '\n') + 1,
                     strchr(first, '\n') + 1);
    free(first);
    free(second);
}
END_TEST

static const char *const long_option_names[] = {
    "listen", "resp-listen", "admin-listen", "redis", "redis-user",
    "redis-password", "redis-db", "redis-timeout", "ttl", "capacity",
    "max-memory", "max-value-size", "workers", "max-clients", "backlog",
    "idle-timeout", "header-timeout", "shutdown-timeout", "config",
    "log-level", "pid-file", "access-log", "check-config", "help",
    "version",
};

START_TEST(test_cluster_seeds)
{
    struct config cfg;
    char          err[CONFIG_ERR_MAX];
    char         *text;
    const char   *args[] = { "--redis-cluster",
                             "rediss://alice:hunter2@10.0.0.9:7000,h:7001",
                             NULL };
    const char   *both[] = { "--redis", "h:1", "--redis-cluster", "h:2",
                             NULL };
    const char   *db[] = { "--redis-cluster", "redis://h:2/3", NULL };

    ck_assert_int_eq(test_load(&cfg, args, NULL, err), CONFIG_OK);
    /* The first seed's URL gives the address, user, password and TLS. */
    ck_assert_str_eq(cfg.redis.host, "10.0.0.9");
    ck_assert_uint_eq(cfg.redis.port, 7000);
    ck_assert_str_eq(cfg.redis_user, "alice");
    ck_assert_str_eq(cfg.redis_password, "hunter2");
    ck_assert(cfg.redis_tls);
    ck_assert_uint_eq(cfg.redis_cluster_refresh_ms, 10000);
    text = test_print(&cfg);
    ck_assert_ptr_null(strstr(text, "hunter2"));
    ck_assert_ptr_nonnull(strstr(text, "# redis (the first"));
    free(text);
    /* Two backends named: an error, not a silent choice. */
    ck_assert_int_eq(test_load(&cfg, both, NULL, err), CONFIG_ERROR);
    ck_assert_str_eq(err, "--redis-cluster and --redis both name the "
                     "backend: give only one of --redis, --redis-cluster "
                     "and --redis-sentinel");
    ck_assert_int_eq(test_load(&cfg, db, NULL, err), CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "only db 0"));
}
END_TEST

START_TEST(test_sentinel_options)
{
    struct config cfg;
    char          err[CONFIG_ERR_MAX];
    const char   *args[] = { "--redis-sentinel", "10.0.0.1:26379,[::1]:26380",
                             "--redis-master", "mymaster",
                             "--redis-sentinel-password", "hunter2", NULL };
    const char   *both[] = { "--redis-sentinel", "s:1", "--redis-master",
                             "m", "--redis-cluster", "c:1", NULL };
    char         *text;

    ck_assert_int_eq(test_load(&cfg, args, NULL, err), CONFIG_OK);
    ck_assert_str_eq(cfg.redis_master, "mymaster");
    ck_assert_str_eq(cfg.redis_sentinel_password, "hunter2");
    text = test_print(&cfg);
    ck_assert_ptr_null(strstr(text, "hunter2"));
    ck_assert_ptr_nonnull(strstr(text, "redis-master mymaster\n"));
    free(text);
    const char   *no_name[] = { "--redis-sentinel", "s:1", NULL };
    const char   *no_sentinel[] = { "--redis-master", "m", NULL };
    const char   *primary[] = { "--redis", "r:1", "--redis-read-from",
                                "primary", NULL };
    static const struct {
        const char *args[7];
        const char *what;
    } lonely[] = {
        { { "--redis", "r:1", "--redis-read-from", "replica", NULL },
          "--redis-read-from: needs --redis-cluster" },
        { { "--redis-read-from", "prefer-replica", "--redis-sentinel", "s:1",
            "--redis-master", "m", NULL },
          "--redis-read-from: needs --redis-cluster" },
        { { "--redis", "r:1", "--redis-cluster-refresh", "30s", NULL },
          "--redis-cluster-refresh: needs --redis-cluster" },
        { { "--redis-cluster", "c:1", "--redis-sentinel-user", "u", NULL },
          "--redis-sentinel-user: needs --redis-sentinel" },
        { { "--redis", "r:1", "--redis-sentinel-password", "p", NULL },
          "--redis-sentinel-password: needs --redis-sentinel" },
    };

    /* Sentinel and cluster: an error, whichever comes first. */
    ck_assert_int_eq(test_load(&cfg, both, NULL, err), CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "--redis-sentinel and "
                                      "--redis-cluster both name"));
    ck_assert_int_eq(test_load(&cfg, no_name, NULL, err), CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "needs --redis-master"));
    ck_assert_int_eq(test_load(&cfg, no_sentinel, NULL, err), CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "needs --redis-sentinel"));
    /* Another kind's options would do nothing: an error, not silence. */
    for (size_t i = 0; i < sizeof(lonely) / sizeof(lonely[0]); i++) {
        ck_assert_msg(test_load(&cfg, lonely[i].args, NULL, err)
                          == CONFIG_ERROR,
                      "%s accepted", lonely[i].what);
        ck_assert_msg(strstr(err, lonely[i].what) != NULL, "%s: '%s'",
                      lonely[i].what, err);
    }
    /* Their defaults, said out loud, are fine with any backend. */
    ck_assert_int_eq(test_load(&cfg, primary, NULL, err), CONFIG_OK);
}
END_TEST

START_TEST(test_tracking_options)
{
    struct config cfg;
    char          err[CONFIG_ERR_MAX];
    const char   *bcast[] = { "--tracking", "bcast", "--tracking-prefix",
                              "user:", "--tracking-prefix", "item: page:",
                              NULL };
    const char   *no_bcast[] = { "--tracking", "default",
                                 "--tracking-prefix", "user:", NULL };
    const char   *overlap[] = { "--tracking", "bcast", "--tracking-prefix",
                                "user:", "--tracking-prefix", "user:1",
                                NULL };
    const char   *cluster[] = { "--tracking", "default", "--redis-cluster",
                                "c:1", NULL };
    const char   *cluster_replica[] = { "--tracking", "bcast",
                                        "--redis-cluster", "c:1",
                                        "--redis-read-from", "replica", NULL };
    const char   *sentinel[] = { "--tracking", "default", "--redis-sentinel",
                                 "s:1", "--redis-master", "m", NULL };
    const char   *env_prefix[] = { "RCP_TRACKING=bcast",
                                   "RCP_TRACKING_PREFIX=a: b:", NULL };
    char         *text;

    ck_assert_int_eq(test_load(&cfg, bcast, NULL, err), CONFIG_OK);
    ck_assert_int_eq(cfg.tracking, CONFIG_TRACKING_BCAST);
    ck_assert_uint_eq(cfg.tracking_prefixes.n, 3);
    ck_assert_str_eq(cfg.tracking_prefixes.items[2], "page:");
    text = test_print(&cfg);
    ck_assert_ptr_nonnull(strstr(text, "tracking bcast\n"));
    ck_assert_ptr_nonnull(strstr(text, "tracking-prefix user: item: page:\n"));
    free(text);
    ck_assert_int_eq(test_load(&cfg, NULL, env_prefix, err), CONFIG_OK);
    ck_assert_uint_eq(cfg.tracking_prefixes.n, 2);
    /* The default is off; prefixes are bcast's alone. */
    ck_assert_int_eq(test_load(&cfg, NULL, NULL, err), CONFIG_OK);
    ck_assert_int_eq(cfg.tracking, CONFIG_TRACKING_OFF);
    ck_assert_int_eq(test_load(&cfg, no_bcast, NULL, err), CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "--tracking-prefix: only with "
                                      "--tracking bcast"));
    ck_assert_int_eq(test_load(&cfg, overlap, NULL, err), CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "'user:' overlaps 'user:1'"));
    /* Per node, on primaries; replica reads are refused at start. */
    ck_assert_int_eq(test_load(&cfg, cluster, NULL, err), CONFIG_OK);
    ck_assert_int_eq(test_load(&cfg, cluster_replica, NULL, err),
                     CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "only with --redis-read-from primary"));
    ck_assert_int_eq(test_load(&cfg, sentinel, NULL, err), CONFIG_OK);
}
END_TEST

/* --redis, --redis-cluster and --redis-sentinel: at most one, whatever
 * layers they come from; the error names where each came from. */
static const struct backend_choice_case {
    const char *flag[5];        /* NULL-terminated */
    const char *env[3];         /* NULL-terminated */
    const char *file;           /* NULL: no file */
    const char *error;          /* NULL: accepted; else err contains it */
    const char *why;
} backend_choice_cases[] = {
    { { "--redis", "h:1", NULL }, { "RCP_REDIS_CLUSTER=c:1", NULL }, NULL,
      "RCP_REDIS_CLUSTER and --redis both name the backend",
      "cluster from the environment, redis from a flag" },
    { { NULL }, { "RCP_REDIS=h:1", NULL }, "redis-cluster c:1\n",
      "redis-cluster (config file) and RCP_REDIS both name",
      "cluster from the file, redis from the environment" },
    { { NULL }, { NULL }, "redis h:1\nredis-sentinel s:1\n"
      "redis-master m\n", "redis-sentinel (config file) and redis "
      "(config file) both name", "both in the file" },
    { { "--redis-sentinel", "s:1", "--redis-master", "m", NULL }, { NULL },
      "redis 127.0.0.1:6379\n", "--redis-sentinel and redis (config file)",
      "an explicit default --redis still counts" },
    { { "--redis-cluster", "c:1", NULL },
      { "RCP_REDIS_SENTINEL=s:1", "RCP_REDIS_MASTER=m", NULL },
      "redis h:1\n", "RCP_REDIS_SENTINEL and --redis-cluster both name",
      "all three: the error names two" },
    { { "--redis-cluster", "off", NULL }, { NULL }, "redis h:1\n", NULL,
      "--redis-cluster off is no cluster" },
    { { "--redis-cluster", "c:1", NULL }, { "REDIS_PASSWORD=pw", NULL },
      NULL, NULL, "a password is no backend" },
    { { NULL }, { "RCP_REDIS_SENTINEL=s:1", "RCP_REDIS_MASTER=m", NULL },
      NULL, NULL, "sentinel alone" },
};

/* Two of our own ports on one address: refused at load, naming both
 * options, rather than at start as "Address already in use". */
static const struct backend_choice_case listener_cases[] = {
    { { "--listen", "8080", "--resp-listen", "8080", NULL }, { NULL }, NULL,
      "--resp-listen and --listen both use port 8080",
      "the same bare port twice" },
    { { "--resp-listen", "127.0.0.1:9121", NULL }, { NULL }, NULL,
      "--admin-listen and --resp-listen both use port 9121",
      "onto the default admin port" },
    { { "--listen", "127.0.0.1:7000", NULL }, { NULL },
      "admin-listen *:7000\n",
      "admin-listen (config file) and --listen both use port 7000",
      "every address overlaps loopback on that port" },
    { { "--listen", "[::]:7000", NULL }, { "RCP_RESP_LISTEN=[::1]:7000",
      NULL }, NULL, "RCP_RESP_LISTEN and --listen both use port 7000",
      "the IPv6 any address overlaps ::1" },
    { { "--listen", "127.0.0.1:7000", "--resp-listen", "127.0.0.2:7000",
        NULL }, { NULL }, NULL, NULL, "two loopback addresses, one port" },
    { { "--listen", "7000", "--admin-listen", "off", NULL },
      { "RCP_RESP_LISTEN=off", NULL }, "admin-listen 7000\n", NULL,
      "off takes no port" },
    { { "--listen", "127.0.0.1:9121", "--admin-listen", "127.0.0.1:9122",
        NULL }, { NULL }, NULL, NULL, "moved out of the way" },
};

static void
test_choice(const struct backend_choice_case *tc)
{
    struct config cfg;
    char          err[CONFIG_ERR_MAX] = "";
    const char   *args[8];
    size_t        n = 0;
    enum config_rc rc;

    for (size_t i = 0; tc->flag[i] != NULL; i++) {
        args[n++] = tc->flag[i];
    }
    if (tc->file != NULL) {
        args[n++] = "--config";
        args[n++] = test_write_file(tc->file);
    }
    args[n] = NULL;
    rc = test_load(&cfg, args, tc->env, err);
    if (tc->error == NULL) {
        ck_assert_msg(rc == CONFIG_OK, "%s: %s", tc->why, err);
    } else {
        ck_assert_msg(rc == CONFIG_ERROR, "%s: accepted", tc->why);
        ck_assert_msg(strstr(err, tc->error) != NULL, "%s: '%s'", tc->why,
                      err);
        ck_assert_msg(strchr(err, '\n') == NULL, "%s: one line", tc->why);
    }
}

START_TEST(test_backend_choice)
{
    test_choice(&backend_choice_cases[_i]);
}
END_TEST

START_TEST(test_listener_clash)
{
    test_choice(&listener_cases[_i]);
}
END_TEST

START_TEST(test_usage_lists_every_option)
{
    char   *text = NULL;
    size_t  len = 0;
    FILE   *f = open_memstream(&text, &len);
    char    flag[64];

    ck_assert_ptr_nonnull(f);
    config_usage(f, "rcp");
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_ptr_nonnull(strstr(text, "Usage: rcp "));
    for (size_t i = 0; i < sizeof(long_option_names) / sizeof(char *);
         i++) {
        snprintf(flag, sizeof(flag), "--%s ", long_option_names[i]);
        ck_assert_msg(strstr(text, flag) != NULL, "%s missing", flag);
    }
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');

        ck_assert_ptr_nonnull(nl);
        ck_assert_msg(nl - p <= 80, "line over 80 columns: %.*s",
                      (int) (nl - p), p);
        p = nl + 1;
    }
    free(text);
}
END_TEST

START_TEST(test_usage_defaults_are_the_defaults)
{
    char          *text = NULL;
    size_t         len = 0;
    FILE          *f = open_memstream(&text, &len);
    struct config  defaults;
    struct config  cfg;
    char           err[CONFIG_ERR_MAX];
    char          *want;
    char          *line;
    char          *save = NULL;
    int            checked = 0;

    ck_assert_ptr_nonnull(f);
    config_usage(f, "rcp");
    ck_assert_int_eq(fclose(f), 0);
    config_defaults(&defaults);
    want = test_print(&defaults);

    /* Every "--name ARG ... [default]" line: giving the default as the
     * value changes nothing, so --help cannot drift from the code. */
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char        name[64];
        char        value[64];
        char       *flag = strstr(line, "--");
        char       *open = strrchr(line, '[');
        char       *close = strrchr(line, ']');
        const char *args[3];
        char       *got;

        if (flag == NULL || open == NULL || close == NULL || close < open
            || sscanf(flag, "%63s", name) != 1) {
            continue;
        }
        snprintf(value, sizeof(value), "%.*s", (int) (close - open - 1),
                 open + 1);
        if (strcmp(value, "none") == 0
            || strcmp(value, "number of CPUs") == 0
            || strcmp(name, "--config") == 0
            || strstr(name, "brackets") != NULL) {
            continue;
        }
        args[0] = name;
        args[1] = value;
        args[2] = NULL;
        ck_assert_msg(test_load(&cfg, args, NULL, err) == CONFIG_OK,
                      "%s %s: %s", name, value, err);
        got = test_print(&cfg);
        ck_assert_msg(strcmp(got, want) == 0, "%s [%s] is not the default",
                      name, value);
        free(got);
        checked++;
    }
    ck_assert_int_ge(checked, 17);
    free(want);
    free(text);
}
END_TEST

START_TEST(test_defaults)
{
    struct config cfg;
    long          ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    config_defaults(&cfg);
    ck_assert(cfg.listen.enabled);
    ck_assert_str_eq(cfg.listen.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen.port, 8080);
    ck_assert(!cfg.resp_listen.enabled);
    ck_assert(cfg.admin_listen.enabled);
    ck_assert_uint_eq(cfg.admin_listen.port, 9121);
    ck_assert(!cfg.redis.is_unix);
    ck_assert_str_eq(cfg.redis.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.redis.port, 6379);
    ck_assert_str_eq(cfg.redis_user, "");
    ck_assert_str_eq(cfg.redis_password, "");
    ck_assert_uint_eq(cfg.redis_db, 0);
    ck_assert_uint_eq(cfg.redis_timeout_ms, 1000);
    ck_assert_uint_eq(cfg.ttl_ms, 60000);
    ck_assert_uint_eq(cfg.capacity, 10000);
    ck_assert_uint_eq(cfg.max_memory_bytes, 64u << 20);
    ck_assert_uint_eq(cfg.max_value_bytes, 1u << 20);
    ck_assert_uint_eq(cfg.workers, ncpu < 1 ? 1 : ncpu > 1024 ? 1024
                                                              : ncpu);
    ck_assert_uint_eq(cfg.max_clients, 1024);
    ck_assert_uint_eq(cfg.backlog, 511);
    ck_assert_uint_eq(cfg.idle_timeout_ms, 60000);
    ck_assert_uint_eq(cfg.header_timeout_ms, 10000);
    ck_assert_uint_eq(cfg.shutdown_timeout_ms, 10000);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
    ck_assert_str_eq(cfg.config_file, "");
    ck_assert_str_eq(cfg.pid_file, "");
    ck_assert_str_eq(cfg.access_log, "");
    ck_assert(!cfg.check_config);
}
END_TEST

START_TEST(test_error_buffer_small)
{
    char         *argv[] = { "rcp", "--ttl", "10x", NULL };
    struct config cfg;
    char          err[8];

    /* A short buffer gets a cut, terminated line. */
    ck_assert_int_eq(config_load(&cfg, 3, argv, NULL, err, sizeof(err)),
                     CONFIG_ERROR);
    ck_assert_str_eq(err, "--ttl: ");
}
END_TEST

#define LOOP(tc, fn, cases)                                                \
    tcase_add_loop_test(tc, fn, 0,                                         \
                        (int) (sizeof(cases) / sizeof(cases[0])))

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_test(tc, test_defaults);
    suite_add_tcase(s, tc);

    tc = tcase_create("options");
    tcase_add_checked_fixture(tc, test_file_setup, test_file_teardown);
    LOOP(tc, test_option_good, option_good_cases);
    LOOP(tc, test_option_bad, option_bad_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("command_line");
    LOOP(tc, test_cli, cli_cases);
    tcase_add_test(tc, test_error_buffer_small);
    suite_add_tcase(s, tc);

    tc = tcase_create("precedence");
    tcase_add_checked_fixture(tc, test_file_setup, test_file_teardown);
    tcase_add_test(tc, test_flag_over_env);
    tcase_add_test(tc, test_env_over_file);
    tcase_add_test(tc, test_flag_over_file);
    tcase_add_test(tc, test_file_over_default);
    tcase_add_test(tc, test_all_layers_at_once);
    tcase_add_test(tc, test_password_sources);
    tcase_add_test(tc, test_config_from_env);
    tcase_add_test(tc, test_env_empty_and_foreign);
    tcase_add_test(tc, test_env_check_config_not_an_option);
    tcase_add_test(tc, test_overridden_file_value_checked);
    suite_add_tcase(s, tc);

    tc = tcase_create("config_file");
    tcase_add_checked_fixture(tc, test_file_setup, test_file_teardown);
    tcase_add_test(tc, test_file_format);
    tcase_add_test(tc, test_file_utf8_bom);
    LOOP(tc, test_file_errors, file_error_cases);
    tcase_add_test(tc, test_file_missing);
    tcase_add_test(tc, test_file_is_directory);
    suite_add_tcase(s, tc);

    tc = tcase_create("check_config");
    tcase_add_checked_fixture(tc, test_file_setup, test_file_teardown);
    LOOP(tc, test_check_config_on_error, check_cases);
    tcase_add_test(tc, test_check_config_off_by_default);
    suite_add_tcase(s, tc);

    tc = tcase_create("reload");
    tcase_add_checked_fixture(tc, test_file_setup, test_file_teardown);
    tcase_add_test(tc, test_reload_same_result);
    tcase_add_test(tc, test_reload_reads_the_file_again);
    tcase_add_test(tc, test_reload_after_other_argv);
    suite_add_tcase(s, tc);

    tc = tcase_create("output");
    tcase_add_checked_fixture(tc, test_file_setup, test_file_teardown);
    tcase_add_test(tc, test_print_masks_password);
    tcase_add_test(tc, test_print_masks_resp_password);
    tcase_add_test(tc, test_list_layers);
    tcase_add_test(tc, test_print_round_trip);
    tcase_add_test(tc, test_cluster_seeds);
    tcase_add_test(tc, test_sentinel_options);
    tcase_add_test(tc, test_tracking_options);
    tcase_add_loop_test(tc, test_backend_choice, 0,
                        (int) (sizeof(backend_choice_cases)
                               / sizeof(backend_choice_cases[0])));
    tcase_add_loop_test(
        tc, test_listener_clash, 0,
        (int) (sizeof(listener_cases) / sizeof(listener_cases[0])));
    tcase_add_test(tc, test_usage_lists_every_option);
    tcase_add_test(tc, test_redis_url_merge);
    tcase_add_test(tc, test_usage_defaults_are_the_defaults);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
