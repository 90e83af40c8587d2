//! Benchmark: the full insights at 2,000 contacts and 50,000 interactions.
//!
//! Generates the synthetic network once (seeded), then times `compute_all`
//! (goal: <= 100 ms), `headlines` and `render_html` over repeated runs and
//! prints min / median / max. Plain timing loop rather than criterion so a
//! run stays short on a busy machine:
//! `cargo bench -p kith-core --bench insights` (or `-- CONTACTS INTERACTIONS`).
//!
//! Then the real path of `kith insights` (`Store::insights_records` +
//! `compute_all`) (issue 6's figure): the same network
//! is imported once into a store in a temp dir (bulk import, reindex, file
//! compaction, as the store bench builds its fixture), and each run opens a
//! fresh `Store`, reads what insights need from the redb index and computes,
//! reporting open, read and compute times separately and checking that no
//! Automerge document was loaded.

// A bench binary's job is to print figures; a failed unwrap is a failed bench.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a bench binary reports its figures"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use kith_core::Store;
use kith_insights::{
    HtmlOptions, InsightsInput, InsightsParams, compute_all, headlines, render_html,
};
use kith_synth::{SynthNetwork, SynthParams, generate};

const NOW_MS: i64 = 1_790_000_000_000;
const RUNS: usize = 25;

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, Duration) {
    black_box(f());
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    samples.sort();
    (samples[0], samples[runs / 2], samples[runs - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let contacts = args.first().copied().unwrap_or(2_000);
    let interactions = args.get(1).copied().unwrap_or(50_000);

    let start = Instant::now();
    let net = generate(&SynthParams::new(contacts, interactions, 42, NOW_MS));
    println!(
        "synth: {contacts} contacts, {interactions} interactions generated in {:.1} ms",
        ms(start.elapsed())
    );
    let input = InsightsInput {
        contacts: &net.contacts,
        interactions: &net.interactions,
        goals: &net.goals,
        settings: &net.settings,
        now_ms: NOW_MS,
        params: InsightsParams::default(),
    };

    let (min, med, max) = time(RUNS, || compute_all(&input));
    println!(
        "compute_all: min {:.2} ms, median {:.2} ms, max {:.2} ms ({RUNS} runs; goal <= 100 ms)",
        ms(min),
        ms(med),
        ms(max)
    );
    let report = compute_all(&input);
    let (min, med, _) = time(RUNS, || headlines(&report));
    println!("headlines: min {:.3} ms, median {:.3} ms", ms(min), ms(med));
    let options = HtmlOptions::default();
    let (min, med, _) = time(RUNS, || render_html(&report, &options));
    let bytes = render_html(&report, &options).len();
    println!(
        "render_html: min {:.2} ms, median {:.2} ms, {} KiB",
        ms(min),
        ms(med),
        bytes / 1024
    );
    let json = serde_json::to_vec(&report).map(|v| v.len()).unwrap_or(0);
    println!("report JSON: {} KiB", json / 1024);

    from_store(net, &report);
}

/// Builds the store fixture once, then times open + read from the index +
/// compute over fresh opens.
fn from_store(net: SynthNetwork, expected: &kith_insights::InsightsReport) {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    {
        let mut store = Store::open(dir.path()).unwrap();
        store.set_settings(net.settings.clone()).unwrap();
        store
            .import_records(net.contacts, net.interactions, net.projects, net.goals)
            .unwrap();
        for doc in store.doc_ids().unwrap() {
            store.compact(doc).unwrap();
        }
        store.reindex().unwrap();
        let size = store.compact_file().unwrap();
        store.close().unwrap();
        println!(
            "store fixture (import, reindex, file compaction) built in {:.0} ms, {:.1} MB",
            ms(start.elapsed()),
            size as f64 / 1e6
        );
    }

    let mut open_t = Vec::with_capacity(RUNS);
    let mut read_t = Vec::with_capacity(RUNS);
    let mut compute_t = Vec::with_capacity(RUNS);
    let mut total_t = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let t0 = Instant::now();
        let store = Store::open(dir.path()).unwrap();
        let t1 = Instant::now();
        let records = store.insights_records().unwrap();
        let t2 = Instant::now();
        let report = black_box(compute_all(&kith_insights::InsightsInput::from_records(
            &records,
            NOW_MS,
            InsightsParams::default(),
        )));
        let t3 = Instant::now();
        assert!(
            store.loaded_docs().is_empty(),
            "insights loaded a document: {:?}",
            store.loaded_docs()
        );
        if run == 0 {
            // Warm-up run: also checks the index path gives the in-memory result.
            assert_eq!(&report, expected, "insights from the store differ");
            continue;
        }
        open_t.push(t1 - t0);
        read_t.push(t2 - t1);
        compute_t.push(t3 - t2);
        total_t.push(t3 - t1);
        store.close().unwrap();
    }
    // The path `kith insights` took before `insights_records`: one read
    // transaction per table and full records (notes included).
    let mut full_t = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let store = Store::open(dir.path()).unwrap();
        let t = Instant::now();
        black_box((
            store.all_contacts().unwrap(),
            store.all_interactions().unwrap(),
            store.all_goals().unwrap(),
            store.settings().unwrap(),
        ));
        full_t.push(t.elapsed());
        store.close().unwrap();
    }
    let stats = |mut v: Vec<Duration>| {
        v.sort();
        format!(
            "min {:.2} ms, median {:.2} ms, max {:.2} ms",
            ms(v[0]),
            ms(v[v.len() / 2]),
            ms(v[v.len() - 1])
        )
    };
    println!("from the store ({RUNS} fresh opens, no document loaded):");
    println!("  open:            {}", stats(open_t));
    println!(
        "  read index (all_* full records, before): {}",
        stats(full_t)
    );
    println!(
        "  read index (insights_records):          {}",
        stats(read_t)
    );
    println!("  compute_all:     {}", stats(compute_t));
    println!("  read + compute:  {}  (goal <= 100 ms)", stats(total_t));
}
