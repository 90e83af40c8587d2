//! The relay PROCESS killed with SIGKILL in the middle of a push and of a
//! pull: after a restart (same files, key and port) the sync completes,
//! nothing lost, nothing duplicated.
//!
//! The relay runs in a child process: this test binary re-executed with
//! `KITH_E2E_RELAY_DIR` set runs `relay_process_child`, which starts the
//! real relay library and prints its address; the parent kills it with
//! SIGKILL (`Child::kill`), so redb is not closed and nothing is flushed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use ed25519_dalek::SigningKey;
use kith_core::sync::{RelayClientConfig, RelayEvent, sync_status};
use kith_core::{NewInteraction, ParticipantRef};
use kith_e2e::{Device, TestRelay};
use kith_protocol::RelayAddress;

use crate::common::{TIMEOUT_MS, assert_same, rt};

const ENV_RELAY_DIR: &str = "KITH_E2E_RELAY_DIR";
const ENV_RELAY_SEED: &str = "KITH_E2E_RELAY_SEED";
const ENV_RELAY_PORT: &str = "KITH_E2E_RELAY_PORT";

/// In the child: a real relay until the parent kills this process. In a
/// normal test run: nothing.
#[test]
fn relay_process_child() {
    use std::io::Write;
    let Ok(dir) = std::env::var(ENV_RELAY_DIR) else {
        return;
    };
    let seed_hex = std::env::var(ENV_RELAY_SEED).unwrap();
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let port: u16 = std::env::var(ENV_RELAY_PORT).unwrap().parse().unwrap();
    let relay = TestRelay::start_at(
        std::path::Path::new(&dir),
        SigningKey::from_bytes(&seed),
        SocketAddr::from(([127, 0, 0, 1], port)),
        kith_relay::RelayConfig::default(),
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", relay.address()).unwrap();
    out.flush().unwrap();
    loop {
        std::thread::park();
    }
}

/// A relay in a child process.
struct RelayProcess {
    child: Child,
    address: RelayAddress,
}

impl RelayProcess {
    /// Starts the relay on `dir` with the key `seed`, on `port` (0: any).
    fn spawn(dir: &std::path::Path, seed: &[u8; 32], port: u16) -> RelayProcess {
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::relay_process_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_RELAY_DIR, dir)
            .env(ENV_RELAY_SEED, hex)
            .env(ENV_RELAY_PORT, port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // libtest prints its own text first (and "test NAME ... " without a
        // newline): the address is the word that parses as one.
        let out = BufReader::new(child.stdout.take().unwrap());
        let address = out
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.parse::<RelayAddress>().ok())
            })
            .expect("the relay child exited before printing its address");
        RelayProcess { child, address }
    }

    /// SIGKILL, and reap.
    fn sigkill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status:?}");
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A round cut by a kill notices only when QUIC gives up on the silent
/// relay (idle timeout) or when this bound expires, whichever is first.
const CUT_TIMEOUT_MS: u64 = 5_000;

/// Interactions spread over 40 quarters: 40 documents, so 40+ entries.
fn log_spread(d: &Device, n: usize) {
    let base: i64 = 1_500_000_000_000;
    let quarter_ms: i64 = 92 * 24 * 3600 * 1000;
    let p = d
        .s()
        .add_contact(kith_core::NewContact::named("Spread Person"))
        .unwrap()
        .id;
    for i in 0..n {
        d.s()
            .log_interaction(NewInteraction {
                at_ms: Some(base + (i % 40) as i64 * quarter_ms + i as i64 * 1000),
                summary: format!("spread {i}"),
                participants: vec![ParticipantRef::Id(p)],
                ..NewInteraction::default()
            })
            .unwrap();
    }
}

#[test]
fn relay_process_sigkilled_mid_push_then_mid_pull_loses_and_duplicates_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let seed: [u8; 32] = rand::random();
        let mut relay = RelayProcess::spawn(dir.path(), &seed, 0);
        let port = relay.address.port;
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        log_spread(&a, 120);
        // Small pushes so the push takes many requests; kill after the first ack.
        let cfg = RelayClientConfig {
            push_bytes_max: 1,
            pull_entries_max: 1,
            ..RelayClientConfig::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = relay.address.clone();
        let r = kith_net::relay_round(
            &a.store,
            &a.id,
            &addr,
            cfg.clone(),
            vec![],
            CUT_TIMEOUT_MS,
            |e| {
                if matches!(e, RelayEvent::Pushed { .. }) {
                    let _ = tx.send(());
                }
            },
        );
        let killer = async {
            tokio::task::spawn_blocking(move || rx.recv())
                .await
                .unwrap()
                .unwrap();
            relay.sigkill();
        };
        let (r, ()) = tokio::join!(r, killer);
        assert!(r.is_err(), "the round was cut by the kill");
        let st = sync_status(&mut a.s()).unwrap();
        assert!(st.acked_seq >= 1 && st.outbox_entries > 0, "{st:?}");
        let relay = RelayProcess::spawn(dir.path(), &seed, port);
        assert_eq!(relay.address, addr, "same key and port after the restart");
        let mut relay = relay;
        kith_net::relay_round(
            &a.store,
            &a.id,
            &relay.address,
            cfg.clone(),
            vec![],
            TIMEOUT_MS,
            |_| {},
        )
        .await
        .unwrap();
        let st = sync_status(&mut a.s()).unwrap();
        assert_eq!(st.outbox_entries, 0);
        assert_eq!(st.acked_seq, st.sealed_seq);

        // Now B pulls one entry per request; kill after the first batch.
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = relay.address.clone();
        let r = kith_net::relay_round(
            &b.store,
            &b.id,
            &addr,
            cfg.clone(),
            vec![],
            CUT_TIMEOUT_MS,
            |e| {
                if matches!(e, RelayEvent::Applied { .. }) {
                    let _ = tx.send(());
                }
            },
        );
        let killer = async {
            tokio::task::spawn_blocking(move || rx.recv())
                .await
                .unwrap()
                .unwrap();
            relay.sigkill();
        };
        let (r, ()) = tokio::join!(r, killer);
        assert!(r.is_err(), "the pull was cut by the kill");
        let partial = b.s().all_interactions().unwrap().len();
        assert!(partial < 120, "{partial}");
        let relay = RelayProcess::spawn(dir.path(), &seed, port);
        kith_net::relay_round(
            &b.store,
            &b.id,
            &relay.address,
            RelayClientConfig::default(),
            vec![],
            TIMEOUT_MS,
            |_| {},
        )
        .await
        .unwrap();
        let all = b.s().all_interactions().unwrap();
        assert_eq!(all.len(), 120);
        let summaries: BTreeSet<String> = all.iter().map(|i| i.summary.clone()).collect();
        assert_eq!(summaries.len(), 120, "no duplicates");
        assert_eq!(b.s().all_contacts().unwrap().len(), 1);
        assert_same(&a, &b);
    });
}
