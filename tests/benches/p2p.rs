//! Peer-to-peer figures (a bench binary, run with
//! `cargo bench -p kith-e2e --bench p2p` or, quicker, `-- --quick`):
//!
//! 1. live propagation over one kept connection (`peer_watch` against a
//!    `PeerServer`), real QUIC on 127.0.0.1 and real redb files, trials
//!    in each of three set-ups, p50 / p99 / max of "logged on one device"
//!    -> "merged, indexed and durable on the other":
//!    - laptop (watching client) -> phone (server), the app signalling its
//!      own write (as the bindings do);
//!    - phone (server) -> laptop, the server announcing `Changed`;
//!    - laptop -> phone with keepers on both sides noticing the write (what
//!      `kith log` beside `kith sync --peer ADDR --watch` and `kith
//!      serve-peer` costs: polling every 50 ms, stores parked after 100 ms
//!      idle, so each side reopens its file);
//! 2. the bytes of one exchange on a kept connection.
//!
//! The one-shot reconnect figure (bytes and round trips after one new
//! interaction) is printed by the sync bench (`--bench sync`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_core::sync::pairing::PairingHost;
use kith_core::{NewInteraction, ParticipantRef};
use kith_e2e::Device;
use kith_net::{ChangeNotifier, KeeperOptions, PeerReport, PeerServer, WatchOptions};
use tokio::sync::{mpsc, watch};

fn log(d: &Device, summary: &str) {
    let person = d.s().all_contacts().unwrap()[0].id;
    d.s()
        .log_interaction(NewInteraction {
            summary: summary.into(),
            notes: "a few lines of notes about what we discussed and agreed".into(),
            participants: vec![ParticipantRef::Id(person)],
            ..NewInteraction::default()
        })
        .unwrap();
}

