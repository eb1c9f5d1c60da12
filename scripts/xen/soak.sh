# SPDX-License-Identifier: GPL-3.0-only
# check-xen's A/B soak (XCSAVE_XEN_SOAK=N), sourced by scenarios.sh in place of its scenario
# list. N rounds; in each round every mode of SOAK_MODES does one live operation (`xl migrate`
# to localhost, or `xl remus` and failover for the *-remus modes) on the same PVH guest, in an
# order that rotates from round to round, so that every mode sees the same (degrading) machine.
# After each operation the guest is classed as
#   ok      xl succeeded and the counter went on from where it was;
#   reboot  the guest shut down with reason reboot (a triple fault; on_reboot = "preserve"
#           keeps it, `xl list` shows ---sr-) or began counting again from 1;
#   crash   it shut down with reason crash;
#   stall   it is there but stopped counting;
#   fail    xl failed but the guest still counts, or the wrong saver ran (see soak_saver);
#   late    (counted against the previous operation) the guest passed the resume check but had
#           stopped counting by the start of the next operation.
# Each operation prints an XCSAVE-RESULT line (PASS only for ok), and the end a tally line per
# mode. A guest that is not counting is destroyed and created again before the next operation.
# Modes:
#   stock            xl as shipped
#   xcsave           LD_PRELOAD of libxcsave.so.0 with its defaults (the 128 MiB guest fits the
#                    256 MiB cache: every 1 MiB bucket is mapped whole in the first pass)
#   xcsave-nocache   XCSAVE_CACHE=off: xcsave's engine with stock's per-batch map pattern and no
#                    coherence hypercalls
#   xcsave-nofit     XCSAVE_CACHE_MB=64: the guest does not fit, so the first pass maps per batch
#   xcsave-disabled  XCSAVE_DISABLE=1: the library hands every call to the stock saver (control)
#   xcsave-remus / stock-remus  `xl remus` with SOAK_REMUS_CKPTS checkpoints, then failover
: "${SOAK_MODES:=stock xcsave xcsave-nocache xcsave-nofit xcsave-disabled}"
: "${SOAK_MINUTES:=0}" "${SOAK_REMUS_CKPTS:=5}"
# No KASLR in the soak's guests, so that the RIP of a triple fault in Xen's log (shown with the
# failure) can be looked up in dom0's /proc/kallsyms (the same kernel; see xen_log).
GUEST_ARGS=nokaslr

soak_setmode() {
    MODE=$1
    local env=()
    case "${MODE%-remus}" in
        stock) ;;
        xcsave) env=(XCSAVE_LOG=debug) ;;
        xcsave-nocache) env=(XCSAVE_LOG=debug XCSAVE_CACHE=off) ;;
        xcsave-nofit) env=(XCSAVE_LOG=debug XCSAVE_CACHE_MB=64) ;;
        xcsave-disabled) env=(XCSAVE_LOG=debug XCSAVE_DISABLE=1) ;;
        *) return 1 ;;
    esac
    if [ "${MODE#stock}" = "$MODE" ]; then
        XLC=(env LD_PRELOAD="$LIB" "${env[@]}" "$XL" -vvv)
    else
        XLC=("$XL" -vvv)
    fi
}

