#!/usr/bin/env bash
# Runs units of the Redis 7.0.15 Tcl test suite (taken from Debian's source package) against a
# server and prints "N passed, M failed". Units run with --durable, so a test that hits an
# unsupported command fails alone instead of ending its whole unit.
#
# usage: tests/compat/run.sh [--server-cmd "CMD {port}"] [--host H --port P]
#                            [--spawned [--server-bin PATH]] [--floor FILE] [--passing FILE]
#                            [--no-passing] [--write-passing FILE] [--timeout SECONDS]
#                            [--logs DIR] [unit/... ...] [-- RUNTEST-ARGS...]
# Without units, runs those listed in tests/compat/units.txt. By default the suite runs in
# external mode against target/release/moonkv-server, started on a free port, a fresh instance
# per unit; --host/--port use a running server instead. --spawned lets the suite start the
# server itself for each of its start_server blocks (as `src/redis-server CONFIG-FILE`, from
# the suite's config templates), which also runs the tests tagged external:skip: src/ of a
# scratch copy of the suite then holds --server-bin (target/release/moonkv-server, or e.g.
# /usr/bin/redis-server) as redis-server, and Debian's redis-cli, redis-benchmark and
# redis-check-aof/-rdb. Arguments after -- go to runtest (e.g. -- --only '/SETRANGE.*').
# --floor FILE (lines "unit/path MIN_PASSED") makes it exit 1 if a unit passes fewer tests, and
# also if a test listed in tests/compat/passing.txt (external mode only; --passing FILE for
# another list, --no-passing for none) fails or does not run, unless the list marks it flaky
# (then it only warns).
# --write-passing FILE writes the tests that passed ("unit/path<TAB>name") to FILE, keeping
# FILE's entries for units not run and its flaky marks.
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
spawned=0
server_bin="$root/target/release/moonkv-server"
custom_server_cmd=0
passing=""
no_passing=0
write_passing=""
unit_timeout="${MOONKV_COMPAT_TIMEOUT:-900}"
logs="$here/logs"
units=()
extra=()

while [ $# -gt 0 ]; do
    case "$1" in
        --server-cmd) server_cmd="$2"; custom_server_cmd=1; shift 2 ;;
        --spawned) spawned=1; shift ;;
        --server-bin) server_bin="$2"; shift 2 ;;
        --passing) passing="$2"; shift 2 ;;
        --no-passing) no_passing=1; shift ;;
        --write-passing) write_passing="$2"; shift 2 ;;
        --host) host="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --floor) floor="$2"; shift 2 ;;
        --timeout) unit_timeout="$2"; shift 2 ;;
        --logs) logs="$2"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        -*) echo "unknown option $1 (runtest options go after --)" >&2; exit 2 ;;
        *) units+=("$1"); shift ;;
    esac
done
if [ -n "$host" ] && [ -z "$port" ]; then port=6379; fi
if [ "$spawned" = 1 ]; then
    if [ -n "$host" ] || [ "$custom_server_cmd" = 1 ]; then
        echo "--spawned starts the server itself: it takes --server-bin, not --host or --server-cmd" >&2
        exit 2
    fi
    [ -x "$server_bin" ] || { echo "no server binary at $server_bin (cargo build --release -p moonkv-server)" >&2; exit 1; }
    server_bin=$(cd "$(dirname "$server_bin")" && pwd)/$(basename "$server_bin")
