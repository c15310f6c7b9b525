/*
 * resp_session: per-connection and per-process answers of the RESP port.
 * Every reply here was compared byte for byte with redis-server 7.0's
 * (Debian 12) for the same command; where the proxy differs on purpose
 * (HELLO 3, values that describe the cache rather than a Redis), the
 * comment says why.
 *
 *   gate (every command)                 session commands
 *   --------------------                 ----------------
 *   not authed, not AUTH/HELLO/QUIT/ ->  -NOAUTH
 *     RESET
 *   in MULTI, not EXEC/DISCARD/      ->  check: error (EXEC aborts)
 *     MULTI/WATCH/QUIT/RESET               or queue raw bytes, +QUEUED
 *   otherwise                        ->  PASS
 *                                        MULTI    in_multi, +OK
 *                                        EXEC     *N, replay the queue
 *                                        DISCARD  drop the queue, +OK
 *                                        WATCH    +OK (nothing to watch:
 *                                                 the proxy never writes)
 *                                        RESET    end MULTI, forget the
 *                                                 name and the AUTH
 */
#include "rcp_autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "glob.h"
#include "resp.h"
#include "resp_session.h"
#include "buf.h"

#define RESP_SESSION_INFO_MAX 4096

static const char resp_session_noauth[] = "NOAUTH Authentication required.";
static const char resp_session_wrongpass[] =
    "WRONGPASS invalid username-password pair or user is disabled.";

void
resp_session_init(struct resp_session *s, uint64_t id, uint64_t now_ms,
                  const struct config *cfg)
{
    struct buf keep = s->multi_queue;

    memset(s, 0, sizeof(*s));
    s->multi_queue = keep; /* storage reused across conns */
    s->multi_queue.pos = 0;
    s->multi_queue.len = 0;
    s->id = id;
    s->created_ms = now_ms;
    s->authed = cfg->resp_password[0] == '\0';
}

void
resp_session_fini(struct resp_session *s)
{
    buf_free(&s->multi_queue);
}

bool
resp_session_secret_eq(const char *guess, size_t guess_len, const char *secret,
                       size_t secret_len)
{
    unsigned char diff = guess_len != secret_len;

    for (size_t i = 0; i < secret_len; i++) {
        unsigned char g = i < guess_len ? (unsigned char) guess[i] : 0;

        diff |= g ^ (unsigned char) secret[i];
    }
    return diff == 0;
}

static int
resp_session_error(struct buf *out, const char *msg)
{
    return resp_append_error(out, msg, strlen(msg));
}

static enum resp_session_rc
resp_session_rc_of(int rc)
{
    return rc == 0 ? RESP_SESSION_REPLIED : RESP_SESSION_NOMEM;
}

static const char *
resp_session_arg(const char *buf, const struct resp_command *cmd, size_t i)
{
    return buf + cmd->argv[i].off;
}

static enum resp_session_rc
resp_session_client_setname(struct resp_session *s, const struct resp_arg *a,
                            const char *buf, struct buf *out);

/* ---- AUTH, HELLO -------------------------------------------------------
 * The user is --resp-user, or Redis' "default" when none is set; AUTH
 * with a password alone is AUTH default <password>, as in Redis. */

static const char *
resp_session_user(const struct config *cfg)
{
    return cfg->resp_user[0] != '\0' ? cfg->resp_user : "default";
}

static bool
resp_session_check_pass(const struct config *cfg, const char *buf,
                        const struct resp_arg *user,
                        const struct resp_arg *pass)
{
    const char *want_user = resp_session_user(cfg);
    bool        user_ok;
    bool        pass_ok;

    if (user != NULL) {
        user_ok = resp_session_secret_eq(buf + user->off, user->len, want_user,
                                         strlen(want_user));
    } else {
        user_ok = strcmp(want_user, "default") == 0;
    }
    if (cfg->resp_password[0] == '\0') {
        return user_ok; /* Redis' nopass default user */
    }
    pass_ok = resp_session_secret_eq(buf + pass->off, pass->len,
                                     cfg->resp_password,
                                     strlen(cfg->resp_password));
    return user_ok && pass_ok;
}

