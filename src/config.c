/*
 * config: owns the options table (config_options[]) and the merge of the
 * four layers into one struct config (the value parsers and printers it
 * applies are config_parse.c's):
 *
 *   flags (argv, getopt_long)        highest
 *   environment RCP_<OPTION>
 *   environment REDIS_PASSWORD       (only --redis-password)
 *   config file (--config/RCP_CONFIG)
 *   defaults                         lowest
 *
 * Every value, whatever its layer, goes through config_set(), so "30s"
 * means the same on the command line, in RCP_TTL and in the file.  The
 * layers are applied highest first and each records in set_by[] which
 * layer gave an option its value; a lower layer's value for an option
 * already set is still parsed and range-checked, into a scratch struct,
 * so a bad line in the file is reported even while a flag hides it and
 * a file that passes --check-config passes without the flags too.
 *
 * Invariants: config_load() starts from config_defaults() and depends only
 * on its arguments and the file, so the supervisor can call it again on
 * SIGHUP with the same argv and envp to re-read the file.  getopt's
 * global state is reset (optind = 0) on every call, and argv is never
 * permuted ('+' in the option string), so a second call sees the same
 * argv as the first.  Errors are one line of text, never logged here.
 */
#include "rcp_autoconf.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "cidr.h"
#include "config.h"
#include "redis_url.h"

/* Longest duration accepted: a year.  Nothing here needs more, and it
 * keeps "now + timeout" far from overflowing in the workers' timers. */
#define CONFIG_DURATION_MAX_MS (365ULL * 24 * 3600 * 1000)
#define CONFIG_SIZE_MAX_BYTES  (1ULL << 40)
#define CONFIG_WORKERS_MAX     1024
#define CONFIG_CAPACITY_MAX    (1ULL << 31)
#define CONFIG_REDIS_DB_MAX    ((1ULL << 31) - 1)
#define CONFIG_MAX_CLIENTS_MAX (1ULL << 20)
#define CONFIG_BACKLOG_MAX     65535
#define CONFIG_ECHO_MAX        80 /* bytes of a bad value in errors */
#define CONFIG_ENV_NAME_MAX    64
#define CONFIG_UTF8_BOM        "\xEF\xBB\xBF"

/* What a field holds, and so how its value is parsed and printed. */
enum config_kind {
    CONFIG_KIND_LISTEN,       /* struct config_listen, `off` refused */
    CONFIG_KIND_LISTEN_OFF,   /* struct config_listen, `off` allowed */
    CONFIG_KIND_REDIS,        /* struct config_redis */
    CONFIG_KIND_SEEDS,        /* char[CONFIG_PATH_MAX]: Redis addresses,
                                 comma-separated, "" none */
    CONFIG_KIND_SECRET,       /* char[CONFIG_SECRET_MAX], "" is none */
    CONFIG_KIND_PATH,         /* char[CONFIG_PATH_MAX], "" is none */
    CONFIG_KIND_ACCESS_LOG,   /* char[CONFIG_PATH_MAX]: off/stderr/FILE */
    CONFIG_KIND_DURATION,     /* uint64_t milliseconds, > 0 */
    CONFIG_KIND_DURATION_OFF, /* uint64_t milliseconds, 0 is off */
    CONFIG_KIND_FACTOR,       /* double in [min, max], e.g. 1.5 */
    CONFIG_KIND_SIZE,         /* uint64_t bytes in [min, max] */
    CONFIG_KIND_U32,          /* uint32_t in [min, max] */
    CONFIG_KIND_LOG_LEVEL,    /* enum log_level */
    CONFIG_KIND_READ_FROM,    /* enum config_read_from */
    CONFIG_KIND_TRACKING,     /* enum config_tracking */
    CONFIG_KIND_BOOL,         /* bool: a flag without a value; yes/no
                                 in the environment and the file */
    CONFIG_KIND_STRING,       /* char[CONFIG_ITEM_MAX], "" is none */
    CONFIG_KIND_GLOBS,        /* struct config_list of key patterns */
    CONFIG_KIND_CIDRS,        /* struct config_list of address ranges */
    CONFIG_KIND_PREFIXES,     /* struct config_list of key prefixes */
    CONFIG_KIND_CHECK,        /* --check-config: no value */
    CONFIG_KIND_HELP,         /* -h: no value, no field */
    CONFIG_KIND_VERSION       /* -V: no value, no field */
};

/* Where an option may be given. */
#define CONFIG_FROM_FLAG 1u
#define CONFIG_FROM_ENV  2u
#define CONFIG_FROM_FILE 4u

#define CONFIG_FROM_ALL (CONFIG_FROM_FLAG | CONFIG_FROM_ENV | CONFIG_FROM_FILE)

/* The layers, in increasing precedence; set_by[] holds one per option. */
enum config_layer {
    CONFIG_LAYER_DEFAULT = 0,
    CONFIG_LAYER_FILE,
    CONFIG_LAYER_ENV_FALLBACK, /* REDIS_PASSWORD */
    CONFIG_LAYER_ENV,
    CONFIG_LAYER_FLAG
};

enum config_group {
    CONFIG_GROUP_LISTEN = 0,
    CONFIG_GROUP_REDIS,
    CONFIG_GROUP_CACHE,
    CONFIG_GROUP_PROCESS,
    CONFIG_GROUP_ACCESS,
    CONFIG_GROUP_CONTROL
};

#define CONFIG_CLUSTER_REFRESH_MS 10000 /* --redis-cluster-refresh */

static const char *const config_group_titles[] = {
    [CONFIG_GROUP_LISTEN] = "Listening:",
    [CONFIG_GROUP_REDIS] = "Backing Redis:",
    [CONFIG_GROUP_CACHE] = "Cache:",
    [CONFIG_GROUP_PROCESS] = "Workers, connections and timeouts:",
    [CONFIG_GROUP_ACCESS] = "Access control (data ports):",
    [CONFIG_GROUP_CONTROL] = "Configuration, logging and control:",
};

struct config_option {
    const char       *name;       /* borrowed: static; "--name", file key */
    char              short_name; /* 0 when the option has none */
    enum config_kind  kind;
    size_t            offset; /* of the field in struct config */
    uint64_t          min;    /* SIZE and U32 only */
    uint64_t          max;    /* SIZE and U32 only */
    unsigned          from;   /* CONFIG_FROM_* bits */
    enum config_group group;
    const char       *arg;          /* borrowed: static; --help placeholder */
    const char       *default_text; /* borrowed: static; as in DESIGN.md */
    const char       *help;         /* borrowed: static; one --help line */
};

#define CONFIG_FIELD(f) offsetof(struct config, f)

/*
 * The one table: getopt's long options, the environment names, the file
 * keys, --help and --check-config's output all come from here, in this
 * order.  default_text is checked against config_defaults() by the unit
 * tests, so the two cannot drift apart.
 */
