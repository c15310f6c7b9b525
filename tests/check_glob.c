/*
 * Unit tests of glob.c: one table row per case, then random patterns
 * checked against a copy of Redis' own recursive stringmatchlen() (the
 * oracle), so the non-recursive matcher means exactly what Redis means.
 */
#include <check.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "glob.h"

struct glob_case {
    const char *pattern;
    const char *s;
    bool        nocase;
    bool        match;
    const char *why;
};

static const struct glob_case glob_cases[] = {
    { "", "", false, true, "empty matches empty" },
    { "", "a", false, false, "empty pattern, non-empty string" },
    { "*", "", false, true, "star matches empty" },
    { "*", "anything", false, true, "star matches all" },
    { "user:*", "user:42", false, true, "prefix" },
    { "user:*", "session:42", false, false, "other prefix" },
    { "user:*", "user", false, false, "shorter than the prefix" },
    { "*:42", "user:42", false, true, "suffix" },
    { "a*b*c", "axxbyyc", false, true, "two stars" },
    { "a*b*c", "axxbyy", false, false, "two stars, no c" },
    { "a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false,
      "backtracking stays bounded" },
    { "h?llo", "hello", false, true, "question mark" },
    { "h?llo", "hllo", false, false, "question mark needs a byte" },
    { "h[ae]llo", "hallo", false, true, "class" },
    { "h[ae]llo", "hillo", false, false, "class miss" },
    { "h[^e]llo", "hallo", false, true, "negated class" },
    { "h[^e]llo", "hello", false, false, "negated class miss" },
    { "h[a-b]llo", "hbllo", false, true, "range" },
    { "h[b-a]llo", "hallo", false, true, "reversed range" },
    { "h[a-b]llo", "hcllo", false, false, "range miss" },
    { "[\\]]", "]", false, true, "escaped bracket in a class" },
    { "[a-]", "]", false, true, "a-] is a range up to ], as in Redis" },
    { "[abc", "b", false, true, "unterminated class ends the pattern" },
    { "\\*", "*", false, true, "escaped star" },
    { "\\*", "a", false, false, "escaped star is literal" },
    { "a\\", "a\\", false, true, "trailing backslash is literal" },
    { "USER:*", "user:1", true, true, "nocase" },
    { "USER:*", "user:1", false, false, "case matters by default" },
    { "[A-Z]", "q", true, true, "nocase range" },
    { "k\x01*", "k\x01z", false, true, "control bytes" },
};

START_TEST(test_glob_table)
{
    const struct glob_case *tc = &glob_cases[_i];

    ck_assert_msg(glob_match(tc->pattern, strlen(tc->pattern), tc->s,
                             strlen(tc->s), tc->nocase) == tc->match,
                  "%s: '%s' vs '%s'", tc->why, tc->pattern, tc->s);
}
END_TEST

START_TEST(test_glob_nul)
{
    ck_assert(glob_match("a?b", 3, "a\0b", 3, false));
    ck_assert(glob_match("a\0*", 3, "a\0zz", 4, false));
    ck_assert(!glob_match("a\0*", 3, "a\1zz", 4, false));
}
END_TEST

/* Redis 7.0 util.c stringmatchlen(), without its skip-longer-matches
 * shortcut (which changes only the time, not the answer). */
