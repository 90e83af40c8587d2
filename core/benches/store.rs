//! Store benchmark (a bench binary printing figures; `cargo bench -p kith-core --bench store`).
//!
//! At 2,000 contacts with 5,000 and with 50,000 interactions (~300-character
//! notes) it measures: building the fixture through the bulk path; store size
//! on disk; cold open to the first screen (20 most recent interactions + the
//! first page of contacts); the phone case (open + first durable write, in a
//! fresh process, with its resident memory); one durable logged interaction
//! (p50/p99); loading the main document and one quarter partition; a full
//! load of every document (fresh process: time and memory); prefix search
//! for a name (p50/p99).
//!
//! A third scenario puts 10,000 of the 50,000 interactions in the current
//! quarter (a busy quarter): the phone case must not grow with it. The phone
//! case runs in 20 fresh processes (p50 / p99); durable writes are measured
//! twice: with the current quarter not in memory (a fresh process: new
//! interactions are fresh writes, docs/STORE.md) and with it loaded (after a
//! fold; writes append chunks, compaction included).
//!
//! Memory figures come from /proc/self/status (VmRSS, VmHWM) of a child
//! process (this binary re-executed with `KITH_BENCH_CHILD`), so the fixture
//! build does not pollute them. "Cold" means a fresh `Store` in a fresh
//! process; the OS page cache is warm.

// A bench binary's job is to print figures; a failed unwrap is a failed bench.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kith_core::model::{Contact, Goal, Interaction, Project};
use kith_core::{
    ContactId, ContactQuery, DocId, InteractionId, NewInteraction, ParticipantRef, Store,
    TimelineQuery,
};
use kith_synth::SynthParams;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

const CHILD_ENV: &str = "KITH_BENCH_CHILD";
const CHILD_DIR_ENV: &str = "KITH_BENCH_DIR";
const CONTACTS: usize = 2_000;

/// A synthetic network from `kith_synth` (the generator `kith demo`
/// and the insights bench use): five years of history before now.
fn generate(
    contacts_n: usize,
    interactions_n: usize,
    seed: u64,
) -> (Vec<Contact>, Vec<Interaction>, Vec<Project>, Vec<Goal>) {
    let mut params = SynthParams::new(
        contacts_n,
        interactions_n,
        seed,
        chrono::Utc::now().timestamp_millis(),
    );
    params.years = 5;
    let n = kith_synth::generate(&params);
    (n.contacts, n.interactions, n.projects, n.goals)
}

