#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-only
# check-xen's test scenarios, run inside dom0 by /init. Each prints one line
#   XCSAVE-RESULT PASS|FAIL <name> <seconds> <detail>
# on the console, which check-xen.sh collects from the serial log. Modes:
#   stock   xl as shipped (libxenguest's own xc_domain_save): the baseline;
#   xcsave  the same commands with LD_PRELOAD=/xt/libxcsave.so.0 on xl, so that every
#           libxl-save-helper binds xc_domain_save to xcsave.
# Settings come from /xt/config (written by check-xen.sh).
set -u
. /xt/config
: "${MODES:=stock xcsave}" "${REMUS_SECS:=12}" "${REMUS_INTERVAL:=200}" "${PV:=1}" "${COLO:=0}"
XL=/usr/sbin/xl
VERIFY=/usr/lib/xen-4.17/bin/verify-stream-v2
export PYTHONPATH=/usr/lib/xen-4.17/lib/python
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
destroy_all() { # every domain whose name starts with $1
    local d
    for d in $("$XL" list | awk -v p="$1" 'NR > 1 && index($1, p) == 1 { print $1 }'); do
        "$XL" destroy "$d" 2>/dev/null
    done
}
# Lines of a log that mention xcsave, other than the preload's file name.
xclines() { grep -i xcsave "$1" | grep -vi 'libxcsave\.so'; }
# xcsave must (xcsave mode) or must not (stock mode) have logged through the toolstack log.
proof() { # name logfile
    local n
    n=$(xclines "$2" | wc -l)
    if [ "$MODE" = xcsave ]; then
        if [ "$n" -gt 0 ]; then
            local stats
            stats=$(xclines "$2" | grep -iE 'hit|stat|map' | tail -1)
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
# verify-stream-v2 on a captured stream. Checkpointed streams cut by failover carry no END
# record: "truncated" is the right answer for those alone ($3 = checkpointed).
verify() { # name file [checkpointed]
    local out rc t0 t1 nck
    t0=$(now)
    out=$("$VERIFY" -v -f xl -i "$2" 2>&1); rc=$?
    t1=$(now)
    nck=$(echo "$out" | grep -c CHECKPOINT_END)
    echo "$out" > "$2.verify"
    if [ $rc = 0 ]; then
        result PASS "$1" "$(dt "$t0" "$t1")" "stream of $(stat -c %s "$2") bytes, $nck checkpoints"
    elif [ "${3:-}" = checkpointed ] && echo "$out" | grep -q "Stream truncated" && [ "$nck" -ge 2 ]; then
        result PASS "$1" "$(dt "$t0" "$t1")" "checkpointed stream of $(stat -c %s "$2") bytes, $nck checkpoints, truncated at failover (expected)"
    else
        result FAIL "$1" "$(dt "$t0" "$t1")" "verify-stream-v2 rc=$rc"
        dump "$2.verify" 15
    fi
}

create_guest() { # name type
    local t0 t1 c
    t0=$(now)
    if ! "$XL" create /xt/guest.cfg "name=\"$1\"" "type=\"$2\"" > "$W/create-$1.log" 2>&1; then
        result FAIL "$MODE/create-$2" "$(dt "$t0" "$(now)")" "xl create failed"
        dump "$W/create-$1.log"; return 1
    fi
    t1=$(now)
    if c=$(wait_count "$1" 2 90); then
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
    if ! xlm restore "$img" > "$rl" 2>&1; then
        result FAIL "$MODE/$tag-restore" "$(dt "$t1" "$(now)")" "xl restore failed"; dump "$rl"; return 1
    fi
    t2=$(now)
    if c1=$(wait_count "$g" $((c0 + 2)) 30); then
        result PASS "$MODE/$tag-save" "$(dt "$t0" "$t1")" "image $(( $(stat -c %s "$img") / 1048576 )) MiB"
        result PASS "$MODE/$tag-restore" "$(dt "$t1" "$t2")" "counter $c0 before save, continues to $c1 after restore"
    else
        result PASS "$MODE/$tag-save" "$(dt "$t0" "$t1")" "image $(( $(stat -c %s "$img") / 1048576 )) MiB"
        result FAIL "$MODE/$tag-restore" "$(dt "$t1" "$t2")" "counter stuck at $c1 (was $c0 at save)"
        dump "$rl"; dump "$CONS/guest-$g.log" 5
    fi
    proof "$MODE/$tag-save-proof" "$sl"
    verify "$MODE/$tag-save-verify" "$img"
    rm -f "$img"
}

migrate() { # guest
    local g=$1 t0 t1 c0 c1 lg="$W/$MODE-migrate.log" st="$W/$MODE-migrate.stream"
    t0=$(now)
    if ! XCSAVE_TEE="$st" xlm migrate -s /xt/fakessh "$g" localhost > "$lg" 2>&1; then
        result FAIL "$MODE/migrate" "$(dt "$t0" "$(now)")" "xl migrate failed"; dump "$lg"; return 1
    fi
    t1=$(now)
    c0=$(count "$g")
    if c1=$(wait_count "$g" $((c0 + 2)) 30) && "$XL" list "$g" >/dev/null 2>&1; then
        result PASS "$MODE/migrate" "$(dt "$t0" "$t1")" "live to localhost; counter $c0 -> $c1 on the receiver"
    else
        result FAIL "$MODE/migrate" "$(dt "$t0" "$t1")" "guest did not resume (counter $c0 -> $c1)"
        dump "$lg"; "$XL" list | sed 's/^/XCSAVE-LOG /'
    fi
    proof "$MODE/migrate-proof" "$lg"
    verify "$MODE/migrate-verify" "$st"
    rm -f "$st"
}

remus() { # guest
    local g=$1 t0 t1 t2 c0 c1 pid dom lg="$W/$MODE-remus.log" st="$W/$MODE-remus.stream" nck
    dom=$("$XL" domid "$g")
    t0=$(now)
    XCSAVE_TEE="$st" "${XLC[@]}" remus -F -n -d -i "$REMUS_INTERVAL" -s /xt/fakessh "$g" localhost \
        > >(stamp > "$lg") 2>&1 &
    pid=$!
    sleep "$REMUS_SECS"
    if ! kill -0 "$pid" 2>/dev/null; then
        result FAIL "$MODE/remus" "$(dt "$t0" "$(now)")" "xl remus exited early"; dump "$lg"
        destroy_all "$g"; return 1
    fi
    c0=$(count "$g")
    # Failover: the sending side dies, then the primary goes away.
    kill -9 "$pid"
    t1=$(now)
    "$XL" destroy "$dom"
    if c1=$(wait_count "$g" $((c0 + 2)) 40); then
        t2=$(now)
        result PASS "$MODE/remus-failover" "$(dt "$t1" "$t2")" "backup resumed: counter $c0 at failover -> $c1 ($("$XL" list | awk 'NR > 1 && $2 != 0 { print $1 }' | tr '\n' ' '))"
    else
        result FAIL "$MODE/remus-failover" "$(dt "$t1" "$(now)")" "backup did not resume (counter $c0 -> $c1)"
        dump "$lg"; "$XL" list | sed 's/^/XCSAVE-LOG /'
    fi
    sleep 1
    proof "$MODE/remus-proof" "$lg"
    verify "$MODE/remus-verify" "$st" checkpointed
    nck=$(grep -c CHECKPOINT_END "$st.verify")
    info "$MODE/remus: $nck checkpoints in $(dt "$t0" "$t1") s at interval ${REMUS_INTERVAL} ms"
    result PASS "$MODE/remus-checkpoints" "$(dt "$t0" "$t1")" "$nck checkpoints; mean period $(awk -v n="$nck" -v a="$t0" -v b="$t1" 'BEGIN { if (n > 0) printf "%.3f", (b - a) / n; else print "n/a" }') s at -i $REMUS_INTERVAL"
    [ "$nck" -ge 2 ] || result FAIL "$MODE/remus-checkpoints" 0 "fewer than 2 checkpoints"
    rm -f "$st"
}

for MODE in $MODES; do
    if [ "$MODE" = xcsave ] && [ ! -f "$LIB" ]; then
        result FAIL xcsave/library 0 "$LIB missing"; continue
    fi
    info "===== mode $MODE ====="
    if [ "$MODE" = xcsave ]; then
        XLC=(env LD_PRELOAD="$LIB" XCSAVE_LOG=debug "$XL" -vvv)
    else
        XLC=("$XL" -vvv)
    fi
    g=g$MODE
    create_guest "$g" pvh || { destroy_all "$g"; continue; }
    save_restore "$g" pvh && migrate "$g" && remus "$g"
    destroy_all "$g"
    if [ "$PV" = 1 ]; then
        g=pv$MODE
        create_guest "$g" pv && save_restore "$g" pv
        destroy_all "$g"
    fi
done
if [ "${DEBUG:-0}" = 1 ]; then
    for f in "$W"/*.log "$W"/*.verify; do
        [ -f "$f" ] || continue
        echo "XCSAVE-DBG ==== $f ($(wc -l < "$f") lines)"
        head -n 150 "$f" | cut -c1-400 | sed 's/^/XCSAVE-DBG /'
        echo "XCSAVE-DBG ...."
        tail -n 60 "$f" | cut -c1-400 | sed 's/^/XCSAVE-DBG /'
    done
fi
info "scenarios done, $NFAIL failure(s)"
[ "$NFAIL" = 0 ]
