/*
 * http: response heads and error bodies for the data port.
 *
 * Every head we send has the same order: status line, Server, Date,
 * Content-Type, Content-Length, then X-Cache/Age for cache answers, Allow
 * for 405, and Connection.  The longest possible head (all fields, a
 * 20-digit length and age) stays under HTTP_HEAD_MAX, which is why the
 * worker can reserve that much before it knows the value's size.
 */
#include "rcp_autoconf.h"

#include <stdio.h>
#include <string.h>

#include "http.h"

static const char http_server_header[] =
    "Server: redis-cache-proxy/" PACKAGE_VERSION "\r\n";

const char *
http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

/* Appends s (n bytes) at *pos.  Callers size buf by HTTP_HEAD_MAX (see
 * the top comment); should one ever be short, the head is clipped rather
 * than the buffer overrun. */
static void
http_append(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (*pos + n > cap) {
        n = cap - *pos;
    }
    memcpy(buf + *pos, s, n);
    *pos += n;
}

static void
http_append_u64(char *buf, size_t cap, size_t *pos, uint64_t v)
{
    char   tmp[20];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    http_append(buf, cap, pos, tmp + sizeof(tmp) - n, n);
}

#define HTTP_LIT(buf, cap, pos, lit) \
    http_append(buf, cap, pos, lit, sizeof(lit) - 1)

static size_t http_format_head_start(const struct http_reply *reply,
                                     char *buf, size_t cap);

/* Everything after Content-Length's name: shared by the general and the
 * hot-path formatter so they cannot drift apart. */
static size_t
http_format_tail(const struct http_reply *reply, char *buf, size_t cap,
                 size_t pos)
{
    http_append_u64(buf, cap, &pos, reply->content_length);
    HTTP_LIT(buf, cap, &pos, "\r\n");
    if (reply->cache == HTTP_CACHE_HIT) {
        HTTP_LIT(buf, cap, &pos, "X-Cache: HIT\r\nAge: ");
        http_append_u64(buf, cap, &pos, reply->age_s);
        HTTP_LIT(buf, cap, &pos, "\r\n");
    } else if (reply->cache == HTTP_CACHE_MISS) {
        HTTP_LIT(buf, cap, &pos, "X-Cache: MISS\r\nAge: 0\r\n");
    }
    if (reply->allow) {
        HTTP_LIT(buf, cap, &pos, "Allow: GET, HEAD\r\n");
    }
    if (!reply->keep_alive) {
        HTTP_LIT(buf, cap, &pos, "Connection: close\r\n");
    } else if (reply->http10) {
        HTTP_LIT(buf, cap, &pos, "Connection: keep-alive\r\n");
    }
    HTTP_LIT(buf, cap, &pos, "\r\n");
    return pos;
}

size_t
http_format_ok_prefix(const char *date, char *buf, size_t cap)
{
    struct http_reply r = {
        .status = 200,
        .content_type = "application/octet-stream",
        .date = date,
    };

    return http_format_head_start(&r, buf, cap);
}

size_t
http_format_ok_suffix(const struct http_reply *reply, char *buf, size_t cap)
{
    return http_format_tail(reply, buf, cap, 0);
}

size_t
http_format_head(const struct http_reply *reply, char *buf, size_t cap)
{
    return http_format_tail(reply, buf, cap,
                            http_format_head_start(reply, buf, cap));
}

/* Status line through "Content-Length: ". */
static size_t
http_format_head_start(const struct http_reply *reply, char *buf, size_t cap)
{
    size_t      pos = 0;
    const char *reason = http_reason(reply->status);

    HTTP_LIT(buf, cap, &pos, "HTTP/1.1 ");
    http_append_u64(buf, cap, &pos, (uint64_t) reply->status);
    HTTP_LIT(buf, cap, &pos, " ");
    http_append(buf, cap, &pos, reason, strlen(reason));
    HTTP_LIT(buf, cap, &pos, "\r\n");
    http_append(buf, cap, &pos, http_server_header,
                sizeof(http_server_header) - 1);
    HTTP_LIT(buf, cap, &pos, "Date: ");
    http_append(buf, cap, &pos, reply->date, HTTP_DATE_LEN);
    HTTP_LIT(buf, cap, &pos, "\r\n");
    if (reply->content_type != NULL) {
        HTTP_LIT(buf, cap, &pos, "Content-Type: ");
        http_append(buf, cap, &pos, reply->content_type,
                    strlen(reply->content_type));
        HTTP_LIT(buf, cap, &pos, "\r\n");
    }
    HTTP_LIT(buf, cap, &pos, "Content-Length: ");
    return pos;
}

size_t
http_format_error(int status, bool head, bool keep_alive, bool http10,
                  const char *date, const char *detail, size_t detail_len,
                  char *buf, size_t cap)
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
        .cache = HTTP_CACHE_NONE,
        .allow = status == 405,
        .date = date,
    };

    if (detail != NULL) {
        b = detail;
        blen = detail_len + 1;          /* + "\n" */
    } else {
        blen = (size_t) snprintf(body, sizeof(body), "%d %s\n", status,
                                 http_reason(status));
    }
    r.content_length = blen;
    pos = http_format_head(&r, buf, cap);
    if (!head) {
        if (detail != NULL) {
            http_append(buf, cap, &pos, detail, detail_len);
            HTTP_LIT(buf, cap, &pos, "\n");
        } else {
            http_append(buf, cap, &pos, b, blen);
        }
    }
    return pos;
}

int
http_status_for_backend(enum backend_result r)
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
http_format_date(time_t t, char *out)
{
    static const char *const days[] = {
        "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
    };
    static const char *const months[] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
    };
    struct tm tm;
    char      tmp[64];

    gmtime_r(&t, &tm);
    /* Through tmp: the compiler cannot see that every field is in range,
     * and a year past 9999 must clip rather than overrun out. */
    snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, HTTP_DATE_LEN);
    out[HTTP_DATE_LEN] = '\0';
}
