//! Deterministic tests of the sync machines: real stores in temp dirs, the
//! relay's protocol-4 semantics in memory ([`super::memrelay`]; the real
//! relay runs in kith-net's and the end-to-end tests), messages pumped by
//! hand.

use kith_protocol::{ClientMsg, Request};
use proptest::prelude::*;
use tempfile::TempDir;

use super::memrelay::MemRelay;
use super::pairing::{Invitation, PairError, PairingMode, Reply, Token};
use super::peer::{PeerRole, PeerStats, PeerSync};
use super::relay::{RelayClientConfig, RelayEvent, RelaySync, Transfer, sync_status};
use super::*;
use crate::doc::DocId;
use crate::ops::{ContactPatch, InteractionPatch, NewContact, NewInteraction, ParticipantRef};
use crate::store::Store;

const NOW: u64 = 1_780_000_000_000;

struct Dev {
    dir: TempDir,
    store: Store,
    id: DeviceIdentity,
}

impl Dev {
    fn first() -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut keys = crate::identity::KeyMaterial::generate("first");
        let (id, _code) = membership::create_account(&mut store, &mut keys, NOW).unwrap();
        Dev { dir, store, id }
    }

    /// A new device added by this one (the `Add` is in both logs; the relay
    /// learns it from either device's next `Auth`).
    fn sibling(&mut self, name: &str) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let keys = crate::identity::KeyMaterial::generate(name);
        let id = DeviceIdentity::with_account(&keys, self.id.account_id());
        let op = membership::add_op(&mut self.store, &self.id, id.card(), NOW).unwrap();
        membership::absorb(&mut self.store, &self.id, &[op]).unwrap();
        let ops = membership::ops(&mut self.store).unwrap();
        membership::absorb(&mut store, &id, &ops).unwrap();
        Dev { dir, store, id }
    }

    fn reopen(&mut self) {
        let placeholder = Store::open(tempfile::tempdir().unwrap().path()).unwrap();
        let old = std::mem::replace(&mut self.store, placeholder);
        old.close().unwrap();
        self.store = Store::open(self.dir.path()).unwrap();
    }

    fn log(&mut self, summary: &str) -> crate::ids::InteractionId {
        self.store
            .log_interaction(NewInteraction {
                summary: summary.into(),
                notes: format!("notes of {summary}"),
                participants: vec![ParticipantRef::Name(format!("Person {summary}"))],
                create_missing: true,
                ..NewInteraction::default()
            })
            .unwrap()
            .id
    }
}

fn cfg() -> RelayClientConfig {
    RelayClientConfig::default()
}

/// One full round against the in-memory relay; returns the events.
fn relay_round(relay: &mut MemRelay, d: &mut Dev, cfg: RelayClientConfig) -> Vec<RelayEvent> {
    let round = pump_round(relay, d, cfg, |_| false);
    assert!(round.idle, "round did not complete: {:?}", round.events);
    assert!(round.events.contains(&RelayEvent::RoundComplete));
    round.events
}

/// What [`pump_round`] saw.
struct Round {
    events: Vec<RelayEvent>,
    /// `stop` held and the round was left unfinished.
    stopped: bool,
    /// The client had nothing left to do when the round ended.
    idle: bool,
}

/// Pumps one round against the in-memory relay until nothing moves, or
/// until `stop` holds after a handled message; disconnects either way.
fn pump_round(
    relay: &mut MemRelay,
    d: &mut Dev,
    cfg: RelayClientConfig,
    mut stop: impl FnMut(&mut Store) -> bool,
) -> Round {
    let c = relay.connect();
    let mut m = RelaySync::new(&mut d.store, d.id.clone(), relay.key(), cfg).unwrap();
    let mut events = Vec::new();
    let mut stopped = false;
    'round: for _ in 0..10_000 {
        let mut progressed = false;
        while let Some(msg) = m.poll_transmit() {
            relay.handle(c, msg, NOW);
            progressed = true;
        }
        while let Some(msg) = relay.recv(c) {
            m.handle(&mut d.store, msg, NOW).unwrap();
            progressed = true;
            if stop(&mut d.store) {
                stopped = true;
                break 'round;
            }
        }
        while let Some(e) = m.poll_event() {
            events.push(e);
        }
        if !progressed {
            break;
        }
    }
    relay.disconnect(c);
    Round {
        events,
        stopped,
        idle: m.is_idle(),
    }
}

fn assert_same(a: &mut Dev, b: &mut Dev) {
    let mut ids_a = a.store.doc_ids().unwrap();
    let mut ids_b = b.store.doc_ids().unwrap();
    ids_a.sort();
    ids_b.sort();
    assert_eq!(ids_a, ids_b);
    for d in ids_a {
        let mut ha = a.store.heads(d).unwrap();
        let mut hb = b.store.heads(d).unwrap();
        ha.sort();
        hb.sort();
        assert_eq!(ha, hb, "heads of {d}");
    }
    assert_eq!(a.store.index_dump().unwrap(), b.store.index_dump().unwrap());
    assert_index_is_rebuilt_one(b);
}

/// The index a device maintained incrementally (merges, bootstraps) holds
/// exactly the rows `reindex` builds from its documents.
fn assert_index_is_rebuilt_one(d: &mut Dev) {
    let kept = d.store.index_dump().unwrap();
    d.store.reindex().unwrap();
    assert_eq!(
        kept,
        d.store.index_dump().unwrap(),
        "index differs from reindex"
    );
}

/// A device with contacts, settings and interactions spread over several
/// log documents (quarters).
fn rich_device() -> Dev {
    let mut a = Dev::first();
    let ann = a
        .store
        .add_contact(NewContact::named("Ann Example"))
        .unwrap()
        .id;
    for q in 0..6i64 {
        for k in 0..3i64 {
            a.store
                .log_interaction(NewInteraction {
                    summary: format!("meeting {q}/{k}"),
                    notes: format!("discussed plan {q} {k}"),
                    participants: vec![
                        ParticipantRef::Id(ann),
                        ParticipantRef::Name(format!("Guest {k}")),
                    ],
                    create_missing: true,
                    at_ms: Some(1_700_000_000_000 + q * 95 * 86_400_000 + k * 3_600_000),
                    ..NewInteraction::default()
                })
                .unwrap();
        }
    }
    a
}

