/*
 * config_parse: the options' value types and their strict parsers and
 * printers (config_parse.c): numbers, durations, sizes, listening and
 * Redis addresses, seed lists.  Pure functions over a C string; config.c
 * applies them to every layer, and cluster.c and sentinel.c split their
 * seed lists with config_parse_seeds().
 */
#ifndef RCP_CONFIG_PARSE_H
#define RCP_CONFIG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_HOST_MAX   256
#define CONFIG_PATH_MAX   1024
#define CONFIG_SECRET_MAX 512
#define CONFIG_SEEDS_MAX  16 /* --redis-cluster seed nodes */

/* A listening address: host is a numeric IPv4/IPv6 address or a name;
 * "" or "*" means every address.  enabled is false for `off`. */
struct config_listen {
    bool     enabled;
    char     host[CONFIG_HOST_MAX];
    uint16_t port;
};

/* The backing Redis: TCP HOST:PORT (IPv6 in brackets), unix:PATH, or a
 * URL (redis://, rediss://, unix://; see redis_url.h).  What a URL says
 * beyond the address is kept here and merged into struct config once
 * every layer is read, so explicit --redis-user, --redis-password,
 * --redis-db and --redis-tls override it. */
struct config_redis {
    bool     is_unix;
    char     host[CONFIG_HOST_MAX]; /* when !is_unix */
    uint16_t port;                  /* when !is_unix */
    char     path[CONFIG_PATH_MAX]; /* when is_unix */
    bool     tls;                   /* rediss:// */
    bool     has_password;          /* the URL gave user/password */
    char     user[CONFIG_SECRET_MAX];
    char     password[CONFIG_SECRET_MAX];
    bool     has_db; /* the URL gave a db */
    uint32_t db;
};

/* Each parser returns 0 or -EINVAL (bad syntax) / -ERANGE (overflow),
 * writes its output only on success, and never accepts an empty string,
 * a sign, blanks or trailing garbage. */

/* Decimal digits, at most max. */
int config_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* A decimal number, digits with an optional fraction ("1", "0.5",
 * "100.25"): no sign, exponent, hex, "inf" or blanks, which strtod()
 * would take.  -ERANGE past max. */
int config_parse_factor(const char *s, double max, double *out);
/* Digits and a unit: ms, s, m, h; bare digits are seconds. */
int config_parse_duration_ms(const char *s, uint64_t *out_ms);
/* Digits and a unit: k, m, g (powers of 1024, either case); bare digits
 * are bytes. */
int config_parse_size_bytes(const char *s, uint64_t *out_bytes);
/* HOST:PORT, [V6]:PORT, *:PORT, :PORT or PORT ("" host: every address);
 * "off" only where allow_off. */
int config_parse_listen(const char *s, struct config_listen *out,
                        bool allow_off);
/* HOST:PORT, [V6]:PORT, unix:PATH or a redis://, rediss://, unix:// URL
 * (-EPROTO: a URL that redis_url_parse() refuses). */
int config_parse_redis(const char *s, struct config_redis *out);
/* Splits a --redis-cluster list (HOST:PORT or redis:// / rediss:// URLs,
 * comma-separated, no unix sockets) into out[0..max).  The number of
 * seeds, or what config_parse_redis() returns for the first bad one
 * (its index in *bad), or -E2BIG past max, or -EINVAL for an empty item
 * or a unix socket. */
int config_parse_seeds(const char *s, struct config_redis *out, size_t max,
                       size_t *bad);

/* The printers write what the parsers read back, cut to fit len. */

/* "0", or the largest unit that shows the value exactly: "90s". */
void config_format_duration(uint64_t ms, char *buf, size_t len);
/* "0", or the largest unit that shows the value exactly: "64m". */
void config_format_size(uint64_t bytes, char *buf, size_t len);
/* "HOST:PORT", "[V6]:PORT", "*:PORT" or "off". */
void config_format_listen(const struct config_listen *l, char *buf,
                          size_t len);
/* The address alone ("HOST:PORT", "unix:PATH", "rediss://HOST:PORT"):
 * never a user, password or db. */
void config_format_redis(const struct config_redis *r, char *buf, size_t len);
/* A seed list with each URL's password hidden, for logs and errors. */
void config_mask_seeds(const char *s, char *out, size_t cap);

#endif
