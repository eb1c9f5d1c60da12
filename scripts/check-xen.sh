#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# make check-xen [XEN=4.20]: prove xcsave on a real hypervisor. Boots Debian's own Xen (4.17 from
# Debian 12, the default, or 4.20 from Debian 13) with a dom0 of the same release under QEMU (TCG:
# EMULATED, no hardware virtualisation), and drives the unmodified xl toolstack with
# LD_PRELOAD=libxcsave.so.0 (the build for that Xen), so that both the sending and the
# receiving libxl-save-helper bind to xcsave: xl save/restore, live xl migrate and xl remus with
# failover, for a PVH guest (and xl save of a PV guest), stock and xcsave side by side.
# See docs/real-xen.md. Not part of `make check`.
#
# Environment:
#   XCSAVE_XEN_VERSION       4.17 (default) or 4.20 (`make check-xen XEN=4.20` sets it)
#   XCSAVE_XEN_CACHE         cache directory (default build/xen-cache, or build/xen-cache-4.20),
#                            reused across runs
#   XCSAVE_XEN_STOCK_ONLY=1  run the stock scenarios only (no library needed)
#   XCSAVE_XEN_MODES=xcsave  the modes to run, in order (default "stock xcsave")
#   XCSAVE_XEN_OPS=remus     the PVH operations to run (default "save_restore migrate remus")
#   XCSAVE_XEN_TRIES         boots to try before giving up (default 4)
#   XCSAVE_XEN_REMUS_CKPTS   Remus checkpoints to replicate before failover (default 10)
#   XCSAVE_XEN_DIRTY_MB      MiB the guest rewrites every 0.5 s (default 4)
#   XCSAVE_XEN_REMUS_INTERVAL  Remus checkpoint interval in ms (default 200)
#   XCSAVE_XEN_PV=0          skip the PV guest
#   XCSAVE_XEN_RESTORE=off   xcsave mode preloads with XCSAVE_RESTORE=off: xcsave's saver, stock's
#                            restore (the receiving helpers must log the hand-over instead)
#   XCSAVE_XEN_DEBUG=1       copy dom0's xl logs and verify-stream-v2 output to the serial log
#   XCSAVE_DEBIAN_MIRROR     Debian mirror for debootstrap
#   XCSAVE_XEN_LIB           the libxcsave.so.0 to preload (default build/lib/libxcsave.so.0, or
#                            build/xen-4.20/lib/libxcsave.so.0: the 4.20 build, made in build/trixie)
#   XCSAVE_XEN_SOAK=N        instead of the scenarios, an A/B soak: N rounds of one live xl
#                            migrate per mode, tallied per mode (ok/reboot/stall...; scripts/xen/soak.sh)
#   XCSAVE_XEN_SOAK_MODES    the soak's modes (default: stock xcsave xcsave-nocache xcsave-nofit
#                            xcsave-disabled; also xcsave-remus, stock-remus, ...)
#   XCSAVE_XEN_SOAK_MINUTES  start no soak round after this many minutes (default: no limit)
#   XCSAVE_XEN_SOAK_REMUS_CKPTS  checkpoints before failover in the *-remus soak modes (5)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
XEN=${XCSAVE_XEN_VERSION:-4.17}
case $XEN in
    4.17) CACHE=${XCSAVE_XEN_CACHE:-$ROOT/build/xen-cache}; LIB=${XCSAVE_XEN_LIB:-$ROOT/build/lib/libxcsave.so.0} ;;
    4.20) CACHE=${XCSAVE_XEN_CACHE:-$ROOT/build/xen-cache-4.20}; LIB=${XCSAVE_XEN_LIB:-$ROOT/build/xen-4.20/lib/libxcsave.so.0} ;;
    *) echo "check-xen: no Debian release ships Xen $XEN (4.17 or 4.20)" >&2; exit 2 ;;
esac
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
STOCK_ONLY=${XCSAVE_XEN_STOCK_ONLY:-0}
SOAK=${XCSAVE_XEN_SOAK:-0}
SOAK_MODES=${XCSAVE_XEN_SOAK_MODES:-stock xcsave xcsave-nocache xcsave-nofit xcsave-disabled}
[ "$STOCK_ONLY" = 1 ] && SOAK_MODES=${XCSAVE_XEN_SOAK_MODES:-stock}
SOAK_MINUTES=${XCSAVE_XEN_SOAK_MINUTES:-0}
TRIES=${XCSAVE_XEN_TRIES:-4}
INIT_TIMEOUT=${XCSAVE_XEN_INIT_TIMEOUT:-120}   # QEMU start to dom0 /init; ~1 boot in 10 hangs early
RUN_TIMEOUT=${XCSAVE_XEN_RUN_TIMEOUT:-3000}   # hang guard; a run takes 7-20 min, 40+ at host load 15
if [ "$SOAK" -gt 0 ] && [ -z "${XCSAVE_XEN_RUN_TIMEOUT:-}" ]; then
    # A soak operation takes 20-120 s (a reboot costs libxl's 60 s suspend timeout, plus a new guest).
    if [ "$SOAK_MINUTES" -gt 0 ]; then
        RUN_TIMEOUT=$(( 60 * SOAK_MINUTES + 900 ))
    else
        RUN_TIMEOUT=$(( 600 + 200 * SOAK * $(echo $SOAK_MODES | wc -w) ))
    fi
