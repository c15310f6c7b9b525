/*
 * worker_resp: a worker's Redis-protocol commands.  resp.c decides what a
 * command asks; here GET and MGET go through the cache and the backend.
 * One command at a time per connection, except GETs: a GET that misses
 * waits in the connection's pipeline ring (worker_resp_pipeline.c) while
 * the GETs after it are parsed and sent too, and the answers still go
 * out in request order.  An MGET sends all its misses at once, then
 * answers in parts with backpressure (worker_resp_mget.c).
 *
 * The input is parsed in place: an answered command's bytes stay at the
 * front of the buffer (c->resp_base counts them) and the next command
 * is parsed after them; they are dropped in one move when parsing stops,
 * and before a command that waits on Redis (which then lies at offset 0
 * for its callbacks).  Dropping them one command at a time moved the
 * rest of the buffer after each, so a pipeline of n commands read at
 * once cost n^2/2 bytes of memmove: 300,000 PINGs sent together took
 * 64 s and held up every other client of the worker.  Argument offsets
 * (c->argv, c->resp_consumed) count from in.data, not from the
 * command's first byte.
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "resp.h"
#include "worker_conn.h"

void
worker_resp_count(struct worker_conn *c, enum metrics_code code)
{
    c->log_status = 0;
    c->log_resp = code == METRICS_CODE_RESP_OK    ? "ok"
                  : code == METRICS_CODE_RESP_NIL ? "nil"
                                                  : "err";
    metrics_count_request(c->worker->params->metrics, METRICS_PROTO_RESP,
                          code);
}

/* Logs the command being answered as its name and first argument;
 * AUTH's arguments are a secret, so only its name is logged. */
static void
worker_resp_log(struct worker_conn *c)
{
    char   req[300];
    size_t n = 0;
    size_t logged = 2;

    if (c->worker->params->access_fd < 0 || c->resp_argc == 0) {
        return;
    }
    if (c->argv[0].len == 4
        && strncasecmp(c->in.data + c->argv[0].off, "auth", 4) == 0) {
        logged = 1;
    }
    for (size_t i = 0; i < c->resp_argc && i < logged; i++) {
        size_t len = c->argv[i].len < 140 ? c->argv[i].len : 140;

        if (i > 0) {
            req[n++] = ' ';
        }
        memcpy(req + n, c->in.data + c->argv[i].off, len);
        n += len;
    }
    worker_access_log(c, req, n);
}

void
worker_resp_finish(struct worker_conn *c)
{
    worker_resp_log(c);
    c->requests++;
    c->state = CONN_READING;
    /* A command that waited was moved to offset 0 first
     * (worker_resp_rebase). */
    worker_conn_consume(c, c->resp_consumed);
    c->resp_consumed = 0;
    resp_parse_init(&c->rp);
}

void
worker_resp_done(struct worker_conn *c)
{
    worker_resp_finish(c);
    worker_conn_run(c);
}

/* Whether cmd may be parsed ahead while GETs wait in the pipeline ring:
 * a plain GET on a connection whose session gate would pass it without
 * a word (worker_resp_gate's fast path), of a key the access rules
 * allow, so nothing is answered out of turn. */
static bool
worker_resp_pipelines(const struct worker_conn  *c,
                      const struct resp_command *cmd)
{
    const char *name = c->in.data + cmd->argv[0].off;

    return cmd->argc == 2 && cmd->argv[0].len == 3 && (name[0] | 0x20) == 'g'
           && (name[1] | 0x20) == 'e' && (name[2] | 0x20) == 't'
           && c->session.authed && !c->session.in_multi
           && access_key_allowed(&c->worker->acl,
                                 c->in.data + cmd->argv[1].off,
                                 cmd->argv[1].len);
}

/* The command just parsed is answered, or queued in the ring (its key
 * copied): its bytes join those dropped when parsing stops. */
static void
worker_resp_answered(struct worker_conn *c)
{
    c->resp_base = c->resp_consumed;
    c->resp_consumed = 0;
    resp_parse_init(&c->rp);
}

/* Drops the answered bytes at the front of the input, in one move.  No
 * command may be in progress: its offsets would go stale. */
static void
worker_resp_drop_answered(struct worker_conn *c)
{
    if (c->resp_base > 0) {
        worker_conn_consume(c, c->resp_base);
        c->resp_base = 0;
    }
}