# Microseconds since the epoch, and seconds (2 decimals) since $1 (also in microseconds).
usec() { local t=${EPOCHREALTIME/[.,]/}; echo $((10#$t)); }
rel() { local d=$(( $(usec) - $1 )); printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000)); }
# Prefix each line with the seconds since $1 (usec). No fork per line: xl -vvv is verbose, and a
# slow stamper lags behind (its times would be late, and its file incomplete when read).
stamp_rel() {
    local l t
    while IFS= read -r l; do
        t=${EPOCHREALTIME/[.,]/}; t=$((10#$t - $1))
        printf '%4d.%02d %s\n' $((t / 1000000)) $((t % 1000000 / 10000)) "$l"
    done
}
# Wait until file $1 stops growing (the stamper has caught up), at most 30 s.
settle() {
    local a b i
    for i in $(seq 30); do
        a=$(stat -c %s "$1"); sleep 1; b=$(stat -c %s "$1")
        [ "$a" = "$b" ] && return 0
    done
}
# Every second: seconds since $2 (usec), counter, and each g1* domain's id, state and CPU time.
soak_watch() { # guest start-usec file
    ( while :; do
          printf '%7s counter=%s %s\n' "$(rel "$2")" "$(count "$1")" \
              "$("$XL" list 2>/dev/null | awk -v p="$1" 'index($1, p) == 1 { printf "%s:%s:%s:%ss ", $1, $2, $5, $6 }')"
          sleep 1
      done ) > "$3" 2>&1 &
    WATCH=$!
}
# Which saver ran, from the xl log: stock, xcsave handing over, or xcsave with its cache
# counters. The operation FAILs if that is not what its mode asks for.
soak_saver() { # xl log -> sets SAVER
    local st
    st=$(grep -o 'mapping cache stats: .*' "$1" | tail -1 |
        sed 's/mapping cache stats: hits \([0-9]*\) misses \([0-9]*\) maps \([0-9]*\) .* peak mapped \([0-9]*\) KiB\(.*\)/hits \1 maps \3 peak \4 KiB\5/')
    if grep -q 'XCSAVE_DISABLE is set: handing over' "$1"; then SAVER="xcsave-disabled (stock saver)"
    elif [ -n "$st" ]; then SAVER="xcsave: $st"
    elif grep -q 'xcsave' "$1"; then SAVER="xcsave (no stats line)"
    else SAVER=stock
    fi
    case "${MODE%-remus}:$SAVER" in
        stock:stock|xcsave-disabled:xcsave-disabled*|xcsave-nocache:*"(caching off)"|xcsave:xcsave:*|xcsave-nofit:xcsave:*) ;;
        *) return 1 ;;
    esac
    case "${MODE%-remus}:$SAVER" in xcsave:*"(caching off)"|xcsave-nofit:*"(caching off)") return 1 ;; esac
}

dump_saver() { # xl log of an operation whose saver was not its mode's
    info "---- soak $MODE: saver \"$SAVER\" is not this mode's; xcsave's lines in $1 ($(wc -l < "$1") lines):"
    grep -i 'xcsave\|mapping cache' "$1" | grep -vi 'libxcsave\.so' | tail -n 12 | cut -c1-250 | sed 's/^/XCSAVE-LOG /'
}

# State letters of every domain named $1*: "r-----" etc., one per line.
states() { "$XL" list 2>/dev/null | awk -v p="$1" 'NR > 1 && index($1, p) == 1 { print $5 }'; }

# One live migration in the current mode; sets OUTCOME and DETAIL.
# What became of guest $1 after an operation that did not end well (its xl log $2): reboot
# (kept as "sr" by on_reboot=preserve, or a restarted counter, or libxl's "reason 1"), crash,
# fail (it still counts; only if $3 = 1) or stall. Sets OUTCOME, and STATES (xl list's states).
soak_outcome() {
    STATES=$(states "$1" | tr '\n' ' ')
    if [[ "$STATES" = *s[r]* ]] || [[ "$RES" = *restarted* ]] ||
        grep -q 'has not been suspended: shutdown 1, reason 1' "$2"; then
        OUTCOME=reboot
    elif [[ "$STATES" = *sc* ]]; then
        OUTCOME=crash
    elif [ "$3" = 1 ] && wait_count "$1" "$(count "$1")" 10 >/dev/null; then
        OUTCOME=fail
    else
        OUTCOME=stall
    fi
}

soak_migrate() { # guest round
    local g=$1 r=$2 t0 c0 c1 rc pid end lg wl tag="r$2-$MODE"
    lg="$W/soak-$tag.log"; wl="$W/soak-$tag.watch"
    c0=$(count "$g")
    t0=$(usec)
    soak_watch "$g" "$t0" "$wl"
    "${XLC[@]}" migrate -s /xt/fakessh "$g" localhost > >(stamp_rel "$t0" > "$lg") 2>&1 &
    pid=$!
    end=$(( $(date +%s) + 300 ))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"; rc=timeout
    fi
    wait "$pid"; rc=${rc:-$?}
    SECS=$(rel "$t0")
    settle "$lg"
    c1=$(count "$g")
    snap "$g"
    if [ "$rc" = 0 ] && resumed "$g" "$c1" 30 && "$XL" domid "$g" >/dev/null 2>&1; then
        OUTCOME=ok; DETAIL="$RES; $(soak_when "$wl" "$lg" | sed 's/.*, suspend/suspend/')"
        soak_saver "$lg" || { OUTCOME=fail; dump_saver "$lg"; }
        DETAIL+="; $SAVER"
    else
        kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null
        [ "$rc" = 0 ] || RES="xl migrate rc=$rc; counter $c0 at the start, $c1 at the end"
        soak_outcome "$g" "$lg" 1
        DETAIL="$RES; states: $STATES; $(soak_when "$wl" "$lg")"
        info "---- soak $tag: $OUTCOME; timeline (s since the start of xl migrate)"
        soak_timeline "$wl" "$lg" | sed 's/^/XCSAVE-LOG /'
    fi
    kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null
}

