/*
 * check_config_parse: unit tests of src/config_parse.c, the options'
 * value parsers and printers, one table per function with a .why per
 * row.  Every good row of the duration and size tables is also printed
 * and parsed again, which must give the same value.
 */
#include "rcp_autoconf.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"

/* --- duration --------------------------------------------------------- */

static const struct duration_case {
    const char *input;
    int         rc;
    uint64_t    ms;
    const char *why;
} duration_cases[] = {
    { "500ms", 0, 500, "milliseconds" },
    { "30s", 0, 30000, "seconds" },
    { "5m", 0, 300000, "minutes" },
    { "1h", 0, 3600000, "hours" },
    { "7", 0, 7000, "a bare number is seconds" },
    { "0", 0, 0, "zero parses; the option decides if it is allowed" },
    { "007s", 0, 7000, "leading zeros" },
    { "18446744073709551615ms", 0, UINT64_MAX, "largest value" },
    { "18446744073709551616ms", -ERANGE, 0, "one past the largest" },
    { "99999999999999999999", -ERANGE, 0, "digits overflow" },
    { "18446744073709552s", -ERANGE, 0, "unit multiplication overflows" },
    { "", -EINVAL, 0, "empty" },
    { "s", -EINVAL, 0, "unit without number" },
    { "10x", -EINVAL, 0, "unknown unit" },
    { "-1", -EINVAL, 0, "sign" },
    { "+1s", -EINVAL, 0, "plus sign" },
    { " 1s", -EINVAL, 0, "leading space" },
    { "1s ", -EINVAL, 0, "trailing space" },
    { "1 s", -EINVAL, 0, "inner space" },
    { "1.5s", -EINVAL, 0, "fraction" },
    { "1S", -EINVAL, 0, "upper-case unit" },
    { "1d", -EINVAL, 0, "days are not a unit" },
    { "1sec", -EINVAL, 0, "long unit name" },
    { "1ms1", -EINVAL, 0, "garbage after the unit" },
    { "0x10", -EINVAL, 0, "hex" },
    { "99999999999999999999x", -EINVAL, 0, "syntax judged before range" },
};

START_TEST(test_duration)
{
    const struct duration_case *c = &duration_cases[_i];
    uint64_t                    ms = 12345;
    int                         rc = config_parse_duration_ms(c->input, &ms);

    ck_assert_msg(rc == c->rc, "'%s' (%s): rc %d, expected %d", c->input,
                  c->why, rc, c->rc);
    if (c->rc == 0) {
        ck_assert_msg(ms == c->ms, "'%s' (%s): %llu ms", c->input, c->why,
                      (unsigned long long) ms);
    } else {
        ck_assert_msg(ms == 12345, "'%s': output written on error",
                      c->input);
    }
}
END_TEST

/* --- size ------------------------------------------------------------- */

static const struct size_case {
    const char *input;
    int         rc;
    uint64_t    bytes;
    const char *why;
} size_cases[] = {
    { "100", 0, 100, "bare bytes" },
    { "1k", 0, 1024, "kibibytes" },
    { "64m", 0, 64ULL << 20, "mebibytes" },
    { "2g", 0, 2ULL << 30, "gibibytes" },
    { "64M", 0, 64ULL << 20, "upper-case unit as nginx takes it" },
    { "0", 0, 0, "zero parses; the option decides" },
    { "17179869183g", 0, 17179869183ULL << 30, "largest g" },
    { "17179869184g", -ERANGE, 0, "unit multiplication overflows" },
    { "99999999999999999999", -ERANGE, 0, "digits overflow" },
    { "", -EINVAL, 0, "empty" },
    { "k", -EINVAL, 0, "unit without number" },
    { "10x", -EINVAL, 0, "unknown unit" },
    { "1kb", -EINVAL, 0, "two-letter unit" },
    { "1t", -EINVAL, 0, "no terabytes" },
    { "-1", -EINVAL, 0, "sign" },
    { "+1", -EINVAL, 0, "plus sign" },
    { " 1k", -EINVAL, 0, "leading space" },
    { "1k ", -EINVAL, 0, "trailing space" },
    { "1.5m", -EINVAL, 0, "fraction" },
};

