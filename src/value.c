/*
 * value: see value.h.  The struct and a small value's bytes are one
 * allocation; a large value's bytes are a mapping of their own, with the
 * struct malloc'd beside it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "value.h"

/* Values whose last reference is gone and whose mapping is still being
 * unmapped, oldest first; see value.h.  v->map_len is what is left of
 * the mapping at v->data. */
static struct value *value_dead_head;
static struct value *value_dead_tail;

struct value *
value_create(size_t len)
{
    struct value *v;
    size_t        page, map_len;
    void         *p;

    if (len < VALUE_MMAP_MIN_BYTES) {
        v = malloc(sizeof(*v) + len + 1);
        if (v == NULL) {
            return NULL;
        }
        v->data = (char *) (v + 1);
        v->map_len = 0;
    } else {
        page = (size_t) sysconf(_SC_PAGESIZE);
        if (len > SIZE_MAX - page) {
            return NULL;
        }
        map_len = (len + 1 + page - 1) & ~(page - 1);
        v = malloc(sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            free(v);
            return NULL;
        }
        v->data = p;
        v->map_len = map_len;
    }
    v->refs = 1;
    v->len = len;
    etag_begin(&v->etag_state);
    v->has_etag = len == 0;
    v->etag = len == 0 ? etag_end(&v->etag_state) : 0;
    v->data[len] = '\0'; /* the spare byte: C strings for logs */
    return v;
}

void
value_fed(struct value *v, size_t from, size_t n)
{
    assert(from == v->etag_state.len && n <= v->len - from);
    etag_update(&v->etag_state, v->data + from, n);
    if (v->etag_state.len == v->len) {
        v->etag = etag_end(&v->etag_state);
        v->has_etag = true;
    }
}

struct value *
value_ref(struct value *v)
{
    assert(v->refs > 0);
    v->refs++;
    return v;
}

void
value_unref(struct value *v)
{
    if (v == NULL) {
        return;
    }
    assert(v->refs > 0);
    if (--v->refs > 0) {
        return;
    }
    if (v->map_len > VALUE_REAP_STEP_BYTES) {
        v->dead_next = NULL;
        if (value_dead_tail != NULL) {
            value_dead_tail->dead_next = v;
        } else {
            value_dead_head = v;
        }
        value_dead_tail = v;
        return;
    }
    if (v->map_len > 0) {
        /* munmap() of a mapping we made cannot fail but for a bug. */
        (void) munmap(v->data, v->map_len);
    }
    free(v);
}

bool
value_reap_pending(void)
{
    return value_dead_head != NULL;
}

bool
value_reap(void)
{
    struct value *v = value_dead_head;
    size_t        step;

    if (v == NULL) {
        return false;
    }
    /* From the end: what is left stays one mapping at v->data.  Both
     * are multiples of the page size. */
    step = v->map_len < VALUE_REAP_STEP_BYTES ? v->map_len
                                              : VALUE_REAP_STEP_BYTES;
    (void) munmap(v->data + v->map_len - step, step);
    v->map_len -= step;
    if (v->map_len == 0) {
        value_dead_head = v->dead_next;
        if (value_dead_head == NULL) {
            value_dead_tail = NULL;
        }
        free(v);
    }
    return value_dead_head != NULL;
}

void
value_reap_all(void)
{
    while (value_reap()) {
    }
}
