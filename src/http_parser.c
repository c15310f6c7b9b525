/*
 * http_parser: owns the grammar of one HTTP/1.1 request head (RFC 9112,
 * with RFC 9110 for field semantics) and the percent-decoding of a path.
 *
 * Invariants:
 * - Pure: no I/O, no allocation, no globals but const tables.  All state
 *   lives in struct http_parse; req is rewritten in full on every return,
 *   so the caller may pass a fresh one each time.
 * - Each byte is classified once, in order: st->pos is the next byte and
 *   st->state says what it may be, and a call resumes there, so the work
 *   over all calls is linear in the head however it is cut.  A step takes
 *   a whole run of one class (a path, a field value) with a table lookup
 *   per byte and then the byte that ends it.  Two bounded exceptions:
 *   when a method, field name or Connection option ends, if its length is
 *   that of a word we act on, its bytes (17 at most) are compared once
 *   more against that word, rather than tracking candidate words at every
 *   byte; and "HTTP/x.y" is compared whole when all 8 bytes are there,
 *   and byte by byte, in the same call, when that fails.  Decisions
 *   depend only on the bytes before pos, so feeding a request one byte at
 *   a time gives exactly the result of feeding it whole (the tests and
 *   the fuzzer check this).
 * - Offsets, never pointers: the buffer may move between calls as long as
 *   it still starts at the request's first byte and holds the same bytes
 *   (a token's end looks back at its start).
 * - Limits are checked before the byte at pos is needed, so an over-long
 *   line or head is refused as soon as the limit passes, not after more
 *   input.  Both are measured from buf[0], so empty lines before the
 *   request line count toward them.
 *
 * Flow (every line ends in CRLF: a bare CR or a bare LF is 400.  RFC 9112
 * section 2.2 lets a recipient take a bare LF as a line end, but a front
 * end that does not is then open to smuggling, so we refuse it, as
 * llhttp's strict mode does):
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
 * Whole-head checks, in this order: HTTP/1.1 without Host is 400; a
 * Transfer-Encoding is 400 with Content-Length or on HTTP/1.0 (RFC 9112
 * 6.1); one Transfer-Encoding line of exactly "chunked" sets req->chunked
 * (the caller reads the body with http_parse_chunked(), to skip it), any
 * other coding is 400 on GET/HEAD, else 501; a Content-Length over
 * HTTP_PARSE_BODY_MAX is 413.  A duplicate Host, or Content-Lengths that
 * differ, are 400 as soon as they are seen.  Expect: 100-continue on a
 * 1.1 request sets req->expect_continue, and only-if-cached in any
 * Cache-Control line req->only_if_cached; If-None-Match and If-Match
 * values are kept as offsets, for the caller to evaluate.
 *
 * Strictness, and why: the request-target must be pchar / "/" / "?",
 * plus the bytes nginx takes unescaped in a path: '"', '^', '`', '{',
 * '|' and '}' (curl sends `curl 'http://h/user|42'` as is).  A '%' is not
 * checked here; http_parse_decode() refuses a bad escape.  A '#', a
 * space, '<', '>', '\', a byte over 0x7e or a control byte in it is 400,
 * and field values may not hold CTLs other than HT.  A proxy that is
 * lenient where the origin is strict, or the other way round, is how
 * request smuggling happens.
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
    HTTP_PARSE_S_START = 0, /* empty lines before the request line */
    HTTP_PARSE_S_START_LF,  /* CR of such an empty line */
    HTTP_PARSE_S_METHOD,
    HTTP_PARSE_S_TARGET,       /* first byte of the request-target */
    HTTP_PARSE_S_SCHEME,       /* "http" of absolute-form, idx matched */
    HTTP_PARSE_S_SCHEME_END,   /* after "http": 's' or ':' */
    HTTP_PARSE_S_SCHEME_COLON, /* after "https": ':' */
    HTTP_PARSE_S_SCHEME_SLASH1,
    HTTP_PARSE_S_SCHEME_SLASH2,
    HTTP_PARSE_S_AUTHORITY_FIRST,
    HTTP_PARSE_S_AUTHORITY,
    HTTP_PARSE_S_PATH,
    HTTP_PARSE_S_QUERY,
    HTTP_PARSE_S_VERSION_NAME, /* "HTTP/", idx matched */
    HTTP_PARSE_S_VERSION_MAJOR,
    HTTP_PARSE_S_VERSION_DOT,
    HTTP_PARSE_S_VERSION_MINOR,
    HTTP_PARSE_S_LINE_END,    /* after the version: CR or LF */
    HTTP_PARSE_S_LINE_LF,     /* CR of the request line */
    HTTP_PARSE_S_FIELD_START, /* a field name or the empty line */
    HTTP_PARSE_S_FIELD_NAME,
    HTTP_PARSE_S_VALUE,    /* a field we only check the syntax of */
    HTTP_PARSE_S_CL_START, /* Content-Length: OWS before digits */
    HTTP_PARSE_S_CL_DIGITS,
    HTTP_PARSE_S_CL_OWS,       /* OWS after the digits */
    HTTP_PARSE_S_HOST,         /* Host: OWS, then host [":" port] */
    HTTP_PARSE_S_HOST_OWS,     /* OWS after the host */
    HTTP_PARSE_S_CONN_ELEMENT, /* Connection: OWS or ',' before a token */
    HTTP_PARSE_S_CONN_TOKEN,
    HTTP_PARSE_S_CONN_OWS, /* OWS after a token: ',' or line end */
    HTTP_PARSE_S_FIELD_LF, /* CR ending a field line */
    HTTP_PARSE_S_END_LF,   /* CR of the empty line ending the head */
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
    HTTP_PARSE_FIELD_EXPECT,
    HTTP_PARSE_FIELD_IF_NONE_MATCH,
    HTTP_PARSE_FIELD_CACHE_CONTROL,
    HTTP_PARSE_FIELD_IF_MATCH,
    HTTP_PARSE_FIELD_OTHER
};

