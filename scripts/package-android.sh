#!/usr/bin/env bash
# Packages kith-ffi for Android: an AAR layout with the library for each ABI,
# the generated Kotlin bindings and a manifest, zipped into kith-ffi.aar when
# the Kotlin classes could be compiled.
#
#   OUT/kith-ffi/AndroidManifest.xml           minSdk (default 24)
#   OUT/kith-ffi/jniLibs/<abi>/libkith_ffi.so  arm64-v8a, armeabi-v7a, x86_64
#   OUT/kith-ffi/kotlin/dev/kith/kith_ffi.kt   generated (uniffi), package dev.kith
#   OUT/kith-ffi/classes.jar                   the Kotlin compiled (if kotlinc, JNA
#                                              and kotlinx-coroutines jars are found)
#   OUT/kith-ffi.aar                           AndroidManifest.xml, classes.jar,
#                                              jni/<abi>/libkith_ffi.so, R.txt
# In a Gradle module the same files go to src/main/jniLibs/<abi>/ and
# src/main/kotlin/; the app adds net.java.dev.jna:jna (@aar) and
# kotlinx-coroutines-core (bindings/README.md, "Android").
#
# Android builds need the NDK: ANDROID_NDK_HOME (or ANDROID_NDK_ROOT) pointing
# at it, and the Rust targets aarch64-linux-android, armv7-linux-androideabi,
# x86_64-linux-android (rustup target add ...). Plain cargo links with the
# NDK's clang for API level --min-sdk; cargo-ndk is not needed.
#
# --host-only builds the same layout from Linux (glibc) builds instead, with
# no NDK: x86_64-unknown-linux-gnu as the x86_64 ABI and, with
# --target aarch64-unknown-linux-gnu, the arm64-v8a one. The libraries are
# then not loadable on Android (they link glibc, not bionic); the mode checks
# the script, the bindings and the layout end to end, and the test flow runs
# it (scripts/test.sh, dev profile) so that the script cannot rot.
#
# Usage: scripts/package-android.sh [--host-only [--target TRIPLE]...]
#          [--profile release-ffi|release|dev] [--min-sdk N] [--out DIR] [--no-classes]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"
# shellcheck source=scripts/lib/ffi-build.sh
. scripts/lib/ffi-build.sh

usage="usage: $0 [--host-only [--target TRIPLE]...] [--profile P] [--min-sdk N] [--out DIR] [--no-classes]"
host_only=false
profile=release-ffi
min_sdk=24
out=bindings/generated/android
classes=true
host_targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --host-only) host_only=true; shift ;;
        --target) host_targets+=("${2:?$usage}"); shift 2 ;;
        --profile) profile="${2:?$usage}"; shift 2 ;;
        --min-sdk) min_sdk="${2:?$usage}"; shift 2 ;;
        --out) out="${2:?$usage}"; shift 2 ;;
        --no-classes) classes=false; shift ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
done
case "$profile" in dev|release|release-ffi) ;; *) echo "unknown profile $profile; $usage" >&2; exit 2 ;; esac
if [ ${#host_targets[@]} -gt 0 ] && ! $host_only; then
    echo "--target is for --host-only builds; Android builds always make the three ABIs" >&2
    exit 2
fi

# abi_of TRIPLE: the Android ABI directory a Rust target's library goes to.
abi_of() {
    case "$1" in
        aarch64-linux-android | aarch64-unknown-linux-gnu) echo arm64-v8a ;;
        armv7-linux-androideabi) echo armeabi-v7a ;;
        x86_64-linux-android | x86_64-unknown-linux-gnu) echo x86_64 ;;
        *) echo "no Android ABI for $1 (only x86_64 and aarch64 Linux in --host-only mode)" >&2; return 1 ;;
    esac
}

# elf_machine ABI: what `readelf -h` says a library of that ABI runs on.
elf_machine() {
    case "$1" in
        arm64-v8a) echo AArch64 ;;
        armeabi-v7a) echo ARM ;;
        x86_64) echo X86-64 ;;
    esac
}

