/*
 * redis_url: parses a Redis URL as Redis clients take them (redis-cli -u,
 * redis-py, Jedis):
 *
 *   redis://[[user]:password@]host[:port][/db]     plain TCP
 *   rediss://[[user]:password@]host[:port][/db]    TLS
 *   unix://[[user]:password@]/path[?db=N]          unix socket
 *
 * host is a name, an IPv4 address or [IPv6]; port defaults to 6379; a
 * user or password is percent-decoded; "user@" alone (no colon) is a
 * password, as in redis-cli.  "?db=N" is accepted for every scheme.
 * Pure: no I/O, no allocation, no globals; the result is in the caller's
 * struct.  redis_url_mask() copies a URL with its password hidden, for
 * every message that echoes one.
 */
#ifndef RCP_REDIS_URL_H
#define RCP_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REDIS_URL_HOST_MAX   256 /* with the NUL, as CONFIG_HOST_MAX */
#define REDIS_URL_PATH_MAX   108 /* sockaddr_un's sun_path */
#define REDIS_URL_SECRET_MAX 512 /* as CONFIG_SECRET_MAX */
#define REDIS_URL_DB_MAX     2147483647u
#define REDIS_URL_PORT       6379

enum redis_url_rc {
    REDIS_URL_OK = 0,
    REDIS_URL_NOT_URL, /* no redis://, rediss:// or unix:// */
    REDIS_URL_BAD      /* a URL, but malformed: see *why */
};

struct redis_url {
    bool     tls;                        /* rediss:// */
    bool     is_unix;                    /* unix:// */
    char     host[REDIS_URL_HOST_MAX];   /* TCP */
    uint16_t port;                       /* TCP */
    char     path[REDIS_URL_PATH_MAX];   /* unix */
    char     user[REDIS_URL_SECRET_MAX]; /* "" none */
    char     password[REDIS_URL_SECRET_MAX];
    bool     has_password; /* a password was given ("" allowed) */
    bool     has_db;
    uint32_t db;
};

/* Parses the NUL-terminated s.  On REDIS_URL_BAD, *why is a static
 * phrase ("port out of range"); out is unspecified. */
enum redis_url_rc redis_url_parse(const char *s, struct redis_url *out,
                                  const char **why);

/* Copies s into out (cap bytes, NUL-terminated, truncated if need be)
 * with the password of a URL replaced by "****".  Anything that is not
 * a URL with a password is copied as is. */
void redis_url_mask(const char *s, char *out, size_t cap);

#endif
