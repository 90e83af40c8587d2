//! kith-e2e: end-to-end tests across crates (devices, relay and peers on loopback).
//! The tests live in tests/tests/e2e; this library holds the shared harness:
//! an in-process relay that can be killed abruptly and restarted on the same
//! files and port, and devices with real stores.
//!
//! This crate is test-only code: panicking on a broken fixture is the point.

#![warn(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use kith_core::Store;
use kith_core::identity::DeviceKey;
use kith_core::sync::DeviceIdentity;
use kith_protocol::RelayAddress;
use kith_relay::{Metrics, RedbStore, Relay, RelayConfig};
use rand::RngCore;
use tokio::sync::oneshot;

/// A relay running on its own runtime thread, so that [`TestRelay::kill`]
/// can drop every task at once (like a killed process: acknowledged writes
/// are on disk, anything in flight is gone).
#[derive(Debug)]
pub struct TestRelay {
    /// The relay's data directory; survives kill and restart.
    pub dir: PathBuf,
    /// The relay's identity key; clients pin its public half.
    pub key: SigningKey,
    /// The loopback address it listens on; kept across restarts.
    pub addr: SocketAddr,
    kill: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn open_store(path: &Path) -> RedbStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RedbStore::open(path) {
            Ok(s) => return s,
            // The previous incarnation's writer thread may still hold the lock.
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open relay store: {e}"),
        }
    }
}

impl TestRelay {
    /// Starts a fresh relay in `dir` on 127.0.0.1:0.
    pub fn start(dir: &Path) -> TestRelay {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::start_with(
            dir,
            SigningKey::from_bytes(&seed),
            "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
        )
    }

    fn start_with(dir: &Path, key: SigningKey, bind: SocketAddr) -> TestRelay {
        let store = Arc::new(open_store(&dir.join("relay.redb")));
        let socket = {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match std::net::UdpSocket::bind(bind) {
                    Ok(s) => break s,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => panic!("cannot bind {bind}: {e}"),
                }
            }
        };
        let addr = socket.local_addr().unwrap_or(bind);
        let relay = Relay {
            config: RelayConfig::default(),
            identity: key.clone(),
            store,
            metrics: Arc::new(Metrics::default()),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                tokio::select! {
                    _ = kith_relay::run(relay, socket, std::future::pending::<()>()) => {}
                    _ = rx => {}
                }
            });
            rt.shutdown_background();
        });
        TestRelay {
            dir: dir.to_path_buf(),
            key,
            addr,
            kill: Some(tx),
            thread: Some(thread),
        }
    }

    /// The address devices use.
    pub fn address(&self) -> RelayAddress {
        RelayAddress {
            key: self.key.verifying_key().into(),
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        }
    }

    /// Drops the relay abruptly.
    pub fn kill(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Starts again on the same files, key and port.
    pub fn restart(&mut self) {
        self.kill();
        let again = Self::start_with(&self.dir, self.key.clone(), self.addr);
        *self = again;
    }

    /// Every byte of every file the relay wrote.
    pub fn files_bytes(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(b) = std::fs::read(&p) {
                    out.push((p, b));
                }
            }
        }
        out
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.kill();
    }
}

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
