/*
 * http_parser: a pure, incremental HTTP/1.1 request-head parser
 * (RFC 9112).  No I/O, no allocation, no globals: the caller owns the
 * buffer, which always starts at the first byte of the request, and calls
 * again with more bytes after HTTP_PARSE_AGAIN; the position and state
 * saved in struct http_parse mean a call resumes where the last one
 * stopped, so bytes already parsed are not scanned again (only the
 * finished method, field name or Connection option, 17 bytes at most, is
 * compared against the words we act on).
 * Output is offsets into the caller's buffer.
 *
 * Limits are part of the grammar: a request line over 8 KiB is 414, a
 * head over 16 KiB is 431, a Content-Length over 64 KiB is 413.
 */
#ifndef RCP_HTTP_PARSER_H
#define RCP_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_PARSE_LINE_MAX (8 * 1024)
#define HTTP_PARSE_HEAD_MAX (16 * 1024)
#define HTTP_PARSE_BODY_MAX (64 * 1024)

enum http_parse_rc {
    HTTP_PARSE_DONE = 0, /* req is complete: head_len bytes used */
    HTTP_PARSE_AGAIN,    /* need more bytes; call again */
    HTTP_PARSE_ERROR     /* req->status says which 4xx/5xx */
};

enum http_method {
    HTTP_METHOD_OTHER = 0, /* a valid token we do not serve */
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
    HTTP_METHOD_PUT,
    HTTP_METHOD_DELETE
};

struct http_request {
    enum http_method method;
    unsigned         version_minor; /* HTTP/1.x: 0 or 1 */
    size_t           method_off, method_len;
    size_t           target_off, target_len; /* as sent */
    size_t           path_off, path_len;     /* target up to '?' */
    bool             keep_alive;             /* after version defaults and
                                                Connection: close/keep-alive */
    bool             has_content_length;
    uint64_t         content_length;   /* <= HTTP_PARSE_BODY_MAX */
    bool             chunked;          /* Transfer-Encoding: chunked: the
                                          body is read with
                                          http_parse_chunked() */
    bool             expect_continue;  /* HTTP/1.1 Expect: 100-continue */
    size_t           inm_off, inm_len; /* If-None-Match's value, OWS
                                          included; inm_len 0: none */
    bool             inm_many;         /* more than one If-None-Match
                                          line: the condition is not
                                          evaluated (a 200 is always a
                                          correct answer) */
    size_t           im_off, im_len;   /* If-Match's value, as
                                          inm_off, inm_len */
    bool             im_many;          /* more than one If-Match line:
                                          not evaluated */
    bool             only_if_cached;   /* Cache-Control: only-if-cached
                                          (RFC 9111 5.2.1.7): answer
                                          from the cache or 504 */
    size_t           head_len;         /* bytes up to and incl. CRLFCRLF */
    int              status;           /* on ERROR: 400 413 414 431 501
                                          505 */
};

/* Opaque to callers; zeroed by http_parse_init(). */
struct http_parse {
    unsigned            state;
    size_t              pos;  /* next byte to examine */
    size_t              mark; /* start of the current token */
    size_t              header_name_off, header_name_len;
    unsigned            seen; /* header flags */
    bool                conn_close, conn_keep_alive;
    bool                te_chunked;      /* one Transfer-Encoding: chunked */
    bool                te_other;        /* any other coding, or a second
                                            Transfer-Encoding line */
    bool                expect_continue; /* Expect: 100-continue seen */
    size_t              idx;             /* bytes of a literal matched so
                                            far, or of the Host value */
    unsigned            field;           /* which field this line is */
    unsigned            version_major;
    uint64_t            cl_value; /* this Content-Length, saturated
                                     at HTTP_PARSE_BODY_MAX + 1 */
    struct http_request req;      /* filled in as the head is read,
                                     copied out on DONE */
};

void http_parse_init(struct http_parse *st);

/* Parses buf[0..len).  On DONE, req describes the head and the body (if
 * any) starts at buf + req->head_len.  On ERROR, req->status is set.
 * req is rewritten in full on every return (all zero on AGAIN, only
 * status on ERROR), so it need not persist between calls; st does.
 * Once DONE or ERROR, further calls return the same.  HTTP/1.1 needs
 * exactly one Host; keep_alive is false after Connection: close, else
 * true for 1.1 and for 1.0 with Connection: keep-alive. */
enum http_parse_rc http_parse_request(struct http_parse *st, const char *buf,
                                      size_t len, struct http_request *req);

/* A chunked request body (RFC 9112 7.1) being read, so that it can be
 * skipped; zeroed by http_parse_chunked_init(). */
struct http_chunked {
    unsigned state;
    size_t   pos;      /* next byte, from the body's
                          first */
    uint64_t size;     /* left of the current chunk,
                          saturated at BODY_MAX + 1 */
    size_t   body_len; /* on DONE: the whole body's
                          bytes, last CRLF included */
    int      status;   /* on ERROR: 400 or 413 */
};

void http_parse_chunked_init(struct http_chunked *st);

/* Parses buf[0..len), the bytes after the head, as a chunked body:
 * chunk sizes, extensions, data and trailer fields are checked for
 * their framing and skipped.  DONE: the body is st->body_len bytes and
 * the next request starts after them; ERROR: st->status, 413 when the
 * body with its framing would pass HTTP_PARSE_BODY_MAX, else 400 (a
 * bare LF included).  Incremental like http_parse_request(); once DONE
 * or ERROR, further calls return the same. */
enum http_parse_rc http_parse_chunked(struct http_chunked *st, const char *buf,
                                      size_t len);

/* Percent-decodes src (a path without the leading '/') into dst, which has
 * room for src_len bytes and may be src itself.  Returns the decoded
 * length, or -1 on a bad escape ("%", "%4", "%zz").  %00 and %2F decode
 * like any other byte; '+' stays '+'. */
ssize_t http_parse_decode(const char *src, size_t src_len, char *dst);

#endif
