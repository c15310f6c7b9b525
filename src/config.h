/*
 * config: the options table, and the merge of flags > environment
 * (RCP_<OPTION>) > config file (`name value` lines) > defaults into one
 * struct config.  Pure apart from reading the file named by --config:
 * no logging, errors are returned as one line of text for the caller to
 * print.  Every option in DESIGN.md's table has a field here, with its
 * unit in the name.
 */
#ifndef RCP_CONFIG_H
#define RCP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config_parse.h"
#include "log.h"

#define CONFIG_ERR_MAX  512
#define CONFIG_LIST_MAX 32  /* items of a list option */
#define CONFIG_ITEM_MAX 256 /* bytes of one item, with NUL */

/* A repeatable option (--allow-keys, --allow-from ...): each value is
 * split at blanks into items; a higher layer replaces a lower one's
 * list, repeats within one layer add to it. */
struct config_list {
    uint32_t n;
    char     items[CONFIG_LIST_MAX][CONFIG_ITEM_MAX];
};

/* --redis-read-from: which node of a Redis Cluster serves a read. */
enum config_read_from {
    CONFIG_READ_PRIMARY = 0,   /* the slot's primary */
    CONFIG_READ_REPLICA,       /* a replica; 503 without one */
    CONFIG_READ_PREFER_REPLICA /* a replica, else the primary */
};

/* --tracking: how Redis tells the proxy a cached key changed (tracking.c). */
enum config_tracking {
    CONFIG_TRACKING_OFF = 0, /* the TTL alone */
    CONFIG_TRACKING_DEFAULT, /* keys each connection read */
    CONFIG_TRACKING_BCAST    /* every key under the prefixes */
};

struct config {
    struct config_listen  listen;       /* -l, --listen */
    struct config_listen  resp_listen;  /* --resp-listen, off */
    struct config_listen  admin_listen; /* --admin-listen */
    struct config_redis   redis;        /* -r, --redis */
    char                  redis_user[CONFIG_SECRET_MAX];     /* "" none */
    char                  redis_password[CONFIG_SECRET_MAX]; /* "" none */
    uint32_t              redis_db;         /* --redis-db, 0..2^31-1 */
    uint64_t              redis_timeout_ms; /* --redis-timeout */
    bool                  redis_tls;        /* --redis-tls, rediss:// */
    char                  redis_tls_ca_file[CONFIG_PATH_MAX];   /* "" */
    char                  redis_tls_ca_dir[CONFIG_PATH_MAX];    /* "" */
    char                  redis_tls_cert_file[CONFIG_PATH_MAX]; /* "" */
    char                  redis_tls_key_file[CONFIG_PATH_MAX];  /* "" */
    /* "": the host */
    char                  redis_tls_server_name[CONFIG_PATH_MAX];
    uint64_t              max_reply_bytes; /* --max-reply-size */
    /* seeds as given, comma-separated; "" off: one Redis at --redis */
    char                  redis_cluster[CONFIG_PATH_MAX];
    uint64_t              redis_cluster_refresh_ms; /* slot map refresh */
    enum config_read_from redis_read_from;          /* cluster reads */
    /* sentinels as given, comma-separated; "" off */
    char                  redis_sentinel[CONFIG_PATH_MAX];
    /* --redis-master: the name they monitor */
    char                  redis_master[CONFIG_ITEM_MAX];
    char                  redis_sentinel_user[CONFIG_SECRET_MAX]; /* "" */
    char                  redis_sentinel_password[CONFIG_SECRET_MAX];
    enum config_tracking  tracking;          /* --tracking, off */
    struct config_list    tracking_prefixes; /* bcast; none: all keys */
    uint64_t              ttl_ms;            /* -t, --ttl */
    uint64_t              stale_while_revalidate_ms; /* 0: off */
    uint64_t              stale_if_error_ms;         /* 0: off */
    uint64_t              negative_ttl_ms;           /* 0: off */
    double                early_refresh_beta;        /* XFetch beta, 0: off */
    uint32_t              capacity;                  /* -c, --capacity, keys */
    uint64_t              max_memory_bytes;          /* --max-memory */
    uint64_t              max_value_bytes;           /* --max-value-size */
    uint32_t              workers;             /* -w, --workers, 1..1024 */
    uint32_t              max_clients;         /* --max-clients, all workers */
    uint32_t              backlog;             /* --backlog */
    uint64_t              idle_timeout_ms;     /* --idle-timeout */
    uint64_t              header_timeout_ms;   /* --header-timeout */
    uint64_t              shutdown_timeout_ms; /* --shutdown-timeout: grace */
    enum log_level        log_level;           /* --log-level */
    char                  config_file[CONFIG_PATH_MAX]; /* --config, "" */
    char                  pid_file[CONFIG_PATH_MAX];    /* --pid-file, "" */
    char                  access_log[CONFIG_PATH_MAX];  /* "" off, "stderr" */
    bool                  check_config;                 /* --check-config */
    /* access control (access.c) */
    char                  key_prefix[CONFIG_ITEM_MAX]; /* "" none */
    struct config_list    allow_keys;          /* globs; none: all keys */
    struct config_list    allow_from;          /* CIDRs; none: everyone */
    struct config_list    proxy_protocol_from; /* CIDRs; none: off */
    char                  http_auth_file[CONFIG_PATH_MAX];  /* "" off */
    char                  resp_user[CONFIG_SECRET_MAX];     /* "" default */
    char                  resp_password[CONFIG_SECRET_MAX]; /* "" none */
};

enum config_rc {
    CONFIG_OK = 0,  /* cfg is complete and valid */
    CONFIG_HELP,    /* -h/--help was given: print config_usage() */
    CONFIG_VERSION, /* -V/--version was given */
    CONFIG_ERROR    /* err holds one line naming the option */
};

/* Fills cfg with DESIGN.md's defaults; workers = number of online CPUs. */
void config_defaults(struct config *cfg);

/*
 * Builds cfg from argv, then envp's RCP_* variables, then the file named
 * by --config (or RCP_CONFIG), each layer only filling what a higher one
 * did not set.  argv[0] is the program name; envp is NULL-terminated
 * (or NULL).  It starts from config_defaults() and never permutes argv,
 * so calling it again with the same arguments (SIGHUP) re-reads the file
 * and a line removed from it falls back to its default.
 * On CONFIG_ERROR, err (CONFIG_ERR_MAX bytes) holds e.g.
 * "--ttl: invalid duration '10x'" and cfg is unspecified.
 * cfg->check_config is set as soon as the flag is seen, even on error,
 * so main can choose exit status 1 (check-config) or 2 (bad flag).
 */
enum config_rc config_load(struct config *cfg, int argc, char *const argv[],
                           char *const envp[], char *err, size_t err_len);

/* Prints the effective configuration as config-file lines, the password
 * masked; what --check-config shows. */
void config_print(const struct config *cfg, FILE *out);

/* How long the cache keeps an entry past its TTL: the longer of the two
 * stale windows (0: not at all). */
uint64_t config_stale_ms(const struct config *cfg);

/* Prints --help: every option with its default. */
void config_usage(FILE *out, const char *progname);

/* "off", "default" or "bcast". */
const char *config_tracking_name(enum config_tracking t);

/* "primary", "replica" or "prefer-replica". */
const char *config_read_from_name(enum config_read_from r);

#endif
