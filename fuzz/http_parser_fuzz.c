/*
 * http_parser_fuzz: libFuzzer harness for http_parse_request(),
 * http_parse_decode() and http_reply_if_none_match().
 *
 * Oracle: the parser must not care how its input is cut (nor must the
 * chunked-body parser, run on what follows a chunked head).  The first two
 * bytes choose a split point; the rest is the request, parsed whole, in
 * two calls split there, and one byte at a time, and the three results
 * must be equal field for field.  A DONE result must also describe
 * offsets inside the head, and the decoded path must match a separate,
 * obvious decoder.  libFuzzer hands over an exact-size heap copy, so ASan
 * catches any read past len.
 *
 * Each corpus file is two split bytes (big-endian) and then a request.
 * To run, and to fold what a run found back into the repo's corpus
 * (-use_counters=0 keeps every edge but not every hit count, so the
 * corpus stays near a hundred small files, 125 with chunked bodies):
 *
 *   make fuzz-http
 *   cp -r fuzz/corpus/http /tmp/http-corpus
 *   ./fuzz/http_parser_fuzz -dict=fuzz/http.dict -max_len=20000 \
 *       -jobs=1 -max_total_time=600 /tmp/http-corpus
 *   ./fuzz/http_parser_fuzz -merge=1 -use_counters=0 -max_len=20000 \
 *       fuzz/corpus/http /tmp/http-corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_reply.h"
#include "http_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void
fuzz_same(enum http_parse_rc rc_a, const struct http_request *a,
          enum http_parse_rc rc_b, const struct http_request *b)
{
    fuzz_check(rc_a == rc_b);
    fuzz_check(a->status == b->status);
    fuzz_check(a->method == b->method);
    fuzz_check(a->version_minor == b->version_minor);
    fuzz_check(a->method_off == b->method_off);
    fuzz_check(a->method_len == b->method_len);
    fuzz_check(a->target_off == b->target_off);
    fuzz_check(a->target_len == b->target_len);
    fuzz_check(a->path_off == b->path_off);
    fuzz_check(a->path_len == b->path_len);
    fuzz_check(a->keep_alive == b->keep_alive);
    fuzz_check(a->has_content_length == b->has_content_length);
    fuzz_check(a->content_length == b->content_length);
    fuzz_check(a->head_len == b->head_len);
    fuzz_check(a->chunked == b->chunked);
    fuzz_check(a->expect_continue == b->expect_continue);
    fuzz_check(a->inm_off == b->inm_off);
    fuzz_check(a->inm_len == b->inm_len);
    fuzz_check(a->inm_many == b->inm_many);
}

/* If-None-Match over any bytes: a defined answer, and a list holding
 * our own tag (appended after a comma) matches unless it was invalid. */
static void
fuzz_inm(const char *v, size_t len)
{
    static const uint64_t etag = UINT64_C(0x0123456789abcdef);
    char with[300];
    enum http_reply_inm rc = http_reply_if_none_match(v, len, etag);
    enum http_reply_inm rc_with;

    fuzz_check(rc == HTTP_REPLY_INM_NONE || rc == HTTP_REPLY_INM_MATCH
               || rc == HTTP_REPLY_INM_NO_MATCH);
    if (len > sizeof(with) - HTTP_REPLY_ETAG_LEN - 1) {
        return;
    }
    memcpy(with, v, len);
    with[len] = ',';
    http_reply_format_etag(etag, with + len + 1);
    rc_with = http_reply_if_none_match(with, len + 1 + HTTP_REPLY_ETAG_LEN, etag);
    if (rc == HTTP_REPLY_INM_NO_MATCH) {
        /* A valid list of tags stays valid with ours added: a match. */
        fuzz_check(rc_with == HTTP_REPLY_INM_MATCH);
    } else if (rc == HTTP_REPLY_INM_MATCH) {
        /* Ours was there already, or it was "*", which takes no more. */
        fuzz_check(rc_with == HTTP_REPLY_INM_MATCH || rc_with == HTTP_REPLY_INM_NONE);
    }
}

/* The chunked-body parser gets the same oracle: whole, split, and one
 * byte at a time agree. */