/* Bits of st->seen. */
#define HTTP_PARSE_SEEN_HOST              (1u << 0)
#define HTTP_PARSE_SEEN_CONTENT_LENGTH    (1u << 1)
#define HTTP_PARSE_SEEN_TRANSFER_ENCODING (1u << 2)
#define HTTP_PARSE_SEEN_IF_NONE_MATCH     (1u << 3)
#define HTTP_PARSE_SEEN_IF_MATCH          (1u << 4)

/* "http" of an absolute-form target, compared case-insensitively. */
static const char http_parse_scheme[] = "http";
static const char http_parse_version_name[] = "HTTP/";

/*
 * Character classes, one 256-entry table each, indexed by the unsigned
 * byte.  tchar: RFC 9110 5.6.2.  value: field-vchar, SP and HT (RFC 9110
 * 5.5: VCHAR / obs-text).  path: pchar / "/" (RFC 3986 3.3, '%' allowed,
 * escapes checked by http_parse_decode()) and '"' '^' '`' '{' '|' '}',
 * as nginx accepts.  query: path plus '?'.  host:
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
    0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 .!"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, /* 0x30 0123456789:;<=>? */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @ABCDEFGHIJKLMNO */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 PQRSTUVWXYZ[\]^_ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `abcdefghijklmno */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x70 pqrstuvwxyz{|}~. */
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
    0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 .!"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, /* 0x30 0123456789:;<=>? */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @ABCDEFGHIJKLMNO */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 PQRSTUVWXYZ[\]^_ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `abcdefghijklmno */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x70 pqrstuvwxyz{|}~. */
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
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x00 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x10 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x20 */
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  -1, -1, -1, -1, -1, -1, /* 0x30 */
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x40 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x50 */
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x60 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x70 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x80 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x90 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xa0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xb0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xc0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xd0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xe0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xf0 */
};

static unsigned char
http_parse_lower(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return (unsigned char) (c - 'A' + 'a');
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
 * Whether the n bytes at s are word, compared case-insensitively.  word
 * is lower case letters and '-', and the caller has checked that s holds
 * tchars only and that n is word's length.
 */
static bool
http_parse_word_eq(const unsigned char *s, size_t n, const char *word)
{
    for (size_t i = 0; i < n; i++) {
        if (http_parse_lower(s[i]) != (unsigned char) word[i]) {
            return false;
        }
    }
    return true;
}

/* The method named by the n tchars at s; methods are case-sensitive
 * (RFC 9110 9.1), so "get" is OTHER. */
static enum http_method
http_parse_method_of(const unsigned char *s, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(s, "GET", 3) == 0) {
            return HTTP_METHOD_GET;
        }
        if (memcmp(s, "PUT", 3) == 0) {
            return HTTP_METHOD_PUT;
        }
        break;
    case 4:
        if (memcmp(s, "HEAD", 4) == 0) {
            return HTTP_METHOD_HEAD;
        }
        if (memcmp(s, "POST", 4) == 0) {
            return HTTP_METHOD_POST;
        }
        break;
    case 6:
        if (memcmp(s, "DELETE", 6) == 0) {
            return HTTP_METHOD_DELETE;
        }
        break;
    default:
        break;
    }
    return HTTP_METHOD_OTHER;
}

/* The field named by the n tchars at s.  The eight names we interpret
 * have seven different lengths, so two compares at most, and none for
 * most other fields. */
static enum http_parse_field
http_parse_field_of(const unsigned char *s, size_t n)
{
    switch (n) {
    case sizeof("host") - 1:
        if (http_parse_word_eq(s, n, "host")) {
            return HTTP_PARSE_FIELD_HOST;
        }
        break;
    case sizeof("if-match") - 1:
        if (http_parse_word_eq(s, n, "if-match")) {
            return HTTP_PARSE_FIELD_IF_MATCH;
        }
        break;
    case sizeof("expect") - 1:
        if (http_parse_word_eq(s, n, "expect")) {
            return HTTP_PARSE_FIELD_EXPECT;
        }
        break;
    case sizeof("connection") - 1:
        if (http_parse_word_eq(s, n, "connection")) {
            return HTTP_PARSE_FIELD_CONNECTION;
        }
        break;
    case sizeof("if-none-match") - 1:
        /* The one length two of them share: two compares at most. */
        if (http_parse_word_eq(s, n, "if-none-match")) {
            return HTTP_PARSE_FIELD_IF_NONE_MATCH;
        }
        if (http_parse_word_eq(s, n, "cache-control")) {
            return HTTP_PARSE_FIELD_CACHE_CONTROL;
        }
        break;
    case sizeof("content-length") - 1:
        if (http_parse_word_eq(s, n, "content-length")) {
            return HTTP_PARSE_FIELD_CONTENT_LENGTH;
        }
        break;
    case sizeof("transfer-encoding") - 1:
        if (http_parse_word_eq(s, n, "transfer-encoding")) {
            return HTTP_PARSE_FIELD_TRANSFER_ENCODING;
        }
        break;
    default:
        break;
    }
    return HTTP_PARSE_FIELD_OTHER;
}

