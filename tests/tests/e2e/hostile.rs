//! Hostile or damaged data through the real relay: a member device's junk
//! entry and a bit flipped in the relay's redb file are quarantined by every
//! reader (recorded, named, skipped), everything else keeps syncing, and the
//! writer's original bytes repair the relay's damaged copy.

use kith_core::sync::{RelayClientConfig, RelayEvent, sync_status};
use kith_e2e::{Device, TestRelay};
use kith_protocol::{DeviceId, SealedEntry};

use crate::common::{TIMEOUT_MS, log, round, rt};

/// One round collecting the quarantine events it reported.
async fn round_events(d: &Device, relay: &TestRelay) -> Vec<(DeviceId, u64)> {
    let mut seen = Vec::new();
    kith_net::relay_round(
        &d.store,
        &d.id,
        &relay.address(),
        RelayClientConfig::default(),
        vec![],
        TIMEOUT_MS,
        |e| {
            if let RelayEvent::Quarantined { device, seq, .. } = e {
                seen.push((*device, *seq));
            }
        },
    )
    .await
    .unwrap();
    seen
}

/// The account's membership log as `d` holds it, and its current epoch.
fn membership(d: &Device) -> (Vec<kith_protocol::MembershipOp>, u64) {
    let ops = kith_core::sync::membership::ops(&mut d.s()).unwrap();
    let epoch = kith_protocol::Membership::from_ops(d.id.account_id(), &ops)
        .unwrap()
        .epoch();
    (ops, epoch)
}

fn summaries(d: &Device) -> Vec<String> {
    let mut v: Vec<String> = d
        .s()
        .all_interactions()
        .unwrap()
        .into_iter()
        .map(|i| i.summary)
        .collect();
    v.sort();
    v
}

fn quarantined(d: &Device) -> Vec<(DeviceId, u64)> {
    sync_status(&mut d.s())
        .unwrap()
        .quarantined
        .into_iter()
        .map(|q| (q.device, q.seq))
        .collect()
}

/// A member device pushes a correctly signed entry whose ciphertext is junk,
/// between honest entries of others. Every other device (an existing one and
/// a new one) skips exactly that entry, names its device, and gets all else.
#[test]
fn a_junk_entry_from_a_member_is_quarantined_and_everything_else_syncs() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        let hostile = a.sibling("hostile");
        log(&a, "from a", "Ann");
        round(&a, &relay).await;
        // The hostile member: a valid envelope (its own device key, the
        // account, seq 1), junk inside.
        let (ops, epoch) = membership(&hostile);
        let junk = SealedEntry::seal(
            hostile.id.device_signing_key(),
            hostile.id.account_id(),
            epoch,
            1,
            [7; 24],
            b"junk that is no AEAD output at all".to_vec(),
        );
        let mut c = relay
            .connect_as(
                hostile.id.device_signing_key(),
                hostile.id.account_id(),
                ops,
            )
            .await;
        assert_eq!(c.push(vec![junk]).await.unwrap(), 1);
        log(&b, "from b", "Bob");
        let seen = round_events(&b, &relay).await;
        let bad = (hostile.id.device_id(), 1);
        assert_eq!(seen, vec![bad], "b is told which device wrote it");
        assert_eq!(summaries(&b), vec!["from a", "from b"]);
        assert_eq!(quarantined(&b), vec![bad]);
        // a keeps syncing too, and a new device joins with everything.
        round(&a, &relay).await;
        assert_eq!(summaries(&a), vec!["from a", "from b"]);
        assert_eq!(quarantined(&a), vec![bad]);
        let d = a.sibling("new tablet");
        round(&d, &relay).await;
        assert_eq!(summaries(&d), vec!["from a", "from b"]);
        assert_eq!(quarantined(&d), vec![bad]);
        // Later rounds are quiet: the cursor moved past it.
        assert!(round_events(&b, &relay).await.is_empty());
        // The device list flags it once its certificate is known; here it
        // never sent a valid one, so the status names it by id only.
        let devices = kith_core::sync::devices::list_devices(&mut b.s()).unwrap();
        assert!(
            devices
                .iter()
                .all(|x| x.quarantined_entries == 0 || x.id == bad.0)
        );
    });
}

