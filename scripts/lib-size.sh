#!/usr/bin/env bash
# Builds the library apps ship (kith-ffi, profile release-ffi, stripped, with
# the link arguments of scripts/lib/ffi-build.sh) for each Linux target and
# prints its size, stripped and gzipped (gzip -9), against the 6 MB budget
# (issue 15; 1 MB = 1 000 000 bytes). bindings/README.md ("Library size")
# records the figures and what weighs what.
#
# Usage: scripts/lib-size.sh [--check] [TARGET...]
#   TARGET   default: x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu
#            (the aarch64 cross build needs `rustup target add
#            aarch64-unknown-linux-gnu` and Debian's gcc-aarch64-linux-gnu)
#   --check  exit 1 if a library is over the budget
# A first release-ffi build of a target takes 4-10 minutes here (fat LTO, one
# codegen unit); later ones redo only kith-ffi's LTO when nothing else changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"
# shellcheck source=scripts/lib/ffi-build.sh
. scripts/lib/ffi-build.sh

budget_bytes=6000000
check=false
targets=()
for arg in "$@"; do
    case "$arg" in
        --check) check=true ;;
        -*) echo "unknown option: $arg (usage: $0 [--check] [TARGET...])" >&2; exit 2 ;;
        *) targets+=("$arg") ;;
    esac
done
[ ${#targets[@]} -eq 0 ] && targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu)

mb() { awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1000000 }'; }

over=0
printf '%-28s %14s %14s  %s\n' target stripped gzipped budget
for target in "${targets[@]}"; do
    ffi_prepare_target "$target"
    ffi_build "$target" release-ffi
    lib="$(ffi_lib_dir "$target" release-ffi)/libkith_ffi.so"
    # The release-ffi profile strips symbols; strip again in case a caller
    # overrode it, so the figure is always the stripped one.
    stripped="$(mktemp)"
    strip_tool="strip"
    case "$target" in
        aarch64-*) command -v aarch64-linux-gnu-strip >/dev/null 2>&1 && strip_tool=aarch64-linux-gnu-strip ;;
    esac
    "$strip_tool" -o "$stripped" "$lib"
    size_bytes="$(wc -c <"$stripped")"
    gzip_bytes="$(gzip -9c "$stripped" | wc -c)"
    # The stripped library must load and answer a call (scripts/lib/ffi-smoke.c),
    # natively or, for another CPU, under qemu-user when it is installed.
    smoke="$(mktemp)"
    "$(ffi_cc "$target")" -O1 scripts/lib/ffi-smoke.c -o "$smoke" -ldl
    runner=()
    if [ "${target%%-*}" != "$(uname -m)" ]; then
        runner=("qemu-${target%%-*}" -L "/usr/${target%%-unknown-*}-${target#*-unknown-}")
        command -v "${runner[0]}" >/dev/null 2>&1 || runner=()
    fi
    if [ "${target%%-*}" = "$(uname -m)" ] || [ ${#runner[@]} -gt 0 ]; then
        ${runner[@]+"${runner[@]}"} "$smoke" "$stripped" >&2 || { echo "error: the $target library does not load or run" >&2; exit 1; }
    else
        echo "note: $target library not run (no qemu-${target%%-*}; Debian: apt-get install qemu-user)" >&2
    fi
    # What the release build promises (scripts/lib/ffi-build.sh): no unwind
    # tables left to carry, and no path of the builder's cargo home in the
    # panic locations.
    if [[ "$(ffi_link_args "$target" release-ffi 2>/dev/null)" == *no-unwind-tables.ld* ]] &&
        readelf -SW "$stripped" | grep -qE ' \.(eh_frame|gcc_except_table)'; then
        echo "error: the $target library still has unwind tables (ffi_no_unwind_tables_arg)" >&2
        exit 1
    fi
    if grep -qF "${CARGO_HOME:-$HOME/.cargo}/" "$stripped"; then
        echo "error: the $target library names the builder's cargo home (ffi_remap_flags)" >&2
        exit 1
    fi
    rm -f "$stripped" "$smoke"
    verdict=ok
    if [ "$size_bytes" -gt "$budget_bytes" ]; then verdict="OVER by $(mb $((size_bytes - budget_bytes)))"; over=1; fi
    printf '%-28s %14s %14s  %s\n' "$target" "$(mb "$size_bytes") ($size_bytes)" "$(mb "$gzip_bytes")" "$verdict"
done
if $check && [ "$over" -ne 0 ]; then
    echo "a library is over the $(mb "$budget_bytes") budget" >&2
    exit 1
fi
