/*
 * http_parser: owns the grammar of one HTTP/1.1 request head (RFC 9112,
 * with RFC 9110 for field semantics) and the percent-decoding of a path.
 *
 * Invariants:
 * - Pure: no I/O, no allocation, no globals but const tables.  All state
 *   lives in struct http_parse; req is rewritten in full on every return,
 *   so the caller may pass a fresh one each time.
 * - Each byte is examined once, in order: st->pos is the next byte and
 *   st->state says what it may be.  Decisions depend only on the bytes
 *   before pos, so feeding a request one byte at a time gives exactly the
 *   result of feeding it whole (the tests and the fuzzer check this).
 * - Offsets, never pointers: the buffer may move between calls as long as
 *   it still starts at the request's first byte.
 * - Limits are checked before the byte at pos is needed, so an over-long
 *   line or head is refused as soon as the limit passes, not after more
 *   input.  Both are measured from buf[0], so empty lines before the
 *   request line count toward them.
 *
 * Flow (a CR must be followed by LF; a bare LF also ends a line, as RFC
 * 9112 section 2.2 allows):
 *
 *   START --tchar--> METHOD --SP--> TARGET --'/'--------------> PATH
 *     ^ |                             |                          | '?'
 *     +-+ empty line                  +--"http[s]://" AUTHORITY--+  v
 *                                                     then '/'   QUERY
 *
 *   PATH or QUERY --SP--> "HTTP/" DIGIT "." DIGIT --CRLF--> FIELD_START
 *                              (major != 1: 505 at the line's end)
 *
 *   FIELD_START --tchar--> FIELD_NAME --':'--> a value state chosen by
 *        ^                 the name: CL_* (Content-Length), HOST_*,
 *        |                 CONN_* (Connection), else VALUE
 *        +------------------------------------------------ CRLF --+
 *   FIELD_START --CRLF--> whole-head checks --> DONE
 *
 * Whole-head checks, in this order: HTTP/1.1 without Host is 400; any
 * Transfer-Encoding is 400 with Content-Length, on HTTP/1.0 (RFC 9112
 * 6.1) or on GET/HEAD, else 501 (we never accept chunked bodies); a
 * Content-Length over HTTP_PARSE_BODY_MAX is 413.  A duplicate Host, or
 * Content-Lengths that differ, are 400 as soon as they are seen.
 *
 * Strictness, and why: the request-target must be pchar / "/" / "?" (a
 * '%' is not checked here; http_parse_decode() refuses a bad escape), a
 * '#', a space or a control byte in it is 400, and field values may not
 * hold CTLs other than HT.  A proxy that is lenient where the origin is
 * strict, or the other way round, is how request smuggling happens.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http_parser.h"

/*
 * The order matters: every state before LINE_END is inside the request
 * line and subject to HTTP_PARSE_LINE_MAX; every state from FIELD_START
 * to END_LF is inside the field section and subject to
 * HTTP_PARSE_HEAD_MAX.  LINE_END and LINE_LF accept only the line's end,
 * so they need no limit check.
 */
