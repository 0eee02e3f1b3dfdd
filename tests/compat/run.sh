#!/usr/bin/env bash
# Runs units of the Redis 7.0.15 Tcl test suite (taken from Debian's source package) against a
# server in external mode and prints "N passed, M failed". Units run with --durable, so a test
# that hits an unsupported command fails alone instead of ending its whole unit.
#
# usage: tests/compat/run.sh [--server-cmd "CMD {port}"] [--host H --port P] [--floor FILE]
#                            [--timeout SECONDS] [--logs DIR] [unit/... ...] [-- RUNTEST-ARGS...]
# Without units, runs those listed in tests/compat/units.txt. By default it starts
# target/release/moonkv-server on a free port, a fresh instance per unit; --host/--port use a
# running server instead. Arguments after -- go to runtest (e.g. -- --only '/SETRANGE.*').
# --floor FILE (lines "unit/path MIN_PASSED") makes it exit 1 if a unit passes fewer tests.
# Tests listed in tests/compat/skip.txt (with the reason) are not run, unless
# MOONKV_COMPAT_NOSKIP is set (e.g. to measure real Redis on whole units).
# Env: MOONKV_COMPAT_CACHE (suite cache dir), MOONKV_COMPAT_TIMEOUT (seconds per unit, 900).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/compat"
cache="${MOONKV_COMPAT_CACHE:-$HOME/.cache/moonkv-compat}"
server_cmd="$root/target/release/moonkv-server --port {port} --bind 127.0.0.1 --enable-debug-command yes"
host=""
port=""
floor=""
unit_timeout="${MOONKV_COMPAT_TIMEOUT:-900}"
logs="$here/logs"
units=()
extra=()

while [ $# -gt 0 ]; do
    case "$1" in
        --server-cmd) server_cmd="$2"; shift 2 ;;
        --host) host="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --floor) floor="$2"; shift 2 ;;
        --timeout) unit_timeout="$2"; shift 2 ;;
        --logs) logs="$2"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        -*) echo "unknown option $1 (runtest options go after --)" >&2; exit 2 ;;
        *) units+=("$1"); shift ;;
    esac
