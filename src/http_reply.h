/*
 * http_reply: turns the outcome of a data-port request (a cache hit, a backend
 * reply, a parse error) into response bytes.  Pure: no sockets, no clock;
 * the caller passes the Date string it cached for this loop iteration.
 */
#ifndef RCP_HTTP_REPLY_H
#define RCP_HTTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "backend.h"

#define HTTP_REPLY_DATE_LEN 29  /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define HTTP_REPLY_HEAD_MAX 768 /* longest head we ever format */
#define HTTP_REPLY_ETAG_LEN 18  /* "0123456789abcdef" with quotes */

/* X-Cache, as nginx's $upstream_cache_status words it. */
enum http_reply_cache_header {
    HTTP_REPLY_CACHE_NONE = 0, /* no X-Cache, no Age */
    HTTP_REPLY_CACHE_HIT,
    HTTP_REPLY_CACHE_MISS,
    HTTP_REPLY_CACHE_STALE,   /* expired, answered anyway */
    HTTP_REPLY_CACHE_UPDATING /* expired, a refresh under way */
};

/* Cache-Status (RFC 9211), "redis-cache-proxy" and these parameters in
 * this order: hit; stale; ttl=N (negative once expired); fwd=miss or
 * fwd=bypass; fwd-status=N; stored. */
struct http_reply_cache_status {
    bool    on;    /* else no Cache-Status at all */
    bool    hit;   /* answered from the cache */
    bool    stale; /* ... past its TTL */
    bool    has_ttl;
    int64_t ttl_s;      /* freshness left; < 0: stale */
    bool    fwd_miss;   /* Redis was asked */
    bool    fwd_bypass; /* not a cacheable request */
    int     fwd_status; /* what asking Redis gave (404,
                           502 ...), 0: none said */
    bool    stored;     /* the answer is now cached */
};

struct http_reply {
    int                            status;     /* 200 404 405 ... */
    bool                           keep_alive; /* else "Connection: close" */
    bool                           http10;     /* 1.0 client: say keep-alive */
    const char                    *content_type; /* NULL: none */
    uint64_t                       content_length;
    enum http_reply_cache_header   cache;
    uint64_t                       age_s; /* with HTTP_REPLY_CACHE_HIT/MISS */
    bool                           allow; /* "Allow: GET, HEAD" (405) */
    const char                    *date;  /* HTTP_REPLY_DATE_LEN chars */
    bool                           has_etag;
    uint64_t                       etag;        /* cache_etag() of the body */
    bool                           has_max_age; /* Cache-Control: max-age=N */
    uint64_t                       max_age_s;
    struct http_reply_cache_status cs;
};

/* What If-None-Match asks of a representation whose ETag is etag. */
enum http_reply_inm {
    HTTP_REPLY_INM_NONE = 0, /* no usable condition: answer */
    HTTP_REPLY_INM_MATCH,    /* 304 Not Modified */
    HTTP_REPLY_INM_NO_MATCH  /* a valid list without it: 200 */
};

/*
 * Evaluates an If-None-Match field value (RFC 9110 13.1.2): "*", or a
 * list of entity-tags, each "opaque" or W/"opaque", compared weakly
 * (W/ ignored on both sides), with empty list elements and OWS allowed.
 * A value that is not valid syntax is HTTP_REPLY_INM_NONE: the condition is
 * ignored, as RFC 9110 13.1 lets a server do.  Pure.
 */
enum http_reply_inm http_reply_if_none_match(const char *value, size_t len,
                                             uint64_t etag);

/* The same for an If-Match value (RFC 9110 13.1.1), compared strongly:
 * a W/ tag never matches.  "*" matches (a representation exists),
 * NO_MATCH is a 412, and a value that is not valid syntax is
 * HTTP_REPLY_INM_NONE: ignored.  Pure. */
enum http_reply_inm http_reply_if_match(const char *value, size_t len,
                                        uint64_t etag);

/* "\"<16 hex digits>\"" into out[HTTP_REPLY_ETAG_LEN]; no NUL. */
void http_reply_format_etag(uint64_t etag, char *out);

/* Reason phrase for a status we send ("Not Found"), "Unknown" else. */
const char *http_reply_reason(int status);

/* Formats the status line and headers, ending in CRLFCRLF, into buf.
 * Returns the length, which is < HTTP_REPLY_HEAD_MAX; buf has cap bytes and
 * cap >= HTTP_REPLY_HEAD_MAX. */
size_t http_reply_format_head(const struct http_reply *reply, char *buf,
                              size_t cap);

/*
 * The hot path's head, in two parts: the prefix of a 200 answer with an
 * application/octet-stream body, up to and including "Content-Length: ",
 * depends only on the Date and is formatted once a second; the suffix
 * (length, X-Cache, Age, Connection, CRLF) per answer.  prefix + suffix
 * is byte for byte what http_reply_format_head() makes for the same reply.
 * Each returns its length; buf has cap >= HTTP_REPLY_HEAD_MAX bytes.
 */
size_t http_reply_format_ok_prefix(const char *date, char *buf, size_t cap);
size_t http_reply_format_ok_suffix(const struct http_reply *reply, char *buf,
                                   size_t cap);

/* Formats an error response with a short text/plain body
 * ("404 Not Found\n", or detail + "\n" when detail is not NULL).  HEAD
 * omits the body but keeps its Content-Length.  Returns the length
 * written; buf needs HTTP_REPLY_HEAD_MAX + detail_len + 64 bytes. */
size_t http_reply_format_error(int status, bool head, bool keep_alive,
                               bool http10, const char *date,
                               const char *detail, size_t detail_len,
                               char *buf, size_t cap);

/* http_reply_format_error with the cache headers of reply (cache, age_s,
 * max-age, cs); its status, body and connection fields are ignored.
 * http_reply_format_error() is this with Cache-Status "fwd=bypass". */
size_t http_reply_format_error_cached(int status, bool head, bool keep_alive,
                                      bool http10, const char *date,
                                      const char *detail, size_t detail_len,
                                      const struct http_reply *cached,
                                      char *buf, size_t cap);

/* The status a backend outcome is answered with: 200 for a value, 404
 * for an absent key, 409 for a key of another type (Redis' error text is
 * the body), 502 when Redis is unreachable or answered another error,
 * 504 past --redis-timeout. */
int http_reply_status_for_backend(enum backend_result r);

/* IMF-fixdate of t (UTC) into out[HTTP_REPLY_DATE_LEN + 1]. */
void http_reply_format_date(time_t t, char *out);

#endif