enum http_parse_state {
    HTTP_PARSE_S_START = 0,     /* empty lines before the request line */
    HTTP_PARSE_S_START_LF,      /* CR of such an empty line */
    HTTP_PARSE_S_METHOD,
    HTTP_PARSE_S_TARGET,        /* first byte of the request-target */
    HTTP_PARSE_S_SCHEME,        /* "http" of absolute-form, idx matched */
    HTTP_PARSE_S_SCHEME_END,    /* after "http": 's' or ':' */
    HTTP_PARSE_S_SCHEME_COLON,  /* after "https": ':' */
    HTTP_PARSE_S_SCHEME_SLASH1,
    HTTP_PARSE_S_SCHEME_SLASH2,
    HTTP_PARSE_S_AUTHORITY_FIRST,
    HTTP_PARSE_S_AUTHORITY,
    HTTP_PARSE_S_PATH,
    HTTP_PARSE_S_QUERY,
    HTTP_PARSE_S_VERSION_NAME,  /* "HTTP/", idx matched */
    HTTP_PARSE_S_VERSION_MAJOR,
    HTTP_PARSE_S_VERSION_DOT,
    HTTP_PARSE_S_VERSION_MINOR,
    HTTP_PARSE_S_LINE_END,      /* after the version: CR or LF */
    HTTP_PARSE_S_LINE_LF,       /* CR of the request line */
    HTTP_PARSE_S_FIELD_START,   /* a field name or the empty line */
    HTTP_PARSE_S_FIELD_NAME,
    HTTP_PARSE_S_VALUE,         /* a field we only check the syntax of */
    HTTP_PARSE_S_CL_START,      /* Content-Length: OWS before digits */
    HTTP_PARSE_S_CL_DIGITS,
    HTTP_PARSE_S_CL_OWS,        /* OWS after the digits */
    HTTP_PARSE_S_HOST,          /* Host: OWS, then host [":" port] */
    HTTP_PARSE_S_HOST_OWS,      /* OWS after the host */
    HTTP_PARSE_S_CONN_ELEMENT,  /* Connection: OWS or ',' before a token */
    HTTP_PARSE_S_CONN_TOKEN,
    HTTP_PARSE_S_CONN_OWS,      /* OWS after a token: ',' or line end */
    HTTP_PARSE_S_FIELD_LF,      /* CR ending a field line */
    HTTP_PARSE_S_END_LF,        /* CR of the empty line ending the head */
    HTTP_PARSE_S_DONE,
    HTTP_PARSE_S_ERROR
};

/* The fields whose values we interpret; st->field says which one the
 * current line is. */
enum http_parse_field {
    HTTP_PARSE_FIELD_HOST = 0,
    HTTP_PARSE_FIELD_CONTENT_LENGTH,
    HTTP_PARSE_FIELD_TRANSFER_ENCODING,
    HTTP_PARSE_FIELD_CONNECTION,
    HTTP_PARSE_FIELD_OTHER
};

/* Bits of st->seen. */
#define HTTP_PARSE_SEEN_HOST              (1u << 0)
#define HTTP_PARSE_SEEN_CONTENT_LENGTH    (1u << 1)
#define HTTP_PARSE_SEEN_TRANSFER_ENCODING (1u << 2)

/* Candidate lists for http_parse_match(); the index is the enum value. */
static const char *const http_parse_methods[] = {
    [HTTP_METHOD_OTHER] = "",   /* never matches: a method is not empty */
    [HTTP_METHOD_GET] = "GET",
    [HTTP_METHOD_HEAD] = "HEAD",
    [HTTP_METHOD_POST] = "POST",
    [HTTP_METHOD_PUT] = "PUT",
    [HTTP_METHOD_DELETE] = "DELETE",
};

/* Lower case: field names are compared case-insensitively. */
static const char *const http_parse_fields[] = {
    [HTTP_PARSE_FIELD_HOST] = "host",
    [HTTP_PARSE_FIELD_CONTENT_LENGTH] = "content-length",
    [HTTP_PARSE_FIELD_TRANSFER_ENCODING] = "transfer-encoding",
    [HTTP_PARSE_FIELD_CONNECTION] = "connection",
};

enum http_parse_conn_option {
    HTTP_PARSE_CONN_CLOSE = 0,
    HTTP_PARSE_CONN_KEEP_ALIVE
};

static const char *const http_parse_conn_options[] = {
    [HTTP_PARSE_CONN_CLOSE] = "close",
    [HTTP_PARSE_CONN_KEEP_ALIVE] = "keep-alive",
};

/* "http" of an absolute-form target, compared case-insensitively. */
static const char http_parse_scheme[] = "http";
static const char http_parse_version_name[] = "HTTP/";

/*
 * Character classes, one 256-entry table each, indexed by the unsigned
 * byte.  tchar: RFC 9110 5.6.2.  value: field-vchar, SP and HT (RFC 9110
 * 5.5: VCHAR / obs-text).  path: pchar / "/" (RFC 3986 3.3, '%' allowed,
 * escapes checked by http_parse_decode()).  query: path plus '?'.  host:
 * reg-name / IP-literal / ':' port (RFC 3986 3.2.2), for the Host field
 * and the authority of absolute-form; no userinfo ('@'), which RFC 9110
 * 4.2.4 forbids in http URIs.  hex: the digit's value, or -1.
 */
