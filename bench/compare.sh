#!/usr/bin/env bash
# Side-by-side benchmark of moonkv-server against redis-server on this machine.
#
# Both servers run on their own free loopback port with the same settings and no persistence.
# Every (test, pipeline depth) pair is run with identical redis-benchmark flags against both
# servers, alternating servers round by round (ABBA order), and the median of the rounds is
# reported. Then fresh instances of both are loaded with the same keys to compare memory.
# Progress goes to stderr, the Markdown report to stdout; everything lands in bench/results/.
# See bench/README.md and --help.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=compare.sh

usage() {
    cat <<EOF
Usage: bench/compare.sh [options]

  --moonkv BIN          moonkv binary (default: \$ROOT/target/release/moonkv-server,
                        built with 'cargo build --release -p moonkv-server' if missing)
  --build               run that cargo build even if the binary exists
  --redis BIN           redis-server binary (default: /usr/sbin/redis-server or \$(command -v redis-server))
  --moonkv-args "ARGS"  extra moonkv args (default: "--save '' --appendonly no", dropped with a
                        warning if moonkv rejects them); shell-style quoting, split with xargs
  --redis-args "ARGS"   extra redis args (default: "--save '' --appendonly no")
                        (both sides also get --port P --bind 127.0.0.1, after these args)
  --rounds R            rounds per test (default 5); the median is reported
  --requests N          requests per run (default: auto, calibrated so a run takes ~--target-secs)
  --target-secs S       target duration of one benchmark row for auto --requests (default 2)
  --tests LIST          comma-separated redis-benchmark -t names (default "ping,set,get,incr,mset");
                        any name redis-benchmark knows works: lpush, lpop, lrange_100, hset, sadd,
                        spop, zadd, zpopmin, ...; "" for none (custom rows only)
  --custom "NAME|SETUP|COMMAND ARGS"
                        extra row benchmarking a command line (repeatable). SETUP (may be empty) is
                        run once per server with redis-cli after start; its reply replaces {SETUP}
                        in COMMAND, e.g.
                        --custom "evalsha_ret1|SCRIPT LOAD 'return 1'|EVALSHA {SETUP} 0"
                        Several setup commands: "CMD1 ;; CMD2" (the last reply is {SETUP}).
  --scripts             add the scripting rows: EVALSHA of 'return 1', of the rate limiter from
                        Redis's docs (INCR a random key, EXPIRE it on the first hit, compare with
                        ARGV) and of a script reading 3 random hashes (of 100000) with HGETALL
  --types               add the stream/HyperLogLog/geo rows: XADD (random keys, MAXLEN ~ 1000), one
                        job through a consumer group per request (a script: XADD, XREADGROUP >,
                        XACK, XDEL), PFADD, PFCOUNT of a 100000-element HLL, GEOSEARCH (200 km,
                        COUNT 10) over 100000 points
  --pipelines "LIST"    pipeline depths (default "1 16")
  --clients C           parallel connections (default 50)
  --keyspace K          redis-benchmark -r (random keys) for every run (default 100000)
  --memory-keys N       keys loaded for the memory comparison (default 1000000)
  --memory-kinds LIST   what the memory comparison loads (default "strings"): strings (N keys),
                        list, set, hash, zset (one key with N elements), stream (one key with N
                        entries of 2 fields), comma-separated
  --no-memory           skip the memory comparison
  --pin                 pin servers to CPU 0 and redis-benchmark to CPU 1 (taskset)
  --timeout S           kill a redis-benchmark run after S seconds (default 180)
  --out DIR             results directory (default bench/results/<timestamp>)
  -h, --help            this help
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 1; }

