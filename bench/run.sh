#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# `make bench`: stock xc_domain_save, xcsave and the writev limit side by side on xensim.
# A benchmark, not a test: it prints figures and never fails on them.
#
#   BENCH_QUICK=1   a ~2-minute subset (1 GiB checkpoint guests, 2 GiB live, 1 GiB non-live)
#   BENCH_OUT=dir   where results go (default bench/results/latest, or .../quick)
#   BENCH_CKPTS=N   measured checkpoints per scenario (default 20; plus 1 cold one, reported apart)
#   BENCH_REPS=N    run every scenario N times, interleaved (default 2, quick 1); the report
#                   takes medians
#   BENCH_COSTS="0 2000"   xensim per-mapped-page costs (ns) to run every scenario at
#   BENCH_PATTERNS=0   skip the dirty-pattern axis (below), =only run nothing else (no
#                   correctness sample either); BENCH_PAT_CKPTS=N its measured
#                   checkpoints per phase (default 10, quick 6); BENCH_PAT_REPS=N its reps
#                   (default 3, quick 1: medians of 3 with the first side alternating, so
#                   that one save whose pipe copy runs 2-4x fast, which this host does now
#                   and then, cannot move a row alone; one rep of the axis took 20-40 min
#                   on 2 cores with the old 16 GiB warm-up, about 15-25 without);
#                   BENCH_PAT_DOM0="pv pvh-balloon" its dom0 models (quick: pv);
#                   BENCH_PAT_MEMS="1024 4096 16384" its guest sizes in MiB (quick: 1024)
#   BENCH_PIN=1     tool_bench --pin: the saver and the drain on two fixed CPUs (the default
#                   since the seventh issue-13 session, whose reference used it); =0 lets the
#                   scheduler place them, and the pipe copy then runs 5-6x faster in the saves
#                   where it puts both on one CPU (docs/performance.md, sixth session)
#   BENCH_RESTORE=1 the receiving side (default on): stock's and xcsave's xc_domain_restore
#                   applying the same Remus and COLO checkpoints (tool_bench_restore), =0 off,
#                   =only nothing else (no correctness sample either); quick: 10 measured
#                   checkpoints per size unless BENCH_CKPTS says
#   BENCH_LIB=path  the libxcsave.so.0 to measure (default: build/lib's); BENCH_LIB_NOTE says
#                   what it is (e.g. "built from commit abc123") in machine.txt
#
# Every scenario runs stock, then xcsave (the other way round in even reps; both on the same
# simulated guest, each in a fresh process), then the limit (which replays xcsave's record
# framing). One Remus/COLO save serves the three dirty-set sizes in turn (20 measured
# checkpoints each), so the initial migration of the guest is paid once. Output: raw.txt (one
# key=value line per side, scenario and rep), machine.txt, results.md and the plots (report.py).
#
# The dirty-pattern axis (scenarios pat-DOM0-MEM-cCOST, Remus only): one save per guest size,
# cost and dom0 model serves the patterns hot, drift, random and sweep (c-tests/bench.h) at
# 2,048 and 16,384 pages per checkpoint, in that order, each phase 1 cold + BENCH_PAT_CKPTS
# measured checkpoints. Guests of 1, 4 and 16 GiB; xensim's dom0 models pv and pvh-balloon
# (XENSIM_DOM0). Guests above 4 GiB are sparse: their RAM is not filled and lives in a
# sparse file on disk (page cache, reclaimable) rather than tmpfs; the limit's buffer is
# untouched anonymous memory, and before each checkpoint it writes the pages that checkpoint
# carries, as the guest does (so no side sends the zero page).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${XCSAVE_BUILD:-$root/build}
TOOL=$BUILD/tests/tool_bench
QUICK=${BENCH_QUICK:-0}
[ "$QUICK" = 1 ] && def=quick || def=latest
OUT=${BENCH_OUT:-$here/results/$def}
CKPTS=${BENCH_CKPTS:-20}
[ "$QUICK" = 1 ] && REPS=${BENCH_REPS:-1} || REPS=${BENCH_REPS:-2}
COSTS=${BENCH_COSTS:-0 2000}
PATTERNS=${BENCH_PATTERNS:-1}
RESTORE=${BENCH_RESTORE:-1}
[ "$QUICK" = 1 ] && R_CKPTS=${BENCH_CKPTS:-10} || R_CKPTS=$CKPTS
[ "$RESTORE" = only ] && PATTERNS=0
[ "$QUICK" = 1 ] && PAT_REPS=${BENCH_PAT_REPS:-1} || PAT_REPS=${BENCH_PAT_REPS:-3}
[ "$QUICK" = 1 ] && PAT_CKPTS=${BENCH_PAT_CKPTS:-6} || PAT_CKPTS=${BENCH_PAT_CKPTS:-10}
[ -x "$TOOL" ] || { echo "bench: $TOOL not built (run make bench from the top)"; exit 1; }
# The receiving side (BENCH_RESTORE, tool_bench_restore.c): one Remus stream per guest size is
# recorded with xcsave's saver (the initial migration, then one checkpoint of each dirty-set
# size); stock's and xcsave's restore then apply it, each in its own process and XENSIM_DIR,
# as Remus and as COLO (the same bytes), at every cost: the initial migration once, then each
# size's checkpoint 1 cold + BENCH_CKPTS times (the hot pattern). Apply time = the restore's
# checkpoint callback -> COLO's postcopy callback / Remus's next read; map calls = xensim's
# MMAPBATCH count in that window. Scenarios restore-MODE-MEM-dDIRTY-cCOST.
# Run a private copy of the tool and the libraries: a rebuild during the run (a shared work
# tree) must neither break runs nor mix library versions. (RUNPATH: LD_LIBRARY_PATH wins.)
SNAP=$(mktemp -d /dev/shm/xcsave-bench-bin.XXXXXX)
trap 'rm -rf "$SNAP"' EXIT
cp "$TOOL" "$SNAP/tool_bench"
cp "$BUILD/tests/tool_bench_restore" "$SNAP/tool_bench_restore"
for try in 1 2 3 4 5 6 7 8 9 10; do   # a concurrent relink can leave a partial file briefly
    cp -L "${BENCH_LIB:-$BUILD/lib/libxcsave.so.0}" "$SNAP/libxcsave.so.0"
    cp -L "$BUILD/xensim/libxensim.so" "$SNAP/libxensim.so"
    LD_LIBRARY_PATH=$SNAP ldd "$SNAP/tool_bench" 2>&1 | grep -q -e 'not found' -e 'file too short' \
        -e 'invalid ELF' || break
    sleep 3
