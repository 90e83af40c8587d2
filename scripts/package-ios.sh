#!/usr/bin/env bash
# Packages kith-ffi for iOS: an XCFramework of the static library (device
# arm64; simulator arm64 + x86_64 in one fat slice) with the C module the
# generated Swift imports, and a Swift package around it (bindings/ios/Package.swift).
#
#   OUT/KithFFI.xcframework          ios-arm64/ and ios-arm64_x86_64-simulator/:
#                                    libkith_ffi.a + Headers/{kith_ffiFFI.h, module.modulemap}
#   OUT/KithFFI.xcframework.zip      for a remote binary target (checksum printed)
#   OUT/Sources/Kith/kith_ffi.swift  the generated Swift bindings
#   OUT/Package.swift                the package: `.package(path: OUT)` in an app
#
# Runs on macOS with Xcode only (xcodebuild, lipo, swift); elsewhere it stops
# at once and says so. Needs the Rust targets aarch64-apple-ios,
# aarch64-apple-ios-sim and x86_64-apple-ios (rustup target add ...).
#
# Usage: scripts/package-ios.sh [--profile release-ffi|release|dev] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"
# shellcheck source=scripts/lib/ffi-build.sh
. scripts/lib/ffi-build.sh

usage="usage: $0 [--profile release-ffi|release|dev] [--out DIR]"
profile=release-ffi
out=bindings/generated/ios
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="${2:?$usage}"; shift 2 ;;
        --out) out="${2:?$usage}"; shift 2 ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
case "$profile" in dev) profile_dir=debug ;; release|release-ffi) profile_dir="$profile" ;; *) echo "$usage" >&2; exit 2 ;; esac

if [ "$(uname -s)" != Darwin ]; then
    echo "error: package-ios.sh needs macOS with Xcode (xcodebuild -create-xcframework); this is $(uname -s)" >&2
    exit 1
fi
for tool in xcodebuild lipo swift; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool not found: install Xcode and run 'xcode-select --install'" >&2
        exit 1
    fi
done
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
missing=()
for target in "${targets[@]}"; do
    rustup target list --installed | grep -qx "$target" || missing+=("$target")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "error: Rust targets missing: rustup target add ${missing[*]}" >&2
    exit 1
fi

# The oldest iOS the library runs on (matches Package.swift's platforms).
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-15.0}"

for target in "${targets[@]}"; do
    echo "== building kith-ffi for $target ($profile)"
    if [ "$profile" = dev ]; then
        cargo build --quiet -p kith-ffi --lib --target "$target"
    else
        # release-ffi: no unwind tables (ffi_rustflags; the profile is panic = "abort").
        # --crate-type staticlib: with its `lib` type too, cargo would not run
        # the profile's LTO (see ffi_build in scripts/lib/ffi-build.sh).
        RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$(ffi_rustflags "$profile")" \
            cargo rustc --quiet -p kith-ffi --lib --crate-type staticlib --profile "$profile" --target "$target"
    fi
done

echo "== swift bindings"
# Generated from the host (macOS) dev build's metadata, as scripts/bindings.sh does.
cargo build --quiet -p kith-ffi --lib
gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT
cargo run --quiet -p kith-ffi --features bindgen --bin uniffi-bindgen -- \
    generate --library "$CARGO_TARGET_DIR/debug/libkith_ffi.dylib" --no-format \
    --language swift --out-dir "$gen" >/dev/null

rm -rf "${out:?}/KithFFI.xcframework" "${out:?}/KithFFI.xcframework.zip" "${out:?}/Sources" "$out/headers" "$out/sim"
mkdir -p "$out/headers" "$out/sim" "$out/Sources/Kith"
cp "$gen/kith_ffiFFI.h" "$out/headers/"
# An XCFramework's headers need the module map under this exact name.
cp "$gen/kith_ffiFFI.modulemap" "$out/headers/module.modulemap"
cp "$gen/kith_ffi.swift" "$out/Sources/Kith/"
if [ -d bindings/swift ]; then
    cp -R bindings/swift/. "$out/Sources/Kith/"
fi

lib_of() { echo "$CARGO_TARGET_DIR/$1/$profile_dir/libkith_ffi.a"; }
lipo -create "$(lib_of aarch64-apple-ios-sim)" "$(lib_of x86_64-apple-ios)" \
    -output "$out/sim/libkith_ffi.a"
xcodebuild -create-xcframework \
    -library "$(lib_of aarch64-apple-ios)" -headers "$out/headers" \
    -library "$out/sim/libkith_ffi.a" -headers "$out/headers" \
    -output "$out/KithFFI.xcframework"
rm -rf "${out:?}/headers" "${out:?}/sim"

cp bindings/ios/Package.swift "$out/Package.swift"
(cd "$out" && swift package describe >/dev/null)
(cd "$out" && zip -qry KithFFI.xcframework.zip KithFFI.xcframework)
checksum="$(cd "$out" && swift package compute-checksum KithFFI.xcframework.zip)"
echo "ios package: $out (Package.swift, KithFFI.xcframework; zip checksum $checksum)"