static int
oracle(const char *pattern, int patternLen, const char *string,
       int stringLen, int nocase)
{
    while (patternLen && stringLen) {
        switch (pattern[0]) {
        case '*':
            while (patternLen && pattern[1] == '*') {
                pattern++;
                patternLen--;
            }
            if (patternLen == 1) {
                return 1;
            }
            while (stringLen) {
                if (oracle(pattern + 1, patternLen - 1, string, stringLen,
                           nocase)) {
                    return 1;
                }
                string++;
                stringLen--;
            }
            return 0;
        case '?':
            string++;
            stringLen--;
            break;
        case '[': {
            int not, match;

            pattern++;
            patternLen--;
            not = pattern[0] == '^';
            if (not) {
                pattern++;
                patternLen--;
            }
            match = 0;
            while (1) {
                if (pattern[0] == '\\' && patternLen >= 2) {
                    pattern++;
                    patternLen--;
                    if (pattern[0] == string[0]) {
                        match = 1;
                    }
                } else if (pattern[0] == ']') {
                    break;
                } else if (patternLen == 0) {
                    pattern--;
                    patternLen++;
                    break;
                } else if (patternLen >= 3 && pattern[1] == '-') {
                    int start = pattern[0], end = pattern[2], c = string[0];

                    if (start > end) {
                        int t = start;

                        start = end;
                        end = t;
                    }
                    if (nocase) {
                        start = tolower(start);
                        end = tolower(end);
                        c = tolower(c);
                    }
                    pattern += 2;
                    patternLen -= 2;
                    if (c >= start && c <= end) {
                        match = 1;
                    }
                } else {
                    if (!nocase) {
                        if (pattern[0] == string[0]) {
                            match = 1;
                        }
                    } else if (tolower((int) pattern[0])
                               == tolower((int) string[0])) {
                        match = 1;
                    }
                }
                pattern++;
                patternLen--;
            }
            if (not) {
                match = !match;
            }
            if (!match) {
                return 0;
            }
            string++;
            stringLen--;
            break;
        }
        case '\\':
            if (patternLen >= 2) {
                pattern++;
                patternLen--;
            }
            __attribute__((fallthrough));
        default:
            if (!nocase) {
                if (pattern[0] != string[0]) {
                    return 0;
                }
            } else if (tolower((int) pattern[0]) != tolower((int) string[0])) {
                return 0;
            }
            string++;
            stringLen--;
            break;
        }
        pattern++;
        patternLen--;
        if (stringLen == 0) {
            while (*pattern == '*') {
                pattern++;
                patternLen--;
            }
            break;
        }
    }
    return patternLen == 0 && stringLen == 0;
}

START_TEST(test_glob_oracle)
{
    /* Small alphabets make matches, classes and escapes common.  Both
     * buffers end in a NUL the oracle may peek at, as in Redis. */
    static const char pchars[] = "ab*?[]^-\\";
    static const char schars[] = "ab]-*";
    unsigned          seed = 12345;

    for (int n = 0; n < 200000; n++) {
        char pat[10], str[10];
        int  plen, slen;

        seed = seed * 1103515245u + 12345u;
        plen = (int) ((seed >> 16) % 8);
        for (int i = 0; i < plen; i++) {
            seed = seed * 1103515245u + 12345u;
            pat[i] = pchars[(seed >> 16) % (sizeof(pchars) - 1)];
        }
        pat[plen] = '\0';
        seed = seed * 1103515245u + 12345u;
        slen = (int) ((seed >> 16) % 7);
        for (int i = 0; i < slen; i++) {
            seed = seed * 1103515245u + 12345u;
            str[i] = schars[(seed >> 16) % (sizeof(schars) - 1)];
        }
        str[slen] = '\0';
        if (plen == 0 || slen == 0) {
            continue;                   /* the oracle's loop needs both */
        }
        ck_assert_msg(glob_match(pat, (size_t) plen, str, (size_t) slen,
                                 false)
                      == (oracle(pat, plen, str, slen, 0) != 0),
                      "pattern '%s' string '%s'", pat, str);
    }
}
END_TEST

static Suite *
glob_suite(void)
{
    Suite *s = suite_create("glob");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, test_glob_table, 0,
                        sizeof(glob_cases) / sizeof(glob_cases[0]));
    tcase_add_test(tc, test_glob_nul);
    suite_add_tcase(s, tc);
    tc = tcase_create("oracle");
    tcase_add_test(tc, test_glob_oracle);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(glob_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