#[test]
fn two_devices_log_offline_then_sync_through_the_relay() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    for i in 0..5 {
        a.log(&format!("a{i}"));
        b.log(&format!("b{i}"));
    }
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut b, cfg());
    relay_round(&mut relay, &mut a, cfg());
    assert_eq!(a.store.all_interactions().unwrap().len(), 10);
    assert_same(&mut a, &mut b);
    // Each device pushed exactly its own entries, once.
    assert_eq!(
        relay.log_of(&a.id.account_id(), &a.id.device_id()),
        vec![1, 2]
    );
    let st = sync_status(&mut a.store).unwrap();
    assert_eq!(st.outbox_entries, 0);
    assert_eq!(st.pending_changes, 0);
    // A quiet round moves nothing.
    let ev = relay_round(&mut relay, &mut a, cfg());
    assert!(
        !ev.iter()
            .any(|e| matches!(e, RelayEvent::Pushed { .. } | RelayEvent::Received { .. }))
    );
    // The devices list knows both.
    let devs = list_devices(&mut a.store).unwrap();
    assert!(devs.iter().any(|d| d.id == b.id.device_id()));
}

/// Runs a round of `d` until its first push is on the wire and drops that
/// push (a crash, or a lost packet, after sealing); returns the entries.
fn lose_the_first_push(relay: &mut MemRelay, d: &mut Dev) -> Vec<kith_protocol::SealedEntry> {
    let c = relay.connect();
    let mut m = RelaySync::new(&mut d.store, d.id.clone(), relay.key(), cfg()).unwrap();
    let mut lost = None;
    for _ in 0..100 {
        while let Some(msg) = m.poll_transmit() {
            if let ClientMsg::Request {
                body: Request::Push { entries },
                ..
            } = &msg
            {
                lost = Some(entries.clone());
                continue;
            }
            relay.handle(c, msg, NOW);
        }
        if lost.is_some() {
            break;
        }
        while let Some(msg) = relay.recv(c) {
            m.handle(&mut d.store, msg, NOW).unwrap();
        }
    }
    relay.disconnect(c);
    lost.expect("a push was sent")
}

#[test]
fn crash_between_sealing_and_ack_resends_the_same_entry() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    a.log("before crash");
    // Run until the push is on the wire, then "crash" before it arrives.
    let lost = lose_the_first_push(&mut relay, &mut a);
    a.reopen();
    assert_eq!(
        sync_status(&mut a.store).unwrap().outbox_entries,
        lost.len() as u64
    );
    // The crash happened after sealing: the re-sent entry is byte-identical.
    let c = relay.connect();
    let mut m = RelaySync::new(&mut a.store, a.id.clone(), relay.key(), cfg()).unwrap();
    let mut resent = None;
    for _ in 0..100 {
        while let Some(msg) = m.poll_transmit() {
            if let ClientMsg::Request {
                body: Request::Push { entries },
                ..
            } = &msg
            {
                resent = Some(entries.clone());
            }
            relay.handle(c, msg, NOW);
        }
        while let Some(msg) = relay.recv(c) {
            // The ack of this push is lost too: the relay stored it, we never hear.
            if resent.is_some()
                && matches!(
                    msg,
                    kith_protocol::ServerMsg::Response {
                        body: kith_protocol::Response::PushAck { .. },
                        ..
                    }
                )
            {
                continue;
            }
            m.handle(&mut a.store, msg, NOW).unwrap();
        }
        if resent.is_some() {
            break;
        }
    }
    assert_eq!(resent.unwrap(), lost);
    relay.disconnect(c);
    a.log("after crash");
    relay_round(&mut relay, &mut a, cfg());
    // The re-sent seqs are stored once and the next ones follow: never
    // skipped, never forked (the relay refuses a different payload at a seq).
    let want: Vec<u64> = (1..=lost.len() as u64 + 2).collect();
    assert_eq!(relay.log_of(&a.id.account_id(), &a.id.device_id()), want);
    let mut b = a.sibling("b");
    relay_round(&mut relay, &mut b, cfg());
    assert_eq!(b.store.all_interactions().unwrap().len(), 2);
}

#[test]
fn changes_whose_dependencies_are_missing_wait_durably_in_pending() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    let mut c = a.sibling("c");
    let id = a.log("shared meeting");
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut b, cfg());
    b.store
        .edit_interaction(
            id,
            InteractionPatch {
                summary: Some("edited by b".into()),
                ..InteractionPatch::default()
            },
        )
        .unwrap();
    relay_round(&mut relay, &mut b, cfg());
    // C receives B's entry first (as if the relay ordered B before A).
    let conn = relay.connect();
    let mut m = RelaySync::new(&mut c.store, c.id.clone(), relay.key(), cfg()).unwrap();
    // Drive the handshake only, then feed B's entry as a live event.
    handshake_only(&mut relay, conn, &mut m, &mut c.store);
    let b_entry = relay_entry(&mut relay, &b, 1);
    let a_entry = relay_entry(&mut relay, &a, 1);
    m.handle(
        &mut c.store,
        kith_protocol::ServerMsg::Event(kith_protocol::Event::Entries {
            entries: vec![b_entry],
        }),
        NOW,
    )
    .unwrap();
    drop(m);
    relay.disconnect(conn);
    assert_eq!(sync_status(&mut c.store).unwrap().pending_changes, 1);
    // Pending survives a restart.
    c.reopen();
    assert_eq!(sync_status(&mut c.store).unwrap().pending_changes, 1);
    let conn = relay.connect();
    let mut m = RelaySync::new(&mut c.store, c.id.clone(), relay.key(), cfg()).unwrap();
    handshake_only(&mut relay, conn, &mut m, &mut c.store);
    m.handle(
        &mut c.store,
        kith_protocol::ServerMsg::Event(kith_protocol::Event::Entries {
            entries: vec![a_entry],
        }),
        NOW,
    )
    .unwrap();
    assert_eq!(sync_status(&mut c.store).unwrap().pending_changes, 0);
    assert_eq!(c.store.interaction(id).unwrap().summary, "edited by b");
    relay.disconnect(conn);
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut c, cfg());
    assert_same(&mut a, &mut c);
}

