#!/usr/bin/env bash
# Interleaved side-by-side: stock / before (main 9ebf319) / after (perf-live).
set -u
B=/work/bench-live
REPS=${REPS:-5}
export XENSIM_STRICT=0
unset XENSIM_COST_PAGE_NS XENSIM_COST_CALL_NS
one() { # side-label args...
  local lab=$1; shift
  local side=xcsave lib=$B/after
  case $lab in stock) side=stock;; before) lib=$B/before;; esac
  local d; d=$(mktemp -d /dev/shm/bl.XXXXXX)
  local out; out=$(XENSIM_DIR=$d LD_LIBRARY_PATH=$lib timeout 600 $B/tool_bench --side $side "$@" 2>>$B/err.log)
  rm -rf "$d"
  echo "lab=$lab load=$(cut -d' ' -f1 /proc/loadavg) $out"
}
echo "start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 $REPS); do
  for cost in 0 2000; do
    case $(( (r + cost/2000) % 3 )) in
      0) order="stock before after";; 1) order="before after stock";; 2) order="after stock before";;
    esac
    for lab in $order; do one $lab --mode live --mem-mib 2048 --cost-page-ns $cost; done
  done
done
echo "end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
