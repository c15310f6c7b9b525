/*
 * http_auth: the credential table, header parsing and verification.
 *
 *   Authorization value --memo hit--> OK  (HMAC of the value, seen OK)
 *        |
 *        +-- "Basic " b64 -> user:password -> the user's line ->
 *        |        crypt_r(password, hash) == hash ? OK : DENIED
 *        |        (an unknown user still pays one crypt_r, so timing
 *        |         does not tell which users exist)
 *        +-- "Bearer " token -> SHA-256 hex == a bearer line ? OK
 *        +-- anything else -> DENIED
 *
 * Only successes are remembered, in a direct-mapped table: a slot holds
 * the HMAC-SHA-256 (first 16 bytes) of an Authorization value under a
 * key drawn when the table is made.  A collision evicts; a miss only
 * costs a re-verification.  A reload makes a new table (workers are
 * replaced on SIGHUP), so a removed user is refused at once.
 */
#include "rcp_autoconf.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_auth.h"

#define HTTP_AUTH_MAX_FILE  (1024 * 1024)
#define HTTP_AUTH_NAME_MAX  255
#define HTTP_AUTH_HASH_MAX  255
#define HTTP_AUTH_TOKEN_HEX (2 * SHA256_DIGEST_LENGTH)
#define HTTP_AUTH_MEMO_LEN  16

struct http_auth_entry {
    bool bearer;                       /* else a user line */
    char name[HTTP_AUTH_NAME_MAX + 1]; /* user name, "" for bearer */
    char hash[HTTP_AUTH_HASH_MAX + 1]; /* crypt() hash, or hex digest */
};

struct http_auth {
    size_t                  n;
    struct http_auth_entry *entries;    /* owned */
    const char             *dummy_hash; /* borrowed: an entry's; for
                                           unknown users */
    struct crypt_data      *crypt;      /* owned: crypt_r's scratch */
    unsigned char           memo_key[32];
    unsigned char           memo[HTTP_AUTH_MEMO_SLOTS][HTTP_AUTH_MEMO_LEN];
    bool                    memo_used[HTTP_AUTH_MEMO_SLOTS];
};

static bool
http_auth_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    unsigned char        diff = alen != blen;

    for (size_t i = 0; i < blen; i++) {
        diff |= (unsigned char) ((i < alen ? x[i] : 0) ^ y[i]);
    }
    return diff == 0;
}

static int http_auth_fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
http_auth_fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Checks one user line's hash for a scheme crypt() here can verify. */
static bool
http_auth_hash_supported(const char *hash)
{
    static const char *const prefixes[] = {
        "$2y$", "$2b$", "$2a$", "$5$", "$6$", "$y$", "$7$", "$gy$",
    };

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(hash, prefixes[i], strlen(prefixes[i])) == 0) {
            return true;
        }
    }
    return false;
}

int
http_auth_load_text(const char *text, size_t len, struct http_auth **out,
                    char *err, size_t err_len)
{
    struct http_auth *a;
    size_t            lines = 1;
    size_t            lineno = 0;
    const char       *p = text, *end = text + len;

    for (size_t i = 0; i < len; i++) {
        lines += text[i] == '\n';
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return -ENOMEM;
    }
    a->entries = calloc(lines, sizeof(*a->entries));
    a->crypt = calloc(1, sizeof(*a->crypt));
    if (a->entries == NULL || a->crypt == NULL
        || getrandom(a->memo_key, sizeof(a->memo_key), 0)
               != (ssize_t) sizeof(a->memo_key)) {
        http_auth_free(a);
        return -ENOMEM;
    }
    while (p < end) {
        const char             *nl = memchr(p, '\n', (size_t) (end - p));
        const char             *le = nl != NULL ? nl : end;
        const char             *colon;
        struct http_auth_entry *e = &a->entries[a->n];
        size_t                  nlen, hlen;

        lineno++;
        while (p < le && isspace((unsigned char) *p)) {
            p++;
        }
        while (le > p && isspace((unsigned char) le[-1])) {
            le--;
        }
        if (p == le || *p == '#') {
            p = (nl != NULL ? nl : end) + (nl != NULL);
            continue;
        }
        colon = memchr(p, ':', (size_t) (le - p));
        if (colon == NULL || colon == p) {
            http_auth_free(a);
            return http_auth_fail(err, err_len,
                                  "line %zu: expected "
                                  "user:hash or bearer:sha256",
                                  lineno);
        }
        nlen = (size_t) (colon - p);
        hlen = (size_t) (le - colon - 1);
        if (nlen > HTTP_AUTH_NAME_MAX || hlen > HTTP_AUTH_HASH_MAX || hlen == 0
            || memchr(p, '\0', (size_t) (le - p)) != NULL) {
            http_auth_free(a);
            return http_auth_fail(err, err_len,
                                  "line %zu: empty or too "
                                  "long",
                                  lineno);
        }
        memcpy(e->name, p, nlen);
        memcpy(e->hash, colon + 1, hlen);
        if (nlen == 6 && memcmp(p, "bearer", 6) == 0) {
            e->bearer = true;
            e->name[0] = '\0';
            if (hlen != HTTP_AUTH_TOKEN_HEX) {
                http_auth_free(a);
                return http_auth_fail(err, err_len,
                                      "line %zu: a bearer "
                                      "line holds the token's SHA-256 in "
                                      "64 hex digits",
                                      lineno);
            }
            for (size_t i = 0; i < hlen; i++) {
                if (!isxdigit((unsigned char) e->hash[i])) {
                    http_auth_free(a);
                    return http_auth_fail(err, err_len,
                                          "line %zu: a bearer "
                                          "line holds the token's SHA-256 "
                                          "in 64 hex digits",
                                          lineno);
                }
                e->hash[i] = (char) tolower((unsigned char) e->hash[i]);
            }
        } else if (!http_auth_hash_supported(e->hash)) {
            http_auth_free(a);
            return http_auth_fail(err, err_len,
                                  "line %zu: user '%.*s': "
                                  "unsupported hash (use htpasswd -B for "
                                  "bcrypt)",
                                  lineno, (int) (nlen < 64 ? nlen : 64), p);
        } else if (a->dummy_hash == NULL) {
            a->dummy_hash = e->hash;
        }
        a->n++;
        p = (nl != NULL ? nl : end) + (nl != NULL);
    }
    if (a->n == 0) {
        http_auth_free(a);
        return http_auth_fail(err, err_len, "no credentials in the file");
    }
    *out = a;
    return 0;
}