/* The first index from pos (at most stop) whose byte is not in class.
 * Four bytes per test of stop, as picohttpparser does: most runs (paths,
 * values) are longer than that, and each byte is still read once. */
static inline size_t
http_parse_span(const uint8_t *class, const unsigned char *p, size_t pos,
                size_t stop)
{
    while (stop - pos >= 4) {
        if (!class[p[pos]]) {
            return pos;
        }
        if (!class[p[pos + 1]]) {
            return pos + 1;
        }
        if (!class[p[pos + 2]]) {
            return pos + 2;
        }
        if (!class[p[pos + 3]]) {
            return pos + 3;
        }
        pos += 4;
    }
    while (pos < stop && class[p[pos]]) {
        pos++;
    }
    return pos;
}

/* The first index from pos (at most stop) that is not SP or HT. */
static size_t
http_parse_span_ows(const unsigned char *p, size_t pos, size_t stop)
{
    while (pos < stop && http_parse_is_ows(p[pos])) {
        pos++;
    }
    return pos;
}

/* Whether the field value in [from, to), without the OWS around it, is
 * word (lower case), compared case-insensitively. */
static bool
http_parse_value_is(const unsigned char *p, size_t from, size_t to,
                    const char *word)
{
    size_t n = strlen(word);

    while (from < to && http_parse_is_ows(p[from])) {
        from++;
    }
    while (to > from && http_parse_is_ows(p[to - 1])) {
        to--;
    }
    if (to - from != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (http_parse_lower(p[from + i]) != (unsigned char) word[i]) {
            return false;
        }
    }
    return true;
}

/*
 * Whether the Cache-Control value in [from, to) holds the directive
 * word (lower case): a comma-separated list of token [ "=" ( token /
 * quoted-string ) ] (RFC 9111 5.2), names compared case-insensitively.
 * A comma or a name inside a quoted argument is not an element: quoted
 * strings are skipped whole, "\\" escapes included.  Syntax is not
 * checked beyond that (the value class already kept CTLs out).
 */
static bool
http_parse_list_has(const unsigned char *p, size_t from, size_t to,
                    const char *word)
{
    size_t n = strlen(word);
    size_t i = from;

    while (i < to) {
        size_t start;

        while (i < to && (http_parse_is_ows(p[i]) || p[i] == ',')) {
            i++;
        }
        start = i;
        while (i < to && http_parse_tchar[p[i]]) {
            i++;
        }
        if (i - start == n && http_parse_word_eq(p + start, n, word)) {
            size_t j = http_parse_span_ows(p, i, to);

            if (j == to || p[j] == ',' || p[j] == '=') {
                return true;
            }
        }
        /* The rest of this element: its argument, quotes and all. */
        while (i < to && p[i] != ',') {
            if (p[i] == '"') {
                for (i++; i < to && p[i] != '"'; i++) {
                    if (p[i] == '\\' && i + 1 < to) {
                        i++;
                    }
                }
            }
            if (i < to) {
                i++;
            }
        }
    }
    return false;
}

static void
http_parse_fail(struct http_parse *st, int status)
{
    st->state = HTTP_PARSE_S_ERROR;
    st->req.status = status;
}

/* The request line has ended at a CR or LF c: settle the version. */
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

/*
 * A field line ends with the CR or LF at pos: returns the next position.
 * The LF after a CR is taken here when it is already in the buffer and
 * below stop, which is what FIELD_LF would do with it one step later.
 */
static size_t
http_parse_field_end(struct http_parse *st, const unsigned char *p, size_t pos,
                     size_t stop)
{
    if (p[pos] != '\r') {
        /* A bare LF (see the file comment). */
        http_parse_fail(st, 400);
        return pos;
    }
    if (st->field == HTTP_PARSE_FIELD_TRANSFER_ENCODING) {
        /* Only a single "chunked" is a coding we can read; anything
         * else, or a second Transfer-Encoding line, is refused at the
         * head's end. */
        if (!st->te_chunked && !st->te_other
            && http_parse_value_is(p, st->mark, pos, "chunked")) {
            st->te_chunked = true;
        } else {
            st->te_chunked = false;
            st->te_other = true;
        }
    } else if (st->field == HTTP_PARSE_FIELD_EXPECT
               && http_parse_value_is(p, st->mark, pos, "100-continue")) {
        st->expect_continue = true;
    } else if (st->field == HTTP_PARSE_FIELD_IF_MATCH) {
        /* As If-None-Match: one line is evaluated, several are not. */
        if ((st->seen & HTTP_PARSE_SEEN_IF_MATCH) != 0) {
            st->req.im_many = true;
            st->req.im_len = 0;
        } else {
            st->seen |= HTTP_PARSE_SEEN_IF_MATCH;
            st->req.im_off = st->mark;
            st->req.im_len = pos - st->mark;
        }
    } else if (st->field == HTTP_PARSE_FIELD_CACHE_CONTROL
               && http_parse_list_has(p, st->mark, pos, "only-if-cached")) {
        /* Several Cache-Control lines are one list (RFC 9110 5.3). */
        st->req.only_if_cached = true;
    } else if (st->field == HTTP_PARSE_FIELD_IF_NONE_MATCH) {
        /* A list split over several lines would need the lines
         * joined; one is what clients send, so more are not evaluated. */
        if ((st->seen & HTTP_PARSE_SEEN_IF_NONE_MATCH) != 0) {
            st->req.inm_many = true;
            st->req.inm_len = 0;
        } else {
            st->seen |= HTTP_PARSE_SEEN_IF_NONE_MATCH;
            st->req.inm_off = st->mark;
            st->req.inm_len = pos - st->mark;
        }
    }
    if (pos + 1 < stop && p[pos + 1] == '\n') {
        st->state = HTTP_PARSE_S_FIELD_START;
        return pos + 2;
    }
    st->state = HTTP_PARSE_S_FIELD_LF;
    return pos + 1;
}

