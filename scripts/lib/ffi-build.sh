# shellcheck shell=bash
# Shared by scripts/bindings.sh, scripts/lib-size.sh and scripts/package-android.sh:
# how the app library (kith-ffi) is built for one Rust target, so the library
# measured is the library shipped. Source it; it defines functions only.
#
# Release builds add link arguments that only the final library needs (so they
# go through `cargo rustc`, which passes them to kith-ffi alone, and no other
# crate is rebuilt for them):
#   Linux (gnu):  rustc's own lld (-fuse-ld=lld from its gcc-ld directory),
#                 -z pack-relative-relocs  RELR relative relocations: the
#                 ~34 000 pointer relocations of the tables (vtables, string
#                 tables) take 8 KB instead of 300-800 KB. Needs glibc >= 2.36 at
#                 run time (the linker adds a GLIBC_ABI_DT_RELR dependency), so
#                 it is only used when the target's linker and libc support it;
#                 and --icf=all, as on Android (below).
#   Android:      -z max-page-size=16384 (loadable on 16 KB-page devices, which
#                 apps targeting Android 15+ must support),
#                 --pack-dyn-relocs=android (packed relocations, API 23+) and
#                 --icf=all (lld folds identical functions: generic code
#                 instantiated for different types often compiles to the same
#                 machine code; 186 KB less on x86_64 Linux).
# iOS needs nothing: Apple's linker writes chained fixups (compact) itself.

# ffi_cc TARGET: the C compiler that links for TARGET (empty for the host).
ffi_cc() {
    case "$1" in
        aarch64-unknown-linux-gnu)
            if [ "$(uname -m)" = aarch64 ]; then echo cc; else echo aarch64-linux-gnu-gcc; fi ;;
        *) echo cc ;;
    esac
}

# ffi_prepare_target TARGET: checks the Rust target and its linker are
# installed and exports what cargo needs to cross-link; fails with the command
# that installs what is missing.
ffi_prepare_target() {
    local target="$1" cc
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        if [ "$target" != "$(rustc -vV | sed -n 's/^host: //p')" ]; then
            echo "error: the Rust target $target is not installed: rustup target add $target" >&2
            return 1
        fi
    fi
    cc="$(ffi_cc "$target")"
    if ! command -v "$cc" >/dev/null 2>&1; then
        echo "error: no linker for $target: '$cc' is not installed (Debian: apt-get install gcc-aarch64-linux-gnu)" >&2
        return 1
    fi
    case "$target" in
        aarch64-unknown-linux-gnu)
            if [ "$cc" != cc ]; then
                export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-$cc}"
                export CC_aarch64_unknown_linux_gnu="${CC_aarch64_unknown_linux_gnu:-$cc}"
            fi ;;
    esac
}

# ffi_rust_lld_dir: the directory of rustc's own lld wrapper (gcc-ld/ld.lld),
# empty when this toolchain has none.
ffi_rust_lld_dir() {
    local dir
    dir="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
    [ -x "$dir/ld.lld" ] && echo "$dir"
    return 0
}

# ffi_link_args TARGET PROFILE: the extra link arguments of a release build
# (see above).
ffi_link_args() {
    local target="$1" profile="$2" cc probe lld_dir
    local lld=()
    case "$target" in
        *-linux-gnu)
            cc="$(ffi_cc "$target")"
            # Link with rustc's own lld (rust-lld; the default on x86_64 Linux
            # already, and the linker of the Android NDK): it writes RELR for
            # aarch64 too, where Debian 12's GNU ld 2.40 cannot, and folds
            # identical code (--icf=all).
            lld_dir="$(ffi_rust_lld_dir)"
            [ -n "$lld_dir" ] && lld=(-B"$lld_dir" -fuse-ld=lld)
            probe="$(mktemp)"
            # A relative relocation to pack (a pointer to a local) and a libc
            # call; then the RELR table must be there, and so must the
            # GLIBC_ABI_DT_RELR version need that makes a glibc older than
            # 2.36 refuse to load the library instead of crashing.
            if printf '#include <stdlib.h>\nstatic int kith_probe; int *kith_probe_address = &kith_probe;\nvoid *kith_probe_alloc(void) { return malloc(1); }\n' |
                "$cc" -shared -fPIC -x c - ${lld[@]+"${lld[@]}"} -Wl,-z,pack-relative-relocs -o "$probe" >/dev/null 2>&1 &&
                [[ "$(readelf -d "$probe" 2>/dev/null)" == *"(RELR)"* ]] &&
                [[ "$(readelf -V "$probe" 2>/dev/null)" == *GLIBC_ABI_DT_RELR* ]]; then
                if [ ${#lld[@]} -gt 0 ]; then
                    echo "-C link-arg=${lld[0]} -C link-arg=${lld[1]} -C link-arg=-Wl,--icf=all"
                    ffi_no_unwind_tables_arg "$profile"
                fi
                echo "-C link-arg=-Wl,-z,pack-relative-relocs"
            else
                echo "note: $cc cannot write RELR relocations with a glibc version check (binutils >= 2.41 on aarch64, glibc >= 2.36); the library is bigger" >&2
            fi
            rm -f "$probe" ;;
        *-linux-android*)
            echo "-C link-arg=-Wl,-z,max-page-size=16384 -C link-arg=-Wl,--pack-dyn-relocs=android -C link-arg=-Wl,--icf=all"
            ffi_no_unwind_tables_arg "$profile" ;;
    esac
}

