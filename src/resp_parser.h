/*
 * resp_parser: a pure, incremental RESP2 command parser: multibulk
 * ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and inline ("GET k\r\n") commands.
 * No I/O, no allocation: arguments are offsets into the caller's buffer,
 * written to the caller's array (capacity in, count out).  The buffer
 * always starts at the command's first byte; after RESP_PARSE_AGAIN the
 * caller calls again with more bytes, and the state saved in
 * struct resp_parse means parsing resumes where it stopped.
 *
 * Errors are worded as Redis words them ("Protocol error: invalid bulk
 * length"); after one the connection is closed, as Redis does.
 */
#ifndef RCP_RESP_PARSER_H
#define RCP_RESP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#define RESP_PARSE_INLINE_MAX (64 * 1024)         /* Redis: 64 KiB */
#define RESP_PARSE_BULK_MAX   (512 * 1024 * 1024) /* proto-max-bulk-len */

enum resp_parse_rc {
    RESP_PARSE_DONE = 0, /* cmd complete: consumed bytes used */
    RESP_PARSE_AGAIN,
    RESP_PARSE_ERROR /* cmd->error is a static message */
};

struct resp_arg {
    size_t off; /* into the caller's buffer */
    size_t len;
};

struct resp_command {
    struct resp_arg *argv;     /* in: caller's array */
    size_t           argv_cap; /* in: more arguments is an error */
    size_t           argc;     /* out */
    size_t           consumed; /* out on DONE: bytes of this command */
    const char      *error;    /* out on ERROR: without "-ERR " prefix */
};

/* Opaque to callers; zeroed by resp_parse_init(). */
struct resp_parse {
    unsigned    state;      /* enum resp_parse_state in resp_parser.c */
    size_t      pos;        /* next byte to examine; on DONE: consumed */
    int64_t     args_left;  /* multibulk: bulks still to come */
    int64_t     bulk_len;   /* multibulk: bytes in the current bulk */
    size_t      argc;       /* arguments written to cmd->argv so far */
    size_t      line_start; /* offset of the '*' or '$' being read */
    const char *error;      /* borrowed: static text, once in ERROR */
};

void resp_parse_init(struct resp_parse *st);

/* An empty line or an inline command of only spaces is skipped, as Redis
 * does: DONE with argc 0 and consumed set.  So are "*0\r\n" and "*-1\r\n".
 *
 * Between calls for one command the caller keeps the bytes already given
 * (the buffer may move: only offsets are kept) and passes the same argv
 * array, whose first argc entries are already filled.  After DONE the
 * next command starts at buf + consumed with a fresh resp_parse_init();
 * calling again without it repeats the DONE or ERROR. */
enum resp_parse_rc resp_parse_command(struct resp_parse *st, const char *buf,
                                      size_t len, struct resp_command *cmd);

#endif
