//! Fresh writes (docs/STORE.md, "Fresh writes"): a new interaction whose
//! partition is not in memory is stored as a pending row and indexed, and
//! folds into its partition later. Properties: a store reads and reindexes
//! the same with its fresh writes folded or not; two offline devices logging
//! fresh writes converge in either sync order; a damaged pending row is
//! reported and nothing is written; an old (1.x) store opens and migrates.

use kith_core::store::STORE_FILE;
use kith_core::{DocId, InteractionPatch, NewInteraction, Store, StoreError};
use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTable};

use crate::reindex::{Op, op, run};
use crate::{meeting, person};

const PENDING: redb::TableDefinition<'static, (&str, u128), &[u8]> =
    redb::TableDefinition::new("doc_pending");
const META: redb::TableDefinition<'static, &str, &[u8]> = redb::TableDefinition::new("meta");

/// Everything a reader sees, in a comparable form.
fn view(s: &Store) -> (Vec<String>, Vec<String>) {
    let mut interactions: Vec<String> = s
        .all_interactions()
        .unwrap()
        .into_iter()
        .map(|i| format!("{i:?}"))
        .collect();
    interactions.sort();
    let mut contacts: Vec<String> = s
        .all_contacts()
        .unwrap()
        .into_iter()
        .map(|c| format!("{c:?}"))
        .collect();
    contacts.sort();
    (interactions, contacts)
}

fn pending_total(s: &Store) -> usize {
    s.pending_writes().unwrap().values().sum()
}

#[test]
fn a_fresh_write_is_indexed_at_once_and_folds_into_its_partition_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let ana = person(&mut s, "Ana Lima");
    s.close().unwrap();

    let mut s = Store::open(dir.path()).unwrap();
    let i = s
        .log_interaction(NewInteraction {
            notes: "Talked about the ward rota".into(),
            follow_ups: vec![kith_core::NewFollowUp {
                text: "send the audit".into(),
                due: None,
            }],
            ..meeting("coffee", &[ana.id])
        })
        .unwrap();
    let doc = DocId::for_interaction(i.id);
    assert!(s.loaded_docs().is_empty(), "nothing loaded for the write");
    assert_eq!(s.pending_writes().unwrap().get(&doc), Some(&1));
    assert!(
        s.doc_ids().unwrap().contains(&doc),
        "its partition is listed"
    );
    assert_eq!(s.interaction(i.id).unwrap(), i);
    assert_eq!(s.search("rota", 5).unwrap().interactions.len(), 1);
    assert!(s.check().unwrap().is_clean(), "check applies fresh writes");
    assert_eq!(pending_total(&s), 1, "check writes nothing");
    let before = (s.index_dump().unwrap(), view(&s));

    // Survives a reopen as a pending row.
    s.close().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(pending_total(&s), 1);
    let marker = s.change_marker().unwrap();
    assert_eq!(s.fold_pending().unwrap(), 1);
    assert_ne!(s.change_marker().unwrap(), marker, "a fold is a change");
    assert_eq!(pending_total(&s), 0);
    assert_eq!(s.loaded_docs(), vec![doc]);
    assert_eq!(s.doc_meta(doc).unwrap().unwrap().chunk_count, 1);
    assert_eq!((s.index_dump().unwrap(), view(&s)), before);
    s.reindex().unwrap();
    assert_eq!((s.index_dump().unwrap(), view(&s)), before);
    // The partition now holds it: it syncs like any other change.
    assert!(!s.my_changes_since(doc, &[]).unwrap().is_empty());
}

#[test]
fn the_change_marker_sees_a_fresh_write() {
    let (_d, mut s) = crate::fresh();
    let ana = person(&mut s, "Ana");
    let before = s.change_marker().unwrap();
    s.log_interaction(meeting("x", &[ana.id])).unwrap();
    assert_eq!(pending_total(&s), 1);
    assert_ne!(s.change_marker().unwrap(), before);
}

#[test]
fn a_partition_in_memory_takes_new_interactions_directly() {
    let (_d, mut s) = crate::fresh();
    let ana = person(&mut s, "Ana");
    let first = s.log_interaction(meeting("one", &[ana.id])).unwrap();
    let doc = DocId::for_interaction(first.id);
    s.heads(doc).unwrap();
    assert_eq!(pending_total(&s), 0, "loading folded it");
    s.log_interaction(meeting("two", &[ana.id])).unwrap();
    assert_eq!(pending_total(&s), 0, "a loaded partition is written to");
    assert_eq!(s.doc_meta(doc).unwrap().unwrap().chunk_count, 2);
}

