//! Measures what issue 13 asks figures for, against a real relay (its own
//! process, so its memory is its own; real QUIC on 127.0.0.1; real redb
//! file in a temp dir) and prints them:
//!
//! - peak RSS (`VmHWM`) of the relay process through the upload and commit
//!   of a 100 MiB and then a 256 MiB fragmented snapshot;
//! - time of 40 one-byte `GetSnapshotRange` reads of the 100 MiB snapshot
//!   at offsets spread over it;
//! - rate of unauthenticated `MailboxTake`s of empty slots one client
//!   sustains, and the relay's committed write ops meanwhile (0 expected).
//!
//! Run: `cargo run -p kith-relay --example relay_figures [--release]`.
//! Not a test: figures depend on the machine; nothing here asserts a time.
//! (The child mode `serve` is the relay process the parent measures.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use kith_protocol::{AccountId, Request, Response, SealedSnapshot};
use kith_relay::client::{RelayClient, client_endpoint, placeholder_membership};
use kith_relay::testkit::TestRelay;
use kith_relay::{Limits, RelayConfig};

const MIB: usize = 1 << 20;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        serve();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut from = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut to = child.stdin.take().unwrap();
    let mut line = String::new();
    from.read_line(&mut line).unwrap();
    let mut it = line.split_whitespace();
    let addr: std::net::SocketAddr = it.next().unwrap().parse().unwrap();
    let key: [u8; 32] = data_encoding::HEXLOWER
        .decode(it.next().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    let relay = kith_protocol::RelayKey(key);
    let mut commits = move || {
        writeln!(to, "commits").unwrap();
        let mut l = String::new();
        from.read_line(&mut l).unwrap();
        l.trim().parse::<u64>().unwrap()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
        let root = SigningKey::from_bytes(&[1; 32]);
        let (k1, k2) = (SigningKey::from_bytes(&[2; 32]), SigningKey::from_bytes(&[3; 32]));
        let account = AccountId::from(root.verifying_key());
        let ops = placeholder_membership(&root, &[&k1, &k2]);
        let mut c1 = RelayClient::connect(&ep, addr, relay).await.unwrap();
        c1.auth(&k1, account, ops.clone(), None).await.unwrap();
        let mut c2 = RelayClient::connect(&ep, addr, relay).await.unwrap();
        c2.auth(&k2, account, ops, None).await.unwrap();
        println!("relay pid {pid}, VmHWM at start: {} MiB", vm_hwm_mib(pid));

        let t = Instant::now();
        let id100 = upload(&mut c1, &k1, account, 100 * MIB, 1).await;
        println!(
            "100 MiB snapshot: uploaded and committed in {:.1} s; relay VmHWM {} MiB",
            t.elapsed().as_secs_f64(),
            vm_hwm_mib(pid)
        );
        let t = Instant::now();
        for i in 0..40u64 {
            let offset = i * (100 * MIB as u64 / 40) + 7;
            let r = c2
                .request(Request::GetSnapshotRange {
                    snapshot_id: Some(id100),
                    offset,
                    bytes_max: 1,
                })
                .await
                .unwrap();
            let Response::SnapshotRange { snapshot: Some(s), .. } = r else {
                panic!("{r:?}")
            };
            assert_eq!(s.ciphertext.len(), 1);
        }
        println!(
            "40 one-byte range reads of the 100 MiB snapshot: {:.3} s; relay VmHWM {} MiB",
            t.elapsed().as_secs_f64(),
            vm_hwm_mib(pid)
        );
        let t = Instant::now();
        upload(&mut c1, &k1, account, 256 * MIB, 2).await;
        println!(
            "256 MiB snapshot: uploaded and committed in {:.1} s; relay VmHWM (peak of the whole run) {} MiB",
            t.elapsed().as_secs_f64(),
            vm_hwm_mib(pid)
        );

        let before = commits();
        let mut anon = RelayClient::connect(&ep, addr, relay).await.unwrap();
        const N: u32 = 5_000;
        let t = Instant::now();
        for i in 0..N {
            let mut slot = [0u8; 32];
            slot[..4].copy_from_slice(&i.to_be_bytes());
            let r = anon.request(Request::MailboxTake { slot }).await;
            assert!(r.is_err(), "an empty slot");
        }
        let rate = f64::from(N) / t.elapsed().as_secs_f64();
        println!(
            "unauthenticated empty-slot takes: {rate:.0}/s over {N}; durable write ops meanwhile: {}",
            commits() - before
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// Seals a snapshot of `len` bytes (covering nothing), uploads it in parts
/// of about a frame and commits it; returns its id.
async fn upload(
    c: &mut RelayClient,
    key: &SigningKey,
    account: AccountId,
    len: usize,
    upload: u64,
) -> [u8; 32] {
    let mut ciphertext = vec![0u8; len];
    for (i, b) in ciphertext.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let snap = SealedSnapshot::seal(key, account, 1, vec![], [upload as u8; 24], ciphertext);
    let part = kith_protocol::FRAME_BYTES_MAX - 4096;
    let count = snap.ciphertext.len().div_ceil(part) as u32;
    for (index, bytes) in snap.ciphertext.chunks(part).enumerate() {
        c.request(Request::PutSnapshotPart {
            upload,
            index: index as u32,
            count,
            bytes: bytes.to_vec(),
        })
        .await
        .unwrap();
    }
    let mut header = snap.clone();
    header.ciphertext.clear();
    let r = c
        .request(Request::CommitSnapshot {
            upload,
            snapshot: header,
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::SnapshotStored { .. }), "{r:?}");
    kith_relay::store::snapshot_id(&snap)
}

/// Peak resident set of process `pid` so far, MiB.
fn vm_hwm_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// The relay process: a real relay on 127.0.0.1 with limits raised so the
/// figures measure the relay, not its quotas; prints its address and key,
/// then answers `commits` lines with its committed write-op count.
fn serve() {
    let relay = TestRelay::temp(RelayConfig {
        limits: Limits {
            quota_bytes_per_account: 4 << 30,
            snapshot_upload_bytes_max: 300 << 20,
            unauth_requests_max: u32::MAX,
            unauth_requests_per_addr_per_minute: u32::MAX,
            ..Limits::default()
        },
        ..RelayConfig::default()
    });
    println!(
        "{} {}",
        relay.addr,
        data_encoding::HEXLOWER.encode(relay.key.verifying_key().as_bytes())
    );
    std::io::stdout().flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        if line.unwrap().trim() == "commits" {
            println!(
                "{}",
                relay
                    .metrics
                    .commit_ops_total
                    .load(std::sync::atomic::Ordering::SeqCst)
            );
            std::io::stdout().flush().unwrap();
        }
    }
}
