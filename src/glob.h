/*
 * glob: Redis' glob-style pattern matching (KEYS, SCAN MATCH, ACL key
 * patterns, CONFIG GET), as a pure function over byte strings.
 *
 *   *       any run of bytes, the empty one included
 *   ?       exactly one byte
 *   [abc]   one of the bytes listed; [^abc] one byte not listed;
 *           [a-z] a range (either order); \x inside a class is x
 *   \x      the byte x itself (\* matches a star)
 *
 * As in Redis' stringmatchlen(): a class left open at the end of the
 * pattern ends there, and a trailing lone backslash matches a backslash.
 * Patterns and strings may hold any byte, NUL included.
 */
#ifndef RCP_GLOB_H
#define RCP_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* True when the whole of s matches the whole of pattern.  nocase folds
 * ASCII letters.  Time is O(plen * slen) at worst: on a mismatch it
 * backtracks only to the last star, never recursively. */
bool glob_match(const char *pattern, size_t plen, const char *s, size_t slen,
                bool nocase);

#endif
