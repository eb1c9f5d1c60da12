#!/usr/bin/env bash
B=/work/bench-live; export XENSIM_STRICT=0
one() { local lab=$1 lib=$2; shift 2; local d; d=$(mktemp -d /dev/shm/bl.XXXXXX)
  out=$(XENSIM_DIR=$d LD_LIBRARY_PATH=$B/$lib timeout 600 $B/tool_bench --side xcsave "$@" 2>/dev/null); rm -rf $d
  echo "$lab $(echo "$out" | grep -o 'downtime_ms=[0-9.]*\|iterations=[0-9]*\|later_mbps=[0-9.]*\|dirtier_writes=[0-9]*' | tr '\n' ' ')"; }
for r in 1 2 3; do
  one before before --mode live --mem-mib 2048 --cost-page-ns 0
  one after after --mode live --mem-mib 2048 --cost-page-ns 0
  XCSAVE_CACHE_MB=64 one after-64M after --mode live --mem-mib 2048 --cost-page-ns 0
  one before-rate1k before --mode live --mem-mib 2048 --cost-page-ns 0 --dirty-rate 1000
  one after-rate1k after --mode live --mem-mib 2048 --cost-page-ns 0 --dirty-rate 1000
done
