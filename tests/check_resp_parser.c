/*
 * check_resp_parser: unit tests for resp_parser.c.
 *
 * The table holds one row per behaviour, good and bad input alike.
 * Every row is parsed three ways and must give the same answer each
 * time: all at once; fed one more byte per call with the same state;
 * and split in two at every point (prefix, then the whole).  Each call
 * sees its bytes copied flush against a PROT_NONE page, so a read past
 * len faults, and at a new address, so a parser keeping a pointer into
 * an earlier buffer instead of an offset would read stale bytes.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "resp_parser.h"

#define CASE_ARGS_MAX   8       /* arguments a row spells out */
#define CAP_DEFAULT     16      /* argv_cap unless a row says */
#define ALL             SIZE_MAX  /* consumed: the whole input */
#define SPLIT_EVERY_MAX 2048    /* longer rows: split at sampled points */

struct bytes {
    const char *p;              /* NULL: n bytes of the row's fill byte */
    size_t      n;
};

#define B(s)    { (s), sizeof(s) - 1 }
#define FILL(n) { NULL, (n) }

/* Input is head, then fill_len copies of fill, then tail. */
struct case_row {
    struct bytes        head;
    size_t              fill_len;
    char                fill;
    struct bytes        tail;
    size_t              cap;            /* 0: CAP_DEFAULT */
    bool                cap_zero;       /* argv NULL, argv_cap 0 */
    enum resp_parse_rc  rc;
    size_t              argc;
    struct bytes        args[CASE_ARGS_MAX];
    size_t              consumed;       /* on DONE; ALL: the input */
    const char         *error;          /* on ERROR: a substring */
    const char         *why;
};

#define DONE  RESP_PARSE_DONE
#define AGAIN RESP_PARSE_AGAIN
#define ERR   RESP_PARSE_ERROR

#define SIXTEEN_BULKS                                                       \
    "$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n"   \
    "$1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\n$1\r\nj\r\n$1\r\nk\r\n$1\r\nl\r\n"   \
    "$1\r\nm\r\n$1\r\nn\r\n$1\r\no\r\n$1\r\np\r\n"

