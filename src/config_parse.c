/*
 * config_parse: the strict value parsers and printers of the options:
 * numbers, durations, sizes, listening addresses, Redis addresses and
 * seed lists.  Pure: no I/O, no allocation, no globals but the constant
 * suffix table; tested on their own by tests/check_config_parse.c.
 *
 * Every parser takes the whole value as a C string and returns 0 or a
 * negative errno (-EINVAL bad syntax, -ERANGE too large, ...), writing
 * its output only on success.  None accepts an empty string, a sign,
 * blanks or trailing garbage.  A printer writes what its parser reads
 * back to the same value (the password of a URL masked).
 */
#include "rcp_autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "config_parse.h"
#include "redis_url.h"

/* --- numbers, durations, sizes ---------------------------------------- */

/*
 * Reads one or more decimal digits at *sp into *out and advances *sp.
 * Returns 0, -EINVAL when there is no digit, or -ERANGE when the number
 * does not fit in 64 bits (the digits are still consumed, so the caller
 * can judge the syntax of what follows before reporting the overflow).
 */
static int
config_parse_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t    v = 0;
    int         rc = 0;

    if (*s < '0' || *s > '9') {
        return -EINVAL;
    }
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned) (*s - '0');

        if (v > (UINT64_MAX - d) / 10) {
            rc = -ERANGE;
        } else {
            v = v * 10 + d;
        }
    }
    *sp = s;
    *out = v;
    return rc;
}

int
config_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;
    int      rc = config_parse_digits(&s, &v);

    if (rc == -EINVAL || *s != '\0') {
        return -EINVAL;
    }
    if (rc < 0 || v > max) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}

int
config_parse_factor(const char *s, double max, double *out)
{
    const char *p = s;
    double      d;

    /* The grammar first: strtod() alone would take " 1", "+1", "1e2",
     * "0x10" and "inf". */
    if (*p < '0' || *p > '9') {
        return -EINVAL;
    }
    while (*p >= '0' && *p <= '9') {
        p++;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') {
            return -EINVAL;
        }
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (*p != '\0') {
        return -EINVAL;
    }
    /* The program never calls setlocale(), so '.' is the radix. */
    d = strtod(s, NULL);
    if (!(d <= max)) {
        return -ERANGE;
    }
    *out = d;
    return 0;
}

/* Multiplies without wrapping: 0, or -ERANGE. */
static int
config_mul(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b) {
        return -ERANGE;
    }
    *out = a * b;
    return 0;
}

/*
 * The one suffix table of durations and sizes, for parsing and printing
 * alike.  A value is digits and one of its kind's suffixes, exactly as
 * spelled here (so "1S" and "1kb" are refused).  The printer takes, of
 * the rows marked `print`, the first (largest) whose scale divides the
 * value, so "90s" and "64m" come back as they were written.
 */
enum config_unit_kind {
    CONFIG_UNIT_DURATION, /* scale in milliseconds */
    CONFIG_UNIT_SIZE      /* scale in bytes */
};

static const struct config_unit {
    enum config_unit_kind kind;
    const char           *suffix;
    uint64_t              scale;
    bool                  print; /* the spelling the printer uses */
} config_units[] = {
    { CONFIG_UNIT_DURATION, "h", 3600 * 1000, true },
    { CONFIG_UNIT_DURATION, "m", 60 * 1000, true },
    { CONFIG_UNIT_DURATION, "s", 1000, true },
    { CONFIG_UNIT_DURATION, "", 1000, false }, /* bare: seconds */
    { CONFIG_UNIT_DURATION, "ms", 1, true },
    { CONFIG_UNIT_SIZE, "g", 1ULL << 30, true },
    { CONFIG_UNIT_SIZE, "G", 1ULL << 30, false }, /* as nginx takes it */
    { CONFIG_UNIT_SIZE, "m", 1ULL << 20, true },
    { CONFIG_UNIT_SIZE, "M", 1ULL << 20, false },
    { CONFIG_UNIT_SIZE, "k", 1ULL << 10, true },
    { CONFIG_UNIT_SIZE, "K", 1ULL << 10, false },
    { CONFIG_UNIT_SIZE, "", 1, true },
};

#define CONFIG_NUNITS (sizeof(config_units) / sizeof(config_units[0]))

/* Digits, then a suffix of kind's: the value times the suffix's scale.
 * The syntax is judged before the range, so "99999999999999999999x" is
 * -EINVAL, not -ERANGE. */