/// A partition holds at most 512 fresh writes: the next write folds them.
#[test]
fn fresh_writes_per_partition_are_bounded() {
    let (_d, mut s) = crate::fresh();
    let ana = person(&mut s, "Ana");
    for n in 0..512 {
        s.log_interaction(meeting(&format!("m{n}"), &[ana.id]))
            .unwrap();
        s.unload_documents();
    }
    assert_eq!(pending_total(&s), 512);
    s.log_interaction(meeting("the one more", &[ana.id]))
        .unwrap();
    assert_eq!(pending_total(&s), 0, "the write folded them");
    assert_eq!(s.all_interactions().unwrap().len(), 513);
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(dump, s.index_dump().unwrap());
}

#[test]
fn an_edit_delete_or_follow_up_of_a_fresh_write_folds_it_first() {
    let (_d, mut s) = crate::fresh();
    let ana = person(&mut s, "Ana");
    let i = s.log_interaction(meeting("draft", &[ana.id])).unwrap();
    let j = s.log_interaction(meeting("other", &[ana.id])).unwrap();
    s.unload_documents();
    assert_eq!(pending_total(&s), 2);
    let e = s
        .edit_interaction(
            i.id,
            InteractionPatch {
                summary: Some("final".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(e.summary, "final");
    assert_eq!(pending_total(&s), 0);
    s.delete_interaction(j.id).unwrap();
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(dump, s.index_dump().unwrap());
    assert_eq!(s.interaction(i.id).unwrap().summary, "final");
    assert!(s.interaction(j.id).unwrap().deleted_ms.is_some());
}

/// Two devices offline each log fresh writes into the same quarters (and
/// edit one of their own), then exchange changes in either order: both end
/// with every interaction, equal documents, and an index equal to a rebuild.
#[test]
fn two_offline_devices_with_fresh_writes_converge_in_either_order() {
    for a_first in [true, false] {
        let (_da, mut a) = crate::fresh();
        let (_db, mut b) = crate::fresh();
        let ana = person(&mut a, "Ana");
        exchange(&mut a, &mut b);
        exchange(&mut b, &mut a);
        a.unload_documents();
        b.unload_documents();
        let old = Some(1_500_000_000_000);
        let mut ids = Vec::new();
        for (s, who) in [(&mut a, "a"), (&mut b, "b")] {
            for n in 0..3 {
                ids.push(
                    s.log_interaction(meeting(&format!("{who}{n}"), &[ana.id]))
                        .unwrap()
                        .id,
                );
            }
            let i = s
                .log_interaction(NewInteraction {
                    at_ms: old,
                    ..meeting(&format!("{who} old"), &[ana.id])
                })
                .unwrap();
            ids.push(i.id);
            assert_eq!(pending_total(s), 4, "all four are fresh writes");
        }
        if a_first {
            exchange(&mut a, &mut b);
            exchange(&mut b, &mut a);
        } else {
            exchange(&mut b, &mut a);
            exchange(&mut a, &mut b);
        }
        for s in [&mut a, &mut b] {
            assert_eq!(pending_total(s), 0);
            let mut have: Vec<_> = s
                .all_interactions()
                .unwrap()
                .into_iter()
                .map(|i| i.id)
                .collect();
            have.sort();
            let mut want = ids.clone();
            want.sort();
            assert_eq!(have, want);
            let dump = s.index_dump().unwrap();
            s.reindex().unwrap();
            assert_eq!(dump, s.index_dump().unwrap());
        }
        assert_eq!(view(&a), view(&b));
        for d in a.doc_ids().unwrap() {
            let mut ha = a.heads(d).unwrap();
            let mut hb = b.heads(d).unwrap();
            ha.sort();
            hb.sort();
            assert_eq!(ha, hb, "{d}");
        }
    }
}

/// Sends every change of every document of `from` to `to` (what sync does).
fn exchange(from: &mut Store, to: &mut Store) {
    for doc in from.doc_ids().unwrap() {
        let changes = from.changes_since(doc, &[]).unwrap();
        to.apply_remote_changes(doc, &changes, |_| Ok(())).unwrap();
    }
}

#[test]
fn a_damaged_fresh_write_is_reported_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (i, doc) = {
        let mut s = Store::open(dir.path()).unwrap();
        let ana = person(&mut s, "Ana");
        let i = s.log_interaction(meeting("x", &[ana.id])).unwrap();
        s.close().unwrap();
        let doc = DocId::for_interaction(i.id);
        (i, doc)
    };
    {
        let db = redb::Database::open(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(PENDING).unwrap();
            let key = doc.to_string();
            let mut v = t
                .get((key.as_str(), i.id.to_u128()))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            let last = v.len() - 1;
            v[last] ^= 0x20;
            t.insert((key.as_str(), i.id.to_u128()), v.as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    let marker = s.change_marker().unwrap();
    match s.heads(doc) {
        Err(StoreError::Damaged { what, .. }) => assert!(what.contains("pending write"), "{what}"),
        other => panic!("expected Damaged, got {other:?}"),
    }
    let report = s.check().unwrap();
    assert_eq!(report.damaged_documents.len(), 1, "{report:?}");
    assert_eq!(s.change_marker().unwrap(), marker, "nothing was written");
    // Reads from the index still work.
    assert_eq!(s.interaction(i.id).unwrap().summary, "x");
}

/// A store written before fresh writes (format 1.1, no pending table) opens,
/// reads and becomes 2.0 in the transaction of its first fresh write.
#[test]
fn a_format_1_store_opens_and_migrates_at_its_first_fresh_write() {
    let dir = tempfile::tempdir().unwrap();
    let ana = {
        let mut s = Store::open(dir.path()).unwrap();
        let ana = person(&mut s, "Ana");
        s.close().unwrap();
        ana
    };
    let format = |dir: &std::path::Path| {
        let db = redb::Database::open(dir.join(STORE_FILE)).unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(META).unwrap();
        String::from_utf8(t.get("format").unwrap().unwrap().value().to_vec()).unwrap()
    };
    {
        // Make it what a 1.1 Kith wrote: format 1.1 and no pending table.
        let db = redb::Database::open(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format", b"1.1".as_slice())
            .unwrap();
        txn.delete_table(PENDING).unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(format(dir.path()), "1.1");
    {
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(pending_total(&s), 0);
        assert!(s.check().unwrap().is_clean());
        s.log_interaction(meeting("after the upgrade", &[ana.id]))
            .unwrap();
        assert_eq!(pending_total(&s), 1);
        s.close().unwrap();
    }
    assert_eq!(format(dir.path()), "2.0");
}

proptest! {
    #![proptest_config(crate::proptest_cases(16))]

    /// Any history of operations, with folds, reopens and unloads at random
    /// points between them: the store reads the same and its index is the
    /// same with its fresh writes folded or not, and equals a rebuild.
    #[test]
    fn a_store_reads_and_reindexes_the_same_with_fresh_writes_folded_or_not(
        segments in proptest::collection::vec(
            (proptest::collection::vec(op(), 1..8), 0u8..4),
            1..6,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        run(&mut s, vec![Op::AddContact("Ana Lima".into()), Op::AddContact("Bo Chen".into())]);
        for (ops, between) in segments {
            run(&mut s, ops);
            match between {
                0 => {}
                1 => { s.fold_pending().unwrap(); }
                2 => {
                    s.close().unwrap();
                    s = Store::open(dir.path()).unwrap();
                }
                _ => s.unload_documents(),
            }
        }
        let unfolded = (s.index_dump().unwrap(), view(&s));
        prop_assert!(s.check().unwrap().is_clean());
        s.fold_pending().unwrap();
        prop_assert_eq!(pending_total(&s), 0);
        prop_assert_eq!(&(s.index_dump().unwrap(), view(&s)), &unfolded);
        s.reindex().unwrap();
        prop_assert_eq!(&(s.index_dump().unwrap(), view(&s)), &unfolded);
        s.close().unwrap();
        let s = Store::open(dir.path()).unwrap();
        prop_assert_eq!(&(s.index_dump().unwrap(), view(&s)), &unfolded);
    }
}
