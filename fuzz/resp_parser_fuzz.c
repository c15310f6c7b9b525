/*
 * resp_parser_fuzz: libFuzzer harness for resp_parser.c.
 *
 * The input is read as a client's byte stream: commands are parsed one
 * after another, each starting at the previous one's end, until one is
 * incomplete or wrong.  For each command the oracle is that the parser
 * cannot tell how the bytes arrived:
 *   - whole: all remaining bytes in one call;
 *   - split: a prefix of k bytes, then the whole, for a few k (the
 *     middle, the ends, and one picked from the input's bytes);
 *   - bytewise: one more byte per call, for short commands;
 * all give the same rc, argc, arguments, consumed and error.  Prefixes
 * are copied to a buffer of exactly their size, so that ASan sees any
 * read past len, and so that a parser keeping a pointer instead of an
 * offset across calls would read freed memory.
 *
 * Also checked on every answer: argc <= argv_cap, arguments inside the
 * consumed bytes, consumed >= 1 on DONE, and errors that start with
 * "Protocol error: ".
 *
 * Build: make fuzz-resp (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resp_parser.h"

/* Small enough that "*33" style inputs reach "too many arguments". */
#define FUZZ_ARGV_CAP       32
#define FUZZ_BYTEWISE_MAX   512     /* longer commands: skip bytewise */

struct fuzz_outcome {
    enum resp_parse_rc rc;
    size_t             argc;
    size_t             consumed;
    const char        *error;
    struct resp_arg    argv[FUZZ_ARGV_CAP];
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_require(int ok, const char *what, size_t at)
{
    if (!ok) {
        fprintf(stderr, "resp_parser_fuzz: %s (at %zu)\n", what, at);
        abort();
    }
}

static void
fuzz_record(struct fuzz_outcome *o, enum resp_parse_rc rc,
            const struct resp_command *cmd)
{
    o->rc = rc;
    o->argc = cmd->argc;
    o->consumed = cmd->consumed;
    o->error = cmd->error;
}

static struct resp_command
fuzz_command(struct fuzz_outcome *o)
{
    struct resp_command cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.argv = o->argv;
    cmd.argv_cap = FUZZ_ARGV_CAP;
    return cmd;
}

/* The checks that hold for any single answer. */
static void
fuzz_check_outcome(const struct fuzz_outcome *o, size_t len)
{
    size_t i;

    fuzz_require(o->argc <= FUZZ_ARGV_CAP, "argc over argv_cap", o->argc);
    switch (o->rc) {
    case RESP_PARSE_DONE:
        fuzz_require(o->error == NULL, "DONE with an error", 0);
        fuzz_require(o->consumed >= 1 && o->consumed <= len,
                     "consumed outside the input", o->consumed);
        for (i = 0; i < o->argc; i++) {
            fuzz_require(o->argv[i].off <= o->consumed
                         && o->argv[i].len <= o->consumed - o->argv[i].off,
                         "argument outside the command", i);
        }
        break;
    case RESP_PARSE_AGAIN:
        fuzz_require(o->error == NULL && o->consumed == 0,
                     "AGAIN with an error or consumed", 0);
        break;
    case RESP_PARSE_ERROR:
        fuzz_require(o->error != NULL
                     && strncmp(o->error, "Protocol error: ", 16) == 0,
                     "ERROR without a Protocol error message", 0);
        break;
    default:
        fuzz_require(0, "unknown rc", (size_t) o->rc);
    }
}

static void
fuzz_same(const struct fuzz_outcome *a, const struct fuzz_outcome *b,
          const char *how, size_t split)
{
    size_t i;

    if (a->rc != b->rc || a->argc != b->argc || a->consumed != b->consumed
        || a->error != b->error)
    {
        fprintf(stderr, "resp_parser_fuzz: %s at %zu: rc %d/%d argc %zu/%zu "
                "consumed %zu/%zu error %s/%s\n", how, split, (int) a->rc,
                (int) b->rc, a->argc, b->argc, a->consumed, b->consumed,
                a->error ? a->error : "-", b->error ? b->error : "-");
        abort();
    }
    if (a->rc != RESP_PARSE_DONE) {
        return;
    }
    for (i = 0; i < a->argc; i++) {
        fuzz_require(a->argv[i].off == b->argv[i].off
                     && a->argv[i].len == b->argv[i].len,
                     "arguments differ", i);
    }
}

static void
fuzz_parse_whole(const char *buf, size_t len, struct fuzz_outcome *o)
{
    struct resp_parse   st;
    struct resp_command cmd = fuzz_command(o);

    resp_parse_init(&st);
    fuzz_record(o, resp_parse_command(&st, buf, len, &cmd), &cmd);
    fuzz_check_outcome(o, len);
}

/* buf[0..split) from an exact-size copy, then all of buf if needed. */
static void
fuzz_parse_split(const char *buf, size_t len, size_t split,
                 struct fuzz_outcome *o)
{
    struct resp_parse   st;
    struct resp_command cmd = fuzz_command(o);
    char               *prefix = malloc(split > 0 ? split : 1);
    enum resp_parse_rc  rc;

    fuzz_require(prefix != NULL, "malloc failed", split);
    memcpy(prefix, buf, split);
    resp_parse_init(&st);
    rc = resp_parse_command(&st, prefix, split, &cmd);
    fuzz_record(o, rc, &cmd);
    fuzz_check_outcome(o, split);
    free(prefix);
    if (rc == RESP_PARSE_AGAIN) {
        fuzz_record(o, resp_parse_command(&st, buf, len, &cmd), &cmd);
        fuzz_check_outcome(o, len);
    }
}

/* One more byte per call up to the first answer that is not AGAIN. */
static void
fuzz_parse_bytewise(const char *buf, size_t len, struct fuzz_outcome *o)
{
    struct resp_parse   st;
    struct resp_command cmd = fuzz_command(o);
    size_t              k;

    resp_parse_init(&st);
    for (k = 0; k <= len; k++) {
        fuzz_record(o, resp_parse_command(&st, buf, k, &cmd), &cmd);
        if (o->rc != RESP_PARSE_AGAIN) {
            break;
        }
    }
    fuzz_check_outcome(o, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz_outcome whole, other;
    const char                *in = (const char *) data;
    size_t                     off = 0;
    uint32_t                   seed = 2166136261u;
    size_t                     i;

    /* FNV-1a over the input: a split point the input chooses, so the
     * fuzzer can steer it without a header byte in every corpus file. */
    for (i = 0; i < size; i++) {
        seed = (seed ^ data[i]) * 16777619u;
    }
    for (;;) {
        size_t rem = size - off;
        size_t upto, splits[4], s;

        fuzz_parse_whole(in + off, rem, &whole);
        /* Split inside the command; past its end there is nothing new,
         * and copying the rest for every command would be quadratic. */
        upto = whole.rc == RESP_PARSE_DONE ? whole.consumed : rem;
        splits[0] = upto / 2;
        splits[1] = upto > 0 ? upto - 1 : 0;
        splits[2] = upto > 0 ? 1 : 0;
        splits[3] = (seed + off) % (upto + 1);
        for (s = 0; s < 4; s++) {
            fuzz_parse_split(in + off, rem, splits[s], &other);
            fuzz_same(&whole, &other, "split", splits[s]);
        }
        if (upto <= FUZZ_BYTEWISE_MAX) {
            fuzz_parse_bytewise(in + off, rem, &other);
            fuzz_same(&whole, &other, "bytewise", 0);
        }
        if (whole.rc != RESP_PARSE_DONE) {
            break;
        }
        off += whole.consumed;
    }
    return 0;
}
