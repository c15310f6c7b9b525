#!/bin/sh
# Keeps etc/redis-cache-proxy.conf honest against the built daemon:
#  1. the file as shipped (every option commented out) passes
#     --check-config;
#  2. every `#name value` line, uncommented, passes --check-config too, so
#     each option name and example value in the file is one the daemon
#     accepts (with one of the exclusive redis, redis-cluster and
#     redis-sentinel groups at a time: all three together are refused);
#  3. every option of DESIGN.md's table appears in the file;
#  4. a `#name value` line shows the default, as the file's header says,
#     unless its paragraph says "(example)": set alone, it must give the
#     same effective configuration as an empty file.
# The RCP_* environment is cleared so only the file is being checked.
set -eu

conf="${srcdir:-.}/etc/redis-cache-proxy.conf"
binary=${RCP_BINARY:-./redis-cache-proxy}
if [ ! -x "$binary" ]; then
    echo "$binary not built" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rcp-conf.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

check() {
    # $1: config file; runs --check-config with no RCP_* or REDIS_PASSWORD.
    (
        for v in $(env | sed -n 's/^\(RCP_[A-Z_]*\)=.*/\1/p'); do
            unset "$v"
        done
        unset REDIS_PASSWORD
        exec "$binary" --config "$1" --check-config
    ) >"$tmp/out" 2>&1
}

fail=0
if check "$conf"; then
    echo "PASS: shipped file"
else
    echo "FAIL: shipped file rejected:"
    cat "$tmp/out"
    fail=1
fi

# The credential file the example names must exist to be checked: point
# that line at a valid one made here.
echo "bearer:$(printf x | sha256sum | cut -d' ' -f1)" >"$tmp/htpasswd"
# The TLS files it names are example paths, which the daemon loads (and
# refuses when missing) only with TLS on: check them with TLS off, and
# `redis-tls yes` on its own below.
sed -n 's/^#\([a-z][a-z-]*\) /\1 /p' "$conf" |
    sed -e "s|^http-auth-file .*|http-auth-file $tmp/htpasswd|" \
        -e "s|^redis-tls yes\$|redis-tls no|" >"$tmp/all.conf"
grep -q '^redis-tls no$' "$tmp/all.conf" || {
    echo "FAIL: no '#redis-tls yes' example line"
    fail=1
}
echo 'redis-tls yes' >"$tmp/tls.conf"
if ! check "$tmp/tls.conf"; then
    echo "FAIL: redis-tls yes rejected:"
    cat "$tmp/out"
    fail=1
fi
# redis, redis-cluster and redis-sentinel are exclusive: all of them
# together must be refused, and the rest checked with each in turn.
if check "$tmp/all.conf" || ! grep -q "both name the backend" "$tmp/out"
then
    echo "FAIL: redis, redis-cluster and redis-sentinel together not" \
         "refused as two backends:"
    cat "$tmp/out"
    fail=1
fi
backend='^redis \|^redis-cluster \|^redis-cluster-refresh \|^redis-sentinel'
backend="$backend"'\|^redis-master \|^redis-read-from '
grep -v "$backend" "$tmp/all.conf" >"$tmp/common.conf"
for b in '^redis ' '^redis-cluster\|^redis-read-from ' \
         '^redis-sentinel\|^redis-master '; do
    { cat "$tmp/common.conf"; grep "$b" "$tmp/all.conf"; } >"$tmp/one-backend.conf"
    if check "$tmp/one-backend.conf"; then
        echo "PASS: all $(wc -l <"$tmp/one-backend.conf") example lines" \
             "uncommented, with the backend lines matching '$b'"
    else
        echo "FAIL: uncommented example lines rejected (backend '$b'):"
        cat "$tmp/out"
        fail=1
    fi
done

for opt in listen resp-listen admin-listen redis redis-user redis-password \
           redis-db redis-timeout ttl capacity max-memory max-value-size \
           workers max-clients backlog idle-timeout header-timeout \
           shutdown-timeout log-level pid-file access-log key-prefix \
           allow-keys allow-from proxy-protocol-from http-auth-file \
           resp-user resp-password; do
    if ! grep -q "^$opt " "$tmp/all.conf"; then
        echo "FAIL: option '$opt' missing from $conf"
        fail=1
    fi
done
# 4: defaults.  Paragraphs are runs of non-blank lines.
: >"$tmp/empty.conf"
check "$tmp/empty.conf" || { echo "FAIL: an empty file is rejected"; exit 1; }
grep -v '^# read from' "$tmp/out" >"$tmp/defaults"
awk '
    /^[ \t]*$/ { example = 0; next }
    /\(examples?\)/ { example = 1 }
    /^#[a-z][a-z-]* / && !example { print NR ": " substr($0, 2) }
' "$conf" >"$tmp/claimed"
while IFS= read -r line; do
    printf '%s\n' "${line#*: }" >"$tmp/one.conf"
    if ! check "$tmp/one.conf" \
       || ! grep -v '^# read from' "$tmp/out" | cmp -s - "$tmp/defaults"; then
        echo "FAIL: $conf:${line%%: *}: '${line#*: }' is not the default;" \
             "show the default, or say (example) in its comment"
        fail=1
    fi
done <"$tmp/claimed"
[ "$fail" -eq 0 ] && echo "PASS: $(wc -l <"$tmp/claimed") lines show their defaults"
exit $fail
