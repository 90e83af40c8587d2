//! The one relay test harness every crate's tests use (feature
//! `test-support`): [`TestRelay`] runs the real relay (`run`, real redb file,
//! real QUIC on 127.0.0.1) on its own runtime thread, so it works the same
//! from plain `#[test]`s, from `#[tokio::test]`s and from binding tests, and
//! can be stopped gracefully ([`TestRelay::stop`]) or have every task dropped
//! at once and be started again on the same files, key and port
//! ([`TestRelay::drop_tasks`], [`TestRelay::restart`]).
//!
//! Dropping every task is NOT a process crash: redb is closed cleanly. Tests
//! that claim a crash kill a real process with SIGKILL instead.
//!
//! This module is test-only code: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use kith_protocol::{AccountId, MembershipOp, RelayAddress, RelayKey};
use rand::RngCore;
use tokio::sync::oneshot;

use crate::client::{RelayClient, client_endpoint};
use crate::{Metrics, RedbStore, Relay, RelayConfig, RunError};

/// How long reopening the store or rebinding the port may wait for the
/// previous incarnation's writer thread and socket to let go.
const REOPEN_TIMEOUT_MS: u64 = 10_000;

/// How the relay thread is told to end.
#[derive(Debug)]
enum Stop {
    /// Run the relay's own shutdown (drain, flush, close).
    Graceful,
    /// Drop every task at once.
    DropTasks,
}

/// A relay running on its own runtime thread. See the module docs.
#[derive(Debug)]
pub struct TestRelay {
    /// The relay's data directory (holds `relay.redb`).
    pub dir: PathBuf,
    /// The relay's identity key.
    pub key: SigningKey,
    /// Where it listens (127.0.0.1, port fixed across restarts).
    pub addr: SocketAddr,
    /// Its counters (fresh per incarnation).
    pub metrics: Arc<Metrics>,
    config: RelayConfig,
    store: Option<Arc<RedbStore>>,
    stop: Option<oneshot::Sender<Stop>>,
    done: Option<oneshot::Receiver<Result<(), RunError>>>,
    thread: Option<JoinHandle<()>>,
    endpoint: OnceLock<quinn::Endpoint>,
    _temp: Option<tempfile::TempDir>,
}

/// Retries `f` until it succeeds or [`REOPEN_TIMEOUT_MS`] passed: the
/// previous incarnation's writer thread may still hold the file lock, and
/// its socket the port, for a moment after its runtime is gone.
fn retry<T, E: std::fmt::Display>(what: &str, mut f: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + Duration::from_millis(REOPEN_TIMEOUT_MS);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn random_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

impl TestRelay {
    /// A fresh relay with the default config, its files in `dir`.
    pub fn start(dir: &Path) -> TestRelay {
        Self::start_with(dir, RelayConfig::default())
    }

    /// A fresh relay with `config`, its files in `dir`.
    pub fn start_with(dir: &Path, config: RelayConfig) -> TestRelay {
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_at(dir, random_key(), bind, config)
    }

    /// A fresh relay with `config` in a temporary directory it owns.
    pub fn temp(config: RelayConfig) -> TestRelay {
        let temp = tempfile::tempdir().unwrap();
        let mut r = Self::start_with(temp.path(), config);
        r._temp = Some(temp);
        r
    }

    /// A relay with a given identity on a given address (a relay restarted
    /// in another process keeps both).
    pub fn start_at(
        dir: &Path,
        key: SigningKey,
        bind: SocketAddr,
        config: RelayConfig,
    ) -> TestRelay {
        let store = Arc::new(retry("cannot open the relay store", || {
            RedbStore::open(&dir.join("relay.redb"))
        }));
        let socket = retry("cannot bind the relay socket", || {
            std::net::UdpSocket::bind(bind)
        });
        let addr = socket.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let relay = Relay {
            config: config.clone(),
            identity: key.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
        };
        let (stop_tx, stop_rx) = oneshot::channel::<Stop>();
        let (done_tx, done_rx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (graceful_tx, graceful_rx) = oneshot::channel::<()>();
                let mut stop_rx = stop_rx;
                let run = crate::run(relay, socket, async move {
                    let _ = graceful_rx.await;
                });
                tokio::pin!(run);
                let mut graceful_tx = Some(graceful_tx);
                let result = loop {
                    tokio::select! {
                        r = &mut run => break Some(r),
                        s = &mut stop_rx, if graceful_tx.is_some() => match s {
                            Ok(Stop::Graceful) => {
                                if let Some(g) = graceful_tx.take() {
                                    let _ = g.send(());
                                }
                            }
                            // Told to drop everything, or the TestRelay is gone.
                            Ok(Stop::DropTasks) | Err(_) => break None,
                        },
                    }
                };
                if let Some(r) = result {
                    let _ = done_tx.send(r);
                }
            });
            rt.shutdown_background();
        });
        TestRelay {
            dir: dir.to_path_buf(),
            key,
            addr,
            metrics,
            config,
            store: Some(store),
            stop: Some(stop_tx),
            done: Some(done_rx),
            thread: Some(thread),
            endpoint: OnceLock::new(),
            _temp: None,
        }
    }

    /// The address devices use.
    pub fn address(&self) -> RelayAddress {
        RelayAddress {
            key: self.relay_key(),
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        }
    }

    /// The key clients pin.
    pub fn relay_key(&self) -> RelayKey {
        self.key.verifying_key().into()
    }

    /// The store the running relay writes (for assertions).
    pub fn store(&self) -> &Arc<RedbStore> {
        self.store.as_ref().expect("the relay is stopped")
    }

    /// A client endpoint on 127.0.0.1 shared by this relay's clients
    /// (created on first use, inside the caller's runtime).
    pub fn endpoint(&self) -> &quinn::Endpoint {
        self.endpoint
            .get_or_init(|| client_endpoint(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap())
    }

    /// A connected client that has said hello, not authenticated.
    pub async fn hello(&self) -> RelayClient {
        RelayClient::connect(self.endpoint(), self.addr, self.relay_key())
            .await
            .unwrap()
    }

    /// A client authenticated as `device_key` of `account`, handing the relay
    /// the membership ops it may lack (the genesis the first time).
    pub async fn connect_as(
        &self,
        device_key: &SigningKey,
        account: AccountId,
        membership: Vec<MembershipOp>,
    ) -> RelayClient {
        let mut c = self.hello().await;
        c.auth(device_key, account, membership, None).await.unwrap();
        c
    }

    /// Drops every task of the relay at once (its runtime is shut down):
    /// acknowledged writes are on disk, anything in flight is gone. redb is
    /// closed cleanly: this is not a process crash.
    pub fn drop_tasks(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(Stop::DropTasks);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.done = None;
        self.store = None;
    }

    /// Drops every task, then starts again on the same files, key and port.
    pub fn restart(&mut self) {
        self.drop_tasks();
        let temp = self._temp.take();
        let again = Self::start_at(&self.dir, self.key.clone(), self.addr, self.config.clone());
        *self = again;
        self._temp = temp;
    }

    /// Runs the relay's own graceful shutdown and returns its result.
    pub async fn stop(mut self) -> Result<(), RunError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(Stop::Graceful);
        }
        let done = self.done.take().expect("the relay was already stopped");
        let result = done.await.expect("the relay thread ended without a result");
        // The runtime thread ends right after sending the result.
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        result
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
        self.drop_tasks();
    }
}