# When the counter last moved and when the suspend was requested, in s since the start.
soak_when() { # watch log
    local last sus
    last=$(awk '{ sub(/counter=/, "", $2) } $2 != prev { t = $1; prev = $2 } END { print t }' "$1")
    sus=$(grep -m1 -iE 'issuing .*suspend request|suspend request' "$2" | awk '{ print $1 }')
    echo "counter last moved at ${last:-?} s, suspend requested at ${sus:-never} s"
}
# The lines that place a failure in time: the watch log around the stop, and the xl log's
# phase lines (xcsave's passes, stock's iterations, the suspend, errors).
soak_timeline() { # watch log
    # Lines where the counter or a domain's state changed (CPU time left out of the comparison).
    awk '{ sub(/counter=/, "", $2); k = $2; for (i = 3; i <= NF; i++) { s = $i; sub(/:[0-9.]*s$/, "", s); k = k " " s } }
         k != prev { print "watch " $0; prev = k }' "$1" | tail -n 12
    grep -iE 'saving d|sent [0-9]+ dirty|iteration|suspend|has not been|error|stats|Migration|precopy|Domain now' "$2" |
        grep -v 'xencall:buffer' | cut -c1-220 | tail -n 25
    xen_log 40 | sed 's/^/xen /'
    soak_tsc | sed 's/^/xen /'
}
# Xen's TSC statistics (debug key s): whether the guests' RDTSC is emulated (vtsc count).
soak_tsc() {
    "$XL" debug-keys s 2>/dev/null && sleep 1
    "$XL" dmesg 2>/dev/null | grep -iE 'tsc|mode=' | tail -n 6
}

# Is the guest still counting? If not, charge it to the previous operation ("late").
soak_check_alive() { # guest
    local c
    "$XL" domid "$1" >/dev/null 2>&1 || return 1
    c=$(count "$1")
    wait_count "$1" $((c + 1)) 15 >/dev/null
}

soak_tally() { # mode -> "ops N ok N ..."
    local m=$1 k out="ops ${SOAK_N[$1]:-0}"
    for k in ok reboot crash stall fail late; do out+=" $k ${SOAK_C[$m.$k]:-0}"; done
    echo "$out"
}

