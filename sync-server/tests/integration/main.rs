//! Integration tests of kith-relay: a real relay (in-process on 127.0.0.1:0,
//! or the built binary for crash and signal tests) over real QUIC, with real
//! redb files in temporary directories.

// Test code: unwrap/panic are the assertion mechanism here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod bad_input;
mod cluster;
mod common;
mod conformance;
mod crash;
mod disk_full;
mod idle;
mod isolation;
mod ops;
mod quotas;
mod snapshots;
mod sync;