static enum resp_session_rc
resp_session_auth(struct resp_session *s, const char *buf,
                  const struct resp_command     *cmd,
                  const struct resp_session_env *env, struct buf *out)
{
    const struct config *cfg = env->cfg;

    if (cmd->argc > 3) {
        return resp_session_rc_of(resp_session_error(out, "ERR syntax error"));
    }
    if (cmd->argc == 2 && cfg->resp_password[0] == '\0') {
        return resp_session_rc_of(resp_session_error(
            out, "ERR AUTH <password> called without any password configured "
                 "for the default user. Are you sure your configuration is "
                 "correct?"));
    }
    if (!resp_session_check_pass(cfg, buf,
                                 cmd->argc == 3 ? &cmd->argv[1] : NULL,
                                 &cmd->argv[cmd->argc - 1])) {
        return resp_session_rc_of(
            resp_session_error(out, resp_session_wrongpass));
    }
    s->authed = true;
    return resp_session_rc_of(resp_append_status(out, "OK"));
}

/* HELLO [protover [AUTH user pass] [SETNAME name]].  RESP3 is refused
 * with Redis' own NOPROTO error, which clients take as "stay on RESP2";
 * HELLO 2 (or none) answers Redis' 14-element array. */
static const char resp_session_hello_noauth[] =
    "NOAUTH HELLO must be called with the client already "
    "authenticated, otherwise the HELLO AUTH <user> "
    "<pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time";

static enum resp_session_rc
resp_session_hello(struct resp_session *s, const char *buf,
                   const struct resp_command     *cmd,
                   const struct resp_session_env *env, struct buf *out)
{
    const struct resp_arg *setname = NULL;
    bool                   auth = false;
    int                    rc = 0;

    if (cmd->argc >= 2) {
        const struct resp_arg *v = &cmd->argv[1];
        const char            *p = buf + v->off;
        uint64_t               ver = 0;

        if (v->len == 0 || v->len > 18) {
            ver = UINT64_MAX;
        }
        for (size_t i = 0; i < v->len && ver != UINT64_MAX; i++) {
            if (p[i] < '0' || p[i] > '9') {
                ver = UINT64_MAX;
            } else {
                ver = ver * 10 + (uint64_t) (p[i] - '0');
            }
        }
        if (ver == UINT64_MAX) {
            return resp_session_rc_of(resp_session_error(
                out,
                "ERR Protocol version is not an integer or out of range"));
        }
        for (size_t i = 2; i < cmd->argc; i++) {
            size_t left = cmd->argc - i - 1;

            if (resp_arg_equals(buf, &cmd->argv[i], "auth") && left >= 2) {
                auth = true;
                if (!resp_session_check_pass(env->cfg, buf, &cmd->argv[i + 1],
                                             &cmd->argv[i + 2])) {
                    return resp_session_rc_of(
                        resp_session_error(out, resp_session_wrongpass));
                }
                i += 2;
            } else if (resp_arg_equals(buf, &cmd->argv[i], "setname")
                       && left >= 1) {
                setname = &cmd->argv[++i];
            } else {
                char msg[160];
                int  n = snprintf(
                     msg, sizeof(msg),
                     "ERR Syntax error in HELLO option '%.*s'",
                     (int) (cmd->argv[i].len < 64 ? cmd->argv[i].len : 64),
                     resp_session_arg(buf, cmd, i));

                return resp_session_rc_of(
                    resp_append_error(out, msg, (size_t) n));
            }
        }
        if (!s->authed && !auth) {
            return resp_session_rc_of(
                resp_session_error(out, resp_session_hello_noauth));
        }
        if (ver != 2) {
            return resp_session_rc_of(resp_session_error(
                out, "NOPROTO unsupported protocol version"));
        }
    } else if (!s->authed) {
        /* Redis 7 answers a bare HELLO with the same words. */
        return resp_session_rc_of(
            resp_session_error(out, resp_session_hello_noauth));
    }
    if (setname != NULL) {
        /* CLIENT SETNAME's checks, before anything changes. */
        /* Appending may rewind out when nothing is pending: find the
         * answer at pos + what was pending. */
        size_t               pending = buf_pending(out);
        enum resp_session_rc rc_name =
            resp_session_client_setname(s, setname, buf, out);

        if (rc_name != RESP_SESSION_REPLIED
            || out->data[out->pos + pending] == '-') {
            return rc_name;
        }
        out->len = out->pos + pending; /* drop its +OK: HELLO answers */
    }
    if (auth) {
        s->authed = true;
    }
    rc |= resp_append_array(out, 14);
    rc |= resp_append_bulk(out, "server", 6);
    rc |= resp_append_bulk(out, "redis", 5);
    rc |= resp_append_bulk(out, "version", 7);
    rc |= resp_append_bulk(out, RESP_SESSION_REDIS_VERSION,
                           strlen(RESP_SESSION_REDIS_VERSION));
    rc |= resp_append_bulk(out, "proto", 5);
    rc |= resp_append_integer(out, 2);
    rc |= resp_append_bulk(out, "id", 2);
    rc |= resp_append_integer(out, (int64_t) s->id);
    rc |= resp_append_bulk(out, "mode", 4);
    rc |= resp_append_bulk(out, "standalone", 10);
    rc |= resp_append_bulk(out, "role", 4);
    rc |= resp_append_bulk(out, "master", 6);
    rc |= resp_append_bulk(out, "modules", 7);
    rc |= resp_append_array(out, 0);
    return resp_session_rc_of(rc);
}

