#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Fail when the committed include/xcsave.h differs from what cbindgen generates now
# (build.rs writes the fresh copy to target/xcsave.h.generated), then compile a translation unit
# that includes Xen's <xenguest.h> and <xcsave.h> together, with static asserts on shared layouts.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh=target/xcsave.h.generated
if [ ! -f "$fresh" ]; then
    echo "check-header: $fresh missing (cargo build should have written it)" >&2
    exit 1
fi
if ! diff -u include/xcsave.h "$fresh"; then
    echo "check-header: include/xcsave.h is stale: copy $fresh over it and commit" >&2
    exit 1
fi
mkdir -p build/tests
gcc -Wall -Wextra -Werror -std=gnu11 -D__XEN_TOOLS__ -Iinclude -c c-tests/header_compat.c \
    -o build/tests/header_compat.o
echo "check-header: include/xcsave.h is fresh and compiles beside xenguest.h"