fn seed(d: &Device, n: usize) {
    d.s()
        .add_contact(kith_core::NewContact::named("Ana Lima"))
        .unwrap();
    for i in 0..n {
        log(d, &format!("seed {i}"));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn print(what: &str, mut lat: Vec<Duration>) {
    lat.sort();
    println!(
        "{what}, {} trials: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
    );
}

struct Pair {
    a: Device,
    b: Device,
    /// The laptop's local-change signal (what its keeper or app feeds).
    a_local: mpsc::Sender<()>,
    /// The phone's server announcement handle.
    b_notify: ChangeNotifier,
    /// Completed exchanges that received changes: on the laptop (client) ...
    a_seen: std::sync::mpsc::Receiver<(Instant, PeerReport)>,
    /// ... and on the phone (server).
    b_seen: std::sync::mpsc::Receiver<Instant>,
    stop_client: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn live_pair(seed_n: usize, keeper_on_a: bool) -> Pair {
    let a = Device::first("laptop");
    let b = a.sibling("phone");
    seed(&a, seed_n);
    let server = PeerServer::bind("127.0.0.1:0".parse().unwrap(), &b.id).unwrap();
    let addr = server.local_addr().unwrap();
    let b_notify = server.notifier();
    let (stop, stop_rx) = watch::channel(false);
    let (b_tx, b_seen) = std::sync::mpsc::channel();
    let mut tasks = Vec::new();
    let (store, id, mut sd) = (b.store.clone(), b.id.clone(), stop_rx.clone());
    tasks.push(tokio::spawn(async move {
        server
            .run(
                store,
                id,
                Arc::new(std::sync::Mutex::new(PairingHost::default())),
                async move {
                    let _ = sd.wait_for(|s| *s).await;
                },
                move |r| {
                    if r.is_ok_and(|r| r.stats.changes_received > 0) {
                        let _ = b_tx.send(Instant::now());
                    }
                },
            )
            .await
            .unwrap();
    }));
    let (a_local, mut local_rx) = mpsc::channel(8);
    let (a_tx, a_seen) = std::sync::mpsc::channel();
    // The client stops first, so the server's going away is no error.
    let (stop_client, client_rx) = watch::channel(false);
    let (store, id, mut sd) = (a.store.clone(), a.id.clone(), client_rx);
    tasks.push(tokio::spawn(async move {
        kith_net::peer_watch(
            &store,
            &id,
            addr,
            WatchOptions::default(),
            &mut local_rx,
            &mut sd,
            |r| {
                let _ = a_tx.send((Instant::now(), r.clone()));
            },
            |e, _| panic!("peer problem: {e}"),
        )
        .await
        .unwrap();
    }));
    if keeper_on_a {
        // As the CLI runs it: a keeper on each side (the phone's announces).
        let (store, mut sd, n) = (b.store.clone(), stop_rx.clone(), b_notify.clone());
        tasks.push(tokio::spawn(async move {
            kith_net::keep_store(&store, KeeperOptions::default(), &mut sd, || n.notify()).await;
        }));
        let (store, mut sd, tx) = (a.store.clone(), stop_rx, a_local.clone());
        tasks.push(tokio::spawn(async move {
            kith_net::keep_store(&store, KeeperOptions::default(), &mut sd, || {
                let _ = tx.try_send(());
            })
            .await;
        }));
    }
    // The first exchange (the seed) completes.
    tokio::task::block_in_place(|| b_seen.recv_timeout(Duration::from_secs(120)).unwrap());
    Pair {
        a,
        b,
        a_local,
        b_notify,
        a_seen,
        b_seen,
        stop_client,
        stop,
        tasks,
    }
}

impl Pair {
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        while self.a_seen.try_recv().is_ok() {}
        while self.b_seen.try_recv().is_ok() {}
    }

    async fn stop(self) {
        let _ = self.stop_client.send(true);
        let mut tasks = self.tasks.into_iter();
        let server = tasks.next().unwrap();
        let client = tasks.next().unwrap();
        client.await.unwrap();
        let _ = self.stop.send(true);
        server.await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    }
}

async fn live(trials: usize) {
    let p = live_pair(50, false).await;
    p.settle().await;
    let mut lat = Vec::with_capacity(trials);
    for i in 0..trials {
        let t0 = Instant::now();
        log(&p.a, &format!("a trial {i}"));
        p.a_local.send(()).await.unwrap();
        let t1 =
            tokio::task::block_in_place(|| p.b_seen.recv_timeout(Duration::from_secs(30)).unwrap());
        lat.push(t1 - t0);
    }
    print("p2p live laptop -> phone (app signals its write)", lat);
    p.settle().await;
    let mut lat = Vec::with_capacity(trials);
    let mut bytes = Vec::with_capacity(trials);
    for i in 0..trials {
        let t0 = Instant::now();
        log(&p.b, &format!("b trial {i}"));
        p.b_notify.notify();
        let (t1, r) = tokio::task::block_in_place(|| {
            loop {
                let (t, r) = p.a_seen.recv_timeout(Duration::from_secs(30)).unwrap();
                if r.stats.changes_received > 0 {
                    break (t, r);
                }
            }
        });
        lat.push(t1 - t0);
        bytes.push(r.wire_sent_bytes + r.wire_received_bytes);
    }
    print("p2p live phone -> laptop (server announces Changed)", lat);
    bytes.sort();
    println!(
        "  bytes of one such exchange on the kept connection: median {}, max {}",
        bytes[bytes.len() / 2],
        bytes.last().unwrap()
    );
    let (a, b) = (&p.a, &p.b);
    assert_eq!(
        a.s().index_dump().unwrap(),
        b.s().index_dump().unwrap(),
        "devices diverged"
    );
    p.stop().await;

    let p = live_pair(50, true).await;
    p.settle().await;
    let mut lat = Vec::with_capacity(trials);
    for i in 0..trials {
        let t0 = Instant::now();
        log(&p.a, &format!("kept trial {i}"));
        let t1 =
            tokio::task::block_in_place(|| p.b_seen.recv_timeout(Duration::from_secs(30)).unwrap());
        lat.push(t1 - t0);
        // Let the echo exchange (the merge seen by the phone) pass.
        p.settle().await;
    }
    print(
        "p2p live laptop -> phone (keepers on both sides as in the CLI: write noticed by polling every 50 ms, stores parked after 100 ms idle)",
        lat,
    );
    p.stop().await;
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        live(if quick { 30 } else { 100 }).await;
    });
}