fi
if [ -n "$write_passing" ] && [ ${#extra[@]} -gt 0 ]; then
    echo "--write-passing needs whole units: no runtest arguments after --" >&2
    exit 2
fi
# With --floor, the list of passing tests is checked too (only in the mode it was written in).
if [ -n "$floor" ] && [ -z "$passing" ] && [ "$no_passing" = 0 ] && [ "$spawned" = 0 ]; then
    passing="$here/passing.txt"
fi
[ "$no_passing" = 0 ] || passing=""
if [ -n "$passing" ] && [ ! -r "$passing" ]; then
    echo "cannot read the list of passing tests $passing" >&2
    exit 2
fi
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
overlay=""
trap 'stop_server; [ -z "$overlay" ] || kill_leftovers; rm -rf "${scratch:-}"' EXIT

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
    # Run in a scratch directory so no stray dump file is loaded or written; a dump an
    # earlier unit's server left there (DEBUG RELOAD, SAVE, a save at shutdown) goes first.
    rm -f "$scratch/dump.rdb"
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

# Number of tests real Redis ran in a unit (redis-baseline*.txt), to say how many did not run.
baseline_file="$here/redis-baseline.txt"
[ "$spawned" = 0 ] || baseline_file="$here/redis-baseline-spawned.txt"
baseline_total() {
    awk -v u="$1" '$1 == u { print $2 + $3 }' "$baseline_file" 2>/dev/null || true
}

# --- spawned mode: a scratch copy of the suite whose src/ holds the server under test ---------
make_overlay() {
    overlay="$scratch/suite"
    mkdir -p "$overlay/src" "$overlay/tests"
    cp "$suite/runtest" "$overlay/"
    # The suite writes server directories and config files under tests/tmp: a copy of its
    # tests/ keeps the cached suite clean and lets several runs go at once.
    (cd "$suite/tests" && tar --exclude=./tmp -cf - .) | (cd "$overlay/tests" && tar -xf -)
    mkdir -p "$overlay/tests/tmp"
    ln -s "$server_bin" "$overlay/src/redis-server"
    local tool path
    for tool in redis-cli redis-benchmark redis-check-aof redis-check-rdb; do
        if path=$(command -v "$tool"); then ln -s "$path" "$overlay/src/$tool"; fi
    done
}

# Processes left behind by a unit (servers it spawned, helper scripts): everything whose working
# directory is inside the scratch copy was started by this run.
kill_leftovers() {
    local pids=() p
    for p in /proc/[0-9]*; do
        case "$(readlink "$p/cwd" 2>/dev/null)" in
            "$overlay"|"$overlay"/*) pids+=("${p#/proc/}") ;;
        esac
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 1
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

# Keeps the logs of the servers a unit spawned (DIR/server.PID.N.stdout|stderr, from each server
# directory the suite made under tests/tmp), then clears that directory for the next unit.
save_server_logs() {
    local dest="$1" d f
    rm -rf "$dest"
    mkdir -p "$dest"
    for d in "$overlay"/tests/tmp/*/; do
        d=${d%/}
        [ -d "$d" ] || continue
        for f in "$d"/stdout* "$d"/stderr*; do
            [ -s "$f" ] && cp "$f" "$dest/$(basename "$d").$(basename "$f")"
        done
    done
    rm -rf "$overlay"/tests/tmp/*
}

# --- run -------------------------------------------------------------------------------------
scratch=$(mktemp -d)
[ "$spawned" = 0 ] || make_overlay
: > "$scratch/ok.tsv"
: > "$scratch/err.tsv"
: > "$scratch/ran.txt"
total_pass=0
total_fail=0
below_floor=()
started=$SECONDS
for unit in "${units[@]}"; do
    if [ "$spawned" = 1 ]; then
        log="$logs/$(echo "$unit" | tr / _).spawned.log"
    else
        log="$logs/$(echo "$unit" | tr / _).log"
    fi
    managed=0
    if [ -z "$host" ] && [ "$spawned" = 0 ]; then
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
        # In spawned mode the servers it starts take ports from [baseport, baseport+portcount)
        # (and check that the port 10000 above is free too, for a cluster bus).
        if [ "$spawned" = 1 ]; then
            (cd "$overlay" && timeout --kill-after=10 "$unit_timeout" ./runtest \
                --single "$unit" --clients 1 --timeout 60 --durable --dont-clean \
                --baseport "$((21000 + RANDOM % 8000))" --portcount 1000 \
                ${skips[@]+"${skips[@]}"} ${extra[@]+"${extra[@]}"} > "$log" 2>&1) || status=$?
        else
            (cd "$suite" && timeout --kill-after=10 "$unit_timeout" ./runtest --host "${host:-127.0.0.1}" --port "$port" \
                --single "$unit" --clients 1 --timeout 60 --durable --baseport "$((21000 + RANDOM % 11000))" \
                ${skips[@]+"${skips[@]}"} ${extra[@]+"${extra[@]}"} > "$log" 2>&1) || status=$?
        fi
        # Retry only when the suite could not even start (e.g. its port was taken meanwhile).
        grep -q '^\[ready\]:' "$log" || [ "$status" = 0 ] || continue
        break
    done
    crashed=0
    if [ "$managed" = 1 ]; then
        kill -0 "$server_pid" 2>/dev/null || crashed=1
        stop_server
    fi
    if [ "$spawned" = 1 ]; then
        kill_leftovers
        save_server_logs "$log.servers"
        # A Rust panic or Redis's crash report in any of the unit's servers.
        if grep -qs 'panicked at' "$log.servers"/*stderr* || grep -qs 'REDIS BUG REPORT START' "$log.servers"/*stdout*; then
            crashed=1
        fi
    fi
    # Strip the suite's colour codes so the result markers can be counted.
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    pass=$(grep -c '^\[ok\]:' "$log" || true)
    fail=$(grep -cE '^\[(err|exception|TIMEOUT)\]:' "$log" || true)
    # Names of the tests that passed and failed: "[ok]: NAME (N ms)", "[err]: NAME in FILE".
    awk -v u="$unit" '/^\[ok\]: .* \([0-9]+ ms\)$/ {
            name = substr($0, 7); sub(/ \([0-9]+ ms\)$/, "", name); print u "\t" name }' "$log" >> "$scratch/ok.tsv"
    awk -v u="$unit" '/^\[err\]: / {
            name = substr($0, 8); sub(/ in tests\/[^ ]*\.tcl$/, "", name); print u "\t" name }' "$log" >> "$scratch/err.tsv"
    echo "$unit" >> "$scratch/ran.txt"
    note=""
    if [ "$crashed" = 1 ] && [ "$spawned" = 1 ]; then note="a server crashed, see $log.servers";
    elif [ "$crashed" = 1 ]; then note="server crashed";
    elif [ "$status" = 124 ] || [ "$status" = 137 ]; then note="killed after ${unit_timeout}s";
    elif grep -q '^\[exception\]' "$log"; then note="aborted by an exception";
    elif grep -q '^\[TIMEOUT\]' "$log"; then note="a test timed out";
    elif ! grep -q '^\[[0-9]*/[0-9]* done\]:' "$log"; then note="runtest exited with status $status"; fi
    if [ -n "$note" ]; then
        # The tests after the point of failure never ran, so they are not counted as passed.
        # Those real Redis runs (redis-baseline*.txt) but that did not run count as failed.
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

# --- the list of passing tests ---------------------------------------------------------------
# Lines "unit/path<TAB>test name[<TAB>flaky: reason]"; a name listed k times must pass k times.
# Prints "F|W<TAB>unit<TAB>name<TAB>failed|not run<TAB>note" for each listed test of the units
# run that did not pass (W: marked flaky, a warning only).
missing_passes() {
    awk -F'\t' '
        FILENAME == ARGV[1] { ran[$1] = 1; next }
        FILENAME == ARGV[2] { ok[$1 FS $2]++; next }
        FILENAME == ARGV[3] { err[$1 FS $2] = 1; next }
        /^#/ || NF < 2 || !($1 in ran) { next }
        {
            key = $1 FS $2
            if (++need[key] > ok[key]) {
                print ($3 ~ /^flaky/ ? "W" : "F") "\t" $1 "\t" $2 "\t" ((key in err) ? "failed" : "not run") "\t" $3
            }
        }' "$scratch/ran.txt" "$scratch/ok.tsv" "$scratch/err.tsv" "$1"
}

# Writes the passing list: this run's passes for the units run (flaky marks kept, and flaky
# entries kept even when they did not pass this time), the old entries of other units unchanged.
write_passing_list() {
    local old="$1" out="$2" mode="external mode"
    [ -r "$old" ] || old=/dev/null
    [ "$spawned" = 0 ] || mode="spawned mode (--spawned)"
    awk -F'\t' -v mode="$mode" '
        FILENAME == ARGV[1] { if (!($1 in ran)) { ran[$1] = 1; order[++nunits] = $1 }; next }
        FILENAME == ARGV[2] {
            if ($0 ~ /^#/ || $0 ~ /^[ \t]*$/) { if (!body) header = header $0 "\n"; next }
            body = 1
            if (NF < 2) next
            if (!($1 in seen)) { seen[$1] = 1; units[++nall] = $1 }
            key = $1 FS $2
            if ($3 != "") note[key] = $3
            if ($1 in ran) { if ($3 ~ /^flaky/) { oldcount[key]++; flakykeys[$1] = flakykeys[$1] key "\n" } }
            else block[$1] = block[$1] $0 "\n"
            next
        }
        {
            key = $1 FS $2
            line = $1 "\t" $2 ((key in note) ? "\t" note[key] : "")
            block[$1] = block[$1] line "\n"
            okcount[key]++
        }
        END {
            if (header == "")
                header = "# Tests of the Redis 7.0.15 suite that pass against moonkv in " mode ",\n" \
                         "# as \"unit/path<TAB>test name[<TAB>flaky: reason]\" (a name listed twice must pass twice).\n" \
                         "# run.sh --floor (CI) fails when a listed test fails or does not run; for one marked\n" \
                         "# flaky it only warns. Regenerate with run.sh --write-passing FILE, which keeps the\n" \
                         "# flaky marks and the entries of units not run.\n"
            printf "%s", header
            for (i = 1; i <= nunits; i++) if (!(order[i] in seen)) { seen[order[i]] = 1; units[++nall] = order[i] }
            for (i = 1; i <= nall; i++) {
                u = units[i]
                if (u in ran) {
                    n = split(flakykeys[u], keys, "\n")
                    for (j = 1; j < n; j++) {
                        k = keys[j]
                        if (done[k]++) continue
                        split(k, parts, FS)
                        for (c = okcount[k]; c < oldcount[k]; c++) block[u] = block[u] u "\t" parts[2] "\t" note[k] "\n"
                    }
                }
                printf "%s", block[u]
            }
        }' "$scratch/ran.txt" "$old" "$scratch/ok.tsv" > "$scratch/passing.new"
    mv "$scratch/passing.new" "$out"
}

passing_failed=()
passing_flaky=()
if [ -n "$passing" ]; then
    while IFS=$'\t' read -r kind u name what why; do
        if [ "$kind" = F ]; then
            passing_failed+=("$u: $name ($what)")
        else
            passing_flaky+=("$u: $name ($what; $why)")
        fi
    done < <(missing_passes "$passing")
fi

echo "wall time: $((SECONDS - started))s; logs in $logs"
if [ ${#below_floor[@]} -gt 0 ]; then
    echo "Below the floor in $floor:"
    printf '  %s\n' "${below_floor[@]}"
fi
if [ ${#passing_flaky[@]} -gt 0 ]; then
    echo "Warning: tests listed as passing (but flaky) in $passing did not pass:"
    printf '  %s\n' "${passing_flaky[@]}"
fi
if [ ${#passing_failed[@]} -gt 0 ]; then
    echo "Tests listed as passing in $passing did not pass:"
    printf '  %s\n' "${passing_failed[@]}"
fi
if [ -n "$write_passing" ]; then
    write_passing_list "$write_passing" "$write_passing"
    echo "wrote the passing tests to $write_passing"
fi
echo "$total_pass passed, $total_fail failed"
[ ${#below_floor[@]} -eq 0 ] && [ ${#passing_failed[@]} -eq 0 ]
