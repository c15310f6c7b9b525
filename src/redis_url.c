/*
 * redis_url: see redis_url.h.  One pass, left to right: the scheme, then
 * the user info up to the last '@' before the path, then the host (or
 * the socket path), the port, the path's db and the query.  Each part
 * is checked where it is cut out, so an error names the part.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "redis_url.h"

/* memchr over [p, end), which may be empty. */
static const char *
redis_url_find(const char *p, const char *end, char c)
{
    return p < end ? memchr(p, c, (size_t) (end - p)) : NULL;
}

static int
redis_url_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes s[0, n) into out (cap with the NUL).  0 or -1. */
static int
redis_url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        char c = s[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= n) {
                return -1;
            }
            hi = redis_url_hex(s[i + 1]);
            lo = redis_url_hex(s[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = (char) (hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) {
            return -1; /* a NUL cannot be sent in AUTH's args */
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Strict decimal in [0, max]; 0 or -1. */
static int
redis_url_number(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t   i;

    if (n == 0 || n > 10) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t) (s[i] - '0');
    }
    if (v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static bool
redis_url_hostname_ok(const char *h, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char c = h[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) {
            return false;
        }
    }
    return n > 0;
}

static enum redis_url_rc
redis_url_bad(const char **why, const char *text)
{
    *why = text;
    return REDIS_URL_BAD;
}

/* "db=N" as the whole query; 0 or -1. */
static int
redis_url_query(const char *q, size_t n, struct redis_url *out)
{
    uint64_t db;

    if (n < 3 || memcmp(q, "db=", 3) != 0
        || redis_url_number(q + 3, n - 3, REDIS_URL_DB_MAX, &db) != 0) {
        return -1;
    }
    out->has_db = true;
    out->db = (uint32_t) db;
    return 0;
}

static const char *
redis_url_scheme(const char *s, struct redis_url *out)
{
    if (strncmp(s, "redis://", 8) == 0) {
        return s + 8;
    }
    if (strncmp(s, "rediss://", 9) == 0) {
        out->tls = true;
        return s + 9;
    }
    if (strncmp(s, "unix://", 7) == 0) {
        out->is_unix = true;
        return s + 7;
    }
    return NULL;
}

enum redis_url_rc
redis_url_parse(const char *s, struct redis_url *out, const char **why)
{
    const char *p, *end, *at, *auth_end, *query, *colon;
    size_t      n;
    uint64_t    v;

    memset(out, 0, sizeof(*out));
    out->port = REDIS_URL_PORT;
    *why = "";
    p = redis_url_scheme(s, out);
    if (p == NULL) {
        return REDIS_URL_NOT_URL;
    }
    end = p + strlen(p);
    query = strchr(p, '?');
    if (query != NULL) {
        if (redis_url_query(query + 1, (size_t) (end - query - 1), out) != 0) {
            return redis_url_bad(why, "the only query it takes is ?db=N");
        }
        end = query;
    }

    /* User info: up to the last '@' (a password may hold '@' encoded or
     * not); for unix:// it must come before the path's '/'. */
    auth_end = out->is_unix ? redis_url_find(p, end, '/') : NULL;
    if (auth_end == NULL) {
        auth_end = end;
    }
    at = NULL;
    for (const char *q = p; q < auth_end; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    if (!out->is_unix && at != NULL) {
        /* The host part never holds '/', the path never '@'. */
        const char *slash = redis_url_find(p, end, '/');

        if (slash != NULL && slash < at) {
            return redis_url_bad(why, "'@' after the path");
        }
    }
    if (at != NULL) {
        colon = redis_url_find(p, at, ':');
        if (colon != NULL) {
            if (redis_url_decode(p, (size_t) (colon - p), out->user,
                                 sizeof(out->user))
                != 0) {
                return redis_url_bad(why, "bad user name");
            }
            p = colon + 1;
        }
        if (redis_url_decode(p, (size_t) (at - p), out->password,
                             sizeof(out->password))
            != 0) {
            return redis_url_bad(why, "bad password");
        }
        out->has_password = true;
        p = at + 1;
    }

    if (out->is_unix) {
        n = (size_t) (end - p);
        if (n < 2 || p[0] != '/') {
            return redis_url_bad(why, "needs an absolute socket path");
        }
        if (n >= sizeof(out->path)) {
            return redis_url_bad(why, "socket path too long");
        }
        memcpy(out->path, p, n);
        out->path[n] = '\0';
        return REDIS_URL_OK;
    }

    /* host[:port] up to the path. */
    {
        const char *slash = redis_url_find(p, end, '/');
        const char *host_end = slash != NULL ? slash : end;
        const char *port = NULL;

        if (p < host_end && p[0] == '[') {
            const char   *close = redis_url_find(p, host_end, ']');
            unsigned char addr[sizeof(struct in6_addr)];

            if (close == NULL) {
                return redis_url_bad(why, "no ']' after the IPv6 address");
            }
            n = (size_t) (close - p - 1);
            if (n == 0 || n >= 64) {
                return redis_url_bad(why, "bad IPv6 address");
            }
            memcpy(out->host, p + 1, n);
            out->host[n] = '\0';
            if (inet_pton(AF_INET6, out->host, addr) != 1) {
                return redis_url_bad(why, "bad IPv6 address");
            }
            if (close + 1 < host_end) {
                if (close[1] != ':') {
                    return redis_url_bad(why, "junk after the IPv6 address");
                }
                port = close + 2;
            }
        } else {
            colon = redis_url_find(p, host_end, ':');
            n = (size_t) ((colon != NULL ? colon : host_end) - p);
            if (n == 0) {
                return redis_url_bad(why, "no host");
            }
            if (n >= sizeof(out->host)) {
                return redis_url_bad(why, "host name too long");
            }
            if (!redis_url_hostname_ok(p, n)) {
                return redis_url_bad(why, "bad host name");
            }
            memcpy(out->host, p, n);
            out->host[n] = '\0';
            if (colon != NULL) {
                port = colon + 1;
            }
        }
        if (port != NULL) {
            if (redis_url_number(port, (size_t) (host_end - port), 65535, &v)
                    != 0
                || v == 0) {
                return redis_url_bad(why, "port must be 1-65535");
            }
            out->port = (uint16_t) v;
        }
        if (slash != NULL && slash + 1 < end) {
            if (out->has_db) {
                return redis_url_bad(why, "db given twice");
            }
            if (redis_url_number(slash + 1, (size_t) (end - slash - 1),
                                 REDIS_URL_DB_MAX, &v)
                != 0) {
                return redis_url_bad(why, "the path must be a db number");
            }
            out->has_db = true;
            out->db = (uint32_t) v;
        }
    }
    return REDIS_URL_OK;
}

void
redis_url_mask(const char *s, char *out, size_t cap)
{
    struct redis_url scratch;
    const char      *p, *end, *at = NULL, *colon, *stop;

    if (cap == 0) {
        return;
    }
    memset(&scratch, 0, sizeof(scratch));
    p = redis_url_scheme(s, &scratch);
    if (p == NULL) {
        (void) snprintf(out, cap, "%s", s);
        return;
    }
    /* Not cut at '?': a raw '?' in the password makes the URL bad, and
     * its error message must not show the password either. */
    end = p + strlen(p);
    stop = scratch.is_unix ? p + strcspn(p, "/") : end;
    for (const char *q = p; q < stop; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    if (at == NULL) {
        (void) snprintf(out, cap, "%s", s);
        return;
    }
    colon = redis_url_find(p, at, ':');
    /* Keep the scheme and the user; hide everything to the '@'. */
    (void) snprintf(out, cap, "%.*s****%s",
                    (int) ((colon != NULL ? colon + 1 : p) - s), s, at);
}