START_TEST(test_size)
{
    const struct size_case *c = &size_cases[_i];
    uint64_t                bytes = 12345;
    int                     rc = config_parse_size_bytes(c->input, &bytes);

    ck_assert_msg(rc == c->rc, "'%s' (%s): rc %d, expected %d", c->input,
                  c->why, rc, c->rc);
    if (c->rc == 0) {
        ck_assert_msg(bytes == c->bytes, "'%s' (%s): %llu", c->input,
                      c->why, (unsigned long long) bytes);
    } else {
        ck_assert_msg(bytes == 12345, "'%s': output written on error",
                      c->input);
    }
}
END_TEST

/* --- uint ------------------------------------------------------------- */

static const struct uint_case {
    const char *input;
    uint64_t    max;
    int         rc;
    uint64_t    value;
    const char *why;
} uint_cases[] = {
    { "0", 10, 0, 0, "zero" },
    { "10", 10, 0, 10, "the maximum itself" },
    { "11", 10, -ERANGE, 0, "one past the maximum" },
    { "18446744073709551615", UINT64_MAX, 0, UINT64_MAX, "largest" },
    { "18446744073709551616", UINT64_MAX, -ERANGE, 0, "overflow" },
    { "99999999999999999999", UINT64_MAX, -ERANGE, 0, "overflow" },
    { "", 10, -EINVAL, 0, "empty" },
    { "-1", 10, -EINVAL, 0, "minus" },
    { "+1", 10, -EINVAL, 0, "plus" },
    { " 1", 10, -EINVAL, 0, "space" },
    { "1 ", 10, -EINVAL, 0, "trailing space" },
    { "1k", 10, -EINVAL, 0, "suffix" },
    { "0x1", 10, -EINVAL, 0, "hex" },
};

START_TEST(test_uint)
{
    const struct uint_case *c = &uint_cases[_i];
    uint64_t                v = 12345;
    int                     rc = config_parse_uint(c->input, c->max, &v);

    ck_assert_msg(rc == c->rc, "'%s' (%s): rc %d, expected %d", c->input,
                  c->why, rc, c->rc);
    if (c->rc == 0) {
        ck_assert_msg(v == c->value, "'%s' (%s): %llu", c->input, c->why,
                      (unsigned long long) v);
    }
}
END_TEST

/* --- factor ----------------------------------------------------------- */

static const struct factor_case {
    const char *input;
    int         rc;
    double      value;
    const char *why;
} factor_cases[] = {
    { "0", 0, 0, "zero" },
    { "1", 0, 1, "one" },
    { "0.5", 0, 0.5, "a fraction" },
    { "1000", 0, 1000, "the maximum itself" },
    { "1000.0", 0, 1000, "the maximum with a fraction" },
    { "1000.5", -ERANGE, 0, "past the maximum" },
    { "99999999999999999999999", -ERANGE, 0, "huge" },
    { "", -EINVAL, 0, "empty" },
    { " 1", -EINVAL, 0, "leading space (strtod skips it)" },
    { "1 ", -EINVAL, 0, "trailing space" },
    { "+1", -EINVAL, 0, "plus (strtod takes it)" },
    { "-1", -EINVAL, 0, "minus" },
    { "1e2", -EINVAL, 0, "exponent (strtod takes it)" },
    { "0x10", -EINVAL, 0, "hex (strtod takes it)" },
    { "inf", -EINVAL, 0, "infinity (strtod takes it)" },
    { "nan", -EINVAL, 0, "not a number" },
    { ".5", -EINVAL, 0, "no digit before the point" },
    { "1.", -EINVAL, 0, "no digit after the point" },
    { "1,5", -EINVAL, 0, "a comma" },
};

START_TEST(test_factor)
{
    const struct factor_case *c = &factor_cases[_i];
    double                    v = 12345;
    int                       rc = config_parse_factor(c->input, 1000, &v);

    ck_assert_msg(rc == c->rc, "'%s' (%s): rc %d, expected %d", c->input,
                  c->why, rc, c->rc);
    if (c->rc == 0) {
        ck_assert_msg(v == c->value, "'%s' (%s): %g", c->input, c->why, v);
    } else {
        ck_assert_msg(v == 12345, "'%s' (%s): output written", c->input,
                      c->why);
    }
}
END_TEST

/* --- listen ----------------------------------------------------------- */

