#!/usr/bin/env bash
# Write throughput of a primary with one replica attached, moonkv beside redis-server, and the
# replica's lag under that load.
#
# For each server kind and round: start a primary and a replica of the same kind (--save ''
# --appendonly no), wait until the link is up, then run redis-benchmark against the primary
# (50 clients, pipeline 16) for SET and for the rate-limiter EVALSHA, while a sampler reads
# both servers' replication offsets every 50 ms. Reports per row the primary's throughput,
# the largest lag seen (bytes the replica had not applied yet) and the time the replica took
# to catch up once the load stopped; then medians over the rounds and moonkv/redis ratios.
#
# usage: bench/replication.sh [--rounds 3] [--requests 400000] [--moonkv PATH] [--redis PATH]

set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ROUNDS=3
REQUESTS=400000
MOONKV=$here/../target/release/moonkv-server
REDIS=$(command -v redis-server || echo /usr/bin/redis-server)
while (($#)); do
    case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --moonkv) MOONKV=$2; shift 2 ;;
    --redis) REDIS=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--requests N] [--moonkv PATH] [--redis PATH]" >&2; exit 2 ;;
    esac
done
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is needed" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { redis-cli -p "$1" info replication | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }

RATELIMIT="local c = redis.call('INCR', KEYS[1]) if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end if c > tonumber(ARGV[2]) then return 0 end return 1"

start() { # bin dir port [args...] -> pid in STARTED
    local bin=$1 dir=$2 port=$3
    shift 3
    mkdir -p "$dir"
    (cd "$dir" && exec "$bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no "$@" >log 2>&1) &
    STARTED=$!
    PIDS+=("$STARTED")
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.05; done
    echo "server on $port did not start" >&2; exit 1
}

# One row: prints "throughput max_lag_bytes catch_up_ms".
row() { # primary replica kind
    local p=$1 r=$2 kind=$3 args sha
    if [[ $kind == set ]]; then
        args=(-t set)
    else
        sha=$(redis-cli -p "$p" script load "$RATELIMIT")
        args=(evalsha "$sha" 1 'rl:__rand_int__' 60 1000000)
    fi
    : >"$WORK/lag"
    (
        while :; do
            # The replica first: the lag read is then never below the real one.
            b=$(field "$r" slave_repl_offset)
            a=$(field "$p" master_repl_offset)
            [[ -n $a && -n $b ]] && echo $((a - b)) >>"$WORK/lag"
            sleep 0.05
        done
    ) &
    local sampler=$!
    local out
    out=$(redis-benchmark -p "$p" -c 50 -P 16 -n "$REQUESTS" -r 100000 --csv "${args[@]}" 2>/dev/null | tail -n 1)
    local stopped
    stopped=$(date +%s%N)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local target
    target=$(field "$p" master_repl_offset)
    while [[ $(field "$r" slave_repl_offset) -lt $target ]]; do sleep 0.005; done
    local caught=$((($(date +%s%N) - stopped) / 1000000))
    local rps
    rps=$(echo "$out" | awk -F'","' '{ print $2 }' | tr -d '"')
    local lag
    lag=$(sort -n "$WORK/lag" | tail -n 1)
    echo "$rps ${lag:-0} $caught"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A RESULT
for round in $(seq "$ROUNDS"); do
    for side in moonkv redis; do
        bin=$MOONKV
        [[ $side == redis ]] && bin=$REDIS
        pp=$(free_port)
        start "$bin" "$WORK/$side-p-$round" "$pp"
        ppid=$STARTED
        rp=$(free_port)
        start "$bin" "$WORK/$side-r-$round" "$rp" --replicaof 127.0.0.1 "$pp"
        rpid=$STARTED
        for _ in $(seq 200); do [[ $(field "$rp" master_link_status) == up ]] && break; sleep 0.05; done
        for kind in set ratelimit; do
            read -r rps lag caught < <(row "$pp" "$rp" "$kind")
            echo "round $round $side $kind: $rps req/s, max lag $lag bytes, caught up ${caught} ms after the load"
            RESULT[$side:$kind:rps]+="$rps "
            RESULT[$side:$kind:lag]+="$lag "
            RESULT[$side:$kind:caught]+="$caught "
        done
        kill "$ppid" "$rpid" 2>/dev/null || true
        wait "$ppid" "$rpid" 2>/dev/null || true
    done
done

echo
echo "medians over $ROUNDS rounds (50 clients, pipeline 16, $REQUESTS requests, one replica attached):"
printf '%-10s %14s %14s %7s %16s %16s %14s %14s\n' row moonkv_rps redis_rps ratio moonkv_max_lag redis_max_lag moonkv_catchup redis_catchup
for kind in set ratelimit; do
    m=$(tr ' ' '\n' <<<"${RESULT[moonkv:$kind:rps]}" | grep . | median)
    r=$(tr ' ' '\n' <<<"${RESULT[redis:$kind:rps]}" | grep . | median)
    ml=$(tr ' ' '\n' <<<"${RESULT[moonkv:$kind:lag]}" | grep . | median)
    rl=$(tr ' ' '\n' <<<"${RESULT[redis:$kind:lag]}" | grep . | median)
    mc=$(tr ' ' '\n' <<<"${RESULT[moonkv:$kind:caught]}" | grep . | median)
    rc=$(tr ' ' '\n' <<<"${RESULT[redis:$kind:caught]}" | grep . | median)
    printf '%-10s %14s %14s %7s %14s B %14s B %11s ms %11s ms\n' "$kind" "$m" "$r" \
        "$(awk -v a="$m" -v b="$r" 'BEGIN { printf "%.2f", a / b }')" "$ml" "$rl" "$mc" "$rc"
done
