//! Helpers shared by kith-e2e's bench binaries (benches/sync.rs and
//! benches/compare.rs): seeding a device with a synthetic network through
//! the bulk path, percentiles, the process's own memory from
//! /proc/self/status, and the live propagation measurement (two devices
//! watching the relay, one logs, the other's `Applied` event is timed).
//!
//! Bench code: a failed unwrap is a failed bench.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_core::sync::{RelayClientConfig, RelayEvent};
use kith_core::{NewInteraction, ParticipantRef};
use kith_protocol::RelayAddress;
use kith_synth::{SynthNetwork, SynthParams, generate};
use tokio::sync::{mpsc, watch};

use crate::Device;

/// How long one relay round of a bench may take before it fails.
pub const ROUND_TIMEOUT_MS: u64 = 600_000;

/// The synthetic network of `contacts` and `interactions` (seed fixed by
/// the caller), ending now.
pub fn network(contacts: usize, interactions: usize, seed: u64) -> SynthNetwork {
    generate(&SynthParams::new(
        contacts,
        interactions,
        seed,
        kith_net::now_ms() as i64,
    ))
}

/// Imports `net` into `d`'s store through the bulk path (interactions in
/// batches of 5,000) and compacts every document.
pub fn seed_with(d: &Device, net: &SynthNetwork) {
    let mut s = d.s();
    s.import_records(
        net.contacts.clone(),
        Vec::new(),
        net.projects.clone(),
        net.goals.clone(),
    )
    .unwrap();
    for chunk in net.interactions.chunks(5_000) {
        s.import_records(Vec::new(), chunk.to_vec(), Vec::new(), Vec::new())
            .unwrap();
    }
    for doc in s.doc_ids().unwrap() {
        s.compact(doc).unwrap();
    }
}

/// Seeds `d` with a fresh network (seed 7).
pub fn seeded(d: &Device, contacts: usize, interactions: usize) {
    seed_with(d, &network(contacts, interactions, 7));
}

/// The sample at quantile `p` of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len().saturating_sub(1))]
}

/// A `/proc/self/status` field in KiB (`VmRSS:`, `VmHWM:`); 0 if absent.
pub fn status_kib(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Propagation A -> relay -> B: both devices (already members and synced
/// once) run `relay_watch`; A logs one interaction per trial and nudges
/// its watcher; the time runs from before A's durable write to B's
/// `Applied` event. Returns the sorted latencies.
pub async fn propagation(
    relay: &RelayAddress,
    a: &Device,
    b: &Device,
    trials: usize,
) -> Vec<Duration> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let spawn_watch = |d: &Device,
                       events: Option<std::sync::mpsc::Sender<Instant>>,
                       ready: std::sync::mpsc::Sender<()>| {
        let (local_tx, mut local_rx) = mpsc::channel::<()>(64);
        let store = Arc::clone(&d.store);
        let id = d.id.clone();
        let addr = relay.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            kith_net::relay_watch(
                &store,
                &id,
                &addr,
                RelayClientConfig::default(),
                kith_net::WatchOptions::default(),
                &mut local_rx,
                &mut stop,
                |e| match e {
                    RelayEvent::RoundComplete => {
                        let _ = ready.send(());
                    }
                    RelayEvent::Applied { interactions, .. } if *interactions > 0 => {
                        if let Some(tx) = &events {
                            let _ = tx.send(Instant::now());
                        }
                    }
                    _ => {}
                },
                |_, _| {},
            )
            .await
            .unwrap();
        });
        local_tx
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let a_local = spawn_watch(a, None, ready_tx.clone());
    let _b_local = spawn_watch(b, Some(seen_tx), ready_tx);
    for _ in 0..2 {
        tokio::task::block_in_place(|| ready_rx.recv_timeout(Duration::from_secs(60)).unwrap());
    }
    let person = a.s().all_contacts().unwrap()[0].id;
    let mut lat = Vec::with_capacity(trials);
    for i in 0..trials {
        let t0 = Instant::now();
        a.s()
            .log_interaction(NewInteraction {
                summary: format!("trial {i}"),
                participants: vec![ParticipantRef::Id(person)],
                ..NewInteraction::default()
            })
            .unwrap();
        a_local.send(()).await.unwrap();
        let t1 =
            tokio::task::block_in_place(|| seen_rx.recv_timeout(Duration::from_secs(30)).unwrap());
        lat.push(t1 - t0);
        while seen_rx.try_recv().is_ok() {}
    }
    let _ = stop_tx.send(true);
    lat.sort();
    lat
}
