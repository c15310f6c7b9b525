/*
 * sentinel: a worker's way to find the primary Redis Sentinel names for
 * --redis-master (--redis-sentinel).  It asks
 * `SENTINEL get-master-addr-by-name NAME` of the sentinels in turn (the
 * one that answered last first), keeps one connection SUBSCRIBEd to
 * +switch-master on one sentinel, and asks again whenever the backend
 * says its primary failed (connection lost or refused, -READONLY, or a
 * ROLE that is not master), at most every SENTINEL_REASK_MIN_MS, and
 * every 10 s in any case.
 *
 * It only reports addresses: the backend connects, and trusts an
 * address only once its ROLE says master (else it calls
 * sentinel_reask()).
 */
#ifndef RCP_SENTINEL_H
#define RCP_SENTINEL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "event.h"

struct sentinel;

/* found: host:port is what a sentinel (or a +switch-master message)
 * names as the primary now; host is borrowed for the call.  !found: no
 * sentinel answered a whole round.  From the loop only. */
typedef void (*sentinel_cb)(void *arg, bool found, const char *host,
                            uint16_t port);

/* Starts asking at once.  0 or -errno (-EINVAL: a TLS context that
 * cannot be made, logged). */
int  sentinel_create(struct event_loop *loop, const struct config *cfg,
                     sentinel_cb cb, void *cb_arg, struct sentinel **out);
void sentinel_destroy(struct sentinel *s);

/* The primary failed us: ask the sentinels again soon. */
void sentinel_reask(struct sentinel *s);

/* The address last reported is no primary (its ROLE said so): ask
 * again, starting with another sentinel than the one that named it. */
void sentinel_distrust(struct sentinel *s);

#endif