/* Before cmd waits on Redis: the bytes before it go, and its offsets
 * follow it to the front, where worker_resp_finish expects it. */
static void
worker_resp_rebase(struct worker_conn *c, struct resp_command *cmd)
{
    for (size_t i = 0; i < cmd->argc; i++) {
        cmd->argv[i].off -= c->resp_base;
    }
    c->resp_consumed -= c->resp_base;
    worker_resp_drop_answered(c);
}

/* Parses the next command, after the answered bytes; on DONE its
 * offsets are made to count from in.data. */
static enum resp_parse_rc
worker_resp_parse(struct worker_conn *c, struct resp_command *cmd)
{
    size_t             start = c->resp_base;
    enum resp_parse_rc rc;

    rc =
        resp_parse_command(&c->rp, c->in.data + start, c->in.len - start, cmd);
    if (rc == RESP_PARSE_DONE) {
        for (size_t i = 0; i < cmd->argc; i++) {
            cmd->argv[i].off += start;
        }
        c->resp_consumed = start + cmd->consumed;
    }
    return rc;
}

static void
worker_resp_process_some(struct worker_conn *c)
{
    struct worker *w = c->worker;

    while ((c->state == CONN_READING
            || (c->state == CONN_WAITING && worker_resp_pipeline_busy(c)))
           && !c->close_after_write && c->in.len > c->resp_base
           && worker_conn_unsent(c) + c->resp_q_bytes < WORKER_OUT_HIGH_WATER
           && !worker_resp_pipeline_full(c)) {
        struct resp_command cmd = {
            .argv = c->argv,
            .argv_cap = RESP_CONN_ARGV_MAX,
        };
        enum resp_parse_rc rc;
        enum resp_action   act;
        size_t             pending;

        rc = worker_resp_parse(c, &cmd);
        if (worker_resp_pipeline_busy(c) && rc != RESP_PARSE_AGAIN) {
            /* GETs wait in the ring: only another GET may join them;
             * anything else is parsed again once they are answered. */
            if (rc == RESP_PARSE_DONE && cmd.argc > 0
                && worker_resp_pipelines(c, &cmd)) {
                worker_access_start(c);
                if (worker_resp_pipeline_get(c, c->in.data + cmd.argv[1].off,
                                             cmd.argv[1].len, true)
                    != 0) {
                    worker_conn_close(c);
                    return;
                }
                worker_resp_answered(c);
                continue;
            }
            resp_parse_init(&c->rp);
            return;
        }
        if (rc == RESP_PARSE_AGAIN) {
            /* Too big to buffer: refused, but only in its turn, after
             * the GETs still waiting in the ring are answered. */
            if (c->in.len - c->resp_base >= RESP_CONN_IN_MAX
                && !worker_resp_pipeline_busy(c)) {
                cmd.error = "Protocol error: too big request";
                rc = RESP_PARSE_ERROR;
            } else {
                return;
            }
        }
        if (rc == RESP_PARSE_ERROR) {
            char msg[160];
            int  n = snprintf(msg, sizeof(msg), "ERR %s", cmd.error);

            if (resp_append_error(&c->out, msg, (size_t) n) != 0) {
                worker_conn_close(c);
                return;
            }
            worker_resp_count(c, METRICS_CODE_RESP_ERR);
            c->close_after_write = true;
            c->in.len = 0;
            c->resp_base = 0;
            return;
        }
        c->resp_argc = cmd.argc;
        worker_access_start(c);
        c->log_bytes = 0;
        c->log_cache = NULL;
        if (cmd.argc == 0) {
            worker_resp_answered(c);
            continue;
        }
        if (worker_resp_gate(c, &cmd)) {
            if (c->state == CONN_CLOSED) {
                return;
            }
            goto answered;
        }
        pending = buf_pending(&c->out);
        act = resp_dispatch(c->in.data, &cmd, w->cfg->redis_db, &c->out);
        switch (act) {
        case RESP_ACTION_REPLIED:
            /* An unknown command, a wrong arity ...: an error answer
             * (appending may have rewound out, hence pos + pending). */
            worker_resp_count(c, c->out.data[c->out.pos + pending] == '-'
                                     ? METRICS_CODE_RESP_ERR
                                     : METRICS_CODE_RESP_OK);
            break;
        case RESP_ACTION_CLOSE:
            worker_resp_count(c, METRICS_CODE_RESP_OK);
            c->close_after_write = true;
            break;
        case RESP_ACTION_NOMEM:
            worker_conn_close(c);
            return;
        case RESP_ACTION_GET:
            if (!worker_acl_resp_keys(c, &cmd)) {
                if (c->state == CONN_CLOSED) {
                    return;
                }
                break; /* -NOPERM */
            }
            if (worker_resp_copy_hit(c, &c->out, c->in.data + cmd.argv[1].off,
                                     cmd.argv[1].len)) {
                break;
            }
            /* A miss: it waits in the ring, and parsing goes on. */
            if (worker_resp_pipeline_get(c, c->in.data + cmd.argv[1].off,
                                         cmd.argv[1].len, false)
                != 0) {
                worker_conn_close(c);
                return;
            }
            worker_resp_answered(c);
            continue;
        case RESP_ACTION_MGET:
            if (!worker_acl_resp_keys(c, &cmd)) {
                if (c->state == CONN_CLOSED) {
                    return;
                }
                break; /* -NOPERM */
            }
            /* Answered in parts from worker_conn_run (the resume hook),
             * or once its misses are in; finished by worker_resp_mget. */
            worker_resp_rebase(c, &cmd);
            worker_resp_mget(c, &cmd);
            return;
        case RESP_ACTION_SESSION:
            if (!worker_resp_session(c, &cmd)) {
                return;
            }
            break;
        case RESP_ACTION_FORWARD:
            if (!worker_acl_resp_keys(c, &cmd)) {
                if (c->state == CONN_CLOSED) {
                    return;
                }
                break; /* -NOPERM */
            }
            worker_resp_rebase(c, &cmd);
            if (worker_resp_forward(c, &cmd)) {
                return; /* WAITING; resumed by callback */
            }
            if (c->state == CONN_CLOSED) {
                return;
            }
            break;
        }
answered:
        worker_resp_log(c);
        c->requests++;
        worker_resp_answered(c);
    }
}

