#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Where the time goes on warm checkpoints: perf (cpu-clock sampling; this VM has no hardware
# counters) of the saving process, stock vs xcsave vs the limit, Remus, a 256 MiB guest with
# 2048 dirty pages per checkpoint and 300 checkpoints (so ~90% of the samples are warm
# checkpoints, the rest the initial migration).
#   bench/profile.sh [OUTDIR]        (default bench/results/profile)
#   PROFILE_COST=2000 PROFILE_DIRTY=2048 PROFILE_CKPTS=300 PROFILE_MEM=256 to change
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${XCSAVE_BUILD:-$root/build}
TOOL=$BUILD/tests/tool_bench
OUT=${1:-$here/results/profile}
COST=${PROFILE_COST:-0}
DIRTY=${PROFILE_DIRTY:-2048}
CKPTS=${PROFILE_CKPTS:-300}
MEM=${PROFILE_MEM:-256}
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "profile: perf missing (apt-get install linux-perf)"; exit 1; }
lay=/dev/shm/xcsave-profile-layout.$$
for side in stock xcsave limit; do
    dir=$(mktemp -d /dev/shm/xcsave-profile.XXXXXX)
    extra=""
    [ $side = xcsave ] && extra="--layout-out $lay"
    [ $side = limit ] && extra="--layout-in $lay"
    tag=$side-c$COST
    XENSIM_DIR=$dir perf record -q -e cpu-clock -F 2999 -g -o "$OUT/perf-$tag.data" -- \
        "$TOOL" --side $side --mode remus --mem-mib "$MEM" --dirty "$DIRTY" --ckpts "$CKPTS" \
        --cost-page-ns "$COST" $extra >"$OUT/run-$tag.txt" 2>/dev/null
    rm -rf "$dir"
    # the saving process only (the drain and the guest are named bench-drain/bench-guest)
    perf report -i "$OUT/perf-$tag.data" --comm tool_bench --no-children --stdio \
        --sort dso,sym -g none --percent-limit 0.7 2>/dev/null | grep -v '^$' \
        >"$OUT/profile-$tag.txt"
    perf report -i "$OUT/perf-$tag.data" --no-children --stdio --sort comm,dso -g none \
        2>/dev/null | grep -v '^#' | grep -v '^$' | head -12 >"$OUT/processes-$tag.txt"
    rm -f "$OUT/perf-$tag.data"
    echo "== $tag: $(grep -o 'tput_mbps=[0-9.]*\|dt_p50_ms=[0-9.]*' "$OUT/run-$tag.txt" | tr '\n' ' ')"
    head -40 "$OUT/profile-$tag.txt" | grep -v '^#' | head -25
done
rm -f "$lay"
