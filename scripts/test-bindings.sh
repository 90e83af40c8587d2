#!/usr/bin/env bash
# Tests the phone bindings for real: builds kith-ffi with its test hooks,
# generates the Kotlin/Swift/Python bindings (scripts/bindings.sh), then runs
#   - the pytest suite bindings/tests/python (which also runs examples/python),
#   - the Kotlin test program bindings/tests/kotlin and the Kotlin example
#     examples/kotlin/AfterTheMeeting.kt on the JVM through JNA.
# The sync tests of both start the kith-relay binary built here (its path in
# KITH_RELAY_BIN) on 127.0.0.1:0 and kill it when done.
# Installs what it needs when missing: pytest (pip), JNA (Debian libjna-java),
# the Kotlin compiler (npm package kotlin-compiler, into ~/.cache/kith/npm; its
# lib/ ships the kotlin stdlib and kotlinx-coroutines jars).
# KITH_FFI_PROFILE=release-ffi runs the same tests against the optimised
# library (the binding cost figures the harnesses print come from that run).
# `--bench` runs only the FFI call-overhead loop instead of the tests: Kotlin
# `getContact` (a suspend call since every store call is async) and the same
# call from Rust (`cargo bench --bench log_interaction`), in ns/call; nothing
# is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"

KOTLIN_COMPILER_VERSION=2.4.20
npm_prefix="$HOME/.cache/kith/npm"
kotlin_home="$npm_prefix/node_modules/kotlin-compiler"
jna_jar=/usr/share/java/jna.jar

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
    if ! command -v java >/dev/null 2>&1; then
        echo "== installing a Java runtime (default-jdk-headless)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless
    fi
    if ! python3 -m pytest --version >/dev/null 2>&1; then
        echo "== installing pytest"
        # A Debian system Python refuses plain pip installs (PEP 668).
        python3 -m pip install --quiet pytest ||
            python3 -m pip install --quiet --break-system-packages pytest
    fi
    if [ ! -f "$jna_jar" ]; then
        echo "== installing libjna-java"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjna-java
    fi
    if [ ! -x "$kotlin_home/bin/kotlinc" ]; then
        echo "== installing kotlin-compiler $KOTLIN_COMPILER_VERSION (npm)"
        npm install --silent --no-audit --no-fund --prefix "$npm_prefix" \
            "kotlin-compiler@$KOTLIN_COMPILER_VERSION"
    fi
}

bench=0
if [ "${1:-}" = --bench ]; then bench=1; fi

install_missing

profile="${KITH_FFI_PROFILE:-dev}"
echo "== generating bindings (profile $profile, with test hooks)"
scripts/bindings.sh --profile "$profile" --test-hooks

# The sync tests (Python and Kotlin) start the real relay binary on
# 127.0.0.1:0 and read its address from its first line of output.
echo "== building kith-relay for the sync tests"
cargo build --quiet -p kith-relay --bin kith-relay
export KITH_RELAY_BIN="$CARGO_TARGET_DIR/debug/kith-relay"

if [ "$bench" = 0 ]; then
    echo "== python binding tests"
    python3 -m pytest -q bindings/tests/python
fi

echo "== kotlin: compiling the bindings, KithFlows.kt and the tests"
jvm_out=bindings/generated/jvm
mkdir -p "$jvm_out"
classpath="$jna_jar:$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
# One compiler run for the generated bindings, the test program and the
# example: kotlinc's start-up dominates, so compiling once saves a minute.
"$kotlin_home/bin/kotlinc" -nowarn -cp "$classpath" \
    bindings/generated/kotlin/dev/kith/*.kt \
    bindings/tests/kotlin/*.kt \
    examples/kotlin/AfterTheMeeting.kt \
    -d "$jvm_out/kith-tests.jar"
run_jvm() {
    java -Djna.library.path="$PWD/bindings/generated/lib" \
        -cp "$jvm_out/kith-tests.jar:$classpath:$kotlin_home/lib/kotlin-stdlib.jar" "$@"
}
if [ "$bench" = 1 ]; then
    echo "== FFI call overhead (profile $profile)"
    run_jvm dev.kith.tests.BenchKt
    cargo bench --quiet -p kith-ffi --bench log_interaction --profile "$profile" \
        -- --get-contact-only
    exit 0
fi
echo "== kotlin binding tests"
run_jvm dev.kith.tests.KithTestKt
echo "== kotlin example: after the meeting"
example_dir="$(mktemp -d)"
trap 'rm -rf "$example_dir"' EXIT
# The example syncs its meeting to a relay started here (killed on exit).
"$KITH_RELAY_BIN" --data-dir "$example_dir/relay" --listen 127.0.0.1:0 \
    --metrics-listen off >"$example_dir/relay.out" 2>/dev/null &
relay_pid=$!
trap 'kill "$relay_pid" 2>/dev/null || true; rm -rf "$example_dir"' EXIT
for _ in $(seq 100); do
    [ -s "$example_dir/relay.out" ] && break
    sleep 0.1
done
relay_address="$(head -n 1 "$example_dir/relay.out")"
run_jvm dev.kith.examples.AfterTheMeetingKt "$example_dir/store" "$relay_address"