static const struct case_row cases[] = {
    /* --- multibulk: valid ------------------------------------------- */
    { .head = B("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), .rc = DONE, .argc = 2,
      .args = { B("GET"), B("k") }, .consumed = ALL,
      .why = "a plain GET" },
    { .head = B("*1\r\n$4\r\nPING\r\n"), .rc = DONE, .argc = 1,
      .args = { B("PING") }, .consumed = ALL, .why = "one argument" },
    { .head = B("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n"),
      .rc = DONE, .argc = 3,
      .args = { B("SET"), B("k"), B("0123456789") }, .consumed = ALL,
      .why = "a two-digit bulk length" },
    { .head = B("*0\r\n"), .rc = DONE, .argc = 0, .consumed = 4,
      .why = "*0 is an empty command, skipped as Redis does" },
    { .head = B("*-1\r\n"), .rc = DONE, .argc = 0, .consumed = 5,
      .why = "*-1 is an empty command too" },
    { .head = B("*-42\r\n"), .rc = DONE, .argc = 0, .consumed = 6,
      .why = "Redis takes any count <= 0 as empty" },
    { .head = B("*-9223372036854775808\r\n"), .rc = DONE, .argc = 0,
      .consumed = ALL, .why = "INT64_MIN is a number string2ll accepts" },
    { .head = B("*1\r\n$0\r\n\r\n"), .rc = DONE, .argc = 1,
      .args = { B("") }, .consumed = ALL, .why = "an empty bulk" },
    { .head = B("*2\r\n$3\r\nGET\r\n$5\r\na\0b\r\n\r\n"), .rc = DONE,
      .argc = 2, .args = { B("GET"), B("a\0b\r\n") }, .consumed = ALL,
      .why = "NUL and CRLF inside a bulk are data" },
    { .head = B("*1\r\n$4\r\n\r\n\r\n\r\n"), .rc = DONE, .argc = 1,
      .args = { B("\r\n\r\n") }, .consumed = ALL,
      .why = "a bulk made only of CRLFs" },
    { .head = B("*1\r\n$3\r\n\xff\x80\x01\r\n"), .rc = DONE, .argc = 1,
      .args = { B("\xff\x80\x01") }, .consumed = ALL,
      .why = "high and control bytes in a bulk" },
    { .head = B("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n"), .rc = DONE,
      .argc = 1, .args = { B("PING") }, .consumed = 14,
      .why = "pipeline: consumed stops at the first command's end" },
    { .head = B("*1\r\n$4\r\nPING\r\nPING\r\n"), .rc = DONE, .argc = 1,
      .args = { B("PING") }, .consumed = 14,
      .why = "pipeline: an inline command after a multibulk one" },
    { .head = B("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI"), .rc = DONE,
      .argc = 1, .args = { B("PING") }, .consumed = 14,
      .why = "pipeline: a partial second command does not matter" },
    { .head = B("*16\r\n" SIXTEEN_BULKS), .rc = DONE, .argc = 16,
      .args = { B("a"), B("b"), B("c"), B("d"), B("e"), B("f"), B("g"),
                B("h") },
      .consumed = ALL, .why = "as many arguments as argv holds" },
    { .head = B("*2\r\n$1\r\na\r\n$1\r\nb\r\n"), .cap = 2, .rc = DONE,
      .argc = 2, .args = { B("a"), B("b") }, .consumed = ALL,
      .why = "argv exactly full" },
    { .head = B("*1\r\n$70000\r\n"), .fill_len = 70000, .fill = 'x',
      .tail = B("\r\n"), .rc = DONE, .argc = 1, .args = { FILL(70000) },
      .consumed = ALL, .why = "a bulk longer than the inline limit" },

    /* --- multibulk: incomplete --------------------------------------- */
    { .head = B("*"), .rc = AGAIN, .why = "only the star" },
    { .head = B("*1\r"), .rc = AGAIN, .why = "count's CR without its LF" },
    { .head = B("*2\r\n$3\r\nGET\r\n"), .rc = AGAIN, .argc = 1,
      .why = "one bulk of two" },
    { .head = B("*1\r\n$3\r\nGE"), .rc = AGAIN, .why = "bulk cut short" },
    { .head = B("*1\r\n$3\r\nGET"), .rc = AGAIN,
      .why = "bulk without its CRLF yet" },
    { .head = B("*1\r\n$3\r\nGET\r"), .rc = AGAIN,
      .why = "bulk with half its CRLF" },
    { .head = B("*1048576\r\n"), .cap = 1048576, .rc = AGAIN,
      .why = "a count of 1024*1024 is accepted" },
    { .head = B("*1\r\n$536870912\r\n"), .rc = AGAIN,
      .why = "a bulk of exactly proto-max-bulk-len is accepted" },
    { .head = B("*"), .fill_len = 65535, .fill = '1', .rc = AGAIN,
      .why = "a 64 KiB count line without CR is still waited for" },
    { .head = B("*1\r\n$"), .fill_len = 65535, .fill = '9', .rc = AGAIN,
      .why = "a 64 KiB bulk line without CR is still waited for" },

    /* --- multibulk: errors ------------------------------------------- */
    { .head = B("*1048577\r\n"), .rc = ERR,
      .error = "Protocol error: invalid multibulk length",
      .why = "count over 1024*1024" },
    { .head = B("*-9223372036854775809\r\n"), .rc = ERR,
      .error = "invalid multibulk length",
      .why = "a negative count below INT64_MIN" },
    { .head = B("*99999999999999999999\r\n"), .rc = ERR,
      .error = "invalid multibulk length",
      .why = "a count that overflows 64 bits" },
    { .head = B("*18446744073709551617\r\n"), .rc = ERR,
      .error = "invalid multibulk length",
      .why = "a count that wraps 2^64 to 1" },
    { .head = B("*9223372036854775808\r\n"), .rc = ERR,
      .error = "invalid multibulk length",
      .why = "2^63 is past INT64_MAX, not a negative (empty) count" },
    { .head = B("*9223372036854775807\r\n"), .rc = ERR,
      .error = "invalid multibulk length",
      .why = "INT64_MAX is a number, but over 1024*1024" },
    { .head = B("*01\r\n"), .rc = ERR, .error = "invalid multibulk length",
      .why = "a leading zero, as string2ll refuses" },
    { .head = B("*+1\r\n"), .rc = ERR, .error = "invalid multibulk length",
      .why = "a plus sign" },
    { .head = B("*-\r\n"), .rc = ERR, .error = "invalid multibulk length",
      .why = "a lone minus" },
    { .head = B("*\r\n"), .rc = ERR, .error = "invalid multibulk length",
      .why = "no digits" },
    { .head = B("* 1\r\n"), .rc = ERR, .error = "invalid multibulk length",
      .why = "a blank before the count" },
    { .head = B("*1x\r\n"), .rc = ERR, .error = "invalid multibulk length",
      .why = "junk after the count" },
    { .head = B("*1\rX"), .rc = ERR, .error = "invalid multibulk length",
      .why = "count's CR followed by something else than LF" },
    { .head = B("*"), .fill_len = 65536, .fill = '1', .rc = ERR,
      .error = "Protocol error: too big mbulk count string",
      .why = "count line over 64 KiB without CR" },
    { .head = B("*"), .fill_len = 65535, .fill = '1', .tail = B("\r\n"),
      .rc = ERR, .error = "invalid multibulk length",
      .why = "CR just inside 64 KiB: not too big, but no number" },
    { .head = B("*17\r\n"), .rc = ERR,
      .error = "Protocol error: too many arguments",
      .why = "more bulks announced than argv holds, refused at once" },
    { .head = B("*1\r\n$1\r\na\r\n"), .cap_zero = true, .rc = ERR,
      .error = "too many arguments", .why = "no argv at all" },
    { .head = B("*1\r\n+PING\r\n"), .rc = ERR,
      .error = "Protocol error: expected '$', got '+'",
      .why = "a simple string where a bulk must be" },
    { .head = B("*2\r\n$1\r\na\r\n*1\r\n"), .rc = ERR, .argc = 1,
      .error = "expected '$', got '*'",
      .why = "a new command before the last bulk" },
    { .head = B("*1\r\n\r\n"), .rc = ERR,
      .error = "Protocol error: expected '$', got ' '",
      .why = "CR shown as a space, as Redis sanitizes errors" },
    { .head = B("*1\r\n\xff"), .rc = ERR, .error = "expected '$', got '\xff'",
      .why = "a high byte is shown as is" },
    { .head = B("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"), .rc = ERR,
      .argc = 2, .error = "expected '$', got 'f'",
      .why = "Redis' protocol.tcl: wrong multibulk payload header" },
    { .head = B("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n"), .rc = ERR,
      .argc = 2, .error = "invalid bulk length",
      .why = "Redis' protocol.tcl: negative multibulk payload length" },
    { .head = B("*1\r\n$-1\r\n"), .rc = ERR,
      .error = "Protocol error: invalid bulk length",
      .why = "a null bulk is not an argument" },
    { .head = B("*1\r\n$536870913\r\n"), .rc = ERR,
      .error = "invalid bulk length", .why = "bulk over 512 MiB" },
    { .head = B("*1\r\n$99999999999999999999999\r\n"), .rc = ERR,
      .error = "invalid bulk length", .why = "bulk length too long" },
    { .head = B("*1\r\n$9223372036854775808\r\n"), .rc = ERR,
      .error = "invalid bulk length", .why = "bulk length of 2^63" },
    { .head = B("*1\r\n$abc\r\n"), .rc = ERR, .error = "invalid bulk length",
      .why = "bulk length not a number" },
    { .head = B("*1\r\n$\r\n"), .rc = ERR, .error = "invalid bulk length",
      .why = "bulk length empty" },
    { .head = B("*1\r\n$03\r\nGET\r\n"), .rc = ERR,
      .error = "invalid bulk length", .why = "bulk length with leading 0" },
    { .head = B("*1\r\n$3\rX"), .rc = ERR, .error = "invalid bulk length",
      .why = "bulk line's CR followed by something else than LF" },
    { .head = B("*1\r\n$"), .fill_len = 65536, .fill = '9', .rc = ERR,
      .error = "Protocol error: too big bulk count string",
      .why = "bulk line over 64 KiB without CR" },
    { .head = B("*1\r\n$3\r\nGETX\r\n"), .rc = ERR,
      .error = "Protocol error: expected CRLF after bulk data",
      .why = "bulk longer than announced" },
    { .head = B("*1\r\n$3\r\nGET\rX"), .rc = ERR,
      .error = "expected CRLF after bulk data",
      .why = "bulk followed by CR and junk" },
    { .head = B("*1\r\n$3\r\nGET\n\r"), .rc = ERR,
      .error = "expected CRLF after bulk data",
      .why = "bulk followed by LF CR" },
    { .head = B("*1\r\n$3\r\nGETX"), .rc = ERR,
      .error = "expected CRLF after bulk data",
      .why = "a wrong byte after the bulk fails before the LF arrives" },

    /* --- inline: valid ----------------------------------------------- */
    { .head = B("PING\r\n"), .rc = DONE, .argc = 1, .args = { B("PING") },
      .consumed = ALL, .why = "inline with CRLF" },
    { .head = B("PING\n"), .rc = DONE, .argc = 1, .args = { B("PING") },
      .consumed = ALL, .why = "inline with a bare LF, as Redis accepts" },
    { .head = B("GET k\r\n"), .rc = DONE, .argc = 2,
      .args = { B("GET"), B("k") }, .consumed = ALL,
      .why = "inline with two arguments" },
    { .head = B("  GET \t k  \r\n"), .rc = DONE, .argc = 2,
      .args = { B("GET"), B("k") }, .consumed = ALL,
      .why = "runs of spaces and tabs separate" },
    { .head = B("GET k\rx\n"), .rc = DONE, .argc = 3,
      .args = { B("GET"), B("k"), B("x") }, .consumed = ALL,
      .why = "a CR inside the line separates, as sdssplitargs does" },
    { .head = B("GET a\vb\n"), .rc = DONE, .argc = 2,
      .args = { B("GET"), B("a\vb") }, .consumed = ALL,
      .why = "VT inside an unquoted argument is part of it" },
    { .head = B("\v\fGET\n"), .rc = DONE, .argc = 1, .args = { B("GET") },
      .consumed = ALL, .why = "VT and FF are skipped between arguments" },
    { .head = B("GET a\0b\n"), .rc = DONE, .argc = 2,
      .args = { B("GET"), B("a\0b") }, .consumed = ALL,
      .why = "NUL is an ordinary byte of an inline argument" },
    { .head = B("\r\n"), .rc = DONE, .argc = 0, .consumed = 2,
      .why = "empty line is skipped" },
    { .head = B("\n"), .rc = DONE, .argc = 0, .consumed = 1,
      .why = "bare LF is an empty line" },
    { .head = B("   \t \r\n"), .rc = DONE, .argc = 0, .consumed = ALL,
      .why = "a line of blanks is empty" },
    { .head = B("SET k \"hello world\"\r\n"), .rc = DONE, .argc = 3,
      .args = { B("SET"), B("k"), B("hello world") }, .consumed = ALL,
      .why = "double quotes keep a space, quotes stripped" },
    { .head = B("SET k 'a b'\r\n"), .rc = DONE, .argc = 3,
      .args = { B("SET"), B("k"), B("a b") }, .consumed = ALL,
      .why = "single quotes keep a space" },
    { .head = B("SET k \"\"\r\n"), .rc = DONE, .argc = 3,
      .args = { B("SET"), B("k"), B("") }, .consumed = ALL,
      .why = "an empty quoted argument" },
    { .head = B("ECHO 'a\\nb'\n"), .rc = DONE, .argc = 2,
      .args = { B("ECHO"), B("a\\nb") }, .consumed = ALL,
      .why = "a backslash in single quotes is literal" },
    { .head = B("\"a\"\v'b'\t\n"), .rc = DONE, .argc = 2,
      .args = { B("a"), B("b") }, .consumed = ALL,
      .why = "a closing quote followed by any blank" },
    { .head = B("GET \"k\"\r\n"), .rc = DONE, .argc = 2,
      .args = { B("GET"), B("k") }, .consumed = ALL,
      .why = "a quote closing right before the CRLF" },
    { .head = B("PING\r\nPING\r\n"), .rc = DONE, .argc = 1,
      .args = { B("PING") }, .consumed = 6,
      .why = "inline pipeline: consumed stops at the first LF" },
    { .head = B(" *1\r\n$4\r\nPING\r\n"), .rc = DONE, .argc = 1,
      .args = { B("*1") }, .consumed = 5,
      .why = "leading junk: a line not starting with '*' is inline" },
    { .head = B("$4\r\nPING\r\n"), .rc = DONE, .argc = 1,
      .args = { B("$4") }, .consumed = 4,
      .why = "a bulk without a multibulk is an inline line" },
    { .head = B(""), .fill_len = 65536, .fill = 'a', .tail = B("\n"),
      .rc = DONE, .argc = 1, .args = { FILL(65536) }, .consumed = ALL,
      .why = "an inline line of exactly 64 KiB" },
    { .head = B("a b\n"), .cap = 2, .rc = DONE, .argc = 2,
      .args = { B("a"), B("b") }, .consumed = ALL,
      .why = "inline filling argv exactly" },

    /* --- inline: incomplete and errors ------------------------------- */
    { .head = B(""), .rc = AGAIN, .why = "no bytes yet" },
    { .head = B("GET k"), .rc = AGAIN, .argc = 0,
      .why = "no newline yet" },
    { .head = B("GET k\r"), .rc = AGAIN, .why = "CR without LF yet" },
    { .head = B(""), .fill_len = 65536, .fill = 'a', .rc = AGAIN,
      .why = "64 KiB without a newline is still waited for" },
    { .head = B(""), .fill_len = 65537, .fill = 'a', .rc = ERR,
      .error = "Protocol error: too big inline request",
      .why = "over 64 KiB without a newline" },
    { .head = B(""), .fill_len = 65536, .fill = 'a', .tail = B("\r\n"),
      .rc = ERR, .error = "too big inline request",
      .why = "the CR counts in the 64 KiB" },
    { .head = B("a b c\n"), .cap = 2, .rc = ERR, .argc = 2,
      .error = "Protocol error: too many arguments",
      .why = "inline with more arguments than argv holds" },
    { .head = B("x\n"), .cap_zero = true, .rc = ERR,
      .error = "too many arguments", .why = "inline with no argv" },
    { .head = B("SET k \"abc\r\n"), .rc = ERR, .argc = 2,
      .error = "Protocol error: unbalanced quotes in request",
      .why = "an unterminated double quote" },
    { .head = B("SET k 'abc\r\n"), .rc = ERR, .argc = 2,
      .error = "unbalanced quotes in request",
      .why = "an unterminated single quote" },
    { .head = B("SET k \"a\"b\r\n"), .rc = ERR, .argc = 2,
      .error = "unbalanced quotes in request",
      .why = "a closing quote followed by a non-blank" },
    { .head = B("ECHO \"a\\\n"), .rc = ERR, .argc = 1,
      .error = "unbalanced quotes in request",
      .why = "a backslash ending the line is literal, then unbalanced" },
    { .head = B("SET k \"a\\nb\"\r\n"), .rc = ERR, .argc = 2,
      .error = "Protocol error: escapes in inline quoted arguments are not "
               "supported",
      .why = "a backslash escape in double quotes cannot be an offset" },
    { .head = B("SET k \"\\x41\"\r\n"), .rc = ERR, .argc = 2,
      .error = "escapes in inline quoted arguments are not supported",
      .why = "a hex escape in double quotes" },
    { .head = B("SET k 'it\\'s'\r\n"), .rc = ERR, .argc = 2,
      .error = "escapes in inline quoted arguments are not supported",
      .why = "\\' is the one escape in single quotes" },
    { .head = B("SET k a\"b c\"\r\n"), .rc = ERR, .argc = 2,
      .error = "Protocol error: quotes inside an inline argument are not "
               "supported",
      .why = "Redis would splice a\"b c\" into \"ab c\"" },
};

/* What one call returned, copied out so calls can be compared. */
struct result {
    enum resp_parse_rc rc;
    size_t             argc;
    size_t             consumed;
    const char        *error;
};

/* Data pages between two PROT_NONE pages: bytes placed flush against
 * the back one catch reads past len, against the front one reads before
 * buf. */
struct guarded {
    char   *map;
    size_t  map_len;
    char   *data;               /* after the front guard page */
    size_t  data_len;           /* bytes up to the back guard page */
};

static size_t
test_page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);

    ck_assert_int_gt(page, 0);
    return (size_t) page;
}