# The Android targets: check the NDK and export its clang as each target's
# linker and C compiler (ring compiles C and assembly).
setup_ndk() {
    local ndk="${ANDROID_NDK_HOME:-${ANDROID_NDK_ROOT:-}}"
    if [ -z "$ndk" ] || [ ! -d "$ndk" ]; then
        echo "error: the Android NDK is needed: set ANDROID_NDK_HOME to it (Android Studio: SDK Manager > SDK Tools > NDK)," >&2
        echo "       or run '$0 --host-only' to build the layout from Linux libraries without it" >&2
        exit 1
    fi
    local host_tag
    case "$(uname -s)" in
        Linux) host_tag=linux-x86_64 ;;
        Darwin) host_tag=darwin-x86_64 ;;   # the NDK ships universal binaries under this name
        *) echo "error: unsupported build host $(uname -s) for the NDK" >&2; exit 1 ;;
    esac
    local bin="$ndk/toolchains/llvm/prebuilt/$host_tag/bin"
    if [ ! -x "$bin/clang" ]; then
        echo "error: no NDK clang in $bin (NDK r23 or newer is needed)" >&2
        exit 1
    fi
    local missing=()
    for target in aarch64-linux-android armv7-linux-androideabi x86_64-linux-android; do
        rustup target list --installed 2>/dev/null | grep -qx "$target" || missing+=("$target")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "error: Rust targets missing: rustup target add ${missing[*]}" >&2
        exit 1
    fi
    export CARGO_TARGET_AARCH64_LINUX_ANDROID_LINKER="$bin/aarch64-linux-android$min_sdk-clang"
    export CC_aarch64_linux_android="$bin/aarch64-linux-android$min_sdk-clang"
    export AR_aarch64_linux_android="$bin/llvm-ar"
    export CARGO_TARGET_ARMV7_LINUX_ANDROIDEABI_LINKER="$bin/armv7a-linux-androideabi$min_sdk-clang"
    export CC_armv7_linux_androideabi="$bin/armv7a-linux-androideabi$min_sdk-clang"
    export AR_armv7_linux_androideabi="$bin/llvm-ar"
    export CARGO_TARGET_X86_64_LINUX_ANDROID_LINKER="$bin/x86_64-linux-android$min_sdk-clang"
    export CC_x86_64_linux_android="$bin/x86_64-linux-android$min_sdk-clang"
    export AR_x86_64_linux_android="$bin/llvm-ar"
    for v in CARGO_TARGET_AARCH64_LINUX_ANDROID_LINKER CARGO_TARGET_ARMV7_LINUX_ANDROIDEABI_LINKER \
        CARGO_TARGET_X86_64_LINUX_ANDROID_LINKER; do
        if [ ! -x "${!v}" ]; then
            echo "error: ${!v} is missing: this NDK has no API $min_sdk toolchain (--min-sdk)" >&2
            exit 1
        fi
    done
}

if $host_only; then
    [ ${#host_targets[@]} -eq 0 ] && host_targets=("$(rustc -vV | sed -n 's/^host: //p')")
    targets=("${host_targets[@]}")
    for target in "${targets[@]}"; do
        abi_of "$target" >/dev/null
        ffi_prepare_target "$target"
    done
else
    targets=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android)
    setup_ndk
fi

package="$out/kith-ffi"
rm -rf "${package:?}" "$out/kith-ffi.aar"
mkdir -p "$package"

for target in "${targets[@]}"; do
    abi="$(abi_of "$target")"
    echo "== $abi: building kith-ffi for $target ($profile)"
    ffi_build "$target" "$profile"
    mkdir -p "$package/jniLibs/$abi"
    cp "$(ffi_lib_dir "$target" "$profile")/libkith_ffi.so" "$package/jniLibs/$abi/"
done

# The Kotlin bindings come from the API metadata of a host dev build of the
# same features (no test hooks), as scripts/bindings.sh does: the metadata
# does not depend on the target or the profile.
echo "== kotlin bindings"
cargo build --quiet -p kith-ffi --lib
case "$(uname -s)" in Darwin) host_lib=libkith_ffi.dylib ;; *) host_lib=libkith_ffi.so ;; esac
cargo run --quiet -p kith-ffi --features bindgen --bin uniffi-bindgen -- \
    generate --library "$CARGO_TARGET_DIR/debug/$host_lib" --no-format \
    --language kotlin --out-dir "$package/kotlin" >/dev/null
