#!/bin/bash
# `make deb-test`: the Debian package in a clean Debian 12 root.
#
# Builds the package (`make deb`: lintian included), makes an older
# version of it by repacking it as <version>~0, and in a chroot of a
# fresh debootstrap root (scripts/debian-root, cached) checks:
#   install   apt installs the older .deb and its dependencies; the
#             binary runs, man page, unit, enable symlink, sysusers.d
#             user, conffile mode 0640 root:redis-cache-proxy, examples;
#             the user can read the config (--check-config as that user)
#   upgrade   the real .deb over it: version moved, a local edit of the
#             conffile kept (no .dpkg-new/.dpkg-dist), mode kept
#   remove    binary and unit gone, conffile kept, state config-files
#   purge     conffile, statoverride and enable symlink gone
# Every maintainer script must succeed (apt fails otherwise).  systemd
# does not run in a chroot, so the service is not started here; its unit
# is checked by tests/systemd_verify.sh.
#
# Usage: tests/deb_install.sh TOP_BUILDDIR VERSION OUTDIR (root only:
# as another user it says SKIPPED and exits 0).
set -euo pipefail

top=$1
version=$2
out=$3
src=$(cd "$(dirname "$0")/.." && pwd)
pkg=redis-cache-proxy
conf=/etc/$pkg.conf
checks=0

if [ "$(id -u)" -ne 0 ]; then
    echo "deb-test: SKIPPED: needs root (debootstrap, chroot)"
    exit 0
fi

# What building and bootstrapping need, installed when missing.
need=()
for tool in dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian \
            debootstrap:debootstrap; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
# The build dependencies (debian/control), read from it so they cannot
# drift apart.
for p in $(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$src/debian/control" |
           sed -e 's/^Build-Depends://' -e '/^[A-Z]/d' | tr ',' '\n' |
           sed -e 's/[<(].*//' -e 's/ //g' |
           grep -v -e '^$' -e '^debhelper-compat' -e '^dh-sequence-'); do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
        grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "deb-test: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null
fi

root=""
cleanup() {
    if [ -n "$root" ]; then
        rm -rf "$root"
    fi
}
trap cleanup EXIT

ok() {
    checks=$((checks + 1))
    echo "ok $checks - $*"
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
# Runs a command in the chroot with a clean environment.
in_root() {
    chroot "$root" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        LC_ALL=C.UTF-8 "$@"
}
apt_root() {
    in_root apt-get -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "$@" \
        >"$out/apt.log" 2>&1 || {
        tail -n 30 "$out/apt.log" >&2
        fail "apt-get $* (in the chroot)"
    }
}
status_of() {
    in_root dpkg-query -W -f='${db:Status-Abbrev}${Version}' "$pkg" \
        2>/dev/null || true
}

tarball=$(bash "$src/scripts/debian-root")
# make deb's lintian report goes to the log as well.
deb=$(make -C "$top" --no-print-directory deb | tee /dev/stderr | tail -n 1)
test -f "$deb" || fail "make deb made no package"
ok "make deb built $(basename "$deb"), lintian clean of errors"

# The older version: the same package, repacked as <version>~0.
old=$out/${pkg}_${version}~0_$(dpkg-architecture -qDEB_HOST_ARCH).deb
rm -rf "$out/old"
dpkg-deb -R "$deb" "$out/old"
sed -i "s/^Version: .*/Version: ${version}~0/" "$out/old/DEBIAN/control"
dpkg-deb --root-owner-group -b "$out/old" "$old" >/dev/null
rm -rf "$out/old"

root=$(mktemp -d "${TMPDIR:-/tmp}/rcp-debroot.XXXXXX")
tar -C "$root" -xf "$tarball"
# mktemp made it 0700: the daemon's user must get past /.
chmod 755 "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/debs"
cp "$deb" "$old" "$root/debs/"
apt_root update

# --- install ------------------------------------------------------------
apt_root install "/debs/$(basename "$old")"
[ "$(status_of)" = "ii ${version}~0" ] || fail "status after install: $(status_of)"
ok "installed ${version}~0 with its dependencies"
in_root /usr/sbin/$pkg --version | grep -q "$version" ||
    fail "/usr/sbin/$pkg --version"
ok "/usr/sbin/$pkg runs"
[ -f "$root/usr/share/man/man8/$pkg.8.gz" ] || fail "no man page"
ok "man page in /usr/share/man/man8"
[ -f "$root/lib/systemd/system/$pkg.service" ] || fail "no unit"
grep -q '^ProtectSystem=strict' "$root/lib/systemd/system/$pkg.service" ||
    fail "the unit lost its hardening"
grep -q "^ExecStart=/usr/sbin/$pkg --config $conf\$" \
    "$root/lib/systemd/system/$pkg.service" || fail "ExecStart"
wants=$root/etc/systemd/system/multi-user.target.wants/$pkg.service
[ "$(readlink "$wants")" = "/lib/systemd/system/$pkg.service" ] ||
    fail "unit not enabled (no $wants)"
ok "hardened unit installed and enabled"
user=$(in_root getent passwd "$pkg") || fail "no user $pkg"
uid=$(echo "$user" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "user $pkg is not a system user: $user"
case $user in *:/usr/sbin/nologin) ;; *) fail "user can log in: $user" ;; esac
ok "system user $pkg (uid $uid, no login)"
in_root dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q " $conf " ||
    fail "$conf is not a conffile"
