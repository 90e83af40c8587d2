//! The bulk import path indexes new contacts from the record as the reader
//! would return it, without reading the document back, and in one sorted
//! batch: these tests check that this equals reading back and equals what
//! `reindex` builds from the documents (the record-level equality is a
//! property test beside the schema, in kith-core's unit tests).

use kith_core::import::{ApplyOptions, apply_plan, plan_for_store};
use kith_core::model::Contact;
use kith_core::{ContactId, Store};
use kith_formats::{VcardLimits, vcard_drafts};
use proptest::prelude::*;

use crate::strategies::contact;

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vcard")
}

fn assert_index_equals_reindex(s: &mut Store) {
    let incremental = s.index_dump().unwrap();
    s.reindex().unwrap();
    let rebuilt = s.index_dump().unwrap();
    for (table, rows) in &incremental {
        assert_eq!(rows, &rebuilt[table], "table {table}");
    }
}

proptest! {
    #![proptest_config(crate::proptest_cases(16))]

    /// Bulk writes (new contacts, ids repeated within one call, updates of
    /// stored contacts) leave the index `reindex` would build.
    #[test]
    fn bulk_import_index_equals_reindex(
        first in proptest::collection::vec(contact(), 0..6),
        second in proptest::collection::vec(contact(), 0..6),
        repeat in proptest::collection::vec((any::<prop::sample::Index>(), contact()), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.import_records(first.clone(), vec![], vec![], vec![]).unwrap();
        // The second call mixes new contacts, new versions of stored ones and
        // an id written twice in the same call.
        let mut batch: Vec<Contact> = second;
        for (i, mut c) in repeat {
            let pool: Vec<ContactId> = first.iter().chain(batch.iter()).map(|c| c.id).collect();
            if !pool.is_empty() {
                c.id = pool[i.index(pool.len())];
            }
            batch.push(c);
        }
        s.import_records(batch, vec![], vec![], vec![]).unwrap();
        assert_index_equals_reindex(&mut s);
    }
}

/// A vCard import, then a re-import of an overlapping file with extra keys:
/// the index equals the rebuilt one after each, and survives a reopen.
#[test]
fn vcard_import_index_equals_reindex() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let options = ApplyOptions {
        create_likely_duplicates: true,
        now_ms: 1_700_000_000_000,
    };
    let first = crate::import_vcard::fixture("gmail-single.vcf");
    let batch = vcard_drafts(&first, &VcardLimits::default(), None).unwrap();
    let plan = plan_for_store(&s, batch.drafts).unwrap();
    let report = apply_plan(&mut s, &plan, &options).unwrap();
    assert!(!report.created.is_empty());
    assert_index_equals_reindex(&mut s);

    let mut all = Vec::new();
    for entry in std::fs::read_dir(fixture_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "vcf") {
            let bytes = std::fs::read(&path).unwrap();
            if let Ok(b) = vcard_drafts(&bytes, &VcardLimits::default(), Some("Acme")) {
                all.extend(b.drafts);
            }
        }
    }
    assert!(all.len() > 5, "fixtures hold several cards");
    let plan = plan_for_store(&s, all).unwrap();
    apply_plan(&mut s, &plan, &options).unwrap();
    let before = s.index_dump().unwrap();
    s.close().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(before, s.index_dump().unwrap());
    assert_index_equals_reindex(&mut s);
}

/// A bulk import spans several Automerge changes (one per thousand contacts)
/// but one redb transaction: a record refused after the first changes were
/// committed in memory leaves the store exactly as it was, in memory and on
/// disk, and the store keeps working.
#[test]
fn a_failing_bulk_import_after_several_changes_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let ana = s
        .add_contact(kith_core::NewContact::named("Ana Lima"))
        .unwrap();
    let heads = s.heads(kith_core::DocId::Main).unwrap();
    let index = s.index_dump().unwrap();
    let template = s.contact(ana.id).unwrap();
    let mut batch: Vec<Contact> = (0..2_500)
        .map(|i| Contact {
            id: ContactId::new(),
            name: format!("Bulk {i}"),
            ..template.clone()
        })
        .collect();
    // The reader refuses month 13, so the import must refuse it too.
    batch[2_400].birthday = Some(kith_core::model::PartialDate {
        year: None,
        month: 13,
        day: 1,
    });
    assert!(s.import_records(batch, vec![], vec![], vec![]).is_err());
    assert_eq!(s.heads(kith_core::DocId::Main).unwrap(), heads);
    assert_eq!(s.index_dump().unwrap(), index);
    assert_eq!(s.all_contacts().unwrap().len(), 1);
    s.add_contact(kith_core::NewContact::named("Bo Chen"))
        .unwrap();
    s.close().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    assert_eq!(s.all_contacts().unwrap().len(), 2);
    assert_index_equals_reindex(&mut s);
}
