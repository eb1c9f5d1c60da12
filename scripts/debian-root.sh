#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Build (once) and cache a Debian root for running the suite against another release's Xen:
#   scripts/debian-root.sh trixie build/trixie
# minbase debootstrap from the Debian mirror the host's apt sources already use, then, inside it,
# Debian's own packages: libxen-dev (the real 4.20 libxenctrl/libxenguest and headers), the C
# toolchain, libclang-dev (bindgen for xenctrl-sys), python3 (verify-stream-v2), and
# xen-utils-4.20 downloaded and unpacked with dpkg -x into <root>/xcsave-deps/xen-utils (never
# installed: it would pull in the toolstack's services). The root is reused while its stamp
# (release + package list) matches. Rust is not installed in it: scripts/in-root.sh bind-mounts
# the host's rustup toolchain, which runs on the newer glibc.
set -euo pipefail
cd "$(dirname "$0")/.."
release=${1:?usage: debian-root.sh RELEASE DIR}
root=${2:?usage: debian-root.sh RELEASE DIR}
PKGS="libxen-dev libclang-dev pkgconf gcc make python3 libc6-dev ca-certificates dpkg-dev"
case $release in
    trixie) XEN_UTILS=xen-utils-4.20 ;;
    bookworm) XEN_UTILS=xen-utils-4.17 ;;
    *) echo "debian-root: unknown release $release" >&2; exit 2 ;;
esac
stamp="$release $PKGS $XEN_UTILS"
if [ -f "$root/.xcsave-root" ] && [ "$(cat "$root/.xcsave-root")" = "$stamp" ]; then
    echo "debian-root: $root ($release) is ready"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "debian-root: building the $release root needs root (debootstrap, chroot)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "debian-root: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

# The Debian archive the host already uses (deb822 .sources or one-line .list), not security.
mirror=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p'; } |
          grep -E '/debian/?$' | grep -v security | head -1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

start=$(date +%s)
tmp="$root.tmp"
rm -rf "$tmp"
mkdir -p "$(dirname "$root")"
echo "debian-root: debootstrap --variant=minbase $release from $mirror (log $tmp.log)"
debootstrap --variant=minbase "$release" "$tmp" "$mirror" >"$tmp.log" 2>&1 || {
    tail -20 "$tmp.log" >&2; exit 1; }
# Packages inside, in a private mount namespace so that nothing stays mounted afterwards.
cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true
unshare --mount --propagation private bash -euo pipefail -c '
    r=$1; pkgs=$2; utils=$3
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    chroot "$r" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -qq --no-install-recommends $pkgs
    mkdir -p "$r/xcsave-deps/dl"
    chroot "$r" sh -c "cd /xcsave-deps/dl && apt-get download -qq $utils"
    for deb in "$r"/xcsave-deps/dl/${utils}_*.deb; do dpkg -x "$deb" "$r/xcsave-deps/xen-utils"; done
    chroot "$r" apt-get clean
' _ "$tmp" "$PKGS" "$XEN_UTILS" >>"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; exit 1; }
echo "$stamp" >"$tmp/.xcsave-root"
rm -rf "$root"
mv "$tmp" "$root"
mv "$tmp.log" "$root.log"
echo "debian-root: $root ready in $(( $(date +%s) - start )) s, $(du -sh "$root" | cut -f1)"
