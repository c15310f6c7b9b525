/*
 * resp: what the Redis-protocol port answers, apart from keys.
 *
 * The proxy is a read-through cache, not a Redis: it knows GET and MGET
 * (answered by the worker through the cache), and just enough else for
 * real clients to connect, run their default pipelines and transactions
 * and stay on RESP2: PING, ECHO, QUIT, SELECT of the configured db, and
 * COMMAND (and COUNT, DOCS, INFO) for redis-cli's start-up are answered
 * here.  INFO, CONFIG, CLIENT, HELLO, AUTH, MULTI, EXEC, DISCARD, WATCH,
 * UNWATCH and RESET depend on the connection or the process: the table
 * knows
 * them (for COMMAND, arity and MULTI's checks) and resp_session.c
 * answers them.  DBSIZE, EXISTS, TTL, PTTL, STRLEN and TYPE are read
 * from Redis as they are, uncached (RESP_ACTION_FORWARD).  Everything
 * else is Redis' own "unknown command" error, worded as Redis 7 words
 * it.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "resp.h"

struct resp_command_info {
    const char *name;  /* lower case */
    int         arity; /* Redis' convention: -N means
                          at least N, counting the name */
    const char *flags; /* for COMMAND's reply */
    int         first_key, last_key, step;
};

static const struct resp_command_info resp_commands[] = {
    { "get", 2, "readonly", 1, 1, 1 },
    { "mget", -2, "readonly", 1, -1, 1 },
    { "ping", -1, "fast", 0, 0, 0 },
    { "echo", 2, "fast", 0, 0, 0 },
    { "quit", -1, "fast", 0, 0, 0 },
    { "select", 2, "fast", 0, 0, 0 },
    { "command", -1, "loading", 0, 0, 0 },
    { "config", -2, "admin", 0, 0, 0 },
    { "hello", -1, "fast", 0, 0, 0 },
    { "client", -2, "admin", 0, 0, 0 },
    { "info", -1, "loading", 0, 0, 0 },
    { "auth", -2, "fast", 0, 0, 0 },
    { "multi", 1, "fast", 0, 0, 0 },
    { "exec", 1, "loading", 0, 0, 0 },
    { "discard", 1, "fast", 0, 0, 0 },
    { "watch", -2, "fast", 1, -1, 1 },
    { "unwatch", 1, "fast", 0, 0, 0 },
    { "dbsize", 1, "readonly", 0, 0, 0 },
    { "exists", -2, "readonly", 1, -1, 1 },
    { "ttl", 2, "readonly", 1, 1, 1 },
    { "pttl", 2, "readonly", 1, 1, 1 },
    { "strlen", 2, "readonly", 1, 1, 1 },
    { "type", 2, "readonly", 1, 1, 1 },
    { "reset", 1, "fast", 0, 0, 0 },
};

#define RESP_NCOMMANDS (sizeof(resp_commands) / sizeof(resp_commands[0]))

/* ---- encoders --------------------------------------------------------- */

static int
resp_append_line(struct buf *out, char type, const char *s, size_t len)
{
    int rc = buf_reserve(out, len + 3);

    if (rc != 0) {
        return rc;
    }
    out->data[out->len++] = type;
    memcpy(out->data + out->len, s, len);
    out->len += len;
    out->data[out->len++] = '\r';
    out->data[out->len++] = '\n';
    return 0;
}

int
resp_append_status(struct buf *out, const char *s)
{
    return resp_append_line(out, '+', s, strlen(s));
}

int
resp_append_error(struct buf *out, const char *msg, size_t len)
{
    int rc = resp_append_line(out, '-', msg, len);

    if (rc != 0) {
        return rc;
    }
    /* A CR or LF inside would end the error early and desync the client;
     * Redis replaces them the same way. */
    for (size_t i = out->len - 2 - len; i < out->len - 2; i++) {
        if (out->data[i] == '\r' || out->data[i] == '\n') {
            out->data[i] = ' ';
        }
    }
    return 0;
}

static int
resp_append_number(struct buf *out, char type, int64_t n)
{
    char num[24];
    int  len = snprintf(num, sizeof(num), "%lld", (long long) n);

    return resp_append_line(out, type, num, (size_t) len);
}

