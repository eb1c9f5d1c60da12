#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Usage: link-so.sh [out-dir [staticlib]] (default build/lib and <target>/release/libxcsave.a).
# Link <out-dir>/libxcsave.so.<version> from the Rust staticlib with the linker version script
# build.rs generated next to it for the chosen Xen release (xcsave.map, from xcsave.map.in), so
# that exactly xc_domain_save and xc_domain_restore under VERS_4.17.0 (Xen 4.17) or
# libxenguest_4.20.0 (Xen 4.20), and the xcsave_* API, are exported. CARGO_TARGET_DIR names the target directory
# (default target/; the Makefile uses target/xen-<version> for releases other than 4.17).
# rustc's cdylib passes a version script of its own, which GNU ld refuses to combine with a second
# one that names versions; linking the staticlib ourselves avoids that.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/lib}
archive=${2:-${CARGO_TARGET_DIR:-target}/release/libxcsave.a}
# build.rs writes the version script and xcsave-xen.txt next to the archive.
rel=$(dirname "$archive")
ver=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p "$out"
# Write to temporary names and rename, so a process that is loading the library (a running test
# or benchmark) never sees a half-written file.
cp "$archive" "$out/.libxcsave.a.tmp"
mv -f "$out/.libxcsave.a.tmp" "$out/libxcsave.a"
gcc -shared -o "$out/.libxcsave.so.$ver.tmp" \
    -Wl,--whole-archive "$archive" -Wl,--no-whole-archive \
    -Wl,--version-script="$rel/xcsave.map" -Wl,-soname,libxcsave.so.0 \
    -Wl,-z,now -Wl,-z,relro -Wl,--gc-sections \
    -lxenguest -lxenctrl -lxentoollog -ldl -lpthread -lgcc_s -lc -lm
cp "$rel/xcsave-xen.txt" "$out/xcsave-xen.txt"
mv -f "$out/.libxcsave.so.$ver.tmp" "$out/libxcsave.so.$ver"
ln -sf "libxcsave.so.$ver" "$out/libxcsave.so.0"
ln -sf libxcsave.so.0 "$out/libxcsave.so"