/* ---- gate and transactions -------------------------------------------- */

enum resp_session_rc
resp_session_gate(struct resp_session *s, const char *buf,
                  const struct resp_command *cmd, const char *raw,
                  size_t raw_len, const struct resp_session_env *env,
                  struct buf *out)
{
    int rc;

    if (!s->authed && !resp_command_is(buf, cmd, "auth")
        && !resp_command_is(buf, cmd, "hello")
        && !resp_command_is(buf, cmd, "quit")
        && !resp_command_is(buf, cmd, "reset")) {
        /* Redis also aborts a transaction a NOAUTH lands in, and a
         * refused EXEC says so in EXECABORT's words. */
        s->multi_dirty |= s->in_multi;
        return resp_session_rc_of(resp_session_error(
            out, resp_command_is(buf, cmd, "exec")
                     ? "EXECABORT Transaction discarded because of: "
                       "NOAUTH Authentication required."
                     : resp_session_noauth));
    }
    if (!s->in_multi || resp_command_is(buf, cmd, "exec")
        || resp_command_is(buf, cmd, "discard")
        || resp_command_is(buf, cmd, "multi")
        || resp_command_is(buf, cmd, "watch")
        || resp_command_is(buf, cmd, "quit")
        || resp_command_is(buf, cmd, "reset")) {
        return RESP_SESSION_PASS;
    }
    rc = resp_check_command(buf, cmd, out);
    if (rc != 0) {
        s->multi_dirty = true;
        return rc > 0 ? RESP_SESSION_REPLIED : RESP_SESSION_NOMEM;
    }
    if (env->key_allowed != NULL && resp_command_reads_keys(buf, cmd)) {
        for (size_t i = 1; i < cmd->argc; i++) {
            if (!env->key_allowed(env->arg, buf + cmd->argv[i].off,
                                  cmd->argv[i].len)) {
                s->multi_dirty = true;
                return resp_session_rc_of(
                    resp_session_error(out, RESP_SESSION_NOPERM));
            }
        }
    }
    if (s->multi_queue.len + raw_len > RESP_SESSION_QUEUE_MAX) {
        s->multi_dirty = true;
        return resp_session_rc_of(resp_session_error(
            out, "ERR redis-cache-proxy: too many bytes queued in this "
                 "transaction"));
    }
    rc = buf_append(&s->multi_queue, raw, raw_len);
    if (rc != 0) {
        return RESP_SESSION_NOMEM;
    }
    s->multi_count++;
    return resp_session_rc_of(resp_append_status(out, "QUEUED"));
}

static void
resp_session_end_multi(struct resp_session *s)
{
    s->in_multi = false;
    s->multi_dirty = false;
    s->multi_count = 0;
    s->multi_queue.pos = 0;
    s->multi_queue.len = 0;
    if (s->multi_queue.cap > RESP_SESSION_QUEUE_KEEP) {
        buf_free(&s->multi_queue);
    }
}

