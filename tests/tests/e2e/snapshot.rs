//! A snapshot larger than the relay's 1 MiB frame: uploaded in parts by the
//! device that has the data, downloaded in ranges by a new device, which
//! bootstraps from it with progress reported.

use kith_core::sync::{RelayClientConfig, RelayEvent, Transfer};
use kith_e2e::{Device, TestRelay};
use kith_synth::{SynthParams, generate};
use rand::{Rng, SeedableRng};

use crate::common::{TIMEOUT_MS, assert_same, rt};

/// Text that does not compress (so a few hundred interactions make a
/// snapshot of more than 1 MiB).
fn noisy_text(rng: &mut rand::rngs::StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect()
}

async fn round_events(d: &Device, relay: &TestRelay) -> (kith_net::RoundReport, Vec<RelayEvent>) {
    let mut events = Vec::new();
    let r = kith_net::relay_round(
        &d.store,
        &d.id,
        &relay.address(),
        RelayClientConfig::default(),
        vec![],
        TIMEOUT_MS,
        |e| events.push(e.clone()),
    )
    .await
    .unwrap();
    (r, events)
}

#[test]
fn a_new_device_bootstraps_from_a_snapshot_larger_than_a_frame() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let mut net = generate(&SynthParams::new(40, 450, 11, kith_net::now_ms() as i64));
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for i in &mut net.interactions {
            i.notes = noisy_text(&mut rng, 4000);
        }
        a.s()
            .import_records(net.contacts, net.interactions, net.projects, net.goals)
            .unwrap();

        let (up, events) = round_events(&a, &relay).await;
        assert!(up.snapshot_stored, "a snapshot was uploaded: {events:?}");
        let stored = events.iter().find_map(|e| match e {
            RelayEvent::SnapshotStored { bytes, .. } => Some(*bytes),
            _ => None,
        });
        assert!(stored.unwrap() > 1 << 20, "larger than a frame: {stored:?}");
        let parts = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    RelayEvent::Progress {
                        transfer: Transfer::SnapshotUpload,
                        ..
                    }
                )
            })
            .count();
        assert!(parts >= 2, "uploaded in {parts} parts");

        let b = a.sibling("new phone");
        let (down, events) = round_events(&b, &relay).await;
        assert!(down.snapshot_applied);
        let ranges: Vec<(u64, Option<u64>)> = events
            .iter()
            .filter_map(|e| match e {
                RelayEvent::Progress {
                    transfer: Transfer::SnapshotDownload,
                    done_bytes,
                    total_bytes,
                    ..
                } => Some((*done_bytes, *total_bytes)),
                _ => None,
            })
            .collect();
        assert!(ranges.len() >= 2, "downloaded in ranges: {ranges:?}");
        let (done, total) = *ranges.last().unwrap();
        assert_eq!(Some(done), total, "progress ends at the total");
        assert!(done > 1 << 20);
        assert!(ranges.windows(2).all(|w| w[0].0 < w[1].0), "progress grows");
        // Bytes received stay close to the snapshot's size.
        assert!(
            (down.wire_received_bytes as f64) < 1.2 * done as f64,
            "{} bytes received for a {done}-byte snapshot",
            down.wire_received_bytes
        );
        assert_eq!(b.s().all_interactions().unwrap().len(), 450);
        assert_same(&a, &b);
        // The bootstrapped index is exactly what a rebuild makes.
        let kept = b.s().index_dump().unwrap();
        b.s().reindex().unwrap();
        assert_eq!(kept, b.s().index_dump().unwrap());
    });
}