done
if [ -n "$host" ] && [ -z "$port" ]; then port=6379; fi
if [ ${#units[@]} -eq 0 ]; then
    mapfile -t units < <(grep -v '^\s*#' "$here/units.txt" | grep -v '^\s*$')
fi
logs=$(mkdir -p "$logs" && cd "$logs" && pwd)

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
apt_install() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }

# --- obtain the suite ------------------------------------------------------------------------
suite="$cache/redis-7.0.15"
fetch_suite() {
    mkdir -p "$cache"
    if [ ! -e /etc/apt/sources.list.d/moonkv-deb-src.sources ] && ! grep -rqs '^\s*deb-src\|^Types:.*deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        # Derive a deb-src entry from the machine's own apt sources.
        if [ -e /etc/apt/sources.list.d/debian.sources ]; then
            sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | $sudo tee /etc/apt/sources.list.d/moonkv-deb-src.sources >/dev/null
        elif [ -e /etc/apt/sources.list ]; then
            grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | $sudo tee /etc/apt/sources.list.d/moonkv-deb-src.list >/dev/null
        fi
        $sudo apt-get update -qq
    fi
    command -v dpkg-source >/dev/null || apt_install dpkg-dev
    (cd "$cache" && apt-get source -qq redis >/dev/null 2>&1) || ($sudo apt-get update -qq && cd "$cache" && apt-get source -qq redis >/dev/null)
    local dir
    dir=$(ls -d "$cache"/redis-7.0.15* 2>/dev/null | head -1)
    [ -n "$dir" ] || { echo "could not obtain the redis 7.0.15 source package" >&2; exit 1; }
    [ "$dir" = "$suite" ] || mv "$dir" "$suite"
}
[ -x "$suite/runtest" ] || fetch_suite
grep -q '"7.0.15"' "$suite/src/version.h" || { echo "unexpected redis version in $suite" >&2; exit 1; }
command -v tclsh8.6 >/dev/null || apt_install tcl
command -v redis-cli >/dev/null || apt_install redis-tools

# --- server management -----------------------------------------------------------------------
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        # The server runs in its own process group: stop all of it (a wrapper script and its
        # children too), and kill it outright if it does not exit within 5 seconds.
        kill -TERM -- "-$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 -- "-$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "${scratch:-}"' EXIT

free_port() {
    local p
    while :; do
        p=$((10000 + RANDOM % 10000))
        # Nothing listening there (a refused connection) means the port is free.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
}

start_server() {
    local unit_log="$1"
    port=$(free_port)
    local cmd=${server_cmd//\{port\}/$port}
    # Run in a scratch directory so no stray dump file is loaded or written.
    set -m  # own process group, so that stop_server can stop all of it
    (cd "$scratch" && eval "exec $cmd") > "$unit_log.server" 2>&1 &
    server_pid=$!
    set +m
    for _ in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "server did not start: $cmd" >&2
    cat "$unit_log.server" >&2
    exit 1
}

# Number of tests real Redis ran in a unit (redis-baseline.txt), to say how many did not run.
baseline_total() {
    awk -v u="$1" '$1 == u { print $2 + $3 }' "$here/redis-baseline.txt" 2>/dev/null || true
}

# --- run -------------------------------------------------------------------------------------
scratch=$(mktemp -d)
total_pass=0
total_fail=0
below_floor=()
started=$SECONDS
for unit in "${units[@]}"; do
    log="$logs/$(echo "$unit" | tr / _).log"
    managed=0
    if [ -z "$host" ]; then
        start_server "$log"
        managed=1
    fi
    unit_start=$SECONDS
    skips=()
    while read -r skip_unit pattern; do
        [ "$skip_unit" = "$unit" ] && skips+=(--skiptest "$pattern")
    done < <([ -n "${MOONKV_COMPAT_NOSKIP:-}" ] || grep -v '^\s*#' "$here/skip.txt" | grep -v '^\s*$')
    for _ in 1 2 3; do
        status=0
        # The suite's own test server listens at a port just below --baseport: pick it at random
        # (so that concurrent runs do not collide) and below the kernel's ephemeral port range.
        (cd "$suite" && timeout --kill-after=10 "$unit_timeout" ./runtest --host "${host:-127.0.0.1}" --port "$port" \
            --single "$unit" --clients 1 --timeout 60 --durable --baseport "$((21000 + RANDOM % 11000))" \
            ${skips[@]+"${skips[@]}"} ${extra[@]+"${extra[@]}"} > "$log" 2>&1) || status=$?
        # Retry only when the suite could not even start (e.g. its port was taken meanwhile).
        grep -q '^\[ready\]:' "$log" || [ "$status" = 0 ] || continue
        break
    done
    crashed=0
    if [ "$managed" = 1 ]; then
        kill -0 "$server_pid" 2>/dev/null || crashed=1
        stop_server
    fi
    # Strip the suite's colour codes so the result markers can be counted.
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    pass=$(grep -c '^\[ok\]:' "$log" || true)
    fail=$(grep -cE '^\[(err|exception|TIMEOUT)\]:' "$log" || true)
    note=""
    if [ "$crashed" = 1 ]; then note="server crashed";
    elif [ "$status" = 124 ] || [ "$status" = 137 ]; then note="killed after ${unit_timeout}s";
    elif grep -q '^\[exception\]' "$log"; then note="aborted by an exception";
    elif grep -q '^\[TIMEOUT\]' "$log"; then note="a test timed out";
    elif ! grep -q '^\[[0-9]*/[0-9]* done\]:' "$log"; then note="runtest exited with status $status"; fi
    if [ -n "$note" ]; then
        # The tests after the point of failure never ran, so they are not counted as passed.
        # Those real Redis runs (redis-baseline.txt) but that did not run count as failed.
        expected=$(baseline_total "$unit")
        if [ -n "$expected" ] && [ "$expected" -gt $((pass + fail)) ]; then
            note="$note; $((expected - pass - fail)) tests not run, counted as failed"
            fail=$((expected - pass))
        fi
        note=" ($note)"
    fi
    echo "$unit: $pass passed, $fail failed$note [$((SECONDS - unit_start))s]"
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    if [ -n "$floor" ]; then
        min=$(awk -v u="$unit" '$1 == u { print $2 }' "$floor")
        if [ -n "$min" ] && [ "$pass" -lt "$min" ]; then
            below_floor+=("$unit: $pass passed, floor is $min")
        fi
    fi
done

echo "wall time: $((SECONDS - started))s; logs in $logs"
if [ ${#below_floor[@]} -gt 0 ]; then
    echo "Below the floor in $floor:"
    printf '  %s\n' "${below_floor[@]}"
fi
echo "$total_pass passed, $total_fail failed"
[ ${#below_floor[@]} -eq 0 ]