int
http_auth_load_file(const char *path, struct http_auth **out, char *err,
                    size_t err_len)
{
    char       *text;
    struct stat st;
    ssize_t     n;
    size_t      got = 0;
    int         fd = open(path, O_RDONLY | O_CLOEXEC);
    int         rc;

    if (fd < 0) {
        return http_auth_fail(err, err_len, "cannot open '%s': %s", path,
                              strerror(errno));
    }
    if (fstat(fd, &st) != 0 || st.st_size > HTTP_AUTH_MAX_FILE) {
        close(fd);
        return http_auth_fail(err, err_len,
                              "'%s': not a readable file of at "
                              "most 1 MiB",
                              path);
    }
    text = malloc((size_t) st.st_size + 1);
    if (text == NULL) {
        close(fd);
        return -ENOMEM;
    }
    while (got < (size_t) st.st_size) {
        n = read(fd, text + got, (size_t) st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t) n;
    }
    close(fd);
    rc = http_auth_load_text(text, got, out, err, err_len);
    if (rc == -EINVAL) {
        char line[256];

        snprintf(line, sizeof(line), "%s", err);
        snprintf(err, err_len, "'%s': %s", path, line);
    }
    explicit_bzero(text, got);
    free(text);
    return rc;
}

void
http_auth_free(struct http_auth *a)
{
    if (a == NULL) {
        return;
    }
    if (a->entries != NULL) {
        explicit_bzero(a->entries, a->n * sizeof(*a->entries));
    }
    free(a->entries);
    free(a->crypt);
    explicit_bzero(a, sizeof(*a));
    free(a);
}

const char *
http_auth_challenge(const struct http_auth *a)
{
    for (size_t i = 0; i < a->n; i++) {
        if (!a->entries[i].bearer) {
            return "Basic realm=\"redis-cache-proxy\", charset=\"UTF-8\"";
        }
    }
    return "Bearer realm=\"redis-cache-proxy\"";
}

bool
http_auth_find_header(const char *head, size_t head_len, const char *name,
                      const char **value, size_t *value_len)
{
    size_t nlen = strlen(name);
    size_t pos = 0;

    /* Skip the request line; then each line is "name: value". */
    while (pos < head_len) {
        const char *line = head + pos;
        const char *eol = memchr(line, '\n', head_len - pos);
        size_t llen = eol != NULL ? (size_t) (eol - line) : head_len - pos;

        pos += llen + 1;
        if (line == head) {
            continue;
        }
        if (llen > nlen && line[nlen] == ':'
            && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            const char *e = line + llen;

            while (v < e && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) {
                e--;
            }
            *value = v;
            *value_len = (size_t) (e - v);
            return true;
        }
    }
    return false;
}

/* Decodes standard base64 (with padding) into out (cap bytes).  Returns
 * the length, or -1 when malformed or too long. */