# The scripting rows (--scripts), as --custom specs.
SCRIPT_ROWS=(
    "evalsha_return1|SCRIPT LOAD 'return 1'|EVALSHA {SETUP} 0"
    "evalsha_ratelimit|SCRIPT LOAD \"local c = redis.call('INCR', KEYS[1]) if c == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end if c > tonumber(ARGV[2]) then return 0 end return 1\"|EVALSHA {SETUP} 1 rl:__rand_int__ 60 1000000"
    "evalsha_hgetall3|EVAL \"for i = 0, 99999 do redis.call('HSET', string.format('h:%012d', i), 'name', 'user' .. i, 'email', 'u' .. i .. '@example.com', 'visits', i, 'plan', 'pro') end return 1\" 0 ;; SCRIPT LOAD \"local r = {} for i, k in ipairs(KEYS) do r[i] = redis.call('HGETALL', k) end return r\"|EVALSHA {SETUP} 3 h:__rand_int__ h:__rand_int__ h:__rand_int__"
)
# The stream, HyperLogLog and geo rows (--types), as --custom specs. The consumer-group row runs
# one job through a group per request (XADD, XREADGROUP >, XACK, XDEL), atomically in a script,
# so every read finds exactly the entry just added and the stream stays small.
TYPE_ROWS=(
    "xadd|DEL s:bench|XADD s:__rand_int__ MAXLEN ~ 1000 * name job:__rand_int__ n 42"
    "xreadgroup_xack|XGROUP CREATE q:bench g \$ MKSTREAM ;; SCRIPT LOAD \"local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[1]) local r = redis.call('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '1', 'STREAMS', KEYS[1], '>') redis.call('XACK', KEYS[1], 'g', r[1][2][1][1]) redis.call('XDEL', KEYS[1], id) return 1\"|EVALSHA {SETUP} 1 q:bench __rand_int__"
    "pfadd|DEL hll:bench|PFADD hll:bench __rand_int__"
    "pfcount|EVAL \"for i = 1, 100000 do redis.call('PFADD', 'hll:count', 'e' .. i) end return 1\" 0|PFCOUNT hll:count"
    "geosearch|EVAL \"for i = 0, 99999 do redis.call('GEOADD', 'geo:bench', (i * 7919) % 3600 / 10 - 180, (i * 104729) % 1700 / 10 - 85, 'p' .. i) end return 1\" 0|GEOSEARCH geo:bench FROMLONLAT 15 37 BYRADIUS 200 km ASC COUNT 10"
)
note() { echo "[$(date +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }

# ---------------------------------------------------------------------------------------------
# options

MOONKV_BIN="" REDIS_BIN="" BUILD=0
MOONKV_ARGS_STR="--save '' --appendonly no" MOONKV_ARGS_GIVEN=0
REDIS_ARGS_STR="--save '' --appendonly no"
ROUNDS=5 REQUESTS=auto TARGET_SECS=2 TESTS="ping,set,get,incr,mset" PIPELINES="1 16"
CLIENTS=50 KEYSPACE=100000 MEMORY_KEYS=1000000 MEMORY_KINDS=strings DO_MEMORY=1 PIN=0 TIMEOUT=180 OUT=""
CUSTOM=()

while (($#)); do
    case $1 in --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;; esac
    opt=$1
    case $opt in
    --moonkv | --redis | --moonkv-args | --redis-args | --rounds | --requests | --target-secs | --tests | \
        --custom | --pipelines | --clients | --keyspace | --memory-keys | --memory-kinds | --timeout | --out)
        (($# >= 2)) || { echo "$PROG: $opt needs a value" >&2; exit 2; } ;;
    esac
    case $opt in
    --moonkv) MOONKV_BIN=$2 ;;
    --redis) REDIS_BIN=$2 ;;
    --moonkv-args) MOONKV_ARGS_STR=$2 MOONKV_ARGS_GIVEN=1 ;;
    --redis-args) REDIS_ARGS_STR=$2 ;;
    --rounds) ROUNDS=$2 ;;
    --requests) REQUESTS=$2 ;;
    --target-secs) TARGET_SECS=$2 ;;
    --tests) TESTS=$2 ;;
    --custom) CUSTOM+=("$2") ;;
    --scripts) CUSTOM+=("${SCRIPT_ROWS[@]}"); shift; continue ;;
    --types) CUSTOM+=("${TYPE_ROWS[@]}"); shift; continue ;;
    --pipelines) PIPELINES=$2 ;;
    --clients) CLIENTS=$2 ;;
    --keyspace) KEYSPACE=$2 ;;
    --memory-keys) MEMORY_KEYS=$2 ;;
    --memory-kinds) MEMORY_KINDS=$2 ;;
    --timeout) TIMEOUT=$2 ;;
    --out) OUT=$2 ;;
    --no-memory) DO_MEMORY=0; shift; continue ;;
    --build) BUILD=1; shift; continue ;;
    --pin) PIN=1; shift; continue ;;
    -h | --help) usage; exit 0 ;;
    *) echo "$PROG: unknown option: $opt" >&2; usage >&2; exit 2 ;;
    esac
    shift 2
done

