/*
 * proxy_proto: a pure parser of the PROXY protocol header (haproxy's
 * proxy-protocol.txt, versions 1 and 2) that a load balancer sends
 * before the client's own bytes, naming the real client.
 *
 * Incremental and allocation-free: call proxy_proto_parse() with the
 * connection's input so far (always from its first byte); it returns
 * AGAIN until the header is complete, then DONE with its length, so the
 * caller drops that many bytes and parses the rest as HTTP or RESP.
 * Only the bytes are examined: no I/O, no malloc, no globals.
 *
 *   v1: "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n"  (at most 107 bytes)
 *       "PROXY TCP6 ...\r\n", "PROXY UNKNOWN ...\r\n"
 *   v2: 12-byte signature, ver/cmd, family/proto, 2-byte length, the
 *       addresses, then TLVs (skipped); LOCAL or UNSPEC mean "no client
 *       address": the connection's own peer stands.
 */
#ifndef RCP_PROXY_PROTO_H
#define RCP_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* v1's longest line, CRLF included (the specification's figure). */
#define PROXY_PROTO_V1_MAX 107
/* Longest v2 header accepted: the 16-byte fixed part plus the longest
 * address block a 16-bit length allows. */
#define PROXY_PROTO_V2_MAX (16 + 65535)

enum proxy_proto_rc {
    PROXY_PROTO_DONE = 0, /* header complete: see result */
    PROXY_PROTO_AGAIN,    /* a valid prefix: need more bytes */
    PROXY_PROTO_ERROR     /* not a valid PROXY header */
};

struct proxy_proto_result {
    size_t                  len;      /* header bytes, to drop */
    int                     version;  /* 1 or 2 */
    bool                    has_addr; /* false: LOCAL / UNKNOWN /
                                         UNSPEC: keep the socket's */
    struct sockaddr_storage src;      /* the real client, when has_addr */
    const char             *error;    /* static text, on ERROR */
};

/* Parses the header at the start of buf (len bytes received so far). */
enum proxy_proto_rc proxy_proto_parse(const char *buf, size_t len,
                                      struct proxy_proto_result *out);

/* True when buf (len bytes, possibly fewer than a signature) starts as a
 * PROXY header of either version could: used to refuse one from a peer
 * that is not trusted to send it. */
bool proxy_proto_looks_like(const char *buf, size_t len);

#endif
