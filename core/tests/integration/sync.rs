//! The remote-merge hook: two stores exchanging raw changes converge, the
//! index follows the patches, concurrent notes surface as a conflict, and a
//! failing caller write in the same transaction leaves nothing behind.

use kith_core::{
    ContactPatch, DocId, InteractionPatch, NewInteraction, RemoteApplied, Store, StoreError,
};

use crate::{meeting, person};

const CURSORS: redb::TableDefinition<'static, &str, u64> =
    redb::TableDefinition::new("test_cursors");

/// Sends every change of every document of `from` to `to`.
fn push(from: &mut Store, to: &mut Store) -> Vec<RemoteApplied> {
    let mut out = Vec::new();
    for doc in from.doc_ids().unwrap() {
        let changes = from.changes_since(doc, &[]).unwrap();
        out.push(to.apply_remote_changes(doc, &changes, |_| Ok(())).unwrap());
    }
    out
}

fn assert_index_is_rebuildable(s: &mut Store) {
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(dump, s.index_dump().unwrap());
}

#[test]
fn two_stores_exchanging_changes_converge() {
    let (_da, mut a) = crate::fresh();
    let (_db, mut b) = crate::fresh();
    let ana = person(&mut a, "Ana");
    let i = a
        .log_interaction(NewInteraction {
            notes: "base".into(),
            ..meeting("coffee", &[ana.id])
        })
        .unwrap();
    let bo = person(&mut b, "Bo");

    let applied = push(&mut a, &mut b);
    assert!(applied.iter().any(|r| r.contacts == vec![ana.id]));
    assert!(applied.iter().any(|r| r.interactions == vec![i.id]));
    // The log of remotely changed records, drained once.
    let log = b.take_remote_changes();
    assert_eq!((log.contacts, log.interactions), (vec![ana.id], vec![i.id]));
    assert!(b.take_remote_changes().is_empty());
    push(&mut b, &mut a);
    assert_eq!(a.all_contacts().unwrap(), b.all_contacts().unwrap());
    assert_eq!(b.interaction(i.id).unwrap(), i);
    assert_eq!(b.contact_stats(ana.id).unwrap().interaction_count, 1);
    assert_eq!(b.search("coff", 5).unwrap().interactions.len(), 1);

    // Concurrent edits of different fields both win; concurrent notes conflict.
    a.edit_contact(
        ana.id,
        ContactPatch {
            role: Some(Some("nurse".into())),
            ..Default::default()
        },
    )
    .unwrap();
    b.edit_contact(
        ana.id,
        ContactPatch {
            organisation: Some(Some("St Mary".into())),
            ..Default::default()
        },
    )
    .unwrap();
    a.edit_interaction(
        i.id,
        InteractionPatch {
            notes: Some("from a".into()),
            ..Default::default()
        },
    )
    .unwrap();
    b.edit_interaction(
        i.id,
        InteractionPatch {
            notes: Some("from b".into()),
            ..Default::default()
        },
    )
    .unwrap();
    b.log_interaction(meeting("b only", &[bo.id, ana.id]))
        .unwrap();
    push(&mut a, &mut b);
    push(&mut b, &mut a);

    let ca = a.contact(ana.id).unwrap();
    assert_eq!(ca, b.contact(ana.id).unwrap());
    assert_eq!(
        (ca.role.as_deref(), ca.organisation.as_deref()),
        (Some("nurse"), Some("St Mary"))
    );
    let ia = a.interaction(i.id).unwrap();
    assert_eq!(ia, b.interaction(i.id).unwrap());
    assert_eq!(ia.notes_conflicts.len(), 1, "{ia:?}");
    let mut both = vec![ia.notes.clone(), ia.notes_conflicts[0].clone()];
    both.sort();
    assert_eq!(both, ["from a", "from b"]);
    for doc in a.doc_ids().unwrap() {
        assert_eq!(a.heads(doc).unwrap(), b.heads(doc).unwrap(), "{doc}");
    }
    assert_eq!(a.contact_stats(ana.id).unwrap().interaction_count, 2);
    assert_index_is_rebuildable(&mut a);
    assert_index_is_rebuildable(&mut b);

    // Resolving the conflict on one device clears it on both.
    a.edit_interaction(
        i.id,
        InteractionPatch {
            notes: Some("merged".into()),
            ..Default::default()
        },
    )
    .unwrap();
    push(&mut a, &mut b);
    let ib = b.interaction(i.id).unwrap();
    assert_eq!((ib.notes.as_str(), ib.notes_conflicts.len()), ("merged", 0));
}

