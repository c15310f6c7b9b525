/*
 * redis_scan: see redis_scan.h.  The state is the reply's byte count,
 * the bytes of a nested bulk still to skip, and a stack of the elements
 * each open array still expects.  Every line is parsed whole, so the
 * only thing a call carries over is that state: no partial line.
 */
#include <string.h>

#include "redis_scan.h"

void
redis_scan_init(struct redis_scan *st, uint64_t max_bytes)
{
    memset(st, 0, sizeof(*st));
    st->max_bytes = max_bytes;
    st->bulk_len = -1;
}

/* Strict decimal, an optional '-' only for -1; 0 or -1 when bad. */
static int
redis_scan_count(const char *p, size_t n, int64_t *out)
{
    int64_t v = 0;
    size_t  i = 0;

    if (n == 2 && p[0] == '-' && p[1] == '1') {
        *out = -1;
        return 0;
    }
    if (n == 0 || n > 19) {
        return -1;
    }
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        /* 19 digits can pass INT64_MAX: refuse, never overflow. */
        if (v > (INT64_MAX - (p[i] - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

static bool
redis_scan_integer_ok(const char *p, size_t n)
{
    size_t i = 0;

    if (n > 0 && p[0] == '-') {
        i = 1;
    }
    if (n == i || n - i > 19) {
        return false;
    }
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
    }
    return true;
}

static void
redis_scan_add(struct redis_scan *st, uint64_t n)
{
    st->size += n;
    if (st->size > st->max_bytes) {
        st->too_large = true;
    }
}

/* One element ended: true when that ends the whole reply. */
static bool
redis_scan_element_done(struct redis_scan *st)
{
    while (st->depth > 0) {
        if (--st->left[st->depth - 1] > 0) {
            return false;
        }
        st->depth--;
    }
    return true;
}

enum redis_scan_rc
redis_scan(struct redis_scan *st, const char *buf, size_t len, size_t *used)
{
    size_t pos = 0;

    for (;;) {
        const char *line, *cr;
        size_t      avail, n;
        int64_t     count;

        if (st->skip > 0) {
            n = len - pos < st->skip ? len - pos : (size_t) st->skip;
            pos += n;
            st->skip -= n;
            redis_scan_add(st, n);
            if (st->skip > 0) {
                *used = pos;
                return REDIS_SCAN_AGAIN;
            }
            if (redis_scan_element_done(st)) {
                *used = pos;
                return REDIS_SCAN_DONE;
            }
            continue;
        }

        avail = len - pos;
        if (avail > REDIS_SCAN_LINE_MAX + 2) {
            avail = REDIS_SCAN_LINE_MAX + 2;
        }
        line = buf + pos;
        cr = avail >= 2 ? memchr(line, '\r', avail - 1) : NULL;
        if (cr == NULL) {
            *used = pos;
            return avail == REDIS_SCAN_LINE_MAX + 2 ? REDIS_SCAN_BAD
                                                    : REDIS_SCAN_AGAIN;
        }
        if (cr[1] != '\n') {
            *used = pos;
            return REDIS_SCAN_BAD;
        }
        n = (size_t) (cr - line);
        if (n == 0) {
            *used = pos;
            return REDIS_SCAN_BAD;
        }
        if (st->type == 0) {
            st->type = line[0];
        }
        pos += n + 2;
        redis_scan_add(st, n + 2);

        switch (line[0]) {
        case '+':
        case '-':
            break;
        case ':':
            if (!redis_scan_integer_ok(line + 1, n - 1)) {
                *used = pos;
                return REDIS_SCAN_BAD;
            }
            break;
        case '$':
            if (redis_scan_count(line + 1, n - 1, &count) != 0) {
                *used = pos;
                return REDIS_SCAN_BAD;
            }
            if (st->depth == 0) {
                st->bulk_len = count;
                *used = pos;
                return count < 0 ? REDIS_SCAN_DONE : REDIS_SCAN_BULK;
            }
            if (count >= 0) {
                st->skip = (uint64_t) count + 2;
                continue;
            }
            break;
        case '*':
            if (redis_scan_count(line + 1, n - 1, &count) != 0) {
                *used = pos;
                return REDIS_SCAN_BAD;
            }
            if (count > 0) {
                if (st->depth == REDIS_SCAN_DEPTH_MAX) {
                    *used = pos;
                    return REDIS_SCAN_BAD;
                }
                st->left[st->depth++] = count;
                continue;
            }
            break;
        default:
            *used = pos;
            return REDIS_SCAN_BAD;
        }
        if (redis_scan_element_done(st)) {
            *used = pos;
            return REDIS_SCAN_DONE;
        }
    }
}