/// Runs the connection's handshake (hello, auth) and drops every request,
/// so the test can feed events by hand.
fn handshake_only(relay: &mut MemRelay, conn: usize, m: &mut RelaySync, store: &mut Store) {
    for _ in 0..4 {
        while let Some(msg) = m.poll_transmit() {
            if matches!(msg, ClientMsg::Request { .. }) {
                continue;
            }
            relay.handle(conn, msg, NOW);
        }
        while let Some(msg) = relay.recv(conn) {
            m.handle(store, msg, NOW).unwrap();
        }
    }
}

/// Entry `seq` of `d` as the relay stores it (pulled by a fresh connection of `d`).
fn relay_entry(relay: &mut MemRelay, d: &Dev, seq: u64) -> kith_protocol::SealedEntry {
    let c = raw_connection(relay, d);
    relay.handle(
        c,
        ClientMsg::Request {
            id: 1,
            body: Request::Pull {
                cursors: vec![],
                entries_max: 1000,
                bytes_max: 1 << 20,
            },
        },
        NOW,
    );
    let Some(kith_protocol::ServerMsg::Response {
        body: kith_protocol::Response::Entries { entries, .. },
        ..
    }) = relay.recv(c)
    else {
        panic!("no entries");
    };
    entries
        .into_iter()
        .find(|e| e.device == d.id.device_id() && e.seq == seq)
        .expect("entry stored")
}

/// An authenticated raw connection of `d` (no sync machine).
fn raw_connection(relay: &mut MemRelay, d: &Dev) -> usize {
    let c = relay.connect();
    relay.handle(
        c,
        ClientMsg::Hello {
            versions: kith_protocol::PROTOCOL_VERSIONS.to_vec(),
        },
        NOW,
    );
    let Some(kith_protocol::ServerMsg::Welcome { challenge, .. }) = relay.recv(c) else {
        panic!("no welcome");
    };
    let sig = kith_protocol::sign_auth(d.id.device_signing_key(), &relay.key(), &challenge);
    relay.handle(
        c,
        ClientMsg::Auth {
            account: d.id.account_id(),
            device: d.id.device_id(),
            signature: sig,
            token: None,
            membership: vec![],
        },
        NOW,
    );
    let _ = relay.recv(c);
    c
}

#[test]
fn live_events_reach_a_connected_device_without_polling() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    let ca = relay.connect();
    let cb = relay.connect();
    let mut ma = RelaySync::new(&mut a.store, a.id.clone(), relay.key(), cfg()).unwrap();
    let mut mb = RelaySync::new(&mut b.store, b.id.clone(), relay.key(), cfg()).unwrap();
    let pump = |relay: &mut MemRelay, m: &mut RelaySync, d: &mut Dev, c: usize| {
        for _ in 0..100 {
            let mut p = false;
            while let Some(msg) = m.poll_transmit() {
                relay.handle(c, msg, NOW);
                p = true;
            }
            while let Some(msg) = relay.recv(c) {
                m.handle(&mut d.store, msg, NOW).unwrap();
                p = true;
            }
            if !p {
                break;
            }
        }
    };
    pump(&mut relay, &mut ma, &mut a, ca);
    pump(&mut relay, &mut mb, &mut b, cb);
    assert!(ma.is_idle() && mb.is_idle());
    let id = a.log("live one");
    ma.local_changed(&mut a.store).unwrap();
    pump(&mut relay, &mut ma, &mut a, ca);
    // B only handles what the relay pushed to it; it sends no pull.
    let msg = relay.recv(cb).expect("an event for b");
    assert!(matches!(msg, kith_protocol::ServerMsg::Event(_)));
    mb.handle(&mut b.store, msg, NOW).unwrap();
    assert_eq!(b.store.interaction(id).unwrap().summary, "live one");
}

#[test]
fn a_new_device_bootstraps_from_snapshot_plus_tail() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    let small = RelayClientConfig {
        snapshot_tail_entries_min: 3,
        ..RelayClientConfig::default()
    };
    for i in 0..4 {
        a.log(&format!("m{i}"));
        relay_round(&mut relay, &mut a, small.clone());
    }
    let (acct, dev_a) = (a.id.account_id(), a.id.device_id());
    assert!(relay.has_snapshot(&acct));
    // Pending: nobody but its author opened it, so nothing is pruned yet.
    assert_eq!(relay.pending_snapshot_of(&acct), Some(dev_a));
    let before = relay.log_of(&acct, &dev_a);
    a.log("tail");
    relay_round(&mut relay, &mut a, cfg());
    let mut n = a.sibling("new");
    let ev = relay_round(&mut relay, &mut n, cfg());
    assert!(
        ev.iter()
            .any(|e| matches!(e, RelayEvent::SnapshotApplied { .. }))
    );
    // n opened it: confirmed, and the entries it covers are pruned now.
    assert!(
        ev.iter().any(
            |e| matches!(e, RelayEvent::SnapshotConfirmed { pruned_entries } if *pruned_entries > 0)
        ),
        "{ev:?}"
    );
    assert_eq!(relay.pending_snapshot_of(&acct), None);
    let after = relay.log_of(&acct, &dev_a);
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert_eq!(n.store.all_interactions().unwrap().len(), 5);
    assert_same(&mut a, &mut n);
}

