#!/bin/bash
# kill_stress.sh - the target is never harmed, whatever happens to pyflame.
#
# Busy threaded targets (tests/targets/robust_busy.py, which check their own
# results) run under up to three interpreters (2.7, the newest shared 3.x and
# Debian's static python3.11, when present).  Against them:
#   1. KILL_RUNS (200) runs of pyflame killed with SIGKILL after a random
#      0-300 ms (during attach, mid-sample or mid-write: the runs mix -s
#      0.05 .. 5, --threads, -r 0.001, --nonblocking and every -o format);
#   2. SIG_RUNS (100) runs ended by SIGINT, then SIG_RUNS by SIGTERM, after a
#      random 0-300 ms once pyflame's handlers are installed.
# After every run: no task of the target is stopped (State t/T) or traced
# (TracerPid != 0).  After SIGKILL, the -o path is absent or a complete
# profile (never a partial one); after SIGINT/SIGTERM pyflame exits 0 within
# 10 s, prints nothing on stderr, and the -o file exists and parses.  At the
# end every target finishes its computation with the right checksum, no
# mismatches and no EINTR seen by a blocking call.
#
# Env: PYFLAME (default ./pyflame), SEED (random seed, printed), KILL_RUNS,
# SIG_RUNS, PYENV_ROOT.  Prints what it did; exits 1 on any failure.
set -u
cd "$(dirname "$0")/../.."
PYFLAME=${PYFLAME:-$PWD/pyflame}
KILL_RUNS=${KILL_RUNS:-200}
SIG_RUNS=${SIG_RUNS:-100}
SEED=${SEED:-$$}
RANDOM=$SEED
TARGET=$PWD/tests/targets/robust_busy.py
CHECKSUM=2831118184
# A real interpreter, not a pyenv shim (a shim costs 200 ms per call).
VALIDATOR=${VALIDATOR_PYTHON:-/usr/bin/python3}
[ -x "$VALIDATOR" ] || VALIDATOR=$(command -v python3)
start_time=$(date +%s)

[ -x "$PYFLAME" ] || { echo "kill_stress: FAIL: PYFLAME=$PYFLAME is not executable"; exit 1; }
echo "kill_stress: pyflame $PYFLAME, seed $SEED, $KILL_RUNS SIGKILL runs, $SIG_RUNS SIGINT + $SIG_RUNS SIGTERM runs"

