#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-only
# check-xen's test scenarios, run inside dom0 by /init. Each prints one line
#   XCSAVE-RESULT PASS|FAIL <name> <seconds> <detail>
# on the console, which check-xen.sh collects from the serial log. Modes:
#   stock   xl as shipped (libxenguest's own xc_domain_save): the baseline;
#   xcsave  the same commands with LD_PRELOAD=/xt/libxcsave.so.0 on xl, so that every
#           libxl-save-helper binds xc_domain_save to xcsave, and every receiving one (xl restore,
#           xl migrate-receive behind the fake ssh, the Remus backup) xc_domain_restore.
# Settings come from /xt/config (written by check-xen.sh).
set -u
. /xt/config
: "${MODES:=stock xcsave}" "${REMUS_CKPTS:=10}" "${REMUS_INTERVAL:=200}" "${PV:=1}" "${DIRTY_MB:=4}"
XL=/usr/sbin/xl
: "${XEN:=4.17}"
VERIFY=/usr/lib/xen-$XEN/bin/verify-stream-v2
export PYTHONPATH=/usr/lib/xen-$XEN/lib/python XEN_PYTHON=/usr/lib/xen-$XEN/lib/python
LIB=/xt/libxcsave.so.0
CONS=/var/log/xen/console
W=/tmp/xt; mkdir -p "$W"
NFAIL=0

