/*
 * check_http_parser: the request-head grammar and percent-decoding.
 *
 * One table of requests, good and bad, each with the full expected
 * result.  Every row is run three ways, and all must agree with the row:
 * whole; fed again with every prefix (one byte more per call, and split
 * in two at every point); and copied flush against a PROT_NONE page, one
 * prefix at a time, so reading one byte past what the caller passed
 * crashes the test.  Inputs too long to write out (the 8 KiB and 16 KiB
 * limits) are a prefix, a piece repeated pad_n times and a suffix.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http_parser.h"

#define H "Host: x\r\n"
#define L1 "GET /k HTTP/1.1\r\n"

struct parse_case {
    const char        *pre;         /* the input, or its start */
    size_t             pre_len;     /* 0: strlen(pre); set for NULs */
    const char        *pad;         /* repeated pad_n times, or NULL */
    size_t             pad_n;
    const char        *post;        /* after the padding, or NULL */
    enum http_parse_rc rc;
    int                status;      /* on ERROR */
    enum http_method   method;      /* the rest on DONE only */
    unsigned           minor;
    const char        *path;        /* NULL: check path_len only */
    size_t             path_len;
    bool               keep_alive;
    bool               has_cl;
    uint64_t           cl;
    size_t             head_len;    /* 0: the whole input */
    bool               chunked;
    bool               expect;      /* expect_continue */
    const char        *inm;         /* If-None-Match's value as kept,
                                       NULL: none */
    bool               inm_many;
    bool               oic;         /* only_if_cached */
    const char        *im;          /* If-Match's value, NULL: none */
    bool               im_many;
    const char        *why;
};

#define BAD(in, st, w) \
    { .pre = (in), .rc = HTTP_PARSE_ERROR, .status = (st), .why = (w) }
/* For inputs holding a NUL: the literal's size gives the length. */
#define BADN(in, st, w) \
    { .pre = (in), .pre_len = sizeof(in) - 1, .rc = HTTP_PARSE_ERROR, \
      .status = (st), .why = (w) }
#define MORE(in, w) { .pre = (in), .rc = HTTP_PARSE_AGAIN, .why = (w) }
#define OK(in, m, mi, p, ka, w) \
    { .pre = (in), .rc = HTTP_PARSE_DONE, .method = (m), .minor = (mi), \
      .path = (p), .keep_alive = (ka), .why = (w) }
#define OK_TE(in, m, w) \
    { .pre = (in), .rc = HTTP_PARSE_DONE, .method = (m), .minor = 1, \
      .path = "/k", .keep_alive = true, .chunked = true, .why = (w) }
#define OK_EXPECT(in, mi, ex, w) \
    { .pre = (in), .rc = HTTP_PARSE_DONE, .method = HTTP_METHOD_GET, \
      .minor = (mi), .path = "/k", .keep_alive = (mi) == 1, \
      .expect = (ex), .why = (w) }
#define OK_INM(in, v, many, w) \
    { .pre = (in), .rc = HTTP_PARSE_DONE, .method = HTTP_METHOD_GET, \
      .minor = 1, .path = "/k", .keep_alive = true, .inm = (v), \
      .inm_many = (many), .why = (w) }
#define OK_OIC(in, oic_, w) \
    { .pre = (in), .rc = HTTP_PARSE_DONE, .method = HTTP_METHOD_GET, \
      .minor = 1, .path = "/k", .keep_alive = true, .oic = (oic_), \
      .why = (w) }
#define OK_IM(in, v, many, w) \
    { .pre = (in), .rc = HTTP_PARSE_DONE, .method = HTTP_METHOD_GET, \
      .minor = 1, .path = "/k", .keep_alive = true, .im = (v), \
      .im_many = (many), .why = (w) }
#define OK_CL(in, m, n, w) \
    { .pre = (in), .rc = HTTP_PARSE_DONE, .method = (m), .minor = 1, \
      .path = "/k", .keep_alive = true, .has_cl = true, .cl = (n), \
      .why = (w) }