/// Moves `n` of the interactions into the current quarter (before now),
/// minting their ids at the new time so that they partition there.
fn crowd_current_quarter(interactions: &mut [Interaction], n: usize) {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let start = chrono::NaiveDate::from_ymd_opt(now.year(), now.month0() / 3 * 3 + 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    // Stop an hour before now: the bench's own writes are "now".
    let span = (now.timestamp_millis() - 3_600_000 - start).max(1);
    let mut rng = StdRng::seed_from_u64(11);
    for i in interactions.iter_mut().take(n) {
        let at = start + rand::Rng::gen_range(&mut rng, 0..span);
        i.at_ms = at;
        i.id = InteractionId::new_at(at);
    }
}

fn status_kb(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn a_contact(store: &Store) -> ContactId {
    store
        .contacts(&ContactQuery {
            limit: 1,
            ..ContactQuery::default()
        })
        .unwrap()[0]
        .id
}

/// Runs in a child process; prints one `key=value ...` line.
fn child(mode: &str, dir: &Path) {
    let t = Instant::now();
    match mode {
        "phone" => {
            let mut store = Store::open(dir).unwrap();
            let who = a_contact(&store);
            store
                .log_interaction(NewInteraction {
                    summary: "Corridor chat after the board".into(),
                    notes: "x".repeat(300),
                    participants: vec![ParticipantRef::Id(who)],
                    ..NewInteraction::default()
                })
                .unwrap();
            let elapsed = t.elapsed();
            let rss = status_kb("VmRSS:");
            let hwm = status_kb("VmHWM:");
            // What follows the first write in the background: the current
            // quarter loads (and takes in the fresh write).
            let t = Instant::now();
            store
                .heads(DocId::for_time(chrono::Utc::now().timestamp_millis()))
                .unwrap();
            println!(
                "ms={:.2} rss_kb={} hwm_kb={} load_ms={:.2}",
                ms(elapsed),
                rss,
                hwm,
                ms(t.elapsed())
            );
        }
        "full" => {
            let mut store = Store::open(dir).unwrap();
            store.load_all().unwrap();
            let elapsed = t.elapsed();
            println!(
                "ms={:.2} rss_kb={} hwm_kb={} docs={}",
                ms(elapsed),
                status_kb("VmRSS:"),
                status_kb("VmHWM:"),
                store.loaded_docs().len()
            );
        }
        other => panic!("unknown child mode {other}"),
    }
}

fn run_child(mode: &str, dir: &Path) -> BTreeMap<String, f64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, mode)
        .env(CHILD_DIR_ENV, dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn scenario(interactions_n: usize, busy_quarter: usize) {
    if busy_quarter > 0 {
        println!(
            "\n== {CONTACTS} contacts, {interactions_n} interactions, {busy_quarter} of them in the current quarter =="
        );
    } else {
        println!("\n== {CONTACTS} contacts, {interactions_n} interactions ==");
    }
    let dir = tempfile::tempdir().unwrap();
    let (contacts, mut interactions, projects, goals) = generate(CONTACTS, interactions_n, 42);
    crowd_current_quarter(&mut interactions, busy_quarter);
    let names: Vec<String> = contacts.iter().map(|c| c.name.clone()).collect();
    let t = Instant::now();
    let mut store = Store::open(dir.path()).unwrap();
    store
        .import_records(contacts, interactions, projects, goals)
        .unwrap();
    for doc in store.doc_ids().unwrap() {
        store.compact(doc).unwrap();
    }
    let imported = store.size_on_disk_bytes().unwrap();
    let t_re = Instant::now();
    store.reindex().unwrap();
    let reindexed_ms = ms(t_re.elapsed());
    let t_file = Instant::now();
    let after = store.compact_file().unwrap();
    println!(
        "after the import {:.1} MB; reindex (sorted rebuild) {:.0} ms + file compaction {:.0} ms -> {:.1} MB",
        imported as f64 / 1e6,
        reindexed_ms,
        ms(t_file.elapsed()),
        after as f64 / 1e6,
    );
    store.close().unwrap();
    println!(
        "build fixture (bulk import, reindex, compaction): {:.0} ms",
        ms(t.elapsed())
    );

    let store = Store::open(dir.path()).unwrap();
    println!(
        "store size on disk: {:.1} MB ({} documents)",
        store.size_on_disk_bytes().unwrap() as f64 / 1e6,
        store.doc_ids().unwrap().len()
    );
    for t in store.table_sizes().unwrap() {
        println!(
            "  table {:<28} {:>9} rows {:>8.1} MB stored {:>7.1} MB meta {:>7.1} MB fragmented",
            t.table,
            t.entries,
            t.stored_bytes as f64 / 1e6,
            t.metadata_bytes as f64 / 1e6,
            t.fragmented_bytes as f64 / 1e6
        );
    }
    let main = store.doc_meta(DocId::Main).unwrap().unwrap();
    let quarter = DocId::for_time(chrono::Utc::now().timestamp_millis());
    let q = store.doc_meta(quarter).unwrap().unwrap();
    println!(
        "document sizes: main {:.0} KB, current quarter {:.0} KB",
        main.full_bytes as f64 / 1e3,
        q.full_bytes as f64 / 1e3
    );
    store.close().unwrap();

    // Cold open to first screen.
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let store = Store::open(dir.path()).unwrap();
        let recent = store
            .timeline(&TimelineQuery {
                limit: 20,
                ..TimelineQuery::default()
            })
            .unwrap();
        let list = store
            .contacts(&ContactQuery {
                limit: 100,
                ..ContactQuery::default()
            })
            .unwrap();
        samples.push(ms(t.elapsed()));
        assert_eq!((recent.len(), list.len()), (20, 100));
        store.close().unwrap();
    }
    println!(
        "cold open to first screen (20 recent + 100 contacts): p50 {:.2} ms, max {:.2} ms  [goal <= 50 ms]",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 1.0)
    );
    let store = Store::open(dir.path()).unwrap();
    let t = Instant::now();
    let all = store
        .contacts(&ContactQuery {
            limit: 10_000,
            ..ContactQuery::default()
        })
        .unwrap();
    println!(
        "whole contact list ({}): {:.2} ms",
        all.len(),
        ms(t.elapsed())
    );
    store.close().unwrap();

    // Loading single documents.
    let mut main_ms = Vec::new();
    let mut quarter_ms = Vec::new();
    for _ in 0..5 {
        let mut store = Store::open(dir.path()).unwrap();
        let t = Instant::now();
        store.heads(DocId::Main).unwrap();
        main_ms.push(ms(t.elapsed()));
        let t = Instant::now();
        store.heads(quarter).unwrap();
        quarter_ms.push(ms(t.elapsed()));
        store.close().unwrap();
    }
    println!(
        "load main document: p50 {:.1} ms; load current quarter: p50 {:.1} ms",
        percentile(&mut main_ms, 0.5),
        percentile(&mut quarter_ms, 0.5)
    );

    // Phone case, each in a fresh process.
    let mut phone_ms = Vec::new();
    let mut load_ms = Vec::new();
    let mut rss = Vec::new();
    let mut hwm = Vec::new();
    for _ in 0..20 {
        let r = run_child("phone", dir.path());
        phone_ms.push(r["ms"]);
        load_ms.push(r["load_ms"]);
        rss.push(r["rss_kb"] / 1024.0);
        hwm.push(r["hwm_kb"] / 1024.0);
    }
    println!(
        "phone case, open + first durable write (20 processes): p50 {:.1} ms, p99 {:.1} ms  [goal <= 50 ms]; RSS after {:.1} MB, peak {:.1} MB  [goal <= 150 MB]",
        percentile(&mut phone_ms, 0.5),
        percentile(&mut phone_ms, 0.99),
        percentile(&mut rss, 1.0),
        percentile(&mut hwm, 1.0)
    );
    println!(
        "  then loading the current quarter (off the write path): p50 {:.1} ms",
        percentile(&mut load_ms, 0.5)
    );

    // Durable single writes, first with the current quarter not in memory
    // (a fresh store: new interactions are fresh writes), then with it
    // loaded (writes append chunks; compaction included).
    let mut store = Store::open(dir.path()).unwrap();
    durable_writes(&mut store, "current quarter not in memory");
    store
        .heads(DocId::for_time(chrono::Utc::now().timestamp_millis()))
        .unwrap();
    durable_writes(&mut store, "current quarter loaded");
    // Prefix search for a name.
    let mut search_ms = Vec::new();
    let mut hits = 0;
    for n in 0..200 {
        let name = &names[(n * 7919) % names.len()];
        let last = name.split(' ').nth(1).unwrap_or(name);
        let prefix: String = last.chars().take(4).collect();
        let t = Instant::now();
        let r = store.search(&prefix, 20).unwrap();
        search_ms.push(ms(t.elapsed()));
        hits += r.contacts.len();
    }
    println!(
        "prefix search for a name (4 letters, 20 results): p50 {:.2} ms, p99 {:.2} ms  [goal <= 5 ms] ({} contact hits)",
        percentile(&mut search_ms, 0.5),
        percentile(&mut search_ms, 0.99),
        hits
    );
    store.close().unwrap();

    // Full load in a fresh process.
    let r = run_child("full", dir.path());
    println!(
        "full load of all {} documents: {:.0} ms, RSS after {:.1} MB, peak {:.1} MB",
        r["docs"],
        r["ms"],
        r["rss_kb"] / 1024.0,
        r["hwm_kb"] / 1024.0
    );
}

