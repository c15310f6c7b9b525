/*
 * http_auth: HTTP authentication for the data port (--http-auth-file).
 *
 * The file has one credential per line, blank lines and `#` comments
 * aside:
 *   user:HASH             a password hash crypt() understands, as
 *                         `htpasswd -B` writes it ($2y$ bcrypt; also
 *                         $2b$, $5$, $6$, $y$); checked against
 *                         "Authorization: Basic base64(user:password)"
 *   bearer:SHA256HEX      the SHA-256 of a token, 64 hex digits;
 *                         checked against "Authorization: Bearer TOKEN"
 * Secrets are compared in constant time.  bcrypt is slow on purpose, so
 * a worker remembers the Authorization values it has verified (as an
 * HMAC under a key drawn at start, never the value itself): a keep-alive
 * client pays for crypt() once, not per request.
 *
 * Parsing (http_auth_load_text) is pure; http_auth_check calls crypt_r
 * and OpenSSL's SHA-256 but does no I/O.
 */
#ifndef RCP_HTTP_AUTH_H
#define RCP_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* Slots of the verified-credentials memory (direct-mapped). */
#define HTTP_AUTH_MEMO_SLOTS 256

struct http_auth;

enum http_auth_result {
    HTTP_AUTH_OK = 0,
    HTTP_AUTH_MISSING, /* no Authorization header */
    HTTP_AUTH_DENIED   /* wrong scheme, user, password, token */
};

/* Builds the credential table from the file's text.  0, -EINVAL with a
 * one-line reason in err (naming the line, never a secret), or -ENOMEM. */
int  http_auth_load_text(const char *text, size_t len, struct http_auth **out,
                         char *err, size_t err_len);
/* Reads path and calls http_auth_load_text; errors name the file. */
int  http_auth_load_file(const char *path, struct http_auth **out, char *err,
                         size_t err_len);
void http_auth_free(struct http_auth *a);

/* Checks one request's Authorization value (NULL when the header is
 * absent). */
enum http_auth_result http_auth_check(struct http_auth *a, const char *value,
                                      size_t len);

/* Finds a header's value in a request head (as the HTTP parser has
 * validated it): the first line whose name is name (lower case,
 * compared case-insensitively), value without surrounding blanks.
 * True when found. */
bool http_auth_find_header(const char *head, size_t head_len, const char *name,
                           const char **value, size_t *value_len);

/* The value of the WWW-Authenticate header a 401 carries. */
const char *http_auth_challenge(const struct http_auth *a);

#endif
