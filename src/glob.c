/*
 * glob: Redis' glob patterns, matched without recursion.
 *
 * Every token but '*' consumes exactly one byte of the string, so the
 * classic two-pointer algorithm is exact: walk pattern and string
 * together; at a star remember where it was and how much of the string
 * it has eaten; on a mismatch, let the last star eat one more byte and
 * try again from just after it.  An earlier star never needs to take
 * more, because whatever the later star could not reach, a longer match
 * of the earlier one cannot give it either.  This keeps "a*a*a*a*b"
 * against a long run of a's linear-ish instead of Redis' exponential
 * recursion (Redis 7 caps that with its own "skip longer matches" flag).
 */
#include <ctype.h>

#include "glob.h"

static unsigned char
glob_fold(unsigned char ch, bool nocase)
{
    return nocase ? (unsigned char) tolower(ch) : ch;
}

/* Matches one byte against the class starting at p[*pi] == '['.  On
 * return *pi is just past the class.  Mirrors stringmatchlen(): an
 * unterminated class ends at the end of the pattern. */
static bool
glob_class(const char *p, size_t plen, size_t *pi, unsigned char ch,
           bool nocase)
{
    size_t i = *pi + 1;
    bool   negate = false, match = false;

    ch = glob_fold(ch, nocase);
    if (i < plen && p[i] == '^') {
        negate = true;
        i++;
    }
    while (i < plen && p[i] != ']') {
        if (p[i] == '\\' && i + 1 < plen) {
            match |= glob_fold((unsigned char) p[i + 1], nocase) == ch;
            i += 2;
        } else if (i + 2 < plen && p[i + 1] == '-') {
            unsigned char lo = glob_fold((unsigned char) p[i], nocase);
            unsigned char hi = glob_fold((unsigned char) p[i + 2], nocase);

            if (lo > hi) {
                unsigned char t = lo;

                lo = hi;
                hi = t;
            }
            match |= ch >= lo && ch <= hi;
            i += 3;
        } else {
            match |= glob_fold((unsigned char) p[i], nocase) == ch;
            i++;
        }
    }
    if (i < plen) {
        i++; /* the closing ']' */
    }
    *pi = i;
    return negate ? !match : match;
}

bool
glob_match(const char *p, size_t plen, const char *s, size_t slen, bool nocase)
{
    size_t pi = 0, si = 0;
    size_t star_p = (size_t) -1; /* just past the last '*' */
    size_t star_s = 0;           /* where that star's match ends */

    while (si < slen) {
        if (pi < plen) {
            size_t        next = pi + 1;
            bool          ok;
            unsigned char ch = (unsigned char) s[si];

            switch (p[pi]) {
            case '*':
                while (pi < plen && p[pi] == '*') {
                    pi++;
                }
                if (pi == plen) {
                    return true; /* a trailing star takes the rest */
                }
                star_p = pi;
                star_s = si;
                continue;
            case '?':
                ok = true;
                break;
            case '[':
                next = pi;
                ok = glob_class(p, plen, &next, ch, nocase);
                break;
            case '\\':
                if (pi + 1 < plen) {
                    next = pi + 2;
                    ok = glob_fold((unsigned char) p[pi + 1], nocase)
                         == glob_fold(ch, nocase);
                    break;
                }
                /* A lone trailing backslash is literal. */
                __attribute__((fallthrough));
            default:
                ok = glob_fold((unsigned char) p[pi], nocase)
                     == glob_fold(ch, nocase);
                break;
            }
            if (ok) {
                pi = next;
                si++;
                continue;
            }
        }
        if (star_p == (size_t) -1) {
            return false;
        }
        pi = star_p; /* the last star eats one more */
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*') {
        pi++;
    }
    return pi == plen;
}
