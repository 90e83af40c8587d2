//! kith-ffi: uniffi bindings over kith-core for Kotlin, Swift and Python.

uniffi::setup_scaffolding!();