static const uint8_t http_parse_tchar[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 ................ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 ................ */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, /* 0x20 .!"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 0x30 0123456789:;<=>? */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @ABCDEFGHIJKLMNO */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 PQRSTUVWXYZ[\]^_ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `abcdefghijklmno */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, /* 0x70 pqrstuvwxyz{|}~. */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80-0x8f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90-0x9f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xa0-0xaf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xb0-0xbf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xc0-0xcf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xd0-0xdf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xe0-0xef */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xf0-0xff */
};

static const uint8_t http_parse_value[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, /* 0x00 ................ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 ................ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 .!"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 0123456789:;<=>? */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @ABCDEFGHIJKLMNO */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x50 PQRSTUVWXYZ[\]^_ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `abcdefghijklmno */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x70 pqrstuvwxyz{|}~. */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x80-0x8f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x90-0x9f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xa0-0xaf */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xb0-0xbf */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xc0-0xcf */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xd0-0xdf */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xe0-0xef */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0xf0-0xff */
};

static const uint8_t http_parse_path[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 ................ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 ................ */
    0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 .!"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, /* 0x30 0123456789:;<=>? */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @ABCDEFGHIJKLMNO */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, /* 0x50 PQRSTUVWXYZ[\]^_ */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `abcdefghijklmno */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, /* 0x70 pqrstuvwxyz{|}~. */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80-0x8f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90-0x9f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xa0-0xaf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xb0-0xbf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xc0-0xcf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xd0-0xdf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xe0-0xef */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xf0-0xff */
};

static const uint8_t http_parse_query[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 ................ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 ................ */
    0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 .!"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, /* 0x30 0123456789:;<=>? */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @ABCDEFGHIJKLMNO */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, /* 0x50 PQRSTUVWXYZ[\]^_ */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `abcdefghijklmno */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, /* 0x70 pqrstuvwxyz{|}~. */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80-0x8f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90-0x9f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xa0-0xaf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xb0-0xbf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xc0-0xcf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xd0-0xdf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xe0-0xef */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xf0-0xff */
};

static const uint8_t http_parse_host[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 ................ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 ................ */
    0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x20 .!"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, /* 0x30 0123456789:;<=>? */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @ABCDEFGHIJKLMNO */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, /* 0x50 PQRSTUVWXYZ[\]^_ */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `abcdefghijklmno */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, /* 0x70 pqrstuvwxyz{|}~. */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80-0x8f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90-0x9f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xa0-0xaf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xb0-0xbf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xc0-0xcf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xd0-0xdf */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xe0-0xef */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xf0-0xff */
};

static const int8_t http_parse_hex[256] = {
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x00 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x10 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x20 */
     0, 1, 2, 3, 4, 5, 6, 7, 8, 9,-1,-1,-1,-1,-1,-1, /* 0x30 */
    -1,10,11,12,13,14,15,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x40 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x50 */
    -1,10,11,12,13,14,15,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x60 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x70 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x80 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0x90 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0xa0 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0xb0 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0xc0 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0xd0 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0xe0 */
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1, /* 0xf0 */
};

static unsigned char
http_parse_lower(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return (unsigned char)(c - 'A' + 'a');
    }
    return c;
}

static bool
http_parse_is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static bool
http_parse_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Narrows cand, a bit set of indexes into words, to the words whose byte
 * idx is c.  c is never NUL (callers pass tchars), so a word is dropped
 * at its terminator and idx never runs past a surviving word's end.
 * This matches a token while its bytes go by, so none is read twice.
 */
static unsigned
http_parse_match(unsigned cand, const char *const *words, size_t n_words,
                 size_t idx, unsigned char c)
{
    for (size_t k = 0; k < n_words; k++) {
        if ((cand & (1u << k)) != 0
            && (unsigned char)words[k][idx] != c) {
            cand &= ~(1u << k);
        }
    }
    return cand;
}

