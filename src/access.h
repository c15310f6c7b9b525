/*
 * access: who may read what through the data ports, decided from the
 * configuration alone.  A worker builds one struct access at start (the
 * address ranges parsed once, the HTTP credential file read once; a
 * SIGHUP replaces the workers and so reloads both) and asks it, per
 * connection or per key, without any I/O:
 *   --allow-from CIDR          may this client connect?
 *   --proxy-protocol-from CIDR does this peer send a PROXY header?
 *   --allow-keys GLOB          may this key be read?
 *   --http-auth-file FILE      (http_auth.h) are these credentials good?
 */
#ifndef RCP_ACCESS_H
#define RCP_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cidr.h"
#include "config.h"
#include "http_auth.h"

struct access {
    const struct config_list *allow_keys; /* borrowed: the config's */
    size_t                    n_allow_from;
    struct cidr               allow_from[CONFIG_LIST_MAX];
    size_t                    n_proxy_from;
    struct cidr               proxy_from[CONFIG_LIST_MAX];
    bool                      http_auth_on; /* --http-auth-file given */
    struct http_auth         *http_auth;    /* owned; NULL when off, or
                                               when the file could not be
                                               read: then every request
                                               is refused (fail closed) */
};

/* Builds a from cfg (which must outlive it).  With --http-auth-file,
 * a takes parsed (then owned by a) when it is given, and reads the file
 * itself when it is NULL.  0, or -EINVAL with the reason in err when the
 * credential file cannot be used; a is then still usable and refuses
 * every HTTP request. */
int  access_init(struct access *a, const struct config *cfg,
                 struct http_auth *parsed, char *err, size_t err_len);
void access_fini(struct access *a);

/* --allow-keys: true when there is no list or key matches a pattern
 * (Redis glob syntax, case-sensitive). */
bool access_key_allowed(const struct access *a, const char *key, size_t len);
/* --allow-from: true when there is no list or sa is in a range. */
bool access_client_allowed(const struct access *a, const struct sockaddr *sa);
/* --proxy-protocol-from: true when sa must send a PROXY header. */
bool access_proxy_trusted(const struct access *a, const struct sockaddr *sa);

#endif