int
resp_append_integer(struct buf *out, int64_t n)
{
    return resp_append_number(out, ':', n);
}

int
resp_append_array(struct buf *out, size_t n)
{
    return resp_append_number(out, '*', (int64_t) n);
}

int
resp_append_nil(struct buf *out)
{
    return buf_append(out, "$-1\r\n", 5);
}

size_t
resp_format_bulk_head(char *dst, size_t len)
{
    char   digits[20];
    size_t n = 0, pos = 0;

    do {
        digits[n++] = (char) ('0' + len % 10);
        len /= 10;
    } while (len != 0);
    dst[pos++] = '$';
    while (n > 0) {
        dst[pos++] = digits[--n];
    }
    dst[pos++] = '\r';
    dst[pos++] = '\n';
    return pos;
}

void
resp_end_bulk_in_place(struct buf *out, size_t len)
{
    char  *head = out->data + out->len;
    size_t hlen = resp_format_bulk_head(head, len);

    memmove(head + hlen, head + RESP_BULK_HEAD_MAX, len);
    out->len += hlen + len;
    out->data[out->len++] = '\r';
    out->data[out->len++] = '\n';
}

int
resp_append_bulk(struct buf *out, const void *data, size_t len)
{
    char   head[RESP_BULK_HEAD_MAX];
    size_t hlen = resp_format_bulk_head(head, len);
    int    rc = buf_reserve(out, hlen + len + 2);

    if (rc != 0) {
        return rc;
    }
    memcpy(out->data + out->len, head, hlen);
    out->len += hlen;
    if (len > 0) {
        memcpy(out->data + out->len, data, len);
    }
    out->len += len;
    out->data[out->len++] = '\r';
    out->data[out->len++] = '\n';
    return 0;
}

/* ---- dispatch --------------------------------------------------------- */

static bool
resp_arg_is(const char *buf, const struct resp_arg *a, const char *lower)
{
    size_t n = strlen(lower);

    if (a->len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char) buf[a->off + i]) != lower[i]) {
            return false;
        }
    }
    return true;
}

static const struct resp_command_info *
resp_lookup(const char *buf, const struct resp_arg *name)
{
    for (size_t i = 0; i < RESP_NCOMMANDS; i++) {
        if (resp_arg_is(buf, name, resp_commands[i].name)) {
            return &resp_commands[i];
        }
    }
    return NULL;
}

/* How much of an argument Redis prints with "%.*s": up to its first
 * NUL byte (it formats C strings), and at most max bytes. */
static size_t
resp_cstr_len(const char *s, size_t len, size_t max)
{
    const char *nul = memchr(s, '\0', len);
    size_t      n = nul != NULL ? (size_t) (nul - s) : len;

    return n < max ? n : max;
}

/*
 * Redis 7's words for a command it does not know, byte for byte
 * (processCommand): the name cut at 128 bytes, then the arguments,
 * each quoted and followed by a space, while all that totals less than
 * 128 bytes, the last cut to what is left.  resp_append_error turns CR
 * and LF, the only bytes that could break the line, into spaces.
 */
static int
resp_unknown(const char *buf, const struct resp_command *cmd, struct buf *out)
{
    char   msg[512]; /* at most 21 + 128 + 29 + 131 bytes */
    size_t n, len;
    size_t args_len = 0;

    n = (size_t) snprintf(msg, sizeof(msg), "ERR unknown command '");
    len = resp_cstr_len(buf + cmd->argv[0].off, cmd->argv[0].len, 128);
    memcpy(msg + n, buf + cmd->argv[0].off, len);
    n += len;
    n += (size_t) snprintf(msg + n, sizeof(msg) - n,
                           "', with args beginning with: ");
    for (size_t i = 1; i < cmd->argc && args_len < 128; i++) {
        len = resp_cstr_len(buf + cmd->argv[i].off, cmd->argv[i].len,
                            128 - args_len);
        msg[n++] = '\'';
        memcpy(msg + n, buf + cmd->argv[i].off, len);
        n += len;
        msg[n++] = '\'';
        msg[n++] = ' ';
        args_len += len + 3;
    }
    return resp_append_error(out, msg, n);
}