# Hand-written Kotlin shipped with the generated file, when there is some.
if [ -d bindings/kotlin ]; then
    cp -R bindings/kotlin/. "$package/kotlin/"
fi

cat >"$package/AndroidManifest.xml" <<MANIFEST
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android"
    package="dev.kith.ffi">
    <uses-sdk android:minSdkVersion="$min_sdk" />
</manifest>
MANIFEST

# classes.jar: the Kotlin sources compiled against JNA and kotlinx-coroutines
# (the same jars scripts/test-bindings.sh installs), when they are here.
kotlinc_bin="$(command -v kotlinc || echo "$HOME/.cache/kith/npm/node_modules/kotlin-compiler/bin/kotlinc")"
kotlin_lib="$(dirname "$(dirname "$kotlinc_bin")")/lib"
jna_jar=/usr/share/java/jna.jar
if $classes && [ -x "$kotlinc_bin" ] && [ -f "$jna_jar" ] && [ -f "$kotlin_lib/kotlinx-coroutines-core-jvm.jar" ]; then
    echo "== classes.jar (kotlinc)"
    find "$package/kotlin" -name '*.kt' -print0 | xargs -0 "$kotlinc_bin" -nowarn \
        -cp "$jna_jar:$kotlin_lib/kotlinx-coroutines-core-jvm.jar" -d "$package/classes.jar"
else
    $classes && echo "note: classes.jar skipped: kotlinc, $jna_jar or kotlinx-coroutines not found (scripts/test-bindings.sh installs them)"
fi

# Check the layout: every ABI has a library for its machine that exports the
# uniffi API, and the bindings are there.
echo "== checking the layout"
for target in "${targets[@]}"; do
    abi="$(abi_of "$target")"
    lib="$package/jniLibs/$abi/libkith_ffi.so"
    machine="$(readelf -h "$lib" | sed -n 's/^ *Machine: *//p')"
    case "$machine" in
        *"$(elf_machine "$abi")"*) ;;
        *) echo "error: $lib is for '$machine', not $abi" >&2; exit 1 ;;
    esac
    exported="$(readelf --dyn-syms --wide "$lib" | grep -c ' uniffi_kith_ffi_fn_' || true)"
    if [ "$exported" -eq 0 ]; then
        echo "error: $lib exports no uniffi functions" >&2
        exit 1
    fi
    printf '%-12s %10d bytes  %s functions exported\n' "$abi" "$(wc -c <"$lib")" "$exported"
done
if ! grep -q '^package dev.kith' "$package/kotlin/dev/kith/kith_ffi.kt"; then
    echo "error: no Kotlin bindings in $package/kotlin/dev/kith/kith_ffi.kt" >&2
    exit 1
fi

# The .aar itself needs classes.jar; it maps jniLibs/ to the AAR's jni/.
if [ -f "$package/classes.jar" ]; then
    python3 - "$package" "$out/kith-ffi.aar" <<'PY'
import os, sys, zipfile
package, aar = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(aar, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(os.path.join(package, "AndroidManifest.xml"), "AndroidManifest.xml")
    z.write(os.path.join(package, "classes.jar"), "classes.jar")
    z.writestr("R.txt", "")
    libs = os.path.join(package, "jniLibs")
    for abi in sorted(os.listdir(libs)):
        z.write(os.path.join(libs, abi, "libkith_ffi.so"), f"jni/{abi}/libkith_ffi.so")
PY
    echo "android package: $out/kith-ffi.aar (layout in $package)"
else
    echo "android layout: $package (no .aar without classes.jar)"
fi
$host_only && echo "note: --host-only: Linux (glibc) libraries in the Android layout, for checking; not loadable on Android"
exit 0
