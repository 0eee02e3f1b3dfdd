#!/usr/bin/env bash
# RSS growth of a server after N distinct one-line EVAL scripts (the EVAL script cache).
#
# Usage:
#   bench/script_cache_rss.sh [--server NAME=BIN ...] [-n N] [--reps R] [--body 'return {i}']
#                             [--server-args "ARGS"] [--keep-file]
#
#   bench/script_cache_rss.sh                          # moonkv (target/release) and /usr/bin/redis-server
#   bench/script_cache_rss.sh --server moonkv=/work/baseline/target/release/moonkv-server \
#                             --server redis=/usr/bin/redis-server -n 1000000 --reps 3
#
# For each repetition and server (order alternates between repetitions): start a fresh instance on
# a free loopback port with `--save '' --appendonly no` (plus --server-args), wait 1 s, read VmRSS
# from /proc/<pid>/status and INFO memory, send `EVAL "<body with {i} = 1..N>" 0` for every i
# (N distinct script bodies, pre-generated RESP, sent with `redis-cli --pipe`, timed), wait 1 s,
# read VmRSS, VmHWM (peak RSS) and INFO memory again, stop the server. Prints a Markdown table of the
# medians over the repetitions (the individual values in brackets) to stdout; progress to stderr.
# The generated RESP file is cached as /tmp/script_cache_rss.<N>.<hash of body>.resp (removed at the
# end unless --keep-file).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVERS=() N=1000000 REPS=3 BODY='return {i}' SERVER_ARGS="" KEEP=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
    case $1 in
        --server) SERVERS+=("$2"); shift 2 ;;
        -n|--scripts) N=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --body) BODY=$2; shift 2 ;;
        --server-args) SERVER_ARGS=$2; shift 2 ;;
        --keep-file) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "script_cache_rss.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
((${#SERVERS[@]})) || SERVERS=("moonkv=$ROOT/target/release/moonkv-server" "redis=/usr/bin/redis-server")
for s in "${SERVERS[@]}"; do
    [[ $s == *=* && -x ${s#*=} ]] || { echo "script_cache_rss.sh: --server $s: expected NAME=BIN with an executable BIN" >&2; exit 2; }
done
eval "EXTRA=($SERVER_ARGS)"

note() { echo "[$(date +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
info_field() { tr -d '\r' <<<"$1" | awk -F: -v k="$2" '$1 == k { print $2 }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.10g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# The RESP stream: EVAL "<body>" 0, N times.
FILE=/tmp/script_cache_rss.$N.$(printf %s "$BODY" | md5sum | cut -c1-8).resp
if [[ ! -s $FILE ]]; then
    note "generating $N EVAL commands into $FILE"
    python3 - "$N" "$BODY" "$FILE" <<'EOF'
import sys
n, body, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(path + ".tmp", "wb", buffering=1 << 20) as f:
    for i in range(1, n + 1):
        b = body.replace("{i}", str(i)).encode()
        f.write(b"*3\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(b), b))
import os
os.replace(path + ".tmp", path)
EOF
fi
PID=""
cleanup_server() { [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap 'cleanup_server; ((KEEP)) || rm -f "$FILE"' EXIT

declare -A R  # R[name,metric] = space-separated values over repetitions
FIELDS=(used_memory used_memory_vm_eval used_memory_scripts_eval number_of_cached_scripts)

run_one() { # name bin
    local name=$1 bin=$2 port log i info0 info1 rss0 rss1 hwm t0 t1 out
    port=$(free_port) log=$(mktemp /tmp/script_cache_rss.$name.XXXXXX.log)
    (cd /tmp && exec "$bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no "${EXTRA[@]}") >"$log" 2>&1 &
    PID=$!
    for i in {1..100}; do
        kill -0 "$PID" 2>/dev/null || { echo "$name did not start; $log:" >&2; tail "$log" >&2; exit 1; }
        [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && break
        sleep 0.1
    done
    sleep 1
    rss0=$(kb "$PID" VmRSS) info0=$(redis-cli -p "$port" info memory)
    t0=$(date +%s.%N)
    out=$(redis-cli -p "$port" --pipe --pipe-timeout 600 <"$FILE" 2>&1) || { echo "$name: redis-cli --pipe failed: $out" >&2; exit 1; }
    t1=$(date +%s.%N)
    grep -q "errors: 0, replies: $N" <<<"$out" || { echo "$name: unexpected --pipe result: $out" >&2; exit 1; }
    sleep 1
    rss1=$(kb "$PID" VmRSS) hwm=$(kb "$PID" VmHWM) info1=$(redis-cli -p "$port" info memory)
    cleanup_server
    rm -f "$log"
    R[$name,secs]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') "
    R[$name,rss0]+="$(awk -v k="$rss0" 'BEGIN { printf "%.1f", k / 1024 }') "
    R[$name,rss1]+="$(awk -v k="$rss1" 'BEGIN { printf "%.1f", k / 1024 }') "
    R[$name,growth]+="$(awk -v a="$rss0" -v b="$rss1" 'BEGIN { printf "%.1f", (b - a) / 1024 }') "
    R[$name,perscript]+="$(awk -v a="$rss0" -v b="$rss1" -v n="$N" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }') "
    R[$name,hwm]+="$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }') "
    for f in "${FIELDS[@]}"; do
        R[$name,$f.0]+="$(info_field "$info0" "$f") "
        R[$name,$f.1]+="$(info_field "$info1" "$f") "
    done
    note "$name rep: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", b - a }'), RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB (peak $((hwm / 1024))), cached scripts $(info_field "$info1" number_of_cached_scripts)"
}

for ((rep = 0; rep < REPS; rep++)); do
    if ((rep % 2)); then order=($(printf '%s\n' "${!SERVERS[@]}" | sort -rn)); else order=("${!SERVERS[@]}"); fi
    for idx in "${order[@]}"; do
        s=${SERVERS[$idx]}
        note "rep $((rep + 1))/$REPS: ${s%%=*} (${s#*=})"
        run_one "${s%%=*}" "${s#*=}"
    done
done

cell() { # name metric -> "median [v1, v2, ...]" (values as recorded)
    local v=${R[$1,$2]:-}
    v=${v% }
    [[ -z ${v// /} ]] && { echo "n/a"; return; }
    echo "$(tr ' ' '\n' <<<"$v" | median) [${v// /, }]"
}
echo
echo "EVAL script cache: $N distinct scripts \`EVAL \"$BODY\" 0\` (i = 1..$N) via redis-cli --pipe; fresh instance per run, --save '' --appendonly no; medians of $REPS runs [each run]"
echo
printf '| metric |'; for s in "${SERVERS[@]}"; do printf ' %s |' "${s%%=*}"; done; echo
printf '|---|'; for s in "${SERVERS[@]}"; do printf -- '---|'; done; echo
row() { # label metric
    printf '| %s |' "$1"
    for s in "${SERVERS[@]}"; do printf ' %s |' "$(cell "${s%%=*}" "$2")"; done
    echo
}
row "time to send all EVALs (s)" secs
row "VmRSS before (MiB)" rss0
row "VmRSS after (MiB)" rss1
row "RSS growth (MiB)" growth
row "RSS growth per script (bytes)" perscript
row "VmHWM peak RSS (MiB)" hwm
for f in "${FIELDS[@]}"; do
    row "$f before" "$f.0"
    row "$f after" "$f.1"
done