done
TOOL=$SNAP/tool_bench
RTOOL=$SNAP/tool_bench_restore
export LD_LIBRARY_PATH=$SNAP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$OUT/logs"
RAW=$OUT/raw.txt
: >"$RAW"
unset XENSIM_COST_PAGE_NS XENSIM_COST_CALL_NS   # the tool sets the cost model itself
export XCSAVE_VERIFY_STREAM=${XCSAVE_VERIFY_STREAM:-$BUILD/deps/xen-utils/usr/lib/xen-4.17/bin/verify-stream-v2}
export XENSIM_STRICT=0

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ has uncommitted changes)')"
    echo "libxcsave: sha256 $(sha256sum "$SNAP/libxcsave.so.0" | cut -c1-12), copied at start and used throughout; ${BENCH_LIB_NOTE:-build/lib of this work tree}"
    echo "nproc: $(nproc)"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "kernel: $(uname -r)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "mode: $([ "$QUICK" = 1 ] && echo quick || echo full), $CKPTS measured checkpoints, $REPS rep(s), costs: $COSTS ns/page"
    [ "$RESTORE" != 0 ] && echo "receiving side: restore-remus/colo, 1 GiB guest, 2048 16384 pages, $R_CKPTS measured checkpoints (+1 cold) per size"
    [ "$PATTERNS" != 0 ] && echo "patterns: hot drift random sweep x 2048 16384 pages, $PAT_CKPTS measured checkpoints per phase, $PAT_REPS rep(s)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

