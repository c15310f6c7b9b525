/*
 * http_reply: response heads and error bodies for the data port.
 *
 * Every head we send has the same order: status line, Server, Date,
 * Content-Type, Content-Length (none on a 304), then ETag, Cache-Control,
 * X-Cache/Age and Cache-Status for cache answers, Allow for 405, and
 * Connection.  The longest possible head (all fields, a 20-digit length
 * and age) stays under HTTP_REPLY_HEAD_MAX, which is why the worker can
 * reserve that much before it knows the value's size.
 */
#include "rcp_autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "http_reply.h"

static const char http_reply_server_header[] =
    "Server: redis-cache-proxy/" PACKAGE_VERSION "\r\n";

const char *
http_reply_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* Appends s (n bytes) at *pos.  Callers size buf by HTTP_REPLY_HEAD_MAX (see
 * the top comment); should one ever be short, the head is clipped rather
 * than the buffer overrun. */
static void
http_reply_append(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (*pos + n > cap) {
        n = cap - *pos;
    }
    memcpy(buf + *pos, s, n);
    *pos += n;
}

static void
http_reply_append_u64(char *buf, size_t cap, size_t *pos, uint64_t v)
{
    char   tmp[20];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    http_reply_append(buf, cap, pos, tmp + sizeof(tmp) - n, n);
}

#define HTTP_REPLY_LIT(buf, cap, pos, lit) \
    http_reply_append(buf, cap, pos, lit, sizeof(lit) - 1)

static size_t http_reply_format_head_start(const struct http_reply *reply,
                                           char *buf, size_t cap);

/* Everything after Content-Length's name: shared by the general and the
 * hot-path formatter so they cannot drift apart. */
static void
http_reply_format_cache_status(const struct http_reply_cache_status *cs,
                               char *buf, size_t cap, size_t *pos)
{
    HTTP_REPLY_LIT(buf, cap, pos, "Cache-Status: redis-cache-proxy");
    if (cs->hit) {
        HTTP_REPLY_LIT(buf, cap, pos, "; hit");
    }
    if (cs->stale) {
        HTTP_REPLY_LIT(buf, cap, pos, "; stale");
    }
    if (cs->has_ttl) {
        HTTP_REPLY_LIT(buf, cap, pos, "; ttl=");
        if (cs->ttl_s < 0) {
            HTTP_REPLY_LIT(buf, cap, pos, "-");
            http_reply_append_u64(buf, cap, pos,
                                  (uint64_t) - (cs->ttl_s + 1) + 1);
        } else {
            http_reply_append_u64(buf, cap, pos, (uint64_t) cs->ttl_s);
        }
    }
    if (cs->fwd_miss) {
        HTTP_REPLY_LIT(buf, cap, pos, "; fwd=miss");
    } else if (cs->fwd_bypass) {
        HTTP_REPLY_LIT(buf, cap, pos, "; fwd=bypass");
    }
    if (cs->fwd_status != 0) {
        HTTP_REPLY_LIT(buf, cap, pos, "; fwd-status=");
        http_reply_append_u64(buf, cap, pos, (uint64_t) cs->fwd_status);
    }
    if (cs->stored) {
        HTTP_REPLY_LIT(buf, cap, pos, "; stored");
    }
    HTTP_REPLY_LIT(buf, cap, pos, "\r\n");
}

static size_t
http_reply_format_tail(const struct http_reply *reply, char *buf, size_t cap,
                       size_t pos)
{
    static const char *const x_cache[] = {
        [HTTP_REPLY_CACHE_HIT] = "X-Cache: HIT\r\nAge: ",
        [HTTP_REPLY_CACHE_MISS] = "X-Cache: MISS\r\nAge: ",
        [HTTP_REPLY_CACHE_STALE] = "X-Cache: STALE\r\nAge: ",
        [HTTP_REPLY_CACHE_UPDATING] = "X-Cache: UPDATING\r\nAge: ",
    };

    if (reply->status != 304) {
        http_reply_append_u64(buf, cap, &pos, reply->content_length);
        HTTP_REPLY_LIT(buf, cap, &pos, "\r\n");
    }
    if (reply->has_etag) {
        char etag[HTTP_REPLY_ETAG_LEN];

        http_reply_format_etag(reply->etag, etag);
        HTTP_REPLY_LIT(buf, cap, &pos, "ETag: ");
        http_reply_append(buf, cap, &pos, etag, sizeof(etag));
        HTTP_REPLY_LIT(buf, cap, &pos, "\r\n");
    }
    if (reply->has_max_age) {
        HTTP_REPLY_LIT(buf, cap, &pos, "Cache-Control: max-age=");
        http_reply_append_u64(buf, cap, &pos, reply->max_age_s);
        HTTP_REPLY_LIT(buf, cap, &pos, "\r\n");
    }
    if (reply->cache != HTTP_REPLY_CACHE_NONE) {
        const char *x = x_cache[reply->cache];

        http_reply_append(buf, cap, &pos, x, strlen(x));
        http_reply_append_u64(buf, cap, &pos,
                              reply->cache == HTTP_REPLY_CACHE_MISS
                                  ? 0
                                  : reply->age_s);
        HTTP_REPLY_LIT(buf, cap, &pos, "\r\n");
    }
    if (reply->cs.on) {
        http_reply_format_cache_status(&reply->cs, buf, cap, &pos);
    }
    if (reply->allow) {
        HTTP_REPLY_LIT(buf, cap, &pos, "Allow: GET, HEAD\r\n");
    }
    if (!reply->keep_alive) {
        HTTP_REPLY_LIT(buf, cap, &pos, "Connection: close\r\n");
    } else if (reply->http10) {
        HTTP_REPLY_LIT(buf, cap, &pos, "Connection: keep-alive\r\n");
    }
    HTTP_REPLY_LIT(buf, cap, &pos, "\r\n");
    return pos;
}