void
resp_session_take_queue(struct resp_session *s, struct buf *q)
{
    *q = s->multi_queue;
    memset(&s->multi_queue, 0, sizeof(s->multi_queue));
    resp_session_end_multi(s);
}

static enum resp_session_rc
resp_session_exec(struct resp_session *s, struct buf *out)
{
    int rc;

    if (!s->in_multi) {
        return resp_session_rc_of(
            resp_session_error(out, "ERR EXEC without MULTI"));
    }
    if (s->multi_dirty) {
        resp_session_end_multi(s);
        return resp_session_rc_of(resp_session_error(
            out,
            "EXECABORT Transaction discarded because of previous errors."));
    }
    rc = resp_append_array(out, s->multi_count);
    if (rc != 0) {
        return RESP_SESSION_NOMEM;
    }
    return RESP_SESSION_EXEC;
}

/* ---- INFO ---------------------------------------------------------------
 * The sections clients read, with the proxy's own values: the keyspace
 * and the hit and miss counters are the cache's, memory is the bytes of
 * keys and values the cache holds against --max-memory.  Nothing is
 * made up: a field the proxy has no value for is left out. */

enum resp_session_info_section {
    RESP_SESSION_INFO_SERVER = 1u << 0,
    RESP_SESSION_INFO_CLIENTS = 1u << 1,
    RESP_SESSION_INFO_MEMORY = 1u << 2,
    RESP_SESSION_INFO_PERSISTENCE = 1u << 3,
    RESP_SESSION_INFO_STATS = 1u << 4,
    RESP_SESSION_INFO_REPLICATION = 1u << 5,
    RESP_SESSION_INFO_CLUSTER = 1u << 6,
    RESP_SESSION_INFO_KEYSPACE = 1u << 7,
    RESP_SESSION_INFO_ALL = (1u << 8) - 1
};

static const struct {
    const char *name;
    unsigned    bits;
} resp_session_info_names[] = {
    { "server", RESP_SESSION_INFO_SERVER },
    { "clients", RESP_SESSION_INFO_CLIENTS },
    { "memory", RESP_SESSION_INFO_MEMORY },
    { "persistence", RESP_SESSION_INFO_PERSISTENCE },
    { "stats", RESP_SESSION_INFO_STATS },
    { "replication", RESP_SESSION_INFO_REPLICATION },
    { "cluster", RESP_SESSION_INFO_CLUSTER },
    { "keyspace", RESP_SESSION_INFO_KEYSPACE },
    { "default", RESP_SESSION_INFO_ALL },
    { "all", RESP_SESSION_INFO_ALL },
    { "everything", RESP_SESSION_INFO_ALL },
};

/* Redis' bytesToHuman(). */
static void
resp_session_info_human(struct buf_fixed *t, const char *field, uint64_t n)
{
    double d = (double) n;

    if (n < 1024) {
        buf_fixed_printf(t, "%s:%" PRIu64 "B\r\n", field, n);
    } else if (n < 1024ULL * 1024) {
        buf_fixed_printf(t, "%s:%.2fK\r\n", field, d / 1024);
    } else if (n < 1024ULL * 1024 * 1024) {
        buf_fixed_printf(t, "%s:%.2fM\r\n", field, d / (1024 * 1024));
    } else {
        buf_fixed_printf(t, "%s:%.2fG\r\n", field, d / (1024.0 * 1024 * 1024));
    }
}

static void
resp_session_info_header(struct buf_fixed *t, const char *title)
{
    if (t->len > 0) {
        buf_fixed_printf(t, "\r\n");
    }
    buf_fixed_printf(t, "# %s\r\n", title);
}

