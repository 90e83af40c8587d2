//! Store lifecycle: close/reopen, file lock, lazy load, compaction,
//! incremental chunk size after a reload, format version check.

use kith_core::store::STORE_FILE;
use kith_core::{CompactionPolicy, ContactPatch, DocId, Store, StoreError, TimelineQuery};

use crate::{fresh, meeting, person};

#[test]
fn close_releases_the_lock_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!Store::exists(dir.path()));
    let mut s = Store::open(dir.path()).unwrap();
    assert!(Store::exists(dir.path()));
    let ana = person(&mut s, "Ana");
    let i = s.log_interaction(meeting("coffee", &[ana.id])).unwrap();
    let actor = s.actor().clone();
    // While open for writing, a second open is refused with a clear error.
    match Store::open(dir.path()) {
        Err(StoreError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    s.close().unwrap();
    for _ in 0..3 {
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.actor(), &actor, "the device actor is stable");
        assert_eq!(s.contact(ana.id).unwrap().name, "Ana");
        assert_eq!(s.interaction(i.id).unwrap(), i);
        s.edit_contact(
            ana.id,
            ContactPatch {
                role: Some(Some("lead".into())),
                ..Default::default()
            },
        )
        .unwrap();
        s.close().unwrap();
    }
    // Dropping also releases the lock.
    {
        let _s = Store::open(dir.path()).unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.contact(ana.id).unwrap().role.as_deref(), Some("lead"));
}

#[test]
fn a_write_while_another_reader_is_open_fails_cleanly_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ana = {
        let mut s = Store::open(dir.path()).unwrap();
        let ana = person(&mut s, "Ana");
        s.close().unwrap();
        ana
    };
    let mut writer = Store::open(dir.path()).unwrap();
    let reader = Store::open(dir.path()).unwrap();
    let err = writer
        .log_interaction(meeting("blocked", &[ana.id]))
        .unwrap_err();
    assert!(
        matches!(err, kith_core::OpError::Store(StoreError::Locked { .. })),
        "{err:?}"
    );
    assert_eq!(
        writer.contact(ana.id).unwrap().name,
        "Ana",
        "still readable"
    );
    assert_eq!(reader.contact(ana.id).unwrap().name, "Ana");
    reader.close().unwrap();
    let i = writer
        .log_interaction(meeting("now it works", &[ana.id]))
        .unwrap();
    writer.close().unwrap();
    assert_eq!(
        Store::open(dir.path()).unwrap().interaction(i.id).unwrap(),
        i
    );
}

