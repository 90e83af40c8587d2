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
use kith_core::identity::KeyMaterial;
use kith_core::sync::DeviceIdentity;
use kith_core::sync::authority::RecoveryCode;
use kith_core::sync::membership;

pub mod bench;

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
    /// The device's account id, keys and name.
    pub id: DeviceIdentity,
    /// Its key material (what `keys.json` holds).
    pub keys: KeyMaterial,
    /// The recovery code, on the device that created the account.
    pub code: Option<RecoveryCode>,
}

impl Device {
    /// The first device of a new account (the genesis is in its store).
    pub fn first(name: &str) -> Device {
        let mut d = Self::fresh(name);
        let mut keys = d.keys.clone();
        let (id, code) = membership::create_account(&mut d.s(), &mut keys, kith_net::now_ms())
            .unwrap_or_else(|e| panic!("{e}"));
        d.keys = keys;
        d.id = id;
        d.code = Some(code);
        d
    }

    /// A device with fresh keys, no account, an empty store.
    pub fn fresh(name: &str) -> Device {
        let keys = KeyMaterial::generate(name);
        let id = DeviceIdentity::with_account(&keys, kith_protocol::AccountId([0; 32]));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        Device {
            dir,
            store: Arc::new(Mutex::new(store)),
            id,
            keys,
            code: None,
        }
    }

    /// Another device of `self`'s account, added by `self` in `self`'s log
    /// (as if paired; the relay learns the `Add` from either device's next
    /// `Auth`).
    pub fn sibling(&self, name: &str) -> Device {
        let mut d = Self::fresh(name);
        d.keys.account = Some(self.id.account_id().0);
        d.id = DeviceIdentity::from_material(&d.keys).unwrap_or_else(|e| panic!("{e}"));
        let now = kith_net::now_ms();
        let op = membership::add_op(&mut self.s(), &self.id, d.id.card(), now)
            .unwrap_or_else(|e| panic!("{e}"));
        membership::absorb(&mut self.s(), &self.id, &[op]).unwrap_or_else(|e| panic!("{e}"));
        let ops = membership::ops(&mut self.s()).unwrap_or_else(|e| panic!("{e}"));
        membership::absorb(&mut d.s(), &d.id, &ops).unwrap_or_else(|e| panic!("{e}"));
        d
    }

    /// Locks the store.
    pub fn s(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}