static enum resp_session_rc
resp_session_info(const char *buf, const struct resp_command *cmd,
                  const struct resp_session_env *env, struct buf *out)
{
    const struct config            *cfg = env->cfg;
    struct resp_session_server_info si;
    struct utsname                  un;
    char                            text[RESP_SESSION_INFO_MAX];
    struct buf_fixed                t = { .buf = text, .cap = sizeof(text) };
    unsigned                        want = 0;

    if (cmd->argc == 1) {
        want = RESP_SESSION_INFO_ALL;
    }
    for (size_t i = 1; i < cmd->argc; i++) {
        for (size_t j = 0; j < sizeof(resp_session_info_names)
                                   / sizeof(resp_session_info_names[0]);
             j++) {
            if (resp_arg_equals(buf, &cmd->argv[i],
                                resp_session_info_names[j].name)) {
                want |= resp_session_info_names[j].bits;
            }
        }
    }
    memset(&si, 0, sizeof(si));
    env->fill_info(env->arg, &si);

    if (want & RESP_SESSION_INFO_SERVER) {
        resp_session_info_header(&t, "Server");
        buf_fixed_printf(&t, "redis_version:%s\r\n",
                         RESP_SESSION_REDIS_VERSION);
        buf_fixed_printf(&t, "redis_mode:standalone\r\n");
        if (uname(&un) == 0) {
            buf_fixed_printf(&t, "os:%s %s %s\r\n", un.sysname, un.release,
                             un.machine);
        }
        buf_fixed_printf(&t, "arch_bits:%zu\r\n", sizeof(void *) * 8);
        buf_fixed_printf(&t, "multiplexing_api:epoll\r\n");
        buf_fixed_printf(&t, "process_id:%ld\r\n", si.pid);
        buf_fixed_printf(&t, "tcp_port:%u\r\n", (unsigned) si.tcp_port);
        buf_fixed_printf(&t, "uptime_in_seconds:%" PRIu64 "\r\n", si.uptime_s);
        buf_fixed_printf(&t, "uptime_in_days:%" PRIu64 "\r\n",
                         si.uptime_s / 86400);
        buf_fixed_printf(&t, "redis_cache_proxy_version:%s\r\n",
                         si.proxy_version);
    }
    if (want & RESP_SESSION_INFO_CLIENTS) {
        resp_session_info_header(&t, "Clients");
        buf_fixed_printf(&t, "connected_clients:%" PRIu64 "\r\n",
                         si.connected_clients);
        buf_fixed_printf(&t, "maxclients:%u\r\n", cfg->max_clients);
        buf_fixed_printf(&t, "blocked_clients:0\r\n");
    }
    if (want & RESP_SESSION_INFO_MEMORY) {
        resp_session_info_header(&t, "Memory");
        buf_fixed_printf(&t, "used_memory:%" PRIu64 "\r\n", si.cache.bytes);
        resp_session_info_human(&t, "used_memory_human", si.cache.bytes);
        buf_fixed_printf(&t, "maxmemory:%" PRIu64 "\r\n",
                         cfg->max_memory_bytes);
        resp_session_info_human(&t, "maxmemory_human", cfg->max_memory_bytes);
        buf_fixed_printf(&t, "maxmemory_policy:allkeys-lru\r\n");
    }
    if (want & RESP_SESSION_INFO_PERSISTENCE) {
        /* The proxy never loads a dataset: clients that wait while
         * "loading" (ioredis' ready check) must see 0. */
        resp_session_info_header(&t, "Persistence");
        buf_fixed_printf(&t, "loading:0\r\n");
    }
    if (want & RESP_SESSION_INFO_STATS) {
        resp_session_info_header(&t, "Stats");
        buf_fixed_printf(&t, "total_connections_received:%" PRIu64 "\r\n",
                         si.connections_received);
        buf_fixed_printf(&t, "total_commands_processed:%" PRIu64 "\r\n",
                         si.commands_processed);
        buf_fixed_printf(&t, "rejected_connections:%" PRIu64 "\r\n",
                         si.connections_rejected);
        buf_fixed_printf(&t, "expired_keys:%" PRIu64 "\r\n",
                         si.cache.expirations);
        buf_fixed_printf(&t, "evicted_keys:%" PRIu64 "\r\n",
                         si.cache.evictions);
        buf_fixed_printf(&t, "keyspace_hits:%" PRIu64 "\r\n", si.cache.hits);
        buf_fixed_printf(&t, "keyspace_misses:%" PRIu64 "\r\n",
                         si.cache.misses);
        buf_fixed_printf(&t, "total_error_replies:%" PRIu64 "\r\n",
                         si.error_replies);
    }
    if (want & RESP_SESSION_INFO_REPLICATION) {
        /* What health checks read (HAProxy's "expect string
         * role:master"): clients see one primary with no replicas. */
        resp_session_info_header(&t, "Replication");
        buf_fixed_printf(&t, "role:master\r\nconnected_slaves:0\r\n");
    }
    if (want & RESP_SESSION_INFO_CLUSTER) {
        /* Clients that look for cluster mode here must not find it:
         * even with --redis-cluster, clients see one Redis. */
        resp_session_info_header(&t, "Cluster");
        buf_fixed_printf(&t, "cluster_enabled:0\r\n");
    }
    if (want & RESP_SESSION_INFO_KEYSPACE) {
        /* Every cached key expires (one global TTL); Redis reports no
         * average TTL (0) until it has sampled one, and neither does the
         * proxy.  An empty database is left out, as Redis does. */
        resp_session_info_header(&t, "Keyspace");
        if (si.cache.entries > 0) {
            buf_fixed_printf(
                &t, "db%u:keys=%" PRIu64 ",expires=%" PRIu64 ",avg_ttl=0\r\n",
                cfg->redis_db, si.cache.entries, si.cache.entries);
        }
    }
    if (t.len > t.cap) {
        t.len = t.cap; /* cannot happen: a fixed set */
    }
    return resp_session_rc_of(resp_append_bulk(out, text, t.len));
}