static const struct listen_case {
    const char *input;
    bool        allow_off;
    int         rc;
    bool        enabled;
    const char *host;
    uint16_t    port;
    const char *formatted;
    const char *why;
} listen_cases[] = {
    { "127.0.0.1:8080", false, 0, true, "127.0.0.1", 8080,
      "127.0.0.1:8080", "IPv4 and port" },
    { "8080", false, 0, true, "", 8080, "*:8080",
      "bare port: every address, as nginx's listen" },
    { "*:80", false, 0, true, "", 80, "*:80", "star host" },
    { ":80", false, 0, true, "", 80, "*:80", "empty host" },
    { "localhost:1", false, 0, true, "localhost", 1, "localhost:1",
      "a name, lowest port" },
    { "my-host.example_x:65535", false, 0, true, "my-host.example_x",
      65535, "my-host.example_x:65535", "name characters, highest port" },
    { "[::1]:9121", false, 0, true, "::1", 9121, "[::1]:9121", "IPv6" },
    { "[::]:80", false, 0, true, "::", 80, "[::]:80", "IPv6 any" },
    { "[2001:db8::1]:443", false, 0, true, "2001:db8::1", 443,
      "[2001:db8::1]:443", "IPv6 global" },
    { "off", true, 0, false, "", 0, "off", "off where allowed" },
    { "off", false, -EINVAL, false, "", 0, NULL, "off where not allowed" },
    { "", true, -EINVAL, false, "", 0, NULL, "empty" },
    { "0", false, -EINVAL, false, "", 0, NULL, "port 0" },
    { "65536", false, -EINVAL, false, "", 0, NULL, "port too big" },
    { "host:", false, -EINVAL, false, "", 0, NULL, "no port" },
    { "host:-1", false, -EINVAL, false, "", 0, NULL, "negative port" },
    { "host:80x", false, -EINVAL, false, "", 0, NULL, "port garbage" },
    { "::1:80", false, -EINVAL, false, "", 0, NULL, "IPv6 without []" },
    { "[::1]80", false, -EINVAL, false, "", 0, NULL, "no colon after ]" },
    { "[::1]", false, -EINVAL, false, "", 0, NULL, "no port after ]" },
    { "[::1:80", false, -EINVAL, false, "", 0, NULL, "no ]" },
    { "[]:80", false, -EINVAL, false, "", 0, NULL, "empty brackets" },
    { "[1.2.3.4]:80", false, -EINVAL, false, "", 0, NULL,
      "IPv4 in brackets" },
    { "[zz::1]:80", false, -EINVAL, false, "", 0, NULL, "bad IPv6" },
    { "a b:80", false, -EINVAL, false, "", 0, NULL, "space in host" },
    { "a/b:80", false, -EINVAL, false, "", 0, NULL, "slash in host" },
    { "OFF", true, -EINVAL, false, "", 0, NULL, "off is lower case" },
};

START_TEST(test_listen)
{
    const struct listen_case *c = &listen_cases[_i];
    struct config_listen      l;
    char                      buf[CONFIG_HOST_MAX + 16];
    int                       rc;

    memset(&l, 0x5a, sizeof(l));
    rc = config_parse_listen(c->input, &l, c->allow_off);
    ck_assert_msg(rc == c->rc, "'%s' (%s): rc %d, expected %d", c->input,
                  c->why, rc, c->rc);
    if (c->rc != 0) {
        return;
    }
    ck_assert_msg(l.enabled == c->enabled, "'%s': enabled", c->input);
    ck_assert_str_eq(l.host, c->host);
    ck_assert_uint_eq(l.port, c->port);
    config_format_listen(&l, buf, sizeof(buf));
    ck_assert_str_eq(buf, c->formatted);
}
END_TEST

START_TEST(test_listen_host_length)
{
    char                 input[CONFIG_HOST_MAX + 16];
    struct config_listen l;

    memset(input, 'a', CONFIG_HOST_MAX - 1);
    snprintf(input + CONFIG_HOST_MAX - 1, 16, ":80");
    ck_assert_int_eq(config_parse_listen(input, &l, false), 0);
    ck_assert_uint_eq(strlen(l.host), CONFIG_HOST_MAX - 1);

    memset(input, 'a', CONFIG_HOST_MAX);
    snprintf(input + CONFIG_HOST_MAX, 16, ":80");
    ck_assert_int_eq(config_parse_listen(input, &l, false), -ERANGE);
}
END_TEST

/* --- redis ------------------------------------------------------------ */