isint() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0)); }
isint "$ROUNDS" || die "--rounds must be a positive integer"
isint "$CLIENTS" || die "--clients must be a positive integer"
isint "$KEYSPACE" || die "--keyspace must be a positive integer"
isint "$TIMEOUT" || die "--timeout must be a positive integer"
isint "$MEMORY_KEYS" || die "--memory-keys must be a positive integer"
[[ $REQUESTS == auto ]] || isint "$REQUESTS" || die "--requests must be a positive integer or 'auto'"
[[ $TARGET_SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--target-secs must be a number"
read -r -a DEPTHS <<<"$PIPELINES"
((${#DEPTHS[@]})) || die "--pipelines is empty"
for d in "${DEPTHS[@]}"; do isint "$d" || die "bad pipeline depth '$d'"; done
IFS=, read -r -a TEST_NAMES <<<"${TESTS// /}"

for tool in redis-benchmark redis-cli timeout awk; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y redis-tools)"
done
((PIN)) && { command -v taskset >/dev/null || die "--pin needs taskset"; (($(nproc) >= 2)) || die "--pin needs 2 CPUs"; }

if [[ -z $REDIS_BIN ]]; then
    if [[ -x /usr/sbin/redis-server ]]; then REDIS_BIN=/usr/sbin/redis-server
    else REDIS_BIN=$(command -v redis-server) || die "redis-server not found (apt-get install -y redis-server)"; fi
fi
if [[ -z $MOONKV_BIN ]]; then
    MOONKV_BIN=$ROOT/target/release/moonkv-server
    if ((BUILD)) || [[ ! -x $MOONKV_BIN ]]; then
        note "building moonkv-server (cargo build --release -p moonkv-server)"
        (cd "$ROOT" && cargo build --release -p moonkv-server) >&2 || die "cargo build failed"
    fi
fi
for b in "$MOONKV_BIN" "$REDIS_BIN"; do [[ -x $b ]] || die "not an executable: $b"; done
MOONKV_BIN=$(realpath -s "$MOONKV_BIN") REDIS_BIN=$(realpath -s "$REDIS_BIN")

OUT=${OUT:-$ROOT/bench/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/compare.log   # every command and its raw output
RAW=$OUT/raw.tsv       # one line per round, side and result row
REPORT=$OUT/report.md  # what is printed on stdout
WORK=$(mktemp -d /tmp/moonkv-bench.XXXXXX)
: >"$LOG"
printf 'round\tside\tjob\tpipeline\trequests\trow\trps\tavg_ms\tp50_ms\tp99_ms\tcpu_us_per_req\n' >"$RAW"
log() { printf '%s\n' "$*" >>"$LOG"; }

# ---------------------------------------------------------------------------------------------
# helpers

# split_words STR: shell-style word splitting with quotes (no expansion) into WORDS.
split_words() {
    WORDS=()
    [[ -n ${1//[[:space:]]/} ]] || return 0
    printf '%s' "$1" | xargs printf '%s\0' >"$WORK/words" 2>"$WORK/words.err" ||
        die "cannot split '$1': $(cat "$WORK/words.err")"
    mapfile -t -d '' WORDS <"$WORK/words"
}

PIDS=()       # servers we started
USED_PORTS=" "
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in {1..50}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_server() {
    local pid=$1 p keep=()
    stop_pid "$pid"
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

pick_port() {
    local p i
    for i in {1..200}; do
        p=$((20000 + RANDOM % 40000))
        [[ $USED_PORTS == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORTS+="$p " PORT=$p
            return 0
        fi
    done
    die "no free loopback port found"
}

SRV_PIN=() BENCH_PIN=()
((PIN)) && SRV_PIN=(taskset -c 0) BENCH_PIN=(taskset -c 1)

# start_server LOGFILE BIN ARGS... -> SRV_PID, SRV_PORT; returns 1 if it exits or never answers.
start_server() { # logfile bin args...; retries on another port if the chosen one was taken
    local attempt
    for attempt in 1 2 3; do
        start_server_once "$@" && return 0
        grep -qi "address already in use" "$1" 2>/dev/null || return 1
        note "port $PORT was taken meanwhile; retrying on another"
    done
    return 1
}

start_server_once() {
    local logf=$1 bin=$2 i
    shift 2
    pick_port
    log "start: $bin $* --port $PORT --bind 127.0.0.1 (log $logf)"
    (cd "$WORK" && exec "${SRV_PIN[@]}" "$bin" "$@" --port "$PORT" --bind 127.0.0.1) >"$logf" 2>&1 &
    SRV_PID=$! SRV_PORT=$PORT
    PIDS+=("$SRV_PID")
    for i in {1..100}; do
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            stop_server "$SRV_PID"
            return 1
        fi
        [[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$SRV_PORT" ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
    done
    echo "$PROG: $bin did not answer PING on port $SRV_PORT within 10 s" >&2
    stop_server "$SRV_PID"
    return 1
}

server_died() { # side logfile
    echo "$PROG: error: the $1 server died; last lines of $2:" >&2
    tail -n 20 "$2" >&2
    exit 1
}

start_side() { # side tag -> PID_<side>, PORT_<side>
    local side=$1 tag=$2 logf="$OUT/$1-$2.log" bin args
    if [[ $side == moonkv ]]; then bin=$MOONKV_BIN args=("${MOONKV_ARGS[@]}"); else bin=$REDIS_BIN args=("${REDIS_ARGS[@]}"); fi
    if ! start_server "$logf" "$bin" "${args[@]}"; then
        if [[ $side == moonkv && $MOONKV_ARGS_GIVEN == 0 && ${#MOONKV_ARGS[@]} -gt 0 ]]; then
            note "warning: moonkv failed to start with '${MOONKV_ARGS_STR}'; retrying without (see $logf)"
            tail -n 5 "$logf" | sed 's/^/    /' >&2
            MOONKV_ARGS=() MOONKV_ARGS_STR=""
            logf="$OUT/$side-$tag-retry.log"
            start_server "$logf" "$bin" || {
                echo "$PROG: error: moonkv failed to start ($bin); last lines of $logf:" >&2
                tail -n 20 "$logf" >&2
                exit 1
            }
        else
            echo "$PROG: error: $side failed to start ($bin ${args[*]}); last lines of $logf:" >&2
            tail -n 20 "$logf" >&2
            exit 1
        fi
    fi
    printf -v "PID_$side" %s "$SRV_PID"
    printf -v "PORT_$side" %s "$SRV_PORT"
    printf -v "LOG_$side" %s "$logf"
}

vmrss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
used_memory() { # port -> bytes or empty
    timeout 10 redis-cli -h 127.0.0.1 -p "$1" info memory 2>/dev/null | tr -d '\r' |
        awk -F: '$1 == "used_memory" { print $2 }'
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

split_words "$MOONKV_ARGS_STR"; MOONKV_ARGS=("${WORDS[@]}")
split_words "$REDIS_ARGS_STR"; REDIS_ARGS=("${WORDS[@]}")

# ---------------------------------------------------------------------------------------------
# jobs: "t:<redis-benchmark -t name>" or "c:<index into CUSTOM>"

JOBS=()
for t in "${TEST_NAMES[@]}"; do [[ -n $t ]] && JOBS+=("t:$t"); done
CUSTOM_NAME=() CUSTOM_SETUP=() CUSTOM_CMD=()
for i in "${!CUSTOM[@]}"; do
    spec=${CUSTOM[$i]}
    [[ $spec == *"|"* ]] || die "--custom '$spec': expected NAME|SETUP|COMMAND"
    name=${spec%%|*} rest=${spec#*|}
    if [[ $rest == *"|"* ]]; then setup=${rest%%|*} cmd=${rest#*|}; else setup="" cmd=$rest; fi
    [[ -n $name && -n ${cmd//[[:space:]]/} ]] || die "--custom '$spec': empty name or command"
    CUSTOM_NAME+=("$name") CUSTOM_SETUP+=("$setup") CUSTOM_CMD+=("$cmd")
    JOBS+=("c:$i")
done
((${#JOBS[@]} || DO_MEMORY)) || die "nothing to run (--tests is empty, no --custom and --no-memory)"

declare -A SETUP_REPLY=() NREQ=()

run_setups() { # side port
    local side=$1 port=$2 i reply
    for i in "${!CUSTOM_SETUP[@]}"; do
        [[ -n ${CUSTOM_SETUP[$i]//[[:space:]]/} ]] || { SETUP_REPLY[$side:$i]=""; continue; }
        # Several setup commands may be given, separated by ' ;; '; the last one's reply counts.
        local rest=${CUSTOM_SETUP[$i]} step
        while :; do
            step=${rest%% ;; *}
            split_words "$step"
            log "setup [$side] ${CUSTOM_NAME[$i]}: redis-cli ${WORDS[*]}"
            reply=$(timeout 60 redis-cli -e -h 127.0.0.1 -p "$port" "${WORDS[@]}" 2>&1) ||
                die "setup of custom row '${CUSTOM_NAME[$i]}' failed on $side: ${reply:-redis-cli exit status $?}"
            [[ $rest == *" ;; "* ]] || break
            rest=${rest#* ;; }
        done
        reply=$(printf '%s\n' "$reply" | head -n 1)
        log "  -> $reply"
        SETUP_REPLY[$side:$i]=$reply
    done
}

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run_bench SIDE JOB DEPTH N -> ROWS (lines "label<TAB>rps<TAB>avg<TAB>p50<TAB>p99")
run_bench() {
    local side=$1 job=$2 depth=$3 n=$4 extra=() w i label rc=0
    local port_var=PORT_$side pid_var=PID_$side log_var=LOG_$side
    case $job in
    t:*) extra=(-t "${job#t:}") ;;
    c:*)
        i=${job#c:}
        split_words "${CUSTOM_CMD[$i]}"
        for w in "${WORDS[@]}"; do extra+=("${w//\{SETUP\}/${SETUP_REPLY[$side:$i]}}"); done
        ;;
    esac
    local cmd=(redis-benchmark -h 127.0.0.1 -p "${!port_var}" -c "$CLIENTS" -n "$n" -P "$depth" -r "$KEYSPACE" --csv "${extra[@]}")
    log "[$side] ${cmd[*]}"
    local cpu_before cpu_after
    cpu_before=$(cpu_ticks "${!pid_var}")
    timeout -k 5 "$TIMEOUT" "${BENCH_PIN[@]}" "${cmd[@]}" >"$WORK/out" 2>"$WORK/err" || rc=$?
    cpu_after=$(cpu_ticks "${!pid_var}")
    cat "$WORK/out" "$WORK/err" >>"$LOG"
    kill -0 "${!pid_var}" 2>/dev/null || server_died "$side" "${!log_var}"
    if ((rc == 124 || rc == 137)); then
        die "redis-benchmark timed out after ${TIMEOUT}s against $side: ${cmd[*]}"
    elif ((rc != 0)); then
        echo "$PROG: error: redis-benchmark failed (exit $rc) against $side: ${cmd[*]}" >&2
        head -c 2000 "$WORK/err" >&2
        exit 1
    fi
    ROWS=$(awk -F'","' 'NF >= 8 && $1 != "\"test" {
            sub(/^"/, "", $1); sub(/"$/, "", $8); print $1 "\t" $2 "\t" $3 "\t" $5 "\t" $7 }' "$WORK/out")
    [[ -n $ROWS ]] || die "redis-benchmark printed no results against $side (unknown test name '${job#t:}'?): ${cmd[*]}"
    # Server CPU time (user + system) per request over the whole run, in microseconds: what the
    # server spends per request, whoever the bottleneck is (at pipeline 1 it is the client).
    local rows_in_run
    rows_in_run=$(printf '%s\n' "$ROWS" | wc -l)
    CPU_US=$(awk -v a="$cpu_before" -v b="$cpu_after" -v hz="$CLK_TCK" -v n="$n" -v r="$rows_in_run" \
        'BEGIN { printf "%.3f", (b - a) * 1000000 / hz / (n * r) }')
    if [[ $job == c:* ]]; then # one row, named by the user
        ROWS=$(printf '%s\n' "$ROWS" | head -n 1 | awk -F'\t' -v OFS='\t' -v name="${CUSTOM_NAME[${job#c:}]}" '{ $1 = name; print }')
    fi
}

job_label() { if [[ $1 == c:* ]]; then echo "${CUSTOM_NAME[${1#c:}]}"; else echo "${1#t:}"; fi; }

# ---------------------------------------------------------------------------------------------
# header

T_START=$(now)
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -n $cpu_model ]] || cpu_model=$(awk -F': *' '/^(Hardware|cpu model|Model)/ { print $2; exit }' /proc/cpuinfo)
version_of() { timeout 5 "$1" --version 2>&1 </dev/null | head -n 1 || echo "unknown"; }
MOONKV_VERSION=$(version_of "$MOONKV_BIN")
REDIS_VERSION=$(version_of "$REDIS_BIN")
BENCH_VERSION=$(redis-benchmark --version 2>&1 | head -n 1)
GIT_REV=$(git --no-optional-locks -C "$ROOT" describe --always --dirty 2>/dev/null || echo "n/a")

header() {
    echo "# moonkv vs redis-server"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname), kernel $(uname -r)"
    echo "- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- moonkv: \`$MOONKV_BIN\` ($MOONKV_VERSION), repo $GIT_REV, extra args: \`${MOONKV_ARGS_STR}\`"
    echo "- redis: \`$REDIS_BIN\` ($REDIS_VERSION), extra args: \`${REDIS_ARGS_STR}\`"
    echo "- $BENCH_VERSION: -c $CLIENTS -r $KEYSPACE, pipelines ${DEPTHS[*]}, requests ${REQUESTS/auto/auto (~${TARGET_SECS} s per row)}," \
        "$ROUNDS rounds alternating servers (ABBA), median reported$( ((PIN)) && echo ", servers pinned to CPU 0, client to CPU 1")"
    echo "- raw results: \`$OUT\`"
}

note "results in $OUT"

# ---------------------------------------------------------------------------------------------
# throughput

start_side moonkv bench
start_side redis bench
note "moonkv pid $PID_moonkv port $PORT_moonkv; redis pid $PID_redis port $PORT_redis"
run_setups moonkv "$PORT_moonkv"
run_setups redis "$PORT_redis"
header >"$REPORT.header" # after start: moonkv args may have changed

if [[ $REQUESTS == auto ]]; then
    # Calibrate on both servers and size every run by the slower one, so that each result row
    # takes about TARGET_SECS on the slower side; both sides get the same N.
    for job in "${JOBS[@]}"; do
        for depth in "${DEPTHS[@]}"; do
            ncal=$((10000 * depth)); ((ncal > 200000)) && ncal=200000
            minrps=""
            for side in moonkv redis; do
                run_bench "$side" "$job" "$depth" "$ncal"
                r=$(printf '%s\n' "$ROWS" | cut -f2 | sort -g | head -n 1)
                minrps=$(awk -v a="$r" -v b="${minrps:-$r}" 'BEGIN { print (a < b ? a : b) }')
            done
            n=$(awk -v r="$minrps" -v t="$TARGET_SECS" -v floor=$((CLIENTS * depth * 20)) 'BEGIN {
                n = r * t; if (n < floor) n = floor; if (n < 1000) n = 1000
                p = 10 ^ (int(log(n) / log(10)) - 1); printf "%d\n", int(n / p) * p }')
            NREQ[$job|$depth]=$n
            note "calibrated $(job_label "$job") -P $depth: ${minrps%.*} ops/s -> -n $n"
        done
    done
else
    for job in "${JOBS[@]}"; do for depth in "${DEPTHS[@]}"; do NREQ[$job|$depth]=$REQUESTS; done; done
fi

ROW_KEYS=() # "label<TAB>depth" in order of first appearance
declare -A SEEN=()
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then order=(moonkv redis); else order=(redis moonkv); fi
    note "round $round/$ROUNDS (${order[*]})"
    for job in "${JOBS[@]}"; do
        for depth in "${DEPTHS[@]}"; do
            n=${NREQ[$job|$depth]}
            for side in "${order[@]}"; do
                run_bench "$side" "$job" "$depth" "$n"
                while IFS=$'\t' read -r label rps avg p50 p99; do
                    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$side" "$(job_label "$job")" \
                        "$depth" "$n" "$label" "$rps" "$avg" "$p50" "$p99" "$CPU_US" >>"$RAW"
                    key="$label"$'\t'"$depth"
                    [[ -n ${SEEN[$key]-} ]] || { SEEN[$key]=1; ROW_KEYS+=("$key"); }
                    note "  $side $label -P $depth: $rps ops/s"
                done <<<"$ROWS"
            done
        done
    done
done
stop_server "$PID_moonkv"
stop_server "$PID_redis"

# column values of RAW for one side/label/depth
raw_values() { awk -F'\t' -v s="$1" -v l="$2" -v d="$3" -v c="$4" 'NR > 1 && $2 == s && $6 == l && $4 == d { print $c }' "$RAW"; }

{
    echo
    echo "## Throughput (median of $ROUNDS rounds)"
    echo
    printf '| %-36s | %8s | %12s | %12s | %5s | %6s | %9s | %9s | %9s |\n' test pipeline "moonkv ops/s" "redis ops/s" ratio \
        paired "moonkv µs" "redis µs" "CPU ratio"
    printf '|%s|%s:|%s:|%s:|%s:|%s:|%s:|%s:|%s:|\n' "$(printf -- '-%.0s' {1..38})" --------- ------------- ------------- ------ \
        ------- ---------- ---------- ----------
    : >"$WORK/ratios"
    : >"$WORK/paired_ratios"
    : >"$WORK/cpu_ratios"
    for key in "${ROW_KEYS[@]}"; do
        label=${key%$'\t'*} depth=${key#*$'\t'}
        m=$(raw_values moonkv "$label" "$depth" 7 | median)
        r=$(raw_values redis "$label" "$depth" 7 | median)
        q=$(ratio "$m" "$r")
        [[ $q == n/a ]] || echo "$q" >>"$WORK/ratios"
        mc=$(raw_values moonkv "$label" "$depth" 11 | median)
        rc=$(raw_values redis "$label" "$depth" 11 | median)
        qc=$(ratio "$mc" "$rc")
        [[ $qc == n/a ]] || echo "$qc" >>"$WORK/cpu_ratios"
        # The median of the per-round ratios: each round runs both servers back to back, so a
        # pair shares the machine's state of the moment (this machine drifts a lot).
        qp=$(paste <(raw_values moonkv "$label" "$depth" 7) <(raw_values redis "$label" "$depth" 7) |
            awk '$2 > 0 { printf "%.4f\n", $1 / $2 }' | median)
        qp=$(awk -v v="$qp" 'BEGIN { if (v == "") print "n/a"; else printf "%.2f", v }')
        [[ $qp == n/a ]] || echo "$qp" >>"$WORK/paired_ratios"
        printf '| %-36s | %8s | %12.0f | %12.0f | %5s | %6s | %9.2f | %9.2f | %9s |\n' "$label" "$depth" "${m:-0}" "${r:-0}" "$q" \
            "$qp" "${mc:-0}" "${rc:-0}" "$qc"
    done
    geomean() { awk '$1 > 0 { s += log($1); n++ } END { if (n) printf "%.2f", exp(s / n); else print "n/a" }' "$1"; }
    printf '| %-36s | %8s | %12s | %12s | %5s | %6s | %9s | %9s | %9s |\n' "geometric mean" "" "" "" "$(geomean "$WORK/ratios")" \
        "$(geomean "$WORK/paired_ratios")" "" "" "$(geomean "$WORK/cpu_ratios")"
    echo
    echo "ratio = median moonkv ops/s / median redis ops/s; paired = median over rounds of the ratio within" \
        "the round (both servers measured back to back)." \
        "µs = server CPU time (user + system) per request, median of the rounds; CPU ratio = moonkv / redis" \
        "(lower is better). At pipeline 1 the client is the bottleneck, so ops/s there measure redis-benchmark more" \
        "than the server; CPU per request measures the server either way."
} >"$REPORT.tput"
((${#JOBS[@]})) || : >"$REPORT.tput" # memory only: no throughput table

# per-round table (with spread) for the log
{
    echo
    echo "## Per-round ops/s (spread = (max - min) / median)"
    echo
    printf '| test | pipeline | side |'; for ((i = 1; i <= ROUNDS; i++)); do printf ' r%d |' "$i"; done; echo ' median | spread |'
    printf '|---|---:|---|'; for ((i = 1; i <= ROUNDS; i++)); do printf -- '---:|'; done; printf '%s\n' '---:|---:|'
    for key in "${ROW_KEYS[@]}"; do
        label=${key%$'\t'*} depth=${key#*$'\t'}
        for side in moonkv redis; do
            printf '| %s | %s | %s |' "$label" "$depth" "$side"
            raw_values "$side" "$label" "$depth" 7 | awk '{ printf " %.0f |", $1 }'
            med=$(raw_values "$side" "$label" "$depth" 7 | median)
            raw_values "$side" "$label" "$depth" 7 | sort -g | awk -v m="$med" '
                { a[NR] = $1 } END { printf " %.0f | %.1f%% |\n", m, (m > 0 ? 100 * (a[NR] - a[1]) / m : 0) }'
        done
    done
    echo
    echo "## Paired ratios (moonkv / redis within each round, back to back)"
    echo
    printf '| test | pipeline |'; for ((i = 1; i <= ROUNDS; i++)); do printf ' r%d |' "$i"; done; echo ' median |'
    printf '|---|---:|'; for ((i = 1; i <= ROUNDS; i++)); do printf -- '---:|'; done; printf '%s\n' '---:|'
    for key in "${ROW_KEYS[@]}"; do
        label=${key%$'\t'*} depth=${key#*$'\t'}
        paste <(raw_values moonkv "$label" "$depth" 7) <(raw_values redis "$label" "$depth" 7) |
            awk '$2 > 0 { printf "%.2f\n", $1 / $2 }' >"$WORK/paired"
        printf '| %s | %s |' "$label" "$depth"
        awk '{ printf " %s |", $1 }' "$WORK/paired"
        printf ' %.2f |\n' "$(median <"$WORK/paired")"
    done
} >"$OUT/rounds.md"

# ---------------------------------------------------------------------------------------------
# memory: for each kind, fresh instances of both servers loaded with the same data through
# redis-cli --pipe: MEMORY_KEYS string keys, or one collection of MEMORY_KEYS elements.

memory_load_file() { # kind -> writes $WORK/load-<kind>.resp, echoes the expected DBSIZE
    local kind=$1 file="$WORK/load-$1.resp"
    case $kind in
    strings)
        awk -v n="$MEMORY_KEYS" 'BEGIN { for (i = 1; i <= n; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n", i }' >"$file"
        echo "$MEMORY_KEYS" ;;
    list | set | hash | zset)
        # 100 elements per command; elements "e:%012d" (14 bytes), hash values "xxx", scores i.
        awk -v n="$MEMORY_KEYS" -v kind="$kind" 'BEGIN {
            per = 100
            for (start = 1; start <= n; start += per) {
                cnt = (n - start + 1 < per) ? n - start + 1 : per
                if (kind == "list") { printf "*%d\r\n$5\r\nRPUSH\r\n$4\r\nbig:\r\n", cnt + 2 }
                if (kind == "set") { printf "*%d\r\n$4\r\nSADD\r\n$4\r\nbig:\r\n", cnt + 2 }
                if (kind == "hash") { printf "*%d\r\n$4\r\nHSET\r\n$4\r\nbig:\r\n", 2 * cnt + 2 }
                if (kind == "zset") { printf "*%d\r\n$4\r\nZADD\r\n$4\r\nbig:\r\n", 2 * cnt + 2 }
                for (i = start; i < start + cnt; i++) {
                    if (kind == "zset") { s = sprintf("%d", i); printf "$%d\r\n%s\r\n", length(s), s }
                    printf "$14\r\ne:%012d\r\n", i
                    if (kind == "hash") { printf "$3\r\nxxx\r\n" }
                }
            }
        }' >"$file"
        echo 1 ;;
    stream)
        # One XADD per entry, IDs chosen by the server; two fields, as a job queue writes them.
        awk -v n="$MEMORY_KEYS" 'BEGIN {
            for (i = 1; i <= n; i++) {
                v = sprintf("%d", i)
                printf "*7\r\n$4\r\nXADD\r\n$4\r\nbig:\r\n$1\r\n*\r\n$4\r\nname\r\n$14\r\ne:%012d\r\n$1\r\nn\r\n$%d\r\n%s\r\n", i, length(v), v
            }
        }' >"$file"
        echo 1 ;;
    *) die "unknown memory kind '$kind' (strings, list, set, hash, zset, stream)" ;;
    esac
}

: >"$REPORT.mem"
if ((DO_MEMORY)); then
    declare -A MEM=()
    mib() { [[ -n $1 ]] && awk -v v="$1" -v d="$2" 'BEGIN { printf "%.1f", v / d }' || echo n/a; }
    per_item() { awk -v a="$1" -v b="$2" -v n="$MEMORY_KEYS" 'BEGIN { printf "%.1f", (b - a) * 1024 / n }'; }
    mem_row() { printf '| %-36s | %10s | %10s | %5s |\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
    {
        echo
        echo "## Memory (fresh instances per row, loaded with redis-cli --pipe)"
        echo
        echo "strings: $MEMORY_KEYS keys \`key:%012d\` = \`xxx\`; list/set/hash/zset: one key holding $MEMORY_KEYS" \
            "elements \`e:%012d\` (hash values \`xxx\`, zset scores 1..N); stream: one key holding $MEMORY_KEYS entries \`name e:%012d n i\`. Bytes per item = RSS growth / items."
        echo
        printf '| %-36s | %10s | %10s | %5s |\n' metric moonkv redis ratio
        printf '|%s|%s:|%s:|%s:|\n' "$(printf -- '-%.0s' {1..38})" ----------- ----------- ------
    } >"$REPORT.mem"
    for kind in ${MEMORY_KINDS//,/ }; do
        note "generating the $kind load ($MEMORY_KEYS items)"
        expected_dbsize=$(memory_load_file "$kind")
        for side in moonkv redis; do
            start_side "$side" "memory-$kind"
            pid_var=PID_$side port_var=PORT_$side log_var=LOG_$side
            pid=${!pid_var} port=${!port_var}
            sleep 0.5
            MEM[$side.rss0]=$(vmrss_kb "$pid")
            note "loading $kind into $side (pid $pid, port $port)"
            t0=$(now)
            rc=0
            timeout -k 5 600 redis-cli -h 127.0.0.1 -p "$port" --pipe <"$WORK/load-$kind.resp" >"$WORK/pipe.out" 2>&1 || rc=$?
            t1=$(now)
            cat "$WORK/pipe.out" >>"$LOG"
            kill -0 "$pid" 2>/dev/null || server_died "$side" "${!log_var}"
            ((rc == 0)) || { cat "$WORK/pipe.out" >&2; die "redis-cli --pipe failed against $side (exit $rc)"; }
            grep -q "errors: 0," "$WORK/pipe.out" ||
                { cat "$WORK/pipe.out" >&2; die "loading $kind into $side: unexpected redis-cli --pipe result"; }
            dbsize=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" dbsize 2>/dev/null || true)
            [[ $dbsize == "$expected_dbsize" ]] || die "$side reports DBSIZE '$dbsize' after loading $kind"
            sleep 1
            MEM[$side.rss1]=$(vmrss_kb "$pid")
            MEM[$side.used]=$(used_memory "$port")
            MEM[$side.load]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
            log "memory $kind [$side]: rss_empty=${MEM[$side.rss0]}kB rss_loaded=${MEM[$side.rss1]}kB used_memory=${MEM[$side.used]:-n/a} load=${MEM[$side.load]}s"
            stop_server "$pid"
        done
        {
            mem_row "$kind: RSS loaded (MiB)" "$(mib "${MEM[moonkv.rss1]}" 1024)" "$(mib "${MEM[redis.rss1]}" 1024)"
            mem_row "$kind: bytes per item (RSS growth)" "$(per_item "${MEM[moonkv.rss0]}" "${MEM[moonkv.rss1]}")" \
                "$(per_item "${MEM[redis.rss0]}" "${MEM[redis.rss1]}")"
            mem_row "$kind: used_memory (MiB)" "$(mib "${MEM[moonkv.used]}" 1048576)" "$(mib "${MEM[redis.used]}" 1048576)"
        } >>"$REPORT.mem"
    done
fi

# ---------------------------------------------------------------------------------------------

T_END=$(now)
{
    cat "$REPORT.header" "$REPORT.tput" "$REPORT.mem"
    echo
    echo "Total time: $(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%d min %d s", (b - a) / 60, (b - a) % 60 }')." \
        "Ratio = moonkv / redis (higher is better for ops/s, lower is better for memory)."
} >"$REPORT"
rm -f "$REPORT.header" "$REPORT.tput" "$REPORT.mem"
cat "$REPORT"
note "report: $REPORT; per-round numbers: $OUT/rounds.md, $RAW; commands and raw output: $LOG"
