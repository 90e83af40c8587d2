//! The Kith side of the side-by-side benchmark against automerge-repo
//! (bench/compare/run.sh runs both; not run by CI). A bench binary:
//!
//! `compare --out DIR [--sizes 5000,50000]`
//!
//! For each size it generates the synthetic network once (kith_synth,
//! 2,000 contacts, seed 7), writes it to `DIR/network-N.json` (contacts,
//! interactions, projects, goals: what the automerge-repo side loads), imports
//! it into a real store, and measures:
//!
//! - durable append: one `log_interaction` (one redb transaction, fsync),
//!   30 trials after one warm-up: p50 / p99;
//! - cold open to the 20 newest interactions: a fresh process (this binary
//!   re-executed) opens the store and reads the timeline's first 20; the
//!   time inside that process, 10 trials: p50;
//! - new-device bootstrap: the device uploads (leaving a snapshot) to a
//!   real relay on 127.0.0.1, then a new device of the account downloads
//!   everything in one round: its time (one run);
//! - at 5,000 only, propagation device -> relay -> device, both live
//!   (`relay_watch`), 100 trials: p50 / p99, including the sender's
//!   durable write.
//!
//! The figures go to `DIR/kith.json`, under the keys the node side uses
//! too; progress goes to stderr. The idle-connection figure comes from
//! relay-load (the real `kith-relay` binary), which run.sh runs and adds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kith_core::sync::RelayClientConfig;
use kith_core::{ContactQuery, NewInteraction, ParticipantRef, Store, TimelineQuery};
use kith_e2e::bench::{ROUND_TIMEOUT_MS, network, percentile, propagation, seed_with};
use kith_e2e::{Device, TestRelay};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

const CHILD_ENV: &str = "KITH_COMPARE_COLD_OPEN_DIR";
const CONTACTS: usize = 2_000;
const APPEND_TRIALS: usize = 30;
const COLD_TRIALS: usize = 10;
const PROPAGATION_TRIALS: usize = 100;

type Figures = BTreeMap<String, serde_json::Value>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Child process: open the store, list the 20 newest interactions, print
/// the milliseconds that took.
fn cold_open_child(dir: &Path) {
    let t = Instant::now();
    let store = Store::open(dir).unwrap();
    let newest = store
        .timeline(&TimelineQuery {
            limit: 20,
            ..TimelineQuery::default()
        })
        .unwrap();
    let elapsed = ms(t.elapsed());
    assert_eq!(newest.len(), 20);
    println!("{elapsed}");
}

/// Closes `d`'s store, runs `f` on its directory, reopens it.
fn with_store_closed<T>(d: &Device, f: impl FnOnce(&Path) -> T) -> T {
    let placeholder_dir = tempfile::tempdir().unwrap();
    let placeholder = Store::open(placeholder_dir.path()).unwrap();
    let old = std::mem::replace(&mut *d.s(), placeholder);
    old.close().unwrap();
    let out = f(d.dir.path());
    let reopened = Store::open(d.dir.path()).unwrap();
    let placeholder = std::mem::replace(&mut *d.s(), reopened);
    placeholder.close().unwrap();
    out
}