static void
guarded_init(struct guarded *g, size_t cap)
{
    size_t page = test_page_size();
    void  *map;

    g->data_len = (cap + page - 1) / page * page;
    if (g->data_len == 0) {
        g->data_len = page;
    }
    g->map_len = page + g->data_len + page;
    map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_msg(map != MAP_FAILED, "mmap(%zu) failed", g->map_len);
    g->map = map;
    g->data = g->map + page;
    ck_assert_int_eq(mprotect(g->map, page, PROT_NONE), 0);
    ck_assert_int_eq(mprotect(g->data + g->data_len, page, PROT_NONE), 0);
}

enum guard_side {
    GUARD_BACK,                 /* buf + n is the guard page */
    GUARD_FRONT                 /* buf - 1 is the guard page */
};

/* Copies src[0..n) against one guard page, read-only (the parser takes
 * const bytes and must not write).  Prefixes of different lengths land
 * at different addresses, and the rest is overwritten. */
static const char *
guarded_place(struct guarded *g, const char *src, size_t n,
              enum guard_side side)
{
    char *buf = side == GUARD_BACK ? g->data + g->data_len - n : g->data;

    ck_assert_uint_le(n, g->data_len);
    ck_assert_int_eq(mprotect(g->data, g->data_len, PROT_READ | PROT_WRITE),
                     0);
    memset(g->data, '#', g->data_len);
    memcpy(buf, src, n);
    ck_assert_int_eq(mprotect(g->data, g->data_len, PROT_READ), 0);
    return buf;
}