/* ---- CONFIG GET --------------------------------------------------------
 * The parameters clients probe, with the proxy's values: it saves
 * nothing and keeps no append-only file; databases counts up to the one
 * it serves (--redis-db); maxmemory is the cache's. */

static enum resp_session_rc
resp_session_config(const char *buf, const struct resp_command *cmd,
                    const struct resp_session_env *env, struct buf *out)
{
    char        databases[16], maxmemory[24];
    const char *params[][2] = {
        { "save", "" },
        { "appendonly", "no" },
        { "databases", databases },
        { "maxmemory", maxmemory },
    };
    enum {
        NPARAMS = sizeof(params) / sizeof(params[0])
    };
    bool   matched[NPARAMS] = { false };
    size_t n = 0;
    int    rc = 0;

    if (!resp_arg_equals(buf, &cmd->argv[1], "get")) {
        return resp_session_rc_of(resp_session_error(
            out,
            "ERR CONFIG is not supported by this proxy except CONFIG GET"));
    }
    if (cmd->argc < 3) {
        return resp_session_rc_of(resp_session_error(
            out, "ERR wrong number of arguments for 'config|get' command"));
    }
    snprintf(databases, sizeof(databases), "%u", env->cfg->redis_db + 1);
    snprintf(maxmemory, sizeof(maxmemory), "%" PRIu64,
             env->cfg->max_memory_bytes);
    for (size_t i = 2; i < cmd->argc; i++) {
        for (size_t j = 0; j < NPARAMS; j++) {
            if (!matched[j]
                && glob_match(resp_session_arg(buf, cmd, i), cmd->argv[i].len,
                              params[j][0], strlen(params[j][0]), true)) {
                matched[j] = true;
                n++;
            }
        }
    }
    rc |= resp_append_array(out, 2 * n);
    for (size_t j = 0; j < NPARAMS; j++) {
        if (matched[j]) {
            rc |= resp_append_bulk(out, params[j][0], strlen(params[j][0]));
            rc |= resp_append_bulk(out, params[j][1], strlen(params[j][1]));
        }
    }
    return resp_session_rc_of(rc);
}

/* ---- CLIENT ------------------------------------------------------------ */

static enum resp_session_rc
resp_session_client_arity(struct buf *out, const char *sub)
{
    char msg[96];
    int  n = snprintf(msg, sizeof(msg),
                      "ERR wrong number of arguments for 'client|%s' command",
                      sub);

    return resp_session_rc_of(resp_append_error(out, msg, (size_t) n));
}

/* Redis 7.0's fields, in its order: redis-py's client_info() converts
 * qbuf, qbuf-free, argv-mem, obl, oll, omem and tot-mem to integers and
 * fails when one is missing, so each is there, with this connection's
 * own numbers (argv-mem: the bytes of CLIENT INFO's own arguments, as
 * Redis counts them; rbs and rbp: the input buffer's size). */
