//! Devices syncing through a real relay.

use std::sync::Arc;
use std::time::Duration;

use kith_core::sync::{RelayClientConfig, RelayEvent};
use kith_core::{ContactPatch, InteractionPatch, NewContact};
use kith_e2e::{Device, TestRelay};
use tokio::sync::{mpsc, watch};

use crate::common::{assert_same, log, round, rt};

#[test]
fn two_then_three_devices_log_offline_then_sync() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        let c = a.sibling("tablet");
        for i in 0..5 {
            log(&a, &format!("a{i}"), &format!("Ann {i}"));
            log(&b, &format!("b{i}"), &format!("Bob {i}"));
            log(&c, &format!("c{i}"), &format!("Cid {i}"));
        }
        let r = round(&a, &relay).await;
        assert!(r.pushed_entries >= 1);
        round(&b, &relay).await;
        round(&a, &relay).await;
        assert_eq!(a.s().all_interactions().unwrap().len(), 10);
        assert_same(&a, &b);
        round(&c, &relay).await;
        round(&a, &relay).await;
        round(&b, &relay).await;
        for d in [&a, &b, &c] {
            assert_eq!(d.s().all_interactions().unwrap().len(), 15);
        }
        assert_same(&a, &b);
        assert_same(&a, &c);
    });
}

#[test]
fn concurrent_edits_converge_with_the_notes_conflict_surfaced() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        let id = log(&a, "ward rota", "Ana Lima");
        let ana = a.s().contacts_named("Ana Lima").unwrap()[0].id;
        round(&a, &relay).await;
        round(&b, &relay).await;
        for (d, who) in [(&a, "laptop"), (&b, "phone")] {
            d.s()
                .edit_interaction(
                    id,
                    InteractionPatch {
                        notes: Some(format!("notes written on the {who}")),
                        ..InteractionPatch::default()
                    },
                )
                .unwrap();
            d.s()
                .edit_contact(
                    ana,
                    ContactPatch {
                        role: Some(Some(format!("role set on the {who}"))),
                        notes: Some(format!("contact notes from the {who}")),
                        ..ContactPatch::default()
                    },
                )
                .unwrap();
        }
        round(&a, &relay).await;
        round(&b, &relay).await;
        round(&a, &relay).await;
        assert_same(&a, &b);
        let ia = a.s().interaction(id).unwrap();
        assert_eq!(ia, b.s().interaction(id).unwrap());
        assert!(!ia.notes_conflicts.is_empty(), "conflict surfaced: {ia:?}");
        let ca = a.s().contact(ana).unwrap();
        assert_eq!(ca, b.s().contact(ana).unwrap());
        // Contact notes are Text: both edits merged, nothing lost.
        assert!(
            ca.notes.contains("laptop") && ca.notes.contains("phone"),
            "{:?}",
            ca.notes
        );
    });
}

#[test]
fn same_person_on_two_devices_is_a_likely_duplicate_and_the_merge_syncs() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        let x = a
            .s()
            .add_contact(NewContact::named("Grace Hopper"))
            .unwrap()
            .id;
        let y = b
            .s()
            .add_contact(NewContact::named("Grace Hopper"))
            .unwrap()
            .id;
        round(&a, &relay).await;
        round(&b, &relay).await;
        round(&a, &relay).await;
        let dups = a.s().likely_duplicates().unwrap();
        assert!(
            dups.iter()
                .any(|p| (p.a == x && p.b == y) || (p.a == y && p.b == x))
        );
        assert_eq!(b.s().likely_duplicates().unwrap().len(), dups.len());
        a.s().merge_contacts(x, y).unwrap();
        round(&a, &relay).await;
        round(&b, &relay).await;
        assert_eq!(b.s().contact(y).unwrap().merged_into, Some(x));
        assert!(b.s().likely_duplicates().unwrap().is_empty());
        assert_same(&a, &b);
    });
}

