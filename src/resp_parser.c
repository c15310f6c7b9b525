/*
 * resp_parser: owns the grammar of one RESP2 request, as Redis'
 * networking.c reads it (processMultibulkBuffer, processInlineBuffer),
 * and nothing else: no I/O, no allocation, no globals.
 *
 * Invariants:
 * - The buffer always starts at the command's first byte, and a later
 *   call sees the same prefix plus more bytes.  Only offsets are kept,
 *   never pointers, so the caller may move or grow its buffer.
 * - st->pos only grows, and every decision depends only on bytes that
 *   are present and can never be changed by more arriving, so feeding
 *   the bytes one at a time gives the result of feeding them all at
 *   once.  A later call resumes its scan at st->pos: nothing is
 *   rescanned but the '\r' of a count line whose '\n' had not arrived.
 * - A line without its terminator fails as soon as it passes 64 KiB, so
 *   a caller never buffers more than that plus one announced bulk.
 * - Numbers are bounded before each multiplication.
 *
 * Flow (first byte decides the kind, as in Redis):
 *
 *   START --'*'--> MB_COUNT --n>0--> BULK_LINE --> BULK_DATA --+--> DONE
 *     |               |  "*<n>\r\n"    "$<len>\r\n"  <len> bytes |
 *     |               +--n<=0--> DONE        ^          + "\r\n" |
 *     |                                      +---- args left ----+
 *     +--other--> INLINE: find '\n', split the line --> DONE
 *
 *   Any state can end in ERROR; DONE and ERROR are sticky.
 *
 * Where we differ from Redis, on purpose:
 * - Redis skips the two bytes after a bulk or a count line without
 *   looking at them; we require "\r\n" there.
 * - Redis checks for '$' only once the whole bulk-length line is in;
 *   we check the first byte at once (same message, earlier).
 * - Inline arguments are offsets into the caller's const buffer, so
 *   they cannot be decoded: a quoted argument holding a backslash
 *   escape, and a quote in the middle of an unquoted argument (which
 *   Redis would splice: a"b c" is "ab c"), are refused with their own
 *   messages instead of being read differently from Redis.
 * - Redis' inline splitter stops at a NUL byte (it works on C strings);
 *   here NUL is an ordinary byte of an argument.
 */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "resp_parser.h"

/* Redis 7 accepts up to INT_MAX; older releases and we take 1024*1024,
 * which already is far beyond any argument array a caller would have. */
#define RESP_PARSE_MULTIBULK_MAX (1024 * 1024)

/* Redis' string2ll() refuses strings of LONG_STR_SIZE (21) bytes or more:
 * "-9223372036854775808" is the longest valid number, 20 bytes. */
#define RESP_PARSE_NUMBER_MAX 20

enum resp_parse_state {
    RESP_PARSE_S_START = 0, /* 0 so that a zeroed struct is fresh */
    RESP_PARSE_S_INLINE,    /* looking for the '\n' of an inline line */
    RESP_PARSE_S_MB_COUNT,  /* looking for the '\r' of "*<n>\r\n" */
    RESP_PARSE_S_BULK_LINE, /* '$' then the '\r' of "$<len>\r\n" */
    RESP_PARSE_S_BULK_DATA, /* <len> bytes, then "\r\n" */
    RESP_PARSE_S_DONE,
    RESP_PARSE_S_ERROR
};

/* What a state handler did: moved to another state (run it now), or
 * stopped because the bytes needed are not there yet. */
enum resp_parse_step {
    RESP_PARSE_STEP_NEXT,
    RESP_PARSE_STEP_MORE
};

enum resp_parse_line_rc {
    RESP_PARSE_LINE_FOUND,
    RESP_PARSE_LINE_MORE,
    RESP_PARSE_LINE_TOO_BIG
};

static const char resp_parse_err_mbulk_len[] =
    "Protocol error: invalid multibulk length";
static const char resp_parse_err_bulk_len[] =
    "Protocol error: invalid bulk length";
static const char resp_parse_err_mbulk_big[] =
    "Protocol error: too big mbulk count string";
static const char resp_parse_err_bulk_big[] =
    "Protocol error: too big bulk count string";
static const char resp_parse_err_inline_big[] =
    "Protocol error: too big inline request";
static const char resp_parse_err_unbalanced[] =
    "Protocol error: unbalanced quotes in request";
static const char resp_parse_err_escapes[] =
    "Protocol error: escapes in inline quoted arguments are not supported";
static const char resp_parse_err_mid_quote[] =
    "Protocol error: quotes inside an inline argument are not supported";
