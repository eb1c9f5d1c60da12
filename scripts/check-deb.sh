#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# `make check-deb`: install the packages of `make deb` into a throwaway copy of a Debian root,
# use them, remove them, and prove the stock helper is back byte for byte:
#   scripts/check-deb.sh XEN ROOT DEBDIR BUILD
# ROOT is / (this Debian 12 host) or build/trixie (Debian 13). The copy is an overlay over ROOT
# with a tmpfs upper layer in a private mount namespace: nothing of ROOT changes, nothing stays
# mounted. In it:
#  1. Xen's xen-utils-XEN is installed from its Debian .deb (dpkg --force-depends: only the
#     helper matters here, its service dependencies would pull in a systemd upgrade), so dpkg
#     owns the stock libxl-save-helper; its sha256 is recorded;
#  2. dpkg -i libxcsave0, libxcsave-dev, xcsave-xl: the helper is diverted (dpkg-divert --list)
#     and the wrapper is in its place;
#  3. test_xcsave_helper diverted: the real helper run through the diverted path, with nothing
#     of xcsave preloaded by the test, must save with xcsave (its proof line) into a stream the
#     stock restore accepts; a C program built with `pkg-config --cflags --libs xcsave` links
#     the packaged library and calls it;
#  4. dpkg -r xcsave-xl: no diversion left, the helper's sha256 is the recorded one, and
#     test_xcsave_helper control through it shows no xcsave line; then the library packages go.
set -euo pipefail
cd "$(dirname "$0")/.."
xen=${1:?usage: check-deb.sh XEN ROOT DEBDIR BUILD}
root=$(cd "${2:?}" && pwd)
debs=$(cd "${3:?}" && pwd)
build=$(cd "${4:?}" && pwd)
wt=$(pwd)
[ "$(id -u)" = 0 ] || { echo "check-deb: needs root (overlay, chroot, dpkg)" >&2; exit 1; }
if [ "$root" = / ]; then utils_deb=$(ls "$wt"/build/deps/dl/xen-utils-"$xen"_*.deb | head -1)
else utils_deb=$(ls "$root"/xcsave-deps/dl/xen-utils-"$xen"_*.deb | head -1); fi
log=$build/test-logs/check-deb.log
mkdir -p "$build/test-logs"
echo "check-deb: Xen $xen packages in an overlay of $root ($log)"
t=$(mktemp -d /tmp/xcsave-check-deb.XXXXXX)
trap 'rmdir "$t/m" "$t" 2>/dev/null || true' EXIT
set +e
unshare --mount --propagation private bash -euo pipefail -c '
    root=$1 xen=$2 debs=$3 build=$4 wt=$5 utils_deb=$6 ma=$7 t=$8
    mount -t tmpfs -o size=4g xcsave-deb "$t"
    mkdir "$t/upper" "$t/work" "$t/m"
    mount -t overlay xcsave-deb -o "lowerdir=$root,upperdir=$t/upper,workdir=$t/work" "$t/m"
    m=$t/m
    mount -t proc proc "$m/proc"
    mount --rbind /dev "$m/dev"
    mkdir -p "$m$wt" "$m/xcsave-debs"
    mount --bind "$wt" "$m$wt"
    mount --bind "$debs" "$m/xcsave-debs"
    cp "$utils_deb" "$m/xcsave-utils.deb"
    inr() { chroot "$m" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
               DEBIAN_FRONTEND=noninteractive "$@"; }
    helper=/usr/lib/xen-$xen/bin/libxl-save-helper
    printf "#!/bin/sh\nexit 101\n" >"$m/usr/sbin/policy-rc.d"; chmod 755 "$m/usr/sbin/policy-rc.d"

    echo "== 1. stock xen-utils-$xen"
    inr dpkg --force-depends -i /xcsave-utils.deb >/dev/null 2>&1 || true
    inr dpkg-query -S "$helper"
    stock=$(sha256sum <"$m$helper")
    echo "stock helper sha256 ${stock%% *}"

    echo "== 2. dpkg -i"
    inr dpkg -i $(cd "$m/xcsave-debs" && ls libxcsave0_*.deb libxcsave-dev_*.deb xcsave-xl_*.deb |
                  sed "s|^|/xcsave-debs/|")
    inr dpkg-divert --list | grep -F "$helper"
    inr dpkg-divert --list | grep -F "diversion of $helper to $helper.stock by xcsave-xl" >/dev/null
    [ "$(sha256sum <"$m$helper.stock")" = "$stock" ] || { echo "FAIL stock helper not kept"; exit 1; }
    head -1 "$m$helper" | grep -q "^#!/bin/sh" || { echo "FAIL wrapper not in place"; exit 1; }

    echo "== 3. the helper through the diverted path"
    cat >"$m/tmp/use.c" <<EOF