static void
guarded_fini(struct guarded *g)
{
    ck_assert_int_eq(munmap(g->map, g->map_len), 0);
}

static char *
case_input(const struct case_row *c, size_t *n)
{
    size_t len = c->head.n + c->fill_len + c->tail.n;
    char  *in = malloc(len + 1);

    ck_assert_ptr_nonnull(in);
    memcpy(in, c->head.p, c->head.n);
    memset(in + c->head.n, c->fill, c->fill_len);
    if (c->tail.n > 0) {
        memcpy(in + c->head.n + c->fill_len, c->tail.p, c->tail.n);
    }
    *n = len;
    return in;
}

static size_t
case_cap(const struct case_row *c)
{
    if (c->cap_zero) {
        return 0;
    }
    return c->cap != 0 ? c->cap : CAP_DEFAULT;
}

/* Parses src[0..n) from a copy against the guard page; the previous
 * copy, at another address, is overwritten first. */
static struct result
parse_guarded(struct guarded *g, enum guard_side side, struct resp_parse *st,
              const char *src, size_t n, struct resp_command *cmd)
{
    struct result r;

    r.rc = resp_parse_command(st, guarded_place(g, src, n, side), n, cmd);
    r.argc = cmd->argc;
    r.consumed = cmd->consumed;
    r.error = cmd->error;
    return r;
}