static int
resp_error_str(struct buf *out, const char *msg)
{
    return resp_append_error(out, msg, strlen(msg));
}

static int
resp_error_arity(struct buf *out, const char *name)
{
    char msg[96];
    int  n = snprintf(msg, sizeof(msg),
                      "ERR wrong number of arguments for '%s' command", name);

    return resp_append_error(out, msg, (size_t) n);
}

static int
resp_command_entry(struct buf *out, const struct resp_command_info *ci)
{
    int rc = 0;

    rc |= resp_append_array(out, 6);
    rc |= resp_append_bulk(out, ci->name, strlen(ci->name));
    rc |= resp_append_integer(out, ci->arity);
    rc |= resp_append_array(out, 1);
    rc |= resp_append_status(out, ci->flags);
    rc |= resp_append_integer(out, ci->first_key);
    rc |= resp_append_integer(out, ci->last_key);
    rc |= resp_append_integer(out, ci->step);
    return rc;
}

static int
resp_command_cmd(const char *buf, const struct resp_command *cmd,
                 struct buf *out)
{
    int rc = 0;

    if (cmd->argc == 1) {
        rc |= resp_append_array(out, RESP_NCOMMANDS);
        for (size_t i = 0; i < RESP_NCOMMANDS; i++) {
            rc |= resp_command_entry(out, &resp_commands[i]);
        }
        return rc;
    }
    if (resp_arg_is(buf, &cmd->argv[1], "count")) {
        return resp_append_integer(out, (int64_t) RESP_NCOMMANDS);
    }
    if (resp_arg_is(buf, &cmd->argv[1], "docs")) {
        /* No docs: redis-cli then simply shows no hints. */
        return resp_append_array(out, 0);
    }
    if (resp_arg_is(buf, &cmd->argv[1], "info")) {
        rc |= resp_append_array(out, cmd->argc - 2);
        for (size_t i = 2; i < cmd->argc; i++) {
            const struct resp_command_info *ci =
                resp_lookup(buf, &cmd->argv[i]);

            rc |= ci != NULL ? resp_command_entry(out, ci)
                             : resp_append_nil(out);
        }
        return rc;
    }
    return resp_append_error(out, "ERR unknown subcommand for 'command'",
                             strlen("ERR unknown subcommand for 'command'"));
}

static int
resp_select(const char *buf, const struct resp_command *cmd, uint32_t db,
            struct buf *out)
{
    const struct resp_arg *a = &cmd->argv[1];
    uint64_t               v = 0;

    if (a->len == 0 || a->len > 10) {
        return resp_error_str(out, "ERR value is not an integer or "
                                   "out of range");
    }
    for (size_t i = 0; i < a->len; i++) {
        char ch = buf[a->off + i];

        if (ch < '0' || ch > '9') {
            return resp_error_str(out, "ERR value is not an integer "
                                       "or out of range");
        }
        v = v * 10 + (uint64_t) (ch - '0');
    }
    if (v != db) {
        char msg[96];
        int  n =
            snprintf(msg, sizeof(msg), "ERR this proxy serves db %u only", db);

        return resp_append_error(out, msg, (size_t) n);
    }
    return resp_append_status(out, "OK");
}

int
resp_append_backend_reply(struct buf *out, enum backend_result r,
                          const void *data, size_t len)
{
    switch (r) {
    case BACKEND_VALUE:
        return resp_append_bulk(out, data, len);
    case BACKEND_NIL:
        return resp_append_nil(out);
    case BACKEND_WRONGTYPE:
        return resp_append_error(out, data, len);
    case BACKEND_TIMEOUT:
        return resp_error_str(out, "ERR redis-cache-proxy: the backend "
                                   "Redis timed out");
    case BACKEND_UNAVAILABLE:
        /* Redis Cluster's own words: CLUSTERDOWN ..., TRYAGAIN ... */
        if (data != NULL && len > 0) {
            return resp_append_error(out, data, len);
        }
        break;
    case BACKEND_ERROR_REPLY:
    case BACKEND_UNREACHABLE:
        break;
    }
    return resp_error_str(out, "ERR redis-cache-proxy: the backend Redis "
                               "is unavailable");
}

