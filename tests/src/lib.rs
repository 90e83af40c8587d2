//! kith-e2e: end-to-end tests across crates (devices, relay and peers on loopback).
//! The tests live in tests/tests/e2e; this library holds the shared harness:
//! the relay harness [`TestRelay`] (re-exported from kith-relay's `testkit`:
//! the real relay in-process, stopped gracefully or with every task dropped,
//! restarted on the same files and port) and devices with real stores.
//!
//! This crate is test-only code: panicking on a broken fixture is the point.

#![warn(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use kith_core::Store;
use kith_core::identity::DeviceKey;
use kith_core::sync::DeviceIdentity;

/// The relay harness is kith-relay's (feature `test-support`), shared with
/// the relay's own tests, the bindings' and the CLI's.
pub use kith_relay::testkit::TestRelay;

/// A device: a real store in a temp dir and its identity.
#[derive(Debug)]
pub struct Device {
    /// Holds the store files; deleted when the device is dropped.
    pub dir: tempfile::TempDir,
    /// The device's open store, shared with sync tasks.
    pub store: Arc<Mutex<Store>>,
    /// The device's account and device keys and certificate.
    pub id: DeviceIdentity,
}

impl Device {
    /// The first device of a new account.
    pub fn first(name: &str) -> Device {
        let id = DeviceIdentity::create_account(name, kith_net::now_ms())
            .unwrap_or_else(|e| panic!("{e}"));
        Self::with_identity(id)
    }

    /// Another device of `self`'s account (as if already paired).
    pub fn sibling(&self, name: &str) -> Device {
        let id = DeviceIdentity::new(
            self.id.account_secret().clone(),
            DeviceKey::generate(),
            name,
            kith_net::now_ms(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Self::with_identity(id)
    }

    /// A device with a given identity and an empty store.
    pub fn with_identity(id: DeviceIdentity) -> Device {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        Device {
            dir,
            store: Arc::new(Mutex::new(store)),
            id,
        }
    }

    /// Locks the store.
    pub fn s(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}