#[test]
fn my_changes_are_only_this_devices() {
    let (_da, mut a) = crate::fresh();
    let (_db, mut b) = crate::fresh();
    let ana = person(&mut a, "Ana");
    person(&mut b, "Bo");
    push(&mut a, &mut b);
    let mine_a = a.my_changes_since(DocId::Main, &[]).unwrap();
    let mine_b = b.my_changes_since(DocId::Main, &[]).unwrap();
    let all_b = b.changes_since(DocId::Main, &[]).unwrap();
    assert_eq!(mine_a.len(), 1, "the genesis change belongs to no device");
    assert_eq!(mine_b.len(), 1);
    assert_eq!(all_b.len(), 3, "genesis + A's + B's");
    assert!(!mine_b.contains(&mine_a[0]));
    let heads = a.heads(DocId::Main).unwrap();
    assert!(a.my_changes_since(DocId::Main, &heads).unwrap().is_empty());
    a.edit_contact(
        ana.id,
        ContactPatch {
            role: Some(Some("x".into())),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(a.my_changes_since(DocId::Main, &heads).unwrap().len(), 1);
}

#[test]
fn caller_writes_commit_with_the_merge_and_a_failure_writes_nothing() {
    let (_da, mut a) = crate::fresh();
    let dir_b = tempfile::tempdir().unwrap();
    let mut b = Store::open(dir_b.path()).unwrap();
    let ana = person(&mut a, "Ana");
    let changes = a.changes_since(DocId::Main, &[]).unwrap();

    let before = b.index_dump().unwrap();
    let heads = b.heads(DocId::Main).unwrap();
    let err = b
        .apply_remote_changes(DocId::Main, &changes, |txn| {
            txn.open_table(CURSORS)?.insert("a", 1)?;
            Err(StoreError::Closed)
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed));
    assert_eq!(before, b.index_dump().unwrap());
    assert_eq!(heads, b.heads(DocId::Main).unwrap(), "memory rolled back");
    assert!(matches!(
        b.contact(ana.id),
        Err(kith_core::OpError::UnknownContact(_))
    ));

    let bad = vec![b"not a change".to_vec()];
    assert!(matches!(
        b.apply_remote_changes(DocId::Main, &bad, |_| Ok(())),
        Err(StoreError::BadChange { index: 0, .. })
    ));

    b.apply_remote_changes(DocId::Main, &changes, |txn| {
        txn.open_table(CURSORS)?.insert("a", 7)?;
        Ok(())
    })
    .unwrap();
    b.close().unwrap();
    let b = Store::open(dir_b.path()).unwrap();
    assert_eq!(b.contact(ana.id).unwrap().name, "Ana");
    drop(b);
    let db = redb::Database::open(dir_b.path().join(kith_core::store::STORE_FILE)).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let t = txn.open_table(CURSORS).unwrap();
    assert_eq!(
        redb::ReadableTable::get(&t, "a").unwrap().unwrap().value(),
        7
    );
}

proptest::proptest! {
    #![proptest_config(crate::proptest_cases(12))]

    /// Two devices edit offline (also the same records, after a first
    /// exchange), then exchange changes both ways: they converge to the same
    /// records and heads, and each incremental index equals its rebuild.
    #[test]
    fn random_concurrent_edits_converge(
        a1 in proptest::collection::vec(crate::reindex::op(), 1..12),
        b1 in proptest::collection::vec(crate::reindex::op(), 1..12),
        a2 in proptest::collection::vec(crate::reindex::op(), 1..12),
        b2 in proptest::collection::vec(crate::reindex::op(), 1..12),
    ) {
        let (_da, mut a) = crate::fresh();
        let (_db, mut b) = crate::fresh();
        crate::reindex::run(&mut a, a1);
        crate::reindex::run(&mut b, b1);
        push(&mut a, &mut b);
        push(&mut b, &mut a);
        crate::reindex::run(&mut a, a2);
        crate::reindex::run(&mut b, b2);
        push(&mut a, &mut b);
        push(&mut b, &mut a);
        proptest::prop_assert_eq!(a.all_contacts().unwrap(), b.all_contacts().unwrap());
        proptest::prop_assert_eq!(a.all_interactions().unwrap(), b.all_interactions().unwrap());
        proptest::prop_assert_eq!(a.all_goals().unwrap(), b.all_goals().unwrap());
        proptest::prop_assert_eq!(a.settings().unwrap(), b.settings().unwrap());
        for doc in a.doc_ids().unwrap() {
            proptest::prop_assert_eq!(a.heads(doc).unwrap(), b.heads(doc).unwrap());
        }
        for s in [&mut a, &mut b] {
            let dump = s.index_dump().unwrap();
            s.reindex().unwrap();
            proptest::prop_assert_eq!(dump, s.index_dump().unwrap());
        }
    }
}

#[test]
fn heads_a_peer_sent_that_we_do_not_know_are_ignored() {
    let (_d, mut a) = crate::fresh();
    person(&mut a, "Ana");
    let all = a.changes_since(DocId::Main, &[]).unwrap();
    let unknown = automerge::ChangeHash([7u8; 32]);
    assert_eq!(a.changes_since(DocId::Main, &[unknown]).unwrap(), all);
    assert!(
        a.heads(DocId::for_time(0)).unwrap().is_empty(),
        "a document the store lacks"
    );
    assert!(a.changes_since(DocId::for_time(0), &[]).unwrap().is_empty());
}

/// Sends every change of `from` to `to` in pages of the given sizes (in
/// change count, cycling), in the order given for the pages of each
/// document: what a log bootstrap's pull pages do.
fn push_in_pages(from: &mut Store, to: &mut Store, sizes: &[usize], reversed: bool) {
    for doc in from.doc_ids().unwrap() {
        let changes = from.changes_since(doc, &[]).unwrap();
        let mut pages = Vec::new();
        let mut rest = &changes[..];
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (page, tail) = rest.split_at((*size).clamp(1, rest.len()));
            pages.push(page.to_vec());
            rest = tail;
        }
        if reversed {
            pages.reverse();
        }
        for page in pages {
            to.apply_remote_changes(doc, &page, |_| Ok(())).unwrap();
        }
    }
}

/// Drops `s` without closing it (a crash) and opens its directory again.
fn crash_and_reopen(dir: &tempfile::TempDir, s: &mut Store) {
    let placeholder = Store::open(tempfile::tempdir().unwrap().path()).unwrap();
    drop(std::mem::replace(s, placeholder));
    *s = Store::open(dir.path()).unwrap();
}

fn assert_same_content(a: &mut Store, b: &mut Store) {
    assert_eq!(a.all_contacts().unwrap(), b.all_contacts().unwrap());
    assert_eq!(a.all_interactions().unwrap(), b.all_interactions().unwrap());
    assert_eq!(a.all_goals().unwrap(), b.all_goals().unwrap());
    assert_eq!(a.settings().unwrap(), b.settings().unwrap());
    let docs = a.doc_ids().unwrap();
    assert_eq!(docs, b.doc_ids().unwrap());
    for doc in docs {
        assert_eq!(a.heads(doc).unwrap(), b.heads(doc).unwrap(), "{doc}");
    }
}

proptest::proptest! {
    #![proptest_config(crate::proptest_cases(12))]

    /// While the index is deferred (a log bootstrap) the received change
    /// chunks of each page are stored as the document's chunk instead of a
    /// re-encoded `save_after`. Split into pages of any sizes, the result
    /// equals the same changes merged with the index maintained: in memory,
    /// and after a crash and reopen (which loads those chunks and rebuilds
    /// the deferred index), with the index equal to its rebuild.
    #[test]
    fn a_deferred_bootstrap_in_pages_equals_the_maintained_merge(
        ops in proptest::collection::vec(crate::reindex::op(), 1..16),
        sizes in proptest::collection::vec(1usize..8, 1..6),
    ) {
        let (_da, mut a) = crate::fresh();
        crate::reindex::run(&mut a, ops);
        let (_dm, mut maintained) = crate::fresh();
        push(&mut a, &mut maintained);
        let (dd, mut deferred) = crate::fresh();
        deferred.defer_index().unwrap();
        push_in_pages(&mut a, &mut deferred, &sizes, false);
        deferred.finish_deferred_index().unwrap();
        assert_same_content(&mut maintained, &mut deferred);
        crash_and_reopen(&dd, &mut deferred);
        assert_same_content(&mut maintained, &mut deferred);
        assert_index_is_rebuildable(&mut deferred);
    }
}

/// Pages that arrive before their dependencies (Automerge queues their
/// changes) are not stored as received: the page that releases them moves
/// the document past more than its own changes, so its chunk is re-encoded.
/// A crash right after, with the index still deferred, reopens complete.
#[test]
fn a_deferred_page_that_releases_queued_changes_is_stored_whole() {
    let (_da, mut a) = crate::fresh();
    let ana = person(&mut a, "Ana");
    for i in 0..6 {
        a.log_interaction(meeting(&format!("call {i}"), &[ana.id]))
            .unwrap();
    }
    let (_dm, mut maintained) = crate::fresh();
    push(&mut a, &mut maintained);
    let (dd, mut deferred) = crate::fresh();
    deferred.defer_index().unwrap();
    push_in_pages(&mut a, &mut deferred, &[2], true);
    assert!(deferred.index_deferred());
    crash_and_reopen(&dd, &mut deferred);
    assert!(!deferred.index_deferred(), "the open rebuilt the index");
    assert_same_content(&mut maintained, &mut deferred);
    assert_eq!(deferred.all_interactions().unwrap().len(), 6);
    assert_index_is_rebuildable(&mut deferred);
}
