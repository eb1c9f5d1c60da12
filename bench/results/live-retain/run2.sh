#!/usr/bin/env bash
set -u
B=/work/bench-live; export XENSIM_STRICT=0
one() { local lab=$1; shift; local side=xcsave lib=$B/after
  case $lab in stock) side=stock;; before) lib=$B/before;; esac
  local d; d=$(mktemp -d /dev/shm/bl.XXXXXX)
  local out; out=$(XENSIM_DIR=$d LD_LIBRARY_PATH=$lib timeout 600 $B/tool_bench --side $side "$@" 2>>$B/err.log); rm -rf "$d"
  echo "$out" | while IFS= read -r l; do echo "lab=$lab load=$(cut -d' ' -f1 /proc/loadavg) $l"; done; }
echo "start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in 1 2; do
  for cost in 0 2000; do
    if [ $r = 1 ]; then order="stock before after"; else order="after before stock"; fi
    for lab in $order; do one $lab --mode nonlive --mem-mib 1024 --cost-page-ns $cost; done
    for lab in $order; do one $lab --mode remus --mem-mib 1024 --dirty 2048 --ckpts 10 --cost-page-ns $cost; done
  done
done
echo "end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
