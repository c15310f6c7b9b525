/*
 * cidr: parsing and matching address ranges.  Matching compares whole
 * bytes, then the leading bits of the last partial byte; a /0 matches
 * every address of its family.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "cidr.h"

int
cidr_parse(const char *s, struct cidr *out)
{
    char        host[64];
    const char *slash = strchr(s, '/');
    size_t      hlen = slash != NULL ? (size_t) (slash - s) : strlen(s);
    unsigned    max_bits;
    unsigned    bits;
    struct cidr c;

    memset(&c, 0, sizeof(c));
    if (hlen == 0 || hlen >= sizeof(host)) {
        return -EINVAL;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, c.addr) == 1) {
        c.family = AF_INET;
        max_bits = 32;
    } else if (inet_pton(AF_INET6, host, c.addr) == 1) {
        c.family = AF_INET6;
        max_bits = 128;
    } else {
        return -EINVAL;
    }
    bits = max_bits;
    if (slash != NULL) {
        const char *p = slash + 1;

        if (*p == '\0' || strlen(p) > 3) {
            return -EINVAL;
        }
        bits = 0;
        for (; *p != '\0'; p++) {
            if (*p < '0' || *p > '9') {
                return -EINVAL;
            }
            bits = bits * 10 + (unsigned) (*p - '0');
        }
        if (bits > max_bits) {
            return -EINVAL;
        }
    }
    c.bits = (uint8_t) bits;
    for (unsigned i = bits; i < max_bits; i++) {
        if (c.addr[i / 8] & (0x80u >> (i % 8))) {
            return -EINVAL; /* host bits set */
        }
    }
    *out = c;
    return 0;
}

bool
cidr_match_addr(const struct cidr *c, int family, const void *addr)
{
    const uint8_t *a = addr;
    unsigned       full = c->bits / 8u;
    unsigned       rest = c->bits % 8u;

    if (family != c->family) {
        return false;
    }
    if (memcmp(a, c->addr, full) != 0) {
        return false;
    }
    if (rest != 0) {
        uint8_t mask = (uint8_t) (0xffu << (8 - rest));

        return (a[full] & mask) == c->addr[full];
    }
    return true;
}

bool
cidr_match_any(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
    int         family = sa->sa_family;
    const void *addr;

    if (family == AF_INET) {
        addr = &((const struct sockaddr_in *) (const void *) sa)->sin_addr;
    } else if (family == AF_INET6) {
        const struct in6_addr *a6 =
            &((const struct sockaddr_in6 *) (const void *) sa)->sin6_addr;

        addr = a6;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            addr = a6->s6_addr + 12;
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (cidr_match_addr(&list[i], family, addr)) {
            return true;
        }
    }
    return false;
}
