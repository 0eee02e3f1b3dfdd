#!/usr/bin/env bash
# Runs the Lua crate's tests (crates/lua: unit tests, tests/vm.rs, tests/fuzz.rs) under
# memory-error detectors, since that crate is Rust and C (Lua 5.1) joined by FFI:
#
#   asan      AddressSanitizer + LeakSanitizer. The C Lua is compiled with -fsanitize=address
#             (build.rs honours MOONKV_LUA_SANITIZE=address) and the Rust side with
#             -Zsanitizer=address, a nightly flag that RUSTC_BOOTSTRAP=1 enables on the stable
#             toolchain; it needs an explicit --target so build scripts stay uninstrumented.
#             Builds into target/asan, so the normal build cache is left alone. Finds
#             out-of-bounds accesses (heap, stack, globals) and use-after-free in both
#             languages, and leaks at exit. The fuzz test runs more cases here.
#   valgrind  memcheck over the ordinary debug test binaries: also reports reads of
#             uninitialised memory, which ASan does not; definite leaks are errors.
#   all       both (the default; what CI runs).
#
# Miri does not apply: it cannot execute the C side of the FFI.
#
# Tests run one at a time (--test-threads=1), to keep the tools' memory use and output
# readable.
#
# Knobs: ASAN_FUZZ_CASES (default 20000) and VALGRIND_FUZZ_CASES (default 300) set the random
# inputs per decoder of crates/lua/tests/fuzz.rs in each mode.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-all}
case "$mode" in
asan | valgrind | all) ;;
*)
    echo "usage: $0 [asan|valgrind|all]" >&2
    exit 2
    ;;
esac

host=$(rustc -vV | sed -n 's/^host: //p')
sysroot=$(rustc --print sysroot)

# In a subshell: the sanitizer environment stays inside.
run_asan() (
    local rt="$sysroot/lib/rustlib/$host/lib/librustc-stable_rt.asan.a"
    if [ ! -f "$rt" ]; then
        echo "!! SKIPPED: AddressSanitizer: the toolchain has no ASan runtime for $host ($rt)"
        return 0
    fi
    echo "== AddressSanitizer: moonkv-lua tests (C Lua and Rust instrumented)"
    export RUSTC_BOOTSTRAP=1 MOONKV_LUA_SANITIZE=address RUSTFLAGS="-Zsanitizer=address"
    local cargo_args=(-p moonkv-lua --locked --target "$host" --target-dir target/asan)
    cargo test "${cargo_args[@]}" --no-run
    # LeakSanitizer needs to stop the process's threads (ptrace); some containers forbid
    # that. Probe once with a harmless run and keep leak checking when it works.
    local leaks=1 probe
    probe=$(cargo test "${cargo_args[@]}" --test vm --no-run --message-format=json 2>/dev/null |
        grep -o '"executable":"[^"]*"' | sed 's/"executable":"//;s/"$//' | head -n1)
    if ! ASAN_OPTIONS=detect_leaks=1 "$probe" --list >/dev/null 2>/tmp/moonkv-lsan-probe.$$; then
        if grep -q "LeakSanitizer" /tmp/moonkv-lsan-probe.$$; then
            echo "!! LeakSanitizer does not work here (ptrace refused?): leak checking off"
            leaks=0
        else
            cat /tmp/moonkv-lsan-probe.$$ >&2
            rm -f /tmp/moonkv-lsan-probe.$$
            return 1
        fi
    fi
    rm -f /tmp/moonkv-lsan-probe.$$
    ASAN_OPTIONS="detect_leaks=$leaks:halt_on_error=1:detect_stack_use_after_return=1" \
        MOONKV_FUZZ_CASES="${ASAN_FUZZ_CASES:-20000}" \
        cargo test "${cargo_args[@]}" -- --test-threads=1
)

run_valgrind() {
    if ! command -v valgrind >/dev/null; then
        echo "!! SKIPPED: valgrind is not installed"
        return 0
    fi
    echo "== valgrind memcheck: moonkv-lua test binaries"
    local bins
    bins=$(cargo test -p moonkv-lua --locked --no-run --message-format=json |
        grep -o '"executable":"[^"]*"' | sed 's/"executable":"//;s/"$//')
    local logs pids=() names=() status=0
    logs=$(mktemp -d)
    # One binary per core at a time is enough: two cores, three binaries, one of them tiny.
    for bin in $bins; do
        local name
        name=$(basename "$bin")
        (cd crates/lua && MOONKV_FUZZ_CASES="${VALGRIND_FUZZ_CASES:-300}" MOONKV_FUZZ_TIME_SCALE=50 \
            valgrind -q --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
            --errors-for-leak-kinds=definite "$bin" --test-threads=1 >"$logs/$name.log" 2>&1) &
        pids+=($!)
        names+=("$name")
    done
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then
            echo "   ok: ${names[$i]} ($(grep -h '^test result' "$logs/${names[$i]}.log" | tr '\n' ' '))"
        else
            echo "!! FAILED under valgrind: ${names[$i]}"
            cat "$logs/${names[$i]}.log"
            status=1
        fi
    done
    rm -rf "$logs"
    return $status
}

started=$SECONDS
if [ "$mode" = asan ] || [ "$mode" = all ]; then
    run_asan
fi
if [ "$mode" = valgrind ] || [ "$mode" = all ]; then
    run_valgrind
fi
echo "== sanitize.sh $mode: passed in $((SECONDS - started))s"