tmp=$(mktemp -d /tmp/ks.XXXXXXXX)
declare -a TPIDS=() TLABELS=() FAILS=()
cleanup() {
    for p in "${TPIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() { FAILS+=("$*"); echo "FAIL: $*"; }

# ---- interpreters ---------------------------------------------------------------
root=${PYENV_ROOT:-$HOME/.pyenv}
pick() {   # newest pyenv version matching a prefix
    ls -d "$root"/versions/$1* 2>/dev/null | sort -V | tail -n 1
}
declare -a PYS=()
d=$(pick 2.7); if [ -n "$d" ] && [ -x "$d/bin/python2.7" ]; then PYS+=("$d/bin/python2.7"); else echo "SKIP python 2.7: not installed in $root/versions"; fi
d=$(ls -d "$root"/versions/3.* 2>/dev/null | sort -V | tail -n 1)
if [ -n "$d" ]; then v=$(basename "$d"); PYS+=("$d/bin/python${v%.*}"); else echo "SKIP newest python 3 (pyenv): none in $root/versions"; fi
if [ -x /usr/bin/python3.11 ] && ! readelf -d /usr/bin/python3.11 2>/dev/null | grep -q 'NEEDED.*libpython'; then
    PYS+=(/usr/bin/python3.11)
else
    echo "SKIP static /usr/bin/python3.11: not installed (or not static)"
fi
if [ ${#PYS[@]} = 0 ]; then
    p=$(command -v python3) && PYS+=("$p") || { echo "SKIP kill_stress: no python found"; exit 0; }
fi

# ---- targets ----------------------------------------------------------------------
for i in "${!PYS[@]}"; do
    py=${PYS[$i]}
    setsid "$py" "$TARGET" threads=3 seconds=600 stop="$tmp/stop.$i" >"$tmp/target.$i.out" 2>&1 </dev/null &
    TPIDS[$i]=$!
    TLABELS[$i]="$py (pid ${TPIDS[$i]})"
done
for i in "${!PYS[@]}"; do
    for _ in $(seq 150); do grep -q '^ready$' "$tmp/target.$i.out" && break; sleep 0.1; done
    grep -q '^ready$' "$tmp/target.$i.out" || { echo "kill_stress: FAIL: ${TLABELS[$i]} did not start: $(cat "$tmp/target.$i.out")"; exit 1; }
    echo "target $i: ${TLABELS[$i]}"
done

# Every task: not stopped, not traced.  A state that lasts 1 s is a failure.
check_target() {   # index, context
    local pid=${TPIDS[$1]} bad=""
    for _ in $(seq 50); do
        [ -d /proc/$pid ] || { fail "$2: target ${TLABELS[$1]} is gone"; return; }
        # State: comes before TracerPid: in /proc/PID/task/TID/status.
        bad=$(awk '/^State:/ { s = $2 }
                   /^TracerPid:/ { if (s == "t" || s == "T" || s == "Z" || $2 != 0)
                                       printf " %s: State %s TracerPid %s;", FILENAME, s, $2 }' \
                  /proc/$pid/task/*/status 2>/dev/null)
        [ -z "$bad" ] && return
        sleep 0.02
    done
    fail "$2: target ${TLABELS[$1]} harmed for 1 s after pyflame ended:$bad"
}

# validate FORMAT FILE -> 0 if a complete, well-formed profile
validate() {
    local f=$2
    case $1 in
    collapsed) awk 'BEGIN{bad=0} !/^.+ [0-9]+$/ {bad=1} END{exit bad}' "$f" &&
               { [ ! -s "$f" ] || [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" = '\n' ]; } ;;
    flamechart) awk 'BEGIN{bad=0} NR%2==1 && !/^[0-9]+$/ {bad=1} NR%2==0 && !/(;|^\(idle\)|^\(failed\))$/ {bad=1} END{exit bad || NR%2}' "$f" ;;
    svg) xmllint --noout "$f" 2>/dev/null ;;
    speedscope|chrome) "$VALIDATOR" -S -E -c 'import json,sys; json.loads(open(sys.argv[1],"rb").read().decode("utf-8"))' "$f" 2>/dev/null ;;
    pprof) gzip -t "$f" 2>/dev/null ;;
    esac
}

FORMATS=(collapsed flamechart svg speedscope pprof chrome)
DURATIONS=(0.05 0.1 0.2 0.3 5)
rand_ms() { echo $((RANDOM % 301)); }
ms_to_s() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# The options of run n (varied deterministically from the seed).
run_opts() {
    OPTS=()
    (( RANDOM % 2 )) && OPTS+=(--threads)
    (( RANDOM % 4 == 0 )) && OPTS+=(-r 0.001)
    (( RANDOM % 8 == 0 )) && OPTS+=(--nonblocking)
    FMT=${FORMATS[$((RANDOM % ${#FORMATS[@]}))]}
    OPTS+=(-f "$FMT")
}

# ---- 1. SIGKILL -----------------------------------------------------------------------
t1=$(date +%s)
partial=0 complete=0 absent=0 leftovers=0
for n in $(seq "$KILL_RUNS"); do
    i=$((n % ${#PYS[@]}))
    run_opts
    dur=${DURATIONS[$((RANDOM % ${#DURATIONS[@]}))]}
    out="$tmp/kill.$n.out"
    ms=$(rand_ms)
    "$PYFLAME" -s "$dur" "${OPTS[@]}" -o "$out" -p "${TPIDS[$i]}" >/dev/null 2>>"$tmp/kill.err" &
    fp=$!
    sleep "$(ms_to_s "$ms")"
    kill -9 "$fp" 2>/dev/null
    wait "$fp" 2>/dev/null
    check_target "$i" "SIGKILL run $n (-s $dur ${OPTS[*]}, killed after $ms ms)"
    if [ -e "$out" ]; then
        if validate "$FMT" "$out"; then complete=$((complete + 1))
        else partial=$((partial + 1)); cp "$out" "$tmp/../pyflame-partial.$n.$FMT" 2>/dev/null
             fail "SIGKILL run $n (-s $dur ${OPTS[*]}, killed after $ms ms): $out exists but is not a complete $FMT profile (copy: /tmp/pyflame-partial.$n.$FMT)"
        fi
    else
        absent=$((absent + 1))
    fi
    leftovers=$((leftovers + $(ls "$tmp" | grep -c "^kill\.$n\.out\.tmp\.")))
    rm -f "$out" "$out".tmp.*
done
echo "phase 1: $KILL_RUNS x SIGKILL in $(( $(date +%s) - t1 )) s: output complete $complete, absent $absent, partial $partial; temp files left by killed runs: $leftovers"

# ---- 2./3. SIGINT, SIGTERM ------------------------------------------------------------------
PYFLAME_REAL=$(readlink -f "$PYFLAME")
has_handler() {   # pid signal-number: pyflame itself runs (exec done) and the bit is set in SigCgt
    local cgt
    [ "$(readlink /proc/$1/exe 2>/dev/null)" = "$PYFLAME_REAL" ] || return 1
    cgt=$(awk '/^SigCgt:/ {print $2}' /proc/$1/status 2>/dev/null) || return 1
    [ -n "$cgt" ] && (( (16#$cgt >> ($2 - 1)) & 1 ))
}
for sig in INT TERM; do
    signum=$([ $sig = INT ] && echo 2 || echo 15)
    t1=$(date +%s)
    ok=0
    for n in $(seq "$SIG_RUNS"); do
        i=$((n % ${#PYS[@]}))
        run_opts
        out="$tmp/$sig.$n.out"
        ms=$(rand_ms)
        "$PYFLAME" -s 30 "${OPTS[@]}" -o "$out" -p "${TPIDS[$i]}" >/dev/null 2>"$tmp/sig.err" &
        fp=$!
        for _ in $(seq 1000); do has_handler "$fp" "$signum" && break; sleep 0.001; done
        sleep "$(ms_to_s "$ms")"
        kill -$sig "$fp" 2>/dev/null
        for _ in $(seq 1000); do kill -0 "$fp" 2>/dev/null || break; sleep 0.01; done
        ctx="SIG$sig run $n (${OPTS[*]}, after $ms ms)"
        if kill -0 "$fp" 2>/dev/null; then
            fail "$ctx: pyflame still running 10 s after SIG$sig (hang)"
            kill -9 "$fp"; wait "$fp" 2>/dev/null
        else
            wait "$fp"; rc=$?
            check_target "$i" "$ctx"
            if [ "$rc" != 0 ]; then
                fail "$ctx: exit status $rc (want 0); stderr: $(head -c 300 "$tmp/sig.err")"
            elif grep -qv '^pyflame: sampling fell behind' "$tmp/sig.err"; then
                # (a "sampling fell behind" note is fine on a busy machine)
                fail "$ctx: exit 0 but stderr: $(head -c 300 "$tmp/sig.err")"
            elif [ ! -e "$out" ]; then
                fail "$ctx: exit 0 but no output file $out"
            elif ! validate "$FMT" "$out"; then
                cp "$out" "/tmp/pyflame-sig$sig.$n.$FMT"
                fail "$ctx: $out is not a well-formed $FMT profile (copy: /tmp/pyflame-sig$sig.$n.$FMT)"
            elif ls "$tmp" | grep -q "^$sig\.$n\.out\.tmp\."; then
                fail "$ctx: temporary file left behind: $(ls "$tmp" | grep "^$sig\.$n\.out\.tmp\.")"
            else
                ok=$((ok + 1))
            fi
        fi
        rm -f "$out" "$out".tmp.*
    done
    echo "phase SIG$sig: $SIG_RUNS runs in $(( $(date +%s) - t1 )) s: $ok clean (exit 0, output complete)"
done

# ---- the targets' own verdict ------------------------------------------------------------------
for i in "${!PYS[@]}"; do touch "$tmp/stop.$i"; done
for i in "${!PYS[@]}"; do
    pid=${TPIDS[$i]}
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        fail "target ${TLABELS[$i]} did not finish within 30 s of its stop file"
        continue
    fi
    wait "$pid"; rc=$?
    res=$(grep '^result ' "$tmp/target.$i.out")
    echo "target $i: ${TLABELS[$i]}: exit $rc, $res"
    if [ "$rc" != 0 ] || ! grep -q "errors=0 eintr=0 checksum=$CHECKSUM\$" <<<"$res"; then
        fail "target ${TLABELS[$i]} computed a wrong result or saw EINTR: exit $rc, '${res:-no result line}' (want errors=0 eintr=0 checksum=$CHECKSUM); output: $(tail -c 500 "$tmp/target.$i.out")"
    fi
done
TPIDS=()

echo "kill_stress: $(( $(date +%s) - start_time )) s, ${#FAILS[@]} failure(s)"
if [ ${#FAILS[@]} -gt 0 ]; then
    printf '  %s\n' "${FAILS[@]}" | head -n 40
    echo "kill_stress: FAIL (reproduce with SEED=$SEED)"
    exit 1
fi
echo "kill_stress: PASS"
