#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Build (once, cached) everything `make check-xen` boots, all from one Debian release's packages
# (Xen 4.17: Debian 12 bookworm; Xen 4.20: Debian 13 trixie):
#   $CACHE/xen.elf           Debian's Xen hypervisor, gunzipped (QEMU -kernel loads it)
#   $CACHE/vmlinuz           that release's kernel (6.1 or 6.12; dom0 and the domUs)
#   $CACHE/pkg/bin/busybox   static busybox for the domU's initramfs
#   $CACHE/dom0.cpio         debootstrap minbase + xen-utils-X + Xen modules + the domU kernel,
#                            as an uncompressed cpio initramfs (the per-run /init, scenarios and
#                            libxcsave.so.0 come in a second, small cpio: see check-xen.sh)
# The hypervisor and the kernel are downloaded by apt inside the new rootfs, so that they come
# from the same release as its tools, whatever the host runs.
# Usage: build-images.sh CACHE_DIR [XEN]   (XEN: 4.17, the default, or 4.20)
# Nothing downloaded here is ever committed; it all stays in CACHE_DIR.
set -euo pipefail
CACHE=${1:?usage: build-images.sh CACHE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${XCSAVE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
XEN=${2:-4.17}
case $XEN in
    4.17) SUITE=bookworm ;;
    4.20) SUITE=trixie ;;
    *) echo "build-images: no Debian release with Xen $XEN (4.17 or 4.20)" >&2; exit 2 ;;
esac
# Bump when the recipe below changes, so that cached images are rebuilt.
RECIPE="5 xen=$XEN"
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

# apt inside the rootfs (its release's package lists), in a private mount namespace.
in_rfs() {
    unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$RFS" "$@"
}

# --- dom0 rootfs by debootstrap ---
RFS="$CACHE/rootfs"
rm -rf "$RFS" "$RFS.tmp"
log "debootstrap $SUITE (minbase + xen-utils-$XEN) from $MIRROR"
debootstrap --variant=minbase \
    --include=xen-utils-$XEN,kmod,busybox,python3 \
    "$SUITE" "$RFS.tmp" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 || {
    tail -20 "$CACHE/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
mv "$RFS.tmp" "$RFS"
XENVER=$(chroot "$RFS" dpkg-query -W -f='${Version}' xen-utils-$XEN)
log "dom0 tools: xen-utils-$XEN $XENVER"

# --- hypervisor of the same version as the tools, the kernel, a static busybox ---
cp /etc/resolv.conf "$RFS/etc/resolv.conf" 2>/dev/null || true
in_rfs apt-get update -qq
KPKG=$(in_rfs apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
[ -n "$KPKG" ] || { log "no linux-image package for $SUITE"; exit 1; }
log "downloading xen-hypervisor-$XEN-amd64=$XENVER $KPKG busybox-static"
rm -rf "$RFS/debs"; mkdir -p "$RFS/debs"
in_rfs sh -c "cd /debs && apt-get download -qq xen-hypervisor-$XEN-amd64=$XENVER $KPKG busybox-static" >/dev/null
rm -rf "$CACHE/pkg" "$CACHE/debs"; mkdir -p "$CACHE/pkg"
mv "$RFS/debs" "$CACHE/debs"
for deb in "$CACHE"/debs/*.deb; do dpkg -x "$deb" "$CACHE/pkg"; done
gunzip -c "$CACHE"/pkg/boot/xen-$XEN-amd64.gz > "$CACHE/xen.elf"
# Debian 13's packages install under /usr only (lib/modules, bin/busybox moved there).
MODS="$CACHE/pkg/lib/modules"
[ -d "$MODS" ] || MODS="$CACHE/pkg/usr/lib/modules"
KVER=$(basename "$(ls -d "$MODS"/*/ | head -1)")
cp "$CACHE/pkg/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
log "kernel $KVER"
if [ ! -x "$CACHE/pkg/bin/busybox" ] && [ -x "$CACHE/pkg/usr/bin/busybox" ]; then
    mkdir -p "$CACHE/pkg/bin"; cp "$CACHE/pkg/usr/bin/busybox" "$CACHE/pkg/bin/busybox"
fi

# --- Xen kernel modules into the rootfs ---
M="$RFS/lib/modules/$KVER"
mkdir -p "$M/kernel/drivers"
cp -a "$MODS/$KVER/kernel/drivers/xen" "$M/kernel/drivers/"
cp "$MODS/$KVER"/modules.{order,builtin,builtin.modinfo} "$M/" 2>/dev/null || true
chroot "$RFS" depmod "$KVER"
rm -rf "$MODS" "$CACHE/pkg/usr/share"   # 400 MiB we no longer need

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