# ffi_no_unwind_tables_arg PROFILE: for release-ffi (panic = "abort", see
# ffi_rustflags), the lld argument that drops the unwind tables the Rust
# standard library brings: it ships precompiled with them, and since the
# library is built with LTO (ffi_build) its functions are compiled into the
# library's one module with their `uwtable` attribute, 0.8 MB of .eh_frame
# and .eh_frame_hdr on x86_64 that nothing reads. No frame can unwind with
# panic = "abort"; the panic hook still reports the message and location
# (the backtrace it captures comes out empty). Debuggers and crash reporters
# unwind through the library by frame pointers or not at all, as they
# already did through Kith's own frames (-C force-unwind-tables=no). The
# script augments lld's default layout (INSERT), so it only discards.
ffi_no_unwind_tables_arg() {
    [ "$1" = release-ffi ] && echo "-C link-arg=-Wl,-T,$PWD/scripts/lib/no-unwind-tables.ld"
    return 0
}

# ffi_rustflags PROFILE: the compiler flags of every crate of a PROFILE build.
# release-ffi is panic = "abort" (Cargo.toml), so nothing unwinds and no
# function needs an unwind table: `-C force-unwind-tables=no` drops them
# (.eh_frame, .eh_frame_hdr; .gcc_except_table goes with the landing pads).
# Profile rustflags are nightly-only, hence this flag here. The Rust standard
# library ships precompiled with its own tables (see ffi_no_unwind_tables_arg).
# Both release profiles also cut the builder's cargo home out of the source
# paths that panic locations carry (ffi_remap_flags).
ffi_rustflags() {
    case "$1" in
        release-ffi) echo "-C force-unwind-tables=no $(ffi_remap_flags)" ;;
        release) ffi_remap_flags ;;
    esac
}

# ffi_remap_flags: --remap-path-prefix flags that turn the path of every
# crates.io source directory (~/.cargo/registry/src/index.crates.io-HASH/) into
# nothing, so a panic location in a dependency reads `redb-2.6.0/src/...`
# instead of the builder's home directory: the shipped library names no
# machine (about 24 KB of strings on x86_64). Kith's own paths are relative
# already. The first mapping covers an index directory that does not exist
# yet (a fresh cargo home); a later mapping wins where both match.
ffi_remap_flags() {
    local registry="${CARGO_HOME:-$HOME/.cargo}/registry/src" dir flags
    flags="--remap-path-prefix=$registry/="
    for dir in "$registry"/*/; do
        [ -d "$dir" ] && flags="$flags --remap-path-prefix=$dir="
    done
    echo "$flags"
}

# ffi_build TARGET PROFILE [cargo args...]: builds kith-ffi's library for
# TARGET ("" for the host) with PROFILE (dev, release, release-ffi); prints
# nothing; the library is in ffi_lib_dir's directory. Release builds always
# pass --target (the host's too): then RUSTFLAGS reach only the library's
# crates, not build scripts and proc macros, which other builds of the same
# target directory share and would otherwise rebuild back and forth.
ffi_build() {
    local target="$1" profile="$2"
    shift 2
    if [ "$profile" = dev ]; then
        # The host's dev build goes without --target, into the directory the
        # tests and scripts/bindings.sh use (--target would build it all again).
        local target_args=()
        [ -n "$target" ] && [ "$target" != "$(rustc -vV | sed -n 's/^host: //p')" ] &&
            target_args=(--target "$target")
        cargo build --quiet -p kith-ffi --lib ${target_args[@]+"${target_args[@]}"} "$@"
        return
    fi
    [ -n "$target" ] || target="$(rustc -vV | sed -n 's/^host: //p')"
    local link_args rustflags
    # shellcheck disable=SC2207 # the arguments are single words
    link_args=($(ffi_link_args "$target" "$profile"))
    rustflags="$(ffi_rustflags "$profile")"
    # --crate-type cdylib: cargo runs the profile's LTO on a library only
    # when every crate type it builds can be LTO-optimised, and kith-ffi's
    # `lib` (the rlib its tests and the bindgen binary link) cannot; built
    # with all three types, the phone library silently got no LTO at all
    # (7.22 MB instead of 6.77 MB on x86_64, 44,602 calls through the GOT
    # because nothing was internalised).
    RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$rustflags" \
        cargo rustc --quiet -p kith-ffi --lib --crate-type cdylib --profile "$profile" --target "$target" \
        "$@" -- ${link_args[@]+"${link_args[@]}"}
}

# ffi_lib_dir TARGET PROFILE: the directory the library of ffi_build lands in.
ffi_lib_dir() {
    local target="$1" profile="$2"
    if [ "$profile" = dev ]; then
        if [ -n "$target" ] && [ "$target" != "$(rustc -vV | sed -n 's/^host: //p')" ]; then
            echo "$CARGO_TARGET_DIR/$target/debug"
        else
            echo "$CARGO_TARGET_DIR/debug"
        fi
        return
    fi
    [ -n "$target" ] || target="$(rustc -vV | sed -n 's/^host: //p')"
    echo "$CARGO_TARGET_DIR/$target/$profile"
}
