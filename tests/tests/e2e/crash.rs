//! The relay killed in the middle of a push and of a pull: after a restart
//! the sync completes, nothing lost, nothing duplicated.

use std::collections::BTreeSet;

use kith_core::sync::{RelayConfig, RelayEvent, sync_status};
use kith_core::{NewInteraction, ParticipantRef};
use kith_e2e::{Device, TestRelay};

use crate::common::{TIMEOUT_MS, assert_same, round, rt};

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
fn relay_killed_mid_push_then_mid_pull_loses_and_duplicates_nothing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        log_spread(&a, 120);
        // Small pushes so the push takes many requests; kill after the first ack.
        let cfg = RelayConfig {
            push_bytes_max: 1,
            pull_entries_max: 1,
            ..RelayConfig::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = relay.address();
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
            relay.kill();
        };
        let (r, ()) = tokio::join!(r, killer);
        assert!(r.is_err(), "the round was cut by the kill");
        let st = sync_status(&mut a.s()).unwrap();
        assert!(st.acked_seq >= 1 && st.outbox_entries > 0, "{st:?}");
        relay.restart();
        kith_net::relay_round(
            &a.store,
            &a.id,
            &relay.address(),
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
        let addr = relay.address();
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
            relay.kill();
        };
        let (r, ()) = tokio::join!(r, killer);
        assert!(r.is_err(), "the pull was cut by the kill");
        let partial = b.s().all_interactions().unwrap().len();
        assert!(partial < 120, "{partial}");
        relay.restart();
        round(&b, &relay).await;
        let all = b.s().all_interactions().unwrap();
        assert_eq!(all.len(), 120);
        let summaries: BTreeSet<String> = all.iter().map(|i| i.summary.clone()).collect();
        assert_eq!(summaries.len(), 120, "no duplicates");
        assert_eq!(b.s().all_contacts().unwrap().len(), 1);
        assert_same(&a, &b);
    });
}