/// A member stores a junk snapshot (correctly signed, ciphertext junk)
/// covering every head: the relay keeps the log, a new device cannot open
/// the snapshot, says so (event + quarantine record naming the device, seq
/// 0), falls back to the log and gets everything; the junk is never
/// confirmed.
#[test]
fn a_junk_snapshot_is_reported_and_a_new_device_falls_back_to_the_log() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    for i in 0..3 {
        a.log(&format!("m{i}"));
    }
    relay_round(&mut relay, &mut a, cfg());
    let mut h = a.sibling("hostile");
    relay_round(&mut relay, &mut h, cfg());
    let (acct, dev_a, dev_h) = (a.id.account_id(), a.id.device_id(), h.id.device_id());
    let head = relay.log_of(&acct, &dev_a).len() as u64;
    let epoch = membership::state(&mut h.store, acct).unwrap().epoch();
    let junk = kith_protocol::SealedSnapshot::seal(
        h.id.device_signing_key(),
        acct,
        epoch,
        vec![kith_protocol::Cursor {
            device: dev_a,
            seq: head,
        }],
        [9; 24],
        vec![0xAB; 300],
    );
    let c = raw_connection(&mut relay, &h);
    relay.handle(
        c,
        ClientMsg::Request {
            id: 1,
            body: Request::PutSnapshot { snapshot: junk },
        },
        NOW,
    );
    assert!(matches!(
        relay.recv(c),
        Some(kith_protocol::ServerMsg::Response {
            body: kith_protocol::Response::SnapshotStored { pruned_entries: 0 },
            ..
        })
    ));
    relay.disconnect(c);
    assert_eq!(
        relay.log_of(&acct, &dev_a).len() as u64,
        head,
        "nothing pruned"
    );
    let mut n = a.sibling("new");
    let ev = relay_round(&mut relay, &mut n, cfg());
    assert!(
        ev.iter().any(
            |e| matches!(e, RelayEvent::SnapshotUnreadable { device, .. } if *device == dev_h)
        ),
        "{ev:?}"
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, RelayEvent::SnapshotConfirmed { .. }))
    );
    assert_eq!(
        relay.pending_snapshot_of(&acct),
        Some(dev_h),
        "never confirmed"
    );
    assert_eq!(n.store.all_interactions().unwrap().len(), 3);
    let st = sync_status(&mut n.store).unwrap();
    assert!(
        st.quarantined
            .iter()
            .any(|q| q.device == dev_h && q.seq == 0 && q.reason.contains("snapshot")),
        "{:?}",
        st.quarantined
    );
    // An existing device that checks the pending snapshot refuses it too
    // and keeps syncing.
    a.log("more");
    let small = RelayClientConfig {
        snapshot_tail_entries_min: 1,
        ..RelayClientConfig::default()
    };
    let ev = relay_round(&mut relay, &mut a, small);
    assert!(
        ev.iter().any(
            |e| matches!(e, RelayEvent::SnapshotUnreadable { device, .. } if *device == dev_h)
        ),
        "{ev:?}"
    );
    relay_round(&mut relay, &mut n, cfg());
    assert_same(&mut a, &mut n);
}

#[test]
fn a_new_device_bootstrapping_from_the_log_indexes_like_reindex() {
    let mut relay = MemRelay::new(1);
    let mut a = rich_device();
    relay_round(&mut relay, &mut a, cfg());
    assert!(!relay.has_snapshot(&a.id.account_id()));
    let mut n = a.sibling("new");
    let ev = relay_round(&mut relay, &mut n, cfg());
    assert!(
        ev.iter().any(|e| matches!(
            e,
            RelayEvent::Progress {
                transfer: Transfer::Pull,
                done_entries,
                total_entries: Some(total),
                ..
            } if done_entries == total
        )),
        "a pull reports progress: {ev:?}"
    );
    assert!(n.store.doc_ids().unwrap().len() >= 4, "several quarters");
    assert_eq!(n.store.all_interactions().unwrap().len(), 18);
    assert_same(&mut a, &mut n);
    // What the new device logs afterwards still goes up.
    let id = n.log("after the bootstrap");
    relay_round(&mut relay, &mut n, cfg());
    relay_round(&mut relay, &mut a, cfg());
    assert_eq!(
        a.store.interaction(id).unwrap().summary,
        "after the bootstrap"
    );
}

/// Pull pages of two entries: a log bootstrap of `rich_device` spans many.
fn small_pages() -> RelayClientConfig {
    RelayClientConfig {
        pull_entries_max: 2,
        ..RelayClientConfig::default()
    }
}

#[test]
fn a_log_bootstrap_over_many_pages_defers_the_index_then_indexes_like_reindex() {
    let mut relay = MemRelay::new(1);
    let mut a = rich_device();
    relay_round(&mut relay, &mut a, cfg());
    assert!(!relay.has_snapshot(&a.id.account_id()));
    let mut n = a.sibling("new");
    // While pages arrive the index is deferred, durably, and searches say so;
    // only the document being merged stays in memory (the others are saved
    // whole and dropped).
    let stopped = pump_round(&mut relay, &mut n, small_pages(), |s| {
        if s.index_deferred() {
            assert!(s.loaded_docs().len() <= 1, "{:?}", s.loaded_docs());
        }
        s.index_deferred() && s.doc_ids().unwrap().len() >= 3
    })
    .stopped;
    assert!(stopped, "the bootstrap deferred the index");
    assert!(n.store.all_interactions().unwrap().len() < 18);
    let ev = relay_round(&mut relay, &mut n, small_pages());
    assert!(!n.store.index_deferred(), "{ev:?}");
    // The rebuild says what the bootstrap brought, document by document.
    let brought: usize = ev
        .iter()
        .map(|e| match e {
            RelayEvent::Applied { interactions, .. } => *interactions,
            _ => 0,
        })
        .sum();
    assert_eq!(brought, 18, "{ev:?}");
    assert!(n.store.take_remote_changes().overflowed);
    assert_eq!(n.store.all_interactions().unwrap().len(), 18);
    assert_same(&mut a, &mut n);
    // Later merges maintain the index again, row by row.
    a.log("after the bootstrap");
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut n, small_pages());
    assert!(!n.store.index_deferred());
    assert_eq!(n.store.all_interactions().unwrap().len(), 19);
    assert_same(&mut a, &mut n);
}