static const struct redis_case {
    const char *input;
    int         rc;
    bool        is_unix;
    const char *host_or_path;
    uint16_t    port;
    const char *why;
} redis_cases[] = {
    { "127.0.0.1:6379", 0, false, "127.0.0.1", 6379, "IPv4" },
    { "redis.internal:6380", 0, false, "redis.internal", 6380, "name" },
    { "[::1]:6379", 0, false, "::1", 6379, "IPv6" },
    { "unix:/run/redis/redis.sock", 0, true, "/run/redis/redis.sock", 0,
      "unix socket" },
    { "unix:relative.sock", 0, true, "relative.sock", 0, "relative path" },
    { "unix:", -EINVAL, false, "", 0, "empty path" },
    { "localhost", -EINVAL, false, "", 0, "no port" },
    { "6379", -EINVAL, false, "", 0, "no host" },
    { ":6379", -EINVAL, false, "", 0, "empty host" },
    { "*:6379", -EINVAL, false, "", 0, "any-address host" },
    { "host:0", -EINVAL, false, "", 0, "port 0" },
    { "host:65536", -EINVAL, false, "", 0, "port too big" },
    { "::1:6379", -EINVAL, false, "", 0, "IPv6 without []" },
    { "", -EINVAL, false, "", 0, "empty" },
    { "off", -EINVAL, false, "", 0, "off is not a redis address" },
};

START_TEST(test_redis)
{
    const struct redis_case *c = &redis_cases[_i];
    struct config_redis      r;
    int                      rc = config_parse_redis(c->input, &r);

    ck_assert_msg(rc == c->rc, "'%s' (%s): rc %d, expected %d", c->input,
                  c->why, rc, c->rc);
    if (c->rc != 0) {
        return;
    }
    ck_assert_msg(r.is_unix == c->is_unix, "'%s': is_unix", c->input);
    if (c->is_unix) {
        ck_assert_str_eq(r.path, c->host_or_path);
    } else {
        ck_assert_str_eq(r.host, c->host_or_path);
        ck_assert_uint_eq(r.port, c->port);
    }
}
END_TEST

START_TEST(test_redis_path_length)
{
    char                input[256];
    struct config_redis r;

    /* sun_path holds 108 bytes with the NUL. */
    snprintf(input, sizeof(input), "unix:");
    memset(input + 5, 'p', 107);
    input[5 + 107] = '\0';
    ck_assert_int_eq(config_parse_redis(input, &r), 0);
    input[5 + 107] = 'p';
    input[5 + 108] = '\0';
    ck_assert_int_eq(config_parse_redis(input, &r), -ERANGE);
}
END_TEST

/* --- printing durations and sizes ------------------------------------ */

static const struct format_case {
    uint64_t    value;
    const char *out;
    const char *why;
} format_duration_cases[] = {
    { 0, "0", "zero is bare" },
    { 1, "1ms", "below a second" },
    { 1500, "1500ms", "not whole seconds" },
    { 1000, "1s", "one second" },
    { 90000, "90s", "not whole minutes" },
    { 60000, "1m", "one minute" },
    { 5400000, "90m", "not whole hours" },
    { 3600000, "1h", "one hour" },
    { 86400000, "24h", "no unit past hours" },
    { UINT64_MAX, "18446744073709551615ms", "largest" },
}, format_size_cases[] = {
    { 0, "0", "zero is bare" },
    { 1, "1", "one byte" },
    { 1023, "1023", "below a k" },
    { 1024, "1k", "one k" },
    { 1536, "1536", "not whole k" },
    { 1ULL << 20, "1m", "one m" },
    { 3ULL << 20, "3m", "three m" },
    { (1ULL << 20) + (1ULL << 10), "1025k", "not whole m" },
    { 1ULL << 30, "1g", "one g" },
    { 1ULL << 40, "1024g", "no unit past g" },
};

START_TEST(test_format_duration)
{
    const struct format_case *c = &format_duration_cases[_i];
    char                      buf[32];
    uint64_t                  back = 12345;

    config_format_duration(c->value, buf, sizeof(buf));
    ck_assert_msg(strcmp(buf, c->out) == 0, "%llu (%s): '%s', expected '%s'",
                  (unsigned long long) c->value, c->why, buf, c->out);
    ck_assert_int_eq(config_parse_duration_ms(buf, &back), 0);
    ck_assert_msg(back == c->value, "'%s' (%s) reads back as %llu", buf,
                  c->why, (unsigned long long) back);
}
END_TEST