/* The index of the word in cand that is exactly idx bytes long, or
 * n_words if the token matched none. */
static size_t
http_parse_matched(unsigned cand, const char *const *words, size_t n_words,
                   size_t idx)
{
    for (size_t k = 0; k < n_words; k++) {
        if ((cand & (1u << k)) != 0 && words[k][idx] == '\0') {
            return k;
        }
    }
    return n_words;
}

#define HTTP_PARSE_N_METHODS \
    (sizeof(http_parse_methods) / sizeof(http_parse_methods[0]))
#define HTTP_PARSE_N_FIELDS \
    (sizeof(http_parse_fields) / sizeof(http_parse_fields[0]))
#define HTTP_PARSE_N_CONN_OPTIONS \
    (sizeof(http_parse_conn_options) / sizeof(http_parse_conn_options[0]))

static void
http_parse_fail(struct http_parse *st, int status)
{
    st->state = HTTP_PARSE_S_ERROR;
    st->req.status = status;
}

/* Starts matching a token whose first byte is c against words[]. */
static void
http_parse_match_start(struct http_parse *st, unsigned cand,
                       const char *const *words, size_t n_words,
                       unsigned char c)
{
    st->cand = http_parse_match(cand, words, n_words, 0, c);
    st->idx = 1;
}

static void
http_parse_match_next(struct http_parse *st, const char *const *words,
                      size_t n_words, unsigned char c)
{
    if (st->cand != 0) {
        st->cand = http_parse_match(st->cand, words, n_words, st->idx, c);
        st->idx++;
    }
}

/* The request line has ended at pos: settle the version. */
static void
http_parse_version_end(struct http_parse *st, unsigned char c)
{
    if (st->version_major != 1) {
        http_parse_fail(st, 505);
        return;
    }
    /* RFC 9110 2.5: a higher minor version is answered as the highest
     * we speak, 1.1. */
    if (st->req.version_minor > 1) {
        st->req.version_minor = 1;
    }
    st->state = c == '\r' ? HTTP_PARSE_S_LINE_LF : HTTP_PARSE_S_FIELD_START;
}

