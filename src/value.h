/*
 * value: a reference-counted byte string, the one copy of a value read
 * from Redis that every client waiting for it shares.
 *
 * Small values are malloc'd; from VALUE_MMAP_MIN_BYTES on, a value is its
 * own anonymous mapping, so freeing it gives the pages back to the kernel
 * at once (glibc's dynamic mmap threshold would otherwise keep a big
 * freed value in the heap, and the worker's RSS would stay up).
 *
 * Ownership: value_create() returns one reference; value_ref() adds one,
 * value_unref() drops one and frees on the last.  A single worker thread
 * uses a value, so the count is a plain integer.
 *
 * Freeing a big mapping is not instant: munmap() of 256 MB of 4 KB pages
 * took 45-90 ms on a 2-core VM, a stall for every other client of the
 * worker.  So the last unref of a mapping over VALUE_REAP_STEP_BYTES only
 * puts it on this process's list of dead mappings, and the event loop's
 * owner calls value_reap() once per iteration while value_reap_pending()
 * says so: each call unmaps at most VALUE_REAP_STEP_BYTES, from the end
 * (about 1 ms).  value_reap_all() at exit.  The list is per process, as
 * malloc's free lists are: a worker is one thread.
 */
#ifndef RCP_VALUE_H
#define RCP_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etag.h"

#define VALUE_MMAP_MIN_BYTES  (1024u * 1024u)
#define VALUE_REAP_STEP_BYTES (4u * 1024u * 1024u)

struct value {
    size_t            refs;
    size_t            len;        /* bytes of data */
    char             *data;       /* owned: len bytes (+1 spare) */
    size_t            map_len;    /* of the mapping, 0 if malloc'd */
    bool              has_etag;   /* etag is set: by value_fed() */
    uint64_t          etag;       /* or once by the store callback */
    struct etag_state etag_state; /* over the bytes fed so far */
    struct value     *dead_next;  /* on the dead list: refs == 0 */
};

/* A value of len bytes, contents unset, one reference.  NULL when out of
 * memory. */
struct value *value_create(size_t len);
struct value *value_ref(struct value *v);
/* The next n bytes of data, at from, have been written: they are hashed
 * now, while they are in the cache, so the ETag of a large value costs no
 * pause at the end.  Pieces must come in order; after the last, has_etag
 * is true. */
void          value_fed(struct value *v, size_t from, size_t n);
/* NULL is a no-op. */
void          value_unref(struct value *v);
/* Unmaps up to VALUE_REAP_STEP_BYTES of dead mappings; true while some
 * remain (call again on the next loop iteration). */
bool          value_reap(void);
bool          value_reap_pending(void);
/* Unmaps them all now: at exit. */
void          value_reap_all(void);

#endif