[ "$(in_root stat -c '%a %U %G' "$conf")" = "640 root $pkg" ] ||
    fail "$conf mode: $(in_root stat -c '%a %U %G' "$conf")"
ok "$conf is a conffile, mode 640 root:$pkg"
in_root setpriv --reuid "$pkg" --regid "$pkg" --clear-groups \
    /usr/sbin/$pkg --config "$conf" --check-config >"$out/check.log" 2>&1 ||
    fail "$pkg cannot read its config as its own user: $(cat "$out/check.log")"
ok "the daemon's user reads the config (--check-config)"
for f in $pkg.json $pkg-rules.yml $pkg.conf; do
    [ -f "$root/usr/share/doc/$pkg/examples/$f" ] || fail "no example $f"
done
ok "dashboard, alert rules and example config in the docs"

# --- upgrade ------------------------------------------------------------
echo "workers 3" >>"$root$conf"
apt_root install "/debs/$(basename "$deb")"
[ "$(status_of)" = "ii $version" ] || fail "status after upgrade: $(status_of)"
ok "upgraded ${version}~0 -> $version"
tail -n 1 "$root$conf" | grep -qx "workers 3" ||
    fail "the local edit of $conf was lost on upgrade"
ls "$root$conf".dpkg-* >/dev/null 2>&1 && fail "$(ls "$root$conf".dpkg-*)"
[ "$(in_root stat -c '%a %U %G' "$conf")" = "640 root $pkg" ] ||
    fail "$conf mode after upgrade"
in_root /usr/sbin/$pkg --config "$conf" --check-config | grep -q 'workers.*3' ||
    fail "the kept config is not the one read"
ok "conffile edit and mode kept on upgrade"

# --- remove -------------------------------------------------------------
apt_root remove "$pkg"
[ "$(status_of)" = "rc $version" ] || fail "status after remove: $(status_of)"
[ ! -e "$root/usr/sbin/$pkg" ] || fail "binary left after remove"
[ ! -e "$root/lib/systemd/system/$pkg.service" ] || fail "unit left"
grep -qx "workers 3" "$root$conf" || fail "conffile dropped by remove"
ok "removed: binary and unit gone, configuration kept"

# --- purge --------------------------------------------------------------
apt_root purge "$pkg"
case $(status_of) in "" | "un "* | "pn "*) ;;
    *) fail "status after purge: $(status_of)" ;; esac
[ ! -e "$root$conf" ] || fail "$conf left after purge"
! in_root dpkg-statoverride --list "$conf" >/dev/null ||
    fail "statoverride left after purge"
[ ! -e "$wants" ] && [ ! -L "$wants" ] || fail "enable symlink left"
ok "purged: conffile, statoverride and enable symlink gone"

echo "deb-test: all $checks checks passed"
