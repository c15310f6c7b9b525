/*
 * worker_resp_forward: read-only commands the RESP port passes to Redis
 * as they are, uncached (DBSIZE, EXISTS, TTL, PTTL, STRLEN, TYPE): what
 * a client asks about a key besides its value.  --key-prefix is put
 * before their keys by the backend, --allow-keys was checked by the
 * caller, and Redis' reply (an integer, a status, or its error) goes
 * back unchanged.  Like a GET miss, the connection waits for it, so
 * answers stay in order.
 */
#include "rcp_autoconf.h"

#include <string.h>

#include "resp.h"
#include "worker_conn.h"

static void
worker_resp_forward_cb(struct backend_waiter      *wt,
                       const struct backend_reply *r)
{
    struct worker_conn *c = wt->data;
    int                 rc;

    if (r->result == BACKEND_VALUE) {
        rc = worker_conn_append(c, r->data, r->len);
        worker_resp_count(c, r->len > 0 && r->data[0] == '-'
                                 ? METRICS_CODE_RESP_ERR
                                 : METRICS_CODE_RESP_OK);
    } else {
        const char *msg =
            r->result == BACKEND_TIMEOUT
                ? "ERR redis-cache-proxy: the backend Redis timed out"
            : r->result == BACKEND_ERROR_REPLY
                ? "ERR redis-cache-proxy: unexpected reply from the backend"
                : "ERR redis-cache-proxy: the backend Redis is unavailable";

        rc = resp_append_error(&c->out, msg, strlen(msg));
        worker_resp_count(c, METRICS_CODE_RESP_ERR);
    }
    if (rc != 0) {
        worker_conn_close(c);
        return;
    }
    worker_resp_done(c);
}

bool
worker_resp_forward(struct worker_conn *c, const struct resp_command *cmd)
{
    const char *argv[BACKEND_COMMAND_ARGS_MAX];
    size_t      lens[BACKEND_COMMAND_ARGS_MAX];
    size_t      argc = cmd->argc;

    if (argc > BACKEND_COMMAND_ARGS_MAX) {
        static const char msg[] = "ERR redis-cache-proxy: too many keys";

        if (resp_append_error(&c->out, msg, sizeof(msg) - 1) != 0) {
            worker_conn_close(c);
            return false;
        }
        worker_resp_count(c, METRICS_CODE_RESP_ERR);
        return false;
    }
    for (size_t i = 0; i < argc; i++) {
        argv[i] = c->in.data + cmd->argv[i].off;
        lens[i] = cmd->argv[i].len;
    }
    c->state = CONN_WAITING;
    backend_command(c->worker->backend, (int) argc, argv, lens, 1, &c->waiter,
                    worker_resp_forward_cb, c);
    return true;
}