soak() { # rounds
    local rounds=$1 modes=($SOAK_MODES) n r i m prev="" t_end=0 tag stop=0
    n=${#modes[@]}
    declare -gA SOAK_C=() SOAK_N=()
    [ "$SOAK_MINUTES" -gt 0 ] && t_end=$(( $(date +%s) + 60 * SOAK_MINUTES ))
    for m in "${modes[@]}"; do
        soak_setmode "$m" || { result FAIL "soak/$m" 0 "unknown soak mode $m"; return 1; }
    done
    info "soak: $rounds round(s), one live operation per mode, modes: ${modes[*]} (order rotates each round)"
    for r in $(seq "$rounds"); do
        if [ "$t_end" -gt 0 ] && [ "$(date +%s)" -ge "$t_end" ]; then
            info "soak: the ${SOAK_MINUTES}-minute budget is spent; stopping before round $r"; break
        fi
        for i in $(seq 0 $((n - 1))); do
            m=${modes[$(( (i + r - 1) % n ))]}
            soak_setmode "$m"
            if ! soak_check_alive g1; then
                if [ -n "$prev" ]; then
                    SOAK_C[$prev.late]=$(( ${SOAK_C[$prev.late]:-0} + 1 ))
                    result FAIL "soak/$prevtag-late" 0 "guest stopped counting (at $(count g1)) after an ok $prevtag; states: $(states g1 | tr '\n' ' ')"
                    diag g1
                fi
                destroy_all g1; sleep 1; rm -f "$CONS"/guest-g1*.log
                if ! create_guest g1 pvh && ! { destroy_all g1; sleep 1; rm -f "$CONS"/guest-g1*.log; create_guest g1 pvh; }; then
                    info "soak: no guest could be created twice in a row: the emulated machine is unwell; stopping"
                    stop=1; break
                fi
            fi
            info "===== soak round $r/$rounds: $([ "${MODE%-remus}" = "$MODE" ] && echo migrate || echo remus), $MODE (load $(cut -d' ' -f1 /proc/loadavg) in dom0) ====="
            tag="r$r-$MODE"
            "$XL" dmesg -c > /dev/null 2>&1   # from here on, Xen's log is this operation's
            if [ "${MODE%-remus}" != "$MODE" ]; then
                soak_remus g1 "$r"
            else
                soak_migrate g1 "$r"
            fi
            SOAK_N[$MODE]=$(( ${SOAK_N[$MODE]:-0} + 1 ))
            SOAK_C[$MODE.$OUTCOME]=$(( ${SOAK_C[$MODE.$OUTCOME]:-0} + 1 ))
            result "$([ "$OUTCOME" = ok ] && echo PASS || echo FAIL)" "soak/$tag" "$SECS" "$OUTCOME: $DETAIL"
            prev=""
            [ "$OUTCOME" = ok ] && { prev=$MODE; prevtag=$tag; }
            "$XL" domid g1 >/dev/null 2>&1 || "$XL" rename g1--incoming g1 2>/dev/null
            [ "$OUTCOME" = ok ] || { destroy_all g1; rm -f "$CONS"/guest-g1*.log; }
        done
        [ "$stop" = 1 ] && break
        info "soak after round $r: $(for m in "${modes[@]}"; do printf '%s [%s] ' "$m" "$(soak_tally "$m")"; done)"
    done
    if [ -n "$prev" ] && ! soak_check_alive g1; then
        SOAK_C[$prev.late]=$(( ${SOAK_C[$prev.late]:-0} + 1 ))
        result FAIL "soak/$prevtag-late" 0 "guest stopped counting after an ok $prevtag"
    fi
    info "soak: Xen's TSC statistics: $(soak_tsc | tr '\n' '|')"
    for m in "${modes[@]}"; do
        local t; t=$(soak_tally "$m")
        if [[ "$t" = "ops 0 "* ]] || [[ "$t" != *" reboot 0 crash 0 stall 0 fail 0 late 0" ]]; then
            result FAIL "soak-tally/$m" 0 "$t"
        else
            result PASS "soak-tally/$m" 0 "$t"
        fi
    done
    destroy_all g1
}

# A short Remus (SOAK_REMUS_CKPTS checkpoints) and failover; sets OUTCOME, DETAIL, SECS.
soak_remus() { # guest round
    local g=$1 t0 pid dom lg tap="$W/soak-r$2-$MODE" n=0 end c0 wl
    lg="$tap.log"; wl="$tap.watch"
    dom=$("$XL" domid "$g")
    t0=$(usec)
    : > "$tap.events"
    soak_watch "$g" "$t0" "$wl"
    XCSAVE_TAP="$tap" "${XLC[@]}" remus -F -n -d -i "$REMUS_INTERVAL" -s /xt/fakessh "$g" localhost \
        > >(stamp_rel "$t0" > "$lg") 2>&1 &
    pid=$!
    end=$(( $(date +%s) + 240 ))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
        n=$(grep -c ckpt-end "$tap.events")
        [ "$n" -ge "$SOAK_REMUS_CKPTS" ] && break
        sleep 0.5
    done
    SECS=$(rel "$t0")
    if kill -0 "$pid" 2>/dev/null && [ "$n" -ge 1 ]; then
        kill -9 "$pid"; wait "$pid" 2>/dev/null; settle "$lg"
        "$XL" destroy "$dom"
        c0=$(count "$g")
        snap "$g"
        if resumed "$g" "$c0" 40; then
            OUTCOME=ok; DETAIL="$n checkpoints, failover: $RES"
            soak_saver "$lg" || { OUTCOME=fail; dump_saver "$lg"; }
            DETAIL+="; $SAVER"
            kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null
            rm -f "$tap.stream"
            return
        fi
    else
        kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        RES="xl remus died or made only $n checkpoints"
    fi
    kill "$WATCH" 2>/dev/null; wait "$WATCH" 2>/dev/null
    soak_outcome "$g" "$lg" 0
    DETAIL="$RES; states: $STATES; $(soak_when "$wl" "$lg")"
    info "---- soak r$2-$MODE: $OUTCOME; timeline (s since the start of xl remus)"
    soak_timeline "$wl" "$lg" | sed 's/^/XCSAVE-LOG /'
    rm -f "$tap.stream"
}
