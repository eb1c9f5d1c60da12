#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Run C tests, one process each, each in a fresh simulated hypervisor (XENSIM_DIR).
#   c-tests/run.sh                      every built test
#   c-tests/run.sh test_a test_b:case   a subset; "name:case" passes "case" as argv[1]
# Prints PASS/FAIL per test, the tail of a failing test's output, and "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${XCSAVE_BUILD:-$here/../build}
OUT=$BUILD/tests
LOGS=$BUILD/test-logs
mkdir -p "$LOGS"
export XENSIM_STRICT=${XENSIM_STRICT:-1}
# The stock tools of the Xen release under test, from its unpacked xen-utils-<x.y>.
xen=${XCSAVE_XEN_VERSION:-4.17}
utils=${XCSAVE_XEN_UTILS:-$BUILD/deps/xen-utils}/usr/lib/xen-$xen
export XCSAVE_VERIFY_STREAM=${XCSAVE_VERIFY_STREAM:-$utils/bin/verify-stream-v2}
export XCSAVE_XEN_PYTHONPATH=${XCSAVE_XEN_PYTHONPATH:-$utils/lib/python}
export XCSAVE_SAVE_HELPER=${XCSAVE_SAVE_HELPER:-$utils/bin/libxl-save-helper}
export XCSAVE_LIB=${XCSAVE_LIB:-$BUILD/lib-test/libxcsave.so.0}
export XENSIM_LIB=${XENSIM_LIB:-$BUILD/xensim/libxensim.so}

if [ $# -eq 0 ] || [ -z "${1:-}" ]; then
    set -- $(cd "$OUT" && ls test_* 2>/dev/null | sort)
fi
pass=0; fail=0; failed=""
for t in "$@"; do
    name=${t%%:*}; arg=""
    [ "$name" != "$t" ] && arg=${t#*:}
    if [ ! -x "$OUT/$name" ]; then
        echo "FAIL $t (not built: $OUT/$name)"; fail=$((fail+1)); failed="$failed $t"; continue
    fi
    dir=$(mktemp -d /dev/shm/xensim.XXXXXX)
    log="$LOGS/${t//:/_}.log"
    start=$(date +%s.%N)
    XENSIM_DIR=$dir timeout "${XCSAVE_TEST_TIMEOUT:-600}" "$OUT/$name" $arg >"$log" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    rm -rf "$dir"
    if [ $rc -eq 0 ]; then
        echo "PASS $t (${secs}s)"
        pass=$((pass+1))
    else
        echo "FAIL $t (exit $rc, log $log)"
        grep -E '^FAIL' "$log" | head -5 | sed 's/^/    /'
        tail -n 15 "$log" | sed 's/^/    | /'
        fail=$((fail+1)); failed="$failed $t"
    fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
