#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# One-way layers (docs/architecture.md): every room of src/ has a level, and a room may name
# only rooms of a strictly lower level (`crate::<room>` anywhere in its files: `use` lines and
# inline paths alike). Equal levels never name each other, so the room graph has no cycle.
# A room missing from the table fails too, so a new room must be placed. Exit 1 on any breach.
# Usage: scripts/check-layers.sh [src-dir]
set -euo pipefail
src=${1:-"$(dirname "$0")/../src"}

declare -A level=(
    # base: C layouts and Xen facts; the error type
    [abi]=0 [error]=0
    # fallible allocation and the test-only fault injection
    [faults]=1 [fallible]=2
    # pure stream encoding; the traits Xen is seen through
    [stream]=3 [hv]=3
    # pure back-channel parsing; the page-source trait; the fake hypervisor (tests, fuzzing)
    [backchannel]=4 [pages]=4 [testkit]=4
    # the receiving side's pure parts: untrusted stream reader, checkpoint model
    [restore]=4
    # the three engines of the middle: Xen access, the mapping cache, the save engine
    [xen]=5 [cache]=5 [engine]=5
    # the restore engine: drives the reader and sequencer, applies records through hv
    [receive]=5
    # per-save wiring: settings (cache config + environment), the log facade
    [settings]=6 [logging]=6
    # the C surface on top
    [capi]=7
)

fail=0
while IFS= read -r -d '' f; do
    rel=${f#"$src"/}
    room=${rel%%/*}
    room=${room%.rs}
    [[ $room == lib ]] && continue
    if [[ -z ${level[$room]+x} ]]; then
        echo "check-layers: src/$rel: room '$room' is not in the level table" >&2
        fail=1
        continue
    fi
    while IFS=: read -r line used; do
        [[ $used == "$room" ]] && continue
        if [[ -z ${level[$used]+x} ]]; then
            echo "check-layers: src/$rel:$line: names unknown room '$used'" >&2
            fail=1
        elif ((level[$used] >= level[$room])); then
            echo "check-layers: src/$rel:$line: $room (level ${level[$room]}) names $used" \
                 "(level ${level[$used]}): only lower rooms may be named" >&2
            fail=1
        fi
    done < <(grep -noE 'crate::[a-z_]+' "$f" | sed -E 's/crate:://' | sort -u -t: -k2,2 || true)
    # `use crate::{a, b}` groups.
    if grep -qE 'crate::\{' "$f"; then
        echo "check-layers: src/$rel: write one 'use crate::<room>' per room, not a group" >&2
        fail=1
    fi
done < <(find "$src" -name '*.rs' -print0)

if ((fail)); then
    echo "check-layers: FAILED" >&2
    exit 1
fi
echo "check-layers: ${#level[@]} rooms, every import points down"
