/*
 * proxy_proto_fuzz: libFuzzer harness for proxy_proto.c.
 *
 * Oracle: the parser cannot tell how the bytes arrived.  Every prefix of
 * the input (copied to a buffer of exactly its size, so ASan sees any
 * read past len) gives AGAIN, or the same DONE/ERROR the whole input
 * gives once the prefix holds the whole header; and once DONE or ERROR
 * is reached no longer prefix changes it.  On DONE: the length is within
 * the input and the version's limits, and an address is AF_INET or
 * AF_INET6.
 *
 * Build: make fuzz-proxy (clang -fsanitize=fuzzer,address,undefined).
 * Run, from the build dir, with WORK a scratch dir:
 *   fuzz/proxy_proto_fuzz -dict=$(srcdir)/fuzz/proxy.dict
 *     -max_total_time=600 WORK $(srcdir)/fuzz/corpus/proxy
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_require(int ok, const char *what, size_t at)
{
    if (!ok) {
        fprintf(stderr, "proxy_proto_fuzz: %s (at %zu)\n", what, at);
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_proto_result whole, part;
    enum proxy_proto_rc       rc_whole, rc;
    size_t                    step;

    if (size > 4096) {
        return 0;
    }
    rc_whole = proxy_proto_parse((const char *) data, size, &whole);
    if (rc_whole == PROXY_PROTO_DONE) {
        fuzz_require(whole.len > 0 && whole.len <= size, "length", size);
        fuzz_require(whole.version == 1 ? whole.len <= PROXY_PROTO_V1_MAX
                                        : whole.version == 2,
                     "version limits", whole.len);
        if (whole.has_addr) {
            fuzz_require(whole.src.ss_family == AF_INET
                         || whole.src.ss_family == AF_INET6, "family", 0);
        }
    }
    if (rc_whole == PROXY_PROTO_ERROR) {
        fuzz_require(whole.error != NULL, "error text", size);
    }
    /* Every prefix on short inputs; a stride on longer ones. */
    step = size <= 256 ? 1 : size / 128;
    for (size_t n = 0; n <= size; n += step) {
        char *copy = malloc(n > 0 ? n : 1);

        memcpy(copy, data, n);
        rc = proxy_proto_parse(copy, n, &part);
        free(copy);
        if (rc == PROXY_PROTO_AGAIN) {
            fuzz_require(rc_whole != PROXY_PROTO_DONE || whole.len > n
                         || n == size, "AGAIN with a whole header", n);
            continue;
        }
        fuzz_require(rc == rc_whole, "prefix and whole disagree", n);
        if (rc == PROXY_PROTO_DONE) {
            fuzz_require(part.len == whole.len
                         && part.has_addr == whole.has_addr
                         && memcmp(&part.src, &whole.src,
                                   sizeof(part.src)) == 0,
                         "different header", n);
        }
    }
    return 0;
}