size_t
http_reply_format_ok_prefix(const char *date, char *buf, size_t cap)
{
    struct http_reply r = {
        .status = 200,
        .content_type = "application/octet-stream",
        .date = date,
    };

    return http_reply_format_head_start(&r, buf, cap);
}

size_t
http_reply_format_ok_suffix(const struct http_reply *reply, char *buf,
                            size_t cap)
{
    return http_reply_format_tail(reply, buf, cap, 0);
}

size_t
http_reply_format_head(const struct http_reply *reply, char *buf, size_t cap)
{
    return http_reply_format_tail(
        reply, buf, cap, http_reply_format_head_start(reply, buf, cap));
}

/* Status line through "Content-Length: ". */
static size_t
http_reply_format_head_start(const struct http_reply *reply, char *buf,
                             size_t cap)
{
    size_t      pos = 0;
    const char *reason = http_reply_reason(reply->status);

    HTTP_REPLY_LIT(buf, cap, &pos, "HTTP/1.1 ");
    http_reply_append_u64(buf, cap, &pos, (uint64_t) reply->status);
    HTTP_REPLY_LIT(buf, cap, &pos, " ");
    http_reply_append(buf, cap, &pos, reason, strlen(reason));
    HTTP_REPLY_LIT(buf, cap, &pos, "\r\n");
    http_reply_append(buf, cap, &pos, http_reply_server_header,
                      sizeof(http_reply_server_header) - 1);
    HTTP_REPLY_LIT(buf, cap, &pos, "Date: ");
    http_reply_append(buf, cap, &pos, reply->date, HTTP_REPLY_DATE_LEN);
    HTTP_REPLY_LIT(buf, cap, &pos, "\r\n");
    if (reply->status == 304) {
        return pos; /* no Content-Type or -Length: no body */
    }
    if (reply->content_type != NULL) {
        HTTP_REPLY_LIT(buf, cap, &pos, "Content-Type: ");
        http_reply_append(buf, cap, &pos, reply->content_type,
                          strlen(reply->content_type));
        HTTP_REPLY_LIT(buf, cap, &pos, "\r\n");
    }
    HTTP_REPLY_LIT(buf, cap, &pos, "Content-Length: ");
    return pos;
}

void
http_reply_format_etag(uint64_t etag, char *out)
{
    static const char hex[] = "0123456789abcdef";

    out[0] = '"';
    for (int i = 0; i < 16; i++) {
        out[1 + i] = hex[(etag >> (60 - 4 * i)) & 0xf];
    }
    out[HTTP_REPLY_ETAG_LEN - 1] = '"';
}

/* etagc (RFC 9110 8.8.3): %x21 / %x23-7E / obs-text. */
static bool
http_reply_is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

static bool
http_reply_is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* An If-None-Match or If-Match value against our ETag: weak compares
 * W/"x" equal to "x" (If-None-Match), strong never matches a weak tag
 * (If-Match, RFC 9110 13.1.1), and our ETags are all strong. */
