#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Where the time goes on warm checkpoints: perf (cpu-clock sampling; this VM has no hardware
# counters) of the saving process, stock vs xcsave vs the limit, Remus, a 256 MiB guest with
# 2048 dirty pages per checkpoint and 1000 checkpoints. Recording starts after PROFILE_DELAY ms
# (default 800), past the guest's creation and the initial migration, so the samples are
# warm checkpoints (and the time between them: the guest's writes run in another process).
#   bench/profile.sh [OUTDIR]        (default bench/results/profile)
#   PROFILE_COST=2000 PROFILE_DIRTY=2048 PROFILE_CKPTS=1000 PROFILE_MEM=256 to change
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${XCSAVE_BUILD:-$root/build}
TOOL=$BUILD/tests/tool_bench
OUT=${1:-$here/results/profile}
COST=${PROFILE_COST:-0}
DIRTY=${PROFILE_DIRTY:-2048}
CKPTS=${PROFILE_CKPTS:-1000}
MEM=${PROFILE_MEM:-256}
DELAY=${PROFILE_DELAY:-800}
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "profile: perf missing (apt-get install linux-perf)"; exit 1; }
lay=/dev/shm/xcsave-profile-layout.$$
for side in stock xcsave limit; do
    dir=$(mktemp -d /dev/shm/xcsave-profile.XXXXXX)
    extra=""
    [ $side = xcsave ] && extra="--layout-out $lay"
    [ $side = limit ] && extra="--layout-in $lay"
    tag=$side-c$COST
    XENSIM_DIR=$dir perf record -q -D "$DELAY" -e cpu-clock -F 2999 -g -o "$OUT/perf-$tag.data" -- \
        "$TOOL" --side $side --mode remus --mem-mib "$MEM" --dirty "$DIRTY" --ckpts "$CKPTS" \
        --cost-page-ns "$COST" $extra >"$OUT/run-$tag.txt" 2>/dev/null
    rm -rf "$dir"
    # the saving process only (the drain and the guest are named bench-drain/bench-guest)
    {
        echo "# $(cat "$OUT/run-$tag.txt" | grep -o 'tput_mbps=[0-9.]*\|dt_p50_ms=[0-9.]*' | tr '\n' ' ')"
        echo "# the saving process (comm tool_bench), by library. [vdso] __vdso_clock_gettime is"
        echo "# xensim's cost-model busy-wait (the modelled Xen cost per mapped page)."
        perf report -i "$OUT/perf-$tag.data" --comm tool_bench --no-children --stdio \
            --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
        echo "# ... by symbol, self time (>= 0.5%):"
        perf report -i "$OUT/perf-$tag.data" --comm tool_bench --no-children --stdio \
            --sort dso,sym --percent-limit 0.5 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
        echo "# ... kernel paths, with children (writev = the pipe write; faults on mappings;"
        echo "#     munmap/mmap = per-batch mappings; seq_read = the bench's /proc/self/maps sampling"
        echo "#     between checkpoints):"
        perf report -i "$OUT/perf-$tag.data" --comm tool_bench --children --stdio --sort sym \
            -g none 2>/dev/null | grep -E ' (do_syscall_64|do_writev|_copy_from_iter|exc_page_fault|__x64_sys_munmap|ksys_mmap_pgoff|seq_read|dispatch|mmapbatch)$' | head -12
    } >"$OUT/profile-$tag.txt"
    perf report -i "$OUT/perf-$tag.data" --no-children --stdio --sort comm,dso -g none \
        2>/dev/null | grep -v '^#' | grep -v '^$' | head -12 >"$OUT/processes-$tag.txt"
    rm -f "$OUT/perf-$tag.data"
    echo "== $tag"
    head -14 "$OUT/profile-$tag.txt"
done
rm -f "$lay"