START_TEST(test_format_size)
{
    const struct format_case *c = &format_size_cases[_i];
    char                      buf[32];
    uint64_t                  back = 12345;

    config_format_size(c->value, buf, sizeof(buf));
    ck_assert_msg(strcmp(buf, c->out) == 0, "%llu (%s): '%s', expected '%s'",
                  (unsigned long long) c->value, c->why, buf, c->out);
    ck_assert_int_eq(config_parse_size_bytes(buf, &back), 0);
    ck_assert_msg(back == c->value, "'%s' (%s) reads back as %llu", buf,
                  c->why, (unsigned long long) back);
}
END_TEST

/* Every value the duration table parses prints as something that parses
 * to it again. */
START_TEST(test_duration_round_trip)
{
    const struct duration_case *c = &duration_cases[_i];
    char                        buf[32];
    uint64_t                    back = 12345;

    if (c->rc != 0) {
        return;
    }
    config_format_duration(c->ms, buf, sizeof(buf));
    ck_assert_int_eq(config_parse_duration_ms(buf, &back), 0);
    ck_assert_msg(back == c->ms, "'%s' (%s) printed as '%s' reads back as "
                  "%llu", c->input, c->why, buf, (unsigned long long) back);
}
END_TEST

START_TEST(test_size_round_trip)
{
    const struct size_case *c = &size_cases[_i];
    char                    buf[32];
    uint64_t                back = 12345;

    if (c->rc != 0) {
        return;
    }
    config_format_size(c->bytes, buf, sizeof(buf));
    ck_assert_int_eq(config_parse_size_bytes(buf, &back), 0);
    ck_assert_msg(back == c->bytes, "'%s' (%s) printed as '%s' reads back "
                  "as %llu", c->input, c->why, buf, (unsigned long long) back);
}
END_TEST

START_TEST(test_format_cut_to_fit)
{
    char buf[4];

    config_format_duration(1500, buf, sizeof(buf));
    ck_assert_str_eq(buf, "150");
    config_format_size(123456, buf, sizeof(buf));
    ck_assert_str_eq(buf, "123");
}
END_TEST

/* --- printing Redis addresses ----------------------------------------- */

static const struct format_redis_case {
    const char *input;
    const char *out;
    const char *why;
} format_redis_cases[] = {
    { "127.0.0.1:6379", "127.0.0.1:6379", "IPv4" },
    { "[::1]:6380", "[::1]:6380", "IPv6 gets its brackets back" },
    { "unix:/run/redis.sock", "unix:/run/redis.sock", "unix socket" },
    { "redis://h:7", "h:7", "a plain URL is its address" },
    { "rediss://alice:s3cret@h:6380/2", "rediss://h:6380",
      "TLS kept; user, password and db never shown" },
    { "redis://:s3cret@[::1]", "[::1]:6379", "default port, no password" },
    { "unix://:pw@/tmp/r.sock?db=1", "unix:/tmp/r.sock",
      "unix URL: the path alone" },
};

START_TEST(test_format_redis)
{
    const struct format_redis_case *c = &format_redis_cases[_i];
    struct config_redis             r;
    char                            buf[CONFIG_PATH_MAX + 16];

    ck_assert_msg(config_parse_redis(c->input, &r) == 0, "'%s' (%s)",
                  c->input, c->why);
    config_format_redis(&r, buf, sizeof(buf));
    ck_assert_msg(strcmp(buf, c->out) == 0, "'%s' (%s): '%s'", c->input,
                  c->why, buf);
    ck_assert_msg(strstr(buf, "s3cret") == NULL && strstr(buf, "pw") == NULL,
                  "'%s': a secret printed", c->input);
}
END_TEST

/* --- seed lists -------------------------------------------------------- */

