//! Damaged files: a truncated store file and a bit flip inside a document
//! chunk give a clear error naming what is damaged, never a panic, and the
//! file is byte-for-byte unchanged afterwards.

use std::path::Path;

use kith_core::store::STORE_FILE;
use kith_core::{DocId, NewInteraction, OpError, Store, StoreError};

use crate::{meeting, person};

fn build(dir: &Path) {
    let mut s = Store::open(dir).unwrap();
    let ana = person(&mut s, "Ana Lima");
    for n in 0..5 {
        s.log_interaction(NewInteraction {
            notes: format!("notes number {n} about the rota and the audit"),
            ..meeting(&format!("meeting {n}"), &[ana.id])
        })
        .unwrap();
    }
    // Into the partition's chunks (they are fresh writes until then).
    s.fold_pending().unwrap();
    s.close().unwrap();
}

/// The sealed bytes of every chunk of `doc`, read straight from redb.
fn chunks_of(path: &Path, doc: &str) -> Vec<Vec<u8>> {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let def: redb::TableDefinition<'_, (&str, u64), &[u8]> =
        redb::TableDefinition::new("doc_chunks");
    let t = txn.open_table(def).unwrap();
    let mut out = Vec::new();
    for row in redb::ReadableTable::range(&t, (doc, 0u64)..=(doc, u64::MAX)).unwrap() {
        out.push(row.unwrap().1.value().to_vec());
    }
    out
}

fn damaged_what(e: &StoreError) -> Option<&str> {
    match e {
        StoreError::Damaged { what, .. } => Some(what.as_str()),
        _ => None,
    }
}

#[test]
fn a_truncated_store_file_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let path = dir.path().join(STORE_FILE);
    let full = std::fs::read(&path).unwrap();
    for keep in [full.len() / 2, 4096, 100] {
        std::fs::write(&path, &full[..keep]).unwrap();
        let before = std::fs::read(&path).unwrap();
        let result = Store::open(dir.path()).and_then(|mut s| {
            s.load_all()?;
            s.all_interactions()
        });
        let err = result.expect_err("a truncated store must not open cleanly");
        assert!(
            damaged_what(&err).is_some_and(|w| w.contains(STORE_FILE)),
            "truncated to {keep}: unexpected error {err:?}"
        );
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(
            before,
            std::fs::read(&path).unwrap(),
            "the damaged file was modified"
        );
    }
}

#[test]
fn a_flipped_byte_in_a_chunk_names_the_chunk_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let path = dir.path().join(STORE_FILE);
    let s = Store::open(dir.path()).unwrap();
    let log = s
        .doc_ids()
        .unwrap()
        .into_iter()
        .find(|d| *d != DocId::Main)
        .unwrap();
    drop(s);
    let chunks = chunks_of(&path, &log.to_string());
    let target = chunks.last().unwrap().clone();
    let seq = chunks.len() - 1;
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip one byte inside every copy of the chunk (redb may keep stale copies
    // in freed pages; the live one is among them).
    let mut flipped = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..]
        .windows(target.len())
        .position(|w| w == target.as_slice())
    {
        let p = at + pos + target.len() / 2;
        bytes[p] ^= 0x5a;
        flipped += 1;
        at = p + 1;
    }
    assert!(flipped > 0, "chunk not found in the file");
    std::fs::write(&path, &bytes).unwrap();

    let mut s = Store::open(dir.path()).expect("the index still opens: documents load lazily");
    assert_eq!(
        s.all_interactions().unwrap().len(),
        5,
        "queries from the index still work"
    );
    let ana = s.contacts_named("Ana Lima").unwrap()[0].id;
    let at_ms = s.timeline(&Default::default()).unwrap()[0].at_ms;
    let err = s
        .log_interaction(NewInteraction {
            at_ms: Some(at_ms),
            ..meeting("after damage", &[ana])
        })
        .unwrap_err();
    let OpError::Store(e) = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(
        damaged_what(e),
        Some(format!("document chunk {log}/{seq}").as_str()),
        "{err}"
    );
    assert!(err.to_string().contains("is damaged"), "{err}");
    let e = s.load_all().unwrap_err();
    assert!(
        damaged_what(&e).is_some_and(|w| w.starts_with("document chunk")),
        "{e}"
    );
    drop(s);
    assert_eq!(
        bytes,
        std::fs::read(&path).unwrap(),
        "the damaged file was modified"
    );
}

#[test]
fn a_damaged_index_record_is_reported_and_reindex_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let path = dir.path().join(STORE_FILE);
    let ana = Store::open(dir.path())
        .unwrap()
        .contacts_named("Ana Lima")
        .unwrap()[0]
        .clone();
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            // Index tables are bytes to bytes; an id key is its 16 big-endian bytes.
            let def: redb::TableDefinition<'_, &[u8], &[u8]> =
                redb::TableDefinition::new("idx_contacts");
            let mut t = txn.open_table(def).unwrap();
            t.insert(
                ana.id.to_u128().to_be_bytes().as_slice(),
                [0xffu8; 3].as_slice(),
            )
            .unwrap();
        }
        txn.commit().unwrap();
    }
    let mut s = Store::open(dir.path()).unwrap();
    let err = s.contact(ana.id).unwrap_err();
    let OpError::Store(e) = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(damaged_what(e), Some("index table contacts"), "{err}");
    assert!(err.to_string().contains("reindex"), "{err}");
    s.reindex().unwrap();
    assert_eq!(s.contact(ana.id).unwrap(), ana);
}

#[test]
fn a_file_that_is_not_a_store_is_reported_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STORE_FILE);
    let junk = vec![0x42u8; 8192];
    std::fs::write(&path, &junk).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        damaged_what(&err).is_some_and(|w| w.contains(STORE_FILE)),
        "{err:?}"
    );
    assert_eq!(junk, std::fs::read(&path).unwrap(), "the file was modified");
}