static int
config_parse_scaled(const char *s, enum config_unit_kind kind, uint64_t *out)
{
    uint64_t v;
    int      rc = config_parse_digits(&s, &v);

    if (rc == -EINVAL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < CONFIG_NUNITS; i++) {
        const struct config_unit *u = &config_units[i];

        if (u->kind == kind && strcmp(s, u->suffix) == 0) {
            if (rc < 0) {
                return rc;
            }
            return config_mul(v, u->scale, out);
        }
    }
    return -EINVAL;
}

/* "0" for zero; otherwise the largest printed unit that shows the value
 * exactly: 90000 ms -> "90s", 1048576 bytes -> "1m". */
static void
config_format_scaled(uint64_t v, enum config_unit_kind kind, char *buf,
                     size_t len)
{
    for (size_t i = 0; v != 0 && i < CONFIG_NUNITS; i++) {
        const struct config_unit *u = &config_units[i];

        if (u->kind == kind && u->print && v % u->scale == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long) (v / u->scale),
                     u->suffix);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long) v);
}

int
config_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    return config_parse_scaled(s, CONFIG_UNIT_DURATION, out_ms);
}

int
config_parse_size_bytes(const char *s, uint64_t *out_bytes)
{
    return config_parse_scaled(s, CONFIG_UNIT_SIZE, out_bytes);
}

void
config_format_duration(uint64_t ms, char *buf, size_t len)
{
    config_format_scaled(ms, CONFIG_UNIT_DURATION, buf, len);
}

void
config_format_size(uint64_t bytes, char *buf, size_t len)
{
    config_format_scaled(bytes, CONFIG_UNIT_SIZE, buf, len);
}

/* --- addresses ------------------------------------------------------ */

/* A host name or IPv4 address: letters, digits, '.', '-', '_'. */
static int
config_check_hostname(const char *host, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) host[i];

        if (!isalnum(c) && c != '.' && c != '-' && c != '_') {
            return -EINVAL;
        }
    }
    return 0;
}

/*
 * Splits "[v6]:PORT", "HOST:PORT" or, when bare_port, "PORT" into host and
 * port.  host "" means no host was given (bare PORT, ":PORT" or "*:PORT").
 */
static int
config_parse_hostport(const char *s, char host[CONFIG_HOST_MAX],
                      uint16_t *port, bool bare_port)
{
    const char *port_s;
    const char *h;
    size_t      hlen;
    uint64_t    p;
    int         rc;

    if (s[0] == '[') {
        const char   *close = strchr(s, ']');
        unsigned char addr[sizeof(struct in6_addr)];

        if (close == NULL || close[1] != ':') {
            return -EINVAL;
        }
        h = s + 1;
        hlen = (size_t) (close - h);
        if (hlen == 0 || hlen >= INET6_ADDRSTRLEN) {
            return -EINVAL;
        }
        memcpy(host, h, hlen);
        host[hlen] = '\0';
        if (inet_pton(AF_INET6, host, addr) != 1) {
            return -EINVAL;
        }
        port_s = close + 2;
    } else {
        const char *colon = strrchr(s, ':');

        if (colon == NULL) {
            if (!bare_port) {
                return -EINVAL;
            }
            h = s;
            hlen = 0;
            port_s = s;
        } else {
            h = s;
            hlen = (size_t) (colon - s);
            port_s = colon + 1;
        }
        if (hlen == 1 && h[0] == '*') {
            hlen = 0;
        }
        /* An IPv6 address needs brackets: "::1:80" has no clear port. */
        if (memchr(h, ':', hlen) != NULL
            || config_check_hostname(h, hlen) < 0) {
            return -EINVAL;
        }
        if (hlen >= CONFIG_HOST_MAX) {
            return -ERANGE;
        }
        memcpy(host, h, hlen);
        host[hlen] = '\0';
    }

    rc = config_parse_uint(port_s, 65535, &p);
    if (rc < 0 || p == 0) {
        return -EINVAL;
    }
    *port = (uint16_t) p;
    return 0;
}

int
config_parse_listen(const char *s, struct config_listen *out, bool allow_off)
{
    struct config_listen l;
    int                  rc;

    memset(&l, 0, sizeof(l));
    if (strcmp(s, "off") == 0) {
        if (!allow_off) {
            return -EINVAL;
        }
        *out = l;
        return 0;
    }
    rc = config_parse_hostport(s, l.host, &l.port, true);
    if (rc < 0) {
        return rc;
    }
    l.enabled = true;
    *out = l;
    return 0;
}