static void
worker_resp_process(struct worker_conn *c)
{
    worker_resp_process_some(c);
    if (c->state == CONN_CLOSED) {
        c->resp_base = 0;
        return;
    }
    worker_resp_drop_answered(c);
    if (c->in.len == 0 && c->in.cap > RESP_CONN_IN_MAX) {
        /* Only an EXEC's replayed transaction (up to the 16 MB a MULTI
         * may queue, worker_resp_replay) grows the input past what a
         * read may fill: once it is answered, the memory goes back, or
         * every connection that ran one would keep it until it closed.
         * Nothing points into the buffer when it is empty. */
        buf_free(&c->in);
    }
}

/* The argument array is allocated on the slot's first RESP connection
 * and kept for the next ones. */
static int
worker_resp_open(struct worker_conn *c)
{
    resp_parse_init(&c->rp);
    c->resp_consumed = 0;
    c->resp_base = 0;
    if (c->argv == NULL) {
        c->argv = malloc(RESP_CONN_ARGV_MAX * sizeof(*c->argv));
        if (c->argv == NULL) {
            log_error("malloc() of RESP arguments failed");
            return -ENOMEM;
        }
    }
    worker_resp_session_open(c);
    return 0;
}

/* A command that did not arrive whole in time: Redis answers nothing
 * either, it closes. */
static bool
worker_resp_timeout(struct worker_conn *c)
{
    (void) c;
    return false;
}

static void
worker_resp_proxy_refused(struct worker_conn *c)
{
    static const char refused[] = "ERR PROXY protocol header refused";

    if (resp_append_error(&c->out, refused, sizeof(refused) - 1) != 0) {
        worker_conn_close(c);
        return;
    }
    worker_resp_count(c, METRICS_CODE_RESP_ERR);
    c->close_after_write = true;
}

/* Cancels an MGET's and the pipeline's fetches and frees them. */
static void
worker_resp_close(struct worker_conn *c)
{
    worker_resp_mget_free(c);
    worker_resp_pipeline_free(c);
}

static void
worker_resp_slot_fini(struct worker_conn *c)
{
    free(c->argv);
    c->argv = NULL;
    worker_resp_session_fini(c);
}

const struct worker_proto worker_resp_proto = {
    .name = "resp",
    .in_max = RESP_CONN_IN_MAX,
    .open = worker_resp_open,
    .process = worker_resp_process,
    .timeout = worker_resp_timeout,
    .proxy_refused = worker_resp_proxy_refused,
    .close = worker_resp_close,
    .slot_fini = worker_resp_slot_fini,
};