#[test]
fn open_is_lazy_and_a_write_loads_only_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (ana, old_doc) = {
        let mut s = Store::open(dir.path()).unwrap();
        let ana = person(&mut s, "Ana");
        let old = s
            .log_interaction(kith_core::NewInteraction {
                at_ms: Some(1_500_000_000_000),
                ..meeting("old", &[ana.id])
            })
            .unwrap();
        s.log_interaction(meeting("now", &[ana.id])).unwrap();
        s.close().unwrap();
        (ana, DocId::for_interaction(old.id))
    };
    let mut s = Store::open(dir.path()).unwrap();
    assert!(s.loaded_docs().is_empty(), "open loads no document");
    let first = s.timeline(&TimelineQuery::default()).unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].summary, "now");
    s.contacts(&Default::default()).unwrap();
    assert!(
        s.loaded_docs().is_empty(),
        "first-screen queries come from the index"
    );
    let i = s.log_interaction(meeting("after open", &[ana.id])).unwrap();
    assert!(
        s.loaded_docs().is_empty(),
        "a new interaction is a fresh write: no partition loads"
    );
    assert_eq!(
        s.pending_writes()
            .unwrap()
            .get(&DocId::for_interaction(i.id)),
        Some(&2),
        "the one logged before the reopen and this one"
    );
    let edited = s
        .edit_interaction(
            i.id,
            kith_core::InteractionPatch {
                summary: Some("after open, edited".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(edited.summary, "after open, edited");
    assert_eq!(
        s.loaded_docs(),
        vec![DocId::for_interaction(i.id)],
        "an edit loads only its partition (and folds its fresh writes)"
    );
    assert_eq!(
        s.pending_writes().unwrap().keys().collect::<Vec<_>>(),
        vec![&old_doc],
        "the edited partition's fresh writes folded; the old quarter's wait"
    );
    assert!(!s.loaded_docs().contains(&old_doc));
    s.load_all().unwrap();
    assert_eq!(s.loaded_docs().len(), 3);
    s.unload_documents();
    assert!(s.loaded_docs().is_empty());
    s.log_interaction(meeting("after unload", &[ana.id]))
        .unwrap();
    assert_eq!(
        s.timeline(&TimelineQuery::default()).unwrap()[0].summary,
        "after unload"
    );
}

#[test]
fn chunks_after_reload_are_incremental_and_compaction_folds_them() {
    let dir = tempfile::tempdir().unwrap();
    let ana = {
        let mut s = Store::open(dir.path()).unwrap();
        let ana = person(&mut s, "Ana");
        for n in 0..40 {
            person(
                &mut s,
                &format!("Filler {n} with a longer name to grow the document"),
            );
        }
        s.compact(DocId::Main).unwrap();
        s.close().unwrap();
        ana
    };
    let mut s = Store::open(dir.path()).unwrap();
    let before = s.doc_meta(DocId::Main).unwrap().unwrap();
    assert_eq!(before.chunk_count, 1);
    s.edit_contact(
        ana.id,
        ContactPatch {
            role: Some(Some("x".into())),
            ..Default::default()
        },
    )
    .unwrap();
    let after = s.doc_meta(DocId::Main).unwrap().unwrap();
    assert_eq!(after.chunk_count, 2);
    let chunk = after.incremental_bytes - before.incremental_bytes;
    assert!(
        chunk < 1_000,
        "one edit after a reload wrote {chunk} bytes (full: {})",
        before.full_bytes
    );

    s.set_compaction_policy(CompactionPolicy {
        chunks_max: 4,
        incremental_bytes_min: u64::MAX,
        write_chunks_max: 4,
    });
    for n in 0..10 {
        s.edit_contact(
            ana.id,
            ContactPatch {
                role: Some(Some(format!("r{n}"))),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.doc_meta(DocId::Main).unwrap().unwrap().chunk_count <= 4);
    }
    s.close().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    s.load_all().unwrap();
    assert_eq!(s.contact(ana.id).unwrap().role.as_deref(), Some("r9"));
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(dump, s.index_dump().unwrap());
}

#[test]
fn a_newer_store_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap().close().unwrap();
    {
        let db = redb::Database::open(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("meta");
            let mut t = txn.open_table(def).unwrap();
            t.insert("format", b"3.0".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    match Store::open(dir.path()) {
        Err(e @ StoreError::NewerFormat { found_major: 3, .. }) => {
            assert!(e.to_string().contains("update Kith"), "{e}");
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
}

#[test]
fn open_fails_clearly_when_the_directory_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    match Store::open(file.join("sub")) {
        Err(StoreError::Io { .. }) => {}
        other => panic!("expected Io, got {other:?}"),
    }
    let (_d, s) = fresh();
    assert!(s.size_on_disk_bytes().unwrap() > 0);
}

#[test]
fn a_store_creation_cut_short_leaves_no_damaged_store() {
    // A crash during the first open leaves at most the temporary file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(format!("{STORE_FILE}.creating")),
        b"half a header",
    )
    .unwrap();
    assert!(!Store::exists(dir.path()));
    let mut s = Store::open(dir.path()).unwrap();
    person(&mut s, "Ana");
    s.close().unwrap();
    assert!(!dir.path().join(format!("{STORE_FILE}.creating")).exists());
    assert_eq!(
        Store::open(dir.path())
            .unwrap()
            .all_contacts()
            .unwrap()
            .len(),
        1
    );
}

/// Compaction is off the write path: writes only add chunks (below
/// `write_chunks_max`), and `compact_due`, `park` and `close` fold them.
#[test]
fn compaction_waits_for_compact_due_park_or_close() {
    let dir = tempfile::tempdir().unwrap();
    let policy = CompactionPolicy {
        chunks_max: 4,
        incremental_bytes_min: u64::MAX,
        write_chunks_max: 1_000,
    };
    let mut s = Store::open(dir.path()).unwrap();
    s.set_compaction_policy(policy);
    let ana = person(&mut s, "Ana");
    let edit = |s: &mut Store, n: usize| {
        s.edit_contact(
            ana.id,
            ContactPatch {
                role: Some(Some(format!("r{n}"))),
                ..Default::default()
            },
        )
        .unwrap();
    };
    let chunks = |s: &Store| s.doc_meta(DocId::Main).unwrap().unwrap().chunk_count;
    for n in 0..8 {
        edit(&mut s, n);
    }
    assert!(chunks(&s) > 4, "no compaction on the write path");
    assert_eq!(s.compact_due().unwrap(), 1);
    assert_eq!(chunks(&s), 1);
    assert_eq!(s.compact_due().unwrap(), 0, "nothing due any more");

    for n in 0..8 {
        edit(&mut s, n);
    }
    s.park().unwrap();
    assert_eq!(chunks(&s), 1, "park compacted");

    for n in 0..8 {
        edit(&mut s, n);
    }
    s.close().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(chunks(&s), 1, "close compacted");
    assert_eq!(s.contact(ana.id).unwrap().role.as_deref(), Some("r7"));
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(dump, s.index_dump().unwrap());
}
