/*
 * redis_reply_fuzz: libFuzzer harness for what the proxy parses from a
 * Redis server or a Redis URL: redis_scan.c and redis_url.c.
 *
 * The first byte picks the target, the rest is the input.
 *
 * redis_scan oracle: the scanner cannot tell how the bytes arrived.
 * Fed whole, byte by byte and split at every point (each piece copied
 * to a buffer of exactly its size, so ASan sees any read past it), it
 * gives the same result and consumes the same bytes; it never consumes
 * more than it was given, and on DONE without too_large the reply size
 * is what it consumed.  The bound (max_bytes) is taken from the input so
 * both sides of it are reached.
 *
 * redis_url oracle: parsing never reads past the NUL; on OK a port is
 * 1-65535, a path is absolute, a db at most 2^31-1; when it has a
 * password, the mask of the input shows "****@" in its place.
 *
 * Build: make fuzz-redis (clang -fsanitize=fuzzer,address,undefined).
 * Run, from the build dir, with WORK a scratch dir:
 *   fuzz/redis_reply_fuzz -max_total_time=600 WORK
 *     $(srcdir)/fuzz/corpus/redis
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_scan.h"
#include "redis_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_require(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "redis_reply_fuzz: %s\n", what);
        abort();
    }
}

/* One call on an exact-size copy of buf[0, len). */
static enum redis_scan_rc
fuzz_scan_piece(struct redis_scan *st, const uint8_t *buf, size_t len,
                size_t *used)
{
    char *copy = malloc(len > 0 ? len : 1);
    enum redis_scan_rc rc;

    fuzz_require(copy != NULL, "out of memory");
    memcpy(copy, buf, len);
    *used = (size_t)-1;
    rc = redis_scan(st, copy, len, used);
    free(copy);
    fuzz_require(*used <= len, "consumed more than given");
    return rc;
}

/* Feeds buf in pieces of at most step bytes (0: whole); returns the
 * result and what was consumed in all. */
static enum redis_scan_rc
fuzz_scan(const uint8_t *buf, size_t len, uint64_t max, size_t step,
          size_t split, size_t *consumed, struct redis_scan *st)
{
    enum redis_scan_rc rc = REDIS_SCAN_AGAIN;
    size_t end = split != 0 ? split : (step != 0 ? 0 : len);

    redis_scan_init(st, max);
    *consumed = 0;
    for (;;) {
        size_t used;

        if (step != 0) {
            end = end + 1 <= len ? end + 1 : len;
        }
        rc = fuzz_scan_piece(st, buf + *consumed, end - *consumed, &used);
        *consumed += used;
        if (rc != REDIS_SCAN_AGAIN || end == len) {
            break;
        }
        if (split != 0) {
            end = len;
        }
    }
    return rc;
}

static void
fuzz_redis_scan(const uint8_t *data, size_t size)
{
    uint64_t max = size > 0 ? (uint64_t)data[0] * 7 : 0;
    struct redis_scan whole, other;
    size_t used_whole, used, split;
    enum redis_scan_rc rc, rc2;

    if (size > 0) {
        data++;
        size--;
    }
    rc = fuzz_scan(data, size, max, 0, 0, &used_whole, &whole);
    if (rc == REDIS_SCAN_DONE && !whole.too_large) {
        fuzz_require(whole.size == used_whole, "size is not what was read");
    }
    rc2 = fuzz_scan(data, size, max, 1, 0, &used, &other);
    fuzz_require(rc2 == rc && (rc == REDIS_SCAN_BAD || used == used_whole),
                 "byte by byte differs from whole");
    for (split = 1; split < size; split++) {
        rc2 = fuzz_scan(data, size, max, 0, split, &used, &other);
        fuzz_require(rc2 == rc
                         && (rc == REDIS_SCAN_BAD || used == used_whole),
                     "a split differs from whole");
    }
}

static void
fuzz_redis_url(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char masked[256];
    struct redis_url url;
    const char *why;

    fuzz_require(s != NULL, "out of memory");
    memcpy(s, data, size);
    s[size] = '\0';
    if (redis_url_parse(s, &url, &why) == REDIS_URL_OK) {
        fuzz_require(url.is_unix ? url.path[0] == '/' : url.port != 0,
                     "no port or path");
        fuzz_require(!url.has_db || url.db <= REDIS_URL_DB_MAX, "db range");
        redis_url_mask(s, masked, sizeof(masked));
        fuzz_require(memchr(masked, '\0', sizeof(masked)) != NULL,
                     "mask not terminated");
        if (url.has_password && strlen(s) < sizeof(masked)) {
            fuzz_require(strstr(masked, "****@") != NULL,
                         "mask shows the password");
        }
    } else {
        fuzz_require(why != NULL, "no reason");
    }
    free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if (data[0] & 1) {
        fuzz_redis_url(data + 1, size - 1);
    } else {
        fuzz_redis_scan(data + 1, size - 1);
    }
    return 0;
}