now() { echo "$EPOCHREALTIME"; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
result() { # PASS|FAIL name seconds detail...
    local st=$1 name=$2 secs=$3; shift 3
    [ "$st" = PASS ] || NFAIL=$((NFAIL + 1))
    echo "XCSAVE-RESULT $st $name $secs $*"
}
info() { echo "XCSAVE-INFO $*"; }
# Show the end of a log on the console (after a failure).
dump() { info "---- last lines of $1"; tail -n "${2:-25}" "$1" | sed 's/^/XCSAVE-LOG /'; }
# xl, preloaded with xcsave in xcsave mode; -vvv so that libxc/xcsave debug reaches the log.
# XLC is set per mode; "${XLC[@]}" is a simple command, so $! of a background one is xl's pid
# (env and Debian's /usr/sbin/xl wrapper both exec).
xlm() { "${XLC[@]}" "$@"; }
# Prefix each line with a timestamp (bash's EPOCHREALTIME).
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
# Highest counter the guest(s) named $1* printed so far.
count() {
    cat "$CONS"/guest-"$1"*.log 2>/dev/null | tr -d '\r' |
        sed -n 's/.*XCNT \([0-9][0-9]*\).*/\1/p' | sort -n | tail -1 | grep . || echo 0
}
# Wait until the counter of $1 exceeds $2, at most $3 s. Prints the value reached.
wait_count() {
    local end=$(( $(date +%s) + $3 )) c
    while :; do
        c=$(count "$1")
        [ "$c" -gt "$2" ] && { echo "$c"; return 0; }
        [ "$(date +%s)" -ge "$end" ] && { echo "$c"; return 1; }
        sleep 0.5
    done
}
# Remember how far each console log of $1* goes, so that only later lines are read back.
snap() { local f; for f in "$CONS"/guest-"$1"*.log; do [ -f "$f" ] && echo "$f $(stat -c %s "$f")"; done > "$W/snap"; }
# Counter values printed since snap.
since_snap() {
    local f off
    for f in "$CONS"/guest-"$1"*.log; do
        [ -f "$f" ] || continue
        off=$(awk -v f="$f" '$1 == f { print $2 }' "$W/snap")
        tail -c +$(( ${off:-0} + 1 )) "$f"
    done | tr -d '\r' | sed -n 's/.*XCNT \([0-9][0-9]*\).*/\1/p'
}
# Did guest $1 resume from its saved state? Its counter must go past $2 + 2 within $3 s, and the
# lowest value printed since snap must be near $2 (a rebooted guest starts again at 1; a Remus
# backup resumes from its last checkpoint, a few counts back). Sets RES.
resumed() { # name value-at-switch timeout
    local c1 low
    if ! c1=$(wait_count "$1" $(( $2 + 2 )) "$3"); then
        RES="counter stuck at $c1 (was $2 at the switch)"; return 1
    fi
    low=$(since_snap "$1" | sort -n | head -1)
    if [ -z "$low" ] || [ "$low" -lt 2 ] || [ "$low" -lt $(( $2 - 20 )) ]; then
        RES="guest restarted: counter began again at ${low:-nothing} (was $2 at the switch)"; return 1
    fi
    RES="counter $2 at the switch, resumed at $low, on to $c1"
}
# Xen's log, with the kernel symbol of each RIP that it dumps (a triple fault dumps the vCPU's
# state). dom0 is a PV guest running the same kernel as the domU, at the same (non-randomised)
# addresses: a domU booted with nokaslr can be looked up in dom0's /proc/kallsyms.
xen_log() { # lines
    local l a
    "$XL" dmesg 2>/dev/null | grep -v '^$' | tail -n "$1" | while IFS= read -r l; do
        echo "$l"
        a=$(echo "$l" | sed -n 's/.*RIP: *[0-9a-f]*:\[<\([0-9a-f]*\)>\].*/\1/p')
        [ -n "$a" ] && echo "    RIP $a is $(ripsym "$a")"
    done
}
ripsym() { # hex address -> symbol+offset from dom0's kallsyms
    # 64-bit addresses do not fit awk's doubles: compare them as 16-digit strings.
    awk -v a="$(printf '%016s' "$1" | tr 'A-F ' 'a-f0')" '
        function hex(s,  i, n) { n = 0
            for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return n }
        $2 ~ /^[tTwW]$/ && length($1) == 16 && $1 <= a && $1 >= best { best = $1; name = $3 }
        END { if (name == "") print "?"; else printf "%s+0x%x\n", name, hex(substr(a, 9)) - hex(substr(best, 9)) }' /proc/kallsyms
}
# What a guest that stopped counting is doing: xl list twice (is its CPU time moving?), the end
# of its console.
diag() {
    "$XL" list | awk -v p="$1" 'NR == 1 || index($1, p) == 1' | sed 's/^/XCSAVE-LOG /'
    sleep 5
    "$XL" list | awk -v p="$1" 'index($1, p) == 1' | sed 's/^/XCSAVE-LOG /'
    local f
    for f in "$CONS"/guest-"$1"*.log; do
        [ -f "$f" ] || continue
        info "---- end of $f"
        tail -n 12 "$f" | tr -d '\r' | sed 's/^/XCSAVE-LOG /'
    done
    info "---- end of Xen's log (xl dmesg)"
    xen_log 30 | sed 's/^/XCSAVE-LOG /'
}
# Watch guest $1 during a live operation: every 2 s, the time, xl list's state and CPU time of
# each of its domains, and its counter, to $2. Shows whether a guest that stalls is paused,
# blocked or spinning. Stop with unwatch.
watch_guest() {
    ( while :; do
          printf '%s counter=%s %s\n' "$(date +%T)" "$(count "$1")" \
              "$("$XL" list 2>/dev/null | awk -v p="$1" 'index($1, p) == 1 { printf "%s:%s:%s:%ss ", $1, $2, $5, $6 }')"
          sleep 2
      done ) > "$2" 2>&1 &
    WATCH=$!
}
unwatch() { kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null; }
destroy_all() { # every domain whose name starts with $1
    local d
    for d in $("$XL" list | awk -v p="$1" 'NR > 1 && index($1, p) == 1 { print $1 }'); do
        "$XL" destroy "$d" 2>/dev/null
    done
}
# Lines of a log that mention xcsave, other than the preload's file name.
xclines() { grep -i xcsave "$1" | grep -vi 'libxcsave\.so'; }
# xcsave must (xcsave mode) or must not (stock mode) have logged through the toolstack log.
proof() { # name logfile [fallback]
    local n
    n=$(xclines "$2" | wc -l)
    if [ "$MODE" = xcsave ] && [ "${3:-}" = fallback ]; then
        if xclines "$2" | grep -q 'handing over to the stock'; then
            result PASS "$1" 0 "$(xclines "$2" | grep 'handing over to the stock' | head -1 | cut -c1-200)"
        else
            result FAIL "$1" 0 "no stock hand-over line from xcsave"; dump "$2" 15
        fi
    elif [ "$MODE" = xcsave ]; then
        if [ "$n" -gt 0 ]; then
            local stats
            # xcsave's cache statistics (maps, hits). Not libxencall's own buffer cache line
            # ("xencall:buffer: debug: cache hits:0 ..."), which stock runs print too.
            stats=$(grep -iE 'xcsave|mapping cache' "$2" | grep -v 'xencall:' | grep -iE 'hit|stat' | tail -1)
            xclines "$2" | head -3 | sed 's/^/XCSAVE-INFO   /' | cut -c1-300
            if [ -n "$stats" ]; then
                result PASS "$1" 0 "$n xcsave lines; stats: $(echo "$stats" | cut -c1-240)"
            else
                result FAIL "$1" 0 "$n xcsave lines but no cache statistics line"
            fi
        else
            result FAIL "$1" 0 "no line mentioning xcsave in $2 (stock saver ran?)"
            dump "$2" 15
        fi
    elif [ "$n" -gt 0 ]; then
        result FAIL "$1" 0 "stock run logged $n xcsave lines"
    fi
}
# The receiving helper (xl restore, xl migrate-receive, the Remus backup) must (xcsave mode) or
# must not (stock mode) have restored with xcsave: its info line "xcsave: restoring domN with
# xcsave (<stream type>)", or for a PV guest its hand-over to the stock xc_domain_restore. The
# sender's and the receiver's helpers log to the same file in migrate and Remus; these lines
# come from the receiver's only.
rproof() { # name logfile [fallback]
    local line
    if [ "$MODE" = xcsave ] && { [ "${3:-}" = fallback ] || [ "${RESTORE:-on}" = off ]; }; then
        line=$(xclines "$2" | grep 'handing over to the stock xc_domain_restore' | head -1)
        if [ -n "$line" ]; then
            result PASS "$1" 0 "$(echo "$line" | cut -c1-200)"
        else
            result FAIL "$1" 0 "no hand-over line from xcsave's restore"; dump "$2" 15
        fi
    elif [ "$MODE" = xcsave ]; then
        line=$(xclines "$2" | grep -E 'xcsave: restoring dom[0-9]+ with xcsave' | head -1)
        if [ -n "$line" ]; then
            result PASS "$1" 0 "$(echo "$line" | sed 's/^[0-9.]* //' | cut -c1-200)"
        else
            result FAIL "$1" 0 "no 'restoring domN with xcsave' line from the receiving helper in $2"
            xclines "$2" | grep -i restor | tail -3 | sed 's/^/XCSAVE-LOG /' | cut -c1-300
        fi
    elif xclines "$2" | grep -q 'restor'; then
        result FAIL "$1" 0 "stock run logged xcsave restore lines"
    fi
}
# verify-stream-v2 (Xen's own checker, from dom0's xen-utils-4.17) on an xl-format stream.
verify() { # name file
    local out rc t0 t1
    t0=$(now)
    out=$("$VERIFY" -v -f xl -i "$2" 2>&1); rc=$?
    t1=$(now)
    echo "$out" > "$2.verify"
    if [ $rc = 0 ]; then
        result PASS "$1" "$(dt "$t0" "$t1")" "verify-stream-v2 -f xl: stream of $(stat -c %s "$2") bytes, $(echo "$out" | grep -c 'Record:') records (page data squashed)"
    else
        result FAIL "$1" "$(dt "$t0" "$t1")" "verify-stream-v2 rc=$rc"
        dump "$2.verify" 15
    fi
}

create_guest() { # name type
    local t0 t1 c
    t0=$(now)
    if ! "$XL" create /xt/guest.cfg "name=\"$1\"" "type=\"$2\"" \
            "cmdline=\"console=hvc0 loglevel=4 xt_dirty=$DIRTY_MB${GUEST_ARGS:+ $GUEST_ARGS}\"" > "$W/create-$1.log" 2>&1; then
        result FAIL "$MODE/create-$2" "$(dt "$t0" "$(now)")" "xl create failed"
        dump "$W/create-$1.log"; return 1
    fi
    t1=$(now)
    # Debian 13's 6.12 kernel takes ~2 min to reach the guest's /init under TCG at load 9
    # (Debian 12's 6.1: under 90 s); the wait ends as soon as the guest counts.
    if c=$(wait_count "$1" 2 "${BOOT_WAIT:-240}"); then
        info "$MODE: $2 guest $1 created in $(dt "$t0" "$t1") s, counting ($c) after $(dt "$t0" "$(now)") s"
    else
        result FAIL "$MODE/create-$2" "$(dt "$t0" "$(now)")" "guest counter did not start"
        dump "$CONS/guest-$1.log"; return 1
    fi
}

save_restore() { # guest tag
    local g=$1 tag=$2 t0 t1 t2 c0 c1 img="$W/$MODE-$2.save"
    local sl="$W/$MODE-$tag-save.log" rl="$W/$MODE-$tag-restore.log"
    t0=$(now)
    if ! xlm save "$g" "$img" > "$sl" 2>&1; then
        result FAIL "$MODE/$tag-save" "$(dt "$t0" "$(now)")" "xl save failed"; dump "$sl"; return 1
    fi
    t1=$(now)
    c0=$(count "$g")
    snap "$g"
    if ! xlm restore "$img" > "$rl" 2>&1; then
        result FAIL "$MODE/$tag-restore" "$(dt "$t1" "$(now)")" "xl restore failed"; dump "$rl"; return 1
    fi
    t2=$(now)
    result PASS "$MODE/$tag-save" "$(dt "$t0" "$t1")" "image $(( $(stat -c %s "$img") / 1048576 )) MiB"
    if resumed "$g" "$c0" 30; then
        result PASS "$MODE/$tag-restore" "$(dt "$t1" "$t2")" "$RES"
    else
        result FAIL "$MODE/$tag-restore" "$(dt "$t1" "$t2")" "$RES"
        dump "$rl"; diag "$g"
    fi
    proof "$MODE/$tag-save-proof" "$sl" "$([ "$tag" = pv ] && echo fallback)"
    rproof "$MODE/$tag-restore-proof" "$rl" "$([ "$tag" = pv ] && echo fallback)"
    verify "$MODE/$tag-save-verify" "$img"
    rm -f "$img"
}

migrate() { # guest
    local g=$1 t0 t1 c0 lg="$W/$MODE-migrate.log" tap="$W/$MODE-migrate"
    t0=$(now)
    watch_guest "$g" "$W/$MODE-migrate.watch"
    if ! XCSAVE_TAP="$tap" xlm migrate -s /xt/fakessh "$g" localhost > "$lg" 2>&1; then
        unwatch
        result FAIL "$MODE/migrate" "$(dt "$t0" "$(now)")" "xl migrate failed"; dump "$lg"
        dump "$W/$MODE-migrate.watch" 40; diag "$g"; return 1
    fi
    unwatch
    t1=$(now)
    # The sender printed all through the live phase: read only what comes after it is gone.
    c0=$(count "$g")
    snap "$g"
    if resumed "$g" "$c0" 30 && "$XL" list "$g" >/dev/null 2>&1; then
        result PASS "$MODE/migrate" "$(dt "$t0" "$t1")" "live to localhost; $RES"
    else
        result FAIL "$MODE/migrate" "$(dt "$t0" "$t1")" "guest did not resume: $RES"
        dump "$lg"; diag "$g"
    fi
    proof "$MODE/migrate-proof" "$lg"
    rproof "$MODE/migrate-recv-proof" "$lg"
    verify "$MODE/migrate-verify" "$tap.stream"
    rm -f "$tap.stream"
}

# Checkpoint figures from stream-tap's events: first round (full copy), then per later
# checkpoint the send time (first libxc record of the round to its CHECKPOINT record), the
# period between CHECKPOINT_ENDs, and the pages sent.
ckpt_figures() { # events-file
    awk '
        $2 == "start" { t0 = $1 }
        $2 == "ckpt-begin" { b[$3] = $1 }
        $2 == "ckpt" { e[$3] = $1; p[$3] = $4; if ($3 > n) n = $3 }
        $2 == "ckpt-end" { ce[$3] = $1 }
        END {
            if (n < 1) { print "no checkpoint"; exit }
            printf "first round %.2f s (%d pages)", e[1] - t0, p[1]
            k = 0
            for (i = 2; i <= n; i++) if (i in b) {
                d = e[i] - b[i]; s += d; k++; pg += p[i]; if (d > mx) mx = d
                if ((i - 1) in ce && i in ce) { per += ce[i] - ce[i - 1]; np++ }
            }
            if (k > 0) printf "; %d later checkpoints: send mean %.1f ms max %.1f ms, %.0f pages each", k, 1000 * s / k, 1000 * mx, pg / k
            if (np > 0) printf ", period %.0f ms", 1000 * per / np
            print ""
        }' "$1"
}

remus() { # guest
    local g=$1 t0 t1 t2 c0 pid dom lg="$W/$MODE-remus.log" tap="$W/$MODE-remus" n=0 out end
    dom=$("$XL" domid "$g")
    t0=$(now)
    : > "$tap.events"
    XCSAVE_TAP="$tap" "${XLC[@]}" remus -F -n -d -i "$REMUS_INTERVAL" -s /xt/fakessh "$g" localhost \
        > >(stamp > "$lg") 2>&1 &
    pid=$!
    watch_guest "$g" "$W/$MODE-remus.watch"
    # 900 s for the checkpoints (300 until 2026-12-07: at host load 10, stock 4.20's first
    # round of a 1,044,480-pfn PVH p2m had not reached its first checkpoint after 308 s).
    end=$(( $(date +%s) + ${REMUS_WAIT:-900} ))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
        n=$(grep -c ckpt-end "$tap.events")
        [ "$n" -ge "$REMUS_CKPTS" ] && break
        sleep 0.5
    done
    if ! kill -0 "$pid" 2>/dev/null || [ "$n" -lt 2 ]; then
        unwatch
        result FAIL "$MODE/remus" "$(dt "$t0" "$(now)")" "xl remus died or made only $n checkpoints"
        dump "$lg"; dump "$tap.events" 5; dump "$W/$MODE-remus.watch" 50
        kill -9 "$pid" 2>/dev/null; destroy_all "$g"; return 1
    fi
    unwatch
    # Failover: the sending side dies, then the primary goes away.
    kill -9 "$pid"
    t1=$(now)
    "$XL" destroy "$dom"
    c0=$(count "$g")
    snap "$g"
    if resumed "$g" "$c0" 40; then
        t2=$(now)
        result PASS "$MODE/remus-failover" "$(dt "$t1" "$t2")" "backup resumed after $n checkpoints: $RES ($("$XL" list | awk 'NR > 1 && $2 != 0 { print $1 }' | tr '\n' ' '))"
    else
        result FAIL "$MODE/remus-failover" "$(dt "$t1" "$(now)")" "backup did not resume: $RES"
        dump "$lg"; diag "$g"
    fi
    sleep 1
    result PASS "$MODE/remus-checkpoints" "$(dt "$t0" "$t1")" "$n at -i $REMUS_INTERVAL: $(ckpt_figures "$tap.events")"
    proof "$MODE/remus-proof" "$lg"
    rproof "$MODE/remus-recv-proof" "$lg"
    t0=$(now)
    if out=$(/xt/verify-checkpointed "$tap.stream" 2>&1); then
        result PASS "$MODE/remus-verify" "$(dt "$t0" "$(now)")" "$out"
    else
        result FAIL "$MODE/remus-verify" "$(dt "$t0" "$(now)")" "$out"
    fi
    rm -f "$tap.stream"
}

setmode() {
    MODE=$1
    if [ "$MODE" = xcsave ] && [ "${RESTORE:-on}" = off ]; then
        # XCSAVE_XEN_RESTORE=off: xcsave's saver only; its restore hands over to stock's.
        XLC=(env LD_PRELOAD="$LIB" XCSAVE_LOG=debug XCSAVE_RESTORE=off "$XL" -vvv)
    elif [ "$MODE" = xcsave ]; then
        XLC=(env LD_PRELOAD="$LIB" XCSAVE_LOG=debug "$XL" -vvv)
    else
        XLC=("$XL" -vvv)
    fi
}
# Reuse the guest if it is alive and counting, else (re)create it. The stock scenarios and the
# xcsave ones run on the same guest in turn (a guest boots slowly under TCG).
ensure_guest() { # name type
    local c
    if "$XL" domid "$1" >/dev/null 2>&1; then
        c=$(count "$1")
        wait_count "$1" $((c + 1)) 15 >/dev/null && return 0
        result FAIL "${LAST:-$MODE}-alive" 0 "guest $1 stopped counting (at $(count "$1")) after ${LAST:-?}; recreating it"
        diag "$1"
    fi
    destroy_all "$1"; sleep 1; rm -f "$CONS/guest-$1"*.log
    create_guest "$1" "$2"
}

# Stock and xcsave run each operation back to back on the same guest, so that both see the same
# host load (the host's other work disturbs TCG timings).
scenarios() {
    if [[ " $MODES " = *" xcsave "* ]] && [ ! -f "$LIB" ]; then
        result FAIL xcsave/library 0 "$LIB missing"; MODES=stock
    fi
    for op in ${OPS:-save_restore migrate remus}; do
        for m in $MODES; do
            setmode "$m"
            info "===== PVH guest: $op, $MODE ====="
            ensure_guest g1 pvh || continue
            "$op" g1 pvh
            LAST="$MODE/$op"
            # After failover the backup may still carry the receiver's temporary name.
            "$XL" domid g1 >/dev/null 2>&1 || "$XL" rename g1--incoming g1 2>/dev/null
        done
    done
    # The guest must still be alive after the last operation too.
    c=$(count g1)
    if "$XL" domid g1 >/dev/null 2>&1 && wait_count g1 $((c + 1)) 15 >/dev/null; then
        result PASS "${LAST:-?}-alive" 0 "guest still counting after ${LAST:-?} ($(count g1))"
    else
        result FAIL "${LAST:-?}-alive" 0 "guest stopped counting after ${LAST:-?}"; diag g1
    fi
    destroy_all g1
    LAST=""
    if [ "$PV" = 1 ]; then
        for m in $MODES; do
            setmode "$m"
            info "===== PV guest, $MODE (xcsave hands PV over to the stock saver) ====="
            ensure_guest p1 pv || continue
            save_restore p1 pv
            LAST="$MODE/pv-save_restore"
        done
        destroy_all p1
    fi
}

# Xen logs a guest's triple fault ("Triple fault - invoking HVM shutdown action", then the
# vCPU's registers) at guest log level info, which it does not print by default. diag shows it.
"$XL" set-parameters guest_loglvl=info 2>/dev/null || info "xl set-parameters guest_loglvl=info failed"
if [ "${SOAK:-0}" -gt 0 ]; then
    # XCSAVE_XEN_SOAK=N: the A/B soak of live migrations instead of the scenarios above.
    . /xt/soak.sh
    if [[ " $SOAK_MODES " = *" xcsave"* ]] && [ ! -f "$LIB" ]; then
        result FAIL xcsave/library 0 "$LIB missing"
    else
        soak "$SOAK"
    fi
else
    scenarios
fi
if [ "${DEBUG:-0}" = 1 ]; then
    for f in "$CONS"/*.log; do
        echo "XCSAVE-DBG ==== $f"; tail -n 30 "$f" | tr -d '\r' | sed 's/^/XCSAVE-DBG /'
    done
    for f in "$W"/*.log "$W"/*.verify "$W"/*.watch; do
        [ -f "$f" ] || continue
        echo "XCSAVE-DBG ==== $f ($(wc -l < "$f") lines)"
        head -n 150 "$f" | cut -c1-400 | sed 's/^/XCSAVE-DBG /'
        echo "XCSAVE-DBG ...."
        tail -n 60 "$f" | cut -c1-400 | sed 's/^/XCSAVE-DBG /'
    done
fi
info "scenarios done, $NFAIL failure(s)"
[ "$NFAIL" = 0 ]
