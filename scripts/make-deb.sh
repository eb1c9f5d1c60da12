#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# `make deb`: Debian packages of the library built for this host's Xen release, into OUT:
#   libxcsave0     the shared object with its SONAME (dependencies from dpkg-shlibdeps);
#   libxcsave-dev  header, static library, .so link and pkg-config file;
#   xcsave-xl      opt-in activation: diverts Xen's libxl-save-helper (dpkg-divert --rename to
#                  libxl-save-helper.stock) to a wrapper that preloads libxcsave for the helper
#                  alone, so every xl save/migrate/remus/colo uses xcsave; removing the package
#                  puts the stock helper back. Neither xl nor /etc/ld.so.preload is touched.
# Built with dpkg-deb from a `make install` staging tree (docs/decisions.md, "Debian packages").
#   scripts/make-deb.sh XEN BUILD OUT
set -euo pipefail
cd "$(dirname "$0")/.."
xen=${1:?usage: make-deb.sh XEN BUILD OUT}
build=${2:?}
out=${3:?}
ver=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
case $xen in
    4.17) deb=deb12 dist=bookworm ;;
    4.20) deb=deb13 dist=trixie ;;
    *) echo "make-deb: no Debian release ships Xen $xen" >&2; exit 2 ;;
esac
have=$(tr -d ' \n' <"$build/lib/xcsave-xen.txt" | sed 's/VERS.*\|libxenguest.*//')
[ "$have" = "$xen" ] || { echo "make-deb: $build/lib is built for Xen '$have', not $xen" >&2; exit 1; }
debver="$ver-1+$deb"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
libdir=/usr/lib/$ma
helper=/usr/lib/xen-$xen/bin/libxl-save-helper
maint="xcsave developers <xcsave@example.org>"
when=$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(stat -c %Y Cargo.toml)}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

make -s install DESTDIR="$work/stage" PREFIX=/usr LIBDIR="$libdir" INCDIR=/usr/include \
    XEN="$xen" >/dev/null