start=$(date +%s)
n=0
# run DIR SCENARIO SIDE ARGS...: one side of one scenario; its lines appended to raw.txt (a
# checkpoint scenario prints one line per dirty-set size: its name gets -d<pages>)
run() {
    local dir=$1 scen=$2 side=$3; shift 3
    local log out rc line name
    log="$OUT/logs/$scen-$side-r$rep.log"
    out=$(XENSIM_DIR=$dir timeout 900 "$TOOL" --side "$side" "$@" $PIN 2>"$log")
    rc=$?
    [ -n "$out" ] || out="side=$side ok=0 error=\"exit $rc, see $log\""
    [ $rc -eq 0 ] && rm -f "$log"
    while IFS= read -r line; do
        name=$scen
        d=$(echo "$line" | sed -n 's/.* dirty=\([0-9]*\).*/\1/p')
        [ -n "$d" ] && name=${scen%-c*}-d$d-${scen##*-}
        pat=$(echo "$line" | sed -n 's/.* pattern=\([a-z]*\).*/\1/p')
        [ -n "$d" ] && [ "${scen#pat-}" != "$scen" ] && name=pat-$pat-${scen#pat-} &&
            name=${name%-c*}-d$d-${scen##*-}
        echo "scenario=$name rep=$rep $line" >>"$RAW"
        n=$((n + 1))
        printf '%-28s %-6s %s\n' "$name" "$side" "$(echo "$line" | grep -o 'ok=[01]\|tput_mbps=[0-9.]*\|dt_p50_ms=[0-9.]*\|warm_maps_per_ckpt=[0-9.]*\|downtime_ms=[0-9.]*\|first_pass_mbps=[0-9.]*\|error=.*' | tr '\n' ' ')"
    done <<<"$out"
}
# the three sides of one scenario: stock and xcsave on the same guest, then the limit. Odd
# reps run stock first, even reps xcsave first, so that neither side is always the one that
# meets the freshly created guest (a bias suspected, not shown, in the non-live rows).
# A sparse guest (RAMDIR: its RAM file on disk, never filled) is created first, untimed, and
# its files read once in 4 KiB pages (tool_bench --side prepare), so that the first timed
# side does not pay the page cache's first allocation of every page (64-83 s against 26-34 s
# for the second side of a 16 GiB guest, in the 6b59f71 reference).
trio() {
    local scen=$1; shift
    local lay=/dev/shm/xcsave-bench-layout.$$ dir
    dir=$(mktemp -d /dev/shm/xcsave-bench.XXXXXX)
    if [ -n "${RAMDIR:-}" ]; then
        rm -rf "$RAMDIR"/*
        XENSIM_DIR=$dir "$TOOL" --side prepare "$@" >"$OUT/logs/$scen-prepare-r$rep.log" 2>&1 &&
            rm -f "$OUT/logs/$scen-prepare-r$rep.log"
    fi
    if [ $((rep % 2)) -eq 1 ]; then
        run "$dir" "$scen" stock "$@"
        run "$dir" "$scen" xcsave "$@" --layout-out "$lay"
    else
        run "$dir" "$scen" xcsave "$@" --layout-out "$lay"
        run "$dir" "$scen" stock "$@"
    fi
    rm -rf "$dir"
    dir=$(mktemp -d /dev/shm/xcsave-bench.XXXXXX)
    if [ -s "$lay" ]; then run "$dir" "$scen" limit "$@" --layout-in "$lay"; fi
    rm -rf "$dir" "$lay"
    [ -n "${RAMDIR:-}" ] && rm -rf "$RAMDIR"/*
}
# a pattern scenario: MEM DOM0 COST. With one rep, the side that goes first (and meets the
# fresh guest: for a sparse guest, its page cache) alternates between the two costs of each
# dom0 model and size (patn + patn/2: the models alternate inside each cost; with patn alone
# every PV scenario ran stock first, every PVH one xcsave first, up to the d001333
# reference), and between reps.
pattrio() {
    local mem=$1 dom0=$2 cost=$3 rep=$(( rep + patn + patn / 2 ))
    patn=$((patn + 1))
    if [ "$mem" -gt 4096 ]; then
        RAMDIR=$(mktemp -d /var/tmp/xcsave-bench-ram.XXXXXX)
        export XENSIM_RAM_DIR=$RAMDIR
    fi
    # The allocator is dom0's kernel, not the hypervisor: pvh-balloon models a kernel
    # without CONFIG_XEN_UNPOPULATED_ALLOC, which xcsave is told (docs/dom0-cost.md §7).
    local unpop=yes
    [ "$dom0" = pvh-balloon ] && unpop=no
    XCSAVE_DOM0_UNPOPULATED=$unpop XENSIM_DOM0=$dom0 trio "pat-$dom0-${mem}M-c$cost" --mode remus --mem-mib "$mem" \
        --patterns hot,drift,random,sweep --dirty 2048,16384 --ckpts "$PAT_CKPTS" \
        --cost-page-ns "$cost"
    [ -n "${RAMDIR:-}" ] && rm -rf "$RAMDIR"
    unset RAMDIR XENSIM_RAM_DIR
}

if [ "$QUICK" = 1 ]; then
    CK_MEMS="1024"; CK_DIRTY="512 2048 16384"; LIVE_MEMS="2048"; NONLIVE_MEMS="1024"
    PAT_MEMS="1024"; PAT_DOM0="pv"; PAT_COSTS="2000"
else
    CK_MEMS="1024 4096"; CK_DIRTY="512 2048 16384"; LIVE_MEMS="2048 8192"; NONLIVE_MEMS="2048"
    PAT_MEMS="1024 4096 16384"; PAT_DOM0="pv pvh-balloon"; PAT_COSTS=$COSTS
fi
PAT_DOM0=${BENCH_PAT_DOM0:-$PAT_DOM0}
PAT_MEMS=${BENCH_PAT_MEMS:-$PAT_MEMS}
PIN=; [ "${BENCH_PIN:-1}" = 1 ] && PIN=--pin
[ "$PATTERNS" != 0 ] && echo "pattern dom0 models: $PAT_DOM0" | tee -a "$OUT/machine.txt"
[ "$PATTERNS" = 0 ] && PAT_MEMS=""
[ "$PATTERNS" = only ] && CK_MEMS="" LIVE_MEMS="" NONLIVE_MEMS=""
[ "$RESTORE" = only ] && CK_MEMS="" LIVE_MEMS="" NONLIVE_MEMS=""
R_MEMS="1024"; R_DIRTY="2048 16384"
[ "$RESTORE" = 0 ] && R_MEMS=""
export XENSIM_DOM0=pv
# The correctness sample (not timed): xcsave, the bench's workload, into the stock restore with
# equality at every checkpoint and verify-stream-v2.
rep=0
for mode in $([ "$PATTERNS" = only ] || [ "$RESTORE" = only ] || echo remus colo); do
    dir=$(mktemp -d /dev/shm/xcsave-bench.XXXXXX)
    run "$dir" "verify-$mode-1024M-c2000" verify --mode $mode --mem-mib 1024 --dirty 2048 \
        --ckpts 5 --cost-page-ns 2000
    rm -rf "$dir"
done
for rep in $(seq 1 "$REPS"); do
for cost in $COSTS; do
    for mode in remus colo; do
        for mem in $CK_MEMS; do
            trio "$mode-${mem}M-c$cost" --mode $mode --mem-mib $mem --dirty "${CK_DIRTY// /,}" \
                --ckpts "$CKPTS" --cost-page-ns $cost
        done
    done
    for mem in $LIVE_MEMS; do
        trio "live-${mem}M-c$cost" --mode live --mem-mib $mem --cost-page-ns $cost
    done
    for mem in $NONLIVE_MEMS; do
        trio "nonlive-${mem}M-c$cost" --mode nonlive --mem-mib $mem --cost-page-ns $cost
    done
done
done
for rep in $(seq 1 "$PAT_REPS"); do
patn=0
for mem in $PAT_MEMS; do
    for cost in $PAT_COSTS; do
        for dom0 in $PAT_DOM0; do
            pattrio "$mem" "$dom0" "$cost"
        done
    done
done
done
# rrun DIR SCENARIO SIDE ARGS...: one side of the receiving bench (one line per dirty size)
rrun() {
    local dir=$1 scen=$2 side=$3; shift 3
    local log out rc line d
    log="$OUT/logs/$scen-$side-r$rep.log"
    out=$(XENSIM_DIR=$dir timeout 900 "$RTOOL" --side "$side" "$@" 2>"$log")
    rc=$?
    [ -n "$out" ] || out="side=$side ok=0 error=\"exit $rc, see $log\""
    [ $rc -eq 0 ] && rm -f "$log"
    while IFS= read -r line; do
        d=$(echo "$line" | sed -n 's/.* dirty=\([0-9]*\).*/\1/p')
        echo "scenario=${scen%-c*}-d$d-${scen##*-} rep=$rep $line" >>"$RAW"
        n=$((n + 1))
        printf '%-28s %-6s %s\n' "${scen%-c*}-d$d-${scen##*-}" "$side" "$(echo "$line" | grep -o 'ok=[01]\|apply_p50_ms=[0-9.]*\|apply_p90_ms=[0-9.]*\|warm_maps_per_ckpt=[0-9.]*\|error=.*' | tr '\n' ' ')"
    done <<<"$out"
}
for mem in $R_MEMS; do
    sdir=$(mktemp -d /dev/shm/xcsave-bench.XXXXXX)
    stream=$sdir/restore-stream.bin
    genlog="$OUT/logs/restore-gen-${mem}M.log"
    if ! XENSIM_DIR=$sdir timeout 900 "$RTOOL" --gen "$stream" --mem-mib "$mem" \
            --dirty "${R_DIRTY// /,}" >"$genlog" 2>&1; then
        echo "bench: recording the receiving side's stream failed: $(tail -1 "$genlog")"
        echo "scenario=restore-gen-${mem}M rep=0 side=gen ok=0 error=\"see $genlog\"" >>"$RAW"
        rm -rf "$sdir"
        continue
    fi
    rm -f "$genlog"
    for rep in $(seq 1 "$REPS"); do
    for cost in $COSTS; do
        for mode in remus colo; do
            # alternate which restore goes first, as trio() does
            sides="stock xcsave"
            [ $((rep % 2)) -eq 0 ] && sides="xcsave stock"
            for side in $sides; do
                dir=$(mktemp -d /dev/shm/xcsave-bench.XXXXXX)
                rrun "$dir" "restore-$mode-${mem}M-c$cost" "$side" --mode "$mode" \
                    --stream "$stream" --mem-mib "$mem" --dirty "${R_DIRTY// /,}" \
                    --ckpts "$R_CKPTS" --cost-page-ns "$cost"
                rm -rf "$dir"
            done
        done
    done
    done
    rm -rf "$sdir"
done
secs=$(( $(date +%s) - start ))
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "busiest other processes at end: $(ps -eo pcpu,comm --sort=-pcpu --no-headers | grep -v -e tool_bench -e ' ps$' | head -3 | awk '{printf "%s %s%%; ", $2, $1}')" >>"$OUT/machine.txt"
echo "runs: $n in ${secs}s" >>"$OUT/machine.txt"
rmdir "$OUT/logs" 2>/dev/null
/usr/bin/python3 "$here/report.py" "$OUT"
echo "bench: results in $OUT (results.md, raw.txt, machine.txt, *.png)"