#include <xenctrl.h>
#include <xenguest.h>
#include <xcsave.h>
#include <stdio.h>
int main(void)
{
    XcsaveCacheStats st;
    printf("packaged xcsave_cache_stats -> %d\n", xcsave_cache_stats(1, &st));
    return 0;
}
EOF
    inr sh -c "cc -Wall -Werror -D__XEN_TOOLS__ -o /tmp/use /tmp/use.c \$(pkg-config --cflags --libs xcsave) && /tmp/use && ldd /tmp/use | grep libxcsave"
    run_test() {
        d=$(mktemp -d /dev/shm/xensim.XXXXXX)
        inr env XENSIM_DIR=$d XENSIM_STRICT=1 XENSIM_LIB=$build/xensim/libxensim.so \
            XCSAVE_LIB=/usr/lib/$ma/libxcsave.so.0 \
            XCSAVE_SAVE_HELPER="$1" XCSAVE_DIVERTED_HELPER="$1" \
            "$build/tests/test_xcsave_helper" "$2"
        rc=$?; rm -rf "$d"; return $rc
    }
    run_test "$helper" diverted

    echo "== 4. dpkg -r"
    inr dpkg -r xcsave-xl
    if inr dpkg-divert --list | grep -F "$helper"; then echo "FAIL diversion left"; exit 1; fi
    [ ! -e "$m$helper.stock" ] || { echo "FAIL $helper.stock left"; exit 1; }
    now=$(sha256sum <"$m$helper")
    [ "$now" = "$stock" ] || { echo "FAIL helper sha256 ${now%% *}, stock ${stock%% *}"; exit 1; }
    echo "stock helper back: sha256 ${now%% *}"
    run_test "$helper" control
    inr dpkg -r libxcsave-dev libxcsave0
    [ ! -e "$m/usr/include/xcsave.h" ] && ! ls "$m"/usr/lib/*/libxcsave* >/dev/null 2>&1 ||
        { echo "FAIL files left after dpkg -r"; exit 1; }
    echo "packages removed, nothing left"
' _ "$root" "$xen" "$debs" "$build" "$wt" "$utils_deb" "$(dpkg-architecture -qDEB_HOST_MULTIARCH)" \
    "$t" >"$log" 2>&1
rc=$?
set -e
grep -E '^(==|stock|FAIL|packaged|diversion|diverted:|control:|packages)' "$log" | sed 's/^/    /'
if [ $rc -ne 0 ]; then echo "FAIL check-deb (Xen $xen, exit $rc, $log)"; tail -15 "$log"; exit 1; fi
echo "PASS check-deb (Xen $xen): install, diverted helper with xcsave, remove, stock helper back"
# lintian on the packages: errors fail; every other tag (info, pedantic) is printed and
# explained in docs/decisions.md.
set +e
lintian --fail-on error --display-info --pedantic "$debs"/*.deb >"$build/test-logs/lintian.log" 2>&1
rc=$?
set -e
grep -v 'running with root privileges' "$build/test-logs/lintian.log" | sed 's/^/    lintian: /'
[ $rc -eq 0 ] || { echo "FAIL lintian reports errors on $debs (exit $rc)"; exit 1; }
echo "PASS lintian (Xen $xen): no error"
