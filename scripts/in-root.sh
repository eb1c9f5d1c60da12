#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Run a command inside a Debian root made by scripts/debian-root.sh, in this worktree:
#   scripts/in-root.sh build/trixie make XEN=4.20 check-c
# In a private mount namespace (nothing stays mounted afterwards): /proc, /dev (with /dev/shm,
# where the tests keep xensim's state), this worktree at the same path, and the host's Rust
# toolchain (rustup's toolchains run on the newer glibc) with its crate cache. The unpacked
# xen-utils of the root's release is at /xcsave-deps/xen-utils (XEN_UTILS for the Makefile).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(cd "${1:?usage: in-root.sh ROOT COMMAND...}" && pwd)
shift
[ -f "$root/.xcsave-root" ] || { echo "in-root: $root is not a root made by debian-root.sh" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "in-root: needs root (chroot)" >&2; exit 1; }
wt=$(pwd)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
exec unshare --mount --propagation private bash -euo pipefail -c '
    r=$1; wt=$2; ch=$3; rh=$4; shift 4
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mkdir -p "$r$wt" "$r/xcsave-rust/cargo" "$r/xcsave-rust/rustup"
    mount --bind "$wt" "$r$wt"
    mount --bind "$ch" "$r/xcsave-rust/cargo"
    mount --bind "$rh" "$r/xcsave-rust/rustup"
    cmd=$(printf "%q " "$@")
    exec chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb ${CI:+CI=$CI} \
        PATH=/xcsave-rust/cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        CARGO_HOME=/xcsave-rust/cargo RUSTUP_HOME=/xcsave-rust/rustup \
        XEN_UTILS=/xcsave-deps/xen-utils \
        bash -c "cd $wt && $cmd"
' _ "$root" "$wt" "$cargo_home" "$rustup_home" "$@"