/* A Content-Length value ends at pos with a CR or LF.  Values are
 * compared after saturation, so two that are both over the limit count
 * as equal and end in 413 rather than 400: an error either way. */
static size_t
http_parse_content_length_end(struct http_parse *st, const unsigned char *p,
                              size_t pos, size_t stop)
{
    struct http_request *req = &st->req;

    if ((st->seen & HTTP_PARSE_SEEN_CONTENT_LENGTH) != 0
        && req->content_length != st->cl_value) {
        /* RFC 9112 6.3: differing lengths make the framing unknowable. */
        http_parse_fail(st, 400);
        return pos;
    }
    st->seen |= HTTP_PARSE_SEEN_CONTENT_LENGTH;
    req->has_content_length = true;
    req->content_length = st->cl_value;
    return http_parse_field_end(st, p, pos, stop);
}

/* A Connection option token, from st->mark, has ended at pos: remember
 * close and keep-alive. */
static void
http_parse_conn_token_end(struct http_parse *st, const unsigned char *p,
                          size_t pos)
{
    size_t n = pos - st->mark;

    if (n == sizeof("close") - 1
        && http_parse_word_eq(p + st->mark, n, "close")) {
        st->conn_close = true;
    } else if (n == sizeof("keep-alive") - 1
               && http_parse_word_eq(p + st->mark, n, "keep-alive")) {
        st->conn_keep_alive = true;
    }
}

/* The empty line has ended the head at pos: the whole-head checks. */
static void
http_parse_head_end(struct http_parse *st, size_t pos)
{
    struct http_request *req = &st->req;

    req->head_len = pos + 1;
    if (req->version_minor == 1 && (st->seen & HTTP_PARSE_SEEN_HOST) == 0) {
        /* RFC 9112 3.2: a 1.1 request without Host MUST get 400. */
        http_parse_fail(st, 400);
        return;
    }
    if ((st->seen & HTTP_PARSE_SEEN_TRANSFER_ENCODING) != 0) {
        if (req->has_content_length || req->version_minor == 0) {
            http_parse_fail(st, 400);
            return;
        }
        if (!st->te_chunked) {
            http_parse_fail(st, req->method == HTTP_METHOD_GET
                                        || req->method == HTTP_METHOD_HEAD
                                    ? 400
                                    : 501);
            return;
        }
        req->chunked = true;
    }
    /* RFC 9110 10.1.1: an HTTP/1.0 client's expectation is ignored. */
    req->expect_continue = st->expect_continue && req->version_minor == 1;
    if (req->has_content_length && req->content_length > HTTP_PARSE_BODY_MAX) {
        http_parse_fail(st, 413);
        return;
    }
    /* close wins over keep-alive when a client sends both. */
    req->keep_alive = !st->conn_close
                      && (req->version_minor == 1 || st->conn_keep_alive);
    st->state = HTTP_PARSE_S_DONE;
}

/* The name, from header_name_off, has ended at the ':' at pos: choose
 * how to read the value. */
static void
http_parse_name_end(struct http_parse *st, const unsigned char *p, size_t pos)
{
    st->header_name_len = pos - st->header_name_off;
    st->field =
        http_parse_field_of(p + st->header_name_off, st->header_name_len);
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
        st->mark = pos + 1;
        st->state = HTTP_PARSE_S_VALUE;
        break;
    case HTTP_PARSE_FIELD_EXPECT:
    case HTTP_PARSE_FIELD_IF_NONE_MATCH:
    case HTTP_PARSE_FIELD_CACHE_CONTROL:
    case HTTP_PARSE_FIELD_IF_MATCH:
        st->mark = pos + 1;
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
    st->cl_value = st->cl_value * 10 + (uint64_t) (c - '0');
    if (st->cl_value > HTTP_PARSE_BODY_MAX) {
        st->cl_value = HTTP_PARSE_BODY_MAX + 1;
    }
}

/*
 * One step of the request line (or of the empty lines before it) from
 * pos, which is below stop: a whole run of path bytes, say, and the byte
 * that ends it.  Returns the next position.  stop is len capped at
 * HTTP_PARSE_LINE_MAX for the states before LINE_END, and len for
 * LINE_END and LINE_LF.
 */