static const struct seeds_case {
    const char *input;
    size_t      max;
    int         rc;             /* seeds, or the error */
    size_t      bad;            /* index of the bad item */
    const char *last_host;      /* host of the last seed, when rc > 0 */
    const char *why;
} seeds_cases[] = {
    { "a:1", 4, 1, 0, "a", "one seed" },
    { "a:1,b:2,[::1]:3", 4, 3, 2, "::1", "three seeds, IPv6 among them" },
    { "redis://a:1,rediss://u:p@b:2", 4, 2, 1, "b", "URLs" },
    { "a:1,b:2", 2, 2, 1, "b", "exactly max" },
    { "a:1,b:2,c:3", 2, -E2BIG, 2, NULL, "one past max" },
    { "", 4, -EINVAL, 0, NULL, "empty" },
    { "a:1,", 4, -EINVAL, 1, NULL, "empty last item" },
    { "a:1,,b:2", 4, -EINVAL, 1, NULL, "empty inner item" },
    { ",a:1", 4, -EINVAL, 0, NULL, "empty first item" },
    { "a:1,unix:/x.sock", 4, -EINVAL, 1, NULL, "no unix socket" },
    { "a:1,b", 4, -EINVAL, 1, NULL, "no port" },
    { "a:1,b:99999", 4, -EINVAL, 1, NULL, "port out of range" },
    { "a:1,redis://b:99999", 4, -EPROTO, 1, NULL, "a bad URL" },
};

START_TEST(test_seeds)
{
    const struct seeds_case *c = &seeds_cases[_i];
    struct config_redis      out[4];
    size_t                   bad = 99;
    int                      rc;

    ck_assert(c->max <= sizeof(out) / sizeof(out[0]));
    rc = config_parse_seeds(c->input, out, c->max, &bad);
    ck_assert_msg(rc == c->rc, "'%s' (%s): rc %d, expected %d", c->input,
                  c->why, rc, c->rc);
    ck_assert_msg(bad == c->bad, "'%s' (%s): bad %zu, expected %zu",
                  c->input, c->why, bad, c->bad);
    if (rc > 0) {
        ck_assert_str_eq(out[rc - 1].host, c->last_host);
    }
}
END_TEST

START_TEST(test_seed_too_long)
{
    char                input[CONFIG_PATH_MAX + 16];
    struct config_redis out[2];
    size_t              bad = 99;

    memset(input, 'a', sizeof(input) - 1);
    input[sizeof(input) - 1] = '\0';
    ck_assert_int_eq(config_parse_seeds(input, out, 2, &bad), -ERANGE);
    ck_assert_uint_eq(bad, 0);
}
END_TEST

static const struct mask_case {
    const char *input;
    const char *out;
    const char *why;
} mask_cases[] = {
    { "a:1,b:2", "a:1,b:2", "nothing to hide" },
    { "redis://u:s3cret@a:1,b:2", "redis://u:****@a:1,b:2",
      "first seed's password" },
    { "a:1,rediss://:s3cret@b:2", "a:1,rediss://:****@b:2",
      "last seed's password" },
    { "redis://x@a,redis://y@b", "redis://****@a,redis://****@b",
      "every seed's password" },
};

START_TEST(test_mask_seeds)
{
    const struct mask_case *c = &mask_cases[_i];
    char                    buf[256];

    config_mask_seeds(c->input, buf, sizeof(buf));
    ck_assert_msg(strcmp(buf, c->out) == 0, "'%s' (%s): '%s'", c->input,
                  c->why, buf);
}
END_TEST

#define LOOP(tc, fn, cases)                                                \
    tcase_add_loop_test(tc, fn, 0,                                         \
                        (int) (sizeof(cases) / sizeof(cases[0])))

static Suite *
config_parse_suite(void)
{
    Suite *s = suite_create("config_parse");
    TCase *tc;

    tc = tcase_create("duration");
    LOOP(tc, test_duration, duration_cases);
    LOOP(tc, test_format_duration, format_duration_cases);
    LOOP(tc, test_duration_round_trip, duration_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("size");
    LOOP(tc, test_size, size_cases);
    LOOP(tc, test_format_size, format_size_cases);
    LOOP(tc, test_size_round_trip, size_cases);
    tcase_add_test(tc, test_format_cut_to_fit);
    suite_add_tcase(s, tc);

    tc = tcase_create("uint");
    LOOP(tc, test_uint, uint_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("factor");
    LOOP(tc, test_factor, factor_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("listen");
    LOOP(tc, test_listen, listen_cases);
    tcase_add_test(tc, test_listen_host_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("redis");
    LOOP(tc, test_redis, redis_cases);
    tcase_add_test(tc, test_redis_path_length);
    LOOP(tc, test_format_redis, format_redis_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("seeds");
    LOOP(tc, test_seeds, seeds_cases);
    tcase_add_test(tc, test_seed_too_long);
    LOOP(tc, test_mask_seeds, mask_cases);
    suite_add_tcase(s, tc);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_parse_suite());
    int      failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
