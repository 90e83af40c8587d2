//! A relay restored from an older backup: its devices notice it lost
//! entries it had acknowledged and push exactly those again from their own
//! stores, so after one sync of each device the relay's log is complete
//! (docs/RELAY.md, "Backup and restore").

use kith_core::sync::{RelayClientConfig, RelayEvent, sync_status};
use kith_e2e::{Device, TestRelay};
use kith_relay::{RelayConfig, RelayStore};

use crate::common::{TIMEOUT_MS, assert_same, log, round, rt};

async fn round_events(d: &Device, relay: &TestRelay) -> Vec<RelayEvent> {
    let mut events = Vec::new();
    kith_net::relay_round(
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
    events
}

fn acked(d: &Device) -> u64 {
    sync_status(&mut d.s()).unwrap().acked_seq
}

/// The relay's head of `d`'s log.
fn relay_head(relay: &TestRelay, d: &Device) -> u64 {
    relay
        .store()
        .heads(&d.id.account_id())
        .unwrap()
        .heads
        .iter()
        .find(|c| c.device == d.id.device_id())
        .map_or(0, |c| c.seq)
}

/// Last night's backup is taken while two devices push; they work offline
/// after it and sync; the relay
/// is restored from that backup; the devices sync once each (`a_first`
/// chooses the order) and a new device then gets everything from the relay.
fn restored_relay_heals(a_first: bool) {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        for i in 0..3 {
            log(&a, &format!("a{i}"), &format!("Ann {i}"));
            log(&b, &format!("b{i}"), &format!("Bob {i}"));
        }
        round(&a, &relay).await;
        round(&b, &relay).await;
        round(&a, &relay).await;

        // Last night's backup, taken while both devices push.
        for i in 3..5 {
            log(&a, &format!("a{i}"), &format!("Ann {i}"));
            log(&b, &format!("b{i}"), &format!("Bob {i}"));
        }
        let backup = dir.path().join("nightly.backup");
        let backup_task = {
            let (store, key, path) = (relay.store().clone(), relay.key.clone(), backup.clone());
            tokio::task::spawn_blocking(move || store.backup_to(&path, &key, 1))
        };
        tokio::join!(round(&a, &relay), round(&b, &relay));
        backup_task.await.unwrap().unwrap();

        // A day of work on both devices, offline, then synced: the relay
        // acknowledges it all.
        for i in 5..8 {
            log(&a, &format!("a{i}"), &format!("Ann {i}"));
            log(&b, &format!("b{i}"), &format!("Bob {i}"));
        }
        round(&a, &relay).await;
        round(&b, &relay).await;
        round(&a, &relay).await;
        let (acked_a, acked_b) = (acked(&a), acked(&b));
        assert!(relay_head(&relay, &a) == acked_a && relay_head(&relay, &b) == acked_b);

        // The relay's disk dies; the operator restores last night's backup.
        let (key, addr) = (relay.key.clone(), relay.addr);
        relay.stop().await.unwrap();
        let restored_dir = dir.path().join("restored");
        kith_relay::store::backup::restore(&backup, &restored_dir, 2).unwrap();
        let relay = TestRelay::start_at(&restored_dir, key, addr, RelayConfig::default());
        assert!(relay_head(&relay, &a) < acked_a, "the backup is older");
        assert!(relay_head(&relay, &b) < acked_b, "the backup is older");
        let stats_before = relay.store().stats().unwrap();

        // One sync of each device heals the relay.
        let (first, second) = if a_first { (&a, &b) } else { (&b, &a) };
        for d in [first, second] {
            let head = relay_head(&relay, d);
            let events = round_events(d, &relay).await;
            assert!(
                events.iter().any(
                    |e| matches!(e, RelayEvent::RelayHealed { from_seq, .. } if *from_seq == head + 1)
                ),
                "no RelayHealed from {} in {events:?}",
                head + 1
            );
            assert_eq!(relay_head(&relay, d), acked(d));
        }
        assert_eq!(relay_head(&relay, &a), acked_a);
        assert_eq!(relay_head(&relay, &b), acked_b);
        assert!(relay.store().stats().unwrap().entries > stats_before.entries);

        // Nothing is missing on the relay: a new device gets every record
        // from it alone, and the two devices converge with it.
        let c = a.sibling("tablet");
        round(&c, &relay).await;
        round(&a, &relay).await;
        round(&b, &relay).await;
        assert_eq!(c.s().all_interactions().unwrap().len(), 16);
        assert_eq!(a.s().all_interactions().unwrap().len(), 16);
        assert_same(&a, &c);
        assert_same(&b, &c);
        // A second sync is quiet: nothing healed twice, nothing duplicated.
        for d in [&a, &b] {
            let events = round_events(d, &relay).await;
            assert!(!events.iter().any(|e| matches!(e, RelayEvent::RelayHealed { .. })));
        }
        assert_eq!(relay_head(&relay, &a), acked(&a));
    });
}

#[test]
fn a_restored_relay_is_healed_by_its_devices_laptop_first() {
    restored_relay_heals(true);
}

#[test]
fn a_restored_relay_is_healed_by_its_devices_phone_first() {
    restored_relay_heals(false);
}
