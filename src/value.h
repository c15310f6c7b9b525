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
 */
#ifndef RCP_VALUE_H
#define RCP_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etag.h"

#define VALUE_MMAP_MIN_BYTES (1024u * 1024u)

struct value {
    size_t  refs;
    size_t  len;                        /* bytes of data */
    char   *data;                       /* owned: len bytes (+1 spare) */
    size_t  map_len;                    /* of the mapping, 0 if malloc'd */
    bool    has_etag;                   /* etag is set: by value_fed() */
    uint64_t etag;                      /* or once by the store callback */
    struct etag_state etag_state;       /* over the bytes fed so far */
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

#endif
