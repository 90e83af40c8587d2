//! Integration tests of the `kith` binary: each test runs the real binary
//! (`CARGO_BIN_EXE_kith`) against a fresh data directory in a temp dir, with a
//! pinned clock (`KITH_NOW`) and time zone (`TZ=UTC`) so relative dates are
//! reproducible. Submodules by area; `harness` holds the runner and the
//! "store unchanged" snapshot used by every error-case test.

// Test helpers outside #[test] fns fail loudly by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod cluster;
mod contacts;
mod demo;
mod docs_shapes;
mod errors;
mod logging;
mod meetings;
mod merges;
mod misc;
mod names;
mod queries;
mod sync;
mod transfer;