# Common parts of every package: doc dir with copyright and changelog, md5sums, control.
doc() {
    local p=$1 root=$work/$1
    mkdir -p "$root/usr/share/doc/$p" "$root/DEBIAN"
    cat >"$root/usr/share/doc/$p/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: xcsave

Files: *
Copyright: 2026 xcsave developers
License: GPL-3
 This program is free software: you can redistribute it and/or modify it under the terms of
 the GNU General Public License as published by the Free Software Foundation, version 3.
 .
 On Debian systems, the complete text of the GNU General Public License version 3 can be
 found in "/usr/share/common-licenses/GPL-3".
EOF
    printf '%s (%s) %s; urgency=medium\n\n  * Built for Xen %s by make deb.\n\n -- %s  %s\n' \
        xcsave "$debver" "$dist" "$xen" "$maint" "$when" |
        gzip -9n >"$root/usr/share/doc/$p/changelog.Debian.gz"
}
control() {
    local p=$1 root=$work/$1 a=$2 section=$3 depends=$4 desc=$5 long=$6
    (cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
    {
        echo "Package: $p"
        echo "Source: xcsave"
        echo "Version: $debver"
        echo "Architecture: $a"
        echo "Maintainer: $maint"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
        echo "Depends: $depends"
        echo "Section: $section"
        echo "Priority: optional"
        echo "Multi-Arch: same"
        echo "Description: $desc"
        echo "$long" | fold -s -w 72 | sed 's/ *$//; s/^/ /'
    } | { if [ "$p" = xcsave-xl ]; then grep -v '^Multi-Arch'; else cat; fi; } \
        >"$root/DEBIAN/control"
    find "$work/$p" -type d -exec chmod 0755 {} +
    dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${p}_${debver}_$a.deb" >/dev/null
    echo "make-deb: $out/${p}_${debver}_$a.deb"
}

# libxcsave0: the shared object, stripped as Debian ships libraries.
r=$work/libxcsave0
mkdir -p "$r$libdir"
cp -a "$work/stage$libdir"/libxcsave.so.0* "$r$libdir/"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$r$libdir/libxcsave.so.$ver"
chmod 0644 "$r$libdir/libxcsave.so.$ver"
doc libxcsave0
echo "libxcsave 0 libxcsave0 (>= $ver)" >"$r/DEBIAN/shlibs"
# The symbols file: every versioned export, with the version that introduced it.
{
    echo "libxcsave.so.0 libxcsave0 #MINVER#"
    echo "* Build-Depends-Package: libxcsave-dev"
    nm -D --defined-only --with-symbol-versions "$r$libdir/libxcsave.so.$ver" |
        awk '{print $3}' | sed 's/@@*/@/; /@/!s/.*/&@&/' | sort | sed "s/\$/ $ver/; s/^/ /"
} >"$r/DEBIAN/symbols"
echo "activate-noawait ldconfig" >"$r/DEBIAN/triggers"
mkdir -p "$work/shlibdeps/debian"
printf 'Source: xcsave\n\nPackage: libxcsave0\nArchitecture: any\n' >"$work/shlibdeps/debian/control"
deps=$(cd "$work/shlibdeps" && dpkg-shlibdeps -O "$r$libdir/libxcsave.so.$ver" 2>/dev/null |
       sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { echo "make-deb: dpkg-shlibdeps found no dependency" >&2; exit 1; }
control libxcsave0 "$arch" libs "$deps" \
    "drop-in xc_domain_save for Xen $xen with cached foreign mappings" \
    "xcsave replaces libxenguest's xc_domain_save() for x86 HVM guests and keeps guest page mappings alive across batches, iterations and checkpoints, so Remus/COLO checkpoints and live migration cost less. This build is for Xen $xen; it exports xc_domain_save under that release's symbol version. Install xcsave-xl to use it for xl."

# libxcsave-dev: header, static library, the .so link, pkg-config file.
r=$work/libxcsave-dev
mkdir -p "$r$libdir/pkgconfig" "$r/usr/include"
cp -a "$work/stage$libdir/libxcsave.so" "$r$libdir/"
cp "$work/stage$libdir/libxcsave.a" "$r$libdir/"
strip --strip-debug --remove-section=.comment "$r$libdir/libxcsave.a"
cp "$work/stage$libdir/pkgconfig/xcsave.pc" "$r$libdir/pkgconfig/"
cp "$work/stage/usr/include/xcsave.h" "$r/usr/include/"
chmod 0644 "$r$libdir/libxcsave.a" "$r$libdir/pkgconfig/xcsave.pc" "$r/usr/include/xcsave.h"
doc libxcsave-dev
control libxcsave-dev "$arch" libdevel "libxcsave0 (= $debver), libxen-dev" \
    "drop-in xc_domain_save for Xen $xen (development files)" \
    "Header, static library and pkg-config file (pkg-config --cflags --libs xcsave) for programs that call xcsave's own API or link it ahead of libxenguest."

# xcsave-xl: the diverting wrapper of libxl-save-helper.
r=$work/xcsave-xl
mkdir -p "$r${helper%/*}"
cat >"$r$helper" <<EOF
#!/bin/sh
# Installed by xcsave-xl in place of Xen $xen's libxl-save-helper, which dpkg-divert moved to
# libxl-save-helper.stock. libxl runs the helper for every xl save, migrate, remus and colo:
# this preloads libxcsave for the helper alone. Remove xcsave-xl to return to the stock helper.
LD_PRELOAD="\${LD_PRELOAD:+\$LD_PRELOAD }libxcsave.so.0"
export LD_PRELOAD
exec $helper.stock "\$@"
EOF
chmod 0755 "$r$helper"
doc xcsave-xl
cat >"$r/DEBIAN/preinst" <<EOF
#!/bin/sh
set -e
if [ "\$1" = install ] || [ "\$1" = upgrade ]; then
    dpkg-divert --package xcsave-xl --add --rename --divert $helper.stock $helper
fi
EOF
cat >"$r/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
if [ "\$1" = remove ] || [ "\$1" = abort-install ] || [ "\$1" = disappear ]; then
    dpkg-divert --package xcsave-xl --remove --rename --divert $helper.stock $helper
fi
EOF
chmod 0755 "$r/DEBIAN/preinst" "$r/DEBIAN/postrm"
control xcsave-xl "$arch" admin "libxcsave0 (= $debver), xen-utils-$xen" \
    "use xcsave for every xl save, migrate, remus and colo" \
    "Diverts Xen $xen's libxl-save-helper to a wrapper that preloads libxcsave for that helper alone. xl itself and /etc/ld.so.preload are not touched. Removing this package restores the stock helper."
