/*
 * access: the per-worker access-control state and its pure checks (see
 * access.h).  The lists are small (at most CONFIG_LIST_MAX each) and
 * checked linearly: a key check is a few glob matches, an address check
 * a few byte compares, both far below a request's cost.
 */
#include <errno.h>
#include <string.h>

#include "access.h"
#include "glob.h"

int
access_init(struct access *a, const struct config *cfg,
            struct http_auth *parsed, char *err, size_t err_len)
{
    memset(a, 0, sizeof(*a));
    a->allow_keys = &cfg->allow_keys;
    for (uint32_t i = 0; i < cfg->allow_from.n; i++) {
        /* Validated when the configuration was loaded. */
        if (cidr_parse(cfg->allow_from.items[i],
                       &a->allow_from[a->n_allow_from])
            == 0) {
            a->n_allow_from++;
        }
    }
    for (uint32_t i = 0; i < cfg->proxy_protocol_from.n; i++) {
        if (cidr_parse(cfg->proxy_protocol_from.items[i],
                       &a->proxy_from[a->n_proxy_from])
            == 0) {
            a->n_proxy_from++;
        }
    }
    if (cfg->http_auth_file[0] != '\0') {
        a->http_auth_on = true;
        if (parsed != NULL) {
            a->http_auth = parsed;
            return 0;
        }
        return http_auth_load_file(cfg->http_auth_file, &a->http_auth, err,
                                   err_len);
    }
    return 0;
}

void
access_fini(struct access *a)
{
    http_auth_free(a->http_auth);
    a->http_auth = NULL;
}

bool
access_key_allowed(const struct access *a, const char *key, size_t len)
{
    const struct config_list *l = a->allow_keys;

    if (l == NULL || l->n == 0) {
        return true;
    }
    for (uint32_t i = 0; i < l->n; i++) {
        if (glob_match(l->items[i], strlen(l->items[i]), key, len, false)) {
            return true;
        }
    }
    return false;
}

bool
access_client_allowed(const struct access *a, const struct sockaddr *sa)
{
    return a->n_allow_from == 0
           || cidr_match_any(a->allow_from, a->n_allow_from, sa);
}

bool
access_proxy_trusted(const struct access *a, const struct sockaddr *sa)
{
    return a->n_proxy_from > 0
           && cidr_match_any(a->proxy_from, a->n_proxy_from, sa);
}
