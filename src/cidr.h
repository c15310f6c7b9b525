/*
 * cidr: IPv4 and IPv6 address ranges ("10.0.0.0/8", "::1", "fd00::/8")
 * for --allow-from and --proxy-protocol-from.  Pure: parsing and
 * matching touch no socket.  An IPv4 client seen on an IPv6 socket
 * (::ffff:a.b.c.d) matches the IPv4 ranges, as it is that client.
 */
#ifndef RCP_CIDR_H
#define RCP_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t bits;     /* prefix length */
    uint8_t addr[16]; /* network order; host bits 0 */
};

/* "ADDR" (a single host) or "ADDR/BITS".  0, or -EINVAL.  Host bits
 * set past the prefix are refused ("10.0.0.1/8" is a typo for a host or
 * for 10.0.0.0/8, and guessing is how allow-lists go wrong). */
int cidr_parse(const char *s, struct cidr *out);

/* True when the address (AF_INET or AF_INET6, 4 or 16 bytes in network
 * order) is inside c. */
bool cidr_match_addr(const struct cidr *c, int family, const void *addr);

/* True when sa (AF_INET / AF_INET6) is inside one of the n ranges. */
bool cidr_match_any(const struct cidr *list, size_t n,
                    const struct sockaddr *sa);

#endif
