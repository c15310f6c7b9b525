/*
 * proxy_proto: PROXY protocol v1 and v2 headers.  The parser is
 * stateless between calls: it re-reads the header from the first byte
 * each time (at most 107 bytes for v1, 16 + length for v2, and the
 * caller calls it only while the header is incomplete), which keeps it
 * trivially resumable and gives the same answer whatever way the bytes
 * were split.
 *
 * v1 is strict, as haproxy is: exactly one space between fields, the
 * protocol TCP4/TCP6/UNKNOWN, dotted-quad or RFC 4291 addresses that
 * inet_pton() accepts, ports 0-65535 without leading zeros (a bare "0"
 * excepted), and the line ends in CRLF within 107 bytes.
 *
 * v2: signature, version 2, command LOCAL (0) or PROXY (1); family
 * UNSPEC, INET or INET6 with STREAM (or UNSPEC); AF_UNIX is accepted
 * and treated as no address.  The address block must hold the addresses
 * its family needs; what follows them (TLVs) is skipped.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy_proto.h"

static const char proxy_proto_v2_sig[12] = { '\r', '\n', '\r', '\n',
                                             '\0', '\r', '\n', 'Q',
                                             'U',  'I',  'T',  '\n' };

static enum proxy_proto_rc
proxy_proto_fail(struct proxy_proto_result *out, const char *why)
{
    out->error = why;
    return PROXY_PROTO_ERROR;
}

bool
proxy_proto_looks_like(const char *buf, size_t len)
{
    size_t n1 = len < 6 ? len : 6;
    size_t n2 = len < 12 ? len : 12;

    if (len == 0) {
        return false;
    }
    return memcmp(buf, "PROXY ", n1) == 0
           || memcmp(buf, proxy_proto_v2_sig, n2) == 0;
}

/* ---- v1 ---------------------------------------------------------------- */

/* Copies the field at buf[*pos] up to the next space (or CR when last)
 * into dst (cap bytes, NUL-terminated).  Returns false when it is empty,
 * too long, or ends at the wrong separator. */
static bool
proxy_proto_v1_field(const char *buf, size_t end, size_t *pos, char *dst,
                     size_t cap, char sep)
{
    size_t start = *pos;
    size_t i = start;

    while (i < end && buf[i] != ' ' && buf[i] != '\r') {
        i++;
    }
    if (i == start || i - start >= cap || i >= end || buf[i] != sep) {
        return false;
    }
    memcpy(dst, buf + start, i - start);
    dst[i - start] = '\0';
    *pos = i + 1;
    return true;
}

static bool
proxy_proto_v1_port(const char *s, uint16_t *port)
{
    uint32_t v = 0;
    size_t   n = strlen(s);

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint32_t) (s[i] - '0');
    }
    if (v > 65535) {
        return false;
    }
    *port = (uint16_t) v;
    return true;
}

static enum proxy_proto_rc
proxy_proto_v1(const char *buf, size_t len, struct proxy_proto_result *out)
{
    const char *lf;
    size_t      end; /* index of the CR */
    size_t      pos = 6;
    char        proto[8], src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    char        sport[8], dport[8];
    uint16_t    sp, dp;
    int         family;
    size_t      scan = len < PROXY_PROTO_V1_MAX ? len : PROXY_PROTO_V1_MAX;

    /* Bytes that can never appear in the line, seen before its end, make
     * it an error at once rather than after 107 bytes. */
    for (size_t i = 0; i < scan; i++) {
        unsigned char ch = (unsigned char) buf[i];

        if (ch == '\n') {
            break;
        }
        if ((ch < 0x20 && ch != '\r') || ch >= 0x7f
            || (ch == '\r' && i + 1 < scan && buf[i + 1] != '\n')) {
            return proxy_proto_fail(out, "PROXY v1: invalid byte");
        }
    }
    lf = memchr(buf, '\n', scan);
    if (lf == NULL) {
        return len < PROXY_PROTO_V1_MAX
                   ? PROXY_PROTO_AGAIN
                   : proxy_proto_fail(out,
                                      "PROXY v1: line longer than 107 bytes");
    }
    end = (size_t) (lf - buf);
    if (end == 0 || buf[end - 1] != '\r') {
        return proxy_proto_fail(out, "PROXY v1: line must end in CRLF");
    }
    end--; /* at the CR */
    out->len = end + 2;
    out->version = 1;
    if (end - pos >= 7 && memcmp(buf + pos, "UNKNOWN", 7) == 0
        && (end - pos == 7 || buf[pos + 7] == ' ')) {
        out->has_addr = false; /* the rest is ignored */
        return PROXY_PROTO_DONE;
    }
    if (!proxy_proto_v1_field(buf, end + 1, &pos, proto, sizeof(proto), ' ')
        || !proxy_proto_v1_field(buf, end + 1, &pos, src, sizeof(src), ' ')
        || !proxy_proto_v1_field(buf, end + 1, &pos, dst, sizeof(dst), ' ')
        || !proxy_proto_v1_field(buf, end + 1, &pos, sport, sizeof(sport), ' ')
        || !proxy_proto_v1_field(buf, end + 1, &pos, dport, sizeof(dport),
                                 '\r')
        || pos != end + 1) {
        return proxy_proto_fail(out, "PROXY v1: malformed line");
    }
    if (strcmp(proto, "TCP4") == 0) {
        family = AF_INET;
    } else if (strcmp(proto, "TCP6") == 0) {
        family = AF_INET6;
    } else {
        return proxy_proto_fail(out, "PROXY v1: unknown protocol");
    }
    if (!proxy_proto_v1_port(sport, &sp) || !proxy_proto_v1_port(dport, &dp)) {
        return proxy_proto_fail(out, "PROXY v1: invalid port");
    }
    memset(&out->src, 0, sizeof(out->src));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *) &out->src;
        struct in_addr      d;

        if (inet_pton(AF_INET, src, &a->sin_addr) != 1
            || inet_pton(AF_INET, dst, &d) != 1) {
            return proxy_proto_fail(out, "PROXY v1: invalid IPv4 address");
        }
        a->sin_family = AF_INET;
        a->sin_port = htons(sp);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &out->src;
        struct in6_addr      d;

        if (inet_pton(AF_INET6, src, &a->sin6_addr) != 1
            || inet_pton(AF_INET6, dst, &d) != 1) {
            return proxy_proto_fail(out, "PROXY v1: invalid IPv6 address");
        }
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(sp);
    }
    out->has_addr = true;
    return PROXY_PROTO_DONE;
}