static const struct config_option config_options[] = {
    { "listen", 'l', CONFIG_KIND_LISTEN, CONFIG_FIELD(listen), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_LISTEN, "[HOST:]PORT", "127.0.0.1:8080",
      "HTTP data port" },
    { "resp-listen", 0, CONFIG_KIND_LISTEN_OFF, CONFIG_FIELD(resp_listen), 0,
      0, CONFIG_FROM_ALL, CONFIG_GROUP_LISTEN, "[HOST:]PORT|off", "off",
      "Redis-protocol data port" },
    { "admin-listen", 0, CONFIG_KIND_LISTEN_OFF, CONFIG_FIELD(admin_listen), 0,
      0, CONFIG_FROM_ALL, CONFIG_GROUP_LISTEN, "[HOST:]PORT|off",
      "127.0.0.1:9121", "admin HTTP port" },
    { "redis", 'r', CONFIG_KIND_REDIS, CONFIG_FIELD(redis), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "HOST:PORT|unix:PATH|URL",
      "127.0.0.1:6379", "the backing Redis" },
    { "redis-user", 0, CONFIG_KIND_SECRET, CONFIG_FIELD(redis_user), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "NAME", "none", "AUTH user name" },
    { "redis-password", 0, CONFIG_KIND_SECRET, CONFIG_FIELD(redis_password), 0,
      0, CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "PASSWORD", "none",
      "AUTH password (or REDIS_PASSWORD)" },
    { "redis-db", 0, CONFIG_KIND_U32, CONFIG_FIELD(redis_db), 0,
      CONFIG_REDIS_DB_MAX, CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "N", "0",
      "database to SELECT" },
    { "redis-timeout", 0, CONFIG_KIND_DURATION, CONFIG_FIELD(redis_timeout_ms),
      0, 0, CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "DURATION", "1s",
      "per-request deadline to Redis (504)" },
    { "redis-tls", 0, CONFIG_KIND_BOOL, CONFIG_FIELD(redis_tls), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, NULL, NULL,
      "connect to Redis with TLS (as rediss://)" },
    { "redis-tls-ca-file", 0, CONFIG_KIND_PATH,
      CONFIG_FIELD(redis_tls_ca_file), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_REDIS, "FILE", "none",
      "CA certificates (else the system's)" },
    { "redis-tls-ca-dir", 0, CONFIG_KIND_PATH, CONFIG_FIELD(redis_tls_ca_dir),
      0, 0, CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "DIR", "none",
      "directory of CA certificates" },
    { "redis-tls-cert-file", 0, CONFIG_KIND_PATH,
      CONFIG_FIELD(redis_tls_cert_file), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_REDIS, "FILE", "none", "client certificate (mutual TLS)" },
    { "redis-tls-key-file", 0, CONFIG_KIND_PATH,
      CONFIG_FIELD(redis_tls_key_file), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_REDIS, "FILE", "none", "its key (else in the cert file)" },
    { "redis-tls-server-name", 0, CONFIG_KIND_PATH,
      CONFIG_FIELD(redis_tls_server_name), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_REDIS, "NAME", "none", "name to verify (else the host)" },
    { "max-reply-size", 0, CONFIG_KIND_SIZE, CONFIG_FIELD(max_reply_bytes), 1,
      CONFIG_SIZE_MAX_BYTES, CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "SIZE",
      "512m", "longer Redis replies are refused" },
    { "redis-cluster", 0, CONFIG_KIND_SEEDS, CONFIG_FIELD(redis_cluster), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "H:P,..", "off",
      "Redis Cluster seed nodes" },
    { "redis-cluster-refresh", 0, CONFIG_KIND_DURATION,
      CONFIG_FIELD(redis_cluster_refresh_ms), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_REDIS, "DURATION", "10s", "slot map refresh period" },
    { "redis-read-from", 0, CONFIG_KIND_READ_FROM,
      CONFIG_FIELD(redis_read_from), 0, 0, CONFIG_FROM_ALL, CONFIG_GROUP_REDIS,
      "WHICH", "primary", "cluster reads: [prefer-]replica" },
    { "redis-sentinel", 0, CONFIG_KIND_SEEDS, CONFIG_FIELD(redis_sentinel), 0,
      0, CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "H:P,..", "off",
      "Redis Sentinels to ask" },
    { "redis-master", 0, CONFIG_KIND_STRING, CONFIG_FIELD(redis_master), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "NAME", "none",
      "the primary's name in Sentinel" },
    { "redis-sentinel-user", 0, CONFIG_KIND_SECRET,
      CONFIG_FIELD(redis_sentinel_user), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_REDIS, "NAME", "none", "AUTH user for the sentinels" },
    { "redis-sentinel-password", 0, CONFIG_KIND_SECRET,
      CONFIG_FIELD(redis_sentinel_password), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_REDIS, "PASSWORD", "none",
      "AUTH password for the sentinels" },
    { "tracking", 0, CONFIG_KIND_TRACKING, CONFIG_FIELD(tracking), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_REDIS, "off|default|bcast", "off",
      "invalidations from Redis or each node" },
    { "tracking-prefix", 0, CONFIG_KIND_PREFIXES,
      CONFIG_FIELD(tracking_prefixes), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_REDIS, "PREFIX", "none",
      "bcast: cache only these (repeatable)" },
    { "ttl", 't', CONFIG_KIND_DURATION, CONFIG_FIELD(ttl_ms), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_CACHE, "DURATION", "60s",
      "global expiry of cached values" },
    { "stale-while-revalidate", 0, CONFIG_KIND_DURATION_OFF,
      CONFIG_FIELD(stale_while_revalidate_ms), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_CACHE, "DURATION", "0", "serve stale while refreshing" },
    { "stale-if-error", 0, CONFIG_KIND_DURATION_OFF,
      CONFIG_FIELD(stale_if_error_ms), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_CACHE, "DURATION", "0", "serve stale when Redis fails" },
    { "negative-ttl", 0, CONFIG_KIND_DURATION_OFF,
      CONFIG_FIELD(negative_ttl_ms), 0, 0, CONFIG_FROM_ALL, CONFIG_GROUP_CACHE,
      "DURATION", "0", "remember absent keys (404)" },
    { "early-refresh", 0, CONFIG_KIND_FACTOR, CONFIG_FIELD(early_refresh_beta),
      0, 1000, CONFIG_FROM_ALL, CONFIG_GROUP_CACHE, "BETA", "0",
      "refresh hot keys early (XFetch)" },
    { "capacity", 'c', CONFIG_KIND_U32, CONFIG_FIELD(capacity), 1,
      CONFIG_CAPACITY_MAX, CONFIG_FROM_ALL, CONFIG_GROUP_CACHE, "N", "10000",
      "cache capacity in keys" },
    { "max-memory", 0, CONFIG_KIND_SIZE, CONFIG_FIELD(max_memory_bytes), 1,
      CONFIG_SIZE_MAX_BYTES, CONFIG_FROM_ALL, CONFIG_GROUP_CACHE, "SIZE",
      "64m", "bytes for keys and values" },
    { "max-value-size", 0, CONFIG_KIND_SIZE, CONFIG_FIELD(max_value_bytes), 1,
      CONFIG_SIZE_MAX_BYTES, CONFIG_FROM_ALL, CONFIG_GROUP_CACHE, "SIZE", "1m",
      "larger values are served, not cached" },
    { "workers", 'w', CONFIG_KIND_U32, CONFIG_FIELD(workers), 1,
      CONFIG_WORKERS_MAX, CONFIG_FROM_ALL, CONFIG_GROUP_PROCESS, "N",
      "number of CPUs", "worker processes" },
    { "max-clients", 0, CONFIG_KIND_U32, CONFIG_FIELD(max_clients), 1,
      CONFIG_MAX_CLIENTS_MAX, CONFIG_FROM_ALL, CONFIG_GROUP_PROCESS, "N",
      "1024", "client connections, all workers" },
    { "backlog", 0, CONFIG_KIND_U32, CONFIG_FIELD(backlog), 1,
      CONFIG_BACKLOG_MAX, CONFIG_FROM_ALL, CONFIG_GROUP_PROCESS, "N", "511",
      "listen backlog" },
    { "idle-timeout", 0, CONFIG_KIND_DURATION, CONFIG_FIELD(idle_timeout_ms),
      0, 0, CONFIG_FROM_ALL, CONFIG_GROUP_PROCESS, "DURATION", "60s",
      "keep-alive idle close" },
    { "header-timeout", 0, CONFIG_KIND_DURATION,
      CONFIG_FIELD(header_timeout_ms), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_PROCESS, "DURATION", "10s",
      "deadline for a request head (408)" },
    { "shutdown-timeout", 0, CONFIG_KIND_DURATION,
      CONFIG_FIELD(shutdown_timeout_ms), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_PROCESS, "DURATION", "10s",
      "grace period of a graceful stop" },
    { "key-prefix", 0, CONFIG_KIND_STRING, CONFIG_FIELD(key_prefix), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_ACCESS, "PREFIX", "none",
      "prefix of every key asked of Redis" },
    { "allow-keys", 0, CONFIG_KIND_GLOBS, CONFIG_FIELD(allow_keys), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_ACCESS, "GLOB", NULL,
      "serve only keys matching (repeatable)" },
    { "allow-from", 0, CONFIG_KIND_CIDRS, CONFIG_FIELD(allow_from), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_ACCESS, "CIDR", NULL,
      "serve only clients in CIDR (repeatable)" },
    { "proxy-protocol-from", 0, CONFIG_KIND_CIDRS,
      CONFIG_FIELD(proxy_protocol_from), 0, 0, CONFIG_FROM_ALL,
      CONFIG_GROUP_ACCESS, "CIDR", "none", "accept PROXY v1/v2 headers from" },
    { "http-auth-file", 0, CONFIG_KIND_PATH, CONFIG_FIELD(http_auth_file), 0,
      0, CONFIG_FROM_ALL, CONFIG_GROUP_ACCESS, "FILE", "none",
      "htpasswd -B / bearer lines: 401" },
    { "resp-user", 0, CONFIG_KIND_SECRET, CONFIG_FIELD(resp_user), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_ACCESS, "NAME", "none",
      "RESP AUTH user name" },
    { "resp-password", 0, CONFIG_KIND_SECRET, CONFIG_FIELD(resp_password), 0,
      0, CONFIG_FROM_ALL, CONFIG_GROUP_ACCESS, "PASSWORD", "none",
      "RESP AUTH password" },
    { "config", 0, CONFIG_KIND_PATH, CONFIG_FIELD(config_file), 0, 0,
      CONFIG_FROM_FLAG | CONFIG_FROM_ENV, CONFIG_GROUP_CONTROL, "FILE", "none",
      "read `name value` lines from FILE" },
    { "log-level", 0, CONFIG_KIND_LOG_LEVEL, CONFIG_FIELD(log_level), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_CONTROL, "LEVEL", "info",
      "error, warn, info or debug" },
    { "pid-file", 0, CONFIG_KIND_PATH, CONFIG_FIELD(pid_file), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_CONTROL, "FILE", "none",
      "write the supervisor's pid to FILE" },
    { "access-log", 0, CONFIG_KIND_ACCESS_LOG, CONFIG_FIELD(access_log), 0, 0,
      CONFIG_FROM_ALL, CONFIG_GROUP_CONTROL, "stderr|FILE|off", "off",
      "one line per request" },
    { "check-config", 0, CONFIG_KIND_CHECK, CONFIG_FIELD(check_config), 0, 0,
      CONFIG_FROM_FLAG, CONFIG_GROUP_CONTROL, NULL, NULL,
      "validate, print the config, exit" },
    { "help", 'h', CONFIG_KIND_HELP, 0, 0, 0, CONFIG_FROM_FLAG,
      CONFIG_GROUP_CONTROL, NULL, NULL, "print this help and exit" },
    { "version", 'V', CONFIG_KIND_VERSION, 0, 0, 0, CONFIG_FROM_FLAG,
      CONFIG_GROUP_CONTROL, NULL, NULL, "print the version and exit" },
};

