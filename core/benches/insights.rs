//! Benchmark: the full insights at 2,000 contacts and 50,000 interactions.
//!
//! Generates the synthetic network once (seeded), then times `compute_all`
//! (goal: <= 100 ms), `headlines` and `render_html` over repeated runs and
//! prints min / median / max. Plain timing loop rather than criterion so a
//! run stays short on a busy machine:
//! `cargo bench -p kith-core --bench insights` (or `-- CONTACTS INTERACTIONS`).

#![allow(clippy::print_stdout, reason = "a bench binary reports its figures")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use kith_core::insights::{
    HtmlOptions, InsightsInput, InsightsParams, compute_all, headlines, render_html,
};
use kith_core::synth::{SynthParams, generate};

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
}