static void
fuzz_chunked(const char *buf, size_t len, size_t split)
{
    struct http_chunked whole, part;
    enum http_parse_rc rc_whole, rc_part;

    http_parse_chunked_init(&whole);
    rc_whole = http_parse_chunked(&whole, buf, len);
    http_parse_chunked_init(&part);
    rc_part = http_parse_chunked(&part, buf, split);
    if (rc_part == HTTP_PARSE_AGAIN) {
        rc_part = http_parse_chunked(&part, buf, len);
    }
    fuzz_check(rc_whole == rc_part && whole.status == part.status
               && whole.body_len == part.body_len);
    http_parse_chunked_init(&part);
    rc_part = HTTP_PARSE_AGAIN;
    for (size_t n = 1; n <= len && rc_part == HTTP_PARSE_AGAIN; n++) {
        rc_part = http_parse_chunked(&part, buf, n);
    }
    if (len > 0) {
        fuzz_check(rc_whole == rc_part && whole.status == part.status
                   && whole.body_len == part.body_len);
    }
    if (rc_whole == HTTP_PARSE_DONE) {
        fuzz_check(whole.body_len <= len
                   && whole.body_len <= HTTP_PARSE_BODY_MAX);
    }
    if (rc_whole == HTTP_PARSE_ERROR) {
        fuzz_check(whole.status == 400 || whole.status == 413);
    }
}

static int
fuzz_hex(unsigned char c)
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

/* The reference: decode and compare in one pass. */
static void
fuzz_decode(const char *src, size_t len)
{
    char *dst = malloc(len + 1);
    ssize_t n;
    size_t i = 0, j = 0;
    int bad = 0;

    fuzz_check(dst != NULL);
    n = http_parse_decode(src, len, dst);
    while (i < len && !bad) {
        if (src[i] != '%') {
            fuzz_check(n < 0 || dst[j] == src[i]);
            i++;
            j++;
        } else if (len - i >= 3 && fuzz_hex((unsigned char)src[i + 1]) >= 0
                   && fuzz_hex((unsigned char)src[i + 2]) >= 0) {
            int v = fuzz_hex((unsigned char)src[i + 1]) * 16
                + fuzz_hex((unsigned char)src[i + 2]);

            fuzz_check(n < 0 || (unsigned char)dst[j] == v);
            i += 3;
            j++;
        } else {
            bad = 1;
        }
    }
    fuzz_check(bad ? n == -1 : n == (ssize_t)j);
    free(dst);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_parse st;
    struct http_request whole, part;
    enum http_parse_rc rc_whole, rc_part;
    const char *buf = (const char *)data + 2;
    size_t len, split;

    if (size < 2) {
        return 0;
    }
    len = size - 2;
    split = ((size_t)data[0] << 8 | data[1]) % (len + 1);

    http_parse_init(&st);
    rc_whole = http_parse_request(&st, buf, len, &whole);

    http_parse_init(&st);
    rc_part = http_parse_request(&st, buf, split, &part);
    if (rc_part == HTTP_PARSE_AGAIN) {
        rc_part = http_parse_request(&st, buf, len, &part);
    }
    fuzz_same(rc_whole, &whole, rc_part, &part);

    http_parse_init(&st);
    rc_part = HTTP_PARSE_AGAIN;
    for (size_t n = 1; n <= len && rc_part == HTTP_PARSE_AGAIN; n++) {
        rc_part = http_parse_request(&st, buf, n, &part);
    }
    if (len == 0) {
        rc_part = http_parse_request(&st, buf, 0, &part);
    }
    fuzz_same(rc_whole, &whole, rc_part, &part);

    if (rc_whole == HTTP_PARSE_ERROR) {
        fuzz_check(whole.status >= 400 && whole.status <= 505);
    }
    if (rc_whole == HTTP_PARSE_DONE) {
        fuzz_check(whole.head_len <= len);
        fuzz_check(whole.head_len <= HTTP_PARSE_HEAD_MAX);
        fuzz_check(whole.content_length <= HTTP_PARSE_BODY_MAX);
        fuzz_check(whole.method_len > 0);
        fuzz_check(whole.path_len > 0 && buf[whole.path_off] == '/');
        fuzz_check(whole.target_off + whole.target_len < whole.head_len);
        fuzz_check(whole.path_off + whole.path_len
                   <= whole.target_off + whole.target_len);
        fuzz_decode(buf + whole.path_off + 1, whole.path_len - 1);
        fuzz_check(whole.inm_off + whole.inm_len < whole.head_len);
        fuzz_check(!whole.inm_many || whole.inm_len == 0);
        fuzz_inm(buf + whole.inm_off, whole.inm_len);
        if (whole.chunked) {
            size_t body = len - whole.head_len;

            fuzz_chunked(buf + whole.head_len, body,
                         split < body ? split : body);
        }
    }
    /* decode must cope with any bytes, not only a parsed path. */
    fuzz_decode(buf, len < 256 ? len : 256);
    fuzz_inm(buf, len < 256 ? len : 256);
    return 0;
}
