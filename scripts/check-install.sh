#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# `make install` honours DESTDIR and PREFIX: the shared object carries its SONAME, the static
# library, header and pkg-config file land where they should, and a C program built with
# `pkg-config --cflags --libs xcsave` links against the installed copy and calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make -s install DESTDIR="$dest" PREFIX=/opt/xcsave >/dev/null
lib=$dest/opt/xcsave/lib
for f in "$lib/libxcsave.so.0" "$lib/libxcsave.so" "$lib/libxcsave.a" \
         "$dest/opt/xcsave/include/xcsave.h" "$lib/pkgconfig/xcsave.pc"; do
    [ -e "$f" ] || { echo "check-install: FAIL: $f not installed" >&2; exit 1; }
done
soname=$(readelf -d "$lib/libxcsave.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libxcsave.so.0 ] || { echo "check-install: FAIL: SONAME '$soname'" >&2; exit 1; }
grep -q '^prefix=/opt/xcsave$' "$lib/pkgconfig/xcsave.pc" ||
    { echo "check-install: FAIL: pkg-config prefix" >&2; exit 1; }
cat >"$dest/use.c" <<'C'
#include <xenctrl.h>
#include <xenguest.h>
#include <xcsave.h>
#include <stdio.h>
int main(void)
{
    XcsaveCacheStats st;
    /* No save has run for domain 1 in this process: the call must answer, not crash. */
    int r = xcsave_cache_stats(1, &st);
    printf("xcsave_cache_stats -> %d\n", r);
    /* A bad domid through the installed library: -1, never a crash. */
    return xcsave_domain_save(NULL, -1, 0, 0, NULL, XC_STREAM_PLAIN, -1) == -1 ? 0 : 1;
}
C
flags=$(PKG_CONFIG_SYSROOT_DIR= PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs xcsave |
        sed "s|/opt/xcsave|$dest/opt/xcsave|g")
gcc -Wall -Wextra -Werror -D__XEN_TOOLS__ -o "$dest/use" "$dest/use.c" $flags \
    -Wl,-rpath,"$lib" -lxenguest -lxenctrl
# ldd's whole output first: `ldd | grep -q` under pipefail fails when grep exits early and
# ldd gets SIGPIPE (seen once in a clean-clone CI run on a loaded machine).
ldd "$dest/use" >"$dest/ldd.txt"
grep -q "$lib/libxcsave.so.0" "$dest/ldd.txt" || {
    echo "check-install: FAIL: the program does not load the installed libxcsave.so.0" >&2
    sed 's/^/  ldd: /' "$dest/ldd.txt" >&2
    exit 1
}
"$dest/use" >/dev/null
echo "check-install: DESTDIR/PREFIX layout, SONAME, pkg-config and linking OK"
