/*
 * http_decode_double: a stand-in for http_parser.c's http_parse_decode(),
 * so check_admin links in a tree where the HTTP parser is not merged yet.
 * It follows the contract in http_parser.h: "%XX" (either case) is one
 * byte, anything else is itself, and "%", "%4" or "%zz" make it -1.
 *
 * Weak, so that when the real parser is in librcp.a and is pulled in it
 * wins without a duplicate-symbol error.  Once src/http_parser.c is in
 * librcp.a, drop this file from tests_check_admin_SOURCES so check_admin
 * runs against the real decoder.
 */
#include "http_parser.h"

static int
http_decode_double_hex(char c)
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

__attribute__((weak)) ssize_t
http_parse_decode(const char *src, size_t src_len, char *dst)
{
    size_t out = 0;

    for (size_t i = 0; i < src_len; i++) {
        int hi;
        int lo;

        if (src[i] != '%') {
            dst[out++] = src[i];
            continue;
        }
        if (src_len - i < 3) {
            return -1;
        }
        hi = http_decode_double_hex(src[i + 1]);
        lo = http_decode_double_hex(src[i + 2]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        dst[out++] = (char) (hi << 4 | lo);
        i += 2;
    }
    return (ssize_t) out;
}
