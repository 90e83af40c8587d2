//! The uniffi-bindgen command, pinned to this workspace's uniffi version.
//!
//! `cargo run -p kith-ffi --features bindgen --bin uniffi-bindgen -- generate
//! --library <libkith_ffi.so> --language kotlin --out-dir <dir>`; see
//! scripts/bindings.sh, which runs it for Kotlin, Swift and Python.

fn main() {
    uniffi::uniffi_bindgen_main()
}