static enum http_reply_inm
http_reply_etag_list(const char *value, size_t len, uint64_t etag, bool weak)
{
    const unsigned char *p = (const unsigned char *) value;
    char                 mine[HTTP_REPLY_ETAG_LEN];
    bool                 matched = false, any = false;
    size_t               i = 0;

    http_reply_format_etag(etag, mine);
    while (i < len && http_reply_is_ows(p[i])) {
        i++;
    }
    if (i < len && p[i] == '*') {
        i++;
        while (i < len && http_reply_is_ows(p[i])) {
            i++;
        }
        return i == len ? HTTP_REPLY_INM_MATCH : HTTP_REPLY_INM_NONE;
    }
    /* #entity-tag: elements separated by commas, empty ones allowed. */
    for (;;) {
        size_t start;

        while (i < len && (http_reply_is_ows(p[i]) || p[i] == ',')) {
            i++;
        }
        if (i == len) {
            break;
        }
        bool is_weak = false;

        if (p[i] == 'W' && i + 1 < len && p[i + 1] == '/') {
            i += 2;
            is_weak = true;
        }
        if (i == len || p[i] != '"') {
            return HTTP_REPLY_INM_NONE;
        }
        start = ++i;
        while (i < len && http_reply_is_etagc(p[i])) {
            i++;
        }
        if (i == len || p[i] != '"') {
            return HTTP_REPLY_INM_NONE;
        }
        if ((weak || !is_weak) && i - start == HTTP_REPLY_ETAG_LEN - 2
            && memcmp(p + start, mine + 1, HTTP_REPLY_ETAG_LEN - 2) == 0) {
            matched = true;
        }
        any = true;
        i++;
        while (i < len && http_reply_is_ows(p[i])) {
            i++;
        }
        if (i < len && p[i] != ',') {
            return HTTP_REPLY_INM_NONE; /* two tags with no comma */
        }
    }
    if (!any) {
        return HTTP_REPLY_INM_NONE;
    }
    return matched ? HTTP_REPLY_INM_MATCH : HTTP_REPLY_INM_NO_MATCH;
}

enum http_reply_inm
http_reply_if_none_match(const char *value, size_t len, uint64_t etag)
{
    return http_reply_etag_list(value, len, etag, true);
}

enum http_reply_inm
http_reply_if_match(const char *value, size_t len, uint64_t etag)
{
    return http_reply_etag_list(value, len, etag, false);
}

size_t
http_reply_format_error(int status, bool head, bool keep_alive, bool http10,
                        const char *date, const char *detail,
                        size_t detail_len, char *buf, size_t cap)
{
    struct http_reply bypass = {
        .cs = { .on = true, .fwd_bypass = true },
    };

    return http_reply_format_error_cached(status, head, keep_alive, http10,
                                          date, detail, detail_len, &bypass,
                                          buf, cap);
}

size_t
http_reply_format_error_cached(int status, bool head, bool keep_alive,
                               bool http10, const char *date,
                               const char *detail, size_t detail_len,
                               const struct http_reply *cached, char *buf,
                               size_t cap)
{
    char              body[128];
    const char       *b = body;
    size_t            blen;
    size_t            pos;
    struct http_reply r = {
        .status = status,
        .keep_alive = keep_alive,
        .http10 = http10,
        .content_type = "text/plain; charset=utf-8",
        .cache = cached->cache,
        .age_s = cached->age_s,
        .allow = status == 405,
        .date = date,
        .has_max_age = cached->has_max_age,
        .max_age_s = cached->max_age_s,
        .cs = cached->cs,
    };

    if (detail != NULL) {
        b = detail;
        blen = detail_len + 1; /* + "\n" */
    } else {
        blen = (size_t) snprintf(body, sizeof(body), "%d %s\n", status,
                                 http_reply_reason(status));
    }
    r.content_length = blen;
    pos = http_reply_format_head(&r, buf, cap);
    if (!head) {
        if (detail != NULL) {
            http_reply_append(buf, cap, &pos, detail, detail_len);
            HTTP_REPLY_LIT(buf, cap, &pos, "\n");
        } else {
            http_reply_append(buf, cap, &pos, b, blen);
        }
    }
    return pos;
}

int
http_reply_status_for_backend(enum backend_result r)
{
    switch (r) {
    case BACKEND_VALUE:
        return 200;
    case BACKEND_NIL:
        return 404;
    case BACKEND_WRONGTYPE:
        return 409;
    case BACKEND_ERROR_REPLY:
    case BACKEND_UNREACHABLE:
        return 502;
    case BACKEND_TIMEOUT:
        return 504;
    case BACKEND_UNAVAILABLE:
        return 503;
    }
    return 502;
}

void
http_reply_format_date(time_t t, char *out)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed",
                                        "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
                                          "May", "Jun", "Jul", "Aug",
                                          "Sep", "Oct", "Nov", "Dec" };
    struct tm                tm;
    char                     tmp[64];

    gmtime_r(&t, &tm);
    /* Through tmp: the compiler cannot see that every field is in range,
     * and a year past 9999 must clip rather than overrun out. */
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, HTTP_REPLY_DATE_LEN);
    out[HTTP_REPLY_DATE_LEN] = '\0';
}