static const char resp_parse_err_too_many[] =
    "Protocol error: too many arguments";
static const char resp_parse_err_bulk_crlf[] =
    "Protocol error: expected CRLF after bulk data";
static const char resp_parse_err_state[] =
    "Protocol error: parser state corrupted";

/*
 * "Protocol error: expected '$', got '%c'" for every byte, so the
 * message stays a static string.  Redis replaces '\r' and '\n' in an
 * error reply with spaces (addReplyErrorFormat); we do the same, and
 * for NUL too, which a C string cannot carry.
 */
/* A table laid out by hand. */
/* clang-format off */
#define RESP_PARSE_SHOWN(c)                                                  \
    ((c) == 0 || (c) == '\r' || (c) == '\n' ? ' ' : (char) (c))
#define RESP_PARSE_GOT(c)                                                    \
    { 'P', 'r', 'o', 't', 'o', 'c', 'o', 'l', ' ', 'e', 'r', 'r', 'o', 'r', \
      ':', ' ', 'e', 'x', 'p', 'e', 'c', 't', 'e', 'd', ' ', '\'', '$',     \
      '\'', ',', ' ', 'g', 'o', 't', ' ', '\'', RESP_PARSE_SHOWN(c), '\'',  \
      '\0' }
#define RESP_PARSE_GOT4(c)                                                   \
    RESP_PARSE_GOT(c), RESP_PARSE_GOT((c) + 1), RESP_PARSE_GOT((c) + 2),    \
    RESP_PARSE_GOT((c) + 3)
#define RESP_PARSE_GOT16(c)                                                  \
    RESP_PARSE_GOT4(c), RESP_PARSE_GOT4((c) + 4), RESP_PARSE_GOT4((c) + 8), \
    RESP_PARSE_GOT4((c) + 12)
#define RESP_PARSE_GOT64(c)                                                  \
    RESP_PARSE_GOT16(c), RESP_PARSE_GOT16((c) + 16),                        \
    RESP_PARSE_GOT16((c) + 32), RESP_PARSE_GOT16((c) + 48)

static const char resp_parse_err_expected_dollar[256][40] = {
    RESP_PARSE_GOT64(0), RESP_PARSE_GOT64(64),
    RESP_PARSE_GOT64(128), RESP_PARSE_GOT64(192)
};
/* clang-format on */

/*
 * Byte classes of Redis' sdssplitargs(): blanks between arguments are
 * isspace() (so '\v' and '\f' too), but an unquoted argument ends only
 * at ' ', '\t', '\r' or '\n'; a '\v' inside one is part of it.
 */
#define RESP_PARSE_C_BLANK 0x01 /* skipped between arguments */
#define RESP_PARSE_C_END   0x02 /* ends an unquoted argument */
#define RESP_PARSE_C_QUOTE 0x04 /* '"' or '\'' */
#define RESP_PARSE_C_DIGIT 0x08

static const uint8_t resp_parse_class[256] = {
    ['\t'] = RESP_PARSE_C_BLANK | RESP_PARSE_C_END,
    ['\n'] = RESP_PARSE_C_BLANK | RESP_PARSE_C_END,
    ['\v'] = RESP_PARSE_C_BLANK,
    ['\f'] = RESP_PARSE_C_BLANK,
    ['\r'] = RESP_PARSE_C_BLANK | RESP_PARSE_C_END,
    [' '] = RESP_PARSE_C_BLANK | RESP_PARSE_C_END,
    ['"'] = RESP_PARSE_C_QUOTE,
    ['\''] = RESP_PARSE_C_QUOTE,
    ['0'] = RESP_PARSE_C_DIGIT,
    ['1'] = RESP_PARSE_C_DIGIT,
    ['2'] = RESP_PARSE_C_DIGIT,
    ['3'] = RESP_PARSE_C_DIGIT,
    ['4'] = RESP_PARSE_C_DIGIT,
    ['5'] = RESP_PARSE_C_DIGIT,
    ['6'] = RESP_PARSE_C_DIGIT,
    ['7'] = RESP_PARSE_C_DIGIT,
    ['8'] = RESP_PARSE_C_DIGIT,
    ['9'] = RESP_PARSE_C_DIGIT,
};

static bool
resp_parse_is(char c, uint8_t cls)
{
    return (resp_parse_class[(unsigned char) c] & cls) != 0;
}

void
resp_parse_init(struct resp_parse *st)
{
    memset(st, 0, sizeof(*st));
}

