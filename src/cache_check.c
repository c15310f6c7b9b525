/*
 * cache_check: the fault report that cache_check() and
 * cache_arena_check() share (see cache_check.h).  Loads and stores only:
 * it runs under the cache lock.
 */
#include <errno.h>

#include "cache_check.h"

int
cache_fault_set(struct cache_fault *fault, const char *what, uint64_t a,
                uint64_t b)
{
    fault->what = what;
    fault->a = a;
    fault->b = b;
    return -EUCLEAN;
}
