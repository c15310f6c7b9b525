/*
 * resp: the Redis-protocol front end's command table and reply encoding.
 * Pure: given a parsed command it either appends the whole answer (PING,
 * ECHO, COMMAND, errors ...) or tells the caller to look keys up (GET,
 * MGET), which the caller answers with the encoders below.
 */
#ifndef RCP_RESP_H
#define RCP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "buf.h"
#include "resp_parser.h"

enum resp_action {
    RESP_ACTION_REPLIED = 0, /* the answer is in out */
    RESP_ACTION_CLOSE,       /* answer in out; close after writing */
    RESP_ACTION_GET,         /* caller answers GET argv[1] */
    RESP_ACTION_MGET,        /* caller answers MGET argv[1..argc) */
    RESP_ACTION_SESSION,     /* known, arity checked: the caller's
                                resp_session answers it */
    RESP_ACTION_FORWARD,     /* a read-only command the caller sends
                                to Redis uncached (argv[1..] keys) */
    RESP_ACTION_NOMEM        /* out could not grow */
};

/* Decides what cmd (argument offsets into buf) asks for.  db is the
 * configured --redis-db, the only one SELECT accepts. */
enum resp_action resp_dispatch(const char *buf, const struct resp_command *cmd,
                               uint32_t db, struct buf *out);

/* For MULTI: 0 when cmd is a command the port serves, with a valid
 * number of arguments; otherwise appends Redis' error for it ("unknown
 * command", "wrong number of arguments") and returns 1; -ENOMEM. */
int resp_check_command(const char *buf, const struct resp_command *cmd,
                       struct buf *out);

/* True when cmd (known to the table) reads keys: every argument after
 * its name is a key (GET, MGET, EXISTS, TTL, PTTL, STRLEN, TYPE). */
bool resp_command_reads_keys(const char *buf, const struct resp_command *cmd);

/* True when cmd's name (argv[0]) is lower, case-insensitively. */
bool resp_command_is(const char *buf, const struct resp_command *cmd,
                     const char *lower);
/* True when argument a is lower, case-insensitively. */
bool resp_arg_equals(const char *buf, const struct resp_arg *a,
                     const char *lower);

/* Longest bulk header: "$" + 20 digits + CRLF. */
#define RESP_BULK_HEAD_MAX 24

/* Writes "$<len>\r\n" into dst (RESP_BULK_HEAD_MAX bytes); returns its
 * length.  No snprintf: this is on every hit. */
size_t resp_format_bulk_head(char *dst, size_t len);

/* Makes a bulk string of the len bytes that were copied
 * RESP_BULK_HEAD_MAX bytes past out's end, with 2 more bytes of room
 * after them (how a cache hit is copied: worker_cache_copy): writes the
 * header before them, moves them up against it and adds the CRLF. */
void resp_end_bulk_in_place(struct buf *out, size_t len);

/* Encoders; each returns 0 or -ENOMEM. */
int resp_append_status(struct buf *out, const char *s);
/* msg is sent after "-", with CR and LF replaced by spaces. */
int resp_append_error(struct buf *out, const char *msg, size_t len);
int resp_append_bulk(struct buf *out, const void *data, size_t len);
int resp_append_nil(struct buf *out);
int resp_append_array(struct buf *out, size_t n);
int resp_append_integer(struct buf *out, int64_t n);

/* The answer to GET for a backend outcome: the value, nil for an absent
 * key, Redis' own error for a key of another type, and our error naming
 * the failure when Redis could not answer.  data/len are the value or
 * Redis' error text.  0 or -ENOMEM. */
int resp_append_backend_reply(struct buf *out, enum backend_result r,
                              const void *data, size_t len);

/* MGET answers each key as Redis does, a value or nil (absent, or not a
 * string), unless Redis could not answer for one of them: that fails
 * the whole command, with resp_append_backend_reply's error. */
bool resp_backend_fails_mget(enum backend_result r);
int  resp_append_mget_item(struct buf *out, enum backend_result r,
                           const void *data, size_t len);

#endif