#[test]
fn a_crash_between_deferred_pages_and_the_rebuild_reopens_with_a_rebuilt_index() {
    let mut relay = MemRelay::new(1);
    let mut a = rich_device();
    relay_round(&mut relay, &mut a, cfg());
    let mut n = a.sibling("new");
    let stopped = pump_round(&mut relay, &mut n, small_pages(), |s| {
        s.index_deferred() && s.doc_ids().unwrap().len() >= 3
    })
    .stopped;
    assert!(stopped);
    // Crash: the store is dropped without closing, the rebuild never ran.
    let placeholder = Store::open(tempfile::tempdir().unwrap().path()).unwrap();
    drop(std::mem::replace(&mut n.store, placeholder));
    n.store = Store::open(n.dir.path()).unwrap();
    // The open rebuilt the index from what the pages merged so far.
    assert!(!n.store.index_deferred());
    let merged = n.store.all_interactions().unwrap().len();
    assert!(merged > 0 && merged < 18, "{merged}");
    assert_index_is_rebuilt_one(&mut n);
    // The bootstrap completes from its cursors (no longer a bootstrap: the
    // index is maintained page by page) and ends where a whole one would.
    relay_round(&mut relay, &mut n, small_pages());
    assert_eq!(n.store.all_interactions().unwrap().len(), 18);
    assert_same(&mut a, &mut n);
}

#[test]
fn a_snapshot_bootstrap_installs_documents_and_indexes_like_reindex() {
    let mut relay = MemRelay::new(1);
    let mut a = rich_device();
    let small = RelayClientConfig {
        snapshot_tail_entries_min: 1,
        ..RelayClientConfig::default()
    };
    relay_round(&mut relay, &mut a, small.clone());
    relay_round(&mut relay, &mut a, small);
    assert!(relay.has_snapshot(&a.id.account_id()));
    let mut n = a.sibling("new");
    let ev = relay_round(&mut relay, &mut n, cfg());
    assert!(
        ev.iter()
            .any(|e| matches!(e, RelayEvent::SnapshotApplied { .. }))
    );
    // Each document was stored as received: one chunk, no re-save.
    for d in n.store.doc_ids().unwrap() {
        assert_eq!(n.store.doc_meta(d).unwrap().unwrap().chunk_count, 1, "{d}");
    }
    assert_same(&mut a, &mut n);
    // And it survives a restart (chunks verified against the saved heads).
    n.reopen();
    assert_eq!(n.store.all_interactions().unwrap().len(), 18);
    // What the new device logs afterwards still goes up.
    let id = n.log("after the bootstrap");
    relay_round(&mut relay, &mut n, cfg());
    relay_round(&mut relay, &mut a, cfg());
    assert_eq!(
        a.store.interaction(id).unwrap().summary,
        "after the bootstrap"
    );
    assert_same(&mut a, &mut n);
}

#[test]
fn a_device_with_local_changes_bootstraps_from_a_snapshot_and_keeps_them() {
    let mut relay = MemRelay::new(1);
    let mut a = rich_device();
    let small = RelayClientConfig {
        snapshot_tail_entries_min: 1,
        ..RelayClientConfig::default()
    };
    relay_round(&mut relay, &mut a, small.clone());
    relay_round(&mut relay, &mut a, small);
    assert!(relay.has_snapshot(&a.id.account_id()));
    let mut n = a.sibling("new");
    let mine = n.log("logged before the first sync");
    let ev = relay_round(&mut relay, &mut n, cfg());
    assert!(
        ev.iter()
            .any(|e| matches!(e, RelayEvent::SnapshotApplied { .. }))
    );
    assert_eq!(n.store.all_interactions().unwrap().len(), 19);
    assert_index_is_rebuilt_one(&mut n);
    relay_round(&mut relay, &mut a, cfg());
    assert_eq!(
        a.store.interaction(mine).unwrap().summary,
        "logged before the first sync"
    );
    assert_same(&mut a, &mut n);
}

#[test]
fn concurrent_edits_converge_and_surface_the_notes_conflict() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    let ana = a.store.add_contact(NewContact::named("Ana Lima")).unwrap();
    let id = a
        .store
        .log_interaction(NewInteraction {
            summary: "rota".into(),
            participants: vec![ParticipantRef::Id(ana.id)],
            ..NewInteraction::default()
        })
        .unwrap()
        .id;
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut b, cfg());
    for (d, who) in [(&mut a, "a"), (&mut b, "b")] {
        d.store
            .edit_interaction(
                id,
                InteractionPatch {
                    notes: Some(format!("notes from {who}")),
                    ..InteractionPatch::default()
                },
            )
            .unwrap();
        d.store
            .edit_contact(
                ana.id,
                ContactPatch {
                    role: Some(Some(format!("role {who}"))),
                    ..ContactPatch::default()
                },
            )
            .unwrap();
    }
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut b, cfg());
    relay_round(&mut relay, &mut a, cfg());
    assert_same(&mut a, &mut b);
    let ia = a.store.interaction(id).unwrap();
    let ib = b.store.interaction(id).unwrap();
    assert_eq!(ia, ib);
    assert!(!ia.notes_conflicts.is_empty(), "conflict surfaced: {ia:?}");
    assert_eq!(
        a.store.contact(ana.id).unwrap().role,
        b.store.contact(ana.id).unwrap().role
    );
}

/// Pumps `m` against `relay` on connection `c` until quiet; returns events.
fn pump(relay: &mut MemRelay, c: usize, m: &mut RelaySync, store: &mut Store) -> Vec<RelayEvent> {
    let mut events = Vec::new();
    for _ in 0..1000 {
        let mut p = false;
        while let Some(msg) = m.poll_transmit() {
            relay.handle(c, msg, NOW);
            p = true;
        }
        while let Some(msg) = relay.recv(c) {
            m.handle(store, msg, NOW).unwrap();
            p = true;
        }
        while let Some(e) = m.poll_event() {
            events.push(e);
        }
        if !p {
            break;
        }
    }
    events
}