fn append(d: &Device, n: usize, figures: &mut Figures) {
    let who: Vec<_> = d
        .s()
        .contacts(&ContactQuery {
            limit: 200,
            ..ContactQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let mut lat = Vec::new();
    for i in 0..=APPEND_TRIALS {
        let t = Instant::now();
        d.s()
            .log_interaction(NewInteraction {
                summary: format!("bench write {i}"),
                notes: "Talked about the rota and the audit. ".repeat(8),
                participants: vec![ParticipantRef::Id(*who.choose(&mut rng).unwrap())],
                ..NewInteraction::default()
            })
            .unwrap();
        if i > 0 {
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let (p50, p99) = (ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)));
    eprintln!("  [kith] {n}: append p50 {p50:.2} ms, p99 {p99:.2} ms");
    figures.insert(format!("append_{n}_p50_ms"), p50.into());
    figures.insert(format!("append_{n}_p99_ms"), p99.into());
}

fn cold_open(d: &Device, n: usize, figures: &mut Figures) {
    let exe = std::env::current_exe().unwrap();
    let mut lat: Vec<Duration> = with_store_closed(d, |dir| {
        (0..COLD_TRIALS)
            .map(|_| {
                let out = Command::new(&exe).env(CHILD_ENV, dir).output().unwrap();
                assert!(
                    out.status.success(),
                    "cold open child failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let child_ms: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
                Duration::from_secs_f64(child_ms / 1e3)
            })
            .collect()
    });
    lat.sort();
    let p50 = ms(percentile(&lat, 0.5));
    eprintln!(
        "  [kith] {n}: cold open to the 20 newest p50 {p50:.2} ms, max {:.2} ms",
        ms(percentile(&lat, 1.0))
    );
    figures.insert(format!("cold_open_{n}_p50_ms"), p50.into());
}

/// Uploads `a` (leaving a snapshot) and bootstraps a new device; returns it.
async fn bootstrap(relay: &TestRelay, a: &Device, n: usize, figures: &mut Figures) -> Device {
    let addr = relay.address();
    let t = Instant::now();
    let up = kith_net::relay_round(
        &a.store,
        &a.id,
        &addr,
        RelayClientConfig {
            snapshot_tail_bytes_min: 0,
            ..RelayClientConfig::default()
        },
        vec![],
        ROUND_TIMEOUT_MS,
        |_| {},
    )
    .await
    .unwrap();
    eprintln!(
        "  [kith] {n}: upload {:.0} ms, {} bytes",
        ms(t.elapsed()),
        up.wire_sent_bytes
    );
    let b = a.sibling("new phone");
    let t = Instant::now();
    let down = kith_net::relay_round(
        &b.store,
        &b.id,
        &addr,
        RelayClientConfig::default(),
        vec![],
        ROUND_TIMEOUT_MS,
        |_| {},
    )
    .await
    .unwrap();
    let took = ms(t.elapsed());
    let got = b.s().all_interactions().unwrap().len();
    assert_eq!(got, a.s().all_interactions().unwrap().len());
    eprintln!(
        "  [kith] {n}: new device {took:.0} ms, {} bytes received, from snapshot: {}",
        down.wire_received_bytes, down.snapshot_applied
    );
    figures.insert(format!("bootstrap_{n}_ms"), took.into());
    b
}

async fn run(out: &Path, sizes: &[usize], figures: &mut Figures) {
    for &n in sizes {
        let t = Instant::now();
        let net = network(CONTACTS, n, 7);
        let file = std::fs::File::create(out.join(format!("network-{n}.json"))).unwrap();
        serde_json::to_writer(
            std::io::BufWriter::new(file),
            &serde_json::json!({
                "contacts": net.contacts,
                "interactions": net.interactions,
                "projects": net.projects,
                "goals": net.goals,
            }),
        )
        .unwrap();
        let a = Device::first("laptop");
        seed_with(&a, &net);
        eprintln!(
            "  [kith] {n}: {} contacts, {} interactions generated, exported and imported in {:.0} ms",
            net.contacts.len(),
            net.interactions.len(),
            ms(t.elapsed())
        );
        drop(net);
        append(&a, n, figures);
        cold_open(&a, n, figures);
        let relay_dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(relay_dir.path());
        let b = bootstrap(&relay, &a, n, figures).await;
        if n == 5_000 {
            let lat = propagation(&relay.address(), &a, &b, PROPAGATION_TRIALS).await;
            let (p50, p99) = (ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)));
            eprintln!("  [kith] propagation p50 {p50:.1} ms, p99 {p99:.1} ms");
            figures.insert("propagation_p50_ms".into(), p50.into());
            figures.insert("propagation_p99_ms".into(), p99.into());
        }
    }
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        cold_open_child(Path::new(&dir));
        return;
    }
    let Some(out) = arg("--out").map(PathBuf::from) else {
        // `cargo bench` runs every bench binary with `--bench`: without
        // `--out` this one only says how to run it.
        println!("compare: run bench/compare/run.sh (needs --out DIR)");
        return;
    };
    std::fs::create_dir_all(&out).unwrap();
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "5000,50000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let mut figures = Figures::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&out, &sizes, &mut figures));
    std::fs::write(
        out.join("kith.json"),
        serde_json::to_string_pretty(&figures).unwrap(),
    )
    .unwrap();
}
