/*
 * http: turns the outcome of a data-port request (a cache hit, a backend
 * reply, a parse error) into response bytes.  Pure: no sockets, no clock;
 * the caller passes the Date string it cached for this loop iteration.
 */
#ifndef RCP_HTTP_H
#define RCP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "backend.h"

#define HTTP_DATE_LEN 29                /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define HTTP_HEAD_MAX 512               /* longest head we ever format */

enum http_cache_header {
    HTTP_CACHE_NONE = 0,                /* no X-Cache, no Age */
    HTTP_CACHE_HIT,
    HTTP_CACHE_MISS
};

struct http_reply {
    int                    status;      /* 200 404 405 ... */
    bool                   keep_alive;  /* else "Connection: close" */
    bool                   http10;      /* 1.0 client: say keep-alive */
    const char            *content_type; /* NULL: none */
    uint64_t               content_length;
    enum http_cache_header cache;
    uint64_t               age_s;       /* with HTTP_CACHE_HIT/MISS */
    bool                   allow;       /* "Allow: GET, HEAD" (405) */
    const char            *date;        /* HTTP_DATE_LEN chars */
};

/* Reason phrase for a status we send ("Not Found"), "Unknown" else. */
const char *http_reason(int status);

/* Formats the status line and headers, ending in CRLFCRLF, into buf.
 * Returns the length, which is < HTTP_HEAD_MAX; buf has cap bytes and
 * cap >= HTTP_HEAD_MAX. */
size_t http_format_head(const struct http_reply *reply, char *buf,
                        size_t cap);

/*
 * The hot path's head, in two parts: the prefix of a 200 answer with an
 * application/octet-stream body, up to and including "Content-Length: ",
 * depends only on the Date and is formatted once a second; the suffix
 * (length, X-Cache, Age, Connection, CRLF) per answer.  prefix + suffix
 * is byte for byte what http_format_head() makes for the same reply.
 * Each returns its length; buf has cap >= HTTP_HEAD_MAX bytes.
 */
size_t http_format_ok_prefix(const char *date, char *buf, size_t cap);
size_t http_format_ok_suffix(const struct http_reply *reply, char *buf,
                             size_t cap);

/* Formats an error response with a short text/plain body
 * ("404 Not Found\n", or detail + "\n" when detail is not NULL).  HEAD
 * omits the body but keeps its Content-Length.  Returns the length
 * written; buf needs HTTP_HEAD_MAX + detail_len + 64 bytes. */
size_t http_format_error(int status, bool head, bool keep_alive, bool http10,
                         const char *date, const char *detail,
                         size_t detail_len, char *buf, size_t cap);

/* The status a backend outcome is answered with: 200 for a value, 404
 * for an absent key, 409 for a key of another type (Redis' error text is
 * the body), 502 when Redis is unreachable or answered another error,
 * 504 past --redis-timeout. */
int http_status_for_backend(enum backend_result r);

/* IMF-fixdate of t (UTC) into out[HTTP_DATE_LEN + 1]. */
void http_format_date(time_t t, char *out);

#endif