/// One unauthenticated mailbox request on a fresh connection.
fn mailbox(
    relay: &mut MemRelay,
    body: Request,
) -> Result<kith_protocol::Response, kith_protocol::ErrorCode> {
    let c = relay.connect();
    relay.handle(c, ClientMsg::Hello { versions: vec![3] }, NOW);
    let _ = relay.recv(c);
    relay.handle(c, ClientMsg::Request { id: 1, body }, NOW);
    let r = match relay.recv(c) {
        Some(kith_protocol::ServerMsg::Response { body, .. }) => Ok(body),
        Some(kith_protocol::ServerMsg::Error { code, .. }) => Err(code),
        other => panic!("unexpected {other:?}"),
    };
    relay.disconnect(c);
    r
}

/// The joiner posts its card, the inviter compares the code and adds it, the
/// joiner reads the reply and syncs: no secret of the account changes hands
/// and the joiner reads what was written before it joined.
#[test]
fn pairing_by_request_code_and_add_then_sync() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    a.log("before pairing");
    relay_round(&mut relay, &mut a, cfg());
    let addr = format!("kith://{}@127.0.0.1:7447", relay.key());
    let inv = Invitation::create(PairingMode::Relay { address: addr }, 60_000, NOW);
    let token = Token::parse(&inv.token.to_string()).unwrap();
    assert_eq!(token.check_relay(None).unwrap().key, relay.key());
    token.check_fresh(NOW + 1).unwrap();
    // The joiner leaves its request (before any auth) and shows its code.
    let mut keys = crate::identity::KeyMaterial::generate("phone");
    let (blob, code) = token.request(&keys).unwrap();
    let put = |slot, blob| Request::MailboxPut {
        slot,
        blob,
        ttl_s: 60,
    };
    mailbox(&mut relay, put(token.join_slot(), blob.clone())).unwrap();
    // Someone else holding a photo of the token is too late, and told so.
    assert_eq!(
        mailbox(&mut relay, put(token.join_slot(), blob)),
        Err(kith_protocol::ErrorCode::MailboxTaken)
    );
    // The inviter takes it, sees the same code, adds the card.
    let Ok(kith_protocol::Response::MailboxBlob { blob }) = mailbox(
        &mut relay,
        Request::MailboxTake {
            slot: inv.token.join_slot(),
        },
    ) else {
        panic!("no request")
    };
    let incoming = inv.open_request(&blob).unwrap();
    Invitation::check_code(&incoming, &code).unwrap();
    {
        let c = relay.connect();
        let mut m = RelaySync::new(&mut a.store, a.id.clone(), relay.key(), cfg()).unwrap();
        m.add_member(&mut a.store, incoming.request.card.clone())
            .unwrap();
        let events = pump(&mut relay, c, &mut m, &mut a.store);
        assert!(
            events.contains(&RelayEvent::Added {
                device: incoming.request.card.device
            }),
            "{events:?}"
        );
        relay.disconnect(c);
    }
    let reply = inv
        .reply(&Reply::Welcome {
            account: a.id.account_id(),
            inviter: a.id.device_id(),
            inviter_name: a.id.device_name().into(),
        })
        .unwrap();
    mailbox(&mut relay, put(inv.token.reply_slot(), reply)).unwrap();
    let Ok(kith_protocol::Response::MailboxBlob { blob }) = mailbox(
        &mut relay,
        Request::MailboxTake {
            slot: token.reply_slot(),
        },
    ) else {
        panic!("no reply")
    };
    let Reply::Welcome { account, .. } = token.open_reply(&blob).unwrap() else {
        panic!("refused")
    };
    keys.account = Some(account.0);
    let id = DeviceIdentity::from_material(&keys).unwrap();
    // Expired: refused before anything is sent.
    assert!(matches!(
        token.check_fresh(NOW + 60_001),
        Err(PairError::Expired { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut n = Dev { dir, store, id };
    relay_round(&mut relay, &mut n, cfg());
    assert_eq!(n.store.all_interactions().unwrap().len(), 1);
    let names: Vec<String> = list_devices(&mut n.store)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert!(names.contains(&"first".to_string()), "{names:?}");
    assert!(
        names.contains(&"phone".to_string()),
        "its own name: {names:?}"
    );
}

/// A revoked device: the relay refuses it, what members write afterwards is
/// sealed under an epoch it holds no key of, and peers refuse it.
#[test]
fn a_revoked_device_is_refused_and_reads_nothing_written_after() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    let mut c = a.sibling("c");
    a.log("before");
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut b, cfg());
    relay_round(&mut relay, &mut c, cfg());
    assert_eq!(b.store.all_interactions().unwrap().len(), 1);
    {
        let conn = relay.connect();
        let mut m = RelaySync::new(&mut a.store, a.id.clone(), relay.key(), cfg()).unwrap();
        m.revoke(&mut a.store, b.id.device_id()).unwrap();
        let events = pump(&mut relay, conn, &mut m, &mut a.store);
        assert!(
            events.contains(&RelayEvent::Revoked {
                device: b.id.device_id()
            }),
            "{events:?}"
        );
        relay.disconnect(conn);
    }
    a.log("after");
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut c, cfg());
    assert_eq!(c.store.all_interactions().unwrap().len(), 2);
    // The relay refuses b's own key.
    let conn = relay.connect();
    let mut m = RelaySync::new(&mut b.store, b.id.clone(), relay.key(), cfg()).unwrap();
    let mut refused = None;
    for _ in 0..10 {
        while let Some(msg) = m.poll_transmit() {
            relay.handle(conn, msg, NOW);
        }
        while let Some(msg) = relay.recv(conn) {
            if let Err(e) = m.handle(&mut b.store, msg, NOW) {
                refused = Some(e);
            }
        }
    }
    assert!(
        matches!(
            refused,
            Some(RelaySyncError::Relay {
                code: kith_protocol::ErrorCode::DeviceRevoked,
                ..
            })
        ),
        "{refused:?}"
    );
    // What a wrote after the revocation is under epoch 2; b holds only 1.
    let head = sync_status(&mut a.store).unwrap().acked_seq;
    let after = relay_entry(&mut relay, &a, head);
    assert_eq!(after.epoch, 2);
    // Even with the whole log (a colluding relay could hand it over), b
    // finds no epoch-2 key sealed to it.
    let full = membership::ops(&mut a.store).unwrap();
    let (st, _) = membership::absorb(&mut b.store, &b.id, &full).unwrap();
    assert!(!st.is_member(&b.id.device_id()));
    let members = membership::state(&mut b.store, b.id.account_id()).unwrap();
    let keys = membership::keys(&mut b.store).unwrap();
    assert!(keys.get(2).is_none());
    assert!(matches!(
        payload::open_entry(&b.id, &members, &keys, &after),
        Err(payload::UnsealError::NoKey { epoch: 2 })
    ));
    assert_eq!(b.store.all_interactions().unwrap().len(), 1);
    // Peers that know the revocation refuse b; a peer that did not know it
    // learns it from b's own... no: from a (revocations travel).
    let err = peer_session(&mut b, &mut c).unwrap_err();
    assert!(matches!(err, PeerError::Revoked(_)), "{err}");
}

