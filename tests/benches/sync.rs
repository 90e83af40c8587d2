//! Sync figures (a bench binary, run with
//! `cargo bench -p kith-e2e --bench sync` or, quicker, `-- --quick`):
//!
//! 1. a new device bootstrapping 5,000 and 50,000 interactions through a
//!    real relay on loopback: time, bytes on the wire, and those bytes over
//!    the compressed document (sum of `save()` of every document); once
//!    from the log alone (the uploader made no snapshot) and once from the
//!    snapshot the uploader left (fragmented when over 1 MiB). The new
//!    device runs alone in a child process (this binary re-executed with
//!    `KITH_BENCH_CHILD=bootstrap`), so its peak resident memory (VmHWM,
//!    reset after its store opened) is its own; `--size N` and
//!    `--via snapshot|log` run one case, `--detail` adds a reindex and a
//!    cold open + load of every document of the new device;
//! 2. propagation A -> relay -> B of one logged interaction, both devices
//!    connected and watching, 200 trials: p50 / p99;
//! 3. peer-to-peer reconnect after one new interaction: bytes and round trips;
//! 4. revoking one of 5 devices: time to build, sign and verify the revoke
//!    op with its new epoch key sealed (HPKE) to the 4 others and the older
//!    keys wrapped, time for a remaining device to derive its keys from the
//!    log, and the bytes each remaining device downloads (the op). History
//!    is never re-encrypted, so the account's size (5,000 or 50,000
//!    interactions) does not enter; the cost grows with the epochs wrapped.
//!    (`-- --revocation-only` runs just this and 5.)
//! 5. revoking one of 5 devices of an account with 50,000 interactions
//!    through a real relay on loopback, 3 runs: the revoking device's round
//!    and each remaining device's next round (time, bytes received).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use kith_core::sync::{RelayClientConfig, RelayEvent};
use kith_core::{NewInteraction, ParticipantRef};
use kith_e2e::bench::{percentile, propagation as propagation_between, seeded};
use kith_e2e::{Device, TestRelay};

const TIMEOUT_MS: u64 = 600_000;
/// Set in the child process that runs a new device alone (its value: the mode).
const CHILD_ENV: &str = "KITH_BENCH_CHILD";
/// The child's store directory.
const CHILD_DIR_ENV: &str = "KITH_BENCH_DIR";
/// The relay address the child syncs with.
const CHILD_RELAY_ENV: &str = "KITH_BENCH_RELAY";
/// The child's key material, in its store directory.
const CHILD_KEYS_FILE: &str = "bench-keys.json";

/// A `/proc/self/status` field in KiB.
fn status_kb(key: &str) -> u64 {
    kith_e2e::bench::status_kib(key)
}

/// CPU time this process used so far (user + system, every thread), in ms:
/// on a machine shared with other builds, the figure wall time hides. From
/// /proc/self/stat fields 14 and 15, in clock ticks of 10 ms (Linux's
/// `USER_HZ` is 100 on every architecture Kith builds for).
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (the state): utime and stime, fields 14 and
    // 15, are its 11th and 12th words.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) * 10
}