fi
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log() { echo "check-xen: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }
case "$CACHE" in *,*) die "the cache path may not contain a comma (QEMU -initrd splits at commas)";; esac

# 1. The library (built by `make check-xen`'s `lib` prerequisite; built here if run directly).
if [ "$STOCK_ONLY" = 1 ]; then
    MODES="stock"
    log "XCSAVE_XEN_STOCK_ONLY=1: stock scenarios only, no preload"
else
    MODES=${XCSAVE_XEN_MODES:-stock xcsave}
    if [ ! -e "$LIB" ] && [ -n "${XCSAVE_XEN_LIB:-}" ]; then
        die "XCSAVE_XEN_LIB=$LIB does not exist"
    elif [ ! -e "$LIB" ] && [ "$XEN" = 4.17 ]; then
        log "$LIB missing: running make lib"
        make -C "$ROOT" lib >&2 || die "the library does not build (make lib failed): nothing to test"
    elif [ ! -e "$LIB" ]; then
        log "$LIB missing: building it in the Debian 13 root (make root-trixie, then make XEN=$XEN lib there)"
        { make -C "$ROOT" root-trixie && bash "$ROOT/scripts/in-root.sh" "$ROOT/build/trixie" make XEN="$XEN" lib; } >&2 ||
            die "the $XEN library does not build: nothing to test"
    fi
    [ -e "$LIB" ] || die "$LIB still missing after make lib"
fi

LIB_ID=none
[ "$STOCK_ONLY" = 1 ] || LIB_ID="$(readlink -f "$LIB") (sha256 $(sha256sum < "$LIB" | cut -c1-12))"
log "library: $LIB_ID"

# The library must be the build for this Xen: its xc_domain_save/xc_domain_restore carry that
# release's version node, or the helper silently binds the stock functions instead.
if [ "$STOCK_ONLY" != 1 ]; then
    case $XEN in 4.17) node=VERS_4.17.0 ;; *) node=libxenguest_$XEN.0 ;; esac
    objdump -T "$LIB" | grep -q "$node.*xc_domain_save" ||
        die "$LIB does not export xc_domain_save@@$node: not a build for Xen $XEN"
fi

# 2. Cached images (debootstrap dom0, kernel, hypervisor, domU).
bash "$ROOT/scripts/xen/build-images.sh" "$CACHE" "$XEN" || die "building the images failed"
T_BUILD=$(( $(date +%s) - T0 ))

# 3. The per-run cpio: /init, scenarios, the library. Appended to the cached dom0 cpio (later
#    entries win), so a new libxcsave.so.0 never rebuilds the rootfs.
R="$CACHE/run"
rm -rf "$R"; mkdir -p "$R/xt"
install -m 0755 "$ROOT/scripts/xen/dom0-init" "$R/init"
install -m 0755 "$ROOT/scripts/xen/scenarios.sh" "$ROOT/scripts/xen/fakessh" "$R/xt/"
install -m 0644 "$ROOT/scripts/xen/soak.sh" "$R/xt/"
install -m 0755 "$ROOT/scripts/xen/stream-tap" "$ROOT/scripts/xen/verify-checkpointed" "$R/xt/"
install -m 0644 "$ROOT/scripts/xen/guest.cfg" "$R/xt/"
D="$CACHE/domu"                     # the domU's initramfs: static busybox + domu-init
rm -rf "$D"; mkdir -p "$D"/{bin,dev,proc,sys,tmp}
cp "$CACHE/pkg/bin/busybox" "$D/bin/busybox"; ln -s busybox "$D/bin/sh"
install -m 0755 "$ROOT/scripts/xen/domu-init" "$D/init"
(cd "$D" && find . | cpio -o -H newc --quiet) | gzip -1 > "$R/xt/domu.cpio.gz"
[ "$STOCK_ONLY" = 1 ] || install -m 0755 "$(readlink -f "$LIB")" "$R/xt/libxcsave.so.0"
cat > "$R/xt/config" <<EOF
XEN=$XEN
MODES="$MODES"
REMUS_CKPTS=${XCSAVE_XEN_REMUS_CKPTS:-10}
DIRTY_MB=${XCSAVE_XEN_DIRTY_MB:-4}
REMUS_INTERVAL=${XCSAVE_XEN_REMUS_INTERVAL:-200}
PV=${XCSAVE_XEN_PV:-1}
RESTORE=${XCSAVE_XEN_RESTORE:-on}
OPS="${XCSAVE_XEN_OPS:-save_restore migrate remus}"
DEBUG=${XCSAVE_XEN_DEBUG:-0}
SOAK=$SOAK
SOAK_MODES="$SOAK_MODES"
SOAK_MINUTES=$SOAK_MINUTES
SOAK_REMUS_CKPTS=${XCSAVE_XEN_SOAK_REMUS_CKPTS:-5}
EOF
(cd "$R" && find . | cpio -o -H newc --quiet) > "$CACHE/run.cpio"
cat "$CACHE/dom0.cpio" "$CACHE/run.cpio" > "$CACHE/boot.cpio"

