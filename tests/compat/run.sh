#!/usr/bin/env bash
# Runs units of the Redis 7.0.15 Tcl test suite (taken from Debian's source package) against a
# server in external mode and prints "N passed, M failed". Units run with --durable, so a test
# that hits an unsupported command fails alone instead of ending its whole unit.
#
# usage: tests/compat/run.sh [--server-cmd "CMD {port}"] [--host H --port P] [--floor FILE]
#                            [--timeout SECONDS] [unit/... ...]
# Without units, runs those listed in tests/compat/units.txt. By default it starts
# target/release/moonkv-server on a free port, a fresh instance per unit.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/compat"
cache="${MOONKV_COMPAT_CACHE:-$HOME/.cache/moonkv-compat}"
server_cmd="$root/target/release/moonkv-server --port {port} --bind 127.0.0.1 --enable-debug-command yes"
host=""
port=""
floor=""
unit_timeout=900
logs="$here/logs"
units=()

while [ $# -gt 0 ]; do
    case "$1" in
        --server-cmd) server_cmd="$2"; shift 2 ;;
        --host) host="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --floor) floor="$2"; shift 2 ;;
        --timeout) unit_timeout="$2"; shift 2 ;;
        --logs) logs="$2"; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) units+=("$1"); shift ;;
    esac
done
if [ ${#units[@]} -eq 0 ]; then
    mapfile -t units < <(grep -v '^\s*#' "$here/units.txt" | grep -v '^\s*$')
fi

# --- obtain the suite ------------------------------------------------------------------------
suite="$cache/redis-7.0.15"
fetch_suite() {
    mkdir -p "$cache"
    if [ ! -e /etc/apt/sources.list.d/moonkv-deb-src.sources ] && ! grep -rqs '^\s*deb-src\|^Types:.*deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        # Derive a deb-src entry from the machine's own apt sources.
        if [ -e /etc/apt/sources.list.d/debian.sources ]; then
            sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/moonkv-deb-src.sources
        elif [ -e /etc/apt/sources.list ]; then
            grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > /etc/apt/sources.list.d/moonkv-deb-src.list
        fi
        apt-get update -qq
    fi
    command -v dpkg-source >/dev/null || apt-get install -y -qq dpkg-dev >/dev/null
    (cd "$cache" && apt-get source -qq redis >/dev/null 2>&1) || (apt-get update -qq && cd "$cache" && apt-get source -qq redis >/dev/null)
    local dir
    dir=$(ls -d "$cache"/redis-7.0.15* 2>/dev/null | head -1)
    [ -n "$dir" ] || { echo "could not obtain the redis 7.0.15 source package" >&2; exit 1; }
    [ "$dir" = "$suite" ] || mv "$dir" "$suite"
}
[ -x "$suite/runtest" ] || fetch_suite
grep -q '7.0.15' "$suite/src/version.h" || { echo "unexpected redis version in $suite" >&2; exit 1; }
command -v tclsh >/dev/null || apt-get install -y -qq tcl >/dev/null
command -v redis-cli >/dev/null || apt-get install -y -qq redis-tools >/dev/null

# --- server management -----------------------------------------------------------------------
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; rm -rf "${scratch:-}"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_server() {
    local unit_log="$1"
    port=$(free_port)
    local cmd=${server_cmd//\{port\}/$port}
    # Run in a scratch directory so no stray dump file is loaded or written.
    # shellcheck disable=SC2086
    (cd "$scratch" && exec $cmd) > "$unit_log.server" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            return 0
        fi
        sleep 0.1
    done
    echo "server did not start: $cmd" >&2
    cat "$unit_log.server" >&2
    exit 1
}

# --- run -------------------------------------------------------------------------------------
mkdir -p "$logs"
scratch=$(mktemp -d)
total_pass=0
total_fail=0
below_floor=()
for unit in "${units[@]}"; do
    log="$logs/$(echo "$unit" | tr / _).log"
    managed=0
    if [ -z "$host" ]; then
        start_server "$log"
        managed=1
    fi
    status=0
    (cd "$suite" && timeout --kill-after=10 "$unit_timeout" ./runtest --host "${host:-127.0.0.1}" --port "$port" \
        --single "$unit" --clients 1 --timeout 60 --durable --baseport "$((22000 + RANDOM % 20000))" > "$log" 2>&1) || status=$?
    [ "$managed" = 1 ] && stop_server
    # Strip the suite's colour codes so the result markers can be counted.
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    pass=$(grep -c '^\[ok\]:' "$log" || true)
    fail=$(grep -cE '^\[(err|exception|TIMEOUT)\]:' "$log" || true)
    note=""
    if [ "$status" = 124 ] || [ "$status" = 137 ]; then note=" (timed out)";
    elif grep -q '^\[exception\]' "$log"; then note=" (aborted by an exception)";
    elif grep -q '^\[TIMEOUT\]' "$log"; then note=" (a test timed out)"; fi
    echo "$unit: $pass passed, $fail failed$note"
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    if [ -n "$floor" ]; then
        min=$(awk -v u="$unit" '$1 == u { print $2 }' "$floor")
        if [ -n "$min" ] && [ "$pass" -lt "$min" ]; then
            below_floor+=("$unit: $pass passed, floor is $min")
        fi
    fi
done

if [ ${#below_floor[@]} -gt 0 ]; then
    echo "Below the floor in $floor:"
    printf '  %s\n' "${below_floor[@]}"
fi
echo "$total_pass passed, $total_fail failed"
[ ${#below_floor[@]} -eq 0 ]
