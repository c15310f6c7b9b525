#!/bin/sh
# Checks the generated systemd unit (etc/redis-cache-proxy.service in the
# build tree) with systemd-analyze: `verify` must print nothing about it,
# and the offline `security` review must rate its exposure at 2.0 or
# lower, so a hardening line lost in an edit fails the build.  Skips
# (exit 77) where systemd-analyze is missing, e.g. in the container build.
#
# The unit names the installed binary, which does not exist at `make
# check` time; verify wants an executable there, so a copy of the unit is
# pointed at the built binary (or /bin/true before it links).
set -eu

unit=etc/redis-cache-proxy.service
max_exposure=20     # systemd-analyze's tenths: 20 means 2.0

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-analyze not found: skipping"
    exit 77
fi
if [ ! -f "$unit" ]; then
    echo "$unit was not generated (make check builds it)" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rcp-unit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

binary=${RCP_BINARY:-}
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
    binary=/bin/true
fi
case $binary in
    *'|'*|*' '*)
        echo "unusable binary path for the unit copy: $binary" >&2
        exit 1
        ;;
esac
copy="$tmp/redis-cache-proxy.service"
sed -e "s|^ExecStart=[^ ]*|ExecStart=$binary|" "$unit" >"$copy"
if ! grep -q "^ExecStart=$binary --config " "$copy"; then
    echo "no 'ExecStart=<binary> --config' line in $unit" >&2
    exit 1
fi

# verify also loads the host's units named in After=/Wants=, and may warn
# about those; only lines about our unit count.
out="$tmp/verify.out"
rc=0
systemd-analyze verify --man=no "$copy" >"$out" 2>&1 || rc=$?
cat "$out"
if [ "$rc" -ne 0 ] || grep -q 'redis-cache-proxy' "$out"; then
    echo "FAIL: systemd-analyze verify (exit $rc) reported problems in $unit"
    exit 1
fi
echo "PASS: systemd-analyze verify $unit"

# --offline reviews the file without a running systemd (v250 and later).
if ! systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
    echo "systemd-analyze security has no --offline here: review skipped"
    exit 0
fi
rc=0
systemd-analyze security --offline=yes --threshold="$max_exposure" \
    "$copy" >"$out" 2>&1 || rc=$?
grep -v '^✓' "$out" || true
if [ "$rc" -ne 0 ]; then
    echo "FAIL: exposure above $max_exposure/10 (exit $rc)"
    exit 1
fi
echo "PASS: systemd-analyze security exposure within $max_exposure/10"