# 4. Boot under QEMU TCG with a watchdog, retrying boots that hang before /init.
QPID=""
cleanup() { [ -n "$QPID" ] && kill "$QPID" 2>/dev/null; true; }
trap cleanup EXIT
XEN_ARGS="console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M"
DOM0_ARGS="console=hvc0 loglevel=5"   # no commas: QEMU splits -initrd at commas
boot() { # serial-log
    qemu-system-x86_64 -accel tcg -cpu qemu64,+svm,+npt -smp 2 -m 3072 \
        -display none -monitor none -nic none -no-reboot \
        -serial "file:$1" \
        -kernel "$CACHE/xen.elf" -append "$XEN_ARGS" \
        -initrd "$CACHE/vmlinuz $DOM0_ARGS,$CACHE/boot.cpio" &
    QPID=$!
}
alive() { kill -0 "$QPID" 2>/dev/null; }
stop() { kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; QPID=""; }
shown=0
show_new() { # print the new XCSAVE-RESULT/INFO lines of the serial log
    local n
    n=$(wc -l < "$1")
    if [ "$n" -gt "$shown" ]; then
        sed -n "$((shown + 1)),${n}p" "$1" | tr -d '\r' | grep -E '^XCSAVE-(RESULT|INFO|LOG)' >&2 || true
        shown=$n
    fi
}
ok=0
for try in $(seq "$TRIES"); do
    SER="$CACHE/serial-$try.log"
    rm -f "$SER"; : > "$SER"
    ln -sf "serial-$try.log" "$CACHE/serial.log"
    log "boot $try/$TRIES: Xen $XEN under QEMU TCG (serial log: $SER)"
    tb=$(date +%s)
    boot "$SER"
    reached=0
    while alive && [ $(( $(date +%s) - tb )) -lt $INIT_TIMEOUT ]; do
        grep -q XCSAVE-DOM0-INIT "$SER" && { reached=1; break; }
        sleep 1
    done
    if [ $reached = 0 ]; then
        log "boot $try: dom0 did not reach /init within ${INIT_TIMEOUT}s; killing QEMU and retrying"
        tail -3 "$SER" | tr -d '\r' | sed 's/^/    /' >&2
        stop; continue
    fi
    T_INIT=$(( $(date +%s) - tb ))
    log "boot $try: dom0 /init after ${T_INIT}s; running the scenarios"
    shown=0
    while alive && [ $(( $(date +%s) - tb )) -lt $RUN_TIMEOUT ]; do
        show_new "$SER"
        grep -q '^XCSAVE-DONE' "$SER" && break
        sleep 2
    done
    show_new "$SER"
    if grep -q '^XCSAVE-DONE' "$SER"; then
        for i in $(seq 20); do alive || break; sleep 1; done
        ok=1
    elif ! alive; then
        # e.g. the host's OOM killer: worth another boot.
        log "boot $try: QEMU died before the scenarios finished; booting again"
        tail -5 "$SER" | tr -d '\r' | sed 's/^/    /' >&2
        stop; continue
    else
        log "boot $try: no XCSAVE-DONE within ${RUN_TIMEOUT}s of boot"
        tail -15 "$SER" | tr -d '\r' | sed 's/^/    /' >&2
    fi
    stop
    break
done
if [ $ok = 0 ]; then
    # A soak that hangs part-way still has per-operation results worth tallying.
    if [ "$SOAK" -gt 0 ] && grep -q '^XCSAVE-RESULT .* soak/' "$SER"; then
        log "FAIL: the soak did not complete; tallying what it did (see $CACHE/serial.log)"
    else
        die "no complete run (see $CACHE/serial.log)"
    fi
