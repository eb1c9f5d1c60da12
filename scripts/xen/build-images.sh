#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Build (once, cached) everything `make check-xen` boots, all from Debian 12's packages:
#   $CACHE/xen.elf           Debian's Xen 4.17 hypervisor, gunzipped (QEMU -kernel loads it)
#   $CACHE/vmlinuz           Debian's 6.1 kernel (dom0 and the domUs)
#   $CACHE/pkg/bin/busybox   static busybox for the domU's initramfs
#   $CACHE/dom0.cpio         debootstrap minbase + xen-utils-4.17 + Xen modules + the domU kernel,
#                            as an uncompressed cpio initramfs (the per-run /init, scenarios and
#                            libxcsave.so.0 come in a second, small cpio: see check-xen.sh)
# Usage: build-images.sh CACHE_DIR
# Nothing downloaded here is ever committed; it all stays in CACHE_DIR.
set -euo pipefail
CACHE=${1:?usage: build-images.sh CACHE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${XCSAVE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# Bump when the recipe below changes, so that cached images are rebuilt.
RECIPE=4
mkdir -p "$CACHE"
log() { echo "check-xen: $*" >&2; }

# --- host tools (only these are installed on the host) ---
need=""
command -v qemu-system-x86_64 >/dev/null || need="$need qemu-system-x86"
command -v debootstrap >/dev/null || need="$need debootstrap"
command -v cpio >/dev/null || need="$need cpio"
if [ -n "$need" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "missing host packages:$need (run: sudo apt-get install$need)"
        exit 1
    fi
    log "installing host packages:$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

STAMP="$CACHE/images.stamp"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "recipe=$RECIPE" ] &&
   [ -f "$CACHE/xen.elf" ] && [ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/dom0.cpio" ] &&
   [ -x "$CACHE/pkg/bin/busybox" ]; then
    log "images cached in $CACHE (recipe $RECIPE)"
    exit 0
fi
[ "$(id -u)" = 0 ] || { log "building the dom0 rootfs needs root (debootstrap)"; exit 1; }
t0=$(date +%s)

# apt-get download, retrying once after an `apt-get update` (fresh machines have no lists).
download() {
    (cd "$CACHE/debs" && apt-get download -qq "$@" >/dev/null 2>&1) || {
        apt-get update -qq
        (cd "$CACHE/debs" && apt-get download -qq "$@" >/dev/null)
    }
}
mkdir -p "$CACHE/debs"

# --- dom0 rootfs by debootstrap ---
RFS="$CACHE/rootfs"
rm -rf "$RFS" "$RFS.tmp"
log "debootstrap $SUITE (minbase + xen-utils-4.17) from $MIRROR"
debootstrap --variant=minbase \
    --include=xen-utils-4.17,kmod,busybox,python3 \
    "$SUITE" "$RFS.tmp" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 || {
    tail -20 "$CACHE/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
mv "$RFS.tmp" "$RFS"
XENVER=$(chroot "$RFS" dpkg-query -W -f='${Version}' xen-utils-4.17)
log "dom0 tools: xen-utils-4.17 $XENVER"

# --- hypervisor of the same version as the tools, the kernel, a static busybox ---
rm -f "$CACHE"/debs/*.deb
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
if [ -z "$KPKG" ]; then apt-get update -qq
    KPKG=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
fi
log "downloading xen-hypervisor-4.17-amd64=$XENVER $KPKG busybox-static"
download "xen-hypervisor-4.17-amd64=$XENVER" "$KPKG" busybox-static
rm -rf "$CACHE/pkg"; mkdir -p "$CACHE/pkg"
for deb in "$CACHE"/debs/*.deb; do dpkg -x "$deb" "$CACHE/pkg"; done
gunzip -c "$CACHE"/pkg/boot/xen-4.17-amd64.gz > "$CACHE/xen.elf"
KVER=$(basename "$(ls -d "$CACHE"/pkg/lib/modules/*/ | head -1)")
cp "$CACHE/pkg/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
log "kernel $KVER"

# --- Xen kernel modules into the rootfs ---
M="$RFS/lib/modules/$KVER"
mkdir -p "$M/kernel/drivers"
cp -a "$CACHE/pkg/lib/modules/$KVER/kernel/drivers/xen" "$M/kernel/drivers/"
cp "$CACHE/pkg/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$M/" 2>/dev/null || true
chroot "$RFS" depmod "$KVER"
rm -rf "$CACHE/pkg/lib/modules" "$CACHE/pkg/usr/share"   # 400 MiB we no longer need

# --- the domU kernel (its busybox initramfs is made per run by check-xen.sh) ---
[ -x "$CACHE/pkg/bin/busybox" ] || { log "busybox-static did not unpack"; exit 1; }
cp "$CACHE/vmlinuz" "$RFS/vmlinuz"

# --- trim and pack ---
rm -rf "$RFS"/usr/share/{doc,man,info,locale} "$RFS"/var/cache/apt/archives/*.deb \
       "$RFS"/var/lib/apt/lists/* "$RFS"/boot/* "$RFS"/init
mkdir -p "$RFS"/var/{lib,run,log}/xen "$RFS"/var/log/xen/console "$RFS"/run/xen
(cd "$RFS" && find . | cpio -o -H newc --quiet) > "$CACHE/dom0.cpio.tmp"
mv "$CACHE/dom0.cpio.tmp" "$CACHE/dom0.cpio"
echo "recipe=$RECIPE" > "$STAMP"
log "images built in $(( $(date +%s) - t0 )) s: dom0.cpio $(( $(stat -c %s "$CACHE/dom0.cpio") / 1048576 )) MiB"
