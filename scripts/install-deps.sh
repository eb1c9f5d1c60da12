#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Install (as root) or ask for (otherwise) everything the build and the tests need, all from
# Debian 12's packages:
#   - libxen-dev: Xen 4.17 headers and the real libxenctrl/libxenguest we link and test against;
#   - libclang-dev: bindgen, for xenctrl-sys;
#   - gnuplot-nox: the plots of `make bench` and `make demo`;
#   - debootstrap: the Debian 13 root of `make check-420` (scripts/debian-root.sh);
#   - dpkg-dev, lintian: `make deb` (dpkg-shlibdeps) and `make check-deb`;
#   - xen-utils-4.17: only downloaded and unpacked into build/deps (never installed, it would pull
#     in the toolstack's services) for verify-stream-v2, its python module and libxl-save-helper.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS="libxen-dev libclang-dev pkg-config gcc make python3 valgrind gnuplot-nox debootstrap dpkg-dev lintian"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    else
        echo "xcsave: missing Debian packages:$missing" >&2
        echo "xcsave: run: sudo apt-get install$missing" >&2
        exit 1
    fi
fi
DEPS=build/deps
if [ ! -x "$DEPS/xen-utils/usr/lib/xen-4.17/bin/verify-stream-v2" ]; then
    mkdir -p "$DEPS/dl"
    [ "$(id -u)" = 0 ] && [ ! -e /var/lib/apt/lists/lock ] && apt-get update -qq || true
    (cd "$DEPS/dl" && apt-get download xen-utils-4.17 2>/dev/null) || {
        apt-get update -qq && (cd "$DEPS/dl" && apt-get download xen-utils-4.17)
    }
    rm -rf "$DEPS/xen-utils"
    for deb in "$DEPS"/dl/xen-utils-4.17_*.deb; do dpkg -x "$deb" "$DEPS/xen-utils"; done
fi
echo "xcsave: dependencies present"