#[test]
fn the_relay_files_hold_no_plaintext() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let marker = "ZEBRA-MARKER-7f3a9c-unique";
        a.s()
            .log_interaction(kith_core::NewInteraction {
                summary: "secret meeting".into(),
                notes: format!("the code word is {marker}"),
                participants: vec![kith_core::ParticipantRef::Name("Marker Person".into())],
                create_missing: true,
                ..kith_core::NewInteraction::default()
            })
            .unwrap();
        let small = RelayClientConfig {
            snapshot_tail_entries_min: 1,
            ..RelayClientConfig::default()
        };
        crate::common::round_with(&a, &relay, small).await.unwrap();
        let b = a.sibling("phone");
        round(&b, &relay).await;
        assert!(
            b.s().search("secret", 10).unwrap().interactions.len() == 1,
            "the data did travel"
        );
        let mut relay = relay;
        relay.drop_tasks();
        let files = relay.files_bytes();
        assert!(!files.is_empty());
        for (path, bytes) in files {
            for needle in [marker.as_bytes(), b"Marker Person", b"secret meeting"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "plaintext found in {}",
                    path.display()
                );
            }
        }
    });
}

#[test]
fn a_logged_interaction_reaches_a_watching_device_live() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        round(&a, &relay).await;
        let (_local_tx, mut local_rx) = mpsc::channel(8);
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        let store = Arc::clone(&b.store);
        let id = b.id.clone();
        let addr = relay.address();
        let watcher = tokio::spawn(async move {
            kith_net::relay_watch(
                &store,
                &id,
                &addr,
                RelayClientConfig::default(),
                kith_net::WatchOptions::default(),
                &mut local_rx,
                &mut stop_rx,
                |e| {
                    if let RelayEvent::Applied { interactions, .. } = e
                        && *interactions > 0
                    {
                        let _ = seen_tx.send(());
                    }
                    if matches!(e, RelayEvent::RoundComplete) {
                        let _ = seen_tx.send(());
                    }
                },
                |_, _| {},
            )
            .await
        });
        // Wait until B is connected and caught up.
        tokio::time::timeout(Duration::from_secs(20), seen_rx.recv())
            .await
            .unwrap();
        let id = log(&a, "live meeting", "Live Person");
        round(&a, &relay).await;
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                seen_rx.recv().await;
                if b.s().interaction(id).is_ok() {
                    break;
                }
            }
        })
        .await
        .unwrap();
        stop_tx.send(true).unwrap();
        watcher.await.unwrap().unwrap();
    });
}

#[test]
fn a_revoked_device_is_refused_by_the_relay_and_by_peers() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let relay = TestRelay::start(dir.path());
        let a = Device::first("laptop");
        let b = a.sibling("lost phone");
        round(&a, &relay).await;
        round(&b, &relay).await;
        kith_net::relay_round(
            &a.store,
            &a.id,
            &relay.address(),
            RelayClientConfig::default(),
            vec![kith_net::relay::Extra::Revoke(b.id.device_id())],
            crate::common::TIMEOUT_MS,
            |_| {},
        )
        .await
        .unwrap();
        let r = crate::common::round_with(&b, &relay, RelayClientConfig::default()).await;
        assert!(
            matches!(
                r,
                Err(kith_net::NetError::Sync(
                    kith_core::sync::RelaySyncError::Relay {
                        code: kith_protocol::ErrorCode::DeviceRevoked,
                        ..
                    }
                ))
            ),
            "{r:?}"
        );
        // A's peer server refuses the revoked device too.
        let server = kith_net::PeerServer::bind("127.0.0.1:0".parse().unwrap(), &a.id).unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let host = Arc::new(std::sync::Mutex::new(
            kith_core::sync::pairing::PairingHost::default(),
        ));
        let task = tokio::spawn(server.run(
            a.store.clone(),
            a.id.clone(),
            host,
            async move {
                let _ = rx.await;
            },
            |_| {},
        ));
        let r = kith_net::sync_with_peer(&b.store, &b.id, addr).await;
        assert!(matches!(r, Err(kith_net::NetError::Peer(_))), "{r:?}");
        let _ = tx.send(());
        task.await.unwrap().unwrap();
        let list = kith_core::sync::list_devices(&mut a.s()).unwrap();
        assert!(
            list.iter()
                .any(|d| d.id == b.id.device_id() && d.revoked_at_ms.is_some())
        );
    });
}