/// The new device, in its own process: opens its store, resets the peak
/// resident size, runs one relay round and prints `key=value` figures.
fn bootstrap_child() {
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR_ENV).unwrap());
    let relay: kith_protocol::RelayAddress =
        std::env::var(CHILD_RELAY_ENV).unwrap().parse().unwrap();
    let keys = kith_core::identity::KeyMaterial::from_json(
        &std::fs::read(dir.join(CHILD_KEYS_FILE)).unwrap(),
    )
    .unwrap();
    let id = kith_core::sync::DeviceIdentity::from_material(&keys).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(std::sync::Mutex::new(kith_core::Store::open(&dir).unwrap()));
    // Peak from here on: the bootstrap, not the process start.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let rss_before_kb = status_kb("VmRSS:");
    let cpu_before_ms = cpu_ms();
    let t = Instant::now();
    let down = rt
        .block_on(kith_net::relay_round(
            &store,
            &id,
            &relay,
            RelayClientConfig::default(),
            vec![],
            TIMEOUT_MS,
            |_| {},
        ))
        .unwrap();
    let ms = t.elapsed().as_millis();
    let cpu_ms = cpu_ms().saturating_sub(cpu_before_ms);
    let hwm_kb = status_kb("VmHWM:");
    println!(
        "ms={ms} cpu_ms={cpu_ms} hwm_kb={hwm_kb} rss_before_kb={rss_before_kb} received_bytes={} sent_bytes={} snapshot_applied={}",
        down.wire_received_bytes,
        down.wire_sent_bytes,
        u8::from(down.snapshot_applied),
    );
    let s = Arc::try_unwrap(store).unwrap().into_inner().unwrap();
    s.close().unwrap();
}

fn compressed_doc_bytes(d: &Device) -> usize {
    let s = d.s();
    s.doc_ids()
        .unwrap()
        .into_iter()
        .map(|doc| {
            s.doc_meta(doc)
                .unwrap()
                .map_or(0, |m| m.full_bytes as usize)
        })
        .sum()
}

async fn bootstrap(n: usize, via_snapshot: bool) {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path());
    let a = Device::first("laptop");
    let t = Instant::now();
    seeded(&a, (n / 20).clamp(50, 1500), n);
    let seed_ms = t.elapsed().as_millis();
    let doc_bytes = compressed_doc_bytes(&a);
    let t = Instant::now();
    let mut snapshot = false;
    // The uploader either leaves a snapshot right after its import or none.
    let up_cfg = if via_snapshot {
        RelayClientConfig {
            snapshot_tail_bytes_min: 0,
            ..RelayClientConfig::default()
        }
    } else {
        RelayClientConfig {
            snapshot_tail_entries_min: u64::MAX,
            snapshot_tail_bytes_min: u64::MAX,
            ..RelayClientConfig::default()
        }
    };
    let up = kith_net::relay_round(
        &a.store,
        &a.id,
        &relay.address(),
        up_cfg,
        vec![],
        TIMEOUT_MS,
        |e| {
            if matches!(e, RelayEvent::SnapshotStored { .. }) {
                snapshot = true;
            }
            if let RelayEvent::SnapshotSkipped { reason } = e {
                println!("    (snapshot skipped: {reason})");
            }
        },
    )
    .await
    .unwrap();
    let up_ms = t.elapsed().as_millis();
    let b = a.sibling("new phone");
    // The new device runs alone in a child process (this binary again), so
    // its peak resident memory is its own, not the uploader's or the relay's.
    let dir = b.dir.path().to_path_buf();
    let placeholder_dir = tempfile::tempdir().unwrap();
    {
        let placeholder = kith_core::Store::open(placeholder_dir.path()).unwrap();
        let old = std::mem::replace(&mut *b.s(), placeholder);
        old.close().unwrap();
    }
    std::fs::write(
        dir.join(CHILD_KEYS_FILE),
        serde_json::to_vec(&b.keys).unwrap(),
    )
    .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, "bootstrap")
        .env(CHILD_DIR_ENV, &dir)
        .env(CHILD_RELAY_ENV, relay.address().to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "new device failed (its stderr is above)"
    );
    let child: std::collections::BTreeMap<String, u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect();
    let field = |k: &str| {
        *child
            .get(k)
            .unwrap_or_else(|| panic!("child printed no {k}"))
    };
    {
        let reopened = kith_core::Store::open(&dir).unwrap();
        let placeholder = std::mem::replace(&mut *b.s(), reopened);
        placeholder.close().unwrap();
    }
    let ms = field("ms");
    let got = b.s().all_interactions().unwrap().len();
    assert_eq!(got, a.s().all_interactions().unwrap().len());
    assert_eq!(field("snapshot_applied") == 1, via_snapshot);
    let received = field("received_bytes");
    println!(
        "bootstrap {n:>6} interactions via {}: new device {ms} ms ({} ms CPU), peak RSS {:.1} MB (open store {:.1} MB)  [goal <= 300 MB], {} bytes received ({} sent); compressed document {} bytes; ratio {:.2}; from snapshot: {}",
        if via_snapshot { "snapshot" } else { "log" },
        field("cpu_ms"),
        field("hwm_kb") as f64 / 1024.0,
        field("rss_before_kb") as f64 / 1024.0,
        received,
        field("sent_bytes"),
        doc_bytes,
        received as f64 / doc_bytes as f64,
        via_snapshot,
    );
    println!(
        "    (seeding {seed_ms} ms; first upload {up_ms} ms, {} bytes, snapshot uploaded: {snapshot})",
        up.wire_sent_bytes
    );
    if std::env::args().any(|a| a == "--detail") {
        let t = Instant::now();
        b.s().reindex().unwrap();
        let reindex_ms = t.elapsed().as_millis();
        let t = Instant::now();
        let mut fresh = {
            let placeholder = kith_core::Store::open(tempfile::tempdir().unwrap().path()).unwrap();
            let old = std::mem::replace(&mut *b.s(), placeholder);
            old.close().unwrap();
            kith_core::Store::open(&dir).unwrap()
        };
        fresh.load_all().unwrap();
        println!(
            "    (detail: reindex {reindex_ms} ms; open + load all documents {} ms)",
            t.elapsed().as_millis()
        );
    }
}