int
config_parse_redis(const char *s, struct config_redis *out)
{
    struct config_redis r;
    struct redis_url    url;
    const char         *why;
    int                 rc;

    memset(&r, 0, sizeof(r));
    switch (redis_url_parse(s, &url, &why)) {
    case REDIS_URL_OK:
        r.is_unix = url.is_unix;
        memcpy(r.host, url.host, sizeof(url.host));
        r.port = url.port;
        memcpy(r.path, url.path, sizeof(url.path));
        r.tls = url.tls;
        r.has_password = url.has_password;
        memcpy(r.user, url.user, sizeof(url.user));
        memcpy(r.password, url.password, sizeof(url.password));
        r.has_db = url.has_db;
        r.db = url.db;
        *out = r;
        return 0;
    case REDIS_URL_BAD:
        return -EPROTO;
    case REDIS_URL_NOT_URL:
        break;
    }
    if (strncmp(s, "unix:", 5) == 0) {
        size_t len = strlen(s + 5);

        if (len == 0) {
            return -EINVAL;
        }
        /* The path must fit sockaddr_un's sun_path with its NUL. */
        if (len >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
            return -ERANGE;
        }
        r.is_unix = true;
        memcpy(r.path, s + 5, len + 1);
        *out = r;
        return 0;
    }
    rc = config_parse_hostport(s, r.host, &r.port, false);
    if (rc < 0) {
        return rc;
    }
    if (r.host[0] == '\0') {
        return -EINVAL;
    }
    *out = r;
    return 0;
}

int
config_parse_seeds(const char *s, struct config_redis *out, size_t max,
                   size_t *bad)
{
    char   item[CONFIG_PATH_MAX];
    size_t n = 0;

    *bad = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t      len = comma != NULL ? (size_t) (comma - s) : strlen(s);
        int         rc;

        *bad = n;
        if (len == 0) {
            return -EINVAL;
        }
        if (n == max) {
            return -E2BIG;
        }
        if (len >= sizeof(item)) {
            return -ERANGE;
        }
        memcpy(item, s, len);
        item[len] = '\0';
        rc = config_parse_redis(item, &out[n]);
        if (rc < 0) {
            return rc;
        }
        if (out[n].is_unix) {
            return -EINVAL;
        }
        n++;
        if (comma == NULL) {
            return (int) n;
        }
        s = comma + 1;
    }
}

/* --- printing addresses --------------------------------------------- */

/* A seed list with each URL's password hidden, for logs and errors. */
void
config_mask_seeds(const char *s, char *out, size_t cap)
{
    size_t pos = 0;

    if (cap == 0) {
        return;
    }
    out[0] = '\0';
    while (pos + 1 < cap) {
        const char *comma = strchr(s, ',');
        size_t      len = comma != NULL ? (size_t) (comma - s) : strlen(s);
        char        item[CONFIG_PATH_MAX];
        char        masked[CONFIG_PATH_MAX];

        snprintf(item, sizeof(item), "%.*s", (int) len, s);
        redis_url_mask(item, masked, sizeof(masked));
        pos += (size_t) snprintf(out + pos, cap - pos, "%s%s",
                                 pos > 0 ? "," : "", masked);
        if (comma == NULL) {
            break;
        }
        s = comma + 1;
    }
}

static void
config_format_hostport(const char *host, uint16_t port, char *buf, size_t len)
{
    if (host[0] == '\0') {
        snprintf(buf, len, "*:%u", (unsigned) port);
    } else if (strchr(host, ':') != NULL) {
        snprintf(buf, len, "[%s]:%u", host, (unsigned) port);
    } else {
        snprintf(buf, len, "%s:%u", host, (unsigned) port);
    }
}

void
config_format_listen(const struct config_listen *l, char *buf, size_t len)
{
    if (!l->enabled) {
        snprintf(buf, len, "off");
        return;
    }
    config_format_hostport(l->host, l->port, buf, len);
}

/* The address alone: a URL's user, password and db are shown by their
 * own options, once merged, so no secret is ever printed here. */
void
config_format_redis(const struct config_redis *r, char *buf, size_t len)
{
    if (r->is_unix) {
        snprintf(buf, len, "unix:%s", r->path);
        return;
    }
    if (r->tls) {
        char hp[CONFIG_HOST_MAX + 16];

        config_format_hostport(r->host, r->port, hp, sizeof(hp));
        snprintf(buf, len, "rediss://%s", hp);
        return;
    }
    config_format_hostport(r->host, r->port, buf, len);
}