static enum resp_session_rc
resp_session_client_info(struct resp_session           *s,
                         const struct resp_command     *cmd,
                         const struct resp_session_env *env, struct buf *out)
{
    struct resp_session_server_info si;
    char                            text[768];
    struct buf_fixed                t = { .buf = text, .cap = sizeof(text) };
    size_t                          argv_mem = 0;

    for (size_t i = 0; i < cmd->argc; i++) {
        argv_mem += cmd->argv[i].len;
    }
    memset(&si, 0, sizeof(si));
    env->fill_info(env->arg, &si);
    buf_fixed_printf(&t, "id=%" PRIu64 " addr=%s laddr=%s fd=%d name=", s->id,
                     si.addr, si.laddr, si.fd);
    buf_fixed_bytes(&t, s->name, s->name_len);
    buf_fixed_printf(&t,
                     " age=%" PRIu64 " idle=0 flags=N db=%u sub=0 psub=0"
                     " ssub=0 multi=%d",
                     (si.now_ms - s->created_ms) / 1000, env->cfg->redis_db,
                     s->in_multi ? (int) s->multi_count : -1);
    buf_fixed_printf(&t,
                     " qbuf=%zu qbuf-free=%zu argv-mem=%zu multi-mem=%zu"
                     " rbs=%zu rbp=%zu obl=%zu oll=%zu omem=%zu"
                     " tot-mem=%zu events=%s",
                     si.qbuf, si.qbuf_free, argv_mem, s->multi_queue.len,
                     si.qbuf + si.qbuf_free, si.qbuf + si.qbuf_free, si.obl,
                     si.oll, si.omem, si.tot_mem + s->multi_queue.cap,
                     si.obl > 0 || si.oll > 0 ? "rw" : "r");
    buf_fixed_printf(&t, " cmd=client|info user=%s redir=-1 resp=2\n",
                     resp_session_user(env->cfg));
    if (t.len > t.cap) {
        t.len = t.cap;
    }
    return resp_session_rc_of(resp_append_bulk(out, text, t.len));
}

static enum resp_session_rc
resp_session_client_setname(struct resp_session *s, const struct resp_arg *a,
                            const char *buf, struct buf *out)
{
    const char *p = buf + a->off;

    for (size_t i = 0; i < a->len; i++) {
        if (p[i] < '!' || p[i] > '~') {
            return resp_session_rc_of(resp_session_error(
                out, "ERR Client names cannot contain spaces, newlines or "
                     "special characters."));
        }
    }
    if (a->len > RESP_SESSION_NAME_MAX) {
        return resp_session_rc_of(resp_session_error(
            out, "ERR redis-cache-proxy keeps client names of at most 128 "
                 "bytes"));
    }
    memcpy(s->name, p, a->len);
    s->name_len = a->len;
    return resp_session_rc_of(resp_append_status(out, "OK"));
}