static size_t
http_parse_line_step(struct http_parse *st, const unsigned char *p, size_t pos,
                     size_t stop)
{
    struct http_request *req = &st->req;
    unsigned char        c;

    switch (st->state) {
    case HTTP_PARSE_S_START:
        c = p[pos];
        if (c == '\r') {
            st->state = HTTP_PARSE_S_START_LF;
        } else if (http_parse_tchar[c]) {
            st->mark = pos;
            req->method_off = pos;
            st->state = HTTP_PARSE_S_METHOD;
        } else {
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_START_LF:
        if (p[pos] == '\n') {
            st->state = HTTP_PARSE_S_START;
        } else {
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_METHOD:
        pos = http_parse_span(http_parse_tchar, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        if (p[pos] != ' ') {
            http_parse_fail(st, 400);
            return pos;
        }
        req->method_len = pos - req->method_off;
        req->method =
            http_parse_method_of(p + req->method_off, req->method_len);
        st->state = HTTP_PARSE_S_TARGET;
        return pos + 1;

    case HTTP_PARSE_S_TARGET:
        c = p[pos];
        st->mark = pos;
        req->target_off = pos;
        if (c == '/') {
            req->path_off = pos;
            st->state = HTTP_PARSE_S_PATH;
        } else if (http_parse_lower(c) == 'h') {
            st->idx = 1;
            st->state = HTTP_PARSE_S_SCHEME;
        } else {
            /* asterisk-form, authority-form, other schemes, a second
             * SP: none of them names a key. */
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_SCHEME:
        if (http_parse_lower(p[pos])
            != (unsigned char) http_parse_scheme[st->idx]) {
            http_parse_fail(st, 400);
        } else if (++st->idx == sizeof(http_parse_scheme) - 1) {
            st->state = HTTP_PARSE_S_SCHEME_END;
        }
        return pos + 1;

    case HTTP_PARSE_S_SCHEME_END:
        c = p[pos];
        if (http_parse_lower(c) == 's') {
            st->state = HTTP_PARSE_S_SCHEME_COLON;
        } else if (c == ':') {
            st->state = HTTP_PARSE_S_SCHEME_SLASH1;
        } else {
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_SCHEME_COLON:
    case HTTP_PARSE_S_SCHEME_SLASH1:
    case HTTP_PARSE_S_SCHEME_SLASH2:
        if (p[pos] != (st->state == HTTP_PARSE_S_SCHEME_COLON ? ':' : '/')) {
            http_parse_fail(st, 400);
        } else {
            /* COLON, SLASH1, SLASH2, AUTHORITY_FIRST follow in order. */
            st->state++;
        }
        return pos + 1;

    case HTTP_PARSE_S_AUTHORITY_FIRST:
        if (http_parse_host[p[pos]]) {
            st->state = HTTP_PARSE_S_AUTHORITY;
        } else {
            /* An empty authority: "http:///k". */
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_AUTHORITY:
        pos = http_parse_span(http_parse_host, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        if (p[pos] != '/') {
            /* We serve paths, so "http://host" alone is refused. */
            http_parse_fail(st, 400);
            return pos;
        }
        req->path_off = pos;
        st->state = HTTP_PARSE_S_PATH;
        return pos + 1;

    case HTTP_PARSE_S_PATH:
        pos = http_parse_span(http_parse_path, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        req->path_len = pos - req->path_off;
        c = p[pos];
        if (c == '?') {
            st->state = HTTP_PARSE_S_QUERY;
        } else if (c == ' ') {
            req->target_len = pos - req->target_off;
            st->idx = 0;
            st->state = HTTP_PARSE_S_VERSION_NAME;
        } else {
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_QUERY:
        pos = http_parse_span(http_parse_query, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        if (p[pos] != ' ') {
            http_parse_fail(st, 400);
            return pos;
        }
        req->target_len = pos - req->target_off;
        st->idx = 0;
        st->state = HTTP_PARSE_S_VERSION_NAME;
        return pos + 1;

    case HTTP_PARSE_S_VERSION_NAME:
        /* The common case whole: "HTTP/" DIGIT "." DIGIT all below stop,
         * so no limit falls inside it.  Anything else, or a version cut
         * by the end of the buffer, goes byte by byte below, which
         * decides the same. */
        if (st->idx == 0 && stop - pos >= 8
            && memcmp(p + pos, http_parse_version_name, 5) == 0
            && http_parse_is_digit(p[pos + 5]) && p[pos + 6] == '.'
            && http_parse_is_digit(p[pos + 7])) {
            st->version_major = (unsigned) (p[pos + 5] - '0');
            req->version_minor = (unsigned) (p[pos + 7] - '0');
            st->state = HTTP_PARSE_S_LINE_END;
            return pos + 8;
        }
        /* HTTP-name is case-sensitive (RFC 9112 2.3). */
        if (p[pos] != (unsigned char) http_parse_version_name[st->idx]) {
            http_parse_fail(st, 400);
        } else if (++st->idx == sizeof(http_parse_version_name) - 1) {
            st->state = HTTP_PARSE_S_VERSION_MAJOR;
        }
        return pos + 1;

    case HTTP_PARSE_S_VERSION_MAJOR:
    case HTTP_PARSE_S_VERSION_MINOR:
        c = p[pos];
        if (!http_parse_is_digit(c)) {
            http_parse_fail(st, 400);
        } else if (st->state == HTTP_PARSE_S_VERSION_MAJOR) {
            st->version_major = (unsigned) (c - '0');
            st->state = HTTP_PARSE_S_VERSION_DOT;
        } else {
            req->version_minor = (unsigned) (c - '0');
            st->state = HTTP_PARSE_S_LINE_END;
        }
        return pos + 1;

    case HTTP_PARSE_S_VERSION_DOT:
        if (p[pos] == '.') {
            st->state = HTTP_PARSE_S_VERSION_MINOR;
        } else {
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_LINE_END:
        c = p[pos];
        if (c != '\r') {
            /* A bare LF included (see the file comment). */
            http_parse_fail(st, 400);
            return pos;
        }
        http_parse_version_end(st, c);
        pos++;
        /* LINE_LF has no limit to check, so its LF may be taken now. */
        if (st->state == HTTP_PARSE_S_LINE_LF && pos < stop
            && p[pos] == '\n') {
            st->state = HTTP_PARSE_S_FIELD_START;
            pos++;
        }
        return pos;

    case HTTP_PARSE_S_LINE_LF:
        if (p[pos] == '\n') {
            st->state = HTTP_PARSE_S_FIELD_START;
        } else {
            http_parse_fail(st, 400);
        }
        return pos + 1;

    default:
        assert(!"http_parse_line_step: not a request-line state");
        http_parse_fail(st, 400);
        return pos;
    }
}

/*
 * One step of the field section from pos, which is below stop (len
 * capped at HTTP_PARSE_HEAD_MAX): a field name with its ':', a run of
 * value bytes with the line end after it, and so on.  Returns the next
 * position.
 */
static size_t
http_parse_field_step(struct http_parse *st, const unsigned char *p,
                      size_t pos, size_t stop)
{
    size_t        from;
    unsigned char c;

    switch (st->state) {
    case HTTP_PARSE_S_FIELD_START:
        c = p[pos];
        if (c == '\r') {
            st->state = HTTP_PARSE_S_END_LF;
            if (pos + 1 < stop && p[pos + 1] == '\n') {
                http_parse_head_end(st, pos + 1);
                return pos + 2;
            }
        } else if (http_parse_tchar[c]) {
            st->mark = pos;
            st->header_name_off = pos;
            st->state = HTTP_PARSE_S_FIELD_NAME;
        } else {
            /* SP or HT here is obs-fold (RFC 9112 5.2), or whitespace
             * before the first field (2.2): both 400. */
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_FIELD_NAME:
        pos = http_parse_span(http_parse_tchar, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        if (p[pos] != ':') {
            /* Including whitespace before the colon (RFC 9112 5.1). */
            http_parse_fail(st, 400);
            return pos;
        }
        http_parse_name_end(st, p, pos);
        return pos + 1;

    case HTTP_PARSE_S_VALUE:
        pos = http_parse_span(http_parse_value, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (c == '\r' || c == '\n') {
            return http_parse_field_end(st, p, pos, stop);
        }
        http_parse_fail(st, 400);
        return pos;

    case HTTP_PARSE_S_CL_START:
        pos = http_parse_span_ows(p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (!http_parse_is_digit(c)) {
            /* Empty, signed, a list ("1, 1"): 1*DIGIT only. */
            http_parse_fail(st, 400);
            return pos;
        }
        http_parse_content_length_digit(st, c);
        st->state = HTTP_PARSE_S_CL_DIGITS;
        return pos + 1;

    case HTTP_PARSE_S_CL_DIGITS:
        while (pos < stop && http_parse_is_digit(p[pos])) {
            http_parse_content_length_digit(st, p[pos]);
            pos++;
        }
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (c == '\r' || c == '\n') {
            return http_parse_content_length_end(st, p, pos, stop);
        }
        if (http_parse_is_ows(c)) {
            st->state = HTTP_PARSE_S_CL_OWS;
            return pos + 1;
        }
        http_parse_fail(st, 400);
        return pos;

    case HTTP_PARSE_S_CL_OWS:
        pos = http_parse_span_ows(p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (c == '\r' || c == '\n') {
            return http_parse_content_length_end(st, p, pos, stop);
        }
        /* A digit after OWS is a second number: "1 2". */
        http_parse_fail(st, 400);
        return pos;

    case HTTP_PARSE_S_HOST:
        /* st->idx counts host bytes, to tell leading OWS from trailing;
         * an empty Host is allowed (RFC 9110 7.2).  The host class holds
         * neither OWS nor CR nor LF. */
        if (st->idx == 0) {
            pos = http_parse_span_ows(p, pos, stop);
        }
        from = pos;
        pos = http_parse_span(http_parse_host, p, pos, stop);
        st->idx += pos - from;
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (c == '\r' || c == '\n') {
            return http_parse_field_end(st, p, pos, stop);
        }
        if (http_parse_is_ows(c)) {
            /* Leading OWS went above, so this follows host bytes. */
            st->state = HTTP_PARSE_S_HOST_OWS;
            return pos + 1;
        }
        http_parse_fail(st, 400);
        return pos;

    case HTTP_PARSE_S_HOST_OWS:
        pos = http_parse_span_ows(p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (c == '\r' || c == '\n') {
            return http_parse_field_end(st, p, pos, stop);
        }
        /* "Host: a b". */
        http_parse_fail(st, 400);
        return pos;

    case HTTP_PARSE_S_CONN_ELEMENT:
        /* Empty list elements are allowed (RFC 9110 5.6.1). */
        while (pos < stop && (http_parse_is_ows(p[pos]) || p[pos] == ',')) {
            pos++;
        }
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (c == '\r' || c == '\n') {
            return http_parse_field_end(st, p, pos, stop);
        }
        if (!http_parse_tchar[c]) {
            http_parse_fail(st, 400);
            return pos;
        }
        st->mark = pos;
        st->state = HTTP_PARSE_S_CONN_TOKEN;
        return pos + 1;

    case HTTP_PARSE_S_CONN_TOKEN:
        pos = http_parse_span(http_parse_tchar, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (c != '\r' && c != '\n' && !http_parse_is_ows(c) && c != ',') {
            http_parse_fail(st, 400);
            return pos;
        }
        http_parse_conn_token_end(st, p, pos);
        if (c == '\r' || c == '\n') {
            return http_parse_field_end(st, p, pos, stop);
        }
        st->state = c == ',' ? HTTP_PARSE_S_CONN_ELEMENT
                             : HTTP_PARSE_S_CONN_OWS;
        return pos + 1;

    case HTTP_PARSE_S_CONN_OWS:
        pos = http_parse_span_ows(p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        c = p[pos];
        if (c == '\r' || c == '\n') {
            return http_parse_field_end(st, p, pos, stop);
        }
        if (c != ',') {
            /* Two tokens with no comma: "keep alive". */
            http_parse_fail(st, 400);
            return pos;
        }
        st->state = HTTP_PARSE_S_CONN_ELEMENT;
        return pos + 1;

    case HTTP_PARSE_S_FIELD_LF:
        if (p[pos] == '\n') {
            st->state = HTTP_PARSE_S_FIELD_START;
        } else {
            http_parse_fail(st, 400);
        }
        return pos + 1;

    case HTTP_PARSE_S_END_LF:
        if (p[pos] == '\n') {
            http_parse_head_end(st, pos);
        } else {
            http_parse_fail(st, 400);
        }
        return pos + 1;

    default:
        assert(!"http_parse_field_step: not a field-section state");
        http_parse_fail(st, 400);
        return pos;
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
    const unsigned char *p = (const unsigned char *) buf;
    /* Where the steps must stop: a byte at a limit is never read. */
    size_t line_stop = len < HTTP_PARSE_LINE_MAX ? len : HTTP_PARSE_LINE_MAX;
    size_t head_stop = len < HTTP_PARSE_HEAD_MAX ? len : HTTP_PARSE_HEAD_MAX;
    size_t pos = st->pos;

    /* The caller passes the same prefix plus more, never less. */
    assert(len >= pos || st->state >= HTTP_PARSE_S_DONE);

    /* Each pass runs the steps of one part of the head while they stay
     * in it and below its stop, so the limits are tested once a part,
     * not once a step. */
    while (st->state < HTTP_PARSE_S_DONE) {
        if (st->state < HTTP_PARSE_S_LINE_END && pos >= HTTP_PARSE_LINE_MAX) {
            /* Whatever comes next, the line is already too long. */
            http_parse_fail(st, 414);
            break;
        }
        if (st->state >= HTTP_PARSE_S_FIELD_START
            && pos >= HTTP_PARSE_HEAD_MAX) {
            http_parse_fail(st, 431);
            break;
        }
        if (pos >= len) {
            break;
        }
        if (st->state < HTTP_PARSE_S_LINE_END) {
            do {
                pos = http_parse_line_step(st, p, pos, line_stop);
            } while (pos < line_stop && st->state < HTTP_PARSE_S_LINE_END);
        } else if (st->state < HTTP_PARSE_S_FIELD_START) {
            do {
                pos = http_parse_line_step(st, p, pos, len);
            } while (pos < len && st->state >= HTTP_PARSE_S_LINE_END
                     && st->state < HTTP_PARSE_S_FIELD_START);
        } else {
            do {
                pos = http_parse_field_step(st, p, pos, head_stop);
            } while (pos < head_stop && st->state < HTTP_PARSE_S_DONE);
        }
    }
    st->pos = pos;
    return http_parse_result(st, req);
}

/* ---- chunked bodies ---------------------------------------------------
 *
 *   SIZE_FIRST --hex--> SIZE --';' SP HT--> EXT --CR--> SIZE_LF --LF--+
 *                         |                                           |
 *                         +--CR-----------------------> SIZE_LF       |
 *   size > 0: DATA (size bytes) -> DATA_CR -> DATA_LF -> SIZE_FIRST <-+
 *   size 0:   TRAILER_START --tchar--> TRAILER_NAME --':'--> TRAILER_VALUE
 *                  | CR                  --CR--> TRAILER_LF --LF--> back
 *                  v
 *               END_LF --LF--> DONE
 *
 * Every line ends in CRLF: a bare LF or CR is 400, as in the head, since
 * a front end that reads chunk framing differently is a smuggling
 * vector.  Extensions are checked only for their bytes (field-vchar, SP,
 * HT): we ignore them.  The whole body with its framing must fit in
 * HTTP_PARSE_BODY_MAX, checked before the byte at the limit is read, and
 * a chunk size over it is 413 at its digit.
 */
enum http_chunked_state {
    HTTP_CHUNKED_S_SIZE_FIRST = 0,
    HTTP_CHUNKED_S_SIZE,
    HTTP_CHUNKED_S_EXT,
    HTTP_CHUNKED_S_SIZE_LF,
    HTTP_CHUNKED_S_DATA,
    HTTP_CHUNKED_S_DATA_CR,
    HTTP_CHUNKED_S_DATA_LF,
    HTTP_CHUNKED_S_TRAILER_START,
    HTTP_CHUNKED_S_TRAILER_NAME,
    HTTP_CHUNKED_S_TRAILER_VALUE,
    HTTP_CHUNKED_S_TRAILER_LF,
    HTTP_CHUNKED_S_END_LF,
    HTTP_CHUNKED_S_DONE,
    HTTP_CHUNKED_S_ERROR
};

void
http_parse_chunked_init(struct http_chunked *st)
{
    memset(st, 0, sizeof(*st));
    st->state = HTTP_CHUNKED_S_SIZE_FIRST;
}

static void
http_chunked_fail(struct http_chunked *st, int status)
{
    st->state = HTTP_CHUNKED_S_ERROR;
    st->status = status;
}

/* One step from pos, which is below stop; returns the next position. */
static size_t
http_chunked_step(struct http_chunked *st, const unsigned char *p, size_t pos,
                  size_t stop)
{
    unsigned char c = p[pos];
    uint64_t      n;

    switch (st->state) {
    case HTTP_CHUNKED_S_SIZE_FIRST:
    case HTTP_CHUNKED_S_SIZE:
        if (http_parse_hex[c] >= 0) {
            /* Bounded before the multiply, as Content-Length is. */
            st->size = st->size * 16 + (uint64_t) http_parse_hex[c];
            if (st->size > HTTP_PARSE_BODY_MAX) {
                http_chunked_fail(st, 413);
            } else {
                st->state = HTTP_CHUNKED_S_SIZE;
            }
        } else if (st->state == HTTP_CHUNKED_S_SIZE
                   && (c == ';' || http_parse_is_ows(c))) {
            st->state = HTTP_CHUNKED_S_EXT;
        } else if (st->state == HTTP_CHUNKED_S_SIZE && c == '\r') {
            st->state = HTTP_CHUNKED_S_SIZE_LF;
        } else {
            http_chunked_fail(st, 400);
        }
        return pos + 1;

    case HTTP_CHUNKED_S_EXT:
    case HTTP_CHUNKED_S_TRAILER_VALUE:
        pos = http_parse_span(http_parse_value, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        if (p[pos] != '\r') {
            http_chunked_fail(st, 400);
            return pos;
        }
        st->state = st->state == HTTP_CHUNKED_S_EXT
                        ? HTTP_CHUNKED_S_SIZE_LF
                        : HTTP_CHUNKED_S_TRAILER_LF;
        return pos + 1;

    case HTTP_CHUNKED_S_SIZE_LF:
        if (c != '\n') {
            http_chunked_fail(st, 400);
        } else {
            st->state = st->size == 0 ? HTTP_CHUNKED_S_TRAILER_START
                                      : HTTP_CHUNKED_S_DATA;
        }
        return pos + 1;

    case HTTP_CHUNKED_S_DATA:
        n = stop - pos < st->size ? stop - pos : st->size;
        st->size -= n;
        if (st->size == 0) {
            st->state = HTTP_CHUNKED_S_DATA_CR;
        }
        return pos + (size_t) n;

    case HTTP_CHUNKED_S_DATA_CR:
    case HTTP_CHUNKED_S_DATA_LF:
        if (c != (st->state == HTTP_CHUNKED_S_DATA_CR ? '\r' : '\n')) {
            http_chunked_fail(st, 400);
        } else if (st->state == HTTP_CHUNKED_S_DATA_CR) {
            st->state = HTTP_CHUNKED_S_DATA_LF;
        } else {
            st->state = HTTP_CHUNKED_S_SIZE_FIRST;
        }
        return pos + 1;

    case HTTP_CHUNKED_S_TRAILER_START:
        if (c == '\r') {
            st->state = HTTP_CHUNKED_S_END_LF;
        } else if (http_parse_tchar[c]) {
            st->state = HTTP_CHUNKED_S_TRAILER_NAME;
        } else {
            http_chunked_fail(st, 400);
        }
        return pos + 1;

    case HTTP_CHUNKED_S_TRAILER_NAME:
        pos = http_parse_span(http_parse_tchar, p, pos, stop);
        if (pos == stop) {
            return pos;
        }
        if (p[pos] != ':') {
            http_chunked_fail(st, 400);
            return pos;
        }
        st->state = HTTP_CHUNKED_S_TRAILER_VALUE;
        return pos + 1;

    case HTTP_CHUNKED_S_TRAILER_LF:
    case HTTP_CHUNKED_S_END_LF:
        if (c != '\n') {
            http_chunked_fail(st, 400);
        } else if (st->state == HTTP_CHUNKED_S_TRAILER_LF) {
            st->state = HTTP_CHUNKED_S_TRAILER_START;
        } else {
            st->state = HTTP_CHUNKED_S_DONE;
            st->body_len = pos + 1;
        }
        return pos + 1;

    default:
        assert(!"http_chunked_step: not a chunked state");
        http_chunked_fail(st, 400);
        return pos;
    }
}

enum http_parse_rc
http_parse_chunked(struct http_chunked *st, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *) buf;
    size_t stop = len < HTTP_PARSE_BODY_MAX ? len : HTTP_PARSE_BODY_MAX;
    size_t pos = st->pos;

    while (st->state < HTTP_CHUNKED_S_DONE) {
        if (pos >= HTTP_PARSE_BODY_MAX) {
            http_chunked_fail(st, 413);
            break;
        }
        if (pos >= stop) {
            break;
        }
        pos = http_chunked_step(st, p, pos, stop);
    }
    st->pos = pos;
    if (st->state == HTTP_CHUNKED_S_DONE) {
        return HTTP_PARSE_DONE;
    }
    return st->state == HTTP_CHUNKED_S_ERROR ? HTTP_PARSE_ERROR
                                             : HTTP_PARSE_AGAIN;
}

ssize_t
http_parse_decode(const char *src, size_t src_len, char *dst)
{
    size_t i = 0;
    size_t n = 0;

    while (i < src_len) {
        unsigned char c = (unsigned char) src[i];
        int           hi, lo;

        if (c != '%') {
            dst[n++] = (char) c;
            i++;
            continue;
        }
        if (src_len - i < 3) {
            return -1;
        }
        hi = http_parse_hex[(unsigned char) src[i + 1]];
        lo = http_parse_hex[(unsigned char) src[i + 2]];
        if (hi < 0 || lo < 0) {
            return -1;
        }
        dst[n++] = (char) (hi << 4 | lo);
        i += 3;
    }
    return (ssize_t) n;
}