static enum resp_parse_step
resp_parse_fail(struct resp_parse *st, const char *error)
{
    st->state = RESP_PARSE_S_ERROR;
    st->error = error;
    return RESP_PARSE_STEP_NEXT;
}

/*
 * Reads s[0..n) as Redis' string2ll() does, so that exactly the counts
 * Redis accepts are accepted: an optional '-', no '+', no leading zero
 * (but "0" itself), no blanks, at most 20 bytes, within int64_t.  The
 * magnitude is checked against the limit before every multiplication.
 */
static bool
resp_parse_number(const char *s, size_t n, int64_t *out)
{
    size_t   i = 0;
    bool     negative = false;
    uint64_t v;
    uint64_t limit = (uint64_t) INT64_MAX;

    if (n == 0 || n > RESP_PARSE_NUMBER_MAX) {
        return false;
    }
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (s[0] == '-') {
        negative = true;
        limit = (uint64_t) INT64_MAX + 1;
        i++;
    }
    if (i == n || !resp_parse_is(s[i], RESP_PARSE_C_DIGIT) || s[i] == '0') {
        return false;
    }
    v = (uint64_t) (s[i] - '0');
    for (i++; i < n; i++) {
        uint64_t d;

        if (!resp_parse_is(s[i], RESP_PARSE_C_DIGIT)) {
            return false;
        }
        d = (uint64_t) (s[i] - '0');
        if (v > (limit - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (negative) {
        /* -(2^63) fits; negate in unsigned arithmetic to avoid UB. */
        *out = v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) v;
    } else {
        *out = (int64_t) v;
    }
    return true;
}

/*
 * Finds the '\r' ending the count line that starts at st->line_start
 * (its '*' or '$'), resuming at st->pos.  Like Redis, a line whose first
 * RESP_PARSE_INLINE_MAX + 1 bytes hold no '\r' is too big; the test
 * looks only at those bytes, so it does not depend on how many arrived.
 */
static enum resp_parse_line_rc
resp_parse_find_cr(struct resp_parse *st, const char *buf, size_t len,
                   size_t *cr)
{
    size_t      limit = st->line_start + RESP_PARSE_INLINE_MAX + 1;
    size_t      from = st->pos;
    const char *hit;

    if (limit > len) {
        limit = len;
    }
    hit = from < limit ? memchr(buf + from, '\r', limit - from) : NULL;
    if (hit != NULL) {
        *cr = (size_t) (hit - buf);
        return RESP_PARSE_LINE_FOUND;
    }
    if (len - st->line_start > RESP_PARSE_INLINE_MAX) {
        return RESP_PARSE_LINE_TOO_BIG;
    }
    st->pos = len;
    return RESP_PARSE_LINE_MORE;
}

static enum resp_parse_step
resp_parse_start(struct resp_parse *st, const char *buf, size_t len)
{
    if (len == 0) {
        return RESP_PARSE_STEP_MORE;
    }
    if (buf[0] == '*') {
        st->state = RESP_PARSE_S_MB_COUNT;
        st->line_start = 0;
        st->pos = 1;
    } else {
        st->state = RESP_PARSE_S_INLINE;
        st->pos = 0;
    }
    return RESP_PARSE_STEP_NEXT;
}

/* Returns false, in ERROR, when argv is full. */
static bool
resp_parse_add_arg(struct resp_parse *st, struct resp_command *cmd, size_t off,
                   size_t arg_len)
{
    if (st->argc >= cmd->argv_cap) {
        resp_parse_fail(st, resp_parse_err_too_many);
        return false;
    }
    cmd->argv[st->argc].off = off;
    cmd->argv[st->argc].len = arg_len;
    st->argc++;
    return true;
}

/*
 * Splits buf[0..end), one whole inline line without its line ending, as
 * sdssplitargs() does, except where the file comment says otherwise.
 * Ends in DONE or ERROR.
 */
static void
resp_parse_split(struct resp_parse *st, const char *buf, size_t end,
                 struct resp_command *cmd)
{
    size_t p = 0;

    for (;;) {
        size_t arg_off, q;

        while (p < end && resp_parse_is(buf[p], RESP_PARSE_C_BLANK)) {
            p++;
        }
        if (p == end) {
            break;
        }
        if (buf[p] == '"') {
            arg_off = p + 1;
            for (q = arg_off; q < end && buf[q] != '"'; q++) {
                if (buf[q] == '\\') {
                    /* Redis reads '\' + any byte as an escape; a '\'
                     * that ends the line is literal, then unbalanced. */
                    resp_parse_fail(st, q + 1 < end
                                            ? resp_parse_err_escapes
                                            : resp_parse_err_unbalanced);
                    return;
                }
            }
        } else if (buf[p] == '\'') {
            arg_off = p + 1;
            for (q = arg_off; q < end && buf[q] != '\''; q++) {
                /* Only \' is an escape in single quotes; "\n" is literal. */
                if (buf[q] == '\\' && q + 1 < end && buf[q + 1] == '\'') {
                    resp_parse_fail(st, resp_parse_err_escapes);
                    return;
                }
            }
        } else {
            arg_off = p;
            for (q = p; q < end && !resp_parse_is(buf[q], RESP_PARSE_C_END);
                 q++) {
                if (resp_parse_is(buf[q], RESP_PARSE_C_QUOTE)) {
                    resp_parse_fail(st, resp_parse_err_mid_quote);
                    return;
                }
            }
            if (!resp_parse_add_arg(st, cmd, arg_off, q - arg_off)) {
                return;
            }
            p = q;
            continue;
        }

        /* A quoted argument: q is at its closing quote or at the end. */
        if (q == end) {
            resp_parse_fail(st, resp_parse_err_unbalanced);
            return;
        }
        /* Redis: "closing quote must be followed by a space or nothing". */
        if (q + 1 < end && !resp_parse_is(buf[q + 1], RESP_PARSE_C_BLANK)) {
            resp_parse_fail(st, resp_parse_err_unbalanced);
            return;
        }
        if (!resp_parse_add_arg(st, cmd, arg_off, q - arg_off)) {
            return;
        }
        p = q + 1;
    }
    st->state = RESP_PARSE_S_DONE;
}

static enum resp_parse_step
resp_parse_inline(struct resp_parse *st, const char *buf, size_t len,
                  struct resp_command *cmd)
{
    size_t      limit = RESP_PARSE_INLINE_MAX + 1;
    size_t      nl, end;
    const char *hit;

    /* The line starts at 0; its '\n' may be at most at INLINE_MAX, the
     * same bound Redis applies ("more than 64 KiB and no newline"). */
    if (limit > len) {
        limit = len;
    }
    hit = st->pos < limit ? memchr(buf + st->pos, '\n', limit - st->pos)
                          : NULL;
    if (hit == NULL) {
        if (len > RESP_PARSE_INLINE_MAX) {
            return resp_parse_fail(st, resp_parse_err_inline_big);
        }
        st->pos = len;
        return RESP_PARSE_STEP_MORE;
    }
    nl = (size_t) (hit - buf);
    end = nl;
    if (end > 0 && buf[end - 1] == '\r') {
        end--;
    }
    st->pos = nl + 1;
    resp_parse_split(st, buf, end, cmd);
    return RESP_PARSE_STEP_NEXT;
}

static enum resp_parse_step
resp_parse_mb_count(struct resp_parse *st, const char *buf, size_t len,
                    struct resp_command *cmd)
{
    size_t  cr;
    int64_t n;

    switch (resp_parse_find_cr(st, buf, len, &cr)) {
    case RESP_PARSE_LINE_FOUND:
        break;
    case RESP_PARSE_LINE_MORE:
        return RESP_PARSE_STEP_MORE;
    case RESP_PARSE_LINE_TOO_BIG:
        return resp_parse_fail(st, resp_parse_err_mbulk_big);
    }
    if (!resp_parse_number(buf + 1, cr - 1, &n)
        || n > RESP_PARSE_MULTIBULK_MAX) {
        return resp_parse_fail(st, resp_parse_err_mbulk_len);
    }
    if (cr + 1 == len) {
        st->pos = cr; /* look at this '\r' again, with its '\n' */
        return RESP_PARSE_STEP_MORE;
    }
    if (buf[cr + 1] != '\n') {
        return resp_parse_fail(st, resp_parse_err_mbulk_len);
    }
    st->pos = cr + 2;
    if (n <= 0) {
        /* Redis treats "*0" and "*-1" (any n <= 0) as an empty command. */
        st->state = RESP_PARSE_S_DONE;
        return RESP_PARSE_STEP_NEXT;
    }
    if ((uint64_t) n > cmd->argv_cap) {
        return resp_parse_fail(st, resp_parse_err_too_many);
    }
    st->args_left = n;
    st->state = RESP_PARSE_S_BULK_LINE;
    st->line_start = st->pos;
    return RESP_PARSE_STEP_NEXT;
}

static enum resp_parse_step
resp_parse_bulk_line(struct resp_parse *st, const char *buf, size_t len)
{
    size_t  cr;
    int64_t n;

    if (st->pos == st->line_start) {
        if (len == st->pos) {
            return RESP_PARSE_STEP_MORE;
        }
        if (buf[st->pos] != '$') {
            unsigned char got = (unsigned char) buf[st->pos];

            return resp_parse_fail(st, resp_parse_err_expected_dollar[got]);
        }
        st->pos++;
    }
    switch (resp_parse_find_cr(st, buf, len, &cr)) {
    case RESP_PARSE_LINE_FOUND:
        break;
    case RESP_PARSE_LINE_MORE:
        return RESP_PARSE_STEP_MORE;
    case RESP_PARSE_LINE_TOO_BIG:
        return resp_parse_fail(st, resp_parse_err_bulk_big);
    }
    if (!resp_parse_number(buf + st->line_start + 1, cr - st->line_start - 1,
                           &n)
        || n < 0 || n > RESP_PARSE_BULK_MAX) {
        return resp_parse_fail(st, resp_parse_err_bulk_len);
    }
    if (cr + 1 == len) {
        st->pos = cr;
        return RESP_PARSE_STEP_MORE;
    }
    if (buf[cr + 1] != '\n') {
        return resp_parse_fail(st, resp_parse_err_bulk_len);
    }
    st->pos = cr + 2;
    st->bulk_len = n;
    st->state = RESP_PARSE_S_BULK_DATA;
    return RESP_PARSE_STEP_NEXT;
}

static enum resp_parse_step
resp_parse_bulk_data(struct resp_parse *st, const char *buf, size_t len,
                     struct resp_command *cmd)
{
    size_t have = len - st->pos;
    size_t want = (size_t) st->bulk_len;

    /* The payload is skipped, never scanned: it may hold "\r\n" or NUL. */
    if (have > want && buf[st->pos + want] != '\r') {
        return resp_parse_fail(st, resp_parse_err_bulk_crlf);
    }
    if (have > want + 1 && buf[st->pos + want + 1] != '\n') {
        return resp_parse_fail(st, resp_parse_err_bulk_crlf);
    }
    if (have < want + 2) {
        return RESP_PARSE_STEP_MORE;
    }
    /* mb_count refused more bulks than argv has room for. */
    assert(st->argc < cmd->argv_cap);
    if (!resp_parse_add_arg(st, cmd, st->pos, want)) {
        return RESP_PARSE_STEP_NEXT;
    }
    st->pos += want + 2;
    st->args_left--;
    if (st->args_left == 0) {
        st->state = RESP_PARSE_S_DONE;
    } else {
        st->state = RESP_PARSE_S_BULK_LINE;
        st->line_start = st->pos;
    }
    return RESP_PARSE_STEP_NEXT;
}

enum resp_parse_rc
resp_parse_command(struct resp_parse *st, const char *buf, size_t len,
                   struct resp_command *cmd)
{
    enum resp_parse_step step;

    /* The caller gives back at least what it gave before. */
    assert(len >= st->pos);

    cmd->consumed = 0;
    cmd->error = NULL;
    for (;;) {
        switch ((enum resp_parse_state) st->state) {
        case RESP_PARSE_S_START:
            step = resp_parse_start(st, buf, len);
            break;
        case RESP_PARSE_S_INLINE:
            step = resp_parse_inline(st, buf, len, cmd);
            break;
        case RESP_PARSE_S_MB_COUNT:
            step = resp_parse_mb_count(st, buf, len, cmd);
            break;
        case RESP_PARSE_S_BULK_LINE:
            step = resp_parse_bulk_line(st, buf, len);
            break;
        case RESP_PARSE_S_BULK_DATA:
            step = resp_parse_bulk_data(st, buf, len, cmd);
            break;
        case RESP_PARSE_S_DONE:
            cmd->argc = st->argc;
            cmd->consumed = st->pos;
            return RESP_PARSE_DONE;
        case RESP_PARSE_S_ERROR:
            cmd->argc = st->argc;
            cmd->error = st->error;
            return RESP_PARSE_ERROR;
        default:
            /* Only this file writes st->state: memory was overwritten. */
            assert(!"resp_parse: corrupt state");
            cmd->argc = 0;
            cmd->error = resp_parse_err_state;
            return RESP_PARSE_ERROR;
        }
        if (step == RESP_PARSE_STEP_MORE) {
            cmd->argc = st->argc;
            return RESP_PARSE_AGAIN;
        }
    }
}