bool
resp_backend_fails_mget(enum backend_result r)
{
    return r == BACKEND_UNREACHABLE || r == BACKEND_TIMEOUT
           || r == BACKEND_ERROR_REPLY || r == BACKEND_UNAVAILABLE;
}

int
resp_append_mget_item(struct buf *out, enum backend_result r, const void *data,
                      size_t len)
{
    if (r == BACKEND_VALUE) {
        return resp_append_bulk(out, data, len);
    }
    return resp_append_nil(out);
}

int
resp_check_command(const char *buf, const struct resp_command *cmd,
                   struct buf *out)
{
    const struct resp_command_info *ci = resp_lookup(buf, &cmd->argv[0]);
    int                             rc;

    if (ci == NULL) {
        rc = resp_unknown(buf, cmd, out);
    } else if ((ci->arity > 0 && cmd->argc != (size_t) ci->arity)
               || (ci->arity < 0 && cmd->argc < (size_t) -ci->arity)) {
        rc = resp_error_arity(out, ci->name);
    } else {
        return 0;
    }
    return rc == 0 ? 1 : rc;
}

bool
resp_command_reads_keys(const char *buf, const struct resp_command *cmd)
{
    const struct resp_command_info *ci = resp_lookup(buf, &cmd->argv[0]);

    /* WATCH names keys but reads none. */
    return ci != NULL && ci->first_key != 0 && strcmp(ci->name, "watch") != 0;
}

bool
resp_command_is(const char *buf, const struct resp_command *cmd,
                const char *lower)
{
    return cmd->argc > 0 && resp_arg_is(buf, &cmd->argv[0], lower);
}

bool
resp_arg_equals(const char *buf, const struct resp_arg *a, const char *lower)
{
    return resp_arg_is(buf, a, lower);
}

enum resp_action
resp_dispatch(const char *buf, const struct resp_command *cmd, uint32_t db,
              struct buf *out)
{
    const struct resp_command_info *ci;
    const char                     *name;
    int                             rc;

    /* GET is nearly every command: decide it before the table walk. */
    if (cmd->argc == 2 && resp_arg_is(buf, &cmd->argv[0], "get")) {
        return RESP_ACTION_GET;
    }
    ci = resp_lookup(buf, &cmd->argv[0]);
    if (ci == NULL) {
        rc = resp_unknown(buf, cmd, out);
        return rc == 0 ? RESP_ACTION_REPLIED : RESP_ACTION_NOMEM;
    }
    if ((ci->arity > 0 && cmd->argc != (size_t) ci->arity)
        || (ci->arity < 0 && cmd->argc < (size_t) -ci->arity)) {
        rc = resp_error_arity(out, ci->name);
        return rc == 0 ? RESP_ACTION_REPLIED : RESP_ACTION_NOMEM;
    }
    name = ci->name;

    if (strcmp(name, "get") == 0) {
        return RESP_ACTION_GET;
    }
    if (strcmp(name, "mget") == 0) {
        return RESP_ACTION_MGET;
    }
    if (strcmp(name, "ping") == 0) {
        if (cmd->argc > 2) {
            rc = resp_error_arity(out, "ping");
        } else if (cmd->argc == 2) {
            rc = resp_append_bulk(out, buf + cmd->argv[1].off,
                                  cmd->argv[1].len);
        } else {
            rc = resp_append_status(out, "PONG");
        }
    } else if (strcmp(name, "echo") == 0) {
        rc = resp_append_bulk(out, buf + cmd->argv[1].off, cmd->argv[1].len);
    } else if (strcmp(name, "quit") == 0) {
        rc = resp_append_status(out, "OK");
        return rc == 0 ? RESP_ACTION_CLOSE : RESP_ACTION_NOMEM;
    } else if (strcmp(name, "select") == 0) {
        rc = resp_select(buf, cmd, db, out);
    } else if (strcmp(name, "command") == 0) {
        rc = resp_command_cmd(buf, cmd, out);
    } else if (ci->flags[0] == 'r') { /* readonly, not GET/MGET */
        return RESP_ACTION_FORWARD;
    } else {
        return RESP_ACTION_SESSION; /* resp_session.c's */
    }
    return rc == 0 ? RESP_ACTION_REPLIED : RESP_ACTION_NOMEM;
}