fi

# 5. Summary.
SUMMARY="$CACHE/results.txt"
{
    echo "# check-xen Xen $XEN$([ "$SOAK" -gt 0 ] && echo " soak ($SOAK rounds)") $(date -u +%Y-%m-%dT%H:%M:%SZ) EMULATED (QEMU TCG, 2 vCPUs), boot try $try;" \
         "host load average $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end ($(nproc) CPUs);" \
         "library $LIB_ID"
    tr -d '\r' < "$SER" | grep '^XCSAVE-RESULT' | sed 's/^XCSAVE-RESULT //' |
        awk '{ st = $1; name = $2; secs = $3; $1 = $2 = $3 = ""; sub(/^ +/, "");
               printf "%-4s %-28s %7ss  %s\n", st, name, secs, $0 }'
} > "$SUMMARY"
# Stock versus xcsave, side by side (EMULATED: TCG timings, disturbed by the host's other load).
fig() { # label result-name [sed expression extracting a number from the detail]
    local st xc
    if [ -z "${3:-}" ]; then
        st=$(awk -v n="stock/$2" '$2 == n { sub(/s$/, "", $3); print $3 }' "$SUMMARY")
        xc=$(awk -v n="xcsave/$2" '$2 == n { sub(/s$/, "", $3); print $3 }' "$SUMMARY")
    else
        # A mode or operation left out (XCSAVE_XEN_MODES/OPS) has no line: "-", not a failure.
        st=$(grep " stock/$2 " "$SUMMARY" | sed -n "$3" | head -1 || true)
        xc=$(grep " xcsave/$2 " "$SUMMARY" | sed -n "$3" | head -1 || true)
    fi
    printf '  %-44s %10s %10s\n' "$1" "${st:--}" "${xc:--}"
}
soak_tally() { # per mode, from the per-operation lines "soak/r<N>-<mode> ... <outcome>: ..."
    echo "# soak tally per mode (EMULATED, QEMU TCG), library: $LIB_ID"
    awk '$2 ~ /^soak\/r[0-9]+-/ {
            m = substr($2, index($2, "-") + 1)
            if (m ~ /-late$/) { sub(/-late$/, "", m); late[m]++; next }
            o = $4; sub(/:$/, "", o); n[m]++; c[m, o]++; if (!(m in seen)) { seen[m] = 1; order[++k] = m } }
         END { for (i = 1; i <= k; i++) { m = order[i]
                 printf "  %-18s ops %2d  ok %2d  reboot %2d  crash %d  stall %2d  fail %d  late %d\n", m, n[m],
                        c[m, "ok"], c[m, "reboot"], c[m, "crash"], c[m, "stall"], c[m, "fail"], late[m] } }' "$SUMMARY"
}
if [ "$SOAK" -gt 0 ]; then
    soak_tally >> "$SUMMARY"
else {
    echo "# figures (EMULATED, QEMU TCG)                  stock     xcsave"
    fig "xl save, PVH 128 MiB (s)" pvh-save
    fig "xl restore of that image (s)" pvh-restore
    fig "xl migrate, live, localhost (s)" migrate
    fig "Remus first round, full copy (s)" remus-checkpoints 's/.*first round \([0-9.]*\) s.*/\1/p'
    fig "Remus checkpoint send, mean (ms)" remus-checkpoints 's/.*send mean \([0-9.]*\) ms.*/\1/p'
    fig "Remus checkpoint send, max (ms)" remus-checkpoints 's/.*max \([0-9.]*\) ms.*/\1/p'
    fig "Remus pages per checkpoint" remus-checkpoints 's/.*ms, \([0-9]*\) pages each.*/\1/p'
    fig "Remus checkpoint period at -i ${XCSAVE_XEN_REMUS_INTERVAL:-200} (ms)" remus-checkpoints 's/.*period \([0-9]*\) ms.*/\1/p'
    fig "Remus failover to backup counting (s)" remus-failover
    fig "xl save, PV 128 MiB, xcsave hands over (s)" pv-save
} >> "$SUMMARY"
fi
npass=$(grep -c '^PASS' "$SUMMARY" || true)
nfail=$(grep -c '^FAIL' "$SUMMARY" || true)
echo
cat "$SUMMARY"
echo "check-xen: $npass passed, $nfail failed; images ${T_BUILD}s, dom0 /init ${T_INIT}s, total $(( $(date +%s) - T0 ))s (summary: $SUMMARY)"
[ "$ok" = 1 ] && [ "$nfail" = 0 ] && [ "$npass" -gt 0 ]