/* Checks a final or AGAIN result against the row; argv is cmd's array. */
static void
check_result(const struct case_row *c, const char *in, size_t n,
             const struct result *r, const struct resp_arg *argv,
             const char *mode, size_t split)
{
    size_t i, j;

    ck_assert_msg(r->rc == c->rc, "%s [%s at %zu]: rc %d, want %d",
                  c->why, mode, split, (int) r->rc, (int) c->rc);
    ck_assert_msg(r->argc == c->argc, "%s [%s at %zu]: argc %zu, want %zu",
                  c->why, mode, split, r->argc, c->argc);
    if (c->rc == RESP_PARSE_ERROR) {
        ck_assert_msg(r->error != NULL && c->error != NULL
                      && strstr(r->error, c->error) != NULL,
                      "%s [%s at %zu]: error '%s', want '%s'", c->why, mode,
                      split, r->error ? r->error : "(null)", c->error);
        return;
    }
    ck_assert_msg(r->error == NULL, "%s [%s at %zu]: error '%s' with rc %d",
                  c->why, mode, split, r->error, (int) r->rc);
    if (c->rc != RESP_PARSE_DONE) {
        return;
    }
    ck_assert_msg(r->consumed == (c->consumed == ALL ? n : c->consumed),
                  "%s [%s at %zu]: consumed %zu", c->why, mode, split,
                  r->consumed);
    for (i = 0; i < r->argc; i++) {
        ck_assert_msg(argv[i].off <= r->consumed
                      && argv[i].len <= r->consumed - argv[i].off,
                      "%s [%s]: argument %zu outside the command", c->why,
                      mode, i);
    }
    for (i = 0; i < c->argc && i < CASE_ARGS_MAX; i++) {
        const struct bytes *want = &c->args[i];

        if (want->p == NULL && want->n == 0) {
            break;              /* the row lists no more */
        }
        ck_assert_msg(argv[i].len == want->n,
                      "%s [%s at %zu]: argument %zu has %zu bytes, want %zu",
                      c->why, mode, split, i, argv[i].len, want->n);
        if (want->p != NULL) {
            ck_assert_msg(memcmp(in + argv[i].off, want->p, want->n) == 0,
                          "%s [%s at %zu]: argument %zu differs", c->why,
                          mode, split, i);
        } else {
            /* One assertion, not one per byte: each costs Check a
             * write(2) to record the checkpoint. */
            for (j = 0; j < want->n && in[argv[i].off + j] == c->fill; j++) {
                continue;
            }
            ck_assert_msg(j == want->n, "%s [%s at %zu]: argument %zu byte "
                          "%zu", c->why, mode, split, i, j);
        }
    }
}