/// An entry a member sealed under the old epoch, whose push was lost before
/// a revocation it had not heard of: the relay refuses it as `EpochStale`,
/// the device catches up on the membership and re-seals it under the new
/// epoch, so the revoked device holds no key for it either.
#[test]
fn an_entry_sealed_before_a_rotation_is_resealed_under_the_new_epoch() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    let mut c = a.sibling("c");
    relay_round(&mut relay, &mut a, cfg());
    relay_round(&mut relay, &mut b, cfg());
    relay_round(&mut relay, &mut c, cfg());
    // c seals a note under epoch 1; the push never reaches the relay.
    c.log("written before hearing of the revocation");
    let lost = lose_the_first_push(&mut relay, &mut c);
    assert!(lost.iter().all(|e| e.epoch == 1), "sealed under epoch 1");
    // a revokes b: epoch 2.
    {
        let conn = relay.connect();
        let mut m = RelaySync::new(&mut a.store, a.id.clone(), relay.key(), cfg()).unwrap();
        m.revoke(&mut a.store, b.id.device_id()).unwrap();
        pump(&mut relay, conn, &mut m, &mut a.store);
        relay.disconnect(conn);
    }
    // c comes back with its epoch-1 outbox.
    relay_round(&mut relay, &mut c, cfg());
    assert_eq!(sync_status(&mut c.store).unwrap().outbox_entries, 0);
    let head = sync_status(&mut c.store).unwrap().acked_seq;
    let stored = relay_entry(&mut relay, &c, head);
    assert_eq!(stored.epoch, 2, "the relay holds it under the new epoch");
    let full = membership::ops(&mut a.store).unwrap();
    membership::absorb(&mut b.store, &b.id, &full).unwrap();
    let members = membership::state(&mut b.store, b.id.account_id()).unwrap();
    let keys = membership::keys(&mut b.store).unwrap();
    assert!(matches!(
        payload::open_entry(&b.id, &members, &keys, &stored),
        Err(payload::UnsealError::NoKey { epoch: 2 })
    ));
    // And the members read it.
    relay_round(&mut relay, &mut a, cfg());
    assert!(
        a.store
            .all_interactions()
            .unwrap()
            .iter()
            .any(|i| i.summary == "written before hearing of the revocation")
    );
}

/// Runs one peer session, client `a` to server `b`; returns stats and the
/// bytes each way (postcard-encoded messages).
fn peer_session(a: &mut Dev, b: &mut Dev) -> Result<(PeerStats, usize, usize), PeerError> {
    let binding = [9u8; 32];
    let hint = super::peer::peer_hint(&mut a.store, "b").unwrap();
    let mut cl = PeerSync::new(a.id.clone(), PeerRole::Client, binding).with_hint(hint);
    let mut sv = PeerSync::new(b.id.clone(), PeerRole::Server, binding);
    cl.start(&mut a.store, NOW)?;
    let (mut up, mut down) = (0usize, 0usize);
    for _ in 0..1000 {
        let mut p = false;
        while let Some(m) = cl.poll_transmit() {
            up += postcard::to_allocvec(&m).unwrap().len() + 4;
            p = true;
            if let Err(e) = sv.handle(&mut b.store, m, NOW) {
                let r = PeerSync::refusal(&e);
                let seen = cl.handle(&mut a.store, r, NOW);
                assert!(matches!(seen, Err(PeerError::Refused(_))));
                return Err(e);
            }
        }
        while let Some(m) = sv.poll_transmit() {
            down += postcard::to_allocvec(&m).unwrap().len() + 4;
            p = true;
            cl.handle(&mut a.store, m, NOW)?;
        }
        if !p {
            break;
        }
    }
    assert!(cl.is_finished());
    super::peer::remember_peer(&mut a.store, "b", &b.id.device_id()).unwrap();
    Ok((cl.stats().clone(), up, down))
}

#[test]
fn peer_sync_direct_and_reconnect_costs_one_round_trip() {
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    for i in 0..20 {
        a.log(&format!("a{i}"));
    }
    b.log("b0");
    peer_session(&mut a, &mut b).unwrap();
    assert_same(&mut a, &mut b);
    a.log("one more");
    let (stats, up, down) = peer_session(&mut a, &mut b).unwrap();
    assert_eq!(stats.round_trips, 1, "{stats:?}");
    assert_eq!(stats.docs_diverged, 0);
    // Each Hello carries the sender's membership log (here 2 ops, about
    // 700 bytes each) besides the few hundred bytes of the exchange itself.
    let log_bytes = postcard::to_allocvec(&membership::ops(&mut a.store).unwrap())
        .unwrap()
        .len();
    assert!(up + down <= 2048 + 2 * log_bytes, "{up} + {down} bytes");
    assert_same(&mut a, &mut b);
    // And in the other direction (the server has the new interaction).
    b.log("from server");
    let (stats, _, _) = peer_session(&mut a, &mut b).unwrap();
    assert_eq!(stats.round_trips, 1);
    assert_same(&mut a, &mut b);
    // The server lost its record of the last session: one extra round trip
    // for a full Hello, and still the right result.
    {
        let txn = b.store.writable().unwrap().begin_write().unwrap();
        txn.open_table(super::tables::PEER_HEADS)
            .unwrap()
            .retain(|_, _| false)
            .unwrap();
        txn.commit().unwrap();
    }
    a.log("after record loss");
    let (stats, _, _) = peer_session(&mut a, &mut b).unwrap();
    assert_eq!(stats.round_trips, 2);
    assert_same(&mut a, &mut b);
}

