//! End-to-end tests: real relay (in-process, on loopback, restartable on its
//! files), real QUIC, real stores in temp dirs.

// Test code: unwrap/panic are the assertion mechanism here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod crash;
mod hostile;
mod meetings;
mod p2p;
mod pairing;
mod relay_restore;
mod relay_sync;
mod restore;
mod revocation;
mod snapshot;