/* One byte of the request line (or of the empty lines before it). */
static void
http_parse_line_byte(struct http_parse *st, unsigned char c)
{
    struct http_request *req = &st->req;

    switch (st->state) {
    case HTTP_PARSE_S_START:
        if (c == '\r') {
            st->state = HTTP_PARSE_S_START_LF;
        } else if (c == '\n') {
            st->state = HTTP_PARSE_S_START;
        } else if (http_parse_tchar[c]) {
            st->mark = st->pos;
            req->method_off = st->pos;
            /* Every method but OTHER, whose word is empty. */
            http_parse_match_start(st, ((1u << HTTP_PARSE_N_METHODS) - 1)
                                   & ~(1u << HTTP_METHOD_OTHER),
                                   http_parse_methods, HTTP_PARSE_N_METHODS,
                                   c);
            st->state = HTTP_PARSE_S_METHOD;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_START_LF:
        if (c == '\n') {
            st->state = HTTP_PARSE_S_START;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_METHOD:
        if (http_parse_tchar[c]) {
            http_parse_match_next(st, http_parse_methods,
                                  HTTP_PARSE_N_METHODS, c);
        } else if (c == ' ') {
            size_t k = st->cand == 0 ? HTTP_PARSE_N_METHODS
                : http_parse_matched(st->cand, http_parse_methods,
                                     HTTP_PARSE_N_METHODS, st->idx);

            req->method_len = st->pos - req->method_off;
            req->method = k < HTTP_PARSE_N_METHODS ? (enum http_method)k
                : HTTP_METHOD_OTHER;
            st->state = HTTP_PARSE_S_TARGET;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_TARGET:
        st->mark = st->pos;
        req->target_off = st->pos;
        if (c == '/') {
            req->path_off = st->pos;
            st->state = HTTP_PARSE_S_PATH;
        } else if (http_parse_lower(c) == 'h') {
            st->idx = 1;
            st->state = HTTP_PARSE_S_SCHEME;
        } else {
            /* asterisk-form, authority-form, other schemes, a second
             * SP: none of them names a key. */
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_SCHEME:
        if (http_parse_lower(c) != (unsigned char)http_parse_scheme[st->idx]) {
            http_parse_fail(st, 400);
        } else if (++st->idx == sizeof(http_parse_scheme) - 1) {
            st->state = HTTP_PARSE_S_SCHEME_END;
        }
        break;

    case HTTP_PARSE_S_SCHEME_END:
        if (http_parse_lower(c) == 's') {
            st->state = HTTP_PARSE_S_SCHEME_COLON;
        } else if (c == ':') {
            st->state = HTTP_PARSE_S_SCHEME_SLASH1;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_SCHEME_COLON:
    case HTTP_PARSE_S_SCHEME_SLASH1:
    case HTTP_PARSE_S_SCHEME_SLASH2:
        if (c != (st->state == HTTP_PARSE_S_SCHEME_COLON ? ':' : '/')) {
            http_parse_fail(st, 400);
        } else {
            /* COLON, SLASH1, SLASH2, AUTHORITY_FIRST follow in order. */
            st->state++;
        }
        break;

    case HTTP_PARSE_S_AUTHORITY_FIRST:
    case HTTP_PARSE_S_AUTHORITY:
        if (http_parse_host[c]) {
            st->state = HTTP_PARSE_S_AUTHORITY;
        } else if (c == '/' && st->state == HTTP_PARSE_S_AUTHORITY) {
            req->path_off = st->pos;
            st->state = HTTP_PARSE_S_PATH;
        } else {
            /* An empty authority, or none followed by a path: we serve
             * paths, so "http://host" alone is refused. */
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_PATH:
        if (http_parse_path[c]) {
            break;
        }
        req->path_len = st->pos - req->path_off;
        if (c == '?') {
            st->state = HTTP_PARSE_S_QUERY;
        } else if (c == ' ') {
            req->target_len = st->pos - req->target_off;
            st->idx = 0;
            st->state = HTTP_PARSE_S_VERSION_NAME;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_QUERY:
        if (http_parse_query[c]) {
            break;
        }
        if (c == ' ') {
            req->target_len = st->pos - req->target_off;
            st->idx = 0;
            st->state = HTTP_PARSE_S_VERSION_NAME;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_VERSION_NAME:
        /* HTTP-name is case-sensitive (RFC 9112 2.3). */
        if (c != (unsigned char)http_parse_version_name[st->idx]) {
            http_parse_fail(st, 400);
        } else if (++st->idx == sizeof(http_parse_version_name) - 1) {
            st->state = HTTP_PARSE_S_VERSION_MAJOR;
        }
        break;

    case HTTP_PARSE_S_VERSION_MAJOR:
    case HTTP_PARSE_S_VERSION_MINOR:
        if (!http_parse_is_digit(c)) {
            http_parse_fail(st, 400);
        } else if (st->state == HTTP_PARSE_S_VERSION_MAJOR) {
            st->version_major = (unsigned)(c - '0');
            st->state = HTTP_PARSE_S_VERSION_DOT;
        } else {
            req->version_minor = (unsigned)(c - '0');
            st->state = HTTP_PARSE_S_LINE_END;
        }
        break;

    case HTTP_PARSE_S_VERSION_DOT:
        if (c == '.') {
            st->state = HTTP_PARSE_S_VERSION_MINOR;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_LINE_END:
        if (c == '\r' || c == '\n') {
            http_parse_version_end(st, c);
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_LINE_LF:
        if (c == '\n') {
            st->state = HTTP_PARSE_S_FIELD_START;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    default:
        assert(!"http_parse_line_byte: not a request-line state");
        http_parse_fail(st, 400);
        break;
    }
}

/* A field line ends at pos with c (CR or LF). */
static void
http_parse_field_end(struct http_parse *st, unsigned char c)
{
    st->state = c == '\r' ? HTTP_PARSE_S_FIELD_LF : HTTP_PARSE_S_FIELD_START;
}

/* A Content-Length value ends at pos with c (CR or LF).  Values are
 * compared after saturation, so two that are both over the limit count
 * as equal and end in 413 rather than 400: an error either way. */
static void
http_parse_content_length_end(struct http_parse *st, unsigned char c)
{
    struct http_request *req = &st->req;

    if ((st->seen & HTTP_PARSE_SEEN_CONTENT_LENGTH) != 0
        && req->content_length != st->cl_value) {
        /* RFC 9112 6.3: differing lengths make the framing unknowable. */
        http_parse_fail(st, 400);
        return;
    }
    st->seen |= HTTP_PARSE_SEEN_CONTENT_LENGTH;
    req->has_content_length = true;
    req->content_length = st->cl_value;
    http_parse_field_end(st, c);
}

/* A Connection option token has ended: remember close and keep-alive. */
static void
http_parse_conn_token_end(struct http_parse *st)
{
    size_t k = st->cand == 0 ? HTTP_PARSE_N_CONN_OPTIONS
        : http_parse_matched(st->cand, http_parse_conn_options,
                             HTTP_PARSE_N_CONN_OPTIONS, st->idx);

    if (k == HTTP_PARSE_CONN_CLOSE) {
        st->conn_close = true;
    } else if (k == HTTP_PARSE_CONN_KEEP_ALIVE) {
        st->conn_keep_alive = true;
    }
}

/* The empty line has ended the head at pos: the whole-head checks. */
static void
http_parse_head_end(struct http_parse *st)
{
    struct http_request *req = &st->req;

    req->head_len = st->pos + 1;
    if (req->version_minor == 1 && (st->seen & HTTP_PARSE_SEEN_HOST) == 0) {
        /* RFC 9112 3.2: a 1.1 request without Host MUST get 400. */
        http_parse_fail(st, 400);
        return;
    }
    if ((st->seen & HTTP_PARSE_SEEN_TRANSFER_ENCODING) != 0) {
        if (req->has_content_length || req->version_minor == 0
            || req->method == HTTP_METHOD_GET
            || req->method == HTTP_METHOD_HEAD) {
            http_parse_fail(st, 400);
        } else {
            http_parse_fail(st, 501);
        }
        return;
    }
    if (req->has_content_length
        && req->content_length > HTTP_PARSE_BODY_MAX) {
        http_parse_fail(st, 413);
        return;
    }
    /* close wins over keep-alive when a client sends both. */
    req->keep_alive = !st->conn_close
        && (req->version_minor == 1 || st->conn_keep_alive);
    st->state = HTTP_PARSE_S_DONE;
}

/* The name has ended at a ':': choose how to read the value. */
static void
http_parse_name_end(struct http_parse *st)
{
    size_t k = st->cand == 0 ? HTTP_PARSE_N_FIELDS
        : http_parse_matched(st->cand, http_parse_fields,
                             HTTP_PARSE_N_FIELDS, st->idx);

    st->header_name_len = st->pos - st->header_name_off;
    st->field = k < HTTP_PARSE_N_FIELDS ? (unsigned)k
        : HTTP_PARSE_FIELD_OTHER;
    st->idx = 0;
    switch (st->field) {
    case HTTP_PARSE_FIELD_HOST:
        if ((st->seen & HTTP_PARSE_SEEN_HOST) != 0) {
            /* RFC 9112 3.2: more than one Host MUST get 400. */
            http_parse_fail(st, 400);
            return;
        }
        st->seen |= HTTP_PARSE_SEEN_HOST;
        st->state = HTTP_PARSE_S_HOST;
        break;
    case HTTP_PARSE_FIELD_CONTENT_LENGTH:
        st->cl_value = 0;
        st->state = HTTP_PARSE_S_CL_START;
        break;
    case HTTP_PARSE_FIELD_TRANSFER_ENCODING:
        st->seen |= HTTP_PARSE_SEEN_TRANSFER_ENCODING;
        st->state = HTTP_PARSE_S_VALUE;
        break;
    case HTTP_PARSE_FIELD_CONNECTION:
        st->state = HTTP_PARSE_S_CONN_ELEMENT;
        break;
    default:
        st->state = HTTP_PARSE_S_VALUE;
        break;
    }
}

static void
http_parse_content_length_digit(struct http_parse *st, unsigned char c)
{
    /* Bounded before the multiply: cl_value <= BODY_MAX + 1 here, so the
     * product cannot wrap, and it saturates at BODY_MAX + 1. */
    st->cl_value = st->cl_value * 10 + (uint64_t)(c - '0');
    if (st->cl_value > HTTP_PARSE_BODY_MAX) {
        st->cl_value = HTTP_PARSE_BODY_MAX + 1;
    }
}

/* One byte of the field section. */
static void
http_parse_field_byte(struct http_parse *st, unsigned char c)
{
    bool eol = c == '\r' || c == '\n';

    switch (st->state) {
    case HTTP_PARSE_S_FIELD_START:
        if (c == '\r') {
            st->state = HTTP_PARSE_S_END_LF;
        } else if (c == '\n') {
            http_parse_head_end(st);
        } else if (http_parse_tchar[c]) {
            st->mark = st->pos;
            st->header_name_off = st->pos;
            http_parse_match_start(st, (1u << HTTP_PARSE_N_FIELDS) - 1,
                                   http_parse_fields, HTTP_PARSE_N_FIELDS,
                                   http_parse_lower(c));
            st->state = HTTP_PARSE_S_FIELD_NAME;
        } else {
            /* SP or HT here is obs-fold (RFC 9112 5.2), or whitespace
             * before the first field (2.2): both 400. */
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_FIELD_NAME:
        if (http_parse_tchar[c]) {
            http_parse_match_next(st, http_parse_fields, HTTP_PARSE_N_FIELDS,
                                  http_parse_lower(c));
        } else if (c == ':') {
            http_parse_name_end(st);
        } else {
            /* Including whitespace before the colon (RFC 9112 5.1). */
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_VALUE:
        if (eol) {
            http_parse_field_end(st, c);
        } else if (!http_parse_value[c]) {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_CL_START:
        if (http_parse_is_digit(c)) {
            http_parse_content_length_digit(st, c);
            st->state = HTTP_PARSE_S_CL_DIGITS;
        } else if (!http_parse_is_ows(c)) {
            /* Empty, signed, a list ("1, 1"): 1*DIGIT only. */
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_CL_DIGITS:
    case HTTP_PARSE_S_CL_OWS:
        if (eol) {
            http_parse_content_length_end(st, c);
        } else if (http_parse_is_ows(c)) {
            st->state = HTTP_PARSE_S_CL_OWS;
        } else if (http_parse_is_digit(c)
                   && st->state == HTTP_PARSE_S_CL_DIGITS) {
            http_parse_content_length_digit(st, c);
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_HOST:
    case HTTP_PARSE_S_HOST_OWS:
        /* st->idx counts host bytes, to tell leading OWS from trailing;
         * an empty Host is allowed (RFC 9110 7.2). */
        if (eol) {
            http_parse_field_end(st, c);
        } else if (http_parse_is_ows(c)) {
            if (st->idx > 0) {
                st->state = HTTP_PARSE_S_HOST_OWS;
            }
        } else if (http_parse_host[c] && st->state == HTTP_PARSE_S_HOST) {
            st->idx++;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_CONN_ELEMENT:
        /* Empty list elements are allowed (RFC 9110 5.6.1). */
        if (eol) {
            http_parse_field_end(st, c);
        } else if (http_parse_tchar[c]) {
            http_parse_match_start(st, (1u << HTTP_PARSE_N_CONN_OPTIONS) - 1,
                                   http_parse_conn_options,
                                   HTTP_PARSE_N_CONN_OPTIONS,
                                   http_parse_lower(c));
            st->state = HTTP_PARSE_S_CONN_TOKEN;
        } else if (!http_parse_is_ows(c) && c != ',') {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_CONN_TOKEN:
        if (http_parse_tchar[c]) {
            http_parse_match_next(st, http_parse_conn_options,
                                  HTTP_PARSE_N_CONN_OPTIONS,
                                  http_parse_lower(c));
            break;
        }
        if (!eol && !http_parse_is_ows(c) && c != ',') {
            http_parse_fail(st, 400);
            break;
        }
        http_parse_conn_token_end(st);
        if (eol) {
            http_parse_field_end(st, c);
        } else if (c == ',') {
            st->state = HTTP_PARSE_S_CONN_ELEMENT;
        } else {
            st->state = HTTP_PARSE_S_CONN_OWS;
        }
        break;

    case HTTP_PARSE_S_CONN_OWS:
        if (eol) {
            http_parse_field_end(st, c);
        } else if (c == ',') {
            st->state = HTTP_PARSE_S_CONN_ELEMENT;
        } else if (!http_parse_is_ows(c)) {
            /* Two tokens with no comma: "keep alive". */
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_FIELD_LF:
        if (c == '\n') {
            st->state = HTTP_PARSE_S_FIELD_START;
        } else {
            http_parse_fail(st, 400);
        }
        break;

    case HTTP_PARSE_S_END_LF:
        if (c == '\n') {
            http_parse_head_end(st);
        } else {
            http_parse_fail(st, 400);
        }
        break;

    default:
        assert(!"http_parse_field_byte: not a field-section state");
        http_parse_fail(st, 400);
        break;
    }
}

/* Copies what the caller may see for the current state into req. */
static enum http_parse_rc
http_parse_result(const struct http_parse *st, struct http_request *req)
{
    if (st->state == HTTP_PARSE_S_DONE) {
        *req = st->req;
        req->status = 0;
        return HTTP_PARSE_DONE;
    }
    memset(req, 0, sizeof(*req));
    if (st->state == HTTP_PARSE_S_ERROR) {
        req->status = st->req.status;
        return HTTP_PARSE_ERROR;
    }
    return HTTP_PARSE_AGAIN;
}

void
http_parse_init(struct http_parse *st)
{
    memset(st, 0, sizeof(*st));
    st->state = HTTP_PARSE_S_START;
}

enum http_parse_rc
http_parse_request(struct http_parse *st, const char *buf, size_t len,
                   struct http_request *req)
{
    /* The caller passes the same prefix plus more, never less. */
    assert(len >= st->pos || st->state >= HTTP_PARSE_S_DONE);

    while (st->state < HTTP_PARSE_S_DONE) {
        if (st->state < HTTP_PARSE_S_LINE_END
            && st->pos >= HTTP_PARSE_LINE_MAX) {
            /* Whatever comes next, the line is already too long. */
            http_parse_fail(st, 414);
            break;
        }
        if (st->state >= HTTP_PARSE_S_FIELD_START
            && st->pos >= HTTP_PARSE_HEAD_MAX) {
            http_parse_fail(st, 431);
            break;
        }
        if (st->pos >= len) {
            break;
        }
        if (st->state < HTTP_PARSE_S_FIELD_START) {
            http_parse_line_byte(st, (unsigned char)buf[st->pos]);
        } else {
            http_parse_field_byte(st, (unsigned char)buf[st->pos]);
        }
        st->pos++;
    }
    return http_parse_result(st, req);
}

ssize_t
http_parse_decode(const char *src, size_t src_len, char *dst)
{
    size_t i = 0;
    size_t n = 0;

    while (i < src_len) {
        unsigned char c = (unsigned char)src[i];
        int hi, lo;

        if (c != '%') {
            dst[n++] = (char)c;
            i++;
            continue;
        }
        if (src_len - i < 3) {
            return -1;
        }
        hi = http_parse_hex[(unsigned char)src[i + 1]];
        lo = http_parse_hex[(unsigned char)src[i + 2]];
        if (hi < 0 || lo < 0) {
            return -1;
        }
        dst[n++] = (char)(hi << 4 | lo);
        i += 3;
    }
    return (ssize_t)n;
}