#[test]
fn peer_sync_of_diverged_documents_uses_automerge_sync_and_persists_state() {
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    let ana = a.store.add_contact(NewContact::named("Ana")).unwrap();
    peer_session(&mut a, &mut b).unwrap();
    a.store.add_contact(NewContact::named("Bea")).unwrap();
    b.store
        .edit_contact(
            ana.id,
            ContactPatch {
                role: Some(Some("nurse".into())),
                ..ContactPatch::default()
            },
        )
        .unwrap();
    let (stats, _, _) = peer_session(&mut a, &mut b).unwrap();
    assert!(stats.docs_diverged >= 1);
    assert_same(&mut a, &mut b);
    assert_eq!(b.store.all_contacts().unwrap().len(), 2);
    // The state was persisted per peer.
    let txn = a.store.read_txn().unwrap();
    let t = txn.open_table(super::tables::PEER_STATE).unwrap();
    use redb::ReadableTableMetadata;
    assert!(t.len().unwrap() >= 1);
}

#[test]
fn peer_of_another_account_is_refused() {
    let mut a = Dev::first();
    let mut x = Dev::first();
    x.log("secret");
    let err = peer_session(&mut a, &mut x).unwrap_err();
    assert!(matches!(err, PeerError::NotMember(_)), "{err}");
    assert!(a.store.all_interactions().unwrap().is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    AddContact(usize, u8),
    Log(usize, u8),
    EditNotes(usize, u8),
    RelayRound(usize),
    Peer(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, any::<u8>()).prop_map(|(d, x)| Op::AddContact(d, x)),
        (0..3usize, any::<u8>()).prop_map(|(d, x)| Op::Log(d, x)),
        (0..3usize, any::<u8>()).prop_map(|(d, x)| Op::EditNotes(d, x)),
        (0..3usize).prop_map(Op::RelayRound),
        (0..3usize, 0..3usize).prop_map(|(a, b)| Op::Peer(a, b)),
    ]
}

/// 12 cases by default; `PROPTEST_CASES` raises it for a deep run.
fn proptest_cases(floor: u32) -> ProptestConfig {
    let env = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    ProptestConfig {
        cases: floor.max(env),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_cases(12))]
    #[test]
    fn random_ops_and_sync_orders_converge(n in 2usize..=3, ops in proptest::collection::vec(op(), 1..25)) {
        let mut relay = MemRelay::new(1);
        let mut first = Dev::first();
        let mut devs = vec![];
        for i in 1..n {
            devs.push(first.sibling(&format!("d{i}")));
        }
        devs.insert(0, first);
        for op in ops {
            match op {
                Op::AddContact(d, x) => {
                    let d = d % n;
                    devs[d].store.add_contact(NewContact::named(format!("C {x}"))).unwrap();
                }
                Op::Log(d, x) => {
                    let d = d % n;
                    devs[d].log(&format!("m{x}"));
                }
                Op::EditNotes(d, x) => {
                    let d = d % n;
                    let all = devs[d].store.all_interactions().unwrap();
                    if let Some(i) = all.get(x as usize % all.len().max(1)) {
                        devs[d].store.edit_interaction(i.id, InteractionPatch {
                            notes: Some(format!("n{x}")),
                            ..InteractionPatch::default()
                        }).unwrap();
                    }
                }
                Op::RelayRound(d) => {
                    let d = d % n;
                    relay_round(&mut relay, &mut devs[d], cfg());
                }
                Op::Peer(x, y) => {
                    let (x, y) = (x % n, y % n);
                    if x != y {
                        let (lo, hi) = (x.min(y), x.max(y));
                        let (l, r) = devs.split_at_mut(hi);
                        peer_session(&mut l[lo], &mut r[0]).unwrap();
                    }
                }
            }
        }
        for _ in 0..2 {
            for d in devs.iter_mut() {
                relay_round(&mut relay, d, cfg());
            }
        }
        let (first, rest) = devs.split_at_mut(1);
        for d in rest {
            assert_same(&mut first[0], d);
        }
        for d in devs.iter_mut() {
            prop_assert_eq!(sync_status(&mut d.store).unwrap().pending_changes, 0);
        }
        let _ = DocId::Main;
    }
}

#[test]
fn a_three_way_notes_conflict_reaches_every_index() {
    let mut relay = MemRelay::new(1);
    let mut a = Dev::first();
    let mut b = a.sibling("b");
    let mut c = a.sibling("c");
    let id = a.log("three-way");
    for d in [&mut a, &mut b, &mut c] {
        relay_round(&mut relay, d, cfg());
    }
    for (d, v) in [(&mut a, "from a"), (&mut b, "from b"), (&mut c, "from c")] {
        d.store
            .edit_interaction(
                id,
                InteractionPatch {
                    notes: Some(v.into()),
                    ..InteractionPatch::default()
                },
            )
            .unwrap();
    }
    // A and B merge first (two values), then C's third value arrives: it
    // loses, so Automerge reports no patch, yet the conflict set grew.
    for _ in 0..2 {
        for d in [&mut a, &mut b, &mut c] {
            relay_round(&mut relay, d, cfg());
        }
    }
    let ia = a.store.interaction(id).unwrap();
    assert_eq!(ia.notes_conflicts.len(), 2, "{ia:?}");
    assert_same(&mut a, &mut b);
    assert_same(&mut a, &mut c);
}