async fn propagation(trials: usize) {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path());
    let a = Device::first("laptop");
    let b = a.sibling("phone");
    seeded(&a, 100, 1000);
    kith_net::relay_round(
        &a.store,
        &a.id,
        &relay.address(),
        RelayClientConfig::default(),
        vec![],
        TIMEOUT_MS,
        |_| {},
    )
    .await
    .unwrap();
    kith_net::relay_round(
        &b.store,
        &b.id,
        &relay.address(),
        RelayClientConfig::default(),
        vec![],
        TIMEOUT_MS,
        |_| {},
    )
    .await
    .unwrap();
    let lat = propagation_between(&relay.address(), &a, &b, trials).await;
    println!(
        "propagation A -> relay -> B, {trials} trials: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (includes A's durable local write)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
    );
}

async fn p2p_reconnect() {
    let a = Device::first("laptop");
    let b = a.sibling("phone");
    seeded(&a, 200, 2000);
    let server = kith_net::PeerServer::bind("127.0.0.1:0".parse().unwrap(), &b.id).unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let host = Arc::new(std::sync::Mutex::new(
        kith_core::sync::pairing::PairingHost::default(),
    ));
    let task = tokio::spawn(server.run(
        b.store.clone(),
        b.id.clone(),
        host,
        async move {
            let _ = rx.await;
        },
        |_| {},
    ));
    let first = kith_net::sync_with_peer(&a.store, &a.id, addr)
        .await
        .unwrap();
    let person = a.s().all_contacts().unwrap()[0].id;
    a.s()
        .log_interaction(NewInteraction {
            summary: "one new meeting".into(),
            notes: "a few lines of notes about what we discussed and agreed".into(),
            participants: vec![ParticipantRef::Id(person)],
            ..NewInteraction::default()
        })
        .unwrap();
    let r = kith_net::sync_with_peer(&a.store, &a.id, addr)
        .await
        .unwrap();
    let idle = kith_net::sync_with_peer(&a.store, &a.id, addr)
        .await
        .unwrap();
    println!(
        "p2p reconnect after one new interaction: {} bytes ({} sent + {} received), {} round trip(s) + close handshake, {} ms; (first full sync {} bytes; idle reconnect {} bytes)",
        r.wire_sent_bytes + r.wire_received_bytes,
        r.wire_sent_bytes,
        r.wire_received_bytes,
        r.stats.round_trips,
        r.elapsed_ms,
        first.wire_sent_bytes + first.wire_received_bytes,
        idle.wire_sent_bytes + idle.wire_received_bytes,
    );
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

/// Figure 4: revoke one of 5 devices on an account that already went
/// through `prior_epochs` rotations.
fn revocation(prior_epochs: u64, trials: usize) {
    use kith_core::sync::authority::{self, Actor};
    use kith_core::sync::epochs::{EpochKeys, SealKey};
    use kith_protocol::{DeviceId, Membership, SigningKey};
    let sign: Vec<SigningKey> = (0..5u8)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let seal: Vec<SealKey> = (0..5).map(|_| SealKey::generate()).collect();
    let actor = |i: usize| Actor {
        sign: &sign[i],
        seal: &seal[i],
    };
    let (code, genesis, _) = authority::create_account(actor(0), 0).unwrap();
    let mut ops = vec![genesis];
    let mut state = Membership::from_ops(code.account(), &ops).unwrap();
    let keys_of = |i: usize, ops: &[kith_protocol::MembershipOp]| {
        EpochKeys::from_log(ops, &DeviceId::from(sign[i].verifying_key()), &seal[i]).unwrap()
    };
    for i in 1..5 {
        let op = authority::add(&state, actor(0), &keys_of(0, &ops), actor(i).keys(), 0).unwrap();
        state.apply(&op).unwrap();
        ops.push(op);
    }
    for _ in 0..prior_epochs {
        let (op, _) = authority::rotate(&state, actor(0), &keys_of(0, &ops), 0).unwrap();
        state.apply(&op).unwrap();
        ops.push(op);
    }
    let target = DeviceId::from(sign[4].verifying_key());
    let keys0 = keys_of(0, &ops);
    let mut make = Vec::new();
    let mut learn = Vec::new();
    let mut op_bytes = 0;
    for _ in 0..trials {
        let t = Instant::now();
        let (op, _) = authority::revoke(&state, actor(0), &keys0, target, 0).unwrap();
        let mut after = state.clone();
        after.apply(&op).unwrap();
        make.push(t.elapsed());
        op_bytes = postcard::to_allocvec(&op).unwrap().len();
        let mut log = ops.clone();
        log.push(op);
        let t = Instant::now();
        let k = keys_of(1, &log);
        learn.push(t.elapsed());
        assert!(k.get(after.epoch()).is_some());
    }
    make.sort();
    learn.sort();
    println!(
        "revoke 1 of 5 devices after {prior_epochs} earlier epochs: make+sign+verify p50 {:.2} ms, \
         a remaining device derives its keys p50 {:.2} ms, each remaining device downloads {op_bytes} bytes",
        percentile(&make, 0.5).as_secs_f64() * 1e3,
        percentile(&learn, 0.5).as_secs_f64() * 1e3,
    );
}

/// One round of `d` with `extras`.
async fn one_round(
    d: &Device,
    relay: &TestRelay,
    cfg: RelayClientConfig,
    extras: Vec<kith_net::relay::Extra>,
) -> Result<kith_net::RoundReport, kith_net::NetError> {
    let addr = relay.address();
    kith_net::relay_round(&d.store, &d.id, &addr, cfg, extras, TIMEOUT_MS, |_| {}).await
}

/// Figure 5: revoking one of 5 devices of an account holding 50,000
/// interactions through a real relay on loopback, 3 runs: the revoking
/// device's round (make the op, the relay orders it, nothing else to move),
/// and each remaining device's next round (it fetches and verifies the op,
/// opens the new epoch key): wall time and bytes received. Every device is
/// idle (caught up) before each run. Runs 2 and 3 revoke a device added
/// (as a member, without syncing) after the previous run, so the account
/// has 5 members each time.
async fn revocation_e2e(interactions: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(dir.path());
    let a = Device::first("laptop");
    let t = Instant::now();
    seeded(&a, (interactions / 20).clamp(50, 1500), interactions);
    let seed_ms = t.elapsed().as_millis();
    let up = RelayClientConfig {
        snapshot_tail_bytes_min: 0,
        ..RelayClientConfig::default()
    };
    one_round(&a, &relay, up, vec![]).await.unwrap();
    let others: Vec<Device> = (1..4).map(|i| a.sibling(&format!("device {i}"))).collect();
    one_round(&a, &relay, RelayClientConfig::default(), vec![])
        .await
        .unwrap();
    let t = Instant::now();
    for d in &others {
        one_round(d, &relay, RelayClientConfig::default(), vec![])
            .await
            .unwrap();
        assert_eq!(d.s().all_interactions().unwrap().len(), interactions);
    }
    println!(
        "revocation through the relay, 5 devices, {interactions} interactions (seeding {seed_ms} ms, 3 bootstraps {} ms)",
        t.elapsed().as_millis()
    );
    let mut target = a.sibling("to revoke");
    for run in 1..=runs {
        for d in std::iter::once(&a)
            .chain(others.iter())
            .chain(std::iter::once(&target))
        {
            one_round(d, &relay, RelayClientConfig::default(), vec![])
                .await
                .unwrap();
        }
        let gone = target.id.device_id();
        let t = Instant::now();
        let r = one_round(
            &a,
            &relay,
            RelayClientConfig::default(),
            vec![kith_net::relay::Extra::Revoke(gone)],
        )
        .await
        .unwrap();
        let revoke_ms = t.elapsed().as_secs_f64() * 1e3;
        let mut remaining = Vec::new();
        for d in &others {
            let t = Instant::now();
            let got = one_round(d, &relay, RelayClientConfig::default(), vec![])
                .await
                .unwrap();
            remaining.push((t.elapsed().as_secs_f64() * 1e3, got.wire_received_bytes));
        }
        let st = kith_core::sync::membership::state(&mut a.s(), a.id.account_id()).unwrap();
        assert!(!st.is_member(&gone) && st.members().count() == 4);
        println!(
            "  run {run}: revoking device {revoke_ms:.1} ms ({} bytes sent, {} received); \
             each remaining device's next round: {}",
            r.wire_sent_bytes,
            r.wire_received_bytes,
            remaining
                .iter()
                .map(|(ms, b)| format!("{ms:.1} ms / {b} bytes"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Back to 5 members for the next run.
        target = a.sibling(&format!("to revoke {run}"));
    }
}

fn main() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("bootstrap") {
        bootstrap_child();
        return;
    }
    if std::env::args().any(|a| a == "--revocation-only") {
        for prior in [0, 10, 100] {
            revocation(prior, 20);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(revocation_e2e(50_000, 3));
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let only_bootstrap = std::env::args().any(|a| a == "--bootstrap-only");
        // `--size N` bootstraps only N interactions; `--via snapshot|log` only one path.
        let arg_after = |flag: &str| {
            let args: Vec<String> = std::env::args().collect();
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1).cloned())
        };
        let sizes: Vec<usize> = match arg_after("--size") {
            Some(n) => vec![n.parse().expect("--size takes a number of interactions")],
            None if quick => vec![5_000],
            None => vec![5_000, 50_000],
        };
        let paths: Vec<bool> = match arg_after("--via").as_deref() {
            Some("snapshot") => vec![true],
            Some("log") => vec![false],
            Some(other) => panic!("--via takes snapshot or log, not {other}"),
            None => vec![false, true],
        };
        for n in sizes {
            for via_snapshot in &paths {
                bootstrap(n, *via_snapshot).await;
            }
        }
        if only_bootstrap {
            return;
        }
        propagation(if quick { 50 } else { 200 }).await;
        p2p_reconnect().await;
    });
    if std::env::args().any(|a| a == "--bootstrap-only") {
        return;
    }
    for prior in [0, 10, 100] {
        revocation(prior, if quick { 5 } else { 20 });
    }
}