static const struct parse_case parse_cases[] = {
    /* --- accepted ---------------------------------------------------- */
    OK(L1 H "\r\n", HTTP_METHOD_GET, 1, "/k", true, "plain GET"),
    OK("HEAD /k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_HEAD, 1, "/k", true,
       "HEAD"),
    OK("PUT /k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_PUT, 1, "/k", true,
       "PUT is recognised"),
    OK("DELETE /k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_DELETE, 1, "/k", true,
       "DELETE is recognised"),
    OK_CL("POST /k HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n",
          HTTP_METHOD_POST, 5, "POST with a body length"),
    OK("OPTIONS /k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_OTHER, 1, "/k", true,
       "another valid method is OTHER, for a 405"),
    OK("get /k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_OTHER, 1, "/k", true,
       "methods are case-sensitive"),
    OK("GE /k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_OTHER, 1, "/k", true,
       "a prefix of GET is not GET"),
    OK("GETS /k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_OTHER, 1, "/k", true,
       "GET plus a byte is not GET"),
    OK("M-SEARCH /k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_OTHER, 1, "/k",
       true, "method with tchar punctuation"),
    OK("GET /k HTTP/1.0\r\n\r\n", HTTP_METHOD_GET, 0, "/k", false,
       "HTTP/1.0 needs no Host and closes by default"),
    OK("GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", HTTP_METHOD_GET,
       0, "/k", true, "HTTP/1.0 asking for keep-alive"),
    OK("GET /k HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", HTTP_METHOD_GET,
       0, "/k", true, "Connection options are case-insensitive"),
    OK("GET /k HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
       HTTP_METHOD_GET, 0, "/k", false, "close wins over keep-alive"),
    OK(L1 H "Connection: close\r\n\r\n", HTTP_METHOD_GET, 1, "/k", false,
       "HTTP/1.1 with Connection: close"),
    OK(L1 H "connection: CLOSE\r\n\r\n", HTTP_METHOD_GET, 1, "/k", false,
       "name and option in any case"),
    OK(L1 H "Connection: upgrade,close\r\n\r\n", HTTP_METHOD_GET, 1, "/k",
       false, "close as the second option"),
    OK(L1 H "Connection: ,, close ,\t\r\n\r\n", HTTP_METHOD_GET, 1, "/k",
       false, "empty list elements and OWS around close"),
    OK(L1 H "Connection: keep-alive\r\nConnection: close\r\n\r\n",
       HTTP_METHOD_GET, 1, "/k", false, "options from two Connection lines"),
    OK(L1 H "Connection: closed\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "closed is not close"),
    OK(L1 H "Connection: clos\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "clos is not close"),
    OK(L1 H "Connection:\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "empty Connection"),
    OK("GET /k HTTP/1.9\r\n" H "\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "a later 1.x minor is handled as 1.1"),
    OK("\r\n\r\n" L1 H "\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "empty lines before the request line are skipped"),
    OK("GET /k?a=b&c HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "the query is not part of the path"),
    OK("GET /k?x=/y?z HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "'/' and '?' inside the query"),
    OK("GET /k? HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "empty query"),
    OK("GET / HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1, "/", true,
       "root path: the caller answers 400 for no key"),
    OK("GET /a%2Fb%00 HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1,
       "/a%2Fb%00", true, "escapes stay raw in the path"),
    OK("GET /%zz HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1, "/%zz", true,
       "escapes are checked by decode, not here"),
    OK("GET /a:b@c!$&'()*+,;=-._~/ HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET,
       1, "/a:b@c!$&'()*+,;=-._~/", true, "every pchar punctuation"),
    OK("GET /user|42\"{x}^`y HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1,
       "/user|42\"{x}^`y", true, "what nginx takes unescaped in a path"),
    OK("GET /k?a=|\"{}^` HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1, "/k",
       true, "and in a query"),
    OK("GET http://example.com/k?q HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET,
       1, "/k", true, "absolute-form: the path after the authority"),
    OK("GET HTTPS://[::1]:8080/k HTTP/1.1\r\n" H "\r\n", HTTP_METHOD_GET, 1,
       "/k", true, "absolute-form: scheme in upper case, IPv6 and port"),
    OK(L1 "Host: example.com:8080\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "Host with a port"),
    OK(L1 "Host: [::1]:80\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "Host as an IPv6 literal"),
    OK(L1 "Host:\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "an empty Host is allowed"),
    OK(L1 "Host: \t x \t\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "OWS around Host"),
    OK(L1 "hOsT:x\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "field names in any case, no OWS"),
    OK(L1 H "X: caf\xc3\xa9\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "obs-text in a value"),
    OK(L1 H "X: a\tb \"c\"\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "HT, SP and quotes in a value"),
    OK(L1 H "X-a_b!#$%&'*+-.^`|~: v\r\n\r\n", HTTP_METHOD_GET, 1, "/k",
       true, "every tchar in a field name"),
    OK(L1 H "Hostx: a b\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "Hostx is not Host"),
    OK(L1 H "Content-Lengthx: abc\r\n\r\n", HTTP_METHOD_GET, 1, "/k", true,
       "Content-Lengthx is not Content-Length"),
    OK(L1 H "Transfer-Encodings: chunked\r\n\r\n", HTTP_METHOD_GET, 1, "/k",
       true, "Transfer-Encodings is not Transfer-Encoding"),
    OK_CL(L1 H "Content-Length: 0\r\n\r\n", HTTP_METHOD_GET, 0,
          "Content-Length 0 on a GET"),
    OK_CL(L1 H "Content-Length: 65536\r\n\r\n", HTTP_METHOD_GET, 65536,
          "Content-Length at the limit"),
    OK_CL(L1 H "Content-Length: 000065536\r\n\r\n", HTTP_METHOD_GET, 65536,
          "leading zeros do not count toward the limit"),
    OK_CL(L1 H "Content-Length: 5\r\ncontent-length: 005\r\n\r\n",
          HTTP_METHOD_GET, 5, "duplicate Content-Length, same value"),
    OK_CL(L1 H "Content-Length: \t7 \t\r\n\r\n", HTTP_METHOD_GET, 7,
          "OWS around Content-Length"),
    OK_TE(L1 H "Transfer-Encoding: chunked\r\n\r\n", HTTP_METHOD_GET,
          "a chunked body on GET is read, to be skipped"),
    OK_TE("HEAD /k HTTP/1.1\r\n" H "transfer-encoding:  Chunked \t\r\n\r\n",
          HTTP_METHOD_HEAD, "chunked in any case, with OWS, on HEAD"),
    OK_TE("POST /k HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n",
          HTTP_METHOD_POST, "a chunked body on POST, for a 405"),
    OK_EXPECT(L1 H "Expect: 100-continue\r\n\r\n", 1, true,
              "Expect: 100-continue"),
    OK_INM(L1 H "If-None-Match: \"a\", W/\"b\"\r\n\r\n",
           " \"a\", W/\"b\"", false, "If-None-Match kept as sent"),
    OK_INM(L1 "if-none-match:*\r\n" H "\r\n", "*", false,
           "If-None-Match in any case, before Host"),
    OK_INM(L1 H "If-None-Match: \"a\"\r\nIf-None-Match: \"b\"\r\n\r\n",
           NULL, true, "two If-None-Match lines: not evaluated"),
    OK_INM(L1 H "If-None-Match-X: \"a\"\r\n\r\n", NULL, false,
           "a longer name is another field"),
    BAD(L1 H "If-None-Match: \"a\x01\"\r\n\r\n", 400,
        "a CTL in If-None-Match"),
    OK_IM(L1 H "If-Match: \"a\", W/\"b\"\r\n\r\n", " \"a\", W/\"b\"",
          false, "If-Match kept as sent"),
    OK_IM(L1 "if-match:*\r\n" H "\r\n", "*", false,
          "If-Match in any case, before Host"),
    OK_IM(L1 H "If-Match: \"a\"\r\nIf-Match: \"b\"\r\n\r\n", NULL, true,
          "two If-Match lines: not evaluated"),
    OK_IM(L1 H "If-Matcx: \"a\"\r\n\r\n", NULL, false,
          "another name of If-Match's length"),
    OK_OIC(L1 H "Cache-Control: only-if-cached\r\n\r\n", true,
           "Cache-Control: only-if-cached"),
    OK_OIC(L1 "cache-control: max-age=0,\tOnly-If-Cached \r\n" H "\r\n",
           true, "a directive in a list, in any case, before Host"),
    OK_OIC(L1 H "Cache-Control: no-cache\r\nCache-Control: only-if-cached"
           "\r\n\r\n", true, "two Cache-Control lines are one list"),
    OK_OIC(L1 H "Cache-Control: only-if-cached=1\r\n\r\n", true,
           "the directive with an argument"),
    OK_OIC(L1 H "Cache-Control: no-cache=\"only-if-cached\"\r\n\r\n",
           false, "the word inside a quoted argument"),
    OK_OIC(L1 H "Cache-Control: x=\"a\\\",only-if-cached\"\r\n\r\n",
           false, "a comma after an escaped quote is still quoted"),
    OK_OIC(L1 H "Cache-Control: x=\"a\", only-if-cached\r\n\r\n", true,
           "the directive after a quoted argument"),
    OK_OIC(L1 H "Cache-Control: only-if-cachedx, xonly-if-cached\r\n\r\n",
           false, "longer words are other directives"),
    OK_OIC(L1 H "Cache-Control: \"only-if-cached\"\r\n\r\n", false,
           "a quoted string is not a directive name"),
    OK_OIC(L1 H "Cache-Controls: only-if-cached\r\n\r\n", false,
           "Cache-Controls is not Cache-Control"),
    OK_OIC(L1 H "If-None-Matcx: only-if-cached\r\n\r\n", false,
           "another name of Cache-Control's length"),
    OK_EXPECT(L1 H "expect: \t100-Continue \r\n\r\n", 1, true,
              "Expect in any case, with OWS"),
    OK_EXPECT("GET /k HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, false,
              "an HTTP/1.0 client's expectation is ignored"),
    OK_EXPECT(L1 H "Expect: 100-continuex\r\n\r\n", 1, false,
              "another expectation is ignored"),
    OK_EXPECT(L1 H "Expects: 100-continue\r\n\r\n", 1, false,
              "Expects is not Expect"),
    { .pre = L1 H "\r\nGET /b HTTP/1.1\r\n" H "\r\n",
      .rc = HTTP_PARSE_DONE, .method = HTTP_METHOD_GET, .minor = 1,
      .path = "/k", .keep_alive = true, .head_len = sizeof(L1 H "\r\n") - 1,
      .why = "pipelined: head_len stops before the next request" },
    { .pre = "POST /k HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhelloGET",
      .rc = HTTP_PARSE_DONE, .method = HTTP_METHOD_POST, .minor = 1,
      .path = "/k", .keep_alive = true, .has_cl = true, .cl = 5,
      .head_len = sizeof("POST /k HTTP/1.1\r\n" H
                         "Content-Length: 5\r\n\r\n") - 1,
      .why = "pipelined: head_len stops before the body" },
    { .pre = "GET /", .pad = "a", .pad_n = 8178,
      .post = " HTTP/1.1\r\n" H "\r\n", .rc = HTTP_PARSE_DONE,
      .method = HTTP_METHOD_GET, .minor = 1, .path_len = 8179,
      .keep_alive = true, .head_len = 8192 + 2 + 9 + 2,
      .why = "request line of exactly 8 KiB" },
    { .pre = L1 H "X: ", .pad = "v", .pad_n = 16351, .post = "\r\n\r\n",
      .rc = HTTP_PARSE_DONE, .method = HTTP_METHOD_GET, .minor = 1,
      .path = "/k", .keep_alive = true, .head_len = HTTP_PARSE_HEAD_MAX,
      .why = "head of exactly 16 KiB" },
    { .pre = "", .pad = "\r\n", .pad_n = 4000, .post = L1 H "\r\n",
      .rc = HTTP_PARSE_DONE, .method = HTTP_METHOD_GET, .minor = 1,
      .path = "/k", .keep_alive = true,
      .why = "4000 empty lines, then a short request line" },

    /* --- incomplete -------------------------------------------------- */
    MORE("G", "one byte of a method"),
    MORE("\r\n\r\n", "only empty lines so far"),
    MORE(L1 H, "no empty line yet"),
    MORE(L1 H "\r", "CR of the final empty line"),
    MORE("GET /k HTTP/1.1", "request line without its end"),

    /* --- 400: request line ------------------------------------------- */
    BAD(" GET /k HTTP/1.1\r\n" H "\r\n", 400, "space before the method"),
    BAD("G@T /k HTTP/1.1\r\n" H "\r\n", 400, "'@' in the method"),
    BADN("GE\0T /k HTTP/1.1\r\n" H "\r\n", 400, "NUL in the method"),
    BAD("GET  /k HTTP/1.1\r\n" H "\r\n", 400, "two spaces after the method"),
    BAD("GET\t/k HTTP/1.1\r\n" H "\r\n", 400, "HT instead of SP"),
    BAD("GET /k  HTTP/1.1\r\n" H "\r\n", 400, "two spaces before version"),
    BAD("GET * HTTP/1.1\r\n" H "\r\n", 400, "asterisk-form"),
    BAD("CONNECT example.com:443 HTTP/1.1\r\n" H "\r\n", 400,
        "authority-form"),
    BAD("GET k HTTP/1.1\r\n" H "\r\n", 400, "target without a '/'"),
    BAD("GET ftp://x/k HTTP/1.1\r\n" H "\r\n", 400, "a scheme not http"),
    BAD("GET httpx://x/k HTTP/1.1\r\n" H "\r\n", 400, "scheme httpx"),
    BAD("GET http:/x/k HTTP/1.1\r\n" H "\r\n", 400, "one slash after http:"),
    BAD("GET http:///k HTTP/1.1\r\n" H "\r\n", 400, "empty authority"),
    BAD("GET http://x HTTP/1.1\r\n" H "\r\n", 400,
        "absolute-form without a path"),
    BAD("GET http://u@x/k HTTP/1.1\r\n" H "\r\n", 400, "userinfo"),
    BAD("GET /k#f HTTP/1.1\r\n" H "\r\n", 400, "fragment in the target"),
    BAD("GET /k<x HTTP/1.1\r\n" H "\r\n", 400, "'<' in the path"),
    BAD("GET /k\\x HTTP/1.1\r\n" H "\r\n", 400, "backslash in the path"),
    BAD("GET /k?a<b HTTP/1.1\r\n" H "\r\n", 400, "'<' in the query"),
    BAD("GET /a b HTTP/1.1\r\n" H "\r\n", 400, "space inside the target"),
    BAD("GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 400,
        "raw non-ASCII in the path"),
    BADN("GET /k\0 HTTP/1.1\r\n" H "\r\n", 400, "NUL in the path"),
    BAD("GET /k\x7f HTTP/1.1\r\n" H "\r\n", 400, "DEL in the path"),
    BAD("GET /k\r\n\r\n", 400, "HTTP/0.9 style: no version"),
    BAD("GET /k http/1.1\r\n" H "\r\n", 400, "HTTP-name is case-sensitive"),
    BAD("GET /k HTTP/1.1 \r\n" H "\r\n", 400, "space after the version"),
    BAD("GET /k HTTP/1.10\r\n" H "\r\n", 400, "two-digit minor"),
    BAD("GET /k HTTP/11.1\r\n" H "\r\n", 400, "two-digit major"),
    BAD("GET /k HTTP/1\r\n" H "\r\n", 400, "version without a minor"),
    BAD("GET /k HTTP/1.x\r\n" H "\r\n", 400, "letter as the minor"),
    BAD("GET /k HTTP/2.0x\r\n" H "\r\n", 400,
        "garbage after a 2.0 version is 400, not 505"),
    BAD("\rGET /k HTTP/1.1\r\n" H "\r\n", 400, "bare CR before the line"),
    BAD("GET /k HTTP/1.1\rHost: x\r\n\r\n", 400,
        "bare CR ending the request line"),
    BAD("\n" L1 H "\r\n", 400,
        "a bare LF empty line before the request line"),
    BAD("GET /k HTTP/1.1\nHost: x\n\n", 400,
        "bare LF line endings throughout"),
    BAD("GET /k HTTP/1.1\n" H "\r\n", 400, "bare LF ending the request line"),
    BAD("GET /k HTTP/3.1\n", 400, "bare LF after a version we do not speak"),

    /* --- 400: fields ------------------------------------------------- */
    BAD(L1 " Host: x\r\n\r\n", 400, "whitespace before the first field"),
    BAD(L1 H "X: a\r\n b\r\n\r\n", 400, "obs-fold with SP"),
    BAD(L1 H "X: a\r\n\tb\r\n\r\n", 400, "obs-fold with HT"),
    BAD(L1 "Host : x\r\n\r\n", 400, "space before the colon"),
    BAD(L1 H ": x\r\n\r\n", 400, "empty field name"),
    BAD(L1 H "X(: y\r\n\r\n", 400, "'(' in a field name"),
    BAD(L1 H "NoColon\r\n\r\n", 400, "field line without a colon"),
    BAD(L1 H "X: a\rb\r\n\r\n", 400, "bare CR in a value"),
    BADN(L1 H "X: a\0b\r\n\r\n", 400, "NUL in a value"),
    BAD(L1 H "X: a\x01" "b\r\n\r\n", 400, "control byte in a value"),
    BAD(L1 H "X: a\x7f\r\n\r\n", 400, "DEL in a value"),
    BAD(L1 H "\rX", 400, "bare CR where the head should end"),
    BAD(L1 "Host: x\n\r\n", 400, "bare LF ending Host"),
    BAD(L1 H "X: y\n\r\n", 400, "bare LF ending a field"),
    BAD(L1 H "\n", 400, "bare LF ending the head"),
    BAD(L1 H "Content-Length: 0\n\r\n", 400,
        "bare LF ending Content-Length"),
    BAD(L1 H "Connection: close\n\r\n", 400, "bare LF ending Connection"),
    BAD(L1 H "Transfer-Encoding: chunked\n\r\n", 400,
        "bare LF ending Transfer-Encoding"),
    BAD(L1 H "Expect: 100-continue\n\r\n", 400, "bare LF ending Expect"),
    BAD(L1 "\r\n", 400, "HTTP/1.1 without Host"),
    BAD(L1 H "Host: y\r\n\r\n", 400, "two Host fields"),
    BAD(L1 "Host: a b\r\n\r\n", 400, "space inside Host"),
    BAD(L1 "Host: u@x\r\n\r\n", 400, "userinfo in Host"),
    BAD(L1 "Host: x/y\r\n\r\n", 400, "'/' in Host"),
    BAD(L1 H "Content-Length: abc\r\n\r\n", 400, "Content-Length letters"),
    BAD(L1 H "Content-Length: -1\r\n\r\n", 400, "negative Content-Length"),
    BAD(L1 H "Content-Length: +5\r\n\r\n", 400, "signed Content-Length"),
    BAD(L1 H "Content-Length: \r\n\r\n", 400, "empty Content-Length"),
    BAD(L1 H "Content-Length: 5, 5\r\n\r\n", 400, "Content-Length list"),
    BAD(L1 H "Content-Length: 5 5\r\n\r\n", 400, "two numbers"),
    BAD(L1 H "Content-Length: 0x10\r\n\r\n", 400, "hex Content-Length"),
    BAD(L1 H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400,
        "Content-Lengths that differ"),
    BAD(L1 H "Content-Length: 5\r\nContent-Length: 65537\r\n\r\n", 400,
        "Content-Lengths that differ, one over the limit"),
    BAD(L1 H "Transfer-Encoding: gzip\r\n\r\n", 400,
        "a coding other than chunked on GET"),
    BAD(L1 H "Transfer-Encoding: chunked, chunked\r\n\r\n", 400,
        "chunked twice in one line"),
    BAD(L1 H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        "\r\n", 400, "chunked in two Transfer-Encoding lines"),
    BAD(L1 H "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
        "\r\n", 400, "chunked not the last coding"),
    BAD(L1 H "Transfer-Encoding: xchunked\r\n\r\n", 400,
        "xchunked is not chunked"),
    BAD("POST /k HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
        "Content-Length: 5\r\n\r\n", 400,
        "Transfer-Encoding with Content-Length"),
    BAD("POST /k HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "Transfer-Encoding in HTTP/1.0"),
    BAD(L1 H "Connection: close;\r\n\r\n", 400, "';' in Connection"),
    BAD(L1 H "Connection: keep alive\r\n\r\n", 400,
        "two Connection tokens without a comma"),
    BAD(L1 H "Connection: \"close\"\r\n\r\n", 400,
        "quoted Connection option"),

    /* --- 413, 414, 431, 501, 505 ------------------------------------- */
    BAD(L1 H "Content-Length: 65537\r\n\r\n", 413,
        "Content-Length one over the limit"),
    BAD(L1 H "Content-Length: 18446744073709551616\r\n\r\n", 413,
        "Content-Length of 2^64 does not wrap"),
    BAD(L1 H "Content-Length: 99999999999999999999999999999\r\n"
        "Content-Length: 70000\r\n\r\n", 413,
        "two lengths both over the limit"),
    { .pre = "GET /", .pad = "a", .pad_n = 8179,
      .post = " HTTP/1.1\r\n" H "\r\n", .rc = HTTP_PARSE_ERROR,
      .status = 414, .why = "request line of 8 KiB + 1" },
    { .pre = "GET /", .pad = "a", .pad_n = 9000, .rc = HTTP_PARSE_ERROR,
      .status = 414, .why = "414 without waiting for the line's end" },
    { .pre = "", .pad = "A", .pad_n = 9000, .rc = HTTP_PARSE_ERROR,
      .status = 414, .why = "an endless method" },
    { .pre = "", .pad = "\r\n", .pad_n = 4096, .post = L1 H "\r\n",
      .rc = HTTP_PARSE_ERROR, .status = 414,
      .why = "8 KiB of empty lines count toward the line limit" },
    { .pre = L1 H "X: ", .pad = "v", .pad_n = 16352, .post = "\r\n\r\n",
      .rc = HTTP_PARSE_ERROR, .status = 431, .why = "head of 16 KiB + 1" },
    { .pre = L1 H, .pad = "X: y\r\n", .pad_n = 3000, .rc = HTTP_PARSE_ERROR,
      .status = 431, .why = "431 without waiting for the head's end" },
    BAD("PUT /k HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n",
        501, "a coding we cannot read on PUT"),
    BAD("PATCH /k HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 501,
        "a coding we cannot read on another method"),
    BAD("GET /k HTTP/2.0\r\n" H "\r\n", 505, "HTTP/2.0"),
    BAD("GET /k HTTP/0.9\r\n\r\n", 505, "HTTP/0.9 with a version"),
    BAD("GET /k HTTP/3.1\r\n", 505, "505 as soon as the line ends"),
};

#define N_PARSE_CASES (sizeof(parse_cases) / sizeof(parse_cases[0]))

/* Builds a row's input; the caller frees it. */
static char *
case_input(const struct parse_case *c, size_t *len_out)
{
    size_t pre_len = c->pre_len != 0 ? c->pre_len : strlen(c->pre);
    size_t pad_len = c->pad != NULL ? strlen(c->pad) : 0;
    size_t post_len = c->post != NULL ? strlen(c->post) : 0;
    size_t len = pre_len + pad_len * c->pad_n + post_len;
    char *buf = malloc(len + 1);
    char *p = buf;

    ck_assert_ptr_nonnull(buf);
    memcpy(p, c->pre, pre_len);
    p += pre_len;
    for (size_t i = 0; i < c->pad_n; i++) {
        memcpy(p, c->pad, pad_len);
        p += pad_len;
    }
    if (post_len > 0) {
        memcpy(p, c->post, post_len);
    }
    *len_out = len;
    return buf;
}

static void
check_row(const struct parse_case *c, const char *buf, size_t len,
          enum http_parse_rc rc, const struct http_request *req,
          const char *how)
{
    size_t head_len = c->head_len != 0 ? c->head_len : len;

    ck_assert_msg(rc == c->rc, "%s (%s): rc %d, want %d (status %d)",
                  c->why, how, rc, c->rc, req->status);
    if (rc == HTTP_PARSE_ERROR) {
        ck_assert_msg(req->status == c->status, "%s (%s): status %d, want %d",
                      c->why, how, req->status, c->status);
    }
    if (rc != HTTP_PARSE_DONE) {
        return;
    }
    ck_assert_msg(req->status == 0, "%s (%s): status on DONE", c->why, how);
    ck_assert_msg(req->method == c->method, "%s (%s): method %d, want %d",
                  c->why, how, req->method, c->method);
    ck_assert_msg(req->version_minor == c->minor, "%s (%s): minor %u",
                  c->why, how, req->version_minor);
    ck_assert_msg(req->keep_alive == c->keep_alive, "%s (%s): keep_alive",
                  c->why, how);
    ck_assert_msg(req->has_content_length == c->has_cl,
                  "%s (%s): has_content_length", c->why, how);
    ck_assert_msg(req->content_length == c->cl,
                  "%s (%s): content_length %llu", c->why, how,
                  (unsigned long long)req->content_length);
    ck_assert_msg(req->head_len == head_len, "%s (%s): head_len %zu, want %zu",
                  c->why, how, req->head_len, head_len);
    ck_assert_msg(req->chunked == c->chunked, "%s (%s): chunked", c->why,
                  how);
    ck_assert_msg(req->expect_continue == c->expect, "%s (%s): expect",
                  c->why, how);
    ck_assert_msg(req->inm_many == c->inm_many, "%s (%s): inm_many", c->why,
                  how);
    ck_assert_msg(req->only_if_cached == c->oic, "%s (%s): only_if_cached",
                  c->why, how);
    ck_assert_msg(req->im_many == c->im_many, "%s (%s): im_many", c->why,
                  how);
    if (c->im != NULL) {
        ck_assert_msg(req->im_len == strlen(c->im)
                      && memcmp(buf + req->im_off, c->im, req->im_len) == 0,
                      "%s (%s): If-Match '%.*s'", c->why, how,
                      (int)req->im_len, buf + req->im_off);
    } else {
        ck_assert_msg(req->im_len == 0, "%s (%s): If-Match", c->why, how);
    }
    if (c->inm != NULL) {
        ck_assert_msg(req->inm_len == strlen(c->inm)
                      && memcmp(buf + req->inm_off, c->inm, req->inm_len)
                         == 0, "%s (%s): If-None-Match '%.*s'", c->why,
                      how, (int)req->inm_len, buf + req->inm_off);
    } else {
        ck_assert_msg(req->inm_len == 0, "%s (%s): If-None-Match", c->why,
                      how);
    }
    if (c->path != NULL) {
        ck_assert_msg(req->path_len == strlen(c->path)
                      && memcmp(buf + req->path_off, c->path,
                                req->path_len) == 0,
                      "%s (%s): path '%.*s', want '%s'", c->why, how,
                      (int)req->path_len, buf + req->path_off, c->path);
    } else {
        ck_assert_msg(req->path_len == c->path_len,
                      "%s (%s): path_len %zu", c->why, how, req->path_len);
    }
    /* The offsets nest: method, then the target holding the path. */
    ck_assert(req->method_len > 0);
    ck_assert(req->method_off + req->method_len < req->target_off);
    ck_assert(req->target_off <= req->path_off);
    ck_assert(req->path_off + req->path_len
              <= req->target_off + req->target_len);
    ck_assert(req->target_off + req->target_len < req->head_len);
    ck_assert(buf[req->path_off] == '/');
    ck_assert(buf[req->method_off + req->method_len] == ' ');
    ck_assert(buf[req->target_off + req->target_len] == ' ');
}

START_TEST(test_parse_whole)
{
    const struct parse_case *c = &parse_cases[_i];
    struct http_parse st;
    struct http_request req;
    size_t len;
    char *buf = case_input(c, &len);

    http_parse_init(&st);
    check_row(c, buf, len, http_parse_request(&st, buf, len, &req), &req,
              "whole");
    free(buf);
}
END_TEST

/* Feeds prefixes 1, 2, ... len to one st, stopping at DONE or ERROR. */
START_TEST(test_parse_bytewise)
{
    const struct parse_case *c = &parse_cases[_i];
    struct http_parse st;
    struct http_request req;
    enum http_parse_rc rc = HTTP_PARSE_AGAIN;
    size_t len;
    char *buf = case_input(c, &len);

    http_parse_init(&st);
    for (size_t n = 1; n <= len && rc == HTTP_PARSE_AGAIN; n++) {
        rc = http_parse_request(&st, buf, n, &req);
    }
    check_row(c, buf, len, rc, &req, "bytewise");
    free(buf);
}
END_TEST

/*
 * Every split: the first n bytes, then the whole input.  The state after
 * n bytes is carried forward one byte per round and copied for the
 * second call, so the prefix is not parsed again for each n.  Once the
 * first call alone decides, every longer prefix would too.
 */
START_TEST(test_parse_split)
{
    const struct parse_case *c = &parse_cases[_i];
    struct http_parse prefix;
    struct http_request req;
    enum http_parse_rc rc = HTTP_PARSE_AGAIN;
    size_t len;
    char *buf = case_input(c, &len);

    http_parse_init(&prefix);
    for (size_t n = 0; n <= len && rc == HTTP_PARSE_AGAIN; n++) {
        struct http_parse st;

        rc = http_parse_request(&prefix, buf, n, &req);
        st = prefix;
        if (rc == HTTP_PARSE_AGAIN) {
            check_row(c, buf, len, http_parse_request(&st, buf, len, &req),
                      &req, "split");
        } else {
            check_row(c, buf, len, rc, &req, "split, decided early");
        }
    }
    free(buf);
}
END_TEST

/*
 * Each prefix is copied so it ends at a PROT_NONE page, and parsed with
 * the same st: a read of buf[n] faults.  Offsets only, so the moving
 * buffer is fine.
 */
START_TEST(test_parse_guard_page)
{
    const struct parse_case *c = &parse_cases[_i];
    struct http_parse st;
    struct http_request req;
    enum http_parse_rc rc = HTTP_PARSE_AGAIN;
    long page = sysconf(_SC_PAGESIZE);
    size_t len, map_len, data_len;
    char *buf = case_input(c, &len);
    char *map;

    ck_assert_int_gt(page, 0);
    data_len = (len / (size_t)page + 1) * (size_t)page;
    map_len = data_len + (size_t)page;
    map = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + data_len, (size_t)page, PROT_NONE), 0);

    http_parse_init(&st);
    for (size_t n = 1; n <= len && rc == HTTP_PARSE_AGAIN; n++) {
        char *at = map + data_len - n;

        memcpy(at, buf, n);
        rc = http_parse_request(&st, at, n, &req);
        if (rc != HTTP_PARSE_AGAIN) {
            check_row(c, at, len, rc, &req, "guard page");
        }
    }
    if (rc == HTTP_PARSE_AGAIN) {
        check_row(c, buf, len, rc, &req, "guard page");
    }
    ck_assert_int_eq(munmap(map, map_len), 0);
    free(buf);
}
END_TEST

/* A call after DONE or ERROR answers the same, with more bytes or not. */
START_TEST(test_parse_sticky)
{
    static const char ok[] = L1 H "\r\nGET /b HTTP/1.1\r\n";
    static const char bad[] = "GET /k HTTP/2.0\r\nmore";
    struct http_parse st;
    struct http_request req;

    http_parse_init(&st);
    ck_assert_int_eq(http_parse_request(&st, ok, sizeof(L1 H "\r\n") - 1,
                                        &req), HTTP_PARSE_DONE);
    ck_assert_int_eq(http_parse_request(&st, ok, sizeof(ok) - 1, &req),
                     HTTP_PARSE_DONE);
    ck_assert_uint_eq(req.head_len, sizeof(L1 H "\r\n") - 1);

    http_parse_init(&st);
    ck_assert_int_eq(http_parse_request(&st, bad, 17, &req),
                     HTTP_PARSE_ERROR);
    ck_assert_int_eq(http_parse_request(&st, bad, sizeof(bad) - 1, &req),
                     HTTP_PARSE_ERROR);
    ck_assert_int_eq(req.status, 505);
}
END_TEST

/* Three requests back to back, each parsed from where the last ended. */
START_TEST(test_parse_pipeline)
{
    static const char in[] =
        "GET /a HTTP/1.1\r\n" H "\r\n"
        "POST /b HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nxyz"
        "HEAD /c HTTP/1.0\r\n\r\n";
    static const char *const paths[] = { "/a", "/b", "/c" };
    static const enum http_method methods[] = {
        HTTP_METHOD_GET, HTTP_METHOD_POST, HTTP_METHOD_HEAD
    };
    size_t off = 0;

    for (size_t i = 0; i < 3; i++) {
        struct http_parse st;
        struct http_request req;
        const char *at = in + off;

        http_parse_init(&st);
        ck_assert_int_eq(http_parse_request(&st, at, sizeof(in) - 1 - off,
                                            &req), HTTP_PARSE_DONE);
        ck_assert_int_eq(req.method, methods[i]);
        ck_assert_uint_eq(req.path_len, 2);
        ck_assert(memcmp(at + req.path_off, paths[i], 2) == 0);
        off += req.head_len + req.content_length;
    }
    ck_assert_uint_eq(off, sizeof(in) - 1);
}
END_TEST

/*
 * Each byte in a method, a field name, a field value, the path and the
 * query, against the RFC's own lists: the tables must say the same.
 */
static const char rfc_tchar[] =
    "!#$%&'*+-.^_`|~0123456789"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char rfc_pchar[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    "-._~" "%" "!$&'()*+,;=" ":@";
/* Not pchar, but nginx takes them unescaped in a path, and so do we. */
static const char nginx_path_extra[] = "\"^`{|}";

static bool
in_set(const char *set, unsigned char c)
{
    return c != 0 && strchr(set, c) != NULL;
}

static enum http_parse_rc
parse_with_byte(const char *fmt_before, const char *after, unsigned char c)
{
    char buf[128];
    size_t n = strlen(fmt_before);
    size_t m = strlen(after);
    struct http_parse st;
    struct http_request req;

    memcpy(buf, fmt_before, n);
    buf[n] = (char)c;
    memcpy(buf + n + 1, after, m);
    http_parse_init(&st);
    return http_parse_request(&st, buf, n + 1 + m, &req);
}

START_TEST(test_char_classes)
{
    unsigned char c = (unsigned char)_i;
    bool tchar = in_set(rfc_tchar, c);
    bool vchar = (c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' '
        || c == '\t';
    bool pchar = in_set(rfc_pchar, c) || c == '/'
        || in_set(nginx_path_extra, c);
    bool qchar = pchar || c == '?';
    bool ok;

    /* In a method: the method is then OTHER, or 400. */
    ok = parse_with_byte("G", "T /k HTTP/1.1\r\n" H "\r\n", c)
        == HTTP_PARSE_DONE;
    ck_assert_msg(ok == tchar, "byte 0x%02x in a method", c);
    /* "X:: v" is the field X with the value ": v". */
    ok = parse_with_byte(L1 H "X", ": v\r\n\r\n", c) == HTTP_PARSE_DONE;
    ck_assert_msg(ok == (tchar || c == ':'), "byte 0x%02x in a field name",
                  c);
    if (c != '\r' && c != '\n') {
        ok = parse_with_byte(L1 H "X: a", "b\r\n\r\n", c)
            == HTTP_PARSE_DONE;
        ck_assert_msg(ok == vchar, "byte 0x%02x in a value", c);
    }
    /* '?' ends the path and ' ' the target: both still parse. */
    ok = parse_with_byte("GET /a", "b HTTP/1.1\r\n" H "\r\n", c)
        == HTTP_PARSE_DONE;
    ck_assert_msg(ok == (pchar || c == '?'), "byte 0x%02x in a path", c);
    ok = parse_with_byte("GET /k?a", "b HTTP/1.1\r\n" H "\r\n", c)
        == HTTP_PARSE_DONE;
    ck_assert_msg(ok == qchar, "byte 0x%02x in a query", c);
}
END_TEST

/* --- decode ------------------------------------------------------------ */

struct decode_case {
    const char *in;
    ssize_t     want_len;       /* -1: bad escape */
    const char *want;
    const char *why;
};

static const struct decode_case decode_cases[] = {
    { "", 0, "", "empty" },
    { "key", 3, "key", "nothing to decode" },
    { "a%20b", 3, "a b", "an escaped space" },
    { "a%2Fb%2f", 4, "a/b/", "%2F decodes to '/' in either case" },
    { "%00", 1, "\0", "%00 decodes to a NUL byte" },
    { "%ff%FF%fF", 3, "\xff\xff\xff", "hex digits in any case" },
    { "%41%62", 2, "Ab", "letters" },
    { "a+b", 3, "a+b", "'+' is not a space" },
    { "%25", 1, "%", "an escaped '%'" },
    { "%2525", 3, "%25", "decoded once, not twice" },
    { "%", -1, NULL, "'%' at the end" },
    { "%4", -1, NULL, "one hex digit at the end" },
    { "%zz", -1, NULL, "not hex" },
    { "%4g", -1, NULL, "second digit not hex" },
    { "%g4", -1, NULL, "first digit not hex" },
    { "ok%", -1, NULL, "'%' at the end after good bytes" },
    { "%%41", -1, NULL, "'%' is not a hex digit" },
    { "% 41", -1, NULL, "space is not a hex digit" },
};

#define N_DECODE_CASES (sizeof(decode_cases) / sizeof(decode_cases[0]))

START_TEST(test_decode)
{
    const struct decode_case *c = &decode_cases[_i];
    size_t in_len = strlen(c->in);
    char *in = malloc(in_len + 2);
    char *dst = malloc(in_len + 1);
    ssize_t n;

    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(dst);
    /* Hex digits just past src_len: a decoder that reads past the end
     * completes "%4" into a good escape and fails the case. */
    memcpy(in, c->in, in_len);
    in[in_len] = '1';
    in[in_len + 1] = '1';
    n = http_parse_decode(in, in_len, dst);
    ck_assert_msg(n == c->want_len, "%s: got %zd, want %zd", c->why, n,
                  c->want_len);
    if (n >= 0) {
        ck_assert_msg(memcmp(dst, c->want, (size_t)n) == 0, "%s", c->why);
        /* In place gives the same bytes: dst may be src. */
        ck_assert_int_eq(http_parse_decode(in, in_len, in), n);
        ck_assert_msg(memcmp(in, c->want, (size_t)n) == 0, "%s in place",
                      c->why);
    }
    free(dst);
    free(in);
}
END_TEST

/* --- chunked bodies ---------------------------------------------------- */

struct chunked_case {
    const char        *pre;
    const char        *pad;         /* repeated pad_n times, or NULL */
    size_t             pad_n;
    const char        *post;
    enum http_parse_rc rc;
    int                status;      /* on ERROR */
    size_t             body_len;    /* on DONE; 0: the whole input */
    const char        *why;
};

#define CH_OK(in, w) { .pre = (in), .rc = HTTP_PARSE_DONE, .why = (w) }
#define CH_BAD(in, st, w) \
    { .pre = (in), .rc = HTTP_PARSE_ERROR, .status = (st), .why = (w) }
#define CH_MORE(in, w) { .pre = (in), .rc = HTTP_PARSE_AGAIN, .why = (w) }

static const struct chunked_case chunked_cases[] = {
    CH_OK("0\r\n\r\n", "only the last chunk"),
    CH_OK("5\r\nhello\r\n0\r\n\r\n", "one chunk"),
    CH_OK("3\r\nabc\r\nA\r\n0123456789\r\n000\r\n\r\n",
          "two chunks, hex in upper case, a last chunk of zeros"),
    CH_OK("a\r\n\r\n\r\n\r\n\r\n\r\n\r\n0\r\n\r\n", "CR and LF inside data"),
    CH_OK("5;name=value;x\r\nhello\r\n0;y=\"q\"\r\n\r\n", "extensions"),
    CH_OK("5 ;a\r\nhello\r\n0\r\n\r\n", "whitespace before an extension"),
    CH_OK("0\r\nX-Trailer: v\r\nY: \r\n\r\n", "trailer fields"),
    { .pre = "1\r\nx\r\n0\r\n\r\nGET /next", .rc = HTTP_PARSE_DONE,
      .body_len = sizeof("1\r\nx\r\n0\r\n\r\n") - 1,
      .why = "pipelined: body_len stops before the next request" },
    { .pre = "FF00\r\n", .pad = "x", .pad_n = 0xff00, .post = "\r\n0\r\n\r\n",
      .rc = HTTP_PARSE_DONE, .why = "a large chunk within the limit" },
    CH_MORE("", "nothing yet"),
    CH_MORE("5\r\nhel", "in the middle of the data"),
    CH_MORE("5\r\nhello\r\n0\r\n", "no final CRLF yet"),
    CH_BAD("\r\n", 400, "no chunk size"),
    CH_BAD("x\r\n", 400, "a size that is not hex"),
    CH_BAD("-1\r\n", 400, "a negative size"),
    CH_BAD("0x5\r\nhello\r\n0\r\n\r\n", 400, "0x prefix"),
    CH_BAD(" 5\r\nhello\r\n0\r\n\r\n", 400, "whitespace before the size"),
    CH_BAD("5\nhello\r\n0\r\n\r\n", 400, "bare LF after the size"),
    CH_BAD("5\rhello", 400, "bare CR after the size"),
    CH_BAD("5\r\nhelloX\r\n", 400, "data longer than its size"),
    CH_BAD("5\r\nhello\n0\r\n\r\n", 400, "bare LF after the data"),
    CH_BAD("0\r\n\n", 400, "bare LF ending the body"),
    CH_BAD("0\r\nX: v\n\r\n", 400, "bare LF ending a trailer"),
    CH_BAD("0\r\nX v\r\n\r\n", 400, "trailer without a colon"),
    CH_BAD("0\r\n v\r\n\r\n", 400, "obs-fold in the trailers"),
    CH_BAD("5;a\x01\r\nhello\r\n0\r\n\r\n", 400, "control byte in an ext"),
    CH_BAD("10001\r\n", 413, "a chunk over the body limit"),
    CH_BAD("ffffffffffffffffffff\r\n", 413, "a size of 2^80 does not wrap"),
    { .pre = "FFFF\r\n", .pad = "x", .pad_n = 0xffff, .post = "\r\n0\r\n\r\n",
      .rc = HTTP_PARSE_ERROR, .status = 413,
      .why = "a chunk that fits, but not with its framing" },
    { .pre = "", .pad = "1\r\nx\r\n", .pad_n = 12000, .rc = HTTP_PARSE_ERROR,
      .status = 413, .why = "many small chunks past the limit" },
};

#define N_CHUNKED_CASES (sizeof(chunked_cases) / sizeof(chunked_cases[0]))

static char *
chunked_input(const struct chunked_case *c, size_t *len_out)
{
    struct parse_case pc = {
        .pre = c->pre, .pad = c->pad, .pad_n = c->pad_n, .post = c->post,
    };

    return case_input(&pc, len_out);
}

static void
chunked_check(const struct chunked_case *c, size_t len, enum http_parse_rc rc,
              const struct http_chunked *st, const char *how)
{
    ck_assert_msg(rc == c->rc, "%s (%s): rc %d, want %d", c->why, how, rc,
                  c->rc);
    if (rc == HTTP_PARSE_ERROR) {
        ck_assert_msg(st->status == c->status, "%s (%s): status %d",
                      c->why, how, st->status);
    }
    if (rc == HTTP_PARSE_DONE) {
        size_t want = c->body_len != 0 ? c->body_len : len;

        ck_assert_msg(st->body_len == want, "%s (%s): body_len %zu, want %zu",
                      c->why, how, st->body_len, want);
    }
}

/* Whole, then one byte more per call, each from an exact-size copy so
 * ASan sees a read past len. */
START_TEST(test_chunked)
{
    const struct chunked_case *c = &chunked_cases[_i];
    struct http_chunked st;
    enum http_parse_rc rc = HTTP_PARSE_AGAIN;
    size_t len;
    char *buf = chunked_input(c, &len);
    char *copy = malloc(len + 1);

    ck_assert_ptr_nonnull(copy);
    http_parse_chunked_init(&st);
    chunked_check(c, len, http_parse_chunked(&st, buf, len), &st, "whole");
    http_parse_chunked_init(&st);
    for (size_t n = 1; n <= len && rc == HTTP_PARSE_AGAIN; n++) {
        char *at = copy + len - n;

        memmove(at, buf, n);
        rc = http_parse_chunked(&st, at, n);
    }
    if (len > 0) {
        chunked_check(c, len, rc, &st, "bytewise");
        /* Sticky once decided. */
        if (rc != HTTP_PARSE_AGAIN) {
            ck_assert_int_eq(http_parse_chunked(&st, buf, len), rc);
        }
    }
    free(copy);
    free(buf);
}
END_TEST

static Suite *
http_parser_suite(void)
{
    Suite *s = suite_create("http_parser");
    TCase *tc;

    tc = tcase_create("whole");
    tcase_add_loop_test(tc, test_parse_whole, 0, N_PARSE_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("bytewise");
    tcase_add_loop_test(tc, test_parse_bytewise, 0, N_PARSE_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("split");
    /* Quadratic in the 16 KiB rows: seconds under ASan. */
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_parse_split, 0, N_PARSE_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("guard_page");
    tcase_add_loop_test(tc, test_parse_guard_page, 0, N_PARSE_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("chunked");
    tcase_add_loop_test(tc, test_chunked, 0, N_CHUNKED_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("sticky");
    tcase_add_test(tc, test_parse_sticky);
    suite_add_tcase(s, tc);

    tc = tcase_create("pipeline");
    tcase_add_test(tc, test_parse_pipeline);
    suite_add_tcase(s, tc);

    tc = tcase_create("char_classes");
    tcase_add_loop_test(tc, test_char_classes, 0, 256);
    suite_add_tcase(s, tc);

    tc = tcase_create("decode");
    tcase_add_loop_test(tc, test_decode, 0, N_DECODE_CASES);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(http_parser_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