/// Flips one bit inside an entry in the relay's redb file (relay stopped,
/// then restarted on the same files). A new device joins: it skips that one
/// entry (quarantined, naming the writer) and gets the rest; the writer
/// re-pushes its original bytes, the relay accepts them as a repair (not a
/// fork), and the next new device gets everything.
#[test]
fn a_bit_flipped_in_the_relay_file_is_skipped_and_the_writer_repairs_it() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        for s in ["one", "two", "three"] {
            log(&a, s, "Ann");
            round(&a, &relay).await;
        }
        let mut c = relay
            .connect_as(
                a.id.device_signing_key(),
                a.id.account_id(),
                membership(&a).0,
            )
            .await;
        let originals = c.pull_all(vec![]).await.unwrap();
        assert!(originals.len() >= 3, "{}", originals.len());
        let victim = originals[1].clone();
        drop(c);
        let key = relay.key.clone();
        relay.stop().await.unwrap();

        // Flip one bit in the middle of that entry's ciphertext on disk.
        let file = dir.path().join("relay.redb");
        let mut bytes = std::fs::read(&file).unwrap();
        let ct = &victim.ciphertext;
        let needle = &ct[ct.len() / 2 - 16..ct.len() / 2 + 16];
        // (Every copy: a copy-on-write file may hold a stale page too.)
        let at: Vec<usize> = bytes
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(i, _)| i)
            .collect();
        assert!(!at.is_empty(), "the entry's ciphertext is in the file");
        for i in at {
            bytes[i + 16] ^= 0x01;
        }
        std::fs::write(&file, &bytes).unwrap();

        let relay = TestRelay::start_at(
            dir.path(),
            key,
            "127.0.0.1:0".parse().unwrap(),
            kith_relay::RelayConfig::default(),
        );
        let b = a.sibling("new phone");
        let seen = round_events(&b, &relay).await;
        let bad = (a.id.device_id(), victim.seq);
        assert_eq!(seen, vec![bad]);
        assert_eq!(quarantined(&b), vec![bad]);
        // What the other entries carry arrived (an entry's changes may also
        // ride in a later one, so which summaries are missing depends on
        // what the damaged one held).
        assert!(!summaries(&b).is_empty());

        // The writer repairs: its original bytes are accepted (today's
        // refusal of a byte-identical re-push as a fork is gone) ...
        let mut c = relay
            .connect_as(
                a.id.device_signing_key(),
                a.id.account_id(),
                membership(&a).0,
            )
            .await;
        let head = originals.last().unwrap().seq;
        assert_eq!(c.push(vec![victim.clone()]).await.unwrap(), head);
        // ... but nothing else is: another entry at that seq is a fork.
        let forged = SealedEntry::seal(
            a.id.device_signing_key(),
            a.id.account_id(),
            victim.epoch,
            victim.seq,
            [1; 24],
            b"other".to_vec(),
        );
        assert!(c.push(vec![forged]).await.is_err());
        assert_eq!(c.pull_all(vec![]).await.unwrap(), originals);
        let d = a.sibling("new tablet");
        assert!(round_events(&d, &relay).await.is_empty());
        assert_eq!(summaries(&d), vec!["one", "three", "two"]);
        // b, which quarantined the damaged copy, pulls it again on its next
        // round, applies it and drops the record.
        let mut repaired = Vec::new();
        kith_net::relay_round(
            &b.store,
            &b.id,
            &relay.address(),
            RelayClientConfig::default(),
            vec![],
            TIMEOUT_MS,
            |e| {
                if let RelayEvent::Repaired { device, seq } = e {
                    repaired.push((*device, *seq));
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(repaired, vec![bad]);
        assert!(quarantined(&b).is_empty());
        assert_eq!(summaries(&b), vec!["one", "three", "two"]);
    });
}

/// A member stores a junk snapshot (correctly signed by its device key,
/// ciphertext junk) covering every head, through the real relay. The relay
/// prunes nothing (the snapshot is pending until another device opens it); a
/// NEW device cannot open it, says so (event and quarantine record naming
/// the device, seq 0), falls back to the log and gets everything; an
/// existing device that checks the pending snapshot refuses it too and the
/// junk is never confirmed.
#[test]
fn a_junk_snapshot_covering_every_head_does_not_stop_a_new_device() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let hostile = a.sibling("hostile");
        for s in ["one", "two", "three"] {
            log(&a, s, "Ann");
            round(&a, &relay).await;
        }
        let (ops, epoch) = membership(&hostile);
        let mut c = relay
            .connect_as(
                hostile.id.device_signing_key(),
                hostile.id.account_id(),
                ops,
            )
            .await;
        let kith_protocol::Response::Heads { heads, .. } =
            c.request(kith_protocol::Request::Heads).await.unwrap()
        else {
            panic!("heads")
        };
        assert!(!heads.is_empty());
        let junk = kith_protocol::SealedSnapshot::seal(
            hostile.id.device_signing_key(),
            hostile.id.account_id(),
            epoch,
            heads,
            [3; 24],
            vec![0x5A; 4096],
        );
        assert_eq!(
            c.request(kith_protocol::Request::PutSnapshot { snapshot: junk })
                .await
                .unwrap(),
            kith_protocol::Response::SnapshotStored { pruned_entries: 0 }
        );
        // The log it claims to cover is all still there.
        assert!(c.pull_all(vec![]).await.unwrap().len() >= 3);
        drop(c);

        let n = a.sibling("new tablet");
        let mut unreadable = Vec::new();
        kith_net::relay_round(
            &n.store,
            &n.id,
            &relay.address(),
            RelayClientConfig::default(),
            vec![],
            TIMEOUT_MS,
            |e| {
                if let RelayEvent::SnapshotUnreadable { device, .. } = e {
                    unreadable.push(*device);
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(
            unreadable,
            vec![hostile.id.device_id()],
            "it says which device"
        );
        assert_eq!(summaries(&n), vec!["one", "three", "two"]);
        assert_eq!(quarantined(&n), vec![(hostile.id.device_id(), 0)]);
        // An existing device checks the pending snapshot when its log grew
        // long, refuses it as well, and keeps syncing.
        log(&a, "four", "Ann");
        let mut seen = Vec::new();
        kith_net::relay_round(
            &a.store,
            &a.id,
            &relay.address(),
            RelayClientConfig {
                snapshot_tail_entries_min: 1,
                ..RelayClientConfig::default()
            },
            vec![],
            TIMEOUT_MS,
            |e| {
                if let RelayEvent::SnapshotUnreadable { device, .. } = e {
                    seen.push(*device);
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(seen, vec![hostile.id.device_id()]);
        round(&n, &relay).await;
        assert_eq!(summaries(&n), vec!["four", "one", "three", "two"]);
        // Never confirmed: the relay still holds the whole log.
        let mut c = relay
            .connect_as(
                a.id.device_signing_key(),
                a.id.account_id(),
                membership(&a).0,
            )
            .await;
        let kith_protocol::Response::Heads { floors, .. } =
            c.request(kith_protocol::Request::Heads).await.unwrap()
        else {
            panic!("heads")
        };
        assert!(floors.iter().all(|f| f.seq == 0), "{floors:?}");
    });
}