static ssize_t
http_auth_base64(const char *in, size_t len, char *out, size_t cap)
{
    uint32_t acc = 0;
    int      bits = 0;
    size_t   n = 0;
    size_t   i;

    for (i = 0; i < len && in[i] != '='; i++) {
        unsigned char ch = (unsigned char) in[i];
        int           v;

        if (ch >= 'A' && ch <= 'Z') {
            v = ch - 'A';
        } else if (ch >= 'a' && ch <= 'z') {
            v = ch - 'a' + 26;
        } else if (ch >= '0' && ch <= '9') {
            v = ch - '0' + 52;
        } else if (ch == '+') {
            v = 62;
        } else if (ch == '/') {
            v = 63;
        } else {
            return -1;
        }
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap) {
                return -1;
            }
            out[n++] = (char) ((acc >> bits) & 0xff);
        }
    }
    for (; i < len; i++) {
        if (in[i] != '=') {
            return -1;
        }
    }
    return (ssize_t) n;
}

static void
http_auth_memo_mac(const struct http_auth *a, const char *value, size_t len,
                   unsigned char mac[HTTP_AUTH_MEMO_LEN], size_t *slot)
{
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int  flen = 0;

    HMAC(EVP_sha256(), a->memo_key, sizeof(a->memo_key),
         (const unsigned char *) value, len, full, &flen);
    memcpy(mac, full, HTTP_AUTH_MEMO_LEN);
    *slot =
        ((size_t) full[16] | ((size_t) full[17] << 8)) % HTTP_AUTH_MEMO_SLOTS;
}

static bool
http_auth_check_basic(struct http_auth *a, const char *b64, size_t len)
{
    char        cred[HTTP_AUTH_NAME_MAX + 1024];
    ssize_t     n = http_auth_base64(b64, len, cred, sizeof(cred) - 1);
    const char *colon;
    const char *hash = a->dummy_hash;
    bool        known = false;
    const char *got;
    bool        ok;

    if (n < 0 || (colon = memchr(cred, ':', (size_t) n)) == NULL
        || memchr(cred, '\0', (size_t) n) != NULL) {
        return false;
    }
    cred[n] = '\0';
    for (size_t i = 0; i < a->n; i++) {
        const struct http_auth_entry *e = &a->entries[i];

        if (!e->bearer && strlen(e->name) == (size_t) (colon - cred)
            && memcmp(e->name, cred, (size_t) (colon - cred)) == 0) {
            hash = e->hash;
            known = true;
            break;
        }
    }
    if (hash == NULL) {
        explicit_bzero(cred, sizeof(cred));
        return false; /* bearer lines only */
    }
    got = crypt_r(colon + 1, hash, a->crypt);
    ok = got != NULL && got[0] != '*'
         && http_auth_eq(got, strlen(got), hash, strlen(hash)) && known;
    explicit_bzero(cred, sizeof(cred));
    explicit_bzero(a->crypt, sizeof(*a->crypt));
    return ok;
}

static bool
http_auth_check_bearer(const struct http_auth *a, const char *token,
                       size_t len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char     digest[SHA256_DIGEST_LENGTH];
    char              text[HTTP_AUTH_TOKEN_HEX];
    bool              ok = false;

    SHA256((const unsigned char *) token, len, digest);
    for (size_t i = 0; i < sizeof(digest); i++) {
        text[2 * i] = hex[digest[i] >> 4];
        text[2 * i + 1] = hex[digest[i] & 0xf];
    }
    for (size_t i = 0; i < a->n; i++) {
        if (a->entries[i].bearer) {
            ok |= http_auth_eq(text, sizeof(text), a->entries[i].hash,
                               HTTP_AUTH_TOKEN_HEX);
        }
    }
    return ok;
}

enum http_auth_result
http_auth_check(struct http_auth *a, const char *value, size_t len)
{
    unsigned char mac[HTTP_AUTH_MEMO_LEN];
    size_t        slot;
    bool          ok;

    if (value == NULL) {
        return HTTP_AUTH_MISSING;
    }
    http_auth_memo_mac(a, value, len, mac, &slot);
    if (a->memo_used[slot]
        && http_auth_eq(mac, sizeof(mac), a->memo[slot], sizeof(mac))) {
        return HTTP_AUTH_OK;
    }
    if (len > 6 && strncasecmp(value, "Basic ", 6) == 0) {
        ok = http_auth_check_basic(a, value + 6, len - 6);
    } else if (len > 7 && strncasecmp(value, "Bearer ", 7) == 0) {
        ok = http_auth_check_bearer(a, value + 7, len - 7);
    } else {
        ok = false;
    }
    if (!ok) {
        return HTTP_AUTH_DENIED;
    }
    memcpy(a->memo[slot], mac, sizeof(mac));
    a->memo_used[slot] = true;
    return HTTP_AUTH_OK;
}