#define CONFIG_NOPTIONS (sizeof(config_options) / sizeof(config_options[0]))

/* getopt_long's val for an option without a short name: past any char. */
#define CONFIG_LONG_VAL_BASE 256

/* The state of one config_load() call. */
struct config_loader {
    struct config    *cfg;     /* borrowed: the result */
    struct config     scratch; /* overridden values land */
    enum config_layer set_by[CONFIG_NOPTIONS];
    char             *err; /* borrowed: caller's */
    size_t            err_len;
};

static int config_error(struct config_loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
config_error(struct config_loader *ld, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ld->err, ld->err_len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* --- names of enum values ------------------------------------------- */

const char *
config_tracking_name(enum config_tracking t)
{
    switch (t) {
    case CONFIG_TRACKING_OFF:
        return "off";
    case CONFIG_TRACKING_DEFAULT:
        return "default";
    case CONFIG_TRACKING_BCAST:
        return "bcast";
    }
    return "off";
}

const char *
config_read_from_name(enum config_read_from r)
{
    switch (r) {
    case CONFIG_READ_PRIMARY:
        return "primary";
    case CONFIG_READ_REPLICA:
        return "replica";
    case CONFIG_READ_PREFER_REPLICA:
        return "prefer-replica";
    }
    return "primary";
}

/* --- setting one option ----------------------------------------------- */

static void *
config_field(struct config *cfg, const struct config_option *opt)
{
    return (char *) cfg + opt->offset;
}

/* Copies a string value into a field of cap bytes; -ERANGE if too long. */
static int
config_copy_string(char *dst, size_t cap, const char *value)
{
    size_t len = strlen(value);

    if (len >= cap) {
        return -ERANGE;
    }
    memcpy(dst, value, len + 1);
    return 0;
}

/* Adds value's blank-separated items to a list option. */
static int
config_set_list(struct config_loader *ld, struct config_list *list,
                const struct config_option *opt, const char *who,
                const char *value)
{
    const char *p = value;
    bool        any = false;

    for (;;) {
        size_t      len;
        struct cidr c;

        while (isspace((unsigned char) *p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        len = strcspn(p, " \t\r\n\v\f");
        if (len >= CONFIG_ITEM_MAX) {
            return config_error(ld,
                                "%s: '%.*s...' is too long (max %d "
                                "bytes)",
                                who, CONFIG_ECHO_MAX, p, CONFIG_ITEM_MAX - 1);
        }
        if (list->n == CONFIG_LIST_MAX) {
            return config_error(ld, "%s: more than %d values", who,
                                CONFIG_LIST_MAX);
        }
        memcpy(list->items[list->n], p, len);
        list->items[list->n][len] = '\0';
        if (opt->kind == CONFIG_KIND_CIDRS
            && cidr_parse(list->items[list->n], &c) < 0) {
            return config_error(
                ld,
                "%s: invalid address range '%.*s' (use "
                "an IPv4 or IPv6 address, optionally "
                "/BITS, with no host bits set)",
                who, (int) (len < CONFIG_ECHO_MAX ? len : CONFIG_ECHO_MAX), p);
        }
        list->n++;
        any = true;
        p += len;
    }
    if (!any) {
        return config_error(ld, "%s: empty value", who);
    }
    return 0;
}

/*
 * Parses value for opt into cfg.  who names the option as the user wrote
 * it ("--ttl", "RCP_TTL", "/etc/x.conf:3: ttl") and starts the error.
 */
static int
config_set(struct config_loader *ld, struct config *cfg,
           const struct config_option *opt, const char *who, const char *value)
{
    void    *field = config_field(cfg, opt);
    uint64_t v;
    int      rc;
    int      echo = CONFIG_ECHO_MAX;

    switch (opt->kind) {
    case CONFIG_KIND_LISTEN:
    case CONFIG_KIND_LISTEN_OFF:
        rc = config_parse_listen(value, field,
                                 opt->kind == CONFIG_KIND_LISTEN_OFF);
        if (rc == -ERANGE) {
            return config_error(ld, "%s: host name too long (max %d bytes)",
                                who, CONFIG_HOST_MAX - 1);
        }
        if (rc < 0 && strcmp(value, "off") == 0) {
            return config_error(ld, "%s: cannot be off", who);
        }
        if (rc < 0) {
            return config_error(ld,
                                "%s: invalid address '%.*s' (use "
                                "[HOST:]PORT or [IPv6]:PORT, port 1-65535"
                                "%s)",
                                who, echo, value,
                                opt->kind == CONFIG_KIND_LISTEN_OFF
                                    ? ", or off"
                                    : "");
        }
        return 0;

    case CONFIG_KIND_REDIS:
        rc = config_parse_redis(value, field);
        if (rc == -EPROTO) {
            struct redis_url url;
            const char      *why;
            char             masked[CONFIG_ECHO_MAX + 1];

            /* The URL may hold a password: never echo it. */
            (void) redis_url_parse(value, &url, &why);
            redis_url_mask(value, masked, sizeof(masked));
            return config_error(ld,
                                "%s: invalid URL '%s': %s (use "
                                "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB],"
                                " rediss://... or unix:///PATH[?db=N])",
                                who, masked, why);
        }
        if (rc == -ERANGE) {
            return config_error(ld,
                                "%s: '%.*s' is too long (host at most "
                                "%d bytes, socket path at most %zu)",
                                who, echo, value, CONFIG_HOST_MAX - 1,
                                sizeof(((struct sockaddr_un *) NULL)->sun_path)
                                    - 1);
        }
        if (rc < 0) {
            return config_error(ld,
                                "%s: invalid address '%.*s' (use "
                                "HOST:PORT, [IPv6]:PORT, unix:PATH or a "
                                "redis:// URL)",
                                who, echo, value);
        }
        return 0;

    case CONFIG_KIND_SEEDS: {
        struct config_redis seeds[CONFIG_SEEDS_MAX];
        size_t              bad;

        if (strcmp(value, "off") == 0) {
            *(char *) field = '\0';
            return 0;
        }
        rc = config_parse_seeds(value, seeds, CONFIG_SEEDS_MAX, &bad);
        if (rc == -E2BIG) {
            return config_error(ld, "%s: more than %d seed nodes", who,
                                CONFIG_SEEDS_MAX);
        }
        if (rc < 0) {
            char masked[CONFIG_ECHO_MAX + 1];

            /* A URL may hold a password: never echo it. */
            config_mask_seeds(value, masked, sizeof(masked));
            return config_error(ld,
                                "%s: seed %zu of '%s' is not HOST:PORT,"
                                " [IPv6]:PORT or a redis:// / rediss:// URL"
                                " (comma-separated)",
                                who, bad + 1, masked);
        }
        if (config_copy_string(field, CONFIG_PATH_MAX, value) < 0) {
            return config_error(ld, "%s: too long (max %d bytes)", who,
                                CONFIG_PATH_MAX - 1);
        }
        return 0;
    }

    case CONFIG_KIND_SECRET:
        /* Never echo a secret back, not even in an error. */
        if (config_copy_string(field, CONFIG_SECRET_MAX, value) < 0) {
            return config_error(ld, "%s: too long (max %d bytes)", who,
                                CONFIG_SECRET_MAX - 1);
        }
        return 0;

    case CONFIG_KIND_PATH:
        /* Names no file: --http-auth-file "$UNSET" must not quietly
         * mean no authentication. */
        if (value[0] == '\0') {
            return config_error(ld, "%s: empty value (leave it out for none)",
                                who);
        }
        if (config_copy_string(field, CONFIG_PATH_MAX, value) < 0) {
            return config_error(ld, "%s: path too long (max %d bytes)", who,
                                CONFIG_PATH_MAX - 1);
        }
        return 0;

    case CONFIG_KIND_ACCESS_LOG:
        if (value[0] == '\0') {
            return config_error(ld,
                                "%s: empty value (use stderr, a file "
                                "name, or off)",
                                who);
        }
        if (strcmp(value, "off") == 0) {
            value = "";
        }
        if (config_copy_string(field, CONFIG_PATH_MAX, value) < 0) {
            return config_error(ld, "%s: path too long (max %d bytes)", who,
                                CONFIG_PATH_MAX - 1);
        }
        return 0;

    case CONFIG_KIND_DURATION:
    case CONFIG_KIND_DURATION_OFF:
        rc = config_parse_duration_ms(value, &v);
        if (rc == -EINVAL) {
            return config_error(ld,
                                "%s: invalid duration '%.*s' (use e.g. "
                                "500ms, 30s, 5m, 1h)",
                                who, echo, value);
        }
        if (rc < 0 || v > CONFIG_DURATION_MAX_MS) {
            return config_error(ld,
                                "%s: duration '%.*s' is too long (max "
                                "8760h)",
                                who, echo, value);
        }
        if (v == 0 && opt->kind == CONFIG_KIND_DURATION) {
            return config_error(ld, "%s: duration must be greater than 0",
                                who);
        }
        *(uint64_t *) field = v;
        return 0;

    case CONFIG_KIND_FACTOR: {
        double d;

        if (config_parse_factor(value, (double) opt->max, &d) < 0
            || d < (double) opt->min) {
            return config_error(ld,
                                "%s: invalid factor '%.*s' (a number "
                                "from %llu to %llu, e.g. 1 or 0.5)",
                                who, echo, value,
                                (unsigned long long) opt->min,
                                (unsigned long long) opt->max);
        }
        *(double *) field = d;
        return 0;
    }

    case CONFIG_KIND_SIZE:
        rc = config_parse_size_bytes(value, &v);
        if (rc == -EINVAL) {
            return config_error(ld,
                                "%s: invalid size '%.*s' (use bytes or "
                                "e.g. 512k, 64m, 1g)",
                                who, echo, value);
        }
        if (rc < 0 || v < opt->min || v > opt->max) {
            return config_error(ld,
                                "%s: size '%.*s' is out of range (1 "
                                "byte to 1024g)",
                                who, echo, value);
        }
        *(uint64_t *) field = v;
        return 0;

    case CONFIG_KIND_U32:
        rc = config_parse_uint(value, opt->max, &v);
        if (rc == -EINVAL) {
            return config_error(ld,
                                "%s: invalid number '%.*s' (use an "
                                "integer from %llu to %llu)",
                                who, echo, value,
                                (unsigned long long) opt->min,
                                (unsigned long long) opt->max);
        }
        if (rc < 0 || v < opt->min) {
            return config_error(ld,
                                "%s: %.*s is out of range (%llu to "
                                "%llu)",
                                who, echo, value,
                                (unsigned long long) opt->min,
                                (unsigned long long) opt->max);
        }
        *(uint32_t *) field = (uint32_t) v;
        return 0;

    case CONFIG_KIND_READ_FROM:
        if (strcmp(value, "primary") == 0) {
            *(enum config_read_from *) field = CONFIG_READ_PRIMARY;
        } else if (strcmp(value, "replica") == 0) {
            *(enum config_read_from *) field = CONFIG_READ_REPLICA;
        } else if (strcmp(value, "prefer-replica") == 0) {
            *(enum config_read_from *) field = CONFIG_READ_PREFER_REPLICA;
        } else {
            return config_error(ld,
                                "%s: invalid value '%.*s' (use primary,"
                                " replica or prefer-replica)",
                                who, echo, value);
        }
        return 0;

    case CONFIG_KIND_TRACKING:
        if (strcmp(value, "off") == 0) {
            *(enum config_tracking *) field = CONFIG_TRACKING_OFF;
        } else if (strcmp(value, "default") == 0) {
            *(enum config_tracking *) field = CONFIG_TRACKING_DEFAULT;
        } else if (strcmp(value, "bcast") == 0) {
            *(enum config_tracking *) field = CONFIG_TRACKING_BCAST;
        } else {
            return config_error(ld,
                                "%s: invalid value '%.*s' (use off, "
                                "default or bcast)",
                                who, echo, value);
        }
        return 0;

    case CONFIG_KIND_LOG_LEVEL:
        if (log_level_parse(value, field) < 0) {
            return config_error(ld,
                                "%s: invalid level '%.*s' (use error, "
                                "warn, info or debug)",
                                who, echo, value);
        }
        return 0;

    case CONFIG_KIND_BOOL:
        if (value[0] == '\0' || strcmp(value, "yes") == 0
            || strcmp(value, "on") == 0 || strcmp(value, "true") == 0
            || strcmp(value, "1") == 0) {
            *(bool *) field = true;
        } else if (strcmp(value, "no") == 0 || strcmp(value, "off") == 0
                   || strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
            *(bool *) field = false;
        } else {
            return config_error(ld,
                                "%s: invalid value '%.*s' (use yes or "
                                "no)",
                                who, echo, value);
        }
        return 0;

    case CONFIG_KIND_STRING:
        if (value[0] == '\0') {
            return config_error(ld, "%s: empty value (leave it out for none)",
                                who);
        }
        if (config_copy_string(field, CONFIG_ITEM_MAX, value) < 0) {
            return config_error(ld, "%s: too long (max %d bytes)", who,
                                CONFIG_ITEM_MAX - 1);
        }
        return 0;

    case CONFIG_KIND_GLOBS:
    case CONFIG_KIND_CIDRS:
    case CONFIG_KIND_PREFIXES:
        return config_set_list(ld, field, opt, who, value);

    case CONFIG_KIND_CHECK:
        *(bool *) field = true;
        return 0;

    case CONFIG_KIND_HELP:
    case CONFIG_KIND_VERSION:
        return 0;
    }
    return config_error(ld, "%s: internal error: unknown option kind", who);
}

/*
 * Sets opt from a value found at layer: into the result when no higher
 * layer has set it (or this layer did, so the last one wins), otherwise
 * into the scratch struct, only to check it.
 */
static int
config_apply(struct config_loader *ld, const struct config_option *opt,
             enum config_layer layer, const char *who, const char *value)
{
    size_t i = (size_t) (opt - config_options);

    if (ld->set_by[i] > layer) {
        return config_set(ld, &ld->scratch, opt, who, value);
    }
    if (ld->set_by[i] < layer
        && (opt->kind == CONFIG_KIND_GLOBS || opt->kind == CONFIG_KIND_CIDRS
            || opt->kind == CONFIG_KIND_PREFIXES)) {
        /* A higher layer's list replaces a lower one's (the default
         * is empty); repeats within one layer add to it. */
        ((struct config_list *) config_field(ld->cfg, opt))->n = 0;
    }
    ld->set_by[i] = layer;
    return config_set(ld, ld->cfg, opt, who, value);
}

static const struct config_option *
config_find(const char *name, size_t len)
{
    for (size_t i = 0; i < CONFIG_NOPTIONS; i++) {
        if (strlen(config_options[i].name) == len
            && memcmp(config_options[i].name, name, len) == 0) {
            return &config_options[i];
        }
    }
    return NULL;
}

static const struct config_option *
config_find_name(const char *name)
{
    return config_find(name, strlen(name));
}

/* --- layer 1: flags --------------------------------------------------- */

/* Maps getopt_long's return value back to its option. */
static const struct config_option *
config_find_val(int val)
{
    if (val >= CONFIG_LONG_VAL_BASE
        && (size_t) (val - CONFIG_LONG_VAL_BASE) < CONFIG_NOPTIONS) {
        return &config_options[val - CONFIG_LONG_VAL_BASE];
    }
    for (size_t i = 0; i < CONFIG_NOPTIONS; i++) {
        if (val != 0 && config_options[i].short_name == val) {
            return &config_options[i];
        }
    }
    return NULL;
}

/*
 * getopt_long accepts any unambiguous prefix ("--tt" for "--ttl"); we do
 * not, so adding an option later can never change what an existing
 * command line means.  arg is the argv element that held the option.
 */
static bool
config_flag_spelled_out(const char *arg, const struct config_option *opt)
{
    size_t len = strlen(opt->name);

    if (arg[0] != '-' || arg[1] != '-') {
        return true; /* a short option */
    }
    return strncmp(arg + 2, opt->name, len) == 0
           && (arg[2 + len] == '\0' || arg[2 + len] == '=');
}

/* Reports a getopt_long error, unless an earlier one was reported. */
static void config_flag_error(struct config_loader *ld, int *first_rc,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
config_flag_error(struct config_loader *ld, int *first_rc, const char *fmt,
                  ...)
{
    va_list ap;

    if (*first_rc != 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(ld->err, ld->err_len, fmt, ap);
    va_end(ap);
    *first_rc = -EINVAL;
}

/* "unknown option '--foo'", without any "=value" after the name. */
static void
config_flag_unknown(struct config_loader *ld, int *first_rc, const char *arg)
{
    size_t len = strcspn(arg, "=");

    config_flag_error(ld, first_rc, "unknown option '%.*s'",
                      (int) (len < CONFIG_ECHO_MAX ? len : CONFIG_ECHO_MAX),
                      arg);
}

/*
 * Walks argv once and sets every flag.  All of argv is walked even after
 * an error so that --check-config, --help and --version anywhere are
 * seen; the first error is the one reported.
 */
static enum config_rc
config_load_flags(struct config_loader *ld, int argc, char *const argv[])
{
    struct option long_opts[CONFIG_NOPTIONS + 1];
    char          short_opts[3 + 2 * CONFIG_NOPTIONS + 1];
    size_t        n = 0;
    int           first_rc = 0;
    bool          help = false;
    bool          version = false;

    /* '+': stop at the first non-option and never permute argv, which
     * the supervisor passes again on SIGHUP.  ':': report a missing
     * argument as ':' rather than '?'. */
    short_opts[n++] = '+';
    short_opts[n++] = ':';
    for (size_t i = 0; i < CONFIG_NOPTIONS; i++) {
        const struct config_option *opt = &config_options[i];
        bool                        has_arg = opt->kind != CONFIG_KIND_CHECK
                       && opt->kind != CONFIG_KIND_BOOL
                       && opt->kind != CONFIG_KIND_HELP
                       && opt->kind != CONFIG_KIND_VERSION;

        long_opts[i].name = opt->name;
        long_opts[i].has_arg = has_arg ? required_argument : no_argument;
        long_opts[i].flag = NULL;
        long_opts[i].val = opt->short_name != 0
                               ? opt->short_name
                               : CONFIG_LONG_VAL_BASE + (int) i;
        if (opt->short_name != 0) {
            short_opts[n++] = opt->short_name;
            if (has_arg) {
                short_opts[n++] = ':';
            }
        }
    }
    short_opts[n] = '\0';
    memset(&long_opts[CONFIG_NOPTIONS], 0, sizeof(long_opts[0]));

    /* optind = 0 makes glibc re-initialise all of getopt's state, so
     * this function can run again on SIGHUP; opterr = 0: we word the
     * messages. */
    optind = 0;
    opterr = 0;
    for (;;) {
        const struct config_option *opt;
        const char                 *arg;
        char                        who[CONFIG_ENV_NAME_MAX];
        int                         c;

        c = getopt_long(argc, argv, short_opts, long_opts, NULL);
        if (c == -1) {
            break;
        }
        if (c == ':') {
            opt = config_find_val(optopt);
            if (opt != NULL) {
                config_flag_error(ld, &first_rc, "--%s: missing value",
                                  opt->name);
            } else {
                config_flag_error(ld, &first_rc, "%s: missing value",
                                  argv[optind - 1]);
            }
            continue;
        }
        if (c == '?') {
            /* glibc sets optopt to the option's val when a long option
             * that takes no value got one, to the character for an
             * unknown short option, and to 0 for an unknown long one. */
            opt = config_find_val(optopt);
            if (opt != NULL) {
                config_flag_error(ld, &first_rc, "--%s: takes no value",
                                  opt->name);
            } else if (optopt != 0) {
                char shortname[3] = { '-', (char) optopt, '\0' };

                config_flag_error(ld, &first_rc, "unknown option '%s'",
                                  shortname);
            } else {
                config_flag_unknown(ld, &first_rc, argv[optind - 1]);
            }
            continue;
        }

        opt = config_find_val(c);
        if (opt == NULL) {
            config_flag_error(ld, &first_rc, "unknown option '%s'",
                              argv[optind - 1]);
            continue;
        }
        /* The element naming the option is just before its value when
         * the value was a separate argument. */
        arg = argv[optind - 1];
        if (optarg != NULL && optarg == argv[optind - 1] && optind >= 2) {
            arg = argv[optind - 2];
        }
        if (!config_flag_spelled_out(arg, opt)) {
            config_flag_unknown(ld, &first_rc, arg);
            continue;
        }

        if (opt->kind == CONFIG_KIND_HELP) {
            help = true;
            continue;
        }
        if (opt->kind == CONFIG_KIND_VERSION) {
            version = true;
            continue;
        }
        /* After an error only --check-config still matters (main's
         * exit status); parsing more values would overwrite the text
         * of the first error. */
        if (first_rc != 0 && opt->kind != CONFIG_KIND_CHECK) {
            continue;
        }
        snprintf(who, sizeof(who), "--%s", opt->name);
        if (config_apply(ld, opt, CONFIG_LAYER_FLAG, who,
                         optarg != NULL ? optarg : "")
            < 0) {
            first_rc = -EINVAL;
        }
    }

    if (first_rc == 0 && optind < argc) {
        first_rc = config_error(ld,
                                "unexpected argument '%.*s' (options "
                                "start with --)",
                                CONFIG_ECHO_MAX, argv[optind]);
    }
    if (help) {
        return CONFIG_HELP;
    }
    if (version) {
        return CONFIG_VERSION;
    }
    return first_rc == 0 ? CONFIG_OK : CONFIG_ERROR;
}

/* --- layer 2: environment --------------------------------------------- */

/* The value of name in envp, or NULL; an empty value counts as unset so
 * that compose files can pass RCP_X=${X:-} through. */
static const char *
config_getenv(char *const envp[], const char *name)
{
    size_t len = strlen(name);

    if (envp == NULL) {
        return NULL;
    }
    for (size_t i = 0; envp[i] != NULL; i++) {
        if (strncmp(envp[i], name, len) == 0 && envp[i][len] == '=') {
            return envp[i][len + 1] != '\0' ? envp[i] + len + 1 : NULL;
        }
    }
    return NULL;
}

/* "max-memory" -> "RCP_MAX_MEMORY". */
static void
config_env_name(const struct config_option *opt, char *buf, size_t len)
{
    size_t n = (size_t) snprintf(buf, len, "RCP_%s", opt->name);

    for (size_t i = 4; i < n && i < len; i++) {
        buf[i] = buf[i] == '-' ? '_' : (char) toupper((unsigned char) buf[i]);
    }
}

static int
config_load_env(struct config_loader *ld, char *const envp[])
{
    char        name[CONFIG_ENV_NAME_MAX];
    const char *value;

    for (size_t i = 0; i < CONFIG_NOPTIONS; i++) {
        const struct config_option *opt = &config_options[i];

        if ((opt->from & CONFIG_FROM_ENV) == 0) {
            continue;
        }
        config_env_name(opt, name, sizeof(name));
        value = config_getenv(envp, name);
        if (value != NULL
            && config_apply(ld, opt, CONFIG_LAYER_ENV, name, value) < 0) {
            return -EINVAL;
        }
    }

    /* The name redis-cli and most client libraries read. */
    value = config_getenv(envp, "REDIS_PASSWORD");
    if (value != NULL
        && config_apply(ld, config_find_name("redis-password"),
                        CONFIG_LAYER_ENV_FALLBACK, "REDIS_PASSWORD", value)
               < 0) {
        return -EINVAL;
    }
    return 0;
}

/* --- layer 3: the config file ----------------------------------------- */

/*
 * One `name value` line (already without its newline).  The value is
 * the rest of the line with surrounding blanks removed, so a password
 * may hold inner spaces and '#'; only whole-line comments exist.
 */
static int
config_load_line(struct config_loader *ld, const char *path,
                 unsigned long lineno, char *line)
{
    const struct config_option *opt;
    char                        who[CONFIG_PATH_MAX + 96];
    char                       *name;
    char                       *value;
    char                       *end;
    size_t                      name_len;

    end = line + strlen(line);
    while (end > line && isspace((unsigned char) end[-1])) {
        *--end = '\0';
    }
    name = line;
    while (isspace((unsigned char) *name)) {
        name++;
    }
    if (*name == '\0' || *name == '#') {
        return 0;
    }
    value = name;
    while (*value != '\0' && !isspace((unsigned char) *value)) {
        value++;
    }
    name_len = (size_t) (value - name);
    while (isspace((unsigned char) *value)) {
        value++;
    }

    opt = config_find(name, name_len);
    if (opt != NULL && opt->kind == CONFIG_KIND_PATH
        && (opt->from & CONFIG_FROM_FILE) == 0) {
        /* One file, no includes: it could name itself. */
        return config_error(ld,
                            "%s:%lu: %s: cannot be set in a config "
                            "file",
                            path, lineno, opt->name);
    }
    if (opt == NULL || (opt->from & CONFIG_FROM_FILE) == 0) {
        return config_error(
            ld, "%s:%lu: unknown option '%.*s'", path, lineno,
            (int) (name_len < CONFIG_ECHO_MAX ? name_len : CONFIG_ECHO_MAX),
            name);
    }
    snprintf(who, sizeof(who), "%s:%lu: %s", path, lineno, opt->name);
    if (*value == '\0') {
        return config_error(ld, "%s: missing value", who);
    }
    return config_apply(ld, opt, CONFIG_LAYER_FILE, who, value);
}

static int
config_load_file(struct config_loader *ld, const char *path, const char *who)
{
    FILE         *f;
    char         *line = NULL;
    size_t        cap = 0;
    unsigned long lineno = 0;
    int           rc = 0;

    f = fopen(path, "re");
    if (f == NULL) {
        return config_error(ld, "%s: cannot open '%s': %s", who, path,
                            strerror(errno));
    }
    for (;;) {
        ssize_t n;

        errno = 0;
        n = getline(&line, &cap, f);
        if (n < 0) {
            if (ferror(f) || errno == ENOMEM) {
                rc = config_error(ld, "%s: cannot read '%s': %s", who, path,
                                  strerror(errno != 0 ? errno : EIO));
            }
            break;
        }
        lineno++;
        if (memchr(line, '\0', (size_t) n) != NULL) {
            rc = config_error(ld, "%s:%lu: NUL byte in line", path, lineno);
            break;
        }
        /* Editors on Windows start a UTF-8 file with a byte order mark;
         * kept, it made the first name "\xEF\xBB\xBFlisten", reported as
         * "unknown option 'listen'" with the mark invisible. */
        if (lineno == 1 && strncmp(line, CONFIG_UTF8_BOM, 3) == 0) {
            memmove(line, line + 3, (size_t) n - 3 + 1);
        }
        rc = config_load_line(ld, path, lineno, line);
        if (rc < 0) {
            break;
        }
    }
    free(line);
    if (fclose(f) != 0 && rc == 0) {
        rc = config_error(ld, "%s: cannot read '%s': %s", who, path,
                          strerror(errno));
    }
    return rc;
}

/* --- the whole load --------------------------------------------------- */

uint64_t
config_stale_ms(const struct config *cfg)
{
    return cfg->stale_while_revalidate_ms > cfg->stale_if_error_ms
               ? cfg->stale_while_revalidate_ms
               : cfg->stale_if_error_ms;
}

void
config_defaults(struct config *cfg)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    memset(cfg, 0, sizeof(*cfg));
    cfg->listen.enabled = true;
    snprintf(cfg->listen.host, sizeof(cfg->listen.host), "127.0.0.1");
    cfg->listen.port = 8080;
    cfg->resp_listen.enabled = false;
    cfg->admin_listen.enabled = true;
    snprintf(cfg->admin_listen.host, sizeof(cfg->admin_listen.host),
             "127.0.0.1");
    cfg->admin_listen.port = 9121;
    cfg->redis.is_unix = false;
    snprintf(cfg->redis.host, sizeof(cfg->redis.host), "127.0.0.1");
    cfg->redis.port = 6379;
    cfg->redis_db = 0;
    cfg->redis_timeout_ms = 1000;
    cfg->redis_cluster_refresh_ms = CONFIG_CLUSTER_REFRESH_MS;
    cfg->redis_tls = false;
    cfg->max_reply_bytes = 512ULL << 20;
    cfg->ttl_ms = 60 * 1000;
    cfg->capacity = 10000;
    cfg->max_memory_bytes = 64ULL << 20;
    cfg->max_value_bytes = 1ULL << 20;
    /* sysconf fails (-1) only where the count is unknown: take one. */
    if (ncpu < 1) {
        ncpu = 1;
    } else if (ncpu > CONFIG_WORKERS_MAX) {
        ncpu = CONFIG_WORKERS_MAX;
    }
    cfg->workers = (uint32_t) ncpu;
    cfg->max_clients = 1024;
    cfg->backlog = 511;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->header_timeout_ms = 10 * 1000;
    cfg->shutdown_timeout_ms = 10 * 1000;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->check_config = false;
}

static bool
config_is_default(const struct config_loader *ld, const char *name)
{
    size_t i = (size_t) (config_find_name(name) - config_options);

    return ld->set_by[i] == CONFIG_LAYER_DEFAULT;
}

/* Where option name got its value, for an error line: "--redis",
 * "RCP_REDIS" or "redis (config file)". */
static void
config_where(const struct config_loader *ld, const char *name, char *buf,
             size_t len)
{
    const struct config_option *opt = config_find_name(name);

    switch (ld->set_by[opt - config_options]) {
    case CONFIG_LAYER_ENV:
    case CONFIG_LAYER_ENV_FALLBACK:
        config_env_name(opt, buf, len);
        break;
    case CONFIG_LAYER_FILE:
        (void) snprintf(buf, len, "%s (config file)", name);
        break;
    default:
        (void) snprintf(buf, len, "--%s", name);
        break;
    }
}

/* --redis, --redis-cluster and --redis-sentinel are three ways to find
 * Redis: two of them, from whatever layers, is a mistake that picking
 * one would hide (the operator would not know which Redis is used). */
static int
config_check_backend_choice(struct config_loader *ld)
{
    const struct config *cfg = ld->cfg;
    const char          *given[3];
    char                 a[CONFIG_ENV_NAME_MAX + 16];
    char                 b[CONFIG_ENV_NAME_MAX + 16];
    size_t               n = 0;

    if (!config_is_default(ld, "redis")) {
        given[n++] = "redis";
    }
    if (cfg->redis_cluster[0] != '\0') {
        given[n++] = "redis-cluster";
    }
    if (cfg->redis_sentinel[0] != '\0') {
        given[n++] = "redis-sentinel";
    }
    if (n < 2) {
        return 0;
    }
    config_where(ld, given[n - 1], a, sizeof(a));
    config_where(ld, given[n - 2], b, sizeof(b));
    return config_error(ld,
                        "%s and %s both name the backend: give only "
                        "one of --redis, --redis-cluster and "
                        "--redis-sentinel",
                        a, b);
}

/* --redis-cluster's first seed becomes the address the status page
 * shows, and what its URL says (user, password, TLS) is merged as a
 * --redis URL's would be. */
static int
config_merge_cluster(struct config_loader *ld)
{
    struct config       *cfg = ld->cfg;
    struct config_redis *seeds;
    size_t               bad;
    int                  n;

    if (config_check_backend_choice(ld) < 0) {
        return -EINVAL;
    }
    if (cfg->redis_sentinel[0] != '\0' && cfg->redis_master[0] == '\0') {
        return config_error(ld, "--redis-sentinel: needs --redis-master "
                                "(the name the sentinels monitor)");
    }
    if (cfg->redis_master[0] != '\0' && cfg->redis_sentinel[0] == '\0') {
        return config_error(ld, "--redis-master: needs --redis-sentinel");
    }
    /* Options of one backend kind given with another would silently
     * do nothing: a user asking for replica reads must not get
     * primary reads without a word. */
    if (cfg->redis_sentinel[0] == '\0'
        && (cfg->redis_sentinel_user[0] != '\0'
            || cfg->redis_sentinel_password[0] != '\0')) {
        return config_error(ld, "--redis-sentinel-%s: needs --redis-sentinel",
                            cfg->redis_sentinel_user[0] != '\0' ? "user"
                                                                : "password");
    }
    if (cfg->redis_cluster[0] == '\0') {
        if (cfg->redis_read_from != CONFIG_READ_PRIMARY) {
            return config_error(ld, "--redis-read-from: needs "
                                    "--redis-cluster (replica reads are "
                                    "for Redis Cluster only)");
        }
        /* By value: config_print() writes the default out, and a
         * printed config loads again. */
        if (cfg->redis_cluster_refresh_ms != CONFIG_CLUSTER_REFRESH_MS) {
            return config_error(
                ld, "--redis-cluster-refresh: needs --redis-cluster");
        }
        return 0;
    }
    if (cfg->redis_db != 0) {
        return config_error(ld, "--redis-db: Redis Cluster has only db 0");
    }
    seeds = calloc(CONFIG_SEEDS_MAX, sizeof(*seeds));
    if (seeds == NULL) {
        return config_error(ld, "--redis-cluster: out of memory");
    }
    n = config_parse_seeds(cfg->redis_cluster, seeds, CONFIG_SEEDS_MAX, &bad);
    /* Checked when it was set. */
    assert(n > 0);
    for (int i = 0; i < n; i++) {
        if (seeds[i].has_db && seeds[i].db != 0) {
            uint32_t db = seeds[i].db;

            free(seeds);
            return config_error(ld,
                                "--redis-cluster: seed %d names db %u;"
                                " Redis Cluster has only db 0",
                                i + 1, db);
        }
    }
    cfg->redis = seeds[0];
    free(seeds);
    return 0;
}

/* What a --redis URL said beyond the address, wherever no option said
 * otherwise (REDIS_PASSWORD, a fallback, gives way to the URL too). */
static int
config_merge_redis_url(struct config_loader *ld)
{
    struct config *cfg = ld->cfg;
    size_t pi = (size_t) (config_find_name("redis-password") - config_options);

    if (cfg->redis.has_password) {
        if (config_is_default(ld, "redis-user")) {
            memcpy(cfg->redis_user, cfg->redis.user, sizeof(cfg->redis_user));
        }
        if (ld->set_by[pi] <= CONFIG_LAYER_ENV_FALLBACK) {
            memcpy(cfg->redis_password, cfg->redis.password,
                   sizeof(cfg->redis_password));
        }
    }
    if (cfg->redis.has_db && config_is_default(ld, "redis-db")) {
        cfg->redis_db = cfg->redis.db;
    }
    if (config_is_default(ld, "redis-tls")) {
        cfg->redis_tls = cfg->redis.tls;
    }
    /* Printed as rediss:// exactly when TLS is on. */
    cfg->redis.tls = cfg->redis_tls && !cfg->redis.is_unix;
    if (cfg->redis_tls && cfg->redis.is_unix) {
        return config_error(ld, "--redis-tls: needs a TCP address, not a "
                                "unix socket");
    }
    if (cfg->redis_tls_key_file[0] != '\0'
        && cfg->redis_tls_cert_file[0] == '\0') {
        return config_error(ld, "--redis-tls-key-file: needs "
                                "--redis-tls-cert-file");
    }
    return 0;
}

/* --tracking's rules: in a cluster, reads from primaries (tracking runs
 * per node, on the node backends that serve reads: a replica's would
 * need a subscriber of its own); prefixes are bcast's, and Redis refuses two
 * that overlap (CLIENT TRACKING: "Prefix ... overlaps"), so that is said here,
 * at start, rather than by every worker's connection. */
static int
config_check_tracking(struct config_loader *ld)
{
    const struct config      *cfg = ld->cfg;
    const struct config_list *l = &cfg->tracking_prefixes;

    if (cfg->tracking != CONFIG_TRACKING_OFF && cfg->redis_cluster[0] != '\0'
        && cfg->redis_read_from != CONFIG_READ_PRIMARY) {
        return config_error(ld, "--tracking: with --redis-cluster, only "
                                "with --redis-read-from primary");
    }
    if (l->n > 0 && cfg->tracking != CONFIG_TRACKING_BCAST) {
        return config_error(ld, "--tracking-prefix: only with --tracking "
                                "bcast");
    }
    for (uint32_t i = 0; i < l->n; i++) {
        for (uint32_t j = 0; j < l->n; j++) {
            size_t li = strlen(l->items[i]);

            if (i != j && strncmp(l->items[i], l->items[j], li) == 0) {
                return config_error(ld,
                                    "--tracking-prefix: '%.*s' "
                                    "overlaps '%.*s' (Redis refuses "
                                    "prefixes of one another)",
                                    CONFIG_ECHO_MAX, l->items[i],
                                    CONFIG_ECHO_MAX, l->items[j]);
            }
        }
    }
    return 0;
}

/* Whether host (as config_parse_listen stored it) means every address:
 * "" is a bare PORT, ":PORT" or "*:PORT". */
static bool
config_host_is_any(const char *host)
{
    return host[0] == '\0' || strcmp(host, "0.0.0.0") == 0
           || strcmp(host, "::") == 0;
}

/* Two of our own ports on one address would pass --check-config and
 * then fail at start with "Address already in use", which sends the
 * operator looking for another process: say which options collide.
 * Only what the text shows is compared (a host name is not resolved
 * here); an address for every host overlaps any host on its port. */
static int
config_check_listeners(struct config_loader *ld)
{
    static const char *const    names[] = { "listen", "resp-listen",
                                            "admin-listen" };
    const struct config_listen *ls[] = { &ld->cfg->listen,
                                         &ld->cfg->resp_listen,
                                         &ld->cfg->admin_listen };
    char                        a[CONFIG_ENV_NAME_MAX + 16];
    char                        b[CONFIG_ENV_NAME_MAX + 16];

    for (size_t i = 0; i < 3; i++) {
        for (size_t j = i + 1; j < 3; j++) {
            if (!ls[i]->enabled || !ls[j]->enabled
                || ls[i]->port != ls[j]->port) {
                continue;
            }
            if (strcmp(ls[i]->host, ls[j]->host) == 0
                || config_host_is_any(ls[i]->host)
                || config_host_is_any(ls[j]->host)) {
                config_where(ld, names[j], a, sizeof(a));
                config_where(ld, names[i], b, sizeof(b));
                return config_error(ld,
                                    "%s and %s both use port %u: give "
                                    "each port its own address",
                                    a, b, (unsigned) ls[i]->port);
            }
        }
    }
    return 0;
}

/* Checks that need more than one option. */
static int
config_check(struct config_loader *ld)
{
    struct config *cfg = ld->cfg;
    size_t vi = (size_t) (config_find_name("max-value-size") - config_options);
    char   value[32];
    char   memory[32];

    if (config_check_tracking(ld) < 0 || config_check_listeners(ld) < 0) {
        return -EINVAL;
    }
    if (cfg->max_value_bytes <= cfg->max_memory_bytes) {
        return 0;
    }
    /* Only a --max-value-size someone chose is an error; the 1m default
     * quietly shrinks to fit a small --max-memory. */
    if (ld->set_by[vi] == CONFIG_LAYER_DEFAULT) {
        cfg->max_value_bytes = cfg->max_memory_bytes;
        return 0;
    }
    config_format_size(cfg->max_value_bytes, value, sizeof(value));
    config_format_size(cfg->max_memory_bytes, memory, sizeof(memory));
    return config_error(ld,
                        "--max-value-size: %s is larger than "
                        "--max-memory (%s)",
                        value, memory);
}

enum config_rc
config_load(struct config *cfg, int argc, char *const argv[],
            char *const envp[], char *err, size_t err_len)
{
    struct config_loader *ld;
    enum config_rc        rc;
    size_t ci = (size_t) (config_find_name("config") - config_options);

    /* The loader holds a scratch struct config of several KiB. */
    ld = calloc(1, sizeof(*ld));
    if (ld == NULL) {
        snprintf(err, err_len, "cannot load the configuration: %s",
                 strerror(ENOMEM));
        return CONFIG_ERROR;
    }
    ld->cfg = cfg;
    ld->err = err;
    ld->err_len = err_len;
    if (err_len > 0) {
        err[0] = '\0';
    }
    config_defaults(cfg);
    config_defaults(&ld->scratch);

    rc = config_load_flags(ld, argc, argv);
    if (rc != CONFIG_OK) {
        goto done;
    }
    if (config_load_env(ld, envp) < 0) {
        rc = CONFIG_ERROR;
        goto done;
    }
    if (cfg->config_file[0] != '\0'
        && config_load_file(ld, cfg->config_file,
                            ld->set_by[ci] == CONFIG_LAYER_FLAG ? "--config"
                                                                : "RCP_CONFIG")
               < 0) {
        rc = CONFIG_ERROR;
        goto done;
    }
    if (config_merge_cluster(ld) < 0 || config_merge_redis_url(ld) < 0
        || config_check(ld) < 0) {
        rc = CONFIG_ERROR;
        goto done;
    }
    rc = CONFIG_OK;

done:
    free(ld);
    return rc;
}

/* --- output ----------------------------------------------------------- */

/* The value of opt in cfg as a config file would spell it; "" for an
 * unset string. */
static void
config_format_value(const struct config *cfg, const struct config_option *opt,
                    char *buf, size_t len)
{
    const void *field = (const char *) cfg + opt->offset;

    switch (opt->kind) {
    case CONFIG_KIND_LISTEN:
    case CONFIG_KIND_LISTEN_OFF:
        config_format_listen(field, buf, len);
        return;
    case CONFIG_KIND_REDIS:
        config_format_redis(field, buf, len);
        return;
    case CONFIG_KIND_SEEDS:
        if (*(const char *) field == '\0') {
            snprintf(buf, len, "off");
        } else {
            config_mask_seeds(field, buf, len);
        }
        return;
    case CONFIG_KIND_SECRET:
    case CONFIG_KIND_PATH:
    case CONFIG_KIND_STRING:
        snprintf(buf, len, "%s", (const char *) field);
        return;
    case CONFIG_KIND_GLOBS:
    case CONFIG_KIND_CIDRS:
    case CONFIG_KIND_PREFIXES: {
        const struct config_list *l = field;
        size_t                    pos = 0;

        if (len > 0) {
            buf[0] = '\0';
        }
        for (uint32_t i = 0; i < l->n && pos < len; i++) {
            int n = snprintf(buf + pos, len - pos, "%s%s", i > 0 ? " " : "",
                             l->items[i]);

            pos += n > 0 ? (size_t) n : 0;
        }
        return;
    }
    case CONFIG_KIND_ACCESS_LOG:
        snprintf(buf, len, "%s",
                 *(const char *) field != '\0' ? (const char *) field : "off");
        return;
    case CONFIG_KIND_DURATION:
        config_format_duration(*(const uint64_t *) field, buf, len);
        return;
    case CONFIG_KIND_DURATION_OFF:
        if (*(const uint64_t *) field == 0) {
            snprintf(buf, len, "0");
        } else {
            config_format_duration(*(const uint64_t *) field, buf, len);
        }
        return;
    case CONFIG_KIND_FACTOR:
        snprintf(buf, len, "%g", *(const double *) field);
        return;
    case CONFIG_KIND_SIZE:
        config_format_size(*(const uint64_t *) field, buf, len);
        return;
    case CONFIG_KIND_U32:
        snprintf(buf, len, "%lu", (unsigned long) *(const uint32_t *) field);
        return;
    case CONFIG_KIND_LOG_LEVEL:
        snprintf(buf, len, "%s",
                 log_level_name(*(const enum log_level *) field));
        return;
    case CONFIG_KIND_TRACKING:
        snprintf(buf, len, "%s",
                 config_tracking_name(*(const enum config_tracking *) field));
        return;
    case CONFIG_KIND_READ_FROM:
        snprintf(buf, len, "%s",
                 config_read_from_name(
                     *(const enum config_read_from *) field));
        return;
    case CONFIG_KIND_BOOL:
        snprintf(buf, len, "%s", *(const bool *) field ? "yes" : "no");
        return;
    case CONFIG_KIND_CHECK:
    case CONFIG_KIND_HELP:
    case CONFIG_KIND_VERSION:
        break;
    }
    if (len > 0) {
        buf[0] = '\0';
    }
}

void
config_print(const struct config *cfg, FILE *out)
{
    char value[CONFIG_LIST_MAX * CONFIG_ITEM_MAX + 16];

    fprintf(out, "# redis-cache-proxy effective configuration\n");
    if (cfg->config_file[0] != '\0') {
        fprintf(out, "# read from %s\n", cfg->config_file);
    }
    for (size_t i = 0; i < CONFIG_NOPTIONS; i++) {
        const struct config_option *opt = &config_options[i];

        if ((opt->from & CONFIG_FROM_FILE) == 0) {
            continue;
        }
        config_format_value(cfg, opt, value, sizeof(value));
        if (opt->offset == CONFIG_FIELD(redis)
            && cfg->redis_cluster[0] != '\0') {
            /* Not an option of its own here: the first seed. */
            fprintf(out, "# %s (the first redis-cluster seed)\n", opt->name);
        } else if (value[0] == '\0') {
            /* A file line needs a value: show an unset one as a
             * comment, so the output can be used as a config file. */
            fprintf(out, "# %s (none)\n", opt->name);
        } else if (opt->kind == CONFIG_KIND_SECRET
                   && (opt->offset == CONFIG_FIELD(redis_password)
                       || opt->offset == CONFIG_FIELD(resp_password)
                       || opt->offset
                              == CONFIG_FIELD(redis_sentinel_password))) {
            fprintf(out, "%s ********\n", opt->name);
        } else {
            fprintf(out, "%s %s\n", opt->name, value);
        }
    }
}

void
config_usage(FILE *out, const char *progname)
{
    enum config_group group = CONFIG_GROUP_CONTROL + 1;

    fprintf(out,
            "Usage: %s [OPTION]...\n"
            "A read-through caching proxy for one Redis: GET /<key> over "
            "HTTP (or GET\nover the Redis protocol) is answered from a "
            "shared LRU cache, and from\nRedis on a miss.\n",
            progname);
    for (size_t i = 0; i < CONFIG_NOPTIONS; i++) {
        const struct config_option *opt = &config_options[i];
        char                        flag[64];

        if (opt->group != group) {
            group = opt->group;
            fprintf(out, "\n%s\n", config_group_titles[group]);
        }
        if (opt->short_name != 0) {
            snprintf(flag, sizeof(flag), "-%c, --%s%s%s", opt->short_name,
                     opt->name, opt->arg != NULL ? " " : "",
                     opt->arg != NULL ? opt->arg : "");
        } else {
            snprintf(flag, sizeof(flag), "    --%s%s%s", opt->name,
                     opt->arg != NULL ? " " : "",
                     opt->arg != NULL ? opt->arg : "");
        }
        fprintf(out, "  %-34s %s", flag, opt->help);
        if (opt->default_text != NULL) {
            fprintf(out, " [%s]", opt->default_text);
        }
        fputc('\n', out);
    }
    fprintf(out, "\nDURATION: 500ms, 30s, 5m, 1h (a bare number is seconds).  "
                 "SIZE: bytes or\n512k, 64m, 1g (1024-based).  Defaults in "
                 "[brackets].\n"
                 "Options (but --check-config, --help, --version) may also "
                 "come from the\nenvironment as RCP_<OPTION> (RCP_TTL=2s, "
                 "RCP_MAX_MEMORY=1g) and, except\n--config, from `name value` "
                 "lines in the --config file.  Flags override the\n"
                 "environment, which overrides the file.  See "
                 "redis-cache-proxy(8).\n");
}
