//! Shared helpers: an in-process relay, accounts, devices, entries.

use std::net::SocketAddr;

use ed25519_dalek::SigningKey;
use std::sync::{Arc, Mutex};

use kith_protocol::{
    AccountId, Author, Change, Cursor, DeviceId, MemberKeys, Membership, MembershipOp, RelayKey,
    SealedEntry, SealedEpochKey,
};
use kith_relay::RelayStore;
use kith_relay::client::RelayClient;
use kith_relay::store::StoreStats;
use rand::RngCore;

pub(crate) use kith_relay::testkit::TestRelay;

/// What these tests add to the shared harness: connecting as this file's
/// [`Device`]s and reading the store by [`Account`].
pub(crate) trait RelayExt {
    /// A client authenticated as `d`.
    async fn connect(&self, d: &Device) -> RelayClient;
    /// Store totals.
    fn stats(&self) -> StoreStats;
    /// Heads and floors of `a`.
    fn heads(&self, a: &Account) -> kith_relay::store::Heads;
    /// Proves the relay still serves: a fresh account authenticates and pings.
    async fn assert_alive(&self);
}

impl RelayExt for TestRelay {
    async fn connect(&self, d: &Device) -> RelayClient {
        self.connect_as(&d.key, d.account, d.membership()).await
    }

    fn stats(&self) -> StoreStats {
        self.store().stats().unwrap()
    }

    fn heads(&self, a: &Account) -> kith_relay::store::Heads {
        self.store().heads(&a.id()).unwrap()
    }

    async fn assert_alive(&self) {
        let a = Account::new();
        let d = a.device("probe");
        let mut c = self.connect(&d).await;
        let r = c.request(kith_protocol::Request::Ping).await.unwrap();
        assert_eq!(r, kith_protocol::Response::Pong);
    }
}

/// The client's next event; fails the test if none comes within 10 s or the
/// connection ends.
pub(crate) async fn next_event(c: &mut RelayClient) -> kith_protocol::Event {
    tokio::time::timeout(std::time::Duration::from_secs(10), c.next_event())
        .await
        .expect("an event within 10 s")
        .expect("the connection stays open")
}

pub(crate) fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// A test account: its root key and its membership log, shared with its
/// devices. The first device is the genesis member and adds every later one
/// (placeholder epoch keys: the relay never opens them).
pub(crate) struct Account {
    pub(crate) key: SigningKey,
    log: Arc<Mutex<Log>>,
}

#[derive(Default)]
struct Log {
    ops: Vec<MembershipOp>,
    first: Option<SigningKey>,
}

pub(crate) struct Device {
    pub(crate) key: SigningKey,
    pub(crate) account: AccountId,
    log: Arc<Mutex<Log>>,
}

impl Account {
    pub(crate) fn new() -> Self {
        Self {
            key: SigningKey::from_bytes(&rand_bytes()),
            log: Arc::default(),
        }
    }

    /// The account's membership log so far.
    pub(crate) fn membership(&self) -> Vec<MembershipOp> {
        self.log.lock().unwrap().ops.clone()
    }

    pub(crate) fn id(&self) -> AccountId {
        AccountId::from(self.key.verifying_key())
    }

    /// A new member device (`_name` documents the test).
    pub(crate) fn device(&self, _name: &str) -> Device {
        let key = SigningKey::from_bytes(&rand_bytes());
        {
            let mut log = self.log.lock().unwrap();
            let mut m = Membership::from_ops(self.id(), &log.ops).unwrap();
            let member = MemberKeys {
                device: key.verifying_key().into(),
                seal_key: [0; 32],
            };
            let sealed = SealedEpochKey {
                to: key.verifying_key().into(),
                enc: [0; 32],
                ciphertext: vec![0; 48],
            };
            let op = match &log.first {
                None => m.next_op(
                    Author::Root,
                    &self.key,
                    1,
                    Change::Genesis {
                        first: member,
                        rotation: kith_protocol::Rotation {
                            keys: vec![sealed],
                            wrapped: vec![],
                        },
                    },
                    1,
                ),
                Some(first) => m.next_op(
                    Author::Device(first.verifying_key().into()),
                    first,
                    m.epoch(),
                    Change::Add {
                        member,
                        key: sealed,
                    },
                    1,
                ),
            };
            m.apply(&op).unwrap();
            log.ops.push(op);
            if log.first.is_none() {
                log.first = Some(key.clone());
            }
        }
        Device {
            key,
            account: self.id(),
            log: self.log.clone(),
        }
    }

    /// Appends `op` to the shared log (after the relay accepted it).
    pub(crate) fn record(&self, op: MembershipOp) {
        self.log.lock().unwrap().ops.push(op);
    }
}

impl Device {
    pub(crate) fn id(&self) -> DeviceId {
        DeviceId::from(self.key.verifying_key())
    }

    /// The account's membership log as this device knows it.
    pub(crate) fn membership(&self) -> Vec<MembershipOp> {
        self.log.lock().unwrap().ops.clone()
    }

    /// The current epoch of the shared log.
    pub(crate) fn epoch(&self) -> u64 {
        let ops = self.membership();
        ops.last().map_or(1, |o| o.body.epoch)
    }

    /// The op revoking `target`, signed by this device, on the shared log.
    pub(crate) fn revoke_op(&self, target: DeviceId) -> MembershipOp {
        kith_relay::client::placeholder_revoke(&self.membership(), &self.key, target).unwrap()
    }

    pub(crate) fn entry(&self, seq: u64, payload: &[u8]) -> SealedEntry {
        SealedEntry::seal(
            &self.key,
            self.account,
            self.epoch(),
            seq,
            [seq as u8; 24],
            payload.to_vec(),
        )
    }

    pub(crate) fn entries(&self, from: u64, to: u64) -> Vec<SealedEntry> {
        (from..=to)
            .map(|s| self.entry(s, format!("payload {s}").as_bytes()))
            .collect()
    }

    pub(crate) fn cursor(&self, seq: u64) -> Cursor {
        Cursor {
            device: self.id(),
            seq,
        }
    }
}

pub(crate) fn code_of<T: std::fmt::Debug>(
    r: Result<T, kith_relay::client::ClientError>,
) -> kith_protocol::ErrorCode {
    match r {
        Err(e) => e
            .code()
            .cloned()
            .unwrap_or_else(|| panic!("expected a relay error code, got {e}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// The built `kith-relay` binary running on loopback.
pub(crate) struct RelayProcess {
    pub(crate) child: std::process::Child,
    pub(crate) addr: SocketAddr,
    pub(crate) key: RelayKey,
    pub(crate) metrics: SocketAddr,
}

impl RelayProcess {
    pub(crate) fn spawn(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kith-relay"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let address: kith_protocol::RelayAddress = lines.next().unwrap().unwrap().parse().unwrap();
        let metrics_line = lines.next().unwrap().unwrap();
        let metrics = metrics_line
            .trim_start_matches("metrics http://")
            .trim_end_matches("/metrics")
            .parse()
            .unwrap();
        Self {
            child,
            addr: address.host_port().parse().unwrap(),
            key: address.key,
            metrics,
        }
    }

    pub(crate) fn sigterm(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits (bounded) for the process to exit.
    pub(crate) fn wait_exit(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "relay did not exit in time"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET; returns (status line, body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// A metric's value from a Prometheus text body.
pub(crate) fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("metric {name} missing"))
        .trim()
        .parse()
        .unwrap()
}