static struct resp_command
test_command(struct resp_arg *argv, size_t cap)
{
    struct resp_command cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.argv = argv;
    cmd.argv_cap = cap;
    return cmd;
}

START_TEST(test_table_whole)
{
    const struct case_row *c = &cases[_i];
    size_t                 n, cap = case_cap(c);
    char                  *in = case_input(c, &n);
    struct resp_arg       *argv = cap ? calloc(cap, sizeof(*argv)) : NULL;
    struct resp_command    cmd = test_command(argv, cap);
    struct resp_parse      st;
    struct result          r;
    struct guarded         g;

    ck_assert(cap == 0 || argv != NULL);
    guarded_init(&g, n);
    resp_parse_init(&st);
    r = parse_guarded(&g, GUARD_BACK, &st, in, n, &cmd);
    check_result(c, in, n, &r, argv, "whole", n);

    resp_parse_init(&st);
    r = parse_guarded(&g, GUARD_FRONT, &st, in, n, &cmd);
    check_result(c, in, n, &r, argv, "whole, front guard", n);

    /* DONE and ERROR are sticky: a second call says the same. */
    if (r.rc != RESP_PARSE_AGAIN) {
        r = parse_guarded(&g, GUARD_BACK, &st, in, n, &cmd);
        check_result(c, in, n, &r, argv, "again", n);
    }
    guarded_fini(&g);
    free(argv);
    free(in);
}
END_TEST

