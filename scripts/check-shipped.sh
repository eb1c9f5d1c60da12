#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# The shipped library carries no test hook: no XCSAVE_TEST_ string (the variables the fault
# injection of src/faults.rs reads) and no symbol of its armed code. As a control, the C suite's
# fault-injection build must carry both, so that this check is known to be able to fail.
# Usage: check-shipped.sh <shipped libxcsave.so> <test libxcsave.so>
set -euo pipefail
shipped=$1
test_lib=$2
hooks() { # prints how many hook strings and hook symbols $1 has
    local s n
    s=$(strings -a "$1" | grep -c 'XCSAVE_TEST_' || true)
    n=$(nm -a "$1" 2>/dev/null | grep -c 'faults5armed' || true)
    echo "$s $n"
}
read -r s n < <(hooks "$shipped")
if [ "$s" -ne 0 ] || [ "$n" -ne 0 ]; then
    echo "check-shipped: FAIL: $shipped has $s XCSAVE_TEST_ strings and $n fault symbols:" >&2
    strings -a "$shipped" | grep 'XCSAVE_TEST_' | head -5 >&2
    exit 1
fi
read -r ts tn < <(hooks "$test_lib")
if [ "$ts" -eq 0 ] || [ "$tn" -eq 0 ]; then
    echo "check-shipped: FAIL: control: the test build $test_lib has $ts strings, $tn symbols" >&2
    exit 1
fi
echo "check-shipped: PASS: $(basename "$(readlink -f "$shipped")") has no XCSAVE_TEST_ string" \
     "and no fault symbol (the test build has $ts and $tn)"