/// 300 durable logged interactions (after one warm-up), p50 / p99 / max.
fn durable_writes(store: &mut Store, what: &str) {
    let who: Vec<ContactId> = store
        .contacts(&ContactQuery {
            limit: 200,
            ..ContactQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let mut write_ms = Vec::new();
    for n in 0..301 {
        let t = Instant::now();
        store
            .log_interaction(NewInteraction {
                summary: format!("bench write {n}"),
                notes: "Talked about the rota and the audit. ".repeat(8),
                participants: vec![ParticipantRef::Id(*who.choose(&mut rng).unwrap())],
                ..NewInteraction::default()
            })
            .unwrap();
        if n > 0 {
            write_ms.push(ms(t.elapsed()));
        }
    }
    println!(
        "log one interaction, durable, {what} (300 writes): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms  [goal p50 <= 1.5 ms, p99 <= 3 ms]",
        percentile(&mut write_ms, 0.5),
        percentile(&mut write_ms, 0.99),
        percentile(&mut write_ms, 1.0)
    );
}

fn main() {
    if let (Ok(mode), Ok(dir)) = (std::env::var(CHILD_ENV), std::env::var(CHILD_DIR_ENV)) {
        child(&mode, Path::new(&dir));
        return;
    }
    // `cargo bench` passes `--bench`; any other argument filters scenarios:
    // `5000`, `50000`, `50000-busy` (10,000 in the current quarter).
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    // (total interactions, how many of them in the current quarter; 0: as generated)
    for (n, busy) in [(5_000usize, 0usize), (50_000, 0), (50_000, 10_000)] {
        let name = if busy > 0 {
            format!("{n}-busy")
        } else {
            n.to_string()
        };
        if filter.is_empty() || filter.contains(&name) {
            scenario(n, busy);
        }
    }
}