/* One more byte per call, same state: the first final answer must be
 * the row's, and any later call repeats it. */
START_TEST(test_table_bytewise)
{
    const struct case_row *c = &cases[_i];
    size_t                 n, k, cap = case_cap(c);
    char                  *in = case_input(c, &n);
    struct resp_arg       *argv = cap ? calloc(cap, sizeof(*argv)) : NULL;
    struct resp_command    cmd = test_command(argv, cap);
    struct resp_parse      st;
    struct result          r;
    struct guarded         g;
    bool                   guard_each = n <= SPLIT_EVERY_MAX;

    ck_assert(cap == 0 || argv != NULL);
    guarded_init(&g, n);
    resp_parse_init(&st);
    r.rc = RESP_PARSE_AGAIN;
    for (k = 0; k <= n; k++) {
        if (guard_each || k == n) {
            r = parse_guarded(&g, k % 2 ? GUARD_FRONT : GUARD_BACK, &st,
                              in, k, &cmd);
        } else {
            r.rc = resp_parse_command(&st, in, k, &cmd);
            r.argc = cmd.argc;
            r.consumed = cmd.consumed;
            r.error = cmd.error;
        }
        if (r.rc != RESP_PARSE_AGAIN) {
            break;
        }
    }
    check_result(c, in, n, &r, argv, "bytewise", k);
    if (k < n) {
        r = parse_guarded(&g, GUARD_BACK, &st, in, n, &cmd);
        check_result(c, in, n, &r, argv, "bytewise then whole", k);
    }
    guarded_fini(&g);
    free(argv);
    free(in);
}
END_TEST

/* Prefix of k bytes, then the whole, for every k (sampled when long). */
START_TEST(test_table_split)
{
    const struct case_row *c = &cases[_i];
    size_t                 n, k, cap = case_cap(c);
    char                  *in = case_input(c, &n);
    struct resp_arg       *argv = cap ? calloc(cap, sizeof(*argv)) : NULL;
    struct resp_command    cmd = test_command(argv, cap);
    struct resp_parse      st;
    struct result          r;
    struct guarded         g;
    size_t                 stride = n <= SPLIT_EVERY_MAX ? 1 : n / 256;

    ck_assert(cap == 0 || argv != NULL);
    guarded_init(&g, n);
    for (k = 0; k <= n; k++) {
        if (stride > 1 && k > 64 && k + 64 < n && k % stride != 0) {
            continue;
        }
        resp_parse_init(&st);
        if (argv != NULL) {
            memset(argv, 0, cap * sizeof(*argv));
        }
        r = parse_guarded(&g, GUARD_FRONT, &st, in, k, &cmd);
        if (r.rc == RESP_PARSE_AGAIN) {
            r = parse_guarded(&g, GUARD_BACK, &st, in, n, &cmd);
        }
        check_result(c, in, n, &r, argv, "split", k);
    }
    guarded_fini(&g);
    free(argv);
    free(in);
}
END_TEST

/* Every byte but '$' where a bulk must start names itself in the error,
 * as Redis' "expected '$', got '%c'" does. */
START_TEST(test_expected_dollar)
{
    char                in[5] = { '*', '1', '\r', '\n', (char) _i };
    char                want[64];
    struct resp_arg     argv[1];
    struct resp_command cmd = test_command(argv, 1);
    struct resp_parse   st;
    enum resp_parse_rc  rc;
    char                shown = (char) _i;

    if (_i == '$') {
        return;                 /* the one byte that is right */
    }
    if (_i == 0 || _i == '\r' || _i == '\n') {
        shown = ' ';
    }
    snprintf(want, sizeof(want), "Protocol error: expected '$', got '%c'",
             shown);
    resp_parse_init(&st);
    rc = resp_parse_command(&st, in, sizeof(in), &cmd);
    ck_assert_int_eq(rc, RESP_PARSE_ERROR);
    ck_assert_str_eq(cmd.error, want);
}
END_TEST