/* ---- v2 ---------------------------------------------------------------- */

static enum proxy_proto_rc
proxy_proto_v2(const char *buf, size_t len, struct proxy_proto_result *out)
{
    const unsigned char *p = (const unsigned char *) buf;
    unsigned             ver, cmd, fam, proto;
    size_t               alen;

    if (len < 16) {
        /* Check what is there already: a wrong version or command byte
         * is an error now. */
        if (len > 12 && (p[12] >> 4) != 2) {
            return proxy_proto_fail(out, "PROXY v2: unknown version");
        }
        return PROXY_PROTO_AGAIN;
    }
    ver = p[12] >> 4;
    cmd = p[12] & 0x0f;
    fam = p[13] >> 4;
    proto = p[13] & 0x0f;
    alen = ((size_t) p[14] << 8) | p[15];
    if (ver != 2) {
        return proxy_proto_fail(out, "PROXY v2: unknown version");
    }
    if (cmd > 1) {
        return proxy_proto_fail(out, "PROXY v2: unknown command");
    }
    if (fam > 3 || proto > 2) {
        return proxy_proto_fail(out, "PROXY v2: unknown address family");
    }
    if ((fam == 1 && alen < 12) || (fam == 2 && alen < 36)
        || (fam == 3 && alen < 216)) {
        return proxy_proto_fail(out, "PROXY v2: address block too short");
    }
    if (len < 16 + alen) {
        return PROXY_PROTO_AGAIN;
    }
    out->len = 16 + alen;
    out->version = 2;
    out->has_addr = false;
    if (cmd == 0 || fam == 0 || fam == 3 || proto == 2) {
        return PROXY_PROTO_DONE; /* LOCAL, UNSPEC, unix, datagram */
    }
    memset(&out->src, 0, sizeof(out->src));
    if (fam == 1) {
        struct sockaddr_in *a = (struct sockaddr_in *) &out->src;

        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, p + 16, 4);
        memcpy(&a->sin_port, p + 24, 2);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &out->src;

        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, p + 16, 16);
        memcpy(&a->sin6_port, p + 48, 2);
    }
    out->has_addr = true;
    return PROXY_PROTO_DONE;
}

enum proxy_proto_rc
proxy_proto_parse(const char *buf, size_t len, struct proxy_proto_result *out)
{
    size_t n;

    memset(out, 0, sizeof(*out));
    if (len == 0) {
        return PROXY_PROTO_AGAIN;
    }
    if (buf[0] == 'P') {
        n = len < 6 ? len : 6;
        if (memcmp(buf, "PROXY ", n) != 0) {
            return proxy_proto_fail(out, "not a PROXY header");
        }
        return n < 6 ? PROXY_PROTO_AGAIN : proxy_proto_v1(buf, len, out);
    }
    n = len < 12 ? len : 12;
    if (memcmp(buf, proxy_proto_v2_sig, n) != 0) {
        return proxy_proto_fail(out, "not a PROXY header");
    }
    return n < 12 ? PROXY_PROTO_AGAIN : proxy_proto_v2(buf, len, out);
}