static enum resp_session_rc
resp_session_client(struct resp_session *s, const char *buf,
                    const struct resp_command     *cmd,
                    const struct resp_session_env *env, struct buf *out)
{
    const struct resp_arg *sub = &cmd->argv[1];

    if (resp_arg_equals(buf, sub, "id")) {
        if (cmd->argc != 2) {
            return resp_session_client_arity(out, "id");
        }
        return resp_session_rc_of(resp_append_integer(out, (int64_t) s->id));
    }
    if (resp_arg_equals(buf, sub, "info")) {
        if (cmd->argc != 2) {
            return resp_session_client_arity(out, "info");
        }
        return resp_session_client_info(s, cmd, env, out);
    }
    if (resp_arg_equals(buf, sub, "getname")) {
        if (cmd->argc != 2) {
            return resp_session_client_arity(out, "getname");
        }
        if (s->name_len == 0) {
            return resp_session_rc_of(resp_append_nil(out));
        }
        return resp_session_rc_of(resp_append_bulk(out, s->name, s->name_len));
    }
    if (resp_arg_equals(buf, sub, "setname")) {
        if (cmd->argc != 3) {
            return resp_session_client_arity(out, "setname");
        }
        return resp_session_client_setname(s, &cmd->argv[2], buf, out);
    }
    if (resp_arg_equals(buf, sub, "setinfo")) {
        if (cmd->argc != 4) {
            return resp_session_client_arity(out, "setinfo");
        }
        return resp_session_rc_of(resp_append_status(out, "OK"));
    }
    if (resp_arg_equals(buf, sub, "no-evict")
        || resp_arg_equals(buf, sub, "no-touch")) {
        /* Accepted: the proxy never evicts clients, and its own LRU is
         * not Redis' (a hit always refreshes the cached entry). */
        if (cmd->argc != 3) {
            return resp_session_client_arity(
                out, resp_arg_equals(buf, sub, "no-evict") ? "no-evict"
                                                           : "no-touch");
        }
        if (!resp_arg_equals(buf, &cmd->argv[2], "on")
            && !resp_arg_equals(buf, &cmd->argv[2], "off")) {
            return resp_session_rc_of(
                resp_session_error(out, "ERR syntax error"));
        }
        return resp_session_rc_of(resp_append_status(out, "OK"));
    }
    {
        char msg[200];
        int  n = snprintf(msg, sizeof(msg),
                          "ERR unknown subcommand '%.*s'. Try CLIENT HELP.",
                          (int) (sub->len < 128 ? sub->len : 128),
                          buf + sub->off);

        return resp_session_rc_of(resp_append_error(out, msg, (size_t) n));
    }
}

/* ---- RESET -------------------------------------------------------------
 * As Redis 6.2+ resets a connection (clearClientConnectionState): the
 * transaction is discarded, the name cleared and the user is the default
 * one again, authenticated only if it needs no password.  The db and
 * RESP2 are already what RESET would restore. */

static enum resp_session_rc
resp_session_reset(struct resp_session *s, const struct resp_session_env *env,
                   struct buf *out)
{
    resp_session_end_multi(s);
    s->name_len = 0;
    s->authed = env->cfg->resp_password[0] == '\0';
    return resp_session_rc_of(resp_append_status(out, "RESET"));
}

/* ---- dispatch ---------------------------------------------------------- */

enum resp_session_rc
resp_session_command(struct resp_session *s, const char *buf,
                     const struct resp_command     *cmd,
                     const struct resp_session_env *env, struct buf *out)
{
    if (resp_command_is(buf, cmd, "auth")) {
        return resp_session_auth(s, buf, cmd, env, out);
    }
    if (resp_command_is(buf, cmd, "hello")) {
        return resp_session_hello(s, buf, cmd, env, out);
    }
    if (resp_command_is(buf, cmd, "multi")) {
        if (s->in_multi) {
            return resp_session_rc_of(
                resp_session_error(out, "ERR MULTI calls can not be nested"));
        }
        s->in_multi = true;
        return resp_session_rc_of(resp_append_status(out, "OK"));
    }
    if (resp_command_is(buf, cmd, "exec")) {
        return resp_session_exec(s, out);
    }
    if (resp_command_is(buf, cmd, "discard")) {
        if (!s->in_multi) {
            return resp_session_rc_of(
                resp_session_error(out, "ERR DISCARD without MULTI"));
        }
        resp_session_end_multi(s);
        return resp_session_rc_of(resp_append_status(out, "OK"));
    }
    if (resp_command_is(buf, cmd, "watch")) {
        /* Nothing this client can do through the proxy modifies a key,
         * so there is nothing to watch: EXEC never fails for it. */
        if (s->in_multi) {
            return resp_session_rc_of(resp_session_error(
                out, "ERR WATCH inside MULTI is not allowed"));
        }
        return resp_session_rc_of(resp_append_status(out, "OK"));
    }
    if (resp_command_is(buf, cmd, "unwatch")) {
        return resp_session_rc_of(resp_append_status(out, "OK"));
    }
    if (resp_command_is(buf, cmd, "reset")) {
        return resp_session_reset(s, env, out);
    }
    if (resp_command_is(buf, cmd, "info")) {
        return resp_session_info(buf, cmd, env, out);
    }
    if (resp_command_is(buf, cmd, "config")) {
        return resp_session_config(buf, cmd, env, out);
    }
    return resp_session_client(s, buf, cmd, env, out);
}