/* A caller's loop: parse, advance by consumed, re-init, until AGAIN. */
START_TEST(test_pipeline_loop)
{
    static const char in[] =
        "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
        "PING\r\n"
        "\r\n"
        "*0\r\n"
        "*1\r\n$4\r\nb\0\r\n\r\n"
        "ECHO 'x y'\n"
        "*2\r\n$3\r\nGET\r\n$1\r\nc";
    static const char *const want[][2] = {
        { "GET", "a" }, { "PING", NULL }, { NULL, NULL }, { NULL, NULL },
        { "b\0\r\n", NULL }, { "ECHO", "x y" },
    };
    static const size_t want_len[][2] = {
        { 3, 1 }, { 4, 0 }, { 0, 0 }, { 0, 0 }, { 4, 0 }, { 4, 3 },
    };
    static const size_t want_argc[] = { 2, 1, 0, 0, 1, 2 };
    struct resp_arg     argv[4];
    struct resp_command cmd = test_command(argv, 4);
    struct resp_parse   st;
    size_t              off = 0, i, a;
    enum resp_parse_rc  rc;

    for (i = 0;; i++) {
        resp_parse_init(&st);
        rc = resp_parse_command(&st, in + off, sizeof(in) - 1 - off, &cmd);
        if (rc != RESP_PARSE_DONE) {
            break;
        }
        ck_assert_uint_lt(i, sizeof(want_argc) / sizeof(want_argc[0]));
        ck_assert_uint_eq(cmd.argc, want_argc[i]);
        for (a = 0; a < cmd.argc; a++) {
            ck_assert_uint_eq(argv[a].len, want_len[i][a]);
            ck_assert(memcmp(in + off + argv[a].off, want[i][a],
                             want_len[i][a]) == 0);
        }
        ck_assert_uint_gt(cmd.consumed, 0);
        off += cmd.consumed;
    }
    ck_assert_int_eq(rc, RESP_PARSE_AGAIN);
    ck_assert_uint_eq(i, sizeof(want_argc) / sizeof(want_argc[0]));
    ck_assert_uint_eq(cmd.argc, 1);     /* GET read, "c" still coming */
}
END_TEST

/* A resumed parse keeps only offsets: growing the buffer (which may move
 * it) between calls does not matter. */
START_TEST(test_buffer_moves)
{
    static const char   in[] = "*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
    struct resp_arg     argv[2];
    struct resp_command cmd = test_command(argv, 2);
    struct resp_parse   st;
    char               *buf = malloc(8);
    char               *grown;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, in, 8);
    resp_parse_init(&st);
    ck_assert_int_eq(resp_parse_command(&st, buf, 8, &cmd), RESP_PARSE_AGAIN);
    /* Poison the old bytes before they are released. */
    memset(buf, '#', 8);
    grown = malloc(sizeof(in));
    ck_assert_ptr_nonnull(grown);
    memcpy(grown, in, sizeof(in));
    free(buf);
    ck_assert_int_eq(resp_parse_command(&st, grown, sizeof(in) - 1, &cmd),
                     RESP_PARSE_DONE);
    ck_assert_uint_eq(cmd.argc, 2);
    ck_assert_uint_eq(cmd.consumed, sizeof(in) - 1);
    ck_assert(memcmp(grown + argv[0].off, "GET", 3) == 0);
    ck_assert(memcmp(grown + argv[1].off, "hello", 5) == 0);
    free(grown);
}
END_TEST

static Suite *
resp_parser_suite(void)
{
    Suite *s = suite_create("resp_parser");
    TCase *tc;
    int    n = (int) (sizeof(cases) / sizeof(cases[0]));

    tc = tcase_create("table_whole");
    tcase_add_loop_test(tc, test_table_whole, 0, n);
    suite_add_tcase(s, tc);

    tc = tcase_create("table_bytewise");
    tcase_add_loop_test(tc, test_table_bytewise, 0, n);
    suite_add_tcase(s, tc);

    tc = tcase_create("table_split");
    tcase_add_loop_test(tc, test_table_split, 0, n);
    suite_add_tcase(s, tc);

    tc = tcase_create("expected_dollar");
    tcase_add_loop_test(tc, test_expected_dollar, 0, 256);
    suite_add_tcase(s, tc);

    tc = tcase_create("pipeline");
    tcase_add_test(tc, test_pipeline_loop);
    tcase_add_test(tc, test_buffer_moves);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(resp_parser_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
